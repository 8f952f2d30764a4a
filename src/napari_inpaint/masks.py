r"""Seeded generators of artifact masks, for demos, tests and benchmarks.

Each generator returns a boolean array (True marks a damaged pixel) and is
deterministic for a given ``seed`` (an int or a :class:`numpy.random.Generator`).

==================  ============================================  ===========
generator           looks like                                    dimensions
==================  ============================================  ===========
:func:`hot_pixels`  isolated hot, dead or stuck pixels            any
:func:`scratch`     a thin curved line across the image           2D
:func:`debris`      a compact irregular blob (dust, a bubble)     2D
:func:`strokes`     random brush strokes over a given fraction    2D
:func:`scan_lines`  dropped rows, columns, z-slices or frames     any
==================  ============================================  ===========

:func:`dilate` grows any mask by a Euclidean radius, as one does to cover the
halo around real debris.

Examples
--------
>>> from napari_inpaint import masks
>>> mask = masks.scratch((64, 64), width=3, seed=1) | masks.debris((64, 64), radius=6, seed=2)
>>> mask.dtype, mask.shape
(dtype('bool'), (64, 64))
"""

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


def _draw_path(shape: tuple[int, ...], points: np.ndarray, radius: float) -> np.ndarray:
    """Pixels that a densely sampled path passes through or whose centres lie within ``radius`` of it."""
    lo = np.maximum(np.floor(points.min(axis=0) - radius), 0).astype(int)
    hi = np.minimum(np.ceil(points.max(axis=0) + radius) + 1, shape).astype(int)
    mask = np.zeros(shape, bool)
    if np.any(hi <= lo):  # the path lies outside the image
        return mask
    grid = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij"), axis=-1)
    distance, _ = cKDTree(points).query(grid.reshape(-1, len(shape)), distance_upper_bound=radius + 1e-9)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = np.isfinite(distance).reshape(grid.shape[:-1])
    # The pixels under the samples keep a thin line connected where it passes between pixel centres.
    inside = np.all((points > -0.5) & (points < np.array(shape) - 0.5), axis=1)
    mask[tuple(np.round(points[inside]).astype(int).T)] = True
    return mask


def _sample_segment(start: np.ndarray, stop: np.ndarray, step: float) -> np.ndarray:
    count = max(2, int(np.ceil(np.linalg.norm(stop - start) / step)) + 1)
    return start + np.linspace(0.0, 1.0, count)[:, None] * (stop - start)


def hot_pixels(shape: tuple[int, ...], fraction: float, seed: Seed = 0) -> np.ndarray:
    """Scattered single bad pixels.

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask (any number of dimensions).
    fraction : float
        Fraction of the pixels that are bad, in [0, 1); rounded to a count.
    seed : int or Generator, optional
        Random seed.

    Returns
    -------
    ndarray of bool
        Exactly ``round(fraction * size)`` True pixels, uniformly placed.

    Examples
    --------
    >>> int(hot_pixels((100, 100), 0.01, seed=0).sum())
    100
    """
    shape = _shape(shape)
    _check_fraction("fraction", fraction)
    size = int(np.prod(shape))
    mask = np.zeros(size, bool)
    mask[np.random.default_rng(seed).choice(size, round(fraction * size), replace=False)] = True
    return mask.reshape(shape)


def scratch(shape: tuple[int, int], width: float = 1, seed: Seed = 0) -> np.ndarray:
    """A thin, gently curved line from one edge of the image to the opposite one.

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    width : float
        Line width in pixels: a pixel is in the line when the curve passes
        through it or its centre lies within ``width / 2`` of the curve.
    seed : int or Generator, optional
        Random seed.

    Returns
    -------
    ndarray of bool

    Notes
    -----
    The curve is a quadratic Bézier curve between random points on two
    opposite edges whose control point is displaced sideways by up to a
    quarter of the image size.

    Examples
    --------
    >>> mask = scratch((64, 48), width=1, seed=0)
    >>> crosses_rows = mask[0].any() and mask[-1].any()
    >>> crosses_columns = mask[:, 0].any() and mask[:, -1].any()
    >>> bool(crosses_rows or crosses_columns)
    True
    """
    shape = _shape(shape, 2)
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    rng = np.random.default_rng(seed)
    along = int(rng.integers(2))  # the axis the scratch crosses
    across = 1 - along
    start, stop = np.zeros(2), np.zeros(2)
    start[along], stop[along] = 0, shape[along] - 1
    start[across], stop[across] = rng.uniform(0.15, 0.85, 2) * (shape[across] - 1)
    control = (start + stop) / 2
    control[across] += rng.uniform(-0.25, 0.25) * min(shape)
    t = np.linspace(0.0, 1.0, 4 * sum(shape))[:, None]
    curve = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * stop
    return _draw_path(shape, curve, width / 2)


def debris(
    shape: tuple[int, int], radius: float, seed: Seed = 0, center: tuple[float, float] | None = None
) -> np.ndarray:
    r"""A compact irregular blob, as dust, debris or a bubble.

    Parameters
    ----------
    shape : tuple of int
        2D shape.
    radius : float
        Mean radius of the blob in pixels.
    seed : int or Generator, optional
        Random seed.
    center : tuple of float, optional
        Centre of the blob; by default a random point at least ``radius``
        from the edges (when the image is large enough).

    Returns
    -------
    ndarray of bool
        One connected blob.

    Notes
    -----
    The blob is star-shaped: a pixel at polar coordinates :math:`(r, \theta)`
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
    """
    shape = _shape(shape, 2)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    rng = np.random.default_rng(seed)
    if center is None:
        low = np.minimum(radius, (np.array(shape) - 1) / 2)
        center = rng.uniform(low, np.array(shape) - 1 - low)
    harmonics = np.arange(2, 5)
    amplitude, phase = rng.uniform(0.0, 0.15, harmonics.size), rng.uniform(0.0, 2 * np.pi, harmonics.size)
    yy, xx = np.indices(shape, dtype=float)
    dy, dx = yy - center[0], xx - center[1]
    theta = np.arctan2(dy, dx)[..., None]
    boundary = radius * (1 + np.sum(amplitude * np.cos(harmonics * theta + phase), axis=-1))
    mask = np.hypot(dy, dx) <= boundary
    mask[tuple(np.clip(np.round(center).astype(int), 0, np.array(shape) - 1))] = True  # never empty
    return mask


def strokes(shape: tuple[int, int], ratio: float, seed: Seed = 0) -> np.ndarray:
    """Random brush strokes covering about ``ratio`` of the image.

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
        Its coverage exceeds ``ratio`` by at most one brush stamp (a disk of
        radius ``min(shape) / 32`` at most).

    Notes
    -----
    Each stroke is a random walk of 2 to 6 segments with a fixed brush radius
    and turns of up to 60 degrees, clamped to the image.  The brush is
    stamped every half radius and drawing stops as soon as the target
    coverage is reached.

    Examples
    --------
    >>> mask = strokes((128, 128), 0.2, seed=0)
    >>> bool(abs(mask.mean() - 0.2) < 0.02)
    True
    """
    shape = _shape(shape, 2)
    _check_fraction("ratio", ratio)
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    target = round(ratio * mask.size)
    limit = np.array(shape, float) - 1
    size = min(shape)
    covered = 0
    while covered < target:
        radius = rng.uniform(max(0.5, size / 96), max(0.5, size / 32))
        point = rng.uniform(0, limit)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(2, 7)):
            angle += rng.uniform(-np.pi / 3, np.pi / 3)
            step = rng.uniform(size / 16, size / 4) * np.array([np.sin(angle), np.cos(angle)])
            stop = np.clip(point + step, 0, limit)
            for stamp in _sample_segment(point, stop, radius / 2):
                lo = np.maximum(np.floor(stamp - radius), 0).astype(int)
                hi = np.minimum(np.ceil(stamp + radius) + 1, shape).astype(int)
                yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1]]
                disk = (yy - stamp[0]) ** 2 + (xx - stamp[1]) ** 2 <= radius**2
                window = mask[lo[0] : hi[0], lo[1] : hi[1]]
                covered += int(np.count_nonzero(disk & ~window))
                window |= disk
                if covered >= target:
                    return mask
            point = stop
    return mask


def scan_lines(shape: tuple[int, ...], n: int, axis: int = 0, seed: Seed = 0) -> np.ndarray:
    """Dropped scan lines: ``n`` whole rows, columns or slices.

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

    Returns
    -------
    ndarray of bool
        True on ``n`` distinct, randomly chosen indices along ``axis``.

    Examples
    --------
    >>> mask = scan_lines((6, 4), 2, axis=0, seed=0)
    >>> int(mask.all(axis=1).sum()), int(mask.sum())
    (2, 8)
    """
    shape = _shape(shape)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for shape {shape}")
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
