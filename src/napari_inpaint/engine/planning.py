"""Planning a fill: which planes share a mask, and which crops hold the holes with their context.

The plan makes the cost follow the holes, in time and in memory:

- the mask is labelled cell by cell (its holes joined across cell borders),
  so that planning never makes an image-sized temporary and reads a chunked
  mask (zarr, dask) one cell at a time;
- each hole is filled in a crop extending the method's margin beyond it;
  holes smaller than a tile are packed per tile, and holes whose crops touch
  share one crop, up to a size;
- a crop fills the holes it owns: the other holes in its box are unknown
  pixels to it, so that crops may overlap and each hole is filled exactly
  once, whatever the order;
- a long thin hole (a stitching seam, a dead column) of a method whose fill
  is local (:attr:`~napari_inpaint.registry.Method.local_fill`) is split
  along the cells into overlapping pieces: each piece fills the hole's
  pixels in its cell, with its neighbours' part of the hole as unknown
  context around it;
- planes that share a mask are filled together by channel-independent methods.
"""

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from napari_inpaint.masks import label_boxes
from napari_inpaint.registry import Method

# Holes smaller than a tile are packed together per tile so that thousands of
# hot pixels cost a few calls, not thousands.
_TILE = {2: 256, 3: 64}
# Planes that share a mask are filled together by channel-independent methods;
# this bounds the float64 working copy of such a batch.
_BATCH_BYTES = 64 * 2**20
# The mask is labelled in cells of this side; a long thin hole is split along them.
CELL = {2: 1024, 3: 128}
# Crops that touch are merged while the merged crop stays within this many pixels; a longer hole
# may be split into pieces.
_CROP_PIXELS = {2: 2048**2, 3: 256**3}
# A hole is thin when no pixel of it lies farther than this from a known pixel (16 pixels across).
_THIN = 8
# Pieces of a thin hole overlap by this many hole widths (at least _MIN_OVERLAP pixels): a local
# fill forgets the cut within a few widths (harmonic: by exp(-pi) per width).
_OVERLAP_WIDTHS = 8
_MIN_OVERLAP = 16


@dataclass
class Crop:
    """One call of a fill function: a box and the holes it composites."""

    box: tuple[slice, ...]
    holes: np.ndarray  # bool, box-shaped: the pixels this crop fills


@dataclass(frozen=True)
class Window:
    """A crop as planned: its box, and which masked pixels in it the crop fills.

    ``core``: every masked pixel in this box (a piece of a long hole);
    otherwise ``anchors``: the holes whose first pixel (raster order, flat
    index in the plane) is listed; with neither, every masked pixel of the box.
    """

    box: tuple[slice, ...]
    core: tuple[slice, ...] | None = None
    anchors: np.ndarray | None = None

    def holes(self, box_mask: np.ndarray, plane_shape: tuple[int, ...]) -> np.ndarray:
        """The pixels this crop fills, given the mask of its box (all unknown pixels)."""
        box_mask = np.asarray(box_mask, dtype=bool)
        if self.core is not None:
            inner = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(self.core, self.box))
            holes = np.zeros_like(box_mask)
            holes[inner] = box_mask[inner]
            return holes
        if self.anchors is None:
            return box_mask
        labels, count = ndi.label(box_mask, structure=np.ones((3,) * box_mask.ndim))
        # Each of this crop's holes lies whole in its box: the label at its first pixel is the hole's.
        anchors = np.unravel_index(self.anchors, plane_shape)
        owned = np.zeros(count + 1, bool)
        owned[labels[tuple(a - b.start for a, b in zip(anchors, self.box))]] = True
        # Looked up at the masked pixels only: a lookup per pixel of a 2048² box took 8 ms, this 2.
        flat = np.flatnonzero(box_mask)
        holes = np.zeros(box_mask.shape, bool)
        holes.ravel()[flat[owned[labels.ravel()[flat]]]] = True
        return holes

    def crop(self, mask: np.ndarray) -> Crop:
        """The :class:`Crop` of this window in ``mask`` (a plane's mask)."""
        return Crop(self.box, self.holes(mask[self.box], mask.shape))


@dataclass(frozen=True)
class Group:
    """Planes (batch index tuples) that share one spatial mask."""

    planes: list[tuple]
    mask: np.ndarray


def plan(
    mask, batch_shape, spatial_shape, spec: Method, margin, channels, *, cell=None,
    apart: Callable[[tuple], object] | None = None,
) -> list[tuple[list[Window], list[Group]]]:
    """Group planes by mask and split each mask into crops.

    ``mask`` is a NumPy or dask array (read one cell at a time); ``cell``
    the side of the labelling cells per spatial axis (default :data:`CELL`);
    planes for which ``apart(plane)`` differs are never grouped (the blocks
    of a dask image).  Returns a list of ``(windows, groups)``: every group of
    planes is filled window by window.
    """
    ndim = len(spatial_shape)
    cell = tuple(cell or (CELL[ndim],) * ndim)
    leading = mask.reshape((1,) * (len(batch_shape) + ndim - mask.ndim) + mask.shape)
    by_mask: dict[tuple, list] = defaultdict(list)
    for plane in np.ndindex(*batch_shape):
        key = tuple(i if n > 1 else 0 for i, n in zip(plane, leading.shape))
        by_mask[key, None if apart is None else apart(plane)].append(plane)

    windows_of: dict[tuple, list[Window] | None] = {}
    plan = []
    for (key, _), planes in by_mask.items():
        plane_mask = np.broadcast_to(leading[key], spatial_shape)
        if key not in windows_of:
            windows_of[key] = _plane_windows(plane_mask, spatial_shape, planes[0], spec, margin, cell)
        windows = windows_of[key]
        if not windows:
            continue
        # Channel-independent methods fill planes sharing a mask in one call.
        size = max(1, _BATCH_BYTES // (plane_mask.size * channels * 8)) if spec.channel_independent else 1
        plan.append((windows, [Group(planes[i : i + size], plane_mask) for i in range(0, len(planes), size)]))
    return plan


def _plane_windows(plane_mask, shape, plane, spec: Method, margin: int, cell) -> list[Window]:
    def read(box):
        part = plane_mask[box]
        # A dask mask is read here, in the caller's thread: planning runs at call time, not on a cluster.
        return np.asarray(part.compute(scheduler="sync") if hasattr(part, "compute") else part, dtype=bool)

    holes = find_holes(read, shape, cell)
    if holes.pixels == int(np.prod(shape)):
        where = f"plane {plane}" if plane else "the image"
        raise ValueError(
            f"the mask covers every pixel of {where} (shape {shape}): there is "
            "nothing to fill from; unmask some pixels, or for a dropped plane of a stack use "
            "method='interpolate' with spatial_ndim=3"
        )
    return windows(holes, read, shape, margin, cell, split=spec.local_fill)


def crops(mask: np.ndarray, margin: int, *, split: bool = False) -> list[Crop]:
    """The crops of one plane's ``mask``: its holes plus ``margin`` pixels of context.

    Every hole is filled by exactly one crop; see the module docstring.
    """
    cell = (CELL[mask.ndim],) * mask.ndim
    found = find_holes(lambda box: mask[box], mask.shape, cell)
    return [w.crop(mask) for w in windows(found, lambda box: mask[box], mask.shape, margin, cell, split)]


@dataclass
class Holes:
    """The connected holes of a plane: boxes, first pixels and the cells each one touches."""

    starts: np.ndarray  # (n, ndim)
    stops: np.ndarray
    anchors: np.ndarray  # flat index (in the plane) of each hole's first pixel in raster order
    # The cells (flat indices in the cell grid) each hole touches: hole i's are
    # cells[cell_starts[i] : cell_starts[i + 1]].
    cells: np.ndarray
    cell_starts: np.ndarray
    pixels: int  # masked pixels in all

    def cells_of(self, hole: int) -> np.ndarray:
        """The cells hole ``hole`` touches."""
        return self.cells[self.cell_starts[hole] : self.cell_starts[hole + 1]]


def find_holes(read: Callable, shape: tuple[int, ...], cell: tuple[int, ...]) -> Holes:
    """Label the mask ``read(box)`` cell by cell and join the holes that meet across cell borders.

    Holes are 8-connected (26 in 3D); the temporaries are of a cell's size,
    plus the masked pixels on the cell borders.
    """
    ndim = len(shape)
    structure = np.ones((3,) * ndim)
    grid = tuple(-(-n // c) for n, c in zip(shape, cell))
    starts, stops, anchors, node_cells = [], [], [], []
    faces: dict[tuple[int, int], tuple[list, list]] = defaultdict(lambda: ([], []))
    nodes, pixels = 0, 0
    for index in np.ndindex(*grid):
        corner = np.array(index) * cell
        box = tuple(slice(c, min(c + s, n)) for c, s, n in zip(corner, cell, shape))
        block = read(box)
        count = int(np.count_nonzero(block))
        if not count:
            continue
        pixels += count
        labels, found = ndi.label(block, structure=structure)
        first, box_starts, box_stops = label_boxes(labels, found)
        starts.append(box_starts + corner)
        stops.append(box_stops + corner)
        first = np.unravel_index(first, block.shape)
        anchors.append(np.ravel_multi_index(tuple(f + c for f, c in zip(first, corner)), shape))
        node_cells.append(np.full(found, np.ravel_multi_index(index, grid)))
        for axis in range(ndim):
            # Each face: the flat positions (over the other axes of the plane) of its masked pixels.
            # The first layer lies after the border at its start, the last one before the border at its stop.
            for side, at, position in ((1, 0, box[axis].start), (0, -1, box[axis].stop)):
                if 0 < position < shape[axis]:
                    face = np.take(labels, at, axis=axis)
                    where = np.nonzero(face)
                    if not where[0].size:
                        continue
                    offsets = [c for a, c in enumerate(corner) if a != axis]
                    extent = [n for a, n in enumerate(shape) if a != axis]
                    flat = np.ravel_multi_index(tuple(w + o for w, o in zip(where, offsets)), extent)
                    faces[axis, position][side].append((flat, face[where].astype(np.int64) - 1 + nodes))
        nodes += found
    if not nodes:
        empty = np.zeros((0, ndim), np.int64)
        none = np.zeros(0, np.int64)
        return Holes(empty, empty, none, none, np.zeros(1, np.int64), pixels)
    # Holes that cross no cell border (every hole of a plane within one cell) need no joining.
    component = _join(faces, shape, nodes) if faces else np.arange(nodes)
    count = int(component.max()) + 1
    starts, stops = np.concatenate(starts), np.concatenate(stops)
    merged_starts = np.full((count, ndim), np.iinfo(np.int64).max)
    merged_stops = np.zeros((count, ndim), np.int64)
    merged_anchors = np.full(count, np.iinfo(np.int64).max)
    np.minimum.at(merged_starts, component, starts)
    np.maximum.at(merged_stops, component, stops)
    np.minimum.at(merged_anchors, component, np.concatenate(anchors))
    # Each (hole, cell) pair once, sorted by hole: thousands of hot pixels must not cost a call each.
    cell_count = int(np.prod(grid))
    pairs = component.astype(np.int64) * cell_count + np.concatenate(node_cells)
    if faces:  # joined holes: their (hole, cell) pairs may repeat and be out of order
        # Sorted and deduplicated by hand: np.unique (hashing, NumPy 2.4) took 28 ms on 170,000 pairs, this 1.
        pairs = np.sort(pairs)
        pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])]
    cell_starts = np.searchsorted(pairs // cell_count, np.arange(count + 1))
    return Holes(merged_starts, merged_stops, merged_anchors, pairs % cell_count, cell_starts, pixels)


def _join(faces: dict, shape: tuple[int, ...], nodes: int) -> np.ndarray:
    """The hole of each cell-local label, joining labels whose pixels touch across a cell border."""
    pairs = []
    for (axis, _), (lows, highs) in faces.items():
        if not lows or not highs:
            continue
        other = [n for a, n in enumerate(shape) if a != axis]
        low_flat, low_ids = (np.concatenate(x) for x in zip(*lows))  # the last layer before the border
        high_flat, high_ids = (np.concatenate(x) for x in zip(*highs))  # the first layer after it
        if not (low_flat.size and high_flat.size):
            continue
        order = np.argsort(high_flat)
        high_flat, high_ids = high_flat[order], high_ids[order]
        low = np.stack(np.unravel_index(low_flat, other))
        for step in itertools.product((-1, 0, 1), repeat=len(other)):
            target = low + np.array(step, dtype=np.int64).reshape(-1, 1)
            inside = np.all((target >= 0) & (target < np.array(other).reshape(-1, 1)), axis=0)
            flat = np.ravel_multi_index(tuple(target[:, inside]), other)
            at = np.minimum(np.searchsorted(high_flat, flat), high_flat.size - 1)
            hit = high_flat[at] == flat
            pairs.append(np.stack([low_ids[inside][hit], high_ids[at[hit]]]))
    edges = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), np.int64)
    graph = coo_matrix((np.ones(edges.shape[1]), (edges[0], edges[1])), shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1]


def windows(holes: Holes, read: Callable, shape, margin: int, cell, split: bool) -> list[Window]:
    """The crops of a plane's holes: packed, merged while they touch, long thin holes split.

    ``read(box)`` gives the mask of a box (to measure how thin a long hole is).
    """
    ndim = len(shape)
    shape_array = np.array(shape)
    grown_starts = np.maximum(holes.starts - margin, 0)
    grown_stops = np.minimum(holes.stops + margin, shape_array)
    pieces, split_cells, taken = [], np.zeros(0, np.int64), np.zeros(len(holes.anchors), bool)
    if split:
        grown = grown_starts, grown_stops
        pieces, split_cells, taken = _split_long_holes(holes, grown, read, shape, margin, cell)
    rest = np.flatnonzero(~taken)
    # Small holes are packed per tile (the tile of their crop's first pixel).
    tile = _TILE[ndim]
    small = np.all(grown_stops[rest] - grown_starts[rest] < tile, axis=1)
    members = [np.array([i]) for i in rest[~small]]
    if small.any():
        tiles = tuple(-(-n // tile) for n in shape)
        keys = np.ravel_multi_index(tuple((grown_starts[rest[small]] // tile).T), tiles)
        order = np.argsort(keys, kind="stable")
        members += np.split(rest[small][order], np.flatnonzero(np.diff(keys[order])) + 1)
    members = _merge_touching(members, grown_starts, grown_stops, _CROP_PIXELS[ndim])
    starts = np.array([grown_starts[m].min(axis=0) for m in members]).reshape(-1, ndim)
    stops = np.array([grown_stops[m].max(axis=0) for m in members]).reshape(-1, ndim)
    # A crop whose box meets another crop's (or a split hole's cell) owns only its own holes there.
    cell_starts, cell_stops = _cell_boxes(split_cells, shape, cell)
    first, second = _touching(np.concatenate([starts, cell_starts]), np.concatenate([stops, cell_stops]), 0)
    shared = np.zeros(len(members) + len(split_cells), bool)
    shared[first] = shared[second] = True
    result = [
        Window(_box(starts[i], stops[i]), anchors=np.sort(holes.anchors[m]) if shared[i] else None)
        for i, m in enumerate(members)
    ]
    return result + pieces


def _merge_touching(members: list, starts: np.ndarray, stops: np.ndarray, limit: int) -> list:
    """Merge groups of holes whose boxes touch, while a merged box stays within ``limit`` pixels."""
    while len(members) > 1:
        box_starts = np.array([starts[m].min(axis=0) for m in members])
        box_stops = np.array([stops[m].max(axis=0) for m in members])
        first, second = _touching(box_starts, box_stops, 1)
        parent = np.arange(len(members))
        merged = False
        for a, b in zip(first, second):
            a, b = _root(parent, a), _root(parent, b)
            if a == b:
                continue
            low, high = np.minimum(box_starts[a], box_starts[b]), np.maximum(box_stops[a], box_stops[b])
            if np.prod(high - low) > limit:
                continue
            parent[b] = a
            box_starts[a], box_stops[a] = low, high
            merged = True
        if not merged:
            break
        roots = np.array([_root(parent, i) for i in range(len(members))])
        members = [np.concatenate([members[i] for i in np.flatnonzero(roots == r)]) for r in np.unique(roots)]
    return members


def _root(parent: np.ndarray, i: int) -> int:
    """The root of ``i`` in the union-find forest ``parent`` (halving the path on the way)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _touching(starts: np.ndarray, stops: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j in sweep order) of boxes that overlap (``gap`` 0) or also touch (``gap`` 1)."""
    order = np.argsort(starts[:, 0], kind="stable") if len(starts) else np.zeros(0, np.int64)
    first_starts = starts[order, 0]
    firsts, seconds = [], []
    for k, i in enumerate(order):
        candidates = order[k + 1 : np.searchsorted(first_starts, stops[i, 0] + gap, side="left")]
        if candidates.size:
            near = (starts[candidates] < stops[i] + gap) & (starts[i] < stops[candidates] + gap)
            near = np.all(near, axis=1)
            firsts.append(np.full(int(near.sum()), i))
            seconds.append(candidates[near])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def _split_long_holes(holes: Holes, grown: tuple, read, shape, margin: int, cell):
    """Pieces for the long thin holes, the cells they cover, and which holes they take.

    A hole whose crop would exceed the crop size is split along the cells it
    touches, with every hole touching those cells (and so on); the split is
    kept only where all of them are thin (see ``_THIN``).
    """
    ndim = len(shape)
    grid = tuple(-(-n // c) for n, c in zip(shape, cell))
    taken = np.zeros(len(holes.anchors), bool)
    long_holes = np.flatnonzero(np.prod(grown[1] - grown[0], axis=1) > _CROP_PIXELS[ndim])
    if not long_holes.size:
        return [], np.zeros(0, np.int64), taken
    holes_in_cell = defaultdict(list)
    for hole, c in zip(np.repeat(np.arange(len(holes.anchors)), np.diff(holes.cell_starts)), holes.cells):
        holes_in_cell[int(c)].append(int(hole))
    pieces, all_cells = [], []
    for start in long_holes:
        if taken[start]:
            continue
        members, cells, todo = {int(start)}, set(), [int(start)]
        while todo:  # every hole that touches a cell of the split, and every cell such a hole touches
            for c in holes.cells_of(todo.pop()):
                if c not in cells:
                    cells.add(int(c))
                    for other in holes_in_cell[c]:
                        if other not in members:
                            members.add(other)
                            todo.append(other)
        members_array = np.fromiter(members, np.int64)
        if taken[members_array].any():
            continue
        depth = 0.0
        for c in cells:
            depth = max(depth, _depth(read, shape, _cell_box(c, grid, shape, cell)))
            if depth > _THIN:
                break
        if depth > _THIN:
            continue
        taken[members_array] = True
        reach = margin + max(_MIN_OVERLAP, int(np.ceil(_OVERLAP_WIDTHS * 2 * depth)))
        for c in sorted(cells):
            core = _cell_box(c, grid, shape, cell)
            box = tuple(slice(max(0, s.start - reach), min(n, s.stop + reach)) for s, n in zip(core, shape))
            pieces.append(Window(box, core=core))
        all_cells += sorted(cells)
    return pieces, np.array(all_cells, np.int64), taken


def _depth(read, shape, core: tuple[slice, ...]) -> float:
    """The largest distance from a masked pixel of ``core`` to a known pixel (up to _THIN + 1)."""
    halo = _THIN + 1
    window = tuple(slice(max(0, s.start - halo), min(n, s.stop + halo)) for s, n in zip(core, shape))
    mask = read(window)
    if not mask.any():
        return 0.0
    inner = tuple(slice(s.start - w.start, s.stop - w.start) for s, w in zip(core, window))
    return float(ndi.distance_transform_edt(mask)[inner].max())


def _cell_box(flat: int, grid, shape, cell) -> tuple[slice, ...]:
    index = np.unravel_index(flat, grid)
    return tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, cell, shape))


def _cell_boxes(flat: np.ndarray, shape, cell) -> tuple[np.ndarray, np.ndarray]:
    grid = tuple(-(-n // c) for n, c in zip(shape, cell))
    starts = np.stack(np.unravel_index(flat, grid), axis=-1).reshape(-1, len(shape)) * np.array(cell)
    return starts, np.minimum(starts + np.array(cell), np.array(shape))


def _box(starts, stops) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(starts, stops))
