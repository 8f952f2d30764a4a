"""Numba kernels of the exemplar method (compiled on first use, cached on disk).

Imported lazily by :mod:`napari_inpaint.methods.exemplar`; see its docstring
for the algorithm.  All arrays are C-contiguous; ``known`` marks the pixels
known *now* (original or already filled), ``source`` the centres of patches
that are entirely known in the original image.
"""

import heapq

import numpy as np
from numba import njit

# Added to the data term so that in flat regions (zero isophote) the fill
# order still follows the confidence, i.e. peels the hole from its border.
_DATA_FLOOR = 1e-3
# Marks a pixel that is not on the fill front.
_OFF_FRONT = -1.0


@njit(cache=True)
def update_gradients(values, known, gy, gx, gnorm, r0, r1, c0, c1):
    """Per-channel gradient of the known pixels in rows r0:r1, columns c0:c1.

    Central differences where both neighbours are known, one-sided where one
    is, zero where none is; ``gnorm`` holds the squared gradient norm summed
    over channels.
    """
    height, width, channels = values.shape
    for r in range(max(r0, 0), min(r1, height)):
        for c in range(max(c0, 0), min(c1, width)):
            total = 0.0
            up = r > 0 and known[r - 1, c] and known[r, c]
            down = r < height - 1 and known[r + 1, c] and known[r, c]
            left = c > 0 and known[r, c - 1] and known[r, c]
            right = c < width - 1 and known[r, c + 1] and known[r, c]
            for k in range(channels):
                dy = 0.0
                if up and down:
                    dy = 0.5 * (values[r + 1, c, k] - values[r - 1, c, k])
                elif up:
                    dy = values[r, c, k] - values[r - 1, c, k]
                elif down:
                    dy = values[r + 1, c, k] - values[r, c, k]
                dx = 0.0
                if left and right:
                    dx = 0.5 * (values[r, c + 1, k] - values[r, c - 1, k])
                elif left:
                    dx = values[r, c, k] - values[r, c - 1, k]
                elif right:
                    dx = values[r, c + 1, k] - values[r, c, k]
                gy[r, c, k] = dy
                gx[r, c, k] = dx
                total += dy * dy + dx * dx
            gnorm[r, c] = total


@njit(cache=True)
def _confidence(known, confidence, r, c, half):
    """Mean confidence over the patch centred at (r, c); outside pixels count as zero."""
    height, width = known.shape
    total = 0.0
    for i in range(max(r - half, 0), min(r + half + 1, height)):
        for j in range(max(c - half, 0), min(c + half + 1, width)):
            if known[i, j]:
                total += confidence[i, j]
    return total / (2 * half + 1) ** 2


@njit(cache=True)
def _priority(known, confidence, gy, gx, gnorm, r, c, half, alpha):
    """Criminisi priority C(p) * (D(p) + floor) of an unknown pixel, or -1 off the front."""
    height, width = known.shape
    # Front normal: Sobel gradient of the known-pixel indicator (points into the known region).
    nr = 0.0
    nc = 0.0
    for di in range(-1, 2):
        for dj in range(-1, 2):
            i = r + di
            j = c + dj
            if 0 <= i < height and 0 <= j < width and known[i, j]:
                nr += di * (2.0 if dj == 0 else 1.0)
                nc += dj * (2.0 if di == 0 else 1.0)
    on_front = (
        (r > 0 and known[r - 1, c])
        or (r < height - 1 and known[r + 1, c])
        or (c > 0 and known[r, c - 1])
        or (c < width - 1 and known[r, c + 1])
    )
    if not on_front:
        return _OFF_FRONT
    # Isophote at the strongest known gradient of the patch (as in Criminisi et al.).
    best = -1.0
    br = r
    bc = c
    for i in range(max(r - half, 0), min(r + half + 1, height)):
        for j in range(max(c - half, 0), min(c + half + 1, width)):
            if known[i, j] and gnorm[i, j] > best:
                best = gnorm[i, j]
                br = i
                bc = j
    norm = np.sqrt(nr * nr + nc * nc)
    data = 0.0
    if norm > 0.0:
        nr /= norm
        nc /= norm
        for k in range(gy.shape[2]):
            # Isophote (-gx, gy) in (row, column) order, dotted with the normal.
            along = -gx[br, bc, k] * nr + gy[br, bc, k] * nc
            data += along * along
        data = np.sqrt(data) / alpha
    return _confidence(known, confidence, r, c, half) * (data + _DATA_FLOOR)


@njit(cache=True)
def update_priorities(known, confidence, gy, gx, gnorm, priority, half, alpha, r0, r1, c0, c1):
    """Recompute the priority of every pixel in rows r0:r1, columns c0:c1 (-1: known or off the front)."""
    height, width = known.shape
    for r in range(max(r0, 0), min(r1, height)):
        for c in range(max(c0, 0), min(c1, width)):
            if known[r, c]:
                priority[r, c] = _OFF_FRONT
            else:
                priority[r, c] = _priority(known, confidence, gy, gx, gnorm, r, c, half, alpha)


@njit(cache=True)
def _best_source(values, known, source, sat, r, c, half, radius, offsets, target):
    """Centre of the entirely known patch closest (SSD over the known target pixels) to patch (r, c).

    Only centres within ``radius`` (per axis) are searched; the radius is
    doubled while that window holds no source patch (counted with ``sat``,
    the summed-area table of ``source``).  Ties go to the nearer centre, then
    to the first in row-major order.
    """
    height, width, channels = values.shape
    flat = values.reshape(height * width, channels)
    count = 0
    for i in range(max(r - half, 0), min(r + half + 1, height)):
        for j in range(max(c - half, 0), min(c + half + 1, width)):
            if known[i, j]:
                offsets[count] = (i - r) * width + (j - c)
                for k in range(channels):
                    target[count, k] = values[i, j, k]
                count += 1
    while True:
        r0 = max(r - radius, half)
        r1 = min(r + radius, height - 1 - half)
        c0 = max(c - radius, half)
        c1 = min(c + radius, width - 1 - half)
        if r0 <= r1 and c0 <= c1:
            inside = sat[r1 + 1, c1 + 1] - sat[r0, c1 + 1] - sat[r1 + 1, c0] + sat[r0, c0]
            if inside > 0:
                break
        radius *= 2
    best = np.inf
    best_distance = 0
    best_r = -1
    best_c = -1
    for qr in range(r0, r1 + 1):
        for qc in range(c0, c1 + 1):
            if not source[qr, qc]:
                continue
            base = qr * width + qc
            ssd = 0.0
            for n in range(count):
                pixel = base + offsets[n]
                for k in range(channels):
                    d = flat[pixel, k] - target[n, k]
                    ssd += d * d
                if ssd > best:
                    break
            distance = (qr - r) ** 2 + (qc - c) ** 2
            if ssd < best or (ssd == best and distance < best_distance):
                best = ssd
                best_distance = distance
                best_r = qr
                best_c = qc
    return best_r, best_c


@njit(cache=True)
def fill_patches(values, known, confidence, gy, gx, gnorm, priority, source, source_sum, half, radius, alpha,
                 max_patches):
    """Fill up to ``max_patches`` patches in priority order, in place; return the pixels filled.

    The front is rebuilt from ``priority`` on every call, so the result does
    not depend on how the work is split into calls.
    """
    height, width, channels = values.shape
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for r in range(height):
        for c in range(width):
            if priority[r, c] >= 0.0:
                heap.append((-priority[r, c], np.int64(r * width + c)))
    heapq.heapify(heap)
    size = 2 * half + 1
    offsets = np.empty(size * size, np.int64)
    target = np.empty((size * size, channels))
    filled = 0
    patches = 0
    while patches < max_patches and len(heap) > 0:
        key, index = heapq.heappop(heap)
        r = index // width
        c = index % width
        if known[r, c] or priority[r, c] != -key:
            continue  # stale entry: the pixel was filled or re-prioritised since
        qr, qc = _best_source(values, known, source, source_sum, r, c, half, radius, offsets, target)
        patch_confidence = _confidence(known, confidence, r, c, half)
        for i in range(max(r - half, 0), min(r + half + 1, height)):
            for j in range(max(c - half, 0), min(c + half + 1, width)):
                if not known[i, j]:
                    for k in range(channels):
                        values[i, j, k] = values[i + qr - r, j + qc - c, k]
                    known[i, j] = True
                    confidence[i, j] = patch_confidence
                    filled += 1
        # Gradients change one pixel beyond the patch; priorities wherever a
        # patch overlaps those gradients or the newly known pixels.
        update_gradients(values, known, gy, gx, gnorm, r - half - 1, r + half + 2, c - half - 1, c + half + 2)
        reach = 2 * half + 1
        update_priorities(known, confidence, gy, gx, gnorm, priority, half, alpha,
                          r - reach, r + reach + 1, c - reach, c + reach + 1)
        for i in range(max(r - reach, 0), min(r + reach + 1, height)):
            for j in range(max(c - reach, 0), min(c + reach + 1, width)):
                if priority[i, j] >= 0.0:
                    heapq.heappush(heap, (-priority[i, j], np.int64(i * width + j)))
        patches += 1
    return filled
