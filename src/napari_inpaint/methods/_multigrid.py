r"""Multigrid-preconditioned conjugate gradients: the harmonic and biharmonic fills of large holes.

A direct solve of the diffusion systems costs more than the hole: its factor
fills in (a 600² hole: 0.4-0.8 GiB; a 24³ hole: 18 s).  This solver costs a
few passes over the hole's matrix per iteration, in time and in memory.

Notes
-----
The unknowns are the hole pixels of a crop.  The grids of the hierarchy
come from their coordinates: a cell of level :math:`l + 1` covers
:math:`2^d` cells of level :math:`l` and is an unknown when one of them is.
The interpolation :math:`P_l` from level :math:`l + 1` to level :math:`l` is
(bi/tri)linear between cell centres (weights 3/4 and 1/4 per axis), without
the coarse cells that are no unknowns (the known pixels' correction is 0);
the coarse matrices are Galerkin products :math:`A_{l+1} = P_l^\top A_l
P_l`, so that the same hierarchy serves the harmonic matrix :math:`L_D` and
the thin-plate matrix :math:`(L^2)[H, H]` of
:mod:`napari_inpaint.methods.diffusion`.  A V-cycle smooths with one forward
Gauss-Seidel sweep on the way down, restricts the residual with
:math:`P_l^\top`, solves the coarsest level (at most :data:`COARSEST`
unknowns) with a dense Cholesky factor, and smooths with a backward sweep on the way
up: a symmetric positive definite preconditioner, so conjugate gradients can
use it.  They stop when the residual is below :data:`RTOL` times the
right-hand side's, which leaves the fill within about 1e-7 of the direct
solve's on the fill's [1, 2) scale: far below a grey level of 16 bits.
Measured on a disc of radius 100: 8 iterations (harmonic), 16 (biharmonic).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from pyamg.relaxation.relaxation import gauss_seidel
from scipy import linalg
from threadpoolctl import threadpool_limits

# The coarsest level is solved with a dense Cholesky factor of at most this many unknowns.
COARSEST = 400
RTOL = 1e-10
_MAX_ITERATIONS = 500


@dataclass
class _Level:
    matrix: sp.csr_matrix
    interpolation: sp.csr_matrix | None = None  # from the next level
    restriction: sp.csc_matrix | None = None  # its transpose (a view)


def _coarsen(coordinates: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...], sp.csr_matrix]:
    """The next level's unknowns (coordinates), grid shape and the linear interpolation from it."""
    ndim = coordinates.shape[1]
    coarse_shape = tuple((n + 1) // 2 for n in shape)
    parents = coordinates // 2
    # Coarse cells are numbered in raster order; the index grid is padded by one cell on each side.
    padded = tuple(n + 2 for n in coarse_shape)
    keys = np.unique(np.ravel_multi_index(tuple((parents + 1).T), padded))
    index = np.full(int(np.prod(padded)), -1, np.int32)
    index[keys] = np.arange(len(keys), dtype=np.int32)
    coarse = (np.stack(np.unravel_index(keys, padded), axis=1) - 1).astype(coordinates.dtype)
    # Per axis the parent (weight 3/4) and its neighbour on the fine cell's side (1/4): 2^d columns per row.
    side = np.where(coordinates % 2 == 0, -1, 1).astype(coordinates.dtype)
    corners = np.array(list(np.ndindex(*(2,) * ndim)), coordinates.dtype)
    columns = np.empty((len(coordinates), len(corners)), np.int32)
    for k, step in enumerate(corners):
        columns[:, k] = index[np.ravel_multi_index(tuple((parents + 1 + step * side).T), padded)]
    weights = np.broadcast_to(np.prod(np.where(corners == 1, 0.25, 0.75), axis=1), columns.shape)
    present = columns >= 0  # the coarse cells that are unknowns
    indptr = np.zeros(len(coordinates) + 1, np.int32)
    np.cumsum(np.count_nonzero(present, axis=1), out=indptr[1:])
    interpolation = sp.csr_matrix((weights[present], columns[present], indptr), shape=(len(coordinates), len(keys)))
    return coarse, coarse_shape, interpolation


class Hierarchy:
    """The multigrid hierarchy of an SPD ``matrix`` whose unknowns sit at ``coordinates`` in a grid of ``shape``."""

    def __init__(self, matrix: sp.csr_matrix, coordinates: np.ndarray, shape: tuple[int, ...]):
        self.levels = [_Level(sp.csr_matrix(matrix))]
        while self.levels[-1].matrix.shape[0] > COARSEST and max(shape) > 2:
            coordinates, shape, interpolation = _coarsen(coordinates, shape)
            level = self.levels[-1]
            level.interpolation, level.restriction = interpolation, interpolation.T
            self.levels.append(_Level((level.restriction @ level.matrix @ interpolation).tocsr()))
        # Galerkin products of an SPD matrix with full-rank interpolations (each coarse unknown has a child of
        # weight (3/4)^d) are SPD: a Cholesky factor, 30x faster than a pseudo-inverse.
        self.coarsest = linalg.cho_factor(self.levels[-1].matrix.toarray(), check_finite=False)

    def cycle(self, rhs: np.ndarray, depth: int = 0) -> np.ndarray:
        """One symmetric V-cycle from zero: the preconditioner applied to ``rhs``."""
        if depth == len(self.levels) - 1:
            return linalg.cho_solve(self.coarsest, rhs, check_finite=False)
        level = self.levels[depth]
        x = np.zeros_like(rhs)
        gauss_seidel(level.matrix, x, rhs, sweep="forward")
        residual = rhs - level.matrix @ x
        x += level.interpolation @ self.cycle(level.restriction @ residual, depth + 1)
        gauss_seidel(level.matrix, x, rhs, sweep="backward")
        return x

    def solve(
        self, rhs: np.ndarray, check: Callable[[], None] | None, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """Solve for every column of ``rhs`` by preconditioned conjugate gradients.

        ``check()`` is called at every iteration; ``progress(step, steps)``
        follows the residual's fall on a log scale towards :data:`RTOL`, column
        by column.
        """
        solution = np.empty_like(rhs)
        # Many small operations (the coarsest level's dense solve): BLAS threads only add overhead.
        with threadpool_limits(limits=1, user_api="blas"):
            for column in range(rhs.shape[1]):
                done = None if progress is None else _fraction(progress, column, rhs.shape[1])
                solution[:, column] = self._conjugate_gradients(np.ascontiguousarray(rhs[:, column]), check, done)
        return solution

    def _conjugate_gradients(
        self, b: np.ndarray, check: Callable[[], None] | None, done: Callable[[float], None] | None
    ) -> np.ndarray:
        """From zero, to a residual of :data:`RTOL` times ``|b|``; ``done(fraction)`` after each iteration."""
        matrix = self.levels[0].matrix
        x = np.zeros_like(b)
        target = RTOL * float(np.linalg.norm(b))
        if target == 0.0:
            return x
        r = b.copy()
        z = self.cycle(r)
        p = z.copy()
        rz = float(r @ z)
        for _ in range(_MAX_ITERATIONS):
            if check is not None:
                check()
            q = matrix @ p
            alpha = rz / float(p @ q)
            x += alpha * p
            r -= alpha * q
            residual = float(np.linalg.norm(r))
            if residual <= target:
                return x
            if done is not None:  # the residual falls about geometrically: its logarithm advances evenly
                done(np.log(target / RTOL / max(residual, target)) / np.log(1.0 / RTOL))
            z = self.cycle(r)
            rz, previous = float(r @ z), rz
            p *= rz / previous
            p += z
        raise RuntimeError(f"multigrid conjugate gradients did not converge in {_MAX_ITERATIONS} iterations")


_STEPS = 1000


def _fraction(progress: Callable[[int, int], None], column: int, columns: int) -> Callable[[float], None]:
    """``done(fraction)`` of one column's solve, reported as ``progress(step, steps)`` over all columns."""
    return lambda fraction: progress(int(_STEPS * (column + min(max(fraction, 0.0), 1.0)) / columns), _STEPS)
