"""The contract every registered method keeps, checked for each method of ``list_methods()``.

A method gets these tests by being registered, as napari's ``layer_test_data``
gives every layer type its tests:

- a property sweep (for every method that needs no download): random dtypes
  (including 64-bit integers and extreme floats), shapes (1xN, Nx1, 2x2, odd
  sizes, stacks, RGB, channels first, volumes) and masks (empty, one pixel,
  borders, nearly full, random).  Every call either returns an array that
  keeps the promises below, or refuses with an error raised by our own code
  (a message written for the user, not numpy's or torch's words);
- per method, on ordinary images: known pixels bit-identical, dtype and shape
  kept, the input unmodified, cancel raises (before and during the fill),
  progress reported (in order, ending at the total; a fill's own reports
  become fractions of the run) and bit-identical results when threads run at
  once.

Methods that download weights run the per-method checks with stand-in
networks served through the real download path (``stand_in_weights`` in
conftest.py).  Network methods get tiny budgets derived from their
parameters (:func:`tiny_budget`): the contract checks promises, not quality.
The checks are plain functions, so tests/test_registry.py runs them on a toy
method too.
"""

import dataclasses
import functools
import itertools
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_inpaint import InpaintCancelled, Method, inpaint, list_methods
from napari_inpaint.models.devices import DEVICE

METHODS = list_methods()
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.uint64, np.float32, np.float64]
# Parameters that size a method's work, each set to its minimum (or the floor given here: two steps, so that
# a method that iterates reports progress within a step).  A new method whose work parameters have these
# names gets a tiny budget for free.
WORK_PARAMS = {
    "steps": 2, "iterations": 2, "seconds": 0, "width": 0, "crop_size": 0, "context": 0, "max_size": 0,
}


def tiny_budget(method: Method) -> dict:
    """The cheapest parameters of ``method``: every work parameter at its minimum, on the CPU.

    The CPU is always there, and bit-identical results under threads are a
    promise per device.
    """
    work = [p for p in method.params if p.name in WORK_PARAMS and p.low is not None]
    budget = {p.name: max(p.low, WORK_PARAMS[p.name]) for p in work}
    budget.update({p.name: "cpu" for p in method.params if p is DEVICE})
    return budget


def options_for(method: Method, image: np.ndarray) -> dict:
    """Keywords of a cheap ``inpaint`` call of ``method`` on ``image``.

    Its tiny budget and, for a method that needs one, a reference: the image
    itself, always of the right shape.
    """
    return {**tiny_budget(method), **({"reference": image} if method.needs_reference else {})}


# --------------------------------------------------------------------------- the promises of one call


def _channels_last(array: np.ndarray, channel_axis) -> np.ndarray:
    return array[..., np.newaxis] if channel_axis is None else np.moveaxis(array, channel_axis, -1)


def assert_promises(out, image, before, mask, channel_axis=None, spatial_ndim=2) -> None:
    """Assert what every fill promises.

    The input is unmodified; the result is a new array of its dtype and
    shape whose known pixels are bit-identical, whose floats are finite and
    whose fills lie within the range of their plane's known pixels (per
    channel).
    """
    np.testing.assert_array_equal(image, before)  # the input is never modified
    assert out.shape == image.shape and out.dtype == image.dtype and out is not image
    result, source = _channels_last(out, channel_axis), _channels_last(image, channel_axis)
    holes = np.broadcast_to(mask, result.shape[:-1])
    assert np.array_equal(result[~holes], source[~holes])  # known pixels bit-identical
    if np.issubdtype(out.dtype, np.floating):
        assert np.isfinite(out).all()
    planes = result.reshape((-1,) + result.shape[-spatial_ndim - 1 :])
    plane_holes = holes.reshape((-1,) + holes.shape[-spatial_ndim:])
    for plane, hole in zip(planes, plane_holes):
        if hole.any():
            known, filled = plane[~hole], plane[hole]
            assert (filled >= known.min(axis=0)).all() and (filled <= known.max(axis=0)).all()


# --------------------------------------------------------------------------- the property sweep


@st.composite
def cases(draw, method):
    """An image, a mask and the keywords of one inpaint call that ``method`` supports."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    layouts = ["2d", "stack", "rgb", "channels-first"] + (["volume"] if 3 in method.ndims else [])
    layout = draw(st.sampled_from(layouts))
    side = st.integers(1, 12)
    height, width = draw(side), draw(side)
    if height * width < 2:
        width = 2
    planes = draw(st.integers(1, 3)) if layout == "stack" else draw(st.integers(2, 5))
    shape, channel_axis, grid = {
        "2d": ((height, width), None, (height, width)),
        "stack": ((planes, height, width), None, (planes, height, width)),
        "rgb": ((height, width, 3), -1, (height, width)),
        "channels-first": ((2, height, width), 0, (height, width)),
        "volume": ((planes, height, width), None, (planes, height, width)),
    }[layout]
    spatial_ndim = 3 if layout == "volume" else 2
    image = _values(dtype, shape, draw(st.sampled_from(["random", "extremes", "constant"])),
                    draw(st.sampled_from([1.0, 1e-30, 1e30, 1e-300, 1e300])), draw(st.integers(0, 2**32)))
    mask_shape = draw(st.sampled_from([grid, grid[-2:]])) if layout == "stack" else grid
    kind = draw(st.sampled_from(["empty", "one", "border", "nearly-full", "random"]))
    mask = np.zeros(mask_shape, bool)
    if kind == "one":
        mask[tuple(draw(st.integers(0, n - 1)) for n in mask_shape)] = True
    elif kind == "border":
        mask[..., draw(st.sampled_from([0, -1])), :] = True
    elif kind == "nearly-full":
        mask[...] = True
        mask.reshape(-1, *mask_shape[-2:])[:, 0, 0] = False
    elif kind == "random":
        mask = draw(hnp.arrays(bool, mask_shape))
    # Every plane (or volume) keeps a known pixel: a full mask is refused by design.
    units = mask.reshape((-1,) + mask_shape[-spatial_ndim:])
    units.reshape(units.shape[0], -1)[:, 0] = False
    seed = draw(st.integers(0, 2**32))
    options = {"channel_axis": channel_axis, "spatial_ndim": spatial_ndim, "seed": seed}
    return image, mask, options


def _values(dtype: np.dtype, shape: tuple[int, ...], kind: str, magnitude: float, seed: int) -> np.ndarray:
    """Pixel values over the dtype's whole range: random, only its extremes, or one extreme everywhere."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = int(info.min), int(info.max)
    else:
        high = min(magnitude, float(np.finfo(dtype).max) / 4)
        low = -high
    if kind == "random" and np.issubdtype(dtype, np.integer):
        return rng.integers(low, high, size=shape, dtype=dtype, endpoint=True)
    if kind == "random":
        return (rng.uniform(-1.0, 1.0, shape) * high).astype(dtype)
    if kind == "extremes":
        return np.where(rng.random(shape) < 0.5, low, high).astype(dtype)
    return np.full(shape, high, dtype)


def _refused_by_us(error: Exception) -> bool:
    """True when the error was raised by napari-inpaint's own code (a message for the user)."""
    return "napari_inpaint" in traceback.extract_tb(error.__traceback__)[-1].filename


def _check_promises_or_refusal(image, mask, options, method) -> None:
    before = image.copy()
    try:
        out = inpaint(image, mask, method.name, **options, **options_for(method, image))
    except (ValueError, TypeError) as error:
        assert _refused_by_us(error), f"{method.name} raised from a library: {error!r}"
        return
    assert_promises(out, image, before, mask, options["channel_axis"], options["spatial_ndim"])


SWEPT = [m for m in METHODS if not m.needs_download]
# Found by the sweep, tried first every time: a one-plane stack of values near 1e300 (``guided`` aligned its
# reference by a phase correlation that overflowed).
_HUGE_ROW = (
    np.array([[[2.73923375e299, -4.60426572e299, -9.18052952e299, -9.66944729e299]]]),
    np.array([[[False, True, False, False]]]),
    {"channel_axis": None, "spatial_ndim": 2, "seed": 0},
)


@pytest.mark.parametrize("method", SWEPT, ids=[m.name for m in SWEPT])
def test_every_call_keeps_the_promises_or_refuses_clearly(method):
    slow_is_fine = [HealthCheck.too_slow, HealthCheck.data_too_large]

    @settings(max_examples=100, deadline=None, suppress_health_check=slow_is_fine)
    @given(case=cases(method))
    @example(case=_HUGE_ROW)
    def sweep(case):
        _check_promises_or_refusal(*case, method)

    sweep()


# --------------------------------------------------------------------------- per-method checks


def _textured(shape: tuple[int, ...], seed: int = 7) -> np.ndarray:
    """Smooth structure plus noise, positive, of any shape whose last two axes are spatial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape[-2:])
    plane = 500 + 300 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    return plane + rng.normal(0, 20, shape)


def _holes(shape: tuple[int, int]) -> np.ndarray:
    """A blob, a scratch and a hole in a corner: interior and border holes."""
    mask = np.zeros(shape, bool)
    mask[12:20, 14:24] = True
    mask[30, 5:35] = True
    mask[:3, -4:] = True
    return mask


def _ordinary_cases(method: Method):
    """(label, image, mask, keywords) of ordinary calls ``method`` must fill: dtypes and layouts."""
    mask = _holes((40, 40))
    yield "uint16", _textured((40, 40)).astype(np.uint16), mask, {}
    rgb = np.stack([_textured((40, 40), seed) for seed in (1, 2, 3)], axis=-1) / 1000
    yield "float32-rgb", rgb.astype(np.float32), mask, {"channel_axis": -1}
    stack_mask = np.stack([mask, mask.T])  # two planes, two masks: at least two units of work
    yield "int16-stack", (_textured((2, 40, 40)) - 600).astype(np.int16), stack_mask, {}
    if 3 in method.ndims:
        volume_mask = np.zeros((6, 24, 24), bool)
        volume_mask[2:4, 8:14, 9:15] = True
        yield "volume", _textured((6, 24, 24)), volume_mask, {"spatial_ndim": 3}


def check_fills(method: Method) -> None:
    """Ordinary calls keep every promise: known pixels bit-identical, dtype and shape kept, input intact."""
    for label, image, mask, keywords in _ordinary_cases(method):
        before = image.copy()
        out = inpaint(image, mask, method.name, **keywords, **options_for(method, image))
        try:
            assert_promises(
                out, image, before, mask, keywords.get("channel_axis"), keywords.get("spatial_ndim", 2)
            )
        except AssertionError as error:
            raise AssertionError(f"{method.name} on the {label} case: {error}") from error


def _two_planes() -> tuple[np.ndarray, np.ndarray]:
    """Two planes with different masks: at least two units of work, whatever the method."""
    mask = _holes((40, 40))
    return _textured((2, 40, 40)).astype(np.float32), np.stack([mask, mask.T])


def check_cancel(method: Method) -> None:
    """A cancel event set before the call, or at the first progress report, raises InpaintCancelled."""
    image, mask = _two_planes()
    before = image.copy()
    options = options_for(method, image)
    already = threading.Event()
    already.set()
    with pytest.raises(InpaintCancelled):
        inpaint(image, mask, method.name, cancel=already, **options)
    during = threading.Event()
    with pytest.raises(InpaintCancelled):
        # Cancelled at the first progress report: no further hole may be filled.
        inpaint(image, mask, method.name, cancel=during, progress=lambda done, total: during.set(), **options)
    np.testing.assert_array_equal(image, before)


def check_progress(method: Method, register_method) -> None:
    """Progress rises to the total, one step per unit of work; a fill's own reports become fractions.

    The method runs as a registered copy whose fill records what it reports,
    so that each of those reports can be matched with the engine's.
    """
    events = []
    fill = method.fill
    spied_name = f"{method.name} (spied)"

    @functools.wraps(fill)
    def spied(image, mask, **keywords):
        if keywords.get("progress") is not None:
            forward = keywords["progress"]

            def progress(step, steps):
                events.append(("fill", step, steps))
                forward(step, steps)

            keywords["progress"] = progress
        return fill(image, mask, **keywords)

    record = {f.name: getattr(method, f.name) for f in dataclasses.fields(method)}
    for derived in ("name", "fill", "engine_keywords"):
        del record[derived]
    register_method(spied_name, **record)(spied)

    image, mask = _two_planes()
    options = options_for(method, image)
    inpaint(image, mask, spied_name, progress=lambda done, of: events.append(("run", done, of)), **options)
    assert events, f"{method.name} reported no progress"
    total = events[-1][2]
    assert events[-1] == ("run", total, total)
    runs = [value for source, value, of in events if source == "run" and of == total]
    assert len(runs) == sum(source == "run" for source, _, _ in events)  # one total throughout
    assert runs == sorted(runs) and runs[0] >= 0
    # One step up as each unit of work (at least two here) ends.
    assert len({value for value in runs if value > 0 and value == int(value)}) >= 2
    for (source, step, steps), forwarded in itertools.pairwise(events):
        if source == "fill":
            # The fill's step, as a fraction of the unit of work it fills.
            unit_start = forwarded[1] - step / max(steps, 1)
            assert forwarded[0] == "run" and unit_start == pytest.approx(round(unit_start), abs=1e-9)


def check_threads(method: Method) -> None:
    """Calls running at once in threads give the bit-identical results of the same calls one by one."""
    plane, plane_mask = _two_planes()
    image, mask = plane[0], plane_mask[0]
    options = options_for(method, image)

    def run(seed: int) -> np.ndarray:
        return inpaint(image, mask, method.name, seed=seed, noise="gaussian", **options)

    serial = [run(seed) for seed in (1, 2)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(run, [1, 2, 1, 2]))
    for index, result in enumerate(parallel):
        np.testing.assert_array_equal(result, serial[index % 2])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread (and a loaded machine makes more far slower)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


each_method = pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS], indirect=True)


@each_method
def test_fills_keep_known_pixels_dtype_shape_and_input(method):
    check_fills(method)


@each_method
def test_cancel_raises_before_and_during_the_fill(method):
    check_cancel(method)


@each_method
def test_progress_rises_to_the_total(method, register_method):
    check_progress(method, register_method)


@each_method
def test_results_are_identical_when_threads_run_at_once(method):
    check_threads(method)
