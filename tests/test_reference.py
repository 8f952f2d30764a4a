"""Reference data (another image, or a stack's neighbouring planes), its alignment, and the 'guided' fill."""

import threading

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data

from napari_inpaint import InpaintCancelled, inpaint
from napari_inpaint._reference import estimate_shift, shift_image


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


def test_dask_takes_reference_arrays_and_refuses_adjacent():
    da = pytest.importorskip("dask.array")
    texture = _texture()
    stack = np.stack([texture + 10 * k for k in range(4)])
    mask = np.zeros((96, 96), bool)
    mask[20:40, 20:60] = True
    lazy = inpaint(da.from_array(stack, chunks=(1, 96, 96)), mask, "guided", reference=texture, align=False)
    np.testing.assert_allclose(lazy.compute(), stack, atol=1e-8)
    with pytest.raises(ValueError, match="not available for a dask array"):
        inpaint(da.from_array(stack, chunks=(1, 96, 96)), mask, "guided", reference="adjacent")


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
