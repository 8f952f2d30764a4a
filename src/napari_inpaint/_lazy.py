"""Lazy inpainting of dask arrays, block by block, for images larger than memory."""

import threading
from collections.abc import Callable

import numpy as np

from napari_inpaint._layout import as_bool_mask, layout


def inpaint_dask(
    image, mask, fill_block: Callable, *, channel_axis, spatial_ndim: int, seed: int, progress: Callable | None,
):
    """Return a lazy dask array: ``fill_block`` applied to each block of ``image``.

    The image is rechunked so that every block holds whole planes (or volumes)
    with all their channels; when a block is computed, ``fill_block(block,
    block_mask, channel_axis, block_seed, block_progress, location)`` fills
    it (``location``: the block's slices in ``image``; the
    engine passes :func:`napari_inpaint.inpaint` with the call's other
    keywords) with the matching part of the mask.  ``progress(done, total)``
    counts blocks (fractionally within a block) as they are computed, from
    the threads that compute them.
    """
    import dask.array as da

    mask = as_bool_mask(np.asarray(mask))
    channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    grid_axes = [a for a in range(image.ndim) if a != channel_axis]
    whole = set(grid_axes[-spatial_ndim:]) | ({channel_axis} if channel_axis is not None else set())
    image = image.rechunk({a: -1 for a in whole})
    full_mask = np.broadcast_to(mask, grid_shape)
    report = None if progress is None else _BlockProgress(progress, image.npartitions)

    def fill(block, block_info=None):
        info = block_info[0]
        location = info["array-location"]
        block_mask = full_mask[tuple(slice(*location[a]) for a in grid_axes)]
        index = int(np.ravel_multi_index(info["chunk-location"], info["num-chunks"]))
        block_progress = None if report is None else report.for_block(index)
        filled = fill_block(block, block_mask, channel_axis, seed + index, block_progress, _slices(location))
        if block_progress is not None:
            block_progress(1, 1)  # also for blocks without holes, which report nothing
        return filled

    return da.map_blocks(fill, image, dtype=image.dtype)


def _slices(location: list[tuple[int, int]]) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in location)


class _BlockProgress:
    """Sums the fractional progress of blocks computed on several threads into one report."""

    def __init__(self, progress: Callable, blocks: int):
        self._progress, self._blocks = progress, blocks
        self._done: dict[int, float] = {}
        self._lock = threading.Lock()

    def for_block(self, index: int) -> Callable[[float, int], None]:
        def report(done: float, total: int) -> None:
            with self._lock:
                self._done[index] = done / max(total, 1)
                self._progress(sum(self._done.values()), self._blocks)

        return report
