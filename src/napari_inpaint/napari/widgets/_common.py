"""Pieces the widgets share: parameter controls generated from the registry, layer drop-downs, the runner
(progress, status line, activity dock, cancel on close), remembered settings and download confirmation.

Notifications go through ``notifications.show_error`` / ``show_info``,
questions through :func:`ask` and save dialogs through :func:`save_path`
(looked up on their modules at each call), so that tests can capture them
in one place.
"""

# No ``from __future__ import annotations``: magicgui resolves annotations at runtime.
import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
    Widget,
)
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress, notifications
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLineEdit, QMessageBox, QSizePolicy
from superqt.utils import ensure_main_thread

from napari_inpaint import InpaintCancelled, Method, Param, models
from napari_inpaint.napari.fill import size_text

INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12
# Downloads at least this large are confirmed first.
LARGE_DOWNLOAD = 20 * 2**20
# The folder of the widgets' settings files (default: the user's configuration folder).
SETTINGS_ENV = "NAPARI_INPAINT_SETTINGS"
# A status text longer than this (characters), or with a longer word (a path, a URL), is shown as a summary
# of at most _STATUS_SUMMARY characters, the whole text in the tooltip: it must not widen the dock.
_STATUS_LONG, _STATUS_SUMMARY, _LONG_WORD = 160, 70, 30
_STATUS_TOOLTIP = "What a run will do, or what the last run did"
# The activity dock's row holds the description, the bar, the times and Cancel in its 500 px, with room to spare.
_ACTIVITY_CHARACTERS = 26


def _float_step(param: Param) -> float:
    """A spin-box step one decade below the default, or the lowest bound's decade when that is finer.

    The step sets the decimals the spin box shows and keeps: a coarser one
    would round the low end of the range (``learning_rate=1e-5``) to zero.

    Examples
    --------
    >>> from napari_inpaint import Param
    >>> _float_step(Param("rate", float, 0.01, "a rate", 1e-5, 1.0)), _float_step(Param("t", float, 60.0, "s", 0.0))
    (1e-05, 1.0)
    """
    reference = abs(param.default) or (param.high or 1.0)
    step = min(1.0, 10.0 ** (np.floor(np.log10(reference)) - 1))
    if param.low:
        step = min(step, 10.0 ** np.floor(np.log10(abs(param.low))))
    return float(step)


def param_widget(param: Param) -> Widget:
    """Build the magicgui control for one method parameter, from its :class:`~napari_inpaint.Param` alone.

    A bool is a check box, a number a spin box within the parameter's range,
    a file (``Param.file``) a file picker and a string a
    drop-down of its ``suggestions()`` (the values worth offering now, e.g.
    the devices present) or of its ``choices``, with the default selected;
    any other string is typed in.  The tooltip is the parameter's help.

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
    if param.file:
        return FileEdit(value=param.default, mode="r", **common)
    offered = list(param.suggestions() if param.suggestions is not None else param.choices or ())
    if offered:
        value = param.default if param.default in offered else offered[0]
        return ComboBox(value=value, choices=offered, **common)
    return LineEdit(value=str(param.default), **common)


def split_params(spec: Method) -> tuple[tuple[Param, ...], tuple[Param, ...]]:
    """The essential parameters of a method, and those folded under "Advanced" (``Param.advanced``).

    Examples
    --------
    >>> from napari_inpaint import get_method
    >>> essential, folded = split_params(get_method("learned"))
    >>> [p.name for p in folded]
    ['crop_size', 'learning_rate', 'width', 'context']
    """
    return tuple(p for p in spec.params if not p.advanced), tuple(p for p in spec.params if p.advanced)


def control_value(control: Widget):
    """A control's value as plain data: a file picker's typed text ("" when empty)."""
    return control.line_edit.value if isinstance(control, FileEdit) else control.value


def set_control_value(control: Widget, value) -> bool:
    """Set a control (a file picker by its text); False when the value does not fit it (then unchanged)."""
    try:
        if isinstance(control, FileEdit):
            control.line_edit.value = str(value)
        elif isinstance(control, Select):  # the values still offered
            control.value = [item for item in value if item in control.choices]
        else:
            control.value = value
    except (ValueError, TypeError, KeyError):
        return False
    return True


# Engine phrases and what they are called in the widgets.
_WIDGET_TERMS = (
    (r"method='([\w-]+)' with spatial_ndim=3", r"method: \1 with scope: 3D volume"),
    (r"use spatial_ndim=2 \(plane by plane\)", "choose the scope 'every plane of the stack'"),
    (r"spatial_ndim=3", "scope: 3D volume"),
    (r"use noise='(\w+)'", r"choose noise: \1"),
    (r"noise='(\w+)'", r"noise: \1"),
    (r"pass reference='adjacent'", "choose the reference 'adjacent planes'"),
    (r" \(for example mask = mask \| ~np\.isfinite\(image\)\)", " (Mask from image, 'NaN / inf')"),
)


def widget_terms(message: str) -> str:
    """An engine message with its keywords replaced by the widgets' controls.

    Examples
    --------
    >>> widget_terms("use method='interpolate' with spatial_ndim=3")
    'use method: interpolate with scope: 3D volume'
    """
    for pattern, replacement in _WIDGET_TERMS:
        message = re.sub(pattern, replacement, message)
    return message


def duration_text(seconds: float) -> str:
    """A duration for people.

    Examples
    --------
    >>> duration_text(0.25), duration_text(42), duration_text(150), duration_text(7300)
    ('0.25 s', '42 s', '2.5 min', '2.0 h')
    """
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def short_text(text: str, limit: int = _STATUS_SUMMARY) -> str:
    """The first sentence of ``text`` in at most ``limit`` characters, long words shortened in the middle.

    Examples
    --------
    >>> short_text("Could not fetch /home/me/.cache/napari-inpaint/weights.pth. Copy it there by hand.")
    'Could not fetch /home/me/.cache…nt/weights.pth.'
    >>> short_text("Filling the first plane of a long stack of planes", limit=30)
    'Filling the first plane of a…'
    """
    sentence = re.split(r"(?<=[.;!?])\s+(?=[A-Z(])", text.strip(), maxsplit=1)[0]
    half = _LONG_WORD // 2
    words = [w if len(w) <= _LONG_WORD else f"{w[:half]}…{w[-half:]}" for w in sentence.split()]
    short = " ".join(words)
    if len(short) > limit:
        short = short[: limit - 1].rsplit(" ", 1)[0] + "…"
    return short


def is_long(text: str) -> bool:
    """Whether ``text`` is too long for a status line (see :func:`short_text`).

    Examples
    --------
    >>> is_long("Will fill 100 px."), is_long("could not fetch https://example.org/a/long/path/weights.pth")
    (False, True)
    """
    return len(text) > _STATUS_LONG or any(len(word) > _LONG_WORD for word in text.split())


def ask(parent, title: str, text: str) -> bool:
    """Ask a yes/no question in a dialog; True for yes."""
    answer = QMessageBox.question(parent, title, text, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


def weights_note(names) -> str:
    """Licence, size and cache state of the weight files ``names`` (registry names; "" for none).

    Examples
    --------
    >>> weights_note(())
    ''
    """
    described, restricted = [], []
    for name in names:
        model = models.get_model(name)
        state = "cached" if models.is_cached(name) else f"downloaded on first run, {size_text(model.size)}"
        described.append(f"{name} ({model.licence}, {state})")
        if not model.commercial_use:
            restricted.append(name)
    if not described:
        return ""
    note = f" Weights: {'; '.join(described)}."
    if restricted:
        note += f" Non-commercial licence ({', '.join(restricted)}): not for commercial use."
    return note


class SaveDialog(QFileDialog):
    """A save dialog that takes a folder named as an output (a zarr store) as the choice, instead of opening it.

    Qt's dialogs (and the systems' native ones) open a folder when it is
    chosen; a zarr store is one.  This dialog (Qt's own, not the system's)
    returns a folder whose name ends in one of ``filters``' suffixes.  It does
    not confirm replacing: callers ask with :func:`ask`.
    """

    def __init__(self, parent, title: str, suggested: str, filters: dict[str, str]):
        self._choices = {f"{text} (*{suffix})": suffix for text, suffix in filters.items()}
        super().__init__(parent, title, str(Path(suggested).parent), ";;".join(self._choices))
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        self.setOption(QFileDialog.Option.DontUseNativeDialog)
        self.setOption(QFileDialog.Option.DontConfirmOverwrite)
        # Qt names the button "Open" when a folder is chosen: a store is saved to.
        self.currentChanged.connect(self._name_the_button)
        self.findChild(QLineEdit, "fileNameEdit").textChanged.connect(self._name_the_button)
        self.selectFile(Path(suggested).name)

    def _store_chosen(self) -> bool:
        chosen = self.selectedFiles()
        return bool(chosen) and Path(chosen[0]).is_dir() and chosen[0].lower().endswith(tuple(self._choices.values()))

    def _name_the_button(self, _text: str = "") -> None:
        if self._store_chosen():
            self.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save).setText("&Save")

    def accept(self) -> None:
        if self._store_chosen():
            QDialog.accept(self)  # the store itself, not a folder to open
            return
        super().accept()

    def chosen_path(self) -> str:
        """The path chosen; a name typed without a known suffix gets the chosen filter's."""
        path = self.selectedFiles()[0]
        if not path.lower().endswith(tuple(self._choices.values())):
            path += self._choices.get(self.selectedNameFilter(), next(iter(self._choices.values())))
        return path


def save_path(parent, title: str, suggested: str, filters: dict[str, str]) -> str:
    """Ask where to save in a :class:`SaveDialog`; returns the path ("" when cancelled).

    ``filters`` maps a description to its suffix (``{"OME-Zarr": ".ome.zarr"}``);
    a name typed without a known suffix gets the chosen filter's.  An
    existing zarr store (a folder) can be chosen.  Replacing is not
    confirmed here: callers ask with :func:`ask`.
    """
    dialog = SaveDialog(parent, title, suggested, filters)
    return dialog.chosen_path() if dialog.exec() == QDialog.DialogCode.Accepted else ""


def download_text(names: list[str]) -> str:
    """What downloading the weights ``names`` means: size, licence, source and where they are cached."""
    specs = [models.get_model(name) for name in names]
    lines = [f"• {s.name}: {size_text(s.size)}, licence {s.licence}, from {s.url}" for s in specs]
    restricted = [spec.name for spec in specs if not spec.commercial_use]
    if restricted:
        lines.append(f"Not for commercial use: {', '.join(restricted)}.")
    lines.append(
        f"They are downloaded once and kept in {models.cache_dir()} "
        f"(set {models.CACHE_ENV} to choose the folder)."
    )
    return "\n".join(lines)


def confirm_download(parent, names: list[str], purpose: str) -> bool:
    """Ask before downloading the weights ``names`` when they are large; True to go on.

    ``purpose`` says what needs them ("lama fills with a pretrained network").
    """
    size = sum(models.get_model(name).size for name in names)
    if size < LARGE_DOWNLOAD:
        return True
    text = f"{purpose}: its weights must be downloaded first ({size_text(size)}).\n\n{download_text(names)}"
    return ask(parent, "Download weights?", text + "\n\nDownload them now?")


def _controls(container: Container):
    """Every control of a magicgui container, those of nested containers too."""
    for widget in container:
        if isinstance(widget, Container):
            yield from _controls(widget)
        else:
            yield widget


class LayerChoices:
    """Keeps a widget's layer drop-downs in sync with the viewer's layer list."""

    def _watch_layers(self, viewer) -> None:
        self._viewer = viewer
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_layers_changed)

    def _unwatch_layers(self) -> None:
        events = self._viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.disconnect(self._on_layers_changed)
        for layer in self._viewer.layers:
            layer.events.name.disconnect(self._on_layers_changed)

    def _on_layers_changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", None) == "inserted":
            event.value.events.name.connect(self._on_layers_changed)
        self.reset_choices()

    def _layers_of(self, *kinds) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, kinds)]


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the widget is closed or taken out of its dock, ``on_dock`` when docked."""

    def __init__(self, widget, on_close, on_dock, on_destroyed):
        super().__init__(widget)
        self._on_close, self._on_dock = on_close, on_dock
        widget.installEventFilter(self)
        widget.destroyed.connect(on_destroyed)  # with its window: no close event comes

    def eventFilter(self, watched, event) -> bool:  # (Qt's name)
        if event.type() == QEvent.Type.Close:
            self._on_close()
        elif event.type() == QEvent.Type.ParentChange:
            (self._on_close if watched.parent() is None else self._on_dock)()
        return False


class _ResizeWatcher(QObject):
    """Calls ``on_resize`` when ``widget`` changes size (or is first shown, and laid out)."""

    def __init__(self, widget, on_resize):
        super().__init__(widget)
        self._on_resize = on_resize
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # (Qt's name)
        if event.type() == QEvent.Type.Resize:
            self._on_resize()
        return False


class _Activity(cancelable_progress):
    """A run in napari's activity dock, whose cancel button cancels the run.

    Beside the bar only the time spent and left: the counts of tqdm's usual
    ``300/1000 [00:05<00:10, 62.3it/s]`` (thousandths) mean nothing here and
    would push the Cancel button out of view.
    """

    def __init__(self, **kwargs):
        super().__init__(bar_format="{l_bar}{bar}| {elapsed}<{remaining}", **kwargs)

    def cancel(self) -> None:
        super().cancel()
        self.cancel_callback()


class Runner:
    """Run/Cancel buttons, a progress bar labelled by stage, a status line, one background worker at a time.

    The bar is shown during a run only; in a napari window the run also
    appears in the activity dock (cancellable there).  Closing the widget
    (or its dock) cancels its run, whose result is then dropped.  A long
    status text is shown as a summary, the whole of it in the tooltip.

    Signals ``stage_changed(text)`` and ``progress_changed(done, total)``
    tell what the run reports, as the bar shows it.
    """

    _task = "The task"  # named in messages
    stage_changed = Signal(str)
    progress_changed = Signal(float, int)

    def _make_runner(self, run_text: str, run_tooltip: str, cancellable: bool = True) -> list[Widget]:
        self.run_button = PushButton(text=run_text, tooltip=run_tooltip)
        self.cancel_button = PushButton(text="Cancel", enabled=False, visible=cancellable,
                                        tooltip="Stop the run; no layer is added or changed, no file written")
        self.progress = ProgressBar(value=0, min=0, max=1000, label="", visible=False,
                                    tooltip="The stage of the run and its progress")
        self.status = Label(value="", tooltip=_STATUS_TOOLTIP)
        self.status.native.setWordWrap(True)
        # Its text never sets the dock's width (a long word is shortened by say(), the rest wraps).
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.worker = None
        self._idle_buttons = [self.run_button]  # enabled only while no run goes on
        self._running_task = self._task
        self._cancel_event = threading.Event()
        self._closed = False
        self._activity = None
        self._stage, self._fraction, self._counting_since = "", None, 0.0
        self._watcher = _CloseWatcher(self.native, self._on_close, self._on_dock, self._on_destroyed)
        self._bar_watcher = _ResizeWatcher(self.progress.native, self._refit_progress)
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        return [buttons, self.progress, self.status]

    def _start(
        self, function, *args, on_returned, stage: str, task: str | None = None,
        cancelled: str = "nothing was added or changed", **kwargs,
    ):
        """Run ``function(*args, cancel=, progress=, status=, **kwargs)`` in a worker thread.

        ``on_returned(result, seconds)`` is called in the GUI thread (with
        the run's duration), unless the widget was closed meanwhile;
        ``stage`` labels the bar until ``status`` says more; ``task`` names
        the run in messages (default: the widget's task); ``cancelled`` says
        what a cancel left as it was.
        """
        self._cancel_event = threading.Event()
        self._running_task = task or self._task
        self._cancelled = cancelled
        started = time.perf_counter()

        def returned(result) -> None:
            if not self._closed:
                on_returned(result, time.perf_counter() - started)

        # Errors are reported by _on_error; without _ignore_errors napari would also re-raise them.
        worker = create_worker(
            function, *args, cancel=self._cancel_event, progress=ensure_main_thread(self._on_progress),
            status=ensure_main_thread(self._on_status),
            _connect={"returned": returned, "errored": self._on_error, "finished": self._on_finished},
            _ignore_errors=True, _start_thread=False, **kwargs,
        )  # fmt: skip
        self.worker = worker
        for button in self._idle_buttons:
            button.enabled = False
        self.cancel_button.enabled = True
        self.progress.visible = True
        self._fraction = None
        if isinstance(self._viewer, napari.Viewer):  # a window with an activity dock
            self._activity = _Activity(total=1000, desc=self._activity_text(stage), cancel_callback=self.cancel)
        self._on_status(stage)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running worker to stop; it raises InpaintCancelled within one work unit."""
        self._cancel_event.set()
        self.cancel_button.enabled = False

    def _on_status(self, text: str) -> None:
        """The run's stage changed ("downloading weights", "filling 3/12"): the bar is labelled with it."""
        if self.worker is None or self._closed:  # late news of a finished run, or a closed widget
            return
        self._stage = text
        self._show_progress()
        if self._activity is not None:
            self._activity.set_description(self._activity_text(text))
        self.stage_changed.emit(text)

    def _activity_text(self, stage: str) -> str:
        """The run's line in the activity dock, short enough to leave its Cancel button in view."""
        text = f"{self._running_task}: {stage}"
        # The start says what runs; the bar beside it shows how far.
        return text if len(text) <= _ACTIVITY_CHARACTERS else text[: _ACTIVITY_CHARACTERS - 1] + "…"

    def _on_progress(self, done: float, total: int) -> None:
        if self.worker is None or self._closed:  # late updates from a finished run are dropped
            return
        self.progress_changed.emit(done, total)
        fraction = min(1.0, max(0.0, done / max(total, 1)))
        if self._fraction is None or fraction < self._fraction:  # a stage counting from zero again
            self._counting_since = time.perf_counter()
        self._fraction = fraction
        self._show_progress()
        if self._activity is not None:
            self._activity.update(round(1000 * fraction) - self._activity.n)

    def _show_progress(self) -> None:
        """The bar: busy until the run reports progress, then the share done and the time left.

        The stage is shortened in the middle to fit the bar (the whole of it in the bar's tooltip).
        """
        bar = self.progress.native
        self.progress.tooltip = self._stage
        if self._fraction is None:  # (Qt shows no text on a busy bar: the activity dock names the stage)
            self.progress.max, self.progress.value = 0, 0
            bar.setFormat(self._stage)
            return
        # Steps of a thousandth: iterative methods report fractional progress within a unit, downloads bytes.
        self.progress.max, self.progress.value = 1000, round(1000 * self._fraction)
        elapsed = time.perf_counter() - self._counting_since
        after = f" {round(100 * self._fraction)}%"
        if elapsed > 3 and self._fraction > 0.02:
            after += f", about {duration_text(elapsed * (1 - self._fraction) / self._fraction)} left"
        bar.setFormat(self._fitted_stage(after) + after)

    def _refit_progress(self) -> None:
        if self.worker is not None and not self._closed:
            self._show_progress()

    def _fitted_stage(self, after: str) -> str:
        """The stage, elided in the middle so that it and ``after`` fit in the bar (once it is on screen)."""
        bar = self.progress.native
        if not bar.isVisible():
            return self._stage
        metrics = bar.fontMetrics()
        room = bar.contentsRect().width() - metrics.horizontalAdvance(after + "  ")
        return metrics.elidedText(self._stage, Qt.TextElideMode.ElideMiddle, max(room, 0))

    def _on_error(self, exc: BaseException) -> None:
        if self._closed:  # cancelled by closing, or failed unseen: nothing to tell
            return
        if isinstance(exc, InpaintCancelled):
            self._show_outcome(f"Cancelled: {self._cancelled}.")
            notifications.show_info(f"{self._running_task} cancelled: {self._cancelled}.")
        else:
            message = widget_terms(str(exc))
            self._show_outcome(f"{self._running_task} failed: {message}")
            notifications.show_error(f"{self._running_task} failed: {message}")

    def _on_finished(self) -> None:
        self.worker = None
        self._close_activity()
        if self._closed:
            return
        self.progress.visible = False
        self.progress.max, self.progress.value = 1000, 0
        for button in self._idle_buttons:
            button.enabled = True
        self.cancel_button.enabled = False

    def _close_activity(self) -> None:
        if self._activity is not None:
            self._activity.close()
            self._activity = None

    def _settings_state(self) -> str:
        """The values of every setting (and the plane on screen), to tell whether any changed."""
        shown = (Label, PushButton, ProgressBar)  # not settings
        values = [control_value(c) for c in _controls(self) if not isinstance(c, shown)]
        return repr((values, self._viewer.dims.current_step))

    def say(self, text: str) -> None:
        """Show ``text`` in the status line: a long one as its first sentence, the whole in the tooltip."""
        if is_long(text):
            self.status.value, self.status.tooltip = f"{short_text(text)} (more: hover here)", text
        else:
            self.status.value, self.status.tooltip = text, _STATUS_TOOLTIP

    def _show_outcome(self, text: str) -> None:
        """Show what a run did; it stays until a setting changes (the previews wait)."""
        self.say(text)
        self._outcome_state = self._settings_state()

    def _preview_due(self) -> bool:
        """Whether the status line may show a preview: no run going, and a setting changed since the last."""
        return self.worker is None and self._settings_state() != getattr(self, "_outcome_state", None)

    def _refuse(self, message: str) -> None:
        """Say why a run does not start (until the next preview: it may say the same, or what changed)."""
        self.say(f"Not run: {message}")
        notifications.show_error(message)

    def _on_close(self) -> None:
        """The widget was closed: cancel its run (its result is dropped) and stop following the viewer."""
        if self._closed:
            return
        self.cancel()
        self._on_destroyed()

    def _on_destroyed(self, _object=None) -> None:
        """The widget is gone (closed, or deleted with its window): cancel its run, touching no control."""
        if self._closed:
            return
        self._closed = True
        self._cancel_event.set()
        self._close_activity()
        self._unwatch_layers()

    def _on_dock(self) -> None:
        if self._closed:
            self._closed = False
            self._watch_layers(self._viewer)
            self.reset_choices()


def settings_path(name: str) -> Path:
    """The settings file of the widget ``name``: in ``$NAPARI_INPAINT_SETTINGS``, else the config folder."""
    folder = os.environ.get(SETTINGS_ENV)
    if not folder:
        import platformdirs

        folder = platformdirs.user_config_dir("napari-inpaint")
    return Path(folder) / f"{name}.json"


class Settings:
    """Remembers a widget's settings across dock closes and napari sessions, with "Restore defaults".

    Like magicgui's ``persist=True`` (which stardist-napari uses), each
    change is written to a file of the widget's own, and read back when the
    widget is made again; but as JSON of plain values, so that layers are
    never stored, and with room for more than the top-level controls
    (:meth:`_stored` holds e.g. each method's parameters).
    """

    _settings_name = "widget"

    def _remember(self, names: list[str]) -> PushButton:
        """Restore the controls ``self.<name>`` from the settings file, save them on each change.

        Returns the "Restore defaults" button.
        """
        self._persisted = {name: getattr(self, name) for name in names}
        self._defaults = {name: control_value(control) for name, control in self._persisted.items()}
        try:
            self._settings = json.loads(settings_path(self._settings_name).read_text())
        except (OSError, ValueError):  # none yet, or unreadable: the defaults
            self._settings = {}
        if not isinstance(self._settings, dict):
            self._settings = {}
        for name, control in self._persisted.items():
            if name in self._stored("controls"):
                set_control_value(control, self._stored("controls")[name])
            control.changed.connect(self._save_settings)
        button = PushButton(text="Restore defaults", tooltip="Set every control back to its default value")
        button.changed.connect(self.restore_defaults)
        return button

    def _stored(self, key: str) -> dict:
        """A section of the settings (created when missing)."""
        return self._settings.setdefault(key, {})

    def _save_settings(self, _value=None) -> None:
        self._stored("controls").update({name: control_value(c) for name, c in self._persisted.items()})
        path = settings_path(self._settings_name)
        with contextlib.suppress(OSError):  # a read-only home folder: the settings are not remembered
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self._settings, indent=1))

    def restore_defaults(self) -> None:
        """Set every remembered control back to its default (and forget the other settings)."""
        self._settings = {}
        for name, control in self._persisted.items():
            set_control_value(control, self._defaults[name])
        self._after_restore()
        self._save_settings()

    def _after_restore(self) -> None:
        """Hook: re-apply what the widget derives from the forgotten settings."""
