"""One inpainting of a napari image layer: a run of the Inpaint widget, or a console call.

The console's :func:`~napari_inpaint.layers.inpaint_layer` and the widget

go through the same three steps, so that a console call does exactly what
the widget does:

- :func:`plan_fill` (GUI thread) turns the layers and settings (label,
  dilation, scope, noise, reference...) into a :class:`LayerFill`: the mask,
  the plane, the engine's arguments and the :class:`~napari_inpaint.layers.Provenance`
  of the result; it raises what is wrong before anything runs;
- :meth:`LayerFill.run` fetches the method's weights and fills (any thread:
  it reads the data captured by the plan and touches no layer);
- :meth:`LayerFill.add` adds (or replaces) the result layers (GUI thread).

napari is only imported inside functions, so importing this module is cheap.
"""

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from napari_inpaint import models
from napari_inpaint._engine import inpaint
from napari_inpaint._reference import ADJACENT
from napari_inpaint._registry import Method
from napari_inpaint.detect import dilate_mask
from napari_inpaint.layers import (
    INPAINT,
    OVERLAY_SUFFIX,
    RESULT_SUFFIX,
    Provenance,
    add_mask,
    add_result,
    grid_shape,
    layer_mask,
    mask_details,
    reference_data,
    reference_details,
)
from napari_inpaint.methods import get_method, list_methods

# What one run fills: every plane of a stack (each on its own), the plane on screen, or 3D volumes.
STACK, PLANE, VOLUME = "stack", "plane", "volume"
SCOPES = (STACK, PLANE, VOLUME)


def plane_of(mask: np.ndarray, plane: tuple[int, ...]) -> np.ndarray:
    """The 2D mask of ``plane`` (leading indices of the image) from a mask of any trailing shape.

    Examples
    --------
    >>> plane_of(np.zeros((4, 5)), (2, 3)).shape, plane_of(np.zeros((6, 4, 5)), (2, 3)).shape
    ((4, 5), (4, 5))
    """
    return mask[plane[len(plane) + 2 - mask.ndim :]]


def adjacent_window(plane: tuple[int, ...], grid: tuple[int, ...], mask: np.ndarray | None = None) -> tuple:
    """The index of the planes around ``plane`` on the stack axis that a fill from adjacent planes reads.

    The engine takes each pixel of a plane's reference from the nearest
    planes along the stack axis (the last before the plane's two) that know
    it: the window reaches on both sides as far as the nearest planes that
    know every pixel of the plane's holes in ``mask`` (of the image's grid
    ``grid`` or of its trailing axes); one plane without a mask.

    Examples
    --------
    >>> mask = np.zeros((9, 4, 4), bool)
    >>> mask[3:6, 1, 1] = True  # the holes of plane 4 are also lost in planes 3 and 5
    >>> adjacent_window((4,), mask.shape, mask)
    (slice(2, 7, None),)
    >>> adjacent_window((0, 0), (2, 9, 4, 4))
    (0, slice(0, 2, None))
    """
    *outer, index = plane
    masks = None if mask is None else np.broadcast_to(mask, grid)[tuple(outer)]
    unknown = None if masks is None else masks[index].copy()
    length, distance = grid[len(plane) - 1], 1
    while True:
        for other in (index - distance, index + distance):
            if unknown is not None and 0 <= other < length:
                unknown &= masks[other]
        if unknown is None or not unknown.any() or distance >= max(index, length - 1 - index):
            break
        distance += 1
    return (*outer, slice(max(0, index - distance), min(length, index + distance + 1)))


def current_plane(viewer, image_layer) -> tuple[int, ...]:
    """Indices of the plane on screen along the image's leading (non-plane) axes."""
    position = image_layer.world_to_data(viewer.dims.point)
    leading = grid_shape(image_layer)[:-2]
    return tuple(int(np.clip(np.rint(p), 0, n - 1)) for p, n in zip(position[: len(leading)], leading))


def is_dask(data) -> bool:
    """Whether ``data`` is a dask array (without importing dask)."""
    dask_array = sys.modules.get("dask.array")  # a dask array means dask is imported already
    return dask_array is not None and isinstance(data, dask_array.Array)


def size_text(size: int) -> str:
    """A file size for people.

    Examples
    --------
    >>> size_text(205669692), size_text(416836)
    ('196 MiB', '0.4 MiB')
    """
    mib = size / 2**20
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def missing_weights(spec: Method) -> list[str]:
    """The weights of ``spec`` that a run would download first."""
    return [name for name in spec.weights if not models.is_cached(name)]


@dataclasses.dataclass(frozen=True)
class LayerFill:
    """One planned inpainting of an image layer (made by :func:`plan_fill`).

    Attributes
    ----------
    image_layer : napari.layers.Image
        The source (never modified).
    data : array_like
        Its data when planned: what :meth:`run` fills.
    mask : ndarray of bool
        The pixels to fill, of the image's grid or of its trailing planes.
    plane : tuple of int or None
        With scope ``"plane"``: the plane filled; None: every plane.
    method : Method
    params : dict
        The method's parameters as given (validated).
    options : dict
        The engine's keywords (``spatial_ndim``, ``channel_axis``, ``noise``, ``seed``, ``align``).
    reference : None, "adjacent" or array_like
        The reference data the engine gets.
    provenance : Provenance
        What the result layers record.
    name : str or None
        Name of the result layer; None: ``"<image> inpainted"``, replaced on a rerun.
    overlay : bool
        Also add a Labels layer marking the filled pixels.
    """

    image_layer: Any
    data: Any
    mask: np.ndarray
    plane: tuple[int, ...] | None
    method: Method
    params: dict
    options: dict
    reference: Any
    provenance: Provenance
    name: str | None
    overlay: bool

    def describe(self) -> str:
        """What the run will fill, in a line.

        For example ``"1,840 px on each of 20 planes: a 2D mask applies to every plane"``.
        """
        grid = grid_shape(self.image_layer)
        spatial = self.options["spatial_ndim"]
        if self.plane is not None:
            where = "plane " + ", ".join(map(str, self.plane))
            text = f"{int(plane_of(self.mask, self.plane).sum()):,} px on {where} (the plane on screen)"
        else:
            units = int(np.prod(grid[: len(grid) - spatial]))
            noun = "volume" if spatial == 3 else "plane"
            shared = self.mask.ndim < len(grid)
            if units == 1:
                text = f"{int(self.mask.sum()):,} px" + (" in 3D" if spatial == 3 else "")
            elif shared and self.mask.ndim == spatial:
                text = (
                    f"{int(self.mask.sum()):,} px on each of {units} {noun}s: "
                    f"a {self.mask.ndim}D mask applies to every {noun}"
                )
            else:
                full = np.broadcast_to(self.mask, grid).reshape(units, -1)
                touched = int(full.any(axis=1).sum())
                text = f"{int(full.sum()):,} px on {touched} of {units} {noun}s"
        missing = missing_weights(self.method)
        if missing:
            size = sum(models.get_model(name).size for name in missing)
            text += f"; downloads {', '.join(missing)} ({size_text(size)}) first"
        return text

    def run(
        self,
        *,
        cancel=None,
        progress: Callable[[float, int], None] | None = None,
        status: Callable[[str], None] | None = None,
    ):
        """Fetch the method's weights, then fill; returns the result (lazy for a dask layer).

        ``status(text)`` is told each stage ("downloading weights: lama",
        "filling"); ``progress`` and ``cancel`` are the engine's.
        """
        for name in self.method.weights:
            if status is not None and not models.is_cached(name):
                status(f"downloading weights: {name} ({size_text(models.get_model(name).size)})")
            models.fetch(name, progress=progress)
        if status is not None:
            status("filling")
        kwargs = {"cancel": cancel, "progress": progress, **self.options, **self.params}
        data, mask, plane, reference = self.data, self.mask, self.plane, self.reference
        if plane is None:
            # The engine returns a lazy result for a dask layer, computed plane by plane as napari shows it.
            return inpaint(data, mask, self.method.name, reference=reference, **kwargs)
        channels = self.options["channel_axis"] is not None
        if isinstance(reference, str):  # the planes around this one: a NumPy stack the engine can search
            grid = data.shape[:-1] if channels else data.shape
            window = adjacent_window(plane, grid, mask)
            planes = np.broadcast_to(mask, grid)[window]
            filled = inpaint(
                np.asarray(data[window]), planes, self.method.name, reference=reference, **kwargs
            )
            filled = filled[plane[-1] - window[-1].start]
        else:
            if reference is not None:  # this plane's reference (a reference of one plane serves every plane)
                leading = reference.ndim - 2 - channels
                reference = np.asarray(reference[plane[len(plane) - leading :]])
            filled = inpaint(
                np.asarray(data[plane]), plane_of(mask, plane), self.method.name, reference=reference,
                **kwargs,
            )
        result = data.copy() if is_dask(data) else np.array(data, copy=True)
        result[plane] = filled  # on a dask array: a lazy assignment, the other planes are left as they are
        return result

    def add(self, viewer, result):
        """Add the result (and the overlay of filled pixels) to ``viewer``; returns the result layer."""
        image = self.image_layer
        layer = add_result(viewer, image, result, self.provenance, name=self.name, replace=self.name is None)
        if self.overlay:
            invented = self.mask
            if self.plane is not None:
                invented = np.zeros(grid_shape(image), bool)
                invented[self.plane] = plane_of(self.mask, self.plane)
            name = image.name + OVERLAY_SUFFIX
            if self.name is not None:
                name += f" ({self.method.name})"
            add_mask(
                viewer, image, invented, name=name, provenance=self.provenance, replace=self.name is None
            )
        return layer


def plan_fill(
    viewer,
    image_layer,
    mask_layer,
    method: str = "biharmonic",
    *,
    label: int | None = None,
    radius: float = 3.0,
    dilate: float = 0,
    scope: str = STACK,
    noise: str | None = None,
    seed: int = 0,
    reference=None,
    align: bool = True,
    new_layer: bool = False,
    overlay: bool = False,
    **params,
) -> LayerFill:
    """Check the settings of one inpainting of a layer and plan it.

    The parameters are those of :func:`napari_inpaint.layers.inpaint_layer`.

    Raises
    ------
    ValueError, TypeError
        For settings that cannot run (the message says what to change):
        a label the Labels layer does not hold, an empty mask, a scope the
        image or method does not have, a missing reference...
    """
    image_layer = viewer.layers[image_layer] if isinstance(image_layer, str) else image_layer
    mask_layer = viewer.layers[mask_layer] if isinstance(mask_layer, str) else mask_layer
    spec = get_method(method)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(map(repr, SCOPES))}, got {scope!r}")
    grid = grid_shape(image_layer)
    if scope != STACK and len(grid) < 3:
        raise ValueError(f"layer {image_layer.name!r} is a single plane: choose the scope 'whole image'")
    if scope == VOLUME and 3 not in spec.ndims:
        raise ValueError(
            f"{spec.name} fills plane by plane: choose the scope 'every plane of the stack', or a method "
            f"that fills in 3D ({', '.join(m.name for m in list_methods() if 3 in m.ndims)})"
        )
    spatial_ndim = 3 if scope == VOLUME else 2
    mask = layer_mask(mask_layer, image_layer, label=label, radius=radius)
    if dilate:
        mask = dilate_mask(mask, dilate, spatial_ndim=min(spatial_ndim, mask.ndim))
    plane = current_plane(viewer, image_layer) if scope == PLANE else None
    if not (mask.any() if plane is None else plane_of(mask, plane).any()):
        where = "" if plane is None else f" on the plane on screen ({', '.join(map(str, plane))})"
        raise ValueError(f"the mask from layer {mask_layer.name!r} is empty{where}: mark some pixels first")
    resolved = spec.resolve(params)
    chosen, given = _reference(viewer, image_layer, spec, scope, reference)
    details: dict[str, Any] = {"scope": scope, "dilate": dilate, "noise": noise or "none", "seed": seed}
    if plane is not None:
        details["plane"] = list(plane)
    details.update(reference_details(chosen, align))
    details.update(mask_details(mask_layer, label=label, radius=radius))
    made = Provenance(image_layer.name, INPAINT, method=spec.name, parameters=resolved,
                      mask_layer=mask_layer.name, details=details)  # fmt: skip
    options = {
        "spatial_ndim": spatial_ndim, "channel_axis": -1 if image_layer.rgb else None, "noise": noise,
        "seed": seed, "align": align,
    }  # fmt: skip
    name = f"{image_layer.name}{RESULT_SUFFIX} ({spec.name})" if new_layer else None
    return LayerFill(
        image_layer, image_layer.data, mask, plane, spec, params, options, given, made, name, overlay
    )


def _reference(viewer, image_layer, spec: Method, scope: str, reference) -> tuple[Any, Any]:
    """The reference chosen (None, ADJACENT, a layer or an array), and what the engine is given for it."""
    from napari.layers import Layer

    if isinstance(reference, str) and reference != ADJACENT:  # a layer's name
        reference = viewer.layers[reference]
    if reference is None:
        if spec.needs_reference:
            raise ValueError(
                f"{spec.name} fills from reference data: choose the reference 'adjacent planes' (a stack; "
                "reference='adjacent') or an image layer of the same field"
            )
        return None, None
    if isinstance(reference, str):
        if scope == VOLUME:
            raise ValueError(
                "adjacent planes are the reference of a stack filled plane by plane: choose the scope "
                "'every plane of the stack' or 'current plane'"
            )
        if scope == STACK and is_dask(image_layer.data):
            raise ValueError(
                f"the planes of layer {image_layer.name!r} are loaded lazily, each on its own: fill from "
                "adjacent planes with the scope 'current plane', or choose a reference layer"
            )
        return reference, reference
    if isinstance(reference, Layer):
        return reference, reference_data(reference, image_layer)
    return reference, np.asarray(reference)
