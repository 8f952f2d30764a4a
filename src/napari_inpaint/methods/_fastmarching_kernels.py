"""Numba kernels of the fast-marching fills (compiled on first use, cached on disk).

Imported lazily by :mod:`napari_inpaint.methods.fastmarching`; see its
docstring for the algorithms.  ``flag`` (uint8, H x W) holds the state of each
pixel (:data:`KNOWN`, :data:`BAND` or :data:`INSIDE`), ``dist`` (float64) the
arrival time T of the front, ``values`` (float64, C x H x W, C-contiguous) the
image, one plane per channel.  The front is a binary min-heap stored in three
arrays (key, sequence number, flat pixel index) plus ``state = [size, next
sequence number]`` so that a march can stop and resume: ties in T pop in
insertion order, as in OpenCV's sorted list, which makes the fill order
deterministic.
"""

import numpy as np
from numba import njit

KNOWN = 0
BAND = 1
INSIDE = 2
# Arrival time of pixels the front has not reached (OpenCV uses the same).
FAR = 1.0e6
# Direction factors are floored (OpenCV's values) so that sources square to
# the front (Telea: |(p - q) . grad T| <= _DIR_EPS) or to the isophote still
# count a little, and the weights never sum to zero.
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
    a1 = dist[i1, j1] if ok1 else FAR
    a2 = dist[i2, j2] if ok2 else FAR
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
def _derivative(flag, field, i, j, di, dj, limited):
    """Derivative of ``field`` at (i, j) along (di, dj) from the neighbours that are not INSIDE.

    Where both neighbours qualify: the central difference, or with ``limited``
    the minmod of the two one-sided differences (zero at an extremum or a step,
    the smaller one otherwise).  One-sided where one qualifies, zero otherwise.
    """
    height, width = flag.shape
    ip, jp, im, jm = i + di, j + dj, i - di, j - dj
    plus = 0 <= ip < height and 0 <= jp < width and flag[ip, jp] != INSIDE
    minus = 0 <= im < height and 0 <= jm < width and flag[im, jm] != INSIDE
    if plus and minus:
        forward = field[ip, jp] - field[i, j]
        backward = field[i, j] - field[im, jm]
        if not limited:
            return 0.5 * (forward + backward)
        if forward * backward <= 0.0:
            return 0.0
        return forward if abs(forward) < abs(backward) else backward
    if plus:
        return field[ip, jp] - field[i, j]
    if minus:
        return field[i, j] - field[im, jm]
    return 0.0


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
def _update_gradient(flag, values, grad, i, j, limited):
    """Store the image gradient at (i, j), per channel, in ``grad[:, c, i, j]`` (y, x)."""
    for c in range(values.shape[0]):
        grad[0, c, i, j] = _derivative(flag, values[c], i, j, 1, 0, limited)
        grad[1, c, i, j] = _derivative(flag, values[c], i, j, 0, 1, limited)


@njit(cache=True)
def init_gradients(flag, values, grad, limited):
    """Image gradients of every pixel that is not INSIDE."""
    height, width = flag.shape
    for i in range(height):
        for j in range(width):
            if flag[i, j] != INSIDE:
                _update_gradient(flag, values, grad, i, j, limited)


@njit(cache=True)
def _telea_pixel(flag, dist, values, grad, i, j, radius, acc):
    """Telea's first-order weighted average at the INSIDE pixel (i, j)."""
    height, width = flag.shape
    channels = values.shape[0]
    gty = _derivative(flag, dist, i, j, 1, 0, False)
    gtx = _derivative(flag, dist, i, j, 0, 1, False)
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
            level = 1.0 / (1.0 + abs(dist[k, m] - dist[i, j]))
            weight = abs(direction) * level / (length2 * np.sqrt(length2))
            total += weight
            for c in range(channels):
                acc[c] += weight * (values[c, k, m] + grad[0, c, k, m] * ry + grad[1, c, k, m] * rx)
    for c in range(channels):
        values[c, i, j] = acc[c] / total


@njit(cache=True)
def _isophote_pixel(flag, values, grad, i, j, radius, acc, total):
    """Isophote-weighted average at the INSIDE pixel (i, j) (OpenCV's INPAINT_NS weighting)."""
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
                gy, gx = grad[0, c, k, m], grad[1, c, k, m]
                norm = np.sqrt(length2 * (gy * gy + gx * gx))
                # |cos| of the angle between p - q and the isophote (normal to grad I) at q.
                direction = abs(ry * gx - rx * gy) / norm if norm > 0.0 else 0.0
                weight = distance * max(direction, _DIR_FLOOR)
                acc[c] += weight * values[c, k, m]
                total[c] += weight
    for c in range(channels):
        values[c, i, j] = acc[c] / total[c]


@njit(cache=True)
def march_fill(flag, dist, values, grad, keys, seqs, pixels, state, radius, telea, budget):
    """Advance the front by at most ``budget`` pops, filling each pixel when the front reaches it.

    ``grad`` (2 x C x H x W) holds the image gradient of every pixel that is
    not INSIDE (see :func:`init_gradients`; limited for Telea, central for the
    isophote weighting) and is kept current.  Returns the
    number of pixels left on the front (0 when the hole is filled).
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
                    _telea_pixel(flag, dist, values, grad, i, j, radius, acc)
                else:
                    _isophote_pixel(flag, values, grad, i, j, radius, acc, total)
                flag[i, j] = BAND
                _push(keys, seqs, pixels, state, dist[i, j], i * width + j)
                # The new pixel changes its own and its neighbours' differences.
                _update_gradient(flag, values, grad, i, j, telea)
                for dk, dm in ((-1, 0), (0, -1), (1, 0), (0, 1)):
                    k, m = i + dk, j + dm
                    if 0 <= k < height and 0 <= m < width and flag[k, m] != INSIDE:
                        _update_gradient(flag, values, grad, k, m, telea)
    return state[0]
