import importlib.util

import numpy as np
import pytest
from skimage import metrics as skm

from napari_inpaint import models
from napari_inpaint.evaluation import metrics
from napari_inpaint.evaluation.metrics import data_range_of, hole_mae, psnr, ssim


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


def test_ssim_in_a_mask_averages_skimages_map_there(pair):
    reference, result = pair
    _, similarity = skm.structural_similarity(reference, result, data_range=255, full=True)
    mask = np.zeros(reference.shape, bool)
    mask[5:20, 0:12] = True  # touches the border, where scikit-image's mean does not look
    assert ssim(reference, result, mask=mask) == pytest.approx(similarity[mask].mean())
    assert ssim(reference, reference, mask=mask) == pytest.approx(1.0)


def test_ssim_in_a_mask_with_channels_first():
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 65536, (3, 20, 24), dtype=np.uint16)
    result = reference // 2
    _, similarity = skm.structural_similarity(reference, result, data_range=65535, channel_axis=0, full=True)
    mask = np.zeros((20, 24), bool)
    mask[8:12, 3:9] = True
    expected = np.mean([plane[mask] for plane in similarity])
    assert ssim(reference, result, channel_axis=0, mask=mask) == pytest.approx(expected)


# ----------------------------------------------------------------------------- LPIPS

requires_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="LPIPS needs PyTorch")
ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


@pytest.fixture
def lpips_files(tmp_path, monkeypatch):
    """Random AlexNet and LPIPS state dicts of the right keys and shapes, served by a fake ``models.fetch``."""
    import torch

    generator = torch.Generator().manual_seed(0)
    features = {}
    for index, (out, inp, kernel) in ALEXNET_CONVS.items():
        features[f"features.{index}.weight"] = torch.randn(out, inp, kernel, kernel, generator=generator) * (
            2 / (inp * kernel**2)
        ) ** 0.5
        features[f"features.{index}.bias"] = 0.01 * torch.randn(out, generator=generator)
    features["classifier.1.weight"] = torch.zeros(2, 2)  # the real file holds the classifier too
    linear = {
        f"lin{layer}.model.1.weight": torch.rand(1, out, 1, 1, generator=generator)
        for layer, (out, _, _) in enumerate(ALEXNET_CONVS.values())
    }
    paths = {"alexnet": tmp_path / "alexnet.pth", "lpips-alex": tmp_path / "alex.pth"}
    torch.save(features, paths["alexnet"])
    torch.save(linear, paths["lpips-alex"])
    calls = []

    def fetch(name, progress=None):
        calls.append(name)
        return paths[name]

    monkeypatch.setattr(models, "fetch", fetch)
    return features, linear, calls


def _reference_lpips(features, linear, x0, x1):
    """LPIPS v0.1 written as the lpips package builds it, with torchvision's AlexNet layout."""
    import torch
    from torch import nn

    layers = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    layers.load_state_dict({k[len("features.") :]: v for k, v in features.items() if k.startswith("features.")})
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    slices = [layers[0:2], layers[2:5], layers[5:8], layers[8:10], layers[10:12]]
    h0, h1, total = (x0 - shift) / scale, (x1 - shift) / scale, 0.0
    with torch.no_grad():
        for k, block in enumerate(slices):
            h0, h1 = block(h0), block(h1)
            n0 = h0 / (torch.sqrt(torch.sum(h0**2, dim=1, keepdim=True)) + 1e-10)
            n1 = h1 / (torch.sqrt(torch.sum(h1**2, dim=1, keepdim=True)) + 1e-10)
            weighted = nn.functional.conv2d((n0 - n1) ** 2, linear[f"lin{k}.model.1.weight"])
            total += weighted.mean().item()
    return total


@pytest.fixture
def photo():
    from skimage import data

    return data.astronaut()[100:164, 180:260]  # 64 x 80 RGB uint8


@requires_torch
def test_lpips_matches_the_reference_network(lpips_files, photo):
    import torch

    features, linear, calls = lpips_files
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    expected = _reference_lpips(
        features, linear, *(torch.tensor(im / 127.5 - 1, dtype=torch.float32).permute(2, 0, 1)[None]
                            for im in (photo, noisy))
    )  # fmt: skip
    assert metrics.lpips(photo, noisy, channel_axis=-1, device="cpu") == pytest.approx(expected, rel=1e-4)
    assert set(calls) == {"alexnet", "lpips-alex"}


@requires_torch
def test_lpips_is_zero_symmetric_and_grows_with_distortion(lpips_files, photo):
    gray = photo[..., 1]
    assert metrics.lpips(gray, gray) == 0.0
    rng = np.random.default_rng(1)
    scores = []
    for sigma in (2, 8, 30):
        noisy = np.clip(gray + rng.normal(0, sigma, gray.shape), 0, 255).astype(np.uint8)
        scores.append(metrics.lpips(gray, noisy))
        assert metrics.lpips(noisy, gray) == pytest.approx(scores[-1], rel=1e-6)
    assert 0 < scores[0] < scores[1] < scores[2]


@requires_torch
def test_lpips_input_scaling_and_channel_layouts(lpips_files, photo):
    other = photo[::-1]
    rgb = metrics.lpips(photo, other, channel_axis=-1)
    assert metrics.lpips(np.moveaxis(photo, -1, 0), np.moveaxis(other, -1, 0), channel_axis=0) == pytest.approx(rgb)
    # A float image of range [0, 255] (its minimum 0) is scaled exactly like uint8.
    assert photo.min() == 0
    as_float = metrics.lpips(photo.astype(np.float32), other.astype(np.float32), data_range=255, channel_axis=-1)
    assert as_float == pytest.approx(rgb, rel=1e-5)
    # Grayscale is repeated to three channels; other channel counts average per-channel grayscale scores.
    gray, gray_other = photo[..., 0], other[..., 0]
    as_rgb = metrics.lpips(np.repeat(gray[..., None], 3, -1), np.repeat(gray_other[..., None], 3, -1), channel_axis=-1)
    assert metrics.lpips(gray, gray_other) == pytest.approx(as_rgb)
    two = metrics.lpips(photo[..., :2], other[..., :2], channel_axis=-1)
    per_channel = [metrics.lpips(photo[..., c], other[..., c]) for c in range(2)]
    assert two == pytest.approx(np.mean(per_channel), rel=1e-5)


@requires_torch
def test_lpips_explains_missing_weights(monkeypatch):
    def offline(name, progress=None):
        raise models.DownloadError(f"could not fetch model {name!r}: no network")

    monkeypatch.setattr(models, "fetch", offline)
    image = np.zeros((40, 40), np.uint8)
    with pytest.raises(RuntimeError, match=r"'alexnet'.*about 245 MB.*no network"):
        metrics.lpips(image, image)


@requires_torch
def test_lpips_rejects_wrong_weights_and_small_images(tmp_path, monkeypatch, lpips_files):
    import torch

    with pytest.raises(ValueError, match="at least 32"):
        metrics.lpips(np.zeros((20, 40), np.uint8), np.ones((20, 40), np.uint8))
    with pytest.raises(ValueError, match="2D"):
        metrics.lpips(np.zeros((4, 40, 40), np.uint8), np.ones((4, 40, 40), np.uint8))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    monkeypatch.setattr(models, "fetch", lambda name, progress=None: tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="not torchvision's AlexNet"):
        metrics.lpips(np.zeros((40, 40), np.uint8), np.ones((40, 40), np.uint8))


@requires_torch
def test_lpips_is_available_only_with_both_weight_files_cached(monkeypatch):
    cached = {"alexnet"}
    monkeypatch.setattr(models, "is_cached", lambda name: name in cached)
    assert not metrics.lpips_available()
    cached.add("lpips-alex")
    assert metrics.lpips_available()


@requires_torch
def test_fetch_lpips_fetches_both_weights_and_explains_failures(lpips_files, monkeypatch):
    _, _, calls = lpips_files
    metrics.fetch_lpips()
    assert set(calls) == {"alexnet", "lpips-alex"}

    def offline(name, progress=None):
        raise models.DownloadError("no network")

    monkeypatch.setattr(models, "fetch", offline)
    with pytest.raises(RuntimeError, match=r"about 245 MB.*no network"):
        metrics.fetch_lpips()
