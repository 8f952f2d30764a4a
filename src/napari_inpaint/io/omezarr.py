"""OME-Zarr images (NGFF 0.4 on zarr v2, 0.5 on zarr v3): read one level, write one with its pyramid.

Reading takes the multiscale image's highest resolution (or another level)
as a dask array with its axes and coordinate transformations.  Writing keeps
the input's axes, its levels' scale and translation, its ``omero`` rendering
settings and other attributes, and rebuilds the pyramid from the filled data
(the mean of each block of pixels, as the input's levels are sized); the
levels are returned as (dask array, zarr array) pairs that
:func:`napari_inpaint.io.store.compute_into` writes in one pass, so that
every crop is filled once for all the levels.  A mask of invented pixels is
written as the label image ``labels/invented`` (NGFF image-label).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_inpaint.io.chunks import from_zarr

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
    """Whether ``path`` is a zarr group holding a multiscale image (well-formed or not: :func:`read` checks)."""
    return _multiscales(_attributes(Path(path))) is not None


def read(path: Path, level: int = 0):
    """``(dask array, Multiscale)`` of level ``level`` (0: the highest resolution) of an OME-Zarr image.

    The metadata are checked first: a malformed field raises a ValueError
    that names it (``multiscales[0].axes``, ``multiscales[0].datasets[1].path``...).
    """
    import zarr

    path = Path(path)
    attributes = _attributes(path)
    found = _multiscales(attributes)
    if found is None:
        raise ValueError(f"{path} is not an OME-Zarr image (no multiscales metadata)")
    version, multiscales, field = found
    image = _checked_image(path, multiscales, field)
    field += "[0]"
    datasets = image["datasets"]
    if not 0 <= level < len(datasets):
        raise ValueError(
            f"{path} has {len(datasets)} resolution levels (0 to {len(datasets) - 1}); got level={level}"
        )
    arrays = _level_arrays(path, zarr.open_group(path, mode="r"), datasets, field)
    ndim = arrays[0].ndim
    axes = _checked_axes(path, image.get("axes"), arrays[0].shape, f"{field}.axes")
    for i, dataset in enumerate(datasets):
        _check_transforms(path, dataset.get("coordinateTransformations"), ndim,
                          f"{field}.datasets[{i}].coordinateTransformations")
    _check_transforms(path, image.get("coordinateTransformations"), ndim, f"{field}.coordinateTransformations")
    ome = attributes.get("ome", attributes)
    kept = {k: v for k, v in attributes.items() if k not in ("ome", "multiscales", "omero", "napari_inpaint")}
    metadata = Multiscale(
        axes=axes or [{"name": n} for n in "tczyx"[-ndim:]],
        transforms=[_level_transforms(d, image) for d in datasets],
        shapes=[tuple(a.shape) for a in arrays],
        version=version,
        name=image.get("name"),
        omero=ome.get("omero"),
        attributes=kept,
    )
    return from_zarr(arrays[level], path, f"{datasets[level]['path']}/"), metadata


def _attributes(path: Path) -> dict:
    import zarr

    try:
        return dict(zarr.open_group(path, mode="r").attrs)
    except (FileNotFoundError, ValueError, TypeError, zarr.errors.GroupNotFoundError):
        return {}


def _multiscales(attributes: dict) -> tuple[str, object, str] | None:
    """The NGFF version, the ``multiscales`` field (unchecked) and its name in the attributes; or None."""
    ome = attributes.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        return str(ome.get("version", "0.5")), ome["multiscales"], "ome.multiscales"
    if "multiscales" in attributes:
        found = attributes["multiscales"]
        first = found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else {}
        return str(first.get("version", "0.4")), found, "multiscales"
    return None


def _malformed(path: Path, field: str, problem: str) -> ValueError:
    return ValueError(f"cannot read {path}: its OME-Zarr metadata are malformed: {field} {problem}")


def _checked_image(path: Path, multiscales, field: str) -> dict:
    """The first image of ``multiscales``, with a non-empty list of datasets that each have a path."""
    if not isinstance(multiscales, list) or not multiscales:
        got = f"a {type(multiscales).__name__}" if not isinstance(multiscales, list) else "an empty list"
        raise _malformed(path, field, f"must be a list of images, got {got}")
    image = multiscales[0]
    if not isinstance(image, dict):
        raise _malformed(path, f"{field}[0]", f"must be an object, got {type(image).__name__}")
    datasets = image.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _malformed(path, f"{field}[0].datasets", "must be a non-empty list of resolution levels")
    for i, dataset in enumerate(datasets):
        if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
            raise _malformed(path, f"{field}[0].datasets[{i}].path", "is missing (the level's array)")
    return image


def _level_arrays(path: Path, group, datasets: list[dict], field: str) -> list:
    """The zarr array of each level, which must exist and have the first level's number of axes."""
    import zarr

    arrays = []
    for i, dataset in enumerate(datasets):
        try:
            array = group[dataset["path"]]
        except KeyError:
            array = None
        if not isinstance(array, zarr.Array):
            raise _malformed(path, f"{field}.datasets[{i}].path", f"{dataset['path']!r} names no array in the image")
        if arrays and array.ndim != arrays[0].ndim:
            raise _malformed(path, f"{field}.datasets[{i}]", f"({dataset['path']!r}) has {array.ndim} axes and "
                             f"level 0 has {arrays[0].ndim}")
        arrays.append(array)
    return arrays


def _checked_axes(path: Path, axes, shape: tuple[int, ...], field: str) -> list[dict]:
    """The axes (one named axis per dimension of the data), or [] when the image gives none (NGFF 0.3)."""
    if axes is None:
        return []
    if not isinstance(axes, list):
        raise _malformed(path, field, f"must be a list of axes, got {type(axes).__name__}")
    named = [_axis(axis) if isinstance(axis, (str, dict)) else {} for axis in axes]
    for i, axis in enumerate(named):
        if not isinstance(axis.get("name"), str) or not axis["name"]:
            raise _malformed(path, f"{field}[{i}]", "has no name")
    if len(named) != len(shape):
        names = "".join(axis["name"] for axis in named)
        raise _malformed(path, field, f"names {len(named)} axes ({names!r}) but the data have {len(shape)} "
                         f"(shape {tuple(shape)})")
    return named


def _check_transforms(path: Path, transforms, ndim: int, field: str) -> None:
    """Refuse coordinateTransformations that are not a list of typed transformations, one value per axis."""
    if transforms is None:
        return
    if not isinstance(transforms, list):
        raise _malformed(path, field, f"must be a list of transformations, got {type(transforms).__name__}")
    for i, transform in enumerate(transforms):
        kind = transform.get("type") if isinstance(transform, dict) else None
        if not isinstance(kind, str):
            raise _malformed(path, f"{field}[{i}].type", "is missing")
        if kind not in ("scale", "translation") or "path" in transform:
            continue  # identity, or values stored in an array: kept as they are
        values = transform.get(kind)
        numbers = isinstance(values, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        )
        if not numbers or len(values) != ndim:
            raise _malformed(path, f"{field}[{i}].{kind}", f"must be a list of {ndim} numbers (one per axis), "
                             f"got {values!r}")


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
