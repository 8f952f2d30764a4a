"""The napari widgets: "Inpaint", "Mask from image" and "Compare methods".

They hold no image processing: the Inpaint widget turns its controls into one
call of :func:`napari_inpaint.inpaint` (the parameter controls are generated
from the method records of :func:`napari_inpaint.list_methods`), the Mask
widget calls :func:`napari_inpaint._detect.mask_from_image` and the Compare
widget :func:`napari_inpaint.evaluate.evaluate`.  All run the work in a
``thread_worker`` and add their layers through :mod:`napari_inpaint._layers`
when it returns, because napari layers must only be changed from the GUI thread.
"""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import threading
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
    TextEdit,
    Widget,
)
from napari.layers import Image, Labels, Points, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import QFileDialog, QTextEdit
from superqt.utils import ensure_main_thread

from napari_inpaint import InpaintCancelled, Param, get_method, inpaint, list_methods, models
from napari_inpaint import masks as mask_generators
from napari_inpaint._detect import dilate_mask, mask_from_image
from napari_inpaint._layers import (
    OVERLAY_SUFFIX,
    PROVENANCE_KEY,
    add_mask,
    add_result,
    grid_shape,
    layer_mask,
    make_provenance,
)
from napari_inpaint.evaluate import DEFAULT_MASKS, DEFAULT_RATIOS, default_methods, evaluate, hide_holes, hole_rng

# Scope values: what one run fills.
PLANE, STACK, VOLUME = "plane", "stack", "volume"
NOISE_CHOICES = ("none", "gaussian", "poisson")
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e12


def _available_devices(choices: tuple[str, ...]) -> list[str]:
    """The device choices that exist on this machine (torch is imported only for methods that use it)."""
    import torch

    present = {"auto", "cpu"}
    if torch.cuda.is_available():
        present.add("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        present.add("mps")
    return [c for c in choices if c in present] or list(choices)


def _float_step(param: Param) -> float:
    """A spin-box step one decade below the default (which also sets the decimals shown)."""
    reference = abs(param.default) or (param.high or 1.0)
    return float(min(1.0, 10.0 ** (np.floor(np.log10(reference)) - 1)))


def param_widget(param: Param) -> Widget:
    """Build the magicgui control for one method parameter."""
    common = {"name": param.name, "label": param.name.replace("_", " "), "tooltip": param.help}
    if param.kind is bool:
        return CheckBox(value=bool(param.default), **common)
    if param.kind is int:
        low = -_INT_LIMIT if param.low is None else int(param.low)
        high = _INT_LIMIT if param.high is None else int(param.high)
        return SpinBox(value=int(param.default), min=low, max=high, **common)
    if param.kind is float:
        low = -_FLOAT_LIMIT if param.low is None else float(param.low)
        high = _FLOAT_LIMIT if param.high is None else float(param.high)
        return FloatSpinBox(value=float(param.default), min=low, max=high, step=_float_step(param), **common)
    if param.choices:
        choices = _available_devices(param.choices) if param.name == "device" else list(param.choices)
        value = param.default if param.default in choices else choices[0]
        return ComboBox(value=value, choices=choices, **common)
    return LineEdit(value=str(param.default), **common)


class _LayerChoices:
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


class _Runner:
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
            show_info(str(exc))
        else:
            show_error(f"{self._task} failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.max, self.progress.value = 1, 0
        self.run_button.enabled, self.cancel_button.enabled = True, False


def _model_note(spec) -> str:
    """Licence, size and cache state of a method's downloadable weights."""
    if not spec.needs_download:
        return ""
    model = models.get_model(spec.name)
    state = "cached" if models.is_cached(spec.name) else f"downloaded on first run ({model.size / 2**20:.0f} MiB)"
    note = f" Weights: {model.licence}, {state}."
    if not model.commercial_use:
        note += " Non-commercial licence: not for commercial use."
    return note


def _fill(data, mask, plane, *, params, cancel, progress, **options) -> np.ndarray:
    """Worker body: inpaint the whole stack, or only ``plane`` (a tuple of leading indices) of a copy.

    ``options`` are the engine's keywords (method, spatial_ndim...), ``params`` the method's own.
    """
    kwargs = {"cancel": cancel, "progress": progress, **options, **params}
    if get_method(options["method"]).needs_download:
        # Download before filling, in this worker, with the same progress bar.
        models.fetch(options["method"], progress=progress)
    if plane is None:
        # The engine returns a lazy result for a dask layer, computed plane by plane as napari shows it.
        return inpaint(data, mask, **kwargs)
    result = np.array(data, copy=True)
    result[plane] = inpaint(result[plane], _plane_of(mask, plane), **kwargs)
    return result


def _plane_of(mask: np.ndarray, plane: tuple[int, ...]) -> np.ndarray:
    """The 2D mask of ``plane`` (leading indices of the image) from a mask of any trailing shape."""
    return mask[plane[len(plane) + 2 - mask.ndim :]]


class InpaintWidget(Container, _LayerChoices, _Runner):
    """Fill the pixels of an image layer marked by a Labels, Shapes or Points layer.

    The result is added as ``"<image> inpainted"`` (a rerun replaces it);
    the source layer is never modified.
    """

    _task = "Inpainting"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image))
        self.mask = ComboBox(label="mask", choices=lambda _w: self._layers_of(Labels, Shapes, Points),
                             tooltip="Labels (nonzero = bad), Shapes (drawn regions) or Points (disks)")
        self.mask_label = SpinBox(label="label", value=0, min=0, max=_INT_LIMIT,
                                  tooltip="Labels mask: fill only this label (0: every nonzero label)")
        self.radius = FloatSpinBox(label="point radius", value=3.0, min=0.0, max=1000.0, step=0.5,
                                   tooltip="Points mask: radius of the disk around each point, in pixels")
        self.dilate = SpinBox(label="dilate mask", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels (to cover halos and blooming)")
        names = [m.name for m in list_methods()]
        default = "biharmonic" if "biharmonic" in names else names[0]
        self.method = ComboBox(label="method", choices=names, value=default)
        self.summary = Label(label="")
        self.summary.native.setWordWrap(True)
        self.params = Container(labels=True)
        self.params.margins = (0, 0, 0, 0)
        self.scope = ComboBox(label="scope", choices=self._scope_choices,
                              tooltip="Fill the plane on screen, every plane separately, or whole 3D volumes")
        self.noise = ComboBox(label="noise", choices=NOISE_CHOICES, value="none",
                              tooltip="Add noise like the surroundings' so that the fill is not too smooth")
        self.overlay = CheckBox(label="show inpainted pixels", value=False,
                                tooltip="Add a Labels layer marking the pixels that were invented")
        self.extend([
            self.image, self.mask, self.mask_label, self.radius, self.dilate, self.method, self.summary,
            self.params, self.scope, self.noise, self.overlay, *self._make_runner("Run"),
        ])
        self.mask.changed.connect(self._on_mask_changed)
        self.image.changed.connect(lambda _v: self.scope.reset_choices())
        self.method.changed.connect(self._on_method_changed)
        self._on_method_changed()
        self._on_mask_changed()

    # -- controls that follow other controls ---------------------------------

    def _on_mask_changed(self, _value=None) -> None:
        self.mask_label.visible = isinstance(self.mask.value, Labels)
        self.radius.visible = isinstance(self.mask.value, Points)

    def _on_method_changed(self, _value=None) -> None:
        spec = get_method(self.method.value)
        self.method.tooltip = spec.summary
        self.summary.value = f"{spec.summary.rstrip('.')}. Best for: {', '.join(spec.artifacts)}." + _model_note(spec)
        self.params.clear()
        self.params.extend(param_widget(p) for p in spec.params)
        self.params.visible = bool(spec.params)
        self.scope.reset_choices()

    def _scope_choices(self, _widget=None) -> list[tuple[str, str]]:
        layer = self.image.value
        ndim = len(grid_shape(layer)) if layer is not None and not layer.multiscale else 2
        if ndim <= 2:
            return [("whole image", STACK)]
        choices = [("every plane of the stack", STACK), ("current plane", PLANE)]
        if 3 in get_method(self.method.value).ndims:
            choices.append(("3D volume" if ndim == 3 else "each 3D volume", VOLUME))
        return choices

    def parameter_values(self) -> dict:
        """The method parameters as set in the generated controls."""
        return {w.name: w.value for w in self.params}

    # -- running ---------------------------------------------------------------

    def run(self):
        """Start inpainting with the current settings; returns the worker (None when nothing started)."""
        image, mask_layer = self.image.value, self.mask.value
        if image is None or mask_layer is None:
            show_error("Inpaint needs an image layer and a mask layer (Labels, Shapes or Points)")
            return None
        scope, method, params = self.scope.value, self.method.value, self.parameter_values()
        spatial_ndim = 3 if scope == VOLUME else 2
        try:
            mask = layer_mask(mask_layer, image, label=self.mask_label.value, radius=self.radius.value)
            if self.dilate.value:
                mask = dilate_mask(mask, self.dilate.value, spatial_ndim=min(spatial_ndim, mask.ndim))
            plane = self._current_plane(image) if scope == PLANE else None
            if not mask.any():
                raise ValueError(f"the mask from layer {mask_layer.name!r} is empty: mark some pixels first")
            resolved = get_method(method).resolve(params)
        except (ValueError, TypeError) as exc:
            show_error(str(exc))
            return None
        details = {"scope": scope, "dilate": self.dilate.value, "noise": self.noise.value}
        if plane is not None:
            details["plane"] = list(plane)
        if isinstance(mask_layer, Labels):
            details["label"] = self.mask_label.value or "all"
        if isinstance(mask_layer, Points):
            details["point_radius"] = self.radius.value
        provenance = make_provenance(image, method, resolved, mask_layer=mask_layer.name, **details)

        def on_returned(result: np.ndarray) -> None:
            add_result(self._viewer, image, result, provenance)
            if self.overlay.value:
                invented = np.zeros(grid_shape(image), bool)
                if plane is None:
                    invented[...] = mask
                else:
                    invented[plane] = _plane_of(mask, plane)
                name = image.name + OVERLAY_SUFFIX
                add_mask(self._viewer, image, invented, name=name, provenance=provenance)

        return self._start(
            _fill, image.data, mask, plane, on_returned=on_returned, method=method, params=params,
            spatial_ndim=spatial_ndim, channel_axis=-1 if image.rgb else None,
            noise=None if self.noise.value == "none" else self.noise.value,
        )


def _detect(data, *, cancel, progress, **options) -> np.ndarray:
    """Worker body of the mask widget; detection is one vectorised pass, so ``cancel`` is not consulted."""
    mask = mask_from_image(np.asarray(data), **options)
    progress(1, 1)
    return mask


def _optional_float(widget: LineEdit) -> float | None:
    text = widget.value.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{widget.label!r} must be a number or empty, got {text!r}") from None


class MaskFromImageWidget(Container, _LayerChoices, _Runner):
    """Detect bad pixels of an image layer and add them as an editable Labels layer ``"<image> mask"``."""

    _task = "Mask detection"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image))
        self.nonfinite = CheckBox(label="NaN / inf", value=True, tooltip="Flag NaN and infinite pixels")
        self.above = LineEdit(label="above", value="", tooltip="Flag pixels above this value (empty: off)")
        self.below = LineEdit(label="below", value="", tooltip="Flag pixels below this value (empty: off)")
        self.saturated = CheckBox(label="saturated", value=False,
                                  tooltip="Flag pixels at the saturation level")
        self.saturation_value = LineEdit(
            label="saturation level", value="",
            tooltip="Empty: the dtype's maximum (255, 65535), or a float image's largest value",
        )
        self.outliers = CheckBox(label="hot / dead pixels", value=False,
                                 tooltip="Flag pixels far from the median of their neighbourhood")
        self.k = FloatSpinBox(label="outlier threshold", value=5.0, min=1.0, max=100.0, step=0.5,
                              tooltip="In robust standard deviations: |x - local median| > k * 1.4826 * MAD")
        self.size = SpinBox(label="median window", value=3, min=3, max=15, step=2,
                            tooltip="Width of the median window; 5 catches 2x2 clusters")
        self.min_size = SpinBox(label="min component", value=0, min=0, max=_INT_LIMIT,
                                tooltip="Drop connected regions smaller than this many pixels")
        self.dilate = SpinBox(label="dilate", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels")
        self.result = Label(label="")
        self.result.native.setWordWrap(True)
        self.extend([
            self.image, self.nonfinite, self.above, self.below, self.saturated, self.saturation_value,
            self.outliers, self.k, self.size, self.min_size, self.dilate,
            *self._make_runner("Create mask", cancellable=False), self.result,
        ])

    def detection_options(self) -> dict:
        """Keyword arguments for :func:`napari_inpaint._detect.mask_from_image` from the controls."""
        return {
            "above": _optional_float(self.above),
            "below": _optional_float(self.below),
            "saturated": self.saturated.value,
            "saturation_value": _optional_float(self.saturation_value),
            "outliers": self.outliers.value,
            "k": self.k.value,
            "size": self.size.value,
            "nonfinite": self.nonfinite.value,
            "min_size": self.min_size.value,
            "dilate": self.dilate.value,
        }

    def run(self):
        """Start detection; returns the worker (None when nothing started)."""
        image = self.image.value
        if image is None:
            show_error("Mask from image needs an image layer")
            return None
        try:
            options = self.detection_options()
            grid_shape(image)
        except ValueError as exc:
            show_error(str(exc))
            return None
        provenance = {"source": image.name, "detection": options}

        def on_returned(mask: np.ndarray) -> None:
            labels = add_mask(self._viewer, image, mask, provenance=provenance)
            self._viewer.layers.selection.active = labels
            self.result.value = f"{int(mask.sum())} pixels flagged ({100 * mask.mean():.3g}%)"

        return self._start(_detect, image.data, on_returned=on_returned,
                           channel_axis=-1 if image.rgb else None, **options)


# -- compare methods ---------------------------------------------------------------

COMPARE_SUFFIX = " (compare)"
CLEAN, DAMAGED = "clean pixels", "damaged pixels"  # what the region layer marks


def _compare(data, plane, region, *, methods, kinds, ratios, seed, repeats, channel_axis, cancel, progress):
    """Worker body of the Compare widget: score ``methods`` on ``data[plane]``, then fill one example hole.

    The example is the first hole kind at the middle ratio, drawn as
    :func:`napari_inpaint.evaluate.evaluate` draws its first repeat, so it is
    one of the holes the table scores.  Returns the table, the hole (None if
    none fits) and each method's fill, both of the image's shape with only
    ``plane`` changed.
    """
    reference = np.asarray(data[plane])
    reported = {"total": 0}

    def evaluation_progress(done: float, total: int) -> None:
        reported["total"] = total
        progress(done, total + len(methods))  # the example fills come last

    table = evaluate(reference, methods, kinds, region, ratios, seed, repeats=repeats,
                     channel_axis=channel_axis, progress=evaluation_progress, cancel=cancel)
    middle = len(ratios) // 2
    spatial = reference.shape[:2]
    region = np.ones(spatial, bool) if region is None else region
    hole = hide_holes(kinds[0], region, ratios[middle], hole_rng(seed, 0, middle))
    if hole is None:
        return table, None, {}
    damaged = reference.copy()
    damaged[hole] = 0  # as scored: no method sees the hidden pixels
    fills = {}
    for done, method in enumerate(methods, 1):
        try:
            # As scored: pixels outside the clean region are never used as known.
            filled = inpaint(damaged, hole | ~region, method, channel_axis=channel_axis, seed=seed, cancel=cancel)
        except InpaintCancelled:
            raise
        except Exception:  # the table's rows already say why this method failed
            filled = None
        progress(reported["total"] + done, reported["total"] + len(methods))
        if filled is not None and plane:
            fills[method] = np.array(data, copy=True)
            fills[method][plane] = filled
        elif filled is not None:
            fills[method] = filled
    holes = np.zeros(np.shape(data)[: len(plane)] + spatial, bool)
    holes[plane] = hole
    return table, holes, fills


def _ratios(widget: LineEdit) -> list[float]:
    """The hole ratios typed as numbers separated by commas or spaces, each in (0, 1)."""
    try:
        ratios = [float(text) for text in widget.value.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"{widget.label!r} must be numbers between 0 and 1, got {widget.value!r}") from None
    if not ratios or not all(0 < ratio < 1 for ratio in ratios):
        raise ValueError(f"{widget.label!r} must be numbers between 0 and 1, got {widget.value!r}")
    return ratios


def _plot_canvas():
    """A matplotlib canvas for Qt, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    canvas = FigureCanvasQTAgg(Figure(figsize=(4, 3), layout="constrained"))
    canvas.setMinimumHeight(240)
    return canvas


class CompareMethodsWidget(Container, _LayerChoices, _Runner):
    """Score inpainting methods on holes hidden in the known pixels of an image layer.

    The scores of :func:`napari_inpaint.evaluate.evaluate` are shown as a
    table and plotted (PSNR in the holes against the hole ratio); for one
    example hole, each method's fill is added as ``"<image> <method> (compare)"``
    and the hole as ``"<image> holes (compare)"`` (a rerun replaces them).
    For a stack, the plane on screen is compared.
    """

    _task = "Comparison"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image),
                              tooltip="A stack is compared on the plane on screen")
        self.region = ComboBox(
            label="region", nullable=True, choices=lambda _w: self._layers_of(Labels, Shapes),
            tooltip="Optional Labels or Shapes layer: holes are hidden only in clean pixels",
        )
        self.region_marks = ComboBox(
            label="region marks", choices=[CLEAN, DAMAGED], value=CLEAN,
            tooltip="Whether the region layer marks the clean pixels or the damaged ones",
        )
        self.methods = Select(label="methods", choices=self._method_choices, tooltip=self._method_tooltip())
        self.methods.value = [m for m in default_methods() if m in self._method_choices()]
        self.kinds = Select(label="hole kinds", choices=list(mask_generators.KINDS),
                            value=list(DEFAULT_MASKS), tooltip="The kinds of synthetic holes to hide")
        self.ratios = LineEdit(label="hole ratios", value=", ".join(map(str, DEFAULT_RATIOS)),
                               tooltip="Shares of the clean pixels to hide, between 0 and 1, one mask each")
        self.repeats = SpinBox(label="repeats", value=1, min=1, max=100,
                               tooltip="Masks per kind and ratio (each with its own seed)")
        self.seed = SpinBox(label="seed", value=0, min=0, max=_INT_LIMIT)
        for select in (self.methods, self.kinds):
            select.native.setMaximumHeight(120)
        self.scores = TextEdit(label="scores")
        self.scores.read_only = True
        self.scores.native.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.scores.native.setLineWrapMode(QTextEdit.NoWrap)
        self.scores.native.setMinimumHeight(120)
        self.canvas = _plot_canvas()
        self.plot = Container(labels=False, visible=False)
        if self.canvas is not None:
            self.plot.native.layout().addWidget(self.canvas)
        self.plot_note = Label(value="Install matplotlib to see the scores plotted.")
        self.plot_note.visible = self.canvas is None
        self.save_button = PushButton(text="Save CSV…", enabled=False)
        self.save_button.changed.connect(lambda: self.save_csv())
        self.table = None  # the last EvaluationTable
        self.extend([
            self.image, self.region, self.region_marks, self.methods, self.kinds, self.ratios, self.repeats,
            self.seed, *self._make_runner("Run"), self.scores, self.plot, self.plot_note, self.save_button,
        ])
        self.region.changed.connect(self._on_region_changed)
        self._on_region_changed()

    def _on_region_changed(self, _value=None) -> None:
        self.region_marks.visible = self.region.value is not None

    @staticmethod
    def _method_choices(_widget=None) -> list[str]:
        """Every method, except those whose weights would have to be downloaded first."""
        return [m.name for m in list_methods() if not m.needs_download or models.is_cached(m.name)]

    def _method_tooltip(self) -> str:
        tooltip = "The methods to compare (Ctrl or Shift + click to select several)."
        missing = [m.name for m in list_methods() if m.name not in self._method_choices()]
        if missing:
            tooltip += f" Offered once their weights are downloaded (Inpaint widget): {', '.join(missing)}."
        return tooltip

    def run(self):
        """Start the comparison; returns the worker (None when nothing started)."""
        image, region_layer = self.image.value, self.region.value
        if image is None:
            show_error("Compare methods needs an image layer")
            return None
        methods = [m for m in self._method_choices() if m in self.methods.value]
        kinds = [k for k in mask_generators.KINDS if k in self.kinds.value]
        try:
            if not methods or not kinds:
                raise ValueError("select at least one method and one hole kind")
            ratios = _ratios(self.ratios)
            plane = self._current_plane(image)
            region = None
            if region_layer is not None:
                region = _plane_of(layer_mask(region_layer, image), plane)
                if self.region_marks.value == DAMAGED:
                    region = ~region
        except (ValueError, TypeError) as exc:
            show_error(str(exc))
            return None
        seed = self.seed.value
        comparison = {
            "mask": kinds[0], "ratio": ratios[len(ratios) // 2], "seed": seed, "plane": list(plane),
            "region": None if region_layer is None else f"{region_layer.name} ({self.region_marks.value})",
        }

        def on_returned(result) -> None:
            table, holes, fills = result
            self.table = table
            lines = [table.to_text()]
            if holes is None:
                lines.append(f"no example layers: no {kinds[0]} hole of ratio {comparison['ratio']} fits")
            self.scores.native.setPlainText("\n".join(lines))
            self._draw(table, image.name)
            self._add_layers(image, holes, fills, comparison)
            self.save_button.enabled = True

        return self._start(
            _compare, image.data, plane, region, on_returned=on_returned, methods=methods, kinds=kinds,
            ratios=ratios, seed=seed, repeats=self.repeats.value, channel_axis=-1 if image.rgb else None,
        )

    def _draw(self, table, title: str) -> None:
        """Plot PSNR in the holes against the hole-ratio bucket, one line per method."""
        if self.canvas is None:
            return
        rows = [row for row in table.rows if row["psnr_hole"] is not None]
        buckets = sorted({row["bucket"] for row in rows}, key=lambda label: float(label.split("-")[0]))
        figure = self.canvas.figure
        figure.clear()
        axes = figure.add_subplot()
        for method in dict.fromkeys(row["method"] for row in rows):
            points = [(buckets.index(r["bucket"]), r["psnr_hole"]) for r in rows if r["method"] == method]
            axes.plot(*zip(*points), marker="o", label=method)
        axes.set_xticks(range(len(buckets)), buckets)
        axes.set(xlabel="hole ratio", ylabel="PSNR in the holes (dB)", title=title)
        axes.grid(alpha=0.3)
        if rows:
            axes.legend(fontsize="small")
        self.canvas.draw_idle()
        self.plot.visible = True

    def _add_layers(self, image, holes, fills: dict, comparison: dict) -> None:
        """Add or replace the example layers; remove this image's earlier ones that were not redone."""
        kept = set()
        for method, filled in fills.items():
            provenance = make_provenance(image, method, {}, comparison=comparison)
            kept.add(add_result(self._viewer, image, filled, provenance,
                                name=f"{image.name} {method}{COMPARE_SUFFIX}").name)
        if holes is not None:
            provenance = {"source": image.name, "comparison": comparison}
            kept.add(add_mask(self._viewer, image, holes, name=f"{image.name} holes{COMPARE_SUFFIX}",
                              provenance=provenance).name)
        for layer in list(self._viewer.layers):
            made = layer.metadata.get(PROVENANCE_KEY, {})
            if "comparison" in made and made.get("source") == image.name and layer.name not in kept:
                self._viewer.layers.remove(layer)

    def save_csv(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the scores as CSV to ``path``, or where a save dialog (which confirms replacing) says.

        An existing ``path`` is only replaced with ``overwrite=True``.
        Returns the path written, or None.
        """
        if self.table is None:
            show_error("Run a comparison first")
            return None
        if path is None:
            path = self._ask_csv_path()
            if not path:
                return None
            overwrite = True  # the dialog has asked
        path = Path(path)
        try:
            with path.open("w" if overwrite else "x", newline="") as file:
                file.write(self.table.to_csv())
        except FileExistsError:
            show_error(f"{path} exists and was not replaced; choose another name")
            return None
        except OSError as exc:
            show_error(f"Could not save the scores: {exc}")
            return None
        show_info(f"Scores saved to {path}")
        return path

    def _ask_csv_path(self) -> str:
        name = f"{self.image.value.name if self.image.value is not None else 'scores'} methods.csv"
        path, _ = QFileDialog.getSaveFileName(self.native, "Save the scores", name, "CSV files (*.csv)")
        return path
