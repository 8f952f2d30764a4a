"""Logic tests of the napari widgets, on napari's ViewerModel (no OpenGL canvas needed)."""

import importlib.util
import sys
import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from napari.components import ViewerModel
from napari.utils import notifications
from test_reference import _drifting_stack

import napari_inpaint
from napari_inpaint import Param, get_method, list_methods
from napari_inpaint.detect import dilate_mask
from napari_inpaint.engine.reference import ADJACENT
from napari_inpaint.models.devices import DEVICE, device_choices
from napari_inpaint.napari.layers import COMPARE, DETECT, INPAINT, provenance_of
from napari_inpaint.napari.widgets import CompareMethodsWidget, InpaintWidget, MaskFromImageWidget
from napari_inpaint.napari.widgets import _common as widget_common
from napari_inpaint.napari.widgets._common import SETTINGS_ENV, param_widget
from napari_inpaint.napari.widgets.compare import DAMAGED
from napari_inpaint.napari.widgets.inpaint import NO_REFERENCE, PLANE, STACK, VOLUME

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


@pytest.fixture(autouse=True)
def settings_folder(monkeypatch, tmp_path):
    """Each test starts from the default settings, remembered in a folder of its own."""
    folder = tmp_path / "settings"
    monkeypatch.setenv(SETTINGS_ENV, str(folder))
    return folder


class Questions(list):
    """The questions the widgets asked (their texts), all answered with ``answer``."""

    answer = True

    def __call__(self, parent, title: str, text: str) -> bool:
        self.append(text)
        return self.answer


@pytest.fixture(autouse=True)
def questions(monkeypatch) -> Questions:
    """No dialog blocks a test: the widgets' questions are recorded and answered."""
    asked = Questions()
    monkeypatch.setattr(widget_common, "ask", asked)
    return asked


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
    Param("exact", bool, False, "exact", advanced=True),
    Param("flavour", str, "b", "a listed choice", choices=("a", "b", "c"), advanced=True),
    Param("place", str, "here", "a value suggested now", suggestions=lambda: ["there", "here"], advanced=True),
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
    # The parameters marked advanced are folded under "Advanced".
    assert [(w.name, type(w)) for w in widget.params] == [
        ("iterations", SpinBox), ("weight", FloatSpinBox), ("device", ComboBox),
    ]
    assert [(w.name, type(w)) for w in widget.advanced] == [
        ("exact", CheckBox), ("flavour", ComboBox), ("place", ComboBox),
    ]
    assert not widget._advanced_box.native.isHidden() and not widget.advanced_section.isExpanded()
    assert widget.parameter_values() == {p.name: p.default for p in TOY_PARAMS}
    assert (widget.params["iterations"].min, widget.params["iterations"].max) == (1, 1000)
    assert widget.param_control("flavour").choices == ("a", "b", "c")
    assert widget.param_control("place").choices == ("there", "here")
    # Only devices that exist are offered (this machine may or may not have a GPU).
    assert list(widget.param_control("device").choices) == device_choices()
    assert "A test method" in widget.summary.value and "texture" in widget.summary.value

    widget.params["iterations"].value, widget.params["weight"].value = 3, 0.25
    widget.param_control("flavour").value, widget.param_control("place").value = "c", "there"
    _run(qtbot, widget)
    out, hole = viewer.layers["ramp inpainted"].data, _hole() > 0
    # One value, the mean of the known pixels around the hole, fills every masked pixel; the rest is kept.
    filled = np.unique(out[hole])
    assert len(filled) == 1 and image.data[~hole].min() < filled[0] < image.data[~hole].max()
    assert (out[~hole] == image.data[~hole]).all()
    used = {"iterations": 3, "weight": 0.25, "exact": False, "flavour": "c", "place": "there", "device": "auto"}
    assert calls == [used] and provenance_of(viewer.layers["ramp inpainted"]).parameters == used


def test_parameter_controls_follow_the_method(qtbot):
    viewer = ViewerModel()
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    for method in list_methods():
        widget.method.value = method.name
        shown = [p.name for p in method.params if not p.advanced] + [p.name for p in method.params if p.advanced]
        assert [w.name for w in [*widget.params, *widget.advanced]] == shown
        assert widget._advanced_box.native.isHidden() == (len(method.params) <= 3)
        assert widget.parameter_values() == {p.name: p.default for p in method.params}
        assert (VOLUME in widget.scope.choices) == (3 in method.ndims)
        assert {PLANE, STACK} <= set(widget.scope.choices)
        for name in method.weights:  # each weight's licence and cache state are shown before a run
            assert f"{name} ({napari_inpaint.models.get_model(name).licence}, " in widget.summary.value


def test_weights_are_the_methods_records(qtbot, register_method, monkeypatch, questions):
    """A method's downloads are its ``weights``, whatever their names: noted, fetched, needed by Compare."""

    register_method("toy-net", family="pretrained", weights=("lama", "migan"))(_known_mean)
    cached, fetched = {"lama"}, []
    monkeypatch.setattr(napari_inpaint.models, "is_cached", lambda name: name in cached)
    monkeypatch.setattr(napari_inpaint.models, "fetch", lambda name, progress=None: fetched.append(name))
    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="toy-net")
    summary = widget.summary.value
    assert "lama (" in summary and ", cached)" in summary and "migan (" in summary and "first run" in summary
    # A large download is confirmed first (size, licence, cache folder); declined, nothing runs.
    questions.answer = False
    assert widget.run() is None and fetched == [] and "ramp inpainted" not in viewer.layers
    size = napari_inpaint.models.get_model("migan").size
    assert f"migan: {size / 2**20:.0f} MiB, licence MIT" in questions[-1]
    assert str(napari_inpaint.models.cache_dir()) in questions[-1] and "lama" not in questions[-1]
    assert "not downloaded" in widget.status.value
    questions.answer = True
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
    overlay = viewer.layers["cells inpainted pixels"]  # the 2D mask, shown on every plane
    assert (overlay.data.astype(bool) == dilated).all()
    np.testing.assert_allclose(overlay.scale, image.scale[1:])
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
    assert set(read) <= {7} and viewer.layers["harmonic (compare)"].data.shape == (64, 64)

    # The whole stack of a dask layer gives a lazy result, filled as napari shows each plane.
    widget.scope.value = STACK
    read.clear()
    _run(qtbot, widget)
    result = viewer.layers["s inpainted"].data
    assert isinstance(result, da.Array) == lazy and set(read) <= {7}
    # A lazy result is not filled yet, and the status line says so.
    assert widget.status.value.startswith("Ready to fill" if lazy else "Filled"), widget.status.value
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


# -- reference data ------------------------------------------------------------------------


def _lazy_stack(planes: np.ndarray, read: list):
    """A dask stack of ``planes``, one chunk per plane, that records in ``read`` the planes computed."""
    da = pytest.importorskip("dask.array")
    import dask

    def plane(i: int) -> np.ndarray:
        read.append(i)
        return planes[i]

    shape = planes.shape[1:]
    lazy = [da.from_delayed(dask.delayed(plane)(i), shape, planes.dtype) for i in range(len(planes))]
    return da.stack(lazy)


def _hole_error(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    return float(np.abs(filled[hole].astype(float) - truth[hole]).mean())


def test_reference_control_fills_the_current_plane_from_its_neighbours(qtbot, notes):
    truth = _drifting_stack(planes=7).astype(np.float32)
    hole = np.zeros(truth.shape[1:], bool)
    hole[50:90, 40:100] = True
    labels = np.zeros(truth.shape, np.uint8)
    labels[3][hole] = 1
    damaged = truth.copy()
    damaged[3][hole] = 0
    read = []
    viewer = ViewerModel()
    image = viewer.add_image(_lazy_stack(damaged, read), name="drift")
    mask = viewer.add_labels(labels, name="debris")
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="biharmonic")
    assert widget.reference.native.isHidden()  # biharmonic takes no reference
    widget.method.value = "guided"
    # Shown for a method that uses a reference; a stack's adjacent planes are chosen for one that needs it.
    assert not widget.reference.native.isHidden() and not widget.align.native.isHidden()
    assert widget.reference.value == ADJACENT and widget.reference.choices == (NO_REFERENCE, ADJACENT)
    viewer.dims.set_current_step(0, 3)
    widget.scope.value = PLANE
    read.clear()
    _run(qtbot, widget)
    assert not notes["error"]
    assert set(read) == {1, 2, 3, 4, 5}  # the plane and the two on each side, all the fill reads
    result = viewer.layers["drift inpainted"]
    guided = _hole_error(np.asarray(result.data[3]), truth[3], hole)
    made = provenance_of(result)
    assert (made.method, made.details["reference"], made.details["align"]) == ("guided", ADJACENT, True)
    assert made.details["plane"] == [3]

    on_screen = np.asarray(result.data[3])

    widget.method.value = "biharmonic"
    _run(qtbot, widget)
    assert guided < _hole_error(np.asarray(result.data[3]), truth[3], hole) / 5
    assert "reference" not in provenance_of(result).details

    # Every plane of the lazy stack, from its neighbours: a lazy result, whose plane 3 is the one above.
    widget.method.value, widget.scope.value = "guided", STACK
    read.clear()
    _run(qtbot, widget)
    assert not notes["error"] and type(result.data).__module__.startswith("dask")
    np.testing.assert_array_equal(np.asarray(result.data[3]), on_screen)
    assert set(read) <= {1, 2, 3, 4, 5}  # napari shows plane 3: only the planes it reads are read
    # A method that needs a reference and none chosen: said before running.
    widget.scope.value, widget.reference.value = PLANE, NO_REFERENCE
    assert widget.align.native.isHidden()
    assert widget.run() is None
    assert "guided fills from reference data: choose the reference 'adjacent planes'" in notes["error"][-1]
    # Adjacent planes are offered only for a stack filled plane by plane.
    widget.scope.value = VOLUME
    assert ADJACENT not in widget.reference.choices


def test_reference_layers_that_fit_the_image_are_offered(qtbot, notes):
    stack = _drifting_stack(planes=3)
    hole = np.zeros(stack.shape[1:], np.uint8)
    hole[40:80, 60:120] = 1
    damaged = stack[2].copy()
    damaged[hole > 0] = 0
    viewer = ViewerModel()
    image = viewer.add_image(damaged, name="frame")
    earlier = viewer.add_image(stack[1], name="earlier")
    viewer.add_image(np.zeros((8, 8)), name="other size")
    viewer.add_image(np.zeros((2, *stack.shape[1:], 3), np.uint8), name="rgb", rgb=True)
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(hole), method="guided")
    # A plane is no stack: no adjacent planes; the image itself and layers that do not fit are not offered.
    assert widget.reference.choices == (NO_REFERENCE, earlier)
    assert widget.reference.value == NO_REFERENCE
    widget.reference.value = earlier
    _run(qtbot, widget)
    result = viewer.layers["frame inpainted"]
    assert _hole_error(result.data, stack[2], hole > 0) < 5
    made = provenance_of(result)
    assert (made.details["reference"], made.details["reference_layer"]) == ("layer", "earlier")

    # A grey layer serves every channel of an RGB image.
    rgb = np.stack([stack[2], stack[2] / 2, stack[2] / 4], axis=-1).astype(np.uint8)
    source = viewer.add_image(np.where(hole[..., None] > 0, 0, rgb).astype(np.uint8), name="colour", rgb=True)
    widget.image.value = source
    assert set(widget.reference.choices) == {NO_REFERENCE, image, earlier, viewer.layers["frame inpainted"]}
    widget.reference.value = earlier
    _run(qtbot, widget)
    assert _hole_error(viewer.layers["colour inpainted"].data, rgb, hole > 0) < 5


# -- errors and cancellation ---------------------------------------------------------------


def test_errors_are_notified(qtbot, notes):
    viewer = ViewerModel()
    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.run() is None and "choose an image layer and a mask layer" in notes["error"][-1]
    assert widget.status.value.startswith("Not run: choose an image layer")

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
    assert viewer.layers.selection.active is labels and "18 pixels" in widget.status.value
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


def _mask_widget(qtbot, viewer, image) -> MaskFromImageWidget:
    widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value = image
    return widget


def test_cosmic_ray_section_is_generated_from_the_detectors(qtbot, notes, monkeypatch):
    from napari_inpaint.detect import COSMIC_RAY_DETECTORS, Detector

    # A detector whose package is missing: listed, with what to install, and refused before running.
    level = Param("level", float, 2.0, "how much", 0.0, 9.0)
    missing = Detector("needs-more", "a detector of another package", (level,),
                       install='pip install "napari-inpaint[more]"', module="no_such_package_here")
    monkeypatch.setitem(COSMIC_RAY_DETECTORS, missing.name, missing)
    viewer = ViewerModel()
    widget = _mask_widget(qtbot, viewer, viewer.add_image(np.ones((32, 32), np.float32), name="sky"))
    section = (widget.cosmic_detector, widget.cosmic_note, widget.cosmic_params)
    assert all(control.native.isHidden() for control in section)  # until "cosmic rays" is ticked
    widget.cosmic_rays.value = True
    assert not any(control.native.isHidden() for control in section)
    shown = [widget.cosmic_detector.native.itemText(i) for i in range(widget.cosmic_detector.native.count())]
    assert shown == ["lacosmic", "deepcr", "needs-more (not installed)"]
    for name, detector in COSMIC_RAY_DETECTORS.items():
        widget.cosmic_detector.value = name
        controls = list(widget.cosmic_params)
        assert [c.name for c in controls] == [p.name for p in detector.params]
        for control, param in zip(controls, detector.params):
            assert type(control) is type(param_widget(param)) and control.tooltip == param.help
        assert widget.detection_options()["cosmic_ray_parameters"] == detector.resolve({})
        assert widget.cosmic_note.value.startswith(detector.summary)
    assert 'Not installed: it needs no_such_package_here (pip install "napari-inpaint[more]")' in (
        widget.cosmic_note.value
    )
    assert widget.run() is None and notes["error"][-1].startswith(
        'the cosmic-ray detector needs-more needs no_such_package_here: pip install "napari-inpaint[more]"'
    )
    widget.cosmic_detector.value = "deepcr"  # the weights of the model chosen, with size and licence
    assert "deepcr-mask-acs-wfc (BSD-3-Clause" in widget.cosmic_note.value
    widget.cosmic_params["model"].value = "decam"
    assert "deepcr-mask-decam (BSD-3-Clause" in widget.cosmic_note.value

    # Each detector remembers its own values.
    widget.cosmic_params["threshold"].value = 0.2
    widget.cosmic_detector.value = "lacosmic"
    widget.cosmic_params["gain"].value = 2.5
    again = MaskFromImageWidget(viewer)
    qtbot.addWidget(again.native)
    assert again.cosmic_rays.value and again.cosmic_detector.value == "lacosmic"
    assert again.detector_values()["gain"] == 2.5
    again.cosmic_detector.value = "deepcr"
    assert again.detector_values()["threshold"] == 0.2 and again.detector_values()["model"] == "decam"
    again.restore_defaults()
    assert not again.cosmic_rays.value and again.detector_values()["gain"] == 1.0


def test_cosmic_rays_found_by_lacosmic_in_the_worker(qtbot, notes):
    pytest.importorskip("astroscrappy")
    from test_detect import READ_NOISE, far_from, simulated_sky

    _, observed, hits = simulated_sky(seed=3)
    viewer = ViewerModel()
    image = viewer.add_image(np.stack([observed, observed[::-1]]).astype(np.float32), name="exposures")
    widget = _mask_widget(qtbot, viewer, image)
    widget.nonfinite.value, widget.cosmic_rays.value = False, True
    widget.cosmic_params["read_noise"].value = READ_NOISE
    _run(qtbot, widget)
    mask = viewer.layers["exposures mask"].data > 0
    truth = np.stack([hits, hits[::-1]])
    assert mask[truth].mean() > 0.95 and (mask & far_from(truth)).mean() < 1e-3  # each plane on its own
    made = provenance_of(viewer.layers["exposures mask"])
    assert made.parameters["cosmic_ray_detector"] == "lacosmic"
    assert made.parameters["cosmic_ray_parameters"]["read_noise"] == READ_NOISE
    assert not notes["error"]

    # With dilation the hits' faint edges are flagged too (growing applies to every criterion).
    widget.dilate.value = 1
    _run(qtbot, widget)
    grown = viewer.layers["exposures mask"].data > 0
    assert (grown >= mask).all() and grown.sum() > 2 * mask.sum()


def test_cosmic_rays_found_by_deepcr_with_its_real_weights(qtbot, notes, questions, real_weights_mirror):
    pytest.importorskip("torch")
    from test_detect import far_from, simulated_sky

    from napari_inpaint import models
    from napari_inpaint.detect import COSMIC_RAY_DETECTORS

    name = COSMIC_RAY_DETECTORS["deepcr"].weights_for({"model": "ACS-WFC"})[0]
    real_weights_mirror(name)  # downloaded by the worker into an empty cache (the hash is checked)
    _, observed, hits = simulated_sky()
    viewer = ViewerModel()
    widget = _mask_widget(qtbot, viewer, viewer.add_image(observed.astype(np.float32), name="sky"))
    widget.cosmic_rays.value, widget.cosmic_detector.value = True, "deepcr"
    widget.cosmic_params["device"].value = "cpu"
    assert "downloaded on first run, 0.4 MiB" in widget.cosmic_note.value
    stages = []
    widget.stage_changed.connect(stages.append)
    _run(qtbot, widget)
    assert stages[:2] == ["starting", f"downloading weights: {name} (0.4 MiB)"]
    assert stages[-1] == "finding cosmic rays (deepcr)"
    mask = viewer.layers["sky mask"].data > 0
    assert mask[hits].mean() > 0.95 and (mask & far_from(hits)).mean() < 1e-3
    assert models.is_cached(name) and not questions  # 0.4 MiB: fetched without asking
    assert f"{name} (BSD-3-Clause, cached)" in widget.cosmic_note.value
    assert provenance_of(viewer.layers["sky mask"]).parameters["cosmic_ray_parameters"]["model"] == "ACS-WFC"


def test_persistent_hot_pixels_of_a_stack(qtbot, notes):
    rng = np.random.default_rng(4)
    frames = rng.normal(100, 5, (12, 48, 48)).astype(np.float32)
    frames[:, 30, 7] += 35  # a warm pixel, 7 standard deviations: in every frame
    frames[5, 10, 40] += 400  # a cosmic ray: in one frame
    viewer = ViewerModel()
    widget = _mask_widget(qtbot, viewer, viewer.add_image(frames, name="darks"))
    assert widget.persistent.enabled
    widget.outliers.value, widget.k.value, widget.persistent.value = True, 3.0, True
    _run(qtbot, widget)
    mask = viewer.layers["darks mask"].data > 0
    assert np.argwhere(mask.any(axis=0)).tolist() == [[30, 7]] and mask[:, 30, 7].all()
    assert provenance_of(viewer.layers["darks mask"]).parameters["persistent"] is True
    widget.persistent.value = False  # frame by frame, k = 3 flags noise everywhere, and the cosmic ray
    _run(qtbot, widget)
    mask = viewer.layers["darks mask"].data > 0
    assert mask[5, 10, 40] and mask.sum() > 50  # about 0.27 % of the pixels by chance

    # A single plane has no persistence: the option is off there.
    widget.image.value = viewer.add_image(frames[0], name="one")
    assert not widget.persistent.enabled and widget.detection_options()["persistent"] is False


def test_mask_detection_can_be_cancelled(qtbot, notes):
    pytest.importorskip("astroscrappy")
    viewer = ViewerModel()
    stack = np.random.default_rng(0).poisson(100.0, (60, 128, 128)).astype(np.float32)
    widget = _mask_widget(qtbot, viewer, viewer.add_image(stack, name="many"))
    widget.cosmic_rays.value = True
    widget.run_button.native.click()
    assert widget.cancel_button.enabled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert "many mask" not in viewer.layers and "cancelled" in notes["info"][-1] and not notes["error"]
    assert widget.status.value == "Cancelled: nothing was added or changed."


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


def test_compare_widget_scores_plots_and_adds_layers(qtbot, notes, tmp_path, monkeypatch, questions):
    from napari_inpaint.evaluation.metrics import data_range_of, psnr

    viewer = ViewerModel()
    data = _texture()
    source = viewer.add_image(data, name="img", scale=(0.5, 0.25), translate=(3, 4))
    widget = _compare_widget(qtbot, viewer, source)
    _run(qtbot, widget)
    assert not notes["error"]
    table = widget.table
    assert [row["method"] for row in table.rows] == ["harmonic", "biharmonic"]
    assert all(row["n"] == 1 and row["psnr_hole"] > 10 for row in table.rows)
    shown = widget.score_table
    header = [shown.horizontalHeaderItem(c).text() for c in range(shown.columnCount())]
    assert header == ["method", "holes", "PSNR", "SSIM", "MAE %", "s"]
    assert [shown.item(r, 0).text() for r in range(shown.rowCount())] == ["harmonic", "biharmonic"]
    if importlib.util.find_spec("matplotlib") is not None:
        figure = widget.canvas.figure
        lines = figure.axes[0].containers  # a line with error bars per method
        assert [line.get_label() for line in lines] == ["harmonic", "biharmonic"]
        assert [line.lines[0].get_ydata()[0] for line in lines] == [row["psnr_hole"] for row in table.rows]
        # The legend is the figure's, under the axes: it covers no point; each bucket tells its holes.
        assert figure.axes[0].get_legend() is None and len(figure.legends) == 1
        assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["10-20%\n1 hole"]
        assert not widget.plot.native.isHidden() and widget.plot_note.native.isHidden()

    names = ["img", "harmonic (compare)", "biharmonic (compare)", "holes (compare)"]
    assert [layer.name for layer in viewer.layers] == names
    hole = viewer.layers["holes (compare)"].data.astype(bool)
    assert 0.1 < hole.mean() < 0.2
    for layer in viewer.layers[1:]:
        np.testing.assert_array_equal(layer.scale, source.scale)
        np.testing.assert_array_equal(layer.translate, source.translate)
    for name, trial in zip(("harmonic", "biharmonic"), table.trials):
        fill = viewer.layers[f"{name} (compare)"]
        made = provenance_of(fill)
        assert (made.made_by, made.method, made.source) == (COMPARE, name, "img")
        assert (made.details["mask"], made.details["ratio"], made.details["seed"]) == ("strokes", 0.15, 0)
        assert (fill.data[~hole] == data[~hole]).all() and (fill.data[hole] != 0).any()
        # The example hole is the one the table scored.
        score = psnr(data, fill.data, mask=hole, data_range=data_range_of(data))
        assert score == pytest.approx(trial["psnr_hole"])

    # A rerun replaces the layers and drops those of methods no longer compared.
    kept = viewer.layers["harmonic (compare)"]
    widget.methods.value = ["harmonic"]
    _run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == [names[0], names[1], names[3]]
    assert viewer.layers["harmonic (compare)"] is kept and len(widget.table.rows) == 1

    # CSV: never replaces a file unless asked (by the save dialog, or overwrite=True).
    path = tmp_path / "scores.csv"
    assert widget.save_csv(path) == path and path.read_text() == widget.table.to_csv()
    path.write_text("mine")
    assert widget.save_csv(path) is None and "not replaced" in notes["error"][-1]
    assert path.read_text() == "mine"
    monkeypatch.setattr(widget_common, "save_path", lambda *args: str(path))
    questions.answer = False  # the dialog's choice of an existing file is confirmed first
    widget.save_button.native.click()
    assert path.read_text() == "mine" and "exists" in questions[-1]
    questions.answer = True
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
    holes = viewer.layers["holes (compare)"].data.astype(bool)
    fill = viewer.layers["harmonic (compare)"]
    assert holes.shape == fill.data.shape == stack.shape[1:]
    assert holes.any() and not (holes & (region == 0)).any()
    known = ~holes & (region == 1)  # pixels outside the clean region are filled too
    assert (fill.data[known] == stack[1][known]).all() and (fill.data[holes] != stack[1][holes]).any()
    assert provenance_of(fill).details["plane"] == [1]
    for name in ("holes (compare)", "harmonic (compare)"):
        np.testing.assert_array_equal(viewer.layers[name].scale, source.scale[1:])
        np.testing.assert_array_equal(viewer.layers[name].translate, source.translate[1:])

    widget.region_marks.value = DAMAGED  # the region is avoided instead
    _run(qtbot, widget)
    holes = viewer.layers["holes (compare)"].data.astype(bool)
    assert holes.any() and not (holes & (region == 1)).any()


def test_compare_widget_with_adjacent_planes_scores_the_plane_on_screen(qtbot, notes):
    truth = _drifting_stack(planes=7).astype(np.float32)
    read = []
    viewer = ViewerModel()
    image = viewer.add_image(_lazy_stack(truth, read), name="drift", scale=(3, 1, 1))
    flat = viewer.add_image(truth[0], name="flat")
    viewer.dims.set_current_step(0, 3)
    widget = _compare_widget(qtbot, viewer, flat, methods=["biharmonic"])
    assert widget.adjacent.native.isHidden()  # a plane has no neighbours
    widget.image.value = image
    assert not widget.adjacent.native.isHidden() and widget.align.native.isHidden()
    assert "guided" not in widget.methods.choices and "guided" in widget.methods.tooltip
    widget.adjacent.value = True  # the methods that need a reference are offered, and selected
    assert "guided" in widget.methods.choices and widget.methods.value == ["biharmonic", "guided"]
    read.clear()
    _run(qtbot, widget)
    assert not notes["error"] and set(read) == {1, 2, 3, 4, 5}
    scores = {row["method"]: row["psnr_hole"] for row in widget.table.rows}
    assert scores["guided"] > scores["biharmonic"] + 10
    fill = viewer.layers["guided (compare)"]
    assert fill.data.shape == truth.shape[1:]  # the plane on screen
    hole = viewer.layers["holes (compare)"].data.astype(bool)
    assert (fill.data[~hole] == truth[3][~hole]).all()
    assert _hole_error(fill.data, truth[3], hole) < _hole_error(
        viewer.layers["biharmonic (compare)"].data, truth[3], hole
    ) / 5
    made = provenance_of(fill)
    assert (made.details["plane"], made.details["reference"], made.details["align"]) == ([3], ADJACENT, True)

    widget.adjacent.value = False  # back to the methods that fill without a reference
    assert "guided" not in widget.methods.choices and widget.methods.value == ["biharmonic"]


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
    from napari_inpaint.evaluation import default_methods

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


# -- issue 13: what the user sees and keeps ---------------------------------------------


def _controls(container):
    """Every control of a magicgui container, the nested containers' too."""
    for widget in container:
        if isinstance(widget, Container):
            yield from _controls(widget)
        else:
            yield widget


def test_every_control_has_a_tooltip(qtbot):
    viewer, _, _ = _damaged_ramp()
    widgets = [InpaintWidget(viewer), MaskFromImageWidget(viewer), CompareMethodsWidget(viewer)]
    for widget in widgets:
        qtbot.addWidget(widget.native)
    for method in list_methods():  # the generated parameter controls too
        widgets[0].method.value = method.name
        missing = [c.name or c.label for w in widgets for c in _controls(w) if not c.tooltip]
        assert not missing, (method.name, missing)


def test_rerun_takes_the_sources_current_calibration_and_display(qtbot, notes):
    viewer = ViewerModel()
    stack = np.stack([_ramp() + k for k in range(3)])
    image = viewer.add_image(stack, name="cells", colormap="gray")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole(), name="hole"))
    widget.overlay.value = True
    _run(qtbot, widget)
    out, overlay = viewer.layers["cells inpainted"], viewer.layers["cells inpainted pixels"]
    mask_widget = MaskFromImageWidget(viewer)
    qtbot.addWidget(mask_widget.native)
    mask_widget.above.value = "200"
    _run(qtbot, mask_widget)
    assert widget.mask.value is viewer.layers["cells mask"]  # the new mask was chosen: back to the hole
    widget.mask.value = viewer.layers["hole"]
    compare = _compare_widget(qtbot, viewer, image, methods=["harmonic"])
    _run(qtbot, compare)

    # The user recalibrates and restyles the image; every rerun follows it, replacing its layers.
    image.scale, image.translate = (4.0, 0.5, 0.25), (2.0, 10.0, -5.0)
    image.colormap, image.contrast_limits, image.gamma = "magma", (20.0, 120.0), 0.7
    for each in (widget, mask_widget, compare):
        _run(qtbot, each)
    assert not notes["error"]
    assert viewer.layers["cells inpainted"] is out and viewer.layers["cells inpainted pixels"] is overlay
    for layer in (out, viewer.layers["cells mask"]):
        np.testing.assert_allclose(layer.scale, image.scale)
        np.testing.assert_allclose(layer.translate, image.translate)
    for layer in (overlay, viewer.layers["harmonic (compare)"], viewer.layers["holes (compare)"]):
        np.testing.assert_allclose(layer.scale, image.scale[1:])  # 2D layers over the stack
        np.testing.assert_allclose(layer.translate, image.translate[1:])
    for layer in (out, viewer.layers["harmonic (compare)"]):
        assert layer.colormap.name == "magma" and tuple(layer.contrast_limits) == (20.0, 120.0)
        assert layer.gamma == pytest.approx(0.7)
    assert [layer.name for layer in viewer.layers].count("cells inpainted") == 1


def test_new_layer_per_run_names_results_by_method(qtbot):
    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask)
    widget.results.value = "new"
    widget.overlay.value = True
    for method in ("harmonic", "biharmonic", "harmonic"):
        widget.method.value = method
        _run(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    assert names[2:] == [
        "ramp inpainted (harmonic)", "ramp inpainted pixels (harmonic)", "ramp inpainted (biharmonic)",
        "ramp inpainted pixels (biharmonic)", "ramp inpainted (harmonic) [1]",
        "ramp inpainted pixels (harmonic) [1]",
    ]
    assert provenance_of(viewer.layers["ramp inpainted (biharmonic)"]).method == "biharmonic"
    widget.results.value = "replace"
    _run(qtbot, widget)
    _run(qtbot, widget)
    assert [layer.name for layer in viewer.layers].count("ramp inpainted") == 1


def test_labels_are_offered_by_name_and_a_missing_label_is_explained(qtbot, notes):
    from napari_inpaint.evaluation.sample import LABELS
    from napari_inpaint.napari.sample import make_sample_data

    viewer = ViewerModel()
    (image, image_meta, _), (labels, labels_meta, _) = make_sample_data()
    widget = _inpaint_widget(qtbot, viewer, viewer.add_image(image, **image_meta),
                             viewer.add_labels(labels, **labels_meta))
    offered = [widget.mask_label.native.itemText(i) for i in range(widget.mask_label.native.count())]
    assert offered == ["every label", "1: hot pixels", "2: scratch", "3: debris"]
    widget.mask_label.value = LABELS["scratch"]
    widget.update_preview()
    assert widget.status.value.startswith(f"Will fill {int((labels == 2).sum()):,} px")

    # A layer holding label 2 only offers it; erasing the chosen label says which labels are left.
    only = np.where(labels == 2, 2, 0).astype(np.uint8)
    widget.mask.value = viewer.add_labels(only, name="scratch only")
    assert widget.mask_label.choices == (0, 2)
    widget.mask_label.value = 2
    widget.mask.value.data = np.where(labels == 3, 3, 0).astype(np.uint8)
    widget.mask_label.value = 2  # still chosen: the drop-down is refreshed on the next preview
    assert widget.run() is None
    assert "has no pixel of label 2; it holds label 3" in notes["error"][-1]
    widget.update_preview()
    assert widget.mask_label.choices == (0, 3) and "Will fill" in widget.status.value


def test_status_line_before_and_after_a_run_and_the_progress_bar(qtbot):
    viewer = ViewerModel()
    stack = np.stack([_ramp() + k for k in range(20)])
    image = viewer.add_image(stack, name="stack")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole(), name="hole"))
    qtbot.waitUntil(lambda: widget.status.value.startswith("Will fill"), timeout=WAIT_MS)
    assert widget.status.value == "Will fill 100 px on each of 20 planes: a 2D mask applies to every plane."
    widget.scope.value = PLANE
    viewer.dims.set_current_step(0, 4)
    widget.update_preview()
    assert widget.status.value == "Will fill 100 px on plane 4 (the plane on screen)."
    widget.scope.value = STACK
    assert widget.progress.native.isHidden()  # no bar while idle
    stages = []
    widget.progress.native.valueChanged.connect(lambda _v: stages.append(widget.progress.native.format()))
    widget.run_button.native.click()
    assert not widget.progress.native.isHidden()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert stages and all(stage.startswith("filling 1/1") for stage in stages)  # the engine's stage
    assert widget.progress.native.isHidden() and widget.progress.value == 0
    assert widget.status.value.startswith("Filled 100 px on each of 20 planes")
    assert widget.status.value.endswith(": layer 'stack inpainted'.") and " s: " in widget.status.value


def test_engine_errors_are_said_in_widget_terms(qtbot, notes):
    viewer, image, mask = _damaged_ramp()
    image.data = image.data - 1000  # negative values: no photon counts
    widget = _inpaint_widget(qtbot, viewer, image, mask)
    widget.noise.value = "poisson"
    _run(qtbot, widget)
    assert "noise: poisson needs non-negative data" in notes["error"][-1]
    assert "choose noise: gaussian" in notes["error"][-1] and "=" not in notes["error"][-1]


def test_a_new_mask_becomes_the_inpaint_widgets_mask(qtbot):
    viewer, image, _ = _damaged_ramp()
    other = viewer.add_image(_ramp(), name="other")
    widget = _inpaint_widget(qtbot, viewer, other, viewer.layers["Labels"])
    detect = MaskFromImageWidget(viewer)
    qtbot.addWidget(detect.native)
    detect.image.value, detect.below.value = image, "-500"
    _run(qtbot, detect)
    assert widget.mask.value is viewer.layers["ramp mask"] and widget.image.value is image


def test_closing_the_widget_cancels_its_run(qtbot, notes):
    viewer = ViewerModel()
    stack = np.random.default_rng(0).random((4, 384, 384)).astype(np.float32)
    labels = np.zeros(stack.shape, np.uint8)
    labels[:, 32:352, 32:352] = 1  # a wide hole: total variation at its maximum iterations takes many seconds
    widget = _inpaint_widget(qtbot, viewer, viewer.add_image(stack, name="stack"),
                             viewer.add_labels(labels, name="Labels"), method="tv")
    widget.params["iterations"].value, widget.params["tol"].value = widget.params["iterations"].max, 0.0
    widget.run_button.native.click()
    qtbot.wait(300)
    widget.native.close()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == ["stack", "Labels"] and not notes["error"]
    viewer.add_image(stack, name="later")  # a closed widget no longer follows the viewer
    assert "later" not in [layer.name for layer in widget.image.choices]


def test_file_parameters_get_a_file_picker(qtbot, tmp_path):
    from magicgui.widgets import FileEdit

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="learned")
    assert isinstance(widget.param_control("model"), FileEdit) and widget.parameter_values()["model"] == ""
    widget.param_control("model").value = tmp_path / "net.pt"
    assert widget.parameter_values()["model"] == str(tmp_path / "net.pt")
    assert [w.name for w in widget.params] == ["steps", "seconds", "device", "model"]


def test_settings_are_remembered_and_restored_to_defaults(qtbot, settings_folder):
    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="tv")
    widget.dilate.value, widget.noise.value, widget.results.value = 2, "gaussian", "new"
    widget.params["iterations"].value = 77
    widget.method.value = "exemplar"
    widget.params["patch_size"].value = 13
    compare = CompareMethodsWidget(viewer)
    qtbot.addWidget(compare.native)
    compare.methods.value, compare.repeats.value, compare.ratios.value = ["telea"], 3, "0.2"
    detect = MaskFromImageWidget(viewer)
    qtbot.addWidget(detect.native)
    detect.outliers.value, detect.k.value = True, 7.5
    assert {path.name for path in settings_folder.iterdir()} == {"inpaint.json", "compare.json", "mask.json"}

    # Made again (a dock closed and opened, or napari restarted): as the user left them.
    again = InpaintWidget(viewer)
    qtbot.addWidget(again.native)
    assert (again.method.value, again.dilate.value, again.noise.value, again.results.value) == (
        "exemplar", 2, "gaussian", "new"
    )
    assert again.params["patch_size"].value == 13
    again.method.value = "tv"  # each method keeps its own parameters
    assert again.params["iterations"].value == 77 and again.params["tol"].value == pytest.approx(
        get_method("tv").param("tol").default
    )
    compare_again, detect_again = CompareMethodsWidget(viewer), MaskFromImageWidget(viewer)
    qtbot.addWidget(compare_again.native)
    qtbot.addWidget(detect_again.native)
    assert (compare_again.methods.value, compare_again.repeats.value, compare_again.ratios.value) == (
        ["telea"], 3, "0.2"
    )
    assert detect_again.outliers.value and detect_again.k.value == 7.5

    # Restore defaults: every control, and the methods' parameters, as on first use; remembered so.
    again.restore_defaults()
    assert (again.dilate.value, again.noise.value, again.results.value) == (0, "none", "replace")
    assert again.method.value == "biharmonic"
    again.method.value = "tv"
    assert again.params["iterations"].value == get_method("tv").param("iterations").default
    last = InpaintWidget(viewer)
    qtbot.addWidget(last.native)
    assert last.dilate.value == 0 and last.method.value == "tv"

    # A remembered value that no longer fits (a device gone, a method removed) falls back to the default.
    (settings_folder / "inpaint.json").write_text(
        '{"controls": {"method": "gone", "dilate": 3}, '
        '"params": {"tv": {"device": "cuda:9", "iterations": 90}}}'
    )
    fallback = InpaintWidget(viewer)
    qtbot.addWidget(fallback.native)
    assert fallback.method.value == "biharmonic" and fallback.dilate.value == 3
    fallback.method.value = "tv"
    assert fallback.param_control("device").value == "auto" and fallback.params["iterations"].value == 90
    (settings_folder / "inpaint.json").write_text("not json")
    assert InpaintWidget(viewer).dilate.value == 0


def test_compare_table_is_sortable_marks_the_best_and_fits_the_dock(qtbot, notes):
    from qtpy.QtCore import Qt

    viewer = ViewerModel()
    image = viewer.add_image(_texture(), name="img")
    widget = _compare_widget(qtbot, viewer, image, methods=["harmonic", "biharmonic", "telea"],
                             ratios="0.05 0.15")
    widget.repeats.value = 2
    widget.update_preview()
    assert widget.status.value.startswith("Will make 12 fills (3 methods × 4 hidden masks)")
    assert "not timed yet: harmonic, biharmonic, telea" in widget.status.value
    _run(qtbot, widget)
    assert not notes["error"] and widget.status.value.startswith("Scored 12 fills in")
    table = widget.score_table
    assert table.rowCount() == 6 and table.columnCount() == 6
    for column, key, best in ((2, "psnr_hole", max), (4, "mae_hole", min)):
        for bucket in ("0-10%", "10-20%"):
            rows = [row for row in widget.table.rows if row["bucket"] == bucket]
            winner = best(rows, key=lambda row: row[key])["method"]
            marked = [table.item(r, 0).text() for r in range(6)
                      if table.item(r, 1).text() == bucket and table.item(r, column).font().bold()]
            assert marked == [winner], (key, bucket)
    table.sortItems(2, Qt.SortOrder.DescendingOrder)  # by PSNR, as numbers
    psnrs = [float(table.item(r, 2).text()) for r in range(6)]
    assert psnrs == sorted(psnrs, reverse=True)
    # In a dock 360 pixels wide every column is visible: no horizontal scrolling.
    widget.native.resize(360, 900)
    widget.native.show()
    qtbot.wait(50)
    assert table.horizontalHeader().length() <= table.viewport().width()
    if importlib.util.find_spec("matplotlib") is not None:  # error bars: two holes per point
        bars = widget.canvas.figure.axes[0].containers[0].lines[2][0].get_segments()
        assert len(bars) == 2 and all(top[1] > bottom[1] for bottom, top in bars)
        window = widget.open_plot()
        qtbot.addWidget(window)
        assert window.width() > widget.canvas.width() and window.canvas.figure.axes
    # The outcome stays until a setting changes; the next estimate comes from this run's timings.
    widget.update_preview()
    assert widget.status.value.startswith("Scored")
    widget.repeats.value = 4
    widget.update_preview()
    assert ", about " in widget.status.value and "not timed" not in widget.status.value


def test_compare_lpips_is_a_control_whose_download_is_confirmed(qtbot, notes, questions, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(napari_inpaint.models, "is_cached", lambda name: False)
    viewer = ViewerModel()
    widget = _compare_widget(qtbot, viewer, viewer.add_image(_texture(), name="img"), methods=["harmonic"])
    assert "MiB" in widget.lpips.tooltip and "BSD" in widget.lpips.tooltip
    widget.lpips.value = True
    questions.answer = False
    assert widget.run() is None and "LPIPS needs its weights" in notes["error"][-1]
    assert "alexnet" in questions[-1] and "licence BSD-3-Clause" in questions[-1]
    widget.lpips.value = False  # without LPIPS no note sends the user to keywords of the library
    _run(qtbot, widget)
    assert "lpips" not in widget.table.columns and not any("lpips=" in note for note in widget.table.notes)
    assert widget.notes.native.isHidden()


def test_compare_example_layers_have_short_names_and_a_side_by_side_view(qtbot):
    viewer = ViewerModel()
    image = viewer.add_image(_texture(), name="damaged cell with a long name")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="other")
    widget = _compare_widget(qtbot, viewer, image)
    assert not widget.grid_button.enabled
    _run(qtbot, widget)
    widget.grid_button.native.click()
    assert viewer.canvas.grid.enabled
    shown = [layer.name for layer in viewer.layers if layer.visible]
    assert shown == ["damaged cell with a long name", "harmonic (compare)", "biharmonic (compare)",
                     "holes (compare)"]
    assert all(viewer.layers[name].name_overlay.visible for name in shown)


def test_the_bar_is_labelled_with_the_engines_stages(qtbot, register_method):
    def prepare(stack, *, check=None):
        return float(np.mean(stack.planes))

    @register_method("toy-prepared", prepare=prepare)
    def fill(image, mask, *, prepared=None):
        return _known_mean(image, mask)

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="toy-prepared")
    stages = []
    widget.stage_changed.connect(stages.append)
    _run(qtbot, widget)
    assert stages == ["starting", "preparing toy-prepared", "filling 1/1"]
    assert widget.status.value.startswith("Filled 100 px in ")


# -- export: the whole result written into a file ------------------------------------------------


def _export(qtbot, widget, path, **kwargs) -> None:
    """Export to ``path`` and wait for the worker to finish."""
    assert widget.export(path, **kwargs) is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def _leftovers(folder) -> list[str]:
    """What a write left in ``folder`` besides finished outputs: its temporary (partial, old) copies."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_export_of_an_in_memory_layer_to_tiff_records_the_fill(qtbot, notes, tmp_path):
    from napari_inpaint.io import read_image

    viewer = ViewerModel()
    damaged, hole = _ramp(dtype=np.uint16), _hole() > 0
    damaged[hole] = 0
    image = viewer.add_image(damaged, name="cells")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole(), name="hole"))
    seen = []
    widget.progress_changed.connect(lambda done, total: seen.append(done / total))
    _export(qtbot, widget, tmp_path / "out.tif")

    assert not notes["error"] and [layer.name for layer in viewer.layers] == ["cells", "hole"]
    assert seen and seen[-1] == 1.0 and "wrote" in widget.status.value
    written = read_image(tmp_path / "out.tif")
    expected = napari_inpaint.inpaint(damaged, hole, "harmonic")
    assert written.data.dtype == np.uint16
    np.testing.assert_array_equal(written.data, expected)
    np.testing.assert_array_equal(written.data[~hole], damaged[~hole])  # known pixels bit-identical
    made = written.metadata.shaped["napari_inpaint"]
    assert made["software"] == "napari-inpaint" and made["method"] == "harmonic" and made["parameters"] == {}
    assert made["filled_pixels"] == hole.sum() and made["source"] == "cells" and made["mask_layer"] == "hole"
    assert made["scope"] == STACK and made["version"] == napari_inpaint.__version__
    assert _leftovers(tmp_path) == [] and (image.data == damaged).all()


def test_export_of_an_rgb_layer_writes_an_rgb_tiff(qtbot, notes, tmp_path):
    import tifffile

    viewer = ViewerModel()
    plane = (_ramp() / 2).astype(np.uint8)
    colour = np.stack([plane, plane[::-1], plane[:, ::-1]], axis=-1)
    hole = _hole() > 0
    image = viewer.add_image(colour, name="stain", rgb=True)
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole(), name="hole"))
    _export(qtbot, widget, tmp_path / "out.tif")

    assert not notes["error"]
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:  # RGB samples, as viewers show a colour image
        assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.RGB and tiff.series[0].axes == "YXS"
        written = tiff.asarray()
    np.testing.assert_array_equal(written, napari_inpaint.inpaint(colour, hole, "harmonic", channel_axis=-1))


@pytest.mark.parametrize(("dtype", "kind"), [(np.uint16, "imagej"), (np.float64, "plain")])
def test_export_to_tiff_keeps_the_calibration_of_a_layer_of_no_file(qtbot, notes, tmp_path, dtype, kind):
    import tifffile

    viewer = ViewerModel()
    stack = np.stack([_ramp(dtype=dtype)] * 3)
    labels = np.stack([_hole()] * 3)
    image = viewer.add_image(stack, name="cells", scale=(2.0, 0.25, 0.5), units=("um", "um", "um"))
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(labels, name="hole"))
    _export(qtbot, widget, tmp_path / "out.tif")

    assert not notes["error"]
    with tifffile.TiffFile(tmp_path / "out.tif") as tiff:
        page = tiff.pages[0]
        x_resolution, y_resolution = page.resolution
        if kind == "imagej":  # pixels per micron, the unit and the z spacing in ImageJ's metadata
            assert tiff.imagej_metadata["unit"] == "micron" and tiff.imagej_metadata["spacing"] == 2.0
            assert (x_resolution, y_resolution) == pytest.approx((2.0, 4.0))
        else:  # ImageJ holds no float64: pixels per centimetre
            assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
            assert (x_resolution, y_resolution) == pytest.approx((2e4, 4e4))
        np.testing.assert_array_equal(tiff.asarray(), napari_inpaint.inpaint(stack, labels > 0, "harmonic"))


def _open_with_napari(viewer, path):
    """Open ``path`` with napari's own reader (as File > Open does): a zarr image becomes a lazy layer."""
    from npe2 import PluginManager

    PluginManager.instance().discover(include_npe1=False)  # napari's builtin reader, as a napari window has
    return viewer.open(str(path), plugin="napari")[0]


def test_export_of_a_zarr_layer_to_ome_zarr_is_lazy_and_keeps_the_metadata(qtbot, notes, tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    from napari_inpaint.io import Image, read_image, write_image
    from napari_inpaint.io import omezarr as _omezarr

    truth = _ramp((600, 600))
    hole = np.zeros(truth.shape, bool)
    hole[250:270, 240:275] = True  # across the corner of four chunks
    hole[40:44, 500:510] = True
    damaged = np.where(hole, np.float32(-1), truth)
    calibrated = _omezarr.new_multiscale(truth.shape, "yx", scale=[0.5, 0.5], units=["micrometer"] * 2)
    write_image(tmp_path / "in.ome.zarr", da.from_array(damaged, chunks=256),
                like=Image(None, "yx", "ome-zarr", None, calibrated))
    image = _open_with_napari(viewer := ViewerModel(), tmp_path / "in.ome.zarr")
    assert image.multiscale and isinstance(image.data[0], da.Array)
    labels = viewer.add_labels(hole.astype(np.uint8), name="hole")
    widget = _inpaint_widget(qtbot, viewer, image, labels)
    widget.overlay.value = True
    counts = []
    widget.progress_changed.connect(lambda done, total: counts.append((done, total)))
    _export(qtbot, widget, tmp_path / "out.ome.zarr")

    assert not notes["error"] and [layer.name for layer in viewer.layers] == ["in.ome", "hole"]
    # Computed into the file block by block: crops filled, then the chunks of each level as they finish.
    chunks = 3 * 3 + 2 * 2  # 600² in 256² chunks, and its 300² level
    assert len(counts) > chunks and counts[-1][0] == counts[-1][1] > chunks
    written = read_image(tmp_path / "out.ome.zarr")
    source = read_image(tmp_path / "in.ome.zarr")
    assert isinstance(written.data, da.Array) and written.data.chunksize == (256, 256)
    expected = napari_inpaint.inpaint(source.data, hole, "harmonic").compute()
    result = written.data.compute()
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(result[~hole], damaged[~hole])
    np.testing.assert_allclose(result[hole], truth[hole], atol=1e-2)  # a ramp is filled exactly
    meta = written.metadata
    assert written.axes == "yx" and meta.transforms[0] == source.metadata.transforms[0]  # scale 0.5
    assert meta.axes == source.metadata.axes and [tuple(s) for s in meta.shapes] == [(600, 600), (300, 300)]
    group = zarr.open_group(tmp_path / "out.ome.zarr", mode="r")
    made = group.attrs["napari_inpaint"]  # (read_image leaves it out: it is this file's own record)
    assert made["method"] == "harmonic" and made["source_file"] == "in.ome.zarr"
    assert made["filled_pixels"] == hole.sum() and made["source"] == "in.ome" and made["mask_layer"] == "hole"
    invented = group["labels/invented/0"][:]
    np.testing.assert_array_equal(invented.astype(bool), hole)
    assert _leftovers(tmp_path) == []


def test_export_never_replaces_a_file_without_asking(qtbot, notes, tmp_path, questions, monkeypatch):
    from napari_inpaint.io import read_image

    viewer = ViewerModel()
    damaged = _ramp()
    image = viewer.add_image(damaged, name="cells", scale=(0.25, 0.25), units=("um", "um"))
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(_hole(), name="hole"))
    widget.overlay.value = True
    beside = tmp_path / "out.invented.tif"
    beside.write_bytes(b"an earlier mask")  # only the mask that goes beside the TIFF exists
    assert widget.export(tmp_path / "out.tif") is None and widget.worker is None
    assert "exist" in notes["error"][-1] and "choose another name" in notes["error"][-1]
    assert beside.read_bytes() == b"an earlier mask" and not (tmp_path / "out.tif").exists()

    # Through the save dialog: replacing is asked, and declining keeps the file.
    path = tmp_path / "out.ome.zarr"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    monkeypatch.setattr(widget_common, "save_path", lambda *args: str(path))
    questions.answer = False
    assert widget.export() is None and str(path) in questions[-1]
    assert [p.name for p in path.iterdir()] == ["notes.txt"]
    questions.answer = True
    assert widget.export() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    written = read_image(path)
    assert not (path / "notes.txt").exists() and written.data.shape == damaged.shape
    # A layer of no file keeps its calibration in an OME-Zarr output.
    assert written.metadata.transforms[0][0]["scale"] == [0.25, 0.25]
    assert [axis.get("unit") for axis in written.metadata.axes] == ["micrometer"] * 2

    # Given in code, an existing output is replaced only with overwrite=True.
    assert widget.export(tmp_path / "out.tif") is None
    _export(qtbot, widget, tmp_path / "out.tif", overwrite=True)
    assert read_image(beside).data.max() == 255 and _leftovers(tmp_path) == []

    # The file the layer is read from is never the output.
    widget.image.value = _open_with_napari(viewer, tmp_path / "out.tif")
    assert widget.export(tmp_path / "out.tif", overwrite=True) is None and "read from" in notes["error"][-1]


def _read_slowly(block: np.ndarray) -> np.ndarray:
    """A chunk of a store that takes its time (a network file system), so that a write lasts seconds."""
    time.sleep(0.05)
    return block


def test_cancel_during_export_leaves_nothing_at_the_path(qtbot, notes, tmp_path):
    da = pytest.importorskip("dask.array")
    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    stack = rng.random((200, 64, 64)).astype(np.float32)
    labels = (rng.random(stack.shape) < 0.02).astype(np.uint8)  # a different mask on every plane
    image = viewer.add_image(da.from_array(stack, chunks=(1, 64, 64)).map_blocks(_read_slowly), name="big")
    widget = _inpaint_widget(qtbot, viewer, image, viewer.add_labels(labels, name="labels"), "biharmonic")
    folder = tmp_path / "results"
    folder.mkdir()
    assert widget.export(folder / "out.ome.zarr") is not None
    qtbot.waitUntil(lambda: widget.progress.value > 0, timeout=WAIT_MS)  # crops are being filled
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert widget.progress.value == 0 and not notes["error"]
    assert "cancelled" in notes["info"][-1] and "nothing was written" in widget.status.value
    assert list(folder.iterdir()) == []  # neither the output nor its partial copy
    assert widget.run_button.enabled and widget.export_button.enabled


def test_the_save_dialog_chooses_an_existing_zarr_store_and_the_export_asks_to_replace_it(
    qtbot, notes, tmp_path, questions
):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QDialogButtonBox, QFileDialog

    from napari_inpaint.io import read_image

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask)
    store = tmp_path / "ramp inpainted.ome.zarr"
    store.mkdir()
    (store / "notes.txt").write_text("an earlier result")

    buttons = []

    def choose_the_store() -> None:
        dialog = QApplication.activeModalWidget()
        # A dialog left open is cancelled; the timer goes with the dialog (a later test must not see it fire).
        closer = QTimer(dialog, singleShot=True, interval=300)
        closer.timeout.connect(dialog.close)
        closer.start()
        assert isinstance(dialog, QFileDialog)
        dialog.setDirectory(str(tmp_path))
        dialog.selectFile(store.name)
        buttons.append(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save).text())
        dialog.accept()  # Qt's own dialog would open the folder, and stay open

    QTimer.singleShot(0, choose_the_store)
    questions.answer = False
    assert widget.export() is None and questions and "exists" in questions[-1]
    assert [p.name for p in store.iterdir()] == ["notes.txt"]  # declined: kept
    assert "left as it is" in notes["error"].pop() and buttons == ["&Save"]  # not "Open"
    QTimer.singleShot(0, choose_the_store)
    questions.answer = True
    assert widget.export() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert not notes["error"] and read_image(store).data.shape == image.data.shape


# -- the status line and the progress bar (issue 18) -------------------------------------------------


def test_the_status_line_says_what_a_run_would_do_as_soon_as_the_dock_opens(qtbot):
    viewer, _, _ = _damaged_ramp()
    inpaint_widget = InpaintWidget(viewer)
    qtbot.addWidget(inpaint_widget.native)
    assert inpaint_widget.status.value == "Will fill 100 px."
    empty = InpaintWidget(ViewerModel())
    qtbot.addWidget(empty.native)
    assert empty.status.value.startswith("Cannot run yet: choose an image layer and a mask layer")
    compare = CompareMethodsWidget(viewer)
    qtbot.addWidget(compare.native)
    assert compare.status.value.startswith("Will make ")
    detect = MaskFromImageWidget(viewer)
    qtbot.addWidget(detect.native)
    assert "Create mask" in detect.status.value


def test_an_outcome_stays_until_a_setting_changes(qtbot, notes):
    viewer = ViewerModel()
    rng = np.random.default_rng(0)
    stack = rng.random((150, 96, 96)).astype(np.float32)
    labels = (rng.random(stack.shape) < 0.02).astype(np.uint8)
    widget = _inpaint_widget(qtbot, viewer, viewer.add_image(stack, name="big"),
                             viewer.add_labels(labels, name="labels"), method="biharmonic")
    widget.run_button.native.click()
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget._preview_timer.isActive(), timeout=WAIT_MS)  # the bar's reset is no change
    widget.update_preview()
    assert widget.status.value == "Cancelled: nothing was added or changed."
    widget.dilate.value = 1
    widget.update_preview()
    assert widget.status.value.startswith("Will fill ")


def test_a_long_error_is_one_short_line_with_the_details_in_its_tooltip(qtbot, notes, register_method):
    url = "https://example.org/weights/" + "a-very-long-file-name-" * 4 + ".pth"
    message = f"could not fetch model 'toy' from {url}. " + "Without the network, do this and that. " * 20

    @register_method("offline")
    def fill(image, mask):
        raise OSError(message)

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="offline")
    width = widget.native.minimumSizeHint().width()
    _run(qtbot, widget)
    assert len(message) > 800 and notes["error"][-1] == f"Inpainting failed: {message}"  # whole in the note
    shown = widget.status.value
    assert shown.startswith("Inpainting failed: could not fetch model 'toy'") and len(shown) < 100
    assert shown.endswith("(more: hover here)") and widget.status.tooltip == f"Inpainting failed: {message}"
    assert widget.native.minimumSizeHint().width() <= width  # the dock is not widened
    widget.dilate.value = 1  # the next text is short: the tooltip says what the line is for again
    widget.update_preview()
    assert widget.status.value == "Will fill 140 px."
    assert widget.status.tooltip == "What a run will do, or what the last run did"


def test_a_long_stage_is_shortened_in_the_middle_to_fit_the_bar(qtbot, register_method):
    import threading

    release = threading.Event()
    stage = "a stage long enough to run past both ends of the progress bar of a dock as narrow as this one"

    def prepare(stack, *, check=None, progress=None, status=None):
        status(stage)
        progress(1, 2)  # the bar shows the stage and the share done
        release.wait(WAIT_MS / 1000)
        return 0.0

    @register_method("toy-slow", prepare=prepare)
    def fill(image, mask, *, prepared=None):
        return _known_mean(image, mask)

    viewer, image, mask = _damaged_ramp()
    widget = _inpaint_widget(qtbot, viewer, image, mask, method="toy-slow")
    widget.native.resize(310, 700)
    widget.native.show()
    stages = []
    widget.stage_changed.connect(stages.append)
    widget.run_button.native.click()
    bar = widget.progress.native
    qtbot.waitUntil(lambda: bar.text().endswith("%"), timeout=WAIT_MS)
    shown = bar.text()
    release.set()
    assert stages[-1] == stage and widget.progress.tooltip == stage
    assert bar.fontMetrics().horizontalAdvance(shown) <= bar.contentsRect().width()
    assert shown.startswith("a stage") and "…" in shown and shown.endswith("this one 40%")  # both ends kept
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert widget.status.value.startswith("Filled 100 px")


def test_learned_trains_near_the_holes_and_says_so(qtbot, notes):
    pytest.importorskip("torch")
    from napari_inpaint.methods.learned import NEIGHBOURS, _training_planes
    from napari_inpaint.registry import Stack

    viewer = ViewerModel()
    stack = np.stack([_ramp((32, 40)) + 5 * k for k in range(20)])
    holes = np.zeros(stack.shape, np.uint8)
    holes[[4, 11, 17], 10:16, 12:20] = 1
    widget = _inpaint_widget(qtbot, viewer, viewer.add_image(stack, name="planes"),
                             viewer.add_labels(holes, name="holes"), method="learned")
    for name, value in {"steps": 3, "seconds": 0.0, "crop_size": 16, "width": 4, "device": "cpu"}.items():
        widget.param_control(name).value = value
    stages = []
    widget.stage_changed.connect(stages.append)
    _run(qtbot, widget)
    assert not notes["error"]
    training = [stage for stage in stages if stage.startswith("training")]
    assert training == ["training the network on 15 of 20 planes (the 3 with holes and up to 2 on each side; "
                        "far planes serve less), 3 steps"]
    out = viewer.layers["planes inpainted"].data
    assert (out[holes == 0] == stack[holes == 0]).all()
    # The ramp is filled exactly by the biharmonic start, which 3 steps of training cannot beat: it is kept.
    assert np.allclose(out[holes > 0], stack[holes > 0], atol=1e-3)
    assert any(stage.endswith("the start is used") for stage in stages), stages
    # Which planes: those within NEIGHBOURS of a hole; a network to keep (train_model) learns from all.
    planes = Stack(stack[..., None], holes.astype(bool))
    expected = sorted({j for i in (4, 11, 17) for j in range(i - NEIGHBOURS, i + NEIGHBOURS + 1) if 0 <= j < 20})
    assert _training_planes(planes) == expected and _training_planes(planes, near_holes=False) == list(range(20))
