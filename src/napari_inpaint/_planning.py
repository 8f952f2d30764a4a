"""Planning a fill: which planes share a mask, and which crops hold the holes with their context.

The plan makes the cost follow the holes: each connected hole is filled in a
crop extending the method's margin beyond it, holes whose crops touch share
one, thousands of tiny holes are packed per tile, and planes that share a
mask are filled together by channel-independent methods.
"""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint._registry import Method

# Holes smaller than a tile are packed together per tile so that thousands of
# hot pixels cost a few calls, not thousands.
_TILE = {2: 256, 3: 64}
# Planes that share a mask are filled together by channel-independent methods;
# this bounds the float64 working copy of such a batch.
_BATCH_BYTES = 64 * 2**20


@dataclass
class Crop:
    """One call of a fill function: a box and the holes it composites."""

    box: tuple[slice, ...]
    holes: np.ndarray  # bool, box-shaped: the pixels this crop fills


@dataclass
class Group:
    """Planes (batch index tuples) that share one spatial mask."""

    planes: list[tuple]
    mask: np.ndarray
    limits: tuple[np.ndarray, np.ndarray] | None = None  # known range per plane and channel, on first use


def known_range(channels_last: np.ndarray, group: Group) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum of the known pixels of each plane, planes stacked as channels."""
    known = [channels_last[plane][~group.mask] for plane in group.planes]
    return np.concatenate([k.min(axis=0) for k in known]), np.concatenate([k.max(axis=0) for k in known])


def plan(mask, batch_shape, spatial_shape, spec: Method, margin, channels) -> list:
    """Group planes by mask and split each mask into crops.

    Returns a list of ``(crops, groups)``: every group of planes is filled
    crop by crop.
    """
    leading = mask.reshape((1,) * (len(batch_shape) + len(spatial_shape) - mask.ndim) + mask.shape)
    by_mask: dict[tuple, list] = defaultdict(list)
    for plane in np.ndindex(*batch_shape):
        by_mask[tuple(i if n > 1 else 0 for i, n in zip(plane, leading.shape))].append(plane)

    plan = []
    for key, planes in by_mask.items():
        plane_mask = np.ascontiguousarray(np.broadcast_to(leading[key], spatial_shape))
        if not plane_mask.any():
            continue
        if plane_mask.all():
            where = f"plane {planes[0]}" if planes[0] else "the image"
            raise ValueError(
                f"the mask covers every pixel of {where} (shape {spatial_shape}): there is "
                "nothing to fill from; unmask some pixels, or for a dropped plane of a stack use "
                "method='interpolate' with spatial_ndim=3"
            )
        plane_crops = crops(plane_mask, margin)
        # Channel-independent methods fill planes sharing a mask in one call.
        size = max(1, _BATCH_BYTES // (plane_mask.size * channels * 8)) if spec.channel_independent else 1
        plan.append((plane_crops, [Group(planes[i : i + size], plane_mask) for i in range(0, len(planes), size)]))
    return plan


def crops(mask: np.ndarray, margin: int) -> list[Crop]:
    """Split ``mask`` into disjoint boxes holding its holes plus ``margin`` pixels of context.

    Holes closer than ``2 * margin + 1`` share a box; boxes smaller than a tile
    are packed per tile to bound the number of calls; overlapping boxes are
    merged, so that every hole is filled exactly once and no box holds part
    of another box's hole.
    """
    grown = ndi.maximum_filter(mask, size=2 * margin + 1, mode="constant") if margin else mask
    labels, _ = ndi.label(grown, structure=np.ones((3,) * mask.ndim))
    tile = _TILE[mask.ndim]
    boxes, packed = [], defaultdict(list)
    for box in ndi.find_objects(labels):
        if all(s.stop - s.start < tile for s in box):
            packed[tuple(s.start // tile for s in box)].append(box)
        else:
            boxes.append(box)
    boxes += [union(members) for members in packed.values()]
    while True:
        covered = np.zeros(mask.shape, bool)
        for box in boxes:
            covered[box] = True
        merged, count = ndi.label(covered, structure=np.ones((3,) * mask.ndim))
        if count == len(boxes):
            return [Crop(box, mask[box]) for box in boxes]
        boxes = ndi.find_objects(merged)


def union(boxes: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[d].start for b in boxes), max(b[d].stop for b in boxes)) for d in range(len(boxes[0])))
