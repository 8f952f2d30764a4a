"""Image files for the command line: read them with their metadata, write results completely or not at all.

TIFF files (OME-TIFF and ImageJ hyperstacks included), zarr arrays and
OME-Zarr images go through :mod:`napari_inpaint.io`: large ones are read
lazily, chunk by chunk, and outputs keep the input's metadata.  PNG and JPEG
files are small and are read and written in memory.

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
_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
_PICTURE_FORMATS = tuple(suffix[1:] for suffix in _PICTURE_SUFFIXES)
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
    from napari_inpaint import io

    try:
        path.stat()  # a missing file is named with the system's words, before any decoder tries it
        if _is_tiff(path) or is_store(path) or _is_zarr_name(path):
            image = _read_with_io(path, cluster)
        elif path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        else:
            data = _read_with_imageio(path)
            # A picture's third axis holds its samples: grey and alpha, RGB, or RGBA.
            image = io.Image(data, "YXS"[: data.ndim], path.suffix.lower()[1:], path)
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
        image = dataclasses.replace(image, data=_tiff_by_path(path, image.data))
    return image


def _tiff_by_path(path: Path, lazy):
    """``lazy`` (a TIFF read through tifffile's zarr store) as a dask array that reads the file by path.

    tifffile's store holds an open file, which cannot travel to a cluster's
    workers; a :class:`TiffRegions` is its path and reopens the file where
    a chunk is read.
    """
    import dask.array as da
    import numpy as np
    from dask.base import tokenize

    status = path.stat()
    regions = TiffRegions(str(path.resolve()), tuple(lazy.shape), np.dtype(lazy.dtype))
    name = "tiff-" + tokenize(regions.path, status.st_mtime_ns, status.st_size)
    return da.from_array(regions, chunks=lazy.chunks, name=name, meta=np.empty((0,) * lazy.ndim, lazy.dtype))


@dataclasses.dataclass(frozen=True)
class TiffRegions:
    """The first series of a TIFF file, read region by region by its path (any process can read it)."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, region):
        import tifffile
        import zarr

        with tifffile.imread(self.path, aszarr=True, series=0) as store:
            stored = zarr.open(store, mode="r")
            if isinstance(stored, zarr.Group):  # a pyramid: its first level is the full resolution
                stored = stored["0"]
            return stored[region]


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


def read_image(path: Path) -> np.ndarray:
    """The pixels of the image at ``path`` in memory (see :func:`open_image`)."""
    import numpy as np

    return np.asarray(open_image(path).data)


def open_mask(path: Path, *, cluster: bool = False):
    """The mask at ``path`` (nonzero: a bad pixel), lazy where the file is; a picture's samples OR-ed."""
    image = open_image(path, cluster=cluster)
    mask = image.data
    if image.format in _PICTURE_FORMATS and mask.ndim == 3:
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
    import warnings

    import numpy as np

    try:
        with warnings.catch_warnings():  # imageio warns before it fails on an unknown extension
            warnings.simplefilter("ignore")
            _encode(np.zeros((1, 1), np.uint8), output.suffix)
    except Exception:  # imageio raises ValueError, among others, for an extension it cannot write
        raise Refused(
            f"cannot write {output.suffix} images; write a .tif, .zarr, .ome.zarr, .png or .jpg file"
        ) from None


def check_storable(output: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Refuse a picture format that cannot hold ``dtype`` or ``shape``; warn that JPEG changes every pixel."""
    import numpy as np

    suffix = output.suffix.lower()
    lossless = _is_tiff(output) or _is_zarr_name(output)
    if not (lossless or dtype == np.uint8 or (dtype == np.uint16 and suffix == ".png")):
        raise Refused(f"{output.suffix} cannot store {dtype} pixels; write a .tif file to keep them")
    if not lossless:
        _check_picture_shape(output, shape)
    if suffix in (".jpg", ".jpeg"):
        print("warning: JPEG is lossy, so the good pixels will change too; write .png or .tif to keep them",
              file=sys.stderr)


def _check_picture_shape(output: Path, shape: tuple[int, ...]) -> None:
    """Refuse to write a stack as a PNG or JPEG: it would be read back as one colour plane, or not at all."""
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (2, 3, 4))):
        raise Refused(f"{output.suffix} holds one plane (grey or colour), not an image of shape {tuple(shape)}; "
                      "write a .tif file to keep its planes")


def write_image(
    path: Path, data, *, like: Image | None = None, axes: str | None = None, provenance: dict | None = None,
    invented=None, overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``data`` in the format that the extension of ``path`` names, completely or not at all.

    TIFF and zarr outputs are written by :func:`napari_inpaint.io.write_image`
    (a lazy ``data`` is computed chunk by chunk, on the active cluster if
    any, with ``progress``), keeping ``like``'s metadata and recording
    ``provenance``; PNG and JPEG files are encoded in memory.  ``invented``
    (the filled pixels) is written beside the output, or inside an OME-Zarr
    one.
    """
    import numpy as np

    from napari_inpaint import io

    try:
        if _is_tiff(path) or _is_zarr_name(path):
            io.write_image(path, data, like=like, axes=axes, provenance=provenance, invented=invented,
                           overwrite=overwrite, progress=progress)
            return
        _check_picture_shape(path, np.shape(data))
        # Everything is encoded before anything is written: a mask that cannot be encoded writes nothing.
        files = {path: _encode(np.asarray(data), path.suffix)}
        if invented is not None:
            mask = (np.asarray(invented) != 0).astype(np.uint8) * np.uint8(255)
            files[io.invented_path(path)] = _encode(mask, path.suffix)
        for target, encoded in files.items():
            with replacing(target) as partial:
                partial.write_bytes(encoded)
    except ModuleNotFoundError as exc:
        raise Refused(f"writing {path} needs {exc.name}: {_ZARR_EXTRA}") from None
    except OSError as exc:
        raise _write_error(exc, path) from None


def _encode(image: np.ndarray, suffix: str) -> bytes:
    """``image`` encoded in memory in the format that ``suffix`` names (PNG, JPEG, ...).

    The bytes are written by the caller: imageio writing a file itself retries a failed close when
    it is garbage-collected, which prints a traceback after the error on a full device.
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=suffix.lower())


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
