"""The inpainting methods: the built-in ones, and those other packages contribute.

Each module here holds one method or a family of close ones and registers its
fill functions with :func:`napari_inpaint.register`.  Modules import only
NumPy/SciPy at import time; PyTorch, numba-compiled kernels and OpenCV are
loaded on first use.

Another package adds methods through the entry-point group
:data:`ENTRY_POINTS` (``name = "its.module"`` in its ``pyproject.toml``):
the module is imported, and registers its methods, the first time
:func:`list_methods` or :func:`get_method` is called, so that they appear in
the widgets, the command line and :func:`napari_inpaint.evaluate` as the
built-in ones do (see ``docs/writing-a-method.md``).  A module that fails to
import is reported in a warning; the other methods stay available.
"""

import warnings
from importlib.metadata import entry_points

# Import order is the order users see: classical fills first, then learned and pretrained networks.
# isort: off
from napari_inpaint.methods import diffusion, interpolate, fastmarching, tv, exemplar, guided, gp, auto  # noqa: F401
from napari_inpaint.methods import learned, dip, pretrained, deepcr  # noqa: F401
# isort: on
from napari_inpaint.registry import _METHODS, Method

#: The entry-point group of the packages that contribute methods.
ENTRY_POINTS = "napari_inpaint.methods"
_contributed: list = []  # the entry points found, the first time the registry is read in this process


def list_methods() -> list[Method]:
    """Describe every available inpainting method.

    Returns
    -------
    list of Method
        One record per method, in registration order (the built-in methods,
        then those of other packages); ``Method.describe()`` gives a plain
        dictionary.

    Examples
    --------
    >>> from napari_inpaint import list_methods
    >>> [m.name for m in list_methods()][:2]
    ['harmonic', 'biharmonic']
    """
    _import_contributed()
    return list(_METHODS.values())


def get_method(name: str) -> Method:
    """Return the :class:`~napari_inpaint.Method` called ``name``, or raise a ValueError listing the known ones.

    Examples
    --------
    >>> from napari_inpaint import get_method
    >>> get_method("harmonic").ndims
    (2, 3)
    """
    _import_contributed()
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(_METHODS)}")
    return _METHODS[name]


def _import_contributed() -> None:
    """Import the modules of the :data:`ENTRY_POINTS` group, once per process."""
    if _contributed:
        return
    _contributed.extend(entry_points(group=ENTRY_POINTS) or [None])  # None: looked, found none
    for entry in filter(None, _contributed):
        try:
            entry.load()
        except Exception as error:  # a broken plugin must not take the built-in methods with it
            source = f" of {entry.dist.name}" if entry.dist is not None else ""
            warnings.warn(
                f"the inpainting methods{source} ({entry.name} = {entry.value}) could not be loaded: "
                f"{type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=3,
            )
