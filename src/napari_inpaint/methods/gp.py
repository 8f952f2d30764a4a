r"""Gaussian-process (kriging) fill: the posterior mean under a covariance learnt from the image's own pixels.

Each hole is filled with the best linear unbiased prediction of its pixels from
the known pixels around it, under a stationary isotropic covariance estimated
from those known pixels themselves, as LSST's ``interpolateOverDefectsGP``
does with treegp.  Unlike the diffusion fills, which assume a smooth image,
the fill follows the image's own statistics: next to the hole's border it
carries the border's values (and, with a nugget, smooths their noise), and
deeper in it relaxes to the local mean of the pixels around it.
:func:`posterior` also gives the posterior standard deviation of every hole
pixel: how sure the fill is.

Notes
-----
**Covariance.**  In each crop and channel, the empirical semivariogram of the
known pixels :math:`f(x)` within :math:`3H` of a hole, ``H`` the crop's margin
(the whole crop, unless it packs a few small holes in a large tile; with
``trend="linear"``, of their residuals about their least-squares plane), is
measured along the axes and the diagonals, for lags of :math:`1 \ldots H`
steps,

.. math:: \hat\gamma(h) = \frac{1}{2\,N(h)} \sum_{(x, y) \in P(h)} \big(f(x) - f(y)\big)^2,

over the :math:`N(h)` pairs :math:`P(h)` of known pixels :math:`h` apart.  The
model

.. math:: \gamma(h) = \tau^2 + \sigma^2 \big(1 - \rho(h / \ell)\big), \qquad
          \rho(t) = \begin{cases}
              e^{-t} & \text{exponential} \\
              (1 + \sqrt3\,t)\, e^{-\sqrt3\,t} & \text{Matérn 3/2} \\
              (1 + \sqrt5\,t + \tfrac53 t^2)\, e^{-\sqrt5\,t} & \text{Matérn 5/2}
          \end{cases}

is fitted to it by weighted least squares (weights :math:`N(h)/h`): the nugget
:math:`\tau^2 \ge 0` (pixel noise) and the sill :math:`\sigma^2 \ge 0` in
closed form for each length scale :math:`\ell` of a logarithmic grid up to
:math:`8\,h_{max}` (a variogram still rising at the largest lag is fitted as an
unbounded, nearly linear one), and the best :math:`\ell` kept, or
``length_scale`` when it is given.  The covariance of two pixels is
:math:`k(x, y) = \sigma^2 \rho(|x - y| / \ell) + \tau^2 [x = y]`.

**Prediction (kriging).**  Hole pixels are predicted in blocks (the hole
pixels of a tile of ``6 x 6`` pixels, ``3 x 3 x 3`` in 3D).  A block's known
pixels :math:`X` are the ``neighbours`` nearest ring pixels (the known pixels
within ``H`` of a hole) of each of its pixels (a k-d tree), and, so that a
pixel deep in a wide hole sees every side of it, the nearest
``neighbours / 8`` ring pixels to where each of 8 rays
(26 in 3D) from the block's centre first meets a known pixel, within 4 times
the centre's distance to the nearest one.  The local mean is
:math:`m(x) = \beta^\top g(x)` with :math:`g(x) = 1` (ordinary kriging,
``trend="constant"``) or :math:`g(x) = (1, x)` (universal kriging,
``trend="linear"``).  With :math:`K = k(X, X)` (Cholesky-factorised),
:math:`G = g(X)`, :math:`k_* = \sigma^2\rho(|X - x_*| / \ell)` and
:math:`y = f(X)`,

.. math:: \hat\beta = (G^\top K^{-1} G)^{-1} G^\top K^{-1} y, \qquad
          u_* = g(x_*) - G^\top K^{-1} k_*,

.. math:: \mu(x_*) = k_*^\top K^{-1} y + u_*^\top \hat\beta, \qquad
          s^2(x_*) = \sigma^2 + \tau^2 - k_*^\top K^{-1} k_* + u_*^\top (G^\top K^{-1} G)^{-1} u_* .

:math:`\mu` is the posterior mean with the trend's coefficients integrated
out under a flat prior (their generalised-least-squares estimate), and
:math:`s` the posterior standard deviation of the missing pixel's value, its
noise :math:`\tau^2` included.  The weights of :math:`y` in :math:`\mu` sum
to one (and reproduce :math:`g`), so a constant image is filled exactly, and
with ``trend="linear"`` a linear ramp too; ordinary kriging fills a ramp
nearly exactly (its variogram is then that of the ramp).  A block's pixels
share one factorisation; the cost is about :math:`|X|^3 / 3` operations per
block and channel, :math:`|X|` a few times ``neighbours``.  Each channel
(and each plane of a stack, which the engine passes as channels) gets its own
covariance.

References
----------
.. [1] N. Cressie, *Statistics for Spatial Data*, revised ed., Wiley (1993),
       sections 2.4 (variogram fitting) and 3.2-3.4 (ordinary and universal
       kriging).
.. [2] C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for
       Machine Learning*, MIT Press (2006), chapter 2 and section 2.7.
.. [3] treegp (P.-F. Léget, https://github.com/PFLeget/treegp) and LSST's
       ``lsst.meas.algorithms`` ``interpolateOverDefectsGP``, which fill
       detector defects with a Gaussian process whose kernel is fitted to
       the two-point correlation of the image's own pixels.
"""

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy import linalg, ndimage
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from napari_inpaint.registry import Param, register

KERNELS = ("exponential", "matern32", "matern52")
TRENDS = ("constant", "linear")
# Hole pixels are predicted in blocks of a tile of this side (per spatial dimensionality) sharing one system.
_TILE = {2: 6, 3: 3}
# Hole pixels whose nearest neighbours are looked up at once (memory: this x neighbours x 16 bytes).
_QUERY_CHUNK = 4096
# Length scales tried by the variogram fit, as multiples of the largest lag measured.
_LENGTHS = np.geomspace(0.02, 8.0, 60)
# Added to the diagonal of the correlation matrix (a fraction of the sill) so that smooth kernels factorise.
_JITTER = 1e-9
# Rays cast from a block to find known pixels on every side reach this many times its depth in the hole.
_REACH = 4.0
# The covariance is fitted to the known pixels within this many margins of a hole.
_VARIOGRAM_MARGINS = 3


def _margin(neighbours: int) -> int:
    """Known context around a hole: the radius of a half-disc holding ``neighbours`` pixels, plus a little."""
    return math.ceil(math.sqrt(2.0 * neighbours / math.pi)) + 3


def _correlation(kernel: str) -> Callable[[np.ndarray], np.ndarray]:
    """The correlation function :math:`\\rho(t)` of ``kernel``, ``t`` the distance over the length scale."""
    if kernel == "exponential":
        return lambda t: np.exp(-t)
    if kernel == "matern32":
        root3 = math.sqrt(3.0)
        return lambda t: (1.0 + root3 * t) * np.exp(-root3 * t)
    if kernel == "matern52":
        root5 = math.sqrt(5.0)
        return lambda t: (1.0 + root5 * t + (5.0 / 3.0) * t * t) * np.exp(-root5 * t)
    raise ValueError(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")


def _directions(ndim: int) -> list[np.ndarray]:
    """Unit steps along which the variogram is measured: the axes and the diagonals of each pair of axes."""
    unit = np.eye(ndim, dtype=np.int64)
    steps = list(unit)
    for i in range(ndim):
        for j in range(i + 1, ndim):
            steps += [unit[i] + unit[j], unit[i] - unit[j]]
    return steps


def _shifted(step: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """The slices of the pixels ``x`` and ``x + step`` of an array of ``shape``, or None when no pair fits."""
    first, second = [], []
    for s, n in zip(step, shape):
        s = int(s)
        if abs(s) >= n:
            return None
        first.append(slice(0, n - s) if s >= 0 else slice(-s, n))
        second.append(slice(s, n) if s >= 0 else slice(0, n + s))
    return tuple(first), tuple(second)


def _detrended(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` minus their least-squares plane over the known pixels (zero on the unknown ones)."""
    coords = np.nonzero(known)
    design = np.column_stack([np.ones(coords[0].size)] + [c - c.mean() for c in coords if np.ptp(c) > 0])
    data = values[known]
    coefficients = np.linalg.lstsq(design, data, rcond=None)[0]
    residual = np.zeros_like(values)
    residual[known] = data - design @ coefficients
    return residual


def variogram(
    values: np.ndarray, known: np.ndarray, max_lag: int, detrend: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical semivariogram of the known pixels (or their residuals) along the axes and diagonals.

    Parameters
    ----------
    values : ndarray
        One channel (2D or 3D); only its known entries are read.
    known : ndarray of bool
        True on the known pixels.
    max_lag : int
        Largest number of steps measured along each direction.
    detrend : bool
        Measure the residuals of the known pixels' least-squares plane
        (universal kriging) rather than the values themselves (ordinary).

    Returns
    -------
    lags, gammas, counts : ndarray
        For each (direction, steps) with at least one pair: the distance, the
        semivariance and the number of pairs.
    """
    residual = _detrended(values, known) if detrend else np.where(known, values, 0.0)
    lags, gammas, counts = [], [], []
    for direction in _directions(values.ndim):
        length = float(np.linalg.norm(direction))
        for steps in range(1, max_lag + 1):
            slices = _shifted(steps * direction, values.shape)
            if slices is None:
                break
            a, b = slices
            both = known[a] & known[b]
            count = int(np.count_nonzero(both))
            if count == 0:
                continue
            difference = residual[a][both] - residual[b][both]
            lags.append(steps * length)
            gammas.append(0.5 * float(difference @ difference) / count)
            counts.append(count)
    return np.array(lags), np.array(gammas), np.array(counts, np.float64)


def _nonnegative_fit(design: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of ``design @ (nugget, sill) = target`` with both coefficients >= 0."""
    root = np.sqrt(weights)
    a, b = design * root[:, None], target * root
    best, best_error = np.zeros(2), float(b @ b)
    candidates = []
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    if (solution >= 0).all():
        candidates.append(solution)
    for column in range(2):  # one coefficient at zero, the other fitted alone
        norm = float(a[:, column] @ a[:, column])
        if norm > 0:
            coefficient = np.zeros(2)
            coefficient[column] = max(0.0, float(a[:, column] @ b) / norm)
            candidates.append(coefficient)
    for coefficient in candidates:
        residual = a @ coefficient - b
        error = float(residual @ residual)
        if error < best_error:
            best, best_error = coefficient, error
    return best, best_error


def fit_covariance(
    values: np.ndarray, known: np.ndarray, kernel: str, max_lag: int, length_scale: float = 0.0, detrend: bool = False
) -> tuple[float, float, float]:
    """Fit ``(sill, nugget, length)`` of ``kernel`` to the variogram of the known pixels (see :func:`variogram`).

    ``length_scale`` > 0 fixes the length; the sill and the nugget are still
    fitted.  A channel whose known pixels (residuals, with ``detrend``) do
    not vary at all gets a sill of 0: the fill is then its trend, exactly.
    """
    correlation = _correlation(kernel)
    lags, gammas, counts = variogram(values, known, max_lag, detrend)
    if lags.size == 0 or not gammas.any():
        variance = float(np.var((_detrended(values, known) if detrend else values)[known]))
        return 0.0, variance, length_scale or 1.0
    weights = counts / lags
    top = max(float(lags.max()), 1.0)
    lengths = [length_scale] if length_scale > 0 else _LENGTHS * top
    best = None
    for length in lengths:
        design = np.column_stack([np.ones_like(lags), 1.0 - correlation(lags / length)])
        (nugget, sill), error = _nonnegative_fit(design, gammas, weights)
        if best is None or error < best[0]:
            best = (error, sill, nugget, length)
    return best[1], best[2], best[3]


def _blocks(points: np.ndarray, tile: int) -> list[np.ndarray]:
    """Indices of ``points`` grouped by the tile of side ``tile`` they fall in, tiles in raster order."""
    keys = points // tile
    keys -= keys.min(axis=0)
    flat = np.ravel_multi_index(tuple(keys.T), tuple(keys.max(axis=0) + 1))
    order = np.argsort(flat, kind="stable")
    cuts = np.flatnonzero(np.diff(flat[order])) + 1
    return np.split(order, cuts)


def _ray_directions(ndim: int) -> np.ndarray:
    """Unit vectors towards the 8 (2D) or 26 (3D) grid neighbours: the directions rays are cast in."""
    steps = np.array([s for s in itertools.product((-1, 0, 1), repeat=ndim) if any(s)], np.float64)
    return steps / np.linalg.norm(steps, axis=1, keepdims=True)


def _across(
    centres: np.ndarray, known: np.ndarray, tree: cKDTree, directions: np.ndarray, around: int
) -> list[np.ndarray]:
    """For each block centre, known pixels on every side of it: around where rays from it first meet one.

    A ray stops after ``_REACH`` times the centre's distance to the nearest
    known pixel (plus two tiles): the far side of a wide hole is reached, the
    far end of a long thin one is not.  Returns, per centre, indices into
    the known pixels of the tree (the ``around`` nearest of each hit).
    """
    depth, _ = tree.query(centres, k=1)
    limit = _REACH * np.asarray(depth).reshape(-1) + 2 * _TILE.get(known.ndim, 4)
    shape = np.array(known.shape)
    steps = int(np.ceil(limit.max()))
    origin = np.repeat(centres, len(directions), axis=0)
    heading = np.tile(directions, (len(centres), 1))
    reach = np.repeat(limit, len(directions))
    hit = np.full(origin.shape[0], -1.0)
    open_ = np.ones(origin.shape[0], bool)
    for t in range(1, steps + 1):
        rays = np.flatnonzero(open_)
        if rays.size == 0:
            break
        position = np.rint(origin[rays] + t * heading[rays]).astype(np.int64)
        inside = (position >= 0).all(axis=1) & (position < shape).all(axis=1) & (t <= reach[rays])
        open_[rays[~inside]] = False
        rays, position = rays[inside], position[inside]
        found = known[tuple(position.T)]
        hit[rays[found]] = t
        open_[rays[found]] = False
    hits = hit > 0
    points = np.rint(origin[hits] + hit[hits, None] * heading[hits])
    found = [np.zeros(0, np.int64) for _ in centres]
    if points.size:
        _, nearby = tree.query(points, k=around)
        nearby = np.asarray(nearby).reshape(points.shape[0], around)
        owner = np.flatnonzero(hits) // len(directions)
        for centre in np.unique(owner):
            found[centre] = nearby[owner == centre].ravel()
    return found


def _trend_design(coords: np.ndarray, centre: np.ndarray, span: float, axes: np.ndarray) -> np.ndarray:
    """The trend's basis :math:`g(x)`: 1, and the centred coordinates along ``axes`` scaled by ``span``."""
    return np.column_stack([np.ones(coords.shape[0]), (coords[:, axes] - centre[axes]) / span])


def _krige(
    image: np.ndarray,
    mask: np.ndarray,
    kernel: str,
    neighbours: int,
    length_scale: float,
    trend: str,
    with_std: bool,
    check: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The posterior mean (and standard deviation) of every masked pixel of ``image`` (channels last)."""
    from threadpoolctl import threadpool_limits

    correlation = _correlation(kernel)
    mean = image.copy()
    std = np.zeros(image.shape) if with_std else None
    hole_points = np.argwhere(mask)
    if hole_points.size == 0:
        return mean, std
    channels = image.shape[-1]
    max_lag = _margin(neighbours)
    # The known pixels read: those within a few margins of a hole pixel fit the covariance (the whole crop,
    # unless it packs a few small holes in a large tile); those within the margin (the ring) are predicted from.
    distance = ndimage.distance_transform_edt(~mask)
    known = ~mask & (distance <= _VARIOGRAM_MARGINS * max_lag)
    ring = known & (distance <= max_lag)
    fits = []
    for channel in range(channels):
        if check is not None:
            check()
        values = np.ascontiguousarray(image[..., channel])
        values = np.where(known, values, 0.0)
        centre = float(values[known].mean())
        spread = float(values[known].std())
        scale = spread if spread > 0 else 1.0
        sill, nugget, length = fit_covariance(
            (values - centre) / scale, known, kernel, max_lag, length_scale, detrend=trend == "linear"
        )
        fits.append((centre, scale, sill, nugget, length, values[ring]))
    known_points = np.argwhere(ring)
    count = min(neighbours, known_points.shape[0])
    tree = cKDTree(known_points)
    blocks = _blocks(hole_points, _TILE.get(mask.ndim, 4))
    directions = _ray_directions(mask.ndim)
    around = min(max(4, neighbours // len(directions)), known_points.shape[0])
    flat_mean = mean.reshape(-1, channels)
    flat_std = None if std is None else std.reshape(-1, channels)
    hole_flat = np.flatnonzero(mask.ravel())  # raster order, as argwhere's rows
    done = 0
    report = max(1, len(blocks) // 50)
    start = 0
    # Thousands of small factorisations: BLAS threads only add overhead (10-100x on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        while start < len(blocks):
            # Look up the nearest known pixels of a chunk of blocks at once.
            stop, size = start, 0
            while stop < len(blocks) and (size == 0 or size + blocks[stop].size <= _QUERY_CHUNK):
                size += blocks[stop].size
                stop += 1
            chunk = np.concatenate(blocks[start:stop])
            _, nearest = tree.query(hole_points[chunk], k=count)
            nearest = np.asarray(nearest).reshape(chunk.size, count)
            centres = np.array([hole_points[block].mean(axis=0) for block in blocks[start:stop]])
            beyond = _across(centres, ring, tree, directions, around)
            row = 0
            for index, block in enumerate(blocks[start:stop]):
                if check is not None:
                    check()
                chosen = np.unique(np.concatenate([nearest[row : row + block.size].ravel(), beyond[index]]))
                row += block.size
                _predict_block(
                    known_points[chosen], hole_points[block], chosen, hole_flat[block], fits, correlation, trend,
                    flat_mean, flat_std,
                )
                done += 1
                if progress is not None and (done % report == 0 or done == len(blocks)):
                    progress(done, len(blocks))
            start = stop
    return mean, std


def _predict_block(
    near: np.ndarray,
    targets: np.ndarray,
    chosen: np.ndarray,
    flat_targets: np.ndarray,
    fits: list,
    correlation: Callable[[np.ndarray], np.ndarray],
    trend: str,
    flat_mean: np.ndarray,
    flat_std: np.ndarray | None,
) -> None:
    """Kriging (ordinary or universal) of the hole pixels ``targets`` from the known pixels ``near``, every channel."""
    near = near.astype(np.float64)
    targets = targets.astype(np.float64)
    between = cdist(near, near)
    across = cdist(near, targets)
    centre = targets.mean(axis=0)
    if trend == "linear":
        axes = np.flatnonzero(np.ptp(near, axis=0) > 0)
        span = max(1.0, float(np.ptp(near, axis=0).max()))
    else:
        axes = np.zeros(0, np.int64)
        span = 1.0
    basis = _trend_design(near, centre, span, axes)
    basis_targets = _trend_design(targets, centre, span, axes)
    size = near.shape[0]
    for channel, (offset, scale, sill, nugget, length, data) in enumerate(fits):
        y = (data[chosen] - offset) / scale
        if sill <= 0:
            # No spatial correlation: the fill is the trend (least squares over the neighbours).
            coefficients = np.linalg.lstsq(basis, y, rcond=None)[0]
            flat_mean[flat_targets, channel] = offset + scale * (basis_targets @ coefficients)
            if flat_std is not None:
                flat_std[flat_targets, channel] = scale * math.sqrt(nugget)
            continue
        ratio = nugget / sill
        system = correlation(between / length)
        system[np.diag_indices(size)] += ratio + _JITTER
        cross = correlation(across / length)
        factor = _cholesky(system)
        solved = linalg.cho_solve(factor, np.column_stack([basis, y, cross]), check_finite=False)
        p = basis.shape[1]
        k_basis, k_y, k_cross = solved[:, :p], solved[:, p], solved[:, p + 1 :]
        gram = basis.T @ k_basis
        inverse_gram = np.linalg.pinv(gram, rcond=1e-12, hermitian=True)
        beta = inverse_gram @ (basis.T @ k_y)
        u = basis_targets.T - basis.T @ k_cross  # (p, targets)
        flat_mean[flat_targets, channel] = offset + scale * (cross.T @ k_y + u.T @ beta)
        if flat_std is not None:
            variance = 1.0 + ratio - np.einsum("ij,ij->j", cross, k_cross) + np.einsum("ij,ij->j", u, inverse_gram @ u)
            flat_std[flat_targets, channel] = scale * math.sqrt(sill) * np.sqrt(np.maximum(variance, 0.0))


def _cholesky(system: np.ndarray) -> tuple[np.ndarray, bool]:
    """``cho_factor`` of an SPD matrix, with more jitter on its diagonal while it fails numerically."""
    jitter = _JITTER
    for _ in range(8):
        try:
            return linalg.cho_factor(system, lower=True, check_finite=False)
        except linalg.LinAlgError:
            system = system + np.eye(system.shape[0]) * jitter * 99
            jitter *= 100
    return linalg.cho_factor(system + np.eye(system.shape[0]) * 1e-3, lower=True, check_finite=False)


def _check_params(kernel: str, neighbours: int, length_scale: float, trend: str) -> None:
    _correlation(kernel)
    if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or neighbours < 1:
        raise ValueError(f"neighbours must be a positive integer, got {neighbours!r}")
    if not (isinstance(length_scale, (int, float, np.number)) and math.isfinite(length_scale) and length_scale >= 0):
        raise ValueError(f"length_scale must be a finite number >= 0 (0: estimated), got {length_scale!r}")
    if trend not in TRENDS:
        raise ValueError(f"unknown trend {trend!r}; use one of {', '.join(TRENDS)}")


def posterior(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    kernel: str = "matern32",
    neighbours: int = 64,
    length_scale: float = 0.0,
    trend: str = "constant",
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mean and standard deviation of the masked pixels, under the fitted covariance.

    The whole image is one crop here (no margin is cut): its known pixels fit
    the covariance of each channel, and each masked pixel is predicted from
    its ``neighbours`` nearest known pixels (see the module's notes).

    Parameters
    ----------
    image : ndarray
        Float image of ``mask``'s shape, or with a last channel axis
        (``mask.shape + (C,)``); masked entries are ignored.
    mask : ndarray of bool
        True on the pixels to predict (2D or 3D); at least one pixel known.
    kernel, neighbours, length_scale, trend
        As for the ``gp`` method.

    Returns
    -------
    mean, std : ndarray of float64, of ``image``'s shape
        The image with its masked pixels replaced by their posterior mean,
        and the posterior standard deviation of each pixel's value (the
        nugget, i.e. the pixel noise, included): 0 on the known pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint.methods.gp import posterior
    >>> ramp = np.add.outer(np.arange(32.0), 0.5 * np.arange(32.0))
    >>> mask = np.zeros(ramp.shape, bool); mask[10:20, 12:22] = True
    >>> mean, std = posterior(ramp, mask, trend="linear")  # universal kriging: exact on a ramp
    >>> bool(np.allclose(mean, ramp)), float(std[~mask].max())
    (True, 0.0)
    >>> mean, std = posterior(ramp + np.random.default_rng(0).normal(0, 1, ramp.shape), mask)
    >>> bool(std[15, 17] > std[10, 17] > 0)  # less certain deeper in the hole
    True
    """
    _check_params(kernel, neighbours, length_scale, trend)
    mask = np.asarray(mask, dtype=bool)
    values = np.asarray(image, dtype=np.float64)
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be 2D or 3D, got {mask.ndim}D")
    squeeze = values.shape == mask.shape
    if squeeze:
        values = values[..., np.newaxis]
    if values.shape[:-1] != mask.shape:
        raise ValueError(f"image of shape {np.shape(image)} does not match the mask's {mask.shape}")
    if mask.all():
        raise ValueError("every pixel is masked: at least one must be known")
    values = np.where(mask[..., np.newaxis], 0.0, values)
    if not np.isfinite(values).all():
        raise ValueError("the image has NaN or infinite known pixels: mask them too")
    largest = float(np.abs(values).max())
    unit = 1.0 if largest == 0.0 else float(np.ldexp(1.0, np.frexp(largest)[1] - 1))  # exact: a power of two
    mean, std = _krige(values / unit, mask, kernel, int(neighbours), float(length_scale), trend, with_std=True)
    mean, std = mean * unit, std * unit
    if squeeze:
        return mean[..., 0], std[..., 0]
    return mean, std


@register(
    "gp",
    summary="Gaussian-process (kriging) fill: the posterior mean under a covariance fitted to the known pixels "
    "around each hole",
    family="classical",
    artifacts=("debris", "hot-pixels", "scratches", "texture", "cosmic-rays"),
    ndims=(2, 3),
    params=(
        Param("kernel", str, "matern32", "covariance model fitted to the variogram of the known pixels",
              choices=KERNELS),
        Param("neighbours", int, 64, "known pixels each hole pixel is predicted from (cost grows as their cube)",
              4, 1024),
        Param("length_scale", float, 0.0, "correlation length in pixels; 0 estimates it from the variogram",
              0.0, 10000.0, advanced=True),
        Param("trend", str, "constant", "local mean: a constant (ordinary kriging) or a plane (universal kriging, "
              "exact for linear ramps)", choices=TRENDS, advanced=True),
    ),
    margin=lambda params: _margin(params["neighbours"]),
    local_fill=True,
    channel_independent=True,
)
def gp(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    kernel: str = "matern32",
    neighbours: int = 64,
    length_scale: float = 0.0,
    trend: str = "constant",
    spread: bool = False,
    check: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fill holes with the kriging (Gaussian-process posterior) mean of their pixels.

    Parameters
    ----------
    %(image_mask)s
    kernel : {'exponential', 'matern32', 'matern52'}
        Covariance model; its sill, nugget and length are fitted to the
        crop's known pixels, channel by channel.
    neighbours : int
        Known pixels (the nearest) each hole pixel is predicted from.
    length_scale : float
        Correlation length in pixels; 0 estimates it.
    trend : {'constant', 'linear'}
        The local mean: a constant (ordinary kriging) or a plane
        (universal kriging, exact for linear ramps), estimated with the
        kernel.
    spread : bool
        Also return the posterior standard deviation (the engine asks for
        it with ``return_uncertainty``, and calibrates it on probes).
    %(check)s
    %(progress)s

    Returns
    -------
    %(returns)s
    std : ndarray
        With ``spread``: the posterior standard deviation of each pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> ramp = np.add.outer(np.arange(24.0), 2 * np.arange(24.0))
    >>> mask = np.zeros(ramp.shape, bool); mask[8:15, 6:16] = True
    >>> bool(np.allclose(inpaint(ramp, mask, "gp", trend="linear"), ramp))
    True
    >>> float(np.abs(inpaint(ramp, mask, "gp") - ramp).max()) < 0.5  # ordinary kriging: nearly
    True
    """
    _check_params(kernel, neighbours, length_scale, trend)
    mean, std = _krige(image, mask, kernel, int(neighbours), float(length_scale), trend, spread, check, progress)
    return (mean, std) if spread else mean
