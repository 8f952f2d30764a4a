"""napari's File > Open and Save through napari-inpaint: the files it writes open with their calibration,
provenance and invented pixels, and layers are saved keeping theirs (on napari's ViewerModel)."""

import numpy as np
import pytest

pytest.importorskip("napari")
tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr", minversion="3")
da = pytest.importorskip("dask.array")

import napari
from napari.components import ViewerModel
from npe2 import PluginManager

from napari_inpaint import io
from napari_inpaint.napari.files import INVENTED_SUFFIX, get_reader
from napari_inpaint.napari.layers import INPAINT, PROVENANCE_KEY, Provenance

PLUGIN = "napari-inpaint"
MICRON = "micrometer"


@pytest.fixture(scope="module", autouse=True)
def plugins():
    """napari's plugins (this one and napari's builtins), as a napari window discovers them."""
    PluginManager.instance().discover(include_npe1=False)


def _open(path) -> list:
    return ViewerModel().open(str(path), plugin=PLUGIN)


def _units(layer) -> list[str]:
    return [str(unit) for unit in layer.units]


def _stack(shape=(3, 600, 500)) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 stack, and a mask of one plane's shape with a block and a dead row."""
    values = (np.arange(np.prod(shape)) % 4093).reshape(shape).astype(np.uint16)
    rows, columns = shape[-2:]
    mask = np.zeros((rows, columns), bool)
    mask[rows // 6 : rows // 6 + 10, columns // 3 : columns // 3 + 12] = True
    mask[rows // 2, :] = True
    return values, mask


def test_an_ome_zarr_output_opens_with_its_levels_calibration_provenance_and_invented_pixels(tmp_path):
    stack, mask = _stack()
    path = tmp_path / "cells inpainted.ome.zarr"
    like = io.calibrated(path, stack.shape, "zyx", (2.0, 0.5, 0.5), translation=(0.0, 10.0, -4.0),
                         units=(MICRON,) * 3)
    made = io.provenance("harmonic", {"tolerance": 0.1}, mask=mask, shape=stack.shape, source="cells")
    io.write_image(path, stack, like=like, provenance=made, invented=mask)

    image, invented = _open(path)
    assert (image.name, invented.name) == ("cells inpainted", "cells inpainted" + INVENTED_SUFFIX)
    # The pyramid, lazily: levels of the file, none read whole.
    assert image.multiscale and all(isinstance(level, da.Array) for level in image.data)
    assert [level.shape for level in image.data] == [(3, 600, 500), (3, 300, 250)]
    np.testing.assert_array_equal(np.asarray(image.data[0]), stack)
    np.testing.assert_array_equal(image.scale, (2.0, 0.5, 0.5))
    np.testing.assert_array_equal(image.translate, (0.0, 10.0, -4.0))
    assert _units(image) == [MICRON] * 3 and tuple(image.axis_labels) == ("z", "y", "x")
    record = image.metadata[PROVENANCE_KEY]
    assert record["method"] == "harmonic" and record["parameters"] == {"tolerance": 0.1}
    assert record["filled_pixels"] == 3 * mask.sum() and record["source"] == "cells"
    assert image.source.path == str(path) and image.source.reader_plugin == PLUGIN
    # The labels/invented group: a Labels layer over the image, the mask on every plane.
    labels = np.asarray(invented.data[0] if invented.multiscale else invented.data)
    assert labels.shape == stack.shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.broadcast_to(mask, stack.shape))
    np.testing.assert_array_equal(invented.scale, image.scale)
    np.testing.assert_array_equal(invented.translate, image.translate)
    assert _units(invented) == [MICRON] * 3


def test_ome_zarr_channels_open_as_layers_named_and_coloured_by_the_file(tmp_path):
    stack, _ = _stack((2, 64, 80))
    path = tmp_path / "two.ome.zarr"
    like = io.calibrated(path, stack.shape, "cyx", (1.0, 0.25, 0.25), units=(None, MICRON, MICRON))
    like.metadata.omero = {"channels": [{"label": "dapi", "color": "0000FF"}, {"label": "gfp", "color": "00FF00"}]}
    io.write_image(path, stack, like=like)

    layers = _open(path)
    assert [layer.name for layer in layers] == ["two dapi", "two gfp"]
    for index, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data), stack[index])
        np.testing.assert_array_equal(layer.scale, (0.25, 0.25))
        assert _units(layer) == [MICRON] * 2 and tuple(layer.axis_labels) == ("y", "x")
    np.testing.assert_allclose(layers[1].colormap.colors[-1], (0, 1, 0, 1))
    assert layers[0].blending == "additive"


def test_an_imagej_tiff_output_opens_with_its_calibration_provenance_and_the_mask_beside(tmp_path):
    stack, mask = _stack((4, 64, 80))
    path = tmp_path / "planes.tif"
    like = io.calibrated(path, stack.shape, "zyx", (1.5, 0.25, 0.25), units=(MICRON,) * 3, dtype=stack.dtype)
    io.write_image(path, stack, like=like, provenance=io.provenance("telea", {}, mask=mask), invented=mask)

    image, invented = _open(path)
    np.testing.assert_array_equal(image.data, stack)
    np.testing.assert_allclose(image.scale, (1.5, 0.25, 0.25))
    assert _units(image) == [MICRON] * 3 and tuple(image.axis_labels) == ("z", "y", "x")
    assert image.metadata[PROVENANCE_KEY]["method"] == "telea"  # from ImageJ's Info
    assert invented.name == "planes" + INVENTED_SUFFIX  # planes.invented.tif, 0/255 in the file
    np.testing.assert_array_equal(np.asarray(invented.data), mask.astype(np.uint8))
    np.testing.assert_allclose(invented.scale, (0.25, 0.25))


def test_rgb_tiff_and_plain_zarr_outputs(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "photo.tif", rgb, photometric="rgb", metadata={"napari_inpaint": {"method": "x"}})
    (photo,) = _open(tmp_path / "photo.tif")
    assert photo.rgb and photo.data.shape == (40, 50, 3) and photo.metadata[PROVENANCE_KEY] == {"method": "x"}

    stack, mask = _stack((2, 30, 40))
    made = io.provenance("harmonic", {})
    io.write_image(tmp_path / "plain.zarr", stack, axes="zyx", provenance=made, invented=np.stack([mask, mask]))
    image, invented = _open(tmp_path / "plain.zarr")
    np.testing.assert_array_equal(np.asarray(image.data), stack)
    assert tuple(image.axis_labels) == ("z", "y", "x") and image.metadata[PROVENANCE_KEY]["method"] == "harmonic"
    np.testing.assert_array_equal(np.asarray(invented.data), np.stack([mask, mask]).astype(np.uint8))


def test_the_reader_leaves_other_files_to_other_readers(tmp_path):
    zarr.open_group(tmp_path / "arrays.zarr", mode="w").create_array("a", shape=(4, 4), dtype="uint8")
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "arrays.zarr")) is None  # a group of arrays: no image of its own
    assert get_reader(str(tmp_path / "notes.txt")) is None and get_reader(str(tmp_path / "gone.tif")) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


# -- writing: napari's File > Save ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["saved.ome.zarr", "saved.tif"])
def test_saved_layers_keep_calibration_provenance_and_invented_pixels(tmp_path, name):
    stack, mask = _stack((3, 64, 80))
    viewer = ViewerModel()
    image = viewer.add_image(stack, name="filled", scale=(2.0, 0.5, 0.5), translate=(0.0, 3.0, 4.0),
                             units=MICRON, axis_labels=("z", "y", "x"))
    image.metadata[PROVENANCE_KEY] = Provenance("raw", INPAINT, method="harmonic", mask_layer="damage",
                                                details={"scope": "stack"})
    holes = viewer.add_labels(np.broadcast_to(mask, stack.shape).astype(np.uint8), name="holes",
                              scale=image.scale, translate=image.translate)
    written = napari.save_layers(str(tmp_path / name), [image, holes], plugin=PLUGIN)
    assert written[0] == str(tmp_path / name) and all((tmp_path / p).exists() for p in written)

    back, invented = _open(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(back.data[0] if back.multiscale else back.data), stack)
    np.testing.assert_allclose(back.scale, image.scale)
    assert _units(back) == [MICRON] * 3
    if name.endswith(".ome.zarr"):  # a TIFF holds no translation
        np.testing.assert_allclose(back.translate, image.translate)
    record = back.metadata[PROVENANCE_KEY]
    assert (record["method"], record["source"], record["mask_layer"]) == ("harmonic", "raw", "damage")
    labels = np.asarray(invented.data[0] if invented.multiscale else invented.data)
    np.testing.assert_array_equal(labels, np.broadcast_to(mask, stack.shape))


def test_a_saved_rgb_layer_keeps_its_calibration_in_ome_zarr_as_coloured_channels(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    layer = ViewerModel().add_image(rgb, name="photo", scale=(0.5, 0.5), units=MICRON)
    napari.save_layers(str(tmp_path / "photo.ome.zarr"), [layer], plugin=PLUGIN)

    layers = _open(tmp_path / "photo.ome.zarr")
    assert [layer.name for layer in layers] == ["photo red", "photo green", "photo blue"]
    for index, channel in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(channel.data), rgb[..., index])
        np.testing.assert_allclose(channel.scale, (0.5, 0.5))
        assert _units(channel) == [MICRON] * 2


def test_saved_labels_keep_their_values_and_calibration(tmp_path):
    labels = np.zeros((30, 40), np.int32)
    labels[5:10, 5:10], labels[20:25, 30:35] = 3, 70000
    layer = ViewerModel().add_labels(labels, name="cells", scale=(0.25, 0.25), units=MICRON)
    napari.save_layers(str(tmp_path / "cells.ome.zarr"), [layer], plugin=PLUGIN)
    (back,) = _open(tmp_path / "cells.ome.zarr")
    np.testing.assert_array_equal(np.asarray(back.data), labels)
    np.testing.assert_allclose(back.scale, (0.25, 0.25))


def test_saving_never_replaces_a_zarr_store_and_says_why(tmp_path):
    store = tmp_path / "kept.ome.zarr"
    io.write_image(store, np.ones((8, 8), np.uint8), axes="yx")
    layer = ViewerModel().add_image(np.zeros((8, 8), np.uint8), name="new")
    with pytest.raises(FileExistsError, match=r"zarr store is a folder.*choose another name"):
        napari.save_layers(str(store), [layer], plugin=PLUGIN)
    np.testing.assert_array_equal(np.asarray(io.read_image(store).data), 1)  # untouched
