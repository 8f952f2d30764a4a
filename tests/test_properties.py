"""Property sweep: the engine's promises for every method that needs no download.

Random dtypes (including 64-bit integers and extreme floats), shapes (1xN,
Nx1, 2x2, odd sizes, stacks, RGB, channels first, volumes) and masks (empty,
one pixel, borders, nearly full, random).  Every call either returns an
array that keeps the promises below, or refuses with an error raised by our
own code (a message written for the user, not numpy's or torch's words).
Cancel and determinism under threads are checked for every method too.
"""

import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_inpaint import InpaintCancelled, inpaint, list_methods

METHODS = [m for m in list_methods() if not m.needs_download]
# Network methods get tiny budgets: the sweep checks contracts, not quality.
BUDGETS = {
    "learned": {"steps": 2, "seconds": 0, "crop_size": 16, "width": 4, "context": 16, "device": "cpu"},
    "dip": {"iterations": 2, "width": 4, "context": 4, "device": "cpu"},
    "tv": {"iterations": 40},
}
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.uint64, np.float32, np.float64]


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
    options = {"channel_axis": channel_axis, "spatial_ndim": spatial_ndim, "seed": draw(st.integers(0, 2**32))}
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


def _channels_last(array: np.ndarray, channel_axis) -> np.ndarray:
    return array[..., np.newaxis] if channel_axis is None else np.moveaxis(array, channel_axis, -1)


def _refused_by_us(error: Exception) -> bool:
    """True when the error was raised by napari-inpaint's own code (a message for the user)."""
    return "napari_inpaint" in traceback.extract_tb(error.__traceback__)[-1].filename


def _check_promises(image, mask, options, method) -> None:
    before = image.copy()
    try:
        out = inpaint(image, mask, method.name, **options, **BUDGETS.get(method.name, {}))
    except (ValueError, TypeError) as error:
        assert _refused_by_us(error), f"{method.name} raised from a library: {error!r}"
        return
    np.testing.assert_array_equal(image, before)  # the input is never modified
    assert out.shape == image.shape and out.dtype == image.dtype and out is not image
    result, source = _channels_last(out, options["channel_axis"]), _channels_last(image, options["channel_axis"])
    holes = np.broadcast_to(mask, result.shape[:-1])
    assert np.array_equal(result[~holes], source[~holes])  # known pixels bit-identical
    if np.issubdtype(out.dtype, np.floating):
        assert np.isfinite(out).all()
    # Fills stay within the range of their plane's known pixels (per channel).
    spatial = options["spatial_ndim"]
    planes = result.reshape((-1,) + result.shape[-spatial - 1 :])
    plane_holes = holes.reshape((-1,) + holes.shape[-spatial:])
    for plane, hole in zip(planes, plane_holes):
        if hole.any():
            known, filled = plane[~hole], plane[hole]
            assert (filled >= known.min(axis=0)).all() and (filled <= known.max(axis=0)).all()


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_every_call_keeps_the_promises_or_refuses_clearly(method):
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=cases(method))
    def sweep(case):
        _check_promises(*case, method)

    sweep()


def _textured_case() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:40, :40]
    image = (500 + 300 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + rng.normal(0, 20, (40, 40))).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[12:20, 14:24] = True
    mask[30, 5:35] = True
    return image, mask


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_cancel_raises_before_and_during_the_fill(method):
    plane, plane_mask = _textured_case()
    # Two planes with different masks: at least two units of work, whatever the method.
    image, mask = np.stack([plane, plane[::-1]]), np.stack([plane_mask, plane_mask.T])
    budget = BUDGETS.get(method.name, {})
    already = threading.Event()
    already.set()
    with pytest.raises(InpaintCancelled):
        inpaint(image, mask, method.name, cancel=already, **budget)
    during = threading.Event()
    with pytest.raises(InpaintCancelled):
        # Cancelled at the first progress report: no further hole may be filled.
        inpaint(image, mask, method.name, cancel=during, progress=lambda done, total: during.set(), **budget)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_results_are_identical_when_threads_run_at_once(method):
    image, mask = _textured_case()
    budget = BUDGETS.get(method.name, {})

    def run(seed: int) -> np.ndarray:
        return inpaint(image, mask, method.name, seed=seed, noise="gaussian", **budget)

    serial = [run(seed) for seed in (1, 2)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(run, [1, 2, 1, 2]))
    for index, result in enumerate(parallel):
        np.testing.assert_array_equal(result, serial[index % 2])
