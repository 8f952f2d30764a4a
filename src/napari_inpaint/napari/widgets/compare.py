"""The "Compare methods" widget: :func:`napari_inpaint.evaluation.evaluate` as a table, a plot and layers."""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import importlib.util
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, PushButton, Select, SpinBox
from napari.layers import Image, Labels, Shapes
from napari.utils import notifications
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_inpaint import get_method, list_methods, models
from napari_inpaint import masks as mask_generators
from napari_inpaint.engine.reference import ADJACENT
from napari_inpaint.evaluation import DEFAULT_MASKS, DEFAULT_RATIOS, default_methods, evaluate, metrics
from napari_inpaint.napari.fill import adjacent_window, current_plane, plane_of, size_text
from napari_inpaint.napari.layers import (
    COMPARE,
    Provenance,
    add_mask,
    add_result,
    grid_shape,
    layer_data,
    layer_mask,
    provenance_of,
)
from napari_inpaint.napari.widgets import _common
from napari_inpaint.napari.widgets._common import (
    INT_LIMIT,
    LayerChoices,
    Runner,
    Settings,
    confirm_download,
    duration_text,
)
from napari_inpaint.napari.widgets._scores import SHOWN_ROWS, draw_scores, fill_table, make_table, plot_canvas

COMPARE_SUFFIX = " (compare)"
HOLES = "holes"  # the example hole's layer: "holes (compare)"
CLEAN, DAMAGED = "clean pixels", "damaged pixels"  # what the region layer marks
_PREVIEW_MS = 250


def _compare(data, where, region, *, cancel, progress, status, lpips: bool, **options):
    """Worker body: score the methods on ``data[where]``, keeping the example that ``evaluate`` scored.

    ``where`` is the plane on screen, or the planes around it for a
    reference from adjacent planes (``options`` then name the plane to
    score); only those planes of a stack are read (computed, for a dask array).
    """
    if lpips and not metrics.lpips_available():
        status("downloading the LPIPS weights")
        metrics.fetch_lpips()
    status("filling and scoring")
    return evaluate(
        np.asarray(data[where]), region=region, keep_example=True, lpips=lpips, progress=progress,
        cancel=cancel, **options,
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


def _lpips_tooltip() -> str:
    weights = [models.get_model(name) for name in metrics.LPIPS_MODELS]
    size = size_text(sum(spec.size for spec in weights))
    licences = ", ".join(dict.fromkeys(spec.licence for spec in weights))
    return (
        "Also score with LPIPS, a perceptual distance (lower is better). It needs PyTorch and AlexNet's "
        f"weights: {size} ({licences}), downloaded once after you confirm, kept in {models.cache_dir()}"
    )


class CompareMethodsWidget(Container, LayerChoices, Runner, Settings):
    """Score inpainting methods on holes hidden in the known pixels of an image layer.

    The scores of :func:`napari_inpaint.evaluation.evaluate` are shown in a
    sortable table and plotted (PSNR in the holes against the hole ratio).
    For the example hole that :func:`~napari_inpaint.evaluation.evaluate`
    keeps (one of those it scored), each method's fill is added as
    ``"<method> (compare)"`` and the hole as ``"holes (compare)"`` (a
    rerun on the same image replaces them; "side by side" shows them in
    napari's grid, each tile named).  For a stack, the plane on screen is
    compared, and these layers hold that plane only: 2D layers over the
    stack, with its spatial calibration (shown on every plane), so that no
    method's example costs a copy of the stack.  With "reference: adjacent
    planes", the methods that fill from reference data are offered too, and
    every method that uses a reference gets the planes next to it along the
    stack axis (holes are hidden in the plane on screen only, so its
    neighbours know them).  The status line estimates how long a run takes
    from the earlier runs' timings.
    """

    _task = "Comparison"
    _settings_name = "compare"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)  # the settings have labels; the results use the whole width
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image),
                              tooltip="The image to test on (a stack: the plane on screen); its clean pixels "
                              "are hidden as holes and filled by each method")
        self.region = ComboBox(
            label="region", nullable=True, choices=lambda _w: self._layers_of(Labels, Shapes),
            tooltip="Optional Labels or Shapes layer: holes are hidden only in clean pixels",
        )
        self.region_marks = ComboBox(
            label="region marks", choices=[CLEAN, DAMAGED], value=CLEAN,
            tooltip="Whether the region layer marks the clean pixels or the damaged ones",
        )
        self.adjacent = CheckBox(
            label="reference: adjacent planes", value=False,
            tooltip="Also compare the methods that fill from reference data, each plane next to the plane on "
            "screen serving as its reference (holes are hidden in the plane on screen only)",
        )
        self.align = CheckBox(label="align reference", value=True,
                              tooltip="Shift the neighbouring planes onto the plane first (drift, motion)")
        self.methods = Select(label="methods", choices=self._method_choices, tooltip=self._method_tooltip())
        self.methods.value = [m for m in default_methods() if m in self._method_choices()]
        self.kinds = Select(label="hole kinds", choices=list(mask_generators.KINDS),
                            value=list(DEFAULT_MASKS), tooltip="The kinds of synthetic holes to hide")
        self.ratios = LineEdit(label="hole ratios", value=", ".join(map(str, DEFAULT_RATIOS)),
                               tooltip="Shares of the clean pixels to hide, between 0 and 1, one mask each")
        self.repeats = SpinBox(label="repeats", value=1, min=1, max=100,
                               tooltip="Masks per kind and ratio (each with its own seed): the plot's error "
                               "bars show their spread")
        self.seed = SpinBox(label="seed", value=0, min=0, max=INT_LIMIT,
                            tooltip="Seed of the hidden holes and of stochastic methods: the same seed gives "
                            "the same holes and scores")
        self.lpips = CheckBox(label="LPIPS", value=False, tooltip=_lpips_tooltip())
        for select in (self.methods, self.kinds):
            select.native.setMaximumHeight(120)
        self.score_table = make_table()
        self.scores = Container(labels=False, visible=False)
        self.scores.margins = (0, 0, 0, 0)
        self.scores.native.layout().addWidget(self.score_table)
        self.notes = Label(value="", visible=False, tooltip="Failures and remarks of the last comparison")
        self.notes.native.setWordWrap(True)
        self.canvas = plot_canvas(4, 3)
        self.plot = Container(labels=False, visible=False)
        if self.canvas is not None:
            self.canvas.setMinimumHeight(240)
            self.plot.native.layout().addWidget(self.canvas)
        self.plot_note = Label(value="Install matplotlib to see the scores plotted.",
                               tooltip="pip install matplotlib")
        self.plot_note.visible = self.canvas is None
        self.enlarge_button = PushButton(
            text="Plot in a window", enabled=False, visible=self.canvas is not None,
            tooltip="Open the plot in a window of its own, to enlarge or save it",
        )
        self.enlarge_button.changed.connect(lambda: self.open_plot())
        self.grid_button = PushButton(text="Side by side", enabled=False,
                                      tooltip="Show the image and each method's fill of the example hole in "
                                      "napari's grid, each tile named (the grid button turns it off)")
        self.grid_button.changed.connect(lambda: self.show_side_by_side())
        self.save_button = PushButton(text="Save CSV…", enabled=False,
                                      tooltip="Write the table (every score) as CSV for a spreadsheet")
        self.save_button.changed.connect(lambda: self.save_csv())
        actions = Container(widgets=[self.enlarge_button, self.grid_button, self.save_button],
                            layout="horizontal", labels=False)
        self.table = None  # the last EvaluationTable
        self._plot_window = None
        controls = [self.region_marks, self.adjacent, self.align, self.methods, self.kinds, self.ratios,
                    self.repeats, self.seed, self.lpips]  # fmt: skip
        runner = self._make_runner("Run", "Hide the holes, fill them with each method and score the fills")
        settings = Container(widgets=[self.image, self.region, *controls])
        settings.margins = (0, 0, 0, 0)
        self.extend([settings, *runner, self.scores, self.notes, self.plot, self.plot_note, actions])
        self.append(self._remember(
            ["region_marks", "adjacent", "align", "methods", "kinds", "ratios", "repeats", "seed", "lpips"]
        ))
        self._preview_timer = QTimer(self.native, singleShot=True, interval=_PREVIEW_MS)
        self._preview_timer.timeout.connect(self.update_preview)
        self.region.changed.connect(self._on_region_changed)
        self.image.changed.connect(self._on_reference_changed)
        self.adjacent.changed.connect(self._on_reference_changed)
        self.changed.connect(self._schedule_preview)
        self._on_region_changed()
        self._on_reference_changed()
        self.update_preview()  # the status line says what a run would do from the start

    def _on_region_changed(self, _value=None) -> None:
        self.region_marks.visible = self.region.value is not None

    def _on_reference_changed(self, _value=None) -> None:
        """Offer the methods that fill from reference data with adjacent planes, and select them."""
        self.adjacent.visible = self._is_stack()
        self.align.visible = self._uses_adjacent()
        selected = set(self.methods.value)
        self.methods.reset_choices()
        if self._uses_adjacent():
            kinds = [k for k in mask_generators.KINDS if k in self.kinds.value]
            selected |= {m for m in default_methods(kinds, reference=True) if get_method(m).needs_reference}
            self.methods.value = [m for m in self.methods.choices if m in selected]

    def _is_stack(self) -> bool:
        image = self.image.value
        return image is not None and len(grid_shape(image)) > 2

    def _uses_adjacent(self) -> bool:
        """Whether the comparison takes the neighbouring planes of a stack as reference."""
        return self._is_stack() and self.adjacent.value

    def _method_choices(self, _widget=None) -> list[str]:
        """Every method, except those with weights to download and, without a reference, those needing one."""
        referenced = self._uses_adjacent()
        return [
            m.name for m in list_methods()
            if all(models.is_cached(name) for name in m.weights) and (referenced or not m.needs_reference)
        ]

    def _method_tooltip(self) -> str:
        tooltip = "The methods to compare (Ctrl or Shift + click to select several)."
        missing = [m.name for m in list_methods() if any(not models.is_cached(name) for name in m.weights)]
        if missing:
            tooltip += f" Offered once their weights are downloaded (Inpaint widget): {', '.join(missing)}."
        referenced = [m.name for m in list_methods() if m.needs_reference]
        if referenced:
            tooltip += f" Offered with 'reference: adjacent planes' on a stack: {', '.join(referenced)}."
        return tooltip

    # -- the estimate before a run -------------------------------------------------

    def _schedule_preview(self, _value=None) -> None:
        if self.worker is None and not self._closed:
            self._preview_timer.start()

    def update_preview(self) -> None:
        """Say in the status line how many fills a run makes and, from earlier runs, how long it takes."""
        if self._preview_due():
            self.say(self.estimate())

    def estimate(self) -> str:
        """The fills a run makes, and its duration estimated from the timings of earlier runs."""
        image = self.image.value
        methods = [m for m in self._method_choices() if m in self.methods.value]
        kinds = [k for k in mask_generators.KINDS if k in self.kinds.value]
        try:
            ratios = _ratios(self.ratios)
        except ValueError as exc:
            return f"Cannot run yet: {exc}"
        if image is None or not methods or not kinds:
            return "Choose an image, and at least one method and one hole kind."
        masks = len(kinds) * len(ratios) * self.repeats.value
        text = (
            f"Will make {masks * len(methods)} fills ({len(methods)} method{'s' if len(methods) > 1 else ''}"
            f" × {masks} hidden mask{'s' if masks > 1 else ''})"
        )
        megapixels = np.prod(grid_shape(image)[-2:]) / 1e6
        timings = self._stored("timings")
        timed = [m for m in methods if m in timings]
        if timed:
            seconds = sum(timings[m] * megapixels * masks for m in timed)
            text += f", about {duration_text(seconds)}"
            if len(timed) < len(methods):
                text += f" for {', '.join(timed)}"
        untimed = [m for m in methods if m not in timings]
        if untimed:
            text += f"; not timed yet: {', '.join(untimed)} (the bar tells once it runs)"
        return text + "."

    def _remember_timings(self, evaluation, megapixels: float) -> None:
        """Keep each method's seconds per fill and megapixel for the next estimates (in the settings)."""
        for method in dict.fromkeys(trial["method"] for trial in evaluation.trials):
            trials = [t for t in evaluation.trials if t["method"] == method]
            seconds = [t["seconds"] for t in trials if t["seconds"] is not None]
            if seconds:
                self._stored("timings")[method] = float(np.mean(seconds)) / megapixels
        self._save_settings()

    # -- running -----------------------------------------------------------------------

    def run(self):
        """Start the comparison; returns the worker (None when nothing started)."""
        self._preview_timer.stop()
        image, region_layer = self.image.value, self.region.value
        if image is None:
            self._refuse("Compare methods needs an image layer")
            return None
        methods = [m for m in self._method_choices() if m in self.methods.value]
        kinds = [k for k in mask_generators.KINDS if k in self.kinds.value]
        try:
            if not methods or not kinds:
                raise ValueError("select at least one method and one hole kind")
            ratios = _ratios(self.ratios)
            plane = current_plane(self._viewer, image)
            where, options = plane, {}
            if self._uses_adjacent():  # the plane on screen and its neighbours
                where = adjacent_window(plane, grid_shape(image))
                index = plane[-1] - where[-1].start
                options = {"plane": index, "reference": ADJACENT, "align": self.align.value}
            region = None
            if region_layer is not None:
                region = plane_of(layer_mask(region_layer, image), plane)
                if self.region_marks.value == DAMAGED:
                    region = ~region
            if self.lpips.value and importlib.util.find_spec("torch") is None:
                raise ValueError("LPIPS needs PyTorch (pip install torch): untick LPIPS to compare without")
        except (ValueError, TypeError) as exc:
            self._refuse(str(exc))
            return None
        if self.lpips.value and not metrics.lpips_available():
            missing = [name for name in metrics.LPIPS_MODELS if not models.is_cached(name)]
            if not confirm_download(self.native, missing, "LPIPS scores with AlexNet"):
                self._refuse("LPIPS needs its weights, which were not downloaded; untick LPIPS or run again")
                return None
        settings = {
            "seed": self.seed.value, "plane": list(plane),
            "region": None if region_layer is None else f"{region_layer.name} ({self.region_marks.value})",
        }
        if options:
            settings.update(reference=ADJACENT, align=self.align.value)
        self.say(self.estimate().replace("Will make", "Making", 1))

        def on_returned(table, seconds: float) -> None:
            self.table = table
            self.show_scores(table, image.name)
            self._add_layers(image, table.example, settings)
            self._remember_timings(table, np.prod(grid_shape(image)[-2:]) / 1e6)
            done = [row for row in table.rows if row["psnr_hole"] is not None]
            summary = f"Scored {len(table.trials)} fills in {duration_text(seconds)}."
            if done:
                best = max(done, key=lambda row: row["psnr_hole"])
                summary += f" Best PSNR in the holes: {best['method']} ({best['bucket']} hidden)."
            if table.example is None:
                summary += f" No example layers: no {kinds[0]} hole of ratio {ratios[len(ratios) // 2]} fits."
            self._show_outcome(summary)

        return self._start(
            _compare, layer_data(image), where, region, on_returned=on_returned, stage="preparing",
            methods=methods, masks=kinds, ratios=ratios, seed=self.seed.value, repeats=self.repeats.value,
            lpips=self.lpips.value, channel_axis=-1 if image.rgb else None, **options,
        )

    # -- the results ------------------------------------------------------------------

    def show_scores(self, table, title: str) -> None:
        """Fill the table, the notes under it and the plot."""
        lines = fill_table(self.score_table, table)
        rows = self.score_table.rowCount()
        header = self.score_table.horizontalHeader().height()
        self.score_table.setMinimumHeight(header + min(rows, SHOWN_ROWS) * self.score_table.rowHeight(0) + 4)
        self.scores.visible = True
        self.notes.value = "\n".join(lines)
        self.notes.visible = bool(lines)
        self.save_button.enabled = True
        if self.canvas is not None:
            draw_scores(self.canvas.figure, table, title)
            # Drawn now: an idle draw is a timer that may fire after the widget is closed, on a deleted canvas
            # (matplotlib then prints a traceback).
            self.canvas.draw()
            self.plot.visible = self.enlarge_button.enabled = True
            if self._plot_window is not None:
                self.open_plot()

    def open_plot(self) -> QWidget | None:
        """Show the plot in a window of its own (with matplotlib's toolbar: zoom, save)."""
        if self.table is None or self.canvas is None:
            return None
        from matplotlib.backends.backend_qtagg import NavigationToolbar2QT

        if self._plot_window is None:
            self._plot_window = QWidget()
            self._plot_window.setWindowTitle("Compare methods: PSNR in the holes")
            canvas = plot_canvas(8, 5.5)
            layout = QVBoxLayout(self._plot_window)
            layout.addWidget(NavigationToolbar2QT(canvas, self._plot_window))
            layout.addWidget(canvas)
            self._plot_window.canvas = canvas
            self._plot_window.resize(900, 620)
        canvas = self._plot_window.canvas
        draw_scores(canvas.figure, self.table, self.image.value.name if self.image.value is not None else "")
        canvas.draw()
        self._plot_window.show()
        self._plot_window.raise_()
        return self._plot_window

    def _example_layers(self, source: str) -> list:
        """The example layers of the comparisons of the image layer ``source``."""
        records = [(layer, provenance_of(layer)) for layer in self._viewer.layers]
        return [layer for layer, made in records if made and (made.made_by, made.source) == (COMPARE, source)]

    def _add_layers(self, image, example, settings: dict) -> None:
        """Add or replace the example layers; remove this image's earlier ones that were not redone.

        Layers are told apart by name: napari hands plugins proxies of its layers, new ones at each access.
        """
        kept = set()
        if example is not None:
            details = {"mask": example.kind, "ratio": example.ratio, **settings}
            for method, filled in example.fills.items():
                defaults = get_method(method).resolve({})  # evaluate fills with the defaults
                made = Provenance(image.name, COMPARE, method=method, parameters=defaults, details=details)
                kept.add(add_result(self._viewer, image, filled, made, name=method + COMPARE_SUFFIX).name)
            made = Provenance(image.name, COMPARE, details=details)
            hole = add_mask(self._viewer, image, example.hole, name=HOLES + COMPARE_SUFFIX, provenance=made)
            kept.add(hole.name)
        for layer in self._example_layers(image.name):
            if layer.name not in kept:
                self._viewer.layers.remove(layer)
        self.grid_button.enabled = bool(kept)

    def show_side_by_side(self) -> None:
        """napari's grid with the image, its example fills and the hole only, each tile named."""
        image = self.image.value
        examples = [] if image is None else self._example_layers(image.name)
        if not examples:
            return
        shown = [image, *examples]
        names = {layer.name for layer in shown}
        for layer in self._viewer.layers:
            layer.visible = layer.name in names
        for layer in shown:
            if hasattr(layer, "name_overlay"):  # napari >= 0.6 names each tile
                layer.name_overlay.visible = True
        # napari 0.9 moved the grid to the canvas.
        (self._viewer.canvas if hasattr(self._viewer, "canvas") else self._viewer).grid.enabled = True
        self._viewer.reset_view()

    def save_csv(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the scores as CSV to ``path``, or where a save dialog says (replacing a file once asked).

        An existing ``path`` given is only replaced with ``overwrite=True``.
        Returns the path written, or None.
        """
        if self.table is None:
            notifications.show_error("Run a comparison first")
            return None
        if path is None:
            name = f"{self.image.value.name if self.image.value is not None else 'scores'} methods.csv"
            path = _common.save_path(self.native, "Save the scores", name, {"CSV": ".csv"})
            if not path:
                return None
            overwrite = not Path(path).exists() or _common.ask(
                self.native, "Replace the file?", f"{path} exists. Replace it with these scores?"
            )
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
