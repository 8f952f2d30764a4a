"""The graph executor: a job's units as the tasks of a lazy dask array, for images larger than memory.

:func:`run` returns a dask array with the image's chunks whose graph holds,
per run:

- one task per unit (crop): it reads the unit's windows (from the zarr
  store, or assembled from the chunks of its own copy of the dask array's
  graph, so that the chunks it reads are freed once it is done), fills it
  with :func:`~napari_inpaint.engine.unit.fill_unit` and returns the values
  of the holes it owns with their coordinates;
- one task per output chunk that has holes: a copy of the input chunk with
  the values of every unit that touches it written in (units own disjoint
  holes, so no write is lost whatever the order); chunks without holes are
  the input chunks themselves;
- per plane with holes (when fills are clipped): the range of its known
  pixels, reduced chunk by chunk (through its own reads too).

The units are planned, and the method's preparation run, when :func:`run`
is called (the mask is read block by block); the image is read only as its
chunks are computed, and computing one chunk computes only the units that
touch it: the memory of a worker is a few chunks plus its largest crop.
Groups of planes never span two blocks of the image.
"""

import dataclasses
import itertools
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.engine.hooks import Hooks
from napari_inpaint.engine.layout import channels_last, is_dask
from napari_inpaint.engine.planning import CELL
from napari_inpaint.engine.preparation import calibrate, prepare
from napari_inpaint.engine.unit import (
    combine_extrema,
    extrema_of,
    fill_unit,
    plan_units,
    plane_slices,
    read_unit,
    unit_reads,
)

if TYPE_CHECKING:
    from napari_inpaint.engine.job import FillJob

# Names of the graph's task kinds: ``inpaint-crop-<token>`` keys are the fills (progress units).
CROP_PREFIX = "inpaint-crop-"


def run(job: "FillJob", hooks: Hooks):
    """The lazy filled image of a dask ``job.image`` (a dask array with the image's chunks), and for a job
    with ``uncertainty`` the lazy sigma of its pixels (float32, same chunks; else None)."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    image = job.image
    grid_axes = job.grid_axes
    bounds = [np.cumsum((0, *c)) for c in image.chunks]

    def apart(plane: tuple) -> tuple:  # the image block of a plane: groups stay within one block
        return tuple(int(np.searchsorted(bounds[a], i, side="right")) for a, i in zip(grid_axes, plane))

    units = plan_units(job, cell=_cells(job.mask, job.spatial_ndim), apart=apart)
    hooks.plan(len(units), preparation=job.method.prepare is not None or job.uncertainty)
    prepared = prepare(job, hooks)
    calibration = calibrate(job, hooks, prepared)
    # Units and known ranges read their windows themselves: from the store, or through copies of a dask
    # array's graph.  Sharing the output's chunks would keep each chunk in memory until every unit and
    # range that reads it is done, which may be all of them.
    mask_grid = job.mask_grid
    reference = job.reference_array
    crop_reads = {
        "image": _reader(image, 1, job.stored), "mask": _reader(mask_grid, 1, job.stored_mask),
        "reference": None if reference is None else _reader(reference, 1),
    }
    range_reads = (_reader(image, 2, job.stored), _reader(mask_grid, 2, job.stored_mask)) if job.clip else ()
    token = hooks.token
    names = {kind: f"inpaint-{kind}-{token}" for kind in ("crop", "extrema", "limits")}
    output, spread = f"inpaint-{token}", f"inpaint-sigma-{token}"
    # What every task needs of the job, without its arrays (a cluster's workers get a copy of it).
    light = dataclasses.replace(
        job, image=_Shape(image.shape, image.dtype), mask=_Shape(job.mask.shape, np.dtype(bool)),
        reference=job.reference if job.reference is None or isinstance(job.reference, str) else _Shape((), None),
        stored=None, stored_mask=None,
    )
    graph: dict = {}
    limits: dict = {}
    touching: dict[tuple, list] = {}
    for unit in units:
        if job.clip:
            for plane in set(unit.planes) - set(limits):
                limits[plane] = _limits(graph, names, range_reads, plane, grid_axes, bounds)
        key = (names["crop"], unit.number)
        reads = unit_reads(job, unit)
        data = read_unit(reads, lambda name, region: _window(crop_reads[name], region, _shape_of(job, name)))
        graph[key] = (
            _fill, light, unit, reads, (dict, [[k, v] for k, v in data.items()]),
            [limits[p] for p in unit.planes] if job.clip else None, _Value(prepared), hooks, _Value(calibration),
        )
        owned = unit.window.core or unit.window.box
        for plane in unit.planes:
            for block in _blocks(bounds, image.ndim, grid_axes, job.channel_axis, plane, owned):
                touching.setdefault(block, []).append(key)
    sigma_graph: dict = {}
    for block in itertools.product(*(range(len(c)) for c in image.chunks)):
        chunk = (image.name, *block)
        shape = [image.chunks[a][i] for a, i in enumerate(block)]
        starts = [int(bounds[a][i]) for a, i in enumerate(block)]
        graph[(output, *block)] = (
            (_patch_block, chunk, touching[block], starts, job.channel_axis) if block in touching else chunk
        )
        if job.uncertainty:  # the sigma of the same crops' holes, in blocks of zeros
            sigma_graph[(spread, *block)] = (_patch_block, (_zeros, shape), touching.get(block, []), starts,
                                             job.channel_axis, 3)  # fmt: skip
    readers = [*crop_reads.values(), *range_reads]
    dependencies = [image] + [a for a in readers if is_dask(a)]
    layers = HighLevelGraph.from_collections(output, graph, dependencies=dependencies)
    filled = da.Array(layers, output, chunks=image.chunks, dtype=image.dtype)
    if not job.uncertainty:
        return filled, None
    # The sigma's blocks read the fills' crop tasks: computed with the fill (dask.compute(filled, sigma)),
    # each crop is filled once.
    sigma_layers = HighLevelGraph.from_collections(spread, sigma_graph, dependencies=[filled])
    return filled, da.Array(sigma_layers, spread, chunks=image.chunks, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class _Shape:
    """An array's shape and dtype, standing for the array in the job the tasks get."""

    shape: tuple[int, ...]
    dtype: np.dtype | None

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclasses.dataclass(frozen=True)
class _Value:
    """A value a task takes as it is (dask would read a tuple in it as a task)."""

    value: object


def _fill(job, unit, reads, data: dict, limits, prepared: _Value, hooks, calibration: _Value) -> list:
    return fill_unit(job, unit, reads, data, limits, prepared.value, hooks, calibration.value)


def _zeros(shape: list[int]) -> np.ndarray:
    return np.zeros(shape, np.float32)


def _shape_of(job, name: str) -> tuple[int, ...] | None:
    """The shape a region of ``name`` is read as: the mask is broadcast to the grid."""
    return job.grid_shape if name == "mask" else None


def _reader(array, seed: int, stored=None):
    """What windows of ``array`` are read from: the zarr array it reads, a NumPy array itself, or a copy
    of a dask array's graph (its own keys: its chunks are read again, and freed as soon as read)."""
    if stored is not None or not is_dask(array):
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
    if not is_dask(mask):
        return None
    cell = CELL[spatial_ndim]
    sizes = [max(c) if c else 1 for c in mask.chunks[-spatial_ndim:]]
    sizes = [1] * (spatial_ndim - len(sizes)) + sizes
    return tuple(-(-cell // s) * s for s in sizes)


def _window(array, region: tuple[slice, ...], shape: tuple[int, ...] | None = None):
    """A task (or, for a NumPy array, the value) of ``array[region]``.

    The region of a dask array is assembled from the blocks it overlaps; a
    store (zarr) is read when the task runs.  With ``shape`` (the grid's), an
    array with fewer axes or axes of length 1 (a mask) is broadcast to it.
    """
    if not is_dask(array):
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
    for axis, index in zip(grid_axes, (*plane_slices(plane), *box)):
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
        for axis, index in zip(grid_axes, plane_slices(plane)):
            region[axis] = index  # the plane only, of a block that may hold several
        spatial = tuple(region[a] for a in grid_axes[len(plane) :])
        channels = (0, 1) if channel_axis is None else (region[channel_axis].start, region[channel_axis].stop)
        graph[key] = (
            _block_extrema, _window(image, tuple(region)),
            _window(mask, (*plane_slices(plane), *spatial), grid_shape), channel_axis, channels,
        )
        parts.append(key)
    key = (names["limits"], *plane)
    graph[key] = (_combine_limits, parts)
    return key


def _block_extrema(block: np.ndarray, mask: np.ndarray, channel_axis, channels: tuple[int, int]):
    values = channels_last(block, channel_axis)
    return channels, extrema_of(values, np.asarray(mask, bool).reshape(values.shape[:-1]))


def _combine_limits(parts: list) -> tuple[np.ndarray, np.ndarray]:
    by_channels: dict[tuple, list] = {}
    for channels, extrema in parts:
        by_channels.setdefault(tuple(channels), []).append(extrema)
    ranges = [combine_extrema(by_channels[c]) for c in sorted(by_channels)]
    return tuple(np.concatenate([r[side].reshape(-1) for r in ranges]) for side in (0, 1))


def _patch_block(block: np.ndarray, results: list, starts: list[int], channel_axis, item: int = 2) -> np.ndarray:
    """A copy of an image block with the filled values (``item`` 2; 3: their sigma) of the crops that touch it."""
    out = np.array(block, copy=True)
    view = channels_last(out, channel_axis)
    grid_axes = [a for a in range(out.ndim) if a != channel_axis]
    grid_starts = [starts[a] for a in grid_axes]
    grid_shape = view.shape[:-1]
    channel_start = 0 if channel_axis is None else starts[channel_axis]
    channels = slice(channel_start, channel_start + view.shape[-1])
    for crop in results:
        for found in crop:
            plane, coordinates, values = found[0], found[1], found[item]
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
