"""Chunked data: lazy fills of dask and zarr arrays crop by crop, written to stores without partial output."""

import threading
import time

import numpy as np
import pytest

from napari_inpaint import InpaintCancelled, inpaint

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr", minversion="3")


def _image(shape=(300, 400), dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    plane = 1000 + 300 * np.sin(yy / 20) + 200 * np.cos(xx / 30)
    return (plane + rng.normal(0, 5, shape)).astype(dtype)


def _mask(shape=(300, 400)) -> np.ndarray:
    """Holes on chunk corners (64 px chunks), close pairs, hot pixels and a dead column."""
    mask = np.zeros(shape, bool)
    for y, x in [(64, 64), (66, 100), (128, 128), (127, 250), (192, 191)]:
        mask[y - 5 : y + 5, x - 7 : x + 7] = True
    mask[np.random.default_rng(1).random(shape) > 0.998] = True
    mask[:, 333] = True
    return mask


@pytest.mark.parametrize(
    ("method", "options"), [("biharmonic", {"noise": "gaussian"}), ("telea", {}), ("tv", {})]
)
def test_lazy_fill_of_chunked_data_equals_the_in_memory_fill(method, options):
    image, mask = _image(), _mask()
    expected = inpaint(image, mask, method, **options)
    lazy = inpaint(da.from_array(image, chunks=64), mask, method, **options)
    assert isinstance(lazy, da.Array) and lazy.chunks == da.from_array(image, chunks=64).chunks
    np.testing.assert_array_equal(lazy.compute(scheduler="threads", num_workers=4), expected)


def test_zarr_image_and_mask_give_a_lazy_result_read_chunk_by_chunk():
    image, mask = _image(), _mask()
    stored = zarr.create_array(store={}, shape=image.shape, chunks=(50, 70), dtype=image.dtype)
    stored[:] = image
    stored_mask = zarr.create_array(store={}, shape=mask.shape, chunks=(50, 70), dtype=bool)
    stored_mask[:] = mask
    lazy = inpaint(stored, stored_mask, "harmonic")
    assert isinstance(lazy, da.Array) and lazy.chunksize == (50, 70)
    np.testing.assert_array_equal(lazy.compute(), inpaint(image, mask, "harmonic"))


def test_stacks_with_channels_on_any_axis_and_chunked_masks():
    rng = np.random.default_rng(2)
    stack = rng.random((5, 3, 80, 90)).astype(np.float32)
    mask = rng.random((5, 80, 90)) > 0.99
    expected = inpaint(stack, mask, "biharmonic", channel_axis=1)
    chunked = da.from_array(stack, chunks=(2, 2, 30, 40))
    np.testing.assert_array_equal(inpaint(chunked, mask, "biharmonic", channel_axis=1).compute(), expected)
    lazy_mask = da.from_array(mask, chunks=(1, 25, 25))
    lazy = inpaint(chunked, lazy_mask, "biharmonic", channel_axis=1)
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_a_chunk_computes_only_the_crops_that_touch_it(register_method):
    filled = []

    @register_method("count-crops", margin=2)
    def count(image, mask):
        filled.append(mask.shape)
        return np.zeros_like(image)

    image = np.ones((512, 512))
    mask = np.zeros(image.shape, bool)
    mask[10:20, 10:20] = True  # in the first chunk
    mask[400:410, 400:410] = True
    mask[250:260, 300:320] = True  # another tile: not packed with the first
    lazy = inpaint(da.from_array(image, chunks=128), mask, "count-crops", clip=False)
    corner = lazy[:128, :128].compute()
    assert filled == [(14, 14)] and (corner[10:20, 10:20] == 0).all()
    filled.clear()
    np.testing.assert_array_equal(lazy.compute(), np.where(mask, 0.0, 1.0))
    assert len(filled) == 3


def test_progress_counts_crops_and_cancel_stops_a_lazy_result():
    image, mask = _image(), _mask()
    calls = []
    chunked = da.from_array(image, chunks=64)
    inpaint(chunked, mask, "harmonic", progress=lambda done, total: calls.append((done, total))).compute()
    total = calls[-1][1]
    assert calls[-1] == (total, total) and all(t == total for _, t in calls)
    event = threading.Event()
    lazy = inpaint(da.from_array(image, chunks=64), mask, "harmonic", cancel=event)
    event.set()
    with pytest.raises(InpaintCancelled):
        lazy.compute()


# --------------------------------------------------------------------------- writing stores


def test_write_image_computes_into_a_zarr_store_with_progress(tmp_path):
    from napari_inpaint.io import read_image, write_image

    image, mask = _image(), _mask()
    stored = zarr.create_array(tmp_path / "in.zarr", shape=image.shape, chunks=(64, 64), dtype=image.dtype)
    stored[:] = image
    source = read_image(tmp_path / "in.zarr")
    calls = []
    lazy = inpaint(source.data, mask, "biharmonic")
    write_image(tmp_path / "out.zarr", lazy, like=source, invented=mask, progress=lambda *call: calls.append(call))
    out = zarr.open_array(tmp_path / "out.zarr")
    np.testing.assert_array_equal(out[:], inpaint(image, mask, "biharmonic"))
    assert out.chunks == (64, 64) and calls[-1][0] == calls[-1][1] > 35  # crops, then 35 chunks of each array
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.invented.zarr")[:], mask * 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.invented.zarr", "out.zarr"]
    with pytest.raises(FileExistsError, match="exists"):
        write_image(tmp_path / "out.zarr", lazy)


def test_cancel_leaves_no_partial_output(tmp_path):
    from napari_inpaint.io import write_image

    image = _image()
    mask = np.zeros(image.shape, bool)
    mask[50:250, 50:350] = True  # one wide hole: total variation at a fixed 20000 iterations takes many seconds
    slow = inpaint(da.from_array(image, chunks=64), mask, "tv", iterations=20000, tol=0.0)
    event = threading.Event()
    timer = threading.Timer(0.5, event.set)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(InpaintCancelled):
        write_image(tmp_path / "out.ome.zarr", slow, cancel=event)
    assert time.perf_counter() - start < 5
    timer.join()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_an_output_only_once_complete(tmp_path):
    from napari_inpaint.io import write_image

    write_image(tmp_path / "out.zarr", np.zeros((8, 8), np.uint8))
    event = threading.Event()
    event.set()
    with pytest.raises(InpaintCancelled):
        write_image(tmp_path / "out.zarr", da.ones((8, 8), dtype=np.uint8), overwrite=True, cancel=event)
    assert (zarr.open_array(tmp_path / "out.zarr")[:] == 0).all()  # the old output is still there
    write_image(tmp_path / "out.zarr", np.ones((8, 8), np.uint8), overwrite=True)
    assert (zarr.open_array(tmp_path / "out.zarr")[:] == 1).all()
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


@pytest.mark.parametrize("mask_shape", [(3, 64, 64), (64, 64)], ids=["per-frame", "one-plane"])
def test_a_mask_without_the_channel_axis_is_written_beside_and_as_a_label_image(tmp_path, mask_shape):
    from napari_inpaint.io import read_image, write_image

    image = np.random.default_rng(0).random((3, 2, 64, 64)).astype(np.float32)  # tcyx: channels after time
    mask = np.zeros(mask_shape, bool)
    mask[..., 10:20, 10:30] = True
    data = da.from_array(image, chunks=(1, 1, 32, 32))
    write_image(tmp_path / "out.ome.zarr", data, axes="tcyx", invented=mask)
    label = zarr.open_array(tmp_path / "out.ome.zarr" / "labels" / "invented" / "0", mode="r")
    assert label.shape == (3, 1, 64, 64) and np.array_equal(label[:, 0] > 0, np.broadcast_to(mask, (3, 64, 64)))
    write_image(tmp_path / "out.zarr", data, axes="tcyx", invented=mask)
    beside = zarr.open_array(tmp_path / "out.invented.zarr", mode="r")
    assert np.array_equal(beside[:] > 0, mask) and beside.attrs["axes"] == "tyx"[-len(mask_shape) :]
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "out.zarr").data), image)


def test_a_replacement_that_fails_puts_the_old_output_back(tmp_path):
    from napari_inpaint.io.store import _replace

    (tmp_path / "out.tif").write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        _replace(tmp_path / "never-made.tif", tmp_path / "out.tif")
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"] and (tmp_path / "out.tif").read_bytes() == b"old"


def _damage(chunk_file) -> None:
    """Overwrite the compressed bytes of a chunk (its length kept): the codec can no longer decode it."""
    data = bytearray(chunk_file.read_bytes())
    data[8:] = b"\x55" * (len(data) - 8)
    chunk_file.write_bytes(bytes(data))


@pytest.mark.parametrize("form", ["zarr", "ome-zarr"])
def test_a_chunk_that_cannot_be_decoded_is_named(tmp_path, form):
    from napari_inpaint.io import read_image, write_image
    from napari_inpaint.io.chunks import ChunkDecodeError

    image = _image((128, 128))
    mask = np.zeros(image.shape, bool)
    mask[60:70, 30:40] = True  # a hole whose crop reads the damaged chunk
    name = "image.zarr" if form == "zarr" else "image.ome.zarr"
    write_image(tmp_path / name, da.from_array(image, chunks=64), axes="yx")  # zstd, as zarr 3 writes
    key = "c/1/0" if form == "zarr" else "0/c/1/0"
    _damage(tmp_path / name / key)
    source = read_image(tmp_path / name)
    np.testing.assert_array_equal(np.asarray(source.data[:64]), image[:64])  # the intact chunks still read
    with pytest.raises(ChunkDecodeError) as info:
        inpaint(source.data, mask, "harmonic").compute()
    assert str(info.value).startswith(f"{tmp_path / name}: chunk {key} cannot be decoded (RuntimeError: Zstd")


def _ome_zarr_with(tmp_path, change) -> str:
    """An OME-Zarr image (NGFF 0.5, two levels) whose multiscales metadata ``change`` alters; its path."""
    import json

    from napari_inpaint.io import write_image

    path = tmp_path / "image.ome.zarr"
    write_image(path, np.zeros((3, 600, 600), np.uint16), axes="zyx")
    metadata = json.loads((path / "zarr.json").read_text())
    change(metadata["attributes"]["ome"])
    (path / "zarr.json").write_text(json.dumps(metadata))
    return str(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ome: ome["multiscales"][0].update(axes=[{"name": "y"}, {"name": "x"}]),
         "ome.multiscales[0].axes names 2 axes ('yx') but the data have 3 (shape (3, 600, 600))"),
        (lambda ome: ome["multiscales"][0]["datasets"][1].pop("path"),
         "ome.multiscales[0].datasets[1].path is missing"),
        (lambda ome: ome["multiscales"][0]["datasets"][1].update(path="7"),
         "ome.multiscales[0].datasets[1].path '7' names no array in the image"),
        (lambda ome: ome.update(multiscales=ome["multiscales"][0]),
         "ome.multiscales must be a list of images, got a dict"),
        (lambda ome: ome["multiscales"][0]["datasets"][0].update(coordinateTransformations={"type": "scale"}),
         "ome.multiscales[0].datasets[0].coordinateTransformations must be a list of transformations, got dict"),
        (lambda ome: ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0].update(scale=[1, 1]),
         "ome.multiscales[0].datasets[0].coordinateTransformations[0].scale must be a list of 3 numbers"),
        (lambda ome: ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0].pop("type"),
         "ome.multiscales[0].datasets[0].coordinateTransformations[0].type is missing"),
    ],
    ids=["axes", "no-path", "wrong-path", "multiscales-dict", "transforms-dict", "scale-length", "no-type"],
)
def test_malformed_ome_zarr_metadata_are_refused_naming_the_field(tmp_path, change, message):
    from napari_inpaint.io import read_image

    path = _ome_zarr_with(tmp_path, change)
    with pytest.raises(ValueError) as info:
        read_image(path)
    assert str(info.value).startswith(f"cannot read {path}: its OME-Zarr metadata are malformed: {message}")


def _killed_write(tmp_path, output: str):
    """What a process killed while replacing ``output`` leaves: its staging folder (its marker unlocked),
    and the previous output, holding 7, moved aside to move the new one in.  Returns the staging folder."""
    from napari_inpaint.io import write_image
    from napari_inpaint.io.store import MARKER

    killed = tmp_path / f".{output}.partial-0123abcd"
    (killed / output).mkdir(parents=True)
    (killed / MARKER).touch()
    write_image(tmp_path / "previous.zarr", np.full((4, 4), 7, np.uint8))
    (tmp_path / "previous.zarr").rename(tmp_path / f".{output}.old-89abcdef")
    return killed


def test_the_next_write_of_an_output_removes_what_a_killed_write_left(tmp_path):
    from napari_inpaint.io import write_image

    killed = _killed_write(tmp_path, "out.zarr")
    users = [".out.zarr.partial-notours", "out.zarr.partial-0123abcd", ".other.zarr.partial-0123abcd"]
    for name in users:
        (tmp_path / name).mkdir()
    # The output moved aside is the user's last complete one: it is put back, and not overwritten.
    with pytest.raises(FileExistsError, match=r"out\.zarr exists"):
        write_image(tmp_path / "out.zarr", np.ones((4, 4), np.uint8))
    assert not killed.exists() and zarr.open_array(tmp_path / "out.zarr")[:].max() == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.zarr", *users])  # names not ours: kept
    write_image(tmp_path / "out.zarr", np.ones((4, 4), np.uint8), overwrite=True)
    assert zarr.open_array(tmp_path / "out.zarr")[:].max() == 1


def test_a_write_in_progress_elsewhere_is_left_alone(tmp_path):
    from napari_inpaint.io import write_image
    from napari_inpaint.io.store import MARKER, _lock

    killed = _killed_write(tmp_path, "out.zarr")
    live = tmp_path / ".out.zarr.partial-fedcba98"
    live.mkdir()
    with open(live / MARKER, "ab") as held:
        assert _lock(held)  # as the process writing it holds it
        write_image(tmp_path / "out.zarr", np.ones((4, 4), np.uint8))
        assert live.exists() and not killed.exists()
        assert (tmp_path / ".out.zarr.old-89abcdef").exists()  # not put back or removed meanwhile
    write_image(tmp_path / "out.zarr", np.full((4, 4), 2, np.uint8), overwrite=True)  # that writer is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    assert zarr.open_array(tmp_path / "out.zarr")[:].max() == 2
