"""Known-answer tests for the harmonic, biharmonic and interpolate methods."""

import numpy as np
import pytest
from skimage import data, draw, morphology, restoration
from skimage.metrics import peak_signal_noise_ratio

from napari_inpaint import get_method, inpaint


def _interior_holes(shape):
    mask = np.zeros(shape, bool)
    mask[10:20, 12:30] = True
    rr, cc = draw.line(5, 40, 50, 55)
    mask[rr, cc] = True
    mask[40:44, 10:14] = True
    return mask


def test_harmonic_fills_linear_ramp_exactly():
    yy, xx = np.mgrid[:64, :64].astype(float)
    ramp = 2.5 * yy - 1.5 * xx + 7
    mask = _interior_holes(ramp.shape)
    np.testing.assert_allclose(inpaint(ramp, mask, "harmonic"), ramp, atol=1e-9)


def test_biharmonic_fills_quadratic_exactly():
    yy, xx = np.mgrid[:64, :64].astype(float)
    quadratic = 0.3 * (yy - 30) ** 2 - 0.2 * (xx - 20) ** 2 + 0.1 * xx * yy + yy
    mask = _interior_holes(quadratic.shape)
    np.testing.assert_allclose(inpaint(quadratic, mask, "biharmonic"), quadratic, atol=1e-7)
    # The harmonic fill cannot reproduce curvature: the test above is not trivial.
    assert np.abs(inpaint(quadratic, mask, "harmonic") - quadratic).max() > 1


@pytest.mark.parametrize("hole", [6, 18])  # direct solve, and the multigrid-preconditioned CG path
def test_3d_fills_are_exact_for_their_polynomials(hole):
    zz, yy, xx = np.mgrid[:40, :40, :40].astype(float)
    ramp = zz - 2 * yy + 0.5 * xx
    quadratic = (zz - 20) ** 2 + 0.5 * (yy - 10) ** 2 - 0.25 * xx**2 + zz * xx
    mask = np.zeros(ramp.shape, bool)
    mask[10 : 10 + hole, 12 : 12 + hole, 8 : 8 + hole] = True
    np.testing.assert_allclose(inpaint(ramp, mask, "harmonic", spatial_ndim=3), ramp, atol=1e-6)
    np.testing.assert_allclose(inpaint(quadratic, mask, "biharmonic", spatial_ndim=3), quadratic, rtol=1e-6, atol=1e-5)


def test_biharmonic_at_least_as_good_as_scikit_image_on_a_real_image():
    image = data.camera()[128:256, 128:256].astype(float)
    rng = np.random.default_rng(3)
    mask = np.zeros(image.shape, bool)
    for _ in range(6):
        r0, c0, r1, c1 = rng.integers(0, 128, 4)
        rr, cc = draw.line(r0, c0, r1, c1)
        mask[rr, cc] = True
    mask = morphology.dilation(mask, morphology.disk(2))
    mask[60:75, 30:50] = True
    ours = inpaint(image, mask, "biharmonic")
    reference = restoration.inpaint_biharmonic(image, mask)
    psnr_ours = peak_signal_noise_ratio(image, ours, data_range=255)
    psnr_skimage = peak_signal_noise_ratio(image, reference, data_range=255)
    assert psnr_ours >= psnr_skimage - 0.05
    assert psnr_ours > peak_signal_noise_ratio(image, np.where(mask, 0, image), data_range=255) + 10


def test_holes_on_the_image_border_are_filled_smoothly():
    yy, xx = np.mgrid[:32, :32].astype(float)
    image = np.sin(yy / 6) + np.cos(xx / 5)
    mask = np.zeros(image.shape, bool)
    mask[:4, :6] = True
    mask[20:, 30:] = True
    for method in ("harmonic", "biharmonic"):
        assert np.abs(inpaint(image, mask, method) - image)[mask].max() < 0.3


def test_interpolate_restores_dropped_rows_and_frames():
    yy, xx = np.mgrid[:32, :32].astype(float)
    image = 3 * yy + xx
    rows = np.zeros(image.shape, bool)
    rows[[5, 6, 17], :] = True
    np.testing.assert_allclose(inpaint(image, rows, "interpolate", axis=0), image)
    stack = np.arange(6.0)[:, None, None] * 10 + image
    frames = np.zeros(stack.shape, bool)
    frames[[2, 3]] = True
    np.testing.assert_allclose(inpaint(stack, frames, "interpolate", spatial_ndim=3, axis=0), stack)
    nearest = inpaint(image, rows, "interpolate", axis=0, kind="nearest")
    np.testing.assert_array_equal(nearest[5], image[4])
    np.testing.assert_array_equal(nearest[6], image[7])


def test_interpolate_along_the_defect_is_refused():
    image = np.ones((16, 16))
    column = np.zeros(image.shape, bool)
    column[:, 7] = True
    with pytest.raises(ValueError, match="interpolate along another axis"):
        inpaint(image, column, "interpolate", axis=0)
    np.testing.assert_array_equal(inpaint(image, column, "interpolate", axis=1), image)


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
def test_cholmod_and_superlu_give_the_same_fill(method, monkeypatch):
    """The optional CHOLMOD factorisation (the ``fast`` extra) and the SuperLU fallback solve the same system."""
    pytest.importorskip("cvxopt")
    from napari_inpaint.methods import diffusion

    image = data.camera()[:96, :96].astype(float)
    mask = _interior_holes(image.shape)
    mask[0, 5] = mask[60:, 90:] = True  # a hot pixel (divided, not factorised) and a hole on the border
    with_cholmod = inpaint(image, mask, method)
    monkeypatch.setattr(diffusion, "_cholmod", lambda: None)
    with_superlu = inpaint(image, mask, method)
    np.testing.assert_array_equal(with_cholmod[~mask], image[~mask])
    np.testing.assert_allclose(with_cholmod, with_superlu, rtol=0, atol=1e-9 * np.ptp(image))


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
def test_conjugate_gradients_check_for_cancel(method):
    """A large 3D hole is solved iteratively: ``check`` is called at every iteration, so cancel stops the
    solve, not only the engine's wait for it."""

    class Stop(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise Stop

    volume = np.random.default_rng(0).random((30, 30, 30, 1))
    mask = np.zeros(volume.shape[:-1], bool)
    mask[5:25, 5:25, 5:25] = True  # 8000 unknowns: conjugate gradients
    with pytest.raises(Stop):
        get_method(method).fill(volume, mask, check=check)
