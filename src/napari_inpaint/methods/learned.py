r"""Self-supervised deep inpainting (``learned``): a network trained on the image's own known pixels.

Pretrained inpainting models learnt photographs; on a fluorescence stack or an
EM section they invent photographic texture.  ``learned`` (like ``dip``, in
:mod:`napari_inpaint.methods.dip`) learns only from the image being filled:
it trains a compact gated-convolution [1]_ U-Net with Fourier blocks [3]_
(:class:`~napari_inpaint.methods._networks.Inpainter`) on the known pixels of
the crop the engine hands over, then fills its real holes.  A network trained
with :func:`train_model` on a whole image or stack and saved with
:func:`save_model` fills other images of the same kind through
``model=<path>`` without training again.

Notes
-----
**Self-supervised training** (``learned``).  Values are normalised per
channel, :math:`\hat x = (x - p_1) / (p_{99} - p_1)` with the 1st and 99th
percentiles of the known pixels, and mapped back at the end.  Every step
draws a batch of ``crop_size`` windows (random position and flips) and for
each a synthetic hole :math:`S`: with probability 1/2 the real mask at another
random window (so the training holes have the shape, width and density of the
real ones), otherwise a random blob (``masks.debris``) and a curved stroke
(``masks.scratch``) about as wide as the real holes (in windows under 4
pixels on a side, which only tiny images have, random pixels).  A window
is used when the synthetic hole hides a known pixel and leaves another in
view; training needs a window with two known pixels and otherwise stops
with an error that says what to do.  With :math:`R` the real
holes in the window, :math:`m = \mathbb 1_{S \cup R}` and :math:`b` the
biharmonic fill of :math:`S \cup R`, the network sees the known values
outside :math:`S \cup R`, :math:`m` and :math:`b`, and predicts a
correction to :math:`b` (its last layer starts at zero, so a briefly trained
network gives the biharmonic fill, never much worse); the loss is the mean
absolute error on the pixels it could not see but whose truth is known,

.. math:: \mathcal L = \frac{1}{|S \setminus R|} \sum_{S \setminus R}
          \big\lvert b + g_\theta(\hat x \odot (1 - m), m, b) - \hat x \big\rvert,

minimised with Adam [2]_ whose learning rate follows a cosine decay over
the budget (``steps`` or ``seconds``, whichever runs out first).  The real
holes are then filled by the average of the predictions for the crop and its
three flips (a cheap test-time ensemble).

**Engine interplay.**  The engine calls the fill once per crop: each hole
with ``context`` pixels around it (default 128; holes whose crops touch share
one), one plane at a time (``channel_independent=False``, so all channels of
a plane come together).  ``learned`` trains once per call on that crop, with
the whole budget: a crop is the training set, and separate crops are
separate images.  Many scattered holes, or a stack, therefore cost the budget
several times; for them train once with :func:`train_model` on the whole
image or stack, save the network and fill with ``model=<path>`` (inference
only, fast).  The network is not cached between calls because the fill has
no handle on the ``inpaint`` call it belongs to.

**Reproducibility.**  Weights are initialised, noise drawn and training
windows chosen from the engine's seeded generator ``rng``; with
``seconds=0`` (no time limit) a run is repeatable.  A time budget makes the
number of steps, and so the result, depend on the machine's speed.  Torch
draws come from a :class:`torch.Generator` of the call's own, never from
torch's global RNG, so that runs in concurrent threads stay repeatable and
leave everybody else's seed alone.

References
----------
.. [1] J. Yu, Z. Lin, J. Yang, X. Shen, X. Lu and T. Huang, "Free-form image
       inpainting with gated convolution", ICCV 2019, arXiv:1806.03589.
.. [2] D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization",
       ICLR 2015, arXiv:1412.6980.
.. [3] R. Suvorov et al., "Resolution-robust large mask inpainting with
       Fourier convolutions", WACV 2022, arXiv:2109.07161.
"""

import functools
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint import masks
from napari_inpaint._registry import Param, fill_docs, register
from napari_inpaint.devices import DEVICE, select_device

if TYPE_CHECKING:
    import torch

_FORMAT = "napari-inpaint-learned"
_VERSION = 1
_BATCH = 4
# A training window must hold a known pixel to hide and another to see.
_MIN_KNOWN_PER_WINDOW = 2
# Windows narrower than this get training holes of random pixels instead of blobs and strokes.
_MIN_BLOB_WINDOW = 4
# Draws of a training window in a row that may fail before the sampler gives up.
_MAX_FAILED_DRAWS = 1000
_TOO_FEW_KNOWN_REMEDY = (
    "give more known pixels (with inpaint: a larger context, if the image is larger than the crop), "
    "use another method such as biharmonic, or fill with method 'learned' and model=<path> of a "
    "network that train_model trained on a larger image of the same kind"
)

Progress = Callable[[float, int], None] | None
Check = Callable[[], None] | None

_WIDTH_HELP = "channels of the network's first level (2x and 4x deeper); more is slower"


# --------------------------------------------------------------------------- helpers


def _normaliser(image: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset and scale from the 1st and 99th percentiles of the known pixels."""
    low, high = np.percentile(image[known], [1.0, 99.0], axis=0)
    scale = high - low
    # A flat channel keeps its values (scale 1) instead of dividing by zero.
    return low, np.where(scale > 0, scale, 1.0)


def _not_cancellable() -> None:
    """The ``check`` of a call that nobody can cancel."""


def _torch_generator(rng: np.random.Generator) -> "torch.Generator":
    """A torch generator of this call's own, seeded from ``rng``.

    Never torch's global RNG: it is shared by every thread, so concurrent
    calls would take each other's draws and stop being reproducible.
    """
    import torch

    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def _new_inpainter(channels: int, width: int, rng: np.random.Generator) -> "torch.nn.Module":
    from napari_inpaint.methods._networks import Inpainter, build

    return build(Inpainter, channels, width, generator=_torch_generator(rng))


def _hole_radius(holes: np.ndarray, check: Callable[[], None]) -> float:
    """Half-width of the widest real hole (largest distance to a known pixel), per plane."""
    widest = 0.0
    for plane in holes:
        check()
        if plane.any():
            widest = max(widest, float(ndi.distance_transform_edt(plane).max()))
    return widest


def _require_known_to_learn_from(holes: np.ndarray, size: tuple[int, int], check: Callable[[], None]) -> None:
    """Raise unless some training window of some plane holds enough known pixels to learn from.

    Cheap (sliding sums), and it stops at the first plane that has such a window.
    """
    height, width = size
    most = 0
    for plane in holes:
        check()
        table = np.pad((~plane).cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))  # summed-area table
        top, bottom = table[:-height], table[height:]
        in_windows = bottom[:, width:] - top[:, width:] - bottom[:, :-width] + top[:, :-width]
        most = max(most, int(in_windows.max()))
        if most >= _MIN_KNOWN_PER_WINDOW:
            return
    raise ValueError(
        f"too few known pixels to learn from: training needs a {height}x{width} window (crop_size, or "
        f"less in a smaller image) holding at least {_MIN_KNOWN_PER_WINDOW} known pixels, one to hide "
        f"and one to see, but no window of these {holes.shape[1]}x{holes.shape[2]} pixels holds more "
        f"than {most}; " + _TOO_FEW_KNOWN_REMEDY
    )


def _training_hole(
    holes: np.ndarray, shape: tuple[int, int], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """A synthetic hole for one training window: a window of the real mask, or a blob and a stroke."""
    if rng.random() < 0.5 and holes.any():
        plane = holes[rng.integers(holes.shape[0])]
        top, left = rng.integers(plane.shape[0] - shape[0] + 1), rng.integers(plane.shape[1] - shape[1] + 1)
        window = plane[top : top + shape[0], left : left + shape[1]]
        window = window[:: rng.choice((-1, 1)), :: rng.choice((-1, 1))]
        if window.any():
            return window
    size = min(shape)
    if size < _MIN_BLOB_WINDOW:
        # A blob or stroke (at least 1 px wide) would cover most of so small a window: hide random pixels.
        return rng.random(shape) < 0.5
    widest = float(np.clip(radius if radius > 0 else size / 8, 1.0, size / 4))
    hole = masks.debris(shape, rng.uniform(1.0, widest), seed=rng)
    if rng.random() < 0.5:
        hole |= masks.scratch(shape, width=rng.uniform(1.0, 2 * widest), seed=rng)
    return hole


def _smooth(pixels: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """The biharmonic fill of ``hidden`` in ``pixels`` (H, W, C): the base the network corrects."""
    from napari_inpaint.methods.diffusion import biharmonic

    return biharmonic(np.where(hidden[..., None], 0.0, pixels), hidden) if hidden.any() else pixels


def _batch(
    values: np.ndarray, holes: np.ndarray, size: tuple[int, int], radius: float, rng: np.random.Generator,
    check: Callable[[], None],
) -> tuple:
    """Inputs (values, hole indicator, smooth fill), targets and loss weights of one batch (float32, NCHW).

    Raises
    ------
    ValueError
        When :data:`_MAX_FAILED_DRAWS` windows in a row have no known pixel
        to hide or none left to see (too few, or too scattered, known pixels).
    """
    count, height, width, channels = values.shape
    arrays = {name: [] for name in ("inputs", "hidden", "smooth", "targets", "weights")}
    failed = 0
    while len(arrays["inputs"]) < _BATCH:
        check()
        if failed == _MAX_FAILED_DRAWS:
            raise ValueError(
                f"too few known pixels to learn from: {failed} training windows in a row had no known "
                f"pixel to hide or none left to see ({int((~holes).sum())} of {holes.size} pixels are "
                "known); " + _TOO_FEW_KNOWN_REMEDY
            )
        plane = rng.integers(count)
        top, left = rng.integers(height - size[0] + 1), rng.integers(width - size[1] + 1)
        flip = (slice(None, None, rng.choice((-1, 1))), slice(None, None, rng.choice((-1, 1))))
        window = (plane, slice(top, top + size[0]), slice(left, left + size[1]))
        real = holes[window][flip]
        synthetic = _training_hole(holes, size, radius, rng) & ~real
        hidden = real | synthetic
        if not synthetic.any() or hidden.all():  # nothing to learn from, or nothing to see
            failed += 1
            continue
        failed = 0
        pixels = values[window][flip]
        arrays["inputs"].append(np.where(hidden[..., None], 0.0, pixels))
        arrays["hidden"].append(hidden[..., None])
        arrays["smooth"].append(_smooth(pixels, hidden))
        arrays["targets"].append(pixels)
        arrays["weights"].append(synthetic[..., None])
    return tuple(np.ascontiguousarray(np.moveaxis(np.stack(a), -1, 1), np.float32) for a in arrays.values())


def _fit(
    net, values: np.ndarray, holes: np.ndarray, *, steps: int, seconds: float, crop_size: int,
    learning_rate: float, device, rng: np.random.Generator, progress: Progress, check: Callable[[], None],
) -> None:
    """Train ``net`` to fill synthetic holes in the known pixels of ``values`` (N, H, W, C)."""
    import torch

    size = (min(crop_size, values.shape[1]), min(crop_size, values.shape[2]))
    _require_known_to_learn_from(holes, size, check)
    radius = _hole_radius(holes, check)
    net.to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    start = time.perf_counter()
    for step in range(steps):
        check()
        elapsed = time.perf_counter() - start
        if seconds > 0 and elapsed >= seconds:
            break
        done = max(step / steps, elapsed / seconds if seconds > 0 else 0.0)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * 0.5 * (1.0 + math.cos(math.pi * done))
        arrays = _batch(values, holes, size, radius, rng, check)
        inputs, hidden, smooth, targets, weights = (torch.from_numpy(a).to(device) for a in arrays)
        error = (net(inputs, hidden, smooth) - targets).abs() * weights
        loss = error.sum() / (weights.sum() * targets.shape[1]).clamp(min=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None:
            # Under a time limit that will end training first, the share of the time used.
            used = steps * (time.perf_counter() - start) / seconds if seconds > 0 else 0.0
            progress(min(steps, max(step + 1, used)), steps)
    net.eval()


def _predict(net, values: np.ndarray, holes: np.ndarray, device, check: Callable[[], None]) -> np.ndarray:
    """The network's fill of one normalised plane (H, W, C), averaged over its four flips."""
    import torch

    def tensor(array: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), np.float32))[None].to(device)

    known = np.where(holes[..., None], 0.0, values)
    batch = [tensor(known), tensor(holes[..., None]), tensor(_smooth(values, holes))]
    total = 0.0
    with torch.no_grad():
        for dims in ((), (2,), (3,), (2, 3)):
            check()
            total = total + net(*(a.flip(dims) for a in batch)).flip(dims)
    return np.moveaxis((total / 4)[0].cpu().numpy().astype(np.float64), 0, -1)


def _check_image(image: np.ndarray, mask: np.ndarray) -> None:
    if image.shape[:-1] != mask.shape or mask.ndim != 2:
        raise ValueError(
            f"expected a 2D mask and an image of shape mask.shape + (C,); got {image.shape} and {mask.shape}"
        )


# --------------------------------------------------------------------------- public API


@fill_docs
def train_model(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    channel_axis: int | None = None,
    steps: int = 2000,
    seconds: float = 60.0,
    crop_size: int = 64,
    learning_rate: float = 2e-3,
    width: int = 16,
    device: str = "auto",
    seed: int = 0,
    progress: Progress = None,
    check: Check = None,
) -> "torch.nn.Module":
    """Train an inpainting network on the known pixels of an image or a stack.

    Parameters
    ----------
    image : ndarray
        A 2D image or a stack of them (``(..., H, W)``), with an optional
        channel axis; any integer or floating dtype.
    mask : ndarray of bool, optional
        True on bad pixels, which are never used as training targets.  The
        image's shape without its channel axis, or anything that broadcasts
        to it (e.g. one plane's mask for a whole stack).  Default: all known.
    channel_axis : int, optional
        Axis of channels; by default a last axis of length 3 or 4 that the
        mask lacks is taken as RGB(A), as :func:`napari_inpaint.inpaint` does.
    steps : int
        Training steps (batches of 4 windows).
    seconds : float
        Stop after this many seconds; 0 for no time limit (repeatable).
    crop_size : int
        Side of the training windows.
    learning_rate : float
        Initial Adam learning rate (cosine decay to zero).
    width : int
        Channels of the network's first level.
    %(device)s
    seed : int
        Seeds the weights and the training windows.
    progress : callable, optional
        ``progress(done, steps)`` after every step: ``done`` is the steps
        done, or, when the time limit will end training first, ``steps``
        times the share of ``seconds`` used (a float).
    check : callable, optional
        Called often (before every step, every training window drawn and
        every plane prepared); raise from it to stop training.

    Returns
    -------
    torch.nn.Module
        The trained network, in evaluation mode; see :func:`save_model`.

    Raises
    ------
    ValueError
        If the image is not 2D or a stack, or has too few known pixels to
        learn from: a plane without any, or no ``crop_size`` window with at
        least two.

    Notes
    -----
    Each plane is normalised with its own known-pixel percentiles (see the
    module notes); ``inpaint(..., method="learned", model=path)`` normalises
    each crop it fills the same way.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((3, 32, 32))  # a small stack
    >>> net = train_model(image, steps=2, seconds=0, crop_size=16, width=4, device="cpu")
    >>> net.config["channels"], net.config["width"]
    (1, 4)
    """
    from napari_inpaint._layout import resolve_channel_axis

    check = _not_cancellable if check is None else check
    image = np.asarray(image)
    mask = np.zeros((), bool) if mask is None else np.asarray(mask, dtype=bool)
    mask_shape = mask.shape if mask.ndim else image.shape[:-1]
    axis = resolve_channel_axis(image.shape, mask_shape, channel_axis)
    planes = image[..., None] if axis is None else np.moveaxis(image, axis, -1)
    if planes.ndim < 3:
        raise ValueError(f"train_model needs a 2D image or a stack of them; got shape {image.shape}")
    values = planes.reshape((-1,) + planes.shape[-3:]).astype(np.float64)
    holes = np.broadcast_to(mask, planes.shape[:-1]).reshape(values.shape[:-1])
    known = ~holes
    if not known.any(axis=(1, 2)).all():
        raise ValueError("every plane needs some known (unmasked) pixels to learn from")
    for plane in range(values.shape[0]):
        check()
        low, scale = _normaliser(values[plane], known[plane])
        values[plane] = (values[plane] - low) / scale
    values[holes] = 0.0
    rng = np.random.default_rng(seed)
    net = _new_inpainter(values.shape[-1], width, rng)
    _fit(
        net, values.astype(np.float32), holes, steps=steps, seconds=seconds, crop_size=crop_size,
        learning_rate=learning_rate, device=select_device(device), rng=rng, progress=progress, check=check,
    )
    return net


def save_model(net: "torch.nn.Module", path: str | os.PathLike) -> None:
    """Save a network from :func:`train_model` (weights and architecture) to ``path``.

    Parameters
    ----------
    net : torch.nn.Module
        A network returned by :func:`train_model` or :func:`load_model`.
    path : str or path-like
        File to write (conventionally ``.pt``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> net = train_model(np.zeros((16, 16)), steps=1, seconds=0, crop_size=16, width=4, device="cpu")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.pt"
    >>> save_model(net, path)
    >>> load_model(path).config == net.config
    True
    """
    import torch

    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    saved = {"format": _FORMAT, "version": _VERSION, "config": dict(net.config), "state": state}
    torch.save(saved, os.fspath(path))


def load_model(path: str | os.PathLike, device: str = "auto") -> "torch.nn.Module":
    """Load a network saved by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
        File written by :func:`save_model`.
    device : str
        PyTorch device for the network.

    Returns
    -------
    torch.nn.Module
        The network in evaluation mode.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a napari-inpaint learned model.

    Examples
    --------
    See :func:`save_model`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no model file {path!r}; create one with napari_inpaint.methods.learned.save_model"
        )
    stat = os.stat(path)
    return _load_cached(os.path.abspath(path), stat.st_mtime_ns, stat.st_size, str(select_device(device)))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int, device: str) -> "torch.nn.Module":
    # Keyed by modification time and size, so a rewritten file is read again; every
    # crop of an inpaint() call then reuses one loaded network.
    import torch

    from napari_inpaint.methods._networks import Inpainter

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path!r} is not a napari-inpaint learned model ({error})") from error
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise ValueError(f"{path!r} is not a napari-inpaint learned model (save one with save_model)")
    if saved.get("version") != _VERSION:
        raise ValueError(
            f"{path!r} has model format version {saved.get('version')}; this version reads {_VERSION}"
        )
    # Built on the meta device: no initial weights drawn from torch's global RNG, the saved ones are assigned.
    with torch.device("meta"):
        net = Inpainter(**saved["config"])
    net.load_state_dict(saved["state"], assign=True)
    return net.to(device).eval()


# --------------------------------------------------------------------------- methods


@register(
    "learned",
    summary="Self-supervised deep inpainting: trains a small network on the image's own known pixels",
    family="network",
    artifacts=("texture", "debris", "large-holes", "scratches"),
    ndims=(2,),
    params=(
        Param("steps", int, 2000, "training steps (batches of 4 windows)", 1, 1_000_000),
        Param("seconds", float, 60.0, "time limit per crop (s); 0 = none, repeatable", 0.0, 86_400.0),
        Param("crop_size", int, 64, "side of the training windows", 16, 512),
        Param("learning_rate", float, 2e-3, "initial Adam learning rate (cosine decay)", 1e-5, 1.0),
        Param("width", int, 16, _WIDTH_HELP, 4, 128),
        Param("context", int, 128, "known pixels around each hole to learn from", 16, 4096),
        DEVICE,
        Param("model", str, "", "file of a network saved with save_model; empty: train on the image"),
    ),
    margin=lambda params: params["context"],
    channel_independent=False,
    needs_torch=True,
)
def learned(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    steps: int = 2000,
    seconds: float = 60.0,
    crop_size: int = 64,
    learning_rate: float = 2e-3,
    width: int = 16,
    context: int = 128,
    device: str = "auto",
    model: str = "",
    rng: np.random.Generator | None = None,
    check: Check = None,
    progress: Progress = None,
) -> np.ndarray:
    """Fill the holes with a network trained on the crop's known pixels (or loaded from ``model``).

    Parameters
    ----------
    %(image_mask)s
    steps, seconds, crop_size, learning_rate, width
        Training budget and network, see :func:`train_model`; unused with ``model``.
    context : int
        Used by the engine only: pixels of known context cropped around each
        hole, i.e. the training data.
    %(device)s
    model : str
        Path of a network saved with :func:`save_model`; empty to train one.
    rng : numpy.random.Generator, optional
        Seeds the weights and the training windows.
    check : callable, optional
        Called often while training and predicting; raises to cancel.
    progress : callable, optional
        ``progress(done, steps)`` after every training step, see :func:`train_model`.

    Returns
    -------
    ndarray
        ``image`` with the masked pixels replaced by the network's prediction.

    Raises
    ------
    ValueError
        If ``model`` was trained for another number of channels, or, without
        ``model``, the crop has too few known pixels to learn from (no
        ``crop_size`` window with at least two).

    Notes
    -----
    Any size works, down to a single row or column: training windows
    shrink to the crop, and the network pads its input to a multiple of 8.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> image = np.tile(np.sin(np.arange(48) / 2.0), (48, 1))
    >>> mask = np.zeros(image.shape, bool); mask[20:26, 20:26] = True
    >>> filled = inpaint(image, mask, "learned", steps=5, seconds=0, crop_size=32, width=4, device="cpu")
    >>> bool(np.array_equal(filled[~mask], image[~mask]))
    True
    """
    _check_image(image, mask)
    rng = np.random.default_rng(0) if rng is None else rng
    check = _not_cancellable if check is None else check
    torch_device = select_device(device)
    known = ~mask
    low, scale = _normaliser(image, known)
    values = np.where(mask[..., None], 0.0, (image - low) / scale)
    channels = image.shape[-1]
    if model:
        net = load_model(model, str(torch_device))
        if net.config["channels"] != channels:
            raise ValueError(
                f"model {model!r} was trained on images with {net.config['channels']} channel(s); "
                f"this image has {channels}"
            )
    else:
        net = _new_inpainter(channels, width, rng)
        _fit(
            net, values[None].astype(np.float32), mask[None], steps=steps, seconds=seconds,
            crop_size=crop_size, learning_rate=learning_rate, device=torch_device, rng=rng,
            progress=progress, check=check,
        )
    filled = _predict(net, values, mask, torch_device, check)
    return np.where(mask[..., None], filled * scale + low, image)
