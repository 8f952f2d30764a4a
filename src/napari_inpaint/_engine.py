"""The one inpainting engine behind every front end.

:func:`inpaint` validates the input, converts dtypes, iterates over the planes
or volumes of a stack, crops each hole with the context its method needs,
calls the method's fill function on the crop, composites only the masked
pixels back, optionally matches noise, and reports progress.  Methods (see
:mod:`napari_inpaint._registry`) only ever see one float64 crop.
"""

import itertools
import numbers
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint._layout import as_bool_mask, layout
from napari_inpaint._lazy import inpaint_dask
from napari_inpaint._registry import Method
from napari_inpaint.methods import get_method

# Holes smaller than a tile are packed together per tile so that thousands of
# hot pixels cost a few calls, not thousands.
_TILE = {2: 256, 3: 64}
# Planes that share a mask are filled together by channel-independent methods;
# this bounds the float64 working copy of such a batch.
_BATCH_BYTES = 64 * 2**20
# Noise statistics need a ring of known pixels wider than most methods' margin.
_NOISE_MARGIN = 8
NOISE_MODELS = ("gaussian", "poisson")
# Above this mean, Poisson noise is drawn from its normal limit (numpy refuses means near 1e19;
# the relative error of the approximation is below 1e-4 here).
_POISSON_NORMAL_LIMIT = 1e8
# How often a waiting caller looks at its cancel event while a fill runs in its worker thread (s).
_CANCEL_POLL = 0.05


class InpaintCancelled(Exception):
    """Raised by :func:`inpaint` when its ``cancel`` event is set."""


@dataclass
class _Crop:
    """One call of a fill function: a box and the holes it composites."""

    box: tuple[slice, ...]
    holes: np.ndarray  # bool, box-shaped: the pixels this crop fills


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    method: str = "biharmonic",
    *,
    channel_axis: int | None = None,
    spatial_ndim: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    noise: str | None = None,
    seed: int = 0,
    clip: bool = True,
    **params,
) -> np.ndarray:
    """Fill the masked pixels of an image; every other pixel is returned unchanged.

    Parameters
    ----------
    image : array_like
        2D image, 3D volume or an nD stack of them, with an optional channel
        axis; any integer or floating dtype.  A NumPy array, or an array-like
        read plane by plane (zarr); a dask array returns a lazy dask array.
    mask : array_like of bool
        True (nonzero) where pixels are bad.  Either the image's shape without
        its channel axis, or the shape of its trailing spatial axes (one mask
        for every plane of a stack), or anything that broadcasts to it.
    method : str
        Name of a method from :func:`napari_inpaint.list_methods`.
    channel_axis : int, optional
        Axis of ``image`` holding channels.  When None, a last axis of length
        3 or 4 that the mask does not have is taken as RGB(A) channels; when
        the mask would fit either way (image (4, 4, 4), mask (4, 4)), a
        ValueError asks for ``channel_axis`` or a mask of the image's shape.
    spatial_ndim : {2, 3}
        2 fills each 2D plane of a stack separately; 3 fills 3D volumes (for
        methods that support it).
    progress : callable, optional
        ``progress(done, total)`` is called as work units (holes, planes)
        finish; iterative methods also report within a unit, where ``done``
        is fractional.  An exception raised from it stops the work and
        propagates.
    cancel : threading.Event, optional
        When set, :class:`InpaintCancelled` is raised within a fraction of a
        second, even during one long solve: each fill then runs in a worker
        thread that is abandoned on cancel (and stops at its method's next
        check).  Progress is still reported on the calling thread.
    noise : {None, 'gaussian', 'poisson'}
        Add noise to the filled pixels so that they are not conspicuously
        smooth: Gaussian with the standard deviation of the surrounding known
        pixels, or Poisson (photon counts) with the fill as mean.
    seed : int or None
        Seed (a non-negative integer) for noise and stochastic methods;
        results are deterministic.  None draws a fresh seed from the
        operating system.
    clip : bool
        Keep fills within the range of the known pixels of their plane (per
        channel), as scikit-image does: smooth fills can overshoot near
        edges.  Set False to let a fill extrapolate, e.g. the peak under a
        saturated blob.
    **params
        Parameters of the method (see ``get_method(method).params``).

    Returns
    -------
    ndarray
        A new array with the shape and dtype of ``image``.  Integer results are
        rounded and clipped to the dtype's range.

    Raises
    ------
    ValueError, TypeError
        For input that cannot be inpainted, with a message saying what to fix.
        Integer images hold at most 64 bits: their fills are computed in
        float64 (53-bit mantissa), so fills of int64/uint64 images beyond
        2**53 are rounded to float64's precision, and never wrap.
    InpaintCancelled
        When ``cancel`` was set during the run.

    Notes
    -----
    Each connected hole is filled in a crop extending ``margin`` pixels
    beyond it (the margin is declared by the method), so the cost follows the
    holes, not the image.  Holes whose crops touch are filled together.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:32, :32]
    >>> plane = (2.0 * yy + 3.0 * xx).astype(np.float32)
    >>> mask = np.zeros(plane.shape, bool)
    >>> mask[10:20, 12:18] = True
    >>> filled = inpaint(plane, mask, method="harmonic")
    >>> bool(np.allclose(filled, plane, atol=1e-4))
    True
    """
    spec = get_method(method)
    params = spec.resolve(params)
    if spatial_ndim not in (2, 3) or isinstance(spatial_ndim, bool):
        raise ValueError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}")
    if spatial_ndim not in spec.ndims:
        raise ValueError(
            f"method {method!r} fills {' or '.join(f'{n}D' for n in spec.ndims)} data only; "
            f"use spatial_ndim={spec.ndims[0]} (plane by plane) or another method"
        )
    if noise not in (None, *NOISE_MODELS):
        raise ValueError(f"noise must be None or one of {', '.join(NOISE_MODELS)}; got {noise!r}")
    if not isinstance(clip, (bool, np.bool_)):
        raise TypeError(f"clip must be True or False, got {clip!r}")
    seed = _resolve_seed(seed)
    check = _checker(cancel)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total) or None, got {progress!r}")
    check()

    if _is_dask(image):

        def fill_block(block, block_mask, block_channel_axis, block_seed, block_progress):
            return inpaint(
                block, block_mask, method, channel_axis=block_channel_axis, spatial_ndim=spatial_ndim,
                progress=block_progress, cancel=cancel, noise=noise, seed=block_seed, clip=clip, **params,
            )

        return inpaint_dask(
            image, mask, fill_block, channel_axis=channel_axis, spatial_ndim=spatial_ndim, seed=seed,
            progress=progress,
        )

    image = np.asarray(image)
    _check_dtype(image.dtype)
    mask = as_bool_mask(mask)
    channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    # Channels last from here on: a view of a copy that becomes the result.
    output = np.array(image, copy=True)
    channels_last = output[..., np.newaxis] if channel_axis is None else np.moveaxis(output, channel_axis, -1)
    if not mask.any():
        return output
    _check_known_finite(channels_last, mask)

    batch_shape = grid_shape[: len(grid_shape) - spatial_ndim]
    margin = spec.margin(params) + (_NOISE_MARGIN if noise else 0)
    plan = _plan(mask, batch_shape, grid_shape[len(batch_shape) :], spec, margin, channels_last.shape[-1])
    total = sum(len(crops) * len(groups) for crops, groups in plan)

    units = itertools.chain.from_iterable(itertools.product(groups, crops) for crops, groups in plan)
    for done, (group, crop) in enumerate(units, start=1):
        check()
        extra = {"rng": np.random.default_rng([seed, done]), "check": check, "progress": None}
        if progress is not None:
            extra["progress"] = lambda step, steps, before=done - 1: progress(before + step / max(steps, 1), total)
        _fill_crop(channels_last, group, crop, spec, params, noise, clip, extra, abandonable=cancel is not None)
        if progress is not None:
            progress(done, total)
    return output


def _fill_crop(
    channels_last, group: "_Group", crop: _Crop, spec: Method, params, noise, clip, extra, abandonable: bool
) -> None:
    """Fill one crop of a group of planes (stacked as extra channels) in place."""
    channels = channels_last.shape[-1]
    work = np.concatenate([channels_last[plane + crop.box] for plane in group.planes], axis=-1, dtype=np.float64)
    crop_mask = group.mask[crop.box]
    work[crop_mask] = 0.0
    # Methods see values of order one: a power-of-two scale is exact in floating point, so fills of
    # ordinary data are unchanged, while values near 1e300 (or 1e-300) no longer overflow (underflow).
    scale = _power_of_two_scale(work)
    work /= scale

    def fill(check: Callable[[], None], progress: Callable | None) -> np.ndarray:
        supplied = {"rng": extra["rng"], "check": check, "progress": progress}
        return spec.fill(work, crop_mask, **params, **{k: supplied[k] for k in spec.engine_keywords})

    if abandonable:
        filled = _run_abandonable(fill, extra["check"], extra["progress"])
    else:
        filled = fill(extra["check"], extra["progress"])
    values = np.asarray(filled, dtype=np.float64)[crop.holes]
    if not np.isfinite(values).all():
        raise RuntimeError(f"method {spec.name!r} produced non-finite values; please report this as a bug")
    values *= scale
    if clip:
        if group.limits is None:
            group.limits = _known_range(channels_last, group)
        values = np.clip(values, *group.limits)
    if noise == "gaussian":
        values = values + extra["rng"].standard_normal(values.shape) * (_noise_sigma(work, crop_mask) * scale)
    elif noise == "poisson":
        values = _poisson(values, extra["rng"])
    values = _to_dtype(values, channels_last.dtype)
    if clip and noise is None:
        # float64 rounds integers beyond 2**53: clip once more in the image's own dtype, exactly.
        values = np.clip(values, *group.limits)
    for i, plane in enumerate(group.planes):
        channels_last[plane + crop.box][crop.holes] = values[:, i * channels : (i + 1) * channels]


def _run_abandonable(fill: Callable, check: Callable[[], None], progress: Callable | None):
    """Return ``fill(check, progress)`` computed in a daemon thread that is abandoned on cancel.

    One compiled call (a sparse factorisation, an OpenCV fill) cannot be
    interrupted, so the calling thread waits in short steps and checks the
    cancel event in between; on cancel it raises at once and the worker
    stops at its method's next ``check`` or finishes unseen.  The method's
    progress reports are forwarded on the calling thread.
    """
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict = {}
    abandoned = threading.Event()

    def worker_check() -> None:
        if abandoned.is_set():
            raise InpaintCancelled("inpainting was cancelled")
        check()

    def run() -> None:
        try:
            outcome["value"] = fill(worker_check, lambda step, steps: reports.put((step, steps)))
        except BaseException as error:  # handed to the caller, which re-raises it
            outcome["error"] = error
        finally:
            reports.put(None)

    threading.Thread(target=run, name="napari-inpaint fill", daemon=True).start()
    try:
        while True:
            try:
                report = reports.get(timeout=_CANCEL_POLL)
            except queue.Empty:
                report = ()
            check()
            if report is None:
                break
            if report and progress is not None:
                progress(*report)
    except BaseException:
        abandoned.set()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _power_of_two_scale(work: np.ndarray) -> float:
    """The power of two that brings the largest magnitude in ``work`` into [1, 2) (1 when all are zero)."""
    largest = float(np.abs(work).max(initial=0.0))
    return 1.0 if largest == 0.0 else float(np.ldexp(1.0, np.frexp(largest)[1] - 1))


@dataclass
class _Group:
    """Planes (batch index tuples) that share one spatial mask."""

    planes: list[tuple]
    mask: np.ndarray
    limits: tuple[np.ndarray, np.ndarray] | None = None  # known range per plane and channel, on first use


def _known_range(channels_last: np.ndarray, group: _Group) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel minimum and maximum of the known pixels of each plane, planes stacked as channels."""
    known = [channels_last[plane][~group.mask] for plane in group.planes]
    return np.concatenate([k.min(axis=0) for k in known]), np.concatenate([k.max(axis=0) for k in known])


def _plan(mask, batch_shape, spatial_shape, spec: Method, margin, channels) -> list:
    """Group planes by mask and split each mask into crops.

    Returns a list of ``(crops, groups)``: every group of planes is filled
    crop by crop.
    """
    leading = mask.reshape((1,) * (len(batch_shape) + len(spatial_shape) - mask.ndim) + mask.shape)
    by_mask: dict[tuple, list] = defaultdict(list)
    for plane in np.ndindex(*batch_shape):
        by_mask[tuple(i if n > 1 else 0 for i, n in zip(plane, leading.shape))].append(plane)

    plan = []
    for key, planes in by_mask.items():
        plane_mask = np.ascontiguousarray(np.broadcast_to(leading[key], spatial_shape))
        if not plane_mask.any():
            continue
        if plane_mask.all():
            where = f"plane {planes[0]}" if planes[0] else "the image"
            raise ValueError(
                f"the mask covers every pixel of {where} (shape {spatial_shape}): there is "
                "nothing to fill from; unmask some pixels, or for a dropped plane of a stack use "
                "method='interpolate' with spatial_ndim=3"
            )
        crops = _crops(plane_mask, margin)
        # Channel-independent methods fill planes sharing a mask in one call.
        size = max(1, _BATCH_BYTES // (plane_mask.size * channels * 8)) if spec.channel_independent else 1
        plan.append((crops, [_Group(planes[i : i + size], plane_mask) for i in range(0, len(planes), size)]))
    return plan


def _crops(mask: np.ndarray, margin: int) -> list[_Crop]:
    """Split ``mask`` into disjoint boxes holding its holes plus ``margin`` pixels of context.

    Holes closer than ``2 * margin + 1`` share a box; boxes smaller than a tile
    are packed per tile to bound the number of calls; overlapping boxes are
    merged, so that every hole is filled exactly once and no box holds part
    of another box's hole.
    """
    grown = ndi.maximum_filter(mask, size=2 * margin + 1, mode="constant") if margin else mask
    labels, _ = ndi.label(grown, structure=np.ones((3,) * mask.ndim))
    tile = _TILE[mask.ndim]
    boxes, packed = [], defaultdict(list)
    for box in ndi.find_objects(labels):
        if all(s.stop - s.start < tile for s in box):
            packed[tuple(s.start // tile for s in box)].append(box)
        else:
            boxes.append(box)
    boxes += [_union(members) for members in packed.values()]
    while True:
        covered = np.zeros(mask.shape, bool)
        for box in boxes:
            covered[box] = True
        merged, count = ndi.label(covered, structure=np.ones((3,) * mask.ndim))
        if count == len(boxes):
            return [_Crop(box, mask[box]) for box in boxes]
        boxes = ndi.find_objects(merged)


def _union(boxes: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[d].start for b in boxes), max(b[d].stop for b in boxes)) for d in range(len(boxes[0])))


def _check_known_finite(channels_last: np.ndarray, mask: np.ndarray) -> None:
    if not np.issubdtype(channels_last.dtype, np.floating):
        return
    bad = ~np.isfinite(channels_last).all(axis=-1) & ~mask
    if bad.any():
        raise ValueError(
            f"the image has {int(bad.sum())} NaN or infinite pixels outside the mask; add them to the "
            "mask (for example mask = mask | ~np.isfinite(image)) so that they are filled too"
        )


def _poisson(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photon-count noise with the fill as mean (its normal limit for very large means)."""
    if (values < 0).any():
        raise ValueError("noise='poisson' needs non-negative data (photon counts); use noise='gaussian'")
    large = values > _POISSON_NORMAL_LIMIT
    noisy = rng.poisson(np.where(large, 0.0, values)).astype(np.float64)
    normal = values + np.sqrt(values, where=large, out=np.zeros_like(values)) * rng.standard_normal(values.shape)
    return np.where(large, np.maximum(normal, 0.0), noisy)


def _noise_sigma(work: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
    """Robust per-channel noise standard deviation of the known pixels.

    The discrete Laplacian of white noise with variance s^2 has variance
    ``(2d)^2 s^2 + 2d s^2`` in d dimensions; its median absolute deviation is
    insensitive to edges and smooth structure.
    """
    ndim = crop_mask.ndim
    lap = -2 * ndim * work
    valid = ~crop_mask
    for axis in range(ndim):
        for shift in (-1, 1):
            lap += np.roll(work, shift, axis=axis)
            valid &= ~np.roll(crop_mask, shift, axis=axis)
    # np.roll wraps around: the border pixels do not have true neighbours.
    for axis in range(ndim):
        edge = [slice(None)] * ndim
        for index in (0, -1):
            edge[axis] = index
            valid[tuple(edge)] = False
    if valid.sum() < 8:
        return np.zeros(work.shape[-1])
    samples = lap[valid]
    mad = np.median(np.abs(samples - np.median(samples, axis=0)), axis=0)
    return 1.4826 * mad / np.sqrt((2 * ndim) ** 2 + 2 * ndim)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float64 fills into ``dtype`` without wrapping around."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # float(2**63 - 1) rounds up to 2**63, which no longer fits: clip to the largest float that does.
        high = float(info.max) if float(info.max) <= info.max else np.nextafter(float(info.max), 0.0)
        return np.clip(np.rint(values), float(info.min), high).astype(dtype)
    info = np.finfo(dtype)
    return np.clip(values, float(info.min), float(info.max)).astype(dtype)


def _checker(cancel) -> Callable[[], None]:
    """The ``check()`` that raises :class:`InpaintCancelled` once ``cancel`` is set."""
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise TypeError(f"cancel must be a threading.Event (or None), got {cancel!r}")

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise InpaintCancelled("inpainting was cancelled; the input is unchanged")

    return check


def _resolve_seed(seed) -> int:
    """A non-negative integer seed; None draws one from the operating system."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer (or None for a fresh one), got {seed!r}")
    return int(seed)


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _check_dtype(dtype: np.dtype) -> None:
    if dtype == bool or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(
            f"image dtype {dtype} is not supported; give an integer or floating-point image "
            "(for a boolean or complex image, convert it first, e.g. image.astype(np.float32))"
        )
