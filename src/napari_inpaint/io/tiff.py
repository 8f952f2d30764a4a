"""TIFF images with the metadata scientists rely on: read whole or lazily, written back in kind.

Kept from the input: the axes, the X/Y resolution and its unit, ImageJ
hyperstack metadata (axes, unit, z spacing, frame interval, labels, ranges,
LUTs, info, properties), the OME-XML (with a new UUID, the file name
updated and a ``MapAnnotation`` of the provenance), a plain TIFF's own
description and tifffile's JSON metadata, the photometric interpretation,
the compression and the tiling.  Provenance goes where each flavour's
readers show it: ImageJ's ``Info``, an OME ``MapAnnotation``, or the JSON
description (key ``napari_inpaint``); the Software tag names napari-inpaint.

Large images are read as dask arrays through tifffile's zarr store and
written from a zarr array strip by strip (tiles), so that no plane is held
whole.
"""

import contextlib
import json
import logging
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ImageJ metadata that tifffile derives from the data's shape and axes when writing.
_IMAGEJ_STRUCTURE = {"ImageJ", "images", "channels", "slices", "frames", "hyperstack", "axes"}
# Planes above this size are written in tiles read strip by strip, never whole.
_WHOLE_PLANE_BYTES = 64 * 2**20
_TILE = (512, 512)
_CHUNK = 2048


@dataclass
class TiffMetadata:
    """What a TIFF file says besides its pixels."""

    kind: str = "plain"  # "plain", "imagej" or "ome"
    axes: str = ""
    resolution: tuple[float, float] | None = None
    resolutionunit: int | None = None
    imagej: dict = field(default_factory=dict)
    ome_xml: str | None = None
    description: str | None = None  # a plain TIFF's own description
    shaped: dict = field(default_factory=dict)  # tifffile's JSON metadata
    photometric: int | None = None
    compression: int | None = None
    tile: tuple[int, ...] | None = None
    name: str | None = None  # the file's name (OME-XML refers to it)


def read(path: Path, lazy: bool):
    """``(array, TiffMetadata)`` of the first series of ``path``: a NumPy array, or a dask array.

    An ImageJ file whose description disagrees with its pages (``images=15``
    for 6 pages) is read as a plain stack of its pages, with a warning that
    names the fields: its ImageJ axes cannot be known, nor written back.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        with _without_imagej_complaint():
            series = tif.series[0]
        page = series.keyframe
        imagej = tif.is_imagej and series.kind == "imagej"
        if tif.is_imagej and not imagej:
            warnings.warn(_imagej_mismatch(path, tif.imagej_metadata or {}, len(tif.pages), series.axes),
                          UserWarning, stacklevel=3)
        metadata = TiffMetadata(
            kind="imagej" if imagej else "ome" if tif.is_ome else "plain",
            axes=series.axes,
            resolution=tuple(float(r) for r in page.resolution) if "XResolution" in page.tags else None,
            resolutionunit=int(page.resolutionunit) if "ResolutionUnit" in page.tags else None,
            imagej={k: v for k, v in (tif.imagej_metadata or {}).items() if imagej or k not in _IMAGEJ_STRUCTURE},
            ome_xml=tif.ome_metadata,
            description=_own_description(tif, page),
            shaped={k: v for k, v in (tif.shaped_metadata or ({},))[0].items() if k != "shape"},
            photometric=int(page.photometric),
            compression=int(page.compression),
            tile=tuple(page.tile) if page.is_tiled else None,
            name=Path(path).name,
        )
        if not lazy:
            return series.asarray(), metadata
    import dask.array as da
    import zarr

    stored = zarr.open(tifffile.imread(path, aszarr=True, series=0), mode="r")
    if isinstance(stored, zarr.Group):  # a pyramid: its first level is the full resolution
        stored = stored["0"]
    chunks = tuple(
        min(n, _CHUNK) if letter in "YX" else n if letter == "S" else 1
        for letter, n in zip(series.axes, stored.shape)
    )
    return da.from_zarr(stored, chunks=chunks), metadata


@contextlib.contextmanager
def _without_imagej_complaint() -> Iterator[None]:
    """Drop tifffile's log that an ImageJ description disagrees with the pages: :func:`read` warns instead."""
    logger = logging.getLogger("tifffile")
    complaint = logging.Filter()
    complaint.filter = lambda record: "ImageJ series metadata invalid" not in record.getMessage()
    logger.addFilter(complaint)
    try:
        yield
    finally:
        logger.removeFilter(complaint)


def _imagej_mismatch(path: Path, imagej: dict, pages: int, axes: str) -> str:
    """The warning for an ImageJ file read as a plain stack: which fields disagree with its pages."""
    fields = ", ".join(f"{key}={imagej[key]}" for key in ("images", "channels", "slices", "frames") if key in imagej)
    return (
        f"{path}: its ImageJ description says {fields or 'nothing of its size'} but the file holds {pages} "
        f"page{'' if pages == 1 else 's'}; "
        f"read as a plain stack of its pages (axes {axes}), and written back as such"
    )


def _own_description(tif, page) -> str | None:
    """A plain TIFF's own ImageDescription (not the JSON, ImageJ or OME one that tifffile makes)."""
    if tif.is_imagej or tif.is_ome:
        return None
    description = page.description
    if not description or (tif.is_shaped and description.lstrip().startswith("{")):
        return None
    return description


def write(path: Path, data, metadata: TiffMetadata, provenance: dict | None) -> None:
    """Write ``data`` (a NumPy or zarr array of ``metadata.axes``) to ``path`` with ``metadata``."""
    import tifffile

    axes = metadata.axes
    options = {
        "photometric": "rgb" if axes.endswith("S") and data.shape[-1] in (3, 4) else "minisblack",
        "software": f"napari-inpaint {_version()}",
        "bigtiff": data.size * data.dtype.itemsize > 2**31,
    }
    if metadata.resolution is not None:
        options["resolution"] = metadata.resolution
        if metadata.resolutionunit is not None:
            options["resolutionunit"] = metadata.resolutionunit
    if metadata.kind == "imagej":
        imagej = {k: v for k, v in metadata.imagej.items() if k not in _IMAGEJ_STRUCTURE}
        if provenance is not None:
            note = "napari-inpaint: " + json.dumps(provenance)
            imagej["Info"] = f"{imagej['Info']}\n{note}" if imagej.get("Info") else note
        options.update(imagej=True, metadata={**imagej, "axes": axes})
        tile = None  # ImageJ reads strips only
    else:
        if metadata.compression not in (None, 1):
            options["compression"] = metadata.compression
        plane = data.shape[-3:] if axes.endswith("S") else data.shape[-2:]
        large = np.prod(plane) * data.dtype.itemsize > _WHOLE_PLANE_BYTES
        tile = metadata.tile or (_TILE if large and not isinstance(data, np.ndarray) else None)
        if metadata.kind == "ome" and metadata.ome_xml:
            xml = _ome_xml(metadata.ome_xml, provenance, metadata.name, Path(path).name)
            options.update(description=xml.encode(), metadata=None)  # UTF-8, as OME-XML is
        else:
            shaped = {**metadata.shaped, "axes": axes}
            if provenance is not None:
                shaped["napari_inpaint"] = provenance
            options.update(metadata=shaped, description=metadata.description)
            if metadata.kind == "ome":  # tifffile writes the OME-XML; the provenance is annotated after
                options["ome"] = True
        if tile is not None:
            options["tile"] = tile[-2:]
    if isinstance(data, np.ndarray):
        tifffile.imwrite(path, data, **options)
    else:
        tifffile.imwrite(path, _pieces(data, axes, tile), shape=data.shape, dtype=data.dtype, **options)
    if options.get("ome") and provenance is not None:
        name = Path(path).name
        tifffile.tiffcomment(path, comment=_ome_xml(tifffile.tiffcomment(path), provenance, name, name).encode())


def _pieces(data, axes: str, tile):
    """The pages of ``data`` (or each page's tiles, read strip by strip), in the order TIFF stores them."""
    samples = axes.endswith("S")
    plane_ndim = 3 if samples else 2
    for page in np.ndindex(*data.shape[: data.ndim - plane_ndim]):
        if tile is None:
            yield np.asarray(data[page])
            continue
        height, width = data.shape[len(page) : len(page) + 2]
        rows, columns = tile[-2:]
        for top in range(0, height, rows):
            strip = np.asarray(data[(*page, slice(top, top + rows))])
            for left in range(0, width, columns):
                piece = strip[:, left : left + columns]
                padding = [(0, rows - piece.shape[0]), (0, columns - piece.shape[1])]
                yield np.pad(piece, padding + [(0, 0)] * (piece.ndim - 2))


def _ome_xml(xml: str, provenance: dict | None, old_name: str | None, new_name: str) -> str:
    """The input's OME-XML for the output file: a new UUID, its name, and the provenance annotation."""
    import io

    for _, (prefix, uri) in ET.iterparse(io.StringIO(xml), events=("start-ns",)):
        ET.register_namespace(prefix, uri)
    root = ET.fromstring(xml)
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)
    new_uuid = f"urn:uuid:{uuid.uuid4()}"
    old_uuid = root.get("UUID")
    root.set("UUID", new_uuid)
    for reference in root.iter(q("UUID")):
        if reference.get("FileName") == old_name or reference.text == old_uuid:
            reference.set("FileName", new_name)
            reference.text = new_uuid
    if provenance is not None:
        annotations = root.find(q("StructuredAnnotations"))
        if annotations is None:
            annotations = ET.Element(q("StructuredAnnotations"))
            rois = [i for i, child in enumerate(root) if child.tag == q("ROI")]
            root.insert(rois[0] if rois else len(root), annotations)
        identifier = f"Annotation:napari-inpaint:{uuid.uuid4().hex[:8]}"
        annotation = ET.SubElement(annotations, q("MapAnnotation"), ID=identifier, Namespace="napari-inpaint")
        values = ET.SubElement(annotation, q("Value"))
        for key, value in provenance.items():
            ET.SubElement(values, q("M"), K=key).text = value if isinstance(value, str) else json.dumps(value)
        for image in root.findall(q("Image")):
            ET.SubElement(image, q("AnnotationRef"), ID=identifier)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-inpaint")
    except PackageNotFoundError:
        return "unknown"


def by_path(path: Path, lazy):
    """``lazy`` (a TIFF read through tifffile's zarr store) as a dask array that reads the file by its path.

    tifffile's store holds an open file, which cannot travel to a cluster's
    workers; a :class:`Regions` is the file's path, and reopens the file
    where a chunk is read.
    """
    import dask.array as da
    from dask.base import tokenize

    status = path.stat()
    regions = Regions(str(path.resolve()), tuple(lazy.shape), np.dtype(lazy.dtype))
    name = "tiff-" + tokenize(regions.path, status.st_mtime_ns, status.st_size)
    return da.from_array(regions, chunks=lazy.chunks, name=name, meta=np.empty((0,) * lazy.ndim, lazy.dtype))


@dataclass(frozen=True)
class Regions:
    """The first series of a TIFF file, read region by region by its path (any process can read it)."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, region):
        import tifffile
        import zarr

        with tifffile.imread(self.path, aszarr=True, series=0) as store:
            stored = zarr.open(store, mode="r")
            if isinstance(stored, zarr.Group):  # a pyramid: its first level is the full resolution
                stored = stored["0"]
            return stored[region]
