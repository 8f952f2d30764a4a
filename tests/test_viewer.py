"""End-to-end tests in a real napari window: sample data, docked widgets, worker threads, screenshots.

Run them with a display, e.g. ``xvfb-run -a python -m pytest tests/test_viewer.py``; without
one they are skipped.  With ``NAPARI_INPAINT_SCREENSHOTS=1`` the screenshots are written to
``docs/images/`` (for the user guide) instead of the test's temporary folder.
"""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

pytestmark = pytest.mark.skipif(
    not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    reason="needs a display with OpenGL: run under `xvfb-run -a`",
)

from napari.utils.io import imsave
from napari.utils.notifications import notification_manager

from napari_inpaint.evaluation.sample import LABELS, damaged_cell
from napari_inpaint.napari.layers import INPAINT, provenance_of
from napari_inpaint.napari.widgets import _common as widget_common

PLUGIN = "napari-inpaint"
WAIT_MS = 60_000
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture(autouse=True)
def settings_folder(monkeypatch, tmp_path) -> Path:
    """Default settings for each test, remembered in a folder of its own."""
    monkeypatch.setenv(widget_common.SETTINGS_ENV, str(tmp_path / "settings"))
    return tmp_path / "settings"


@pytest.fixture(autouse=True)
def questions(monkeypatch) -> list:
    """No dialog blocks a test: each question is recorded and declined."""
    asked = []
    monkeypatch.setattr(widget_common, "ask", lambda parent, title, text: asked.append(text) and False)
    return asked


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: docs/images/ when NAPARI_INPAINT_SCREENSHOTS is set, else a temporary folder."""
    if os.environ.get("NAPARI_INPAINT_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def _save(image: np.ndarray, path: Path) -> None:
    """Save a screenshot after checking that it shows something."""
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    rgb = image[..., :3].reshape(-1, 3)
    colours = np.unique(rgb[:: max(1, len(rgb) // 20000)], axis=0)
    assert rgb.std() > 10 and len(colours) > 50, "blank screenshot"
    imsave(str(path), image)
    assert path.stat().st_size > 1000


def _viewer(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy(show=True)
    viewer.window.resize(1400, 860)
    viewer.open_sample(PLUGIN, "damaged_cell")
    return viewer


def _click_and_wait(qtbot, widget) -> None:
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def test_inpaint_the_sample(make_napari_viewer_proxy, qtbot, shots, tmp_path):
    viewer = _viewer(make_napari_viewer_proxy)
    source, damage = viewer.layers["damaged cell"], viewer.layers["damage"]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    assert widget.image.value.name == "damaged cell" and widget.mask.value.name == "damage"
    widget.method.value = "biharmonic"
    widget.overlay.value = True
    _click_and_wait(qtbot, widget)

    clean, damaged, labels = damaged_cell()
    out = viewer.layers["damaged cell inpainted"]
    assert out.data.dtype == np.uint8 and out.data.shape == damaged.shape
    assert (out.data[labels == 0] == damaged[labels == 0]).all()  # known pixels identical
    assert (source.data == damaged).all()  # the source is untouched
    for name, value in LABELS.items():
        hole = labels == value
        assert (out.data[hole] != damaged[hole]).mean() > 0.8, name
        before = np.abs(damaged[hole].astype(float) - clean[hole]).mean()
        after = np.abs(out.data[hole].astype(float) - clean[hole]).mean()
        assert after < 0.5 * before, (name, before, after)
    made = provenance_of(out)
    assert (made.made_by, made.method, made.mask_layer) == (INPAINT, "biharmonic", "damage")
    assert made.source == "damaged cell"
    np.testing.assert_array_equal(out.scale, source.scale)
    np.testing.assert_array_equal(out.translate, source.translate)
    np.testing.assert_array_equal(out.affine.affine_matrix, source.affine.affine_matrix)
    assert out.colormap.name == source.colormap.name
    assert tuple(out.contrast_limits) == tuple(source.contrast_limits)
    assert "damaged cell inpainted pixels" in viewer.layers
    assert widget.status.value.startswith("Filled ")
    assert widget.status.value.endswith("layer 'damaged cell inpainted'.")
    assert widget.progress.native.isHidden()  # no bar while idle

    # The whole window with the docked widget (its status line under Run), then a zoomed before/after.
    damage.visible = False
    viewer.layers["damaged cell inpainted pixels"].visible = False
    qtbot.wait(200)  # let the dock lay out the status line
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "inpaint-widget.png")
    debris = np.argwhere(labels == LABELS["debris"]).mean(axis=0)
    viewer.scene.camera.center = tuple(debris)
    viewer.scene.camera.zoom = 4 * viewer.scene.camera.zoom
    out.visible = False
    before = viewer.screenshot(canvas_only=True, flash=False)
    out.visible = True
    after = viewer.screenshot(canvas_only=True, flash=False)
    gap = np.full((before.shape[0], 8, before.shape[2]), 255, before.dtype)
    _save(np.concatenate([before, gap, after], axis=1), shots / "before-after.png")

    # Write result to file: in the background, with the run in the activity dock; the file gets the fill.
    from napari.utils import progress

    from napari_inpaint.io import read_image

    assert widget.export(tmp_path / "filled.tif") is not None
    assert any(bar.desc.startswith("Writing the result") for bar in progress._all_instances)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    np.testing.assert_array_equal(read_image(tmp_path / "filled.tif").data, out.data)
    assert "wrote" in widget.status.value and len(viewer.layers) == 4

    # A method with many parameters: the essentials, the others folded under "Advanced" (opened here).
    widget.method.value = "learned"
    widget.mask_label.value = LABELS["debris"]
    widget.advanced_section.expand(animate=False)
    widget.update_preview()
    qtbot.wait(300)
    assert [c.name for c in widget.params] == ["steps", "seconds", "device", "model"] and len(widget.advanced) == 4
    assert widget.status.value.startswith(f"Will fill {int((labels == LABELS['debris']).sum()):,} px")
    _save(_grab(widget), shots / "inpaint-advanced.png")


def _grab(widget) -> np.ndarray:
    """A picture of a widget alone, as an RGBA array."""
    from napari._qt.utils import QImg2array

    return QImg2array(widget.native.grab().toImage())


def test_mask_from_image_then_inpaint(make_napari_viewer_proxy, qtbot, shots):
    viewer = _viewer(make_napari_viewer_proxy)
    viewer.layers.remove("damage")
    _, mask_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Mask from image")
    mask_widget.saturated.value = True
    mask_widget.outliers.value = True
    mask_widget.k.value = 8.0
    _click_and_wait(qtbot, mask_widget)

    _, damaged, labels = damaged_cell()
    mask = viewer.layers["damaged cell mask"].data > 0
    # Every hot pixel (stuck at 255) is found, part of the scratch too, and almost nothing else.
    hot = labels == LABELS["hot pixels"]
    assert mask[hot].all() and mask[labels == LABELS["scratch"]].mean() > 0.1
    assert (mask & (labels == 0)).mean() < 1e-3
    assert "pixels flagged" in mask_widget.status.value
    scratch = np.argwhere(labels == LABELS["scratch"])
    viewer.scene.camera.center = tuple(scratch[len(scratch) // 2])
    viewer.scene.camera.zoom = 3 * viewer.scene.camera.zoom
    qtbot.wait(200)  # let the dock lay out the new result text
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "mask-widget.png")
    # The cosmic-ray section, generated from the detectors' records: the chosen one's note and parameters.
    mask_widget.cosmic_rays.value, mask_widget.cosmic_detector.value = True, "lacosmic"
    assert [c.name for c in mask_widget.cosmic_params][:2] == ["gain", "read_noise"]
    assert "L.A.Cosmic" in mask_widget.cosmic_note.value
    qtbot.wait(200)
    _save(_grab(mask_widget), shots / "mask-cosmic-rays.png")
    mask_widget.cosmic_rays.value = False

    # The Inpaint widget picks the new Labels layer up and fills with it.
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    assert widget.mask.value.name == "damaged cell mask"  # (the viewer's layers are proxies: compare names)
    viewer.layers.remove("damaged cell mask")
    assert widget.mask.value is None
    _click_and_wait(qtbot, mask_widget)  # a mask detected while the Inpaint widget is open becomes its mask
    assert widget.mask.value.name == "damaged cell mask"
    widget.method.value = "harmonic"
    _click_and_wait(qtbot, widget)
    out = viewer.layers["damaged cell inpainted"].data
    assert (out[~mask] == damaged[~mask]).all()
    assert (out[hot] < 255).mean() > 0.9

    # Compare methods on holes hidden away from the detected damage.
    viewer.window.remove_dock_widget("all")
    _, compare = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare methods")
    compare.region.value = viewer.layers["damaged cell mask"]
    compare.region_marks.value = "damaged pixels"
    compare.methods.value, compare.kinds.value = ["harmonic", "telea"], ["strokes"]
    compare.ratios.value = "0.05 0.15"
    compare.repeats.value = 2  # error bars in the plot
    _click_and_wait(qtbot, compare)
    assert [row["method"] for row in compare.table.rows] == ["harmonic", "harmonic", "telea", "telea"]
    holes = viewer.layers["holes (compare)"].data > 0
    assert holes.any() and not (holes & mask).any()
    for method in ("harmonic", "telea"):
        fill = viewer.layers[f"{method} (compare)"].data
        known = ~(holes | mask)  # the detected damage is never used as known: it is filled too
        assert (fill[known] == damaged[known]).all()
    assert compare.score_table.rowCount() == 4 and not compare.scores.native.isHidden()
    compare.grid_button.native.click()  # side by side: the image and each fill, each tile named
    assert viewer.canvas.grid.enabled and viewer.layers["telea (compare)"].visible
    qtbot.wait(300)
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "compare-widget.png")


def test_cancel_a_long_run(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy(show=True)
    rng = np.random.default_rng(0)
    stack = rng.random((6, 512, 512)).astype(np.float32)
    labels = np.zeros(stack.shape, np.uint8)
    labels[:, 100:400, 100:400] = 1
    viewer.add_image(stack, name="stack")
    viewer.add_labels(labels, name="holes")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    # Total variation with a fixed, huge iteration count on a wide hole takes minutes per plane.
    widget.method.value = "tv"
    widget.params["iterations"].value = widget.params["iterations"].max
    widget.params["tol"].value = 0.0
    widget.run_button.native.click()
    assert widget.worker is not None and widget.cancel_button.enabled and not widget.run_button.enabled

    # The GUI keeps handling events while the worker computes.
    qtbot.wait(300)
    viewer.dims.set_current_step(0, 4)
    fired = []
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=5000)
    assert widget.worker is not None, "the long run ended before it could be cancelled"

    # The run is in napari's activity dock, labelled by its stage.
    from napari.utils import progress

    def inpainting_bars() -> list:
        return [bar for bar in progress._all_instances if bar.desc.startswith("Inpainting: ")]

    # The worker takes about half a second to reach its first unit (0.45 s to "starting", 0.55 s to "filling"
    # on 2 cores): wait for the engine's stage rather than assume it is there after a fixed delay.
    qtbot.waitUntil(
        lambda: any(bar.desc.startswith("Inpainting: filling 1/") for bar in inpainting_bars()), timeout=5000
    )
    running = inpainting_bars()
    assert len(running) == 1 and widget.worker is not None
    assert widget.progress.native.format().startswith("filling 1/")

    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == ["stack", "holes"]
    assert "cancelled" in notification_manager.records[-1].message
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert running[0] not in progress._all_instances and widget.progress.native.isHidden()

    # Closing the dock during a run cancels it: no layer is added afterwards.
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.run_button.native.click()
    qtbot.wait(300)
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    qtbot.wait(200)
    assert [layer.name for layer in viewer.layers] == ["stack", "holes"]


def test_reruns_follow_the_source_and_the_console_takes_the_widgets_options(make_napari_viewer_proxy, qtbot):
    from napari_inpaint import inpaint_layer

    viewer = _viewer(make_napari_viewer_proxy)
    source = viewer.layers["damaged cell"]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.method.value = "harmonic"
    _click_and_wait(qtbot, widget)
    out = viewer.layers["damaged cell inpainted"]
    # The user calibrates the image and its mask, and restyles the image: the rerun overlays it again.
    for layer in (source, viewer.layers["damage"]):
        layer.scale, layer.translate = (0.5, 0.25), (10.0, -4.0)
    source.colormap, source.contrast_limits = "viridis", (10.0, 200.0)
    _click_and_wait(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["damaged cell", "damage", "damaged cell inpainted"]
    np.testing.assert_allclose(out.scale, (0.5, 0.25))
    np.testing.assert_allclose(out.translate, (10.0, -4.0))
    assert out.colormap.name == "viridis" and tuple(out.contrast_limits) == (10.0, 200.0)

    # One console call with the widget's mask options (label, dilation, scope, noise) fills like the widget.
    _, _, labels = damaged_cell()
    debris = labels == LABELS["debris"]
    made = inpaint_layer(viewer, "damaged cell", "damage", "biharmonic", label=LABELS["debris"], dilate=2,
                         noise="gaussian", new_layer=True)
    from scipy import ndimage as ndi

    grown = ndi.binary_dilation(debris, iterations=2)
    assert made.name == "damaged cell inpainted (biharmonic)"
    assert (made.data[~grown] == source.data[~grown]).all()
    assert (made.data[debris] != source.data[debris]).any()
    assert provenance_of(made).details["dilate"] == 2 and provenance_of(made).details["label"] == 3
    # A label the layer does not hold: the message names those it holds, by name.
    with pytest.raises(ValueError, match=r"no pixel of label 5; it holds labels 1 \(hot pixels\), 2 \(scr"):
        inpaint_layer(viewer, "damaged cell", "damage", label=5)


def test_settings_survive_closing_the_dock_and_restarting(make_napari_viewer_proxy, qtbot, questions):
    viewer = _viewer(make_napari_viewer_proxy)
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.method.value, widget.dilate.value, widget.noise.value = "exemplar", 1, "gaussian"
    widget.params["patch_size"].value = 11
    compare_dock, compare = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare methods")
    compare.repeats.value, compare.ratios.value = 2, "0.1"
    viewer.window.remove_dock_widget(dock)
    viewer.window.remove_dock_widget(compare_dock)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    assert (widget.method.value, widget.dilate.value, widget.noise.value) == ("exemplar", 1, "gaussian")
    assert widget.params["patch_size"].value == 11
    viewer.close()

    # Another viewer (as after a restart): the same settings, until "Restore defaults".
    viewer = _viewer(make_napari_viewer_proxy)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    _, compare = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare methods")
    assert (widget.method.value, widget.params["patch_size"].value) == ("exemplar", 11)
    assert (compare.repeats.value, compare.ratios.value) == (2, "0.1")
    widget.restore_defaults()
    assert (widget.method.value, widget.dilate.value, widget.noise.value) == ("biharmonic", 0, "none")

    # LPIPS is a control of the widget: its weights (size, licence, folder) are downloaded only if confirmed.
    compare.methods.value, compare.lpips.value = ["harmonic"], True
    from napari_inpaint.evaluation import metrics

    if metrics.lpips_available() or importlib.util.find_spec("torch") is None:
        pytest.skip("LPIPS weights cached already, or no PyTorch: nothing to confirm")
    assert compare.run() is None and "MiB" in questions[-1] and "licence" in questions[-1]
    assert "LPIPS needs its weights" in compare.status.value



# -- issue 18: long texts in a narrow dock, the activity dock, files opened with their calibration ----------


def test_a_long_error_leaves_the_dock_narrow(make_napari_viewer_proxy, qtbot, shots, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from napari_inpaint import models

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))  # deepCR's weights are not there,
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv(models.MIRROR_ENV, str(tmp_path / "mirror"))  # nor anywhere they can come from
    viewer = _viewer(make_napari_viewer_proxy)
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Mask from image")
    qtbot.wait(200)
    assert widget.status.value  # what to do, from the start
    width = dock.width()
    widget.cosmic_rays.value, widget.cosmic_detector.value = True, "deepcr"
    _click_and_wait(qtbot, widget)
    error = notification_manager.records[-1].message
    assert "could not fetch model" in error and len(error) > 500  # the whole message, in the notification
    assert widget.status.value.startswith("Mask detection failed: could not fetch model")
    assert len(widget.status.value) < 100 and widget.status.tooltip.endswith(error.split(": ", 1)[1][-40:])
    qtbot.wait(200)
    assert dock.width() <= max(width, 320), (width, dock.width())
    _save(_grab(widget), shots / "mask-offline-error.png")


def test_the_activity_dock_shows_a_long_stage_with_its_cancel_button(make_napari_viewer_proxy, qtbot, shots,
                                                                      register_method):
    import threading

    from napari._qt.dialogs.qt_activity_dialog import QtActivityDialog
    from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar
    from qtpy.QtWidgets import QApplication

    release = threading.Event()
    stage = "a stage long enough to run past both ends of the progress bar of a dock as narrow as this one"

    def prepare(stack, *, check=None, progress=None, status=None):
        status(stage)
        progress(1, 3)
        while not release.is_set():
            check()  # cancellable
            release.wait(0.05)
        return 0.0

    @register_method("toy-slow", prepare=prepare)
    def fill(image, mask, *, prepared=None):
        return image

    viewer = _viewer(make_napari_viewer_proxy)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.method.value = "toy-slow"
    (activity,) = [w for w in QApplication.allWidgets() if isinstance(w, QtActivityDialog)]
    activity.show()
    widget.run_button.native.click()
    bar = widget.progress.native
    qtbot.waitUntil(lambda: bar.text().endswith("%") and bar.text().startswith("a stage"), timeout=WAIT_MS)
    qtbot.wait(300)
    (row,) = [row for row in activity.findChildren(QtLabeledProgressBar)
              if row.description_label.text().startswith("Inpainting")]
    viewport = activity._scrollArea.viewport()
    assert not activity._scrollArea.horizontalScrollBar().isVisible()
    button = row.cancel_button
    corner = button.mapTo(viewport, button.rect().bottomRight())
    assert button.isVisible() and viewport.rect().contains(corner)
    assert bar.fontMetrics().horizontalAdvance(bar.text()) <= bar.contentsRect().width() and "…" in bar.text()
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "inpaint-running.png")
    button.click()  # the activity dock's Cancel cancels the run
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert widget.status.value == "Cancelled: nothing was added or changed."
    qtbot.wait(400)  # the preview timer has run: the outcome stays
    assert widget.status.value == "Cancelled: nothing was added or changed."


def test_a_written_result_opens_with_its_calibration_and_invented_pixels(make_napari_viewer_proxy, qtbot, shots,
                                                                         tmp_path):
    viewer = _viewer(make_napari_viewer_proxy)
    source = viewer.layers["damaged cell"]
    source.scale, source.units = (0.2, 0.2), "micrometer"
    viewer.layers["damage"].scale = source.scale
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.method.value, widget.overlay.value = "biharmonic", True
    assert widget.export(tmp_path / "cell inpainted.ome.zarr") is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)

    other = make_napari_viewer_proxy(show=True)
    image, invented = other.open(str(tmp_path / "cell inpainted.ome.zarr"), plugin=PLUGIN)
    np.testing.assert_allclose(image.scale, (0.2, 0.2))
    assert [str(unit) for unit in image.units] == ["micrometer"] * 2
    assert image.metadata["napari_inpaint"]["method"] == "biharmonic"
    _, _, labels = damaged_cell()
    assert invented.multiscale and image.multiscale  # the pyramid of the file, as the image's
    np.testing.assert_array_equal(np.asarray(invented.data[0]) > 0, labels > 0)
    other.canvas.overlays.scale_bar.visible = True
    qtbot.wait(200)
    _save(other.screenshot(canvas_only=False, flash=False), shots / "open-ome-zarr.png")
