"""What a running fill tells its caller, and how the caller stops it: progress, status and cancel.

One :class:`Hooks` per run, used by both executors.  A run's units (one
crop of a group of planes) report as they start and finish, their fills
report fractions of their unit, and a method's preparation (training a
network) gets its own share of the bar before them.  The graph of a lazy
result carries only the hooks' token: tasks computed in the process that
made the call reach its hooks (from any thread); tasks computed by other
processes (a cluster's workers) neither report nor cancel, and
:mod:`napari_inpaint.io.store` drives a cluster's progress and cancel from
the caller instead.
"""

import threading
import uuid
import weakref
from collections.abc import Callable

from napari_inpaint.engine.cancel import checker, run_abandonable

# A preparation's share of the progress bar, in units of the fills' share (4: 80 % of the bar).
PREPARATION_UNITS = 4

# The hooks of the runs alive in this process, by token: a graph carries only the token.
_HOOKS: "weakref.WeakValueDictionary[str, Hooks]" = weakref.WeakValueDictionary()


class Hooks:
    """The ``progress``, ``cancel`` and ``status`` of one run (see :func:`napari_inpaint.inpaint`).

    Parameters
    ----------
    progress : callable or None
        ``progress(done, total)``: ``done`` sums the units finished and the
        fractions of those running (on any thread), plus the preparation's
        share.
    cancel : threading.Event or None
        Set by the caller to stop the run.
    status : callable or None
        ``status(text)`` as the stage changes.
    """

    def __init__(self, progress: Callable | None = None, cancel=None, status: Callable | None = None, *,
                 token: str | None = None):
        for name, callback in (("progress", progress), ("status", status)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be a callable or None, got {callback!r}")
        self.progress, self.cancel, self.status = progress, cancel, status
        self.check = checker(cancel)
        self.units = 0
        self.preparation = 0
        self._started = 0
        self._done: dict[int, float] = {}
        self._lock = threading.Lock()
        self.token = token or uuid.uuid4().hex
        _HOOKS[self.token] = self

    def __reduce__(self):
        return (_hooks_of, (self.token,))

    def plan(self, units: int, preparation: bool) -> None:
        """Say how many units the run fills, and whether a preparation runs first (it gets its share)."""
        self.units = units
        self.preparation = PREPARATION_UNITS * units if preparation else 0

    def preparing(self) -> Callable[[float, int], None] | None:
        """The ``progress(step, steps)`` of the preparation, as its share of the bar (None without progress)."""
        if self.progress is None:
            return None
        return lambda step, steps: self._report(self.preparation * step / max(steps, 1))

    def call(self, work: Callable, progress: Callable | None):
        """``work(check, progress)``: with a cancel event, in a worker thread abandoned on cancel.

        One long compiled call (a factorisation, an OpenCV fill) cannot look
        at the event; the caller then raises within a fraction of a second.
        """
        if self.cancel is None:
            return work(self.check, progress)
        return run_abandonable(work, self.check, progress)

    def say(self, text: str) -> None:
        if self.status is not None:
            self.status(text)

    def started(self, unit: int, where: str = "") -> None:
        """Unit ``unit`` (1-based) starts: the status says which, among the run's."""
        if self.status is not None:
            with self._lock:
                self._started += 1
                started = self._started
            self.status(f"filling {started}/{self.units}{where}")

    def within(self, unit: int) -> Callable[[float, int], None] | None:
        """The ``progress(step, steps)`` of the fill of ``unit``: a fraction of that unit."""
        if self.progress is None:
            return None
        return lambda step, steps: self._unit(unit, step / max(steps, 1))

    def finished(self, unit: int) -> None:
        if self.progress is not None:
            self._unit(unit, 1.0)

    def _unit(self, unit: int, fraction: float) -> None:
        with self._lock:
            self._done[unit] = fraction
            done = self.preparation + sum(self._done.values())
        self._report(done)

    def _report(self, done: float) -> None:
        self.progress(done, self.units + self.preparation)


def _hooks_of(token: str) -> Hooks:
    """The hooks of ``token`` in this process, or hooks that do nothing (a cluster's worker process)."""
    found = _HOOKS.get(token)
    return found if found is not None else Hooks(token=f"{token}-elsewhere")
