"""Reference data (another image, or a stack's neighbouring planes), its alignment, and the 'guided' fill."""

import re
import threading

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data

from napari_inpaint import InpaintCancelled, inpaint, masks
from napari_inpaint.engine.reference import estimate_shift, plausible_shifts, shift_image


def _texture(shape=(96, 96), seed=0) -> np.ndarray:
    """A band-limited texture: periodic, so that Fourier shifts of it are exact."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.normal(size=shape))
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    return np.fft.ifft2(spectrum * np.exp(-(fy**2 + fx**2) / (2 * 0.08**2))).real * 40 + 500


def _fourier_shift(image: np.ndarray, shift) -> np.ndarray:
    return np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(image), shift)).real


def test_a_plane_equal_to_its_reference_plus_a_ramp_is_filled_exactly():
    reference = _texture()
    yy, xx = np.mgrid[:96, :96]
    plane = reference + 0.3 * yy - 0.2 * xx + 7.0
    mask = np.zeros(plane.shape, bool)
    mask[30:60, 20:70] = True
    filled = inpaint(plane, mask, "guided", reference=reference, align=False)
    np.testing.assert_allclose(filled, plane, atol=1e-8)
    # Gain and offset (bleaching, another detector) are absorbed too.
    filled = inpaint(1.7 * plane + 40, mask, "guided", reference=reference, align=False)
    np.testing.assert_allclose(filled, 1.7 * plane + 40, atol=1e-8)


@pytest.mark.parametrize("shift", [(0.3, -0.45), (2.75, 1.2), (-4.1, 3.6)])
def test_a_sub_pixel_shift_is_registered_within_a_tenth_of_a_pixel(shift):
    fixed = _texture(seed=1)
    moving = _fourier_shift(fixed, shift)
    fixed_known = np.ones(fixed.shape, bool)
    fixed_known[40:60, 30:70] = False  # the hole to fill
    moving_known = np.ones(fixed.shape, bool)
    moving_known[10:25, 60:80] = False  # the neighbour is damaged elsewhere
    estimate = estimate_shift(fixed[..., None], fixed_known, moving[..., None], moving_known)
    assert np.abs(estimate + np.asarray(shift)).max() < 0.1


def test_a_shifted_image_keeps_known_only_what_it_can_interpolate():
    values = _texture()[..., None]
    known = np.ones(values.shape[:2], bool)
    known[40, 40] = False
    moved, moved_known = shift_image(values, known, np.array([2.5, -1.5]))
    assert not moved_known[:3].any() and not moved_known[:, -2:].any()  # came from outside
    assert not moved_known[42:45, 38:40].any()  # touched the unknown pixel
    shifted = _fourier_shift(values[..., 0], (2.5, -1.5))
    np.testing.assert_allclose(moved[50:60, 50:60, 0], shifted[50:60, 50:60], atol=2)


def _drifting_stack(planes=5, drift=(0.6, -0.4), seed=0) -> np.ndarray:
    """Planes of one field with sub-pixel drift, bleaching and noise (a textured time-lapse)."""
    rng = np.random.default_rng(seed)
    field = data.camera()[100:260, 100:260].astype(float)
    frames = []
    for t in range(planes):
        moved = ndi.shift(field, (drift[0] * t, drift[1] * t), order=3, mode="nearest")
        frames.append(moved * 0.97**t + rng.normal(0, 2, field.shape))
    return np.stack(frames)


def test_adjacent_planes_fill_a_drifting_stack_far_better_than_biharmonic():
    stack = _drifting_stack()
    mask = np.zeros(stack.shape, bool)
    mask[2, 50:90, 40:100] = True
    truth = stack[2][mask[2]]

    def hole_psnr(filled):
        error = filled[2][mask[2]] - truth
        return 10 * np.log10(255.0**2 / np.mean(error**2))

    smooth = hole_psnr(inpaint(stack, mask, "biharmonic"))
    guided = hole_psnr(inpaint(stack, mask, "guided", reference="adjacent"))
    unaligned = hole_psnr(inpaint(stack, mask, "guided", reference="adjacent", align=False))
    assert guided > smooth + 6
    assert guided > unaligned  # registration matters when the stage drifts


def _microscope_stack(image, shape=(33, 41), planes=12, photons=30.0, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A small, dim time-lapse of a crop of ``image`` and its noise-free planes.

    A random-walk stage drift (0.3 pixel per plane and axis), 1 % bleaching per
    plane, ``photons`` photons at the brightest pixel, photon and read noise.
    """
    rng = np.random.default_rng(seed)
    field = image.astype(float) / image.max()
    top, left = (np.array(field.shape) - shape) // 2
    position = np.zeros(2)
    noisy, truth = [], []
    for t in range(planes):
        position += rng.normal(0, 0.3, 2)
        moved = ndi.shift(field, position, order=3, mode="reflect")[top : top + shape[0], left : left + shape[1]]
        expected = photons * np.clip(moved, 0, None) * 0.99**t
        truth.append(expected)
        noisy.append(rng.poisson(expected) + rng.normal(0, 3.0, expected.shape))
    return np.array(noisy), np.array(truth)


def _hole_psnr(filled: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    error = filled[mask] - truth[mask]
    return 10 * np.log10(np.ptp(truth) ** 2 / np.mean(error**2))


def test_hot_pixels_bad_in_every_plane_get_the_planes_own_fill():
    # No plane knows a persistent hot pixel: the fill must be the plane's own (harmonic), not
    # pixels of far planes that spurious shifts of these small, noisy planes make look known.
    stack, truth = _microscope_stack(data.camera())
    hot = masks.hot_pixels(stack.shape[1:], 0.01, seed=0)
    mask = np.broadcast_to(hot, stack.shape)
    damaged = np.where(mask, 4000.0, stack)
    guided = inpaint(damaged, mask, "guided", reference="adjacent")
    own = inpaint(damaged, mask, "harmonic")
    # Equal but at the plane's border, where the linear trend of guided's model is not harmonic.
    assert np.abs(guided - own)[mask].max() < 0.005 * np.ptp(truth)
    assert _hole_psnr(guided, truth, mask) > _hole_psnr(inpaint(damaged, mask, "biharmonic"), truth, mask) - 0.5
    np.testing.assert_array_equal(guided[~mask], damaged[~mask])


def test_registration_of_small_noisy_planes_finds_no_shift_where_there_is_none():
    # A registered stack (no drift) of 33x41 planes, too dim to register: phase correlation finds
    # chance peaks up to 28 pixels away; the significance test and the search bound refuse them.
    rng = np.random.default_rng(1)
    truth = 30.0 * data.cell()[300:333, 250:291] / 255.0
    stack = rng.poisson(np.broadcast_to(truth, (10, *truth.shape))) + rng.normal(0, 3.0, (10, *truth.shape))
    known = np.ones(truth.shape, bool)
    known[masks.hot_pixels(truth.shape, 0.01, seed=1)] = False
    for first in range(len(stack) - 2):
        for second in (first + 1, first + 2):
            shift = estimate_shift(stack[first][..., None], known, stack[second][..., None], known)
            assert shift is None or np.abs(shift).max() <= 1


def test_a_real_shift_of_a_small_plane_is_still_found():
    texture = _texture(seed=3)
    fixed = texture[20:53, 30:71]
    moving = _fourier_shift(texture, (2.4, -1.7))[20:53, 30:71]
    known = np.ones(fixed.shape, bool)
    estimate = estimate_shift(fixed[..., None], known, moving[..., None], known)
    assert np.abs(estimate - (-2.4, 1.7)).max() < 0.25


def test_a_shift_off_the_stacks_drift_is_replaced_by_the_drift():
    drift = np.array([0.5, -0.3])
    estimates = {-2: -2 * drift, -1: -drift + 0.1, 1: drift, 2: np.array([14.0, 9.0])}  # +2: a chance peak
    shifts = plausible_shifts(estimates, ndim=2)
    np.testing.assert_allclose(shifts[-1], -drift + 0.1)
    np.testing.assert_allclose(shifts[2], 2 * drift, atol=0.1)
    # Nothing significant, or two estimates that contradict each other: no shift.
    for estimates in ({-1: None, 1: None}, {-1: np.array([6.0, 0.0]), 1: np.array([6.0, 0.0])}):
        assert all(not shift.any() for shift in plausible_shifts(estimates, ndim=2).values())


def test_planes_beyond_the_reach_are_not_searched():
    texture = _texture()
    stack = np.stack([texture] * 7)
    mask = np.zeros(stack.shape, bool)
    mask[1:6, 40:50, 40:50] = True  # only planes 0 and 6, three planes away from plane 3, know the hole
    filled = inpaint(stack, mask, "guided", reference="adjacent", align=False)
    own = inpaint(stack, mask, "harmonic")
    np.testing.assert_allclose(filled[3], own[3], atol=1e-6 * np.ptp(texture))


@pytest.mark.parametrize("align", [True, False])
def test_nan_in_the_hole_is_ignored(align):
    stack = _drifting_stack()
    mask = np.zeros(stack.shape, bool)
    mask[2, 50:90, 40:100] = True
    mask[1, 60:70, 45:55] = True
    with_zeros = np.where(mask, 0.0, stack)
    with_nan = np.where(mask, np.nan, stack)
    for reference in ("adjacent", with_zeros[1]):
        expected = inpaint(with_zeros, mask, "guided", reference=reference, align=align)
        np.testing.assert_array_equal(inpaint(with_nan, mask, "guided", reference=reference, align=align), expected)
        assert np.isfinite(expected).all()


@pytest.mark.parametrize(
    "reference",
    [
        np.zeros((16, 16), complex),
        np.zeros((16, 16), object),
        np.full((16, 16), "1"),
        np.zeros((16, 16), bool),
    ],
    ids=["complex", "object", "string", "bool"],
)
def test_a_reference_of_no_real_number_dtype_is_refused(reference):
    image = np.ones((2, 16, 16))
    mask = np.eye(16, dtype=bool)
    match = f"reference has dtype {reference.dtype}; give a real-valued numeric array"
    with pytest.raises(TypeError, match=re.escape(match)):
        inpaint(image, mask, "guided", reference=reference)
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match=re.escape(match)):
        inpaint(da.from_array(image, chunks=(1, 16, 16)), mask, "guided", reference=reference)


def test_a_neighbour_damaged_at_the_same_place_is_skipped():
    texture = _texture()
    stack = np.stack([texture * (1 + 0.1 * k) for k in range(5)])  # one field, a gain per plane
    mask = np.zeros(stack.shape, bool)
    mask[2, 30:50, 30:50] = True  # the hole to fill
    mask[1, 10:70, 10:70] = True  # the plane before is damaged around it too ...
    stack[1][mask[1]] = 0.0  # ... and holds garbage, which must not be used
    filled = inpaint(stack, mask, "guided", reference="adjacent", align=False)
    # Plane 3 alone knows the hole: with the gain absorbed, the fill is exact.
    np.testing.assert_allclose(filled[2], texture * 1.2, atol=1e-8)
    # With both neighbours known, their mean is the reference: still exact under the linear model.
    mask[1] = False
    stack[1] = texture * 1.1
    filled = inpaint(stack, mask, "guided", reference="adjacent", align=False)
    np.testing.assert_allclose(filled[2], texture * 1.2, atol=1e-8)


def test_one_reference_image_serves_every_plane_and_rgb():
    texture = _texture()
    stack = np.stack([texture + 10 * k for k in range(3)])
    mask = np.zeros((96, 96), bool)
    mask[20:40, 20:60] = True
    filled = inpaint(stack, mask, "guided", reference=texture, align=False)
    np.testing.assert_allclose(filled, stack, atol=1e-8)
    rgb = np.stack([texture, 2 * texture, texture + 5], axis=-1)
    filled = inpaint(rgb, mask, "guided", reference=np.stack([texture] * 3, axis=-1), align=False)
    np.testing.assert_allclose(filled, rgb, atol=1e-8)


@pytest.mark.parametrize(
    ("method", "kwargs", "error", "match"),
    [
        ("guided", {}, ValueError, "fills from reference data: pass reference='adjacent'"),
        ("harmonic", {"reference": "adjacent"}, ValueError, "does not use a reference; methods that do: guided"),
        ("guided", {"reference": "nearby"}, ValueError, "reference must be None, 'adjacent' or an array"),
        ("guided", {"reference": np.zeros((5, 5))}, ValueError, r"reference of shape \(5, 5\) does not fit"),
        ("guided", {"reference": "adjacent", "align": "yes"}, TypeError, "align must be True or False"),
    ],
)
def test_bad_references_get_a_clear_error(method, kwargs, error, match):
    with pytest.raises(error, match=match):
        inpaint(np.ones((2, 16, 16)), np.eye(16, dtype=bool), method, **kwargs)


def test_adjacent_needs_a_stack_and_a_finite_reference():
    with pytest.raises(ValueError, match="single plane"):
        inpaint(np.ones((16, 16)), np.eye(16, dtype=bool), "guided", reference="adjacent")
    reference = np.ones((16, 16))
    reference[0, 0] = np.nan
    with pytest.raises(ValueError, match="reference has NaN"):
        inpaint(np.ones((16, 16)), np.eye(16, dtype=bool), "guided", reference=reference)


def test_dask_takes_reference_arrays_and_adjacent_planes_as_numpy_does():
    da = pytest.importorskip("dask.array")
    texture = _texture()
    stack = np.stack([texture + 10 * k for k in range(4)])
    mask = np.zeros((96, 96), bool)
    mask[20:40, 20:60] = True
    lazy = inpaint(da.from_array(stack, chunks=(1, 96, 96)), mask, "guided", reference=texture, align=False)
    np.testing.assert_allclose(lazy.compute(), stack, atol=1e-8)
    drifting = _drifting_stack(planes=6)
    holes = np.zeros(drifting.shape, bool)
    holes[1::2, 40:60, 30:50] = True  # every other plane: its neighbours know its holes
    expected = inpaint(drifting, holes, "guided", reference="adjacent")
    for chunks in ((1, 160, 160), (4, 80, 160)):
        lazy = inpaint(da.from_array(drifting, chunks=chunks), holes, "guided", reference="adjacent")
        np.testing.assert_array_equal(lazy.compute(), expected)


def test_cancel_reaches_the_reference_search():
    stack = _drifting_stack(planes=6)
    mask = np.zeros(stack.shape, bool)
    mask[:, 40:60, 40:60] = True
    event = threading.Event()
    event.set()
    with pytest.raises(InpaintCancelled):
        inpaint(stack, mask, "guided", reference="adjacent", cancel=event)


def test_a_preparation_runs_once_per_call_and_once_for_a_lazy_result(register_method):
    da = pytest.importorskip("dask.array")
    from napari_inpaint import Param

    calls = []

    def prepare(stack, *, gain=1.0, progress=None):
        calls.append((stack.planes.shape, stack.masks.shape))
        if progress is not None:
            progress(1, 2)
            progress(2, 2)
        return gain

    @register_method("prepared-once", params=(Param("gain", float, 1.0, "a factor"),), prepare=prepare)
    def fill(image, mask, *, prepared=None):
        return np.where(mask[..., None], prepared * image[~mask].mean(axis=0), image)

    stack = np.random.default_rng(0).random((4, 16, 16))
    mask = np.zeros(stack.shape, bool)
    mask[:, 3:5, 3:5] = True
    mask[2, 10:12, 10:12] = True
    reports = []
    out = inpaint(stack, mask, "prepared-once", gain=2.0, clip=False, progress=lambda d, t: reports.append((d, t)))
    assert calls == [((4, 16, 16, 1), (4, 16, 16))]
    # The preparation has 80 % of the bar, then one unit per fill.
    total = reports[-1][1]
    assert reports[:2] == [(total * 0.4, total), (total * 0.8, total)] and reports[-1] == (total, total)
    once = inpaint(stack, mask, "prepared-once", gain=1.0, clip=False)
    np.testing.assert_allclose(out[mask], 2.0 * once[mask])  # every fill received the preparation

    calls.clear()
    lazy = inpaint(da.from_array(stack, chunks=(1, 16, 16)), mask, "prepared-once", gain=2.0, clip=False)
    np.testing.assert_allclose(lazy.compute(), out)
    assert len(calls) == 1  # four blocks, one preparation
