"""Tests of the self-supervised ``learned`` method and Deep Image Prior (tiny networks, few steps)."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")

from napari_inpaint import InpaintCancelled, get_method, inpaint
from napari_inpaint.engine import training_stack
from napari_inpaint.methods import _networks, _training, learned

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
    net = learned.train_model(training_stack(image, mask), steps=10, seed=3, **TINY)
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
    learned.save_model(learned.train_model(training_stack(image), steps=1, **TINY), path)
    rgb = np.stack([image] * 3, axis=-1)
    with pytest.raises(ValueError, match="1 channel"):
        inpaint(rgb, mask, "learned", model=str(path), device="cpu")
    with pytest.raises(FileNotFoundError, match="no model file"):
        inpaint(image, mask, "learned", model=str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a napari-inpaint learned model"):
        learned.load_model(junk)


@pytest.mark.parametrize("name", ["learned", "dip"])
def test_check_stops_and_progress_counts(name):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    reported = []

    def check():
        # Called before every step and within it (window draws): stop at the first call after step 3.
        if len(reported) == 3:
            raise KeyboardInterrupt

    report = lambda i, n: reported.append((i, n))  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        if name == "learned":  # learned trains in its preparation, which train_model runs too
            learned.train_model(training_stack(image, mask), steps=1000, **TINY, check=check, progress=report)
        else:
            params = get_method(name).resolve({"iterations": 1000, "width": 8, "device": "cpu"})
            get_method(name).fill(image[..., None], mask, **params, check=check, progress=report)
    assert reported == [(1, 1000), (2, 1000), (3, 1000)]


@pytest.mark.parametrize("name, params", [
    ("learned", {"steps": 20, **TINY}),  # enough to beat the start on the held-out pixels (by 0.6 to 1.5 dB)
    ("dip", {"iterations": 5, "width": 8}),
])
def test_seed_makes_runs_reproducible(name, params):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    first = inpaint(image, mask, name, seed=1, **params)
    again = inpaint(image, mask, name, seed=1, **params)
    other = inpaint(image, mask, name, seed=2, **params)
    assert np.array_equal(first, again)
    assert not np.array_equal(first[mask], other[mask])


def test_dip_fit_improves_the_fill():
    yy, xx = np.mgrid[:32, :32]
    image = np.exp(-((yy - 14.0) ** 2 + (xx - 17.0) ** 2) / 120.0)  # smooth bump
    mask = _square_hole(32, 12, 19)
    early = inpaint(image, mask, "dip", iterations=1, width=8, device="cpu")
    fitted = inpaint(image, mask, "dip", iterations=150, learning_rate=0.01, width=8, device="cpu")
    assert np.abs(fitted - image)[mask].mean() < 0.5 * np.abs(early - image)[mask].mean()


def test_train_model_on_a_stack_and_bad_input():
    stack = np.stack([_stripes(32), np.roll(_stripes(32), 2, axis=0)])
    net = learned.train_model(training_stack(stack, _square_hole(32, 10, 16)), steps=2, **TINY)
    assert net.config["channels"] == 1
    rgb = learned.train_model(training_stack(np.zeros((32, 32, 3), np.uint8)), steps=1, **TINY)
    assert rgb.config["channels"] == 3
    with pytest.raises(ValueError, match="known"):
        learned.train_model(training_stack(stack, np.ones((32, 32), bool)), steps=1, **TINY)
    with pytest.raises(ValueError, match="spatial_ndim=2 needs at least 2"):
        training_stack(np.zeros(10))


def _within(deadline: float, function, *args, **kwargs):
    """Call ``function(*args, **kwargs)`` in a thread; return or raise as it did, fail after ``deadline`` s.

    A call that never ends (the bug under test) then fails the test instead of hanging the suite.
    """
    outcome = {}

    def call():
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), f"{function.__name__} still running after {deadline} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.mark.parametrize("shape, known", [
    ((4, 4), [(0, 0)]),
    ((1, 2), [(0, 1)]),
    ((40, 40), [(0, 0), (39, 39)]),  # two known pixels, but never in one 16x16 window
])
def test_too_few_known_pixels_is_a_clear_error_up_front(shape, known):
    # Issue 9: with one known pixel per window the window sampler looped forever.
    image = np.random.default_rng(0).random(shape)
    mask = np.ones(shape, bool)
    mask[tuple(np.transpose(known))] = False
    expected = r"too few known pixels.* at least 2 known pixels.*context.*biharmonic.*train_model"
    # The default budget (2000 steps, 60 s): the error must come before any training.
    with pytest.raises(ValueError, match=expected):
        _within(10, inpaint, image, mask, "learned", crop_size=16, device="cpu")
    with pytest.raises(ValueError, match=expected):
        _within(10, learned.train_model, training_stack(image, mask), crop_size=16, device="cpu")


def test_window_sampler_gives_up_and_honours_check():
    # A lone known pixel: no window can hide a known pixel and still show one.
    values, holes = np.zeros((1, 8, 8, 1)), np.ones((1, 8, 8), bool)
    holes[0, 3, 3] = False
    data = _training.TrainingData(values, holes)
    draws = []
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"too few known pixels.*biharmonic"):
        _within(10, _training._batch, data, (8, 8), 2.0, rng, lambda: draws.append(1))
    assert len(draws) == _training._MAX_FAILED_DRAWS + 1

    def cancel_at_the_tenth_draw():
        draws.append(1)
        if len(draws) == 10:
            raise InpaintCancelled

    draws.clear()
    with pytest.raises(InpaintCancelled):
        _within(10, _training._batch, data, (8, 8), 2.0, rng, cancel_at_the_tenth_draw)


@pytest.mark.parametrize("name, params", [
    ("learned", {"steps": 3, **TINY}),
    ("dip", {"iterations": 3, "width": 8, "device": "cpu"}),
])
@pytest.mark.parametrize("shape", [(1, 7), (7, 1), (2, 2), (3, 5), (5, 3)])
@pytest.mark.parametrize("holes", [[0], [0, -1]], ids=["one-hole", "two-holes"])
def test_tiny_images_are_filled(name, params, shape, holes):
    # Issue 9: crops under 4 px on a side made `learned` fail in numpy ("high - low < 0").
    image = 10.0 + np.arange(np.prod(shape), dtype=float).reshape(shape)
    mask = np.zeros(shape, bool)
    mask.flat[holes] = True
    filled = _within(30, inpaint, image, mask, name, **params)
    assert np.array_equal(filled[~mask], image[~mask])
    assert np.isfinite(filled).all()


def test_explicit_initialisation_reproduces_pytorch_default():
    torch.manual_seed(5)
    default = _networks.UNet(3, 2, width=4)
    before = torch.random.get_rng_state()
    generator = torch.Generator().manual_seed(5)
    explicit = _networks.build(_networks.UNet, 3, 2, width=4, generator=generator)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left alone
    for (key, value), (_, drawn) in zip(default.state_dict().items(), explicit.state_dict().items()):
        assert torch.equal(value, drawn), key
    inpainter = _networks.build(_networks.Inpainter, 1, 4, generator=torch.Generator().manual_seed(5))
    out = inpainter.unet.out
    assert not out.weight.any() and not out.bias.any()  # the untrained network gives the smooth fill
    assert inpainter.unet.enc1.conv.weight.std() > 0


def test_global_rng_left_alone(tmp_path):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    before = torch.random.get_rng_state()
    net = learned.train_model(training_stack(image, mask), steps=2, **TINY)
    learned.save_model(net, tmp_path / "net.pt")
    learned.load_model(tmp_path / "net.pt", device="cpu")
    inpaint(image, mask, "learned", steps=2, **TINY)
    inpaint(image, mask, "dip", iterations=2, width=8, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_concurrent_runs_match_a_serial_run():
    # Issue 9: threads shared torch's global RNG, so concurrent runs differed from run to run.
    image, mask = _stripes(24), _square_hole(24, 8, 13)
    runs = [("learned", {"steps": 2, **TINY, "crop_size": 16, "width": 4}),
            ("dip", {"iterations": 2, "width": 4, "device": "cpu"})]
    serial = [inpaint(image, mask, name, seed=7, **params) for name, params in runs]
    jobs = runs * 2
    for _ in range(4):
        start = threading.Barrier(len(jobs))

        def run(job, start=start):
            start.wait()
            return inpaint(image, mask, job[0], seed=7, **job[1])

        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(run, jobs))
        for (name, _), result, expected in zip(jobs, results, serial * 2):
            assert np.array_equal(result, expected), name


@pytest.mark.parametrize("name", ["learned", "dip"])
def test_cancel_within_half_a_second(name):
    # The training itself, as the engine may stop waiting for a cancelled fill and leave it running.
    iterating, cancel = threading.Event(), threading.Event()

    def check():
        if cancel.is_set():
            raise InpaintCancelled

    image, mask = _stripes(96), _square_hole(96, 40, 50)
    report = lambda *_: iterating.set()  # noqa: E731
    with ThreadPoolExecutor(1) as pool:
        if name == "learned":  # default network and windows
            running = pool.submit(learned.train_model, training_stack(image, mask), steps=10**6, seconds=0,
                                  device="cpu", check=check, progress=report)
        else:
            method = get_method(name)
            params = method.resolve({"iterations": 10**6, "device": "cpu"})
            running = pool.submit(method.fill, image[..., None], mask, **params, check=check, progress=report)
        # Once iterating: a process's first optimiser imports torch._dynamo (seconds) before any loop.
        assert iterating.wait(timeout=60)
        time.sleep(0.2)
        cancel.set()
        cancelled = time.perf_counter()
        with pytest.raises(InpaintCancelled):
            running.result(timeout=10)
        assert time.perf_counter() - cancelled < 0.5


def test_prediction_honours_check(tmp_path):
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    learned.save_model(learned.train_model(training_stack(image), steps=1, **TINY), tmp_path / "net.pt")
    calls = []

    def cancel_at_the_second_flip():
        calls.append(1)
        if len(calls) == 2:
            raise InpaintCancelled

    network = learned.load_model(tmp_path / "net.pt", device="cpu")
    with pytest.raises(InpaintCancelled):
        learned.learned(image[..., None], mask, prepared=network, check=cancel_at_the_second_flip)


def test_progress_follows_a_time_limit():
    # With a time limit that ends training long before `steps`, progress follows the time used
    # (it used to stay near 0 until the unit ended).
    image, mask = _stripes(32), _square_hole(32, 10, 16)
    reported = []
    params = {**TINY, "steps": 10**6, "seconds": 0.5}
    inpaint(image, mask, "learned", **params, progress=lambda done, total: reported.append(done / total))
    # Training is the preparation, which has 80 % of the bar.
    within_training = [fraction for fraction in reported if fraction < 0.8]
    assert within_training == sorted(within_training)
    assert 0.4 < max(within_training) < 0.8 and reported[-1] == 1


def test_one_training_fills_every_hole_of_a_stack(monkeypatch):
    # Issue 11: training ran once per crop, so nine far-apart holes cost nine budgets.
    trainings = []
    real_fit = learned.fit
    monkeypatch.setattr(learned, "fit", lambda *args, **kwargs: trainings.append(1) or real_fit(*args, **kwargs))
    stack = np.stack([_stripes(160), np.roll(_stripes(160), 3, axis=1)])
    mask = np.zeros(stack.shape, bool)
    for row in (10, 75, 140):
        for column in (10, 75, 140):
            mask[row % 2, row : row + 6, column : column + 6] = True  # nine holes, crops far apart
    filled = inpaint(stack, mask, "learned", steps=3, context=16, **TINY)
    assert trainings == [1]
    assert np.array_equal(filled[~mask], stack[~mask])


def test_a_reference_guides_the_network():
    from scipy import ndimage as ndi

    texture = ndi.gaussian_filter(np.random.default_rng(0).random((64, 64)), 1.0)  # unpredictable from context
    stack = np.stack([texture * (1 + 0.05 * k) for k in range(3)])  # one field, bleaching
    mask = np.zeros(stack.shape, bool)
    mask[1, 20:32, 20:36] = True
    truth = stack[1][mask[1]]

    def hole_error(**options) -> float:
        filled = inpaint(stack, mask, "learned", steps=50, **TINY, align=False, **options)
        return float(np.abs(filled[1][mask[1]] - truth).mean())

    alone, guided = hole_error(), hole_error(reference="adjacent")
    assert guided < 0.2 * alone
    # A network trained with a reference needs one to fill, and says so.
    net = learned.train_model(training_stack(stack, mask, reference="adjacent", align=False), steps=2, **TINY)
    assert net.config["reference"]


def test_a_model_and_the_call_agree_on_the_reference(tmp_path):
    stack = np.stack([_stripes(32)] * 3)
    mask = np.zeros(stack.shape, bool)
    mask[1, 10:16, 10:16] = True
    path = tmp_path / "with-reference.pt"
    trained = learned.train_model(training_stack(stack, mask, reference="adjacent"), steps=1, **TINY)
    learned.save_model(trained, path)
    with pytest.raises(ValueError, match="trained with a reference"):
        inpaint(stack, mask, "learned", model=str(path), device="cpu")
    filled = inpaint(stack, mask, "learned", model=str(path), device="cpu", reference="adjacent")
    assert np.array_equal(filled[~mask], stack[~mask])


# --------------------------------------------------------------------------- held-out check (issue 20)


def _smooth(size: int = 64, seed: int = 0) -> np.ndarray:
    """A quadratic ramp with a trace of noise: the biharmonic fill is exact but for the noise."""
    yy, xx = np.mgrid[:size, :size] / size
    noise = np.random.default_rng(seed).normal(0.0, 0.01, (size, size))
    return 100.0 + 40.0 * yy**2 + 30.0 * xx * yy + 20.0 * xx + noise


def _blobs(size: int = 64, seed: int = 0) -> np.ndarray:
    from napari_inpaint import masks

    return masks.debris((size, size), 3, seed=seed) | masks.debris((size, size), 2, seed=seed + 10)


def _run(image, mask, **params) -> tuple[np.ndarray, list[str]]:
    said = []
    filled = inpaint(image, mask, "learned", status=said.append, **params)
    return filled, [text for text in said if not text.startswith("filling")]


def test_a_start_that_training_does_not_beat_is_kept():
    # Measured: 20 steps end 1.1 to 5.7 dB below the exact biharmonic start on the probes (seeds 0 to 2).
    image, mask = _smooth(), _blobs()
    filled, said = _run(image, mask, steps=20, seed=0, **TINY)
    start = inpaint(image, mask, "biharmonic")
    assert np.abs(filled - start).max() < 1e-9  # the start itself (it differs by rounding only)
    assert np.array_equal(filled[~mask], image[~mask])
    assert said[1].startswith("checking the network against the biharmonic start on ")
    assert re.fullmatch(r"the network did not beat the biharmonic start on \d+ held-out pixels "
                        r"\(-\d+\.\d\d dB\): the start is used", said[2]), said[2]
    # The prepared result says so, for provenance; every fill of the call uses the start.
    stack = training_stack(image, mask)
    prepared = learned._prepare(stack, steps=20, rng=np.random.default_rng([0, 0]), **TINY)
    record = prepared.provenance["learned_check"]
    assert not prepared.use_network
    assert record["fill"] == "biharmonic" and record["gain_db"] < 0 and record["held_out_pixels"] >= 100
    assert record["network_mse"] > record["base_mse"] * (1 - _training.MARGIN)
    fill = learned.learned(image[..., None], mask, prepared=prepared)[..., 0]
    assert np.abs(fill - start).max() < 1e-9


def test_a_network_that_beats_its_start_is_used():
    # Measured: 100 steps beat biharmonic by 12.5 to 13.1 dB on the probes; hole MAE 3.9 to 5.3 against 38.
    image = _stripes(64)
    mask = _square_hole(64, 28, 35)
    mask[8:13, 40:46] = True
    filled, said = _run(image, mask, steps=100, learning_rate=5e-3, seed=0, **TINY)
    assert re.fullmatch(r"the network beat the biharmonic start on \d+ held-out pixels \(\+\d+\.\d\d dB\): "
                        r"its fill is used", said[2]), said[2]
    start = inpaint(image, mask, "biharmonic")
    assert np.abs(filled - image)[mask].mean() < 0.3 * np.abs(start - image)[mask].mean()
    # train_model checks too, and keeps the record on the network it returns (whatever the outcome).
    net = learned.train_model(training_stack(image, mask), steps=100, learning_rate=5e-3, seed=0, **TINY)
    assert net.held_out["fill"] == "network" and net.held_out["gain_db"] > 3
    assert net.held_out["held_out_pixels"] == int(re.search(r"on (\d+) held-out", said[2]).group(1))


def test_probes_are_hole_copies_on_known_pixels_apart_from_the_holes():
    from scipy import ndimage as ndi

    mask = _blobs(96)
    holes = np.stack([mask, np.zeros_like(mask), np.roll(mask, 20, axis=0)])
    probes = _training.hold_out(holes, np.random.default_rng(3), lambda: None, crop_size=32)
    assert probes.shape == holes.shape and not probes[1].any()  # a plane without holes has nothing to copy
    assert not (probes & ndi.binary_dilation(holes, np.ones((1, 3, 3), bool))).any()  # 1 px apart at least
    assert 0 < probes.sum() <= _training.PROBE_SHARE * (~holes[[0, 2]]).sum()
    sizes = {int(n) for n in np.bincount(ndi.label(holes[0], np.ones((3, 3)))[0].ravel())[1:]}
    found = np.bincount(ndi.label(probes[0], np.ones((3, 3)))[0].ravel())[1:]
    assert set(found.tolist()) <= sizes  # copies of the real holes
    again = _training.hold_out(holes, np.random.default_rng(3), lambda: None, crop_size=32)
    assert np.array_equal(probes, again)  # seeded
    # No room (a hole larger than a tenth of the known pixels): nothing is held out, and the status says so.
    image, hole = _stripes(16), _square_hole(16, 5, 11)
    assert _training.hold_out(hole[None], np.random.default_rng(0), lambda: None, crop_size=16) is None
    _, said = _run(image, hole, steps=2, seed=0, **TINY)
    assert said[1] == "no room to hold out pixels: the network's fill is used, unchecked against the biharmonic start"


def test_probes_are_never_seen_nor_learnt(monkeypatch):
    # The probes' values are zeroed before training, and every batch hides them and never scores them.
    seen = []
    real_fit = learned.fit
    monkeypatch.setattr(learned, "fit", lambda net, data, **kw: seen.append(data) or real_fit(net, data, **kw))
    image, mask = _smooth(), _blobs()
    first = learned._prepare(training_stack(image, mask), steps=3, rng=np.random.default_rng(5), **TINY)
    (data,) = seen
    assert data.probes.any() and not (data.probes & data.holes).any()
    assert not data.values[data.probes].any()
    # Batches, with a sentinel at the probes (were it ever shown, or learnt, it would show up).
    data.values[data.probes] = 1e6
    rng = np.random.default_rng(0)
    for _ in range(20):
        inputs, hidden, smooth, targets, weights = _training._batch(data, (32, 32), 3.0, rng, lambda: None)
        at_probes = targets == 1e6
        assert not (inputs == 1e6).any() and np.abs(smooth).max() < 1e3
        assert hidden[at_probes].all() and not weights[at_probes].any()
    assert any((_training._batch(data, (32, 32), 3.0, rng, lambda: None)[3] == 1e6).any() for _ in range(20))
    # Same seed, same probes, same network and the same verdict.
    again = learned._prepare(training_stack(image, mask), steps=3, rng=np.random.default_rng(5), **TINY)
    assert np.array_equal(seen[1].probes, data.probes)
    assert first.provenance == again.provenance and first.use_network == again.use_network
    for key, value in first.net.state_dict().items():
        assert torch.equal(value, again.net.state_dict()[key])


def test_the_held_out_check_is_recorded_in_the_files_the_command_line_writes(tmp_path):
    # The preparation's finding reaches the output's provenance (FillJob.outcome), not only the status line.
    import json

    from napari_inpaint.cli import main

    yy, xx = np.mgrid[:64, :64]
    image = (1000 + 3 * yy + 2 * xx + 0.05 * (yy - 32) ** 2).astype(np.uint16)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:26, 30:40] = 255
    tifffile.imwrite(tmp_path / "ramp.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    arguments = ["fill", str(tmp_path / "ramp.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", "learned",
                 "--param", "steps=3", "--param", "seconds=0", "--param", "device=cpu", "-o", str(tmp_path / "out.tif")]
    assert main(arguments) == 0
    with tifffile.TiffFile(tmp_path / "out.tif") as written:
        check = json.loads(written.pages[0].description)["napari_inpaint"]["learned_check"]
    assert check["base"] == "biharmonic" and check["held_out_pixels"] > 0 and check["fill"] in ("biharmonic", "network")
