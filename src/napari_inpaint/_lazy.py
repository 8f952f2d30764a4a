"""Lazy inpainting of dask (and zarr) arrays, crop by crop, for images larger than memory.

:func:`inpaint_lazy` plans the crops at call time, reading the mask one
cell at a time (:mod:`napari_inpaint._planning`), and returns a dask array
with the image's chunks whose graph holds, per call:

- one task per crop: it reads the crop's window (from the zarr store, or
  assembled from the chunks of its own copy of the dask array's graph, so
  that the chunks it reads are freed once it is done), fills it with the
  engine's ``_fill_crop`` and returns the values of the holes it owns with
  their coordinates;
- one task per output chunk that has holes: a copy of the input chunk with
  the values of every crop that touches it written in (crops own disjoint
  holes, so no write is lost whatever the order); chunks without holes are
  the input chunks themselves;
- per plane with holes (when fills are clipped): the range of its known
  pixels, reduced chunk by chunk (through its own reads too);
- the method's preparation, once (a task every fill depends on, whose value
  is kept for later computes in this process).

Computing one chunk computes only the crops that touch it: the memory of a
worker is a few chunks plus its largest crop.  Progress and cancel reach the
tasks through :class:`Hooks`, which are found only in the process that made
the call (threads, or a ``distributed`` cluster of threads); tasks computed
by other processes neither report nor cancel: :mod:`napari_inpaint._store`
drives a cluster's progress and cancel from the caller.
"""

import inspect
import itertools
import threading
import uuid
import weakref
from collections.abc import Callable
from functools import partial

import numpy as np

from napari_inpaint._layout import as_bool_mask, layout
from napari_inpaint._planning import CELL, Crop, Group, combine_extrema, extrema_of, plan
from napari_inpaint._reference import _REGISTRATION_MARGIN, References, check_reference
from napari_inpaint._registry import Method, Stack

# Names of the graph's task kinds: ``inpaint-crop-<token>`` keys are the fills (progress units).
CROP_PREFIX = "inpaint-crop-"


def inpaint_lazy(
    image, mask, *, spec: Method, params: dict, margin: int, channel_axis, spatial_ndim: int, seed: int,
    noise, clip: bool, reference, align: bool, progress: Callable | None, cancel, status=None, stored=None,
):
    """The lazy result of :func:`napari_inpaint.inpaint` for a dask ``image`` (arguments validated).

    ``stored``: the zarr array ``image`` reads, if any; crops then read their windows from it directly.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    mask, stored_mask = _as_mask(mask)
    channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    grid_axes = [a for a in range(image.ndim) if a != channel_axis]
    batch_ndim = len(grid_shape) - spatial_ndim
    batch_shape, spatial_shape = grid_shape[:batch_ndim], grid_shape[batch_ndim:]
    check_reference(reference, image.shape, batch_ndim)
    bounds = [np.cumsum((0, *c)) for c in image.chunks]
    leading = mask.reshape((1,) * (len(grid_shape) - mask.ndim) + mask.shape)
    mask_grid = np.broadcast_to(leading, grid_shape)  # dask dispatches to da.broadcast_to
    if reference is not None:
        reference = da.from_zarr(reference) if _is_zarr(reference) else reference
        broadcast = da.broadcast_to if _is_dask(reference) else np.broadcast_to
        reference = broadcast(reference if _is_dask(reference) else np.asarray(reference), image.shape)
    # Crops and known ranges read their windows themselves: from the store, or through copies of a dask
    # array's graph.  Sharing the output's chunks would keep each chunk in memory until every crop and
    # range that reads it is done, which may be all of them.
    source = image if stored is None else stored
    crop_reads = (_reader(source, 1), _reader(mask_grid, 1, stored_mask))
    range_reads = (_reader(source, 2), _reader(mask_grid, 2, stored_mask)) if clip else ()

    def apart(plane: tuple) -> tuple:  # the image block of a plane: groups stay within one block
        return tuple(int(np.searchsorted(bounds[a], i, side="right")) for a, i in zip(grid_axes, plane))

    channels = 1 if channel_axis is None else image.shape[channel_axis]
    entries = plan(
        mask, batch_shape, spatial_shape, spec, margin, channels, cell=_cells(mask, spatial_ndim), apart=apart
    )
    token = uuid.uuid4().hex
    names = {kind: f"inpaint-{kind}-{token}" for kind in ("crop", "extrema", "limits", "prepare")}
    output = f"inpaint-{token}"
    total = sum(len(windows) * len(groups) for windows, groups in entries)
    hooks = Hooks(progress, cancel, total, status=status)
    context = _Context(spec, params, noise, clip, align, seed, channel_axis, spatial_shape, hooks)
    graph: dict = {}
    prepared = None
    if spec.prepare:
        prepared = (names["prepare"],)
        compute = partial(_prepare, image, mask, spec, params, channel_axis, spatial_ndim, seed, hooks.check)
        graph[prepared] = (Once.get, Once(compute))
    limits = {}
    touching: dict[tuple, list] = {}
    unit = 0
    for windows, groups in entries:
        for group in groups:
            if clip:
                for plane in set(group.planes) - set(limits):
                    limits[plane] = _limits(graph, names, range_reads, plane, grid_axes, bounds)
            for window in windows:
                unit += 1
                key = (names["crop"], unit)
                registration = _REGISTRATION_MARGIN if reference is not None else 0
                outer = tuple(
                    slice(max(0, s.start - registration), min(n, s.stop + registration))
                    for s, n in zip(window.box, spatial_shape)
                )
                graph[key] = (
                    _fill_unit, context, unit, window, [tuple(p) for p in group.planes], outer,
                    [_window(crop_reads[0], _region(image.ndim, grid_axes, p, outer)) for p in group.planes],
                    _window(crop_reads[1], (*_slices(group.planes[0]), *outer), grid_shape),
                    None if reference is None else [
                        _window(reference, _region(image.ndim, grid_axes, p, outer)) for p in group.planes
                    ],
                    [limits[p] for p in group.planes] if clip else None,
                    prepared,
                )
                owned = window.core or window.box
                for plane in group.planes:
                    for block in _blocks(bounds, image.ndim, grid_axes, channel_axis, plane, owned):
                        touching.setdefault(block, []).append(key)
    for block in itertools.product(*(range(len(c)) for c in image.chunks)):
        chunk = (image.name, *block)
        if block not in touching:
            graph[(output, *block)] = chunk
            continue
        starts = [int(bounds[a][i]) for a, i in enumerate(block)]
        graph[(output, *block)] = (_patch_block, chunk, touching[block], starts, channel_axis)
    readers = [*crop_reads, *range_reads, reference]
    dependencies = [image] + [a for a in readers if _is_dask(a)]
    layers = HighLevelGraph.from_collections(output, graph, dependencies=dependencies)
    return da.Array(layers, output, chunks=image.chunks, dtype=image.dtype)


def _as_mask(mask):
    """The mask as a NumPy or dask array of bool, and the zarr array it reads (or None)."""
    stored = None
    if _is_zarr(mask):
        import dask.array as da

        stored, mask = mask, da.from_zarr(mask)
    if _is_dask(mask):
        if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
            raise TypeError(f"mask must be boolean or numeric (nonzero = bad pixel), got dtype {mask.dtype}")
        return (mask if mask.dtype == bool else mask != 0), stored
    return as_bool_mask(mask), None


def _reader(array, seed: int, stored=None):
    """What windows of ``array`` are read from: the zarr array it reads, a NumPy array itself, or a copy
    of a dask array's graph (its own keys: its chunks are read again, and freed as soon as read)."""
    if stored is not None or not _is_dask(array):
        return array if stored is None else stored
    from dask.graph_manipulation import clone

    copy = clone(array, seed=seed)
    # dask's clone can mislabel tasks (the aliases of from_delayed arrays, in dask 2026.8): then the
    # windows share the array's chunks.
    if all(getattr(task, "key", key) == key for key, task in copy.__dask_graph__().items()):
        return copy
    return array


def _cells(mask, spatial_ndim: int) -> tuple[int, ...] | None:
    """Labelling cells of a chunked mask: whole chunks, at least :data:`CELL` on a side."""
    if not _is_dask(mask):
        return None
    cell = CELL[spatial_ndim]
    sizes = [max(c) if c else 1 for c in mask.chunks[-spatial_ndim:]]
    sizes = [1] * (spatial_ndim - len(sizes)) + sizes
    return tuple(-(-cell // s) * s for s in sizes)


def _slices(plane: tuple) -> tuple[slice, ...]:
    return tuple(slice(i, i + 1) for i in plane)


def _region(ndim: int, grid_axes: list, plane: tuple, spatial: tuple[slice, ...]) -> tuple[slice, ...]:
    """The slices of ``image`` (all channels) of a spatial box in one plane."""
    region = [slice(None)] * ndim
    for axis, index in zip(grid_axes, (*_slices(plane), *spatial)):
        region[axis] = index
    return tuple(region)


def _window(array, region: tuple[slice, ...], shape: tuple[int, ...] | None = None):
    """A task (or, for a NumPy array, the value) of ``array[region]``.

    The region of a dask array is assembled from the blocks it overlaps; a
    store (zarr) is read when the task runs.  With ``shape`` (the grid's), an
    array with fewer axes or axes of length 1 (a mask) is broadcast to it.
    """
    if not _is_dask(array):
        size = tuple(len(range(*s.indices(n))) for s, n in zip(region, shape or array.shape))
        if shape is not None:  # the region in the array's own axes, broadcast afterwards
            region = tuple(
                slice(0, 1) if n == 1 else s for s, n in zip(region[len(region) - array.ndim :], array.shape)
            )
        if isinstance(array, np.ndarray):
            return np.broadcast_to(array[region], size)
        return (_read, array, region, size)
    region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, array.shape))
    parts, per_axis = [], []
    for axis, s in enumerate(region):
        edges = np.cumsum((0, *array.chunks[axis]))
        first = int(np.searchsorted(edges, s.start, side="right")) - 1
        last = int(np.searchsorted(edges, s.stop, side="left"))
        per_axis.append(
            [(i, max(s.start, edges[i]), min(s.stop, edges[i + 1]), edges[i]) for i in range(first, last)]
        )
    for combination in itertools.product(*per_axis):
        key = (array.name, *(c[0] for c in combination))
        target = tuple(
            slice(int(lo - s.start), int(hi - s.start))
            for (_, lo, hi, _), s in zip(combination, region)
        )
        source = tuple(slice(int(lo - edge), int(hi - edge)) for _, lo, hi, edge in combination)
        parts.append((key, target, source))
    shape = tuple(s.stop - s.start for s in region)
    return (_assemble, [p[0] for p in parts], [p[1:] for p in parts], shape, array.dtype)


def _read(array, region: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(array[region]), shape)


def _assemble(blocks: list, slices: list, shape: tuple, dtype) -> np.ndarray:
    out = np.empty(shape, dtype)
    for block, (target, source) in zip(blocks, slices):
        out[target] = block[source]
    return out


def _blocks(bounds, ndim, grid_axes, channel_axis, plane, box) -> list[tuple]:
    """The image blocks (index tuples) holding ``box`` of ``plane``, all channels."""
    ranges = [None] * ndim
    for axis, index in zip(grid_axes, (*_slices(plane), *box)):
        first = int(np.searchsorted(bounds[axis], index.start, side="right")) - 1
        last = int(np.searchsorted(bounds[axis], index.stop, side="left"))
        ranges[axis] = range(first, last)
    if channel_axis is not None:
        ranges[channel_axis] = range(len(bounds[channel_axis]) - 1)
    return list(itertools.product(*ranges))


def _limits(graph: dict, names: dict, reads: tuple, plane: tuple, grid_axes, bounds):
    """The key of the known range of ``plane`` (per channel), reduced from the image's blocks."""
    image, mask = reads
    ndim = image.ndim
    channel_axis = next((a for a in range(ndim) if a not in grid_axes), None)
    grid_shape = tuple(image.shape[a] for a in grid_axes)
    whole = tuple(slice(0, n) for n in grid_shape[len(plane) :])
    parts = []
    for block in _blocks(bounds, ndim, grid_axes, channel_axis, plane, whole):
        key = (names["extrema"], *plane, *block)
        region = [slice(int(bounds[a][i]), int(bounds[a][i + 1])) for a, i in enumerate(block)]
        for axis, index in zip(grid_axes, _slices(plane)):
            region[axis] = index  # the plane only, of a block that may hold several
        spatial = tuple(region[a] for a in grid_axes[len(plane) :])
        channels = (0, 1) if channel_axis is None else (region[channel_axis].start, region[channel_axis].stop)
        graph[key] = (
            _block_extrema, _window(image, tuple(region)),
            _window(mask, (*_slices(plane), *spatial), grid_shape), channel_axis, channels,
        )
        parts.append(key)
    key = (names["limits"], *plane)
    graph[key] = (_combine_limits, parts)
    return key


def _block_extrema(block: np.ndarray, mask: np.ndarray, channel_axis, channels: tuple[int, int]):
    from napari_inpaint._engine import _check_known_finite

    values = _channels_last(block, channel_axis)
    mask = np.asarray(mask, bool).reshape(values.shape[:-1])
    _check_known_finite(values, mask)
    return channels, extrema_of(values, mask)


def _combine_limits(parts: list) -> tuple[np.ndarray, np.ndarray]:
    by_channels: dict[tuple, list] = {}
    for channels, extrema in parts:
        by_channels.setdefault(tuple(channels), []).append(extrema)
    ranges = [combine_extrema(by_channels[c]) for c in sorted(by_channels)]
    return tuple(np.concatenate([r[side].reshape(-1) for r in ranges]) for side in (0, 1))


def _channels_last(array: np.ndarray, channel_axis) -> np.ndarray:
    return array[..., np.newaxis] if channel_axis is None else np.moveaxis(array, channel_axis, -1)


class _Context:
    """What every crop of one call shares (picklable: sent to a cluster's workers)."""

    def __init__(self, spec, params, noise, clip, align, seed, channel_axis, spatial_shape, hooks):
        self.spec, self.noise, self.clip, self.align, self.seed = spec, noise, clip, align, seed
        self.channel_axis, self.spatial_shape, self.hooks = channel_axis, spatial_shape, hooks
        # A parameter of the preparation only (e.g. a training budget) is not the fill's.
        taken = inspect.signature(spec.fill).parameters
        self.params = {name: value for name, value in params.items() if name in taken}


def _fill_unit(
    context: _Context, unit: int, window, planes: list, outer: tuple, images: list, mask, references, limits,
    prepared,
) -> list:
    """Fill one crop of a group of planes; return ``[(plane, coordinates, values)]`` of the holes it owns."""
    from napari_inpaint._engine import _check_known_finite, _fill_crop

    hooks, spec = context.hooks, context.spec
    hooks.check()
    # The planes' windows, stacked on a first axis, channels last: a writable copy the fill works in.
    stacked = np.stack([_channels_last(np.asarray(i), context.channel_axis) for i in images]).reshape(
        (len(planes), *(s.stop - s.start for s in outer), -1)
    )
    mask = np.asarray(mask, bool).reshape(stacked.shape[1:-1])
    _check_known_finite(stacked, np.broadcast_to(mask, stacked.shape[:-1]))
    inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(window.box, outer))
    holes = window.holes(mask[inner], context.spatial_shape)
    group = Group([(i,) for i in range(len(planes))], mask)
    if limits is not None:
        group.limits = tuple(np.concatenate([extrema[side] for extrema in limits]) for side in (0, 1))
    if references is not None:
        source = np.stack([_channels_last(np.asarray(r), context.channel_axis) for r in references])
        references = References(source.reshape(stacked.shape), stacked, mask, 1, context.align, hooks.check)
    extra = {
        "check": hooks.check, "prepared": prepared, "rng": np.random.default_rng([context.seed, unit]),
        "progress": hooks.within(unit),
    }
    abandonable = hooks.cancel is not None
    crop = Crop(inner, holes)
    noise, clip = context.noise, context.clip
    _fill_crop(stacked, group, crop, spec, context.params, noise, clip, extra, references, abandonable)
    where = np.nonzero(holes)
    coordinates = tuple(w + b.start for w, b in zip(where, window.box))
    results = [(plane, coordinates, stacked[i][inner][holes]) for i, plane in enumerate(planes)]
    hooks.finished(unit)
    return results


def _patch_block(block: np.ndarray, results: list, starts: list[int], channel_axis) -> np.ndarray:
    """A copy of an image block with the filled values of the crops that touch it."""
    out = np.array(block, copy=True)
    view = _channels_last(out, channel_axis)
    grid_axes = [a for a in range(out.ndim) if a != channel_axis]
    grid_starts = [starts[a] for a in grid_axes]
    grid_shape = view.shape[:-1]
    channel_start = 0 if channel_axis is None else starts[channel_axis]
    channels = slice(channel_start, channel_start + view.shape[-1])
    for crop in results:
        for plane, coordinates, values in crop:
            batch = [i - s for i, s in zip(plane, grid_starts)]
            if not all(0 <= b < n for b, n in zip(batch, grid_shape)):
                continue
            spatial_starts = grid_starts[len(plane) :]
            spatial_shape = grid_shape[len(plane) :]
            local = [c - s for c, s in zip(coordinates, spatial_starts)]
            inside = np.ones(values.shape[0], bool)
            for c, n in zip(local, spatial_shape):
                inside &= (c >= 0) & (c < n)
            if inside.any():
                view[(*batch, *(c[inside] for c in local))] = values[inside][:, channels]
    return out


def _prepare(image, mask, spec: Method, params, channel_axis, spatial_ndim: int, seed: int, check):
    """The preparation of a dask image: its planes stay lazy, the method reads what it needs."""
    from napari_inpaint._engine import _run_preparation

    mask = as_bool_mask(np.asarray(mask))
    channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    channels_last = image[..., None] if channel_axis is None else image.transpose(
        [a for a in range(image.ndim) if a != channel_axis] + [channel_axis]
    )
    batch_shape = grid_shape[: len(grid_shape) - spatial_ndim]
    spatial = grid_shape[len(batch_shape) :]
    planes = channels_last.reshape((-1, *spatial, channels_last.shape[-1]))
    masks = np.broadcast_to(mask, grid_shape).reshape((-1, *spatial))
    return _run_preparation(spec, params, Stack(planes, masks), seed, check, None, 0, False)


class Once:
    """A value computed by the first caller that asks for it, shared by every thread of this process.

    Pickled (to a cluster's worker), it carries its value once computed, else
    the function that computes it.
    """

    def __init__(self, compute: Callable[[], object]):
        self._compute, self._lock, self._done, self._value = compute, threading.Lock(), False, None

    def get(self) -> object:
        with self._lock:
            if not self._done:
                self._value, self._done = self._compute(), True
            return self._value

    def __getstate__(self) -> dict:
        return {"_compute": self._compute, "_done": self._done, "_value": self._value}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


# Hooks of the lazy results alive in this process, by token: the graph carries only the token.
_HOOKS: "weakref.WeakValueDictionary[str, Hooks]" = weakref.WeakValueDictionary()


class Hooks:
    """A lazy result's ``progress`` and ``cancel``, reached by its tasks in the process that made it.

    ``progress(done, total)`` sums the fractional progress of the crops
    computed on several threads; elsewhere (a cluster's worker process) the
    hooks neither report nor cancel.
    """

    def __init__(self, progress: Callable | None, cancel, total: int, token: str | None = None, status=None):
        self.progress, self.cancel, self.total, self.status = progress, cancel, total, status
        self._filled = 0
        self.token = token or uuid.uuid4().hex
        self._done: dict[int, float] = {}
        self._lock = threading.Lock()
        _HOOKS[self.token] = self

    def __reduce__(self):
        return (_hooks, (self.token, self.total))

    def check(self) -> None:
        from napari_inpaint._cancel import checker

        checker(self.cancel)()

    def within(self, unit: int) -> Callable[[float, int], None] | None:
        if self.progress is None:
            return None
        return lambda step, steps: self._report(unit, step / max(steps, 1))

    def finished(self, unit: int) -> None:
        if self.progress is not None:
            self._report(unit, 1.0)
        if self.status is not None:
            with self._lock:
                self._filled += 1
                self.status(f"filled {self._filled}/{self.total}")

    def _report(self, unit: int, fraction: float) -> None:
        with self._lock:
            self._done[unit] = fraction
            self.progress(sum(self._done.values()), self.total)


def _hooks(token: str, total: int) -> Hooks:
    """The hooks of ``token`` in this process, or hooks that do nothing."""
    found = _HOOKS.get(token)
    return found if found is not None else Hooks(None, None, total, token=f"{token}-elsewhere")


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _is_zarr(array) -> bool:
    return type(array).__module__.startswith("zarr.")
