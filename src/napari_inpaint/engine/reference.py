r"""Reference data for a fill: another image of the same field, or the neighbouring planes of a stack.

A plane's holes are often known elsewhere: in the slice a micron away, the
frame a second earlier, a second acquisition or another channel.  The engine
gives a method that takes a ``reference`` the reference of every crop it
fills, aligned to that crop and complete (defined at every pixel), built here
from a window around the crop, so that the cost follows the holes.

Notes
-----
**Alignment.**  Stage drift and sample motion are the norm, so a reference is
shifted onto the plane before use.  The translation is estimated from the two
images' channel means on their known pixels only (unknown pixels may hold
anything, NaN included): first in whole pixels, by masked normalised
cross-correlation [2]_ over the shifts within a quarter of the window's side
(and at most 32 pixels), then refined to 1/20 pixel by upsampled
cross-correlation [1]_ of the mean-free images weighted by a Hann window that
also falls smoothly to zero around the unknown pixels.  Small or dim windows
correlate by chance (on 33×41 planes of 30 photons, an unrestricted search
finds peaks up to 28 pixels from the true, zero shift), so a shift must be
plausible:

* *significant*: pixel noise makes the correlation of :math:`n` pixels vary
  by :math:`\sigma \approx \sqrt{(\eta_f + \eta_g - \eta_f \eta_g)/n}`, with
  :math:`\eta` the share of an image's variance that is noise (estimated from
  the median absolute Laplacian; :math:`\sigma = 1/\sqrt{n}` for pure
  noise).  A peak below :math:`5 \sigma` means the images do not determine
  the shift, and none is applied;
* *clearly better than a smaller shift*: of the shifts whose correlation
  is within :math:`3 \sqrt{2} \sigma` of the best (what noise makes of a
  difference), the smallest is taken, as noise moves the top of a broad
  peak and raises chance peaks far away;
* *on the stack's drift* (adjacent planes, below).

The reference is moved by cubic-spline interpolation, its unknown pixels
first set to their nearest known value.  Pixels whose interpolation point
lies within about one pixel of an unknown pixel or beyond the border are
unknown after the shift (the spline's weights farther away are a few per
cent).

**Adjacent planes.**  For ``reference="adjacent"`` the reference of plane
:math:`k` along the stack axis (the last non-spatial axis) takes each pixel
from the nearest of the planes :math:`k \pm 1, k \pm 2` whose (aligned) pixel
is known there, the mean of both when both sides at the same distance know
it; a neighbour that is itself damaged at a pixel is skipped there.  The
shifts of these neighbours must follow one drift (see
:func:`plausible_shifts`): a shift more than :math:`\sqrt{|d|}` pixels from
:math:`d` times the median drift per plane is a chance peak, replaced by the
drift of the others.  Pixels that no plane within reach knows (a hot pixel,
bad in every plane; pixels moved in from beyond the border) are completed by
the harmonic fill, so that ``guided`` fills them as the plane's own harmonic
fill would.  Registration is local: each crop's window (the crop and 32
pixels around it) is registered on its own, once per pair of planes.

References
----------
.. [1] M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, "Efficient
       subpixel image registration algorithms", Opt. Lett. 33 (2008),
       156-158.
.. [2] D. Padfield, "Masked object registration in the Fourier domain",
       IEEE Trans. Image Process. 21 (2012), 2706-2718.
"""

import warnings
from collections.abc import Callable

import numpy as np
from scipy import fft
from scipy import ndimage as ndi

from napari_inpaint.engine.noise import noise_sigma

ADJACENT = "adjacent"
_UPSAMPLE = 20
# The masked correlation ignores shifts whose overlap is below this share of the largest overlap.
_MIN_OVERLAP = 0.3
# A shift is sought within this fraction of the window's side (and the registration margin): farther
# peaks compare little overlap and are mostly chance.
_SEARCH_SHARE = 0.25
# A correlation peak counts when it is this many times the spread that pixel noise gives correlations.
_SIGNIFICANCE = 5.0
# Shifts whose correlation is within this many noise spreads (of a difference) of the best are as good as it.
_PEAK_TOLERANCE = 3.0
# Width (pixels) over which the sub-pixel refinement's weight falls to zero near unknown pixels.
_TAPER = 3.0
# reference="adjacent" looks this many planes each side for a pixel: farther planes show other structures
# (and a hot pixel is bad in all of them), and each costs a registration.
_ADJACENT_REACH = 2
# Pixels a neighbour's shift may stray, times sqrt(distance), from the drift of the others (see plausible_shifts).
_DRIFT_TOLERANCE = 1.0
# A crop's reference is registered on a window this much wider on each side: enough structure to
# match, and room for the drift.
_REGISTRATION_MARGIN = 32


def estimate_shift(
    fixed: np.ndarray, fixed_known: np.ndarray, moving: np.ndarray, moving_known: np.ndarray
) -> np.ndarray | None:
    """The translation that moves ``moving`` onto ``fixed`` (sub-pixel), from their known pixels.

    Parameters
    ----------
    fixed, moving : ndarray
        Images of the same spatial shape, channels last (``spatial + (C,)``).
        Their unknown pixels may hold anything (NaN included): they are not read.
    fixed_known, moving_known : ndarray of bool
        Their known pixels.

    Returns
    -------
    ndarray of float or None
        The shift to give :func:`shift_image` (one value per spatial axis);
        None when the images do not determine it: no correlation peak within
        a quarter of the window (and :data:`_REGISTRATION_MARGIN`) stands out
        from the pixel noise (see the module's Notes).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> rng = np.random.default_rng(0)
    >>> fixed = ndi.gaussian_filter(rng.random((64, 64)), 2)[..., None]
    >>> moving = ndi.shift(fixed, (2.3, -1.6, 0), order=3, mode="wrap")
    >>> known = np.ones((64, 64), bool)
    >>> np.round(estimate_shift(fixed, known, moving, known), 1)
    array([-2.3,  1.6])
    >>> print(estimate_shift(fixed, known, rng.random((64, 64, 1)), known))  # unrelated: no shift to trust
    None
    """
    from skimage.registration import phase_cross_correlation

    fixed, moving = _normalised(fixed.mean(axis=-1), fixed_known), _normalised(moving.mean(axis=-1), moving_known)
    if fixed is None or moving is None:  # a flat image: nothing to register on
        return None
    whole, significance = _whole_pixel_shift(fixed, fixed_known, moving, moving_known)
    if significance < _SIGNIFICANCE:
        return None
    moved = ndi.shift(moving, whole, order=0, mode="nearest")
    moved_known = ndi.shift(moving_known, whole, order=0, mode="constant", cval=False)
    both = fixed_known & moved_known
    if not both.any():  # nothing known in both after the shift: no refinement
        return whole
    # One weight for both images, tapered to zero at the border and around unknown pixels: hard
    # edges would correlate best at no shift and pull the sub-pixel estimate towards it.
    weight = _hann(fixed.shape) * ndi.gaussian_filter(both.astype(float), _TAPER) * both
    fixed, moved = (fixed - fixed[both].mean()) * weight, (moved - moved[both].mean()) * weight
    if not (fixed.any() and moved.any()):  # no structure left where both are known
        return whole
    with warnings.catch_warnings():
        # skimage also estimates an error it cannot normalise for such weighted images; it is not used.
        warnings.filterwarnings("ignore", "Could not determine RMS error", UserWarning)
        # Plain (not phase-normalised) correlation: phase normalisation weights the noisy high
        # frequencies as much as the structure and biases the sub-pixel peak.
        fine, *_ = phase_cross_correlation(fixed, moved, upsample_factor=_UPSAMPLE, normalization=None)
    # The refinement only corrects the sub-pixel part; a larger answer is a spurious peak.
    return whole + (fine if np.abs(fine).max() <= 1 else 0.0)


def _whole_pixel_shift(
    fixed: np.ndarray, fixed_known: np.ndarray, moving: np.ndarray, moving_known: np.ndarray
) -> tuple[np.ndarray, float]:
    """The whole-pixel shift that masked normalised cross-correlation [2]_ picks within reach, and its significance.

    ``fixed`` and ``moving`` are normalised, zero at their unknown pixels.
    The significance is the peak's correlation in units of the spread that
    pixel noise gives it (see the module's Notes); zero when no shift within
    reach has enough overlap.
    """
    shape = np.array(fixed.shape)
    reach = np.minimum((shape * _SEARCH_SHARE).astype(int), _REGISTRATION_MARGIN)
    # Circular correlations on a grid this large do not wrap around for shifts within reach.
    size = [fft.next_fast_len(int(n + r), real=True) for n, r in zip(shape, reach)]
    fixed_mask, moving_mask = fixed_known.astype(float), moving_known.astype(float)
    fixed_spectra = [fft.rfftn(a, size) for a in (fixed_mask, fixed, fixed**2)]
    moving_spectra = [np.conj(fft.rfftn(a, size)) for a in (moving_mask, moving, moving**2)]
    shifts = np.ix_(*[np.arange(-r, r + 1) % n for r, n in zip(reach, size)])

    def correlation(first, second):  # sum over x of first(x) * second(x - s), for every shift s within reach
        return fft.irfftn(fixed_spectra[first] * moving_spectra[second], size)[shifts]

    overlap = np.maximum(np.rint(correlation(0, 0)), 1)
    fixed_sum, moving_sum = correlation(1, 0), correlation(0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = correlation(1, 1) - fixed_sum * moving_sum / overlap
        variances = (correlation(2, 0) - fixed_sum**2 / overlap) * (correlation(0, 2) - moving_sum**2 / overlap)
        ncc = np.where(
            (overlap >= _MIN_OVERLAP * overlap.max()) & (variances > 0), covariance / np.sqrt(variances), -np.inf
        )
    best = np.unravel_index(np.argmax(ncc), ncc.shape)
    if not np.isfinite(ncc[best]):
        return np.zeros(fixed.ndim), 0.0
    noise = [_noise_share(image, known) for image, known in ((fixed, fixed_known), (moving, moving_known))]
    spread = np.sqrt((noise[0] + noise[1] - noise[0] * noise[1]) / overlap)
    # Noise moves the top of a broad peak, and makes far peaks of chance: of the shifts that the noise
    # cannot tell from the best (their difference varies by sqrt(2) spreads), the smallest.
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1)
    tied = ncc >= ncc[best] - _PEAK_TOLERANCE * np.sqrt(2.0) * spread
    peak = np.unravel_index(np.argmin(np.where(tied, np.sum(offsets**2, axis=-1), np.inf)), ncc.shape)
    significance = ncc[peak] / spread[peak] if spread[peak] > 0 else np.inf  # noise-free images
    return offsets[peak].astype(float), float(significance)


def _noise_share(image: np.ndarray, known: np.ndarray) -> float:
    """The share of the variance of ``image``'s known pixels that is pixel noise, in [0, 1]."""
    variance = image[known].var()
    if not variance > 0:
        return 1.0
    return float(min(1.0, noise_sigma(image[..., None], ~known)[0] ** 2 / variance))


def shift_image(values: np.ndarray, known: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move ``values`` (spatial + (C,)) by ``shift``; return the moved values and their known pixels.

    Unknown pixels take their nearest known value before the cubic-spline
    interpolation, and every pixel whose interpolation point lies within
    about one pixel of an unknown pixel, or beyond the border, is unknown
    afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.arange(36.0).reshape(6, 6, 1)
    >>> known = np.ones((6, 6), bool)
    >>> moved, moved_known = shift_image(values, known, np.array([1.0, 0.0]))
    >>> bool(np.allclose(moved[1:], values[:-1])), bool(moved_known[0].any())  # row 0 came from outside
    (True, False)
    """
    return _shifted_values(values, known, shift), _shifted_known(known, shift)


def _shifted_values(values: np.ndarray, known: np.ndarray, shift: np.ndarray) -> np.ndarray:
    if not np.any(shift):
        return values
    if not known.all():
        nearest = ndi.distance_transform_edt(~known, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
    # Channel by channel: a spline over a trailing channel axis costs many times the spatial ones.
    moved = [ndi.shift(values[..., channel], shift, order=3, mode="nearest") for channel in range(values.shape[-1])]
    return np.stack(moved, axis=-1)


def _shifted_known(known: np.ndarray, shift: np.ndarray) -> np.ndarray:
    if not np.any(shift):
        return known
    # The cubic spline reaches two pixels on each side of the point it interpolates, but its weights
    # beyond the nearest pixels are a few per cent: a pixel whose neighbours are known stays known.
    reach = ndi.binary_dilation(~known, np.ones((3,) * known.ndim, bool)) if not known.all() else ~known
    # Beyond the border is unknown too: mode "constant" reads cval there.
    return ndi.shift((~reach).astype(np.float32), shift, order=1, mode="constant", cval=0.0) > 0.999


def check_reference(reference, image_shape: tuple[int, ...], batch_ndim: int) -> None:
    """Raise a clear error unless ``reference`` is None, ``"adjacent"`` (with a stack) or a real array that fits.

    Parameters
    ----------
    reference : None, "adjacent" or array_like
        What the caller passed.
    image_shape : tuple of int
        The image's shape.
    batch_ndim : int
        Its number of leading (non-spatial) axes.

    Raises
    ------
    ValueError
        An unknown string, ``"adjacent"`` for a single plane, or a shape that
        does not broadcast to the image.
    TypeError
        A reference of bool, complex, string, object or other non-real dtype:
        a silent cast would lose its meaning (the imaginary part, the objects).

    Examples
    --------
    >>> import numpy as np
    >>> check_reference(np.zeros((16, 16)), (3, 16, 16), batch_ndim=1)  # one plane for every plane
    >>> check_reference(np.zeros((16, 16), complex), (3, 16, 16), batch_ndim=1)
    Traceback (most recent call last):
    ...
    TypeError: the reference has dtype complex128; give a real-valued numeric array ...
    """
    if reference is None:
        return
    if isinstance(reference, str):
        if reference != ADJACENT:
            raise ValueError(f"reference must be None, 'adjacent' or an array; got {reference!r}")
        if batch_ndim == 0:
            raise ValueError(
                "reference='adjacent' takes the neighbouring planes of a stack, but this image is a single "
                "plane; give a reference image instead (e.g. another acquisition or channel)"
            )
        return
    shape = np.shape(reference)
    try:
        fits = np.broadcast_shapes(shape, image_shape) == tuple(image_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"a reference of shape {shape} does not fit the image of shape {tuple(image_shape)}: give one of "
            "the image's shape, or one plane (the image's trailing axes) for every plane"
        )
    # Read from the array itself where it has a dtype (dask, zarr): no need to load it.
    dtype = np.dtype(reference.dtype) if hasattr(reference, "dtype") else np.asarray(reference).dtype
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(
            f"the reference has dtype {dtype}; give a real-valued numeric array (integers or floats) of the "
            "image's shape or of one plane, e.g. np.abs(reference) of complex data or reference.astype(np.float32)"
        )


class References:
    """The aligned, complete reference of each crop of one inpaint call, built when a fill needs it.

    Only a window around each crop is read and registered, so the cost
    follows the holes (and a local registration also follows drift that
    varies across a large plane).

    Parameters
    ----------
    source : None, "adjacent" or ndarray
        What the caller passed as ``reference``; an array is already
        broadcast to ``channels_last``'s shape and layout.
    channels_last : ndarray
        The image, channels last (``batch + spatial + (C,)``).
    mask : ndarray of bool
        The mask, broadcastable to ``batch + spatial``.
    batch_ndim : int
        Number of leading (non-spatial) axes.
    align : bool
        Whether to shift references onto their planes.
    check : callable
        Raises when the user cancels.
    """

    def __init__(self, source, channels_last, mask, batch_ndim: int, align: bool, check: Callable[[], None]):
        self.source, self.image, self.align, self.check = source, channels_last, align, check
        self.batch_shape = channels_last.shape[:batch_ndim]
        self.masks = np.broadcast_to(mask, channels_last.shape[:-1])
        self._registrations: dict[tuple, np.ndarray | None] = {}

    def of(self, plane: tuple, box: tuple[slice, ...]) -> np.ndarray:
        """The reference of ``box`` in ``plane`` (batch indices): float64, box shape + (C,), aligned, complete."""
        spatial = self.masks.shape[len(self.batch_shape) :]
        window = tuple(
            slice(max(0, s.start - _REGISTRATION_MARGIN), min(n, s.stop + _REGISTRATION_MARGIN))
            for s, n in zip(box, spatial)
        )
        inner = tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(box, window))
        if isinstance(self.source, str):
            values, known = self._neighbours(plane, window, inner)
        else:
            values, known = self._given(plane, window)
        return _complete(values[inner], known[inner])

    def _given(self, plane: tuple, window: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
        reference = np.asarray(self.source[plane][window], dtype=np.float64)
        everywhere = np.ones(reference.shape[:-1], bool)
        if not self.align:
            return reference, everywhere
        shift = estimate_shift(self._float(plane, window), self._known(plane, window), reference, everywhere)
        if shift is None:  # nothing to register on: as it is
            return reference, everywhere
        return shift_image(reference, everywhere, shift)

    def _neighbours(
        self, plane: tuple, window: tuple[slice, ...], inner: tuple[slice, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel of ``inner`` from the nearest planes within reach that know it (mean on ties)."""
        *outer, index = plane
        length = self.batch_shape[-1]
        distances = [d for reach in range(1, _ADJACENT_REACH + 1) for d in (-reach, reach) if 0 <= index + d < length]
        shifts = self._shifts(plane, window, distances)
        values = np.zeros(self.image[plane][window].shape)
        unassigned = np.zeros(values.shape[:-1], bool)
        unassigned[inner] = True  # the window around it only helps the registration
        for reach in range(1, _ADJACENT_REACH + 1):
            total = np.zeros_like(values)
            count = np.zeros(unassigned.shape, np.int8)
            for distance in (-reach, reach):
                if distance not in shifts:
                    continue
                self.check()
                neighbour, shift = (*outer, index + distance), shifts[distance]
                known = self._known(neighbour, window)
                use = _shifted_known(known, shift) & unassigned
                if not use.any():  # e.g. a hot pixel, bad in every plane: no need to move the values
                    continue
                total[use] += _shifted_values(self._float(neighbour, window), known, shift)[use]
                count += use
            found = count > 0
            values[found] = total[found] / count[found, None]
            unassigned &= ~found
            if not unassigned.any():
                break
        return values, ~unassigned

    def _shifts(self, plane: tuple, window: tuple[slice, ...], distances: list[int]) -> dict[int, np.ndarray]:
        """The shift that aligns the plane ``distance`` planes away onto ``plane``, for each distance."""
        if not self.align:
            return {distance: np.zeros(len(window)) for distance in distances}
        estimates = {distance: self._registration(plane, distance, window) for distance in distances}
        return plausible_shifts(estimates, len(window))

    def _registration(self, plane: tuple, distance: int, window: tuple[slice, ...]) -> np.ndarray | None:
        """:func:`estimate_shift` of a neighbour onto ``plane`` in ``window``, registered once per pair of planes."""
        *outer, index = plane
        first, second = sorted((index, index + distance))
        key = (tuple(outer), first, second, tuple((w.start, w.stop) for w in window))
        if key not in self._registrations:
            self.check()
            fixed, moving = (*outer, first), (*outer, second)
            self._registrations[key] = estimate_shift(
                self._float(fixed, window), self._known(fixed, window),
                self._float(moving, window), self._known(moving, window),
            )
        shift = self._registrations[key]
        # Registered as the later plane onto the earlier one; the other way round is the opposite shift.
        return shift if shift is None or distance > 0 else -shift

    def _float(self, plane: tuple, window: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.image[plane][window], dtype=np.float64)

    def _known(self, plane: tuple, window: tuple[slice, ...]) -> np.ndarray:
        return ~self.masks[plane][window]


def adjacent_planes(
    planes: np.ndarray, masks: np.ndarray, *, align: bool = True, check: Callable[[], None] | None = None
) -> Callable[[int], np.ndarray]:
    """``reference="adjacent"`` within a stack of planes in memory: each plane's reference from its neighbours.

    For a fill that takes the crop of a volume plane by plane (``auto``'s
    ``guided:adjacent``, which receives this function as its preparation's
    ``adjacent``): plane ``i``'s reference is built as the engine builds the
    reference of a crop for ``reference="adjacent"`` (see the module's
    Notes), registered over the whole planes given.

    Parameters
    ----------
    planes : ndarray
        ``(N,) + spatial + (C,)``; the unknown pixels may hold anything.
    masks : ndarray of bool
        ``(N,) + spatial``, True on the unknown pixels.
    align : bool
        Whether to shift the neighbours onto the plane.
    check : callable, optional
        Raises when the user cancels.

    Returns
    -------
    callable
        ``reference(i)``: plane ``i``'s reference, float64, ``spatial + (C,)``,
        aligned and complete; each pair of planes is registered once over all calls.

    Examples
    --------
    >>> import numpy as np
    >>> planes = np.stack([np.full((8, 8, 1), float(i)) for i in range(3)])
    >>> masks = np.zeros((3, 8, 8), bool); masks[1, 2:4, 2:4] = True
    >>> reference = adjacent_planes(planes, masks, align=False)
    >>> float(reference(1)[3, 3, 0]), float(reference(0)[3, 3, 0])  # both sides' mean; plane 1, then 2
    (1.0, 2.0)
    """
    references = References(ADJACENT, planes, masks, 1, align, check or (lambda: None))
    whole = tuple(slice(0, n) for n in masks.shape[1:])
    return lambda index: references.of((index,), whole)


def plausible_shifts(estimates: dict[int, np.ndarray | None], ndim: int) -> dict[int, np.ndarray]:
    """The shifts of a plane's neighbours (keyed by signed distance along the stack) that follow one drift.

    A stage drifts slowly and steadily, so the shift to the plane
    :math:`d` planes away is about :math:`d` times one drift per plane.  That
    drift is the median of the estimates divided by their distances; an
    estimate more than :math:`\\sqrt{|d|}` pixels (:data:`_DRIFT_TOLERANCE`)
    from :math:`d` times it is a chance peak.  Such a neighbour, and one
    without an estimate (None: nothing significant to register on), gets
    :math:`d` times the mean drift of the estimates that follow it when at
    least two do (the stack's typical drift), else no shift.

    Examples
    --------
    >>> import numpy as np
    >>> estimates = {-1: np.array([-0.5, 0.3]), 1: np.array([0.6, -0.3]), 2: np.array([14.0, 9.0]), -2: None}
    >>> {d: np.round(s, 2).tolist() for d, s in plausible_shifts(estimates, ndim=2).items()}
    {-1: [-0.5, 0.3], 1: [0.6, -0.3], 2: [1.1, -0.6], -2: [-1.1, 0.6]}
    """
    found = {distance: shift for distance, shift in estimates.items() if shift is not None}
    if len(found) >= 2:
        drift = np.median([shift / distance for distance, shift in found.items()], axis=0)
        found = {
            distance: shift
            for distance, shift in found.items()
            if np.linalg.norm(shift - distance * drift) <= _DRIFT_TOLERANCE * np.sqrt(abs(distance))
        }
    typical = np.zeros(ndim)
    if len(found) >= 2:
        typical = np.mean([shift / distance for distance, shift in found.items()], axis=0)
    return {distance: found.get(distance, distance * typical) for distance in estimates}


def _complete(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` with its unknown pixels filled harmonically (all zero when nothing is known)."""
    if known.all():
        return values
    if not known.any():
        return np.zeros_like(values)
    from napari_inpaint.methods.diffusion import harmonic

    return harmonic(np.where(known[..., None], values, 0.0), ~known)


def _normalised(image: np.ndarray, known: np.ndarray) -> np.ndarray | None:
    """``image`` minus its known mean, divided by its largest known deviation, zero where unknown; None if flat.

    Correlations square the values: data near 1e300 would overflow, data near 1e-300 underflow.
    The unknown pixels may hold anything, NaN included.
    """
    values = image[known]
    if values.size < 2:
        return None
    centre = values.mean()
    spread = np.abs(values - centre).max()
    if not spread > 0 or not np.isfinite(spread):
        return None
    return np.where(known, (image - centre) / spread, 0.0)


def _hann(shape: tuple[int, ...]) -> np.ndarray:
    """A separable Hann window: phase correlation without the image borders' wrap-around edges."""
    window = np.ones(shape)
    for axis, n in enumerate(shape):
        profile = np.hanning(n) if n > 2 else np.ones(n)
        window *= profile.reshape([n if a == axis else 1 for a in range(len(shape))])
    return window
