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
    from napari_inpaint._store import _replace

    (tmp_path / "out.tif").write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        _replace(tmp_path / "never-made.tif", tmp_path / "out.tif")
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"] and (tmp_path / "out.tif").read_bytes() == b"old"
