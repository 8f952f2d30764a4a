import errno
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_inpaint import Param, inpaint
from napari_inpaint.cli import main
from napari_inpaint.cli._commands import convert
from napari_inpaint.cli._progress import TextBar


def _ramp(shape=(40, 48), dtype=np.uint16):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (1000 + 37 * yy + 11 * xx).astype(dtype)


def _hole(shape=(40, 48)):
    mask = np.zeros(shape, bool)
    mask[12:20, 15:30] = True
    return mask


@pytest.fixture
def tiff_job(tmp_path):
    image, mask = _ramp(), _hole()
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8) * 7)  # any nonzero value is bad
    return tmp_path, image, mask


def _fill(folder, *extra):
    return main(["fill", str(folder / "image.tif"), "--mask", str(folder / "mask.tif"), *extra])


def test_fill_tiff_uint16_keeps_dtype_and_known_pixels(tiff_job, capsys):
    folder, image, mask = tiff_job
    assert _fill(folder, "--method", "harmonic", "-o", str(folder / "out.tif")) == 0
    result = tifffile.imread(folder / "out.tif")
    assert result.dtype == np.uint16 and result.shape == image.shape
    np.testing.assert_array_equal(result[~mask], image[~mask])
    # The harmonic fill reproduces a linear ramp (up to rounding to integers).
    assert np.abs(result.astype(int) - image)[mask].max() <= 1
    assert "out.tif" in capsys.readouterr().err


def test_fill_png_rgb_uint8_with_a_colour_mask(tmp_path, capsys):
    yy, xx = np.mgrid[:40, :48]
    base = 3 * yy + 2 * xx
    image = np.stack([base, base // 2, 255 - base], axis=-1).astype(np.uint8)
    mask = _hole()
    painted = np.zeros(mask.shape + (3,), np.uint8)
    painted[mask] = (255, 0, 0)  # a mask painted in red
    skio.imsave(tmp_path / "image.png", image, check_contrast=False)
    skio.imsave(tmp_path / "mask.png", painted, check_contrast=False)
    out = tmp_path / "out.png"
    args = ["--mask", str(tmp_path / "mask.png"), "--method", "biharmonic", "-o", str(out)]
    assert main(["fill", str(tmp_path / "image.png"), *args]) == 0
    result = skio.imread(out)
    assert result.dtype == np.uint8 and result.shape == image.shape
    np.testing.assert_array_equal(result[~mask], image[~mask])
    np.testing.assert_array_equal(result, inpaint(image, mask, "biharmonic"))

    args[-1] = str(tmp_path / "out.jpg")
    assert main(["fill", str(tmp_path / "image.png"), *args]) == 0
    assert "warning: JPEG is lossy" in capsys.readouterr().err
    assert skio.imread(tmp_path / "out.jpg").shape == image.shape


def test_fill_png_grey_with_alpha_and_a_mask_saved_with_alpha(tmp_path):
    yy, xx = np.mgrid[:40, :48]
    grey = (3 * yy + 2 * xx).astype(np.uint8)
    image = np.stack([grey, np.full_like(grey, 200)], axis=-1)  # grey and alpha samples
    mask = _hole()
    painted = np.stack([mask.astype(np.uint8) * 255, np.full_like(grey, 255)], axis=-1)  # alpha is ignored
    skio.imsave(tmp_path / "image.png", image, check_contrast=False)
    skio.imsave(tmp_path / "mask.png", painted, check_contrast=False)
    out = tmp_path / "out.tif"
    argv = ["fill", str(tmp_path / "image.png"), "--mask", str(tmp_path / "mask.png"), "--method", "harmonic"]
    assert main([*argv, "-o", str(out)]) == 0
    result = tifffile.imread(out)
    assert result.shape == image.shape and (result[..., 1] == 200).all()
    np.testing.assert_array_equal(result[~mask], image[~mask])
    assert np.abs(result[..., 0].astype(int) - grey)[mask].max() <= 1


def test_fill_passes_params_spatial_ndim_noise_and_seed(tmp_path):
    stack = np.repeat(np.arange(6, dtype=np.uint16)[:, None, None] * 100, 16, axis=1).repeat(16, axis=2)
    mask = np.zeros(stack.shape, bool)
    mask[3] = True  # a dropped frame
    tifffile.imwrite(tmp_path / "image.tif", stack)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    args = ["--method", "interpolate", "--spatial-ndim", "3", "--param", "axis=0", "--param", "kind=linear"]
    assert _fill(tmp_path, *args, "-o", str(tmp_path / "frames.tif")) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "frames.tif"), stack)

    plane = _ramp()
    tifffile.imwrite(tmp_path / "image.tif", plane)
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    assert _fill(tmp_path, "--method", "harmonic", "--noise", "gaussian", "--seed", "3", "-o",
                 str(tmp_path / "noisy.tif")) == 0
    expected = inpaint(plane, _hole(), "harmonic", noise="gaussian", seed=3)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "noisy.tif"), expected)


def test_unknown_method_exits_2_listing_the_methods(tiff_job, capsys):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "magic", "-o", str(folder / "out.tif")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown method 'magic'") and "harmonic, biharmonic" in err
    assert err.count("\n") == 1 and not (folder / "out.tif").exists()


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("axis=one", "parameter 'axis' of method 'interpolate' must be an integer, got 'one'"),
        ("axis=7", "must lie in [0, 2]"),
        ("kind=cubic", "must be one of linear, nearest"),
        ("size=3", "has no parameter 'size'; its parameters are: axis, kind"),
        ("axis", "--param expects NAME=VALUE"),
    ],
)
def test_bad_parameters_exit_2_with_a_clear_message(tiff_job, capsys, param, message):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "interpolate", "--param", param, "-o", str(folder / "out.tif")) == 2
    assert message in capsys.readouterr().err


def test_engine_errors_exit_2_without_traceback(tiff_job, capsys):
    folder, _, _ = tiff_job
    tifffile.imwrite(folder / "mask.tif", np.ones((5, 5), np.uint8))
    assert _fill(folder, "--method", "harmonic", "-o", str(folder / "out.tif")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mask shape (5, 5) does not match") and "Traceback" not in err


def test_refuses_to_overwrite(tiff_job, capsys):
    folder, _image, _ = tiff_job
    out = folder / "out.tif"
    out.write_bytes(b"user data")
    assert _fill(folder, "--method", "harmonic", "-o", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"user data"
    assert _fill(folder, "--method", "harmonic", "-o", str(out), "--overwrite") == 0
    assert tifffile.imread(out).dtype == np.uint16

    for target in ("image.tif", "mask.tif"):  # never over an input, even with --overwrite
        before = (folder / target).read_bytes()
        assert _fill(folder, "--method", "harmonic", "-o", str(folder / target), "--overwrite") == 2
        assert "is the input" in capsys.readouterr().err and (folder / target).read_bytes() == before
    # No partial files are left behind.
    assert sorted(p.name for p in folder.iterdir()) == ["image.tif", "mask.tif", "out.tif"]


def test_compare_refuses_to_write_its_csv_over_an_input(tiff_job, capsys):
    folder, _, _ = tiff_job
    before = (folder / "mask.tif").read_bytes()
    argv = ["compare", str(folder / "image.tif"), "--region", str(folder / "mask.tif")]
    assert main([*argv, "--csv", str(folder / "mask.tif"), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err and (folder / "mask.tif").read_bytes() == before


def test_output_folder_is_refused_and_left_alone(tiff_job, capsys):
    folder, _, _ = tiff_job
    results = folder / "results"
    results.mkdir()
    (results / "keep.txt").write_text("user data")
    for overwrite in ((), ("--overwrite",)):  # --overwrite would not help: OUT must name a file
        assert _fill(folder, "--method", "harmonic", "-o", str(results), *overwrite) == 2
        err = capsys.readouterr().err
        suggestion = results / "filled.tif"
        assert err == f"error: the output {results} is a folder; give a file name, e.g. {suggestion}\n"
    assert main(["compare", str(folder / "image.tif"), "--csv", str(results), "--overwrite"]) == 2
    assert f"is a folder; give a file name, e.g. {results / 'scores.csv'}" in capsys.readouterr().err
    assert [p.name for p in results.iterdir()] == ["keep.txt"]
    assert (results / "keep.txt").read_text() == "user data"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("out", "the output {} has no extension to choose its format by, e.g. {}.tif"),
        ("out.xyz", "cannot write .xyz images; write a .tif, .zarr, .ome.zarr, .png or .jpg file"),
    ],
)
def test_outputs_without_an_image_format_are_refused_before_any_work(tmp_path, capsys, output, message):
    skio.imsave(tmp_path / "image.png", _ramp(dtype=np.uint8), check_contrast=False)
    skio.imsave(tmp_path / "mask.png", _hole().astype(np.uint8) * 255, check_contrast=False)
    out = tmp_path / output
    argv = ["fill", str(tmp_path / "image.png"), "--mask", str(tmp_path / "mask.png"), "--method", "harmonic"]
    assert main([*argv, "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {message.format(out, out)}\n" and not out.exists()


def _png_with_a_bad_checksum(folder):
    skio.imsave(folder / "good.png", _ramp(dtype=np.uint8), check_contrast=False)
    data = bytearray((folder / "good.png").read_bytes())
    data[29:33] = b"\0\0\0\0"  # the CRC of the IHDR chunk: Pillow raises SyntaxError
    return bytes(data)


_CORRUPT_FILES = {
    "bad-checksum.png": _png_with_a_bad_checksum,
    "empty.png": lambda folder: b"",
    "garbage.jpg": lambda folder: b"\xff\xd8\xff\xe0" + bytes(20),
    "truncated.tif": lambda folder: (folder / "image.tif").read_bytes()[:300],
    # tifffile only logs that the first page lies past the end, and returns an empty array.
    "no-pages.tif": lambda folder: b"II*\0" + struct.pack("<I", 10**6),
}


# imageio, looking for any plugin that reads an empty file, loads its deprecated DICOM one.
@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
@pytest.mark.parametrize("name", _CORRUPT_FILES)
def test_corrupt_inputs_exit_2_with_one_line_naming_the_file(tiff_job, capsys, caplog, name):
    folder, _, _ = tiff_job
    corrupt = folder / name
    corrupt.write_bytes(_CORRUPT_FILES[name](folder))
    image, mask, out = folder / "image.tif", folder / "mask.tif", folder / "out.tif"
    for argv in (
        ["fill", str(corrupt), "--mask", str(mask), "--method", "harmonic", "-o", str(out)],
        ["fill", str(image), "--mask", str(corrupt), "--method", "harmonic", "-o", str(out)],
        ["compare", str(corrupt)],
        ["compare", str(image), "--region", str(corrupt)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot read {corrupt} as an image: ")
        assert err.endswith("; expected a TIFF, PNG or JPEG file, a zarr array or an OME-Zarr image\n")
        assert err.count("\n") == 1
    assert not out.exists()
    assert not [record for record in caplog.records if record.name == "tifffile"]  # no log line besides


def test_missing_input_exits_2_naming_the_file(tiff_job, capsys):
    folder, _, _ = tiff_job
    missing = folder / "missing.tif"
    assert main(["fill", str(missing), "--mask", str(folder / "mask.tif"), "--method", "harmonic",
                 "-o", str(folder / "out.tif")]) == 2
    assert capsys.readouterr().err == f"error: cannot read {missing}: No such file or directory\n"


@pytest.fixture
def small_device(tmp_path):
    """A folder on a 1 MiB tmpfs: a real device that fills up (mounting needs root, else skip)."""
    mount_point = tmp_path / "small-device"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounting = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounting.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounting.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("suffix", [".tif", ".png"])  # tifffile writes with numpy, PNG with Python
def test_full_device_says_so_and_writes_nothing(tmp_path, small_device, capsys, suffix):
    noise = np.random.default_rng(0).integers(0, 256, (1024, 1100), dtype=np.uint8)  # 1.1 MB, incompressible
    mask = np.zeros(noise.shape, np.uint8)
    mask[10:14, 10:14] = 1
    tifffile.imwrite(tmp_path / "image.tif", noise)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    out = small_device / f"out{suffix}"
    out.write_bytes(b"previous result")
    assert _fill(tmp_path, "--method", "harmonic", "-o", str(out), "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"error: no space left on the device to write {out}; nothing was written"
    assert err.count("error:") == 1 and "Traceback" not in err
    # The old result is intact and the partial file is gone.
    assert [p.name for p in small_device.iterdir()] == [out.name] and out.read_bytes() == b"previous result"


def test_not_a_number_is_refused(tiff_job, capsys):
    # float("nan") parses, and NaN passes every range check: the method's parameter record refuses it.
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "tv", "--param", "tol=nan", "-o", str(folder / "out.tif")) == 2
    err = capsys.readouterr().err
    assert err == "error: parameter 'tol' of method 'tv' must be a finite number; got nan\n"
    assert main(["compare", str(folder / "image.tif"), "--ratios", "0.1,nan"]) == 2
    assert capsys.readouterr().err == "error: --ratios must lie in (0, 1), got [0.1, nan]\n"
    assert not (folder / "out.tif").exists()


def test_ctrl_c_while_starting_exits_130_without_traceback(monkeypatch, capsys):
    def interrupted_parser():
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_inpaint.cli._arguments.parser", interrupted_parser)
    try:
        status = main(["methods"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the parser is built escaped main, so the user got a traceback")
    assert status == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_ctrl_c_while_reading_input_exits_130_and_writes_nothing(tmp_path):
    # A real SIGINT to the command while it waits on its input: a named pipe that nobody writes to.
    skio.imsave(tmp_path / "mask.png", _hole().astype(np.uint8) * 255, check_contrast=False)
    os.mkfifo(tmp_path / "image.png")
    command = subprocess.Popen(
        [sys.executable, "-m", "napari_inpaint", "fill", "image.png", "--mask", "mask.png",
         "--method", "harmonic", "-o", "out.png"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )
    writer = _open_once_read(tmp_path / "image.png", command)
    try:
        # As a user does: Ctrl-C, and again if the command is still there after a while.  CPython may lose
        # one SIGINT (a KeyboardInterrupt raised inside a finaliser is only reported), so a second one
        # must work as the first.
        for _ in range(3):
            command.send_signal(signal.SIGINT)
            try:
                _, err = command.communicate(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            command.kill()
            pytest.fail(f"three Ctrl-C did not stop the command: {command.communicate()[1]}")
    finally:
        os.close(writer)
    assert command.returncode == 130 and err.endswith("interrupted\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "mask.png"]


def _open_once_read(pipe, reader: subprocess.Popen, timeout: float = 120) -> int:
    """Open the writing end of ``pipe`` as soon as ``reader`` has opened it: it is then reading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nobody has opened the pipe for reading yet
                raise
        if reader.poll() is not None or time.monotonic() > deadline:
            reader.kill()
            pytest.fail(f"the command never read its input: {reader.communicate()[1]}")
        time.sleep(0.01)


def test_ctrl_c_while_importing_exits_130_without_traceback(tmp_path):
    # Ctrl-C is simulated as a KeyboardInterrupt raised by the import of scipy, the slowest one.
    script = """
import importlib.abc, runpy, sys

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "scipy":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
sys.argv = ["napari-inpaint", "methods"]
runpy.run_module("napari_inpaint", run_name="__main__")
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 130 and run.stderr == "interrupted\n"


def test_ctrl_c_at_any_moment_of_the_start_exits_130_without_traceback(tmp_path):
    # A real SIGINT, from 0.05 to 0.25 s after the start: importing, building the parser, starting the demo.
    # Before Python runs the package (its own start, then runpy finding the module), no program can catch
    # Ctrl-C: the sweep begins well after the longest of three starts of a bare interpreter.
    bare = 0.0
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import runpy"], check=True)
        bare = max(bare, time.monotonic() - started)
    delays = [delay for delay in np.arange(0.05, 0.26, 0.025) if delay > 1.5 * bare]
    if not delays:
        pytest.skip(f"a bare Python takes {bare:.2f} s to start here, past the window tested")
    outcomes = []
    for delay in delays:
        command = subprocess.Popen(
            [sys.executable, "-m", "napari_inpaint", "demo", "--methods", "harmonic", "-o", str(tmp_path / "demo")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(delay)
        command.send_signal(signal.SIGINT)
        _, err = command.communicate(timeout=120)
        outcomes.append((command.returncode, err))
        # Never a traceback nor Python's death by SIGINT.
        assert (command.returncode, err) in ((130, "interrupted\n"), (0, "")), f"Ctrl-C {delay:.3f} s after start"
    # Rarely (about 1 run in 50 here) the signal is lost inside a compiled library that clears Python's
    # pending signal, and the demo completes: no program can see such a Ctrl-C.
    assert sum(outcome == (130, "interrupted\n") for outcome in outcomes) >= len(outcomes) - 1, outcomes


@pytest.mark.parametrize("module", ["importlib.metadata", "argparse", "napari_inpaint.cli._arguments", "dataclasses"])
def test_ctrl_c_while_the_command_line_is_imported_exits_130(tmp_path, module):
    # Ctrl-C as the command starts: a KeyboardInterrupt raised where one of the first modules is imported
    # (the package's version lookup, the parser, the commands), as `python -m napari_inpaint` runs it.
    script = f"""
import importlib.abc, runpy, sys

if {module!r} in sys.modules:
    sys.exit(99)  # imported by Python's own start here: not a moment of the command's

class CtrlC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
sys.argv = ["napari-inpaint", "methods"]
runpy.run_module("napari_inpaint", run_name="__main__")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    if run.returncode == 99:
        pytest.skip(f"{module} is imported by Python's start here")
    assert (run.returncode, run.stderr) == (130, "interrupted\n")


def test_ctrl_c_within_an_eval_while_starting_exits_130(tmp_path):
    # Python takes a KeyboardInterrupt raised within eval() of a string (as namedtuple's, while importing)
    # for one that ended the program, and then kills it by SIGINT whatever its exit status.
    script = """
import sys
from napari_inpaint import cli
from napari_inpaint.cli import _arguments

def parser():
    eval("__import__('os').kill(__import__('os').getpid(), __import__('signal').SIGINT) or __import__('time').sleep(9)")

_arguments.parser = parser
sys.exit(cli.main(["methods"]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert (run.returncode, run.stderr) == (130, "interrupted\n")


def test_errors_name_the_flags_and_each_shape_once(tiff_job, capsys):
    folder, _, _ = tiff_job
    out = str(folder / "out.tif")
    assert _fill(folder, "--method", "harmonic", "--channel-axis", "5", "-o", out) == 2
    assert capsys.readouterr().err.startswith("error: --channel-axis 5 is out of range for an image with 2 axes")
    assert _fill(folder, "--method", "telea", "--spatial-ndim", "3", "-o", out) == 2
    assert "use --spatial-ndim 2 (plane by plane)" in capsys.readouterr().err
    tifffile.imwrite(folder / "stack.tif", np.stack([_ramp()] * 3), photometric="minisblack")
    tifffile.imwrite(folder / "mask.tif", np.ones((2, 40, 48), np.uint8))
    assert main(["fill", str(folder / "stack.tif"), "--mask", str(folder / "mask.tif"), "--method", "harmonic",
                 "-o", out]) == 2
    assert capsys.readouterr().err == (
        "error: mask shape (2, 40, 48) does not match image shape (3, 40, 48): give a mask of that shape or of its "
        "trailing plane shape (40, 48); for channels on another axis pass --channel-axis\n"
    )
    assert main(["detect", str(folder / "stack.tif"), "--detect", "hot-pixels", "--channel-axis", "3", "-o", out]) == 2
    assert capsys.readouterr().err == (
        f"error: --channel-axis 3 is out of range for {folder / 'stack.tif'}, which has 3 axes (shape (3, 40, 48))\n"
    )
    assert not (folder / "out.tif").exists()


def test_a_repeated_shape_is_given_once(tmp_path, capsys):
    # A 2D image and a mask of another shape: the image without channels is its plane, the same shape.
    tifffile.imwrite(tmp_path / "image.tif", _ramp())
    tifffile.imwrite(tmp_path / "mask.tif", np.ones((5, 5), np.uint8))
    assert _fill(tmp_path, "--method", "harmonic", "-o", str(tmp_path / "out.tif")) == 2
    assert capsys.readouterr().err == (
        "error: mask shape (5, 5) does not match image shape (40, 48): give a mask of that shape; for channels on "
        "another axis pass --channel-axis\n"
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["fill", "{image}", "--mask", "{mask}", "--method", "biharmonc", "-o", "{out}"],
         "error: unknown method 'biharmonc'; known methods: harmonic, biharmonic"),
        (["fill", "{image}", "--mask", "{mask}", "--method", "telea", "--param", "radus=3", "-o", "{out}"],
         "error: method 'telea' has no parameter 'radus'; its parameters are: radius, backend; did you mean 'radius'?"),
        (["compare", "{image}", "--methods", "telea,navier-stoke"], "did you mean 'navier-stokes'?"),
        (["compare", "{image}", "--methods", "telea", "--param", "raduis=3"],
         "error: no selected method has a parameter 'raduis' (methods: telea; their parameters: radius, backend); "
         "did you mean 'radius'?"),
        (["demo", "--methods", "harmonc", "-o", "{folder}/demo"], "did you mean 'harmonic'?"),
        (["models", "fetch", "lamma"], "error: unknown model 'lamma'; known models: lama, migan"),
    ],
)
def test_a_mistyped_name_gets_the_closest_one(tiff_job, capsys, command, message):
    folder, _, _ = tiff_job
    names = {"image": folder / "image.tif", "mask": folder / "mask.tif", "out": folder / "out.tif", "folder": folder}
    assert main([part.format(**names) for part in command]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert err.rstrip().endswith("?")  # the suggestion ends the message
    assert sorted(p.name for p in folder.iterdir()) == ["image.tif", "mask.tif"]  # nothing run, nothing written


@pytest.mark.parametrize("columns", [60, 100])
def test_listings_fit_the_terminal(monkeypatch, capsys, columns):
    from napari_inpaint.methods import list_methods
    from napari_inpaint.models import list_models

    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= columns
    flowing = " ".join(out.split())  # wrapping only breaks lines between words
    for method in list_methods():
        assert " ".join(method.summary.split()) in flowing
        assert all(" ".join(param.help.split()) in flowing for param in method.params)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= columns
    assert all(" ".join(spec.summary.split()) in " ".join(out.split()) for spec in list_models())


def test_demo_refuses_a_file_for_its_folder(tmp_path, capsys):
    (tmp_path / "taken").write_text("user data")
    assert main(["demo", "-o", str(tmp_path / "taken"), "--methods", "harmonic"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'taken'} is a file; give a folder for the demo's images (made if missing)\n"
    )
    assert (tmp_path / "taken").read_text() == "user data"


def test_refuses_formats_that_cannot_hold_the_dtype(tiff_job, capsys):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "harmonic", "-o", str(folder / "out.jpg")) == 2
    assert "cannot store uint16" in capsys.readouterr().err and not (folder / "out.jpg").exists()


def test_refuses_to_write_a_stack_as_a_picture(tmp_path, capsys):
    # PNG would store the planes as frames of an animation, read back as one colour plane.
    stack = np.stack([_ramp(dtype=np.uint8)] * 3)
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "mask.tif", _hole())
    expected = "error: .png holds one plane (grey or colour), not an image of shape (3, 40, 48); write a .tif file"
    fill = ["fill", str(tmp_path / "stack.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", "harmonic"]
    detect = ["detect", str(tmp_path / "stack.tif"), "--detect", "hot-pixels"]
    for argv in (fill, detect):
        assert main([*argv, "-o", str(tmp_path / "out.png")]) == 2
        assert capsys.readouterr().err.startswith(expected)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "stack.tif"]


@pytest.fixture
def toy_method(register_method):
    """A method registered for one test: a flat fill at ``level`` of the known range, counted from ``start``."""

    @register_method(
        "toy-level", summary="a toy fill of a test", family="network", artifacts=("debris",), ndims=(2, 3),
        params=(Param("level", float, 0.5, "share of the known range", low=0, high=1),
                Param("start", str, "low", "end of the range to count from", choices=("low", "high"))),
        margin=10**6,  # the whole image is known context
    )  # fmt: skip
    def fill(image, mask, *, level=0.5, start="low"):
        low, high = image[~mask].min(), image[~mask].max()
        filled = image.copy()
        filled[mask] = low + level * (high - low) if start == "low" else high - level * (high - low)
        return filled

    return "toy-level"


def test_a_registered_method_is_listed_with_its_parameters(toy_method, capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("METHOD") and "FAMILY" in out.splitlines()[0]
    lines = out.splitlines()
    (row,) = [i for i, line in enumerate(lines) if line.startswith(toy_method)]
    assert lines[row].split()[1:4] == ["network", "2D/3D", "-"] and lines[row + 1] == "    a toy fill of a test"
    assert "level=0.5" in out and "[0, 1]" in out and "start=low" in out and "low|high" in out
    assert "share of the known range" in out

    assert main(["methods", "--json"]) == 0
    methods = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    toy = methods[toy_method]
    assert (toy["family"], toy["artifacts"], toy["ndims"], toy["weights"]) == ("network", ["debris"], [2, 3], [])
    assert [(p["name"], p["type"], p["default"], p["range"], p["choices"]) for p in toy["params"]] == [
        ("level", "float", 0.5, [0, 1], None), ("start", "str", "low", None, ["low", "high"])
    ]  # fmt: skip


def test_methods_list_the_weights_a_method_downloads(capsys, monkeypatch):
    from napari_inpaint.methods import list_methods

    monkeypatch.setenv("COLUMNS", "400")  # each method's row on one line
    assert main(["methods", "--json"]) == 0
    listed = {m["name"]: m["weights"] for m in json.loads(capsys.readouterr().out)}
    assert listed == {m.name: list(m.weights) for m in list_methods()}
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for m in list_methods():
        (line,) = [line for line in out.splitlines() if line.split()[:1] == [m.name]]
        assert all(f"weights {name}" in line for name in m.weights) and line.split()[1] == m.family


def test_fill_runs_a_registered_method_with_its_parameters(toy_method, tiff_job):
    folder, image, mask = tiff_job
    out = folder / "out.tif"
    args = ["--method", toy_method, "--param", "level=0.25", "--param", "start=high", "-o", str(out)]
    assert _fill(folder, *args) == 0
    result = tifffile.imread(out)
    np.testing.assert_array_equal(result[~mask], image[~mask])
    low, high = int(image.min()), int(image.max())  # both corners are known
    assert (result[mask] == high - (high - low) // 4).all()


def test_fill_validates_a_registered_methods_parameters(toy_method, tiff_job, capsys):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", toy_method, "--param", "level=2", "-o", str(folder / "out.tif")) == 2
    assert f"parameter 'level' of method '{toy_method}' must lie in [0, 1]" in capsys.readouterr().err
    assert _fill(folder, "--method", toy_method, "--param", "start=middle", "-o", str(folder / "out.tif")) == 2
    assert "must be one of low, high; got 'middle'" in capsys.readouterr().err


def test_device_parameters_validate_through_the_methods_record(tiff_job, capsys):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "tv", "--param", "device=gpu", "-o", str(folder / "out.tif")) == 2
    assert "error: parameter 'device' of method 'tv' is not valid (PyTorch device" in capsys.readouterr().err
    # A well-formed name passes the record; one this machine lacks is refused naming the devices there are.
    assert _fill(folder, "--method", "tv", "--param", "device=cuda:7", "-o", str(folder / "out.tif")) == 2
    assert "error: device 'cuda:7' is not available" in capsys.readouterr().err
    assert not (folder / "out.tif").exists()


def test_demo_writes_images_and_prints_a_table(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--methods", "harmonic"]) == 0
    out = capsys.readouterr().out
    header, damaged, harmonic = out.splitlines()[:3]
    assert header.split()[:3] == ["method", "PSNR", "dB"]
    # The fill is much closer to the clean original than the damaged image.
    assert float(harmonic.split()[1]) > float(damaged.split()[1]) + 10
    names = {"original.png", "damaged.png", "mask.png", "filled-harmonic.png", "comparison.png"}
    assert {p.name for p in tmp_path.iterdir()} == names
    original, filled = skio.imread(tmp_path / "original.png"), skio.imread(tmp_path / "filled-harmonic.png")
    mask = skio.imread(tmp_path / "mask.png") > 0
    np.testing.assert_array_equal(filled[~mask], original[~mask])
    comparison = skio.imread(tmp_path / "comparison.png")  # three panels side by side
    assert comparison.shape[1] > 2 * comparison.shape[0]


def test_convert_parses_the_declared_kinds():
    assert convert("3", int, "p") == 3 and convert("0.5", float, "p") == 0.5
    assert convert("a b", str, "p") == "a b"
    assert convert("Yes", bool, "p") is True and convert("0", bool, "p") is False
    with pytest.raises(ValueError, match="true or false"):
        convert("maybe", bool, "p")


def test_text_progress_bar():
    stream = io.StringIO()
    bar = TextBar("fill", stream, width=10)
    for done in (1, 1, 2, 4):
        bar(done, 4)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3  # repeated percentages are drawn once
    assert text.endswith("\rfill [##########] 100% (4/4)\n")


def test_python_dash_m_runs_the_command_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "napari_inpaint", "fill", "x.tif", "--mask", "m.tif", "--method", "nope", "-o", "y"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: unknown method 'nope'") and "Traceback" not in run.stderr


def test_fill_from_adjacent_planes_or_a_reference_file(tmp_path, capsys):
    from scipy import ndimage as ndi
    from skimage import data

    field = data.gravel().astype(float)
    stack = np.stack(
        [ndi.shift(field, (0.5 * t, -0.3 * t), order=3, mode="reflect")[:128, :128] for t in range(5)]
    ).astype(np.uint16)
    mask = np.zeros(stack.shape, np.uint8)
    mask[2, 40:60, 40:70] = 1
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    tifffile.imwrite(tmp_path / "reference.tif", stack[1])
    hole = mask[2] > 0

    def hole_error(*extra) -> float:
        arguments = [str(tmp_path / "stack.tif"), "--mask", str(tmp_path / "mask.tif"), *extra]
        assert main(["fill", *arguments, "-o", str(tmp_path / "out.tif"), "--overwrite"]) == 0
        filled = tifffile.imread(tmp_path / "out.tif").astype(float)
        np.testing.assert_array_equal(filled[mask == 0], stack[mask == 0])
        return float(np.abs(filled[2][hole] - stack[2][hole]).mean())

    smooth = hole_error("--method", "biharmonic")
    assert hole_error("--method", "guided", "--reference", "adjacent") < smooth / 5
    assert hole_error("--method", "guided", "--reference", str(tmp_path / "reference.tif")) < smooth / 5
    capsys.readouterr()
    assert main(["fill", str(tmp_path / "stack.tif"), "--mask", str(tmp_path / "mask.tif"), "--method",
                 "guided", "-o", str(tmp_path / "none.tif")]) == 2
    assert "fills from reference data" in capsys.readouterr().err and not (tmp_path / "none.tif").exists()


def test_tiff_files_are_filled_without_zarr(tiff_job):
    # zarr is an optional extra (and needs Python 3.11): the base install fills TIFF files.
    folder, image, mask = tiff_job
    script = """
import importlib.abc, runpy, sys

class NoZarr(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "zarr":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoZarr())
sys.argv = ["napari-inpaint", "fill", "image.tif", "--mask", "mask.tif", "--method", "harmonic", "-o", "out.tif"]
runpy.run_module("napari_inpaint", run_name="__main__")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=folder, timeout=120)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(tifffile.imread(folder / "out.tif"), inpaint(image, mask, "harmonic"))


def test_a_warning_is_one_line_in_the_command_lines_words(tmp_path):
    # An ImageJ file whose description counts 15 images for its 6 pages: read as a plain stack, with a warning.
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([_ramp()] * 6), imagej=True, metadata={"axes": "ZYX"})
    tifffile.tiffcomment(tmp_path / "stack.tif", b"ImageJ=1.11a\nimages=15\nslices=15\nhyperstack=true\n")
    tifffile.imwrite(tmp_path / "mask.tif", _hole().astype(np.uint8))
    run = subprocess.run(
        [sys.executable, "-m", "napari_inpaint", "fill", "stack.tif", "--mask", "mask.tif", "--method", "harmonic",
         "-o", "out.tif"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        "warning: stack.tif: its ImageJ description says images=15, slices=15 but the file holds 6 pages; read as "
        "a plain stack of its pages (axes IYX), and written back as such"
    )
    assert "UserWarning" not in run.stderr and "ImageJ series metadata invalid" not in run.stderr
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), inpaint(np.stack([_ramp()] * 6), _hole(),
                                                                                 "harmonic"))
