"""LaMa and MI-GAN methods: pre/post-processing and end-to-end runs with stand-in networks.

The stand-ins (``stand_in_weights`` in conftest.py) are TorchScript modules
with the real networks' signatures that fill each hole with the mean of the
known pixels, so the expected result can be computed by hand.  They reach the
methods through the real download path (a mirror folder, hash checked by
pooch).  What every method promises (known pixels, dtype, cancel, progress,
threads) is checked in test_contract.py.
"""

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_inpaint import get_method, inpaint, models
from napari_inpaint.methods import pretrained


def _expected_mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per channel: the known pixels' mean in the robust [0, 1] scaling, mapped back."""
    known = image[~mask].astype(np.float64)
    low, high = np.percentile(known, [0.5, 99.5], axis=0)
    span = np.where(high > low, high - low, 1.0)  # a flat channel comes back as its one value
    return low + np.clip((known - low) / span, 0, 1).mean(axis=0) * (high - low)


def test_channel_groups_repeat_short_groups():
    assert pretrained._channel_groups(1) == [[0, 0, 0]]
    assert pretrained._channel_groups(2) == [[0, 1, 0]]
    assert pretrained._channel_groups(3) == [[0, 1, 2]]
    assert pretrained._channel_groups(4) == [[0, 1, 2], [3, 3, 3]]
    assert pretrained._channel_groups(5) == [[0, 1, 2], [3, 4, 3]]


def test_padding_to_the_network_size():
    assert pretrained._padded_size(61, 64, 8, None) == (64, 64)
    assert pretrained._padded_size(8, 9, 8, None) == (8, 16)
    assert pretrained._padded_size(100, 300, 512, 512) == (512, 512)
    np.testing.assert_array_equal(pretrained._pad(np.array([[1, 2, 3]]), 1, 6), [[1, 2, 3, 2, 1, 2]])
    np.testing.assert_array_equal(pretrained._pad(np.array([[1, 2], [3, 4]]), 3, 2), [[1, 2], [3, 4], [1, 2]])


def test_robust_range_uses_percentiles_of_known_pixels():
    low, span = pretrained._robust_range(np.arange(1001.0)[:, None])
    assert low == pytest.approx([5.0]) and span == pytest.approx([990.0])


def test_normalisation_round_trip_and_compositing(monkeypatch):
    identity = pretrained._Contract("identity", multiple=8, square=None, forward=lambda model, rgb, hole: rgb)
    monkeypatch.setattr(models, "load", lambda name, device: None)
    image = np.linspace(-50.0, 3000.0, 16 * 16 * 2).reshape(16, 16, 2)
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    mask[0, 0] = True  # the darkest pixel lies below the 0.5 percentile: it comes back clipped
    out = pretrained._fill(identity, image, mask, "cpu", False, 1024, None)
    low, _span = pretrained._robust_range(image[~mask])
    np.testing.assert_allclose(out[4:8, 4:8], image[4:8, 4:8], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], low, rtol=1e-6)
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_large_crops_are_shrunk_for_the_network_and_scaled_back():
    seen = []

    def model(rgb, hole):
        seen.append((tuple(rgb.shape), float(hole.sum())))
        return torch.full_like(rgb, 0.25)

    contract = replace(pretrained._CONTRACTS["lama"], forward=lambda m, rgb, hole: model(rgb, hole))
    mask = np.zeros((100, 60), bool)
    mask[50, 30] = True
    out = pretrained._run_once(None, contract, np.zeros((100, 60, 3)), mask, torch.device("cpu"), False, 32)
    assert seen == [((1, 3, 32, 24), 1.0)]  # 32x19 padded to multiples of 8; the one-pixel hole survives
    assert out.shape == (100, 60, 3) and np.allclose(out, 0.25)


def test_gpu_out_of_memory_retries_smaller_then_explains():
    sizes = []

    def model(rgb, hole):
        sizes.append(rgb.shape[-1])
        if rgb.shape[-1] > 300:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return rgb

    contract = replace(pretrained._CONTRACTS["lama"], forward=lambda m, rgb, hole: model(rgb, hole))
    mask = np.zeros((512, 512), bool)
    mask[200:210, 200:210] = True
    out = pretrained._run(None, contract, np.full((512, 512, 3), 0.5), mask, torch.device("cpu"), False, 1024)
    assert sizes == [512, 256] and out.shape == (512, 512, 3)

    def no_memory(m, rgb, hole):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(RuntimeError, match=r"ran out of memory.*device='cpu'"):
        pretrained._run(None, replace(contract, forward=no_memory), np.full((512, 512, 3), 0.5), mask,
                        torch.device("cpu"), False, 1024)


def test_lama_fills_uint16_grayscale(stand_in_weights):
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 30000, size=(64, 64)).astype(np.uint16)
    mask = np.zeros(image.shape, bool)
    mask[20:30, 25:45] = True
    filled = inpaint(image, mask, method="lama", device="cpu", fp16=True, context=64)
    assert filled.dtype == np.uint16 and np.array_equal(filled[~mask], image[~mask])
    expected = _expected_mean_fill(image[..., None], mask)[0]
    np.testing.assert_allclose(filled[mask], expected, atol=1)


def test_lama_fills_multichannel_float_in_groups_of_three(stand_in_weights):
    rng = np.random.default_rng(1)
    scales = np.array([1.0, 100.0, -5.0, 1e4, 0.01], np.float32)
    image = (rng.random((64, 64, 5), dtype=np.float32) * scales).astype(np.float32)
    image[..., 2] = 7.5  # a flat channel is filled with its one value
    mask = np.zeros((64, 64), bool)
    mask[30:40, 10:20] = True
    filled = inpaint(image, mask, method="lama", channel_axis=-1, device="cpu", context=64)
    assert np.array_equal(filled[~mask], image[~mask])
    expected = _expected_mean_fill(image, mask)
    assert expected[2] == 7.5
    np.testing.assert_allclose(filled[mask], np.broadcast_to(expected, (mask.sum(), 5)), rtol=1e-4)


def test_migan_fills_rgb_through_its_512_input(stand_in_weights):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(512, 512, 3)).astype(np.uint8)
    mask = np.zeros((512, 512), bool)
    mask[100:140, 300:330] = True
    filled = inpaint(image, mask, method="migan", device="cpu", context=512)
    assert np.array_equal(filled[~mask], image[~mask])
    expected = np.broadcast_to(_expected_mean_fill(image, mask), (mask.sum(), 3))
    np.testing.assert_allclose(filled[mask], expected, atol=1)


def test_migan_refuses_a_size_other_than_its_input():
    with pytest.raises(ValueError, match="max_size"):
        get_method("migan").resolve({"max_size": 1024})
