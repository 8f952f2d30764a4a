r"""Find bad pixels in an image: the library side of the "Mask from image" widget.

:func:`mask_from_image` combines the detectors of bad pixels (thresholds,
saturation, non-finite values, outliers, persistent hot pixels of a stack);
:func:`cosmic_rays` finds cosmic-ray hits with L.A.Cosmic or deepCR's
networks, listed with their parameters in :data:`COSMIC_RAY_DETECTORS`.

Every function takes an image (2D plane, 3D volume or an nD stack of planes)
and returns a boolean mask, ``True`` where a pixel is bad.  Neighbourhood
operations (median filters, dilation, connected components) act on the
trailing ``spatial_ndim`` axes only, so a stack is processed plane by plane
(or volume by volume) without a Python loop.  :class:`Flagged` counts what
a detection flagged; above :data:`SANITY_SHARE` of the pixels the front ends
warn, and the command line's ``fill`` refuses to fill them unless told.

Notes
-----
Outliers are detected with a robust z-score.  With :math:`m` the median of
the pixel's neighbours (a window of ``size`` pixels per spatial axis, the
pixel itself left out) and the residual :math:`r = x - m`, a pixel is an
outlier when

.. math:: |r - \operatorname{med}(r)| > k \cdot 1.4826\,\operatorname{MAD}(r),

where the median and the median absolute deviation (MAD) are taken over the
plane.  For Gaussian data :math:`1.4826\,\mathrm{MAD}` is the standard
deviation, so on pure Gaussian noise ``k = 4`` flags about 7 pixels in
100,000 and ``k = 5`` none in 1.3 million (measured).  The local median
removes smooth structure and background, so cells wider than a few pixels
are not flagged, while a single hot pixel cannot move the median of its
neighbours.  Leaving the pixel out of its window matters on steep edges,
where a median that includes it often *is* it: those zero residuals would
shrink the MAD and flag noise elsewhere.

References
----------
.. [1] P. J. Rousseeuw and C. Croux, "Alternatives to the median absolute
       deviation", J. Am. Stat. Assoc. 88(424) (1993), 1273-1283.

Examples
--------
>>> import numpy as np
>>> from napari_inpaint.detect import mask_from_image
>>> image = np.full((16, 16), 100, np.uint16)
>>> image[4, 5] = 65535
>>> mask = mask_from_image(image, saturated=True, dilate=1)
>>> int(mask.sum())
5
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint import masks
from napari_inpaint.models import DEEPCR_MASKS
from napari_inpaint.models.devices import DEVICE
from napari_inpaint.registry import Param

# 1.4826 * MAD and 1.2533 * mean absolute deviation estimate the standard deviation of Gaussian data.
_MAD_TO_SIGMA = 1.4826
_MEAN_TO_SIGMA = 1.2533

#: Share of an image's pixels above which a detection is suspect: the front ends warn, and
#: ``napari-inpaint fill`` refuses to fill them unless ``--max-flagged`` allows more.  Measured on the
#: simulated frames of benchmarks/bench_cosmic.py: L.A.Cosmic flags 0.25-0.28 % (0.75-0.84 % grown by a
#: pixel), the hot-pixel detector 0.26-1.5 % (3.8 % grown, on a sky of sharp stars), and 0.11 % of a dark
#: frame with 0.1 % hot pixels; on natural photos the hot-pixel detector flags their detail: 19.5 % of
#: camera(), 13.5 % of astronaut(), 5.9 % of brick() (but 2.3 % of moon()).
SANITY_SHARE = 0.05


def percent(share: float) -> str:
    """A share as a percentage of three significant digits.

    Examples
    --------
    >>> percent(0.19467), percent(0.05)
    ('19.5%', '5%')
    """
    return f"{100 * share:.3g}%"


@dataclass(frozen=True)
class Flagged:
    """How many of an image's pixels a detection flagged: what every front end reports.

    Examples
    --------
    >>> mask = np.zeros((10, 10), bool)
    >>> mask[0, :8] = True
    >>> flagged = Flagged.of(mask)
    >>> str(flagged), flagged.excessive()
    ('8 pixels flagged (8% of 100)', True)
    """

    count: int
    total: int

    @classmethod
    def of(cls, mask: np.ndarray) -> "Flagged":
        """Count the True pixels of ``mask``."""
        mask = np.asarray(mask, dtype=bool)
        return cls(int(np.count_nonzero(mask)), mask.size)

    @property
    def share(self) -> float:
        """The flagged share of the pixels, in [0, 1]."""
        return self.count / self.total if self.total else 0.0

    def excessive(self, limit: float = SANITY_SHARE) -> bool:
        """Whether more than ``limit`` (a share) of the pixels were flagged."""
        return self.share > limit

    def warning(self, limit: float = SANITY_SHARE) -> str:
        """Why so many flagged pixels are suspect; each front end adds what to do in its own terms."""
        return (
            f"{self}, more than {percent(limit)} of the image: bad pixels and cosmic rays cover far fewer, so "
            "the detectors are likely flagging the image's own detail or noise (a natural photo, data not in "
            "counts, a wrong gain or read noise)"
        )

    def __str__(self) -> str:
        pixels = "pixel" if self.count == 1 else "pixels"
        return f"{self.count:,} {pixels} flagged ({percent(self.share)} of {self.total:,})"


def _check_spatial(image: np.ndarray, spatial_ndim: int) -> None:
    if spatial_ndim not in (2, 3):
        raise ValueError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}")
    if image.ndim < spatial_ndim:
        raise ValueError(f"an image of shape {image.shape} has fewer than spatial_ndim={spatial_ndim} axes")


def _check_level(name: str, value: float | None) -> None:
    """Refuse a threshold that compares false with every pixel (NaN) or flags by infinity."""
    if value is not None and not (isinstance(value, Real) and np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number (or None to leave it out), got {value!r}")


def _is_integer(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def threshold(image: np.ndarray, *, above: float | None = None, below: float | None = None) -> np.ndarray:
    """Pixels strictly above ``above`` or strictly below ``below``.

    Parameters
    ----------
    image : ndarray
        Any numeric image.
    above, below : float, optional
        Thresholds; None leaves that side out.

    Returns
    -------
    ndarray of bool
        Mask of the image's shape.

    Examples
    --------
    >>> threshold(np.array([1, 5, 9]), above=8, below=2).tolist()
    [True, False, True]
    """
    _check_level("above", above)
    _check_level("below", below)
    image = np.asarray(image)
    mask = np.zeros(image.shape, bool)
    if above is not None:
        mask |= image > above
    if below is not None:
        mask |= image < below
    return mask


def saturated_pixels(image: np.ndarray, value: float | None = None) -> np.ndarray:
    """Pixels at or above the saturation level.

    Parameters
    ----------
    image : ndarray
        Any numeric image.
    value : float, optional
        Saturation level.  By default the maximum of an integer dtype (255
        for uint8, 65535 for uint16); for a floating-point image, whose dtype
        has no meaningful maximum, the largest finite value in the image.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> saturated_pixels(np.array([0, 254, 255], np.uint8)).tolist()
    [False, False, True]
    """
    _check_level("value", value)
    image = np.asarray(image)
    if value is None:
        if np.issubdtype(image.dtype, np.integer):
            value = np.iinfo(image.dtype).max
        else:
            finite = image[np.isfinite(image)]
            if finite.size == 0:
                return np.zeros(image.shape, bool)
            value = finite.max()
    return image >= value


def nonfinite_pixels(image: np.ndarray) -> np.ndarray:
    """Pixels that are NaN or infinite (always False for integer images)."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.inexact):
        return np.zeros(image.shape, bool)
    return ~np.isfinite(image)


def outlier_pixels(
    image: np.ndarray, k: float = 5.0, *, size: int = 3, spatial_ndim: int = 2, persistent: bool = False,
    fraction: float = 0.9,
) -> np.ndarray:
    """Hot, dead or stuck pixels: far from the median of their neighbourhood.

    Parameters
    ----------
    image : ndarray
        Image or stack; NaN and infinite pixels are never flagged here (see
        :func:`nonfinite_pixels`) and do not disturb the statistics.
    k : float
        Threshold in robust standard deviations of the residual.
    size : int
        Odd width of the median window, per spatial axis; 3 catches single
        pixels, 5 catches clusters of up to about 2x2.
    spatial_ndim : {2, 3}
        Axes over which the neighbourhood and the statistics are taken.
    persistent : bool
        For a stack of two planes or more (a time series, or repeated
        frames): flag a position in every plane when it is an outlier in at
        least ``fraction`` of the planes in which it is finite, and nothing
        else.  Defects of the detector (hot, warm and
        stuck pixels) sit at the same position in every frame; cosmic rays,
        noise and moving features do not.
    fraction : float
        Share of the planes, in (0, 1], in which a persistent pixel must be
        an outlier.

    Returns
    -------
    ndarray of bool

    Notes
    -----
    See the module notes for the robust z-score.  Persistence is the
    stronger criterion: with a per-plane chance ``p`` that noise passes the
    threshold, a position passes it in 90 % of ``N`` planes with a chance of
    about :math:`\binom{N}{0.9N} p^{0.9N}`, so ``k = 3`` (``p`` = 0.27 %)
    is safe from 10 planes on, and finds hot pixels too faint to tell from
    the noise in one frame.  Quantised or posterised
    planes can have a MAD of zero (over half of the residuals tie); the
    scale is then 1.2533 times the mean absolute deviation, and for integer
    images never less than one grey level.  On almost noise-free images the
    finest structure differs from its neighbours by more than the noise, and
    may be flagged: raise ``k`` there, or use the saturation or threshold
    detectors.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(100, 5, (32, 32))
    >>> image[10, 20] = 200
    >>> np.argwhere(outlier_pixels(image)).tolist()
    [[10, 20]]
    >>> frames = rng.normal(100, 5, (12, 32, 32))
    >>> frames[:, 3, 4] += 25  # a warm pixel, 5 standard deviations: in every frame
    >>> frames[2, 20, 20] += 500  # a cosmic ray: in one frame
    >>> np.argwhere(outlier_pixels(frames, 3, persistent=True)[7]).tolist()
    [[3, 4]]
    """
    integer = np.issubdtype(np.asarray(image).dtype, np.integer)
    image = np.asarray(image, dtype=np.float64)
    _check_spatial(image, spatial_ndim)
    if not (isinstance(k, Real) and np.isfinite(k) and k > 0):
        raise ValueError(f"k must be a positive finite number of standard deviations, got {k!r}")
    if not _is_integer(size) or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 3, got {size!r}")
    planes = int(np.prod(image.shape[: image.ndim - spatial_ndim]))
    if persistent and planes < 2:
        what = (f"a single {spatial_ndim}D plane" if image.ndim == spatial_ndim
                else f"a stack of {planes} plane{'' if planes == 1 else 's'}")
        raise ValueError(
            f"persistent=True finds pixels that stay bad across the planes of a stack, which takes several "
            f"planes; this image of shape {image.shape} is {what}: give a stack, or persistent=False"
        )
    if not (isinstance(fraction, Real) and 0 < fraction <= 1):
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    finite = np.isfinite(image)
    # Non-finite pixels would poison the median filter; the plane median is a neutral stand-in.
    work = np.where(finite, image, np.median(image[finite]) if finite.any() else 0.0)
    # The pixel itself is left out of its window: on steep edges a 3x3 median would
    # otherwise often pick the pixel itself, and the zero residuals would shrink the MAD.
    ring = np.ones((size,) * spatial_ndim, bool)
    ring[(size // 2,) * spatial_ndim] = False
    footprint = ring.reshape((1,) * (image.ndim - spatial_ndim) + ring.shape)
    residual = work - ndi.median_filter(work, footprint=footprint, mode="reflect")
    axes = tuple(range(image.ndim - spatial_ndim, image.ndim))
    centre = np.median(residual, axis=axes, keepdims=True)
    deviation = np.abs(residual - centre)
    sigma = _MAD_TO_SIGMA * np.median(deviation, axis=axes, keepdims=True)
    # Quantised data can tie over half of the residuals (MAD = 0); the mean deviation still measures spread.
    sigma = np.where(sigma > 0, sigma, _MEAN_TO_SIGMA * np.mean(deviation, axis=axes, keepdims=True))
    if integer:
        sigma = np.maximum(sigma, 1.0)  # a difference of one grey level is quantisation, not evidence
    flagged = (deviation > k * sigma) & finite
    if not persistent:
        return flagged
    stack_axes = tuple(range(image.ndim - spatial_ndim))
    # Out of the planes in which the pixel has a value: a NaN frame neither confirms nor refutes it.
    valued = finite.sum(axis=stack_axes)
    steady = (flagged.sum(axis=stack_axes) >= np.ceil(fraction * valued - 1e-9)) & (valued > 0)
    return np.broadcast_to(steady, image.shape) & finite


def dilate_mask(mask: np.ndarray, pixels: float, *, spatial_ndim: int = 2) -> np.ndarray:
    """Grow a mask by a Euclidean radius of ``pixels`` within each plane or volume.

    Bad pixels often bleed into their neighbours (blooming around saturated
    spots, the halo of debris); growing the mask fills those too.  This is
    :func:`napari_inpaint.masks.dilate` applied to each plane (or volume) of
    a stack, so that the mask does not leak into neighbouring planes.

    Examples
    --------
    >>> m = np.zeros((2, 5, 5), bool); m[0, 2, 2] = True
    >>> dilate_mask(m, 1).sum(axis=(1, 2)).tolist()
    [5, 0]
    """
    mask = np.asarray(mask, dtype=bool)
    _check_spatial(mask, spatial_ndim)
    # NaN would empty the mask (no distance is <= NaN), infinity fill the plane.
    if not (isinstance(pixels, Real) and np.isfinite(pixels) and pixels >= 0):
        raise ValueError(f"pixels must be a non-negative finite radius, got {pixels!r}")
    out = mask.copy()
    for index in np.ndindex(mask.shape[: mask.ndim - spatial_ndim]):
        if mask[index].any():
            out[index] = masks.dilate(mask[index], pixels)
    return out


def remove_small(mask: np.ndarray, min_size: int, *, spatial_ndim: int = 2) -> np.ndarray:
    """Drop connected components (8- or 26-connected) with fewer than ``min_size`` pixels.

    Components are found per plane (or per volume for ``spatial_ndim=3``).

    Examples
    --------
    >>> m = np.zeros((6, 6), bool); m[0, 0] = True; m[3:5, 3:5] = True
    >>> int(remove_small(m, 2).sum())
    4
    """
    mask = np.asarray(mask, dtype=bool)
    _check_spatial(mask, spatial_ndim)
    if not (isinstance(min_size, Real) and np.isfinite(min_size)):  # a NaN would drop every component
        raise ValueError(f"min_size must be a finite number of pixels, got {min_size!r}")
    if min_size <= 1 or not mask.any():
        return mask.copy()
    # A structure with no neighbours along the stack axes keeps components within a plane.
    connectivity = np.zeros((3,) * mask.ndim, bool)
    connectivity[(1,) * (mask.ndim - spatial_ndim)] = True
    labels, _ = ndi.label(mask, structure=connectivity)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def mask_from_image(
    image: np.ndarray,
    *,
    above: float | None = None,
    below: float | None = None,
    saturated: bool = False,
    saturation_value: float | None = None,
    outliers: bool = False,
    k: float = 5.0,
    size: int = 3,
    persistent: bool = False,
    nonfinite: bool = True,
    min_size: int = 0,
    dilate: int = 0,
    spatial_ndim: int = 2,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Combine the detectors into one mask of bad pixels.

    The selected criteria are OR-ed, then components smaller than
    ``min_size`` are dropped, then the mask is grown by ``dilate`` pixels.

    Parameters
    ----------
    image : ndarray
        Image, volume or stack (integer or floating point).
    above, below : float, optional
        Flag pixels above / below these values (:func:`threshold`).
    saturated : bool
        Flag saturated pixels (:func:`saturated_pixels`), at ``saturation_value``
        or by default the dtype's maximum.
    outliers : bool
        Flag hot/dead pixels (:func:`outlier_pixels`) with threshold ``k`` and
        median window ``size``.
    persistent : bool
        Flag as outliers only the positions that are outliers in at least 90 %
        of the planes of a stack, in every plane (``outlier_pixels(...,
        persistent=True)``).
    nonfinite : bool
        Flag NaN and infinite pixels.
    min_size : int
        Drop components smaller than this (0 or 1 keeps all).
    dilate : int
        Grow the mask by this many pixels.
    spatial_ndim : {2, 3}
        Work plane by plane (2) or volume by volume (3).
    channel_axis : int, optional
        Axis of channels (e.g. RGB); a pixel is bad when any channel is.

    Returns
    -------
    ndarray of bool
        The image's shape without its channel axis.

    Examples
    --------
    >>> image = np.zeros((2, 8, 8), np.float32)
    >>> image[1, 3, 3] = np.nan
    >>> mask_from_image(image).sum(axis=(1, 2)).tolist()
    [0, 1]
    """
    image = np.asarray(image)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -1)
    detectors = [threshold(image, above=above, below=below)]
    if saturated:
        detectors.append(saturated_pixels(image, saturation_value))
    if nonfinite:
        detectors.append(nonfinite_pixels(image))
    mask = np.logical_or.reduce(detectors)
    if channel_axis is not None:
        mask = mask.any(axis=-1)
    if outliers:
        # Outliers are detected per channel, each against its own statistics.
        channels = image[..., np.newaxis] if channel_axis is None else image
        for c in range(channels.shape[-1]):
            mask |= outlier_pixels(
                channels[..., c], k, size=size, spatial_ndim=spatial_ndim, persistent=persistent
            )
    mask = remove_small(mask, min_size, spatial_ndim=spatial_ndim)
    return dilate_mask(mask, dilate, spatial_ndim=spatial_ndim)


# --------------------------------------------------------------------------- cosmic rays

# astroscrappy 1.3 copies a border of 4 pixels from its input around its 9x9 median filter without checking
# the size: planes thinner than 4 pixels are written out of bounds (valgrind: invalid writes at 3 x 64 and
# 64 x 3, none at 4 x 4, 4 x 64 or 64 x 4), which aborts or corrupts Python, and 1 x 256 hangs.
LACOSMIC_MIN_SIDE = 4
# L.A.Cosmic's threshold is in units of the noise its model predicts; with half the noise the data have, its
# 4.5-sigma limit becomes 2.25 sigma of the real noise and it flags the noise itself (measured: 3 % false
# positives on a simulated sky at a ratio of 2.2, 59 % at 4.3).
_LACOSMIC_NOISE_EXCESS = 2.0


@dataclass(frozen=True)
class Detector:
    """One way :func:`cosmic_rays` finds cosmic rays: what front ends list and build their controls from.

    Attributes
    ----------
    name : str
        The ``method`` of :func:`cosmic_rays`.
    summary : str
        One line for listings.
    params : tuple of Param
        Its parameters (``cosmic_rays(image, method=name, **params)``).
    model_weights : dict
        For a detector that downloads weights: the registry name
        (:mod:`napari_inpaint.models`) of the file each choice of its
        ``model`` parameter downloads; see :meth:`weights_for`.
    install : str
        What to install when :meth:`available` is False.
    module : str
        The module it needs (imported on first use).
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    model_weights: Mapping[str, str] = field(default_factory=dict)
    install: str = ""
    module: str = "torch"

    @property
    def weights(self) -> tuple[str, ...]:
        """Registry names of every file it may download."""
        return tuple(self.model_weights.values())

    def weights_for(self, params: dict) -> tuple[str, ...]:
        """Registry names of the files a call with ``params`` downloads (to fetch them first, with progress).

        Examples
        --------
        >>> COSMIC_RAY_DETECTORS["deepcr"].weights_for({"model": "decam"})
        ('deepcr-mask-decam',)
        >>> COSMIC_RAY_DETECTORS["lacosmic"].weights_for({})
        ()
        """
        if not self.model_weights:
            return ()
        return (self.model_weights[self.resolve(params)["model"]],)

    def available(self) -> bool:
        """Whether its module is installed (without importing it)."""
        import importlib.util

        return importlib.util.find_spec(self.module) is not None

    def resolve(self, given: dict) -> dict:
        """Validate ``given`` keyword values and complete them with the defaults."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise TypeError(
                f"cosmic-ray detector {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {', '.join(known)}"
            )
        return {name: p.validate(given[name], self.name) if name in given else p.default
                for name, p in known.items()}

    def describe(self) -> dict:
        """Plain-data description (for JSON, the command line and widget generation)."""
        return {
            "name": self.name, "summary": self.summary, "params": [p.describe() for p in self.params],
            "weights": list(self.weights), "model_weights": dict(self.model_weights), "install": self.install,
            "available": self.available(),
        }


#: The cosmic-ray detectors, by the ``method`` name of :func:`cosmic_rays`.
COSMIC_RAY_DETECTORS = {
    "lacosmic": Detector(
        "lacosmic",
        "L.A.Cosmic (astroscrappy): sharp Laplacian edges above the noise of a CCD's counts",
        (
            Param("gain", float, 1.0, "gain of the data, electrons per count", 1e-6, 1e6),
            Param("read_noise", float, 6.5, "read noise, electrons", 0.0, 1e6),
            Param("saturation", float, 65535.0, "counts at which pixels saturate (stars there are protected)",
                  -1e300, 1e300),
            Param("sigma_clip", float, 4.5, "detection limit in noise standard deviations; lower flags more",
                  0.1, 100.0),
            Param("object_limit", float, 5.0,
                  "minimum contrast against fine structure; raise it if star cores are flagged", 0.1, 100.0),
            Param("iterations", int, 4, "passes of detection and cleaning", 1, 32),
        ),
        install='pip install "napari-inpaint[astro]"',
        module="astroscrappy",
    ),
    "deepcr": Detector(
        "deepcr",
        "deepCR's trained networks (Hubble ACS/WFC and WFC3/UVIS, DECam): probability of a hit, thresholded",
        (
            Param("model", str, "ACS-WFC", "the instrument the network was trained on: ACS-WFC (data in "
                  "electrons), WFC3-UVIS (threshold 0.1-0.2), decam (ADU)", choices=tuple(DEEPCR_MASKS)),
            Param("threshold", float, 0.5, "probability above which a pixel is flagged", 0.0, 1.0),
            DEVICE,
        ),
        model_weights=DEEPCR_MASKS,
    ),
}


def cosmic_rays(
    image: np.ndarray,
    *,
    method: str = "lacosmic",
    check: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **params,
) -> np.ndarray:
    """Pixels hit by cosmic rays (and other sharp, unresolved hits) in a 2D image or a stack of them.

    Parameters
    ----------
    image : ndarray
        A 2D image ``(H, W)`` or a stack ``(..., H, W)``, processed plane by
        plane; in the detector's units (counts for ``lacosmic``; see
        ``model`` for ``deepcr``).  Non-finite pixels are never flagged (see
        :func:`nonfinite_pixels`).
    method : {'lacosmic', 'deepcr'}
        A key of :data:`COSMIC_RAY_DETECTORS`.  ``lacosmic`` is L.A.Cosmic
        [2]_ as implemented by astroscrappy (``pip install
        "napari-inpaint[astro]"``); ``deepcr`` runs deepCR's mask networks
        [3]_, downloaded on first use.
    check : callable, optional
        Called between planes (and tiles); raises to cancel.
    progress : callable, optional
        ``progress(done, total)`` after each plane.
    **params
        The method's parameters (``COSMIC_RAY_DETECTORS[method].params``).
        ``lacosmic``: ``gain`` (electrons per count, 1), ``read_noise``
        (electrons, 6.5), ``saturation`` (counts, 65535: saturated stars
        are protected), ``sigma_clip`` (4.5), ``object_limit`` (5) and
        ``iterations`` (4), astroscrappy's defaults.  ``deepcr``: ``model``
        (``ACS-WFC`` for data in electrons, ``WFC3-UVIS``, ``decam`` for ADU),
        ``threshold`` (0.5; deepCR advises 0.1-0.2 for ``WFC3-UVIS``) and
        ``device``.

    Returns
    -------
    ndarray of bool
        The image's shape.

    Raises
    ------
    ImportError
        For ``lacosmic`` without astroscrappy (the message says what to install).
    ValueError, TypeError
        For an unknown method or parameter, or a bad value.  ``lacosmic``
        also refuses, before any plane is searched, planes thinner than
        :data:`LACOSMIC_MIN_SIDE` pixels (they crash astroscrappy) and planes
        whose noise, measured between neighbouring pixels, is more than twice
        what its noise model predicts at their median level: data whose bias
        or sky level was subtracted (a large negative offset), or a wrong
        gain or read noise, on which it would flag the noise itself.

    References
    ----------
    .. [2] P. G. van Dokkum, "Cosmic-ray rejection by Laplacian edge
           detection", PASP 113 (2001) 1420; C. McCully et al.,
           astroscrappy, doi:10.5281/zenodo.1482019.
    .. [3] K. Zhang and J. S. Bloom, "deepCR: cosmic ray rejection with deep
           learning", ApJ 889 (2020) 24.

    Examples
    --------
    >>> sky = np.random.default_rng(0).poisson(100.0, (64, 64)).astype(np.float32)
    >>> sky[20, 10:16] += 2000  # a short track
    >>> hits = cosmic_rays(sky, method="lacosmic", gain=1.0, read_noise=5.0)
    >>> np.argwhere(hits).tolist()
    [[20, 10], [20, 11], [20, 12], [20, 13], [20, 14], [20, 15]]
    """
    if method not in COSMIC_RAY_DETECTORS:
        raise ValueError(f"unknown cosmic-ray detector {method!r}; known: {', '.join(COSMIC_RAY_DETECTORS)}")
    options = COSMIC_RAY_DETECTORS[method].resolve(params)
    image = np.asarray(image)
    _check_spatial(image, 2)
    if np.issubdtype(image.dtype, np.complexfloating) or image.dtype == bool:
        raise TypeError(f"cosmic_rays takes a real-valued image of counts; got dtype {image.dtype}")
    planes = list(np.ndindex(image.shape[:-2]))
    if method == "lacosmic":
        _check_lacosmic(image, planes, options["gain"], options["read_noise"])
    detect_plane = _lacosmic_plane if method == "lacosmic" else _deepcr_plane
    mask = np.zeros(image.shape, bool)
    for done, index in enumerate(planes, start=1):
        if check is not None:
            check()
        plane = np.asarray(image[index], dtype=np.float64)
        finite = np.isfinite(plane)
        if finite.any():
            mask[index] = detect_plane(plane, finite, check, **options) & finite
        if progress is not None:
            progress(done, len(planes))
    return mask


def _check_lacosmic(image: np.ndarray, planes: list[tuple], gain: float, read_noise: float) -> None:
    """Refuse, before any plane is searched, the planes L.A.Cosmic cannot take: too thin, or not in counts."""
    height, width = image.shape[-2:]
    if min(height, width) < LACOSMIC_MIN_SIDE:
        raise ValueError(
            f"L.A.Cosmic (astroscrappy) needs planes of at least {LACOSMIC_MIN_SIDE} x {LACOSMIC_MIN_SIDE} "
            f"pixels: thinner ones crash or hang it; the planes of this image of shape {image.shape} are "
            f"{height} x {width}. Use the deepcr detector, or the hot-pixel detector, on such images"
        )
    # Every row of a large plane is not needed to measure its level and noise: a million pixels are.
    step = max(1, height * width // 1_000_000)
    for index in planes:
        rows = np.asarray(image[index][::step], dtype=np.float64)
        finite = np.isfinite(rows)
        if not finite.any():
            continue
        level = float(np.median(rows[finite]))
        expected = np.sqrt(max(gain * level + read_noise**2, 0.0))  # electrons, as astroscrappy's noise model
        measured = gain * _row_noise(rows, finite)
        if measured > _LACOSMIC_NOISE_EXCESS * expected:
            where = f"plane {', '.join(map(str, index))} of the stack" if index else "the image"
            matching = (measured**2 - read_noise**2) / gain  # the level at which the model predicts that noise
            raise ValueError(
                f"L.A.Cosmic's noise model does not fit {where}: at its median of {level:.4g} counts it expects "
                f"{expected:.3g} electrons of noise (the Poisson noise of gain x counts, and the read noise), but "
                f"the noise between neighbouring pixels is {measured:.3g}, so it would flag the noise itself. It needs "
                "counts with the bias and sky levels in place, and the detector's gain and read noise: data "
                "bias- or sky-subtracted, shifted or rescaled lack them. Add the level back (about "
                f"{matching - level:.0f} counts would match this noise with gain {gain:g} and read noise "
                f"{read_noise:g}), give the gain and read noise of your detector, or use the deepcr detector"
            )


def _row_noise(rows: np.ndarray, finite: np.ndarray) -> float:
    """Robust standard deviation of the noise along rows, from the differences of neighbouring pixels.

    The difference of two neighbours with independent noise has sqrt(2) times its standard deviation; the
    median absolute deviation ignores the edges of sources and the hits themselves.
    """
    differences = (rows[:, 1:] - rows[:, :-1])[finite[:, 1:] & finite[:, :-1]]
    if differences.size == 0:
        return 0.0
    spread = np.median(np.abs(differences - np.median(differences)))
    return _MAD_TO_SIGMA * float(spread) / np.sqrt(2)


def _lacosmic_plane(
    plane: np.ndarray, finite: np.ndarray, check, *, gain: float, read_noise: float, saturation: float,
    sigma_clip: float, object_limit: float, iterations: int,
) -> np.ndarray:
    try:
        import astroscrappy
    except ImportError:
        raise ImportError(
            'cosmic_rays(method="lacosmic") needs astroscrappy: pip install "napari-inpaint[astro]" '
            '(or pip install astroscrappy); method="deepcr" needs nothing more'
        ) from None
    values = np.where(finite, plane, np.median(plane[finite])).astype(np.float32)
    # astroscrappy works in electrons: its saturation level is in electrons too.
    hits, _ = astroscrappy.detect_cosmics(
        values, inmask=~finite, sigclip=sigma_clip, objlim=object_limit, gain=gain, readnoise=read_noise,
        satlevel=saturation * gain, niter=iterations,
    )
    return np.asarray(hits, dtype=bool)


def _deepcr_plane(plane: np.ndarray, finite: np.ndarray, check, *, model: str, threshold: float, device: str):
    from napari_inpaint.methods.deepcr import cosmic_ray_probability

    probability = cosmic_ray_probability(np.where(finite, plane, np.nan), model, device=device, check=check)
    return probability > threshold
