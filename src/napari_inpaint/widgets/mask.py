"""The "Mask from image" widget: :func:`napari_inpaint.detect.mask_from_image` as an editable Labels layer."""

# No ``from __future__ import annotations``: napari resolves the ``viewer``
# annotation at runtime to inject the viewer.
import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox
from napari.layers import Image

from napari_inpaint.detect import mask_from_image
from napari_inpaint.layers import DETECT, Provenance, add_mask, grid_shape
from napari_inpaint.widgets._common import INT_LIMIT, LayerChoices, Runner, Settings, duration_text


def _detect(data, *, cancel, progress, status, **options) -> np.ndarray:
    """Worker body; detection is one vectorised pass, so ``cancel`` and ``status`` are not needed."""
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
                              tooltip="The Image layer to search for bad pixels")
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
        self.min_size = SpinBox(label="min component", value=0, min=0, max=INT_LIMIT,
                                tooltip="Drop connected regions smaller than this many pixels")
        self.dilate = SpinBox(label="dilate", value=0, min=0, max=100,
                              tooltip="Grow the mask by this many pixels")
        controls = [
            self.nonfinite, self.above, self.below, self.saturated, self.saturation_value, self.outliers,
            self.k, self.size, self.min_size, self.dilate,
        ]
        runner = self._make_runner(
            "Create mask", "Detect the bad pixels and add them as an editable Labels layer", cancellable=False
        )
        settings = Container(widgets=[self.image, *controls])
        settings.margins = (0, 0, 0, 0)
        self.extend([settings, *runner])
        self.append(self._remember([
            "nonfinite", "above", "below", "saturated", "saturation_value", "outliers", "k", "size",
            "min_size", "dilate",
        ]))

    def detection_options(self) -> dict:
        """Keyword arguments for :func:`napari_inpaint.detect.mask_from_image` from the controls."""
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
            self._refuse("Mask from image needs an image layer")
            return None
        try:
            options = self.detection_options()
            grid_shape(image)
        except ValueError as exc:
            self._refuse(str(exc))
            return None
        made = Provenance(image.name, DETECT, parameters=options)
        self.status.value = f"Searching {image.name!r}…"

        def on_returned(mask: np.ndarray, seconds: float) -> None:
            labels = add_mask(self._viewer, image, mask, provenance=made)
            self._viewer.layers.selection.active = labels
            self._show_outcome(
                f"{int(mask.sum()):,} pixels flagged ({100 * mask.mean():.3g}%) in {duration_text(seconds)}: "
                f"layer '{labels.name}'. Check it (the Labels brush and eraser correct it), then inpaint."
            )

        return self._start(_detect, image.data, on_returned=on_returned, stage="detecting",
                           channel_axis=-1 if image.rgb else None, **options)
