r"""Pretrained deep inpainting networks: LaMa and MI-GAN.

Both fill large holes with invented structure and texture learned from
natural photographs (Places2); they are the methods for large missing
regions, and a poor choice for quantitative data where a smooth physical
interpolation is expected (the fill is plausible, not measured).

Notes
-----
The weights are downloaded on first use (see :mod:`napari_inpaint.models`)
and run through TorchScript.  Each crop that the engine hands over (the
holes plus ``context`` pixels of known surroundings) is prepared for
networks trained on 8-bit RGB photographs:

1. Each channel :math:`c` is normalised robustly with the 0.5 and 99.5
   percentiles :math:`l_c, h_c` of its known pixels,
   :math:`x = \mathrm{clip}((f - l_c) / (h_c - l_c), 0, 1)`, and the output is
   mapped back with :math:`f = l_c + x (h_c - l_c)`; uint16 counts, floats
   and negative values all become the [0, 1] range the network expects.
2. Channels are processed in groups of three.  A group with fewer than three
   channels repeats them cyclically (grayscale ``g`` becomes ``(g, g, g)``,
   two channels ``(a, b, a)``); a channel used in several slots gets the mean
   of their outputs.
3. A crop whose longer side exceeds ``max_size`` is shrunk (area averaging;
   a low-resolution pixel is a hole if any pixel under it is) and the fill is
   scaled back with bicubic interpolation: IOPaint's "resize" strategy for
   large images, which with the engine's cropping of each hole gives its
   "crop" strategy too.
4. The crop is padded at the bottom and right by reflection (holes included)
   to the network's size: multiples of 8 for LaMa, a 512 x 512 square for
   MI-GAN.
5. Only the masked pixels are replaced.

Input contracts, as IOPaint calls the same TorchScript files: LaMa takes an
RGB image in [0, 1] (1x3xHxW) and a mask with 1 in the hole (1x1xHxW) and
returns RGB in [0, 1]; MI-GAN takes one 1x4x512x512 tensor
``concat(0.5 - mask, rgb * (1 - mask))`` with RGB in [-1, 1] and returns RGB
in [-1, 1].

On CUDA, ``fp16`` runs under autocast (half precision, about half the
memory); a result with non-finite values is recomputed in float32.  When the
GPU runs out of memory the crop is retried at half the size, down to 256
pixels, before a message suggests ``device='cpu'``.  The CUDA paths have not
been run on a GPU in this package's test suite.

References
----------
.. [1] R. Suvorov et al., "Resolution-robust large mask inpainting with
       Fourier convolutions", WACV 2022, arXiv:2109.07161.
.. [2] A. Sargsyan et al., "MI-GAN: A simple baseline for image inpainting on
       mobile devices", ICCV 2023.
.. [3] IOPaint (formerly lama-cleaner), github.com/Sanster/IOPaint:
       iopaint/model/lama.py and mi_gan.py define how these files are called.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.models.devices import DEVICE, select_device
from napari_inpaint.registry import Param, register

if TYPE_CHECKING:
    import torch

_PERCENTILES = (0.5, 99.5)
# Below this size an out-of-memory crop is not shrunk further.
_MIN_RETRY_SIZE = 256


@dataclass(frozen=True)
class _Contract:
    """How one network is called.

    ``forward(model, rgb, hole)`` takes RGB in [0, 1] (1x3xHxW) and the hole
    (1x1xHxW, 1 = fill) and returns RGB in [0, 1].
    """

    model: str
    multiple: int
    square: int | None
    forward: Callable


def _lama_forward(model, rgb: "torch.Tensor", hole: "torch.Tensor") -> "torch.Tensor":
    return model(rgb, hole)


def _migan_forward(model, rgb: "torch.Tensor", hole: "torch.Tensor") -> "torch.Tensor":
    import torch

    signed = rgb * 2 - 1
    return (model(torch.cat([0.5 - hole, signed * (1 - hole)], dim=1)) + 1) / 2


_CONTRACTS = {
    "lama": _Contract("lama", multiple=8, square=None, forward=_lama_forward),
    "migan": _Contract("migan", multiple=512, square=512, forward=_migan_forward),
}


def _params(max_size: int, max_high: int, context: int) -> tuple[Param, ...]:
    return (
        DEVICE,
        Param("fp16", bool, False, "half precision on CUDA (less memory, faster); ignored on other devices"),
        Param("max_size", int, max_size, "crops with a longer side are filled at this size and scaled back",
              64, max_high, advanced=True),
        Param("context", int, context, "pixels of known surroundings given to the network around each hole",
              8, 1024, advanced=True),
    )


@register(
    "lama",
    summary="Big LaMa deep network (Fourier convolutions): large holes, repeating structure; 196 MiB weights",
    family="pretrained",
    artifacts=("large-holes", "debris", "texture"),
    params=_params(max_size=1024, max_high=8192, context=64),
    margin=lambda params: params["context"],
    local_fill=True,
    needs_torch=True,
    weights=("lama",),
)
def lama(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    device: str = "auto",
    fp16: bool = False,
    max_size: int = 1024,
    context: int = 64,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill holes with the pretrained Big LaMa network [1]_.

    Parameters
    ----------
    %(image_mask)s
    %(device)s
    fp16 : bool
        Half precision on CUDA.
    max_size : int
        Longest side the network sees; larger crops are shrunk for it.
    context : int
        Known pixels around each hole (the engine's crop margin).
    check : callable, optional
        Called between channel groups; raises to cancel.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> mask = np.zeros(image.shape, bool); mask[20:40, 20:40] = True
    >>> filled = inpaint(image, mask, method="lama")  # doctest: +SKIP
    """
    return _fill(_CONTRACTS["lama"], image, mask, device, fp16, max_size, check)


@register(
    "migan",
    summary="MI-GAN deep network: fast fill of holes up to a few hundred pixels at 512 px; downloads 27 MiB",
    family="pretrained",
    artifacts=("large-holes", "debris", "texture"),
    params=_params(max_size=512, max_high=512, context=128),
    margin=lambda params: params["context"],
    local_fill=True,
    needs_torch=True,
    weights=("migan",),
)
def migan(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    device: str = "auto",
    fp16: bool = False,
    max_size: int = 512,
    context: int = 128,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill holes with the pretrained MI-GAN network [2]_ (512 x 512 input).

    Parameters
    ----------
    %(image_mask)s
    %(device)s
    fp16 : bool
        Half precision on CUDA.
    max_size : int
        Longest side the network sees (at most 512, its input size).
    context : int
        Known pixels around each hole (the engine's crop margin).
    check : callable, optional
        Called between channel groups; raises to cancel.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> image = np.random.default_rng(0).random((64, 64, 3))
    >>> mask = np.zeros(image.shape[:2], bool); mask[20:40, 20:40] = True
    >>> filled = inpaint(image, mask, method="migan")  # doctest: +SKIP
    """
    return _fill(_CONTRACTS["migan"], image, mask, device, fp16, max_size, check)


def _fill(contract: _Contract, image, mask, device, fp16, max_size, check) -> np.ndarray:
    """Normalise, run the network on each channel group, map back, replace the masked pixels."""
    from napari_inpaint import models

    model = models.load(contract.model, device)
    target = select_device(device)
    low, span = _robust_range(image[~mask])
    flat = span == 0
    scaled = np.clip((image - low) / np.where(flat, 1.0, span), 0.0, 1.0)
    sums = np.zeros_like(image)
    uses = np.zeros(image.shape[-1])
    for group in _channel_groups(image.shape[-1]):
        if check is not None:
            check()
        rgb = _run(model, contract, scaled[..., group], mask, target, fp16, max_size)
        for slot, channel in enumerate(group):
            sums[..., channel] += rgb[..., slot]
            uses[channel] += 1
    filled = low + sums / uses * span  # a flat channel (span 0) is filled with its one value
    out = image.copy()
    out[mask] = filled[mask]
    return out


def _robust_range(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 0.5 and 99.5 percentiles of the known pixels: (low, high - low)."""
    low, high = np.percentile(known, _PERCENTILES, axis=0)
    return low, high - low


def _channel_groups(channels: int) -> list[list[int]]:
    """Channel indices fed to each 3-channel call; short groups repeat their channels cyclically."""
    groups = []
    for start in range(0, channels, 3):
        members = list(range(start, min(start + 3, channels)))
        groups.append([members[i % len(members)] for i in range(3)])
    return groups


def _padded_size(height: int, width: int, multiple: int, square: int | None) -> tuple[int, int]:
    """The network's input size for a crop: a fixed square, or the next multiples of ``multiple``."""
    if square is not None:
        return square, square
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _pad(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad the last two axes at the bottom and right to ``height x width``."""
    rows, cols = array.shape[-2:]
    widths = [(0, 0)] * (array.ndim - 2) + [(0, height - rows), (0, width - cols)]
    return np.pad(array, widths, mode="reflect")


def _run(model, contract: _Contract, rgb, mask, device, fp16: bool, max_size: int) -> np.ndarray:
    """Fill one (H, W, 3) crop in [0, 1]; retry smaller when the GPU runs out of memory."""
    import torch

    limit = min(max_size, contract.square or max_size)
    while True:
        try:
            return _run_once(model, contract, rgb, mask, device, fp16, limit)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            longest = min(limit, max(mask.shape))
            if contract.square is not None or longest <= _MIN_RETRY_SIZE:
                raise RuntimeError(
                    f"the GPU ran out of memory filling a {mask.shape[0]}x{mask.shape[1]} crop with "
                    f"{contract.model!r}; use device='cpu', fp16=True, or a smaller context/max_size"
                ) from None
            limit = longest // 2


def _run_once(model, contract: _Contract, rgb, mask, device, fp16: bool, limit: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    height, width = mask.shape
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]
    hole = torch.from_numpy(mask.astype(np.float32))[None, None]
    scale = limit / max(height, width)
    if scale < 1:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = F.interpolate(image, size=size, mode="area")
        hole = (F.interpolate(hole, size=size, mode="area") > 0).float()
    rows, cols = image.shape[-2:]
    padded = _padded_size(rows, cols, contract.multiple, contract.square)
    image = torch.from_numpy(_pad(image.numpy(), *padded)).to(device)
    hole = torch.from_numpy(_pad(hole.numpy(), *padded)).to(device)
    half = fp16 and device.type == "cuda"
    with torch.inference_mode():
        with torch.autocast("cuda", dtype=torch.float16, enabled=half):
            out = contract.forward(model, image, hole).float()
        if half and not bool(torch.isfinite(out).all()):
            out = contract.forward(model, image, hole).float()  # half precision overflowed
        out = out[..., :rows, :cols].clamp(0, 1).cpu()
        if scale < 1:
            out = F.interpolate(out, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    return out[0].permute(1, 2, 0).numpy().astype(np.float64)
