r"""Seeded generators of artifact masks, for demos, tests and benchmarks.

Each generator returns a boolean array (True marks a damaged pixel) and is deterministic for a given
``seed`` (an int or a :class:`numpy.random.Generator`).  Each one also takes a target hole ratio ``ratio=``
(the fraction of pixels to mask), so that fills can be scored by how much of the image is missing, as in the
inpainting literature.  :func:`make` picks a generator by its kind in :data:`KINDS`: a damage of the method
records (:data:`napari_inpaint.registry.ARTIFACTS`), so that a comparison can offer the methods made for
it, or a generic hole shape of the literature (:data:`HOLE_SHAPES`).

=====================  =================  ============================================  ==========
generator              kind               looks like                                    dimensions
=====================  =================  ============================================  ==========
:func:`strokes`        ``strokes``        free-form brush strokes (DeepFill v2)         2D
:func:`rectangles`     ``rectangles``     axis-aligned boxes                            2D
:func:`hot_pixels`     ``hot-pixels``     isolated hot, dead or stuck pixels            any
:func:`scratch`        ``scratches``      thin curved lines across the image            2D
:func:`debris`         ``debris``         compact irregular blobs (dust, a bubble)      2D
:func:`dropped_lines`  ``dropped-lines``  dropped rows, columns, z-slices or frames     any
=====================  =================  ============================================  ==========

:func:`dilate` grows any mask by a Euclidean radius, as one does to cover the
halo around real debris.

Examples
--------
>>> from napari_inpaint import masks
>>> mask = masks.scratch((64, 64), width=3, seed=1) | masks.debris((64, 64), radius=6, seed=2)
>>> mask.dtype, mask.shape
(dtype('bool'), (64, 64))
>>> float(masks.make("rectangles", (64, 64), ratio=0.1, seed=0).mean()) >= 0.1
True
"""

import hashlib
import itertools
import threading
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

Seed = int | np.random.Generator | None


def _shape(shape, ndim: int | None = None) -> tuple[int, ...]:
    shape = tuple(int(n) for n in np.atleast_1d(shape))
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"shape must have {ndim} dimensions, got {shape}")
    if min(shape) < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    return shape


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1) so that some pixels stay known, got {value!r}")


def _either(name: str, value: float | None, ratio: float | None) -> tuple[str, float]:
    """The fraction given by its own keyword or as ``ratio`` (exactly one of them), with its name."""
    if (value is None) == (ratio is None):
        raise TypeError(f"give either {name} or ratio")
    return (name, value) if ratio is None else ("ratio", ratio)


def _add(mask: np.ndarray, box: tuple[slice, ...], new: np.ndarray, order: np.ndarray, budget: int) -> int:
    """Mask the pixels ``new`` of ``mask[box]``, at most ``budget`` of them (lowest ``order`` first).

    Returns the number of pixels that were not masked before.
    """
    new = new & ~mask[box]
    count = int(np.count_nonzero(new))
    if count > budget:  # trim the last shape so that the target ratio is met exactly
        keep = np.zeros(count, bool)
        keep[np.argsort(order[new], kind="stable")[:budget]] = True
        new[new] = keep
        count = budget
    mask[box] |= new
    return count


def _grow(shape: tuple[int, ...], ratio: float, add_shape: Callable[[np.ndarray, int], int]) -> np.ndarray:
    """Add random shapes until ``round(ratio * size)`` pixels are masked.

    ``add_shape(mask, budget)`` masks one more shape in place and returns how
    many pixels it added (it may trim the shape to ``budget``).
    """
    _check_fraction("ratio", ratio)
    mask = np.zeros(shape, bool)
    target = round(ratio * mask.size)
    covered = idle = 0
    while covered < target:
        added = add_shape(mask, target - covered)
        covered += added
        idle = 0 if added else idle + 1
        if idle > 1000:  # only thin shapes that never reach some pixels can stall
            raise ValueError(f"could not mask a fraction {ratio} of shape {shape} with these shapes; lower ratio")
    return mask


def _trace(shape: tuple[int, ...], points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels that a densely sampled path passes through or whose centres lie within ``radius`` of it.

    Returns the mask and, for each of its pixels, the index of the nearest
    path sample (``len(points)`` elsewhere), to cut the path short in order.
    """
    ndim = len(shape)
    reach = int(np.ceil(radius)) + 1
    lo = np.maximum(np.floor(points.min(axis=0) - radius), 0).astype(int)
    hi = np.minimum(np.ceil(points.max(axis=0) + radius) + 1, shape).astype(int)
    mask = np.zeros(shape, bool)
    order = np.full(shape, len(points))
    if np.any(hi <= lo):  # the path lies outside the image
        return mask, order
    if len(points) * (2 * reach + 1) ** ndim < np.prod(hi - lo):
        # Only the pixels near a sample can be within reach: far fewer than the bounding box of a long path.
        offsets = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * ndim, indexing="ij"), -1).reshape(-1, ndim)
        near = (np.round(points).astype(int)[:, None] + offsets).reshape(-1, ndim)
        near = near[np.all((near >= 0) & (near < shape), axis=1)]
        flat = np.unique(np.ravel_multi_index(tuple(near.T), shape))
    else:
        box = np.zeros(shape, bool)
        box[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
        flat = np.flatnonzero(box)
    distance, nearest = cKDTree(points).query(
        np.stack(np.unravel_index(flat, shape), axis=-1), distance_upper_bound=radius + 1e-9
    )
    hit = np.isfinite(distance)
    mask.flat[flat[hit]] = True
    order.flat[flat[hit]] = nearest[hit]
    # The pixels under the samples keep a thin line connected where it passes between pixel centres.
    inside = np.flatnonzero(np.all((points > -0.5) & (points < np.array(shape) - 0.5), axis=1))
    under = tuple(np.round(points[inside]).astype(int).T)
    mask[under] = True
    np.minimum.at(order, under, inside)
    return mask, order


def _sample_segment(start: np.ndarray, stop: np.ndarray, step: float) -> np.ndarray:
    count = max(2, int(np.ceil(np.linalg.norm(stop - start) / step)) + 1)
    return start + np.linspace(0.0, 1.0, count)[:, None] * (stop - start)


def hot_pixels(
    shape: tuple[int, ...], fraction: float | None = None, seed: Seed = 0, *, ratio: float | None = None
) -> np.ndarray:
    """Scattered single bad pixels.

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask (any number of dimensions).
    fraction : float
        Fraction of the pixels that are bad, in [0, 1); rounded to a count.
    seed : int or Generator, optional
        Random seed.
    ratio : float, optional
        Another name for ``fraction``, as the other generators take it; give
        one of the two.

    Returns
    -------
    ndarray of bool
        Exactly ``round(fraction * size)`` True pixels, uniformly placed.

    Examples
    --------
    >>> int(hot_pixels((100, 100), 0.01, seed=0).sum())
    100
    >>> int(hot_pixels((100, 100), ratio=0.02, seed=0).sum())
    200
    """
    shape = _shape(shape)
    name, fraction = _either("fraction", fraction, ratio)
    _check_fraction(name, fraction)
    size = int(np.prod(shape))
    mask = np.zeros(size, bool)
    mask[np.random.default_rng(seed).choice(size, round(fraction * size), replace=False)] = True
    return mask.reshape(shape)


def _scratch_curve(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Densely sampled quadratic Bézier curve between two opposite edges."""
    along = int(rng.integers(2))  # the axis the scratch crosses
    across = 1 - along
    start, stop = np.zeros(2), np.zeros(2)
    start[along], stop[along] = 0, shape[along] - 1
    start[across], stop[across] = rng.uniform(0.15, 0.85, 2) * (shape[across] - 1)
    control = (start + stop) / 2
    control[across] += rng.uniform(-0.25, 0.25) * min(shape)
    t = np.linspace(0.0, 1.0, 4 * sum(shape))[:, None]
    return (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * stop


def scratch(
    shape: tuple[int, int], width: float = 1, seed: Seed = 0, *, ratio: float | None = None
) -> np.ndarray:
    """Thin, gently curved lines from one edge of the image to the opposite one.

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    width : float
        Line width in pixels: a pixel is in the line when the curve passes
        through it or its centre lies within ``width / 2`` of the curve.
    seed : int or Generator, optional
        Random seed.
    ratio : float, optional
        Target fraction of masked pixels, in [0, 1): scratches are added
        until it is reached, the last one cut short.  Default: one scratch.

    Returns
    -------
    ndarray of bool
        One scratch, or exactly ``round(ratio * size)`` pixels.

    Notes
    -----
    Each curve is a quadratic Bézier curve between random points on two
    opposite edges whose control point is displaced sideways by up to a
    quarter of the image size.

    Examples
    --------
    >>> mask = scratch((64, 48), width=1, seed=0)
    >>> crosses_rows = mask[0].any() and mask[-1].any()
    >>> crosses_columns = mask[:, 0].any() and mask[:, -1].any()
    >>> bool(crosses_rows or crosses_columns)
    True
    >>> float(scratch((64, 64), width=2, seed=0, ratio=0.1).mean()) >= 0.1
    True
    """
    shape = _shape(shape, 2)
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    rng = np.random.default_rng(seed)
    if ratio is None:
        return _trace(shape, _scratch_curve(shape, rng), width / 2)[0]

    def add_scratch(mask: np.ndarray, budget: int) -> int:
        line, order = _trace(shape, _scratch_curve(shape, rng), width / 2)
        return _add(mask, (slice(None),) * 2, line, order, budget)  # a cut line keeps its start

    return _grow(shape, ratio, add_scratch)


def _blob(
    shape: tuple[int, int], radius: float, rng: np.random.Generator, center
) -> tuple[tuple[slice, slice], np.ndarray]:
    """A random star-shaped blob: a box around it and the boundary-relative radius of the box's pixels.

    The blob is where that radius is at most 1; its centre pixel is always in it (radius 0).
    """
    if center is None:
        low = np.minimum(radius, (np.array(shape) - 1) / 2)
        center = rng.uniform(low, np.array(shape) - 1 - low)
    harmonics = np.arange(2, 5)
    amplitude, phase = rng.uniform(0.0, 0.15, harmonics.size), rng.uniform(0.0, 2 * np.pi, harmonics.size)
    # The boundary stays within 1.45 radius of the centre.
    lo = np.clip(np.floor(np.asarray(center) - 1.45 * radius) - 1, 0, shape).astype(int)
    hi = np.clip(np.ceil(np.asarray(center) + 1.45 * radius) + 2, 0, shape).astype(int)
    yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1]]
    dy, dx = yy - center[0], xx - center[1]
    theta = np.arctan2(dy, dx)[..., None]
    boundary = radius * (1 + np.sum(amplitude * np.cos(harmonics * theta + phase), axis=-1))
    level = np.hypot(dy, dx) / boundary
    level[tuple(np.clip(np.round(center).astype(int), 0, np.array(shape) - 1) - lo)] = 0  # never empty
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1])), level


def debris(
    shape: tuple[int, int],
    radius: float | None = None,
    seed: Seed = 0,
    center: tuple[float, float] | None = None,
    *,
    ratio: float | None = None,
) -> np.ndarray:
    r"""Compact irregular blobs, as dust, debris or bubbles.

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    radius : float
        Mean radius of a blob in pixels; required without ``ratio``, else
        ``min(shape) / 16`` by default.
    seed : int or Generator, optional
        Random seed.
    center : tuple of float, optional
        Centre of the one blob; by default a random point at least ``radius``
        from the edges (when the image is large enough).  Not with ``ratio``.
    ratio : float, optional
        Target fraction of masked pixels, in [0, 1): blobs at random centres
        are added until it is reached, the last one grown only partly from
        its centre.  Default: one blob.

    Returns
    -------
    ndarray of bool
        One connected blob, or exactly ``round(ratio * size)`` pixels.

    Notes
    -----
    A blob is star-shaped: a pixel at polar coordinates :math:`(r, \theta)`
    around the centre belongs to it when
    :math:`r \le R\,(1 + \sum_{k=2}^{4} a_k \cos(k\theta + \phi_k))`,
    with random amplitudes :math:`a_k \le 0.15` and phases :math:`\phi_k`
    (the amplitudes sum to less than 0.45, so the boundary never comes close
    to the centre).

    Examples
    --------
    >>> mask = debris((64, 64), radius=8, seed=0, center=(32, 32))
    >>> bool(mask[32, 32]), bool(0.6 < mask.sum() / (np.pi * 8**2) < 1.4)
    (True, True)
    >>> int(debris((64, 64), seed=0, ratio=0.1).sum()) == round(0.1 * 64 * 64)
    True
    """
    shape = _shape(shape, 2)
    if ratio is None and radius is None:
        raise TypeError("debris needs a radius (or a ratio)")
    radius = min(shape) / 16 if radius is None else radius
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    rng = np.random.default_rng(seed)
    if ratio is None:
        box, level = _blob(shape, radius, rng, center)
        mask = np.zeros(shape, bool)
        mask[box] = level <= 1
        return mask
    if center is not None:
        raise ValueError("center places a single blob; it cannot be combined with ratio")

    def add_blob(mask: np.ndarray, budget: int) -> int:
        box, level = _blob(shape, radius, rng, None)
        return _add(mask, box, level <= 1, level, budget)

    return _grow(shape, ratio, add_blob)


def strokes(shape: tuple[int, int], ratio: float, seed: Seed = 0) -> np.ndarray:
    r"""Free-form brush strokes covering ``ratio`` of the image (DeepFill v2's masks).

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    ratio : float
        Target fraction of masked pixels, in [0, 1).
    seed : int or Generator, optional
        Random seed.

    Returns
    -------
    ndarray of bool
        Exactly ``round(ratio * size)`` True pixels.

    Notes
    -----
    The random free-form strokes of Yu et al. [1]_ (``generate_mask`` of
    DeepFill v2), scaled from their 256 x 256 images to ``shape``.  A stroke
    starts at a random pixel and joins 4 to 11 vertices by segments of length
    :math:`\ell \sim \mathcal N(d/8, d/16)` clipped to :math:`[0, d/4]`
    (:math:`d` the image diagonal), at angles drawn uniformly from
    :math:`2\pi/5 \pm \delta` with :math:`\delta \le 2\pi/15`, reflected to
    :math:`2\pi - \text{angle}` at every other vertex, so that it zigzags.
    The brush width is uniform in :math:`[12, 40] \cdot d / (256\sqrt2)` and
    the line has round caps and joints.  Each stroke is mirrored at random
    along both axes (the flips the original meant to apply to the whole
    mask).  Strokes are added until the target is reached; the last brush
    stamp is trimmed to the pixels nearest its centre, so the ratio is exact.

    References
    ----------
    .. [1] J. Yu, Z. Lin, J. Yang, X. Shen, X. Lu and T. S. Huang,
           "Free-form image inpainting with gated convolution", ICCV 2019,
           4471-4480.

    Examples
    --------
    >>> mask = strokes((128, 128), 0.2, seed=0)
    >>> int(mask.sum()) == round(0.2 * 128 * 128)
    True
    """
    shape = _shape(shape, 2)
    rng = np.random.default_rng(seed)
    diagonal = float(np.hypot(*shape))
    mean_length = diagonal / 8
    scale = diagonal / np.hypot(256, 256)
    limit = np.array(shape, float) - 1

    def add_stroke(mask: np.ndarray, budget: int) -> int:
        vertices = int(rng.integers(4, 12))
        spread = 2 * np.pi / 15
        low, high = 2 * np.pi / 5 - rng.uniform(0, spread), 2 * np.pi / 5 + rng.uniform(0, spread)
        angles = rng.uniform(low, high, vertices)
        angles[::2] = 2 * np.pi - angles[::2]
        lengths = np.clip(rng.normal(mean_length, mean_length / 2, vertices), 0, 2 * mean_length)
        flips = rng.choice((-1.0, 1.0), 2)
        # At least one pixel: a disk of radius 1 always holds its nearest pixel centre.
        radius = max(1.0, rng.uniform(12, 40) * scale / 2)
        path = [rng.integers(0, shape).astype(float)]
        for angle, length in zip(angles, lengths):
            step = length * flips * np.array([np.sin(angle), np.cos(angle)])
            path.append(np.clip(path[-1] + step, 0, limit))
        added = 0
        for start, stop in itertools.pairwise(path):
            for stamp in _sample_segment(start, stop, radius / 2):
                lo = np.maximum(np.floor(stamp - radius), 0).astype(int)
                hi = np.minimum(np.ceil(stamp + radius) + 1, shape).astype(int)
                yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1]]
                distance2 = (yy - stamp[0]) ** 2 + (xx - stamp[1]) ** 2
                box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
                added += _add(mask, box, distance2 <= radius**2, distance2, budget - added)
                if added == budget:
                    return added
        return added

    return _grow(shape, ratio, add_stroke)


def rectangles(shape: tuple[int, int], ratio: float, seed: Seed = 0) -> np.ndarray:
    """Random axis-aligned boxes covering ``ratio`` of the image.

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    ratio : float
        Target fraction of masked pixels, in [0, 1).
    seed : int or Generator, optional
        Random seed.

    Returns
    -------
    ndarray of bool
        Exactly ``round(ratio * size)`` True pixels.

    Notes
    -----
    Each box has sides drawn uniformly between a tenth and a third of the
    image's sides and a uniformly random position inside the image; boxes
    may overlap.  The last box is filled row by row only up to the target,
    so it may end in a partial row.

    Examples
    --------
    >>> mask = rectangles((64, 96), 0.15, seed=0)
    >>> int(mask.sum()) == round(0.15 * 64 * 96)
    True
    """
    shape = _shape(shape, 2)
    rng = np.random.default_rng(seed)
    sides = np.array(shape)

    def add_box(mask: np.ndarray, budget: int) -> int:
        size = rng.integers(np.maximum(1, sides // 10), np.maximum(1, sides // 3) + 1)
        corner = rng.integers(0, sides - size + 1)
        box = tuple(slice(c, c + n) for c, n in zip(corner, size))
        return _add(mask, box, np.ones(size, bool), np.arange(size.prod()).reshape(size), budget)

    return _grow(shape, ratio, add_box)


def dropped_lines(
    shape: tuple[int, ...], n: int | None = None, axis: int = 0, seed: Seed = 0, *, ratio: float | None = None
) -> np.ndarray:
    """Dropped lines: ``n`` whole rows, columns or slices (scan lines, detector rows, z-slices, frames).

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask (any number of dimensions).
    n : int
        Number of dropped lines, fewer than ``shape[axis]``.
    axis : int
        Axis indexing the lines: 0 drops rows of a 2D image (or z-slices /
        frames of a stack), 1 drops columns.
    seed : int or Generator, optional
        Random seed.
    ratio : float, optional
        Fraction of the lines to drop instead of ``n``:
        ``n = round(ratio * shape[axis])``.  Give one of the two.

    Returns
    -------
    ndarray of bool
        True on ``n`` distinct, randomly chosen indices along ``axis``.

    Examples
    --------
    >>> mask = dropped_lines((6, 4), 2, axis=0, seed=0)
    >>> int(mask.all(axis=1).sum()), int(mask.sum())
    (2, 8)
    >>> int(dropped_lines((20, 4), ratio=0.1).all(axis=1).sum())
    2
    """
    shape = _shape(shape)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for shape {shape}")
    if _either("n", n, ratio)[0] == "ratio":
        _check_fraction("ratio", ratio)
        n = round(ratio * shape[axis])
    if not 0 <= n < shape[axis]:
        raise ValueError(f"n must lie in [0, {shape[axis]}) for axis {axis} of shape {shape}, got {n!r}")
    lines = np.zeros(shape[axis], bool)
    lines[np.random.default_rng(seed).choice(shape[axis], n, replace=False)] = True
    index = [np.newaxis] * len(shape)
    index[axis] = slice(None)
    return np.broadcast_to(lines[tuple(index)], shape).copy()


def dilate(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Grow a mask by a Euclidean radius.

    Parameters
    ----------
    mask : ndarray of bool
        Mask of any dimension.
    pixels : float
        Radius: every pixel whose centre lies within ``pixels`` of a masked
        pixel's centre joins the mask.  0 returns a copy.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> mask = np.zeros((5, 5), bool); mask[2, 2] = True
    >>> dilate(mask, 1).astype(int)[1:4, 1:4]
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    """
    mask = np.asarray(mask, dtype=bool)
    if pixels < 0:
        raise ValueError(f"pixels must be non-negative, got {pixels!r}")
    if pixels == 0 or not mask.any():
        return mask.copy()
    return ndi.distance_transform_edt(~mask) <= pixels


def label_boxes(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat index of each label's first pixel in raster order, and each label's box: starts, stops.

    One pass over the labelled pixels: ``ndi.find_objects`` scans the whole
    array and makes a slice object per label and axis, several times slower
    for one stroke and for thousands of hot pixels alike.

    Examples
    --------
    >>> labels = np.array([[0, 1, 1], [2, 0, 1]])
    >>> first, starts, stops = label_boxes(labels, 2)
    >>> first.tolist(), starts.tolist(), stops.tolist()
    ([1, 3], [[0, 1], [1, 0]], [[2, 3], [2, 1]])
    """
    flat = np.flatnonzero(labels.astype(bool, copy=False))  # 10x faster on booleans than on labels
    ids = labels.ravel()[flat] - 1
    first = np.full(count, labels.size, np.int64)
    np.minimum.at(first, ids, flat)
    starts = np.full((count, labels.ndim), labels.size, np.int64)
    stops = np.zeros((count, labels.ndim), np.int64)
    for axis, coordinate in enumerate(np.unravel_index(flat, labels.shape)):
        np.minimum.at(starts[:, axis], ids, coordinate)
        np.maximum.at(stops[:, axis], ids, coordinate + 1)
    return first, starts, stops


#: The kinds of hole a fill may treat differently (``method="auto"`` chooses per kind), by shape:
#: ``specks`` of at most 9 pixels, ``lines`` no pixel of which lies more than 2 pixels (a line up to about
#: 4 pixels wide) from the hole's edge, ``blobs`` up to 8 pixels (16 across), ``large`` holes beyond.
HOLE_CLASSES = ("specks", "lines", "blobs", "large")
_SPECK_PIXELS = 9
_LINE_DEPTH = 2.0
_BLOB_DEPTH = 8.0
# The fewest pixels of a hole deeper than _LINE_DEPTH: a Euclidean disc of radius 2 (13 pixels; 33 voxels in 3D).
_DEEP_PIXELS = 13


def hole_classes(mask: np.ndarray) -> np.ndarray:
    """Label each connected hole of ``mask`` with its kind: 1 + its index in :data:`HOLE_CLASSES`.

    A hole's kind depends only on its own pixels (its size, and how deep
    its deepest pixel lies: the Euclidean distance to the nearest pixel
    outside it), so that a hole has the same kind in any crop that holds
    it whole.  Holes are connected through faces and corners.

    Parameters
    ----------
    mask : ndarray of bool
        2D or 3D, True on the hole pixels.

    Returns
    -------
    ndarray of uint8
        0 outside the holes, else 1 + the index of the hole's kind.

    Examples
    --------
    >>> mask = np.zeros((20, 20), bool)
    >>> mask[2, 2] = True; mask[10, 3:18] = True; mask[13:19, 5:11] = True
    >>> kinds = hole_classes(mask)
    >>> [HOLE_CLASSES[kinds[p] - 1] for p in ((2, 2), (10, 9), (15, 7))]
    ['specks', 'lines', 'blobs']
    """
    labels, kind_of = hole_kinds(mask)
    return kind_of[labels]


def hole_kinds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected holes of ``mask`` labelled (faces and corners) and the kind of each, as :func:`hole_classes`.

    Returns the labels (0 outside the holes) and, per label, 1 + the index of
    its hole's kind in :data:`HOLE_CLASSES` (0 for label 0): for callers that
    need the holes one by one as well as their kinds.  Both are read-only:
    those of the last few masks are kept and shared (a call classifies the
    same mask for its probes, its record and its fill).

    Examples
    --------
    >>> mask = np.zeros((8, 16), bool); mask[1, 1] = True; mask[5, 2:14] = True
    >>> labels, kind_of = hole_kinds(mask)
    >>> [HOLE_CLASSES[k - 1] for k in kind_of[1:]]
    ['specks', 'lines']
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size > _MEMO_PIXELS:
        return _classified(mask)
    key = hashlib.blake2b(np.ascontiguousarray(mask).tobytes() + repr(mask.shape).encode(), digest_size=16).digest()
    with _MEMO_LOCK:
        found = _MEMO.get(key)
    if found is None:
        found = _classified(mask)
        with _MEMO_LOCK:
            _MEMO[key] = found
            while len(_MEMO) > _MEMO_SIZE:
                del _MEMO[next(iter(_MEMO))]
    return found


# The last masks classified, by a digest of their pixels: one call classifies the same mask (or window) for
# its probes, for auto's record of the holes and for auto's fill.  Small masks only: the memo stays under 16 MiB.
_MEMO: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 4
_MEMO_PIXELS = 2**20


def _classified(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hole_kinds` of a boolean ``mask``, computed (read-only arrays)."""
    labels, count = ndi.label(mask, structure=np.ones((3,) * mask.ndim))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    kinds = np.where(sizes <= _SPECK_PIXELS, 1, 2).astype(np.uint8)
    kinds[0] = 0
    # Only a hole holding a disc of radius 2 can be deeper than a line: its depth is measured in its own box
    # (a plane's distance transform would cost as much for a thousand hot pixels).
    deep = np.flatnonzero(sizes[1:] >= _DEEP_PIXELS) + 1
    if deep.size:
        _, starts, stops = label_boxes(labels, count)
        for label in deep:
            box = tuple(slice(max(a - 1, 0), b + 1) for a, b in zip(starts[label - 1], stops[label - 1]))
            deepest = ndi.distance_transform_edt(np.pad(labels[box] == label, 1)).max()
            kinds[label] = 4 if deepest > _BLOB_DEPTH else 3 if deepest > _LINE_DEPTH else kinds[label]
    labels.flags.writeable = kinds.flags.writeable = False
    return labels, kinds


_SCRATCH_WIDTH = 3

#: The generic hole shapes among the :data:`KINDS`, which inpainting is scored on: no damage.  Every
#: other kind is a damage of :data:`napari_inpaint.registry.ARTIFACTS` (a test checks it).
HOLE_SHAPES = ("strokes", "rectangles")

#: Mask kinds of :func:`make`: name -> ``generator(shape, ratio, seed)``.
KINDS: dict[str, Callable[[tuple[int, ...], float, Seed], np.ndarray]] = {
    "strokes": strokes,
    "rectangles": rectangles,
    "hot-pixels": lambda shape, ratio, seed: hot_pixels(shape, seed=seed, ratio=ratio),
    "scratches": lambda shape, ratio, seed: scratch(shape, _SCRATCH_WIDTH, seed, ratio=ratio),
    "debris": lambda shape, ratio, seed: debris(shape, seed=seed, ratio=ratio),
    "dropped-lines": lambda shape, ratio, seed: dropped_lines(shape, axis=0, seed=seed, ratio=ratio),
}


def resolve_kind(kind: str) -> str:
    """The :data:`KINDS` name of ``kind`` (``hot_pixels`` is ``hot-pixels``), or a ValueError listing them.

    >>> resolve_kind("hot_pixels")
    'hot-pixels'
    """
    name = kind.replace("_", "-")
    if name not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose from {', '.join(KINDS)}")
    return name


def make(kind: str, shape: tuple[int, ...], ratio: float, seed: Seed = 0) -> np.ndarray:
    """A mask of one of the :data:`KINDS`, covering a fraction ``ratio`` of the image.

    Parameters
    ----------
    kind : str
        A name of :data:`KINDS`, underscores may replace hyphens: ``scratches`` are 3 pixels wide,
        ``debris`` blobs of radius ``min(shape) / 16``, ``dropped-lines`` rows.
    shape : tuple of int
        Shape of the mask (2D for all but hot pixels and dropped lines).
    ratio : float
        Target fraction of masked pixels, in [0, 1).
    seed : int or Generator, optional
        Random seed.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> mask = make("dropped-lines", (50, 40), 0.1, seed=3)
    >>> int(mask.all(axis=1).sum())
    5
    """
    return KINDS[resolve_kind(kind)](shape, ratio, seed)
