"""One unit of a fill: a crop of a group of planes, what it reads, and the one function that fills it.

Both executors run the same units (:func:`plan_units`) through the same
:func:`fill_unit`: they differ only in how a unit's inputs are read (NumPy
slices, or the tasks of a dask graph; :func:`unit_reads` names the regions)
and where its values go (into the result array, or into the blocks of a lazy
result).  A unit reads, for each of its planes, the window of its crop (grown
by the registration margin when the fill has a reference), the mask there,
and its reference data: the reference image's window, or the windows of the
neighbouring planes (``reference="adjacent"``, up to
:data:`~napari_inpaint.engine.reference._ADJACENT_REACH` on each side).

Methods see values of order one: each crop is divided by a power of two
(exact in floating point), so fills of ordinary data are unchanged while
values near 1e300 (or 1e-300) no longer overflow (underflow).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_inpaint.engine.calibration import SCALE_MARGIN, Calibration
from napari_inpaint.engine.noise import noise_sigma, poisson
from napari_inpaint.engine.planning import Window, plan
from napari_inpaint.engine.reference import _ADJACENT_REACH, _REGISTRATION_MARGIN, ADJACENT, References


@dataclass(frozen=True)
class Unit:
    """One call of a method's fill: a window (crop) of a group of planes that share a mask.

    ``number`` counts the units of a run from 1, in the order of the plan.
    """

    number: int
    planes: tuple[tuple[int, ...], ...]
    window: Window

    def where(self, batch_ndim: int) -> str:
        """`` (plane 3, 1)`` for a unit of one plane of a stack, for the status line."""
        if not batch_ndim or len(self.planes) != 1:
            return ""
        return f" (plane {', '.join(map(str, self.planes[0]))})"


def plan_units(job, *, cell=None, apart: Callable[[tuple], object] | None = None) -> list[Unit]:
    """The units of ``job``: each group of planes sharing a mask, window by window (see ``planning.plan``).

    ``cell`` and ``apart`` as for :func:`napari_inpaint.engine.planning.plan`.
    """
    entries = plan(job.mask, job.batch_shape, job.spatial_shape, job.method, job.margin, job.channels,
                   cell=cell, apart=apart)  # fmt: skip
    pairs = itertools.chain.from_iterable(itertools.product(groups, windows) for windows, groups in entries)
    return [
        Unit(number, tuple(tuple(int(i) for i in p) for p in group.planes), window)
        for number, (group, window) in enumerate(pairs, start=1)
    ]


@dataclass(frozen=True)
class Reads:
    """The regions a unit reads, each a tuple of slices (or indices) of the array it names.

    ``images``: per plane, of the image (every axis, its own order);
    ``mask``: of the mask grid (batch and spatial axes), for the group's
    first plane (the planes share their mask); ``references``: per plane, of
    the reference broadcast to the image's shape (a reference array); or
    ``neighbours``: per plane, the image and mask grid regions of the planes
    around it on the stack axis, itself included, and its index among them
    (``reference="adjacent"``).  ``outer`` is the spatial box read; the
    crop's box lies in it at ``inner``.
    """

    outer: tuple[slice, ...]
    inner: tuple[slice, ...]
    images: list[tuple]
    mask: tuple
    references: list[tuple] | None = None
    neighbours: list[tuple[list[tuple], list[tuple], int]] | None = None


def unit_reads(job, unit: Unit) -> Reads:
    """What ``unit`` of ``job`` reads."""
    # Around the crop: room to register its reference, or to measure the spread of the known pixels
    # (its uncertainty); the fill itself sees the crop only, so these never change it.
    margin = _REGISTRATION_MARGIN if job.reference is not None else SCALE_MARGIN if job.uncertainty else 0
    box = unit.window.box
    outer = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, job.spatial_shape))
    inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer))
    images = [image_region(job, plane, outer) for plane in unit.planes]
    mask = (*plane_slices(unit.planes[0]), *outer)
    references = neighbours = None
    if isinstance(job.reference, str):
        neighbours = []
        for plane in unit.planes:
            *stack, index = plane
            length = job.batch_shape[-1]
            around = range(max(0, index - _ADJACENT_REACH), min(length, index + _ADJACENT_REACH + 1))
            planes = [(*stack, other) for other in around]
            neighbours.append((
                [image_region(job, p, outer) for p in planes],
                [(*plane_slices(p), *outer) for p in planes],
                index - around.start,
            ))
    elif job.reference is not None:
        references = images
    return Reads(outer, inner, images, mask, references, neighbours)


def image_region(job, plane: tuple, spatial: tuple[slice, ...]) -> tuple[slice, ...]:
    """The region of the image (every channel) of a spatial box in one plane."""
    region = [slice(None)] * len(job.image.shape)
    for axis, index in zip(job.grid_axes, (*plane_slices(plane), *spatial)):
        region[axis] = index
    return tuple(region)


def plane_slices(plane: tuple) -> tuple[slice, ...]:
    return tuple(slice(i, i + 1) for i in plane)


def read_unit(reads: Reads, read: Callable[[str, tuple], object]) -> dict:
    """The arrays at ``reads``' regions: ``read(name, region)`` reads a region of the ``"image"``, the
    ``"mask"`` (its grid) or the ``"reference"`` (broadcast to the image), as a NumPy slice or a graph's task."""
    data = {"images": [read("image", r) for r in reads.images], "mask": read("mask", reads.mask)}
    if reads.references is not None:
        data["references"] = [read("reference", r) for r in reads.references]
    if reads.neighbours is not None:
        data["neighbours"] = [  # lists, not tuples: a graph computes the tasks in lists only
            [[read("image", r) for r in images], [read("mask", r) for r in masks], own]
            for images, masks, own in reads.neighbours
        ]
    return data


def reference_of(job, unit: Unit, read: Callable[[str, tuple], object], check: Callable[[], None]) -> np.ndarray:
    """The aligned, complete reference of the box of ``unit``'s (first) plane, its regions read with ``read``."""
    reads = unit_reads(job, unit)
    data = read_unit(reads, read)
    planes, mask = _arrays(job, reads, data)
    return _reference(job, 0, planes, mask, data, reads, check)


def _arrays(job, reads: Reads, data: dict) -> tuple[list[np.ndarray], np.ndarray]:
    """The unit's planes (channels last, each of ``reads.outer``'s shape) and its mask there."""
    shape = tuple(s.stop - s.start for s in reads.outer)
    planes = [job.channels_last(np.asarray(values)).reshape((*shape, -1)) for values in data["images"]]
    mask = np.broadcast_to(np.asarray(data["mask"], bool).reshape((-1, *shape))[0], shape)
    return planes, mask


def fill_in_memory(job, units: list[Unit], prepared, hooks, calibration: Calibration | None = None):
    """Fill ``units`` of ``job`` (a NumPy image) one after the other into a copy of its image.

    Returns the filled image and, with a ``calibration``, the sigma of its
    pixels (float32, 0 on known pixels; else None).
    """
    output = np.array(job.image, copy=True)
    sigma = np.zeros(job.image.shape, np.float32) if calibration is not None else None
    written = job.channels_last(output)  # views: writing into them writes the results
    spread = None if sigma is None else job.channels_last(sigma)
    source = job.channels_last(job.image)
    mask = job.mask_grid
    arrays = {"image": job.image, "mask": mask, "reference": job.reference_array}
    limits: dict[tuple, tuple] = {}  # each plane's known range, computed when a unit of it is clipped first
    for unit in units:
        hooks.check()
        if job.clip:
            for plane in set(unit.planes) - set(limits):
                limits[plane] = known_range(source[plane], mask[plane])
        reads = unit_reads(job, unit)
        data = read_unit(reads, lambda name, region: arrays[name][region])
        filled = fill_unit(
            job, unit, reads, data, [limits[p] for p in unit.planes] if job.clip else None, prepared, hooks,
            calibration,
        )
        for plane, coordinates, values, sigmas in filled:
            written[plane][coordinates] = values
            if spread is not None:
                spread[plane][coordinates] = sigmas
    return output, sigma


def fill_unit(job, unit: Unit, reads: Reads, data: dict, limits: list | None, prepared, hooks,
              calibration: Calibration | None = None) -> list:
    """Fill ``unit`` from the values it read; return ``[(plane, coordinates, values, sigma)]`` of its holes.

    ``data`` holds the arrays read at ``reads``' regions, under the same
    names (``images``, ``mask``, ``references``, ``neighbours``: for each
    plane the images and masks of its neighbours); ``limits`` the known
    range of each plane (per channel) when fills are clipped; ``prepared``
    the preparation's result.  ``values`` are in the image's dtype, one row
    per hole pixel (channels last), ``coordinates`` the hole pixels' spatial
    indices in the plane; ``sigma`` (float32, like ``values``) their
    uncertainty from ``calibration``, None without one.
    """
    hooks.check()
    hooks.started(unit.number, unit.where(len(job.batch_shape)))
    planes, mask = _arrays(job, reads, data)
    for values in planes:
        check_known_finite(values, mask)
    holes = unit.window.holes(mask[reads.inner], job.spatial_shape)
    box = reads.inner
    work = np.concatenate([values[box] for values in planes], axis=-1, dtype=np.float64)
    crop_mask = mask[box]
    # copyto and flat indices: boolean indexing of an nD array is about 8 times slower (a 512² crop: 0.9 ms)
    np.copyto(work, 0.0, where=crop_mask[..., np.newaxis])
    filled_at = np.flatnonzero(holes)
    scale = _power_of_two_scale(work)
    work /= scale
    reference = None
    if data.get("references") is not None or data.get("neighbours") is not None:
        reference = np.concatenate(
            [_reference(job, index, planes, mask, data, reads, hooks.check) for index in range(len(planes))], axis=-1
        ) / scale
    spec = job.method
    supplied = {"prepared": prepared, "reference": reference, "scale": scale, "spread": calibration is not None}
    if "rng" in spec.engine_keywords:
        supplied["rng"] = _rng(job.seed, unit.planes[0], unit.window)

    def fill(check: Callable[[], None], progress: Callable | None) -> np.ndarray:
        keywords = {**supplied, "check": check, "progress": progress}
        return spec.fill(work, crop_mask, **job.fill_params, **{k: keywords[k] for k in spec.engine_keywords})

    filled = hooks.call(fill, hooks.within(unit.number))
    own = None
    if supplied["spread"] and "spread" in spec.engine_keywords:  # the fill's own std, in the crop's units
        filled, own = filled
        own = np.asarray(own, dtype=np.float64) * scale
    values = np.asarray(filled, dtype=np.float64).reshape(-1, work.shape[-1])[filled_at]
    if not np.isfinite(values).all():
        raise RuntimeError(f"method {spec.name!r} produced non-finite values; please report this as a bug")
    values *= scale
    dtype = np.asarray(data["images"][0]).dtype
    channels = planes[0].shape[-1]
    coordinates = tuple(w + b.start for w, b in zip(np.unravel_index(filled_at, holes.shape), unit.window.box))
    if job.noise is None:  # every plane at once: the planes are the columns of ``values``
        values = _finish(values, None, crop_mask, _stacked(limits), None, None, dtype)
    else:  # each plane its own noise, drawn as whichever executor or grouping fills it
        values = np.concatenate([
            _finish(values[:, columns], work[..., columns] * scale, crop_mask, None if limits is None else limits[i],
                    job.noise, _rng(job.seed, plane, unit.window, noise=True), dtype)
            for i, (plane, columns) in enumerate(zip(unit.planes, _columns(len(unit.planes), channels)))
        ], axis=1)
    sigma = None
    if calibration is not None:  # from the known pixels around the crop, grown by ``SCALE_MARGIN``
        known = np.concatenate(planes, axis=-1, dtype=np.float64)
        if own is not None:  # the crop's std in the read box, as the scale there
            own = np.pad(own, [(b.start, n - b.stop) for b, n in zip(box, mask.shape)] + [(0, 0)])
        spread = calibration.sigma(known, mask, own)[box]
        sigma = spread.reshape(-1, spread.shape[-1])[filled_at]
        ranges = _stacked(limits)
        if ranges is not None:  # a fill within the known range errs within an interval that wide: std <= half
            sigma = np.minimum(sigma, (ranges[1].astype(np.float64) - ranges[0].astype(np.float64)) / 2)
        sigma = sigma.astype(np.float32)
    hooks.finished(unit.number)
    return [
        (plane, coordinates, values[:, columns], None if sigma is None else sigma[:, columns])
        for plane, columns in zip(unit.planes, _columns(len(unit.planes), channels))
    ]


def _columns(planes: int, channels: int) -> list[slice]:
    """The columns of each plane in a unit's values (its planes stacked as channels)."""
    return [slice(i * channels, (i + 1) * channels) for i in range(planes)]


def _stacked(limits: list | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The known ranges of a unit's planes as one (low, high) over their stacked channels (None: no clip)."""
    if limits is None or any(limit is None for limit in limits):
        return None  # a plane without known pixels has no range: a hole spans it whole, and nothing is clipped
    return np.concatenate([low for low, _ in limits]), np.concatenate([high for _, high in limits])


def _reference(job, index: int, planes: list, mask: np.ndarray, data: dict, reads: Reads, check) -> np.ndarray:
    """The aligned, complete reference of the crop of the unit's plane ``index`` (float64, crop + (C,))."""
    if data.get("neighbours") is None:
        source = job.channels_last(np.asarray(data["references"][index])).reshape(planes[index].shape)
        references = References(source[np.newaxis], planes[index][np.newaxis], mask, 1, job.align, check)
        return references.of((0,), reads.inner)
    images, masks, own = data["neighbours"][index]
    stack = np.stack([job.channels_last(np.asarray(i)).reshape(planes[index].shape) for i in images])
    known = np.stack([np.broadcast_to(np.asarray(m, bool).reshape((-1, *mask.shape))[0], mask.shape) for m in masks])
    references = References(ADJACENT, stack, known, 1, job.align, check)
    return references.of((own,), reads.inner)


def _finish(values, work, crop_mask, limits, noise, rng: np.random.Generator, dtype) -> np.ndarray:
    """A plane's fill as stored: clipped to the plane's known range, with noise, in the image's dtype."""
    if limits is not None:
        values = np.clip(values, *limits)
    if noise == "gaussian":
        values = values + rng.standard_normal(values.shape) * noise_sigma(work, crop_mask)
    elif noise == "poisson":
        values = poisson(values, rng)
    values = _to_dtype(values, dtype)
    if limits is not None and noise is None:
        # float64 rounds integers beyond 2**53: clip once more in the image's own dtype, exactly.
        values = np.clip(values, *limits)
    return values


def _rng(seed: int, plane: tuple, window: Window, noise: bool = False) -> np.random.Generator:
    """The generator of a plane's crop: the same draws whichever executor, grouping or order fills it."""
    return np.random.default_rng([seed, int(noise), *plane, *(s.start for s in window.box)])


def known_range(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (min, max) of the known pixels of a plane (channels last), read in strips.

    None when no pixel is known; the known pixels must be finite.
    """
    # Strips of about 1 MiB: those without a hole take the fast path below, so a few small holes cost their strips.
    rows = max(1, 2**20 // max(1, values[0].nbytes))
    return combine_extrema([
        extrema_of(values[start : start + rows], mask[start : start + rows])
        for start in range(0, values.shape[0], rows)
    ])


def extrema_of(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (min, max) of the known pixels of ``values`` (channels last), None when none is known."""
    mask = np.asarray(mask, bool)
    check_known_finite(values, mask)
    known = ~mask
    if not known.any():
        return None
    if known.all():  # plain reductions: one small hole in an 8192² uint16 image, 12 ms for all strips against 106
        leading = tuple(range(values.ndim - 1))
        return values.min(axis=leading), values.max(axis=leading)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        low, high = values.dtype.type(info.min), values.dtype.type(info.max)
    else:
        low, high = values.dtype.type(-np.inf), values.dtype.type(np.inf)
    # Channel by channel, the hole pixels replaced by a neutral value: whole-array reductions that are
    # about 10 times faster than reductions with ``where=`` across the channel axis (a strip-sized temporary).
    channels = range(values.shape[-1])
    lows = [np.where(known, values[..., c], high).min() for c in channels]
    highs = [np.where(known, values[..., c], low).max() for c in channels]
    return np.array(lows, values.dtype), np.array(highs, values.dtype)


def combine_extrema(extrema: list) -> tuple[np.ndarray, np.ndarray] | None:
    present = [e for e in extrema if e is not None]
    if not present:
        return None
    return np.min([e[0] for e in present], axis=0), np.max([e[1] for e in present], axis=0)


def check_known_finite(values: np.ndarray, mask: np.ndarray) -> None:
    """Refuse NaN or infinite known pixels (``values`` channels last, ``mask`` of their grid)."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = ~np.isfinite(values).all(axis=-1) & ~np.broadcast_to(mask, values.shape[:-1])
    if bad.any():
        raise ValueError(
            f"the image has {int(bad.sum())} NaN or infinite pixels outside the mask; add them to the "
            "mask (for example mask = mask | ~np.isfinite(image)) so that they are filled too"
        )


def _power_of_two_scale(work: np.ndarray) -> float:
    """The power of two that brings the largest magnitude in ``work`` into [1, 2) (1 when all are zero)."""
    largest = max(-float(work.min(initial=0.0)), float(work.max(initial=0.0)))
    return 1.0 if largest == 0.0 else float(np.ldexp(1.0, np.frexp(largest)[1] - 1))


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float64 fills into ``dtype`` without wrapping around."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # float(2**63 - 1) rounds up to 2**63, which no longer fits: clip to the largest float that does.
        high = float(info.max) if float(info.max) <= info.max else np.nextafter(float(info.max), 0.0)
        return np.clip(np.rint(values), float(info.min), high).astype(dtype)
    info = np.finfo(dtype)
    return np.clip(values, float(info.min), float(info.max)).astype(dtype)
