"""Numba kernels of the fast-marching fills: OpenCV's ``cv2.inpaint`` algorithms in float64.

Imported lazily by :mod:`napari_inpaint.methods.fastmarching`; see its
docstring for the algorithms.  The kernels follow OpenCV's
``modules/photo/src/inpaint.cpp`` (as of OpenCV 4.10) step by step: same
fill order, same weights, same edges, so that the ``numba`` and ``opencv``
backends of a method give the same fill.  ``flag`` (uint8, H x W) holds the
state of each pixel (:data:`KNOWN`, :data:`BAND` or :data:`INSIDE`),
``dist`` (float32, as in OpenCV, so that equal arrival times tie exactly as
there) the arrival time T of the front, ``values`` (float64, C x H x W,
C-contiguous) the image, one plane per channel.  The front is a binary
min-heap stored in three arrays (key, sequence number, flat pixel index) plus
``state = [size, next sequence number]`` so that a march can stop and
resume: ties in T pop in insertion order, as in OpenCV.

Beyond the image OpenCV sees a border of known pixels at T = :data:`FAR`
(never sources), and near the image's edges it reads the values of the
image derivatives one pixel inwards; the kernels do the same.
"""

import numpy as np
from numba import njit

KNOWN = 0
BAND = 1
INSIDE = 2
# Arrival time of pixels the front has not reached (OpenCV uses the same).
FAR = 1.0e6
# OpenCV's floor of the direction factor, so that sources square to the front
# (Telea: |(p - q) . grad T| <= _DIR_EPS) or to the isophote still count a
# little, and the weights never sum to zero.
_DIR_EPS = 0.01
_DIR_FLOOR = 1.0e-6


@njit(cache=True)
def _before(keys, seqs, a, b):
    return keys[a] < keys[b] or (keys[a] == keys[b] and seqs[a] < seqs[b])


@njit(cache=True)
def _move(keys, seqs, pixels, source, target):
    keys[target] = keys[source]
    seqs[target] = seqs[source]
    pixels[target] = pixels[source]


@njit(cache=True)
def _put(keys, seqs, pixels, slot, key, seq, pixel):
    keys[slot] = key
    seqs[slot] = seq
    pixels[slot] = pixel


@njit(cache=True)
def _push(keys, seqs, pixels, state, key, pixel):
    """Insert ``pixel`` with arrival time ``key`` into the heap."""
    slot, seq = state[0], state[1]
    state[0] += 1
    state[1] += 1
    while slot > 0:  # move the hole up past every later parent
        parent = (slot - 1) // 2
        if keys[parent] < key or (keys[parent] == key and seqs[parent] < seq):
            break
        _move(keys, seqs, pixels, parent, slot)
        slot = parent
    _put(keys, seqs, pixels, slot, key, seq, pixel)


@njit(cache=True)
def _pop(keys, seqs, pixels, state):
    """Remove and return the pixel with the smallest (arrival time, sequence number)."""
    top = pixels[0]
    last = state[0] - 1
    state[0] = last
    slot = 0
    while True:  # move the hole at the root down, then drop the last entry into it
        child = 2 * slot + 1
        if child >= last:
            break
        if child + 1 < last and _before(keys, seqs, child + 1, child):
            child += 1
        if _before(keys, seqs, last, child):
            break
        _move(keys, seqs, pixels, child, slot)
        slot = child
    _move(keys, seqs, pixels, last, slot)
    return top


@njit(cache=True)
def _eikonal(flag, dist, i1, j1, i2, j2):
    """First-order upwind solution of |grad T| = 1 from a vertical and a horizontal neighbour."""
    height, width = flag.shape
    ok1 = 0 <= i1 < height and 0 <= j1 < width and flag[i1, j1] != INSIDE
    ok2 = 0 <= i2 < height and 0 <= j2 < width and flag[i2, j2] != INSIDE
    a1 = float(dist[i1, j1]) if ok1 else FAR
    a2 = float(dist[i2, j2]) if ok2 else FAR
    if ok1 and ok2 and abs(a1 - a2) < 1.0:
        return 0.5 * (a1 + a2 + np.sqrt(2.0 - (a1 - a2) ** 2))
    return 1.0 + min(a1, a2)


@njit(cache=True)
def _arrival(flag, dist, i, j):
    return min(
        min(_eikonal(flag, dist, i - 1, j, i, j - 1), _eikonal(flag, dist, i + 1, j, i, j - 1)),
        min(_eikonal(flag, dist, i - 1, j, i, j + 1), _eikonal(flag, dist, i + 1, j, i, j + 1)),
    )


@njit(cache=True)
def march_outside(flag, dist, keys, seqs, pixels, state):
    """Arrival times from the band outwards through the INSIDE pixels of ``flag``.

    Every pixel the front reaches ends KNOWN; the caller negates their times.
    """
    height, width = flag.shape
    while state[0] > 0:
        p = _pop(keys, seqs, pixels, state)
        ii, jj = p // width, p % width
        flag[ii, jj] = KNOWN
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            i, j = ii + di, jj + dj
            if 0 <= i < height and 0 <= j < width and flag[i, j] == INSIDE:
                dist[i, j] = _arrival(flag, dist, i, j)
                flag[i, j] = BAND
                _push(keys, seqs, pixels, state, dist[i, j], i * width + j)


@njit(cache=True)
def _time_slope(flag, dist, i, j, di, dj):
    """Derivative of T at (i, j) along (di, dj) from the neighbours that are not INSIDE.

    Central where both are, one-sided where one is, zero otherwise; beyond
    the image lies OpenCV's border, known at T = FAR.
    """
    height, width = flag.shape
    ip, jp, im, jm = i + di, j + dj, i - di, j - dj
    plus_beyond = ip == height or jp == width
    minus_beyond = im < 0 or jm < 0
    plus = plus_beyond or flag[ip, jp] != INSIDE
    minus = minus_beyond or flag[im, jm] != INSIDE
    ahead = FAR if plus_beyond else float(dist[ip, jp]) if plus else 0.0
    behind = FAR if minus_beyond else float(dist[im, jm]) if minus else 0.0
    if plus and minus:
        return 0.5 * (ahead - behind)
    if plus:
        return ahead - float(dist[i, j])
    if minus:
        return float(dist[i, j]) - behind
    return 0.0


@njit(cache=True)
def _telea_pixel(flag, dist, values, i, j, radius, acc):
    """Telea's weighted average at the INSIDE pixel (i, j), with OpenCV's weights."""
    height, width = flag.shape
    channels = values.shape[0]
    gty = _time_slope(flag, dist, i, j, 1, 0)
    gtx = _time_slope(flag, dist, i, j, 0, 1)
    acc[:] = 0.0
    total = 0.0
    for k in range(max(i - radius, 0), min(i + radius + 1, height)):
        for m in range(max(j - radius, 0), min(j + radius + 1, width)):
            ry, rx = i - k, j - m
            length2 = ry * ry + rx * rx
            if flag[k, m] == INSIDE or length2 > radius * radius:
                continue
            direction = ry * gty + rx * gtx
            if abs(direction) <= _DIR_EPS:
                direction = _DIR_FLOOR
            level = 1.0 / (1.0 + abs(float(dist[k, m]) - float(dist[i, j])))
            weight = abs(direction) * level / (length2 * np.sqrt(length2))
            total += weight
            for c in range(channels):
                acc[c] += weight * values[c, k, m]
    for c in range(channels):
        values[c, i, j] = acc[c] / total


@njit(cache=True)
def _stencil(flag, k, m, along_rows):
    """Where OpenCV takes the unsigned derivative at the known pixel (k, m), along rows or columns.

    Returns whether the next and the previous neighbours are not INSIDE
    (beyond the image counts as known), then the (row, column) of the values
    read as next, centre and previous.  On the first and last rows and
    columns OpenCV reads them one pixel inwards (``km``, ``kp``, ``lm``,
    ``lp`` in its code), differently along rows and columns; so does this.
    """
    height, width = flag.shape
    if (height if along_rows else width) < 2:  # a single row or column: nothing to difference
        return False, False, k, m, k, m, k, m
    k_low, k_high = min(k + (k == 0), height - 1), k - (k == height - 1)
    m_low, m_high = min(m + (m == 0), width - 1), m - (m == width - 1)
    if along_rows:
        ahead = k + 1 == height or flag[k + 1, m] != INSIDE
        behind = k == 0 or flag[k - 1, m] != INSIDE
        return ahead, behind, k_high + 1, m_low, k_high, m_low, k_low - 1, m_low
    ahead = m + 1 == width or flag[k, m + 1] != INSIDE
    behind = m == 0 or flag[k, m - 1] != INSIDE
    return ahead, behind, k_low, m_high + 1, k_low, m_low, k_low, m_low - 1


@njit(cache=True)
def _variation(after, centre, before, ahead, behind):
    """OpenCV's unsigned derivative: ``|next - centre| + |centre - previous|``, twice the one known difference."""
    if ahead and behind:
        return abs(after - centre) + abs(centre - before)
    if ahead:
        return 2.0 * abs(after - centre)
    if behind:
        return 2.0 * abs(centre - before)
    return 0.0


@njit(cache=True)
def _store_gradient(flag, values, grad, k, m):
    """Cache OpenCV's unsigned derivatives at the known pixel (k, m): ``grad[0]`` across rows, ``grad[1]`` columns."""
    row_ahead, row_behind, ka, ma, kc, mc, kb, mb = _stencil(flag, k, m, True)
    col_ahead, col_behind, la, na, lc, nc, lb, nb = _stencil(flag, k, m, False)
    for c in range(values.shape[0]):
        grad[0, c, k, m] = _variation(values[c, ka, ma], values[c, kc, mc], values[c, kb, mb], row_ahead, row_behind)
        grad[1, c, k, m] = _variation(values[c, la, na], values[c, lc, nc], values[c, lb, nb], col_ahead, col_behind)


@njit(cache=True)
def init_gradients(flag, values, grad):
    """The derivatives (see :func:`_store_gradient`) of every pixel that is not INSIDE."""
    height, width = flag.shape
    for k in range(height):
        for m in range(width):
            if flag[k, m] != INSIDE:
                _store_gradient(flag, values, grad, k, m)


@njit(cache=True)
def _isophote_pixel(flag, values, grad, i, j, radius, acc, total):
    """Isophote-weighted average at the INSIDE pixel (i, j) (OpenCV's INPAINT_NS), per channel."""
    height, width = flag.shape
    channels = values.shape[0]
    acc[:] = 0.0
    total[:] = 0.0
    for k in range(max(i - radius, 0), min(i + radius + 1, height)):
        for m in range(max(j - radius, 0), min(j + radius + 1, width)):
            ry, rx = i - k, j - m
            length2 = ry * ry + rx * rx
            if flag[k, m] == INSIDE or length2 > radius * radius:
                continue
            distance = 1.0 / (length2 * length2 + 1.0)
            for c in range(channels):
                across_rows, across_columns = grad[0, c, k, m], grad[1, c, k, m]
                # (p - q) . (isophote at q), the isophote taken normal to the unsigned gradient.
                along = ry * across_columns - rx * across_rows
                if along == 0.0:
                    direction = _DIR_FLOOR
                else:
                    direction = abs(along) / np.sqrt(length2 * (across_rows**2 + across_columns**2))
                weight = distance * direction
                acc[c] += weight * values[c, k, m]
                total[c] += weight
    for c in range(channels):
        values[c, i, j] = acc[c] / total[c]


@njit(cache=True)
def march_fill(flag, dist, values, grad, keys, seqs, pixels, state, radius, telea, budget):
    """Advance the front by at most ``budget`` pops, filling each pixel when the front reaches it.

    For the isophote weighting, ``grad`` holds the derivatives of every pixel
    that is not INSIDE (see :func:`init_gradients`) and is kept current; Telea
    does not read it.  Returns the number of pixels left on the front (0 when
    the hole is filled).
    """
    height, width = flag.shape
    channels = values.shape[0]
    acc = np.empty(channels)
    total = np.empty(channels)
    while state[0] > 0 and budget > 0:
        budget -= 1
        p = _pop(keys, seqs, pixels, state)
        ii, jj = p // width, p % width
        flag[ii, jj] = KNOWN
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            i, j = ii + di, jj + dj
            if 0 <= i < height and 0 <= j < width and flag[i, j] == INSIDE:
                dist[i, j] = _arrival(flag, dist, i, j)
                if telea:
                    _telea_pixel(flag, dist, values, i, j, radius, acc)
                else:
                    _isophote_pixel(flag, values, grad, i, j, radius, acc, total)
                flag[i, j] = BAND
                _push(keys, seqs, pixels, state, dist[i, j], i * width + j)
                if not telea:
                    # The new pixel changes the derivatives of its 3 x 3 neighbourhood (edges read inwards).
                    for k in range(max(i - 1, 0), min(i + 2, height)):
                        for m in range(max(j - 1, 0), min(j + 2, width)):
                            if flag[k, m] != INSIDE:
                                _store_gradient(flag, values, grad, k, m)
    return state[0]
