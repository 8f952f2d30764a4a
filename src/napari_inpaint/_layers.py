"""napari layer helpers shared by the widgets and usable from napari's console.

They turn a Labels, Shapes or Points layer into a mask for an image layer,
and add (or replace) the result layers with the source's spatial calibration
and display settings.  napari itself is only imported inside functions, so
importing this module is cheap.

Examples
--------
In napari's console (``viewer`` is defined there)::

    from napari_inpaint import inpaint
    from napari_inpaint._layers import add_result, layer_mask, make_provenance

    image = viewer.layers["cell"]
    mask = layer_mask(viewer.layers["damage"], image, radius=2)
    filled = inpaint(image.data, mask, method="biharmonic")
    add_result(viewer, image, filled, make_provenance(image, "biharmonic", {}, mask_layer="damage"))
"""

import datetime
from typing import Any

import numpy as np

# Keys under which results are recognised (and replaced on a rerun).
PROVENANCE_KEY = "napari_inpaint"
RESULT_SUFFIX = " inpainted"
OVERLAY_SUFFIX = " inpainted pixels"
MASK_SUFFIX = " mask"


def grid_shape(image_layer) -> tuple[int, ...]:
    """Shape of an image layer's pixel grid: its data shape without an RGB(A) axis."""
    if image_layer.multiscale:
        raise ValueError(
            f"layer {image_layer.name!r} is multiscale; inpaint its full-resolution level "
            "(add layer.data[0] as a layer of its own) instead"
        )
    shape = tuple(image_layer.data.shape)
    return shape[:-1] if image_layer.rgb else shape


def _to_image_coords(mask_layer, image_layer, coords: np.ndarray, ndim: int) -> np.ndarray:
    """Map (N, D) data coordinates of ``mask_layer`` to the last ``ndim`` data coordinates of ``image_layer``.

    Coordinates go through world space, so layers with different scale or
    translate still line up.
    """
    return np.array(
        [image_layer.world_to_data(mask_layer.data_to_world(p))[-ndim:] for p in coords], dtype=np.float64
    ).reshape(-1, ndim)


def layer_mask(mask_layer, image_layer, *, label: int | None = None, radius: float = 3.0) -> np.ndarray:
    """Rasterise a Labels, Shapes or Points layer into a boolean mask for ``image_layer``.

    Parameters
    ----------
    mask_layer : napari.layers.Labels, Shapes or Points
        Labels: every nonzero label, or only ``label``; its data must have the
        image's grid shape or its trailing plane shape.  Shapes: filled
        interiors (polygons, rectangles, ellipses) or one-pixel outlines
        (lines, paths).  Points: disks of ``radius`` pixels.
    image_layer : napari.layers.Image
        The image the mask is for.
    label : int, optional
        For Labels, the one label value that marks bad pixels (None or 0:
        all nonzero labels).
    radius : float
        For Points, the disk radius in pixels of the image.

    Returns
    -------
    ndarray of bool
        The image's grid shape (see :func:`grid_shape`), or its trailing
        shape when the mask layer has fewer axes (one mask for every plane).
    """
    from napari.layers import Labels, Points, Shapes

    shape = grid_shape(image_layer)
    if isinstance(mask_layer, Labels):
        data = np.asarray(mask_layer.data)
        if data.shape != shape[len(shape) - data.ndim :]:
            raise ValueError(
                f"labels layer {mask_layer.name!r} has shape {data.shape} but image {image_layer.name!r} "
                f"has pixel grid {shape}; the labels must cover the same grid (or one of its planes)"
            )
        return data != 0 if not label else data == label
    if isinstance(mask_layer, Shapes):
        if mask_layer.nshapes == 0:
            return np.zeros(shape, bool)
        # A layer with fewer axes than the image gives one mask shared by every plane.
        ndim = min(mask_layer.ndim, len(shape))
        moved = [_to_image_coords(mask_layer, image_layer, np.asarray(d), ndim) for d in mask_layer.data]
        rasteriser = Shapes(moved, shape_type=mask_layer.shape_type, ndim=ndim)
        return rasteriser.to_labels(labels_shape=shape[-ndim:]) != 0
    if isinstance(mask_layer, Points):
        from napari_inpaint._detect import dilate_mask

        ndim = min(mask_layer.ndim, len(shape))
        target = shape[-ndim:]
        mask = np.zeros(target, bool)
        centres = np.rint(_to_image_coords(mask_layer, image_layer, np.asarray(mask_layer.data), ndim))
        inside = np.all((centres >= 0) & (centres < np.array(target)), axis=1)
        mask[tuple(centres[inside].astype(int).T)] = True
        return dilate_mask(mask, radius, spatial_ndim=2) if ndim >= 2 else mask
    raise TypeError(
        f"layer {mask_layer.name!r} is a {type(mask_layer).__name__} layer; "
        "use a Labels, Shapes or Points layer as the mask"
    )


def make_provenance(
    source_layer, method: str, params: dict, *, mask_layer: str | None = None, **details
) -> dict:
    """Describe how a result was made, for ``layer.metadata["napari_inpaint"]``.

    Parameters
    ----------
    source_layer : napari.layers.Image
        The inpainted layer.
    method : str
        Method name.
    params : dict
        The method's parameters as used.
    mask_layer : str, optional
        Name of the layer the mask came from.
    **details
        Anything else worth recording (scope, plane, dilation, label...).
    """
    from napari_inpaint import __version__

    return {
        "method": method,
        "parameters": dict(params),
        "source": source_layer.name,
        "mask_layer": mask_layer,
        **details,
        "version": __version__,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _spatial(layer) -> dict[str, Any]:
    """The properties that place a layer in the world."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine,
        "units": layer.units,
        "axis_labels": layer.axis_labels,
    }


def _add_or_replace(viewer, kind: str, name: str, data, metadata: dict, **properties):
    """Replace the data of the layer ``name`` made by this plugin, or add a new layer."""
    for layer in viewer.layers:
        if layer.name == name and type(layer).__name__ == kind and PROVENANCE_KEY in layer.metadata:
            layer.data = data
            layer.metadata = metadata
            return layer
    return getattr(viewer, f"add_{kind.lower()}")(data, name=name, metadata=metadata, **properties)


def add_result(viewer, source_layer, data: np.ndarray, provenance: dict, *, name: str | None = None):
    """Add the inpainted image as ``"<source> inpainted"`` (or ``name``), or replace that layer's data.

    The new layer keeps the source's calibration (scale, translate, rotate,
    shear, affine, units, axis labels) and display (colormap, contrast
    limits, gamma, blending, RGB); the source layer is never modified.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    source_layer : napari.layers.Image
    data : ndarray
        The result, of the source's shape.
    provenance : dict
        Stored as ``metadata["napari_inpaint"]`` (see :func:`make_provenance`).
    name : str, optional
        Layer name; default ``"<source> inpainted"``.

    Returns
    -------
    napari.layers.Image
    """
    if tuple(data.shape) != tuple(source_layer.data.shape):
        raise ValueError(f"result shape {data.shape} differs from the source's {source_layer.data.shape}")
    display = {"blending": source_layer.blending, "rgb": source_layer.rgb, "gamma": source_layer.gamma}
    if not source_layer.rgb:
        display["colormap"] = source_layer.colormap
    layer = _add_or_replace(
        viewer,
        "Image",
        name or source_layer.name + RESULT_SUFFIX,
        data,
        {**source_layer.metadata, PROVENANCE_KEY: provenance},
        contrast_limits=source_layer.contrast_limits,
        **display,
        **_spatial(source_layer),
    )
    # Assigning new data may rescale the contrast; keep the source's so both compare at a glance.
    layer.contrast_limits = source_layer.contrast_limits
    return layer


def add_mask(
    viewer, source_layer, mask: np.ndarray, *, name: str | None = None, provenance: dict | None = None
):
    """Add a mask as an editable Labels layer aligned with ``source_layer`` (or replace its data).

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    source_layer : napari.layers.Image
        Image whose calibration the labels take.
    mask : ndarray of bool
        Bad pixels (label 1).
    name : str, optional
        Layer name; default ``"<source> mask"``.
    provenance : dict, optional
        Stored as ``metadata["napari_inpaint"]``.

    Returns
    -------
    napari.layers.Labels
    """
    mask = np.asarray(mask)
    spatial = _spatial(source_layer)
    if mask.ndim < len(spatial["scale"]):
        # A plane mask shared by a whole stack is shown on every plane.
        mask = np.broadcast_to(mask, grid_shape(source_layer))
    return _add_or_replace(
        viewer,
        "Labels",
        name or source_layer.name + MASK_SUFFIX,
        mask.astype(np.uint8),
        {PROVENANCE_KEY: provenance or {"source": source_layer.name}},
        opacity=0.6,
        **spatial,
    )


def inpaint_layer(
    viewer, image_layer, mask_layer, method: str = "biharmonic", *, label: int | None = None,
    radius: float = 3.0, **kwargs,
):
    """Inpaint a napari image layer with a mask layer and add the result as the widget does.

    The one-call console helper: ``mask_layer`` (Labels, Shapes or Points) is
    turned into a mask with :func:`layer_mask`, the image is filled with
    :func:`napari_inpaint.inpaint`, and the result is added (or replaced) as
    ``"<image> inpainted"`` with the source's calibration and provenance.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    image_layer, mask_layer : napari layer or str
        Layers, or their names in ``viewer.layers``.
    method : str
        Inpainting method.
    label : int, optional
        Only this label of a Labels mask (default: every nonzero label).
    radius : float
        Radius of Points in pixels.
    **kwargs
        Passed on to :func:`napari_inpaint.inpaint` (method parameters,
        ``spatial_ndim``, ``noise``, ``seed``, ...).

    Returns
    -------
    napari.layers.Image

    Examples
    --------
    In napari's console::

        from napari_inpaint import inpaint_layer
        inpaint_layer(viewer, "damaged cell", "damage", "biharmonic")
    """
    from napari_inpaint import inpaint

    image_layer = viewer.layers[image_layer] if isinstance(image_layer, str) else image_layer
    mask_layer = viewer.layers[mask_layer] if isinstance(mask_layer, str) else mask_layer
    mask = layer_mask(mask_layer, image_layer, label=label, radius=radius)
    channel_axis = image_layer.data.ndim - 1 if image_layer.rgb else None
    filled = inpaint(np.asarray(image_layer.data), mask, method, channel_axis=channel_axis, **kwargs)
    params = {k: v for k, v in kwargs.items() if k not in ("progress", "cancel")}
    return add_result(viewer, image_layer, filled, make_provenance(image_layer, method, params, mask_layer=mask_layer.name))
