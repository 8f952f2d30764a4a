"""napari layer helpers shared by the widgets and usable from napari's console.

They turn a Labels, Shapes or Points layer into a mask for an image layer,
and add (or replace) the result layers with the source's spatial calibration
and display settings.  Each layer they add records how it was made as a
:class:`Provenance` under ``layer.metadata["napari_inpaint"]``.  napari itself
is only imported inside functions, so importing this module is cheap.

Examples
--------
In napari's console (``viewer`` is defined there)::

    from napari_inpaint import inpaint
    from napari_inpaint.layers import INPAINT, Provenance, add_result, layer_mask

    image = viewer.layers["cell"]
    mask = layer_mask(viewer.layers["damage"], image, radius=2)
    filled = inpaint(image.data, mask, method="biharmonic")
    made = Provenance(image.name, INPAINT, method="biharmonic", mask_layer="damage")
    add_result(viewer, image, filled, made)
"""

import dataclasses
import datetime
from typing import Any

import numpy as np

# The metadata key of a layer's Provenance; layers holding one are replaced on a rerun.
PROVENANCE_KEY = "napari_inpaint"
RESULT_SUFFIX = " inpainted"
OVERLAY_SUFFIX = " inpainted pixels"
MASK_SUFFIX = " mask"
# What made a layer (Provenance.made_by).
INPAINT, DETECT, COMPARE = "inpaint", "detect", "compare"


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
        from napari_inpaint.detect import dilate_mask

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


def mask_details(mask_layer, *, label: int | None, radius: float) -> dict[str, Any]:
    """What :func:`layer_mask` took from ``mask_layer``, for :attr:`Provenance.details`.

    The label of a Labels layer (``"all"``: every nonzero label) or the
    point radius of a Points layer; nothing for Shapes.
    """
    from napari.layers import Labels, Points

    if isinstance(mask_layer, Labels):
        return {"label": label or "all"}
    if isinstance(mask_layer, Points):
        return {"point_radius": radius}
    return {}


def _version() -> str:
    from napari_inpaint import __version__

    return __version__


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How napari-inpaint made a layer: kept as ``layer.metadata["napari_inpaint"]``.

    Every layer the widgets and :func:`inpaint_layer` add holds one (set by
    :func:`add_result` and :func:`add_mask`, read by :func:`provenance_of`);
    a rerun replaces the layers that hold one.

    Parameters
    ----------
    source : str
        Name of the layer it was made from.
    made_by : {"inpaint", "detect", "compare"}, optional
        What made it: an inpainting (the fill, or its overlay of filled
        pixels), a detection of bad pixels, or a comparison of methods (an
        example fill or hole); None when not recorded.
    method : str, optional
        The inpainting method.
    parameters : dict
        The method's parameters as used, or the detection's options.
    mask_layer : str, optional
        Name of the layer the mask came from.
    details : dict
        How the run was set: scope, plane, dilation, label, noise... of an
        inpainting; hole kind, ratio, seed, plane and region of a comparison.
    version : str
        napari-inpaint's version (default: the running one).
    time : str
        When, in ISO 8601 (UTC, to the second; default: now).

    Examples
    --------
    >>> made = Provenance("cell", INPAINT, method="harmonic", mask_layer="damage", details={"dilate": 1})
    >>> record = made.to_dict()
    >>> record["method"], record["details"], "T" in record["time"]
    ('harmonic', {'dilate': 1}, True)
    """

    source: str
    made_by: str | None = None
    method: str | None = None
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask_layer: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    version: str = dataclasses.field(default_factory=_version)
    time: str = dataclasses.field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.made_by not in (None, INPAINT, DETECT, COMPARE):
            raise ValueError(
                f"made_by must be {INPAINT!r}, {DETECT!r}, {COMPARE!r} or None; got {self.made_by!r}"
            )
        # Copies: the caller's dictionaries may change later, the record must not.
        object.__setattr__(self, "parameters", dict(self.parameters))
        object.__setattr__(self, "details", dict(self.details))

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data (for saving with the layer, or as JSON)."""
        return dataclasses.asdict(self)


def provenance_of(layer) -> Provenance | None:
    """The :class:`Provenance` of a layer napari-inpaint made, or None for any other layer."""
    made = layer.metadata.get(PROVENANCE_KEY)
    return made if isinstance(made, Provenance) else None


def _placement(layer, ndim: int | None = None) -> dict[str, Any]:
    """The properties that place a layer in the world, for its trailing ``ndim`` axes (default: all).

    A layer over the trailing axes only (a plane of a stack) is shown on every
    plane of the stack, where the stack's plane is.
    """
    if ndim is None or ndim == layer.ndim:
        return {
            "scale": layer.scale,
            "translate": layer.translate,
            "rotate": layer.rotate,
            "shear": layer.shear,
            "affine": layer.affine,
            "units": layer.units,
            "axis_labels": layer.axis_labels,
        }
    from napari.utils.transforms import CompositeAffine

    axes = list(range(layer.ndim - ndim, layer.ndim))
    physical = CompositeAffine(
        scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear, ndim=layer.ndim
    ).set_slice(axes)
    return {
        "scale": physical.scale,
        "translate": physical.translate,
        "rotate": physical.rotate,
        "shear": physical.shear,
        "affine": layer.affine.set_slice(axes),
        "units": layer.units[-ndim:],
        "axis_labels": layer.axis_labels[-ndim:],
    }


def _covered_ndim(source_layer, shape: tuple[int, ...], *, channels: bool) -> int:
    """The trailing grid axes of ``source_layer`` that data of ``shape`` covers: all of them, or a plane's.

    ``channels``: whether the data has the source's RGB(A) axis (an image) or not (a mask).
    """
    full = tuple(source_layer.data.shape) if channels else grid_shape(source_layer)
    ndim = len(shape) - int(channels and source_layer.rgb)
    if not 2 <= ndim <= source_layer.ndim or tuple(shape) != full[len(full) - len(shape) :]:
        raise ValueError(
            f"shape {tuple(shape)} fits neither the shape {full} of layer {source_layer.name!r} "
            "nor that of its trailing planes"
        )
    return ndim


def _add_or_replace(viewer, kind: str, name: str, data, provenance: Provenance, metadata: dict, **properties):
    """Replace the data of the layer ``name`` made by this plugin, or add a new layer.

    The one place that records ``provenance`` in a layer's metadata.
    """
    metadata = {**metadata, PROVENANCE_KEY: provenance}
    for layer in viewer.layers:
        if layer.name == name and type(layer).__name__ == kind and provenance_of(layer) is not None:
            layer.data = data
            layer.metadata = metadata
            return layer
    return getattr(viewer, f"add_{kind.lower()}")(data, name=name, metadata=metadata, **properties)


def add_result(viewer, source_layer, data, provenance: Provenance, *, name: str | None = None):
    """Add the inpainted image as ``"<source> inpainted"`` (or ``name``), or replace that layer's data.

    The new layer keeps the source's calibration (scale, translate, rotate,
    shear, affine, units, axis labels) and display (colormap, contrast
    limits, gamma, blending, RGB); the source layer is never modified.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    source_layer : napari.layers.Image
    data : ndarray or dask array
        The result, of the source's shape; or of the shape of its trailing
        planes (e.g. one plane of a stack), then placed over those axes and
        shown on every plane.
    provenance : Provenance
        How the result was made.
    name : str, optional
        Layer name; default ``"<source> inpainted"``.

    Returns
    -------
    napari.layers.Image
    """
    ndim = _covered_ndim(source_layer, data.shape, channels=True)
    display = {"blending": source_layer.blending, "rgb": source_layer.rgb, "gamma": source_layer.gamma}
    if not source_layer.rgb:
        display["colormap"] = source_layer.colormap
    layer = _add_or_replace(
        viewer,
        "Image",
        name or source_layer.name + RESULT_SUFFIX,
        data,
        provenance,
        source_layer.metadata,
        contrast_limits=source_layer.contrast_limits,
        **display,
        **_placement(source_layer, ndim),
    )
    # Assigning new data may rescale the contrast; keep the source's so both compare at a glance.
    layer.contrast_limits = source_layer.contrast_limits
    return layer


def add_mask(
    viewer, source_layer, mask: np.ndarray, *, name: str | None = None, provenance: Provenance | None = None
):
    """Add a mask as an editable Labels layer aligned with ``source_layer`` (or replace its data).

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    source_layer : napari.layers.Image
        Image whose calibration the labels take.
    mask : ndarray of bool
        Bad pixels (label 1), of the image's pixel grid (see
        :func:`grid_shape`) or of its trailing planes: such a mask is one
        layer over those axes, shown on (and, as a mask, applied to) every
        plane.
    name : str, optional
        Layer name; default ``"<source> mask"``.
    provenance : Provenance, optional
        How the mask was made; default: a record naming only the source.

    Returns
    -------
    napari.layers.Labels
    """
    mask = np.asarray(mask)
    ndim = _covered_ndim(source_layer, mask.shape, channels=False)
    return _add_or_replace(
        viewer,
        "Labels",
        name or source_layer.name + MASK_SUFFIX,
        mask.astype(np.uint8),
        provenance or Provenance(source_layer.name),
        {},
        opacity=0.6,
        **_placement(source_layer, ndim),
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
    from napari_inpaint import get_method, inpaint

    image_layer = viewer.layers[image_layer] if isinstance(image_layer, str) else image_layer
    mask_layer = viewer.layers[mask_layer] if isinstance(mask_layer, str) else mask_layer
    mask = layer_mask(mask_layer, image_layer, label=label, radius=radius)
    channel_axis = image_layer.data.ndim - 1 if image_layer.rgb else None
    filled = inpaint(np.asarray(image_layer.data), mask, method, channel_axis=channel_axis, **kwargs)
    spec = get_method(method)
    own = {p.name for p in spec.params}
    details = {k: v for k, v in kwargs.items() if k not in own and k not in ("progress", "cancel")}
    details.update(mask_details(mask_layer, label=label, radius=radius))
    parameters = spec.resolve({k: kwargs[k] for k in own & set(kwargs)})
    made = Provenance(image_layer.name, INPAINT, method=method, parameters=parameters,
                      mask_layer=mask_layer.name, details=details)
    return add_result(viewer, image_layer, filled, made)
