"""Shared test setup.

Without a display, Qt is switched to its ``offscreen`` platform so that the
widget logic tests (which use napari's ViewerModel, no OpenGL canvas) still
run; tests that need a real napari window skip themselves in that case.
"""

import os

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
