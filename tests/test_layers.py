"""Layer helpers (masks from layers, result layers, provenance), sample data, console helpers, manifest."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel
from test_reference import _drifting_stack

import napari_inpaint
from napari_inpaint import ARTIFACTS, inpaint, list_methods
from napari_inpaint.detect import mask_from_image
from napari_inpaint.evaluation.sample import LABELS, damaged_cell
from napari_inpaint.napari.layers import (
    COMPARE,
    DETECT,
    INPAINT,
    Provenance,
    add_mask,
    add_result,
    layer_mask,
    provenance_of,
    reference_data,
)
from napari_inpaint.napari.sample import make_sample_data

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

    # A label the layer does not hold: the message names those it holds (by name where it has names).
    with pytest.raises(ValueError, match=r"no pixel of label 5; it holds labels 1, 2: choose one of them"):
        layer_mask(layer, image, label=5)
    (_, _, _), (sample, sample_meta, _) = make_sample_data()
    named = viewer.add_labels(np.where(sample == 2, 2, 0).astype(np.uint8), **sample_meta)
    with pytest.raises(ValueError, match=r"no pixel of label 3; it holds label 2 \(scratch\)"):
        layer_mask(named, viewer.add_image(sample), label=3)

    wrong = viewer.add_labels(np.zeros((7, 7), np.uint8))
    with pytest.raises(ValueError, match="same grid"):
        layer_mask(wrong, image)
    with pytest.raises(TypeError, match="Labels, Shapes or Points"):
        layer_mask(image, image)


# -- provenance and result layers ---------------------------------------------------------


def test_provenance_is_a_frozen_record_with_plain_data():
    made = Provenance("cells", INPAINT, method="tv", parameters={"iterations": 5}, mask_layer="bad",
                      details={"plane": [2], "scope": "plane"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.method = "harmonic"
    record = made.to_dict()
    assert json.loads(json.dumps(record)) == record  # plain data, ready for JSON
    assert (record["source"], record["made_by"]) == ("cells", INPAINT)
    assert record["parameters"] == {"iterations": 5} and record["details"]["plane"] == [2]
    assert record["version"] == napari_inpaint.__version__ and "T" in record["time"]
    given = {"k": 5.0}
    detected = Provenance("cells", DETECT, parameters=given)
    given["k"] = 1.0  # the record keeps what was used
    assert detected.parameters == {"k": 5.0}
    with pytest.raises(ValueError, match="made_by"):
        Provenance("cells", "guess")


def test_result_layers_of_a_plane_sit_over_the_stack():
    viewer = ViewerModel()
    stack = np.zeros((4, 20, 30), np.float32)
    source = viewer.add_image(stack, name="s", scale=(3, 0.5, 0.25), translate=(7, 1, 2), rotate=30,
                              units=("um", "nm", "nm"), axis_labels=("z", "y", "x"))
    made = Provenance("s", COMPARE, details={"plane": [1]})
    plane = add_result(viewer, source, np.ones((20, 30), np.float32), made, name="plane")
    hole = add_mask(viewer, source, np.ones((20, 30), bool), name="hole", provenance=made)
    for layer in (plane, hole):
        assert layer.ndim == 2 and provenance_of(layer) is made
        np.testing.assert_allclose(layer.scale, source.scale[1:])
        np.testing.assert_allclose(layer.translate, source.translate[1:])
        np.testing.assert_allclose(layer.rotate, source.rotate[1:, 1:])
        assert layer.units == source.units[1:] and layer.axis_labels == source.axis_labels[1:]
    assert provenance_of(source) is None
    with pytest.raises(ValueError, match="fits neither"):
        add_result(viewer, source, np.ones((20, 31), np.float32), made)
    with pytest.raises(ValueError, match="fits neither"):
        add_mask(viewer, source, np.ones(30, bool), provenance=made)
    # A replaced layer takes the source's current calibration; one of other axes takes its place in the list.
    source.scale, source.translate = (1, 4, 8), (0, -1, -2)
    again = add_mask(viewer, source, np.zeros((20, 30), bool), name="hole", provenance=made)
    assert again is hole and tuple(hole.scale) == (4, 8) and tuple(hole.translate) == (-1, -2)
    index = viewer.layers.index(plane)
    whole = add_result(viewer, source, stack, made, name="plane")
    assert whole.ndim == 3 and viewer.layers.index(whole) == index and "plane" not in [
        layer.name for layer in viewer.layers if layer is not whole
    ]
    np.testing.assert_allclose(whole.scale, source.scale)
    # A layer of the same name that napari-inpaint did not make is never replaced.
    user = viewer.add_image(np.zeros((20, 30)), name="s inpainted")
    add_result(viewer, source, stack, Provenance("s", INPAINT, method="harmonic"))
    assert (user.data == 0).all() and provenance_of(user) is None and len(viewer.layers) == 5
    # Nor one made from another source.
    other = viewer.add_image(stack, name="t")
    add_result(viewer, other, stack, Provenance("t", INPAINT), name="s inpainted [1]")
    assert provenance_of(viewer.layers["s inpainted [1]"]).source == "s" and len(viewer.layers) == 7


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
    made = Provenance(layer.name, INPAINT, method="harmonic", mask_layer="damage")
    out = add_result(viewer, layer, filled, made)
    clean, _, _ = damaged_cell()
    hot = labels == LABELS["hot pixels"]
    assert out.name == "damaged cell inpainted" and provenance_of(out).mask_layer == "damage"
    assert (out.data[~hot] == image[~hot]).all()
    # Filled hot pixels are far closer to the clean image than the saturated values were.
    error = np.abs(out.data[hot].astype(int) - clean[hot]).mean()
    assert error < 0.2 * np.abs(image[hot].astype(int) - clean[hot]).mean()
    detected = add_mask(viewer, layer, mask_from_image(layer.data, saturated=True))
    assert detected.name == "damaged cell mask" and (detected.data.astype(bool) == (image == 255)).all()
    assert provenance_of(detected).source == "damaged cell"


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
    made = provenance_of(result)
    assert (made.made_by, made.method, made.mask_layer, made.source) == (INPAINT, "harmonic", "bad", "img")
    assert made.details == {"scope": "stack", "dilate": 0, "noise": "none", "seed": 0, "label": "all"}
    inpaint_layer(viewer, "img", "bad", "tv", params={"iterations": 50}, noise="gaussian", seed=1)  # a rerun replaces
    assert [layer.name for layer in viewer.layers] == ["img", "bad", "img inpainted"]
    made = provenance_of(viewer.layers["img inpainted"])
    assert made.method == "tv" and made.parameters["iterations"] == 50 and set(made.parameters) == {
        p.name for p in napari_inpaint.get_method("tv").params
    }
    assert made.details == {"scope": "stack", "dilate": 0, "noise": "gaussian", "seed": 1, "label": "all"}


def test_console_helper_does_what_the_widget_does(qtbot, monkeypatch, tmp_path):
    """One call with the widget's settings: the same pixels, the same record (issue 13)."""
    from napari_inpaint import inpaint_layer
    from napari_inpaint.napari.widgets import InpaintWidget
    from napari_inpaint.napari.widgets._common import SETTINGS_ENV

    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path))
    viewer = ViewerModel()
    (image, image_meta, _), (labels, labels_meta, _) = make_sample_data()
    source = viewer.add_image(np.stack([image, image[::-1]]), **image_meta)
    viewer.add_labels(labels, **labels_meta)
    viewer.dims.set_current_step(0, 1)
    settings = {"label": LABELS["debris"], "dilate": 2, "scope": "plane", "noise": "gaussian"}
    console = inpaint_layer(
        viewer, "damaged cell", "damage", "exemplar", params={"patch_size": 7}, new_layer=True, overlay=True,
        **settings,
    )
    assert console.name == "damaged cell inpainted (exemplar)"

    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value, widget.mask.value, widget.method.value = source, viewer.layers["damage"], "exemplar"
    widget.mask_label.value, widget.dilate.value, widget.scope.value = LABELS["debris"], 2, "plane"
    widget.noise.value, widget.overlay.value, widget.params["patch_size"].value = "gaussian", True, 7
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    made = viewer.layers["damaged cell inpainted"]
    np.testing.assert_array_equal(made.data, console.data)
    mine, theirs = provenance_of(console).to_dict(), provenance_of(made).to_dict()
    assert {k: v for k, v in mine.items() if k != "time"} == {k: v for k, v in theirs.items() if k != "time"}
    assert mine["details"] == {"scope": "plane", "dilate": 2, "noise": "gaussian", "seed": 0, "plane": [1],
                               "label": LABELS["debris"]}
    assert (made.data[0] == source.data[0]).all() and (made.data[1] != source.data[1]).any()
    np.testing.assert_array_equal(viewer.layers["damaged cell inpainted pixels (exemplar)"].data,
                                  viewer.layers["damaged cell inpainted pixels"].data)
    with pytest.raises(ValueError, match="scope must be one of"):
        inpaint_layer(viewer, "damaged cell", "damage", scope="all")


def test_reference_data_of_a_layer_fits_the_image():
    viewer = ViewerModel()
    stack = viewer.add_image(np.zeros((3, 20, 30), np.float32), name="stack")
    plane = viewer.add_image(np.ones((20, 30), np.float32), name="plane")
    colour = viewer.add_image(np.zeros((20, 30, 3), np.uint8), name="colour", rgb=True)
    assert reference_data(plane, stack) is plane.data  # one plane serves every plane
    assert reference_data(stack, stack) is stack.data
    assert reference_data(plane, colour).shape == (20, 30, 1)  # and every channel
    assert reference_data(colour, colour) is colour.data
    with pytest.raises(ValueError, match=r"pixel grid \(3, 20, 30\) but image 'plane' has \(20, 30\)"):
        reference_data(stack, plane)
    with pytest.raises(ValueError, match="is RGB but image 'plane' is not"):
        reference_data(colour, plane)
    with pytest.raises(TypeError, match="use an Image layer as the reference"):
        reference_data(viewer.add_labels(np.zeros((20, 30), np.uint8)), plane)


def test_console_helper_fills_from_a_reference():
    from napari_inpaint import inpaint_layer

    truth = _drifting_stack(planes=3)
    hole = np.zeros(truth.shape[1:], np.uint8)
    hole[40:80, 60:120] = 1
    labels = np.zeros(truth.shape, np.uint8)
    labels[1] = hole
    viewer = ViewerModel()
    viewer.add_image(np.where(labels > 0, 0, truth), name="drift")
    viewer.add_labels(labels, name="bad")

    def hole_error(layer) -> float:
        return float(np.abs(layer.data[1][hole > 0] - truth[1][hole > 0]).mean())

    smooth = hole_error(inpaint_layer(viewer, "drift", "bad", "biharmonic"))
    result = inpaint_layer(viewer, "drift", "bad", "guided", reference="adjacent")
    assert hole_error(result) < smooth / 5
    assert provenance_of(result).details.items() >= {"reference": "adjacent", "align": True}.items()
    # A layer (or its name) of one plane serves every plane; an array is passed on.
    viewer.add_image(truth[0], name="earlier")
    result = inpaint_layer(viewer, "drift", "bad", "guided", reference="earlier")
    assert hole_error(result) < smooth / 5
    assert provenance_of(result).details.items() >= {
        "reference": "layer", "reference_layer": "earlier", "align": True
    }.items()
    result = inpaint_layer(viewer, "drift", "bad", "guided", reference=truth[2], align=False)
    assert provenance_of(result).details.items() >= {"reference": "array", "align": False}.items()
    with pytest.raises(ValueError, match="fills from reference data"):
        inpaint_layer(viewer, "drift", "bad", "guided")


# -- multiscale layers (the levels napari's zarr reader and napari-ome-zarr give) -----------------


def _mean_pyramid(image: np.ndarray, levels: int = 3) -> list:
    """Lazy levels of ``image`` (planes 64x64 per chunk), each the mean of 2x2 blocks of the one before."""
    da = pytest.importorskip("dask.array")
    pyramid = [image]
    for _ in range(levels - 1):
        *stack, rows, cols = pyramid[-1].shape
        pyramid.append(pyramid[-1].reshape(*stack, rows // 2, 2, cols // 2, 2).mean((-3, -1)))
    chunks = (1,) * (image.ndim - 2) + (64, 64)
    return [da.from_array(level.astype(image.dtype), chunks=chunks) for level in pyramid]


def test_a_multiscale_layer_is_filled_at_full_resolution_and_shown_as_a_pyramid():
    from napari_inpaint import inpaint_layer
    from napari_inpaint.napari.layers import grid_shape, layer_data

    yy, xx = np.indices((256, 256))
    truth = np.stack([2.0 * yy + 3.0 * xx + 50 * i for i in range(3)]).astype(np.float32)
    hole = np.zeros((256, 256), bool)
    hole[100:110, 37:61] = hole[200:203, 10:250] = True
    damaged = np.where(hole, np.float32(-500), truth)
    viewer = ViewerModel()
    source = viewer.add_image(_mean_pyramid(damaged), name="slide", multiscale=True, scale=(1, 0.5, 0.5))
    assert grid_shape(source) == (3, 256, 256) and layer_data(source) is source.data[0]
    viewer.add_labels(hole.astype(np.uint8), name="bad", scale=(0.5, 0.5))
    result = inpaint_layer(viewer, "slide", "bad", "harmonic")

    assert result.multiscale and [k.shape for k in result.data] == [k.shape for k in source.data]
    np.testing.assert_allclose(np.asarray(result.data[0]), truth, atol=1e-3)  # a ramp is filled exactly
    np.testing.assert_array_equal(result.scale, source.scale)
    for k in (1, 2):  # a coarser level: the source's, with the mean of the fill over the holes
        level, before = np.asarray(result.data[k]), np.asarray(source.data[k])
        under = np.asarray(_mean_pyramid(hole.astype(np.float32))[k]) > 0
        np.testing.assert_allclose(level, np.asarray(_mean_pyramid(truth)[k]), atol=1e-3)
        assert (level[:, ~under] == before[:, ~under]).all() and (level[:, under] != before[:, under]).all()

    # The current plane only; an integer image's coarser levels are rounded into its dtype.
    viewer.add_image(_mean_pyramid(damaged.astype(np.uint16)), name="counts", multiscale=True)
    viewer.dims.set_current_step(0, 1)
    result = inpaint_layer(viewer, "counts", "bad", "harmonic", scope="plane")
    coarse, before = np.asarray(result.data[1]), np.asarray(viewer.layers["counts"].data[1])
    assert coarse.dtype == np.uint16 and (coarse[[0, 2]] == before[[0, 2]]).all()
    np.testing.assert_allclose(coarse[1], np.asarray(_mean_pyramid(truth)[1])[1], atol=0.5)


def test_block_means_at_the_edge_of_an_odd_level():
    from napari_inpaint.napari.fill import pyramid

    da = pytest.importorskip("dask.array")
    image = np.arange(35.0).reshape(5, 7)
    coarse = da.from_array(np.zeros((3, 4)), chunks=(2, 2))  # levels rounded up: 5x7 -> 3x4
    invented = np.zeros((5, 7), bool)
    invented[4, 6] = invented[0, 0] = True
    level = np.asarray(pyramid([image, coarse], da.from_array(image, chunks=3), invented)[1])
    expected = np.zeros((3, 4))
    expected[0, 0], expected[2, 3] = image[:2, :2].mean(), image[4, 6]  # the edge block is one pixel
    np.testing.assert_array_equal(level, expected)


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
