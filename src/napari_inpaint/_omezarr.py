"""OME-Zarr images (NGFF 0.4 on zarr v2, 0.5 on zarr v3): read one level, write one with its pyramid.

Reading takes the multiscale image's highest resolution (or another level)
as a dask array with its axes and coordinate transformations.  Writing keeps
the input's axes, its levels' scale and translation, its ``omero`` rendering
settings and other attributes, and rebuilds the pyramid from the filled data
(the mean of each block of pixels, as the input's levels are sized); the
levels are returned as (dask array, zarr array) pairs that
:func:`napari_inpaint._store.compute_into` writes in one pass, so that
every crop is filled once for all the levels.  A mask of invented pixels is
written as the label image ``labels/invented`` (NGFF image-label).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERSIONS = ("0.4", "0.5")
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
# Levels are added to a new pyramid while the larger of its last two axes stays above this size.
_SMALLEST_LEVEL = 256
INVENTED = "invented"


@dataclass
class Multiscale:
    """The metadata of a multiscale image: what is kept when the image is written again."""

    axes: list[dict]
    transforms: list[list[dict]]  # coordinateTransformations of each level
    shapes: list[tuple[int, ...]]
    version: str = "0.5"
    name: str | None = None
    omero: dict | None = None
    attributes: dict = field(default_factory=dict)  # the group's other attributes


def is_ome_zarr(path: Path) -> bool:
    """Whether ``path`` is a zarr group holding a multiscale image."""
    return _multiscales(_attributes(Path(path))) is not None


def read(path: Path, level: int = 0):
    """``(dask array, Multiscale)`` of level ``level`` (0: the highest resolution) of an OME-Zarr image."""
    import dask.array as da
    import zarr

    path = Path(path)
    attributes = _attributes(path)
    found = _multiscales(attributes)
    if found is None:
        raise ValueError(f"{path} is not an OME-Zarr image (no multiscales metadata)")
    version, multiscales = found
    image = multiscales[0]
    datasets = image["datasets"]
    if not 0 <= level < len(datasets):
        raise ValueError(
            f"{path} has {len(datasets)} resolution levels (0 to {len(datasets) - 1}); got level={level}"
        )
    group = zarr.open_group(path, mode="r")
    arrays = [group[d["path"]] for d in datasets]
    ome = attributes.get("ome", attributes)
    kept = {k: v for k, v in attributes.items() if k not in ("ome", "multiscales", "omero", "napari_inpaint")}
    metadata = Multiscale(
        axes=[_axis(a) for a in image.get("axes", [])] or [{"name": n} for n in "tczyx"[-arrays[0].ndim :]],
        transforms=[_level_transforms(d, image) for d in datasets],
        shapes=[tuple(a.shape) for a in arrays],
        version=version,
        name=image.get("name"),
        omero=ome.get("omero"),
        attributes=kept,
    )
    return da.from_zarr(arrays[level]), metadata


def _attributes(path: Path) -> dict:
    import zarr

    try:
        return dict(zarr.open_group(path, mode="r").attrs)
    except (FileNotFoundError, ValueError, TypeError, zarr.errors.GroupNotFoundError):
        return {}


def _multiscales(attributes: dict) -> tuple[str, list] | None:
    if "ome" in attributes and "multiscales" in attributes["ome"]:
        return attributes["ome"].get("version", "0.5"), attributes["ome"]["multiscales"]
    if "multiscales" in attributes:
        return attributes["multiscales"][0].get("version", "0.4"), attributes["multiscales"]
    return None


def _axis(axis) -> dict:
    return {"name": axis} if isinstance(axis, str) else dict(axis)


def _level_transforms(dataset: dict, image: dict) -> list[dict]:
    """A level's scale and translation, with the image-wide transformations (if any) applied after.

    An image-wide scale scales the level's translation too (NGFF applies the
    transformations in order).  Transformations stored elsewhere (``path``)
    are kept as they are.
    """
    chain = [dict(t) for t in (*dataset.get("coordinateTransformations", []),
                               *image.get("coordinateTransformations", []))]
    if not image.get("coordinateTransformations") or any(t.get(t["type"]) is None for t in chain):
        return chain
    scale, translation = None, None
    for t in chain:
        if t["type"] == "scale":
            scale = t["scale"] if scale is None else [a * b for a, b in zip(scale, t["scale"])]
            translation = None if translation is None else [a * b for a, b in zip(translation, t["scale"])]
        elif t["type"] == "translation":
            shift = t["translation"]
            translation = shift if translation is None else [a + b for a, b in zip(translation, shift)]
    own = [{"type": "scale", "scale": scale}] if scale is not None else []
    return own + ([{"type": "translation", "translation": translation}] if translation is not None else [])


def new_multiscale(shape: tuple[int, ...], axes: str, scale=None, translation=None, units=None) -> Multiscale:
    """The metadata of a new pyramid for data of ``shape`` with ``axes`` (letters of 'tczyx').

    ``scale``, ``translation`` and ``units`` (one per axis, or None) are the
    highest resolution's; each new level halves the last two axes.
    """
    axes_list = []
    for i, name in enumerate(axes.lower()):
        axis = {"name": name}
        if name in AXIS_TYPES:
            axis["type"] = AXIS_TYPES[name]
        if units is not None and units[i]:
            axis["unit"] = units[i]
        axes_list.append(axis)
    scale = [float(s) for s in (scale if scale is not None else [1.0] * len(shape))]
    translation = None if translation is None else [float(t) for t in translation]
    shapes, transforms = [tuple(shape)], []
    while max(shapes[-1][-2:]) // 2 >= _SMALLEST_LEVEL and len(shapes) < 10:
        shapes.append(shapes[-1][:-2] + tuple(max(1, n // 2) for n in shapes[-1][-2:]))
    for level in range(len(shapes)):
        factor = [1] * (len(shape) - 2) + [2**level] * 2
        level_transforms = [{"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]}]
        if translation is not None:
            level_transforms.append({"type": "translation", "translation": translation})
        transforms.append(level_transforms)
    return Multiscale(axes_list, transforms, shapes)


def write(path: Path, data, like: Multiscale, *, provenance: dict | None, invented=None) -> list:
    """Create the OME-Zarr image at ``path``; return the ``(dask array, zarr array)`` pairs to compute.

    ``data`` (a dask array of ``like.shapes[0]``) is level 0; the other levels
    of ``like`` are rebuilt from it.  ``invented`` (a dask array of bool, the
    data's shape, or without its channel axis) becomes ``labels/invented``.
    """
    import zarr

    if tuple(data.shape) != tuple(like.shapes[0]):
        raise ValueError(f"the data's shape {data.shape} differs from the image's {like.shapes[0]}")
    version = like.version if like.version in VERSIONS else "0.5"
    group = zarr.open_group(path, mode="a", zarr_format=3 if version == "0.5" else 2)
    attributes = dict(like.attributes)
    if provenance is not None:
        attributes["napari_inpaint"] = provenance
    targets = _levels(group, data, like, version, np.mean)
    attributes.update(_ngff(like, version, "mean", extra={"omero": like.omero} if like.omero else {}))
    group.attrs.update(attributes)
    if invented is not None:
        labels = group.create_group("labels")
        labels.attrs.update(_wrap({"labels": [INVENTED]}, version))
        image = labels.create_group(INVENTED)
        channel = next((i for i, a in enumerate(like.axes) if a.get("type") == "channel"), None)
        if invented.ndim < data.ndim and channel is not None:
            invented = invented[(slice(None),) * channel + (None,)]
        label_like = Multiscale(like.axes, like.transforms, list(like.shapes), version, INVENTED)
        if channel is not None:  # one channel, or the data's channels when the mask has them
            label_like.shapes = [s[:channel] + invented.shape[channel : channel + 1] + s[channel + 1 :]
                                 for s in like.shapes]
        invented = invented.astype(np.uint8).rechunk(_chunks(data, label_like.shapes[0]))
        targets += _levels(image, invented, label_like, version, np.max)
        colours = [{"label-value": 1, "rgba": [255, 0, 255, 255]}]
        extra = {"image-label": {"version": version, "colors": colours, "source": {"image": "../../"}}}
        image.attrs.update(_ngff(label_like, version, "max", extra=extra))
    return targets


def _levels(group, data, like: Multiscale, version: str, reduce) -> list:
    """Create the arrays of every level; return (dask array, zarr array) pairs, level 0 first."""
    import dask.array as da

    chunks = tuple(max(c) for c in data.chunks)
    names = [a["name"] for a in like.axes]
    level = data.rechunk(chunks)
    targets = []
    for index, shape in enumerate(like.shapes):
        if index:
            previous = like.shapes[index - 1]
            factors = {a: max(1, round(p / n)) for a, (p, n) in enumerate(zip(previous, shape)) if p != n}
            # A level rounded up (5 pixels to 3) takes its last block from the edge pixels repeated.
            short = [(0, max(0, shape[a] * factors.get(a, 1) - n)) for a, n in enumerate(level.shape)]
            if any(after for _, after in short):
                level = da.pad(level, short, mode="edge")
            even = {a: max(f, level.chunksize[a] // f * f) for a, f in factors.items()}
            level = da.coarsen(reduce, level.rechunk(even), factors, trim_excess=True)
            level = level[tuple(slice(0, n) for n in shape)]
            if reduce is np.mean and np.issubdtype(data.dtype, np.integer):
                level = da.round(level)
            level = level.astype(data.dtype).rechunk(tuple(min(c, n) for c, n in zip(chunks, level.shape)))
        options = {"dimension_names": names} if version == "0.5" else {
            "chunk_key_encoding": {"name": "v2", "separator": "/"}
        }
        array = group.create_array(
            str(index), shape=level.shape, chunks=level.chunksize, dtype=level.dtype, **options
        )
        targets.append((level, array))
    return targets


def _chunks(data, shape) -> tuple[int, ...]:
    return tuple(min(max(c), n) for c, n in zip(data.chunks, shape))


def _ngff(like: Multiscale, version: str, kind: str, extra: dict) -> dict:
    image = {
        "axes": like.axes,
        "datasets": [{"path": str(i), "coordinateTransformations": t} for i, t in enumerate(like.transforms)],
        "type": kind,
        "metadata": {"description": f"levels rebuilt by napari-inpaint ({kind} of each block of pixels)"},
    }
    if like.name:
        image["name"] = like.name
    if version == "0.4":
        image["version"] = version
    return _wrap({"multiscales": [image], **extra}, version)


def _wrap(attributes: dict, version: str) -> dict:
    """NGFF 0.5 keeps its attributes under "ome" (with the version), 0.4 at the top."""
    return {"ome": {"version": version, **attributes}} if version == "0.5" else attributes
