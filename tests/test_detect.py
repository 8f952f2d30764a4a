"""Tests of the bad-pixel detectors behind the "Mask from image" widget."""

import numpy as np
import pytest

from napari_inpaint.detect import (
    dilate_mask,
    mask_from_image,
    nonfinite_pixels,
    outlier_pixels,
    remove_small,
    saturated_pixels,
    threshold,
)


def _noisy(shape=(64, 64), sigma=10.0, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(500.0, sigma, shape)


def test_threshold_is_strict_and_optional():
    image = np.array([[0, 10, 20], [30, 40, 50]])
    assert not threshold(image).any()
    assert threshold(image, above=40).tolist() == [[False] * 3, [False, False, True]]
    assert threshold(image, below=10, above=40).sum() == 2


def test_saturated_uses_the_dtype_maximum_or_a_level():
    assert saturated_pixels(np.array([0, 65534, 65535], np.uint16)).tolist() == [False, False, True]
    assert saturated_pixels(np.array([0, 200, 255], np.uint8), value=200).tolist() == [False, True, True]
    floats = np.array([0.5, 3.0, np.nan, 3.0])
    assert saturated_pixels(floats).tolist() == [False, True, False, True]
    assert not saturated_pixels(np.full(3, np.nan)).any()


def test_nonfinite():
    assert nonfinite_pixels(np.array([1.0, np.nan, np.inf, -np.inf], np.float32)).tolist() == [
        False, True, True, True
    ]
    assert not nonfinite_pixels(np.arange(4)).any()


def test_outliers_finds_hot_and_dead_pixels_but_not_structure():
    image = _noisy((96, 96))
    yy, xx = np.indices(image.shape)
    image += 2000 * np.exp(-((yy - 60) ** 2 + (xx - 30) ** 2) / 450.0)  # a bright cell, 15 px wide
    image += 3 * xx  # and a background gradient
    planted = [(5, 5), (40, 70), (90, 12), (61, 31)]  # the last one sits on the cell
    for y, x in planted[:-1]:
        image[y, x] += 300
    image[planted[-1]] = 0  # a dead pixel
    found = outlier_pixels(image)
    assert sorted(map(tuple, np.argwhere(found).tolist())) == sorted(planted)


def test_outliers_statistics_are_per_plane_and_ignore_nonfinite():
    # Plane 0 is 50 times noisier: its spike of 100 is noise, plane 1's is an outlier.
    stack = np.stack([_noisy(sigma=50.0, seed=1), _noisy(sigma=1.0, seed=2)])
    stack[:, 20, 20] += 100
    stack[1, 3, 3] = np.nan
    found = outlier_pixels(stack)
    assert not found[0, 20, 20] and found[1, 20, 20]
    assert not found[1, 3, 3] and found[1].sum() == 1
    # Pure Gaussian noise: the default k=5 flags about one pixel in a million.
    assert outlier_pixels(_noisy((4, 256, 256), seed=3)).sum() <= 3


def test_outliers_on_quantised_data():
    # A posterised uint8 ramp: most residuals are exactly 0, so the MAD is 0.
    image = (np.indices((64, 64))[1] // 8 + 50).astype(np.uint8)
    image[[10, 30, 50], [5, 33, 60]] = 200
    found = outlier_pixels(image)
    assert np.argwhere(found).tolist() == [[10, 5], [30, 33], [50, 60]]


def test_outliers_3d_window_and_bad_arguments():
    volume = _noisy((16, 16, 16))
    volume[8, 8, 8] += 500
    assert np.argwhere(outlier_pixels(volume, spatial_ndim=3)).tolist() == [[8, 8, 8]]
    with pytest.raises(ValueError, match="odd"):
        outlier_pixels(volume, size=4)
    with pytest.raises(ValueError, match="positive"):
        outlier_pixels(volume, k=0)
    with pytest.raises(ValueError, match="spatial_ndim"):
        outlier_pixels(volume[0], spatial_ndim=3)


def test_dilate_stays_within_each_plane():
    mask = np.zeros((3, 9, 9), bool)
    mask[1, 4, 4] = True
    grown = dilate_mask(mask, 2)
    assert grown[1].sum() == 13 and not grown[[0, 2]].any()  # a Euclidean disk of radius 2
    assert dilate_mask(mask, 1, spatial_ndim=3).sum() == 7  # a 3D ball of radius 1
    assert (dilate_mask(mask, 0) == mask).all()
    with pytest.raises(ValueError, match="non-negative"):
        dilate_mask(mask, -1)


def test_remove_small_counts_components_per_plane():
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 6, 1] = True  # one pixel per plane: a 2-pixel column across planes must not count as one
    mask[1, 5:7, 5:7] = True
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours are connected
    kept = remove_small(mask, 2)
    assert kept.sum() == 6 and kept[0, 0, 0] and kept[0, 1, 1] and not kept[:, 6, 1].any()
    assert (remove_small(mask, 0) == mask).all()


def test_mask_from_image_combines_then_cleans_then_dilates():
    image = np.full((2, 32, 32), 100, np.uint16)
    image[0, 4, 4] = 65535  # saturated
    image[0, 10:13, 10:13] = 3  # dark region
    image[1, 20, 20] = 30000  # bright
    mask = mask_from_image(image, saturated=True, below=5)
    assert mask.sum() == 10 and mask[0, 4, 4] and mask[0, 11, 11] and not mask[1].any()
    mask = mask_from_image(image, saturated=True, below=5, above=20000, min_size=2, dilate=1)
    expected = np.zeros(image.shape, bool)
    expected[0, 9:14, 10:13] = expected[0, 10:13, 9:14] = True  # the 3x3 block grown by a radius of 1
    assert (mask == expected).all()


def test_mask_from_image_rgb_and_nan():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[3, 4, 1] = 255
    assert np.argwhere(mask_from_image(rgb, saturated=True, channel_axis=-1)).tolist() == [[3, 4]]
    channels_first = np.moveaxis(rgb, -1, 0)
    assert mask_from_image(channels_first, saturated=True, channel_axis=0).shape == (16, 16)
    image = np.zeros((8, 8), np.float32)
    image[2, 2] = np.inf
    assert mask_from_image(image).sum() == 1
    assert not mask_from_image(image, nonfinite=False).any()
