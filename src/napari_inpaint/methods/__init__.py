"""The inpainting methods; importing this package registers every one of them.

Each module holds one method or a family of close ones and registers its fill
functions with :func:`napari_inpaint._registry.register`.  Modules import only
NumPy/SciPy at import time; PyTorch, numba-compiled kernels and OpenCV are
loaded on first use.  :func:`list_methods` and :func:`get_method` read the
registry once these imports have filled it.
"""

# Import order is the order users see: classical fills first, then learned and pretrained networks.
from napari_inpaint.methods import diffusion, interpolate, fastmarching, tv, exemplar, guided  # noqa: F401, I001
from napari_inpaint.methods import learned, dip, pretrained, deepcr  # noqa: F401
from napari_inpaint._registry import _METHODS, Method


def list_methods() -> list[Method]:
    """Describe every available inpainting method.

    Returns
    -------
    list of Method
        One record per method, in registration order; ``Method.describe()``
        gives a plain dictionary.

    Examples
    --------
    >>> from napari_inpaint import list_methods
    >>> [m.name for m in list_methods()][:2]
    ['harmonic', 'biharmonic']
    """
    return list(_METHODS.values())


def get_method(name: str) -> Method:
    """Return the :class:`~napari_inpaint.Method` called ``name``, or raise a ValueError listing the known ones.

    Examples
    --------
    >>> from napari_inpaint import get_method
    >>> get_method("harmonic").ndims
    (2, 3)
    """
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(_METHODS)}")
    return _METHODS[name]
