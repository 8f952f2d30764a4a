"""Cancelling a fill: the check methods call, and fills that can be abandoned mid-call.

A method calls ``check()`` inside its loops; it raises
:class:`InpaintCancelled` once the user's ``threading.Event`` is set.  One
compiled call (a sparse factorisation, an OpenCV fill) cannot look at the
event, so with an event the engine runs each fill in a worker thread that it
abandons on cancel (:func:`run_abandonable`).
"""

import atexit
import queue
import threading
from collections.abc import Callable

# How often a waiting caller looks at its cancel event while a fill runs in its worker thread (s).
_CANCEL_POLL = 0.05
# At exit, the longest wait (s) for abandoned fills to reach their next check and stop.
_EXIT_WAIT = 30.0
# Workers abandoned on cancel that may still run: the interpreter must not exit under them (PyTorch
# aborts the process, "terminate called without an active exception", when it exits mid-operation).
_ABANDONED: set[threading.Thread] = set()
_ABANDONED_LOCK = threading.Lock()


@atexit.register
def _wait_for_abandoned() -> None:
    """Let the abandoned fills stop at their next check before the interpreter exits (bounded wait)."""
    import time

    deadline = time.monotonic() + _EXIT_WAIT
    with _ABANDONED_LOCK:
        workers = list(_ABANDONED)
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


class InpaintCancelled(Exception):
    """Raised by :func:`napari_inpaint.inpaint` when its ``cancel`` event is set."""


def checker(cancel) -> Callable[[], None]:
    """The ``check()`` that raises :class:`InpaintCancelled` once ``cancel`` is set."""
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise TypeError(f"cancel must be a threading.Event (or None), got {cancel!r}")

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise InpaintCancelled("inpainting was cancelled; the input is unchanged")

    return check


def run_abandonable(fill: Callable, check: Callable[[], None], progress: Callable | None):
    """Return ``fill(check, progress)`` computed in a daemon thread that is abandoned on cancel.

    One compiled call (a sparse factorisation, an OpenCV fill) cannot be
    interrupted, so the calling thread waits in short steps and checks the
    cancel event in between; on cancel it raises at once and the worker
    stops at its method's next ``check`` or finishes unseen (the
    interpreter's exit waits for it, up to ``_EXIT_WAIT`` seconds).  The method's
    progress reports are forwarded on the calling thread.
    """
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict = {}
    abandoned = threading.Event()

    def worker_check() -> None:
        if abandoned.is_set():
            raise InpaintCancelled("inpainting was cancelled")
        check()

    def run() -> None:
        try:
            outcome["value"] = fill(worker_check, lambda step, steps: reports.put((step, steps)))
        except BaseException as error:  # handed to the caller, which re-raises it
            outcome["error"] = error
        finally:
            reports.put(None)
            with _ABANDONED_LOCK:
                _ABANDONED.discard(threading.current_thread())

    worker = threading.Thread(target=run, name="napari-inpaint fill", daemon=True)
    worker.start()
    try:
        while True:
            try:
                report = reports.get(timeout=_CANCEL_POLL)
            except queue.Empty:
                report = ()
            check()
            if report is None:
                break
            if report and progress is not None:
                progress(*report)
    except BaseException:
        abandoned.set()
        with _ABANDONED_LOCK:
            _ABANDONED.add(worker)
            _ABANDONED.difference_update([w for w in _ABANDONED if not w.is_alive()])
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
