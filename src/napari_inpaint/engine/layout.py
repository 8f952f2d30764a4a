"""How an image and its mask fit together: the channel axis, the planes, the mask's shape.

One rule for every caller (the engine, its lazy path, the evaluation and the
training of networks): a mask has the image's shape without its channel axis,
or the shape of its trailing axes (one mask for every plane), or anything that
broadcasts to it; an RGB(A) last axis is recognised when the mask lacks it,
and a mask that fits both readings is refused.
"""

import numpy as np


def as_bool_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"mask must be boolean or numeric (nonzero = bad pixel), got dtype {mask.dtype}")
    return mask if mask.dtype == bool else mask != 0


def is_dask(array) -> bool:
    """Whether ``array`` is a dask array (without importing dask)."""
    return type(array).__module__.startswith("dask.")


def channels_last(array, channel_axis: int | None):
    """``array`` (of an image's axes) with its channel axis last, or a new last axis without one: a view.

    Methods fill ``spatial + (C,)`` arrays; writing into the view writes into ``array``.
    """
    return array[..., np.newaxis] if channel_axis is None else np.moveaxis(array, channel_axis, -1)


def layout(image_shape, mask_shape, channel_axis, spatial_ndim) -> tuple[int | None, tuple[int, ...]]:
    """Check how image and mask fit together; return the channel axis and the non-channel shape."""
    channel_axis = resolve_channel_axis(image_shape, mask_shape, channel_axis)
    grid_shape = tuple(n for axis, n in enumerate(image_shape) if axis != channel_axis)
    if len(grid_shape) < spatial_ndim:
        raise ValueError(
            f"image of shape {tuple(image_shape)} has {len(grid_shape)} non-channel axes; "
            f"spatial_ndim={spatial_ndim} needs at least {spatial_ndim}"
        )
    if not broadcasts(mask_shape, grid_shape):
        raise ValueError(
            f"mask shape {tuple(mask_shape)} does not match image shape {tuple(image_shape)}: give a mask of "
            f"shape {grid_shape} (the image without its channel axis) or of its trailing plane shape "
            f"{grid_shape[-spatial_ndim:]}; for channels on another axis pass channel_axis"
        )
    return channel_axis, grid_shape


def resolve_channel_axis(image_shape, mask_shape, channel_axis) -> int | None:
    ndim = len(image_shape)
    if channel_axis is not None:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
            raise TypeError(f"channel_axis must be an integer or None, got {channel_axis!r}")
        if not -ndim <= channel_axis < ndim:
            raise ValueError(
                f"channel_axis={channel_axis} is out of range for an image with {ndim} axes (shape {image_shape})"
            )
        return int(channel_axis) % ndim
    if ndim < 3 or image_shape[-1] not in (3, 4) or not broadcasts(mask_shape, image_shape[:-1]):
        return None
    if broadcasts(mask_shape, image_shape):
        raise ValueError(
            f"image of shape {tuple(image_shape)} with a mask of shape {tuple(mask_shape)} is ambiguous: the "
            f"last axis (length {image_shape[-1]}) may hold RGB(A) channels, or the mask may apply to each of "
            "its planes. Pass channel_axis=-1 for colour channels, or give a mask of the image's full shape "
            "(np.broadcast_to(mask, image.shape)) if the last axis is spatial"
        )
    return ndim - 1  # RGB(A) last axis that the mask does not have


def broadcasts(mask_shape, target_shape) -> bool:
    try:
        return np.broadcast_shapes(tuple(mask_shape), tuple(target_shape)) == tuple(target_shape)
    except ValueError:
        return False
