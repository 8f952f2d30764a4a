r"""Image-quality metrics for judging a fill against a clean reference.

PSNR, SSIM and the hole MAE are thin wrappers around :mod:`skimage.metrics`
that agree on one convention for the data range, so that scores of uint8,
uint16 and float images compare: integer images use the full range of their
dtype (255 for uint8, 65535 for uint16), floating-point images the span
``max - min`` of the reference.  :func:`lpips` is the learned perceptual
distance of Zhang et al. [2]_; it needs PyTorch and two downloaded weight
files.  FID is not offered: it compares the feature statistics of two *sets*
of images and means nothing for a single image.

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
.. [2] R. Zhang, P. Isola, A. A. Efros, E. Shechtman and O. Wang, "The
       unreasonable effectiveness of deep features as a perceptual metric",
       CVPR 2018, 586-595.

Examples
--------
>>> import numpy as np
>>> from napari_inpaint.evaluation.metrics import psnr
>>> reference = np.zeros((4, 4), np.uint8)
>>> result = reference.copy(); result[0, 0] = 51
>>> round(psnr(reference, result), 2)  # MSE 51**2 / 16, data range 255
26.02
"""

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from skimage import metrics as skm

# LPIPS v0.1 "alex": the ScalingLayer's constants, applied to inputs in [-1, 1].
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# torchvision's alexnet().features: index in the Sequential, (out, in) channels,
# kernel, stride, padding of each convolution; a 3x3 max-pooling with stride 2
# precedes the second and third.  LPIPS compares the five ReLU outputs.
_ALEXNET = (
    (0, (64, 3), 11, 4, 2),
    (3, (192, 64), 5, 1, 2),
    (6, (384, 192), 3, 1, 1),
    (8, (256, 384), 3, 1, 1),
    (10, (256, 256), 3, 1, 1),
)
_POOL_BEFORE = (1, 2)
LPIPS_MODELS = ("alexnet", "lpips-alex")
#: The smallest side :func:`lpips` takes: AlexNet's strided layers leave no pixel of smaller images.
LPIPS_MIN_SIDE = 32


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
    mask: np.ndarray | None = None,
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
    mask : ndarray of bool, optional
        Average the SSIM map only where True (e.g. the filled hole); its
        shape is the image's without the channel axis.  Each value of the
        map still looks at the 7-pixel window around its pixel.

    Returns
    -------
    float
        SSIM in [-1, 1]; 1 for identical images.

    Notes
    -----
    Without a mask this is scikit-image's mean, which leaves out a 3-pixel
    border; with a mask, every masked pixel of the map counts, border or not.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((16, 16))
    >>> ssim(image, image)
    1.0
    >>> hole = np.zeros((16, 16), bool); hole[4:8, 4:8] = True
    >>> ssim(image, image + 0.1 * hole, data_range=1.0, mask=~hole) < 1.0  # windows reach into the hole
    True
    """
    reference, result, data_range = _prepare(reference, result, data_range)
    if mask is None:
        score = skm.structural_similarity(reference, result, data_range=data_range, channel_axis=channel_axis)
        return float(score)
    _, similarity = skm.structural_similarity(
        reference, result, data_range=data_range, channel_axis=channel_axis, full=True
    )
    if channel_axis is not None:
        similarity = np.moveaxis(similarity, channel_axis, -1)
    return float(np.mean(similarity[_select(mask, similarity.shape)]))


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


def lpips(
    reference: np.ndarray,
    result: np.ndarray,
    data_range: float | None = None,
    channel_axis: int | None = None,
    device: str = "auto",
) -> float:
    r"""Learned perceptual image patch similarity (LPIPS v0.1, AlexNet), lower is closer.

    Parameters
    ----------
    reference, result : ndarray
        2D images of the same shape (each side at least 32 pixels), with an
        optional channel axis.
    data_range : float, optional
        Default: see :func:`data_range_of`.  The images are mapped to
        [-1, 1] from ``[low, low + data_range]``, where ``low`` is the
        dtype's minimum for integers and the reference's minimum for floats.
    channel_axis : int, optional
        Axis holding channels: three are compared as RGB; any other number
        channel by channel as grayscale, and the distances averaged.
    device : str
        PyTorch device (see :func:`napari_inpaint.models.devices.select_device`).

    Returns
    -------
    float
        The distance: 0 for identical images, about 0.1 to 0.7 for visibly
        different natural images.

    Raises
    ------
    RuntimeError
        When PyTorch is missing or the weights cannot be fetched (offline);
        the message says what to download and where to put it.
    ValueError
        For images that are not 2D or smaller than 32 pixels.

    Notes
    -----
    With :math:`\hat y^l` the ReLU outputs of the five convolutions of
    AlexNet's ``features`` for the scaled input, normalised to unit length
    along channels at every position, and :math:`w_l` the learned
    non-negative channel weights of Zhang et al. [2]_,

    .. math::

        d(x, y) = \sum_{l=1}^{5} \frac{1}{H_l W_l} \sum_{h, w}
                  \big\| w_l \odot (\hat y^l_{hw}(x) - \hat y^l_{hw}(y)) \big\|_2^2 .

    The inputs are first shifted and scaled by LPIPS's ``ScalingLayer``
    (ImageNet statistics expressed in [-1, 1]); grayscale is repeated to
    three channels.  The weights are torchvision's AlexNet (model
    ``alexnet`` of :mod:`napari_inpaint.models`, about 245 MB) and LPIPS's
    ``alex.pth`` (model ``lpips-alex``), both fetched on first use and cached.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> lpips(image, image)  # doctest: +SKIP
    0.0
    """
    dtype = np.asarray(reference).dtype
    low = float(np.iinfo(dtype).min) if np.issubdtype(dtype, np.integer) else None
    reference, result, data_range = _prepare(reference, result, data_range)
    spatial = reference.shape if channel_axis is None else np.delete(reference.shape, channel_axis)
    if len(spatial) != 2:
        raise ValueError(f"LPIPS compares 2D images (with an optional channel axis); got shape {reference.shape}")
    if min(spatial) < LPIPS_MIN_SIDE:
        raise ValueError(f"LPIPS needs images of at least {LPIPS_MIN_SIDE} pixels a side; got {tuple(spatial)}")
    import torch
    from torch.nn import functional

    from napari_inpaint.models.devices import select_device

    convs, linears = _lpips_weights()
    device = select_device(device)
    low = float(np.min(reference)) if low is None else low
    pair = np.stack([reference, result])
    pair = pair[..., np.newaxis] if channel_axis is None else np.moveaxis(pair, channel_axis % 3 + 1, -1)
    # Batch: (image, channel group) x 3 colours, channels first.
    if pair.shape[-1] == 3:
        batch = np.moveaxis(pair, -1, 1)
    else:
        batch = np.repeat(np.moveaxis(pair, -1, 1).reshape(-1, 1, *spatial), 3, axis=1)
    x = torch.as_tensor(2 * (batch - low) / data_range - 1, dtype=torch.float32, device=device)
    shift = torch.tensor(_LPIPS_SHIFT, device=device).view(1, 3, 1, 1)
    scale = torch.tensor(_LPIPS_SCALE, device=device).view(1, 3, 1, 1)
    x = (x - shift) / scale
    half = x.shape[0] // 2
    distance = torch.zeros(half, device=device)
    with torch.no_grad():
        for layer, ((weight, bias, stride, padding), linear) in enumerate(zip(convs, linears)):
            if layer in _POOL_BEFORE:
                x = functional.max_pool2d(x, kernel_size=3, stride=2)
            x = functional.relu(functional.conv2d(x, weight.to(device), bias.to(device), stride, padding))
            unit = x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + 1e-10)
            squared = (unit[:half] - unit[half:]) ** 2
            distance += functional.conv2d(squared, linear.to(device)).mean(dim=(1, 2, 3))
    return float(distance.mean())


def lpips_available() -> bool:
    """Whether :func:`lpips` can score now, without a download: PyTorch is installed and the weights cached.

    Examples
    --------
    >>> from napari_inpaint.evaluation.metrics import lpips_available
    >>> lpips_available() in (True, False)
    True
    """
    if importlib.util.find_spec("torch") is None:
        return False
    from napari_inpaint import models

    return all(models.is_cached(name) for name in LPIPS_MODELS)


def fetch_lpips() -> None:
    """Make :func:`lpips` ready: download its weights when missing (once, about 245 MB) and load them.

    Raises
    ------
    RuntimeError
        When PyTorch is missing or the weights cannot be fetched (offline)
        or loaded; the message says what to install or download.

    Examples
    --------
    >>> from napari_inpaint.evaluation.metrics import fetch_lpips
    >>> fetch_lpips()  # doctest: +SKIP
    """
    _lpips_weights()


def _lpips_weights() -> tuple[list, list]:
    """The AlexNet convolutions and LPIPS linear layers, fetched once and cached."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeError("LPIPS needs PyTorch; install it (pip install torch) to score with LPIPS") from None
    from napari_inpaint import models

    paths = []
    for name in LPIPS_MODELS:
        try:
            paths.append(Path(models.fetch(name)))
        except Exception as exc:  # offline, a mirror without the file, a failed hash check
            raise RuntimeError(
                f"LPIPS needs the weight files of models {' and '.join(map(repr, LPIPS_MODELS))} "
                f"(napari_inpaint.models.fetch downloads them once, about 245 MB); {name!r} is not "
                f"available: {exc}"
            ) from exc
    return _load_lpips(*paths)


@lru_cache(maxsize=2)
def _load_lpips(alexnet: Path, linear: Path) -> tuple[list, list]:
    import torch

    features = torch.load(alexnet, map_location="cpu", weights_only=True)
    lins = torch.load(linear, map_location="cpu", weights_only=True)
    convs, linears = [], []
    try:
        for layer, (index, channels, kernel, stride, padding) in enumerate(_ALEXNET):
            weight, bias = features[f"features.{index}.weight"], features[f"features.{index}.bias"]
            linear_weight = lins[f"lin{layer}.model.1.weight"]
            if (
                tuple(weight.shape) != (*channels, kernel, kernel)
                or tuple(bias.shape) != channels[:1]
                or tuple(linear_weight.shape) != (1, channels[0], 1, 1)
            ):
                raise KeyError(f"layer {layer} has unexpected shapes")
            convs.append((weight.float(), bias.float(), stride, padding))
            linears.append(linear_weight.float())
    except KeyError as exc:
        raise RuntimeError(
            f"{alexnet} and {linear} are not torchvision's AlexNet and LPIPS v0.1 alex.pth state dicts ({exc})"
        ) from None
    return convs, linears
