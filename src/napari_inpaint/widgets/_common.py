"""Pieces the widgets share: parameter controls generated from the registry, layer drop-downs, the runner.

Notifications go through ``notifications.show_error`` / ``show_info`` (looked
up on the module at each call), so that tests can capture them in one place.
"""

# No ``from __future__ import annotations``: magicgui resolves annotations at runtime.
import threading

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Widget,
)
from napari.qt.threading import create_worker
from napari.utils import notifications
from superqt.utils import ensure_main_thread

from napari_inpaint import InpaintCancelled, Param
from napari_inpaint.layers import grid_shape

INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12


def _float_step(param: Param) -> float:
    """A spin-box step one decade below the default (which also sets the decimals shown)."""
    reference = abs(param.default) or (param.high or 1.0)
    return float(min(1.0, 10.0 ** (np.floor(np.log10(reference)) - 1)))


def param_widget(param: Param) -> Widget:
    """Build the magicgui control for one method parameter, from its :class:`~napari_inpaint.Param` alone.

    A bool is a check box, a number a spin box within the parameter's range,
    and a string a drop-down of its ``suggestions()`` (the values worth
    offering now, e.g. the devices present) or of its ``choices``, with the
    default selected; any other string is typed in.

    Examples
    --------
    >>> from napari_inpaint import Param
    >>> control = param_widget(Param("kind", str, "b", "a choice", choices=("a", "b")))
    >>> type(control).__name__, control.value, control.choices
    ('ComboBox', 'b', ('a', 'b'))
    """
    common = {"name": param.name, "label": param.name.replace("_", " "), "tooltip": param.help}
    if param.kind is bool:
        return CheckBox(value=bool(param.default), **common)
    if param.kind is int:
        low = -INT_LIMIT if param.low is None else int(param.low)
        high = INT_LIMIT if param.high is None else int(param.high)
        return SpinBox(value=int(param.default), min=low, max=high, **common)
    if param.kind is float:
        low = -_FLOAT_LIMIT if param.low is None else float(param.low)
        high = _FLOAT_LIMIT if param.high is None else float(param.high)
        return FloatSpinBox(value=float(param.default), min=low, max=high, step=_float_step(param), **common)
    offered = list(param.suggestions() if param.suggestions is not None else param.choices or ())
    if offered:
        value = param.default if param.default in offered else offered[0]
        return ComboBox(value=value, choices=offered, **common)
    return LineEdit(value=str(param.default), **common)


def plane_of(mask: np.ndarray, plane: tuple[int, ...]) -> np.ndarray:
    """The 2D mask of ``plane`` (leading indices of the image) from a mask of any trailing shape."""
    return mask[plane[len(plane) + 2 - mask.ndim :]]


class LayerChoices:
    """Keeps a widget's layer drop-downs in sync with the viewer's layer list."""

    def _watch_layers(self, viewer) -> None:
        self._viewer = viewer
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_layers_changed)

    def _on_layers_changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", None) == "inserted":
            event.value.events.name.connect(self._on_layers_changed)
        self.reset_choices()

    def _layers_of(self, *kinds) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, kinds)]

    def _current_plane(self, layer) -> tuple[int, ...]:
        """Indices of the plane on screen along the image's leading (non-plane) axes."""
        position = layer.world_to_data(self._viewer.dims.point)
        leading = grid_shape(layer)[:-2]
        return tuple(int(np.clip(np.rint(p), 0, n - 1)) for p, n in zip(position[: len(leading)], leading))


class Runner:
    """Run/Cancel buttons, a progress bar and one background worker at a time."""

    _task = "The task"  # named in error messages

    def _make_runner(self, run_text: str, cancellable: bool = True) -> list[Widget]:
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False, visible=cancellable)
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.worker = None
        self._cancel_event = threading.Event()
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        return [buttons, self.progress]

    def _start(self, function, *args, on_returned, **kwargs):
        """Run ``function(*args, cancel=event, progress=callback, **kwargs)`` in a worker thread."""
        self._cancel_event = threading.Event()
        # Errors are reported by _on_error; without _ignore_errors napari would also re-raise them.
        worker = create_worker(
            function, *args, cancel=self._cancel_event, progress=ensure_main_thread(self._on_progress),
            _connect={"returned": on_returned, "errored": self._on_error, "finished": self._on_finished},
            _ignore_errors=True, _start_thread=False, **kwargs,
        )
        self.worker = worker
        self.progress.max, self.progress.value = 0, 0  # a busy bar until the first progress report
        self.run_button.enabled, self.cancel_button.enabled = False, True
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running worker to stop; it raises InpaintCancelled within one work unit."""
        self._cancel_event.set()
        self.cancel_button.enabled = False

    def _on_progress(self, done: float, total: int) -> None:
        if self.worker is not None:  # late updates from a finished run are dropped
            # Percent steps: iterative methods report fractional progress within a unit.
            self.progress.max, self.progress.value = 100 * max(total, 1), round(100 * done)

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, InpaintCancelled):
            notifications.show_info(str(exc))
        else:
            notifications.show_error(f"{self._task} failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.max, self.progress.value = 1, 0
        self.run_button.enabled, self.cancel_button.enabled = True, False
