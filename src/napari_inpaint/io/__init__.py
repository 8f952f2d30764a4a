"""Reading and writing images of any size with their metadata: TIFF, zarr and OME-Zarr (and PNG, JPEG).

:func:`read_image` gives an :class:`Image`: its pixels (a NumPy array, or a
dask array read chunk by chunk for zarr, OME-Zarr and large TIFF files), its
axes and what the file says about them.  Give its ``data`` to
:func:`napari_inpaint.inpaint` (a dask array gives a lazy result) and the
result to :func:`write_image`, which computes it chunk by chunk into the
output (on the active ``distributed`` client, if any, else on local
threads), reporting progress as crops are filled and chunks written, and
writes the output completely or not at all (cancel included).  The output
keeps the input's metadata (``like``), records how it was made
(:func:`provenance`) and may carry a mask of the invented pixels.

Examples
--------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from napari_inpaint import inpaint
>>> from napari_inpaint.io import provenance, read_image, write_image
>>> folder = Path(tempfile.mkdtemp())
>>> image = np.add.outer(np.arange(64.0), np.arange(64.0)).astype(np.float32)
>>> mask = np.zeros(image.shape, bool); mask[20:30, 20:30] = True
>>> _ = write_image(folder / "in.ome.zarr", image, axes="yx")
>>> source = read_image(folder / "in.ome.zarr")
>>> filled = inpaint(source.data, mask, "harmonic")  # lazy: nothing computed yet
>>> made = provenance("harmonic", {}, mask=mask)
>>> _ = write_image(folder / "out.ome.zarr", filled, like=source, provenance=made, invented=mask)
>>> out = read_image(folder / "out.ome.zarr")
>>> bool(np.allclose(np.asarray(out.data), image, atol=1e-3)), out.axes
(True, 'yx')
"""

import dataclasses
import datetime
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_inpaint.io import omezarr as _omezarr
from napari_inpaint.io import picture as _picture
from napari_inpaint.io import tiff as _tiff
from napari_inpaint.io.chunks import from_zarr
from napari_inpaint.io.store import MARKER, compute_into, staged

__all__ = [
    "Image", "calibrated", "invented_path", "output_format", "provenance", "read_image", "sigma_path", "write_image",
]

FORMATS = ("tiff", "zarr", "ome-zarr", *_picture.FORMATS)
# Blocks of in-memory data written to zarr (pixels per side of a plane).
_CHUNK = 1024
# TIFF files larger than this are read lazily (through tifffile's zarr store) unless told otherwise.
_IN_MEMORY_BYTES = 2**30
_IMAGEJ_UNITS = {"micron": "micrometer", "um": "micrometer", "\u00b5m": "micrometer", "nm": "nanometer",
                 "mm": "millimeter", "cm": "centimeter", "m": "meter"}
# Lengths a plain TIFF's resolution can hold (in pixels per centimetre): centimetres per unit.
_CENTIMETRES = {"nanometer": 1e-7, "micrometer": 1e-4, "millimeter": 0.1, "centimeter": 1.0, "meter": 100.0}
# The data types an ImageJ hyperstack holds.
_IMAGEJ_DTYPES = ("uint8", "uint16", "float32")


@dataclass
class Image:
    """An image read by :func:`read_image`.

    Attributes
    ----------
    data : ndarray or dask array
        The pixels: NumPy for small TIFF files, else a lazy dask array.
    axes : str
        One letter per axis: OME-Zarr's axis names (``"tczyx"``), or
        tifffile's series axes (``"TZCYX"``, ``"YXS"`` for RGB samples).
    format : {'tiff', 'zarr', 'ome-zarr', 'png', 'jpeg'}
    path : Path, optional
    metadata : object
        What the file says besides the pixels, kept by :func:`write_image`
        (``like=``): the OME-Zarr multiscale metadata, or the TIFF's tags,
        ImageJ metadata, OME-XML and description.
    """

    data: Any
    axes: str
    format: str
    path: Path | None = None
    metadata: Any = None

    @property
    def channel_axis(self) -> int | None:
        """The index of the channel (or RGB sample) axis, for ``inpaint(..., channel_axis=)``."""
        for index, letter in enumerate(self.axes):
            if letter in "cCS":
                return index
        return None


def read_image(path, *, level: int = 0, lazy: bool | None = None) -> Image:
    """Read a TIFF, zarr or OME-Zarr image (or a PNG or JPEG picture).

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` file (OME-TIFF and ImageJ hyperstacks included),
        a zarr array, an OME-Zarr image (a multiscale group), or a
        ``.png``/``.jpg`` picture (read into memory, axes ``"YX"`` or ``"YXS"``).
    level : int
        The resolution level of a multiscale image: 0 (default) is the
        highest.
    lazy : bool, optional
        Read a TIFF as a dask array (chunk by chunk) rather than into memory;
        by default, when it is larger than 1 GiB.  zarr data are always lazy.

    Returns
    -------
    Image
        Its lazy data raise :class:`napari_inpaint.io.chunks.ChunkDecodeError` (a ValueError) naming the
        file and chunk, when a chunk of a zarr store cannot be decoded.

    Raises
    ------
    ValueError
        When the file cannot be read as an image, or its metadata are malformed (the message names the
        field: an OME-Zarr ``axes`` of another length than the data's, a dataset ``path`` missing...).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if _is_tiff(path):
        lazy = path.stat().st_size > _IN_MEMORY_BYTES if lazy is None else lazy
        data, metadata = _tiff.read(path, lazy)
        return Image(data, metadata.axes, "tiff", path, metadata)
    if _picture.format_of(path) and not path.is_dir():
        data, axes = _picture.read(path)
        return Image(data, axes, _picture.format_of(path), path)
    if _omezarr.is_ome_zarr(path):
        data, metadata = _omezarr.read(path, level)
        return Image(data, "".join(a["name"] for a in metadata.axes), "ome-zarr", path, metadata)
    import zarr  # here, not above: TIFF files are read and written without zarr installed

    try:
        stored = zarr.open(path, mode="r")
    except Exception as error:
        expected = "expected a TIFF, PNG or JPEG file, a zarr array or an OME-Zarr image"
        raise ValueError(f"cannot read {path}: {expected}") from error
    if isinstance(stored, zarr.Group):
        arrays = sorted(name for name, _ in stored.arrays())
        raise ValueError(f"{path} is a zarr group (no multiscales); read one of its arrays: {arrays}")
    names = getattr(stored.metadata, "dimension_names", None) or ()
    axes = stored.attrs.get("axes") or ("".join(names) if len(names) == stored.ndim and all(names) else "")
    return Image(from_zarr(stored, path), axes or _default_axes(stored.ndim), "zarr", path, dict(stored.attrs))


def write_image(
    path, data, *, like: Image | None = None, axes: str | None = None, provenance: dict | None = None,
    invented=None, overwrite: bool = False, progress: Callable[[int, int], None] | None = None, cancel=None,
) -> Path:
    """Write ``data`` (computing a lazy result chunk by chunk) as a TIFF, zarr or OME-Zarr image.

    The format follows the suffix: ``.tif``/``.tiff`` (``.ome.tif`` for
    OME-TIFF), ``.ome.zarr``, or ``.zarr`` (an OME-Zarr image when ``like``
    is one, else a plain zarr array); ``.png`` and ``.jpg`` pictures hold
    one plane of uint8 (PNG: or uint16) pixels and no metadata.  The output
    is made in a temporary folder next to ``path`` and moved into place only
    once complete.

    Parameters
    ----------
    path : str or Path
    data : ndarray, dask array or zarr array
        The pixels, e.g. the result of :func:`napari_inpaint.inpaint`.
    like : Image, optional
        The input: its metadata are kept (axes, scale and translation,
        pyramid levels, TIFF resolution, ImageJ and OME metadata...).
    axes : str, optional
        Axis letters (default: ``like``'s, else ``"tczyx"``'s last ones).
    provenance : dict, optional
        How the data were made (see :func:`provenance`), recorded in the
        output's metadata.
    invented : array_like of bool, optional
        The pixels that were filled (the mask): written as the label image
        ``labels/invented`` of an OME-Zarr output, else beside the output
        (:func:`invented_path`), as 0/255 uint8.
    overwrite : bool
        Replace an existing output (only once the new one is complete).
    progress : callable, optional
        ``progress(done, total)``: crops filled and chunks written, as they
        finish (on a cluster too).
    cancel : threading.Event, optional
        When set, the computation stops (a cluster's futures are cancelled)
        and nothing is left at ``path``: :class:`napari_inpaint.InpaintCancelled`
        is raised.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    form = output_format(path, like)
    axes = axes or (like.axes if like is not None else _default_axes(np.ndim(data)))
    if len(axes) != np.ndim(data):
        raise ValueError(f"axes {axes!r} do not fit data of shape {np.shape(data)}: give one letter per axis")
    data = _dask_or_numpy(data)
    outputs = [path] if invented is None or form == "ome-zarr" else [path, invented_path(path)]
    if like is not None and like.path is not None:
        _check_apart(outputs, like.path)
    if form in _picture.FORMATS:
        _write_pictures(outputs, data, invented, overwrite)
        return path
    with staged(outputs, overwrite=overwrite) as folder:
        marker = folder / MARKER
        if form == "ome-zarr":
            lazy, mask, axes = _ngff_order(_as_dask(data, axes), invented, axes)
            multiscale = _multiscale(lazy, axes, like)
            mask = None if mask is None else _mask_like(mask, lazy, axes, whole=True)[0]
            targets = _omezarr.write(folder / path.name, lazy, multiscale,
                                     provenance=provenance, invented=mask)
            compute_into(targets, marker, progress=progress, cancel=cancel)
        elif form == "zarr":
            lazy = _as_dask(data, axes)
            targets = [_zarr_target(folder / path.name, lazy, axes, like, provenance)]
            if invented is not None:
                mask, mask_axes = _mask_like(invented, lazy, axes)
                mask = mask.astype(np.uint8) * np.uint8(255)
                targets.append(_zarr_target(folder / outputs[1].name, mask, mask_axes, None, provenance))
            compute_into(targets, marker, progress=progress, cancel=cancel)
        else:
            _write_tiffs(folder, outputs, data, axes, like, provenance, invented, progress, cancel)
    return path


def _write_pictures(outputs: list[Path], data, invented, overwrite: bool) -> None:
    """A picture (and the mask beside it, 0/255), each encoded before any is written."""
    _picture.check(outputs[0], data.dtype, data.shape)
    encoded = [_picture.encode(np.asarray(data), outputs[0].suffix)]
    if invented is not None:
        mask = (np.asarray(invented) != 0).astype(np.uint8) * np.uint8(255)
        encoded.append(_picture.encode(mask, outputs[0].suffix))
    with staged(outputs, overwrite=overwrite) as folder:
        for path, contents in zip(outputs, encoded):
            (folder / path.name).write_bytes(contents)


def provenance(method: str, params: dict, *, mask=None, shape=None, **details) -> dict:
    """The record of a fill kept in an output's metadata: method, parameters, version, date, filled pixels.

    ``mask`` gives the number of filled pixels (a mask of one plane counts
    once per plane of ``shape``, the image's shape without channels);
    ``details`` are added as they are (e.g. ``source="in.tif"``).

    Examples
    --------
    >>> import numpy as np
    >>> record = provenance("harmonic", {}, mask=np.eye(4, dtype=bool), shape=(3, 4, 4))
    >>> record["method"], record["filled_pixels"], record["software"]
    ('harmonic', 12, 'napari-inpaint')
    """
    record = {
        "software": "napari-inpaint",
        "version": _tiff._version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "parameters": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()},
    }
    if mask is not None:
        count = int(np.asarray((mask != 0).sum()))
        if shape is not None:
            count *= int(np.prod(shape)) // int(np.prod(np.shape(mask)))
        record["filled_pixels"] = count
    return {**record, **details}


def calibrated(path, shape, axes: str, scale, *, translation=None, units=None, dtype=None) -> Image | None:
    """A ``like`` for :func:`write_image` that carries only a calibration, for data that has no file.

    ``scale``, ``translation`` and ``units`` (names such as ``"micrometer"``,
    or None) give one value per axis of ``axes`` (letters of ``"tczyx"``,
    and ``"s"`` for RGB samples, which they skip).  An OME-Zarr output keeps
    them all.  A TIFF keeps the pixel size along y and x: as an ImageJ
    hyperstack (uint8, uint16 or float32 data) with the unit, the z spacing
    and the frame interval, else as a resolution in pixels per centimetre.
    A plain zarr array keeps none (None is returned).

    Examples
    --------
    >>> like = calibrated("a.tif", (5, 64, 64), "zyx", (2.0, 0.5, 0.5), units=("micrometer",) * 3, dtype="uint16")
    >>> like.metadata.resolution, like.metadata.imagej
    ((2.0, 2.0), {'unit': 'micron', 'spacing': 2.0})
    """
    form = output_format(path)
    axes = axes.lower()
    grid = axes.replace("s", "")
    units = [None if unit in (None, "pixel") else str(unit) for unit in (units or [None] * len(grid))]
    if form == "ome-zarr":
        if "s" in axes or len(grid) > 5:
            return None
        translation = None if translation is None else list(translation)
        multiscale = _omezarr.new_multiscale(shape, grid, list(scale), translation, units)
        return Image(None, grid, "ome-zarr", None, multiscale)
    if form != "tiff" or not {"y", "x"} <= set(grid):
        return None
    size = dict(zip(grid, scale))
    unit = units[grid.index("x")]
    imagej_order = list(axes.upper()) == sorted(axes.upper(), key="TZCYXS".index)
    if imagej_order and str(np.dtype(dtype)) in _IMAGEJ_DTYPES and unit in _IMAGEJ_UNITS.values():
        imagej = {"unit": "micron" if unit == "micrometer" else {v: k for k, v in _IMAGEJ_UNITS.items()}[unit]}
        imagej.update({"spacing": float(size["z"])} if "z" in size else {})
        imagej.update({"finterval": float(size["t"])} if "t" in size else {})
        metadata = _tiff.TiffMetadata(kind="imagej", axes=axes.upper(), resolution=(1 / size["x"], 1 / size["y"]),
                                      imagej=imagej)
    elif unit in _CENTIMETRES:
        per_centimetre = (1 / (size["x"] * _CENTIMETRES[unit]), 1 / (size["y"] * _CENTIMETRES[unit]))
        metadata = _tiff.TiffMetadata(axes=axes.upper(), resolution=per_centimetre, resolutionunit=3)
    else:
        return None
    return Image(None, axes.upper(), "tiff", None, metadata)


def invented_path(path) -> Path:
    """Where :func:`write_image` puts the mask of invented pixels beside a TIFF or plain zarr output."""
    stem, suffix = _stem(Path(path))
    return Path(path).with_name(stem + ".invented" + suffix.replace(".ome", ""))


def sigma_path(path) -> Path:
    """Where the uncertainty (sigma) of a fill written to ``path`` goes: beside it, of the same format, a
    picture's (PNG, JPEG: integer pixels only) as TIFF.

    Examples
    --------
    >>> [sigma_path(name).name for name in ("a.ome.zarr", "b.tif", "c.png")]
    ['a.sigma.ome.zarr', 'b.sigma.tif', 'c.sigma.tif']
    """
    stem, suffix = _stem(Path(path))
    if suffix.lower() in (".png", ".jpg", ".jpeg"):
        suffix = ".tif"
    return Path(path).with_name(stem + ".sigma" + suffix)


def _stem(path: Path) -> tuple[str, str]:
    """A file name without its format's suffix (``.ome.tif``, ``.ome.zarr`` count as one), and that suffix."""
    two = "".join(path.suffixes[-2:])
    suffix = two if _is_ome_tiff(path) or two.lower() == ".ome.zarr" else path.suffix
    return path.name[: len(path.name) - len(suffix)], suffix


def output_format(path, like: Image | None = None) -> str:
    """The format :func:`write_image` writes to ``path``: one of :data:`FORMATS`, by the name's suffix.

    A ``.zarr`` name is an OME-Zarr image when ``like`` is one.

    Examples
    --------
    >>> output_format("a.ome.tif"), output_format("b.zarr"), output_format("c.ome.zarr")
    ('tiff', 'zarr', 'ome-zarr')
    """
    path = Path(path)
    name = path.name.lower()
    if _is_tiff(path):
        return "tiff"
    if name.endswith(".ome.zarr") or (name.endswith(".zarr") and getattr(like, "format", None) == "ome-zarr"):
        return "ome-zarr"
    if name.endswith(".zarr"):
        return "zarr"
    if _picture.format_of(path):
        return _picture.format_of(path)
    raise ValueError(
        f"cannot tell the format of {path}: name it .tif, .tiff, .ome.tif, .zarr, .ome.zarr, .png or .jpg"
    )


def _check_apart(outputs: list[Path], source: Path) -> None:
    """Refuse an output that is the input, lies inside it (a zarr store) or holds it: the input is kept."""
    source = Path(source).resolve()
    for output in outputs:
        resolved = output.resolve()
        if resolved == source or source in resolved.parents or resolved in source.parents:
            where = "is" if resolved == source else "lies inside" if source in resolved.parents else "holds"
            raise ValueError(f"the output {output} {where} the input {source}; write the result to another path")


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def _is_ome_tiff(path: Path) -> bool:
    return path.name.lower().endswith((".ome.tif", ".ome.tiff"))


def _default_axes(ndim: int) -> str:
    return "tczyx"[-ndim:] if ndim <= 5 else "q" * (ndim - 5) + "tczyx"


def _dask_or_numpy(data):
    if type(data).__module__.startswith("zarr."):
        import dask.array as da

        return da.from_zarr(data)
    return data if type(data).__module__.startswith("dask.") else np.asarray(data)


def _as_dask(array, axes: str):
    """``array`` as a dask array: as it is if it is one, else chunked by plane."""
    import dask.array as da

    array = _dask_or_numpy(array)
    if isinstance(array, da.Array):
        return array
    # Planes (the last two axes but RGB samples) in blocks of _CHUNK pixels a side, channels whole.
    axes = axes[-array.ndim :]
    plane = [i for i, letter in enumerate(axes) if letter not in "cCS"][-2:]
    chunks = tuple(
        n if letter in "cCS" else min(n, _CHUNK) if i in plane else 1
        for i, (letter, n) in enumerate(zip(axes, array.shape))
    )
    return da.from_array(array, chunks=chunks)


def _mask_positions(axes: str, ndim: int) -> list[int]:
    """The axes of ``axes`` that a mask of ``ndim`` dimensions has: all, or the last ones but channels."""
    grid = _grid(axes)
    return list(range(ndim)) if ndim == len(axes) else grid[len(grid) - ndim :]


def _grid(axes: str) -> list[int]:
    """The axes of ``axes`` that are not channels (nor RGB samples)."""
    return [i for i, letter in enumerate(axes) if letter not in "cCS"]


def _mask_like(mask, data, axes: str, *, whole: bool = False):
    """``(mask, its axes)``: a dask array chunked as ``data`` (of ``axes``) along the axes they share.

    ``whole``: a mask of fewer axes is repeated along the others but channels (e.g. one plane for a stack).
    """
    import dask.array as da

    mask = _dask_or_numpy(mask)
    positions = _mask_positions(axes, mask.ndim)
    if whole and mask.ndim < len(axes):
        positions = _grid(axes)
        mask = da.broadcast_to(mask, tuple(data.shape[i] for i in positions))
    chunks = tuple(data.chunks[i] for i in positions)
    mask = mask.rechunk(chunks) if isinstance(mask, da.Array) else da.from_array(mask, chunks=chunks)
    return mask, "".join(axes[i] for i in positions)


def _ngff_order(data, invented, axes: str):
    """Data, mask and axes in OME-Zarr's order (time, channel, space: ``tczyx``); RGB samples are channels."""
    axes = axes.lower().replace("s", "c")
    order = sorted(range(len(axes)), key=lambda i: "tczyx".find(axes[i]))
    if order == sorted(order):
        return data, invented, axes
    if invented is not None:
        mask_axes = "".join(axes[i] for i in _mask_positions(axes, np.ndim(invented)))
        mask_order = sorted(range(len(mask_axes)), key=lambda i: "tczyx".find(mask_axes[i]))
        invented = _dask_or_numpy(invented).transpose(mask_order)
    return data.transpose(order), invented, "".join(axes[i] for i in order)


def _multiscale(data, axes: str, like: Image | None):
    """``like``'s pyramid from the level of ``data``'s shape (the level read) down, else a new one."""
    shapes = [tuple(shape) for shape in like.metadata.shapes] if like is not None and like.format == "ome-zarr" else []
    if tuple(data.shape) in shapes:
        level = shapes.index(tuple(data.shape))
        meta = like.metadata
        return dataclasses.replace(meta, transforms=meta.transforms[level:], shapes=meta.shapes[level:])
    scale, units = _calibration(like, axes.lower())
    return _omezarr.new_multiscale(data.shape, axes.lower(), scale=scale, units=units)


def _calibration(like: Image | None, axes: str) -> tuple[list | None, list | None]:
    """Pixel sizes and units per axis from a TIFF (resolution, ImageJ unit and spacing), else None."""
    if like is None or like.format != "tiff":
        return None, None
    meta: _tiff.TiffMetadata = like.metadata
    scale, units = [1.0] * len(axes), [None] * len(axes)
    unit = _IMAGEJ_UNITS.get(str(meta.imagej.get("unit", "")).lower())
    if meta.resolution is not None and meta.resolutionunit in (2, 3) and unit is None:
        unit = "centimeter"
        meta_resolution = [r * (2.54 if meta.resolutionunit == 2 else 1.0) for r in meta.resolution]
    else:
        meta_resolution = meta.resolution
    for letter, index in (("x", 0), ("y", 1)):
        if letter in axes and meta_resolution is not None and meta_resolution[index]:
            scale[axes.index(letter)] = 1.0 / meta_resolution[index]
            units[axes.index(letter)] = unit
    if "z" in axes and "spacing" in meta.imagej:
        scale[axes.index("z")] = float(meta.imagej["spacing"])
        units[axes.index("z")] = unit
    if "t" in axes and "finterval" in meta.imagej:
        scale[axes.index("t")] = float(meta.imagej["finterval"])
        units[axes.index("t")] = "second"
    return scale, units


def _zarr_target(path: Path, data, axes: str, like: Image | None, provenance: dict | None):
    import zarr

    data = data.rechunk(tuple(max(c) for c in data.chunks))
    attributes = dict(like.metadata) if like is not None and like.format == "zarr" else {}
    attributes["axes"] = axes
    if provenance is not None:
        attributes["napari_inpaint"] = provenance
    array = zarr.create_array(path, shape=data.shape, chunks=data.chunksize, dtype=data.dtype,
                              attributes=attributes, dimension_names=list(axes))
    return data, array


def _write_tiffs(folder: Path, outputs: list, data, axes, like, provenance, invented, progress, cancel):
    """The TIFF output (and the mask beside it): a lazy result is computed into zarr first, then streamed."""
    ome = _is_ome_tiff(outputs[0])
    if like is not None and like.format == "tiff":
        metadata = dataclasses.replace(like.metadata, axes=axes)
        if ome and metadata.kind == "plain":  # an .ome.tif name promises OME-XML
            metadata = dataclasses.replace(metadata, kind="ome", description=None)
    else:
        metadata = _tiff.TiffMetadata(kind="ome" if ome else "plain", axes=axes.upper())
    if metadata.kind == "imagej" and np.dtype(data.dtype).char not in "BHhf":  # what tifffile's ImageJ writer takes
        raise ValueError(
            f"an ImageJ hyperstack holds uint8, uint16, int16 or float32 pixels, not {data.dtype}: convert the data "
            "(e.g. data.astype(np.float32)), or write an .ome.tif or .ome.zarr file"
        )
    sources = [data] + ([] if invented is None else [_dask_or_numpy(invented)])
    lazy = [i for i, source in enumerate(sources) if not isinstance(source, np.ndarray)]
    targets = []
    for i in lazy:
        import zarr  # only for lazy data: in-memory TIFF outputs need no zarr

        array = _as_dask(sources[i], axes)
        array = array.rechunk(tuple(max(c) for c in array.chunks))
        stored = zarr.create_array(
            folder / f"computed-{i}.zarr", shape=array.shape, chunks=array.chunksize, dtype=array.dtype,
            compressors=None,
        )
        targets.append((array, stored))
        sources[i] = stored
    if targets:
        compute_into(targets, folder / MARKER, progress=progress, cancel=cancel)
    _tiff.write(folder / outputs[0].name, sources[0], metadata, provenance)
    if invented is not None:
        mask = sources[1]
        mask_axes = "".join(metadata.axes[i] for i in _mask_positions(metadata.axes, mask.ndim))
        kind = "imagej" if metadata.kind == "imagej" else "plain"
        beside = dataclasses.replace(metadata, kind=kind, axes=mask_axes, ome_xml=None, compression=8)
        _tiff.write(folder / outputs[1].name, _Scaled(mask), beside, provenance)
    for i in lazy:
        shutil.rmtree(folder / f"computed-{i}.zarr")


class _Scaled:
    """A mask read as 0/255 uint8, region by region."""

    def __init__(self, mask):
        self.mask, self.shape, self.ndim, self.dtype = mask, mask.shape, mask.ndim, np.dtype(np.uint8)
        self.size = int(np.prod(mask.shape))

    def __getitem__(self, region):
        return (np.asarray(self.mask[region]) != 0).astype(np.uint8) * np.uint8(255)

    def __array__(self, dtype=None, copy=None):
        return self[...]
