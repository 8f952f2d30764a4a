"""Self-validation: holes like the real ones, hidden in known pixels, filled, and compared with the truth.

One stage of a job, run once per call before any fill (by both executors,
in the caller's thread): :func:`place` copies the job's real holes onto known
pixels of a few windows of its planes (each copy moved by a random offset,
at least one pixel from real holes and other copies, a hole longer than
48 pixels cut to a 48-pixel piece), keeping the real holes masked so that
every probe sees the context real holes see.  :func:`fill_probes` fills the
probes of those windows with any method through the engine's own units
(the job's reference, clip and noise included), and returns the errors
there.  They serve ``method="auto"`` (the method with the smallest error
per kind of hole, :mod:`napari_inpaint.methods.auto`) and every uncertainty
(:mod:`napari_inpaint.engine.calibration`).
"""

import dataclasses
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint.engine.calibration import Calibration, local_scale
from napari_inpaint.engine.hooks import Hooks
from napari_inpaint.engine.planning import Window
from napari_inpaint.engine.reference import _ADJACENT_REACH
from napari_inpaint.engine.unit import Unit, _to_dtype, fill_in_memory
from napari_inpaint.masks import HOLE_CLASSES, hole_kinds
from napari_inpaint.methods import get_method

#: Probe pixels aimed at per call (over every window): with ~500 the choice of a method swings between
#: seeds, with ~1000 it settles (measured over 120 images).
PROBE_PIXELS = 2000
# Planes (or volumes) of a stack that hold probes, and the side of the window probed in each: its pixels
# at most this side's square (cube), an axis shorter than the side taken whole and the others longer (a thin
# volume's window covers more of its planes, so its probes see more than a corner of them).
_PLANES = 3
_WINDOW = {2: 384, 3: 64}
# A hole longer than this is copied as a piece of this side.
_PIECE = {2: 48, 3: 24}
_TRIES = 30
# Probes keep this far from the window's edge, where their context would be cut.
_EDGE = 4
# At most one pixel in this many of a copy may fall on or next to a real hole (and is left out).
_CROSSING = 4
# Each kind of hole gets this many copies at least (a few copies of a large hole judge badly), within this
# many times its share of the pixels.  8 copies at least gave strokes and debris 2-4 times their share, and
# auto 2 % more of the oracle's gain on the benchmark for 1.07x its time; 4 copies missed a clear winner on a
# stack (docs/uncertainty.md).
_MIN_COPIES = 6
_MOST = 4
# Real holes farther than this from every probe along some axis (outside the square, or cube, of this reach
# around each probe pixel) are context, filled once (see ``place``).
_CONTEXT = 12
# One-pixel holes are copied this many at a time.
_BATCH = 64


@dataclass(frozen=True)
class ProbeWindow:
    """A window of one plane of the job, with probes hidden in its known pixels.

    ``image`` holds the plane's window, channels last, and for
    ``reference="adjacent"`` its neighbouring planes' (``(K, *box, C)``,
    the plane at ``own``); ``masks`` their real holes (of the plane, those
    within 12 pixels of a probe along every axis: farther ones are filled by
    harmonic diffusion in ``image``, as known context); ``probes`` the hidden
    holes of the plane, ``kinds`` the kinds of the holes they copy (:func:`scatter`);
    ``reference`` the window of a reference array.  At the probe pixels
    (in ``np.nonzero(probes)`` order): ``distance`` into the hole, local
    ``scale`` (:func:`~napari_inpaint.engine.calibration.local_scale`) and
    ``numbers``, the probe each belongs to (from 1).
    """

    plane: tuple[int, ...]
    box: tuple[slice, ...]
    image: np.ndarray
    masks: np.ndarray
    own: int
    probes: np.ndarray
    kinds: np.ndarray
    reference: np.ndarray | None
    distance: np.ndarray | None = None
    scale: np.ndarray | None = None
    numbers: np.ndarray | None = None


@dataclass(frozen=True)
class ProbeErrors:
    """The errors of one method's fills at the probe pixels (of every window, in order).

    ``errors`` and ``scale`` (n, C): the absolute error and the local scale
    (:func:`~napari_inpaint.engine.calibration.local_scale`) in the image's
    units; ``distance`` (n,): the distance into the hole (these two None
    when the probes were placed unscaled, see :func:`place`); ``kinds`` (n,):
    1 + the index of the hole's kind in :data:`~napari_inpaint.masks.HOLE_CLASSES`;
    ``holes`` (n,): which probe (hole) each pixel belongs to, numbered over
    every window.
    """

    errors: np.ndarray
    distance: np.ndarray | None
    scale: np.ndarray | None
    kinds: np.ndarray
    holes: np.ndarray

    def mse(self) -> dict[str, tuple[float, int, np.ndarray, np.ndarray]]:
        """Per kind of hole (and ``"all"``): the mean squared error, the probe pixels it holds, and of each of
        its probes (holes, in the order of their numbers) the mean squared error and the pixels."""
        squared = (self.errors**2).mean(axis=-1)
        found = {}
        for index, kind in [(None, "all"), *enumerate(HOLE_CLASSES, start=1)]:
            inside = slice(None) if index is None else self.kinds == index
            values, holes = squared[inside], self.holes[inside]
            if len(values) or index is None:
                numbers, at = np.unique(holes, return_inverse=True)
                pixels = np.bincount(at, minlength=len(numbers))
                per_hole = np.bincount(at, values, len(numbers)) / np.maximum(pixels, 1)
                found[kind] = (float(values.mean()) if len(values) else np.nan, len(values), per_hole, pixels)
        return found


def place(job, rng: np.random.Generator, target: int = PROBE_PIXELS, *, scaled: bool = True) -> list[ProbeWindow]:
    """Windows of up to three planes of ``job`` with holes, and probes hidden in each (see the module).

    ``scaled``: measure the distance and local scale at the probe pixels (for
    a calibration; choosing a method by its errors needs neither).
    """
    mask = job.mask_grid
    batch_ndim = len(job.batch_shape)
    spatial = tuple(range(batch_ndim, len(job.grid_shape)))
    with_holes = np.asarray(mask.any(axis=spatial) if spatial else mask)  # read block by block when lazy
    planes = [tuple(int(i) for i in p) for p in np.argwhere(np.broadcast_to(with_holes, job.batch_shape))]
    if not planes:
        return []
    picks = sorted({round(float(i)) for i in np.linspace(0, len(planes) - 1, min(_PLANES, len(planes)))})
    windows = []
    for pick in picks:
        plane = planes[pick]
        box = _window_box(np.asarray(mask[plane]), job.spatial_shape, rng, _WINDOW[job.spatial_ndim])
        window = _read(job, plane, box)
        kinds = scatter(window.masks[window.own], -(-target // len(picks)), rng, _PIECE[job.spatial_ndim])
        probes = kinds > 0
        if probes.any():
            real = window.masks[window.own]
            distance, scale = (local_scale(window.image[window.own].astype(np.float64), real | probes) if scaled
                               else (None, None))
            numbers = ndi.label(probes, structure=np.ones((3,) * probes.ndim))[0]
            # Real holes far from every probe are filled by harmonic diffusion once, and are known context for
            # the candidates: their fills then cost the probes' pixels, not the window's every hole.
            # (A separable maximum filter: a quarter of the time of a Euclidean distance transform.)
            far = real & ~ndi.maximum_filter(probes, size=2 * _CONTEXT + 1, mode="constant", cval=False)
            image, masks = window.image.copy(), window.masks.copy()
            image[window.own] = _prefilled(image[window.own], real, far)
            masks[window.own] = real & ~far
            windows.append(dataclasses.replace(
                window, image=image, masks=masks, probes=probes, kinds=kinds,
                distance=None if distance is None else distance[probes], scale=None if scale is None else scale[probes],
                numbers=numbers[probes],
            ))
    return windows


def _prefilled(values: np.ndarray, real: np.ndarray, far: np.ndarray) -> np.ndarray:
    """``values`` (channels last) with the pixels ``far`` (among the holes ``real``) filled by harmonic
    diffusion from the known pixels, in ``values``' dtype."""
    if not far.any():
        return values
    harmonic = get_method("harmonic")
    work = np.where(real[..., np.newaxis], 0.0, values.astype(np.float64))
    filled = harmonic.fill(work, real, **harmonic.resolve({}))
    out = values.copy()
    out[far] = _to_dtype(filled[far], values.dtype)
    return out


def _window_box(plane_mask: np.ndarray, shape: tuple[int, ...], rng, side: int) -> tuple[slice, ...]:
    """A window of at most ``side ** ndim`` pixels, centred on a random hole pixel of the plane.

    Axes shorter than ``side`` are taken whole, and the others share the rest of that budget equally.

    Examples
    --------
    >>> plane = np.ones((20, 128, 128), bool)
    >>> [s.stop - s.start for s in _window_box(plane, plane.shape, np.random.default_rng(0), 64)]
    [20, 114, 114]
    """
    holes = np.argwhere(plane_mask)
    centre = holes[rng.integers(len(holes))]
    sizes, budget = {}, float(side) ** len(shape)
    for rank, axis in enumerate(np.argsort(shape, kind="stable")):  # the shortest axes first
        sizes[axis] = min(shape[axis], int(round(budget ** (1 / (len(shape) - rank)), 6)))
        budget /= sizes[axis]
    box = []
    for axis, (c, n) in enumerate(zip(centre, shape)):
        start = int(np.clip(c - sizes[axis] // 2, 0, n - sizes[axis]))
        box.append(slice(start, start + sizes[axis]))
    return tuple(box)


def _read(job, plane: tuple[int, ...], box: tuple[slice, ...]) -> ProbeWindow:
    """The window ``box`` of ``plane`` (and of its neighbours, for adjacent references), read into memory."""
    planes, own = [plane], 0
    if isinstance(job.reference, str):
        *stack, index = plane
        around = range(max(0, index - _ADJACENT_REACH), min(job.batch_shape[-1], index + _ADJACENT_REACH + 1))
        planes, own = [(*stack, i) for i in around], index - around.start
    source = job.channels_last(job.image)
    image = np.stack([np.asarray(source[(*p, *box)]) for p in planes])
    masks = np.stack([np.asarray(job.mask_grid[(*p, *box)], bool) for p in planes])
    reference = job.reference_array
    if reference is not None:
        reference = np.asarray(job.channels_last(reference)[(*plane, *box)])
    empty = np.zeros(masks.shape[1:], bool)
    return ProbeWindow(plane, box, image, masks, own, empty, empty.astype(np.uint8), reference)


def scatter(real: np.ndarray, target: int, rng: np.random.Generator, piece: int = 48) -> np.ndarray:
    """Copies of the holes of ``real`` moved onto its known pixels, about ``target`` pixels in all.

    Returns an array of ``real``'s shape: 0 off the copies, on a copy the
    kind of the hole it copies (1 + its index in
    :data:`~napari_inpaint.masks.HOLE_CLASSES`, as :func:`~napari_inpaint.masks.hole_classes`).

    Each copy lies on known pixels at least one pixel (faces and corners)
    from every other copy, and :data:`_EDGE` pixels inside the array (a
    hole across the whole of an axis, such as a hot pixel bad in every plane
    of a volume, is copied across it); it may
    cross real holes on a quarter of its pixels at most, which it leaves out.
    A hole longer than ``piece`` is copied as a piece of that side.  Each
    kind of hole (:func:`~napari_inpaint.masks.hole_classes`) gets an equal
    share of ``target``, in 6 copies at least (up to 4 shares): its holes
    are copied in turn, in a random order, until that is placed or no copy
    fits (a share left goes to the other kinds), the kinds of the largest
    holes first.

    Examples
    --------
    >>> real = np.zeros((64, 64), bool); real[10:15, 10:15] = True; real[40, 40] = True
    >>> kinds = scatter(real, 90, np.random.default_rng(0))
    >>> int((kinds > 0).sum()) >= 90, bool((kinds > 0)[real].any()), sorted(np.unique(kinds).tolist())
    (True, False, [0, 1, 3])
    """
    real = np.asarray(real, bool)
    labels, kind_of = hole_kinds(real)
    count = len(kind_of) - 1
    probes = np.zeros(real.shape, np.uint8)
    if not count:
        return probes
    near_real = ndi.maximum_filter(real, size=3, mode="constant", cval=False)  # (binary_dilation's, faster)
    frame = np.ones(real.shape, bool)
    frame[tuple(slice(_EDGE, n - _EDGE) for n in real.shape)] = False
    taken = np.zeros(real.shape, bool)  # by the copies placed (grown by a pixel)
    objects = ndi.find_objects(labels)
    of_kind = {}  # kind -> its holes (label - 1), in a random order
    for k in rng.permutation(count).tolist():
        of_kind.setdefault(int(kind_of[k + 1]), []).append(k)
    placed = dict.fromkeys(of_kind, 0)
    copies = dict.fromkeys(of_kind, 0)
    failures = dict.fromkeys(of_kind, 0)
    share = -(-target // len(of_kind))

    def fits(kind: int) -> bool:
        return failures[kind] < 3 * len(of_kind[kind]) + 20

    def shared(kind: int) -> bool:  # its share, in enough copies to judge by (large holes: more pixels)
        return (placed[kind] >= share and copies[kind] >= _MIN_COPIES) or placed[kind] >= _MOST * share

    shapes: dict[int, np.ndarray] = {}
    apart = _Apart(lambda: ~taken & ~near_real & ~frame, rng)
    for enough in (shared, lambda kind: sum(placed.values()) >= target):
        # One kind after the other, the largest holes first: a thousand one-pixel copies (dense hot pixels), each
        # with its ring taken, would leave no room for a copy of debris.
        while active := [kind for kind in sorted(of_kind, reverse=True) if fits(kind) and not enough(kind)]:
            for kind in active[:1]:
                holes = of_kind[kind]
                k = holes[(placed[kind] + failures[kind]) % len(holes)]
                if k not in shapes:
                    shapes[k] = labels[objects[k]] == k + 1
                if shapes[k].size == 1:  # one-pixel holes: a batch of copies at once
                    size = _copy_pixels(probes, taken, apart, kind, min(_BATCH, max(1, share - placed[kind])))
                    copies[kind] += size
                else:
                    size = _copy(probes, taken, near_real, shapes[k], rng, piece, kind)
                    copies[kind] += size > 0
                placed[kind] += size
                failures[kind] += size == 0
    return probes


class _Apart:
    """Pixels free when first asked for, none next to another, in a random order: where one-pixel copies go.

    Listed on first use: of the free pixels, those whose random priority is
    the highest of their 3×3 neighbourhood's (so no two touch).
    """

    def __init__(self, free: Callable[[], np.ndarray], rng: np.random.Generator):
        self._free, self._rng, self._order, self._next = free, rng, None, 0

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` pixels (flat indices; fewer when the list runs out)."""
        if self._order is None:
            free = self._free()
            priority = np.where(free, self._rng.random(free.shape), -1.0)
            apart = free & (priority == ndi.maximum_filter(priority, size=3, mode="constant", cval=-1.0))
            self._order = self._rng.permutation(np.flatnonzero(apart))
        taken = self._order[self._next : self._next + count]
        self._next += len(taken)
        return taken


def _copy_pixels(probes, taken, apart: _Apart, kind: int, count: int) -> int:
    """Put up to ``count`` one-pixel copies on pixels of ``apart`` still free; the pixels placed."""
    indices = apart.take(count)
    indices = indices[~taken.flat[indices]]
    if not len(indices):
        return 0
    at = np.unravel_index(indices, taken.shape)
    probes[at] = kind
    _take_around(taken, at)
    return len(indices)


def _take_around(taken: np.ndarray, at: tuple[np.ndarray, ...]) -> None:
    """Mark the pixels ``at`` and their neighbours (faces and corners; within the array) as taken."""
    grown = np.stack(at)[:, np.newaxis, :] + _neighbourhood(taken.ndim)  # (ndim, 3^ndim, pixels)
    np.clip(grown, 0, np.array(taken.shape)[:, np.newaxis, np.newaxis] - 1, out=grown)
    taken[tuple(grown.reshape(taken.ndim, -1))] = True


@functools.cache
def _neighbourhood(ndim: int) -> np.ndarray:
    """The offsets of a pixel's 3^ndim neighbourhood (itself included), shape (ndim, 3^ndim, 1)."""
    return np.array(list(itertools.product((-1, 0, 1), repeat=ndim))).T[:, :, np.newaxis]


def _copy(probes, taken, near_real, shape: np.ndarray, rng, piece: int, kind: int) -> int:
    """Put a copy of the hole ``shape`` (its box) where nothing is ``taken``, and at most a quarter of it on or
    next to real holes (those pixels are left out: a copy crossing real holes, as real holes cross each
    other); the pixels placed (0: none)."""
    if max(shape.shape) > piece:  # a long hole: a piece around one of its pixels
        pixels = np.flatnonzero(shape)
        at = np.unravel_index(pixels[rng.integers(len(pixels))], shape.shape)
        shape = shape[tuple(slice(max(0, a - piece // 2), a - piece // 2 + piece) for a in at)]
        shape = shape[ndi.find_objects(shape.astype(np.int8))[0]]
    # Across an axis the hole spans whole, the copy spans it too: its context is then the real hole's, up to the
    # array's faces (a copy kept from them would be filled from its ends too).
    across = np.array(shape.shape) == probes.shape
    room = [1 if whole else n - 2 * _EDGE - s + 1 for whole, n, s in zip(across, probes.shape, shape.shape)]
    if min(room) <= 0:
        return 0
    pixels = np.array(np.nonzero(shape))
    for start in np.where(across, 0, _EDGE + rng.integers(0, room, size=(_TRIES, shape.ndim))):
        at = tuple(pixels + start[:, np.newaxis])
        if taken[at].any():
            continue
        crossing = near_real[at]
        if crossing.sum() * _CROSSING <= len(crossing):
            kept = tuple(c[~crossing] for c in at)
            probes[kept] = kind
            _take_around(taken, kept)  # (a copy across an axis meets the array's faces)
            return len(kept[0])
    return 0


def _whole_windows(trial, own: int | None) -> list[Unit]:
    """One unit per plane of ``trial`` with holes (``own`` only, for adjacent planes): its whole window.

    A window's holes are filled in one call, as a crop holding them all
    (hundreds of probes, thousands of calls apart).
    """
    whole = Window(tuple(slice(0, n) for n in trial.spatial_shape))
    if own is not None:
        planes = [(own,)]
    else:
        spatial = tuple(range(len(trial.batch_shape), len(trial.grid_shape)))
        holes = trial.mask_grid.any(axis=spatial) if spatial else trial.mask_grid
        planes = [tuple(int(i) for i in p) for p in np.argwhere(np.broadcast_to(holes, trial.batch_shape))]
    return [Unit(number, (plane,), whole) for number, plane in enumerate(planes, start=1)]


def fill_probes(job, windows: list[ProbeWindow], method: str, params: dict, prepared, check,
                spatial_ndim: int | None = None) -> ProbeErrors:
    """Fill the probes of ``windows`` with ``method`` (its ``params`` resolved, ``prepared`` its preparation's
    result) as ``job`` would, and measure the errors there; ``spatial_ndim`` other than the job's fills a
    job's volumes plane by plane."""
    spec = get_method(method)
    found = []
    numbered = 0  # probes numbered over every window
    for window in windows:
        check()
        masks = window.masks.copy()
        masks[window.own] |= window.probes
        adjacent = isinstance(job.reference, str)
        image = window.image if adjacent else window.image[window.own]
        mask = masks if adjacent else masks[window.own]
        # A fill with its own std (``spread``) is measured against it: the engine's sigma with a unit
        # calibration is that std; any other against the spread of the known pixels, measured once.
        own = "spread" in spec.engine_keywords
        trial = dataclasses.replace(
            job, image=image, mask=mask, method=spec, params=params, channel_axis=image.ndim - 1,
            spatial_ndim=spatial_ndim or job.spatial_ndim, reference="adjacent" if adjacent else window.reference,
            stored=None, stored_mask=None, uncertainty=own, outcome={},
        )
        hooks = Hooks()
        hooks.check = check
        units = _whole_windows(trial, window.own if adjacent else None)
        filled, scale = fill_in_memory(trial, units, prepared, hooks, Calibration.unit(job.channels) if own else None)
        filled = filled[window.own] if adjacent else filled
        at = window.probes
        truth = window.image[window.own][at].astype(np.float64)
        scale = window.scale if scale is None else (scale[window.own] if adjacent else scale)[at].astype(np.float64)
        found.append((np.abs(filled[at].astype(np.float64) - truth), window.distance, scale, window.kinds[at],
                      window.numbers + numbered))  # fmt: skip
        numbered += int(window.numbers.max())
    if not found:
        return ProbeErrors(np.zeros((0, job.channels)), np.zeros(0), np.zeros((0, job.channels)),
                           np.zeros(0, np.uint8), np.zeros(0, np.int64))
    return ProbeErrors(*(None if parts[0] is None else np.concatenate(parts) for parts in zip(*found)))
