"""Computing lazy results into zarr stores: every array in one pass, with progress and cancel.

:func:`compute_into` writes several dask arrays (a result and its pyramid
levels, a mask of invented pixels) into zarr arrays with one graph, so that
each crop is filled once however many arrays derive from it.  It runs on the
active ``distributed`` client when there is one (its futures report progress
to the caller as crops and chunks finish, and cancel cancels them), else on
dask's local threads.

Outputs are written into a temporary folder next to their path and moved
into place only once complete (:func:`staged`): a failure or a cancel leaves
nothing behind.  Every chunk write first checks that the folder still holds
its ``.writing`` marker, which a cancel removes: a write task that a cluster
could not stop in time then writes nothing.  The writing process holds a lock
on the marker: a process killed mid-write (SIGKILL, a power cut) leaves its
folder unlocked, and the next write of the same output removes it.
"""

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from napari_inpaint.engine.cancel import InpaintCancelled, checker, run_abandonable
from napari_inpaint.engine.graph import CROP_PREFIX

MARKER = ".writing"
_STORE_PREFIX = "inpaint-store-"
# How long a cancel waits for a cluster's write tasks already running (s); each takes one chunk's write.
_SETTLE = 30.0
# A temporary folder without its marker is being made or removed for this long at most (s): an older one
# was left by a killed process.
_YOUNG_S = 2 * _SETTLE
_POLL = 0.05
# Chunk writes running in this process, per marker: a cancel waits for them before removing the folder.
_ACTIVE: dict[str, int] = {}
_ACTIVE_LOCK = threading.Condition()


@contextlib.contextmanager
def staged(outputs: list[Path], *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder next to the first output, in which each output is made under its own name.

    When the block ends without error each ``folder / path.name`` (a file or
    a folder) is moved to its ``path``; on error (or cancel) the folder is
    removed and the outputs are untouched.  An existing output is refused
    unless ``overwrite``, and then replaced only once the new one is complete.
    What killed writes of the outputs left beside them is tidied first
    (:func:`remove_leftovers`).
    """
    outputs = [Path(p) for p in outputs]
    for path in outputs:
        remove_leftovers(path)  # first: it may put an output back
    if not overwrite:
        for path in outputs:
            if path.exists():
                raise FileExistsError(f"{path} exists; choose another output, or allow overwriting it")
    temporary = outputs[0].with_name(f".{outputs[0].name}.partial-{uuid.uuid4().hex[:8]}")
    temporary.mkdir(parents=True)
    held = open(temporary / MARKER, "ab")  # noqa: SIM115 -- held (and locked) until the outputs are in place
    _lock(held)  # on a file system without locks, no one can take the lock: the folder is never taken for dead
    try:
        yield temporary
        for path in outputs:
            _replace(temporary / path.name, path)
        held.close()
        (temporary / MARKER).unlink()
        temporary.rmdir()
    except BaseException:
        held.close()
        _abandon(temporary)
        raise


def remove_leftovers(path: Path) -> None:
    """Remove what writes of ``path`` killed mid-way left beside it, and put back an output they moved aside.

    Only the names :func:`staged` gives are touched: a ``.NAME.partial-XXXXXXXX``
    folder whose writer is gone (its marker is not locked; without a marker,
    untouched for a minute) is removed; ``.NAME.old-XXXXXXXX``, the previous
    output moved aside while its replacement was moved in, is put back when
    ``path`` is missing (the replacement never arrived), else removed.
    Nothing is touched while another process is writing ``path``.
    """
    path = Path(path)
    leftover = re.compile(re.escape(f".{path.name}.") + r"(partial|old)-[0-9a-f]{8}")
    try:
        found = [(entry, leftover.fullmatch(entry.name)) for entry in path.parent.iterdir()]
    except OSError:  # no folder yet
        return
    writing, moved_aside = False, []
    for entry, match in found:
        if match is None:
            continue
        if match[1] == "old":
            moved_aside.append(entry)
        elif _is_written(entry):
            writing = True
        else:
            shutil.rmtree(entry, ignore_errors=True)
    if writing:
        return
    moved_aside.sort(key=lambda entry: entry.stat().st_mtime)
    if moved_aside and not path.exists():
        os.replace(moved_aside.pop(), path)
    for entry in moved_aside:
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _is_written(temporary: Path) -> bool:
    """Whether a live process is writing into ``temporary``, a folder that :func:`staged` made."""
    try:
        held = open(temporary / MARKER, "rb+")  # noqa: SIM115 -- closed below, before any removal
    except FileNotFoundError:  # being made, or ending (moved, abandoned); or its writer was killed then
        with contextlib.suppress(OSError):
            return time.time() - temporary.stat().st_mtime < _YOUNG_S
        return False
    except OSError:
        return True  # not ours to judge (permissions...): left alone
    with held:
        return not _lock(held)


def _lock(handle) -> bool:
    """Lock the open file ``handle`` for this process, without waiting; False when another holds it.

    The system releases the lock when the process ends, however it ends.
    """
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _replace(new: Path, path: Path) -> None:
    """Move ``new`` to ``path``; an old ``path`` is removed only once the new one is in place."""
    if not path.exists():
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)  # the old output back in place
        raise
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def _abandon(temporary: Path) -> None:
    marker = temporary / MARKER
    marker.unlink(missing_ok=True)
    with _ACTIVE_LOCK:
        _ACTIVE_LOCK.wait_for(lambda: not _ACTIVE.get(str(marker)), timeout=_SETTLE)
    shutil.rmtree(temporary, ignore_errors=True)


def compute_into(
    targets: list, marker: Path, *, progress: Callable[[int, int], None] | None = None, cancel=None,
) -> None:
    """Compute every ``(dask_array, zarr_array)`` of ``targets`` into its zarr array, in one graph.

    Each dask array's chunks must be whole chunks of its zarr array (the
    last ones may be partial), so that no two tasks write the same chunk.
    ``progress(done, total)`` counts the crops filled and the chunks written.
    """
    import dask
    from dask.highlevelgraph import HighLevelGraph

    check = checker(cancel)
    check()
    name = f"{_STORE_PREFIX}{uuid.uuid4().hex}"
    layer, keys = {}, []
    for index, (array, target) in enumerate(targets):
        _check_aligned(array, target)
        bounds = [np.cumsum((0, *c)) for c in array.chunks]
        for block in np.ndindex(*array.numblocks):
            region = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, block))
            key = (name, index, *block)
            layer[key] = (_write_block, (array.name, *block), target, region, str(marker))
            keys.append(key)
    graph = HighLevelGraph.merge(
        HighLevelGraph.from_collections(name, layer, dependencies=[a for a, _ in targets]),
        *(a.__dask_graph__() for a, _ in targets),
    )
    crops = sorted({key for key in graph if _key_name(key).startswith(CROP_PREFIX)}, key=str)
    client = _client()
    if client is not None:
        _on_cluster(client, graph, crops + keys, check, progress)
        return

    def run(check: Callable[[], None], report: Callable | None) -> None:
        from dask.callbacks import Callback

        counted, done = {*crops, *keys}, [0]

        def finished(key, result, dsk, state, worker) -> None:
            check()  # an abandoned run (cancelled) stops at its next task
            if key in counted:
                done[0] += 1
                if report is not None:
                    report(done[0], len(counted))

        with Callback(posttask=finished):
            dask.threaded.get(graph, keys)  # the crops' values are freed once their chunks are written

    run_abandonable(run, check, progress)


def _on_cluster(client, graph, keys: list, check: Callable[[], None], progress) -> None:
    """Compute ``keys`` on a ``distributed`` cluster; report as they finish; cancel their futures on cancel.

    A finished future is dropped at once, so that the cluster frees a crop's
    values as soon as the chunks it touches are written.
    """
    from distributed import as_completed

    completed = as_completed(client.get(graph, keys, sync=False))
    done = 0
    try:
        while not completed.is_empty():
            check()
            finished = completed.next_batch(block=False)
            if not finished:
                time.sleep(_POLL)
            for future in finished:
                if future.status != "finished":
                    future.result()  # raises the task's error here
                done += 1
                if progress is not None:
                    progress(done, len(keys))
            del finished
    except BaseException:
        pending = list(completed.futures)
        completed.clear()
        # The writes (the graph's leaves) are cancelled, the crops released: cancelling a key whose
        # dependents no client holds trips distributed's scheduler.
        client.cancel([future for future in pending if future.key[0].startswith(_STORE_PREFIX)])
        for future in pending:
            future.release()
        _settle(client, {future.key for future in pending})
        raise


def _settle(client, keys: set) -> None:
    """Wait (a while) until no task of ``keys`` runs on the cluster any more."""
    deadline = time.monotonic() + _SETTLE
    while time.monotonic() < deadline:
        running = {key for tasks in client.processing().values() for key in tasks}
        if not running & keys:
            return
        time.sleep(_POLL)


def _client():
    """The active ``distributed`` client, or None (then dask's local threads compute)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _write_block(block: np.ndarray, target, region: tuple[slice, ...], marker: str) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE[marker] = _ACTIVE.get(marker, 0) + 1
    try:
        if not os.path.exists(marker):
            raise InpaintCancelled("the output was abandoned (cancelled or failed); nothing more is written")
        target[region] = block
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE[marker] -= 1
            if not _ACTIVE[marker]:
                del _ACTIVE[marker]
            _ACTIVE_LOCK.notify_all()


def _check_aligned(array, target) -> None:
    for axis, (chunks, size) in enumerate(zip(array.chunks, target.chunks)):
        if any(c % size for c in chunks[:-1]):
            raise ValueError(
                f"the chunks {chunks} of axis {axis} are not whole chunks of the store ({size}); "
                "rechunk the array to the store's chunks"
            )


def _key_name(key) -> str:
    return key[0] if isinstance(key, tuple) else str(key)
