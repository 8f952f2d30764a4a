"""deepCR's real networks end to end: download, hash check, loading, detection, filling and fine-tuning.

The weights are deepCR's own files: its source distribution on PyPI holds them, and .ci/run extracts them
into the folder named by ``NAPARI_INPAINT_TEST_WEIGHTS``.  Each test serves them from an HTTP server on
127.0.0.1 as the registry's mirror, into an empty cache, so that pooch's download, the check against the
registered SHA-256, the loading and the inference all run on the real files.  Without the files the tests
skip, unless ``NAPARI_INPAINT_REQUIRE_WEIGHTS`` is set (CI), where they fail.

The known answers come from the simulated sky of test_detect.py (in electrons, with injected cosmic rays).
"""

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
from test_detect import READ_NOISE, SKY, far_from, simulated_sky

torch = pytest.importorskip("torch")

from napari_inpaint import detect, inpaint, models
from napari_inpaint.engine import training_stack
from napari_inpaint.methods import deepcr

DEEPCR_MODELS = {**models.DEEPCR_MASKS, **models.DEEPCR_INPAINTERS}


@pytest.fixture(scope="module")
def _weights_server(real_weight_files, require_real_weights, tmp_path_factory):
    require_real_weights(DEEPCR_MODELS.values())
    root = tmp_path_factory.mktemp("www")
    for name in DEEPCR_MODELS.values():
        shutil.copyfile(real_weight_files[name], root / models.MODELS[name].filename)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def weights(_weights_server, monkeypatch, tmp_path):
    """The registry as it is (real file names and hashes), an empty cache, the local server as mirror."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(models.MIRROR_ENV, _weights_server)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def sky():
    return simulated_sky()


def test_every_network_downloads_checks_and_loads(weights):
    for name, registered in DEEPCR_MODELS.items():
        net = deepcr.load_network(name, "cpu")
        assert models.is_cached(registered) and (weights / models.MODELS[registered].filename).is_file()
        config = net.config
        assert (config["in_channels"], config["width"]) == (
            (1, 32) if name in models.DEEPCR_MASKS else (2, 32)
        )
        assert config["levels"] == (3 if name.endswith("3-32") else 2)
        assert config["batch_norm"] == (name != "WFC3-UVIS")  # its convolutions are weight-normalised
        assert config["sigmoid"] == (name in models.DEEPCR_MASKS)
        assert deepcr.load_network(name, "cpu") is net  # loaded once


def test_a_file_with_the_wrong_bytes_is_refused(weights, tmp_path, monkeypatch):
    folder = tmp_path / "bad-mirror"
    folder.mkdir()
    (folder / "ACS-WFC.pth").write_bytes(b"not deepCR's file")
    monkeypatch.setenv(models.MIRROR_ENV, str(folder))
    with pytest.raises(models.DownloadError, match="does not match its known hash"):
        deepcr.load_network("ACS-WFC", "cpu")


def test_the_acs_mask_network_flags_injected_cosmic_rays(weights, sky):
    _, observed, hits = sky
    flagged = detect.cosmic_rays(observed, method="deepcr", model="ACS-WFC", device="cpu")
    assert (flagged & hits).sum() >= 0.95 * hits.sum()
    far = far_from(hits)
    assert (flagged & far).sum() <= 1e-4 * far.sum()


@pytest.mark.parametrize(
    ("model", "threshold", "recall", "false_positives"),
    [
        ("decam", 0.5, 0.9, 1e-4),
        ("WFC3-UVIS", 0.2, 0.9, 2e-3),
    ],
)
def test_the_other_mask_networks_find_most_hits(weights, sky, model, threshold, recall, false_positives):
    # Trained on other instruments (DECam in ADU; WFC3/UVIS standardised): good, not as good as ACS/WFC here.
    _, observed, hits = sky
    flagged = detect.cosmic_rays(observed, method="deepcr", model=model, threshold=threshold, device="cpu")
    far = far_from(hits)
    assert (flagged & hits).sum() >= recall * hits.sum()
    assert (flagged & far).sum() <= false_positives * far.sum()


def test_detection_of_a_stack_is_plane_by_plane_and_ignores_nonfinite(weights, sky):
    _, observed, _ = sky
    stack = np.stack([observed, np.full(observed.shape, SKY)])
    stack[1, 5, 5] = np.nan
    flagged = detect.cosmic_rays(stack, method="deepcr", device="cpu")
    np.testing.assert_array_equal(flagged[0], detect.cosmic_rays(observed, method="deepcr", device="cpu"))
    assert not flagged[1].any()


def test_the_fill_is_close_to_the_sky_without_the_hits(weights, sky):
    truth, observed, hits = sky
    noise = np.sqrt(SKY + READ_NOISE**2)

    def error(filled: np.ndarray) -> float:
        return float(np.abs(filled[hits] - truth[hits]).mean())

    filled = inpaint(observed, hits, "deepcr", device="cpu")
    np.testing.assert_array_equal(filled[~hits], observed[~hits])
    assert error(filled) < noise  # within the noise of the sky it replaces
    assert error(filled) < 1.5 * error(inpaint(observed, hits, "biharmonic"))
    # The network needs the image's units: the same electrons given as kilo-electrons are filled far worse.
    assert error(inpaint(observed / 1000, hits, "deepcr", device="cpu") * 1000) > 2 * error(filled)


def test_the_fill_rivals_astroscrappys_cleaning_of_the_hits_it_found(weights, sky):
    astroscrappy = pytest.importorskip("astroscrappy")
    truth, observed, hits = sky
    found, cleaned = astroscrappy.detect_cosmics(observed.astype(np.float32), gain=1.0, readnoise=READ_NOISE)
    both = found & hits
    filled = inpaint(observed, hits, "deepcr", device="cpu")
    ours, theirs = (float(np.abs(image[both] - truth[both]).mean()) for image in (filled, cleaned))
    assert ours < 1.5 * theirs and ours < np.sqrt(SKY + READ_NOISE**2)


def test_the_engines_scaling_of_a_crop_is_undone_exactly(weights, sky):
    _, observed, hits = sky
    crop, holes = observed[:64, :64], hits[:64, :64]
    network = deepcr.load_network(deepcr.DEFAULT_INPAINTER, "cpu")
    known = np.where(holes, 0.0, crop)[..., None]
    unscaled = deepcr.deepcr(known, holes, prepared=network)
    for exponent in (-12, -3, 5):
        # The engine divides a crop by a power of two and says by which: the fill is in the image's units.
        scaled = deepcr.deepcr(known / 2.0**exponent, holes, prepared=network, scale=2.0**exponent)
        np.testing.assert_allclose(scaled * 2.0**exponent, unscaled, rtol=1e-6)


def test_three_level_network_and_stacks_fill(weights, sky):
    truth, observed, hits = sky
    stack = np.stack([observed, observed[::-1]])
    masks = np.stack([hits, hits[::-1]])
    filled = inpaint(stack, masks, "deepcr", network="ACS-WFC-F606W-3-32", device="cpu")
    np.testing.assert_array_equal(filled[~masks], stack[~masks])
    assert float(np.abs(filled[0][hits] - truth[hits]).mean()) < np.sqrt(SKY + READ_NOISE**2) * 1.5


def test_fine_tuning_saves_and_fills_like_a_learned_model(weights, sky, tmp_path):
    _, observed, hits = sky
    published = deepcr.load_network(deepcr.DEFAULT_INPAINTER, "cpu")
    before = {key: value.clone() for key, value in published.state_dict().items()}
    tuned = deepcr.fine_tune(training_stack(observed, hits, method="deepcr"), steps=3, seconds=0, device="cpu", seed=1)
    assert all(torch.equal(value, published.state_dict()[key]) for key, value in before.items())  # untouched
    assert any(not torch.equal(value, tuned.state_dict()[key]) for key, value in before.items())
    assert (tuned.config["offset"], tuned.config["scale"]) == (0.0, 1.0)  # it still works in electrons
    path = tmp_path / "tuned.pt"
    deepcr.save_model(tuned, path)
    filled = inpaint(observed, hits, "deepcr", model=str(path), device="cpu")
    np.testing.assert_array_equal(filled[~hits], observed[~hits])
    assert not np.array_equal(filled, inpaint(observed, hits, "deepcr", device="cpu"))
    # Tuning within the call, from the same seed, gives the same fill.
    once, again = (
        inpaint(observed, hits, "deepcr", steps=2, seconds=0, device="cpu", seed=4) for _ in range(2)
    )
    np.testing.assert_array_equal(once, again)


def test_training_from_scratch_records_its_normalisation(weights, sky, tmp_path):
    _, observed, hits = sky
    stack = training_stack(observed, hits, method="deepcr")
    net = deepcr.fine_tune(stack, pretrained=False, steps=2, seconds=0, device="cpu")
    assert net.config["offset"] > 0 and net.config["scale"] > 0  # the typical plane's 1st percentile and span
    deepcr.save_model(net, tmp_path / "scratch.pt")
    filled = inpaint(observed, hits, "deepcr", device="cpu", model=str(tmp_path / "scratch.pt"))
    np.testing.assert_array_equal(filled[~hits], observed[~hits])
    assert np.isfinite(filled).all()


def test_bad_model_files_and_names_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"deepcr\.save_model"):
        deepcr.load_model(tmp_path / "missing.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a tuned deepCR network"):
        deepcr.load_model(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="unknown deepCR network 'HST'"):
        deepcr.load_network("HST")
    with pytest.raises(ValueError, match="parameter 'model' of method 'deepcr' must be one of ACS-WFC"):
        detect.cosmic_rays(np.zeros((8, 8)), method="deepcr", model="HST")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_gives_the_cpu_results(weights, sky):
    _, observed, hits = sky
    for device in ("cpu", "cuda"):
        probability = deepcr.cosmic_ray_probability(observed, "ACS-WFC", device=device)
        filled = inpaint(observed, hits, "deepcr", device=device)
        if device == "cpu":
            expected = probability, filled
    # GPUs may convolve in TF32 (10-bit mantissas): close, within a small fraction of the noise.
    np.testing.assert_allclose(probability, expected[0], atol=1e-2)
    np.testing.assert_allclose(filled, expected[1], atol=0.5)
