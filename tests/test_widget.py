"""Logic tests of the napari widgets, on napari's ViewerModel (no OpenGL canvas needed)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox  # noqa: E402
from napari.components import ViewerModel  # noqa: E402

import napari_inpaint  # noqa: E402
from napari_inpaint import ARTIFACTS, Method, Param, inpaint, list_methods  # noqa: E402
from napari_inpaint import _registry, _widget  # noqa: E402
from napari_inpaint._detect import mask_from_image  # noqa: E402
from napari_inpaint._layers import add_mask, add_result, layer_mask, make_provenance  # noqa: E402
from napari_inpaint._sample_data import LABELS, damaged_cell, make_sample_data  # noqa: E402
from napari_inpaint._widget import (  # noqa: E402
    PLANE,
    STACK,
    VOLUME,
    CompareMethodsWidget,
    InpaintWidget,
    MaskFromImageWidget,
)

WAIT_MS = 30_000


def _ramp(shape=(48, 64), dtype=np.float32) -> np.ndarray:
    """A plane (or stack) that harmonic filling reproduces exactly: a linear ramp."""
    yy, xx = np.indices(shape[-2:])
    plane = 2.0 * yy + 3.0 * xx + 10.0
    return np.broadcast_to(plane, shape).astype(dtype)


def _hole(shape=(48, 64)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[..., 10:20, 20:30] = 1
    return mask


@pytest.fixture
def notes(monkeypatch):
    """Capture the widgets' napari notifications."""
    seen = {"error": [], "info": []}
    monkeypatch.setattr(_widget, "show_error", seen["error"].append)
    monkeypatch.setattr(_widget, "show_info", seen["info"].append)
    return seen


def _run(qtbot, widget) -> None:
    """Click Run and wait for the worker to finish."""
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def _inpaint_widget(qtbot, viewer, image, mask, method="harmonic") -> InpaintWidget:
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value, widget.mask.value, widget.method.value = image, mask, method
    return widget


# -- parameter controls ------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "kind", "value"),
    [
        (Param("n", int, 7, "an int", low=1, high=50), SpinBox, 7),
        (Param("tol", float, 1e-4, "a float", low=0.0, high=1.0), FloatSpinBox, 1e-4),
        (Param("flag", bool, True, "a bool"), CheckBox, True),
        (Param("kind", str, "b", "a choice", choices=("a", "b")), ComboBox, "b"),
        (Param("text", str, "x", "free text"), LineEdit, "x"),
    ],
)
def test_param_widget_matches_param(qtbot, param, kind, value):
    widget = _widget.param_widget(param)
    qtbot.addWidget(widget.native)
    assert isinstance(widget, kind)
    assert widget.name == param.name and widget.tooltip == param.help
    assert widget.value == pytest.approx(value) if kind is FloatSpinBox else widget.value == value
    if param.low is not None:
        assert (widget.min, widget.max) == (param.low, param.high)


def test_parameter_controls_follow_the_method(qtbot, monkeypatch):
    def fill(image, mask, *, iterations, weight, exact, device):
        return image

    fake = Method(
        name="fake", fill=fill, summary="A test method", artifacts=("texture",), ndims=(2,),
        params=(
            Param("iterations", int, 10, "iterations", low=1, high=1000),
            Param("weight", float, 0.5, "weight", low=0.0, high=1.0),
            Param("exact", bool, False, "exact"),
            Param("device", str, "auto", "device", choices=("auto", "cpu", "cuda")),
        ),
        margin=lambda _p: 2, channel_independent=False,
    )
    monkeypatch.setitem(_registry._METHODS, "fake", fake)
    viewer = ViewerModel()
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.method.choices == tuple(m.name for m in list_methods())

    widget.method.value = "fake"
    assert [(w.name, type(w)) for w in widget.params] == [
        ("iterations", SpinBox), ("weight", FloatSpinBox), ("exact", CheckBox), ("device", ComboBox)
    ]
    assert widget.parameter_values() == {"iterations": 10, "weight": 0.5, "exact": False, "device": "auto"}
    # Only devices that exist are offered (this machine may or may not have CUDA).
    assert {"auto", "cpu"} <= set(widget.params["device"].choices) <= {"auto", "cpu", "cuda", "mps"}
    assert "A test method" in widget.summary.value and "texture" in widget.summary.value
    assert VOLUME not in widget.scope.choices  # fake is 2D only

    for method in list_methods():
        widget.method.value = method.name
        assert [w.name for w in widget.params] == [p.name for p in method.params]
        assert widget.parameter_values() == {p.name: p.default for p in method.params}
        assert (VOLUME in widget.scope.choices) == (3 in method.ndims)
        assert {PLANE, STACK} <= set(widget.scope.choices)
        if method.needs_download:  # the weights' licence and cache state are shown before a run
            assert napari_inpaint.models.get_model(method.name).licence in widget.summary.value


def test_layer_choices_follow_the_viewer(qtbot):
    viewer = ViewerModel()
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.image.choices == () and widget.mask.choices == ()
    image = viewer.add_image(np.zeros((16, 16)), name="a")
    points = viewer.add_points([[3, 3]], name="p")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="l")
    assert widget.image.choices == (image,)
    assert [layer.name for layer in widget.mask.choices] == ["p", "l"]
    widget.mask.value = points
    shown = widget.native
    assert widget.radius.native.isVisibleTo(shown) and not widget.mask_label.native.isVisibleTo(shown)
    image.name = "renamed"
    assert widget.image.native.itemText(0) == "renamed"
    assert widget.scope.choices == (STACK,)  # a 2D image has one scope


# -- masks from layers ---------------------------------------------------------------


def test_layer_mask_from_labels_shapes_points():
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((3, 40, 50), np.float32), scale=(1, 2, 2), translate=(0, 10, 10))
    labels = np.zeros((3, 40, 50), np.uint8)
    labels[1, 5:8, 5:9] = 2
    labels[2, 0, 0] = 1
    layer = viewer.add_labels(labels, scale=(1, 2, 2), translate=(0, 10, 10))
    assert (layer_mask(layer, image) == (labels > 0)).all()
    assert (layer_mask(layer, image, label=2) == (labels == 2)).all()

    # Shapes in world units (scale 1): a rectangle from world 20..40 is image pixels 5..15 on plane 0.
    corners = np.array([[0, 20, 20], [0, 40, 20], [0, 40, 40], [0, 20, 40]])
    shapes = viewer.add_shapes([corners], shape_type="rectangle")
    mask = layer_mask(shapes, image)
    expected = np.zeros(mask.shape, bool)
    expected[0, 5:16, 5:16] = True
    assert (mask == expected).all()
    # A 2D shapes layer gives one plane mask for every plane.
    flat = viewer.add_shapes([corners[:, 1:]], shape_type="polygon")
    assert (layer_mask(flat, image) == expected[0]).all()

    points = viewer.add_points([[1, 30, 40]], scale=(1, 2, 2), translate=(0, 10, 10))
    disk = layer_mask(points, image, radius=2)
    assert disk.shape == (3, 40, 50) and disk.sum() == 13 and disk[1, 30, 40]
    assert not disk[[0, 2]].any()

    wrong = viewer.add_labels(np.zeros((7, 7), np.uint8))
    with pytest.raises(ValueError, match="same grid"):
        layer_mask(wrong, image)
    with pytest.raises(TypeError, match="Labels, Shapes or Points"):
        layer_mask(image, image)


@pytest.mark.parametrize("kind", ["labels", "shapes", "points"])
def test_inpaint_with_each_mask_kind(qtbot, kind):
    viewer = ViewerModel()
    truth = _ramp()
    damaged = truth.copy()
    if kind == "labels":
        damaged[_hole() > 0] = 1000
        mask = viewer.add_labels(_hole())
    elif kind == "shapes":
        damaged[10:21, 20:31] = 1000
        mask = viewer.add_shapes([[[10, 20], [20, 20], [20, 30], [10, 30]]], shape_type="rectangle")
    else:
        damaged[13:18, 23:28] = 1000
        mask = viewer.add_points([[15, 25]])
    image = viewer.add_image(damaged, name="ramp")
    widget = _inpaint_widget(qtbot, viewer, image, mask)
    widget.radius.value = 3
    _run(qtbot, widget)
    out = viewer.layers["ramp inpainted"].data
    # Harmonic filling reproduces a linear ramp: every damaged pixel is back to the truth.
    np.testing.assert_allclose(out, truth, atol=1e-3)
    assert out.dtype == np.float32
    assert (image.data == damaged).all()  # the source is untouched


# -- the output layer ------------------------------------------------------------------


def test_output_layer_properties_metadata_and_rerun(qtbot):
    viewer = ViewerModel()
    stack = np.stack([_ramp(dtype=np.uint16) * (i + 1) for i in range(3)])
    hole = _hole()
    damaged = stack.copy()
    damaged[:, hole > 0] = 0
    spatial = {
        "scale": (2.0, 0.5, 0.5), "translate": (1.0, -3.0, 4.0), "rotate": 30.0,
        "shear": (0.1, 0.0, 0.0), "units": ("um", "nm", "nm"), "axis_labels": ("z", "y", "x"),
    }
    image = viewer.add_image(
        damaged, name="cells", colormap="magma", contrast_limits=(5, 900), blending="additive",
        gamma=0.8, metadata={"acquisition": "test"}, **spatial,
    )
    mask = viewer.add_labels(hole, name="hole", scale=(0.5, 0.5))
    widget = _inpaint_widget(qtbot, viewer, image, mask)
    widget.overlay.value = True
    widget.dilate.value = 1
    reported = []
    widget.progress.changed.connect(reported.append)
    _run(qtbot, widget)
    assert max(reported) >= 1  # the engine's progress reached the bar

    out = viewer.layers["cells inpainted"]
    assert out.data.dtype == np.uint16 and out.data.shape == stack.shape
    dilated = napari_inpaint._detect.dilate_mask(hole > 0, 1)
    assert (out.data[:, ~dilated] == damaged[:, ~dilated]).all()
    np.testing.assert_allclose(out.data[:, hole > 0], stack[:, hole > 0], atol=1)
    for name in ("scale", "translate", "rotate", "shear", "affine"):
        np.testing.assert_allclose(np.asarray(getattr(out, name)), np.asarray(getattr(image, name)))
    assert out.units == image.units and out.axis_labels == image.axis_labels
    assert out.colormap.name == "magma" and tuple(out.contrast_limits) == (5, 900)
    assert out.blending == "additive" and out.gamma == pytest.approx(0.8) and not out.rgb
    assert out.metadata["acquisition"] == "test"
    meta = out.metadata["napari_inpaint"]
    assert meta["method"] == "harmonic" and meta["parameters"] == {} and meta["mask_layer"] == "hole"
    assert meta["dilate"] == 1 and meta["scope"] == STACK and meta["source"] == "cells"
    assert meta["version"] == napari_inpaint.__version__ and "T" in meta["time"]
    overlay = viewer.layers["cells inpainted pixels"]
    assert (overlay.data.astype(bool) == np.broadcast_to(dilated, stack.shape)).all()
    np.testing.assert_allclose(overlay.scale, image.scale)

    # A rerun replaces the output layer's data and provenance; the source never changes.
    count = len(viewer.layers)
    widget.method.value = "biharmonic"
    widget.dilate.value = 0
    _run(qtbot, widget)
    assert len(viewer.layers) == count and viewer.layers["cells inpainted"] is out
    assert out.metadata["napari_inpaint"]["method"] == "biharmonic"
    assert (out.data[:, ~(hole > 0)] == damaged[:, ~(hole > 0)]).all()
    assert (image.data == damaged).all()


def test_current_plane_scope_fills_only_the_plane_on_screen(qtbot):
    viewer = ViewerModel()
    stack = np.stack([_ramp() + 100 * i for i in range(4)])
    damaged = stack.copy()
    damaged[:, 10:20, 20:30] = -5
    image = viewer.add_image(damaged, name="s")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole()))
    widget.scope.value = PLANE
    viewer.dims.set_current_step(0, 2)
    _run(qtbot, widget)
    out = viewer.layers["s inpainted"].data
    np.testing.assert_allclose(out[2], stack[2], atol=1e-3)
    assert (out[[0, 1, 3]] == damaged[[0, 1, 3]]).all()
    assert viewer.layers["s inpainted"].metadata["napari_inpaint"]["plane"] == [2]


def test_volume_scope_and_rgb(qtbot):
    viewer = ViewerModel()
    volume = np.broadcast_to(_ramp()[None], (6, 48, 64)) + np.arange(6)[:, None, None] * 5.0
    damaged = volume.copy()
    damaged[2:4, 10:20, 20:30] = 0
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:4, 10:20, 20:30] = 1
    image = viewer.add_image(damaged, name="vol")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(labels))
    widget.scope.value = VOLUME
    _run(qtbot, widget)
    np.testing.assert_allclose(viewer.layers["vol inpainted"].data, volume, atol=1e-3)

    rgb = (np.stack([_ramp(), _ramp() * 0.5, _ramp() * 0.25], axis=-1) % 256).astype(np.uint8)
    bad = rgb.copy()
    bad[_hole() > 0] = 255
    source = viewer.add_image(bad, name="rgb", rgb=True)
    widget.image.value, widget.mask.value = source, viewer.add_labels(_hole())
    _run(qtbot, widget)
    out = viewer.layers["rgb inpainted"]
    assert out.rgb and out.data.dtype == np.uint8 and out.data.shape == rgb.shape
    assert (out.data[_hole() == 0] == bad[_hole() == 0]).all()
    assert not (out.data[_hole() > 0] == 255).all()


# -- errors and cancellation ---------------------------------------------------------------


def test_errors_are_notified(qtbot, notes):
    viewer = ViewerModel()
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.run() is None and "needs an image layer" in notes["error"][-1]

    image = viewer.add_image(_ramp(), name="img")
    empty = viewer.add_labels(np.zeros((48, 64), np.uint8), name="empty")
    widget.image.value, widget.mask.value = image, empty
    assert widget.run() is None and "is empty" in notes["error"][-1]

    widget.mask.value = viewer.add_labels(np.ones((5, 5), np.uint8), name="small")
    assert widget.run() is None and "same grid" in notes["error"][-1]

    # The engine's own message reaches the user: NaN outside the mask.
    data = _ramp()
    data[0, 0] = np.nan
    widget.image.value, widget.mask.value = viewer.add_image(data, name="nan"), viewer.add_labels(_hole())
    _run(qtbot, widget)
    assert notes["error"][-1].startswith("Inpainting failed:") and "NaN" in notes["error"][-1]
    assert "nan inpainted" not in viewer.layers
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_cancel_leaves_no_output(qtbot, notes):
    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    stack = rng.random((150, 96, 96)).astype(np.float32)
    labels = (rng.random(stack.shape) < 0.02).astype(np.uint8)  # a different mask on every plane
    image = viewer.add_image(stack, name="big")
    mask = viewer.add_labels(labels, name="labels")
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="biharmonic")
    widget.run_button.native.click()
    assert widget.cancel_button.enabled and not widget.run_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert notes["info"] and "cancelled" in notes["info"][-1] and not notes["error"]
    assert [layer.name for layer in viewer.layers] == ["big", "labels"]
    assert widget.run_button.enabled and widget.progress.value == 0


# -- mask from image ---------------------------------------------------------------------


def test_mask_from_image_widget(qtbot, notes):
    viewer = ViewerModel()
    rng = np.random.default_rng(1)
    stack = rng.normal(1000, 20, (2, 64, 64)).astype(np.float32)
    stack[0, 5, 7] = 4000
    stack[1, 30, 30] = np.nan
    stack[1, 40:44, 40:44] = 9000
    image = viewer.add_image(stack, name="raw", scale=(1, 0.3, 0.3))
    widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.outliers.value = True
    widget.above.value = "5000"
    _run(qtbot, widget)
    labels = viewer.layers["raw mask"]
    expected = np.zeros(stack.shape, bool)
    expected[0, 5, 7] = expected[1, 30, 30] = True
    expected[1, 40:44, 40:44] = True
    assert (labels.data.astype(bool) == expected).all()
    np.testing.assert_allclose(labels.scale, image.scale)
    assert viewer.layers.selection.active is labels and "18 pixels" in widget.result.value

    # Re-running replaces the layer; small components are dropped before dilation.
    widget.min_size.value, widget.dilate.value = 2, 1
    _run(qtbot, widget)
    assert viewer.layers["raw mask"] is labels and len(viewer.layers) == 2
    assert not labels.data[0].any() and labels.data[1, 39:45, 39:45].sum() == 32

    widget.below.value = "low"
    assert widget.run() is None and "'below' must be a number" in notes["error"][-1]


# -- sample data, console helpers and manifest ---------------------------------------------


def test_sample_data_marks_every_artifact():
    clean, damaged, labels = damaged_cell()
    assert damaged.dtype == np.uint8 and labels.shape == damaged.shape
    assert set(np.unique(labels)) == {0, *LABELS.values()}
    assert (damaged[labels == 0] == clean[labels == 0]).all()
    hot = labels == LABELS["hot pixels"]
    assert (damaged[hot] == 255).all()
    (image, image_meta, image_kind), (mask, _, mask_kind) = make_sample_data()
    assert (image_kind, mask_kind) == ("image", "labels")
    assert (image == damaged).all() and (mask == labels).all()
    assert image_meta["name"] == "damaged cell"


def test_console_helpers_reproduce_the_widget():
    viewer = ViewerModel()
    (image, image_meta, _), (labels, labels_meta, _) = make_sample_data()
    layer = viewer.add_image(image, **image_meta)
    mask = layer_mask(viewer.add_labels(labels, **labels_meta), layer, label=LABELS["hot pixels"])
    filled = inpaint(layer.data, mask, method="harmonic")
    out = add_result(viewer, layer, filled, make_provenance(layer, "harmonic", {}, mask_layer="damage"))
    clean, _, _ = damaged_cell()
    hot = labels == LABELS["hot pixels"]
    assert out.name == "damaged cell inpainted" and out.metadata["napari_inpaint"]["mask_layer"] == "damage"
    assert (out.data[~hot] == image[~hot]).all()
    # Filled hot pixels are far closer to the clean image than the saturated values were.
    error = np.abs(out.data[hot].astype(int) - clean[hot]).mean()
    assert error < 0.2 * np.abs(image[hot].astype(int) - clean[hot]).mean()
    detected = add_mask(viewer, layer, mask_from_image(layer.data, saturated=True))
    assert detected.name == "damaged cell mask" and (detected.data.astype(bool) == (image == 255)).all()


def test_manifest_is_valid():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-inpaint")
    manifest.validate_imports()
    contributions = manifest.contributions
    names = {w.display_name for w in contributions.widgets}
    assert names == {"Inpaint", "Mask from image", "Compare methods"}
    assert [s.key for s in contributions.sample_data] == ["damaged_cell"]
    filter_menu = [item.command for item in contributions.menus["napari/layers/filter"]]
    assert filter_menu == [w.command for w in contributions.widgets]


def test_user_guide_artifact_table_is_current():
    """The guide's method table must match the method records; on failure, paste the printed table."""
    rows = ["| Artifact | Methods that suit it |", "| --- | --- |"]
    for key, text in ARTIFACTS.items():
        names = [m.name for m in list_methods() if key in m.artifacts]
        rows.append(f"| {text} (`{key}`) | {', '.join(f'`{n}`' for n in names) or '-'} |")
    table = "\n".join(rows)
    guide = (Path(__file__).resolve().parents[1] / "docs" / "user-guide.md").read_text()
    assert table in guide, "docs/user-guide.md needs this table:\n" + table


def test_console_helper_adds_the_result_like_the_widget():
    from napari_inpaint import inpaint_layer

    viewer = ViewerModel()
    image = np.tile(np.arange(32, dtype=np.uint16), (32, 1))
    labels = np.zeros(image.shape, np.uint8)
    labels[10:14, 8:20] = 1
    source = viewer.add_image(image, name="img", scale=(2, 0.5), translate=(3, 4))
    viewer.add_labels(labels, name="bad")
    result = inpaint_layer(viewer, "img", "bad", "harmonic")
    assert result.name == "img inpainted" and result.data.dtype == np.uint16
    np.testing.assert_array_equal(result.data, image)  # a ramp is filled exactly
    np.testing.assert_array_equal(result.scale, source.scale)
    np.testing.assert_array_equal(result.translate, source.translate)
    assert result.metadata["napari_inpaint"]["method"] == "harmonic"
    assert result.metadata["napari_inpaint"]["mask_layer"] == "bad"
    inpaint_layer(viewer, "img", "bad", "biharmonic")  # a rerun replaces, never adds
    assert [layer.name for layer in viewer.layers] == ["img", "bad", "img inpainted"]
    assert viewer.layers["img inpainted"].metadata["napari_inpaint"]["method"] == "biharmonic"


def test_dask_layer_gives_a_lazy_result(qtbot):
    da = pytest.importorskip("dask.array")
    stack = np.tile(np.arange(32, dtype=np.uint16), (6, 32, 1))
    labels = np.zeros((32, 32), np.uint8)
    labels[10:14, 8:20] = 1
    viewer = ViewerModel()
    viewer.add_image(da.from_array(stack, chunks=(1, 32, 32)), name="lazy")
    viewer.add_labels(labels, name="bad")
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value, widget.mask.value, widget.method.value = viewer.layers["lazy"], viewer.layers["bad"], "harmonic"
    _run(qtbot, widget)
    result = viewer.layers["lazy inpainted"].data
    assert isinstance(result, da.Array)
    np.testing.assert_array_equal(np.asarray(result), stack)  # a ramp is filled exactly


# -- compare methods ---------------------------------------------------------------------


def _compare_widget(qtbot, viewer, image, methods=("harmonic", "biharmonic"), ratios="0.15"):
    widget = CompareMethodsWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value = image
    widget.methods.value, widget.kinds.value, widget.ratios.value = list(methods), ["strokes"], ratios
    return widget


def _texture(shape=(64, 64)) -> np.ndarray:
    """A smooth random uint8 image: no method fills it exactly, so the scores differ."""
    from scipy import ndimage as ndi

    noise = ndi.gaussian_filter(np.random.default_rng(3).random(shape), 3)
    return np.round(255 * (noise - noise.min()) / np.ptp(noise)).astype(np.uint8)


def test_compare_widget_scores_plots_and_adds_layers(qtbot, notes, tmp_path):
    from napari_inpaint.metrics import data_range_of, psnr

    viewer = ViewerModel()
    data = _texture()
    source = viewer.add_image(data, name="img", scale=(0.5, 0.25), translate=(3, 4))
    widget = _compare_widget(qtbot, viewer, source)
    _run(qtbot, widget)
    assert not notes["error"]
    table = widget.table
    assert [row["method"] for row in table.rows] == ["harmonic", "biharmonic"]
    assert all(row["n"] == 1 and row["psnr_hole"] > 10 for row in table.rows)
    assert widget.scores.value.startswith("method") and "biharmonic" in widget.scores.value
    if importlib.util.find_spec("matplotlib") is not None:
        lines = widget.canvas.figure.axes[0].lines
        assert [line.get_label() for line in lines] == ["harmonic", "biharmonic"]
        assert [line.get_ydata()[0] for line in lines] == [row["psnr_hole"] for row in table.rows]
        assert not widget.plot.native.isHidden() and widget.plot_note.native.isHidden()

    names = ["img", "img harmonic (compare)", "img biharmonic (compare)", "img holes (compare)"]
    assert [layer.name for layer in viewer.layers] == names
    hole = viewer.layers["img holes (compare)"].data.astype(bool)
    assert 0.1 < hole.mean() < 0.2
    for layer in viewer.layers[1:]:
        np.testing.assert_array_equal(layer.scale, source.scale)
        np.testing.assert_array_equal(layer.translate, source.translate)
    for name, trial in zip(("harmonic", "biharmonic"), table.trials):
        fill = viewer.layers[f"img {name} (compare)"]
        assert fill.metadata["napari_inpaint"]["comparison"]["mask"] == "strokes"
        assert (fill.data[~hole] == data[~hole]).all() and (fill.data[hole] != 0).any()
        # The example hole is the one the table scored.
        score = psnr(data, fill.data, mask=hole, data_range=data_range_of(data))
        assert score == pytest.approx(trial["psnr_hole"])

    # A rerun replaces the layers and drops those of methods no longer compared.
    kept = viewer.layers["img harmonic (compare)"]
    widget.methods.value = ["harmonic"]
    _run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == [names[0], names[1], names[3]]
    assert viewer.layers["img harmonic (compare)"] is kept and len(widget.table.rows) == 1

    # CSV: never replaces a file unless asked (by the save dialog, or overwrite=True).
    path = tmp_path / "scores.csv"
    assert widget.save_csv(path) == path and path.read_text() == widget.table.to_csv()
    path.write_text("mine")
    assert widget.save_csv(path) is None and "not replaced" in notes["error"][-1]
    assert path.read_text() == "mine"
    widget._ask_csv_path = lambda: str(path)
    widget.save_button.native.click()
    assert path.read_text() == widget.table.to_csv() and str(path) in notes["info"][-1]


def test_compare_widget_on_a_stack_plane_and_region(qtbot, notes):
    viewer = ViewerModel()
    stack = np.stack([_texture()] * 3)
    source = viewer.add_image(stack, name="stack", scale=(2, 1, 1))
    region = np.zeros((64, 64), np.uint8)
    region[8:56, 8:40] = 1
    viewer.add_labels(region, name="clean")
    viewer.dims.set_current_step(0, 1)
    widget = _compare_widget(qtbot, viewer, source, methods=["harmonic"])
    assert widget.region_marks.native.isHidden()  # shown only with a region
    widget.region.value = viewer.layers["clean"]
    assert not widget.region_marks.native.isHidden()
    _run(qtbot, widget)
    assert not notes["error"]
    holes = viewer.layers["stack holes (compare)"].data.astype(bool)
    fill = viewer.layers["stack harmonic (compare)"].data
    assert holes[1].any() and not holes[[0, 2]].any() and not (holes[1] & (region == 0)).any()
    assert fill.shape == stack.shape and (fill[[0, 2]] == stack[[0, 2]]).all() and (fill[1] != stack[1]).any()
    np.testing.assert_array_equal(viewer.layers["stack holes (compare)"].scale, source.scale)

    widget.region_marks.value = _widget.DAMAGED  # the region is avoided instead
    _run(qtbot, widget)
    holes = viewer.layers["stack holes (compare)"].data.astype(bool)
    assert holes[1].any() and not (holes[1] & (region == 1)).any()


def test_compare_widget_cancel(qtbot, notes):
    viewer = ViewerModel()
    image = viewer.add_image(_texture((128, 128)), name="img")
    widget = _compare_widget(qtbot, viewer, image)
    widget.repeats.value = 100  # seconds of work
    widget.run_button.native.click()
    assert widget.cancel_button.enabled and not widget.run_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert notes["info"] and "cancelled" in notes["info"][-1] and not notes["error"]
    assert [layer.name for layer in viewer.layers] == ["img"]
    assert widget.table is None and not widget.save_button.enabled and widget.run_button.enabled


def test_compare_widget_errors_are_notified(qtbot, notes):
    viewer = ViewerModel()
    widget = CompareMethodsWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.run() is None and "needs an image layer" in notes["error"][-1]
    assert widget.save_csv() is None and "Run a comparison first" in notes["error"][-1]

    widget = _compare_widget(qtbot, viewer, viewer.add_image(np.zeros((8, 8), np.float32), name="tiny"))
    widget.ratios.value = "0.1, 1.5"
    assert widget.run() is None and "between 0 and 1" in notes["error"][-1]
    widget.ratios.value, widget.methods.value = "0.1", []
    assert widget.run() is None and "at least one method" in notes["error"][-1]
    widget.methods.value = ["harmonic"]
    widget.region.value = viewer.add_labels(np.ones((5, 5), np.uint8), name="small")
    assert widget.run() is None and "same grid" in notes["error"][-1]
    widget.region.value = None
    _run(qtbot, widget)  # evaluate's own message reaches the user
    assert notes["error"][-1].startswith("Comparison failed:") and "16 pixels" in notes["error"][-1]
    assert [layer.name for layer in viewer.layers] == ["tiny", "small"]


def test_compare_widget_without_matplotlib_or_weights(qtbot, monkeypatch):
    from napari_inpaint.evaluate import default_methods

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_qtagg", None)  # import fails
    monkeypatch.setattr(napari_inpaint.models, "is_cached", lambda name: False)
    widget = CompareMethodsWidget(ViewerModel())
    qtbot.addWidget(widget.native)
    assert widget.canvas is None and not widget.plot_note.native.isHidden()
    downloads = [m.name for m in list_methods() if m.needs_download]
    assert not set(downloads) & set(widget.methods.choices)
    assert all(name in widget.methods.tooltip for name in downloads)
    assert widget.methods.value == default_methods()
    monkeypatch.setattr(napari_inpaint.models, "is_cached", lambda name: True)
    assert set(downloads) <= set(widget._method_choices())
