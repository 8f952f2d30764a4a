"""The command line on real files: metadata kept, batches, resuming, detectors, clusters and Ctrl-C.

The cluster tests run a real LocalCluster of 2 worker processes on small stores (started once for the module:
starting one costs seconds); no mock of dask, zarr or distributed.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from test_detect import READ_NOISE, far_from, simulated_sky

from napari_inpaint import inpaint
from napari_inpaint.cli import main
from napari_inpaint.detect import COSMIC_RAY_DETECTORS
from napari_inpaint.io import read_image

zarr = pytest.importorskip("zarr", minversion="3")
distributed = pytest.importorskip("distributed")


def _stack(planes=6, shape=(96, 112), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    smooth = np.stack([1000 + 200 * np.sin(yy / (15 + p)) + 150 * np.cos(xx / 20) for p in range(planes)])
    return (smooth + rng.normal(0, 3, smooth.shape)).astype(np.uint16)


def _hole(shape=(96, 112)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[30:42, 40:70] = True
    mask[70, :] = True  # a dead row, across every chunk of a row
    return mask


def _imagej(path, stack):
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 2.5})


def _ome_zarr(path, stack):
    ome_zarr = pytest.importorskip("ome_zarr.writer")
    root = zarr.open_group(path, mode="w")
    ome_zarr.write_image(stack, root, axes="zyx", storage_options={"chunks": (1, 32, 32)})


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes (no client: the command connects its own)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_a_tiff_keeps_its_imagej_metadata_and_records_the_fill(tmp_path, capsys):
    stack, mask = _stack(), _hole()
    _imagej(tmp_path / "in.tif", stack)
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8))
    out = tmp_path / "out.tif"
    argv = ["fill", str(tmp_path / "in.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", "harmonic"]
    assert main([*argv, "-o", str(out), "--invented"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"wrote {out} and {tmp_path / 'out.invented.tif'}"

    result = read_image(out)
    np.testing.assert_array_equal(result.data, inpaint(stack, mask, "harmonic"))
    meta = result.metadata
    assert (result.axes, meta.kind) == ("ZYX", "imagej")
    assert (meta.imagej["unit"], meta.imagej["spacing"]) == ("um", 2.5)
    np.testing.assert_allclose(meta.resolution, (1 / 0.65, 1 / 0.65), rtol=1e-6)
    record = json.loads(meta.imagej["Info"].partition("napari-inpaint: ")[2])
    assert (record["method"], record["source"], record["mask_file"]) == ("harmonic", "in.tif", "mask.tif")
    assert record["filled_pixels"] == 6 * mask.sum()  # the plane's mask, in each of the 6 planes
    invented = tifffile.imread(tmp_path / "out.invented.tif")
    assert invented.dtype == np.uint8 and np.array_equal(invented == 255, mask)


def test_an_ome_zarr_with_a_zarr_mask_is_filled_lazily_keeping_its_metadata(tmp_path):
    stack, mask = _stack(), _hole()
    _ome_zarr(tmp_path / "in.ome.zarr", stack)
    stored = zarr.create_array(tmp_path / "mask.zarr", shape=mask.shape, chunks=(32, 32), dtype=bool)
    stored[:] = mask
    out = tmp_path / "out.ome.zarr"
    argv = ["fill", str(tmp_path / "in.ome.zarr"), "--mask", str(tmp_path / "mask.zarr")]
    assert main([*argv, "--method", "harmonic", "-o", str(out), "--invented"]) == 0

    source, result = read_image(tmp_path / "in.ome.zarr"), read_image(out)
    np.testing.assert_array_equal(np.asarray(result.data), inpaint(stack, mask, "harmonic"))
    assert result.metadata.axes == source.metadata.axes
    assert result.metadata.transforms == source.metadata.transforms
    group = zarr.open_group(out, mode="r")
    assert group.attrs["napari_inpaint"]["mask_file"] == "mask.zarr"
    invented = group["labels/invented/0"][:]  # one plane's mask holds for every plane
    assert invented.shape == stack.shape and all(np.array_equal(plane > 0, mask) for plane in invented)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr", "mask.zarr", "out.ome.zarr"]


@pytest.fixture
def batch(tmp_path):
    """A folder of images (ImageJ TIFF, OME-Zarr and a corrupt TIFF) and a folder of masks named alike."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    stacks = {"a.tif": _stack(seed=1), "b.ome.zarr": _stack(seed=2)}
    _imagej(images / "a.tif", stacks["a.tif"])
    _ome_zarr(images / "b.ome.zarr", stacks["b.ome.zarr"])
    (images / "broken.tif").write_bytes((images / "a.tif").read_bytes()[:500])
    for name in ("a.tif", "b.ome.zarr", "broken.tif"):
        tifffile.imwrite(masks / f"{name.partition('.')[0]}.tif", _hole().astype(np.uint8))
    return tmp_path, stacks


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir())


# The truncated TIFF holds one page of its ImageJ stack's six: it is read as a plain image, with a warning.
@pytest.mark.filterwarnings("ignore:.*its ImageJ description says:UserWarning")
def test_a_batch_on_a_cluster_reports_its_bad_file_and_resumes(batch, scheduler, capsys):
    folder, stacks = batch
    out = folder / "filled"
    argv = ["fill", str(folder / "images"), "--mask-dir", str(folder / "masks"), "--method", "harmonic",
            "-o", str(out), "--invented", "--scheduler", scheduler]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert _outputs(out) == ["a.invented.tif", "a.tif", "b.ome.zarr"]
    for name, stack in stacks.items():
        expected = inpaint(stack, _hole(), "harmonic")
        np.testing.assert_array_equal(np.asarray(read_image(out / name).data), expected)
    report = err[err.index("error: 1 of 3 images failed:"):].splitlines()
    # On a cluster a truncated file is found out where its pixels are read: the report names it.
    assert report[1].startswith(f"  {folder / 'images' / 'broken.tif'}: ") and len(report) == 2
    assert "wrote 2 of 3 images" in err
    assert "100%" in err  # the bar of a lazy fill, fed by the cluster as crops and chunks finish

    # Running it again skips the outputs there are (complete, as they are moved into place once written).
    written = {name: (out / name).stat().st_mtime_ns for name in _outputs(out)}
    (folder / "images" / "broken.tif").unlink()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("\nskipped ") + err.startswith("skipped ") == 2
    assert "wrote 0 of 2 images, skipped 2 already done" in err
    assert {name: (out / name).stat().st_mtime_ns for name in _outputs(out)} == written


def test_a_batch_on_threads_pairs_masks_by_name_and_keeps_going(tmp_path, capsys):
    from skimage import io as skio

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    stack, mask = _stack(), _hole()
    tifffile.imwrite(images / "a.tif", stack)
    skio.imsave(images / "c.png", (stack[0] // 8).astype(np.uint8), check_contrast=False)
    tifffile.imwrite(images / "nomask.tif", stack)
    (images / "notes.txt").write_text("not an image")
    tifffile.imwrite(masks / "a.tif", mask)
    skio.imsave(masks / "c.png", mask.astype(np.uint8) * 255, check_contrast=False)  # same name, other format
    tifffile.imwrite(masks / "c.tif", mask)
    out = tmp_path / "out"
    argv = ["fill", str(images), "--mask-dir", str(masks), "--method", "biharmonic", "-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert _outputs(out) == ["a.tif", "c.png"]
    np.testing.assert_array_equal(tifffile.imread(out / "a.tif"), inpaint(stack, mask, "biharmonic"))
    assert f"  {images / 'nomask.tif'}: no single mask for nomask.tif in {masks}" in err
    assert "error: 1 of 3 images failed" in err


def test_batches_refuse_outputs_that_could_lose_data(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(images / name, _stack(planes=2))
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    (tmp_path / "other").mkdir()
    tifffile.imwrite(tmp_path / "other" / "a.tif", _stack(planes=2))
    base = ["fill", "--mask", str(tmp_path / "mask.tif"), "--method", "harmonic", "-o"]
    cases = {
        "names a file; give a folder": [str(tmp_path / "out.tif"), str(images)],
        f"the output folder {images} holds the input": [str(images), str(images)],
        "would both be written to": [str(tmp_path / "out"), str(images / "a.tif"), str(tmp_path / "other")],
        "holds no images": [str(tmp_path / "out"), str(tmp_path / "other"), str(tmp_path / "empty")],
    }
    (tmp_path / "empty").mkdir()
    for message, arguments in cases.items():
        assert main([*base, *arguments]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert _outputs(images) == ["a.tif", "b.tif"] and not (tmp_path / "out.tif").exists()


def test_a_batch_refuses_an_output_folder_that_holds_its_mask(tmp_path, capsys):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir(), out.mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(images / name, _stack(planes=2))
    tifffile.imwrite(out / "a.tif", _hole())  # named like an image: it would be replaced, or pass for done
    argv = ["fill", str(images), "--mask", str(out / "a.tif"), "--method", "harmonic", "-o", str(out)]
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: the output folder {out} holds the input {out / 'a.tif'}; write into another folder\n"
    assert _outputs(out) == ["a.tif"] and np.array_equal(tifffile.imread(out / "a.tif"), _hole())


def _hot_stack(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stack of 12 noisy frames with 5 hot pixels, 8 noise deviations high, in every frame."""
    rng = np.random.default_rng(seed)
    frames = rng.normal(500, 10, (12, 64, 80))
    hot = np.zeros((64, 80), bool)
    hot[rng.integers(2, 62, 5), rng.integers(2, 78, 5)] = True
    frames[:, hot] += 80
    return frames.astype(np.float32), hot


def test_detect_writes_masks_that_fill_then_pairs_by_name(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    truth = {}
    for seed, name in enumerate(("one.tif", "two.tif")):
        stack, truth[name] = _hot_stack(seed)
        tifffile.imwrite(frames / name, stack)
    detection = ["--persistent", "--hot-threshold", "3", "--detect", "hot-pixels"]
    # --detect takes one value: the images may follow it.
    assert main(["detect", *detection, str(frames), "-o", str(tmp_path / "masks")]) == 0
    err = capsys.readouterr().err
    for name, hot in truth.items():
        mask = tifffile.imread(tmp_path / "masks" / name)
        assert mask.dtype == np.uint8 and all(np.array_equal(plane == 255, hot) for plane in mask)
        assert f"{frames / name}: {12 * hot.sum()} pixels flagged ({100 * hot.mean():.3g}% of" in err

    # Filling from the inspected masks, or finding them on the way, gives the same result.
    assert main(["fill", str(frames), "--mask-dir", str(tmp_path / "masks"), "--method", "harmonic",
                 "-o", str(tmp_path / "from-masks")]) == 0
    assert main(["fill", str(frames), *detection, "--method", "harmonic", "-o", str(tmp_path / "detected"),
                 "--invented"]) == 0
    for name, hot in truth.items():
        from_masks = tifffile.imread(tmp_path / "from-masks" / name)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "detected" / name), from_masks)
        assert np.abs(from_masks[:, hot] - 500).max() < 40  # the hot pixels are gone: back near the level
        detected = read_image(tmp_path / "detected" / name)
        record = detected.metadata.shaped["napari_inpaint"]
        assert record["detected"]["kinds"] == ["hot-pixels"] and record["detected"]["k"] == 3.0
        assert record["filled_pixels"] == 12 * hot.sum()


def test_a_given_mask_and_detected_pixels_are_filled_together(tmp_path):
    stack, hot = _hot_stack(0)
    stack[3, 5:9, 5:9] = np.nan  # a dropped block in one frame
    tifffile.imwrite(tmp_path / "in.tif", stack)
    given = np.zeros(hot.shape, bool)
    given[40:44, 10:30] = True
    tifffile.imwrite(tmp_path / "mask.tif", given)
    detection = ["--detect", "nan,hot-pixels", "--persistent", "--hot-threshold", "3"]
    assert main(["fill", str(tmp_path / "in.tif"), "--mask", str(tmp_path / "mask.tif"), *detection,
                 "--method", "harmonic", "-o", str(tmp_path / "out.tif"), "--invented"]) == 0
    invented = tifffile.imread(tmp_path / "out.invented.tif") == 255
    expected = hot | given | np.isnan(stack)
    np.testing.assert_array_equal(invented, expected)
    result = tifffile.imread(tmp_path / "out.tif")
    assert np.isfinite(result).all()
    np.testing.assert_array_equal(result[~expected], stack[~expected])


@pytest.fixture(scope="module")
def sky_file(tmp_path_factory):
    truth, observed, hits = simulated_sky()
    folder = tmp_path_factory.mktemp("sky")
    tifffile.imwrite(folder / "sky.tif", observed.astype(np.float32))
    return folder / "sky.tif", truth, observed, hits


def _recall_and_false_positives(mask, hits) -> tuple[float, float]:
    return mask[hits].mean(), mask[far_from(hits)].mean()


def test_cosmic_rays_found_by_lacosmic_are_filled(sky_file, tmp_path):
    pytest.importorskip("astroscrappy")
    path, truth, observed, hits = sky_file
    out = tmp_path / "clean.tif"
    assert main(["fill", str(path), "--detect", "cosmic-rays", "--lacosmic-read-noise", str(READ_NOISE),
                 "--dilate", "1", "--method", "harmonic", "-o", str(out), "--invented"]) == 0
    invented = tifffile.imread(tmp_path / "clean.invented.tif") == 255
    recall, false_positives = _recall_and_false_positives(invented, hits)
    assert recall > 0.98 and false_positives < 1e-3
    clean = tifffile.imread(out)
    # The hits (hundreds to thousands of electrons) are filled to within the noise of the sky, but for the
    # few pixels L.A.Cosmic missed.
    error = np.abs(clean - truth)[hits]
    assert np.median(error) < np.sqrt(truth[hits].mean() + READ_NOISE**2)
    assert error.mean() < np.abs(observed - truth)[hits].mean() / 20
    record = read_image(out).metadata.shaped["napari_inpaint"]["detected"]
    assert record["cosmic_ray_detector"] == "lacosmic"
    assert record["cosmic_ray_parameters"]["read_noise"] == READ_NOISE


def test_cosmic_rays_found_by_deepcr_with_its_real_weights(sky_file, tmp_path, real_weights_mirror):
    from napari_inpaint import models

    name = COSMIC_RAY_DETECTORS["deepcr"].weights_for({"model": "ACS-WFC"})[0]
    real_weights_mirror(name)  # the real file, downloaded into an empty cache: the hash check runs on it
    path, _, _, hits = sky_file
    out = tmp_path / "hits.tif"
    assert main(["detect", str(path), "--detect", "cosmic-rays", "--cosmic-detector", "deepcr",
                 "--deepcr-device", "cpu", "-o", str(out)]) == 0
    assert models.is_cached(name)
    recall, false_positives = _recall_and_false_positives(tifffile.imread(out) == 255, hits)
    assert recall > 0.95 and false_positives < 1e-3


def test_the_detectors_flags_are_made_from_their_records(capsys):
    for command in ("fill", "detect"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for detector in COSMIC_RAY_DETECTORS.values():
            assert f"cosmic-ray detector {detector.name}" in text
            for param in detector.params:
                flag = f"--{detector.name}-{param.name.replace('_', '-')}"
                described = " ".join(param.help.split())
                assert f"{flag} {param.name.upper()} {described} (default {param.default}" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--detect", "hot-pixel"], "unknown kind of bad pixel 'hot-pixel' for --detect; known: nan, "),
        (["--detect", "nan", "--persistent"], "--persistent applies to --detect hot-pixels"),
        (
            ["--detect", "cosmic-rays", "--deepcr-threshold", "0.2"],
            (
                "--deepcr-threshold is a parameter of the cosmic-ray detector deepcr: give --detect "
                "cosmic-rays --cosmic-detector deepcr (the detector is lacosmic)"
            ),
        ),
        (["--detect", "cosmic-rays", "--lacosmic-gain", "-1"], "parameter 'gain' of method 'lacosmic' must"),
        (["--detect", "cosmic-rays", "--lacosmic-iterations", "2.5"], "--lacosmic-iterations must be an"),
        (["--detect", "hot-pixels", "--hot-window", "4"], "--hot-window must be an odd number of 3 or more"),
        (["--dilate", "1"], "--dilate acts on detected pixels: give --detect KIND"),
        ([], "say what to find: --detect KIND"),
    ],
)
def test_bad_detection_options_exit_2_before_reading_anything(tmp_path, capsys, arguments, message):
    missing = tmp_path / "never-read.tif"
    assert main(["detect", str(missing), *arguments, "-o", str(tmp_path / "mask.tif")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_kinds_separated_by_spaces_are_not_taken_for_images(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["detect", "--detect", "nan", "hot-pixels", "never-read.tif", "-o", "mask.tif"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "error: hot-pixels is a kind of bad pixel, not an image: give the kinds separated by commas, e.g. "
        "--detect nan,hot-pixels\n"
    )


def test_an_unreachable_scheduler_exits_2(tmp_path, capsys):
    import dask

    tifffile.imwrite(tmp_path / "in.tif", _stack(planes=1)[0])
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["fill", str(tmp_path / "in.tif"), "--mask", str(tmp_path / "mask.tif"), "--method",
                     "harmonic", "-o", str(tmp_path / "out.tif"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach the scheduler at tcp://127.0.0.1:9")
    assert _outputs(tmp_path) == ["in.tif", "mask.tif"]


@pytest.mark.parametrize("where", [[], ["--workers", "2"]], ids=["threads", "local-cluster"])
def test_ctrl_c_cancels_the_fill_and_leaves_no_partial_output(tmp_path, where):
    rng = np.random.default_rng(0)
    stored = zarr.create_array(tmp_path / "in.zarr", shape=(256, 256), chunks=(64, 64), dtype=np.float32)
    stored[:] = rng.random((256, 256), dtype=np.float32)
    mask = rng.random((256, 256)) > 0.995
    mask[20:236, 20:236] = True
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    # A slow method: a TV fill of a wide hole that never stops early, so that Ctrl-C comes while it is filled.
    command = subprocess.Popen(
        [sys.executable, "-m", "napari_inpaint", "fill", "in.zarr", "--mask", "mask.tif", "--method", "tv",
         "--param", "iterations=20000", "--param", "tol=0", "-o", "out.zarr", *where],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".out.zarr.partial") for p in tmp_path.iterdir()):
            assert command.poll() is None and time.monotonic() < deadline, command.stderr.read()
            time.sleep(0.05)
        time.sleep(1.0)  # crops are being filled
        os.killpg(command.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process of the command
        _, err = command.communicate(timeout=60)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
    assert command.returncode == 130 and err.endswith("interrupted\n") and "Traceback" not in err
    assert _outputs(tmp_path) == ["in.zarr", "mask.tif"]


def _damaged_store(path, image) -> str:
    """Write ``image`` as a zarr array (zstd, 48-pixel chunks) and overwrite the bytes of one chunk; its key."""
    stored = zarr.create_array(path, shape=image.shape, chunks=(1, 48, 48), dtype=image.dtype)
    stored[:] = image
    chunk = path / "c" / "0" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[8:] = b"\x55" * (len(data) - 8)  # the length kept: only the codec can tell
    chunk.write_bytes(bytes(data))
    return "c/0/1/0"


def test_a_corrupt_chunk_is_one_error_naming_the_file_and_chunk(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    key = _damaged_store(images / "a.zarr", _stack(planes=2, seed=1))
    good = _stack(planes=2, seed=2)
    zarr.create_array(images / "b.zarr", shape=good.shape, chunks=(1, 48, 48), dtype=good.dtype)[:] = good
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    fill = ["--mask", str(tmp_path / "mask.tif"), "--method", "harmonic"]
    expected = f"{images / 'a.zarr'}: chunk {key} cannot be decoded (RuntimeError: Zstd decompression error"

    assert main(["fill", str(images / "a.zarr"), *fill, "-o", str(tmp_path / "out.zarr")]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert line.startswith(f"error: {expected}") and "Traceback" not in err
    assert main(["detect", str(images / "a.zarr"), "--detect", "hot-pixels", "-o", str(tmp_path / "m.tif")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {expected}")
    assert _outputs(tmp_path) == ["images", "mask.tif"]

    # In a batch that file fails, and the others are filled.
    assert main(["fill", str(images), *fill, "-o", str(tmp_path / "filled")]) == 1
    err = capsys.readouterr().err
    assert f"error: 1 of 2 images failed:\n  {images / 'a.zarr'}: chunk {key} cannot be decoded" in err
    assert _outputs(tmp_path / "filled") == ["b.zarr"]
    expected = inpaint(good, _hole(), "harmonic")
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "filled" / "b.zarr")[:], expected)


def test_a_batch_killed_mid_write_leaves_nothing_the_next_run_does_not_remove(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    stacks = {}
    for name, seed in (("a.zarr", 1), ("b.zarr", 2)):
        stacks[name] = _stack(planes=1, shape=(256, 256), seed=seed)
        stored = zarr.create_array(images / name, shape=(1, 256, 256), chunks=(1, 64, 64), dtype=np.uint16)
        stored[:] = stacks[name]
    mask = np.zeros((256, 256), bool)
    mask[20:236, 20:236] = True
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    out = tmp_path / "filled"
    # A slow method (a TV fill of a wide hole that never stops early), killed outright while it writes.
    command = subprocess.Popen(
        [sys.executable, "-m", "napari_inpaint", "fill", "images", "--mask", "mask.tif", "--method", "tv",
         "--param", "iterations=20000", "--param", "tol=0", "-o", "filled"],
        cwd=tmp_path, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and any(p.name.startswith(".a.zarr.partial-") for p in out.iterdir())):
            assert command.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(command.pid, signal.SIGKILL)  # no chance to tidy anything
        command.wait()
    [left] = [p.name for p in out.iterdir()]
    assert left.startswith(".a.zarr.partial-")

    assert main(["fill", str(images), "--mask", str(tmp_path / "mask.tif"), "--method", "harmonic", "-o",
                 str(out)]) == 0
    assert _outputs(out) == ["a.zarr", "b.zarr"]
    for name, stack in stacks.items():
        np.testing.assert_array_equal(zarr.open_array(out / name)[:], inpaint(stack, mask, "harmonic"))


def test_workers_start_their_cluster_without_a_dashboard(tmp_path, capsys):
    import socket
    import warnings

    tifffile.imwrite(tmp_path / "in.tif", _stack(planes=1)[0])
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    fill = ["fill", str(tmp_path / "in.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", "harmonic"]
    with socket.socket() as taken:  # as another cluster's dashboard holds it
        with contextlib.suppress(OSError):  # already held by something else on this machine
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main([*fill, "-o", str(tmp_path / "out.tif"), "--workers", "1"]) == 0
    assert [str(w.message) for w in caught if "8787" in str(w.message)] == []
    assert "8787" not in capsys.readouterr().err
    expected = inpaint(_stack(planes=1)[0], _hole(), "harmonic")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)

    assert main([*fill, "-o", str(tmp_path / "again.tif"), "--scheduler", "tcp://127.0.0.1:9", "--dashboard"]) == 2
    assert capsys.readouterr().err.startswith("error: --dashboard shows the cluster that --workers starts")
    assert not (tmp_path / "again.tif").exists()
