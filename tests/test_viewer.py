"""End-to-end tests in a real napari window: sample data, docked widgets, worker threads, screenshots.

Run them with a display, e.g. ``xvfb-run -a python -m pytest tests/test_viewer.py``; without
one they are skipped.  With ``NAPARI_INPAINT_SCREENSHOTS=1`` the screenshots are written to
``docs/images/`` (for the user guide) instead of the test's temporary folder.
"""

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

from napari.utils.io import imsave  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402

from napari_inpaint.layers import INPAINT, provenance_of  # noqa: E402
from napari_inpaint._sample_data import LABELS, damaged_cell  # noqa: E402

PLUGIN = "napari-inpaint"
WAIT_MS = 60_000
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


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


def test_inpaint_the_sample(make_napari_viewer_proxy, qtbot, shots):
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

    # The whole window with the docked widget, then a zoomed before/after of the debris.
    damage.visible = False
    viewer.layers["damaged cell inpainted pixels"].visible = False
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
    assert "pixels flagged" in mask_widget.result.value
    scratch = np.argwhere(labels == LABELS["scratch"])
    viewer.scene.camera.center = tuple(scratch[len(scratch) // 2])
    viewer.scene.camera.zoom = 3 * viewer.scene.camera.zoom
    qtbot.wait(200)  # let the dock lay out the new result text
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "mask-widget.png")

    # The Inpaint widget picks the new Labels layer up and fills with it.
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    widget.mask.value = viewer.layers["damaged cell mask"]
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
    compare.methods.value, compare.kinds.value, compare.ratios.value = ["harmonic", "telea"], ["strokes"], "0.05"
    _click_and_wait(qtbot, compare)
    assert [row["method"] for row in compare.table.rows] == ["harmonic", "telea"]
    holes = viewer.layers["damaged cell holes (compare)"].data > 0
    assert holes.any() and not (holes & mask).any()
    for method in ("harmonic", "telea"):
        fill = viewer.layers[f"damaged cell {method} (compare)"].data
        known = ~(holes | mask)  # the detected damage is never used as known: it is filled too
        assert (fill[known] == damaged[known]).all()
    for layer in viewer.layers:
        layer.visible = layer.name in ("damaged cell telea (compare)", "damaged cell holes (compare)")
    viewer.layers["damaged cell holes (compare)"].contour = 1  # outline the hidden holes
    viewer.reset_view()
    qtbot.wait(200)
    _save(viewer.screenshot(canvas_only=False, flash=False), shots / "compare-widget.png")


def test_cancel_a_long_run(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy(show=True)
    rng = np.random.default_rng(0)
    stack = rng.random((6, 128, 128)).astype(np.float32)
    labels = np.zeros(stack.shape, np.uint8)
    labels[:, 40:80, 40:80] = 1
    viewer.add_image(stack, name="stack")
    viewer.add_labels(labels, name="holes")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Inpaint")
    # Total variation with a fixed, huge iteration count takes minutes per plane.
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

    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == ["stack", "holes"]
    assert "cancelled" in notification_manager.records[-1].message
    assert widget.run_button.enabled and not widget.cancel_button.enabled
