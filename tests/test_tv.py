"""Total-variation inpainting (method 'tv') and the PyTorch device helper."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.draw import line

from napari_inpaint import get_method, inpaint
from napari_inpaint.methods import tv as tv_module
from napari_inpaint.models.devices import available_devices, select_device

torch = pytest.importorskip("torch")
fill = get_method("tv").fill

LOW, HIGH = 10.0, 200.0


def _step(shape: tuple[int, ...]) -> np.ndarray:
    """Two flat regions split by a straight edge across the last axis."""
    edge = shape[-1] // 2
    return np.where(np.arange(shape[-1]) < edge, LOW, HIGH) * np.ones(shape)


def _stroke(shape: tuple[int, int], start, end) -> np.ndarray:
    """A three-pixel-wide straight stroke."""
    mask = np.zeros(shape, bool)
    mask[line(*start, *end)] = True
    return ndi.binary_dilation(mask)


def _total_variation(u: np.ndarray) -> float:
    """Isotropic TV with forward differences and the Neumann border."""
    squares = sum(np.diff(u, axis=axis, append=np.take(u, [-1], axis=axis)) ** 2 for axis in range(u.ndim))
    return float(np.sqrt(squares).sum())


def test_edge_across_thin_hole_is_recovered_sharply():
    image = _step((64, 64))
    mask = _stroke(image.shape, (8, 4), (56, 60))
    filled = inpaint(image, mask, "tv")
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    error = np.abs(filled - image)
    # A blur across the edge would leave errors of tens of grey levels next to it.
    assert error.max() < 0.01 * (HIGH - LOW)
    assert error[mask].mean() < 1e-3 * (HIGH - LOW)


def test_band_across_edge_converges_to_the_edge():
    image = _step((32, 32))
    mask = np.zeros(image.shape, bool)
    mask[13:19] = True
    filled = fill(image[..., None] * ~mask[..., None], mask, iterations=3000, tol=1e-6)[..., 0]
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    assert np.abs(filled - image).max() < 0.005 * (HIGH - LOW)


def test_fill_is_scale_free():
    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.random((32, 32)), 3)
    mask = _stroke(image.shape, (2, 5), (30, 25))
    base = inpaint(image, mask, "tv", iterations=200)
    scaled = inpaint(1000.0 * image - 7.0, mask, "tv", iterations=200)
    np.testing.assert_allclose(scaled, 1000.0 * base - 7.0, atol=1e-3 * np.ptp(1000.0 * image))


def test_each_hole_stops_on_its_own_gap():
    image = _step((64, 64))
    small = np.zeros(image.shape, bool)
    small[20:23, 24:40] = True  # a thin band across the edge: converges in a few hundred iterations
    wide = np.zeros(image.shape, bool)
    wide[40:60, 4:60] = True  # runs to the iteration limit
    alone = fill(image[..., None], small)[..., 0]
    together = fill(image[..., None], small | wide)[..., 0]
    np.testing.assert_array_equal(together[~(small | wide)], image[~(small | wide)])
    # The small hole's fill neither waits for the wide one nor depends on it (beyond the tolerance).
    np.testing.assert_allclose(together[small], alone[small], atol=2e-3 * (HIGH - LOW))
    assert np.abs(together - image)[small].max() < 0.01 * (HIGH - LOW)


def test_3d_hole_across_a_plane_edge():
    volume = _step((20, 20, 20))
    mask = np.zeros(volume.shape, bool)
    mask[6:14, 7:13, 5:15] = True
    filled = inpaint(volume, mask, "tv", spatial_ndim=3)
    np.testing.assert_array_equal(filled[~mask], volume[~mask])
    assert np.abs(filled - volume).max() < 0.02 * (HIGH - LOW)


def test_channels_are_filled_independently():
    vertical = _step((48, 48))
    image = np.stack([vertical, vertical.T * 100.0, np.full((48, 48), 3.0)], axis=-1)
    mask = _stroke((48, 48), (4, 10), (44, 40))
    filled = inpaint(image, mask, "tv")
    # With a fixed number of iterations the batch gives each channel its own fill.
    batched = inpaint(image, mask, "tv", iterations=200, tol=0.0)
    for channel in range(3):
        alone = inpaint(image[..., channel], mask, "tv", iterations=200, tol=0.0)
        contrast = max(np.ptp(image[..., channel]), 1.0)
        np.testing.assert_allclose(batched[..., channel], alone, atol=1e-5 * contrast)
        assert np.abs(filled[..., channel] - image[..., channel]).max() < 0.01 * contrast


def test_more_iterations_lower_energy_and_error():
    yy, xx = np.mgrid[:48, :48]
    image = np.where(xx + 0.4 * yy > 30, HIGH, LOW)
    mask = np.zeros(image.shape, bool)
    mask[16:32, 12:36] = True
    results = [inpaint(image, mask, "tv", iterations=n, tol=0.0) for n in (10, 100, 1000)]
    energies = [_total_variation(r) for r in results]
    errors = [np.abs(r - image)[mask].mean() for r in results]
    assert energies[0] > energies[1] > energies[2]
    assert errors[0] > errors[2]
    # The minimiser's TV cannot exceed that of the true image, which also fits the known pixels.
    assert energies[2] <= _total_variation(image) * (1 + 1e-4)


def test_integer_image_keeps_dtype():
    image = _step((32, 32)).astype(np.uint16)
    mask = _stroke(image.shape, (0, 3), (31, 28))
    filled = inpaint(image, mask, "tv")
    assert filled.dtype == np.uint16
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    assert np.abs(filled.astype(int) - image).max() <= 1


def test_check_cancels():
    class Stop(Exception):
        pass

    def check():
        raise Stop

    image = _step((32, 32))
    mask = _stroke(image.shape, (0, 0), (31, 31))
    with pytest.raises(Stop):
        fill(image[..., None], mask, iterations=1000, tol=0.0, check=check)


def test_auto_device_prefers_accelerators():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device().type == expected
    assert available_devices()[-1] == "cpu"
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'cuda' is not available.*available devices: auto, cpu"):
        select_device("cuda")
    image = _step((16, 16))
    mask = _stroke(image.shape, (0, 0), (15, 15))
    with pytest.raises(ValueError, match="not available"):
        inpaint(image, mask, "tv", device="cuda")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")


def test_importing_models_does_not_import_torch():
    code = "import sys, napari_inpaint.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_engine_fill_equals_the_direct_fill():
    """Through the engine (a crop that is the whole image here, zeroed holes, scaled values) the fill is the
    direct one.  At a fixed number of iterations the start depends on the crop's box (its coarse grids), so the
    one-pixel margin is checked on the solver itself (test_active_pixels_iterate_as_the_whole_crop)."""
    rng = np.random.default_rng(1)
    image = ndi.gaussian_filter(rng.random((48, 48)), 2) * 100
    mask = _stroke(image.shape, (2, 2), (45, 40)) | _stroke(image.shape, (30, 0), (20, 47))
    mask[5:12, 30:40] = True
    whole = fill(image[..., None] * ~mask[..., None], mask, iterations=100, tol=0.0)[..., 0]
    cropped = inpaint(image, mask, "tv", iterations=100, tol=0.0)
    np.testing.assert_allclose(cropped, whole, rtol=0, atol=1e-9)


def test_progress_is_reported_within_one_hole():
    image = np.random.default_rng(0).random((64, 64))
    mask = np.zeros(image.shape, bool)
    mask[16:48, 16:48] = True
    calls = []
    inpaint(image, mask, "tv", iterations=200, tol=0.0, progress=lambda done, total: calls.append((done, total)))
    fractions = [done for done, total in calls if 0 < done < 1]
    assert len(fractions) >= 5 and fractions == sorted(fractions)
    assert calls[-1] == (1, 1)


# --------------------------------------------------------------------------- properties of the solver's pieces


@st.composite
def holes(draw) -> tuple[np.ndarray, np.ndarray]:
    """A small image (channels last) and a mask with at least one hole and one known pixel.

    Shapes down to 1xN and odd sizes, 2D and 3D; masks of scattered pixels (one-pixel holes, holes on the
    border) plus an optional box, so that the coarse grids of the start have holes too.
    """
    ndim = draw(st.sampled_from([2, 2, 3]))
    coarse = draw(st.booleans())  # sides of 4 or more and a box: the start has coarse grids
    side = st.integers(4 if coarse else 1, 20 if ndim == 2 else 9)
    shape = tuple(draw(st.lists(side, min_size=ndim, max_size=ndim)))
    if np.prod(shape) == 1:
        shape = (1,) * (ndim - 1) + (2,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mask = rng.random(shape) < draw(st.floats(0.0, 0.3))
    if coarse or draw(st.booleans()):
        corner = [rng.integers(0, n) for n in shape]
        mask[tuple(slice(c, c + rng.integers(2, n + 2)) for c, n in zip(corner, shape))] = True
    hole, known = rng.choice(mask.size, 2, replace=False)
    mask.ravel()[[hole, known]] = True, False
    image = rng.normal(50.0, 20.0, shape + (draw(st.integers(1, 2)),))
    image[mask] = 0.0
    return image, mask


def _normalised_start(image: np.ndarray, mask: np.ndarray, iterations: int):
    """The solver's inputs on the CPU: the active pixels, the whole-crop start normalised to the ring's range,
    and the start's dual vectors."""
    active = tv_module._Active(mask)
    ring = image.reshape(mask.size, -1)[active.pixels[active.free :]]
    low, span = ring.min(axis=0), np.ptp(ring, axis=0)
    span[span == 0] = 1.0
    start, duals = tv_module._start(image, mask, active, iterations, 0.0, "cpu", None)
    np.testing.assert_array_equal(start[~mask], image[~mask])
    return active, (start - low) / span, duals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=holes())
def test_active_pixels_iterate_as_the_whole_crop(case):
    """At tol=0 the per-hole iteration over the active pixels (numba) follows the whole-crop iteration of the
    GPU path (PyTorch, run here on the CPU) step by step, from the same coarse-to-fine start."""
    image, mask = case
    active, start, duals = _normalised_start(image, mask, 40)
    channels = image.shape[-1]
    # The start's dual vectors lie in the unit ball and vanish at each axis's last entry (the divergence of
    # both paths relies on it).
    if duals is not None:
        assert duals.shape == (active.duals, channels, mask.ndim)
        assert (np.sqrt((duals**2).sum(axis=-1)) <= 1 + 1e-12).all()
        coords = np.unravel_index(active.pixels[: active.duals], mask.shape)
        for axis, (coord, size) in enumerate(zip(coords, mask.shape)):
            assert (duals[coord == size - 1, :, axis] == 0).all()
    on_cpu = tv_module._on_cpu(start.reshape(mask.size, -1)[active.pixels], duals, active, 40, 0.0, None, None)
    whole = tv_module._on_device(start, duals, mask, active, torch.device("cpu"), 40, 0.0, None, None)
    for ours, reference in zip(on_cpu, whole):
        # float32 on the device; the over-relaxed steps (1.9x) carry its rounding further than plain ones
        np.testing.assert_allclose(ours, reference, rtol=0, atol=5e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=holes(), dtype=st.sampled_from([np.float32, np.float64]), tol=st.sampled_from([0.0, 1e-4]))
def test_fill_keeps_known_pixels_and_stays_in_the_known_range(case, dtype, tol):
    image, mask = case
    image = image.astype(dtype)
    filled = fill(image, mask, iterations=300, tol=tol, device="cpu")
    assert filled.dtype == image.dtype and filled.shape == image.shape
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    assert np.isfinite(filled).all()
    # TV obeys a maximum principle: even an iterate stopped early is clipped to the range (up to rounding).
    low, high = image[~mask].min(axis=0), image[~mask].max(axis=0)
    slack = 1e-6 * np.maximum(high - low, 1e-12)
    assert (filled >= low - slack).all() and (filled <= high + slack).all()


@pytest.mark.parametrize("shape", [(12, 15), (6, 7, 5)])
def test_lone_pixels_take_their_exact_minimiser(shape):
    """A hole pixel with no hole around it is a problem of one unknown: its fill is the exact minimiser, on the
    border and where the minimisers form an interval (ties) too, whatever the number of iterations."""
    rng = np.random.default_rng(3)
    image = rng.random(shape)
    image[::2] = np.round(image[::2] * 2) / 2  # equal neighbours: intervals of minimisers
    mask = np.zeros(shape, bool)
    mask[(slice(None, None, 3),) * len(shape)] = True
    mask[(-1,) * len(shape)] = True
    filled = fill(image[..., np.newaxis], mask, iterations=10, device="cpu")[..., 0]
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    energy = _total_variation(filled)
    for index in zip(*np.nonzero(mask)):
        for delta in (1e-3, -1e-3, 1e-7, -1e-7):
            moved = filled.copy()
            moved[index] += delta
            assert _total_variation(moved) >= energy - 1e-12
    # Between a known 0 and a known 1 on a line every value in [0, 1] is a minimiser: the fill takes the middle.
    line = fill(np.array([[[0.0], [0.0], [1.0]]]), np.array([[False, True, False]]), device="cpu")
    assert line[0, 1, 0] == pytest.approx(0.5, abs=1e-12)


def test_an_empty_mask_returns_the_image():
    image = np.random.default_rng(0).random((8, 8, 1))
    np.testing.assert_array_equal(fill(image, np.zeros((8, 8), bool), device="cpu"), image)


def test_coarse_grids_check_for_cancel():
    """The coarse grids of the start iterate too: they call ``check`` as the finest grid does."""
    image = _step((64, 64))[..., None]
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    calls = []
    fill(image, mask, iterations=100, tol=0.0, device="cpu", check=lambda: calls.append(1))
    assert len(calls) > 100 // 20
