"""Tests of the self-supervised ``learned`` method and Deep Image Prior (tiny networks, few steps)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_inpaint import get_method, inpaint  # noqa: E402
from napari_inpaint.methods import learned  # noqa: E402

# Tiny, untimed runs: results depend on the steps only, never on the machine's speed.
TINY = {"seconds": 0, "crop_size": 32, "width": 8, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks run fastest on one thread (and a loaded machine makes two far slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stripes(size: int = 48) -> np.ndarray:
    """Oblique stripes of period 6: a texture that smooth fills cannot continue."""
    yy, xx = np.mgrid[:size, :size]
    return 100.0 + 50.0 * np.sin(2 * np.pi * (xx + yy) / 6.0)


def _square_hole(size: int = 48, lo: int = 20, hi: int = 27) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_registered():
    for name, context in (("learned", 128), ("dip", 32)):
        spec = get_method(name)
        assert spec.needs_torch and not spec.needs_download and not spec.channel_independent
        assert spec.ndims == (2,)
        assert spec.margin(spec.resolve({})) == context
        assert spec.margin(spec.resolve({"context": 40})) == 40
        assert {"rng", "check"} <= spec.engine_keywords
    assert get_method("learned").param("model").default == ""


def test_training_beats_untrained_network():
    image, mask = _stripes(), _square_hole()
    untrained = inpaint(image, mask, "learned", steps=1, learning_rate=1e-5, **TINY)
    trained = inpaint(image, mask, "learned", steps=200, learning_rate=5e-3, **TINY)
    untrained_error = np.abs(untrained - image)[mask].mean()
    trained_error = np.abs(trained - image)[mask].mean()
    assert trained_error < 0.5 * untrained_error
    assert trained_error < 0.5 * np.abs(image[~mask].mean() - image)[mask].mean()  # better than a flat fill


def test_save_and_load_reproduce_the_fill(tmp_path):
    image, mask = _stripes(), _square_hole()
    net = learned.train_model(image, mask, steps=10, seed=3, **TINY)
    path = tmp_path / "stripes.pt"
    learned.save_model(net, path)
    loaded = learned.load_model(path, device="cpu")
    assert loaded.config == net.config
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])

    copy = tmp_path / "copy.pt"
    learned.save_model(loaded, copy)
    first = inpaint(image, mask, "learned", model=str(path), device="cpu")
    second = inpaint(image, mask, "learned", model=str(copy), device="cpu")
    assert np.array_equal(first, second)
    assert np.array_equal(first[~mask], image[~mask])
    # A model fills another image of the same kind without training.
    other = np.roll(image, 3, axis=1)
    assert np.isfinite(inpaint(other, mask, "learned", model=str(path), device="cpu")).all()


def test_model_errors(tmp_path):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    path = tmp_path / "gray.pt"
    learned.save_model(learned.train_model(image, steps=1, **TINY), path)
    rgb = np.stack([image] * 3, axis=-1)
    with pytest.raises(ValueError, match="1 channel"):
        inpaint(rgb, mask, "learned", model=str(path), device="cpu")
    with pytest.raises(FileNotFoundError, match="no model file"):
        inpaint(image, mask, "learned", model=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a napari-inpaint learned model"):
        learned.load_model(junk)


@pytest.mark.parametrize("name, steps", [("learned", "steps"), ("dip", "iterations")])
def test_check_stops_and_progress_counts(name, steps):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    calls, reported = [], []

    def check():
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt

    given = {steps: 1000, "width": 8, "device": "cpu"} | ({"seconds": 0} if name == "learned" else {})
    params = get_method(name).resolve(given)
    with pytest.raises(KeyboardInterrupt):
        get_method(name).fill(
            image[..., None], mask, **params, check=check, progress=lambda i, n: reported.append((i, n))
        )
    assert reported == [(1, 1000), (2, 1000), (3, 1000)]


@pytest.mark.parametrize("name, params", [
    ("learned", {"steps": 5, **TINY}),
    ("dip", {"iterations": 5, "width": 8}),
])
def test_seed_makes_runs_reproducible(name, params):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    first = inpaint(image, mask, name, seed=1, **params)
    again = inpaint(image, mask, name, seed=1, **params)
    other = inpaint(image, mask, name, seed=2, **params)
    assert np.array_equal(first, again)
    assert not np.array_equal(first[mask], other[mask])


@pytest.mark.parametrize("name, params", [
    ("learned", {"steps": 3, **TINY}),
    ("dip", {"iterations": 3, "width": 8}),
])
@pytest.mark.parametrize("dtype, rgb", [(np.uint8, True), (np.uint16, False), (np.float32, False)])
def test_known_pixels_exact_and_dtype_kept(name, params, dtype, rgb):
    rng = np.random.default_rng(0)
    image = _stripes(40)[..., None] * np.array([1.0, 0.8, 0.5]) if rgb else _stripes(40) * 300
    image = (image + rng.normal(0, 2, image.shape)).astype(dtype)
    mask = _square_hole(40, 12, 20)
    mask[30, 5:35] = True
    filled = inpaint(image, mask, name, **params)
    assert filled.dtype == image.dtype and filled.shape == image.shape
    assert np.array_equal(filled[~mask], image[~mask])
    assert np.isfinite(filled.astype(np.float64)).all()


def test_dip_fit_improves_the_fill():
    yy, xx = np.mgrid[:32, :32]
    image = np.exp(-((yy - 14.0) ** 2 + (xx - 17.0) ** 2) / 120.0)  # smooth bump
    mask = _square_hole(32, 12, 19)
    early = inpaint(image, mask, "dip", iterations=1, width=8, device="cpu")
    fitted = inpaint(image, mask, "dip", iterations=150, learning_rate=0.01, width=8, device="cpu")
    assert np.abs(fitted - image)[mask].mean() < 0.5 * np.abs(early - image)[mask].mean()


def test_train_model_on_a_stack_and_bad_input():
    stack = np.stack([_stripes(32), np.roll(_stripes(32), 2, axis=0)])
    net = learned.train_model(stack, _square_hole(32, 10, 16), steps=2, **TINY)
    assert net.config["channels"] == 1
    rgb = learned.train_model(np.zeros((32, 32, 3), np.uint8), steps=1, **TINY)
    assert rgb.config["channels"] == 3
    with pytest.raises(ValueError, match="known"):
        learned.train_model(stack, np.ones((32, 32), bool), steps=1, **TINY)
    with pytest.raises(ValueError, match="2D image"):
        learned.train_model(np.zeros(10), steps=1, **TINY)
