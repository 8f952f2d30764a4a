"""PNG and JPEG pictures: one plane, grey or colour, read and written whole in memory.

They hold no calibration and no provenance; :func:`napari_inpaint.io.write_image`
checks that the data fit (:func:`check`) and encodes every output before it
writes any (:func:`encode`), so that a picture that cannot be encoded writes
nothing.
"""

from pathlib import Path

import numpy as np

# The format of each suffix, as :attr:`napari_inpaint.io.Image.format` names it.
SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
FORMATS = ("png", "jpeg")


def format_of(path) -> str | None:
    """``"png"`` or ``"jpeg"`` for a picture's name, None for any other."""
    return SUFFIXES.get(Path(path).suffix.lower())


def read(path: Path) -> tuple[np.ndarray, str]:
    """The pixels of the picture at ``path`` and their axes: ``"YX"``, or ``"YXS"`` with grey+alpha, RGB(A) samples."""
    import imageio.v3 as iio

    data = iio.imread(path)
    return data, "YXS"[: data.ndim]


def check(path: Path, dtype, shape: tuple[int, ...]) -> None:
    """Refuse data a picture cannot hold: a stack, or pixels other than uint8 (uint16 in a PNG).

    Raises
    ------
    ValueError
        Saying what to write instead (a TIFF keeps any dtype and shape).
    """
    path, dtype = Path(path), np.dtype(dtype)
    if not (dtype == np.uint8 or (dtype == np.uint16 and format_of(path) == "png")):
        raise ValueError(f"{path.suffix} cannot store {dtype} pixels; write a .tif file to keep them")
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (2, 3, 4))):
        raise ValueError(
            f"{path.suffix} holds one plane (grey or colour), not an image of shape {tuple(shape)}; "
            "write a .tif file to keep its planes"
        )


def encode(image: np.ndarray, suffix: str) -> bytes:
    """``image`` encoded in memory in the format that ``suffix`` names.

    The caller writes the bytes: imageio writing a file itself retries a
    failed close when it is garbage-collected, which prints a traceback
    after the error on a full device.
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=suffix.lower())
