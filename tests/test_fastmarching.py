"""Tests of the fast-marching fills (telea, navier-stokes) and their two backends."""

import importlib.util
import sys

import numpy as np
import pytest

from napari_inpaint import get_method, inpaint

HAS_CV2 = importlib.util.find_spec("cv2") is not None
needs_cv2 = pytest.mark.skipif(not HAS_CV2, reason="OpenCV is not installed")
BACKENDS = ["numba", pytest.param("opencv", marks=needs_cv2)]
METHODS = ["telea", "navier-stokes"]


def bump(n: int = 64) -> np.ndarray:
    """A smooth test image: a tilted plane plus a Gaussian bump (range ~65, slope <= 3)."""
    yy, xx = np.mgrid[:n, :n].astype(float)
    return 100 + 0.5 * yy + 50 * np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / (2 * 12.0**2))


def holes(n: int = 64) -> np.ndarray:
    """Hot pixels, a two-pixel-wide scratch and a 4x4 blob, away from the border."""
    def at(x: int) -> int:  # positions laid out for n = 64
        return x * n // 64

    mask = np.zeros((n, n), bool)
    mask[[at(5), at(20), at(40), at(50)], [at(7), at(44), at(12), at(55)]] = True
    mask[at(30) : at(30) + 2, at(8) : at(40)] = True
    mask[at(45) : at(45) + 4, at(30) : at(30) + 4] = True
    return mask


def border_holes(n: int = 64) -> np.ndarray:
    """Holes touching every side and a corner."""
    mask = np.zeros((n, n), bool)
    mask[0:2, 10:30] = True
    mask[20:40, n - 2 :] = True
    mask[n - 4 :, n - 4 :] = True
    mask[30, :3] = True
    return mask


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
def test_smooth_image_is_recovered(name, backend):
    image, mask = bump(), holes()
    filled = inpaint(image, mask, name, backend=backend)
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    # Measured: telea 1.4 (opencv) / 1.6 (numba), navier-stokes 1.1 / 1.1.
    assert np.abs(filled - image)[mask].max() < 2.5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
def test_holes_touching_the_border(name, backend):
    image, mask = bump(), border_holes()
    filled = inpaint(image, mask, name, backend=backend)
    # Measured: telea 2.4 (opencv) / 0.33 (numba), navier-stokes 1.8 / 1.9.
    assert np.abs(filled - image)[mask].max() < 3.0


def test_numba_telea_is_exact_on_a_ramp():
    # The first-order term of Telea's formula reproduces a linear ramp.
    yy, xx = np.mgrid[:48, :48].astype(float)
    ramp = 3.0 * yy - 2.0 * xx
    filled = inpaint(ramp, holes(48), "telea", backend="numba")
    np.testing.assert_allclose(filled, ramp, atol=1e-9)


@needs_cv2
@pytest.mark.parametrize(
    ("name", "max_bound", "mean_bound"), [("telea", 4.0, 1.5), ("navier-stokes", 1.5, 0.4)]
)
def test_backends_agree(name, max_bound, mean_bound):
    # Same fast-marching order and weights; the backends differ by OpenCV's missing
    # first-order term (telea, measured max 2.9, mean 1.2 on a range of 65) and its
    # unsigned gradients (navier-stokes, measured max 0.8, mean 0.2).
    image, mask = bump(), holes()
    numba_fill = inpaint(image, mask, name, backend="numba")
    opencv_fill = inpaint(image, mask, name, backend="opencv")
    difference = np.abs(numba_fill - opencv_fill)[mask]
    assert difference.max() < max_bound
    assert difference.mean() < mean_bound


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_any_channel_count(name, backend, channels):
    image = np.stack([(c + 1) * bump(48) - 30 * c for c in range(channels)], axis=-1)
    mask = holes(48)
    filled = inpaint(image, mask, name, channel_axis=-1, backend=backend)
    assert filled.shape == image.shape
    for c in range(channels):
        # Channels are filled independently: as if each were alone.
        alone = inpaint(image[..., c], mask, name, backend=backend)
        np.testing.assert_allclose(filled[..., c], alone, rtol=1e-6, atol=1e-6 * (c + 1))
        assert np.abs(filled[..., c] - image[..., c])[mask].max() < 2.5 * (c + 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
def test_uint16_range_is_not_clipped(name, backend):
    scale = 900.0
    image = np.round((bump() - 100) * scale + 1000).astype(np.uint16)  # 1000 .. ~59800
    mask = holes()
    filled = inpaint(image, mask, name, backend=backend)
    assert filled.dtype == np.uint16
    assert filled[mask].max() > 255 * 50
    error = np.abs(filled.astype(float) - image)[mask]
    assert error.max() < 2.5 * scale


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
def test_small_negative_floats(name, backend):
    scale = 1e-3
    image = ((bump() - 180) * scale).astype(np.float32)  # all negative, range 0.065
    mask = holes()
    filled = inpaint(image, mask, name, backend=backend)
    assert filled.dtype == np.float32
    assert (filled[mask] < 0).all()
    assert np.abs(filled - image)[mask].max() < 2.5 * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_channel(backend):
    image = np.full((32, 32, 2), 7.5)
    image[..., 1] = bump(32)
    mask = holes(32)
    filled = get_method("telea").fill(np.where(mask[..., None], 0.0, image), mask, backend=backend)
    np.testing.assert_allclose(filled[mask, 0], 7.5)


def test_opencv_backend_without_opencv(monkeypatch):
    image, mask = bump(32), holes(32)
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes ``import cv2`` fail
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        inpaint(image, mask, "telea", backend="opencv")
    # 'auto' falls back to the numba implementation.
    np.testing.assert_array_equal(
        inpaint(image, mask, "navier-stokes"), inpaint(image, mask, "navier-stokes", backend="numba")
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", METHODS)
def test_check_can_cancel(name, backend):
    class Stop(Exception):
        pass

    def check():
        raise Stop

    mask = np.zeros((96, 96), bool)
    mask[8:88, 8:88] = True  # more pixels than one uninterrupted batch of the numba march
    image = np.where(mask, 0.0, bump(96))[..., None]
    with pytest.raises(Stop):
        get_method(name).fill(image, mask, radius=2, backend=backend, check=check)


@pytest.mark.parametrize("radius", [1, 12])
def test_radius(radius):
    image, mask = bump(), holes()
    for name in METHODS:
        filled = inpaint(image, mask, name, radius=radius, backend="numba")
        assert np.abs(filled - image)[mask].max() < 4.0  # measured up to 3.1
