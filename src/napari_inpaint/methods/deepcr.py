r"""deepCR's trained networks: cosmic-ray probabilities, the ``deepcr`` fill, and fine-tuning it.

deepCR [1]_ published small U-Nets trained on Hubble Space Telescope
(ACS/WFC, WFC3/UVIS) and DECam images: *mask* networks that give each pixel
the probability of a cosmic-ray hit, and *inpainting* networks that fill the
hits.  Their weights are registered in :mod:`napari_inpaint.models` (upstream
names in ``models.DEEPCR_MASKS`` and ``models.DEEPCR_INPAINTERS``) and run by
the architecture of :mod:`napari_inpaint.methods._deepcr_networks`.  The mask
networks are used by :func:`napari_inpaint.detect.cosmic_rays`; the
inpainting networks by the method ``deepcr``.

Notes
-----
**Units.**  The networks take data in the instrument's units, as deepCR 0.3.1
documents: electrons for ACS/WFC (``_flc`` files), ADU of calibrated images
for DECam; the WFC3/UVIS mask network takes the image standardised by its
mean and standard deviation (deepCR's ``norm`` for that model).  The engine
hands fills crops divided by a power of two (an exact scaling that keeps
values of order one) and the divisor as ``scale``: the fill multiplies the
crop back into the image's own units, as the networks (whose biases are not
invariant to scale) need.

**Fine-tuning** (``steps`` > 0, or :func:`fine_tune`) starts from the
published inpainting weights and continues training on the image's own known
pixels with synthetic holes, with the self-supervised recipe of ``learned``
(:func:`napari_inpaint.methods._training.fit`: windows normalised per plane,
real-mask-shaped and random holes, the mean absolute error on the hidden
known pixels).  The view it trains maps the normalised values back to the
image's units (the median 1st percentile and 1st-99th percentile span of the
planes), so the network keeps working in the units it was trained in; its
batch normalisation keeps the published statistics.  ``pretrained=False``
trains the same architecture from random weights in normalised units, for
comparison.  :func:`save_model` writes a tuned network; ``model=<path>``
fills with it.

References
----------
.. [1] K. Zhang and J. S. Bloom, "deepCR: cosmic ray rejection with deep
       learning", ApJ 889 (2020) 24, arXiv:1907.09500; github.com/profjsb/deepCR.
"""

import copy
import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.methods._training import (
    Check,
    Progress,
    fit,
    load_model_file,
    normaliser,
    not_cancellable,
    save_model_file,
)
from napari_inpaint.models import DEEPCR_INPAINTERS, DEEPCR_MASKS
from napari_inpaint.models.devices import DEVICE, select_device
from napari_inpaint.registry import Param, Stack, fill_docs, register

if TYPE_CHECKING:
    from napari_inpaint.methods._deepcr_networks import DeepCRNet

_FORMAT = "napari-inpaint-deepcr"
# deepCR standardises the input of this mask network by the image's mean and standard deviation
# (deepCR 0.3.1 model.py: norm = True for 'WFC3-UVIS').
_STANDARDISED = frozenset({"WFC3-UVIS"})
# Large images are run in tiles of this side, each with this many pixels of context on every side (more
# than the receptive field: about 20 pixels across for the 2-level networks, 44 for the 3-level one).
_TILE = 1024
_HALO = 32
# Pixels read per plane to measure the image's units.
_SAMPLE = 2**20
# Planes read to measure them.
_SAMPLE_PLANES = 8
# Training windows and the initial Adam learning rates for fine-tuning and for training from scratch.
_CROP_SIZE = 64
_TUNE_RATE = 1e-3
_SCRATCH_RATE = 2e-3
DEFAULT_INPAINTER = "ACS-WFC-F606W-2-32"


# --------------------------------------------------------------------------- loading


def load_network(name: str, device: str = "auto") -> "DeepCRNet":
    """A published deepCR network on ``device``, downloaded and loaded once.

    Parameters
    ----------
    name : str
        Upstream name: a mask network (``ACS-WFC``, ``WFC3-UVIS``, ``decam``)
        or an inpainting network (``ACS-WFC-F606W-2-32``, ``ACS-WFC-F606W-3-32``).
    device : str
        PyTorch device (see :func:`napari_inpaint.models.devices.select_device`).

    Returns
    -------
    DeepCRNet
        The network in evaluation mode (shared: do not train it in place).

    Raises
    ------
    ValueError
        For an unknown name, or a file with the right hash that is not a
        deepCR state dict.
    napari_inpaint.models.DownloadError
        When the weights cannot be downloaded (see :func:`napari_inpaint.models.fetch`).

    Examples
    --------
    >>> net = load_network("ACS-WFC", "cpu")  # doctest: +SKIP
    """
    from napari_inpaint import models

    registered = {**DEEPCR_MASKS, **DEEPCR_INPAINTERS}
    if name not in registered:
        raise ValueError(f"unknown deepCR network {name!r}; known: {', '.join(registered)}")
    path = models.fetch(registered[name])
    stat = path.stat()
    target = str(select_device(device))
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size, name in DEEPCR_MASKS, target)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int, mask: bool, device: str) -> "DeepCRNet":
    # Keyed by the file's version, so that a replaced file is read again.
    import torch

    from napari_inpaint.methods._deepcr_networks import from_state_dict

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return from_state_dict(state, sigmoid=mask).to(device)
    except (RuntimeError, ValueError, TypeError, AttributeError) as error:
        message = f"{path} has the right hash but is not a deepCR network this code can read: {error}"
        raise ValueError(message) from None


# --------------------------------------------------------------------------- running


def _tiles(height: int, width: int):
    """Slices ``(core, outer, inner)`` covering the plane: a tile, with its halo, and within that box."""
    for top in range(0, height, _TILE):
        for left in range(0, width, _TILE):
            outer = (slice(max(top - _HALO, 0), min(top + _TILE + _HALO, height)),
                     slice(max(left - _HALO, 0), min(left + _TILE + _HALO, width)))
            core = (slice(top, min(top + _TILE, height)), slice(left, min(left + _TILE, width)))
            inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
            yield core, outer, inner


def _run_tiled(net: "DeepCRNet", inputs: np.ndarray, check: Callable[[], None]) -> np.ndarray:
    """``net`` on float32 inputs (N, K, H, W), tile by tile; returns (N, H, W)."""
    import torch

    from napari_inpaint.methods._deepcr_networks import run

    device = next(net.parameters()).device
    out = np.empty((inputs.shape[0], *inputs.shape[2:]), np.float32)
    for core, outer, inner in _tiles(*inputs.shape[2:]):
        check()
        batch = torch.from_numpy(np.ascontiguousarray(inputs[(..., *outer)])).to(device)
        with torch.inference_mode():
            result = run(net, batch)[:, 0].cpu().numpy()
        out[(slice(None), *core)] = result[(slice(None), *inner)]
    return out


def cosmic_ray_probability(
    image: np.ndarray, model: str = "ACS-WFC", *, device: str = "auto", check: Check = None
) -> np.ndarray:
    """The probability that each pixel of a 2D image is hit by a cosmic ray, from a deepCR mask network.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        In the instrument's units: electrons for ``ACS-WFC`` (``_flc``
        files), ADU of calibrated images for ``decam``; ``WFC3-UVIS`` is
        standardised here by the image's mean and standard deviation.
        Non-finite pixels are read as the median of the others.
    model : {'ACS-WFC', 'WFC3-UVIS', 'decam'}
        The mask network.
    device : str
        PyTorch device.
    check : callable, optional
        Called between tiles; raises to cancel.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Probabilities in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> sky = np.random.default_rng(0).poisson(80.0, (64, 64)).astype(float)
    >>> sky[30, 30] += 3000.0
    >>> probability = cosmic_ray_probability(sky, "ACS-WFC", device="cpu")  # doctest: +SKIP
    >>> bool(probability[30, 30] > 0.5)  # doctest: +SKIP
    True
    """
    if model not in DEEPCR_MASKS:
        raise ValueError(f"unknown deepCR mask network {model!r}; known: {', '.join(DEEPCR_MASKS)}")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 1:
        raise ValueError(f"cosmic_ray_probability takes one 2D image; got shape {image.shape}")
    check = not_cancellable if check is None else check
    net = load_network(model, device)
    finite = np.isfinite(image)
    values = np.where(finite, image, np.median(image[finite]) if finite.any() else 0.0)
    if model in _STANDARDISED:
        spread = values.std()
        values = (values - values.mean()) / (spread if spread > 0 else 1.0)
    return _run_tiled(net, values.astype(np.float32)[None, None], check)[0]


# --------------------------------------------------------------------------- the method


def _sample_planes(stack: Stack, check: Callable[[], None]) -> list[np.ndarray]:
    """Known pixels (K, C) of up to :data:`_SAMPLE_PLANES` planes in the image's units, subsampled."""
    count = stack.planes.shape[0]
    samples = []
    for index in np.unique(np.linspace(0, count - 1, min(count, _SAMPLE_PLANES)).round().astype(int)):
        check()
        plane, holes = stack.planes[index], stack.masks[index]
        stride = max(1, int(np.sqrt(holes.size / _SAMPLE)))
        values = np.asarray(plane[::stride, ::stride], dtype=np.float64)
        known = ~np.asarray(holes[::stride, ::stride])
        if known.any():
            samples.append(values[known])
    if not samples:
        raise ValueError("the image has no known pixels to learn from")
    return samples


def _prepare(
    stack: Stack, *, network: str = DEFAULT_INPAINTER, model: str = "", steps: int = 0, seconds: float = 60.0,
    device: str = "auto", rng: np.random.Generator | None = None, check: Check = None,
    progress: Progress = None,
) -> "DeepCRNet":
    """The per-call preparation of ``deepcr``: load the network, and fine-tune it when asked."""
    check = not_cancellable if check is None else check
    net = load_model(model, device) if model else load_network(network, device)
    if steps > 0:
        rng = np.random.default_rng(0) if rng is None else rng
        net = _tune(net, stack, _sample_planes(stack, check), steps=steps, seconds=seconds,
                    learning_rate=_TUNE_RATE, device=device, rng=rng, check=check, progress=progress)
    return net


def _tune(
    net: "DeepCRNet", stack: Stack, samples: list, *, steps: int, seconds: float, learning_rate: float,
    device: str, rng: np.random.Generator, check: Callable[[], None], progress: Progress,
) -> "DeepCRNet":
    """A copy of ``net`` trained on the stack's known pixels with synthetic holes (``learned``'s recipe)."""
    from napari_inpaint.methods._deepcr_networks import TrainingView
    from napari_inpaint.methods.learned import training_data

    lows, spans = zip(*(normaliser(sample, np.ones(sample.shape[:1], bool)) for sample in samples))
    view = TrainingView(copy.deepcopy(net), float(np.median(lows)), float(np.median(spans)))
    fit(view, training_data(stack, check), steps=steps, seconds=seconds, crop_size=_CROP_SIZE,
        learning_rate=learning_rate, device=select_device(device), rng=rng, progress=progress, check=check)
    return view.net.eval()


@register(
    "deepcr",
    summary="deepCR's network trained to fill cosmic-ray hits on Hubble ACS/WFC images (data in electrons)",
    family="pretrained",
    artifacts=("cosmic-rays",),
    params=(
        Param("network", str, DEFAULT_INPAINTER, "deepCR's inpainting network (2 or 3 resolution levels)",
              choices=tuple(DEEPCR_INPAINTERS)),
        Param("model", str, "", "file of a network saved with deepcr.save_model; empty: the published one",
              file=True),
        Param("steps", int, 0, "fine-tuning steps on the image's known pixels; 0: the weights as published",
              0, 1_000_000),
        Param("seconds", float, 60.0, "fine-tuning time limit per call (s); 0 = none, repeatable", 0.0,
              86_400.0),
        Param("context", int, 32, "known pixels around each hole that the network sees", 8, 1024, advanced=True),
        DEVICE,
    ),
    margin=lambda params: params["context"],
    channel_independent=True,
    needs_torch=True,
    weights=tuple(DEEPCR_INPAINTERS.values()),
    prepare=_prepare,
    local_fill=True,
)
def deepcr(
    image: np.ndarray, mask: np.ndarray, *, context: int = 32, prepared: "DeepCRNet | None" = None,
    scale: float = 1.0, check: Check = None,
) -> np.ndarray:
    """Fill the holes with deepCR's inpainting network, in the image's own units.

    Parameters
    ----------
    %(image_mask)s
    context : int
        Used by the engine only: known pixels cropped around each hole.
    prepared : DeepCRNet
        The network of the call's preparation (published, loaded or fine-tuned).
    scale : float
        The engine's divisor of the crop: ``image * scale`` is in the image's units.
    check : callable, optional
        Called between tiles; raises to cancel.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> sky = np.random.default_rng(0).poisson(80.0, (64, 64)).astype(float)
    >>> hits = np.zeros(sky.shape, bool); hits[30, 28:34] = True
    >>> clean = inpaint(sky, hits, "deepcr", device="cpu")  # doctest: +SKIP
    """
    if prepared is None:
        raise ValueError("method 'deepcr' fills with the network its preparation loads: use inpaint()")
    check = not_cancellable if check is None else check
    config = prepared.config
    values = (np.moveaxis(image, -1, 0) * scale - config["offset"]) / config["scale"]
    holes = np.broadcast_to(mask, values.shape)
    inputs = np.stack([np.where(holes, 0.0, values), holes], axis=1).astype(np.float32)
    filled = (_run_tiled(prepared, inputs, check) * config["scale"] + config["offset"]) / scale
    return np.where(mask[..., None], np.moveaxis(filled, 0, -1), image)


# --------------------------------------------------------------------------- fine-tuning


@fill_docs
def fine_tune(
    stack: Stack,
    *,
    network: str = DEFAULT_INPAINTER,
    pretrained: bool = True,
    steps: int = 2000,
    seconds: float = 60.0,
    learning_rate: float | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: Progress = None,
    check: Check = None,
) -> "DeepCRNet":
    """Continue training a deepCR inpainting network on the known pixels of an image or a stack.

    The training ``inpaint(..., method="deepcr", steps=...)`` does once per
    call, kept as a network to save (:func:`save_model`) and reuse on other
    images of the same kind (``model=<path>``).

    Parameters
    ----------
    stack : Stack
        The planes to learn from (in the instrument's units) and their masks
        (bad pixels are never training targets): see
        :func:`napari_inpaint.engine.training_stack`.
    network : str
        The published inpainting network to start from (its architecture,
        with ``pretrained=False``).
    pretrained : bool
        Start from the published weights (fine-tuning), or from random
        weights in normalised units (training from scratch).
    steps : int
        Training steps (batches of 4 windows of 64 pixels).
    seconds : float
        Stop after this many seconds; 0 for no time limit (repeatable).
    learning_rate : float, optional
        Initial Adam learning rate (cosine decay); default 1e-3 for
        fine-tuning, 2e-3 from scratch.
    %(device)s
    seed : int
        Seeds the training windows (and the random weights).
    progress, check : callable, optional
        As for :func:`napari_inpaint.methods.learned.train_model`.

    Returns
    -------
    DeepCRNet
        The trained network, in evaluation mode.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint.engine import training_stack
    >>> image = np.random.default_rng(0).poisson(50.0, (48, 48)).astype(float)
    >>> net = fine_tune(training_stack(image, method="deepcr"), steps=20, seconds=0, device="cpu")  # doctest: +SKIP
    >>> net.config["levels"], net.config["offset"]  # doctest: +SKIP
    (2, 0.0)
    """
    from napari_inpaint.methods._deepcr_networks import DeepCRNet
    from napari_inpaint.methods._networks import build
    from napari_inpaint.methods._training import torch_generator

    if network not in DEEPCR_INPAINTERS:
        known = ", ".join(DEEPCR_INPAINTERS)
        raise ValueError(f"unknown deepCR inpainting network {network!r}; known: {known}")
    check = not_cancellable if check is None else check
    rng = np.random.default_rng(seed)
    samples = _sample_planes(stack, check)
    if pretrained:
        net = load_network(network, device)
    else:
        # The published architecture, in the units fit() trains in: the typical plane's normalisation.
        lows, spans = zip(*(normaliser(sample, np.ones(sample.shape[:1], bool)) for sample in samples))
        config = {**load_network(network, "cpu").config, "offset": float(np.median(lows)),
                  "scale": float(np.median(spans))}
        net = build(DeepCRNet, **config, generator=torch_generator(rng))
    rate = learning_rate if learning_rate is not None else _TUNE_RATE if pretrained else _SCRATCH_RATE
    return _tune(net, stack, samples, steps=steps, seconds=seconds, learning_rate=rate, device=device,
                 rng=rng, check=check, progress=progress)


def save_model(net: "DeepCRNet", path: str | os.PathLike) -> None:
    """Save a network from :func:`fine_tune` (weights, architecture and units) to ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from napari_inpaint.methods._deepcr_networks import DeepCRNet
    >>> net = DeepCRNet(2, 4, 2, batch_norm=True, sigmoid=False, offset=3.0, scale=20.0)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tuned.pt"
    >>> save_model(net, path)
    >>> load_model(path).config == net.config
    True
    """
    save_model_file(net, path, _FORMAT)


def load_model(path: str | os.PathLike, device: str = "auto") -> "DeepCRNet":
    """Load a network saved by :func:`save_model` (once per file version and device).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a tuned deepCR network of this version.
    """
    from napari_inpaint.methods._deepcr_networks import assemble

    return load_model_file(
        path, device, _FORMAT, what="a tuned deepCR network", writer="deepcr.save_model", assemble=assemble
    )
