"""The ``napari-inpaint`` command line: fill image files, find bad pixels, list methods, compare them.

Examples
--------
.. code-block:: console

    $ napari-inpaint methods
    $ napari-inpaint fill stack.tif --mask bad.tif --method biharmonic -o filled.tif
    $ napari-inpaint fill photo.png --mask dust.png --method exemplar --param patch_size=11 -o clean.png
    $ napari-inpaint fill slide.ome.zarr --mask seams.zarr --method harmonic -o filled.ome.zarr --workers 4
    $ napari-inpaint fill raw/ --mask-dir masks/ --method harmonic -o filled/ --invented
    $ napari-inpaint detect frames/ --detect cosmic-rays --lacosmic-gain 1.5 -o masks/
    $ napari-inpaint fill frames/ --detect hot-pixels --persistent --dilate 1 --method harmonic -o clean/
    $ napari-inpaint demo -o demo-output
    $ napari-inpaint compare cells.tif --masks strokes,scratches --ratios 0.05,0.15 --csv scores.csv
    $ napari-inpaint compare stack.tif --plane 12 --reference adjacent
    $ napari-inpaint models
    $ napari-inpaint models fetch lama migan

Every user error (a missing or unreadable file, an unknown method, a bad
parameter, an output that would overwrite data or does not fit on its device)
prints one ``error: ...`` line on stderr and exits with status 2.  Ctrl-C prints
``interrupted`` and exits with status 130.  An output file is either written
completely or not at all.  Commands given several images (or folders) write
into an output folder, keep going past a file that fails, report every
failure at the end and exit with status 1 if any; they skip the outputs that
exist (which are complete), so that running them again resumes them.

The engine's messages name its Python arguments; the command line's name its
flags (``--channel-axis``, not ``channel_axis``).  Warnings are printed as
``warning: ...`` lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from napari_inpaint.cli._errors import Refused, in_flags

# Every other module (argparse, the commands, numpy, the codecs) is imported within main's handling of
# errors and Ctrl-C: a Ctrl-C at any moment of the start prints "interrupted", not a traceback.

_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Examples
    --------
    >>> main(["methods", "--json"])  # doctest: +SKIP
    0
    """
    try:
        # Parsing is inside too: building the parser imports the engine, which takes a moment.
        from napari_inpaint.cli import _arguments

        args = _arguments.parser().parse_args(argv)
        with _warnings_as_lines():
            return args.command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        # CPython takes a KeyboardInterrupt raised within any eval() of a string (namedtuple's, while
        # importing) for one that ended the program, and then kills it by SIGINT whatever its exit status;
        # the next eval() of a string that ends normally clears that.
        eval("None")
        return _EXIT_INTERRUPTED
    except BrokenPipeError:
        import os

        # The reader of stdout left (as `| head` does): stop quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, OSError, Refused) as exc:
        print(f"error: {in_flags(str(exc))}", file=sys.stderr)
        return _EXIT_USAGE


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Within the block, a warning shown on stderr is one ``warning: ...`` line (not Python's file and line)."""
    import warnings

    shown = warnings.formatwarning
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {in_flags(str(message))}\n"
    try:
        yield
    finally:
        warnings.formatwarning = shown
