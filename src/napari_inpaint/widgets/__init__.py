"""The napari widgets: "Inpaint", "Mask from image" and "Compare methods".

They hold no image processing: the Inpaint widget turns its controls into one
call of :func:`napari_inpaint.inpaint` (its method choices and parameter
controls are generated from the method records of
:func:`napari_inpaint.list_methods`), the Mask widget calls
:func:`napari_inpaint.detect.mask_from_image` and the Compare widget
:func:`napari_inpaint.evaluate.evaluate`.  Each runs its work in a worker
thread and adds its layers through :mod:`napari_inpaint.layers` when the
work returns, because napari layers must only be changed from the GUI thread.

- :mod:`~napari_inpaint.widgets._common`: parameter controls, layer
  drop-downs and the worker runner the widgets share;
- :mod:`~napari_inpaint.widgets.inpaint`, :mod:`~napari_inpaint.widgets.mask`
  and :mod:`~napari_inpaint.widgets.compare`: one widget each.
"""

from napari_inpaint.widgets.compare import CompareMethodsWidget
from napari_inpaint.widgets.inpaint import InpaintWidget
from napari_inpaint.widgets.mask import MaskFromImageWidget

__all__ = ["CompareMethodsWidget", "InpaintWidget", "MaskFromImageWidget"]
