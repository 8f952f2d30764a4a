"""Shared test setup.

Without a display, Qt is switched to its ``offscreen`` platform so that the
widget logic tests (which use napari's ViewerModel, no OpenGL canvas) still
run; tests that need a real napari window skip themselves in that case.
"""

import os

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest  # noqa: E402


@pytest.fixture
def register_method():
    """``register_method(name, **record)``: a decorator registering a toy method for one test.

    The record's ``summary``, ``family`` and ``artifacts`` default to a toy's;
    the registry is restored after the test, so toy methods never leak.
    """
    from napari_inpaint import _registry

    saved = dict(_registry._METHODS)

    def register(name: str, **record):
        record = {"summary": "a toy method of a test", "family": "classical", "artifacts": (), **record}
        return _registry.register(name, **record)

    yield register
    _registry._METHODS.clear()
    _registry._METHODS.update(saved)
