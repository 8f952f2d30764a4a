import numpy as np
import pytest
from skimage import metrics as skm

from napari_inpaint.metrics import data_range_of, hole_mae, psnr, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    result = np.clip(reference + rng.integers(-5, 6, reference.shape), 0, 255).astype(np.uint8)
    return reference, result


@pytest.mark.parametrize(("dtype", "expected"), [(np.uint8, 255), (np.uint16, 65535), (np.int16, 65535)])
def test_data_range_of_integers_is_the_dtype_span(dtype, expected):
    assert data_range_of(np.zeros(3, dtype)) == expected


def test_data_range_of_floats_is_the_reference_span():
    assert data_range_of(np.array([[-1.0, 0.5], [2.0, 0.0]], np.float32)) == 3.0


def test_constant_float_reference_needs_an_explicit_range():
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.ones((8, 8)), np.zeros((8, 8)))
    assert psnr(np.ones((8, 8)), np.zeros((8, 8)), data_range=1.0) == 0.0


def test_psnr_matches_skimage_and_hand_value(pair):
    reference, result = pair
    expected = skm.peak_signal_noise_ratio(reference, result, data_range=255)
    assert psnr(reference, result) == pytest.approx(expected)
    mse = np.mean((reference.astype(float) - result) ** 2)
    assert psnr(reference, result) == pytest.approx(10 * np.log10(255**2 / mse))


def test_psnr_of_uint16_uses_the_full_dtype_range():
    reference = np.zeros((4, 4), np.uint16)
    result = reference.copy()
    result[0, 0] = 655  # MSE = 655**2 / 16
    assert psnr(reference, result) == pytest.approx(10 * np.log10(65535**2 * 16 / 655**2))


def test_psnr_of_identical_images_is_infinite(pair):
    assert psnr(pair[0], pair[0]) == np.inf


def test_psnr_in_a_mask_uses_only_masked_pixels():
    reference = np.zeros((10, 10))
    reference[0, 0] = 1.0  # float data range 1
    result = reference.copy()
    result[5:, :] += 0.5  # error outside the mask only ...
    mask = np.zeros((10, 10), bool)
    mask[:5, :] = True
    assert psnr(reference, result, mask=mask) == np.inf
    result[2, 3] += 0.1  # ... and one error of 0.1 among 50 masked pixels
    assert psnr(reference, result, mask=mask) == pytest.approx(10 * np.log10(50 / 0.01))


def test_spatial_mask_broadcasts_over_channels():
    reference = np.zeros((6, 6, 3), np.uint8)
    result = reference.copy()
    result[1, 1] = (30, 0, 60)
    mask = np.zeros((6, 6), bool)
    mask[1, 1:3] = True  # 2 pixels x 3 channels = 6 values, sum of errors 90
    assert hole_mae(reference, result, mask) == pytest.approx(100 * 15 / 255)


def test_ssim_matches_skimage(pair):
    reference, result = pair
    expected = skm.structural_similarity(reference, result, data_range=255)
    assert ssim(reference, result) == pytest.approx(expected)
    assert ssim(reference, reference) == pytest.approx(1.0)


def test_ssim_with_channels_and_float_range():
    rng = np.random.default_rng(1)
    reference = rng.random((24, 24, 3))
    result = reference + 0.05 * rng.standard_normal(reference.shape)
    expected = skm.structural_similarity(
        reference, result, data_range=reference.max() - reference.min(), channel_axis=-1
    )
    assert ssim(reference, result, channel_axis=-1) == pytest.approx(expected)


def test_hole_mae_hand_value():
    reference = np.full((8, 8), 10000, np.uint16)
    result = reference.copy()
    result[2, 2], result[2, 3] = 10000 + 6553, 10000 - 6553  # 10 % of 65535 each, 2 of 4 hole pixels
    result[7, 7] = 0  # outside the hole: ignored
    mask = np.zeros((8, 8), bool)
    mask[2, 2:6] = True
    assert hole_mae(reference, result, mask) == pytest.approx(100 * 6553 / 65535 / 2)


def test_integer_differences_do_not_wrap():
    reference = np.array([[0, 200]], np.uint8)
    result = np.array([[200, 0]], np.uint8)
    assert hole_mae(reference, result, np.ones((1, 2), bool)) == pytest.approx(100 * 200 / 255)


def test_bad_input_raises_clearly():
    image = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        psnr(image, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="no pixel"):
        hole_mae(image, image, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="mask shape"):
        hole_mae(image, image, np.ones((3, 4), bool))
