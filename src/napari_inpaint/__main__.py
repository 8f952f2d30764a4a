"""``python -m napari_inpaint``: the same as the ``napari-inpaint`` command."""

import sys

from napari_inpaint.cli import main

sys.exit(main())
