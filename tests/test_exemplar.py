"""Tests of the exemplar (Criminisi patch-copy) method."""

import numpy as np
import pytest

from napari_inpaint import get_method, inpaint


def _tiled(shape: tuple[int, int], period: int = 8, channels: int | None = None, seed: int = 0) -> np.ndarray:
    """A periodic texture: one random ``period`` x ``period`` tile repeated over ``shape``."""
    rng = np.random.default_rng(seed)
    tile = rng.random((period, period) + (() if channels is None else (channels,)))
    reps = (-(-shape[0] // period), -(-shape[1] // period)) + (() if channels is None else (1,))
    return np.tile(tile, reps)[: shape[0], : shape[1]]


def _from_known(filled: np.ndarray, image: np.ndarray, mask: np.ndarray) -> bool:
    """Whether every filled pixel (all its channels together) equals some known pixel."""
    channels = image.shape[mask.ndim :]
    known = {tuple(v) for v in image[~mask].reshape(-1, *channels or (1,))}
    return all(tuple(v) in known for v in filled[mask].reshape(-1, *channels or (1,)))


def test_periodic_texture_reconstructed_from_known_values():
    image = _tiled((64, 64))
    mask = np.zeros(image.shape, bool)
    mask[24:38, 20:36] = True
    filled = inpaint(image, mask, "exemplar", patch_size=7, search_radius=24)
    assert np.array_equal(filled[~mask], image[~mask])
    assert _from_known(filled, image, mask)
    exemplar_error = np.abs(filled - image)[mask].mean()
    mean_fill_error = np.abs(image[~mask].mean() - image)[mask].mean()
    assert exemplar_error < 1e-12
    assert mean_fill_error > 0.2


def test_stripes_reconstructed_exactly():
    yy, xx = np.mgrid[:80, :80]
    image = np.sin(2 * np.pi * (xx + 2 * yy) / 10.0) * 100.0 + 500.0  # oblique stripes, large values
    mask = np.zeros(image.shape, bool)
    mask[30:50, 25:45] = True
    filled = inpaint(image, mask, "exemplar", patch_size=9, search_radius=32)
    assert np.abs(filled - image)[mask].max() < 1e-9


@pytest.mark.parametrize("channels", [2, 4])
def test_multichannel_matches_channels_jointly(channels):
    image = _tiled((64, 64), channels=channels, seed=channels)
    mask = np.zeros(image.shape[:2], bool)
    mask[20:34, 28:40] = True
    filled = inpaint(image, mask, "exemplar", channel_axis=-1, patch_size=7, search_radius=20)
    assert filled.shape == image.shape
    # Whole pixel vectors are copied, so channels never mix between sources.
    assert _from_known(filled, image, mask)
    assert np.abs(filled - image)[mask].max() < 1e-12


def test_holes_touching_the_border():
    image = _tiled((64, 72), period=6, seed=3)
    mask = np.zeros(image.shape, bool)
    mask[:9, :11] = True  # corner
    mask[50:, 30:44] = True  # bottom edge
    mask[20:28, 66:] = True  # right edge
    filled = inpaint(image, mask, "exemplar", patch_size=5, search_radius=16)
    assert _from_known(filled, image, mask)
    assert np.abs(filled - image)[mask].max() < 1e-12


def test_integer_image_keeps_dtype_and_known_pixels():
    image = (_tiled((48, 48), seed=5) * 60000).astype(np.uint16)
    mask = np.zeros(image.shape, bool)
    mask[10:20, 30:41] = True
    filled = inpaint(image, mask, "exemplar", patch_size=5, search_radius=16)
    assert filled.dtype == np.uint16
    assert np.array_equal(filled[~mask], image[~mask])
    assert np.array_equal(filled, image)


def test_deterministic_on_noise():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(64, 64, 3))
    mask = rng.random((64, 64)) < 0.02
    mask[30:42, 12:25] = True
    first = inpaint(image, mask, "exemplar", channel_axis=-1, patch_size=5, search_radius=12, seed=0)
    second = inpaint(image, mask, "exemplar", channel_axis=-1, patch_size=5, search_radius=12, seed=99)
    assert np.array_equal(first, second)
    assert _from_known(first, image, mask)


def test_hole_larger_than_search_window_is_filled():
    image = _tiled((96, 96), seed=7)
    mask = np.zeros(image.shape, bool)
    mask[24:72, 26:70] = True  # 48 x 44 hole, search window only 8 pixels each way
    filled = inpaint(image, mask, "exemplar", patch_size=5, search_radius=8)
    assert np.isfinite(filled).all()
    assert _from_known(filled, image, mask)  # masked zeros would not pass


def test_small_crop_uses_smaller_patches():
    image = _tiled((10, 10), period=4, seed=2)
    mask = np.zeros(image.shape, bool)
    mask[4:6, 4:6] = True  # no 9x9 patch of this image is entirely known
    filled = get_method("exemplar").fill(image[..., None] * ~mask[..., None], mask, patch_size=9)
    assert _from_known(filled[..., 0], image, mask)


def test_bad_input_raises_clear_errors():
    image = _tiled((32, 32))
    mask = np.zeros(image.shape, bool)
    mask[10:14, 10:14] = True
    with pytest.raises(ValueError, match="odd"):
        inpaint(image, mask, "exemplar", patch_size=8)
    with pytest.raises(ValueError, match="patch_size"):
        inpaint(image, mask, "exemplar", patch_size=33)
    checkerboard = (np.add.outer(np.arange(32), np.arange(32)) % 2).astype(bool)
    with pytest.raises(ValueError, match="entirely known"):
        inpaint(image, checkerboard, "exemplar")


def test_check_is_called_and_cancels():
    image = _tiled((96, 96))[..., None]
    mask = np.zeros(image.shape[:2], bool)
    mask[10:86, 10:86] = True
    image[mask] = 0.0
    calls = []

    def check():
        calls.append(None)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        get_method("exemplar").fill(image, mask, patch_size=3, search_radius=8, check=check)
    assert len(calls) == 2
