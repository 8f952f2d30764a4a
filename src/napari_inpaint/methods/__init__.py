"""Inpainting method families; importing this package registers every method.

Each module holds one family and registers its fill functions with
:func:`napari_inpaint._registry.register`.  Modules import only NumPy/SciPy at
import time; PyTorch, numba-compiled kernels and OpenCV are loaded on first use.
"""

from napari_inpaint.methods import diffusion, exemplar, fastmarching, interpolate, learned, pretrained, tv  # noqa: F401
