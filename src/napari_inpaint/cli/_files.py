"""Image files for the command line: read them, and write results completely or not at all.

Any failure raises :class:`Refused` with a message that names the file, which
the command line prints as one ``error: ...`` line.  An output is refused when
it would overwrite an input, an existing file without ``--overwrite``, or a
folder; it is written to a temporary file next to it and moved into place only
once complete, so that an error or Ctrl-C never leaves it half written.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# numpy and the codecs are imported inside the functions, so that they load within main's handling of Ctrl-C.

_TIFF_SUFFIXES = (".tif", ".tiff")
_READABLE = "expected a TIFF, PNG or JPEG file"


class Refused(Exception):
    """A request the command line declines: it would lose data, or an input or output is unusable."""


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in _TIFF_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Read the image file ``path``; any failure raises one :class:`Refused` that names the file.

    Raises
    ------
    Refused
        When the file system refuses the file (missing, a folder, no permission), or its contents
        cannot be decoded as an image.
    """
    try:
        image = _read_tiff(path) if _is_tiff(path) else _read_with_imageio(path)
    except MemoryError:  # the machine's limit, not the file's fault
        raise
    except Exception as exc:
        # The file system's errors carry an errno; decoders raise about anything on corrupt data
        # (Pillow a SyntaxError, tifffile a ValueError, imageio an OSError without errno...).
        if isinstance(exc, OSError) and exc.errno is not None:
            raise Refused(f"cannot read {path}: {exc.strerror}") from None
        message = str(exc).strip()
        reason = message.splitlines()[0] if message else type(exc).__name__
        raise Refused(f"cannot read {path} as an image: {reason}; {_READABLE}") from None
    if image.size == 0:
        raise Refused(f"cannot read {path} as an image: it holds no pixels; {_READABLE}")
    return image


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    # tifffile logs, rather than raises, on some corrupt files and then returns an empty array: its
    # log is shown only when the file gave pixels, else the one error about the file says it all.
    logger = logging.getLogger("tifffile")
    with _log_held(logger) as records:
        image = tifffile.imread(path)
    if image.size:
        for record in records:
            logger.handle(record)
    return image


def _read_with_imageio(path: Path) -> np.ndarray:
    from skimage import io

    return io.imread(path)


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


def read_mask(path: Path) -> np.ndarray:
    mask = read_image(path)
    if not _is_tiff(path) and mask.ndim == 3 and mask.shape[-1] in (3, 4):
        mask = mask[..., :3].any(axis=-1)  # a mask painted in colour; alpha is ignored
    return mask


def check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...], file_name: str) -> None:
    """Refuse to write over a folder or an input, or over any existing file without ``overwrite``.

    ``file_name`` is suggested as a file inside ``output`` when that is a folder.
    """
    if output.is_dir():
        raise Refused(f"the output {output} is a folder; give a file name, e.g. {output / file_name}")
    if not output.parent.is_dir():
        raise Refused(f"the folder {output.parent} of the output does not exist")
    if not output.exists():
        return
    for path in inputs:
        if path.exists() and os.path.samefile(output, path):
            raise Refused(f"the output {output} is the input {path}; write the result to a new file")
    if not overwrite:
        raise Refused(f"{output} exists; pass --overwrite to replace it")


def check_format(output: Path) -> None:
    """Refuse, before any work, an output whose extension names no image format that can be written."""
    if _is_tiff(output):
        return
    if not output.suffix:
        raise Refused(f"the output {output} has no extension to choose its format by, e.g. {output}.tif")
    import warnings

    import numpy as np

    try:
        with warnings.catch_warnings():  # imageio warns before it fails on an unknown extension
            warnings.simplefilter("ignore")
            _encode(np.zeros((1, 1), np.uint8), output.suffix)
    except Exception:  # imageio raises ValueError, among others, for an extension it cannot write
        raise Refused(f"cannot write {output.suffix} images; write a .tif, .png or .jpg file") from None


def check_storable(output: Path, dtype: np.dtype) -> None:
    import numpy as np

    suffix = output.suffix.lower()
    if not (_is_tiff(output) or dtype == np.uint8 or (dtype == np.uint16 and suffix == ".png")):
        raise Refused(f"{output.suffix} cannot store {dtype} pixels; write a .tif file to keep them")
    if suffix in (".jpg", ".jpeg"):
        print("warning: JPEG is lossy, so the good pixels will change too; write .png or .tif to keep them",
              file=sys.stderr)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write ``image`` in the format that the extension of ``path`` names, completely or not at all."""
    with replacing(path) as partial:
        if _is_tiff(path):
            import tifffile

            tifffile.imwrite(partial, image)
        else:
            partial.write_bytes(_encode(image, path.suffix))


def _encode(image: np.ndarray, suffix: str) -> bytes:
    """``image`` encoded in memory in the format that ``suffix`` names (PNG, JPEG, ...).

    The bytes are written by the caller: imageio writing a file itself retries a failed close when
    it is garbage-collected, which prints a traceback after the error on a full device.
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=suffix.lower())


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` that replaces ``path`` once written completely.

    An error or Ctrl-C while writing removes the temporary file and leaves an existing ``path`` as it
    was, so an output is never left half written.

    Raises
    ------
    Refused
        When writing fails, saying so plainly when the device is full.
    """
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as exc:
        if _device_full(exc, path.parent):
            raise Refused(f"no space left on the device to write {path}; nothing was written") from None
        raise Refused(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _device_full(error: OSError, folder: Path) -> bool:
    """Whether ``error``, raised while writing into ``folder``, comes from a full device.

    numpy's ``tofile`` (which tifffile writes with) reports a short write without an errno, as
    "N requested and M written"; the device having no free space left tells that case apart.
    """
    if error.errno == errno.ENOSPC:
        return True
    return error.errno is None and shutil.disk_usage(folder).free == 0
