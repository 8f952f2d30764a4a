"""The "Compare methods" widget: :func:`napari_inpaint.evaluate.evaluate` as a table, a plot and layers."""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, Select, SpinBox, TextEdit
from napari.layers import Image, Labels, Shapes
from napari.utils import notifications
from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import QFileDialog, QTextEdit

from napari_inpaint import get_method, list_methods, models
from napari_inpaint import masks as mask_generators
from napari_inpaint.layers import COMPARE, Provenance, add_mask, add_result, layer_mask, provenance_of
from napari_inpaint.evaluate import DEFAULT_MASKS, DEFAULT_RATIOS, default_methods, evaluate
from napari_inpaint.widgets._common import INT_LIMIT, LayerChoices, Runner, plane_of

COMPARE_SUFFIX = " (compare)"
CLEAN, DAMAGED = "clean pixels", "damaged pixels"  # what the region layer marks


def _compare(data, plane, region, *, cancel, progress, **options):
    """Worker body: score the methods on ``data[plane]``, keeping the example that ``evaluate`` scored.

    Only that plane of a stack is read (computed, for a dask array).
    """
    return evaluate(
        np.asarray(data[plane]), region=region, keep_example=True, progress=progress, cancel=cancel, **options
    )


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


class CompareMethodsWidget(Container, LayerChoices, Runner):
    """Score inpainting methods on holes hidden in the known pixels of an image layer.

    The scores of :func:`napari_inpaint.evaluate.evaluate` are shown as a
    table and plotted (PSNR in the holes against the hole ratio).  For the
    example hole that :func:`~napari_inpaint.evaluate.evaluate` keeps (one of
    those it scored), each method's fill is added as
    ``"<image> <method> (compare)"`` and the hole as
    ``"<image> holes (compare)"`` (a rerun replaces them).  For a stack, the
    plane on screen is compared, and these layers hold that plane only: 2D
    layers over the stack, with its spatial calibration (shown on every
    plane), so that no method's example costs a copy of the stack.
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
        self.seed = SpinBox(label="seed", value=0, min=0, max=INT_LIMIT)
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
        """Every method, except those with weights still to download."""
        return [m.name for m in list_methods() if all(models.is_cached(name) for name in m.weights)]

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
            notifications.show_error("Compare methods needs an image layer")
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
                region = plane_of(layer_mask(region_layer, image), plane)
                if self.region_marks.value == DAMAGED:
                    region = ~region
        except (ValueError, TypeError) as exc:
            notifications.show_error(str(exc))
            return None
        settings = {
            "seed": self.seed.value, "plane": list(plane),
            "region": None if region_layer is None else f"{region_layer.name} ({self.region_marks.value})",
        }

        def on_returned(table) -> None:
            self.table = table
            lines = [table.to_text()]
            if table.example is None:
                ratio = ratios[len(ratios) // 2]
                lines.append(f"no example layers: no {kinds[0]} hole of ratio {ratio} fits")
            self.scores.native.setPlainText("\n".join(lines))
            self._draw(table, image.name)
            self._add_layers(image, table.example, settings)
            self.save_button.enabled = True

        return self._start(
            _compare, image.data, plane, region, on_returned=on_returned, methods=methods, masks=kinds,
            ratios=ratios, seed=self.seed.value, repeats=self.repeats.value,
            channel_axis=-1 if image.rgb else None,
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

    def _add_layers(self, image, example, settings: dict) -> None:
        """Add or replace the example layers; remove this image's earlier ones that were not redone."""
        kept = set()
        if example is not None:
            details = {"mask": example.kind, "ratio": example.ratio, **settings}
            for method, filled in example.fills.items():
                defaults = get_method(method).resolve({})  # evaluate fills with the defaults
                made = Provenance(image.name, COMPARE, method=method, parameters=defaults, details=details)
                name = f"{image.name} {method}{COMPARE_SUFFIX}"
                kept.add(add_result(self._viewer, image, filled, made, name=name).name)
            made = Provenance(image.name, COMPARE, details=details)
            name = f"{image.name} holes{COMPARE_SUFFIX}"
            kept.add(add_mask(self._viewer, image, example.hole, name=name, provenance=made).name)
        for layer in list(self._viewer.layers):
            made = provenance_of(layer)
            earlier = made is not None and made.made_by == COMPARE and made.source == image.name
            if earlier and layer.name not in kept:
                self._viewer.layers.remove(layer)

    def save_csv(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the scores as CSV to ``path``, or where a save dialog (which confirms replacing) says.

        An existing ``path`` is only replaced with ``overwrite=True``.
        Returns the path written, or None.
        """
        if self.table is None:
            notifications.show_error("Run a comparison first")
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
            notifications.show_error(f"{path} exists and was not replaced; choose another name")
            return None
        except OSError as exc:
            notifications.show_error(f"Could not save the scores: {exc}")
            return None
        notifications.show_info(f"Scores saved to {path}")
        return path

    def _ask_csv_path(self) -> str:
        name = f"{self.image.value.name if self.image.value is not None else 'scores'} methods.csv"
        path, _ = QFileDialog.getSaveFileName(self.native, "Save the scores", name, "CSV files (*.csv)")
        return path
