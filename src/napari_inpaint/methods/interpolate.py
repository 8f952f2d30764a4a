r"""Interpolation along one axis: dropped scan lines, detector rows, z-slices, frames.

Notes
-----
Every masked pixel :math:`p` on a line along ``axis`` takes the linear
interpolation between the nearest known pixels before (:math:`a`) and after
(:math:`b`) it on that line,

.. math:: u(p) = \frac{(b - p)\,f(a) + (p - a)\,f(b)}{b - a},

or the value of the nearest one (``kind="nearest"``, or at the end of a line
where only one side is known).  For a dropped row of a 2D image use
``axis=0`` (interpolate vertically); for a dropped z-slice or frame fill the
stack with ``spatial_ndim=3`` and ``axis=0``.
"""

import numpy as np

from napari_inpaint.registry import Param, register


def _nearest_known(known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest known entry before and after each entry of every line (last axis).

    Returns -1 (before) or the line length (after) where there is none.
    """
    length = known.shape[-1]
    position = np.arange(length)
    before = np.maximum.accumulate(np.where(known, position, -1), axis=-1)
    after = np.minimum.accumulate(np.where(known, position, length)[..., ::-1], axis=-1)[..., ::-1]
    return before, after


@register(
    "interpolate",
    summary="Linear (or nearest) interpolation along one axis from the nearest good pixels",
    family="classical",
    artifacts=("dropped-lines", "seams"),
    any_hole=False,
    ndims=(2, 3),
    params=(
        Param("axis", int, 0, "spatial axis to interpolate along (0 = rows/z, across a dropped row or slice)", 0, 2),
        Param(
            "kind", str, "linear", "linear between both neighbours, or the nearest one", choices=("linear", "nearest")
        ),
    ),
    margin=1,
    channel_independent=True,
)
def interpolate(image: np.ndarray, mask: np.ndarray, *, axis: int = 0, kind: str = "linear") -> np.ndarray:
    """Fill masked pixels from the nearest known pixels along ``axis``.

    Parameters
    ----------
    %(image_mask)s
    axis : int
        Spatial axis along which to interpolate.
    kind : {'linear', 'nearest'}
        Interpolation between the two neighbours, or the closer neighbour.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> stack = np.arange(5.0)[:, None, None] * np.ones((5, 4, 4))
    >>> mask = np.zeros(stack.shape, bool); mask[2] = True  # a dropped frame
    >>> inpaint(stack, mask, "interpolate", spatial_ndim=3, axis=0)[2, 0, 0]
    np.float64(2.0)
    """
    if axis >= mask.ndim:
        raise ValueError(f"axis={axis} does not exist in {mask.ndim}D data; use an axis from 0 to {mask.ndim - 1}")
    known = np.moveaxis(~mask, axis, -1)
    values = np.moveaxis(image, axis, -2)  # (..., line, channel)
    if not known.any(axis=-1)[~known.all(axis=-1)].all():
        raise ValueError(
            f"some lines along axis {axis} have no good pixel at all; interpolate along another axis "
            "(across the defect, not along it)"
        )
    before, after = _nearest_known(known)
    length = known.shape[-1]
    has_before, has_after = before >= 0, after < length
    lower = np.take_along_axis(values, np.clip(before, 0, length - 1)[..., None], axis=-2)
    upper = np.take_along_axis(values, np.clip(after, 0, length - 1)[..., None], axis=-2)
    position = np.arange(length)
    if kind == "linear":
        span = np.maximum(after - before, 1)
        weight = np.where(has_before & has_after, (position - before) / span, np.where(has_before, 0.0, 1.0))
    else:
        weight = np.where(has_before & (~has_after | (position - before <= after - position)), 0.0, 1.0)
    filled = lower + weight[..., None] * (upper - lower)
    return np.moveaxis(filled, -2, axis)
