"""Logic tests of the napari widgets, on napari's ViewerModel (no OpenGL canvas needed)."""

import importlib.util
import sys

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox  # noqa: E402
from napari.components import ViewerModel  # noqa: E402
from napari.utils import notifications  # noqa: E402

import napari_inpaint  # noqa: E402
from napari_inpaint import Param, list_methods  # noqa: E402
from napari_inpaint.layers import COMPARE, DETECT, INPAINT, provenance_of  # noqa: E402
from napari_inpaint.detect import dilate_mask  # noqa: E402
from napari_inpaint.devices import DEVICE, device_choices  # noqa: E402
from napari_inpaint.widgets import CompareMethodsWidget, InpaintWidget, MaskFromImageWidget  # noqa: E402
from napari_inpaint.widgets._common import param_widget  # noqa: E402
from napari_inpaint.widgets.compare import DAMAGED  # noqa: E402
from napari_inpaint.widgets.inpaint import PLANE, STACK, VOLUME  # noqa: E402

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
    monkeypatch.setattr(notifications, "show_error", seen["error"].append)
    monkeypatch.setattr(notifications, "show_info", seen["info"].append)
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
        (Param("near", str, "y", "a suggestion", suggestions=lambda: ["x", "y"]), ComboBox, "y"),
        (Param("far", str, "z", "an unlisted default", suggestions=lambda: ["x", "y"]), ComboBox, "x"),
        (Param("text", str, "x", "free text"), LineEdit, "x"),
        (Param("none", str, "x", "nothing to suggest now", suggestions=list), LineEdit, "x"),
    ],
)
def test_param_widget_matches_param(qtbot, param, kind, value):
    widget = param_widget(param)
    qtbot.addWidget(widget.native)
    assert isinstance(widget, kind)
    assert widget.name == param.name and widget.tooltip == param.help
    assert widget.value == pytest.approx(value) if kind is FloatSpinBox else widget.value == value
    if param.low is not None:
        assert (widget.min, widget.max) == (param.low, param.high)
    if kind is ComboBox:
        assert list(widget.choices) == list(param.suggestions() if param.suggestions else param.choices)


TOY_PARAMS = (
    Param("iterations", int, 10, "iterations", low=1, high=1000),
    Param("weight", float, 0.5, "weight", low=0.0, high=1.0),
    Param("exact", bool, False, "exact"),
    Param("flavour", str, "b", "a listed choice", choices=("a", "b", "c")),
    Param("place", str, "here", "a value suggested now", suggestions=lambda: ["there", "here"]),
    DEVICE,
)


def _known_mean(image, mask):
    """A toy fill: the mean known value in every masked pixel."""
    out = image.copy()
    out[mask] = image[~mask].mean(axis=0)
    return out


def _damaged_ramp():
    """A ramp whose hole holds an outlier: a layer "ramp" and a Labels mask in a new viewer."""
    damaged = _ramp()
    damaged[_hole() > 0] = -1000
    viewer = ViewerModel()
    return viewer, viewer.add_image(damaged, name="ramp"), viewer.add_labels(_hole())


def test_a_registered_method_gets_its_controls_and_fills(qtbot, register_method):
    calls = []

    @register_method("toy", summary="A test method", artifacts=("texture",), params=TOY_PARAMS)
    def fill(image, mask, *, iterations=10, weight=0.5, exact=False, flavour="b", place="here",
             device="auto"):
        calls.append({key: value for key, value in locals().items() if key in {p.name for p in TOY_PARAMS}})
        return _known_mean(image, mask)

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="toy")
    assert widget.method.choices == tuple(m.name for m in list_methods()) and "toy" in widget.method.choices
    assert [(w.name, type(w)) for w in widget.params] == [
        ("iterations", SpinBox), ("weight", FloatSpinBox), ("exact", CheckBox), ("flavour", ComboBox),
        ("place", ComboBox), ("device", ComboBox),
    ]
    assert widget.parameter_values() == {p.name: p.default for p in TOY_PARAMS}
    assert (widget.params["iterations"].min, widget.params["iterations"].max) == (1, 1000)
    assert widget.params["flavour"].choices == ("a", "b", "c")
    assert widget.params["place"].choices == ("there", "here")
    # Only devices that exist are offered (this machine may or may not have a GPU).
    assert list(widget.params["device"].choices) == device_choices()
    assert "A test method" in widget.summary.value and "texture" in widget.summary.value

    widget.params["iterations"].value, widget.params["weight"].value = 3, 0.25
    widget.params["flavour"].value, widget.params["place"].value = "c", "there"
    _run(qtbot, widget)
    out, hole = viewer.layers["ramp inpainted"].data, _hole() > 0
    # One value, the mean of the known pixels around the hole, fills every masked pixel; the rest is kept.
    filled = np.unique(out[hole])
    assert len(filled) == 1 and image.data[~hole].min() < filled[0] < image.data[~hole].max()
    assert (out[~hole] == image.data[~hole]).all()
    used = dict(iterations=3, weight=0.25, exact=False, flavour="c", place="there", device="auto")
    assert calls == [used] and provenance_of(viewer.layers["ramp inpainted"]).parameters == used


def test_parameter_controls_follow_the_method(qtbot):
    viewer = ViewerModel()
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    for method in list_methods():
        widget.method.value = method.name
        assert [w.name for w in widget.params] == [p.name for p in method.params]
        assert widget.parameter_values() == {p.name: p.default for p in method.params}
        assert (VOLUME in widget.scope.choices) == (3 in method.ndims)
        assert {PLANE, STACK} <= set(widget.scope.choices)
        for name in method.weights:  # each weight's licence and cache state are shown before a run
            assert f"{name} ({napari_inpaint.models.get_model(name).licence}, " in widget.summary.value


def test_weights_are_the_methods_records(qtbot, register_method, monkeypatch):
    """A method's downloads are its ``weights``, whatever their names: noted, fetched, needed by Compare."""

    register_method("toy-net", family="pretrained", weights=("lama", "migan"))(_known_mean)
    cached, fetched = {"lama"}, []
    monkeypatch.setattr(napari_inpaint.models, "is_cached", lambda name: name in cached)
    monkeypatch.setattr(napari_inpaint.models, "fetch", lambda name, progress=None: fetched.append(name))
    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="toy-net")
    summary = widget.summary.value
    assert "lama (" in summary and ", cached)" in summary and "migan (" in summary and "first run" in summary
    _run(qtbot, widget)
    assert fetched == ["lama", "migan"]
    assert (viewer.layers["ramp inpainted"].data[_hole() > 0] > 0).all()  # filled from the known pixels

    compare = CompareMethodsWidget(viewer)
    qtbot.addWidget(compare.native)
    assert "toy-net" not in compare._method_choices() and "toy-net" in compare.methods.tooltip
    cached.add("migan")
    assert "toy-net" in compare._method_choices()


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


# -- the output layer and scopes (NumPy and dask) ------------------------------------------


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
    dilated = dilate_mask(hole > 0, 1)
    assert (out.data[:, ~dilated] == damaged[:, ~dilated]).all()
    np.testing.assert_allclose(out.data[:, hole > 0], stack[:, hole > 0], atol=1)
    for name in ("scale", "translate", "rotate", "shear", "affine"):
        np.testing.assert_allclose(np.asarray(getattr(out, name)), np.asarray(getattr(image, name)))
    assert out.units == image.units and out.axis_labels == image.axis_labels
    assert out.colormap.name == "magma" and tuple(out.contrast_limits) == (5, 900)
    assert out.blending == "additive" and out.gamma == pytest.approx(0.8) and not out.rgb
    assert out.metadata["acquisition"] == "test"
    made = provenance_of(out)
    assert made is out.metadata["napari_inpaint"] and made.made_by == INPAINT
    assert made.method == "harmonic" and made.parameters == {} and made.mask_layer == "hole"
    assert made.details["dilate"] == 1 and made.details["scope"] == STACK and made.source == "cells"
    assert made.version == napari_inpaint.__version__ and "T" in made.time
    overlay = viewer.layers["cells inpainted pixels"]
    assert (overlay.data.astype(bool) == np.broadcast_to(dilated, stack.shape)).all()
    np.testing.assert_allclose(overlay.scale, image.scale)
    assert provenance_of(overlay) is made

    # A rerun replaces the output layer's data and provenance; the source never changes.
    count = len(viewer.layers)
    widget.method.value = "biharmonic"
    widget.dilate.value = 0
    _run(qtbot, widget)
    assert len(viewer.layers) == count and viewer.layers["cells inpainted"] is out
    assert provenance_of(out).method == "biharmonic"
    assert (out.data[:, ~(hole > 0)] == damaged[:, ~(hole > 0)]).all()
    assert (image.data == damaged).all()


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
def test_current_plane_scope_fills_only_the_plane_on_screen(qtbot, lazy):
    da = pytest.importorskip("dask.array")
    import dask

    ramp = np.tile(np.arange(64, dtype=np.float32), (64, 1))
    planes = np.stack([ramp + 100 * i for i in range(40)])
    damaged = planes.copy()
    damaged[:, _hole((64, 64)) > 0] = -7
    read = []  # the planes of the dask stack computed, one chunk each

    def plane(i: int) -> np.ndarray:
        read.append(i)
        return damaged[i]

    data = da.stack([da.from_delayed(dask.delayed(plane)(i), (64, 64), np.float32) for i in range(40)])
    viewer = ViewerModel()
    image = viewer.add_image(data if lazy else damaged, name="s", contrast_limits=(0, 4000))
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole((64, 64))))
    viewer.dims.set_current_step(0, 7)
    widget.scope.value = PLANE
    read.clear()
    _run(qtbot, widget)  # fills plane 7, adds the result layer and shows its plane 7
    assert set(read) == ({7} if lazy else set())
    result = viewer.layers["s inpainted"].data
    assert isinstance(result, da.Array) == lazy and result.shape == damaged.shape
    np.testing.assert_allclose(np.asarray(result[7]), planes[7], atol=1e-3)  # a ramp is filled exactly
    np.testing.assert_array_equal(np.asarray(result[[0, 39]]), damaged[[0, 39]])  # other planes as they were
    assert provenance_of(viewer.layers["s inpainted"]).details["plane"] == [7]

    # Compare reads the plane on screen only, and its example layers hold that plane only.
    read.clear()
    compare = _compare_widget(qtbot, viewer, image, methods=["harmonic"])
    _run(qtbot, compare)
    assert set(read) <= {7} and viewer.layers["s harmonic (compare)"].data.shape == (64, 64)

    # The whole stack of a dask layer gives a lazy result, filled as napari shows each plane.
    widget.scope.value = STACK
    read.clear()
    _run(qtbot, widget)
    result = viewer.layers["s inpainted"].data
    assert isinstance(result, da.Array) == lazy and set(read) <= {7}
    np.testing.assert_allclose(np.asarray(result), planes, atol=1e-3)


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
    made = provenance_of(labels)
    assert (made.made_by, made.source) == (DETECT, "raw") and made.parameters == widget.detection_options()
    assert made.parameters["above"] == 5000.0 and made.parameters["outliers"] is True

    # Re-running replaces the layer; small components are dropped before dilation.
    widget.min_size.value, widget.dilate.value = 2, 1
    _run(qtbot, widget)
    assert viewer.layers["raw mask"] is labels and len(viewer.layers) == 2
    assert not labels.data[0].any() and labels.data[1, 39:45, 39:45].sum() == 32

    widget.below.value = "low"
    assert widget.run() is None and "'below' must be a number" in notes["error"][-1]


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
        made = provenance_of(fill)
        assert (made.made_by, made.method, made.source) == (COMPARE, name, "img")
        assert (made.details["mask"], made.details["ratio"], made.details["seed"]) == ("strokes", 0.15, 0)
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
    stack = np.stack([_texture(), _texture()[::-1], _texture().T])
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
    # The example layers hold the compared plane only, placed over the stack.
    holes = viewer.layers["stack holes (compare)"].data.astype(bool)
    fill = viewer.layers["stack harmonic (compare)"]
    assert holes.shape == fill.data.shape == stack.shape[1:]
    assert holes.any() and not (holes & (region == 0)).any()
    known = ~holes & (region == 1)  # pixels outside the clean region are filled too
    assert (fill.data[known] == stack[1][known]).all() and (fill.data[holes] != stack[1][holes]).any()
    assert provenance_of(fill).details["plane"] == [1]
    for name in ("stack holes (compare)", "stack harmonic (compare)"):
        np.testing.assert_array_equal(viewer.layers[name].scale, source.scale[1:])
        np.testing.assert_array_equal(viewer.layers[name].translate, source.translate[1:])

    widget.region_marks.value = DAMAGED  # the region is avoided instead
    _run(qtbot, widget)
    holes = viewer.layers["stack holes (compare)"].data.astype(bool)
    assert holes.any() and not (holes & (region == 1)).any()


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
