r"""Harmonic and biharmonic diffusion fills: smooth, exact for low-order polynomials.

Both methods solve a sparse linear system whose unknowns are the hole pixels
only, so their cost follows the size of the holes, not of the image.  Planes
that share a mask share one factorisation (the engine stacks them as channels).

Notes
-----
With :math:`L` the graph Laplacian of the pixel grid (the 5-point stencil in
2D, 7-point in 3D; at the image border a pixel simply has fewer neighbours,
which is the Neumann condition), the **harmonic** fill solves

.. math:: (L u)(p) = 0 \quad \text{for every hole pixel } p,

with the known pixels as Dirichlet data.  This is MATLAB's ``regionfill``; a
linear ramp is reproduced exactly.  The **biharmonic** fill minimises the
thin-plate energy

.. math:: E(u) = \sum_q \big((L u)(q)\big)^2

over the hole values, i.e. it solves the normal equations
:math:`A^\top A\,x = -A^\top B\,f` where :math:`A` and :math:`B` are the
columns of :math:`L` on the hole and known pixels.  In the interior this is
the discrete biharmonic equation :math:`L^2 u = 0`; a quadratic is
reproduced exactly.  Systems of small holes are factorised directly
(CHOLMOD with the ``fast`` extra, else SuperLU); large ones, whose factors
fill in faster than the hole grows, are solved by conjugate gradients
preconditioned with a geometric multigrid cycle
(:mod:`napari_inpaint.methods._multigrid`), in time and memory that follow
the hole's size.

References
----------
.. [1] J. Shen and T. F. Chan, "Mathematical models for local nontexture
       inpaintings", SIAM J. Appl. Math. 62(3) (2002), 1019-1043.
.. [2] S. B. Damelin and N. S. Hoang, "On surface completion and image
       inpainting by biharmonic functions: numerical aspects", Int. J. Math.
       Math. Sci. (2018), doi:10.1155/2018/3950312.
"""

import functools
import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage as ndi
from scipy.linalg import lapack
from scipy.sparse.csgraph import reverse_cuthill_mckee

from napari_inpaint.registry import register

# A system whose band (in reverse Cuthill-McKee order) is at most this wide is factorised as a band: then it costs
# about as much as a multigrid solve of as many unknowns or less (harmonic on a compact strip 100 wide: 32 ms against
# 33 ms; 140 wide: 87 against 44 ms; thin strokes favour the band).
_BAND_WIDTH = 120
# Multigrid takes biharmonic systems twice the iterations (17 against 8 on a disc, more on thin strokes), so their
# band pays off wider: strokes on 512² images (band 168) took 12.9 ms as a band, 21.4 ms by multigrid; debris (122)
# 7.0 and 11.3 ms; a compact 200-wide strip was 40 % slower as a band. Only up to this many hole pixels, whose band
# then holds at most 68 MB: a larger thin hole goes to multigrid, in a tenth of that memory.
_BIHARMONIC_BAND_WIDTH = 170
_WIDER_BAND_PIXELS = 50_000
# Above this many coupled unknowns (per dimensions and order) a system is solved by multigrid, below it factorised:
# where their times cross on discs, strokes and cubes (one run, 2 cores), for each direct solver. 3D factors fill
# in much sooner: a 28^3 hole took 2.6 s to factorise, multigrid 0.15 s (harmonic; biharmonic 17 s and 0.37 s).
_MULTIGRID_ABOVE = {
    "superlu": {(2, 1): 8_000, (2, 2): 8_000, (3, 1): 3_000, (3, 2): 2_000},
    "cholmod": {(2, 1): 60_000, (2, 2): 30_000, (3, 1): 10_000, (3, 2): 3_000},
}


def _steps(ndim: int, order: int) -> list[np.ndarray]:
    """Offsets of the stencil of ``L`` (order 1) or ``L^2`` (order 2), centre included, in raster order."""
    unit = np.eye(ndim, dtype=np.int64)
    steps = [np.zeros(ndim, np.int64)] + [sign * unit[axis] for axis in range(ndim) for sign in (-1, 1)]
    if order == 2:
        steps += [2 * step for step in steps[1:]]
        steps += [a * unit[i] + b * unit[j] for i, j in itertools.combinations(range(ndim), 2)
                  for a in (-1, 1) for b in (-1, 1)]
    # Raster order of the offsets is the order of the columns they reach: each row's columns come sorted.
    return sorted(steps, key=tuple)


class _System(NamedTuple):
    """The hole pixels of a crop and the stencil of ``L`` (order 1) or ``L^2`` (order 2) on them."""

    hole: np.ndarray  # the hole pixels' flat indices in the crop
    roles: np.ndarray  # the crop padded by the stencil's reach: hole pixel number, -1 known, -2 outside
    at: np.ndarray  # each hole pixel's flat position in ``roles``
    order: int
    strides: np.ndarray  # the flat step along each axis of ``roles``
    offsets: np.ndarray  # the stencil's steps in ``roles``, in raster order
    kinds: np.ndarray  # and their kind: 0 centre, 1 neighbour, 2 two pixels apart, 3 diagonal
    crop_offsets: np.ndarray  # the steps in the crop


class _Assembly(NamedTuple):
    """The system of a crop's hole pixels (:func:`_diffusion_kernels.assemble`)."""

    coupled: np.ndarray  # whether another hole pixel is within the stencil's reach
    degree: np.ndarray  # the number of grid neighbours in the crop (int8)
    diagonal: np.ndarray  # the diagonal entry of ``L^order``
    rhs: np.ndarray  # -(L^order)[hole, known] @ values[known], one column per channel
    matrix: sp.csr_matrix | None  # (L^order)[coupled, coupled], when asked for


def _system(mask: np.ndarray, order: int) -> _System:
    """The hole pixels of ``mask`` and the stencil of ``L^order``."""
    hole = np.flatnonzero(mask)
    # 32-bit positions and numbers where they fit: a large hole's arrays are as large as its crop.
    padded_shape = tuple(n + 2 * order for n in mask.shape)
    index = np.int64 if np.prod(padded_shape, dtype=np.int64) >= 2**31 else np.int32
    padded = np.full(padded_shape, -2, index)
    padded[tuple(slice(order, order + n) for n in mask.shape)] = -1
    coords = np.unravel_index(hole, mask.shape)
    at = np.ravel_multi_index(tuple(c + order for c in coords), padded.shape).astype(index)
    padded.ravel()[at] = np.arange(hole.size)
    steps = _steps(mask.ndim, order)
    strides, padded_strides = (np.cumprod((1,) + shape[:0:-1])[::-1] for shape in (mask.shape, padded.shape))
    kinds = [0 if not step.any() else 1 if np.abs(step).sum() == 1 else 2 if np.abs(step).max() == 2 else 3
             for step in steps]
    return _System(hole, padded, at, order, padded_strides.astype(np.int64),
                   np.array([step @ padded_strides for step in steps], np.int64), np.array(kinds, np.int8),
                   np.array([step @ strides for step in steps], np.int64))


def _assemble(system: _System, values: np.ndarray, matrix: bool) -> _Assembly:
    """The system of ``system``'s hole pixels with the crop's ``values`` as data; the matrix when asked for."""
    from napari_inpaint.methods._diffusion_kernels import assemble

    rows = system.hole.size
    index = np.empty(0, np.int32 if rows * system.offsets.size < 2**31 else np.int64)
    coupled, degree, diagonal, rhs, indptr, indices, entries = assemble(
        system.roles.ravel(), system.at, system.offsets, system.kinds, system.order, system.strides, system.hole,
        system.crop_offsets, values.reshape(-1, values.shape[-1]), matrix, index)
    size = indptr.size - 1
    csr = sp.csr_matrix((entries, indices, indptr), shape=(size, size)) if matrix else None
    return _Assembly(coupled, degree, diagonal, rhs, csr)


def _widest_band(order: int, pixels: int) -> int:
    """The widest band factorised for a system of ``order`` on ``pixels`` hole pixels."""
    return _BIHARMONIC_BAND_WIDTH if order == 2 and pixels <= _WIDER_BAND_PIXELS else _BAND_WIDTH


def _too_wide_for_a_band(mask: np.ndarray, widest: int) -> bool:
    """Whether the hole holds a square (cube) of pixels whose grid graph alone has a band wider than allowed.

    Then the band test cannot succeed and is skipped: building the matrix to
    order it would cost as much memory as the multigrid solve.  An ``s x s``
    grid's bandwidth is ``s``; in nD at least ``(s^d - 1) / (d (s - 1))``
    (its pixels over its diameter).
    """
    side = widest + 1
    if mask.ndim > 2:
        side = 2
        while (side**mask.ndim - 1) / (mask.ndim * (side - 1)) <= widest:
            side += 1
    if min(mask.shape) < side:
        return False
    # Each row of such a square holds `side` hole pixels: scattered pixels (1 % hot pixels on 4096²: 40 ms a
    # crop for the filter) are ruled out by one count per row.
    per_row = np.count_nonzero(mask, axis=-1)
    if per_row.sum() < side**mask.ndim or not (per_row >= side).any():
        return False
    return bool(ndi.minimum_filter(mask.view(np.uint8), size=side, mode="constant").any())


def _fill(
    image: np.ndarray, mask: np.ndarray, order: int, check: Callable[[], None] | None, progress: Callable | None = None
) -> np.ndarray:
    """Solve the hole rows of ``L^order u = 0`` with the known pixels as data; return the filled image."""
    system = _system(mask, order)
    multigrid_above = _MULTIGRID_ABOVE["superlu" if _cholmod() is None else "cholmod"][mask.ndim, order]
    # A hole too thick for a band and with more unknowns than a direct solve takes goes to multigrid without
    # building its matrix: the matrix would cost several times the multigrid's memory.
    widest = _widest_band(order, system.hole.size)
    thick = system.hole.size > multigrid_above and _too_wide_for_a_band(mask, widest)
    assembly = _assemble(system, image, matrix=not thick)
    isolated = np.flatnonzero(~assembly.coupled)
    unknowns = system.hole.size - isolated.size
    if thick and unknowns <= multigrid_above:  # a thick hole among many isolated pixels: small enough after all
        assembly = _assemble(system, image, matrix=True)
    out = image.reshape(-1, image.shape[-1]).copy()
    # A pixel with no unknown within reach (a hot pixel) is a 1 x 1 block: divide instead of factorising.
    out[system.hole[isolated]] = assembly.rhs[isolated] / assembly.diagonal[isolated, np.newaxis]
    if unknowns:
        # All of a large hole's pixels are coupled: a slice then spares copies of its arrays.
        rows = slice(None) if isolated.size == 0 else np.flatnonzero(assembly.coupled)
        solve = None
        if assembly.matrix is not None:
            # A narrow band (thin or scattered holes) is factorised whatever the size: its cost grows as the
            # unknowns, like multigrid's, with a smaller constant.
            solve = _banded(assembly.matrix, widest) or (
                _direct(assembly.matrix) if unknowns <= multigrid_above else None)
            assembly = assembly._replace(matrix=None)  # the band or the factor holds what they need
        if solve is not None:
            out[system.hole[rows]] = solve(assembly.rhs[rows])
        else:
            from napari_inpaint.methods._multigrid import Hierarchy

            numbers = np.full(system.roles.shape, -1, system.roles.dtype)
            at = system.at[rows]
            numbers.ravel()[at] = np.arange(unknowns)
            hierarchy = Hierarchy(numbers, at, assembly.degree[rows], order, system.offsets, system.kinds)
            del at, numbers
            # In place of the right-hand side.
            out[system.hole[rows]] = hierarchy.solve(assembly.rhs[rows], check, progress)
    return out.reshape(image.shape)


@functools.cache
def _cholmod():
    """CVXOPT's CHOLMOD (supernodal Cholesky), when the ``fast`` extra is installed; else None."""
    try:
        from cvxopt import cholmod
    except ImportError:
        return None
    return cholmod


def _direct(system: sp.csr_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """A direct solver of the SPD ``system``: ``solve(rhs)``."""
    cholmod = _cholmod()
    if cholmod is not None:
        from cvxopt import matrix, spmatrix

        # Supernodal Cholesky with an optimised BLAS: 3-5x faster than SuperLU's LU on these systems.
        # CHOLMOD reads the lower triangle; cvxopt matrices copy NumPy arrays through the buffer protocol.
        lower = sp.tril(system, format="coo")
        operator = spmatrix(matrix(lower.data), matrix(lower.row), matrix(lower.col), system.shape)
        try:
            factor = cholmod.symbolic(operator)
            cholmod.numeric(operator, factor)
        except ArithmeticError:  # not numerically positive definite: fall back to LU
            pass
        else:

            def solve(rhs: np.ndarray) -> np.ndarray:
                solution = matrix(rhs)
                cholmod.solve(factor, solution)
                return np.array(solution)

            return solve
    # Symmetric mode keeps the symmetric ordering (no row pivoting): about 4x less fill.
    return spla.splu(
        sp.csc_matrix(system), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    ).solve


def _banded(system: sp.csr_matrix, widest: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """LAPACK's banded Cholesky in reverse Cuthill-McKee order, when its band is at most ``widest``; else None.

    Strokes, scratches, scattered specks and debris of ordinary sizes have
    narrow bands in that order, and a dense band factorises 1.5-2.5x faster
    than SuperLU's sparse LU: its cost is the unknowns times the band's
    width squared.
    """
    from napari_inpaint.methods._diffusion_kernels import lower_band

    order = reverse_cuthill_mckee(system, symmetric_mode=True)
    position = np.empty_like(order)
    position[order] = np.arange(len(order), dtype=order.dtype)
    band = lower_band(system.indptr, system.indices, system.data, position, widest)
    if band.size == 0:
        return None
    factor, failed = lapack.dpbtrf(band, lower=1, overwrite_ab=1)
    if failed:  # not numerically positive definite: leave it to LU
        return None

    def solve(rhs: np.ndarray) -> np.ndarray:
        solution, _ = lapack.dpbtrs(factor, rhs[order], lower=1)
        return solution[position]

    return solve


@register(
    "harmonic",
    summary="Laplace (membrane) fill, as MATLAB's regionfill: smooth, fast, exact for linear ramps",
    family="classical",
    artifacts=("hot-pixels", "scratches", "dropped-lines", "seams", "cosmic-rays"),
    ndims=(2, 3),
    margin=1,
    local_fill=True,
    channel_independent=True,
)
def harmonic(
    image: np.ndarray, mask: np.ndarray, *, check: Callable[[], None] | None = None, progress: Callable | None = None
) -> np.ndarray:
    """Fill holes with the harmonic function matching the surrounding pixels.

    Parameters
    ----------
    %(image_mask)s
    %(check)s
    progress : callable, optional
        ``progress(step, steps)`` during the multigrid solve of a large hole
        (the residual's fall on a log scale); a factorised system reports none.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> ramp = np.add.outer(np.arange(9.0), 2 * np.arange(9.0))
    >>> mask = np.zeros(ramp.shape, bool); mask[3:6, 2:7] = True
    >>> bool(np.allclose(inpaint(ramp, mask, "harmonic"), ramp))
    True
    """
    return _fill(image, mask, 1, check, progress)


@register(
    "biharmonic",
    summary="Thin-plate (biharmonic) fill: smooth and curvature-continuous, exact for quadratics",
    family="classical",
    artifacts=("hot-pixels", "scratches", "debris", "dropped-lines", "saturation", "seams", "cosmic-rays"),
    ndims=(2, 3),
    margin=2,
    local_fill=True,
    channel_independent=True,
)
def biharmonic(
    image: np.ndarray, mask: np.ndarray, *, check: Callable[[], None] | None = None, progress: Callable | None = None
) -> np.ndarray:
    """Fill holes by minimising the discrete thin-plate energy.

    Parameters
    ----------
    %(image_mask)s
    %(check)s
    progress : callable, optional
        ``progress(step, steps)`` during the multigrid solve of a large hole
        (the residual's fall on a log scale); a factorised system reports none.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:16, :16].astype(float)
    >>> bowl = (yy - 7) ** 2 + 0.5 * (xx - 3) ** 2
    >>> mask = np.zeros(bowl.shape, bool); mask[5:11, 4:12] = True
    >>> bool(np.allclose(inpaint(bowl, mask, "biharmonic"), bowl))
    True
    """
    return _fill(image, mask, 2, check, progress)
