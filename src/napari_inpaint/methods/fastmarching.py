r"""Fast-marching fills: Telea's method and OpenCV's "Navier-Stokes" variant.

Both methods fill the hole from its border inwards, in the order in which a
front started on the hole's border reaches each pixel: the fast marching
method solves the eikonal equation :math:`|\nabla T| = 1` with :math:`T = 0`
on the band of known pixels around the hole, and a pixel is filled when the
front first reaches it, from the known and already filled pixels within
``radius`` of it.  They are fast (one pass, cost proportional to the hole
area times ``radius`` squared) and suit thin defects: scratches, hot pixels,
small debris.  On wide holes they smear.

Notes
-----
**Telea** [1]_ fills pixel :math:`p` from the known pixels :math:`q` in the
disk :math:`B_\varepsilon(p)` of radius :math:`\varepsilon` = ``radius`` by a
weighted first-order extrapolation

.. math::

    I(p) = \frac{\sum_{q \in B_\varepsilon(p)} w(p, q)\,
           \big[I(q) + \nabla I(q) \cdot (p - q)\big]}{\sum_q w(p, q)},
    \qquad w = \mathrm{dir} \cdot \mathrm{dst} \cdot \mathrm{lev},

    \mathrm{dir} = \Big|\frac{p - q}{\|p - q\|} \cdot \nabla T(p)\Big|,\quad
    \mathrm{dst} = \frac{1}{\|p - q\|^2},\quad
    \mathrm{lev} = \frac{1}{1 + |T(p) - T(q)|},

where :math:`T` is negated outside the hole (the same march run outwards) so
that ``lev`` favours sources on the level line of the front through
:math:`p`; :math:`\nabla T` is a central difference.  :math:`\nabla I(q)` is
limited: along each axis the minmod of the two one-sided differences (zero at
an extremum or a step, the smaller one otherwise), one-sided next to
unfilled pixels.  On smooth data this is the paper's first-order term, and a
linear ramp is reproduced exactly away from the image border; unlike central
differences it does not overshoot at edges (stripes of 0 and 100 across a
scratch: central differences fill values from -63 to 159, minmod from 0 to
108).

**navier-stokes** is OpenCV's ``INPAINT_NS``.  Despite the name it is not the
Navier-Stokes PDE of Bertalmio, Bertozzi and Sapiro [2]_ but its central idea
in the fast-marching frame: pixels are filled in the same order as above, by
an average whose direction factor favours sources :math:`q` whose *isophote*
(the level line, normal to :math:`\nabla I(q)`) passes through :math:`p`:

.. math::

    I(p) = \frac{\sum_q w\, I(q)}{\sum_q w},\qquad
    w = \frac{\max\big(|\cos\angle(p - q,\ \nabla I(q)^\perp)|,\ 10^{-6}\big)}
             {1 + \|p - q\|^4},

with central differences for :math:`\nabla I` and the floor :math:`10^{-6}`
where the gradient vanishes, as in OpenCV.  It is a zeroth-order average:
the fill stays within the range of the sources.

**Backends.**  ``"opencv"`` (what ``"auto"`` picks when OpenCV is importable)
fills each channel with :func:`cv2.inpaint` in float32, after mapping the
channel's known range onto :math:`\pm 2^{22}`: OpenCV adds terms of absolute
size up to :math:`\sqrt 2` to float data (its Telea gradient term is
normalised to unit length) and compares image gradients with an absolute
threshold of 0.01, which would corrupt data of small range; at this scale
both fall below float32 resolution (~:math:`10^{-7}` of the range).  Holes
touching the border get a ring of unknown pixels around the image, because
OpenCV reads its outermost rows and columns shifted by one pixel.  Because of
that normalisation OpenCV's Telea has, in effect, no first-order term: it is
the weighted *average* of the sources, smoother on noisy data but biased
wherever the sources lie on one side (hole edges, the border).  ``"numba"``
is this package's float64 implementation of the formulas above (the paper's
first-order term for Telea; signed rather than OpenCV's absolute differences
for the isophote).  Its navier-stokes fill agrees with OpenCV's to a few
percent of the data range; its Telea fill differs from OpenCV's by the
first-order term.  The kernels are compiled on first use (about 10 s, then
cached on disk: about 1 s in a new process).

References
----------
.. [1] A. Telea, "An image inpainting technique based on the fast marching
       method", J. Graphics Tools 9(1) (2004), 23-34,
       doi:10.1080/10867651.2004.10487596.
.. [2] M. Bertalmio, A. L. Bertozzi and G. Sapiro, "Navier-Stokes, fluid
       dynamics, and image and video inpainting", Proc. IEEE CVPR 2001,
       doi:10.1109/CVPR.2001.990497.
"""

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint._registry import Param, register

# Pixels filled between two calls of ``check`` (a few ms of work).
_CHECK_EVERY = 4096
# OpenCV works in float32; each channel's known range is mapped onto
# [-_CV_HALF_RANGE, _CV_HALF_RANGE], far above OpenCV's absolute constants.
_CV_HALF_RANGE = 2.0**22
_CROSS = ndi.generate_binary_structure(2, 1)

_PARAMS = (
    Param("radius", int, 5, "neighbourhood radius (pixels) whose known pixels fill each pixel", 1, 50),
    Param(
        "backend",
        str,
        "auto",
        "cv2.inpaint (Telea without its first-order term), this package's numba code, or OpenCV if installed",
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
    params=_PARAMS,
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
    """Fill holes by Telea's fast-marching method.

    Parameters
    ----------
    %(image_mask)s
    radius : int
        Radius of the disk of known pixels that fills each pixel.
    backend : {'auto', 'opencv', 'numba'}
        ``'opencv'`` uses :func:`cv2.inpaint` (raises ImportError when OpenCV
        is missing), ``'numba'`` this package's implementation, ``'auto'``
        OpenCV when it is importable.
    %(check)s

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> ramp = np.add.outer(np.arange(32.0), 2 * np.arange(32.0))
    >>> mask = np.zeros(ramp.shape, bool); mask[10:13, 5:25] = True
    >>> bool(np.allclose(inpaint(ramp, mask, "telea", backend="numba"), ramp))
    True
    """
    return _fill(image, mask, radius, backend, check, telea=True)


@register(
    "navier-stokes",
    summary="OpenCV's 'Navier-Stokes' fill: fast marching that continues isophotes into the hole",
    family="classical",
    artifacts=("scratches", "hot-pixels", "debris"),
    ndims=(2,),
    params=_PARAMS,
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
        ``'opencv'`` uses :func:`cv2.inpaint` (raises ImportError when OpenCV
        is missing), ``'numba'`` this package's implementation, ``'auto'``
        OpenCV when it is importable.
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
    if cv2 is not None:
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
    return cv2


def _fill_opencv(cv2, image, mask, radius: int, check, telea: bool) -> np.ndarray:
    """Fill channel by channel with cv2.inpaint on float32 scaled to a large range."""
    flag = cv2.INPAINT_TELEA if telea else cv2.INPAINT_NS
    # OpenCV reads the image's outermost rows and columns shifted by one pixel
    # (wrong values at holes touching the border); a ring of unknown pixels
    # keeps every real pixel off its border.
    ring = int(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    padded_mask = np.pad(mask, ring, constant_values=True).astype(np.uint8)
    inner = (slice(ring, ring + mask.shape[0]), slice(ring, ring + mask.shape[1]))
    known = ~mask
    out = image.copy()
    for c in range(image.shape[-1]):
        if check is not None:
            check()
        plane = image[..., c]
        low, high = plane[known].min(), plane[known].max()
        if low == high:  # constant: nothing to interpolate, and no range to scale
            out[mask, c] = low
            continue
        centre, half = low / 2 + high / 2, high / 2 - low / 2
        scale = _CV_HALF_RANGE / half
        work = np.pad(np.where(mask, 0.0, (plane - centre) * scale).astype(np.float32), ring)
        out[..., c] = cv2.inpaint(work, padded_mask, radius, flag)[inner] / scale + centre
    return out


def _fill_numba(image, mask, radius: int, check, telea: bool) -> np.ndarray:
    """Fill all channels in one march with the compiled kernels."""
    from napari_inpaint.methods import _fastmarching_kernels as kernels

    band = ndi.binary_dilation(mask, _CROSS) & ~mask
    dist = np.where(band, 0.0, kernels.FAR)
    if telea:
        # Level-set distance outside the hole, within reach of the sources.
        outside = ndi.maximum_filter(mask, size=2 * radius + 1) & ~mask & ~band
        flag = np.where(outside, kernels.INSIDE, kernels.KNOWN).astype(np.uint8)
        heap = _heap(band, band.sum() + outside.sum())
        kernels.march_outside(flag, dist, *heap)
        reached = (outside | band) & (flag == kernels.KNOWN)
        dist[reached] *= -1.0

    flag = np.full(mask.shape, kernels.KNOWN, np.uint8)
    flag[band] = kernels.BAND
    flag[mask] = kernels.INSIDE
    values = np.ascontiguousarray(np.moveaxis(image, -1, 0))
    grad = np.empty((2,) + values.shape)
    kernels.init_gradients(flag, values, grad, telea)
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
    keys = np.zeros(capacity)
    seqs = np.zeros(capacity, np.int64)
    seqs[: start.size] = np.arange(start.size)
    pixels = np.zeros(capacity, np.int64)
    pixels[: start.size] = start
    state = np.array([start.size, start.size], np.int64)
    return keys, seqs, pixels, state
