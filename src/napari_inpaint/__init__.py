"""napari-inpaint: fill bad or missing regions of scientific images.

The library is usable without napari: ``inpaint`` (a :class:`FillJob`, run)
is the one engine behind the napari widgets, the command line and the
benchmarks; ``register`` adds a method (``docs/writing-a-method.md``); the
submodules ``io`` (files), ``detect`` (finding bad pixels), ``masks`` and
``evaluation`` are imported on use.  ``docs/architecture.md`` maps the package.

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

from importlib import import_module

# The public names (and the version, read from the package's metadata) are looked up on first use, so
# that ``import napari_inpaint`` (and the command line's start, where Ctrl-C must be handled) is instant.
_PUBLIC = {
    "ARTIFACTS": "napari_inpaint.registry",
    "FillJob": "napari_inpaint.engine",
    "InpaintCancelled": "napari_inpaint.engine",
    "Method": "napari_inpaint.registry",
    "Param": "napari_inpaint.registry",
    "Stack": "napari_inpaint.registry",
    "evaluate": "napari_inpaint.evaluation",
    "get_method": "napari_inpaint.methods",
    "inpaint": "napari_inpaint.engine",
    "inpaint_layer": "napari_inpaint.napari.fill",
    "list_methods": "napari_inpaint.methods",
    "register": "napari_inpaint.registry",
    "training_stack": "napari_inpaint.engine",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = _version()
        return globals()[name]
    if name not in _PUBLIC:
        raise AttributeError(f"module 'napari_inpaint' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-inpaint")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"
