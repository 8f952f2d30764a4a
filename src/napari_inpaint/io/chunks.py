"""zarr arrays read lazily, with an error that names the file and the chunk that cannot be decoded.

A damaged chunk (cut short, overwritten, from a failing disk) makes the codec
raise its own error (``RuntimeError: Zstd decompression error``), which says
neither which file nor which chunk.  :func:`from_zarr` reads through
:class:`NamedChunks`, which finds the chunk of the failing region and raises
:class:`ChunkDecodeError` naming it, so that the user can restore that file.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np


class ChunkDecodeError(ValueError):
    """A chunk of a zarr array whose bytes cannot be decoded: the store is damaged."""


@dataclass(frozen=True)
class NamedChunks:
    """A zarr array read region by region, for dask; a chunk that cannot be decoded is named.

    Attributes
    ----------
    array : zarr.Array
    where : str
        The store as the user named it (a path).
    prefix : str
        The array's path within the store, with a trailing ``/`` (``"0/"``
        for an OME-Zarr level), or ``""``.
    """

    array: Any
    where: str
    prefix: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, region):
        try:
            return self.array[region]
        except Exception as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the file system's error (permissions...), which names the file itself
            key = self._failing_chunk(region)
            if key is None:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ChunkDecodeError(
                f"{self.where}: chunk {key} cannot be decoded ({type(error).__name__}"
                f"{': ' + reason if reason else ''}); the file is damaged: restore it from a copy, or write the "
                "data again"
            ) from error

    def _failing_chunk(self, region) -> str | None:
        """The key (a path in the store) of the first chunk of ``region`` that fails to read, or None."""
        bounds = _bounds(region, self.shape)
        if bounds is None:
            return None
        grid = getattr(self.array, "shards", None) or self.array.chunks  # a shard is one file of chunks
        ranges = [range(start // size, -(-stop // size)) for (start, stop), size in zip(bounds, grid)]
        for block in np.ndindex(*(len(r) for r in ranges)):
            coordinates = tuple(r[i] for r, i in zip(ranges, block))
            chunk = tuple(slice(c * size, min((c + 1) * size, n)) for c, size, n in zip(coordinates, grid, self.shape))
            try:
                self.array[chunk]
            except Exception:
                return self.prefix + self.array.metadata.encode_chunk_key(coordinates)
        return None


def _bounds(region, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """``(start, stop)`` per axis of a region of slices and integers, or None for any other selection."""
    region = region if isinstance(region, tuple) else (region,)
    if len(region) > len(shape) or not all(isinstance(r, (slice, int, np.integer)) for r in region):
        return None
    region = region + (slice(None),) * (len(shape) - len(region))
    bounds = []
    for index, n in zip(region, shape):
        if isinstance(index, slice):
            start, stop, _ = index.indices(n)
        else:
            start = int(index) % n
            stop = start + 1
        bounds.append((start, max(start, stop)))
    return bounds


def from_zarr(array, where, prefix: str = ""):
    """``array`` (a zarr array) as a dask array of its chunks, read through :class:`NamedChunks`.

    ``where`` names the store in errors (its path), ``prefix`` the array within it (``"0/"``).

    Examples
    --------
    >>> import zarr
    >>> array = zarr.create_array(store={}, shape=(4, 6), chunks=(2, 3), dtype="uint8")
    >>> from_zarr(array, "in-memory").chunks
    ((2, 2), (3, 3))
    """
    import dask.array as da
    from dask.base import tokenize

    chunks = tuple(array.chunks)
    name = "from-zarr-" + tokenize(array, chunks)
    return da.from_array(NamedChunks(array, str(where), prefix), chunks=chunks, name=name,
                         meta=np.empty((0,) * array.ndim, array.dtype))
