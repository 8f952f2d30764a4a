"""Lazy inpainting of dask arrays, block by block, for images larger than memory."""

import numpy as np


def inpaint_dask(image, mask, method: str, *, channel_axis, spatial_ndim: int, noise, seed: int, **params):
    """Return a lazy dask array: :func:`napari_inpaint.inpaint` applied to each block.

    The image is rechunked so that every block holds whole planes (or volumes)
    with all their channels; each block is then filled with the matching part
    of the mask when it is computed.
    """
    import dask.array as da

    from napari_inpaint._engine import _as_bool_mask, _layout, inpaint

    mask = _as_bool_mask(np.asarray(mask))
    channel_axis, grid_shape = _layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    grid_axes = [a for a in range(image.ndim) if a != channel_axis]
    whole = set(grid_axes[-spatial_ndim:]) | ({channel_axis} if channel_axis is not None else set())
    image = image.rechunk({a: -1 for a in whole})
    full_mask = np.broadcast_to(mask, grid_shape)

    def fill_block(block, block_info=None):
        location = block_info[0]["array-location"]
        block_mask = full_mask[tuple(slice(*location[a]) for a in grid_axes)]
        block_seed = seed + int(np.ravel_multi_index(block_info[0]["chunk-location"], block_info[0]["num-chunks"]))
        return inpaint(
            block, block_mask, method, channel_axis=channel_axis, spatial_ndim=spatial_ndim,
            noise=noise, seed=block_seed, **params,
        )

    return da.map_blocks(fill_block, image, dtype=image.dtype)
