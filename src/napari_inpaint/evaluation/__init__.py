r"""Which method is best for my data: hide holes in known pixels, fill them, score the fills.

:func:`evaluate` punches synthetic holes of several kinds and sizes (see
:mod:`napari_inpaint.masks`) into pixels whose true values are known, fills
them with each method through :func:`napari_inpaint.inpaint`, and scores every
fill against the truth.  The scores are grouped by method and by the share of
the image that was missing, in buckets of 10 % (0-10 %, 10-20 %, ...) as in
the inpainting literature, and returned as an :class:`EvaluationTable`.

Methods that fill from reference data (``guided``) are scored on a plane of a
stack with ``reference="adjacent"``: holes are hidden in that plane only, so
its neighbours know what the holes hide, as when one slice or frame is damaged.

Notes
-----
For a hole :math:`H` in an image with data range :math:`R` (see
:func:`napari_inpaint.evaluation.metrics.data_range_of`), each fill is scored by

- PSNR over the hole, :math:`10 \log_{10} R^2 / \mathrm{mean}_H (x - y)^2`, and
  over the whole image (where only the hole differs);
- SSIM averaged over the hole's pixels of the SSIM map (7-pixel windows);
- MAE over the hole, in percent of :math:`R`;
- LPIPS over the whole image, when its weights are available
  (:func:`napari_inpaint.evaluation.metrics.lpips`);
- the wall-clock seconds of the fill (each method first fills a small hole
  once, untimed, so that imports and JIT compilation are left out).

The hole ratio of a trial is the share of the evaluated pixels (the whole
image, or the ``region`` marked clean) that the hole covers; bucket
:math:`k` holds the ratios in :math:`(k/10, (k+1)/10]`.  Scores are averaged
over the trials of a bucket (PSNR in dB).  FID is not reported: it compares
the statistics of two sets of images and means nothing for one image.

Examples
--------
>>> from skimage import data
>>> from napari_inpaint.evaluation import evaluate
>>> table = evaluate(data.camera()[:96, :96], ["harmonic", "telea"], masks=["strokes"], ratios=[0.05])
>>> [(row["method"], row["bucket"], row["n"]) for row in table.rows]
[('harmonic', '0-10%', 1), ('telea', '0-10%', 1)]
>>> print(table)  # doctest: +SKIP
"""

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from napari_inpaint import masks as mask_generators
from napari_inpaint.engine import InpaintCancelled, inpaint
from napari_inpaint.engine.layout import resolve_channel_axis
from napari_inpaint.engine.reference import check_reference
from napari_inpaint.evaluation import metrics
from napari_inpaint.evaluation.table import _SCORES, BUCKET_WIDTH, EvaluationTable, Example, bucket_of
from napari_inpaint.methods import get_method, list_methods

__all__ = [
    "BUCKET_WIDTH", "DEFAULT_MASKS", "DEFAULT_RATIOS", "EvaluationTable", "Example", "bucket_of", "default_methods",
    "evaluate", "warm_up",
]

DEFAULT_MASKS = ("strokes", "rectangles")
DEFAULT_RATIOS = (0.05, 0.15, 0.25)
_MIN_SIDE = 16  # SSIM's 7-pixel window needs room around the holes


def default_methods(mask_kinds: Sequence[str] = DEFAULT_MASKS, *, reference: bool = False) -> list[str]:
    """The methods :func:`evaluate`, the Compare widget and the demo compare by default.

    The methods of family ``classical`` (no network, seconds per image; the
    others are slow on a CPU or download weights, so they are compared only
    when asked for); those that need reference data only when ``reference``
    is True (the comparison has some).  A method made for its damage only
    (``any_hole`` False, as ``interpolate`` for dropped lines) joins when
    that damage is among ``mask_kinds``.

    Examples
    --------
    >>> "interpolate" in default_methods(["strokes"]), "interpolate" in default_methods(["dropped-lines"])
    (False, True)
    >>> "guided" in default_methods(), "guided" in default_methods(reference=True)
    (False, True)
    """
    hidden = {mask_generators.resolve_kind(kind) for kind in mask_kinds}
    return [
        m.name for m in list_methods()
        if m.family == "classical" and (reference or not m.needs_reference)
        and (m.any_hole or hidden & set(m.artifacts))
    ]


def evaluate(
    image: np.ndarray,
    methods: Sequence[str] | Mapping[str, Mapping] | None = None,
    masks: Sequence[str] = DEFAULT_MASKS,
    region: np.ndarray | None = None,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    *,
    plane: int | None = None,
    reference: str | np.ndarray | None = None,
    align: bool = True,
    repeats: int = 1,
    channel_axis: int | None = None,
    lpips: bool | str = "auto",
    per_mask: bool = False,
    keep_example: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    params: Mapping[str, Any] | None = None,
) -> EvaluationTable:
    """Score inpainting methods on holes hidden in the known pixels of an image.

    Parameters
    ----------
    image : ndarray
        A clean 2D image (at least 16 pixels a side), with an optional
        channel axis (an RGB(A) last axis is recognised, as by
        :func:`napari_inpaint.inpaint`); any dtype the engine takes.  Or,
        with ``plane``, a stack of such planes, plane axis first (e.g.
        (Z, Y, X) or (T, Y, X, 3)).
    methods : sequence of str, or mapping of str to dict, optional
        Methods to compare, or a mapping from method to its parameters.
        Default: :func:`default_methods` (with those that need a reference
        when ``reference`` is given).
    masks : sequence of str
        Kinds of hole to hide (see :data:`napari_inpaint.masks.KINDS`).
    region : ndarray of bool, optional
        Where the scored plane is clean (True), of its spatial shape: holes
        are placed only there and ratios count its pixels.  Default: all.
    ratios : sequence of float
        Target hole ratios, each in (0, 1); one mask per kind, ratio and
        repeat.  The defaults sit in the middle of the 0-10 %, 10-20 % and
        20-30 % buckets.
    seed : int
        Seed of the masks and of stochastic methods.
    plane : int, optional
        ``image`` is a stack: score its plane of this index.
    reference : None, "adjacent" or ndarray
        Reference data for the methods that use it (see
        :func:`napari_inpaint.inpaint`); the others fill without it.
        ``"adjacent"`` needs a stack and ``plane``: holes are hidden in that
        plane only, the whole stack goes to each method and the plane's
        neighbours serve as its reference.  An array (of the image's shape,
        or of one plane's) is passed on.
    align : bool
        Shift the reference onto the plane first (see
        :func:`napari_inpaint.inpaint`).
    repeats : int
        Masks per kind and ratio (with different seeds).
    channel_axis : int, optional
        Axis of ``image`` holding channels.
    lpips : {"auto", True, False}
        Also score with LPIPS: ``"auto"`` when PyTorch is installed and the
        weights are already downloaded, True fetching them if needed (about
        245 MB).  When it cannot be computed the column is left out with a
        note.
    per_mask : bool
        Rows per method, mask kind and bucket instead of method and bucket.
    keep_example : bool
        Keep one scored hole and its fills as ``table.example`` (see
        :class:`EvaluationTable`), to show them; without it no fill is kept.
    progress : callable, optional
        ``progress(done, total)`` after each fill.
    cancel : threading.Event, optional
        Passed to :func:`napari_inpaint.inpaint`; when set,
        :class:`napari_inpaint.InpaintCancelled` is raised.
    params : dict, optional
        Parameters given to every selected method that has a parameter of
        that name (e.g. ``{"radius": 3}`` for ``telea`` and
        ``navier-stokes``); per method, give ``methods`` as a mapping.

    Returns
    -------
    EvaluationTable
        ``str(table)`` is a text table; ``table.rows``, ``table.to_dict()``
        and ``table.to_csv()`` give the numbers.  A method that fails (e.g.
        it needs a download that is not possible) is reported in its rows.

    Raises
    ------
    ValueError, TypeError
        For an unknown method or mask kind, a parameter no selected method
        has, a bad parameter value, an image that is not 2D (or, with
        ``plane``, not a stack of 2D planes), or a method that needs a
        reference without one.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:48, :48]
    >>> ramp = (3.0 * yy + xx).astype(np.float32)
    >>> table = evaluate(ramp, ["harmonic"], masks=["rectangles"], ratios=[0.15])
    >>> row = table.rows[0]
    >>> row["bucket"], row["mae_hole"] < 1.0
    ('10-20%', True)
    >>> example = evaluate(ramp, ["harmonic"], masks=["rectangles"], keep_example=True).example
    >>> example.kind, example.ratio, example.hole.shape, list(example.fills)
    ('rectangles', 0.15, (48, 48), ['harmonic'])

    A plane of a stack, its neighbours as the reference of ``guided``:

    >>> stack = np.stack([ramp + 5 * k for k in range(3)])
    >>> table = evaluate(stack, masks=["rectangles"], ratios=[0.15], plane=1, reference="adjacent")
    >>> guided = next(row for row in table.rows if row["method"] == "guided")  # joined the defaults
    >>> guided["mae_hole"] < 1e-6  # the plane is its neighbours' mean: the reference knows the hole
    True
    """
    kinds = [mask_generators.resolve_kind(kind) for kind in masks]
    methods = _resolve_methods(methods, kinds, dict(params or {}), reference)
    if not all(0 < ratio < 1 for ratio in ratios) or not ratios:
        raise ValueError(f"ratios must lie in (0, 1), got {list(ratios)}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    if not isinstance(align, (bool, np.bool_)):
        raise TypeError(f"align must be True or False, got {align!r}")
    image = np.asarray(image)
    data, channels, image_axis = _channels_last(image, channel_axis, stacked=plane is not None)
    # The example's fills are planes: without the stack's plane axis, which comes first.
    own_axis = image_axis - 1 if plane is not None and image_axis else image_axis
    check_reference(reference, image.shape, batch_ndim=int(plane is not None))
    adjacent = isinstance(reference, str)
    if reference is not None and not adjacent:  # in the layout of ``data``
        reference = np.broadcast_to(np.asarray(reference), image.shape)
        reference = reference if image_axis is None else np.moveaxis(reference, image_axis, -1)
    if plane is not None:
        if isinstance(plane, bool) or plane not in range(-len(data), len(data)):
            raise ValueError(f"plane must be an index into the stack's {len(data)} planes, got {plane!r}")
        plane = int(plane) % len(data)
        if not adjacent:  # the plane is all the methods need
            data, reference, plane = data[plane], None if reference is None else reference[plane], None
    truth = data if plane is None else data[plane]
    region = _check_region(region, truth.shape[:2])
    data_range = metrics.data_range_of(truth)
    notes: list[str] = []
    use_lpips = _lpips_usable(lpips, truth.shape[:2], notes)

    holes = []
    shown = (0, len(ratios) // 2, 0) if keep_example else None  # the hole kept as the example
    example = None
    for k, kind in enumerate(kinds):
        for r, ratio in enumerate(ratios):
            for repeat in range(repeats):
                hole = _hide_hole(kind, region, ratio, np.random.default_rng([seed, k, r, repeat]))
                if hole is None:
                    notes.append(f"no {kind} hole of ratio {ratio} fits in the region; skipped")
                    continue
                if (k, r, repeat) == shown:
                    example = Example(kind, ratio, hole, {})
                holes.append((kind, hole, (k, r, repeat) == shown))

    # The methods that use reference data get it; the others fill without.
    users = {name for name in methods if reference is not None and get_method(name).uses_reference}
    given = {name: {"reference": reference, "align": align} if name in users else {} for name in methods}
    for name, params in methods.items():
        warm_up(data, plane, channels, name, {**params, **given[name]})
    trials = []
    total, done = len(holes) * len(methods), 0
    area = np.count_nonzero(region)
    for kind, hole, is_example in holes:
        # Pixels outside the clean region may be damaged: they are filled too, never used as known.
        unknown, damaged = hole | ~region, data.copy()
        (damaged if plane is None else damaged[plane])[unknown] = 0  # no method may see the truth
        if plane is not None:  # the other planes of the stack are known
            unknown = np.stack([unknown if k == plane else np.zeros_like(unknown) for k in range(len(data))])
        ratio = np.count_nonzero(hole) / area
        for name, params in methods.items():
            trial = {"method": name, "mask": kind, "ratio": ratio, "bucket": bucket_of(ratio), "seed": seed}
            trial.update(dict.fromkeys(_SCORES[1:]), error=None)
            start = time.perf_counter()
            try:
                filled = inpaint(damaged, unknown, name, channel_axis=channels, seed=seed, cancel=cancel,
                                 **given[name], **params)  # fmt: skip
            except InpaintCancelled:
                raise
            except Exception as exc:  # a failing method is reported; the others still run
                trial["error"] = f"{type(exc).__name__}: {exc}"
            else:
                trial["seconds"] = time.perf_counter() - start
                filled = filled if plane is None else filled[plane]
                trial.update(_scores(truth, filled, hole, data_range, channels, use_lpips))
                if is_example:  # in the plane's own layout
                    example.fills[name] = filled if own_axis is None else np.moveaxis(filled, -1, own_axis)
            trials.append(trial)
            done += 1
            if progress is not None:
                progress(done, total)
    return EvaluationTable(trials, notes, per_mask, example)


def _resolve_methods(methods, kinds, shared: dict, reference) -> dict[str, dict]:
    """Map each method to its validated parameters."""
    if methods is None:
        methods = default_methods(kinds, reference=reference is not None)
    if isinstance(methods, str):
        methods = [methods]
    given = {name: dict(params) for name, params in methods.items()} if isinstance(methods, Mapping) else {
        name: {} for name in methods
    }
    if not given:
        raise ValueError("give at least one method")
    specs = {name: get_method(name) for name in given}
    unused = set(shared)
    for name, spec in specs.items():
        if spec.needs_reference and reference is None:
            raise ValueError(
                f"method {name!r} fills from reference data: pass reference='adjacent' with a stack and the "
                "plane to score (plane=), or a reference image of the same field"
            )
        for key, value in shared.items():
            if any(p.name == key for p in spec.params):
                given[name].setdefault(key, value)
                unused.discard(key)
        spec.resolve(given[name])  # a bad value fails now, not once per trial
    if unused:
        raise TypeError(
            f"no selected method has a parameter {', '.join(map(repr, sorted(unused)))}; "
            f"methods: {', '.join(given)}"
        )
    return given


def _channels_last(
    image: np.ndarray, channel_axis: int | None, stacked: bool
) -> tuple[np.ndarray, int | None, int | None]:
    """The image with channels last, the channel axis to give the engine (-1 or None), and the image's own.

    The channel axis follows the engine's rule for a mask of the first two
    axes (holes are 2D), or three for a stack (``stacked``, plane axis first).
    """
    grid_ndim = 3 if stacked else 2
    channel_axis = resolve_channel_axis(image.shape, image.shape[:grid_ndim], channel_axis)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -1)
    grid = image.shape if channel_axis is None else image.shape[:-1]
    if len(grid) != grid_ndim:
        wanted, hint = (
            ("a stack of 2D planes, plane axis first", "For one 2D image, leave plane out") if stacked else
            ("one 2D image", "For a stack, pass one plane, or the stack and plane= (the plane's index)")
        )  # fmt: skip
        raise ValueError(
            f"evaluate takes {wanted} (with an optional channel axis); got shape {image.shape}. {hint}; for "
            "channels on another axis, pass channel_axis"
        )
    if min(grid[-2:]) < _MIN_SIDE:
        raise ValueError(f"the image must be at least {_MIN_SIDE} pixels a side, got {grid[-2:]}")
    return image, None if channel_axis is None else -1, channel_axis


def _check_region(region, spatial: tuple[int, int]) -> np.ndarray:
    if region is None:
        return np.ones(spatial, bool)
    region = np.asarray(region, dtype=bool)
    if region.shape != spatial:
        raise ValueError(f"region shape {region.shape} differs from the image's spatial shape {spatial}")
    if np.count_nonzero(region) < 2:
        raise ValueError("the region marks fewer than 2 clean pixels")
    return region


def _hide_hole(kind: str, region: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray | None:
    """A hole of ``kind`` covering about ``ratio`` of ``region``, or None when none lands in it.

    The hole is drawn over the region's bounding box at the target ratio, so
    that its share of the region is about ``ratio``, and cut to the region.
    """
    rows, cols = np.nonzero(region)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    hole = np.zeros(region.shape, bool)
    try:
        hole[box] = mask_generators.make(kind, region[box].shape, ratio, seed=rng) & region[box]
    except ValueError:  # e.g. too few lines in a thin region to drop a share of them
        return None
    if not hole.any() or hole.sum() == region.sum():
        return None
    return hole


def warm_up(data: np.ndarray, plane: int | None, channels: int | None, name: str, keywords: dict) -> None:
    """Fill a small hole once, so that timings leave out one-time costs (imports, JIT compilation).

    Parameters
    ----------
    data : ndarray
        The image (channels last when ``channels`` is -1), or a stack with ``plane``.
    plane : int or None
        The plane of a stack to warm up on.
    channels : int or None
        The channel axis to give :func:`napari_inpaint.inpaint`.
    name : str
        The method.
    keywords : dict
        Its parameters and engine keywords, as the timed runs get them.

    Examples
    --------
    >>> import numpy as np
    >>> warm_up(np.zeros((32, 32)), None, None, "harmonic", {})  # any error is left to the timed runs
    """
    index = () if plane is None else (plane,)
    corner = (slice(None),) * len(index) + (slice(0, _MIN_SIDE),) * 2
    if isinstance(keywords.get("reference"), np.ndarray):
        keywords = {**keywords, "reference": keywords["reference"][corner]}
    crop = data[corner]
    hole = np.zeros(crop.shape[: len(corner)], bool)
    middle = slice(_MIN_SIDE // 2 - 2, _MIN_SIDE // 2 + 2)
    hole[index + (middle, middle)] = True
    with contextlib.suppress(Exception):  # the timed runs report any error
        inpaint(crop, hole, name, channel_axis=channels, **keywords)


def _lpips_usable(lpips, spatial: tuple[int, int], notes: list[str]) -> bool:
    """Whether to score with LPIPS; when not, say why in ``notes``."""
    if lpips is False:
        return False
    if lpips not in (True, "auto"):
        raise ValueError(f"lpips must be 'auto', True or False, got {lpips!r}")
    if min(spatial) < metrics.LPIPS_MIN_SIDE:
        notes.append(f"LPIPS left out: it needs images of at least {metrics.LPIPS_MIN_SIDE} pixels a side")
        return False
    if lpips == "auto" and not metrics.lpips_available():
        notes.append(
            "LPIPS left out: it needs PyTorch and its weights, which are not downloaded; pass lpips=True "
            "(command line: --lpips) to fetch them once (about 245 MB)"
        )
        return False
    try:
        metrics.fetch_lpips()
    except RuntimeError as exc:
        notes.append(f"LPIPS left out: {exc}")
        return False
    return True


def _scores(truth, filled, hole, data_range, channels, use_lpips) -> dict:
    return {
        "psnr_hole": metrics.psnr(truth, filled, mask=hole, data_range=data_range),
        "ssim_hole": metrics.ssim(truth, filled, data_range=data_range, channel_axis=channels, mask=hole),
        "mae_hole": metrics.hole_mae(truth, filled, hole, data_range=data_range),
        "psnr_image": metrics.psnr(truth, filled, data_range=data_range),
        "lpips": metrics.lpips(truth, filled, data_range, channels, device="cpu") if use_lpips else None,
    }
