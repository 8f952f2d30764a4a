r"""Image-quality metrics for judging a fill against a clean reference.

Thin wrappers around :mod:`skimage.metrics` that agree on one convention for
the data range, so that scores of uint8, uint16 and float images compare:
integer images use the full range of their dtype (255 for uint8, 65535 for
uint16), floating-point images the span ``max - min`` of the reference.

Notes
-----
With :math:`R` the data range and :math:`N` the number of compared values,

.. math::

    \mathrm{PSNR} = 10 \log_{10} \frac{R^2}{\frac1N \sum (x - y)^2}, \qquad
    \mathrm{hole\ MAE} = \frac{100}{R} \cdot \frac1N \sum_{\text{hole}} |x - y|.

SSIM is the structural similarity index of Wang et al. [1]_ as computed by
:func:`skimage.metrics.structural_similarity` (7-pixel uniform window).

References
----------
.. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality
       assessment: from error visibility to structural similarity", IEEE
       Trans. Image Process. 13(4) (2004), 600-612.

Examples
--------
>>> import numpy as np
>>> from napari_inpaint.metrics import psnr
>>> reference = np.zeros((4, 4), np.uint8)
>>> result = reference.copy(); result[0, 0] = 51
>>> round(psnr(reference, result), 2)  # MSE 51**2 / 16, data range 255
26.02
"""

import numpy as np
from skimage import metrics as skm


def data_range_of(reference: np.ndarray) -> float:
    """Default data range: the dtype's span for integers, ``max - min`` for floats.

    Parameters
    ----------
    reference : ndarray
        Reference image.

    Returns
    -------
    float
        The data range.

    Raises
    ------
    ValueError
        For a constant floating-point reference (its range is zero): pass
        ``data_range`` explicitly.

    Examples
    --------
    >>> import numpy as np
    >>> data_range_of(np.zeros(3, np.uint16)), data_range_of(np.array([0.5, 2.0]))
    (65535.0, 1.5)
    """
    reference = np.asarray(reference)
    if np.issubdtype(reference.dtype, np.integer):
        info = np.iinfo(reference.dtype)
        return float(info.max) - float(info.min)
    span = float(np.max(reference)) - float(np.min(reference))
    if not span > 0:
        raise ValueError("the reference image is constant, so its data range is zero: pass data_range")
    return span


def _prepare(reference, result, data_range) -> tuple[np.ndarray, np.ndarray, float]:
    reference, result = np.asarray(reference), np.asarray(result)
    if reference.shape != result.shape:
        raise ValueError(f"reference shape {reference.shape} differs from result shape {result.shape}")
    if data_range is None:
        data_range = data_range_of(reference)
    return reference.astype(np.float64), result.astype(np.float64), float(data_range)


def _select(mask, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a spatial mask over trailing (channel) axes of ``shape``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape[: mask.ndim]:
        raise ValueError(f"mask shape {mask.shape} does not match the leading axes of image shape {shape}")
    if not mask.any():
        raise ValueError("the mask selects no pixel")
    return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)


def psnr(
    reference: np.ndarray, result: np.ndarray, mask: np.ndarray | None = None, data_range: float | None = None
) -> float:
    """Peak signal-to-noise ratio of ``result`` against ``reference``, in dB.

    Parameters
    ----------
    reference, result : ndarray
        Images of the same shape.
    mask : ndarray of bool, optional
        Compare only where True (e.g. the filled hole).  Its shape is the
        image's or the image's without trailing channel axes.
    data_range : float, optional
        Default: see :func:`data_range_of`.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.zeros((4, 4)); reference[0] = 1.0
    >>> result = reference + 0.1
    >>> round(psnr(reference, result), 6)
    20.0
    """
    reference, result, data_range = _prepare(reference, result, data_range)
    if mask is not None:
        keep = _select(mask, reference.shape)
        reference, result = reference[keep], result[keep]
    if np.array_equal(reference, result):
        return float("inf")
    return float(skm.peak_signal_noise_ratio(reference, result, data_range=data_range))


def ssim(
    reference: np.ndarray,
    result: np.ndarray,
    data_range: float | None = None,
    channel_axis: int | None = None,
) -> float:
    """Mean structural similarity of ``result`` to ``reference``.

    Parameters
    ----------
    reference, result : ndarray
        2D or 3D images of the same shape, each side at least 7 pixels.
    data_range : float, optional
        Default: see :func:`data_range_of`.
    channel_axis : int, optional
        Axis holding channels (their SSIMs are averaged).

    Returns
    -------
    float
        SSIM in [-1, 1]; 1 for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((16, 16))
    >>> ssim(image, image)
    1.0
    """
    reference, result, data_range = _prepare(reference, result, data_range)
    score = skm.structural_similarity(reference, result, data_range=data_range, channel_axis=channel_axis)
    return float(score)


def hole_mae(
    reference: np.ndarray, result: np.ndarray, mask: np.ndarray, data_range: float | None = None
) -> float:
    """Mean absolute error inside the hole, in percent of the data range.

    Parameters
    ----------
    reference, result : ndarray
        Images of the same shape.
    mask : ndarray of bool
        The hole (True), with at least one pixel.  Its shape is the image's or
        the image's without trailing channel axes.
    data_range : float, optional
        Default: see :func:`data_range_of`.

    Returns
    -------
    float
        ``100 * mean(|reference - result|) / data_range`` over the hole.

    Examples
    --------
    >>> import numpy as np
    >>> reference = np.zeros((4, 4), np.uint8); result = reference.copy()
    >>> mask = np.zeros((4, 4), bool); mask[0, :2] = True
    >>> result[0, 0] = 51  # 51 / 255 = 20 %, averaged over 2 hole pixels
    >>> hole_mae(reference, result, mask)
    10.0
    """
    reference, result, data_range = _prepare(reference, result, data_range)
    keep = _select(mask, reference.shape)
    return float(100.0 * np.mean(np.abs(reference[keep] - result[keep])) / data_range)
