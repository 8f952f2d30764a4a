"""Image files at any size with what scientists need kept: OME-Zarr pyramids and TIFF metadata, provenance."""

import json

import numpy as np
import pytest

from napari_inpaint import inpaint
from napari_inpaint.io import calibrated, invented_path, provenance, read_image, write_image

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr", minversion="3")


def _stack() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :400]
    planes = np.stack([1000 + 300 * np.sin(yy / (20 + c)) + 200 * np.cos(xx / 30) for c in range(2)])
    mask = np.zeros((300, 400), bool)
    mask[100:120, 200:230] = True
    mask[128:130, :] = True  # a dead row across
    return (planes + rng.normal(0, 5, planes.shape)).astype(np.uint16), mask


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_keeps_axes_scale_translation_and_rebuilds_the_pyramid(tmp_path, version):
    ome_zarr = pytest.importorskip("ome_zarr.writer")
    from ome_zarr.format import FormatV04, FormatV05

    image, mask = _stack()
    root = zarr.open_group(tmp_path / "in.ome.zarr", mode="w", zarr_format=2 if version == "0.4" else 3)
    ome_zarr.write_image(image, root, axes="cyx", fmt=FormatV04() if version == "0.4" else FormatV05(),
                         storage_options={"chunks": (1, 128, 128)})
    source = read_image(tmp_path / "in.ome.zarr")
    assert source.format == "ome-zarr" and source.axes == "cyx" and source.data.chunksize == (1, 128, 128)
    made = provenance("harmonic", {}, mask=mask, shape=(2, 300, 400))
    filled = inpaint(source.data, mask, "harmonic", channel_axis=source.channel_axis)
    write_image(tmp_path / "out.ome.zarr", filled, like=source, provenance=made, invented=mask)

    out = read_image(tmp_path / "out.ome.zarr")
    expected = inpaint(image, mask, "harmonic", channel_axis=0)
    np.testing.assert_array_equal(np.asarray(out.data), expected)
    assert out.metadata.version == version and out.metadata.axes == source.metadata.axes
    assert out.metadata.transforms == source.metadata.transforms
    assert out.metadata.shapes == source.metadata.shapes
    group = zarr.open_group(tmp_path / "out.ome.zarr", mode="r")
    level = group["1"][:].astype(float)  # the mean of each 2x2 block of the filled image, rounded
    assert np.abs(level - expected.reshape(2, 150, 2, 200, 2).mean(axis=(2, 4))).max() <= 0.5
    assert group.attrs["napari_inpaint"]["filled_pixels"] == 2 * mask.sum()
    invented = group["labels/invented/0"][:]
    assert invented.shape == (1, 300, 400) and np.array_equal(invented[0] > 0, mask)
    # The reference implementation reads it: the image and its label image.
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(tmp_path / "out.ome.zarr")))())
    assert [d.shape for d in nodes[0].data] == list(source.metadata.shapes) and len(nodes) == 3


def test_tiff_to_ome_zarr_carries_the_calibration(tmp_path):
    image, _ = _stack()
    stack = np.stack([image, image + 7])  # ZCYX
    tifffile.imwrite(tmp_path / "in.tif", stack, imagej=True, resolution=(4.0, 4.0),
                     metadata={"axes": "ZCYX", "unit": "um", "spacing": 0.5})
    source = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.ome.zarr", source.data, like=source)
    out = read_image(tmp_path / "out.ome.zarr")
    assert out.axes == "czyx"  # OME-Zarr's order: channels before space
    assert out.metadata.transforms[0] == [{"type": "scale", "scale": [1.0, 0.5, 0.25, 0.25]}]
    assert out.metadata.axes[-1] == {"name": "x", "type": "space", "unit": "micrometer"}
    np.testing.assert_array_equal(np.asarray(out.data), np.moveaxis(stack, 1, 0))


@pytest.mark.parametrize("lazy", [False, True], ids=["in-memory", "lazy"])
def test_imagej_hyperstack_keeps_axes_calibration_and_gets_provenance(tmp_path, lazy):
    image, mask = _stack()
    stack = np.stack([image, image + 7])  # ZCYX
    labels = ["a", "b", "c", "d"]
    calibration = {"axes": "ZCYX", "unit": "um", "spacing": 0.5, "finterval": 2.0, "Labels": labels}
    tifffile.imwrite(tmp_path / "in.tif", stack, imagej=True, resolution=(4.0, 4.0),
                     metadata={**calibration, "Info": "acquired by hand", "Properties": {"stage": "3"}})
    source = read_image(tmp_path / "in.tif", lazy=lazy)
    assert source.axes == "ZCYX" and source.channel_axis == 1
    assert isinstance(source.data, np.ndarray) != lazy
    filled = inpaint(source.data, mask, "harmonic", channel_axis=1)
    made = provenance("harmonic", {})
    write_image(tmp_path / "out.tif", filled, like=source, provenance=made, invented=mask)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZCYX"
        meta = tif.imagej_metadata
        assert (meta["unit"], meta["spacing"], meta["finterval"], meta["Labels"]) == ("um", 0.5, 2.0, labels)
        assert meta["Properties"] == {"stage": "3"} and meta["Info"].startswith("acquired by hand")
        assert json.loads(meta["Info"].split("napari-inpaint: ")[1])["method"] == "harmonic"
        assert tif.pages[0].resolution == (4.0, 4.0)
        expected = inpaint(stack, mask, "harmonic", channel_axis=1)
        np.testing.assert_array_equal(tif.series[0].asarray(), expected)
    beside = tifffile.imread(invented_path(tmp_path / "out.tif"))
    assert beside.dtype == np.uint8 and np.array_equal(beside > 0, mask) and beside.max() == 255


@pytest.mark.parametrize("lazy", [False, True], ids=["in-memory", "lazy"])
def test_ome_tiff_keeps_its_ome_xml_with_the_provenance_annotated(tmp_path, lazy):
    image, mask = _stack()
    tifffile.imwrite(tmp_path / "in.ome.tif", image, ome=True, tile=(128, 128), compression="zlib",
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "\u00b5m",
                               "Channel": {"Name": ["dapi", "gfp"]}})
    source = read_image(tmp_path / "in.ome.tif", lazy=lazy)
    filled = inpaint(source.data, mask, "harmonic", channel_axis=0)
    made = provenance("harmonic", {}, mask=mask)
    write_image(tmp_path / "out.ome.tif", filled, like=source, provenance=made)
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tif:
        xml = tif.ome_metadata
        assert tif.is_ome and tif.pages[0].is_tiled and tif.pages[0].compression == 8
        assert 'PhysicalSizeX="0.25"' in xml and 'Name="gfp"' in xml and 'Namespace="napari-inpaint"' in xml
        assert '<M K="filled_pixels">1400</M>' in xml and "AnnotationRef" in xml
        expected = inpaint(image, mask, "harmonic", channel_axis=0)
        np.testing.assert_array_equal(tif.series[0].asarray(), expected)


def test_plain_tiff_keeps_description_resolution_and_records_provenance(tmp_path):
    image, mask = _stack()
    tifffile.imwrite(tmp_path / "in.tif", image[0], description="scope v2, 20x", resolution=(3.0, 3.0),
                     resolutionunit="INCH", metadata={"axes": "YX", "stage": 5})
    source = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.tif", inpaint(source.data, mask, "harmonic"), like=source,
                provenance=provenance("harmonic", {}, mask=mask))
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert page.description == "scope v2, 20x"
        assert page.resolution == (3.0, 3.0) and page.resolutionunit == 2  # inches
        shaped = tif.shaped_metadata[0]
        assert shaped["stage"] == 5 and shaped["napari_inpaint"]["filled_pixels"] == mask.sum()
        assert page.software.startswith("napari-inpaint")


# --------------------------------------------------------------------------- inputs kept, metadata round trips


def test_an_output_that_is_inside_or_holds_the_input_is_refused(tmp_path, monkeypatch):
    image = np.arange(64, dtype=np.uint16).reshape(8, 8)
    folder = tmp_path / "all.zarr"
    folder.mkdir()
    write_image(folder / "in.zarr", image)
    source = read_image(folder / "in.zarr")
    monkeypatch.chdir(folder)
    (folder / "link.zarr").symlink_to(folder / "in.zarr")
    for output, where in [("in.zarr", "is"), ("link.zarr", "is"), ("in.zarr/out.zarr", "lies inside"),
                          ("../all.zarr", "holds")]:
        with pytest.raises(ValueError, match=f"{where} the input"):
            write_image(output, source.data + 1, like=source, overwrite=True)
    np.testing.assert_array_equal(np.asarray(read_image(folder / "in.zarr").data), image)
    assert sorted(p.name for p in folder.iterdir()) == ["in.zarr", "link.zarr"]
    tifffile.imwrite(tmp_path / "in.tif", image)
    source = read_image(tmp_path / "in.tif")
    with pytest.raises(ValueError, match="is the input"):  # the mask beside the output would replace the input
        write_image(tmp_path / "in.tif", source.data, like=source, invented=image > 9, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "in.tif"), image)


def test_a_level_read_is_written_with_its_own_scale_and_the_levels_below(tmp_path):
    image = np.random.default_rng(0).random((2, 601, 517)).astype(np.float32)
    like = calibrated("in.ome.zarr", image.shape, "zyx", (3.0, 0.5, 0.5), translation=(0, 10, 20),
                      units=("micrometer",) * 3)
    write_image(tmp_path / "in.ome.zarr", image, like=like)
    full = read_image(tmp_path / "in.ome.zarr")
    assert full.metadata.shapes == [(2, 601, 517), (2, 300, 258)]
    level = read_image(tmp_path / "in.ome.zarr", level=1)
    write_image(tmp_path / "out.ome.zarr", level.data, like=level)
    out = read_image(tmp_path / "out.ome.zarr")
    assert out.metadata.transforms == full.metadata.transforms[1:] and out.metadata.shapes == [(2, 300, 258)]
    assert out.metadata.transforms[0][0]["scale"] == [3.0, 1.0, 1.0] and out.metadata.axes == full.metadata.axes
    # Odd sizes: the mean of each 2x2 block (the last row and column left out, as the level is sized).
    expected = image[:, :600, :516].reshape(2, 300, 2, 258, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(np.asarray(out.data), expected, rtol=1e-6)


def test_levels_rounded_up_take_their_last_block_from_the_edge(tmp_path):
    from napari_inpaint.io import Image
    from napari_inpaint.io.omezarr import Multiscale

    image = np.random.default_rng(0).random((301, 303)).astype(np.float32)
    shapes = [(301, 303), (151, 152), (76, 76)]
    levels = Multiscale([{"name": "y"}, {"name": "x"}],
                        [[{"type": "scale", "scale": [2.0**i] * 2}] for i in range(3)], shapes, version="0.4")
    write_image(tmp_path / "out.ome.zarr", image, like=Image(None, "yx", "ome-zarr", None, levels))
    group = zarr.open_group(tmp_path / "out.ome.zarr", mode="r")
    first = np.pad(image, ((0, 1), (0, 1)), mode="edge").reshape(151, 2, 152, 2).mean(axis=(1, 3))
    second = np.pad(first, ((0, 1), (0, 0)), mode="edge").reshape(76, 2, 76, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(group["1"][:], first, rtol=1e-6)
    np.testing.assert_allclose(group["2"][:], second, rtol=1e-6)
    assert read_image(tmp_path / "out.ome.zarr").metadata.version == "0.4"


def test_image_wide_transformations_scale_the_levels_translation(tmp_path):
    group = zarr.open_group(tmp_path / "in.ome.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(4, 4), dtype="u1", chunk_key_encoding={"name": "v2", "separator": "/"})
    group.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 2.0]}, {"type": "translation", "translation": [1.0, 1.0]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [3.0, 3.0]}],
    }]
    assert read_image(tmp_path / "in.ome.zarr").metadata.transforms == [
        [{"type": "scale", "scale": [3.0, 6.0]}, {"type": "translation", "translation": [3.0, 3.0]}]
    ]


def test_plain_zarr_keeps_dtype_attributes_and_axis_names(tmp_path):
    stored = zarr.create_array(tmp_path / "in.zarr", shape=(40, 50), chunks=(20, 25), dtype="i2",
                               attributes={"exposure": 0.1}, dimension_names=["y", "x"])
    stored[:] = -7
    source = read_image(tmp_path / "in.zarr")
    assert source.axes == "yx"
    write_image(tmp_path / "out.zarr", source.data, like=source, provenance=provenance("harmonic", {}))
    out = zarr.open_array(tmp_path / "out.zarr", mode="r")
    assert out.dtype == np.int16 and out.chunks == (20, 25) and (out[:] == -7).all()
    assert out.attrs["exposure"] == 0.1 and out.attrs["napari_inpaint"]["method"] == "harmonic"
    assert out.metadata.dimension_names == ("y", "x")


def test_an_ome_tiff_name_gets_ome_xml_with_the_provenance(tmp_path):
    image = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
    tifffile.imwrite(tmp_path / "in.tif", image, description="scope", resolution=(10.0, 10.0),
                     resolutionunit="CENTIMETER")
    source = read_image(tmp_path / "in.tif")
    for output, like in [("fresh.ome.tif", None), ("from-plain.ome.tif", source)]:
        write_image(tmp_path / output, image, like=like, axes="ZYX", provenance=provenance("harmonic", {}))
        with tifffile.TiffFile(tmp_path / output) as tif:
            assert tif.is_ome and tif.series[0].axes == "ZYX"
            assert 'Namespace="napari-inpaint"' in tif.ome_metadata and '<M K="method">harmonic' in tif.ome_metadata
            np.testing.assert_array_equal(tif.series[0].asarray(), image)
    with tifffile.TiffFile(tmp_path / "from-plain.ome.tif") as tif:
        assert tif.pages[0].resolution == (10.0, 10.0)


def test_an_imagej_hyperstack_refuses_pixels_it_cannot_hold(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((2, 16, 16), np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 2.0})
    source = read_image(tmp_path / "in.tif")
    with pytest.raises(ValueError, match="ImageJ hyperstack holds uint8, uint16, int16 or float32 pixels, not float64"):
        write_image(tmp_path / "out.tif", np.zeros((2, 16, 16)), like=source)
    assert [p.name for p in tmp_path.iterdir()] == ["in.tif"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_keeps_its_version_name_omero_and_attributes_and_the_new_provenance(tmp_path, version):
    import dataclasses

    like = calibrated("in.ome.zarr", (2, 40, 40), "cyx", (1, 0.5, 0.5), units=(None, "micrometer", "micrometer"))
    omero = {"channels": [{"label": "dapi"}, {"label": "gfp"}]}
    like.metadata = dataclasses.replace(like.metadata, version=version, omero=omero, attributes={"lab": "x"},
                                        name="cells")
    image = np.arange(2 * 40 * 40, dtype=np.uint16).reshape(2, 40, 40)
    write_image(tmp_path / "in.ome.zarr", image, like=like, provenance=provenance("telea", {}))
    source = read_image(tmp_path / "in.ome.zarr")
    write_image(tmp_path / "out.ome.zarr", source.data, like=source, provenance=provenance("harmonic", {}))
    out = read_image(tmp_path / "out.ome.zarr")
    assert (out.metadata.version, out.metadata.name, out.metadata.omero) == (version, "cells", omero)
    assert out.metadata.attributes == {"lab": "x"} and out.metadata.axes == like.metadata.axes
    assert out.data.dtype == np.uint16 and np.array_equal(np.asarray(out.data), image)
    assert zarr.open_group(tmp_path / "out.ome.zarr", mode="r").attrs["napari_inpaint"]["method"] == "harmonic"


@pytest.mark.parametrize(
    "fields", [{"images": 15, "slices": 15}, {"images": 6, "slices": 3, "frames": 5},
               {"images": 12, "channels": 2, "slices": 6}],
    ids=["images", "frames", "channels"],
)
def test_an_imagej_description_that_disagrees_with_its_pages_reads_as_a_plain_stack(tmp_path, fields):
    stack = np.arange(6 * 32 * 32, dtype=np.uint16).reshape(6, 32, 32)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    # The description, as a tool that edited it (or a file cut short) leaves it: 6 pages, other counts.
    structure = "".join(f"{key}={value}\n" for key, value in fields.items())
    tifffile.tiffcomment(path, f"ImageJ=1.11a\n{structure}hyperstack=true\nmode=grayscale".encode())
    with pytest.warns(UserWarning) as warned:
        source = read_image(path)
    named = ", ".join(f"{key}={value}" for key, value in fields.items())
    assert [str(w.message) for w in warned] == [
        f"{path}: its ImageJ description says {named} but the file holds 6 pages; read as a plain stack of its "
        "pages (axes IYX), and written back as such"
    ]
    assert (source.axes, source.metadata.kind) == ("IYX", "plain")
    np.testing.assert_array_equal(source.data, stack)
    filled = inpaint(source.data, np.eye(32, dtype=bool), "harmonic")
    write_image(tmp_path / "filled.tif", filled, like=source)  # an axis string that can be written back
    again = read_image(tmp_path / "filled.tif")
    assert again.axes == "IYX" and again.data.shape == stack.shape


def test_pictures_round_trip_through_io_and_refuse_what_they_cannot_hold_before_writing(tmp_path):
    # PNG and JPEG go through the same reader, writer and staging as TIFF and zarr (the command line has none).
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65535, (20, 30), dtype=np.uint16)
    colour = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:9, 5:9] = True
    write_image(tmp_path / "grey.png", grey, invented=mask)
    read = read_image(tmp_path / "grey.png")
    np.testing.assert_array_equal(read.data, grey)
    assert (read.axes, read.format) == ("YX", "png")
    np.testing.assert_array_equal(read_image(invented_path(tmp_path / "grey.png")).data, mask * np.uint8(255))
    write_image(tmp_path / "colour.jpg", colour)
    assert read_image(tmp_path / "colour.jpg").axes == "YXS" and read_image(tmp_path / "colour.jpg").format == "jpeg"
    with pytest.raises(ValueError, match=r"\.jpg cannot store uint16 pixels; write a \.tif"):
        write_image(tmp_path / "grey.jpg", grey)
    with pytest.raises(ValueError, match=r"\.png holds one plane .* not an image of shape \(2, 20, 30\)"):
        write_image(tmp_path / "stack.png", np.stack([grey, grey]), invented=mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "colour.jpg", "grey.invented.png", "grey.png"
    ]
