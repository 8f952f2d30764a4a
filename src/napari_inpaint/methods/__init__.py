"""Inpainting method families; importing this package registers every method.

Each module holds one family and registers its fill functions with
:func:`napari_inpaint._registry.register`.  Modules import only NumPy/SciPy at
import time; PyTorch, numba-compiled kernels and OpenCV are loaded on first use.
"""

# Import order is the order users see: classical fills first, then learned and pretrained networks.
from napari_inpaint.methods import diffusion, interpolate, fastmarching, tv, exemplar  # noqa: F401, I001
from napari_inpaint.methods import learned, pretrained  # noqa: F401
