"""The "Inpaint" widget: one call of :func:`napari_inpaint.inpaint` from its controls.

The method drop-down, its parameter controls and the note on downloaded
weights are generated from the method records (:func:`napari_inpaint.list_methods`,
:mod:`napari_inpaint.models`); the fill runs in a worker thread and the
result is added through :mod:`napari_inpaint.layers` when it returns.
"""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import inspect
import sys

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils import notifications

from napari_inpaint import Method, get_method, inpaint, list_methods, models
from napari_inpaint.layers import (
    INPAINT,
    OVERLAY_SUFFIX,
    Provenance,
    add_mask,
    add_result,
    grid_shape,
    layer_mask,
    mask_details,
)
from napari_inpaint.detect import dilate_mask
from napari_inpaint.widgets._common import INT_LIMIT, LayerChoices, Runner, param_widget, plane_of

# Scope values: what one run fills.
PLANE, STACK, VOLUME = "plane", "stack", "volume"
NOISE_CHOICES = ("none", "gaussian", "poisson")


def weights_note(spec: Method) -> str:
    """Licence, size and cache state of each weight file ``spec`` downloads ("" when it downloads none).

    Examples
    --------
    >>> from napari_inpaint import get_method
    >>> weights_note(get_method("harmonic"))
    ''
    """
    described, restricted = [], []
    for name in spec.weights:
        model = models.get_model(name)
        size = f"{model.size / 2**20:.0f} MiB"
        state = "cached" if models.is_cached(name) else f"downloaded on first run, {size}"
        described.append(f"{name} ({model.licence}, {state})")
        if not model.commercial_use:
            restricted.append(name)
    if not described:
        return ""
    note = f" Weights: {'; '.join(described)}."
    if restricted:
        note += f" Non-commercial licence ({', '.join(restricted)}): not for commercial use."
    return note


def _fill(data, mask, plane, *, weights, params, cancel, progress, **options):
    """Worker body: inpaint the whole stack, or only ``plane`` (a tuple of leading indices).

    ``weights`` are fetched first, ``options`` are the engine's keywords
    (method, spatial_ndim...), ``params`` the method's own.  For one plane of
    a dask array only that plane is computed, and the result stays lazy.
    """
    kwargs = {"cancel": cancel, "progress": progress, **options, **params}
    for name in weights:
        # Download before filling, in this worker, with the same progress bar.
        models.fetch(name, progress=progress)
    if plane is None:
        # The engine returns a lazy result for a dask layer, computed plane by plane as napari shows it.
        return inpaint(data, mask, **kwargs)
    filled = inpaint(np.asarray(data[plane]), plane_of(mask, plane), **kwargs)
    result = data.copy() if _is_dask(data) else np.array(data, copy=True)
    result[plane] = filled  # on a dask array: a lazy assignment, the other planes are left as they are
    return result


def _is_dask(data) -> bool:
    dask_array = sys.modules.get("dask.array")  # a dask array means dask is imported already
    return dask_array is not None and isinstance(data, dask_array.Array)


class InpaintWidget(Container, LayerChoices, Runner):
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
        self.mask_label = SpinBox(label="label", value=0, min=0, max=INT_LIMIT,
                                  tooltip="Labels mask: fill only this label (0: every nonzero label)")
        self.radius = FloatSpinBox(label="point radius", value=3.0, min=0.0, max=1000.0, step=0.5,
                                   tooltip="Points mask: radius of the disk around each point, in pixels")
        self.dilate = SpinBox(label="dilate mask", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels (to cover halos and blooming)")
        names = [m.name for m in list_methods()]
        default = inspect.signature(inpaint).parameters["method"].default  # the engine's default method
        self.method = ComboBox(label="method", choices=names, value=default if default in names else names[0])
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
        suits = f" Best for: {', '.join(spec.artifacts)}." if spec.artifacts else ""
        self.summary.value = f"{spec.summary.rstrip('.')}.{suits}{weights_note(spec)}"
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
            notifications.show_error(
                "Inpaint needs an image layer and a mask layer (Labels, Shapes or Points)"
            )
            return None
        scope, spec, params = self.scope.value, get_method(self.method.value), self.parameter_values()
        spatial_ndim = 3 if scope == VOLUME else 2
        try:
            mask = layer_mask(mask_layer, image, label=self.mask_label.value, radius=self.radius.value)
            if self.dilate.value:
                mask = dilate_mask(mask, self.dilate.value, spatial_ndim=min(spatial_ndim, mask.ndim))
            plane = self._current_plane(image) if scope == PLANE else None
            if not mask.any():
                raise ValueError(f"the mask from layer {mask_layer.name!r} is empty: mark some pixels first")
            resolved = spec.resolve(params)
        except (ValueError, TypeError) as exc:
            notifications.show_error(str(exc))
            return None
        details = {"scope": scope, "dilate": self.dilate.value, "noise": self.noise.value}
        if plane is not None:
            details["plane"] = list(plane)
        details.update(mask_details(mask_layer, label=self.mask_label.value, radius=self.radius.value))
        made = Provenance(image.name, INPAINT, method=spec.name, parameters=resolved,
                          mask_layer=mask_layer.name, details=details)

        def on_returned(result) -> None:
            add_result(self._viewer, image, result, made)
            if self.overlay.value:
                invented = np.zeros(grid_shape(image), bool)
                if plane is None:
                    invented[...] = mask
                else:
                    invented[plane] = plane_of(mask, plane)
                add_mask(self._viewer, image, invented, name=image.name + OVERLAY_SUFFIX, provenance=made)

        return self._start(
            _fill, image.data, mask, plane, on_returned=on_returned, weights=spec.weights, method=spec.name,
            params=params, spatial_ndim=spatial_ndim, channel_axis=-1 if image.rgb else None,
            noise=None if self.noise.value == "none" else self.noise.value,
        )
