"""The "Mask from image" widget: the detectors of :mod:`napari_inpaint.detect` as an editable Labels layer.

The bad-pixel criteria are those of :func:`~napari_inpaint.detect.mask_from_image`;
the cosmic-ray section is generated from :data:`~napari_inpaint.detect.COSMIC_RAY_DETECTORS`
(the detector choice, each detector's parameter controls, what it needs
installed and the weights it downloads), as the command line's
``--detect cosmic-rays`` flags are, so that a detector added there appears
here without a change.
"""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import contextlib
import inspect

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox
from napari.layers import Image
from napari.utils import notifications

from napari_inpaint import InpaintCancelled, models
from napari_inpaint.detect import (
    COSMIC_RAY_DETECTORS,
    Flagged,
    cosmic_rays,
    dilate_mask,
    mask_from_image,
    remove_small,
)
from napari_inpaint.napari.fill import size_text
from napari_inpaint.napari.layers import DETECT, Provenance, add_mask, grid_shape, layer_data
from napari_inpaint.napari.widgets._common import (
    INT_LIMIT,
    LayerChoices,
    Runner,
    Settings,
    confirm_download,
    control_value,
    duration_text,
    param_widget,
    set_control_value,
    weights_note,
)

# The keys of the detection options (and of the mask's provenance) that name the cosmic-ray detector and its
# parameters, as the command line records them.
DETECTOR, DETECTOR_PARAMS = "cosmic_ray_detector", "cosmic_ray_parameters"


def _detect(
    data, *, cancel, progress, status, channel_axis, min_size: int, dilate: int, **options
) -> np.ndarray:
    """Worker body: fetch the cosmic-ray detector's weights, read the image, then find its bad pixels.

    ``options`` are :meth:`MaskFromImageWidget.detection_options`; the
    criteria are combined, then small components dropped and the mask grown,
    as ``napari-inpaint detect`` does.
    """

    def check() -> None:
        if cancel.is_set():
            raise InpaintCancelled("mask detection was cancelled; no layer was added")

    detector = COSMIC_RAY_DETECTORS.get(options.pop(DETECTOR))
    params = options.pop(DETECTOR_PARAMS)
    for name in detector.weights_for(params) if detector is not None else ():
        if not models.is_cached(name):
            status(f"downloading weights: {name} ({size_text(models.get_model(name).size)})")
            models.fetch(name, progress=progress)
        check()
    status("reading the image")
    image = np.asarray(data)  # a lazy layer is computed here, in this worker
    check()
    status("finding bad pixels")
    mask = mask_from_image(image, channel_axis=channel_axis, **options)
    if detector is not None:
        check()
        status(f"finding cosmic rays ({detector.name})")
        planes = image if channel_axis is None else np.moveaxis(image, channel_axis, 0)
        hits = cosmic_rays(planes, method=detector.name, check=check, progress=progress, **params)
        mask |= hits if channel_axis is None else hits.any(axis=0)
    check()
    mask = dilate_mask(remove_small(mask, min_size), dilate)
    progress(1, 1)
    return mask


def _optional_float(widget: LineEdit) -> float | None:
    text = widget.value.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{widget.label!r} must be a number or empty, got {text!r}") from None
    if not np.isfinite(value):  # "nan" and "inf" parse, but would flag nothing or everything
        raise ValueError(f"{widget.label!r} must be a finite number or empty, got {text!r}")
    return value


def _detector_choices(_widget=None) -> list[tuple[str, str]]:
    """The cosmic-ray detectors, those not installed said so."""
    return [
        (name if detector.available() else f"{name} (not installed)", name)
        for name, detector in COSMIC_RAY_DETECTORS.items()
    ]


class MaskFromImageWidget(Container, LayerChoices, Runner, Settings):
    """Detect bad pixels of an image layer and add them as an editable Labels layer ``"<image> mask"``.

    The new layer becomes the mask of an Inpaint widget docked in the same viewer.
    """

    _task = "Mask detection"
    _settings_name = "mask"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)  # the settings have labels; the status line uses the whole width
        self._watch_layers(viewer)
        self.image = ComboBox(label="image", choices=lambda _w: self._layers_of(Image),
                              tooltip="The Image layer to search for bad pixels (a multiscale image: its "
                              "highest resolution, read whole)")
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
        self.persistent = CheckBox(
            label="persistent", value=False,
            tooltip="Stacks (time series, repeated frames): flag only the positions that are hot or dead in "
            "90% of the planes, in every plane. Defects of the detector stay put; cosmic rays, noise and "
            "moving objects do not. A much stronger criterion: the threshold can go down to about 3",
        )
        self.cosmic_rays = CheckBox(
            label="cosmic rays", value=False,
            tooltip="Flag cosmic-ray hits (sharp spots and short tracks), one plane at a time, with the "
            "detector below; data in counts or electrons",
        )
        default = inspect.signature(cosmic_rays).parameters["method"].default
        self.cosmic_detector = ComboBox(label="detector", choices=_detector_choices, value=default,
                                        tooltip="How cosmic rays are found")
        self.cosmic_note = Label(label="", tooltip="What the detector does, needs and downloads")
        self.cosmic_note.native.setWordWrap(True)
        self.cosmic_params = Container(labels=True)
        self.cosmic_params.margins = (0, 0, 0, 0)
        self.min_size = SpinBox(label="min component", value=0, min=0, max=INT_LIMIT,
                                tooltip="Drop connected regions smaller than this many pixels")
        self.dilate = SpinBox(label="dilate", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels")
        controls = [
            self.nonfinite, self.above, self.below, self.saturated, self.saturation_value, self.outliers,
            self.k, self.size, self.persistent, self.cosmic_rays, self.cosmic_detector, self.cosmic_note,
            self.cosmic_params, self.min_size, self.dilate,
        ]
        runner = self._make_runner(
            "Create mask", "Detect the bad pixels and add them as an editable Labels layer"
        )
        settings = Container(widgets=[self.image, *controls])
        settings.margins = (0, 0, 0, 0)
        self.extend([settings, *runner])
        self.append(self._remember([
            "nonfinite", "above", "below", "saturated", "saturation_value", "outliers", "k", "size",
            "persistent", "cosmic_rays", "cosmic_detector", "min_size", "dilate",
        ]))
        self.image.changed.connect(self._on_image_changed)
        self.cosmic_rays.changed.connect(self._on_cosmic_rays_changed)
        self.cosmic_detector.changed.connect(self._on_detector_changed)
        self._on_image_changed()
        self._on_detector_changed()
        self.say("Tick what to flag, then Create mask: the pixels found become a Labels layer to check.")

    # -- controls that follow other controls ---------------------------------

    def _is_stack(self) -> bool:
        """Whether the image is a stack of two planes or more (persistence compares planes)."""
        image = self.image.value
        shape = () if image is None else grid_shape(image)
        return len(shape) > 2 and int(np.prod(shape[:-2])) > 1

    def _on_image_changed(self, _value=None) -> None:
        self.persistent.enabled = self._is_stack()  # persistence is across the planes of a stack

    def _on_cosmic_rays_changed(self, _value=None) -> None:
        for control in (self.cosmic_detector, self.cosmic_note, self.cosmic_params):
            control.visible = self.cosmic_rays.value

    def _on_detector_changed(self, _value=None) -> None:
        """The chosen detector's parameter controls (with their remembered values) and its note."""
        detector = COSMIC_RAY_DETECTORS[self.cosmic_detector.value]
        stored = self._stored("detectors").get(detector.name, {})
        self.cosmic_params.clear()
        for param in detector.params:
            control = param_widget(param)
            if param.name in stored:
                set_control_value(control, stored[param.name])
            control.changed.connect(self._on_detector_params_changed)
            self.cosmic_params.append(control)
        self.cosmic_detector.tooltip = f"{detector.name}: {detector.summary}"
        self._show_detector_note()
        self._on_cosmic_rays_changed()

    def _on_detector_params_changed(self, _value=None) -> None:
        self._stored("detectors")[self.cosmic_detector.value] = self.detector_values()
        self._save_settings()
        self._show_detector_note()  # the weights follow the model chosen

    def _show_detector_note(self) -> None:
        detector = COSMIC_RAY_DETECTORS[self.cosmic_detector.value]
        note = f"{detector.summary}."
        if not detector.available():
            note += f" Not installed: it needs {detector.module} ({detector.install})."
        # A value being typed raises: the note waits for a valid one.
        with contextlib.suppress(ValueError, TypeError, KeyError):
            note += weights_note(detector.weights_for(self.detector_values()))
        self.cosmic_note.value = note

    def _after_restore(self) -> None:
        self._on_detector_changed()

    # -- running -----------------------------------------------------------------

    def detector_values(self) -> dict:
        """The chosen cosmic-ray detector's parameters as set in its generated controls."""
        return {control.name: control_value(control) for control in self.cosmic_params}

    def detection_options(self) -> dict:
        """What a run detects: the keywords of :func:`~napari_inpaint.detect.mask_from_image` (but for
        ``min_size`` and ``dilate``, applied to every criterion together) and the cosmic-ray detector
        (``"cosmic_ray_detector"``, None for none) with its validated ``"cosmic_ray_parameters"``.
        """
        detector = COSMIC_RAY_DETECTORS[self.cosmic_detector.value] if self.cosmic_rays.value else None
        return {
            "above": _optional_float(self.above),
            "below": _optional_float(self.below),
            "saturated": self.saturated.value,
            "saturation_value": _optional_float(self.saturation_value),
            "outliers": self.outliers.value,
            "k": self.k.value,
            "size": self.size.value,
            "persistent": self.outliers.value and self.persistent.value and self._is_stack(),
            "nonfinite": self.nonfinite.value,
            DETECTOR: None if detector is None else detector.name,
            DETECTOR_PARAMS: {} if detector is None else detector.resolve(self.detector_values()),
            "min_size": self.min_size.value,
            "dilate": self.dilate.value,
        }

    def run(self):
        """Start detection; returns the worker (None when nothing started)."""
        image = self.image.value
        if image is None:
            self._refuse("Mask from image needs an image layer")
            return None
        try:
            options = self.detection_options()
        except (ValueError, TypeError) as exc:
            self._refuse(str(exc))
            return None
        detector = COSMIC_RAY_DETECTORS.get(options[DETECTOR])
        if detector is not None:
            if not detector.available():
                self._refuse(f"the cosmic-ray detector {detector.name} needs {detector.module}: "
                             f"{detector.install}, then restart napari; or choose another detector")
                return None
            weights = detector.weights_for(options[DETECTOR_PARAMS])
            missing = [name for name in weights if not models.is_cached(name)]
            purpose = f"the cosmic-ray detector {detector.name} runs a trained network"
            if missing and not confirm_download(self.native, missing, purpose):
                self._refuse(f"{detector.name} needs its weights, which were not downloaded")
                return None
        made = Provenance(image.name, DETECT, parameters=options)
        self.say(f"Searching {image.name!r}…")

        def on_returned(mask: np.ndarray, seconds: float) -> None:
            self._show_detector_note()  # its weights are cached now
            labels = add_mask(self._viewer, image, mask, provenance=made)
            self._viewer.layers.selection.active = labels
            flagged = Flagged.of(mask)
            if not flagged.excessive():
                self._show_outcome(
                    f"{flagged} in {duration_text(seconds)}: layer '{labels.name}'. Check it (the Labels brush "
                    "and eraser correct it), then inpaint."
                )
                return
            warning = (
                f"Warning: {flagged.warning()}. Check the layer '{labels.name}' before inpainting: raise the "
                "outlier threshold or leave out a criterion, or correct it with the Labels brush and eraser."
            )
            self._show_outcome(warning)
            notifications.show_warning(warning)

        return self._start(_detect, layer_data(image), on_returned=on_returned, stage="starting",
                           channel_axis=-1 if image.rgb else None, **options)
