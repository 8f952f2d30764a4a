"""Running on a dask.distributed cluster: a real LocalCluster of 2 worker processes, small stores."""

import sys
import threading
import time

import numpy as np
import pytest

from napari_inpaint import InpaintCancelled, Param, inpaint

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr", minversion="3")


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    # The toy methods registered here travel to the workers by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.random((256, 320)).astype(np.float32)
    mask = rng.random(image.shape) > 0.997
    mask[60:90, 60:90] = True  # across the corner of four 64-pixel chunks
    mask[150:154, 20:300] = True  # a scratch through five chunks
    return image, mask


def test_a_lazy_result_computes_on_the_cluster(client):
    image, mask = _data()
    lazy = inpaint(da.from_array(image, chunks=64), mask, "biharmonic")
    np.testing.assert_array_equal(client.compute(lazy).result(), inpaint(image, mask, "biharmonic"))


def test_the_preparation_runs_once_per_compute_on_the_cluster(client, register_method, tmp_path):
    calls = tmp_path / "calls.txt"

    def prepare(stack, *, gain=1.0):
        with open(calls, "a") as log:
            log.write("prepared\n")
        return gain

    @register_method("prepared-on-cluster", params=(Param("gain", float, 1.0, "a factor"),), prepare=prepare)
    def fill(image, mask, *, prepared=None):
        return np.where(mask[..., None], prepared * image[~mask].mean(axis=0), image)

    image, mask = _data()
    expected = inpaint(image, mask, "prepared-on-cluster", gain=3.0, clip=False)
    calls.unlink()
    lazy = inpaint(da.from_array(image, chunks=64), mask, "prepared-on-cluster", gain=3.0, clip=False)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert calls.read_text().count("prepared") == 1  # 20 chunks, one preparation


def test_writing_a_store_reports_progress_from_the_cluster(client, tmp_path):
    from napari_inpaint.io import read_image, write_image

    image, mask = _data()
    stored = zarr.create_array(tmp_path / "in.zarr", shape=image.shape, chunks=(64, 64), dtype=image.dtype)
    stored[:] = image
    source = read_image(tmp_path / "in.zarr")
    calls, threads = [], set()

    def progress(done, total):
        calls.append((done, total))
        threads.add(threading.get_ident())

    filled = inpaint(source.data, mask, "biharmonic")
    write_image(tmp_path / "out.zarr", filled, like=source, progress=progress)
    expected = inpaint(image, mask, "biharmonic")
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr")[:], expected)
    total = calls[-1][1]
    assert [done for done, _ in calls] == list(range(1, total + 1)) and total > 20  # crops and 20 chunks
    assert threads == {threading.get_ident()}  # reported on the caller's thread


def test_cancel_on_the_cluster_leaves_no_partial_output(client, tmp_path):
    from napari_inpaint.io import write_image

    image, mask = _data()
    mask[20:236, 20:300] = True  # one wide hole: total variation at a fixed 20000 iterations takes many seconds
    slow = inpaint(da.from_array(image, chunks=64), mask, "tv", iterations=20000, tol=0.0)
    event = threading.Event()
    timer = threading.Timer(1.0, event.set)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(InpaintCancelled):
        write_image(tmp_path / "out.zarr", slow, cancel=event)
    assert time.perf_counter() - start < 10
    timer.join()
    assert list(tmp_path.iterdir()) == []
    # The cluster is free for the next work once the fills it was running end.
    client.restart()
