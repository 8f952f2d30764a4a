"""napari's File > Open and File > Save for the files napari-inpaint writes: TIFF, zarr and OME-Zarr.

The reader (``napari.yaml``: ``viewer.open(path, plugin="napari-inpaint")``,
or drag and drop) opens a file through :func:`napari_inpaint.io.read_image`
with what it says about its pixels: scale, translation and units per axis,
the axis names, channels as one layer each (OME-Zarr rendering colours
and names kept) or RGB samples as an RGB layer, the resolution levels of an
OME-Zarr image as a lazy multiscale layer, the record of how it was filled
(the provenance) as ``layer.metadata["napari_inpaint"]``, and the mask of
the invented pixels (OME-Zarr ``labels/invented``, or the ``.invented``
file beside a TIFF or zarr output) as a Labels layer.

The writers save an Image layer (and, with it, a Labels layer as the mask
of invented pixels) or a Labels layer through :func:`napari_inpaint.io.write_image`,
with the layer's calibration (:func:`calibrated_like`) and provenance.
napari's save dialog confirms replacing a file; a zarr store is a folder,
which that dialog cannot choose, so an existing one is never replaced here.

napari itself is only imported inside functions, so importing this module is cheap.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from napari_inpaint import io
from napari_inpaint.napari.layers import PROVENANCE_KEY, Provenance

# The names the reader takes (the writers' suffixes too), longest first: ".ome.zarr" before ".zarr".
SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif")
INVENTED_SUFFIX = " invented pixels"  # the Labels layer of an output's invented pixels
_NGFF_ORDER = "tczyx"


def get_reader(path):
    """The npe2 reader: :func:`read_layers` for one TIFF, zarr or OME-Zarr path it can read, else None.

    Examples
    --------
    >>> get_reader("notes.txt") is None, get_reader("missing.ome.zarr") is None
    (True, True)
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not path.name.lower().endswith(SUFFIXES) or not path.exists():
        return None
    try:
        io.read_image(path, lazy=True)  # the metadata only: a zarr group of other arrays is not ours
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return read_layers


def read_layers(path) -> list[tuple]:
    """The napari layers of a file: its image (one layer per channel), and the mask of invented pixels.

    Parameters
    ----------
    path : str or Path
        A TIFF (ImageJ, OME or plain), zarr or OME-Zarr image, or a list of one.

    Returns
    -------
    list of (data, metadata, layer type)
        napari's layer data tuples.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from napari_inpaint.io import write_image
    >>> path = Path(tempfile.mkdtemp()) / "cells.ome.zarr"
    >>> like = io.calibrated(path, (32, 32), "yx", (0.5, 0.5), units=("micrometer",) * 2)
    >>> _ = write_image(path, np.zeros((32, 32), np.uint16), like=like, invented=np.eye(32, dtype=bool))
    >>> [(kind, meta["name"], tuple(meta["scale"])) for _, meta, kind in read_layers(path)]
    [('image', 'cells', (0.5, 0.5)), ('labels', 'cells invented pixels', (0.5, 0.5))]
    """
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    image = io.read_image(path)
    name = _layer_name(path)
    layers = [_image_layer(path, image, name)]
    invented = _invented_layer(path, image, name)
    if invented is not None:
        layers.append(invented)
    return layers


def _layer_name(path: Path) -> str:
    """The file's name without its suffix: ``cells`` for ``cells.ome.zarr``."""
    name = path.name
    suffix = next((s for s in SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)] or name


def _levels(path: Path, image: io.Image) -> list:
    """The resolution levels of an OME-Zarr image, highest first (each read lazily), or the one array."""
    if image.format != "ome-zarr" or len(image.metadata.shapes) == 1:
        return [image.data]
    return [image.data] + [io.read_image(path, level=level).data for level in range(1, len(image.metadata.shapes))]


def _calibration(image: io.Image) -> tuple[list[float], list[float], list[str | None]]:
    """Scale, translation and unit of each axis of ``image`` (1, 0 and None where the file says nothing)."""
    count = len(image.axes)
    if image.format == "ome-zarr":
        scale, translation = [1.0] * count, [0.0] * count
        for transform in image.metadata.transforms[0]:
            values = transform.get(transform["type"])
            if transform["type"] == "scale" and values is not None:
                scale = [float(v) for v in values]
            elif transform["type"] == "translation" and values is not None:
                translation = [float(v) for v in values]
        return scale, translation, [axis.get("unit") for axis in image.metadata.axes]
    if image.format == "tiff":
        scale, units = io._calibration(image, image.axes.lower())  # io's reading of it (no public one yet)
        return list(scale), [0.0] * count, list(units)
    return [1.0] * count, [0.0] * count, [None] * count


def _image_layer(path: Path, image: io.Image, name: str) -> tuple:
    """The Image layer (data, metadata, "image") of ``image``: RGB, split into channels, or one layer."""
    levels = _levels(path, image)
    scale, translation, units = _calibration(image)
    axes = image.axes.lower()
    meta: dict[str, Any] = {"name": name, "multiscale": len(levels) > 1}
    provenance = file_provenance(image)
    if provenance is not None:
        meta["metadata"] = {PROVENANCE_KEY: provenance}
    channel = image.channel_axis
    rgb = axes.endswith("s") and levels[0].shape[-1] in (3, 4)
    if channel is not None and not rgb:
        count = levels[0].shape[channel]
        grid = [i for i in range(len(axes)) if i != channel]
        placement = _placement(grid, axes, scale, translation, units)
        meta.update({key: [value] * count for key, value in placement.items()})
        meta.update(channel_axis=channel, **_channel_display(image, name, count))
    else:
        grid = [i for i in range(len(axes)) if not (rgb and i == len(axes) - 1)]
        meta.update(rgb=rgb, **_placement(grid, axes, scale, translation, units))
    return (levels if len(levels) > 1 else levels[0], meta, "image")


def _placement(grid: list[int], axes: str, scale, translation, units) -> dict:
    """The layer's scale, translate, units and axis labels: those of the axes ``grid``."""
    return {
        "scale": [scale[i] for i in grid],
        "translate": [translation[i] for i in grid],
        "units": [units[i] or "pixel" for i in grid],
        "axis_labels": [axes[i] for i in grid],
    }


def _channel_display(image: io.Image, name: str, count: int) -> dict:
    """The names and colours of the channels of an OME-Zarr image (its ``omero`` metadata), when it has them."""
    omero = image.metadata.omero if image.format == "ome-zarr" else None
    channels = (omero or {}).get("channels") or []
    if len(channels) != count:
        return {}
    from napari.utils.colormaps import Colormap

    display: dict[str, Any] = {"blending": "additive"}
    labels = [channel.get("label") for channel in channels]
    if all(labels):
        display["name"] = [f"{name} {label}" for label in labels]
    colours = [channel.get("color") for channel in channels]
    if all(colours):
        display["colormap"] = [Colormap(["black", f"#{colour}"], name=f"#{colour}") for colour in colours]
    return display


def _invented_layer(path: Path, image: io.Image, name: str) -> tuple | None:
    """The Labels layer of the invented pixels of an output: its ``labels/invented`` or the file beside it."""
    if image.format == "ome-zarr":
        where = path / "labels" / "invented"
        if not where.is_dir():
            return None
    else:
        where = io.invented_path(path)
        if not where.exists():
            return None
    mask = io.read_image(where)
    levels = [_without_channels(level, mask.axes) for level in _levels(where, mask)]
    scale, translation, units = _calibration(mask)
    grid = [i for i, letter in enumerate(mask.axes) if letter not in "cCS"]
    meta = {"name": name + INVENTED_SUFFIX, "multiscale": len(levels) > 1, "opacity": 0.6,
            **_placement(grid, mask.axes.lower(), scale, translation, units)}
    return (levels if len(levels) > 1 else levels[0], meta, "labels")


def _without_channels(mask, axes: str):
    """A mask (0/1, or 0/255 beside a TIFF) as uint8 labels 0/1, invented in any channel."""
    channels = tuple(i for i, letter in enumerate(axes) if letter in "cCS")
    invented = mask != 0
    if channels:
        invented = invented.any(axis=channels)
    return invented.astype(np.uint8)


def file_provenance(image: io.Image) -> dict | None:
    """The record of how a file was filled (:func:`napari_inpaint.io.provenance`), or None.

    Where each format keeps it: an OME-Zarr group's attributes, a zarr
    array's, a TIFF's JSON description, ImageJ ``Info`` or OME ``MapAnnotation``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "filled.tif"
    >>> _ = io.write_image(path, np.zeros((8, 8), np.uint8), axes="yx", provenance=io.provenance("harmonic", {}))
    >>> file_provenance(io.read_image(path))["method"]
    'harmonic'
    """
    if image.format == "ome-zarr":
        import zarr

        return dict(zarr.open_group(image.path, mode="r").attrs).get(PROVENANCE_KEY)
    if image.format == "zarr":
        return image.metadata.get(PROVENANCE_KEY)
    meta = image.metadata
    if PROVENANCE_KEY in meta.shaped:
        return meta.shaped[PROVENANCE_KEY]
    note = "napari-inpaint: "
    lines = [line for line in str(meta.imagej.get("Info", "")).splitlines() if line.startswith(note)]
    if lines:
        return json.loads(lines[-1][len(note) :])
    if meta.ome_xml:
        annotations = [a for a in ET.fromstring(meta.ome_xml).iter() if a.get("Namespace") == "napari-inpaint"]
        if annotations:
            return {m.get("K"): _json_or_text(m.text or "") for m in annotations[-1].iter() if m.get("K")}
    return None


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- writing


def calibrated_like(path, shape, *, rgb: bool, scale, translate, units, dtype, axis_labels=()):
    """``(like, axes)`` for :func:`napari_inpaint.io.write_image` of a layer's data, keeping its calibration.

    ``shape`` is the layer's data shape (with the RGB axis last when
    ``rgb``), ``scale``, ``translate``, ``units`` and ``axis_labels`` are
    the layer's.  The axes are named by the layer's axis labels when they
    are distinct letters of ``tczyx``, else ``yx`` and the letters before
    it (``zyx``, ``czyx``; ``tzyx`` for RGB).  An RGB layer is written to
    OME-Zarr as three channels (samples are no OME-Zarr axis), each coloured.
    ``axes`` is None when ``like`` names the axes; ``like`` is None where the
    output cannot hold a calibration (a plain zarr array, more than five
    axes), and then ``axes`` names the data's axes.

    Examples
    --------
    >>> like, axes = calibrated_like("a.ome.zarr", (4, 64, 64), rgb=False, scale=(2, 0.5, 0.5),
    ...                              translate=(0, 10, 0), units=("micrometer",) * 3, dtype="uint16")
    >>> axes, like.axes, like.metadata.transforms[0][0]["scale"], like.metadata.axes[0]["unit"]
    (None, 'zyx', [2.0, 0.5, 0.5], 'micrometer')
    """
    grid = tuple(shape[:-1] if rgb else shape)
    letters = _axis_letters(axis_labels, len(grid), rgb)
    if letters is None:
        return None, None
    units = [None if unit is None else str(unit) for unit in units]
    if rgb and io.output_format(path) == "ome-zarr":
        # Samples become OME-Zarr's channel axis (write_image moves them): calibrated as the grid, coloured.
        ngff = "".join(sorted("c" + letters, key=_NGFF_ORDER.index))
        at = ngff.index("c")
        ngff_shape = grid[:at] + (shape[-1],) + grid[at:]
        like = io.calibrated(path, ngff_shape, ngff, [*scale[:at], 1.0, *scale[at:]],
                             translation=[*translate[:at], 0.0, *translate[at:]],
                             units=[*units[:at], None, *units[at:]])
        if like is not None:
            colours = ("FF0000", "00FF00", "0000FF", "FFFFFF")[: shape[-1]]
            names = ("red", "green", "blue", "alpha")
            like.metadata.omero = {"channels": [{"color": c, "label": n} for c, n in zip(colours, names)]}
        return like, letters + "s"
    axes = letters + ("s" if rgb else "")
    like = io.calibrated(path, grid, axes, scale, translation=translate, units=units, dtype=dtype)
    return like, (axes if like is None else None)


def _axis_letters(axis_labels, ndim: int, rgb: bool) -> str | None:
    """The letters naming a layer's ``ndim`` grid axes (see :func:`calibrated_like`), None for too many."""
    labels = [str(label).lower() for label in axis_labels]
    allowed = "tzyx" if rgb else _NGFF_ORDER
    named = len(labels) == ndim and all(len(label) == 1 and label in allowed for label in labels)
    if named and len(set(labels)) == ndim and labels[-2:] == ["y", "x"]:
        return "".join(labels)
    if ndim > len(allowed):
        return None
    return allowed[-ndim:]


def _record(metadata: dict) -> dict | None:
    """The provenance to write: a file's record as read, or the record of a layer made in napari."""
    made = (metadata or {}).get(PROVENANCE_KEY)
    if isinstance(made, Provenance):
        details = {"source": made.source, "mask_layer": made.mask_layer, "made_by": made.made_by, **made.details}
        return io.provenance(made.method or "", made.parameters, **details)
    return made if isinstance(made, dict) else None


def _refuse_existing_store(path: Path) -> None:
    """Refuse to replace a zarr store: napari's save dialog cannot choose a folder, so nobody confirmed it."""
    if path.is_dir():
        raise FileExistsError(
            f"{path} exists: a zarr store is a folder, which napari's save dialog does not offer to replace; "
            "choose another name, or remove it first"
        )


def _write(path: str, data, meta: dict, invented=None) -> list[str]:
    """Write a layer's data (a multiscale layer's highest resolution) with its calibration and provenance."""
    path = Path(path)
    _refuse_existing_store(path)
    pixels = data[0] if meta.get("multiscale") else data
    like, axes = calibrated_like(
        path, pixels.shape, rgb=bool(meta.get("rgb")), scale=meta["scale"], translate=meta["translate"],
        units=meta.get("units") or [None] * len(meta["scale"]), dtype=pixels.dtype,
        axis_labels=meta.get("axis_labels", ()),
    )
    try:
        io.write_image(path, pixels, like=like, axes=axes, provenance=_record(meta.get("metadata")),
                       invented=invented, overwrite=True)
    except ValueError as error:  # napari takes a writer's ValueError for "no writer" and drops its message
        raise RuntimeError(f"could not write {path.name}: {error}") from error
    beside = invented is not None and io.output_format(path, like) != "ome-zarr"
    return [str(path)] + ([str(io.invented_path(path))] if beside else [])


def write_layers(path: str, layer_data: list[tuple]) -> list[str]:
    """The npe2 writer of an Image layer, and optionally a Labels layer as the mask of its invented pixels.

    Writes a TIFF, zarr or OME-Zarr file (by the suffix of ``path``) with
    the image layer's scale, translation and units (:func:`calibrated_like`)
    and its provenance; the Labels layer's nonzero pixels become the mask of
    invented pixels (OME-Zarr ``labels/invented``, else a file beside).
    A multiscale layer is written from its highest resolution (an OME-Zarr
    output gets its pyramid rebuilt).  Returns the paths written.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> meta = {"scale": (0.5, 0.5), "translate": (0.0, 8.0), "units": ("micrometer", "micrometer")}
    >>> holes = np.eye(16, dtype=np.uint8)
    >>> written = write_layers(str(folder / "cell.ome.zarr"),
    ...                        [(np.zeros((16, 16), np.uint16), meta, "image"), (holes, {}, "labels")])
    >>> [(kind, tuple(m["translate"])) for _, m, kind in read_layers(written[0])]
    [('image', (0.0, 8.0)), ('labels', (0.0, 8.0))]
    """
    image = next(layer for layer in layer_data if layer[2] == "image")
    invented = None
    for data, meta, kind in layer_data:
        if kind == "labels":
            invented = np.asarray(data[0] if meta.get("multiscale") else data) != 0
    return _write(path, image[0], image[1], invented=invented)


def write_labels(path: str, data, meta: dict) -> list[str]:
    """The npe2 writer of a Labels layer: its label image, calibrated as the layer (see :func:`write_layers`).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "cells.tif"
    >>> labels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    >>> written = write_labels(str(path), labels, {"scale": (0.5, 0.5), "translate": (0, 0)})
    >>> bool((io.read_image(written[0]).data == labels).all())
    True
    """
    return _write(path, data, meta)
