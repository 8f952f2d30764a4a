"""Detectors that never crash and never rewrite an image silently (issue 18, items 4a, 5 and 8b).

L.A.Cosmic refuses the planes that crash astroscrappy and the data its noise model cannot describe; every
detection reports how many pixels it flagged, warns above the sanity share, and ``fill --detect`` refuses
above it unless ``--max-flagged`` allows more; the detectors refuse parameters that would silently flag
nothing (or everything).
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from skimage import data
from skimage import io as skio
from test_detect import READ_NOISE, far_from, simulated_sky

from napari_inpaint.cli import main
from napari_inpaint.detect import (
    LACOSMIC_MIN_SIDE,
    SANITY_SHARE,
    Flagged,
    cosmic_rays,
    dilate_mask,
    mask_from_image,
    outlier_pixels,
    remove_small,
    saturated_pixels,
    threshold,
)

# -- L.A.Cosmic: shapes and units it cannot take ------------------------------------------------------------


def test_lacosmic_refuses_planes_that_crash_astroscrappy_and_takes_the_smallest_safe_ones():
    pytest.importorskip("astroscrappy")
    # In a child process: before the refusal, 2 x 256 aborted Python (malloc) and 1 x 256 hung.
    script = (
        "import numpy as np\n"
        "from napari_inpaint.detect import cosmic_rays\n"
        "for shape in [(1, 256), (2, 256), (3, 64), (64, 3), (5, 2, 64)]:\n"
        "    try:\n"
        "        cosmic_rays(np.full(shape, 100.0))\n"
        "        print('ran', shape)\n"
        "    except ValueError as exc:\n"
        "        print('refused', exc)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("refused L.A.Cosmic (astroscrappy) needs planes of at least "
                                                   "4 x 4 pixels") for line in lines)
    assert "the planes of this image of shape (5, 2, 64) are 2 x 64" in lines[-1]
    # The smallest planes it takes are searched, and a hit in a thin plane is found.
    for shape in [(LACOSMIC_MIN_SIDE,) * 2, (LACOSMIC_MIN_SIDE, 64), (64, LACOSMIC_MIN_SIDE)]:
        assert not cosmic_rays(np.random.default_rng(0).poisson(100.0, shape).astype(float)).any()
    thin = np.random.default_rng(0).poisson(100.0, (12, 256)).astype(float)
    thin[6, 100] += 3000
    assert np.argwhere(cosmic_rays(thin)).tolist() == [[6, 100]]


@pytest.mark.parametrize("offset", [-1000.0, -1e4, -100.0])
def test_lacosmic_refuses_data_offset_below_its_noise_model_and_says_how_much_to_add(offset):
    pytest.importorskip("astroscrappy")
    _, observed, hits = simulated_sky()
    with pytest.raises(ValueError, match="noise model does not fit the image") as refused:
        cosmic_rays(observed + offset, read_noise=READ_NOISE)  # flagged 86 % (59 % at -100) before
    message = str(refused.value)
    assert "bias- or sky-subtracted" in message and "use the deepcr detector" in message
    # The level it suggests adding back makes the data fit: the hits are found, and little else.
    level = float(re.search(r"about (\S+) counts would match", message)[1])
    assert -offset < level < -offset + 150  # the offset, plus about the sky level of 80 it removed
    flagged = cosmic_rays(observed + offset + level, read_noise=READ_NOISE)
    assert flagged[hits].mean() > 0.95 and flagged[far_from(hits)].mean() < 1e-3


def test_lacosmic_checks_every_plane_before_searching_any():
    pytest.importorskip("astroscrappy")
    _, observed, _ = simulated_sky(shape=(96, 96), sources=6, hits=8)
    stack = np.stack([observed, observed - 1000])
    searched = []
    with pytest.raises(ValueError, match="does not fit plane 1 of the stack"):
        cosmic_rays(stack, read_noise=READ_NOISE, progress=lambda *done: searched.append(done))
    assert searched == []
    # Counts of a smaller gain than the one given carry more noise than the model expects: refused too.
    with pytest.raises(ValueError, match="give the gain and read noise of your detector"):
        cosmic_rays(observed / 0.25, gain=1.0, read_noise=READ_NOISE)
    assert cosmic_rays(observed / 0.25, gain=0.25, read_noise=READ_NOISE).mean() < 0.01


# -- parameters that would flag nothing, or everything ------------------------------------------------------


def _frames(count=12, shape=(32, 32)):
    return np.random.default_rng(0).normal(100, 5, (count, *shape))


def test_persistence_needs_two_planes():
    frames = _frames()
    frames[:, 5, 6] += 40
    with pytest.raises(ValueError, match=r"takes several planes; this image of shape \(1, 32, 32\) is a stack of "
                                         "1 plane: give a stack"):
        outlier_pixels(frames[:1], persistent=True)  # flagged the whole image's outliers as persistent before
    with pytest.raises(ValueError, match="is a stack of 1 plane"):
        mask_from_image(frames[:1, np.newaxis], outliers=True, persistent=True)
    assert outlier_pixels(frames[:2], 3, persistent=True)[:, 5, 6].all()


@pytest.mark.parametrize("k", [np.nan, np.inf, 0.0, -1.0])
def test_outlier_threshold_must_be_a_positive_finite_number(k):
    with pytest.raises(ValueError, match="k must be a positive finite number"):
        outlier_pixels(_frames(), k, persistent=True)  # k=nan flagged nothing before
    with pytest.raises(ValueError, match="k must be a positive finite number"):
        mask_from_image(_frames()[0], outliers=True, k=k)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda image: outlier_pixels(image, size=3.5), "size must be an odd integer"),
        (lambda image: outlier_pixels(image, size=True), "size must be an odd integer"),
        (lambda image: outlier_pixels(image, fraction=np.nan, persistent=True), "fraction must lie in"),
        (lambda image: threshold(image, above=np.nan), "above must be a finite number"),
        (lambda image: threshold(image, below=-np.inf), "below must be a finite number"),
        (lambda image: saturated_pixels(image, np.nan), "value must be a finite number"),
        (lambda image: dilate_mask(image > 100, np.nan), "pixels must be a non-negative finite radius"),
        (lambda image: dilate_mask(image > 100, np.inf), "pixels must be a non-negative finite radius"),
        (lambda image: remove_small(image > 100, np.nan), "min_size must be a finite number"),
    ],
)
def test_detector_parameters_that_would_flag_nothing_or_everything_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(_frames())


# -- the report and the sanity share ------------------------------------------------------------------------


def test_flagged_counts_and_shares():
    mask = np.zeros((4, 50, 50), bool)
    mask[1, :10, :25] = True  # 250 of 10,000 pixels: 2.5 %
    flagged = Flagged.of(mask)
    assert (flagged.count, flagged.total, flagged.share) == (250, 10_000, 0.025)
    assert str(flagged) == "250 pixels flagged (2.5% of 10,000)"
    assert not flagged.excessive() and flagged.excessive(0.02)
    mask[2] = True
    assert Flagged.of(mask).excessive() and "more than 5% of the image: " in Flagged.of(mask).warning()
    assert Flagged.of(np.zeros(0, bool)).share == 0.0


@pytest.fixture
def photo(tmp_path):
    """A natural photo (camera), on which the hot-pixel detector flags a fifth of the pixels: its detail."""
    path = tmp_path / "cam.png"
    skio.imsave(path, data.camera(), check_contrast=False)
    return path


def test_fill_refuses_to_rewrite_more_than_the_sanity_share_unless_told(photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    fill = ["fill", str(photo), "--detect", "hot-pixels", "--method", "harmonic", "-o", str(out)]
    assert main(fill) == 2  # before: 0, and 19 % of the photo rewritten with only a progress bar
    err = capsys.readouterr().err
    assert err.startswith(f"error: {photo}: 51,047 pixels flagged (19.5% of 262,144), more than 5% of the")
    assert "pass --max-flagged 19.5 to fill them anyway" in err and not out.exists()
    assert main([*fill, "--max-flagged", "19"]) == 2 and not out.exists()  # still more than allowed

    assert main([*fill, "--max-flagged", "19.5", "--invented"]) == 0
    assert f"{photo}: 51,047 pixels flagged (19.5% of 262,144)\n" in capsys.readouterr().err
    filled = skio.imread(out)
    invented = skio.imread(tmp_path / "out.invented.png") > 0
    assert invented.sum() == 51_047
    np.testing.assert_array_equal(filled[~invented], data.camera()[~invented])


def test_fill_reports_what_it_detected_below_the_share(tmp_path, capsys):
    _, observed, _ = simulated_sky(shape=(128, 128), sources=10, hits=12)
    tifffile.imwrite(tmp_path / "sky.tif", observed.astype(np.float32))
    assert main(["fill", str(tmp_path / "sky.tif"), "--detect", "hot-pixels", "--method", "harmonic",
                 "-o", str(tmp_path / "out.tif")]) == 0
    found = outlier_pixels(observed.astype(np.float32))
    assert 0 < found.mean() < SANITY_SHARE
    assert f"sky.tif: {found.sum()} pixels flagged ({100 * found.mean():.3g}% of 16,384)\n" in (
        capsys.readouterr().err
    )


def test_detect_writes_the_mask_and_warns_above_the_share(photo, tmp_path, capsys):
    out = tmp_path / "mask.png"
    assert main(["detect", str(photo), "--detect", "hot-pixels", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {photo}: 51,047 pixels flagged (19.5% of 262,144), more than 5% of the image" in err
    assert "check the mask before filling from it" in err
    assert f"{photo}: 51,047 pixels flagged (19.5% of 262,144); wrote {out}" in err
    assert (skio.imread(out) > 0).sum() == 51_047
    # Allowed more, it reports without a warning.
    assert main(["detect", str(photo), "--detect", "hot-pixels", "-o", str(out), "--overwrite",
                 "--max-flagged", "25"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_batch_fills_the_images_within_the_share_and_reports_the_others(photo, tmp_path, capsys):
    folder = photo.parent
    skio.imsave(folder / "moon.png", data.moon(), check_contrast=False)  # smooth: 2.3 % flagged, within
    out = tmp_path / "clean"
    assert main(["fill", str(folder), "--detect", "hot-pixels", "--method", "harmonic", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert (out / "moon.png").exists() and not (out / "cam.png").exists()
    assert "error: 1 of 2 images failed:" in err and "pass --max-flagged 19.5" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--detect", "hot-pixels", "--max-flagged", "0"], "--max-flagged is a percentage of the pixels"),
        (["--detect", "hot-pixels", "--max-flagged", "150"], "--max-flagged is a percentage of the pixels"),
        (["--detect", "hot-pixels", "--max-flagged", "nan"], "--max-flagged is a percentage of the pixels"),
        (["--max-flagged", "10", "--mask", "m.tif"], "--max-flagged acts on detected pixels: give --detect"),
        (["--detect", "hot-pixels", "--hot-threshold", "inf"], "--hot-threshold must be a positive finite number"),
        (["--above", "nan"], "--above must be a finite number"),
        (["--detect", "saturated", "--saturation-level", "inf"], "--saturation-level must be a finite number"),
    ],
)
def test_detection_flags_are_checked_before_any_image_is_read(photo, tmp_path, capsys, flags, message):
    assert main(["fill", str(photo), *flags, "--method", "harmonic", "-o", str(tmp_path / "out.png")]) == 2
    assert message in capsys.readouterr().err


# -- the Mask from image widget -----------------------------------------------------------------------------


@pytest.fixture
def warnings_shown(monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    monkeypatch.setattr(notifications, "show_error", lambda message: pytest.fail(message))
    return shown


def _detected(qtbot, image: np.ndarray, name: str):
    from napari.components import ViewerModel

    from napari_inpaint.napari.widgets import MaskFromImageWidget

    viewer = ViewerModel()
    widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value = viewer.add_image(image, name=name)
    widget.outliers.value = True
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    return widget, viewer.layers[f"{name} mask"]


def test_the_widget_warns_when_it_flags_more_than_the_share(qtbot, warnings_shown):
    widget, labels = _detected(qtbot, data.camera(), "cam")
    assert int(labels.data.astype(bool).sum()) == 51_047  # the layer is made, to be checked
    assert widget.status.value.startswith("Warning: 51,047 pixels flagged (19.5% of 262,144), more than")
    assert len(warnings_shown) == 1 and "Check the layer 'cam mask' before inpainting" in warnings_shown[0]
    assert widget.status.tooltip == warnings_shown[0]


def test_the_widget_reports_a_count_within_the_share_without_warning(qtbot, warnings_shown):
    frames = _frames(count=1)[0]
    frames[5, 6] = 400
    widget, _ = _detected(qtbot, frames, "dark")
    assert widget.status.value.startswith("1 pixel flagged (0.0977% of 1,024) in ") and not warnings_shown


def test_the_widget_refuses_thresholds_that_flag_nothing_or_everything(qtbot, monkeypatch):
    from napari.components import ViewerModel
    from napari.utils import notifications

    from napari_inpaint.napari.widgets import MaskFromImageWidget

    errors = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = ViewerModel()
    widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value = viewer.add_image(_frames(count=1)[0], name="dark")
    for control, text in ((widget.above, "nan"), (widget.below, "-inf"), (widget.saturation_value, "inf")):
        control.value = text
        assert widget.run() is None
        assert errors[-1] == f"{control.label!r} must be a finite number or empty, got {text!r}"
        control.value = ""
    assert "dark mask" not in viewer.layers


def test_the_widget_offers_persistence_only_for_two_planes_or_more(qtbot):
    from napari.components import ViewerModel

    from napari_inpaint.napari.widgets import MaskFromImageWidget

    viewer = ViewerModel()
    widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value = viewer.add_image(_frames(count=1), name="one")
    assert not widget.persistent.enabled
    widget.image.value = viewer.add_image(_frames(count=3), name="three")
    assert widget.persistent.enabled
