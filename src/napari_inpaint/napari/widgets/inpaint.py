"""The "Inpaint" widget: one call of :func:`napari_inpaint.inpaint` from its controls.

The method drop-down, its parameter controls and the note on downloaded
weights are generated from the method records (:func:`napari_inpaint.list_methods`,
:mod:`napari_inpaint.models`); a run is planned, filled and added by
:mod:`napari_inpaint.napari.fill`, as :func:`napari_inpaint.napari.fill.inpaint_layer`
does from the console, the fill in a worker thread.
"""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import inspect
import os
from pathlib import Path

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils import notifications
from qtpy.QtCore import QTimer
from superqt import QCollapsible

from napari_inpaint import get_method, inpaint, list_methods
from napari_inpaint.engine.reference import ADJACENT
from napari_inpaint.napari.fill import PLANE, STACK, VOLUME, exist_text, missing_weights, plan_fill
from napari_inpaint.napari.layers import (
    DETECT,
    RESULT_SUFFIX,
    grid_shape,
    label_names,
    label_values,
    provenance_of,
    reference_data,
)
from napari_inpaint.napari.widgets import _common
from napari_inpaint.napari.widgets._common import (
    LayerChoices,
    Runner,
    Settings,
    confirm_download,
    control_value,
    duration_text,
    param_widget,
    set_control_value,
    split_params,
    weights_note,
)

NOISE_CHOICES = ("none", "gaussian", "poisson")
NO_REFERENCE = "none"  # the other reference choices: ADJACENT, or an Image layer
REPLACE, NEW_LAYER = "replace", "new"  # what a run does with the result of the previous one
# The files "Write result to file…" writes (napari_inpaint.io.write_image), by the suffix the dialog adds.
EXPORT_FORMATS = {"OME-Zarr": ".ome.zarr", "zarr": ".zarr", "TIFF": ".tif"}
_EXPORT_SUFFIXES = (".ome.zarr", ".zarr", ".tif", ".tiff")
_PREVIEW_MS = 250  # the "what will be filled" line waits for the settings to rest this long


class InpaintWidget(Container, LayerChoices, Runner, Settings):
    """Fill the pixels of an image layer marked by a Labels, Shapes or Points layer.

    The result is added as ``"<image> inpainted"`` (a rerun replaces it), or
    with "new layer per run" as ``"<image> inpainted (<method>)"``; the
    source layer is never modified.  The status line says what a run will
    fill before it starts, and what it made after.
    """

    _task = "Inpainting"
    _settings_name = "inpaint"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)  # the settings have labels; the status line uses the whole width
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image),
                              tooltip="The Image layer to repair; it is never modified")
        self.mask = ComboBox(label="mask", choices=lambda _w: self._layers_of(Labels, Shapes, Points),
                             tooltip="The bad pixels: a Labels layer (nonzero = bad), Shapes (drawn regions; "
                             "lines and paths for scratches) or Points (a disk around each)")
        self.mask_label = ComboBox(label="label", choices=self._label_choices,
                                   tooltip="Labels mask: fill every label, or only this one")
        self.radius = FloatSpinBox(label="point radius", value=3.0, min=0.0, max=1000.0, step=0.5,
                                   tooltip="Points mask: radius of the disk around each point, in pixels")
        self.dilate = SpinBox(label="dilate mask", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels (to cover halos and blooming)")
        names = [m.name for m in list_methods()]
        default = inspect.signature(inpaint).parameters["method"].default  # the engine's default method
        self.method = ComboBox(label="method", choices=names, value=default if default in names else names[0])
        self.summary = Label(label="", tooltip="What the method does, the damage it suits, and its weights")
        self.summary.native.setWordWrap(True)
        self.params = Container(labels=True)
        self.params.margins = (0, 0, 0, 0)
        self.advanced = Container(labels=True)
        self.advanced.margins = (0, 0, 0, 0)
        self.advanced_section = QCollapsible("Advanced")
        self.advanced_section.setToolTip("The method's other parameters: most runs keep their defaults")
        self.advanced_section.addWidget(self.advanced.native)
        advanced_box = Container(labels=False)
        advanced_box.margins = (0, 0, 0, 0)
        advanced_box.native.layout().addWidget(self.advanced_section)
        self.scope = ComboBox(label="scope", choices=self._scope_choices,
                              tooltip="Fill the plane on screen, every plane separately, or whole 3D volumes")
        self.reference = ComboBox(label="reference", choices=self._reference_choices)
        self.align = CheckBox(label="align reference", value=True,
                              tooltip="Shift the reference onto each plane first (stage drift, sample "
                              "motion); untick when it is registered already")
        self.noise = ComboBox(label="noise", choices=NOISE_CHOICES, value="none",
                              tooltip="Add noise like the surroundings' so that the fill is not too smooth")
        self.results = ComboBox(
            label="results", choices=[("replace the last result", REPLACE), ("new layer per run", NEW_LAYER)],
            tooltip="Replace '<image> inpainted' on each run, or add '<image> inpainted (<method>)' each "
            "time, to compare methods side by side",
        )
        self.overlay = CheckBox(label="show inpainted pixels", value=False,
                                tooltip="Add a Labels layer marking the pixels that were invented")
        self.uncertainty = CheckBox(
            label="show uncertainty", value=False,
            tooltip="Add '<image> inpainted sigma': for each filled pixel the standard deviation of its expected "
            "error, calibrated by filling holes like yours hidden in the image's known pixels (90 % of the errors "
            "lie within 1.645 sigma); written beside a file as NAME.sigma.EXT",
        )
        runner = self._make_runner("Run", "Fill the masked pixels (in the background; napari stays usable)")
        self.export_button = PushButton(
            text="Write result to file…",
            tooltip="Fill with these settings and write the whole result into a TIFF, zarr or OME-Zarr file, "
            "with the image's metadata and how it was filled, instead of adding a layer. A lazy image (zarr, "
            "OME-Zarr) is computed into the file chunk by chunk, never whole in memory",
        )
        self.export_button.changed.connect(lambda: self.export())
        self._idle_buttons.append(self.export_button)
        self._advanced_box = advanced_box
        settings = Container(widgets=[
            self.image, self.mask, self.mask_label, self.radius, self.dilate, self.method, self.summary,
            self.params, advanced_box, self.scope, self.reference, self.align, self.noise, self.results,
            self.overlay, self.uncertainty,
        ])
        settings.margins = (0, 0, 0, 0)
        self.extend([settings, runner[0], self.export_button, *runner[1:]])
        self._preview_timer = QTimer(self.native, singleShot=True, interval=_PREVIEW_MS)
        self._preview_timer.timeout.connect(self.update_preview)
        self._watched_mask = None
        self.append(self._remember(
            ["radius", "dilate", "method", "scope", "align", "noise", "results", "overlay", "uncertainty"]
        ))
        self.mask.changed.connect(self._on_mask_changed)
        self.image.changed.connect(lambda _v: self.scope.reset_choices())
        self.image.changed.connect(self._on_scope_changed)  # the references that fit follow the image
        self.scope.changed.connect(self._on_scope_changed)
        self.reference.changed.connect(self._on_reference_changed)
        self.method.changed.connect(self._on_method_changed)
        self.changed.connect(self._schedule_preview)
        viewer.dims.events.current_step.connect(self._on_plane_changed)
        self._on_method_changed()
        self._on_mask_changed()
        self.update_preview()  # the status line says what a run would do from the start

    # -- controls that follow other controls ---------------------------------

    def _on_layers_changed(self, event=None) -> None:
        super()._on_layers_changed(event)
        layer = getattr(event, "value", None) if getattr(event, "type", None) == "inserted" else None
        made = None if layer is None else provenance_of(layer)
        if isinstance(layer, Labels) and made is not None and made.made_by == DETECT:
            # A mask just detected (Mask from image) is the one to fill with, on its image.
            if made.source in self._viewer.layers and isinstance(self._viewer.layers[made.source], Image):
                self.image.value = self._viewer.layers[made.source]
            self.mask.value = layer

    def _on_mask_changed(self, _value=None) -> None:
        layer = self.mask.value
        self.mask_label.visible = isinstance(layer, Labels)
        self.radius.visible = isinstance(layer, Points)
        if self._watched_mask is not None:  # the preview follows the edits of the mask layer
            for event in self._mask_events(self._watched_mask):
                event.disconnect(self._schedule_preview)
        self._watched_mask = layer
        if layer is not None:
            for event in self._mask_events(layer):
                event.connect(self._schedule_preview)
        self.mask_label.reset_choices()

    @staticmethod
    def _mask_events(layer) -> list:
        return [layer.events.data] + ([layer.events.paint] if isinstance(layer, Labels) else [])

    def _on_plane_changed(self, _event=None) -> None:
        if self.scope.value == PLANE:
            self._schedule_preview()

    def _label_choices(self, _widget=None) -> list[tuple[str, int]]:
        """Every label, then each label the Labels mask holds, with its name where the layer has one."""
        layer = self.mask.value if hasattr(self, "mask") else None
        choices = [("every label", 0)]
        if isinstance(layer, Labels):
            names = label_names(layer)
            choices += [(f"{v}: {names[v]}" if v in names else str(v), v) for v in label_values(layer)]
        return choices

    def _on_method_changed(self, _value=None) -> None:
        spec = get_method(self.method.value)
        self.method.tooltip = f"{spec.name}: {spec.summary}"
        suits = f" Best for: {', '.join(spec.artifacts)}." if spec.artifacts else ""
        self.summary.value = f"{spec.summary.rstrip('.')}.{suits}{weights_note(spec.weights)}"
        essential, folded = split_params(spec)
        stored = self._stored("params").get(spec.name, {})
        for container, params in ((self.params, essential), (self.advanced, folded)):
            container.clear()
            for param in params:
                control = param_widget(param)
                if param.name in stored:
                    set_control_value(control, stored[param.name])
                control.changed.connect(self._remember_params)
                container.append(control)
        self.params.visible = bool(essential)
        self._advanced_box.visible = bool(folded)
        self.scope.reset_choices()
        self._on_scope_changed()

    def _remember_params(self, _value=None) -> None:
        self._stored("params")[self.method.value] = self.parameter_values()
        self._save_settings()

    def _after_restore(self) -> None:
        self._on_method_changed()

    def _on_scope_changed(self, _value=None) -> None:
        """Offer the references that fit the image and scope, where the method uses one."""
        spec = get_method(self.method.value)
        self.reference.reset_choices()
        unset = self.reference.value == NO_REFERENCE
        if spec.needs_reference and unset and ADJACENT in self.reference.choices:
            self.reference.value = ADJACENT  # the reference a stack has
        self.reference.visible = spec.uses_reference
        need = "needed by" if spec.needs_reference else "used by"
        self.reference.tooltip = (
            f"Data showing what the holes hide, {need} {spec.name}: the neighbouring planes of a stack "
            "filled plane by plane, or an Image layer of the same field (another acquisition or channel) "
            "of the image's grid or of one plane"
        )
        self._on_reference_changed()

    def _on_reference_changed(self, _value=None) -> None:
        uses = get_method(self.method.value).uses_reference
        self.align.visible = uses and self.reference.value != NO_REFERENCE

    def _scope_choices(self, _widget=None) -> list[tuple[str, str]]:
        layer = self.image.value
        ndim = len(grid_shape(layer)) if layer is not None else 2
        if ndim <= 2:
            return [("whole image", STACK)]
        choices = [("every plane of the stack", STACK), ("current plane", PLANE)]
        if 3 in get_method(self.method.value).ndims:
            choices.append(("3D volume" if ndim == 3 else "each 3D volume", VOLUME))
        return choices

    def _reference_choices(self, _widget=None) -> list[tuple[str, object]]:
        """None; the adjacent planes of a stack filled plane by plane; the Image layers that fit the image."""
        choices: list[tuple[str, object]] = [("none", NO_REFERENCE)]
        layer = self.image.value
        if layer is None:
            return choices
        if len(grid_shape(layer)) > 2 and self.scope.value in (STACK, PLANE):
            choices.append(("adjacent planes", ADJACENT))
        for name, other in self._layers_of(Image):
            if other.name == layer.name:  # (napari gives plugins proxies of its layers: compare names)
                continue
            try:
                reference_data(other, layer)  # checks the shapes only
            except ValueError:  # not of the image's grid
                continue
            choices.append((name, other))
        return choices

    def param_control(self, name: str):
        """The control of the method parameter ``name``, among the essential or the advanced ones."""
        for control in [*self.params, *self.advanced]:
            if control.name == name:
                return control
        raise KeyError(f"method {self.method.value!r} has no parameter {name!r}")

    def parameter_values(self) -> dict:
        """The method parameters as set in the generated controls (essential and advanced)."""
        return {control.name: control_value(control) for control in [*self.params, *self.advanced]}

    # -- the status line before a run ----------------------------------------------

    def _schedule_preview(self, _value=None) -> None:
        if self.worker is None and not self._closed:
            self._preview_timer.start()

    def update_preview(self) -> None:
        """Say in the status line what a run would fill now, or why it cannot run."""
        if not self._preview_due():
            return
        if isinstance(self.mask.value, Labels):
            self.mask_label.reset_choices()  # labels painted or erased since
        try:
            self.say(f"Will fill {self._plan().describe()}.")
        except (ValueError, TypeError, KeyError) as exc:
            self.say(f"Cannot run yet: {exc}")

    # -- running ---------------------------------------------------------------

    def _plan(self):
        """The run the controls describe (see :func:`napari_inpaint.napari.fill.plan_fill`)."""
        image, mask_layer = self.image.value, self.mask.value
        if image is None or mask_layer is None:
            raise ValueError("choose an image layer and a mask layer (Labels, Shapes or Points)")
        spec = get_method(self.method.value)
        reference = self.reference.value if spec.uses_reference else None
        return plan_fill(
            self._viewer, image, mask_layer, spec.name, label=self.mask_label.value, radius=self.radius.value,
            dilate=self.dilate.value, scope=self.scope.value,
            noise=None if self.noise.value == "none" else self.noise.value,
            reference=None if isinstance(reference, str) and reference == NO_REFERENCE else reference,
            align=self.align.value, new_layer=self.results.value == NEW_LAYER, overlay=self.overlay.value,
            params=self.parameter_values(), uncertainty=self.uncertainty.value,
        )

    def _planned(self):
        """The planned fill of the current settings, or None (refused, saying why)."""
        self._preview_timer.stop()
        try:
            return self._plan()
        except (ValueError, TypeError, KeyError) as exc:
            self._refuse(str(exc))
            return None

    def _weights_ready(self, job) -> bool:
        """Whether the method's weights are cached, or the user agreed to download them now."""
        missing = missing_weights(job.method)
        purpose = f"{job.method.name} fills with a pretrained network"
        if missing and not confirm_download(self.native, missing, purpose):
            self._refuse(f"{job.method.name} needs its weights, which were not downloaded")
            return False
        return True

    def run(self):
        """Start inpainting with the current settings; returns the worker (None when nothing started)."""
        job = self._planned()
        if job is None:
            return None
        if not self._weights_ready(job):
            return None
        self.say(f"Filling {job.describe()}…")

        def on_returned(result, seconds: float) -> None:
            layer = job.add(self._viewer, result)
            if job.plane is None and job.job.lazy:  # nothing is filled yet: each plane is, as napari shows it
                self._show_outcome(
                    f"Ready to fill {job.describe()} (planned in {duration_text(seconds)}): layer '{layer.name}' "
                    "fills each plane as it is shown; 'Write result to file…' fills them all."
                )
            else:
                found = job.outcome_text()
                self._show_outcome(f"Filled {job.describe()} in {duration_text(seconds)}: layer '{layer.name}'"
                                   + (f"; {found}." if found else "."))

        return self._start(job.run, on_returned=on_returned, stage="starting")

    def export(self, path=None, *, overwrite: bool = False):
        """Fill with the current settings and write the whole result into a file; returns the worker or None.

        ``path`` ends in ``.ome.zarr``, ``.zarr``, ``.tif`` or ``.tiff`` (see
        :meth:`napari_inpaint.napari.fill.LayerFill.write`); by default a save
        dialog asks for it, and replacing files that exist is confirmed.  A
        ``path`` given whose files exist is refused unless ``overwrite``.
        No layer is added or changed; a cancel leaves nothing at ``path``.
        """
        job = self._planned()
        if job is None:
            return None
        image = job.image_layer
        source = getattr(image.source, "path", None)
        from_dialog = path is None
        if from_dialog:
            folder = Path(source).parent if source else Path.cwd()
            suggested = folder / f"{image.name}{RESULT_SUFFIX}{EXPORT_FORMATS['OME-Zarr']}"
            path = _common.save_path(self.native, "Write the inpainted image", str(suggested), EXPORT_FORMATS)
            if not path:
                return None
        path = Path(path)
        if not path.name.lower().endswith(_EXPORT_SUFFIXES):
            self._refuse(f"cannot write {path.name}: name it .ome.zarr, .zarr, .tif or .tiff")
            return None
        if source and Path(source).resolve() == path.resolve():
            self._refuse(f"layer {image.name!r} is read from {path}: write the result to another file")
            return None
        if not os.access(path.parent, os.W_OK):
            self._refuse(f"cannot write into {path.parent} (missing, or not yours to write): choose another folder")
            return None
        existing = [str(p) for p in job.outputs(path) if p.exists()]
        if existing and not overwrite:
            question = f"{exist_text(existing)}. Replace? (Only once the new result is complete.)"
            if not (from_dialog and _common.ask(self.native, "Replace the file?", question)):
                self._refuse(f"{exist_text(existing)}, left as it is: choose another name")
                return None
            overwrite = True
        if not self._weights_ready(job):
            return None
        self.say(f"Writing {job.describe()} to {path.name}…")

        def on_returned(written: Path, seconds: float) -> None:
            found = job.outcome_text()
            self._show_outcome(f"Filled {job.describe()} and wrote {written} in {duration_text(seconds)}"
                               + (f"; {found}." if found else "."))
            notifications.show_info(f"Inpainted {image.name!r} written to {written}")

        return self._start(
            job.write, path, overwrite=overwrite, on_returned=on_returned, stage="starting",
            task="Writing the result", cancelled=f"nothing was written to {path.name}",
        )
