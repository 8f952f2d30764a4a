"""Cancelling a fill: the check methods call, and fills that can be abandoned mid-call.

A method calls ``check()`` inside its loops; it raises
:class:`InpaintCancelled` once the user's ``threading.Event`` is set.  One
compiled call (a sparse factorisation, an OpenCV fill) cannot look at the
event, so with an event the engine runs each fill in a worker thread that it
abandons on cancel (:func:`run_abandonable`).
"""

import queue
import threading
from collections.abc import Callable

# How often a waiting caller looks at its cancel event while a fill runs in its worker thread (s).
_CANCEL_POLL = 0.05


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
    stops at its method's next ``check`` or finishes unseen.  The method's
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

    threading.Thread(target=run, name="napari-inpaint fill", daemon=True).start()
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
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
