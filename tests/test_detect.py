"""Tests of the bad-pixel detectors behind the "Mask from image" widget."""

import json
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_inpaint import models
from napari_inpaint.detect import (
    COSMIC_RAY_DETECTORS,
    cosmic_rays,
    dilate_mask,
    mask_from_image,
    nonfinite_pixels,
    outlier_pixels,
    remove_small,
    saturated_pixels,
    threshold,
)

SKY, READ_NOISE = 80.0, 5.0


def simulated_sky(seed: int = 0, shape=(256, 256), sources: int = 40, hits: int = 40):
    """(noise-free sky, observed image with cosmic rays, the hit pixels), in electrons.

    Gaussian sources (1.5 to 4 pixels wide: well sampled) on a sky of 80
    electrons, Poisson and read noise, and cosmic-ray hits of 500 to 5000
    electrons: dots of one to four pixels and tracks of 3 to 12 pixels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    truth = np.full(shape, SKY)
    for _ in range(sources):
        y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        width, peak = rng.uniform(1.5, 4.0), 10 ** rng.uniform(2, 3.7)
        truth += peak * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * width**2))
    observed = rng.poisson(truth) + rng.normal(0, READ_NOISE, shape)
    deposit = np.zeros(shape)
    for _ in range(hits):
        y, x = rng.integers(4, shape[0] - 4, 2)
        if rng.random() < 0.5:  # a dot of one to four pixels
            for _ in range(rng.integers(1, 5)):
                deposit[y + rng.integers(-1, 2), x + rng.integers(-1, 2)] += rng.uniform(500, 5000)
        else:  # a short track
            angle, length = rng.uniform(0, np.pi), rng.uniform(3, 12)
            steps = np.linspace(0, length, 40)
            rows = np.clip(np.round(y + steps * np.sin(angle)), 0, shape[0] - 1).astype(int)
            cols = np.clip(np.round(x + steps * np.cos(angle)), 0, shape[1] - 1).astype(int)
            deposit[rows, cols] = np.maximum(deposit[rows, cols], rng.uniform(500, 5000))
    return truth, observed + deposit, deposit > 0


def far_from(hits: np.ndarray) -> np.ndarray:
    """Pixels more than two pixels from a hit: a flag there is a false positive, not a generous edge."""
    return ~ndi.binary_dilation(hits, iterations=2)


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


def _frames(count: int = 12, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 5.0, (count, 48, 48))


def test_persistent_hot_pixels_are_those_bad_in_almost_every_frame():
    frames = _frames()
    frames[:, 10, 12] += 30  # a warm pixel: 6 noise deviations, in every frame
    frames[:-1, 30, 30] += 40  # a hot pixel that one frame does not show (a cosmic ray hid it, say)
    frames[3, 20, 20] += 500  # a cosmic ray: one frame
    frames[np.arange(12), 5, np.arange(12) * 3] += 300  # a bright object moving across the field
    found = outlier_pixels(frames, 3, persistent=True)
    expected = np.zeros(frames.shape, bool)
    expected[:, 10, 12] = expected[:, 30, 30] = True
    np.testing.assert_array_equal(found, expected)
    # Frame by frame, the same threshold flags noise too (0.27 % of the pixels): persistence is stronger.
    planted = np.zeros(frames.shape, bool)
    planted[:, [10, 30, 20, 5], [12, 30, 20, 0]] = True
    planted[np.arange(12), 5, np.arange(12) * 3] = True
    assert (outlier_pixels(frames, 3) & ~planted).sum() > 50
    # All frames required: the hot pixel that one frame lacks is left out.
    assert not outlier_pixels(frames, 3, persistent=True, fraction=1.0)[:, 30, 30].any()


def test_persistent_needs_a_stack_and_skips_nonfinite():
    frames = _frames(count=4)
    frames[:, 8, 8] += 60
    frames[2, 8, 8] = np.nan
    found = mask_from_image(frames, outliers=True, persistent=True, k=4, nonfinite=False)
    assert found[[0, 1, 3], 8, 8].all() and not found[2, 8, 8] and found.sum() == 3
    with pytest.raises(ValueError, match="single 2D plane: give a stack"):
        outlier_pixels(frames[0], persistent=True)
    with pytest.raises(ValueError, match="fraction"):
        outlier_pixels(frames, persistent=True, fraction=0)


def test_lacosmic_flags_injected_cosmic_rays():
    pytest.importorskip("astroscrappy")
    _, observed, hits = simulated_sky()
    flagged = cosmic_rays(observed, method="lacosmic", gain=1.0, read_noise=READ_NOISE)
    far = far_from(hits)
    assert (flagged & hits).sum() >= 0.95 * hits.sum()
    assert (flagged & far).sum() <= 1e-3 * far.sum()


def test_lacosmic_units_stacks_and_nonfinite():
    pytest.importorskip("astroscrappy")
    _, observed, _ = simulated_sky(seed=1, shape=(96, 96), sources=6, hits=8)
    # In counts of a gain of 2 electrons per count: the same detections as in electrons.
    in_electrons = cosmic_rays(observed, gain=1.0, read_noise=READ_NOISE)
    np.testing.assert_array_equal(cosmic_rays(observed / 2, gain=2.0, read_noise=READ_NOISE), in_electrons)
    stack = np.stack([observed, observed[::-1]]).astype(np.float32)
    stack[1, 0, 0] = np.nan
    seen = []
    flagged = cosmic_rays(stack, read_noise=READ_NOISE, progress=lambda *report: seen.append(report))
    assert seen == [(1, 2), (2, 2)] and not flagged[1, 0, 0]
    np.testing.assert_array_equal(flagged[0], in_electrons)
    # A saturation level below the hits protects them, as saturated stars are.
    assert not cosmic_rays(observed, read_noise=READ_NOISE, saturation=400.0)[observed >= 400].any()


def test_lacosmic_without_astroscrappy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "astroscrappy", None)  # import astroscrappy now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "napari-inpaint\[astro\]"'):
        cosmic_rays(np.ones((16, 16)), method="lacosmic")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"method": "median"}, ValueError, "unknown cosmic-ray detector 'median'; known: lacosmic, deepcr"),
        ({"threshold": 0.5}, TypeError, "detector 'lacosmic' has no parameter 'threshold'; its parameters"),
        ({"gain": 0.0}, ValueError, "parameter 'gain' of method 'lacosmic' must lie in"),
        ({"method": "deepcr", "threshold": 2}, ValueError, "parameter 'threshold' of method 'deepcr' must"),
        ({"method": "deepcr", "device": "gpu"}, ValueError, "parameter 'device' of method 'deepcr' is not"),
    ],
)
def test_cosmic_ray_arguments_are_checked_before_any_work(call, error, match):
    with pytest.raises(error, match=match):
        cosmic_rays(np.ones((16, 16)), **call)
    with pytest.raises(ValueError, match="fewer than spatial_ndim=2 axes"):
        cosmic_rays(np.ones(16))


def test_the_detector_registry_describes_what_front_ends_need():
    for name, detector in COSMIC_RAY_DETECTORS.items():
        assert detector.name == name and detector.summary and detector.params
        assert detector.resolve({}) == {p.name: p.default for p in detector.params}
        described = json.loads(json.dumps(detector.describe()))
        assert [p["name"] for p in described["params"]] == [p.name for p in detector.params]
        assert set(detector.weights) <= set(models.MODELS)
    deepcr = COSMIC_RAY_DETECTORS["deepcr"]
    assert deepcr.weights == tuple(models.DEEPCR_MASKS.values())
    assert deepcr.weights_for({}) == ("deepcr-mask-acs-wfc",)  # the default model's file only
    assert deepcr.weights_for({"model": "WFC3-UVIS"}) == ("deepcr-mask-wfc3-uvis",)
    assert COSMIC_RAY_DETECTORS["lacosmic"].weights_for({"gain": 2.0}) == ()
    assert deepcr.available()  # PyTorch is a dependency
    assert "napari-inpaint[astro]" in COSMIC_RAY_DETECTORS["lacosmic"].install
