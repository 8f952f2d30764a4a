"""Image files for the command line: read them with their metadata, write results completely or not at all.

Every file goes through :mod:`napari_inpaint.io` (TIFF, OME-TIFF and ImageJ
hyperstacks, zarr arrays, OME-Zarr images, PNG and JPEG pictures): large ones
are read lazily, chunk by chunk, and outputs keep the input's metadata.  This
module adds what the command line needs around it: which files of a folder
are images, the checks made before any work, and errors as one line.

Any failure raises :class:`Refused` with a message that names the file, which
the command line prints as one ``error: ...`` line.  An output is refused when
it would overwrite an input, an existing file without ``--overwrite``, or a
folder; it is made under a temporary name next to it and moved into place only
once complete, so that an error or Ctrl-C never leaves it half written (and an
output that exists is complete).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from napari_inpaint.cli._errors import Refused

if TYPE_CHECKING:
    import numpy as np

    from napari_inpaint.io import Image

# numpy and the codecs are imported inside the functions, so that they load within main's handling of Ctrl-C.

_TIFF_SUFFIXES = (".tif", ".tiff")
_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")  # napari_inpaint.io.picture's, without importing numpy
# The extensions that mark an image file, for the images of a folder and the masks paired by name.
IMAGE_SUFFIXES = _TIFF_SUFFIXES + _PICTURE_SUFFIXES
# Files whose presence makes a folder a zarr store (zarr v3, then v2).
_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")
_READABLE = "expected a TIFF, PNG or JPEG file, a zarr array or an OME-Zarr image"
_ZARR_EXTRA = 'pip install "napari-inpaint[zarr]" (zarr needs Python 3.11 or later)'


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in _TIFF_SUFFIXES


def _is_zarr_name(path: Path) -> bool:
    return path.suffix.lower() == ".zarr"


def is_store(path: Path) -> bool:
    """Whether ``path`` is a zarr store (a folder named ``.zarr``, or one holding zarr metadata)."""
    return path.is_dir() and (_is_zarr_name(path) or any((path / name).exists() for name in _ZARR_METADATA))


def is_image(path: Path) -> bool:
    """Whether ``path`` looks like an image the commands read: an image file or a zarr store."""
    if path.name.startswith("."):
        return False  # hidden, e.g. an output being written
    return (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES) or is_store(path)


def image_stem(path: Path) -> str:
    """The name of an image without its format's extension (``a.ome.tif`` and ``a.png`` give ``a``)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", *IMAGE_SUFFIXES, ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def open_image(path: Path, *, cluster: bool = False) -> Image:
    """The image at ``path`` as a :class:`napari_inpaint.io.Image`, lazy where the file is large or chunked.

    With ``cluster``, TIFF files are read lazily too, by path, so that the
    fill runs on the workers of a ``distributed`` cluster (which must reach
    the file).

    Raises
    ------
    Refused
        When the file system refuses the file (missing, no permission), or its contents cannot be
        decoded as an image.
    """
    try:
        path.stat()  # a missing file is named with the system's words, before any decoder tries it
        if path.is_dir() and not (is_store(path) or _is_zarr_name(path)):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        image = _read_with_io(path, cluster)
    except MemoryError:  # the machine's limit, not the file's fault
        raise
    except ModuleNotFoundError as exc:
        raise Refused(f"reading {path} needs {exc.name}: {_ZARR_EXTRA}") from None
    except Exception as exc:
        # The file system's errors carry an errno; decoders raise about anything on corrupt data
        # (Pillow a SyntaxError, tifffile a ValueError, imageio an OSError without errno...).
        if isinstance(exc, OSError) and exc.errno is not None:
            raise Refused(f"cannot read {path}: {exc.strerror}") from None
        message = str(exc).strip()
        reason = message.splitlines()[0] if message else type(exc).__name__
        if reason.startswith(f"cannot read {path}"):
            raise Refused(reason) from None  # napari_inpaint.io's own words, which name the file
        raise Refused(f"cannot read {path} as an image: {reason}; {_READABLE}") from None
    if image.data.size == 0:
        raise Refused(f"cannot read {path} as an image: it holds no pixels; {_READABLE}")
    return image


def _read_with_io(path: Path, cluster: bool) -> Image:
    from napari_inpaint import io

    # tifffile logs, rather than raises, on some corrupt files and then returns an empty array: its
    # log is shown only when the file gave pixels, else the one error about the file says it all.
    logger = logging.getLogger("tifffile")
    with _log_held(logger) as records:
        image = io.read_image(path, lazy=True if cluster else None)
    if image.data.size:
        for record in records:
            logger.handle(record)
    if cluster and image.format == "tiff":
        from napari_inpaint.io.tiff import by_path

        image = dataclasses.replace(image, data=by_path(path, image.data))
    return image


@contextlib.contextmanager
def _log_held(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """Hold back the records ``logger`` handles meanwhile, so the caller can decide to show them."""
    records: list[logging.LogRecord] = []
    holder = logging.Handler()
    holder.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(holder)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield records
    finally:
        logger.removeHandler(holder)
        logger.propagate = propagate


def read_image(path: Path) -> np.ndarray:
    """The pixels of the image at ``path`` in memory (see :func:`open_image`)."""
    import numpy as np

    return np.asarray(open_image(path).data)


def open_mask(path: Path, *, cluster: bool = False):
    """The mask at ``path`` (nonzero: a bad pixel), lazy where the file is; a picture's samples OR-ed."""
    image = open_image(path, cluster=cluster)
    mask = image.data
    if image.format in ("png", "jpeg") and mask.ndim == 3:
        # A mask painted in colour, or saved with an alpha channel, which is ignored.
        painted = mask[..., :-1] if mask.shape[-1] in (2, 4) else mask
        mask = painted.any(axis=-1)
    return mask


def read_mask(path: Path) -> np.ndarray:
    """The mask at ``path`` in memory (see :func:`open_mask`)."""
    import numpy as np

    return np.asarray(open_mask(path))


def invented_beside(output: Path, source: Path) -> Path | None:
    """Where ``write_image(output, ..., invented=...)`` writes the mask of invented pixels, or None.

    An OME-Zarr output holds it (``labels/invented``); an output named
    ``.zarr`` is OME-Zarr when its ``source`` is.
    """
    from napari_inpaint.io import invented_path
    from napari_inpaint.io.omezarr import is_ome_zarr

    name = output.name.lower()
    if name.endswith(".ome.zarr") or (name.endswith(".zarr") and is_store(source) and is_ome_zarr(source)):
        return None
    return invented_path(output)


def check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...], file_name: str,
                 beside: tuple[Path, ...] = ()) -> None:
    """Refuse to write over a folder or an input, or over any existing file without ``overwrite``.

    ``file_name`` is suggested as a file inside ``output`` when that is a
    folder; ``beside`` are further outputs written with it (a mask of
    invented pixels), checked the same way.
    """
    if output.is_dir() and not is_store(output):
        raise Refused(f"the output {output} is a folder; give a file name, e.g. {output / file_name}")
    if not output.parent.is_dir():
        raise Refused(f"the folder {output.parent} of the output does not exist")
    for path in (output, *beside):
        if not path.exists():
            continue
        for given in inputs:
            if given.exists() and os.path.samefile(path, given):
                raise Refused(f"the output {path} is the input {given}; write the result to a new file")
        if not overwrite:
            raise Refused(f"{path} exists; pass --overwrite to replace it")


def check_format(output: Path) -> None:
    """Refuse, before any work, an output whose extension names no image format that can be written."""
    if _is_tiff(output) or _is_zarr_name(output):
        return
    if not output.suffix:
        raise Refused(f"the output {output} has no extension to choose its format by, e.g. {output}.tif")
    from napari_inpaint.io import output_format

    try:
        output_format(output)
    except ValueError:
        raise Refused(
            f"cannot write {output.suffix} images; write a .tif, .zarr, .ome.zarr, .png or .jpg file"
        ) from None


def check_storable(output: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Refuse a picture format that cannot hold ``dtype`` or ``shape``; warn that JPEG changes every pixel."""
    from napari_inpaint.io import picture

    if picture.format_of(output) is None:
        return
    try:
        picture.check(output, dtype, shape)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if picture.format_of(output) == "jpeg":
        print("warning: JPEG is lossy, so the good pixels will change too; write .png or .tif to keep them",
              file=sys.stderr)


def write_image(
    path: Path, data, *, like: Image | None = None, axes: str | None = None, provenance: dict | None = None,
    invented=None, overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
) -> None:
    """:func:`napari_inpaint.io.write_image`, its failures as :class:`Refused` (a full device said plainly).

    A lazy ``data`` is computed chunk by chunk, on the active cluster if
    any, with ``progress``; ``invented`` (the filled pixels) is written
    beside the output, or inside an OME-Zarr one.
    """
    from napari_inpaint import io

    try:
        io.write_image(path, data, like=like, axes=axes, provenance=provenance, invented=invented,
                       overwrite=overwrite, progress=progress)
    except ModuleNotFoundError as exc:
        raise Refused(f"writing {path} needs {exc.name}: {_ZARR_EXTRA}") from None
    except OSError as exc:
        raise _write_error(exc, path) from None


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` once written completely.

    It lies in a hidden folder next to ``path`` (see
    :func:`napari_inpaint.io.store.staged`): an error or Ctrl-C while writing
    removes it and leaves an existing ``path`` as it was, so an output is
    never left half written, and what a killed command left is tidied by
    the next one.

    Raises
    ------
    Refused
        When writing fails, saying so plainly when the device is full.
    """
    from napari_inpaint.io.store import staged

    try:
        with staged([path], overwrite=True) as folder:
            yield folder / path.name
    except OSError as exc:
        raise _write_error(exc, path) from None


def _write_error(error: OSError, path: Path) -> Refused:
    """The error to show for ``error``, raised while writing ``path``: plainly so when the device is full."""
    if _device_full(error, path.parent):
        return Refused(f"no space left on the device to write {path}; nothing was written")
    return Refused(f"cannot write {path}: {error.strerror or error}")


def _device_full(error: OSError, folder: Path) -> bool:
    """Whether ``error``, raised while writing into ``folder``, comes from a full device.

    numpy's ``tofile`` (which tifffile writes with) reports a short write without an errno, as
    "N requested and M written", and the temporary output may be gone (and its space free again) by the
    time the error is seen: a short write, or a device with no free space left, tells that case apart.
    """
    if error.errno == errno.ENOSPC:
        return True
    short_write = re.search(r"\d+ requested and \d+ written", str(error)) is not None
    return error.errno is None and (short_write or shutil.disk_usage(folder).free == 0)
