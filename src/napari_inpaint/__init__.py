"""napari-inpaint: fill bad or missing regions of scientific images.

The library is usable without napari: ``inpaint`` is the one engine behind the
napari widgets, the command line and the benchmarks.

Examples
--------
>>> import numpy as np
>>> from napari_inpaint import inpaint
>>> image = np.tile(np.arange(8, dtype=np.uint16), (8, 1))
>>> mask = np.zeros(image.shape, bool)
>>> mask[3:5, 3:5] = True
>>> filled = inpaint(image, mask, method="harmonic")
>>> filled[3, 3], filled.dtype
(np.uint16(3), dtype('uint16'))
"""

from importlib.metadata import PackageNotFoundError, version

from napari_inpaint._engine import InpaintCancelled, inpaint
from napari_inpaint._layers import inpaint_layer
from napari_inpaint._registry import ARTIFACTS, Method, Param, get_method, list_methods

try:
    __version__ = version("napari-inpaint")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "unknown"

__all__ = [
    "ARTIFACTS",
    "InpaintCancelled",
    "Method",
    "Param",
    "__version__",
    "get_method",
    "inpaint",
    "inpaint_layer",
    "list_methods",
]
