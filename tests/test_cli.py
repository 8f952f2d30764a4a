import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from skimage import io as skio

from napari_inpaint import inpaint
from napari_inpaint.cli import _convert, _TextBar, main


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
    folder, image, _ = tiff_job
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


def test_refuses_formats_that_cannot_hold_the_dtype(tiff_job, capsys):
    folder, _, _ = tiff_job
    assert _fill(folder, "--method", "harmonic", "-o", str(folder / "out.jpg")) == 2
    assert "cannot store uint16" in capsys.readouterr().err and not (folder / "out.jpg").exists()


def test_methods_json_describes_every_method(capsys):
    assert main(["methods", "--json"]) == 0
    methods = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert {"harmonic", "biharmonic", "interpolate"} <= set(methods)
    assert methods["harmonic"]["ndims"] == [2, 3]
    defaults = {p["name"]: p["default"] for p in methods["interpolate"]["params"]}
    assert defaults == {"axis": 0, "kind": "linear"}


def test_methods_table_lists_methods_and_parameters(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("METHOD") and "2D/3D" in out
    assert "axis=0" in out and "[0, 2]" in out and "linear|nearest" in out


def test_demo_writes_images_and_prints_a_table(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--methods", "harmonic", "no-such-method"]) == 0
    out = capsys.readouterr().out
    header, damaged, harmonic, missing = out.splitlines()[:4]
    assert header.split()[:3] == ["method", "PSNR", "dB"]
    # The fill is much closer to the clean original than the damaged image.
    assert float(harmonic.split()[1]) > float(damaged.split()[1]) + 10
    assert missing.startswith("no-such-method") and "unknown method" in missing
    names = {"original.png", "damaged.png", "mask.png", "filled-harmonic.png", "comparison.png"}
    assert {p.name for p in tmp_path.iterdir()} == names
    original, filled = skio.imread(tmp_path / "original.png"), skio.imread(tmp_path / "filled-harmonic.png")
    mask = skio.imread(tmp_path / "mask.png") > 0
    np.testing.assert_array_equal(filled[~mask], original[~mask])
    comparison = skio.imread(tmp_path / "comparison.png")  # three panels side by side
    assert comparison.shape[1] > 2 * comparison.shape[0]


def test_convert_parses_the_declared_kinds():
    assert _convert("3", int, "p") == 3 and _convert("0.5", float, "p") == 0.5
    assert _convert("a b", str, "p") == "a b"
    assert _convert("Yes", bool, "p") is True and _convert("0", bool, "p") is False
    with pytest.raises(ValueError, match="true or false"):
        _convert("maybe", bool, "p")


def test_text_progress_bar():
    stream = io.StringIO()
    bar = _TextBar("fill", stream, width=10)
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
