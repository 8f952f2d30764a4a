"""Numba kernels of the diffusion fills: their systems, and the multigrid solver (compiled on first use, cached).

Imported by :mod:`napari_inpaint.methods.diffusion` and
:mod:`napari_inpaint.methods._multigrid`; see their docstrings for the
algorithms.  The unknowns sit on a grid: ``roles`` is the grid, padded by
the matrix's reach and flat, holding each unknown's number and -1 elsewhere
(-2 outside the crop, on the finest level); ``at`` is each unknown's
position in it; ``offsets`` are the steps of the matrix's stencil in that
grid (the centre among them).  Row ``i`` has its entries at the unknowns
``roles[at[i] + offsets[k]]``; their values are either

- stored (the coarse levels): ``values[i, k]``; or
- computed (the finest level, ``values`` empty): from ``kinds[k]`` (0
  centre, 1 neighbour, 2 two pixels apart, 3 diagonal), ``degree`` (each
  unknown's number of grid neighbours) and ``order``: the entries of ``L``
  (order 1) and ``L^2`` (order 2), as :func:`assemble` builds them.

The interpolation from the next level is a table: ``parents[i, c]``, the
coarse unknown at corner ``c`` of fine unknown ``i`` (-1: none), with the
same ``weights[c]`` for every row.  The kernels release the GIL
(``nogil``): a fill runs in a worker thread.

Indices computed in a loop are cast to unsigned: Numba otherwise checks each
for a negative (wrap-around) index, which made a Gauss-Seidel sweep 1.4-1.8x
slower than pyamg's on the same matrix.
"""

import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False, nogil=True, inline="always")
def _stencil_value(kind, order, own, other):
    """The entry of ``L`` (order 1) or ``L^2`` (order 2) between a pixel of ``own`` grid neighbours and one of
    ``other`` at a step of ``kind``: ``deg`` or ``deg^2 + deg`` on the diagonal, -1 or ``-(deg(p) + deg(q))``
    between neighbours, 1 two pixels apart, 2 between diagonal neighbours (order 2)."""
    if kind == 0:
        return own if order == 1 else own * (own + 1.0)
    if kind == 1:
        return -1.0 if order == 1 else -(own + other)
    return 1.0 if kind == 2 else 2.0


@njit(cache=True, boundscheck=False, nogil=True, inline="always")
def _entry(values, kinds, degree, order, i, k, j):
    """The entry of row ``i`` at its stencil step ``k``, which reaches unknown ``j``."""
    if values.shape[0] > 0:
        return float(values[i, k])
    return _stencil_value(kinds[k], order, float(degree[i]), float(degree[np.uint64(j)]))


@njit(cache=True, boundscheck=False, nogil=True, inline="always")
def _dot(values, roles, at, offsets, kinds, degree, order, i, x):
    """Row ``i`` of the level's matrix times ``x`` without its diagonal entry, and that entry."""
    off_diagonal = 0.0
    here = at[i]
    if values.shape[0] > 0:  # one test per row: the loops below stay free of it
        diagonal = 1.0
        for k in range(offsets.shape[0]):
            j = roles[np.uint64(here + offsets[k])]
            if j == i:
                diagonal = float(values[i, k])
            elif j >= 0:
                off_diagonal += values[i, k] * x[np.uint64(j)]
        return off_diagonal, diagonal
    own = float(degree[i])
    for k in range(offsets.shape[0]):
        j = roles[np.uint64(here + offsets[k])]
        if j >= 0 and kinds[k] != 0:
            off_diagonal += _stencil_value(kinds[k], order, own, float(degree[np.uint64(j)])) * x[np.uint64(j)]
    return off_diagonal, _stencil_value(0, order, own, own)


@njit(cache=True, boundscheck=False, nogil=True)
def multiply(values, roles, at, offsets, kinds, degree, order, x, out):
    """``out = A @ x``."""
    for i in range(out.shape[0]):
        off_diagonal, diagonal = _dot(values, roles, at, offsets, kinds, degree, order, i, x)
        out[i] = off_diagonal + diagonal * x[i]


@njit(cache=True, boundscheck=False, nogil=True)
def smooth(values, roles, at, offsets, kinds, degree, order, x, b, forward):
    """One Gauss-Seidel sweep of ``A x = b`` in place, rows in order (``forward``) or in reverse."""
    rows = x.shape[0]
    i, step = (0, 1) if forward else (rows - 1, -1)
    for _ in range(rows):
        off_diagonal, diagonal = _dot(values, roles, at, offsets, kinds, degree, order, i, x)
        x[np.uint64(i)] = (b[np.uint64(i)] - off_diagonal) / diagonal
        i += step


@njit(cache=True, boundscheck=False, nogil=True)
def restrict_residual(values, roles, at, offsets, kinds, degree, order, x, b, parents, weights, coarse):
    """``coarse = P^T (b - A x)``, without storing the residual."""
    coarse[:] = 0.0
    for i in range(x.shape[0]):
        off_diagonal, diagonal = _dot(values, roles, at, offsets, kinds, degree, order, i, x)
        residual = b[i] - off_diagonal - diagonal * x[i]
        for c in range(parents.shape[1]):
            parent = parents[i, c]
            if parent >= 0:
                coarse[np.uint64(parent)] += weights[c] * residual


@njit(cache=True, boundscheck=False, nogil=True)
def interpolate_add(parents, weights, coarse, x):
    """``x += P @ coarse``."""
    for i in range(x.shape[0]):
        total = 0.0
        for c in range(parents.shape[1]):
            parent = parents[i, c]
            if parent >= 0:
                total += weights[c] * coarse[np.uint64(parent)]
        x[i] += total


@njit(cache=True, boundscheck=False, nogil=True)
def galerkin(values, roles, at, offsets, kinds, degree, order, parents, weights, coordinates, coarse_coordinates, out):
    """``P^T A P`` into ``out[I, slot]``: slot numbers the offset of column J from row I in a box of side 5.

    Per axis, fine cell ``c`` interpolates from coarse cells ``m = (c - 1) // 2``
    and ``m + 1``, so ``A``'s neighbours within two cells reach coarse cells
    ``m - 1 .. m + 2``: row ``i`` of ``A P`` is gathered in a box of side 4 at
    ``m``, then scattered to the rows of ``P^T``.  Every entry of the coarse
    matrix lies within two coarse cells of its row, on every level.
    """
    ndim = coordinates.shape[1]
    gathered = np.zeros(4**ndim)
    to_box = np.zeros(4**ndim, np.int64)  # a slot of the side-4 box -> its slot in the side-5 box, at offset 0
    for slot in range(4**ndim):
        rest, target, scale = slot, 0, 1
        for _ in range(ndim):
            target += (rest % 4 - 1 + 2) * scale
            rest //= 4
            scale *= 5
        to_box[slot] = target
    base = np.empty(ndim, np.int64)
    out[:] = 0.0
    for i in range(parents.shape[0]):
        for axis in range(ndim):
            base[axis] = (coordinates[i, axis] - 1) // 2
        here = at[i]
        for k in range(offsets.shape[0]):
            j = roles[np.uint64(here + offsets[k])]
            if j < 0:
                continue
            value = _entry(values, kinds, degree, order, i, k, j)
            for e in range(parents.shape[1]):
                column = parents[np.uint64(j), e]
                if column >= 0:
                    slot = 0
                    for axis in range(ndim):
                        slot = slot * 4 + coarse_coordinates[np.uint64(column), axis] - base[axis] + 1
                    gathered[np.uint64(slot)] += value * weights[e]
        for c in range(parents.shape[1]):
            row = parents[i, c]
            if row < 0:
                continue
            shift = 0
            for axis in range(ndim):
                shift = shift * 5 + coarse_coordinates[np.uint64(row), axis] - base[axis]
            for slot in range(gathered.shape[0]):
                if gathered[slot] != 0.0:
                    out[np.uint64(row), np.uint64(to_box[slot] - shift)] += weights[c] * gathered[slot]
        gathered[:] = 0.0


@njit(cache=True, boundscheck=False, nogil=True)
def symmetrise(values, roles, at, offsets):
    """Average each pair of mirrored entries in place: sums in another order left them unequal in their last bit.

    The box's slots are symmetric: slot ``k`` and ``len(offsets) - 1 - k`` are opposite offsets.
    """
    last = offsets.shape[0] - 1
    for i in range(at.shape[0]):
        here = at[i]
        for k in range(offsets.shape[0]):
            j = roles[np.uint64(here + offsets[k])]
            if j > i:
                mean = 0.5 * (float(values[i, k]) + float(values[np.uint64(j), last - k]))
                values[i, k] = mean
                values[np.uint64(j), last - k] = mean


@njit(cache=True, boundscheck=False, nogil=True)
def to_dense(values, roles, at, offsets, kinds, degree, order, out):
    """The level's matrix into the zeroed square array ``out``."""
    for i in range(at.shape[0]):
        here = at[i]
        for k in range(offsets.shape[0]):
            j = roles[np.uint64(here + offsets[k])]
            if j >= 0:
                out[i, np.uint64(j)] = _entry(values, kinds, degree, order, i, k, j)


@njit(cache=True, boundscheck=False, nogil=True)
def keep_slots(values, slots):
    """Move the columns ``slots`` (ascending) of ``values`` to the front of its buffer, row after row.

    Returns the buffer's first ``rows * len(slots)`` entries, flat: the table of
    those columns, without a copy of the whole.
    """
    flat = values.ravel()
    width, kept = values.shape[1], slots.shape[0]
    for i in range(values.shape[0]):
        for k in range(kept):
            flat[i * kept + k] = flat[i * width + slots[k]]
    return flat[: values.shape[0] * kept]


@njit(cache=True, boundscheck=False, nogil=True, inline="always")
def _grid_degree(roles, position, axis_strides):
    """The number of grid neighbours of the pixel at ``position``: those inside the crop (the Neumann condition)."""
    degree = 0
    for axis in range(axis_strides.shape[0]):
        step = axis_strides[axis]
        degree += (roles[np.uint64(position - step)] != -2) + (roles[np.uint64(position + step)] != -2)
    return degree


@njit(cache=True, boundscheck=False, nogil=True)
def assemble(roles, at, offsets, kinds, order, axis_strides, hole, crop_offsets, data, matrix, index_like):
    """The hole rows of ``L^order`` on a crop, split into unknowns and known data, in one pass.

    ``hole`` holds the hole pixels' flat indices in the crop, ``data`` the
    crop's values (pixels x channels), ``crop_offsets`` the stencil's steps in
    the crop.  The entries come from the stencil (:func:`_stencil_value`).

    Returns, per hole pixel, whether another hole pixel is within reach
    (``coupled``), its degree, its diagonal entry and its right-hand side
    ``-(L^order)[hole, known] @ data[known]``; with ``matrix``, the CSR
    arrays (``index_like``'s integer type) of the coupled rows, their columns
    numbered among the coupled pixels (else empty).
    """
    pixels, channels = at.shape[0], data.shape[1]
    coupled = np.empty(pixels, np.bool_)
    degree = np.empty(pixels, np.int8)
    diagonal = np.empty(pixels)
    rhs = np.zeros((pixels, channels))
    entries_count = 0
    for i in range(pixels):
        here = at[i]
        degree[i] = _grid_degree(roles, here, axis_strides)
        own = float(degree[i])
        diagonal[i] = _stencil_value(0, order, own, own)
        count = 0
        for k in range(offsets.shape[0]):
            j = roles[np.uint64(here + offsets[k])]
            if j >= 0:
                count += 1
            elif j == -1:  # a known pixel: its term goes to the right-hand side
                other = float(_grid_degree(roles, here + offsets[k], axis_strides)) if kinds[k] == 1 else 0.0
                value = _stencil_value(kinds[k], order, own, other)
                source = np.uint64(hole[i] + crop_offsets[k])
                for c in range(channels):
                    rhs[i, c] -= value * data[source, c]
        coupled[i] = count > 1
        if count > 1:
            entries_count += count
    if not matrix:
        return coupled, degree, diagonal, rhs, index_like[:0], index_like[:0], np.empty(0)
    numbering = np.empty(pixels, index_like.dtype)
    rows = 0
    for i in range(pixels):
        numbering[i] = rows
        rows += coupled[i]
    indptr = np.empty(rows + 1, index_like.dtype)
    indices = np.empty(entries_count, index_like.dtype)
    entries = np.empty(entries_count)
    indptr[0] = 0
    row, filled = 0, 0
    for i in range(pixels):
        if not coupled[i]:
            continue
        here = at[i]
        own = float(degree[i])
        for k in range(offsets.shape[0]):  # the steps in raster order: the columns come sorted
            j = roles[np.uint64(here + offsets[k])]
            if j < 0:
                continue
            indices[filled] = numbering[np.uint64(j)]
            entries[filled] = _stencil_value(kinds[k], order, own, float(degree[np.uint64(j)]))
            filled += 1
        row += 1
        indptr[row] = filled
    return coupled, degree, diagonal, rhs, indptr, indices, entries


@njit(cache=True, boundscheck=False, nogil=True)
def lower_band(indptr, indices, data, position, widest):
    """The CSR matrix renumbered by ``position``, in LAPACK's lower band storage; empty if wider than ``widest``.

    ``band[r - c, c]`` holds entry (r, c) for r >= c; the band is in Fortran
    order, as LAPACK takes it (a copy to that order cost 10 % of a
    stroke's factorisation).
    """
    rows = indptr.shape[0] - 1
    width = 0
    for i in range(rows):
        row = position[i]
        for e in range(indptr[i], indptr[i + 1]):
            width = max(width, row - position[np.uint64(indices[e])])
    if width > widest:
        return np.zeros((0, 0)).T
    transposed = np.zeros((rows, width + 1))
    for i in range(rows):
        row = position[i]
        for e in range(indptr[i], indptr[i + 1]):
            column = position[np.uint64(indices[e])]
            if row >= column:
                transposed[np.uint64(column), np.uint64(row - column)] = data[e]
    return transposed.T
