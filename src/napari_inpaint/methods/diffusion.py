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
reproduced exactly.  Two-dimensional systems are factorised directly
(SuperLU); large 3D systems, where direct factorisation fills in badly, are
solved by conjugate gradients preconditioned with two algebraic-multigrid
cycles of the hole's Dirichlet Laplacian (:math:`A^\top A \approx L_D^2`).

References
----------
.. [1] J. Shen and T. F. Chan, "Mathematical models for local nontexture
       inpaintings", SIAM J. Appl. Math. 62(3) (2002), 1019-1043.
.. [2] S. B. Damelin and N. S. Hoang, "On surface completion and image
       inpainting by biharmonic functions: numerical aspects", Int. J. Math.
       Math. Sci. (2018), doi:10.1155/2018/3950312.
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage as ndi

from napari_inpaint._registry import register

# Above this many unknowns a 3D system is solved iteratively: sparse direct
# factorisation of 3D stencils needs minutes and gigabytes (24^3 holes: 18 s).
_DIRECT_3D_LIMIT = 3000
_CG_RTOL = 1e-9


def _laplacian_rows(shape: tuple[int, ...], rows: np.ndarray) -> sp.csr_matrix:
    """Rows ``rows`` (flat indices) of the grid's graph Laplacian, shape (len(rows), prod(shape))."""
    size = int(np.prod(shape))
    coords = np.unravel_index(rows, shape)
    strides = np.cumprod((1,) + shape[:0:-1])[::-1]
    local = np.arange(rows.size)
    row_parts, col_parts = [local], [rows]
    degree = np.zeros(rows.size)
    for axis, stride in enumerate(strides):
        for step in (-1, 1):
            inside = (coords[axis] + step >= 0) & (coords[axis] + step < shape[axis])
            row_parts.append(local[inside])
            col_parts.append(rows[inside] + step * stride)
            degree += inside
    values = np.concatenate([degree, -np.ones(sum(p.size for p in row_parts[1:]))])
    return sp.csr_matrix(
        (values, (np.concatenate(row_parts), np.concatenate(col_parts))), shape=(rows.size, size)
    )


def _split_columns(matrix: sp.csr_matrix, hole: np.ndarray, data: np.ndarray) -> tuple[sp.csc_matrix, np.ndarray]:
    """Split ``matrix @ u`` into a hole part (matrix) and the known pixels' contribution (vector)."""
    is_hole = np.zeros(matrix.shape[1], bool)
    is_hole[hole] = True
    coo = matrix.tocoo()
    on_hole = is_hole[coo.col]
    position = np.cumsum(is_hole) - 1  # column index among the hole pixels
    hole_part = sp.csc_matrix(
        (coo.data[on_hole], (coo.row[on_hole], position[coo.col[on_hole]])), shape=(matrix.shape[0], hole.size)
    )
    known_part = sp.csr_matrix((coo.data[~on_hole], (coo.row[~on_hole], coo.col[~on_hole])), shape=matrix.shape)
    return hole_part, known_part @ data


def _iterative(ndim: int, unknowns: int) -> bool:
    return ndim == 3 and unknowns > _DIRECT_3D_LIMIT


def _solve(system: sp.spmatrix, rhs: np.ndarray, ndim: int, laplacian=None, squared: bool = False) -> np.ndarray:
    """Solve an SPD system for every column of ``rhs``.

    Directly, or (large 3D systems) by conjugate gradients preconditioned with
    multigrid cycles of ``laplacian``, applied twice when ``squared``.
    """
    if not _iterative(ndim, system.shape[0]):
        # Symmetric mode keeps the symmetric ordering (no row pivoting): about 4x less fill.
        return spla.splu(
            sp.csc_matrix(system), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        ).solve(rhs)
    from threadpoolctl import threadpool_limits

    # Multigrid set-up and CG are many small operations: BLAS threads only add overhead.
    with threadpool_limits(limits=1, user_api="blas"):
        preconditioner = _multigrid(laplacian, squared)
        solution = np.empty_like(rhs)
        for column in range(rhs.shape[1]):
            solution[:, column], info = spla.cg(system, rhs[:, column], M=preconditioner, rtol=_CG_RTOL, maxiter=2000)
            if info:
                raise RuntimeError(f"conjugate gradients did not converge ({info} iterations)")
    return solution


def _multigrid(laplacian: sp.spmatrix, squared: bool) -> spla.LinearOperator:
    """Algebraic-multigrid approximation of ``laplacian^-1`` (or its square)."""
    import pyamg

    cycle = pyamg.smoothed_aggregation_solver(sp.csr_matrix(laplacian), max_coarse=500).aspreconditioner()
    apply = (lambda v: cycle @ (cycle @ v)) if squared else (lambda v: cycle @ v)
    return spla.LinearOperator(laplacian.shape, matvec=apply)


@register(
    "harmonic",
    summary="Laplace (membrane) fill, as MATLAB's regionfill: smooth, fast, exact for linear ramps",
    family="classical",
    artifacts=("hot-pixels", "scratches", "dropped-lines", "seams"),
    ndims=(2, 3),
    margin=1,
    local_fill=True,
    channel_independent=True,
)
def harmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill holes with the harmonic function matching the surrounding pixels.

    Parameters
    ----------
    %(image_mask)s

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
    hole = np.flatnonzero(mask)
    data = image.reshape(-1, image.shape[-1])
    system, known = _split_columns(_laplacian_rows(mask.shape, hole), hole, data)
    system = system.tocsr()
    out = data.copy()
    out[hole] = _solve(system, -known, mask.ndim, laplacian=system)
    return out.reshape(image.shape)


@register(
    "biharmonic",
    summary="Thin-plate (biharmonic) fill: smooth and curvature-continuous, exact for quadratics",
    family="classical",
    artifacts=("hot-pixels", "scratches", "debris", "dropped-lines", "saturation", "seams"),
    ndims=(2, 3),
    margin=2,
    local_fill=True,
    channel_independent=True,
)
def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill holes by minimising the discrete thin-plate energy.

    Parameters
    ----------
    %(image_mask)s

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
    hole = np.flatnonzero(mask)
    # Only the Laplacian at the hole and its direct neighbours involves hole pixels.
    near = np.flatnonzero(ndi.binary_dilation(mask, ndi.generate_binary_structure(mask.ndim, 1)))
    data = image.reshape(-1, image.shape[-1])
    on_hole, known = _split_columns(_laplacian_rows(mask.shape, near), hole, data)
    system = (on_hole.T @ on_hole).tocsr()
    dirichlet = None
    if _iterative(mask.ndim, hole.size):
        dirichlet, _ = _split_columns(_laplacian_rows(mask.shape, hole), hole, data[:, :0])
    out = data.copy()
    out[hole] = _solve(system, -(on_hole.T @ known), mask.ndim, laplacian=dirichlet, squared=True)
    return out.reshape(image.shape)
