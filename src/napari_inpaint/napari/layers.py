"""napari layer helpers shared by the widgets and usable from napari's console.

They turn a Labels, Shapes or Points layer into a mask for an image layer,
and add (or replace) the result layers with the source's spatial calibration
and display settings.  Each layer they add records how it was made as a
:class:`Provenance` under ``layer.metadata["napari_inpaint"]``.  napari itself
is only imported inside functions, so importing this module is cheap.

Examples
--------
In napari's console (``viewer`` is defined there), :func:`~napari_inpaint.napari.fill.inpaint_layer` does
what the Inpaint widget does in one call; the pieces it is made of::

    image = viewer.layers["cell"]
    filled = inpaint(image.data, layer_mask(viewer.layers["damage"], image, label=3), "biharmonic")
    add_result(viewer, image, filled, Provenance(image.name, INPAINT, method="biharmonic"))
"""

import dataclasses
import datetime
from typing import Any

import numpy as np

# The metadata key of a layer's Provenance; layers holding one are replaced on a rerun.
PROVENANCE_KEY = "napari_inpaint"
RESULT_SUFFIX = " inpainted"
OVERLAY_SUFFIX = " inpainted pixels"
SIGMA_SUFFIX = " inpainted sigma"
MASK_SUFFIX = " mask"
# What made a layer (Provenance.made_by).
INPAINT, DETECT, COMPARE = "inpaint", "detect", "compare"


def layer_data(image_layer):
    """The pixels of an image layer: its data, or the highest resolution of a multiscale layer.

    napari's zarr reader and napari-ome-zarr open an OME-Zarr image as a
    multiscale layer, a list of lazy (dask) levels; napari-inpaint fills and
    measures the full resolution, level 0, never a whole level at once.
    """
    return image_layer.data[0] if image_layer.multiscale else image_layer.data


def grid_shape(image_layer) -> tuple[int, ...]:
    """Shape of an image layer's pixel grid: its (highest resolution's) shape without an RGB(A) axis."""
    shape = tuple(layer_data(image_layer).shape)
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
        if not label:
            return data != 0
        mask = data == label
        if not mask.any():
            raise ValueError(
                f"labels layer {mask_layer.name!r} has no pixel of label {label}; "
                f"{_labels_text(mask_layer)}: choose one of them, or 0 for every label"
            )
        return mask
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


def label_values(labels_layer) -> list[int]:
    """The nonzero labels that ``labels_layer`` holds, in increasing order."""
    data = np.asarray(labels_layer.data)
    if data.size and np.issubdtype(data.dtype, np.integer) and data.min() >= 0 and data.max() < 2**24:
        counts = np.bincount(data.ravel())  # far faster than np.unique on a large label image
        return [int(value) for value in np.flatnonzero(counts[1:]) + 1]
    return [int(value) for value in np.unique(data) if value != 0]


def label_names(labels_layer) -> dict[int, str]:
    """The names of the labels of ``labels_layer``, from its features table (``{}`` when it has none).

    napari shows a Labels layer's features in the status bar; a table with an
    ``index`` column (the label values) and a column of text names them, as
    in the plugin's sample (``damage``: hot pixels, scratch, debris).
    """
    features = labels_layer.features
    if "index" not in features:
        return {}
    texts = [c for c in features if c != "index" and all(isinstance(v, str) for v in features[c])]
    if not texts:
        return {}
    return {int(value): str(name) for value, name in zip(features["index"], features[texts[0]]) if value != 0}


def _labels_text(labels_layer) -> str:
    """What a Labels layer holds, for messages: ``"it holds labels 1 (hot pixels), 3 (debris)"``."""
    values, names = label_values(labels_layer), label_names(labels_layer)
    if not values:
        return "it holds no label yet (paint some first)"
    shown = [f"{v} ({names[v]})" if v in names else str(v) for v in values[:12]]
    more = f" and {len(values) - 12} more" if len(values) > 12 else ""
    return f"it holds label{'s' if len(values) > 1 else ''} {', '.join(shown)}{more}"


def reference_data(reference_layer, image_layer):
    """The data of an Image layer as the reference of ``image_layer`` for :func:`napari_inpaint.inpaint`.

    Only shapes are checked (nothing is read, a dask layer stays lazy).

    Parameters
    ----------
    reference_layer : napari.layers.Image
        Another image of the same field (a second acquisition, another
        channel...), of the image's pixel grid (see :func:`grid_shape`), or of
        its trailing axes, e.g. one plane: then it serves every plane.  A grey
        reference serves every channel of an RGB image.
    image_layer : napari.layers.Image
        The image to fill.

    Returns
    -------
    ndarray or dask array
        The layer's data, with an axis for the channels when it is grey and
        the image RGB.

    Raises
    ------
    ValueError, TypeError
        When the layer does not fit the image, or is not an Image layer.
    """
    from napari.layers import Image

    if not isinstance(reference_layer, Image):
        raise TypeError(
            f"layer {reference_layer.name!r} is a {type(reference_layer).__name__} layer; "
            "use an Image layer as the reference"
        )
    grid, image_grid = grid_shape(reference_layer), grid_shape(image_layer)
    if len(grid) < 2 or grid != image_grid[len(image_grid) - len(grid) :]:
        raise ValueError(
            f"reference layer {reference_layer.name!r} has pixel grid {grid} but image {image_layer.name!r} "
            f"has {image_grid}: choose a layer of the image's grid, or of one plane {image_grid[-2:]}"
        )
    data = layer_data(reference_layer)
    if not image_layer.rgb:
        if reference_layer.rgb:
            raise ValueError(
                f"reference layer {reference_layer.name!r} is RGB but image {image_layer.name!r} is not: "
                "choose a grey layer"
            )
        return data
    if not reference_layer.rgb:
        return data[..., None]  # the same reference for every channel
    if data.shape[-1] != layer_data(image_layer).shape[-1]:
        raise ValueError(
            f"reference layer {reference_layer.name!r} has {data.shape[-1]} channels but image "
            f"{image_layer.name!r} has {layer_data(image_layer).shape[-1]}"
        )
    return data


def _version() -> str:
    from napari_inpaint import __version__

    return __version__


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How napari-inpaint made a layer: kept as ``layer.metadata["napari_inpaint"]``.

    Every layer the widgets and :func:`~napari_inpaint.napari.fill.inpaint_layer` add holds one (set by
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
    full = tuple(layer_data(source_layer).shape) if channels else grid_shape(source_layer)
    ndim = len(shape) - int(channels and source_layer.rgb)
    if not 2 <= ndim <= source_layer.ndim or tuple(shape) != full[len(full) - len(shape) :]:
        raise ValueError(
            f"shape {tuple(shape)} fits neither the shape {full} of layer {source_layer.name!r} "
            "nor that of its trailing planes"
        )
    return ndim


def _earlier(viewer, kind: str, name: str, source: str):
    """The layer ``name`` of type ``kind`` that this plugin made from the layer ``source``, or None."""
    for layer in viewer.layers:
        made = provenance_of(layer)
        if layer.name == name and type(layer).__name__ == kind and made is not None and made.source == source:
            return layer
    return None


def _add_or_replace(
    viewer, kind: str, name: str, data, provenance: Provenance, *, replace: bool, settings: dict,
    initial: dict,
):
    """Replace the layer ``name`` this plugin made from the same source, or add a new layer.

    ``settings`` (calibration, display) are set on a replaced layer too, so
    that it follows the source's current ones; ``initial`` properties (e.g.
    opacity) only on a new layer, leaving the user's changes.  The one
    place that records ``provenance`` in a layer's metadata.
    """
    metadata = {**settings.pop("metadata", {}), PROVENANCE_KEY: provenance}
    earlier = _earlier(viewer, kind, name, provenance.source) if replace else None
    fixed = ("rgb", "multiscale")  # fixed for a layer's life
    fits = earlier is not None and np.ndim(earlier.data) == np.ndim(data[0] if _levels(data) else data)
    if fits and all(getattr(earlier, key, False) == settings.get(key, False) for key in fixed):
        earlier.data = data
        earlier.metadata = metadata
        for key, value in settings.items():
            if key not in fixed:  # equal here
                setattr(earlier, key, value)
        return earlier
    layer = getattr(viewer, f"add_{kind.lower()}")(data, name=name, metadata=metadata, **settings, **initial)
    if earlier is not None:  # of another dimensionality: the new layer takes its place
        index = viewer.layers.index(name)  # (by name: plugins get proxies of napari's layers)
        viewer.layers.remove(name)
        viewer.layers.move(viewer.layers.index(layer.name), index)
        layer.name = name  # napari renamed the newcomer while both existed
    return layer


def _levels(data) -> bool:
    """Whether ``data`` is a list of resolution levels (the data of a multiscale layer)."""
    return isinstance(data, (list, tuple))


def add_result(
    viewer, source_layer, data, provenance: Provenance, *, name: str | None = None, replace: bool = True
):
    """Add the inpainted image as ``"<source> inpainted"`` (or ``name``), or replace that layer.

    The layer takes the source's calibration (scale, translate, rotate,
    shear, affine, units, axis labels) and display (colormap, contrast
    limits, gamma, blending, RGB), also when it replaces an earlier result,
    so that it overlays the source as it is now; the source layer is never
    modified.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    source_layer : napari.layers.Image
    data : ndarray, dask array or list of them
        The result, of the source's shape; or of the shape of its trailing
        planes (e.g. one plane of a stack), then placed over those axes and
        shown on every plane; or a list of resolution levels (highest first)
        for a multiscale layer.
    provenance : Provenance
        How the result was made.
    name : str, optional
        Layer name; default ``"<source> inpainted"``.
    replace : bool
        Replace the layer of that name made from the same source (the
        default), or add a layer in any case (napari numbers equal names).

    Returns
    -------
    napari.layers.Image
    """
    ndim = _covered_ndim(source_layer, (data[0] if _levels(data) else data).shape, channels=True)
    settings = {
        "multiscale": _levels(data),
        "metadata": source_layer.metadata,
        "blending": source_layer.blending,
        "rgb": source_layer.rgb,
        "gamma": source_layer.gamma,
        "contrast_limits": source_layer.contrast_limits,
        **_placement(source_layer, ndim),
    }
    if not source_layer.rgb:
        settings["colormap"] = source_layer.colormap
    layer = _add_or_replace(
        viewer, "Image", name or source_layer.name + RESULT_SUFFIX, data, provenance, replace=replace,
        settings=settings, initial={},
    )
    # Assigning new data may rescale the contrast; keep the source's so both compare at a glance.
    layer.contrast_limits = source_layer.contrast_limits
    return layer


def add_sigma(viewer, source_layer, sigma, provenance: Provenance, *, name: str | None = None,
              replace: bool = True):
    """Add the uncertainty of a fill as ``"<source> inpainted sigma"`` (or ``name``), or replace that layer.

    An Image layer (colormap magma, additive blending, over the source's
    calibration) of the sigma of each filled pixel: the standard deviation of
    its expected error, 0 on known pixels (see :func:`napari_inpaint.inpaint`);
    an RGB source's sigma shows the largest of its channels'.
    """
    if source_layer.rgb:
        sigma = sigma.max(axis=-1)
    ndim = _covered_ndim(source_layer, sigma.shape, channels=False)
    settings = {"colormap": "magma", "blending": "additive", **_placement(source_layer, ndim)}
    if isinstance(sigma, np.ndarray):
        filled = sigma[sigma > 0]
        high = float(np.nanpercentile(filled, 99)) if filled.size else 1.0
        settings["contrast_limits"] = (0.0, high if np.isfinite(high) and high > 0 else 1.0)
    return _add_or_replace(
        viewer, "Image", name or source_layer.name + SIGMA_SUFFIX, sigma, provenance, replace=replace,
        settings=settings, initial={},
    )


def add_mask(
    viewer,
    source_layer,
    mask: np.ndarray,
    *,
    name: str | None = None,
    provenance: Provenance | None = None,
    replace: bool = True,
):
    """Add a mask as an editable Labels layer aligned with ``source_layer`` (or replace that layer).

    Like :func:`add_result`, a replaced layer takes the source's current
    calibration; its opacity and colours are left as the user set them.

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
    replace : bool
        Replace the layer of that name made from the same source (the
        default), or add a layer in any case.

    Returns
    -------
    napari.layers.Labels
    """
    mask = np.asarray(mask)
    ndim = _covered_ndim(source_layer, mask.shape, channels=False)
    return _add_or_replace(
        viewer, "Labels", name or source_layer.name + MASK_SUFFIX, mask.astype(np.uint8),
        provenance or Provenance(source_layer.name), replace=replace, settings=_placement(source_layer, ndim),
        initial={"opacity": 0.6},
    )
