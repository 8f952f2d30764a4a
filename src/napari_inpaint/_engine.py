"""The one inpainting engine behind every front end.

:func:`inpaint` validates the input, converts dtypes, iterates over the planes
or volumes of a stack, crops each hole with the context its method needs,
calls the method's fill function on the crop, composites only the masked
pixels back, optionally matches noise, and reports progress.  Methods (see
:mod:`napari_inpaint._registry`) only ever see one float64 crop.
"""

import inspect
import itertools
import numbers
import threading
from collections.abc import Callable

import numpy as np

from napari_inpaint._cancel import InpaintCancelled, checker, run_abandonable
from napari_inpaint._layout import as_bool_mask, layout, resolve_channel_axis
from napari_inpaint._lazy import inpaint_lazy
from napari_inpaint._planning import Crop, Group, known_range, plan
from napari_inpaint._reference import References, check_reference
from napari_inpaint._registry import Method, Stack
from napari_inpaint.methods import get_method, list_methods

# A preparation's share of the progress bar, in units of the fills' share (4: 80 % of the bar).
_PREPARATION_UNITS = 4
# Noise statistics need a ring of known pixels wider than most methods' margin.
_NOISE_MARGIN = 8
__all__ = ["NOISE_MODELS", "InpaintCancelled", "inpaint"]

NOISE_MODELS = ("gaussian", "poisson")
# Above this mean, Poisson noise is drawn from its normal limit (numpy refuses means near 1e19;
# the relative error of the approximation is below 1e-4 here).
_POISSON_NORMAL_LIMIT = 1e8


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
    reference=None,
    align: bool = True,
    status: Callable[[str], None] | None = None,
    **params,
) -> np.ndarray:
    """Fill the masked pixels of an image; every other pixel is returned unchanged.

    Parameters
    ----------
    image : array_like
        2D image, 3D volume or an nD stack of them, with an optional channel
        axis; any integer or floating dtype.  A NumPy array; a dask or zarr
        array gives a lazy dask array with the image's chunks, filled crop by
        crop as its chunks are computed (see ``docs/large-data.md``).
    mask : array_like of bool
        True (nonzero) where pixels are bad; NumPy, dask or zarr (read one
        block at a time).  Either the image's shape without
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
    reference : None, 'adjacent' or array_like
        Data that show what the holes hide, for the methods that use it
        (``guided``; see ``get_method(name).uses_reference``): an array of the
        image's shape or of its trailing shape (one reference for every
        plane), e.g. a second acquisition or another channel; or
        ``"adjacent"``: for a stack, each plane's nearest planes along the
        last non-spatial axis, pixel by pixel where they are known.
    align : bool
        Shift each reference onto its plane first (sub-pixel translation by
        phase correlation of the known pixels); False when they are already
        registered.
    status : callable, optional
        ``status(text)`` is called with a short description of the stage
        when it changes (a method's preparation, e.g. "training the network",
        then "filling 3/12"), for a status line next to the progress bar.
    **params
        Parameters of the method (see ``get_method(method).params``).

    Returns
    -------
    ndarray or dask array
        A new array with the shape and dtype of ``image`` (lazy for a dask or
        zarr image).  Integer results are rounded and clipped to the dtype's
        range.

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
    beyond it (the margin is declared by the method), so the cost, in time and
    memory, follows the holes, not the image.  Holes whose crops touch are
    filled together; a long thin hole of a method whose fill is local
    (``get_method(name).local_fill``) is filled in overlapping pieces.  The
    holes of a lazy result are found when ``inpaint`` is called (the mask is
    read block by block); the image is read only as its chunks are computed.

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
    if reference is not None and not spec.uses_reference:
        users = ", ".join(m.name for m in list_methods() if m.uses_reference)
        raise ValueError(f"method {method!r} does not use a reference; methods that do: {users}")
    if spec.needs_reference and reference is None:
        raise ValueError(
            f"method {method!r} fills from reference data: pass reference='adjacent' (the neighbouring "
            "planes of a stack) or an image of the same field (another acquisition or channel)"
        )
    if not isinstance(align, (bool, np.bool_)):
        raise TypeError(f"align must be True or False, got {align!r}")
    seed = _resolve_seed(seed)
    check = checker(cancel)
    for name, callback in (("progress", progress), ("status", status)):
        if callback is not None and not callable(callback):
            raise TypeError(f"{name} must be a callable or None, got {callback!r}")
    check()

    if _is_dask(image) or _is_zarr(image):
        if isinstance(reference, str):
            raise ValueError(
                "reference='adjacent' is not available for a dask array (its blocks do not see their "
                "neighbours); compute the stack first (np.asarray), or give a reference array"
            )
        stored = image if _is_zarr(image) else None
        image = _as_dask(image)
        _check_dtype(image.dtype)
        return inpaint_lazy(
            image, mask, spec=spec, params=params, margin=_margin(spec, params, noise),
            channel_axis=channel_axis, spatial_ndim=spatial_ndim, seed=seed, noise=noise, clip=clip,
            reference=reference, align=align, progress=progress, cancel=cancel, status=status, stored=stored,
        )
    return _inpaint_array(
        image, mask, spec, params, channel_axis, spatial_ndim, progress, cancel, noise, seed, clip, reference, align,
        status,
    )


def _inpaint_array(
    image, mask, spec: Method, params: dict, channel_axis, spatial_ndim: int, progress, cancel, noise, seed: int,
    clip: bool, reference, align: bool, status: Callable[[str], None] | None = None,
) -> np.ndarray:
    """:func:`inpaint` of an in-memory image, its arguments validated."""
    check = checker(cancel)
    image = np.asarray(image)
    _check_dtype(image.dtype)
    mask = as_bool_mask(mask)
    channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
    # Channels last from here on: a view of a copy that becomes the result.
    output = np.array(image, copy=True)
    channels_last = output[..., np.newaxis] if channel_axis is None else np.moveaxis(output, channel_axis, -1)
    batch_shape = grid_shape[: len(grid_shape) - spatial_ndim]
    check_reference(reference, image.shape, len(batch_shape))
    if not mask.any():
        return output
    _check_known_finite(channels_last, mask)
    references = _references(reference, image, channels_last, mask, channel_axis, batch_shape, align, check)

    margin = _margin(spec, params, noise)
    spatial_shape = grid_shape[len(batch_shape) :]
    windows_by_mask = plan(mask, batch_shape, spatial_shape, spec, margin, channels_last.shape[-1])
    total = sum(len(windows) * len(groups) for windows, groups in windows_by_mask)
    # A preparation (training a network) usually takes most of the time: it gets most of the bar.
    before = _PREPARATION_UNITS * total if spec.prepare else 0
    report = None if progress is None else (lambda done: progress(done, total + before))
    abandonable = cancel is not None
    extra = {"check": check, "prepared": None}
    if spec.prepare:
        stack = _stack(channels_last, mask, batch_shape, references)
        extra["prepared"] = _run_preparation(
            spec, params, stack, seed, check, report, before, abandonable, status
        )

    # A parameter of the preparation only (e.g. a training budget) is not the fill's.
    taken = inspect.signature(spec.fill).parameters
    fill_params = {name: value for name, value in params.items() if name in taken}
    units = itertools.chain.from_iterable(itertools.product(g, w) for w, g in windows_by_mask)
    for done, (group, window) in enumerate(units, start=1):
        check()
        extra["rng"] = np.random.default_rng([seed, done])
        extra["progress"] = None
        if report is not None:
            extra["progress"] = lambda step, steps, start=before + done - 1: report(start + step / max(steps, 1))
        if status is not None:
            where = f" (plane {', '.join(map(str, group.planes[0]))})" if batch_shape and len(group.planes) == 1 else ""
            status(f"filling {done}/{total}{where}")
        crop = window.crop(group.mask)
        _fill_crop(channels_last, group, crop, spec, fill_params, noise, clip, extra, references, abandonable)
        if report is not None:
            report(before + done)
    return output


def training_stack(
    image, mask=None, *, channel_axis=None, reference=None, align: bool = True, check=None
) -> Stack:
    """The :class:`~napari_inpaint._registry.Stack` of 2D planes a preparation would see for ``image``.

    For training outside a call (``learned.train_model``): the same layout
    rules and reference data as :func:`inpaint`, with ``mask`` None meaning
    every pixel known.
    """
    image = np.asarray(image)
    if mask is None:
        # No mask: every pixel known; an RGB(A) last axis is read as for a mask without it.
        channel_axis = resolve_channel_axis(image.shape, image.shape[:-1], channel_axis)
        mask = np.zeros([n for axis, n in enumerate(image.shape) if axis != channel_axis][-2:], bool)
    channel_axis, grid_shape = layout(image.shape, as_bool_mask(mask).shape, channel_axis, 2)
    mask = as_bool_mask(mask)
    channels_last = image[..., np.newaxis] if channel_axis is None else np.moveaxis(image, channel_axis, -1)
    batch_shape = grid_shape[:-2]
    check_reference(reference, image.shape, len(batch_shape))
    references = _references(reference, image, channels_last, mask, channel_axis, batch_shape, align, checker(None))
    return _stack(channels_last, mask, batch_shape, references)


def _references(reference, image, channels_last, mask, channel_axis, batch_shape, align: bool, check):
    """The call's :class:`~napari_inpaint._reference.References`, or None without reference data."""
    if reference is None:
        return None
    source = reference
    if not isinstance(reference, str):
        source = _broadcast(reference, image.shape)
        source = source[..., np.newaxis] if channel_axis is None else np.moveaxis(source, channel_axis, -1)
        if np.issubdtype(source.dtype, np.inexact) and not np.isfinite(source).all():
            raise ValueError("the reference has NaN or infinite pixels; replace them (e.g. fill it first)")
    return References(source, channels_last, mask, len(batch_shape), align, check)


def _stack(channels_last: np.ndarray, mask: np.ndarray, batch_shape: tuple, references) -> Stack:
    """The call's planes, masks and references as a preparation sees them."""
    spatial = channels_last.shape[len(batch_shape) : -1]
    planes = channels_last.reshape((-1, *spatial, channels_last.shape[-1]))
    planes = planes.view()
    planes.flags.writeable = False
    masks = np.broadcast_to(mask, (*batch_shape, *spatial)).reshape((-1, *spatial))
    reference = None
    if references is not None:
        whole = tuple(slice(0, n) for n in spatial)

        def reference(index: int) -> np.ndarray:
            return references.of(tuple(int(i) for i in np.unravel_index(index, batch_shape)), whole)

    return Stack(planes, masks, reference)


def _run_preparation(
    spec: Method, params, stack: Stack, seed: int, check, report, share: int, abandonable: bool, status=None
):
    """Call the method's preparation once, with its parameters and the engine's keywords it takes."""
    taken = inspect.signature(spec.prepare).parameters
    keywords = {name: value for name, value in params.items() if name in taken}
    if status is not None and "status" not in taken:
        status(f"preparing {spec.name}")

    def prepare(check: Callable[[], None], progress: Callable | None) -> object:
        supplied = {"rng": np.random.default_rng([seed, 0]), "check": check, "progress": progress, "status": status}
        return spec.prepare(stack, **keywords, **{k: v for k, v in supplied.items() if k in taken})

    progress = None if report is None else (lambda step, steps: report(share * step / max(steps, 1)))
    if abandonable:
        return run_abandonable(prepare, check, progress)
    return prepare(check, progress)


def _fill_crop(
    channels_last, group: Group, crop: Crop, spec: Method, params, noise, clip, extra: dict, references,
    abandonable: bool,
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
    reference = None
    if references is not None:
        reference = np.concatenate([references.of(plane, crop.box) for plane in group.planes], axis=-1) / scale

    def fill(check: Callable[[], None], progress: Callable | None) -> np.ndarray:
        supplied = {**extra, "check": check, "progress": progress, "reference": reference, "scale": scale}
        return spec.fill(work, crop_mask, **params, **{k: supplied[k] for k in spec.engine_keywords})

    if abandonable:
        filled = run_abandonable(fill, extra["check"], extra["progress"])
    else:
        filled = fill(extra["check"], extra["progress"])
    values = np.asarray(filled, dtype=np.float64)[crop.holes]
    if not np.isfinite(values).all():
        raise RuntimeError(f"method {spec.name!r} produced non-finite values; please report this as a bug")
    values *= scale
    if clip:
        if group.limits is None:
            group.limits = known_range(channels_last, group)
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


def _power_of_two_scale(work: np.ndarray) -> float:
    """The power of two that brings the largest magnitude in ``work`` into [1, 2) (1 when all are zero)."""
    largest = float(np.abs(work).max(initial=0.0))
    return 1.0 if largest == 0.0 else float(np.ldexp(1.0, np.frexp(largest)[1] - 1))


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


def _resolve_seed(seed) -> int:
    """A non-negative integer seed; None draws one from the operating system."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer (or None for a fresh one), got {seed!r}")
    return int(seed)


def _broadcast(reference, shape: tuple[int, ...]) -> np.ndarray:
    """A reference array (given as one plane or whole) as a read-only array of the image's shape."""
    return np.broadcast_to(np.asarray(reference), shape)


def _margin(spec: Method, params: dict, noise) -> int:
    """Known pixels around each hole that a fill (and its noise statistics) need."""
    return spec.margin(params) + (_NOISE_MARGIN if noise else 0)


def _is_dask(array) -> bool:
    return type(array).__module__.startswith("dask.")


def _is_zarr(array) -> bool:
    return type(array).__module__.startswith("zarr.")


def _as_dask(array):
    """A dask array of a dask or zarr array (read chunk by chunk, never whole)."""
    import dask.array as da

    return da.from_zarr(array) if _is_zarr(array) else array


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind == "b" or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(
            f"image dtype {dtype} is not supported; give an integer or floating-point image "
            "(for a boolean or complex image, convert it first, e.g. image.astype(np.float32))"
        )
