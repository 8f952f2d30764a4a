r"""Reference data for a fill: another image of the same field, or the neighbouring planes of a stack.

A plane's holes are often known elsewhere: in the slice a micron away, the
frame a second earlier, a second acquisition or another channel.  The engine
gives a method that takes a ``reference`` the reference of every crop it
fills, aligned to that crop and complete (defined at every pixel), built here
from a window around the crop, so that the cost follows the holes.

Notes
-----
**Alignment.**  Stage drift and sample motion are the norm, so a reference is
shifted onto the plane before use.  The translation is estimated by phase
correlation [1]_ of the two images' channel means: first on the known pixels
only (masked normalised cross-correlation [2]_, whole pixels), then, after
that shift, refined to 1/20 pixel by upsampled cross-correlation [1]_ of the
mean-free images weighted by a Hann window that also falls smoothly to zero
around the unknown pixels.  The reference is moved
by cubic-spline interpolation; pixels whose interpolation touches an unknown
pixel or the border are unknown after the shift.

**Adjacent planes.**  For ``reference="adjacent"`` the reference of plane
:math:`k` along the stack axis (the last non-spatial axis) takes each pixel
from the nearest planes :math:`k \pm d` whose (aligned) pixel is known there,
the mean of both when both sides at the same distance know it; a neighbour
that is itself damaged at a pixel is skipped there.  Pixels that no plane
knows (e.g. moved in from beyond the border) are completed by the harmonic
fill.  Registration is local: each crop's window (the crop and 32 pixels
around it) is registered on its own.

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
from scipy import ndimage as ndi

ADJACENT = "adjacent"
_UPSAMPLE = 20
# The masked correlation ignores shifts whose overlap is below this share of the image.
_MIN_OVERLAP = 0.3
# Width (pixels) over which the sub-pixel refinement's weight falls to zero near unknown pixels.
_TAPER = 3.0
# A crop's reference is registered on a window this much wider on each side: enough structure to
# match, and room for the drift.
_REGISTRATION_MARGIN = 32


def estimate_shift(
    fixed: np.ndarray, fixed_known: np.ndarray, moving: np.ndarray, moving_known: np.ndarray
) -> np.ndarray:
    """The translation that moves ``moving`` onto ``fixed`` (sub-pixel), from their known pixels.

    Parameters
    ----------
    fixed, moving : ndarray
        Images of the same spatial shape, channels last (``spatial + (C,)``).
    fixed_known, moving_known : ndarray of bool
        Their known pixels.

    Returns
    -------
    ndarray of float
        The shift to give :func:`shift_image` (one value per spatial axis).

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
    """
    from skimage.registration import phase_cross_correlation

    fixed, moving = _normalised(fixed.mean(axis=-1), fixed_known), _normalised(moving.mean(axis=-1), moving_known)
    if fixed is None or moving is None:  # a flat image: nothing to register on
        return np.zeros(fixed_known.ndim)
    whole, *_ = phase_cross_correlation(
        fixed, moving, reference_mask=fixed_known, moving_mask=moving_known, overlap_ratio=_MIN_OVERLAP
    )
    moved = ndi.shift(_mean_filled(moving, moving_known), whole, order=0, mode="nearest")
    moved_known = ndi.shift(moving_known, whole, order=0, mode="constant", cval=False)
    both = fixed_known & moved_known
    if not both.any():
        return np.asarray(whole, float)
    # One weight for both images, tapered to zero at the border and around unknown pixels: hard
    # edges would correlate best at no shift and pull the sub-pixel estimate towards it.
    weight = _hann(fixed.shape) * ndi.gaussian_filter(both.astype(float), _TAPER) * both
    fixed, moved = (fixed - fixed[both].mean()) * weight, (moved - moved[both].mean()) * weight
    if not (fixed.any() and moved.any()):  # no structure left where both are known
        return np.asarray(whole, float)
    with warnings.catch_warnings():
        # skimage also estimates an error it cannot normalise for such weighted images; it is not used.
        warnings.filterwarnings("ignore", "Could not determine RMS error", UserWarning)
        # Plain (not phase-normalised) correlation: phase normalisation weights the noisy high
        # frequencies as much as the structure and biases the sub-pixel peak.
        fine, *_ = phase_cross_correlation(fixed, moved, upsample_factor=_UPSAMPLE, normalization=None)
    # The refinement only corrects the sub-pixel part; a larger answer is a spurious peak.
    return np.asarray(whole, float) + (fine if np.abs(fine).max() <= 1 else 0.0)


def shift_image(values: np.ndarray, known: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move ``values`` (spatial + (C,)) by ``shift``; return the moved values and their known pixels.

    Unknown pixels take their nearest known value before the cubic-spline
    interpolation, and every pixel whose interpolation reaches an unknown
    pixel or the border is unknown afterwards.
    """
    if not np.any(shift):
        return values, known
    spatial = known.ndim
    if not known.all():
        nearest = ndi.distance_transform_edt(~known, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
    full_shift = tuple(shift) + (0.0,)
    moved = ndi.shift(values, full_shift, order=3, mode="nearest")
    # The cubic spline reaches two pixels on each side of the point it interpolates.
    reach = ndi.binary_dilation(~known, np.ones((5,) * spatial, bool)) if not known.all() else ~known
    moved_known = ndi.shift((~reach).astype(np.float32), shift, order=1, mode="constant", cval=0.0) > 0.999
    border = np.ones(known.shape, np.float32)
    moved_known &= ndi.shift(border, shift, order=1, mode="constant", cval=0.0) > 0.999
    return moved, moved_known


def check_reference(reference, image_shape: tuple[int, ...], batch_ndim: int) -> None:
    """Raise a clear error unless ``reference`` is None, ``"adjacent"`` (with a stack) or fits the image."""
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
        return shift_image(reference, everywhere, shift)

    def _neighbours(
        self, plane: tuple, window: tuple[slice, ...], inner: tuple[slice, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel of ``inner`` from the nearest planes along the stack axis that know it (mean on ties)."""
        *outer, index = plane
        length = self.batch_shape[-1]
        target, target_known = self._float(plane, window), self._known(plane, window)
        values = np.zeros_like(target)
        unassigned = np.zeros(target_known.shape, bool)
        unassigned[inner] = True  # the window around it only helps the registration
        for distance in range(1, length):
            self.check()
            total = np.zeros_like(values)
            count = np.zeros(unassigned.shape, np.int8)
            for other in (index - distance, index + distance):
                if not 0 <= other < length:
                    continue
                neighbour = (*outer, other)
                moved, moved_known = self._float(neighbour, window), self._known(neighbour, window)
                if self.align:
                    shift = estimate_shift(target, target_known, moved, moved_known)
                    moved, moved_known = shift_image(moved, moved_known, shift)
                use = moved_known & unassigned
                total[use] += moved[use]
                count += use
            found = count > 0
            values[found] = total[found] / count[found, None]
            unassigned &= ~found
            if not unassigned.any():
                break
        return values, ~unassigned

    def _float(self, plane: tuple, window: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.image[plane][window], dtype=np.float64)

    def _known(self, plane: tuple, window: tuple[slice, ...]) -> np.ndarray:
        return ~self.masks[plane][window]


def _complete(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` with its unknown pixels filled harmonically (all zero when nothing is known)."""
    if known.all():
        return values
    if not known.any():
        return np.zeros_like(values)
    from napari_inpaint.methods.diffusion import harmonic

    return harmonic(np.where(known[..., None], values, 0.0), ~known)


def _normalised(image: np.ndarray, known: np.ndarray) -> np.ndarray | None:
    """``image`` minus its known mean, divided by its known standard deviation; None when it is flat.

    Correlations square the values: data near 1e300 would overflow, data near 1e-300 underflow.
    """
    values = image[known]
    if values.size < 2:
        return None
    centre = values.mean()
    spread = np.abs(values - centre).max()
    if not spread > 0 or not np.isfinite(spread):
        return None
    return (image - centre) / spread


def _mean_filled(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    return np.where(known, values, values[known].mean() if known.any() else 0.0)


def _hann(shape: tuple[int, ...]) -> np.ndarray:
    """A separable Hann window: phase correlation without the image borders' wrap-around edges."""
    window = np.ones(shape)
    for axis, n in enumerate(shape):
        profile = np.hanning(n) if n > 2 else np.ones(n)
        window *= profile.reshape([n if a == axis else 1 for a in range(len(shape))])
    return window
