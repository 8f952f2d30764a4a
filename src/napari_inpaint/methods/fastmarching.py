r"""Fast-marching fills: OpenCV's Telea and "Navier-Stokes" inpainting.

Both methods fill the hole from its border inwards, in the order in which a
front started on the hole's border reaches each pixel: the fast marching
method solves the eikonal equation :math:`|\nabla T| = 1` with :math:`T = 0`
on the band of known pixels around the hole, and a pixel is filled when the
front first reaches it, by a weighted average of the known and already
filled pixels within ``radius`` of it.  They are fast (one pass, cost
proportional to the hole area times ``radius`` squared) and suit thin
defects: scratches, hot pixels, small debris.  On wide holes they smear.
Both are the algorithms of OpenCV's ``cv2.inpaint``, whichever backend
computes them (see Backends).

Notes
-----
**Telea** (``INPAINT_TELEA``, after Telea [1]_) fills pixel :math:`p` from
the known pixels :math:`q` in the disk :math:`B_\varepsilon(p)` of radius
:math:`\varepsilon` = ``radius``:

.. math::

    I(p) = \frac{\sum_{q \in B_\varepsilon(p)} w(p, q)\, I(q)}{\sum_q w(p, q)},
    \qquad w = \mathrm{dir} \cdot \mathrm{dst} \cdot \mathrm{lev},

    \mathrm{dir} = \big|(p - q) \cdot \nabla T(p)\big|,\quad
    \mathrm{dst} = \frac{1}{\|p - q\|^3},\quad
    \mathrm{lev} = \frac{1}{1 + |T(p) - T(q)|},

where :math:`T` is negated outside the hole (the same march run outwards) so
that ``lev`` favours sources on the level line of the front through
:math:`p`, :math:`\nabla T` is a central difference (one-sided next to
unfilled pixels) and ``dir`` is :math:`10^{-6}` where it is at most 0.01
(sources square to the front).  Telea's paper adds to each :math:`I(q)` its
first-order extrapolation :math:`\nabla I(q) \cdot (p - q)`; OpenCV
normalises the sum of these terms to unit length, so that it adds at most
:math:`\sqrt 2` in the image's units, nothing at the scale the opencv
backend works at (below).  The fill is thus a weighted average: it stays
within the range of its sources and does not overshoot at edges or drift
across wide holes, as the extrapolation does.

**navier-stokes** is OpenCV's ``INPAINT_NS``.  Despite the name it is not the
Navier-Stokes PDE of Bertalmio, Bertozzi and Sapiro [2]_ but its central idea
in the fast-marching frame: pixels are filled in the same order as above, by
an average whose direction factor favours sources :math:`q` whose *isophote*
(the level line, normal to the image gradient) passes through :math:`p`:

.. math::

    I(p) = \frac{\sum_q w\, I(q)}{\sum_q w},\qquad
    w = \frac{|\cos\angle(p - q,\ g(q)^\perp)|}{1 + \|p - q\|^4},

where :math:`g(q)` is OpenCV's unsigned gradient: along each axis
:math:`|I(q^+) - I(q)| + |I(q) - I(q^-)|` between the neighbours that are
known or filled (twice the one difference next to an unfilled pixel), and
the cosine is :math:`10^{-6}` where it is zero.  It is a zeroth-order
average: the fill stays within the range of the sources.

**Edges** are OpenCV's too: beyond the image lie known pixels at
:math:`T = 10^6` that are never sources (a hole pixel on the image's edge
gets a large ``dir`` towards sources off its edge row), and the gradients
:math:`g` of sources on the image's first and last rows and columns are read
one pixel inwards.

**Backends.**  ``"opencv"`` (what ``"auto"`` picks when OpenCV 4.10 or newer
is importable) fills each channel with :func:`cv2.inpaint` in float32, after
mapping the channel's known range onto about :math:`\pm 2^{22}` by a power
of two (exact on integer data): OpenCV adds up to :math:`\sqrt 2` in
absolute terms to float data (Telea's normalised first-order term) and
compares gradients with an absolute threshold of 0.01, which would corrupt
data of small range; at this scale both fall below float32 resolution.
``"numba"`` is this package's float64 copy of OpenCV's code: same fill order
(arrival times in float32 as in OpenCV, ties in insertion order), weights
and edges.  On 8-bit images the two backends give the same Telea fill to
within one grey level (rounding); for navier-stokes the mean difference in
the holes is below 0.1 grey level, but a few pixels deep in wide holes may
differ by more: where the filled pixels are nearly flat their isophote
direction is set by rounding, in OpenCV's float32 as in float64 (OpenCV 4.10
and 5.1 differ there by as much).  OpenCV before 4.10 read the first row and
column shifted by one pixel, so ``"auto"`` uses the numba code then, and
images one pixel high or wide (which OpenCV reads outside of) are always
filled by the numba code.  The kernels are compiled on first use (5 to
10 s, then cached on disk: about 0.5 s in a new process).

References
----------
.. [1] A. Telea, "An image inpainting technique based on the fast marching
       method", J. Graphics Tools 9(1) (2004), 23-34,
       doi:10.1080/10867651.2004.10487596.
.. [2] M. Bertalmio, A. L. Bertozzi and G. Sapiro, "Navier-Stokes, fluid
       dynamics, and image and video inpainting", Proc. IEEE CVPR 2001,
       doi:10.1109/CVPR.2001.990497.
"""

import re
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint.registry import Param, register

# Pixels filled between two calls of ``check`` (a few ms of work).
_CHECK_EVERY = 4096
# OpenCV works in float32; each channel's known range is mapped onto about
# [-_CV_HALF_RANGE, _CV_HALF_RANGE], far above OpenCV's absolute constants.
_CV_HALF_RANGE = 2.0**22
# The first OpenCV whose fill the numba code reproduces (4.10 fixed the first row and column).
_OPENCV_SINCE = (4, 10)
_CROSS = ndi.generate_binary_structure(2, 1)


def _params(flag: str) -> tuple[Param, ...]:
    """The parameters of a method, whose backend help names OpenCV's ``flag`` for it."""
    return (
        Param("radius", int, 5, "neighbourhood radius (pixels) whose known pixels fill each pixel", 1, 50),
        Param(
            "backend",
            str,
            "auto",
            f"who computes the fill: cv2.inpaint ({flag}) or this package's numba copy of it; "
            "auto: OpenCV if 4.10 or newer is installed",
            choices=("auto", "opencv", "numba"),
        ),
    )


def _margin(params: dict) -> int:
    # Sources lie within ``radius``; their gradients need one more pixel.
    return params["radius"] + 1


@register(
    "telea",
    summary="Telea's fast-marching fill: one quick pass from the border inwards, for thin defects",
    family="classical",
    artifacts=("scratches", "hot-pixels", "debris"),
    ndims=(2,),
    params=_params("INPAINT_TELEA, Telea's method"),
    margin=_margin,
    local_fill=True,
    channel_independent=True,
)
def telea(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    radius: int = 5,
    backend: str = "auto",
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill holes by Telea's fast-marching method, as OpenCV's ``INPAINT_TELEA``.

    Parameters
    ----------
    %(image_mask)s
    radius : int
        Radius of the disk of known pixels that fills each pixel.
    backend : {'auto', 'opencv', 'numba'}
        Who computes the fill (the same either way): ``'opencv'``
        :func:`cv2.inpaint` (raises ImportError when OpenCV 4.10 or newer is
        missing), ``'numba'`` this package's copy of it, ``'auto'`` OpenCV
        when it can.
    %(check)s

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:32, :32]
    >>> image = np.sin(xx / 4.0) + 0.1 * yy  # range about 5
    >>> mask = np.zeros(image.shape, bool); mask[16, 4:28] = True  # a scratch
    >>> filled = inpaint(image, mask, "telea", backend="numba")
    >>> bool(np.abs(filled - image).max() < 0.2)
    True
    """
    return _fill(image, mask, radius, backend, check, telea=True)


@register(
    "navier-stokes",
    summary="OpenCV's 'Navier-Stokes' fill: fast marching that continues isophotes into the hole",
    family="classical",
    artifacts=("scratches", "hot-pixels", "debris"),
    ndims=(2,),
    params=_params("INPAINT_NS, isophote-weighted"),
    margin=_margin,
    local_fill=True,
    channel_independent=True,
)
def navier_stokes(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    radius: int = 5,
    backend: str = "auto",
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill holes by isophote-weighted fast marching (OpenCV's ``INPAINT_NS``).

    Parameters
    ----------
    %(image_mask)s
    radius : int
        Radius of the disk of known pixels that fills each pixel.
    backend : {'auto', 'opencv', 'numba'}
        Who computes the fill (the same either way, up to rounding in flat
        regions): ``'opencv'`` :func:`cv2.inpaint` (raises ImportError when
        OpenCV 4.10 or newer is missing), ``'numba'`` this package's copy of
        it, ``'auto'`` OpenCV when it can.
    %(check)s

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:32, :32]
    >>> image = np.sin(xx / 4.0) + 0.1 * yy  # range about 5
    >>> mask = np.zeros(image.shape, bool); mask[16, 4:28] = True  # a scratch
    >>> filled = inpaint(image, mask, "navier-stokes")
    >>> bool(np.abs(filled - image).max() < 0.1)
    True
    """
    return _fill(image, mask, radius, backend, check, telea=False)


def _fill(image, mask, radius: int, backend: str, check, telea: bool) -> np.ndarray:
    cv2 = _opencv(backend)
    if cv2 is not None and min(mask.shape) > 1:  # OpenCV reads outside images one pixel thin
        return _fill_opencv(cv2, image, mask, radius, check, telea)
    return _fill_numba(image, mask, radius, check, telea)


def _opencv(backend: str):
    """The cv2 module for the OpenCV backend, or None for the numba backend."""
    if backend == "numba":
        return None
    try:
        import cv2
    except ImportError:
        if backend == "opencv":
            raise ImportError(
                "backend='opencv' needs OpenCV: pip install opencv-python-headless "
                "(or use backend='numba')"
            ) from None
        return None
    if tuple(int(part) for part in re.findall(r"\d+", cv2.__version__)[:2]) < _OPENCV_SINCE:
        if backend == "opencv":
            raise ImportError(
                f"backend='opencv' needs OpenCV 4.10 or newer (found {cv2.__version__}, which fills the first "
                "row and column differently): pip install -U opencv-python-headless (or use backend='numba')"
            )
        return None
    return cv2


def _fill_opencv(cv2, image, mask, radius: int, check, telea: bool) -> np.ndarray:
    """Fill channel by channel with cv2.inpaint on float32 scaled to a large range."""
    flag = cv2.INPAINT_TELEA if telea else cv2.INPAINT_NS
    mask8 = mask.astype(np.uint8)
    known = ~mask
    out = image.copy()
    for c in range(image.shape[-1]):
        if check is not None:
            check()
        plane = np.where(mask, 0.0, image[..., c])
        low, high = plane[known].min(), plane[known].max()
        if low == high:  # constant: nothing to interpolate, and no range to scale
            out[mask, c] = low
            continue
        centre = low / 2 + high / 2
        # A power of two, exact on integer data: OpenCV's float32 then sees the same differences as float64.
        scale = np.ldexp(1.0, np.frexp(_CV_HALF_RANGE / (high / 2 - low / 2))[1] - 1)
        work = ((plane - centre) * scale).astype(np.float32)
        out[mask, c] = cv2.inpaint(work, mask8, radius, flag)[mask] / scale + centre
    return out


def _fill_numba(image, mask, radius: int, check, telea: bool) -> np.ndarray:
    """Fill all channels in one march with the compiled kernels."""
    from napari_inpaint.methods import _fastmarching_kernels as kernels

    band = ndi.binary_dilation(mask, _CROSS) & ~mask
    dist = np.where(band, 0.0, kernels.FAR).astype(np.float32)
    if telea:
        # Level-set distance outside the hole, within reach of the sources.
        outside = ndi.maximum_filter(mask, size=2 * radius + 1, mode="constant") & ~mask & ~band
        flag = np.where(outside, kernels.INSIDE, kernels.KNOWN).astype(np.uint8)
        heap = _heap(band, band.sum() + outside.sum())
        kernels.march_outside(flag, dist, *heap)
        reached = (outside | band) & (flag == kernels.KNOWN)
        dist[reached] *= -1.0

    flag = np.full(mask.shape, kernels.KNOWN, np.uint8)
    flag[band] = kernels.BAND
    flag[mask] = kernels.INSIDE
    values = np.where(mask, 0.0, np.moveaxis(image, -1, 0))
    grad = np.empty((2, 0, 0, 0))  # Telea reads no image derivatives
    if not telea:  # the isophote weighting does: the march keeps them current
        grad = np.empty((2, *values.shape))
        kernels.init_gradients(flag, values, grad)
    heap = _heap(band, band.sum() + mask.sum())
    while kernels.march_fill(flag, dist, values, grad, *heap, radius, telea, _CHECK_EVERY):
        if check is not None:
            check()
    return np.moveaxis(values, 0, -1)


def _heap(band: np.ndarray, capacity: int) -> tuple[np.ndarray, ...]:
    """Heap arrays (keys, sequence numbers, pixels, state) holding the band at T = 0, row-major.

    Equal keys with increasing sequence numbers already satisfy the heap order.
    """
    start = np.flatnonzero(band)
    keys = np.zeros(capacity, np.float32)
    seqs = np.zeros(capacity, np.int64)
    seqs[: start.size] = np.arange(start.size)
    pixels = np.zeros(capacity, np.int64)
    pixels[: start.size] = start
    state = np.array([start.size, start.size], np.int64)
    return keys, seqs, pixels, state
