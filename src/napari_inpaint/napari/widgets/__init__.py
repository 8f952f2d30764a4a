"""The napari widgets: "Inpaint", "Mask from image" and "Compare methods".

They hold no image processing: the Inpaint widget turns its controls into one
call of :func:`napari_inpaint.inpaint`, planned by :mod:`napari_inpaint.napari.fill`
as the console's :func:`napari_inpaint.napari.fill.inpaint_layer` is (its method
choices and parameter controls are generated from the method records of
:func:`napari_inpaint.list_methods`), the Mask widget calls
:func:`napari_inpaint.detect.mask_from_image` and the Compare widget
:func:`napari_inpaint.evaluation.evaluate`.  Each runs its work in a worker
thread and adds its layers through :mod:`napari_inpaint.napari.layers` when the
work returns, because napari layers must only be changed from the GUI thread.

- :mod:`~napari_inpaint.napari.widgets._common`: parameter controls, layer
  drop-downs, the runner (progress by stage, status line, activity dock,
  cancel on close), remembered settings and download confirmation;
- :mod:`~napari_inpaint.napari.widgets._scores`: the Compare widget's table and plot;
- :mod:`~napari_inpaint.napari.widgets.inpaint`, :mod:`~napari_inpaint.napari.widgets.mask`
  and :mod:`~napari_inpaint.napari.widgets.compare`: one widget each.
"""

from napari_inpaint.napari.widgets.compare import CompareMethodsWidget
from napari_inpaint.napari.widgets.inpaint import InpaintWidget
from napari_inpaint.napari.widgets.mask import MaskFromImageWidget

__all__ = ["CompareMethodsWidget", "InpaintWidget", "MaskFromImageWidget"]
