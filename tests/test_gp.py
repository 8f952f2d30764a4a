"""The Gaussian-process (kriging) fill: beats diffusion on Gaussian-process data, calibrated, exact where it must be.

The fields are sampled from stationary Gaussian processes of known covariance
(an exponential or a Matérn 3/2 kernel, length 6 pixels), so that the
kriging fill is the best linear predictor when its covariance is right: its
hole error must beat the harmonic and biharmonic fills, and its posterior
standard deviation must say how large that error is.
"""

import math

import numpy as np
import pytest
from scipy import ndimage

from napari_inpaint import get_method, inpaint, masks
from napari_inpaint.methods.gp import KERNELS, fit_covariance, posterior, variogram


def gp_field(shape: tuple[int, int], length: float, kernel: str, seed: int, nugget: float = 0.0) -> np.ndarray:
    """A stationary Gaussian-process sample of unit variance: FFT of white noise on a doubled torus.

    The covariance, periodised on a torus twice the image's size, has a
    (nearly) non-negative spectrum; its few negative entries are set to zero.
    """
    rng = np.random.default_rng(seed)
    torus = tuple(2 * n for n in shape)
    axes = np.meshgrid(*[np.minimum(np.arange(n), n - np.arange(n)) for n in torus], indexing="ij")
    t = np.sqrt(sum(a.astype(float) ** 2 for a in axes)) / length
    covariance = np.exp(-t) if kernel == "exponential" else (1 + math.sqrt(3) * t) * np.exp(-math.sqrt(3) * t)
    spectrum = np.maximum(np.fft.fftn(covariance).real, 0.0)
    field = np.fft.ifftn(np.sqrt(spectrum) * np.fft.fftn(rng.standard_normal(torus))).real
    return field[: shape[0], : shape[1]] + nugget * rng.standard_normal(shape)


def _rmse(errors: list[np.ndarray]) -> float:
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def _hole_errors(fields_and_masks, method: str, **params) -> float:
    return _rmse([(inpaint(field, mask, method, **params) - field)[mask] for field, mask in fields_and_masks])


# --------------------------------------------------------------------------- (a) better than diffusion


def test_beats_harmonic_and_biharmonic_on_matern_fields_with_debris_and_strokes():
    # Measured (6 seeds): gp 0.377, biharmonic 0.401, harmonic 0.502 (the exact kriging of the whole image with
    # the true covariance: 0.369).  Harmonic is too rough for a Matérn 3/2 field, biharmonic too stiff across
    # wide strokes.
    cases = []
    for seed in range(6):
        field = gp_field((96, 96), 6.0, "matern32", seed)
        hole = masks.debris((96, 96), radius=5, seed=seed, ratio=0.06) | masks.strokes((96, 96), 0.06, seed=seed + 10)
        cases.append((field, hole))
    gp, harmonic, biharmonic = (_hole_errors(cases, m) for m in ("gp", "harmonic", "biharmonic"))
    assert gp < 0.96 * min(harmonic, biharmonic), (gp, harmonic, biharmonic)


def test_beats_harmonic_and_biharmonic_on_exponential_fields_with_strokes():
    # Measured (6 seeds): gp 0.719, harmonic 0.737, biharmonic 0.825 (the exact kriging of the whole image with
    # the true covariance: 0.710).  The harmonic fill is nearly the best predictor of so rough a field: on
    # compact debris it ties with kriging.
    cases = [(gp_field((96, 96), 6.0, "exponential", seed), masks.strokes((96, 96), 0.08, seed=seed + 10))
             for seed in range(6)]  # fmt: skip
    gp = _hole_errors(cases, "gp", kernel="exponential")
    harmonic, biharmonic = (_hole_errors(cases, m) for m in ("harmonic", "biharmonic"))
    assert gp < 0.99 * harmonic and gp < 0.92 * biharmonic, (gp, harmonic, biharmonic)


def test_beats_harmonic_and_biharmonic_in_a_volume():
    # A 3D Matérn 3/2 field (length 5 voxels) with a block, a dropped slice and a line missing.  Measured:
    # gp 0.177, biharmonic 0.192, harmonic 0.256.
    rng = np.random.default_rng(1)
    torus = (48, 64, 64)
    axes = np.meshgrid(*[np.minimum(np.arange(n), n - np.arange(n)) for n in torus], indexing="ij")
    t = math.sqrt(3) * np.sqrt(sum(a.astype(float) ** 2 for a in axes)) / 5.0
    spectrum = np.maximum(np.fft.fftn((1 + t) * np.exp(-t)).real, 0.0)
    volume = np.fft.ifftn(np.sqrt(spectrum) * np.fft.fftn(rng.standard_normal(torus))).real[:24, :32, :32]
    hole = np.zeros(volume.shape, bool)
    hole[8:16, 10:20, 12:22] = True
    hole[19] = True
    hole[:, 26, 3:28] = True
    gp, harmonic, biharmonic = (
        np.sqrt(np.mean((inpaint(volume, hole, m, spatial_ndim=3) - volume)[hole] ** 2))
        for m in ("gp", "harmonic", "biharmonic")
    )
    assert gp < 0.97 * min(harmonic, biharmonic), (gp, harmonic, biharmonic)


def test_averages_the_noise_around_hot_pixels():
    # Smooth structure plus noise: the fitted nugget makes the fill average many neighbours, where the harmonic
    # fill averages the 4 noisy ones.  Measured: error to the clean image 2.3 (gp), 5.0 (harmonic).
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    clean = 500 + 100 * np.sin(xx / 9) * np.cos(yy / 13)
    noisy = clean + rng.normal(0, 10, clean.shape)
    hot = masks.hot_pixels((128, 128), 0.01, seed=1)
    gp, harmonic = (np.sqrt(np.mean((inpaint(noisy, hot, m) - clean)[hot] ** 2)) for m in ("gp", "harmonic"))
    assert gp < 0.6 * harmonic, (gp, harmonic)


# --------------------------------------------------------------------------- (b) the posterior std


def test_posterior_std_is_zero_on_known_pixels_and_grows_into_a_hole():
    field = gp_field((80, 80), 6.0, "matern32", 3)
    hole = np.hypot(*np.mgrid[-40:40, -40:40]) <= 12  # a disc of radius 12
    mean, std = posterior(field, hole)
    assert mean.shape == std.shape == field.shape and mean.dtype == std.dtype == np.float64
    np.testing.assert_array_equal(mean[~hole], field[~hole])
    assert (std[~hole] == 0).all() and (std[hole] > 0).all()
    depth = np.rint(ndimage.distance_transform_edt(hole)[hole]).astype(int)
    by_depth = [std[hole][depth == d].mean() for d in range(1, depth.max() + 1)]
    assert np.all(np.diff(by_depth) > 0), np.round(by_depth, 3)
    # Deep in the hole the uncertainty approaches the field's own spread (unit variance).
    assert by_depth[0] < 0.5 * by_depth[-1] and 0.6 < by_depth[-1] < 1.6, np.round(by_depth, 3)


@pytest.mark.parametrize("kernel", ["exponential", "matern32"])
def test_the_90_percent_interval_covers_about_90_percent_of_the_hole(kernel):
    # Measured coverage per seed, exponential: 0.93 0.89 0.90 0.92 0.90; Matérn 3/2: 0.96 0.88 0.89 0.91 0.94.
    coverage = []
    for seed in range(5):
        field = gp_field((96, 96), 6.0, kernel, seed)
        hole = masks.debris((96, 96), radius=5, seed=seed, ratio=0.06) | masks.strokes((96, 96), 0.06, seed=seed + 10)
        mean, std = posterior(field, hole, kernel=kernel)
        coverage.append(np.mean(np.abs(mean - field)[hole] <= 1.645 * std[hole]))
    assert all(0.8 <= c <= 0.97 for c in coverage), np.round(coverage, 3)
    assert 0.85 <= np.mean(coverage) <= 0.95, np.round(coverage, 3)


def test_the_fitted_covariance_recovers_the_sampled_one():
    field = gp_field((128, 128), 6.0, "matern32", 0, nugget=0.3)
    known = ~masks.debris((128, 128), radius=6, seed=0, ratio=0.05)
    sill, nugget, length = fit_covariance(field, known, "matern32", 12)  # measured: 0.88, 0.081, 5.3
    assert 0.7 < sill < 1.4 and 0.05 < nugget < 0.14 and 4 < length < 9, (sill, nugget, length)
    lags, gammas, counts = variogram(field, known, 12)
    assert lags.min() == 1 and counts.min() > 0 and gammas[lags == 1].mean() < gammas[lags == 12].mean()


def test_posterior_takes_channels_and_volumes():
    rgb = np.stack([gp_field((48, 48), 5.0, "matern32", s) for s in range(3)], axis=-1)
    hole = masks.debris((48, 48), radius=5, seed=0, center=(24, 24))
    mean, std = posterior(rgb, hole)
    assert mean.shape == std.shape == rgb.shape
    for channel in range(3):  # each channel is its own problem
        alone, alone_std = posterior(rgb[..., channel], hole)
        np.testing.assert_allclose(mean[..., channel], alone, atol=1e-12)
        np.testing.assert_allclose(std[..., channel], alone_std, atol=1e-12)
    zz, yy, xx = np.mgrid[:12, :16, :16].astype(float)
    volume, cube = 2 * zz - yy + 0.5 * xx, np.zeros((12, 16, 16), bool)
    cube[4:8, 5:10, 6:11] = True
    mean, std = posterior(volume, cube, trend="linear")
    np.testing.assert_allclose(mean, volume, atol=1e-9)
    assert (std[~cube] == 0).all()


# --------------------------------------------------------------------------- (c) through the engine


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_known_pixels_and_dtype_are_kept_through_inpaint(dtype):
    field = 3000 + 400 * gp_field((64, 64), 5.0, "matern32", 1)
    image = field.astype(dtype)
    hole = masks.debris((64, 64), radius=6, seed=2, center=(30, 30)) | masks.scratch((64, 64), width=2, seed=3)
    before = image.copy()
    out = inpaint(image, hole, "gp")
    np.testing.assert_array_equal(image, before)
    assert out.dtype == dtype and out.shape == image.shape
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert np.sqrt(np.mean((out[hole].astype(float) - field[hole]) ** 2)) < 400  # closer than the field's spread


def test_rgb_channels_are_filled_each_as_alone():
    rgb = np.stack([100 + 50 * gp_field((48, 48), 5.0, "matern32", s) for s in range(3)], axis=-1)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    hole = masks.debris((48, 48), radius=5, seed=4, center=(20, 26))
    out = inpaint(rgb, hole, "gp")
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out[~hole], rgb[~hole])
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], inpaint(rgb[..., channel], hole, "gp"))


# --------------------------------------------------------------------------- (d) exact cases


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("trend", ["constant", "linear"])
def test_a_constant_image_is_filled_with_the_constant(kernel, trend):
    image = np.full((40, 40), 1234.5)
    hole = masks.debris((40, 40), radius=8, seed=0, center=(20, 20)) | masks.scratch((40, 40), width=2, seed=1)
    out = inpaint(image, hole, "gp", kernel=kernel, trend=trend)
    np.testing.assert_array_equal(out, image)
    mean, std = posterior(image, hole, kernel=kernel, trend=trend)
    np.testing.assert_allclose(mean, image, rtol=1e-12)
    assert std.max() <= 1e-9


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_linear_ramp_is_exact_with_the_linear_trend_and_nearly_with_ordinary_kriging(kernel):
    ramp = 100 + np.add.outer(3.0 * np.arange(48), -1.5 * np.arange(48))  # spans 100 - 70 .. 100 + 141
    hole = masks.debris((48, 48), radius=7, seed=0, center=(22, 25)) | masks.scratch((48, 48), width=3, seed=5)
    np.testing.assert_allclose(inpaint(ramp, hole, "gp", kernel=kernel, trend="linear"), ramp, rtol=1e-10)
    # Ordinary kriging fits the ramp's own (quadratic) variogram: measured worst errors 0.49 (exponential),
    # 0.021 (Matérn 3/2) and 0.0016 (Matérn 5/2) on a range of 211.
    error = np.abs(inpaint(ramp, hole, "gp", kernel=kernel) - ramp).max()
    assert error < 0.01 * np.ptp(ramp), error


# --------------------------------------------------------------------------- (e) bad parameters


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"kernel": "gaussian"}, ValueError, "parameter 'kernel' of method 'gp' must be one of exponential"),
        ({"trend": "quadratic"}, ValueError, "parameter 'trend' of method 'gp' must be one of constant, linear"),
        ({"neighbours": 0}, ValueError, r"parameter 'neighbours' of method 'gp' must lie in \[4, 1024\]"),
        ({"neighbours": 2.5}, TypeError, "parameter 'neighbours' of method 'gp' must be an integer"),
        ({"length_scale": -1.0}, ValueError, r"parameter 'length_scale' of method 'gp' must lie in \[0.0"),
        ({"length_scale": float("nan")}, ValueError, "parameter 'length_scale' of method 'gp' must be a finite"),
        ({"radius": 3}, TypeError, "method 'gp' has no parameter 'radius'"),
    ],
)
def test_bad_parameters_are_refused_clearly(params, error, match):
    image, hole = np.ones((16, 16)), np.zeros((16, 16), bool)
    hole[5:8, 5:8] = True
    with pytest.raises(error, match=match):
        inpaint(image, hole, "gp", **params)


@pytest.mark.parametrize(
    ("args", "params", "match"),
    [
        ((np.ones((8, 8)), np.zeros((8, 9), bool)), {}, r"image of shape \(8, 8\) does not match the mask's \(8, 9\)"),
        ((np.ones((8, 8)), np.ones((8, 8), bool)), {}, "every pixel is masked"),
        ((np.ones(8), np.zeros(8, bool)), {}, "mask must be 2D or 3D, got 1D"),
        ((np.ones((8, 8)), np.eye(8, dtype=bool)), {"kernel": "rbf"}, "unknown kernel 'rbf'; use one of exponential"),
        ((np.ones((8, 8)), np.eye(8, dtype=bool)), {"trend": "cubic"}, "unknown trend 'cubic'"),
        ((np.ones((8, 8)), np.eye(8, dtype=bool)), {"neighbours": 0}, "neighbours must be a positive integer"),
        ((np.ones((8, 8)), np.eye(8, dtype=bool)), {"length_scale": -2.0}, "length_scale must be a finite number"),
        ((np.where(np.eye(8), 0, np.nan), np.eye(8, dtype=bool)), {}, "NaN or infinite known pixels"),
    ],
)
def test_posterior_refuses_bad_input_clearly(args, params, match):
    with pytest.raises(ValueError, match=match):
        posterior(*args, **params)


def test_the_record():
    method = get_method("gp")
    assert method.family == "classical" and method.ndims == (2, 3) and method.channel_independent
    assert {"debris", "hot-pixels", "scratches", "texture"} <= set(method.artifacts)
    # The margin holds a hole pixel's neighbours: a half-disc of that many pixels, and more.
    for neighbours in (4, 64, 256, 1024):
        margin = method.margin(method.resolve({"neighbours": neighbours}))
        assert math.pi * margin**2 / 2 > neighbours
