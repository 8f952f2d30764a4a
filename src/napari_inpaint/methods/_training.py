"""Self-supervised training of the inpainting network (:mod:`napari_inpaint.methods.learned`).

Windows of the known pixels get synthetic holes; the network learns to fill
them.  Shared by ``learned`` (which trains once per ``inpaint`` call) and
:func:`~napari_inpaint.methods.learned.train_model`, with optional reference
channels (an aligned neighbouring plane), and by ``dip`` for its helpers.
"""

import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint import masks

if TYPE_CHECKING:
    import torch

BATCH = 4
# A training window must hold a known pixel to hide and another to see.
_MIN_KNOWN_PER_WINDOW = 2
# Windows narrower than this get training holes of random pixels instead of blobs and strokes.
_MIN_BLOB_WINDOW = 4
# Draws of a training window in a row that may fail before the sampler gives up.
_MAX_FAILED_DRAWS = 1000
TOO_FEW_KNOWN_REMEDY = (
    "give more known pixels (with inpaint: a larger context, if the image is larger than the crop), "
    "use another method such as biharmonic, or fill with method 'learned' and model=<path> of a "
    "network that train_model trained on a larger image of the same kind"
)

Progress = Callable[[float, int], None] | None
Check = Callable[[], None] | None
# The version of the model files save_model_file writes (both learned's and deepcr's).
MODEL_FILE_VERSION = 1


# Held-out pixels ("probes", see hold_out): known pixels hidden like the real holes while the network trains, on
# which its fill and the base fill are then compared.  About this many pixels are held out (a prototype's score
# was noisy with ~500 and steady with ~1000), at most this share of the known pixels, ...
PROBE_PIXELS = 2048
PROBE_SHARE = 0.1
# ... as copies of real holes; a hole longer than this is held out as a piece of this side.
_PROBE_LONGEST, _PROBE_PIECE = 80, 48
# Random positions tried per hole copy, planes (with holes) whose holes are copied.
_PROBE_TRIES, _PROBE_PLANES = 20, 16
# Copies at least (room allowing): one copy of a single large hole is a noisy judge.
_MIN_PROBES = 2
# The network's fill is used when its mean squared error on the probes is at least this share below the base
# fill's (1 %: a gain of at least 0.044 dB); otherwise the base fill is.
MARGIN = 0.01
# Side of the tiles the probes are scored in (each with its context around it), unless the whole plane is cheaper.
_SCORE_TILE = 256


@dataclass
class TrainingData:
    """Normalised planes to learn from: ``values`` (N, H, W, C) float32, zero where ``holes`` (N, H, W);
    ``references`` (N, H, W, C) float32 or None; ``probes`` (N, H, W) bool or None: known pixels held out
    (zero in ``values`` too), never seen by the network nor used as targets."""

    values: np.ndarray
    holes: np.ndarray
    references: np.ndarray | None = None
    probes: np.ndarray | None = None

    def unseen(self, index) -> np.ndarray:
        """The pixels of ``holes[index]`` and ``probes[index]``: those the network never sees."""
        return self.holes[index] if self.probes is None else self.holes[index] | self.probes[index]


def normaliser(image: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset and scale from the 1st and 99th percentiles of the known pixels."""
    low, high = np.percentile(image[known], [1.0, 99.0], axis=0)
    scale = high - low
    # A flat channel keeps its values (scale 1) instead of dividing by zero.
    return low, np.where(scale > 0, scale, 1.0)


def normalised(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) mapped by :func:`normaliser` of its known pixels."""
    low, scale = normaliser(image, known)
    return (image - low) / scale


def not_cancellable() -> None:
    """The ``check`` of a call that nobody can cancel."""


def torch_generator(rng: np.random.Generator) -> "torch.Generator":
    """A torch generator of this call's own, seeded from ``rng``.

    Never torch's global RNG: it is shared by every thread, so concurrent
    calls would take each other's draws and stop being reproducible.
    """
    import torch

    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def check_image(image: np.ndarray, mask: np.ndarray) -> None:
    if image.shape[:-1] != mask.shape or mask.ndim != 2:
        raise ValueError(
            f"expected a 2D mask and an image of shape mask.shape + (C,); got {image.shape} and {mask.shape}"
        )


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
        f"than {most}; " + TOO_FEW_KNOWN_REMEDY
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


def base_fill(pixels: np.ndarray, hidden: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The fill of ``hidden`` in ``pixels`` (H, W, C) that the network corrects.

    The biharmonic fill, or with a reference the ``guided`` fill (the
    reference's structure matched to the surroundings): an untrained network
    is then as good as ``guided``, and training learns where to trust the
    reference less.
    """
    if not hidden.any():
        return pixels
    known = np.where(hidden[..., None], 0.0, pixels)
    if reference is None:
        from napari_inpaint.methods.diffusion import biharmonic

        return biharmonic(known, hidden)
    from napari_inpaint.methods.guided import guided

    return guided(known, hidden, reference=reference)


def _batch(
    data: TrainingData, size: tuple[int, int], radius: float, rng: np.random.Generator, check: Callable[[], None]
) -> tuple:
    """One batch, float32 NCHW: the network's inputs (values, holes, base fill[, reference]), targets, weights.

    Raises
    ------
    ValueError
        When :data:`_MAX_FAILED_DRAWS` windows in a row have no known pixel
        to hide or none left to see (too few, or too scattered, known pixels).
    """
    count, height, width, _ = data.values.shape
    names = ("inputs", "hidden", "smooth") + (("reference",) if data.references is not None else ())
    arrays = {name: [] for name in (*names, "targets", "weights")}
    failed = 0
    while len(arrays["inputs"]) < BATCH:
        check()
        if failed == _MAX_FAILED_DRAWS:
            known = int((~data.unseen(slice(None))).sum())
            raise ValueError(
                f"too few known pixels to learn from: {failed} training windows in a row had no known "
                f"pixel to hide or none left to see ({known} of {data.holes.size} pixels are known); "
                + TOO_FEW_KNOWN_REMEDY
            )
        plane = rng.integers(count)
        top, left = rng.integers(height - size[0] + 1), rng.integers(width - size[1] + 1)
        flip = (slice(None, None, rng.choice((-1, 1))), slice(None, None, rng.choice((-1, 1))))
        window = (plane, slice(top, top + size[0]), slice(left, left + size[1]))
        unseen = data.unseen(window)[flip]  # the real holes and the probes: never seen, never targets
        synthetic = _training_hole(data.holes, size, radius, rng) & ~unseen
        hidden = unseen | synthetic
        if not synthetic.any() or hidden.all():  # nothing to learn from, or nothing to see
            failed += 1
            continue
        failed = 0
        pixels = data.values[window][flip]
        guide = None if data.references is None else data.references[window][flip]
        arrays["inputs"].append(np.where(hidden[..., None], 0.0, pixels))
        arrays["hidden"].append(hidden[..., None])
        arrays["smooth"].append(base_fill(pixels, hidden, guide))
        if guide is not None:
            arrays["reference"].append(guide)
        arrays["targets"].append(pixels)
        arrays["weights"].append(synthetic[..., None])
    return tuple(np.ascontiguousarray(np.moveaxis(np.stack(a), -1, 1), np.float32) for a in arrays.values())


def fit(
    net, data: TrainingData, *, steps: int, seconds: float, crop_size: int, learning_rate: float, device,
    rng: np.random.Generator, progress: Progress, check: Callable[[], None],
) -> None:
    """Train ``net`` to fill synthetic holes in the known pixels of ``data``."""
    import torch

    size = (min(crop_size, data.values.shape[1]), min(crop_size, data.values.shape[2]))
    _require_known_to_learn_from(data.unseen(slice(None)), size, check)
    radius = _hole_radius(data.holes, check)
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
        *inputs, targets, weights = (torch.from_numpy(a).to(device) for a in _batch(data, size, radius, rng, check))
        error = (net(*inputs) - targets).abs() * weights
        loss = error.sum() / (weights.sum() * targets.shape[1]).clamp(min=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None:
            # Under a time limit that will end training first, the share of the time used.
            used = steps * (time.perf_counter() - start) / seconds if seconds > 0 else 0.0
            progress(min(steps, max(step + 1, used)), steps)
    net.eval()


def predict(
    net, values: np.ndarray, holes: np.ndarray, reference: np.ndarray | None, check: Callable[[], None],
    base: np.ndarray | None = None,
) -> np.ndarray:
    """The network's fill of one normalised plane (H, W, C), averaged over its four flips.

    ``base``: the :func:`base_fill` of ``holes``, when it is already known.
    """
    import torch

    device = next(net.parameters()).device

    def tensor(array: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), np.float32))[None].to(device)

    known = np.where(holes[..., None], 0.0, values)
    base = base_fill(values, holes, reference) if base is None else base
    batch = [tensor(known), tensor(holes[..., None]), tensor(base)]
    if reference is not None:
        batch.append(tensor(reference))
    total = 0.0
    with torch.no_grad():
        for dims in ((), (2,), (3,), (2, 3)):
            check()
            total = total + net(*(a.flip(dims) for a in batch)).flip(dims)
    return np.moveaxis((total / 4)[0].cpu().numpy().astype(np.float64), 0, -1)


# --------------------------------------------------------------------------- held-out pixels


def hold_out(
    holes: np.ndarray, rng: np.random.Generator, check: Callable[[], None], crop_size: int,
    pixels: int = PROBE_PIXELS, share: float = PROBE_SHARE,
) -> np.ndarray | None:
    """Probes (N, H, W) bool: known pixels to hide as copies of the real ``holes`` (N, H, W), or None.

    Each probe is a real hole (a piece :data:`_PROBE_PIECE` pixels wide of
    one longer than :data:`_PROBE_LONGEST`) moved by a random offset onto
    known pixels of its plane, at least 1 pixel apart from the real holes
    and the other probes; holes are copied in random order (again and
    again: one large hole gives several probes) until about ``pixels`` are
    held out in :data:`_MIN_PROBES` copies at least, never more than
    ``share`` of the known pixels, and never so
    many that no ``crop_size`` window is left to learn from.  None when no
    copy fits (no holes, or too few known pixels).
    """
    count, height, width = holes.shape
    damaged = [i for i in range(count) if holes[i].any()]
    room = int(share * (~holes[damaged]).sum()) if damaged else 0
    if room == 0:
        return None
    around = np.ones((3, 3), bool)
    shapes = []  # (plane, hole mask cropped to its box)
    for plane in rng.permutation(damaged)[:_PROBE_PLANES]:
        check()
        labels, _ = ndi.label(holes[plane], structure=around)
        for number, box in enumerate(ndi.find_objects(labels), start=1):
            shapes.append((int(plane), labels[box] == number))
    probes = np.zeros(holes.shape, bool)
    blocked = {plane: ndi.binary_dilation(holes[plane], around) for plane in {p for p, _ in shapes}}
    held = copies = 0
    while held < pixels or copies < _MIN_PROBES:
        placed = False
        for index in rng.permutation(len(shapes)):
            check()
            plane, shape = shapes[index]
            if max(shape.shape) > _PROBE_LONGEST:  # a piece around one of its pixels
                row, column = np.argwhere(shape)[rng.integers(shape.sum())]
                top = int(np.clip(row - _PROBE_PIECE // 2, 0, max(0, shape.shape[0] - _PROBE_PIECE)))
                left = int(np.clip(column - _PROBE_PIECE // 2, 0, max(0, shape.shape[1] - _PROBE_PIECE)))
                shape = shape[top : top + _PROBE_PIECE, left : left + _PROBE_PIECE]
            area = int(shape.sum())
            if held + area > room or shape.shape[0] > height or shape.shape[1] > width:
                continue
            for _ in range(_PROBE_TRIES):
                top, left = rng.integers(height - shape.shape[0] + 1), rng.integers(width - shape.shape[1] + 1)
                box = (slice(top, top + shape.shape[0]), slice(left, left + shape.shape[1]))
                if not (blocked[plane][box] & shape).any():
                    probes[plane][box] |= shape
                    grown = (slice(max(0, top - 1), top + shape.shape[0] + 1),
                             slice(max(0, left - 1), left + shape.shape[1] + 1))
                    blocked[plane][grown] |= ndi.binary_dilation(probes[plane][grown], around)
                    held, copies, placed = held + area, copies + 1, True
                    break
            if held >= pixels and copies >= _MIN_PROBES:
                break
        if not placed:
            break
    if not held:
        return None
    size = (min(crop_size, height), min(crop_size, width))
    try:
        _require_known_to_learn_from(holes | probes, size, check)
    except ValueError:  # the probes would leave nothing to learn from: train on every known pixel
        return None
    return probes


@dataclass(frozen=True)
class ProbeScore:
    """How the network's fill and the base fill did on the held-out pixels (mean squared errors, normalised)."""

    pixels: int
    base_error: float
    network_error: float

    @property
    def gain_db(self) -> float:
        """The network's PSNR gain over the base fill on the probes, in dB (inf, -inf or nan when an error is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(10 * np.log10(np.float64(self.base_error) / np.float64(self.network_error)))

    @property
    def beaten(self) -> bool:
        """Whether the network beat the base fill by :data:`MARGIN` (its error at least 1 % lower)."""
        return self.network_error <= (1 - MARGIN) * self.base_error and self.base_error > 0


def _score_windows(probes: np.ndarray, margin: int) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """(window, tile within it) pairs that cover the ``probes`` of a plane: tiles with ``margin`` around them.

    The whole plane when that is smaller than the tiles and their margins.
    """
    height, width = probes.shape
    pairs, area = [], 0
    for top in range(0, height, _SCORE_TILE):
        for left in range(0, width, _SCORE_TILE):
            tile = (slice(top, min(height, top + _SCORE_TILE)), slice(left, min(width, left + _SCORE_TILE)))
            if not probes[tile].any():
                continue
            window = (slice(max(0, top - margin), min(height, top + _SCORE_TILE + margin)),
                      slice(max(0, left - margin), min(width, left + _SCORE_TILE + margin)))
            inner = tuple(slice(t.start - w.start, t.stop - w.start) for t, w in zip(tile, window))
            pairs.append((window, inner))
            area += (window[0].stop - window[0].start) * (window[1].stop - window[1].start)
    if area >= height * width:
        whole = (slice(0, height), slice(0, width))
        return [(whole, whole)]
    return pairs


def score_probes(
    net, data: TrainingData, truth: np.ndarray, context: int, check: Callable[[], None]
) -> ProbeScore:
    """Score the network's fill and the base fill on the probes of ``data`` (whose values are ``truth``).

    ``truth`` (P, C): the values of the probe pixels, in the order of
    ``data.values[data.probes]``.  Each probe is filled as the fills of
    ``learned`` are: with ``context`` known pixels around it, the real holes
    and the other probes hidden, averaged over the four flips.
    """
    base_error = network_error = 0.0
    counted = 0
    first = 0
    for plane in range(data.probes.shape[0]):
        probes = data.probes[plane]
        number = int(probes.sum())
        if not number:
            continue
        values = data.values[plane].astype(np.float64)
        values[probes] = truth[first : first + number]
        first += number
        hidden = data.holes[plane] | probes
        for window, inner in _score_windows(probes, context):
            check()
            pixels = values[window]
            reference = None if data.references is None else data.references[plane][window].astype(np.float64)
            base = base_fill(pixels, hidden[window], reference)
            filled = predict(net, pixels, hidden[window], reference, check, base=base)
            scored = np.zeros(hidden[window].shape, bool)
            scored[inner] = probes[window][inner]
            base_error += float(((base - pixels)[scored] ** 2).sum())
            network_error += float(((filled - pixels)[scored] ** 2).sum())
            counted += int(scored.sum())
    values_per_pixel = max(1, counted * data.values.shape[-1])
    return ProbeScore(counted, base_error / values_per_pixel, network_error / values_per_pixel)


# --------------------------------------------------------------------------- model files


def save_model_file(net: "torch.nn.Module", path: str | os.PathLike, file_format: str) -> None:
    """Write ``net``'s architecture (``net.config``) and weights, on the CPU, to ``path``, tagged ``file_format``."""
    import torch

    state = {key: value.detach().cpu() for key, value in net.state_dict().items()}
    saved = {"format": file_format, "version": MODEL_FILE_VERSION, "config": dict(net.config), "state": state}
    torch.save(saved, os.fspath(path))


def load_model_file(
    path: str | os.PathLike,
    device: str,
    file_format: str,
    *,
    what: str,
    writer: str,
    assemble: Callable[[dict, dict], "torch.nn.Module"],
) -> "torch.nn.Module":
    """The network of a file :func:`save_model_file` wrote as ``file_format``, in evaluation mode on ``device``.

    Loaded once per file version and device: ``what`` names such a file in
    errors ("a tuned deepCR network"), ``writer`` the function that writes
    one, ``assemble(config, state)`` builds the network.
    """
    from napari_inpaint.models.devices import select_device

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file {path!r}; write one with {writer}")
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, str(select_device(device)))
    return _load_model_file(*key, file_format, what, writer, assemble)


@functools.lru_cache(maxsize=8)
def _load_model_file(path, mtime_ns, size, device, file_format, what, writer, assemble) -> "torch.nn.Module":
    # Keyed by modification time and size, so a rewritten file is read again; every crop of an
    # inpaint() call then reuses one loaded network.
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path!r} is not {what} ({error})") from error
    if not isinstance(saved, dict) or saved.get("format") != file_format:
        raise ValueError(f"{path!r} is not {what} (save one with {writer})")
    if saved.get("version") != MODEL_FILE_VERSION:
        raise ValueError(
            f"{path!r} has model file version {saved.get('version')}; this version reads {MODEL_FILE_VERSION}"
        )
    return assemble(saved["config"], saved["state"]).to(device).eval()
