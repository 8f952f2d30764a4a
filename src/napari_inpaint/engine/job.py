"""One fill job: the validated request every front end builds, run by one of two executors.

:meth:`FillJob.create` checks everything a fill needs (the method and its
parameters as one mapping, how image and mask fit, the reference, noise,
seed, clip) and resolves it once: the channel axis, the planes, the margin.
:meth:`FillJob.run` plans the job into units (a crop of a group of planes,
:mod:`napari_inpaint.engine.unit`), runs the method's preparation once, and
hands the units to an executor: :mod:`~napari_inpaint.engine.memory` for a
NumPy image (a new array), :mod:`~napari_inpaint.engine.graph` for a dask or
zarr image (a lazy dask array, computed crop by crop, on a cluster too).
Both fill every unit with the same function, so every feature works the same
on both.
"""

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_inpaint.engine import graph, memory
from napari_inpaint.engine.hooks import Hooks
from napari_inpaint.engine.layout import as_bool_mask, channels_last, is_dask, layout
from napari_inpaint.engine.reference import check_reference
from napari_inpaint.methods import get_method, list_methods
from napari_inpaint.registry import Method

NOISE_MODELS = ("gaussian", "poisson")
# Noise statistics need a ring of known pixels wider than most methods' margin.
_NOISE_MARGIN = 8


@dataclass(frozen=True)
class FillJob:
    """One inpainting request, checked and resolved (made by :meth:`create`).

    Attributes
    ----------
    image : ndarray or dask array
        The image (a zarr image is read as a dask array, see ``stored``).
    mask : ndarray or dask array of bool
        True on the pixels to fill: the image's grid, or its trailing axes.
    method : Method
        The method's record (:func:`napari_inpaint.get_method`).
    params : dict
        Every parameter of the method, validated, defaults included.
    channel_axis : int or None
        The image's channel axis (non-negative), None without one.
    spatial_ndim : int
        2 (plane by plane) or 3 (volumes).
    noise : None, "gaussian" or "poisson"
    seed : int
    clip : bool
    reference : None, "adjacent", ndarray or dask array
        Reference data, of the image's shape or of its trailing axes.
    align : bool
    stored : zarr array or None
        The zarr array ``image`` reads, whose windows the graph reads directly.
    stored_mask : zarr array or None
        Likewise for ``mask``.
    uncertainty : bool
        Whether :meth:`run` also returns the sigma of every filled pixel,
        calibrated on probes (:mod:`napari_inpaint.engine.calibration`).
    outcome : dict
        Filled in by :meth:`run`: what the method's preparation reports for
        the provenance (its prepared result's ``provenance`` mapping).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint.engine import FillJob
    >>> image = np.zeros((3, 16, 16), np.uint16)
    >>> mask = np.zeros((16, 16), bool); mask[4:6, 4:6] = True
    >>> job = FillJob.create(image, mask, "telea", params={"radius": 3})
    >>> job.batch_shape, job.spatial_shape, job.params["radius"], job.run().dtype
    ((3,), (16, 16), 3, dtype('uint16'))
    """

    image: Any
    mask: Any
    method: Method
    params: Mapping[str, Any]
    channel_axis: int | None
    spatial_ndim: int
    noise: str | None = None
    seed: int = 0
    clip: bool = True
    reference: Any = None
    align: bool = True
    stored: Any = None
    stored_mask: Any = None
    uncertainty: bool = False
    # What the run found out, for the provenance of its outputs (e.g. whether ``learned``'s training beat its
    # start): the ``provenance`` mapping of the method's prepared result, filled in by :meth:`run`.
    outcome: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        image,
        mask,
        method: str = "biharmonic",
        *,
        params: Mapping[str, Any] | None = None,
        channel_axis: int | None = None,
        spatial_ndim: int = 2,
        noise: str | None = None,
        seed: int | None = 0,
        clip: bool = True,
        reference=None,
        align: bool = True,
        uncertainty: bool = False,
    ) -> "FillJob":
        """Check a fill request and resolve it; the arguments are those of :func:`napari_inpaint.inpaint`.

        Raises
        ------
        ValueError, TypeError
            For a request that cannot run, with a message that says what to change.
        """
        spec = get_method(method)
        params = spec.resolve(dict(params or {}))
        if spatial_ndim not in (2, 3) or isinstance(spatial_ndim, bool):
            raise ValueError(f"spatial_ndim must be 2 or 3, got {spatial_ndim!r}")
        if spatial_ndim not in spec.ndims:
            raise ValueError(
                f"method {spec.name!r} fills {' or '.join(f'{n}D' for n in spec.ndims)} data only; "
                f"use spatial_ndim={spec.ndims[0]} (plane by plane) or another method"
            )
        if noise not in (None, *NOISE_MODELS):
            raise ValueError(f"noise must be None or one of {', '.join(NOISE_MODELS)}; got {noise!r}")
        for name, value in (("clip", clip), ("align", align), ("return_uncertainty", uncertainty)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if reference is not None and not spec.uses_reference:
            users = ", ".join(m.name for m in list_methods() if m.uses_reference)
            raise ValueError(f"method {spec.name!r} does not use a reference; methods that do: {users}")
        if spec.needs_reference and reference is None:
            raise ValueError(
                f"method {spec.name!r} fills from reference data: pass reference='adjacent' (the neighbouring "
                "planes of a stack) or an image of the same field (another acquisition or channel)"
            )
        stored = image if _is_zarr(image) else None
        image = _from_zarr(image) if stored is not None else image if is_dask(image) else np.asarray(image)
        _check_dtype(image.dtype)
        stored_mask = mask if _is_zarr(mask) else None
        mask = _as_mask(_from_zarr(mask) if stored_mask is not None else mask)
        channel_axis, grid_shape = layout(image.shape, mask.shape, channel_axis, spatial_ndim)
        check_reference(reference, image.shape, len(grid_shape) - spatial_ndim)
        if reference is not None and not isinstance(reference, str):
            reference = _from_zarr(reference) if _is_zarr(reference) else reference
            reference = reference if is_dask(reference) else np.asarray(reference)
            if isinstance(reference, np.ndarray) and reference.dtype.kind == "f" and not np.isfinite(reference).all():
                raise ValueError("the reference has NaN or infinite pixels; replace them (e.g. fill it first)")
        return cls(
            image, mask, spec, params, channel_axis, spatial_ndim, noise, _resolve_seed(seed), bool(clip),
            reference, bool(align), stored, stored_mask, bool(uncertainty),
        )

    # -- what the job resolved --------------------------------------------------------------

    @property
    def lazy(self) -> bool:
        """Whether the image is a dask (or zarr) array: the result is then lazy too."""
        return is_dask(self.image)

    @property
    def grid_axes(self) -> list[int]:
        """The image's axes but the channel axis: batch axes, then spatial axes."""
        return [axis for axis in range(len(self.image.shape)) if axis != self.channel_axis]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[axis] for axis in self.grid_axes)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.grid_shape[: len(self.grid_shape) - self.spatial_ndim]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.grid_shape[len(self.grid_shape) - self.spatial_ndim :]

    @property
    def channels(self) -> int:
        return 1 if self.channel_axis is None else self.image.shape[self.channel_axis]

    @property
    def margin(self) -> int:
        """Known pixels around each hole that a fill (and its noise statistics) need."""
        return self.method.margin(self.params) + (_NOISE_MARGIN if self.noise else 0)

    @property
    def fill_params(self) -> dict[str, Any]:
        """The parameters the fill function takes (a parameter of the preparation only is not the fill's)."""
        return {name: value for name, value in self.params.items() if name in self.method.fill_keywords}

    @property
    def mask_grid(self):
        """The mask broadcast to the image's grid (a view, or a lazy dask array)."""
        leading = self.mask.reshape((1,) * (len(self.grid_shape) - self.mask.ndim) + self.mask.shape)
        return np.broadcast_to(leading, self.grid_shape)  # dask dispatches to da.broadcast_to

    @property
    def reference_array(self):
        """A reference array broadcast to the image's shape (a view, or a lazy dask array); None without one."""
        if self.reference is None or isinstance(self.reference, str):
            return None
        return np.broadcast_to(self.reference, self.image.shape)

    def channels_last(self, array):
        """``array`` (of the image's axes) with its channel axis last, or a new last axis without one."""
        return channels_last(array, self.channel_axis)

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        *,
        progress: Callable[[float, int], None] | None = None,
        cancel=None,
        status: Callable[[str], None] | None = None,
    ):
        """Fill: a new array for a NumPy image, a lazy dask array for a dask or zarr image.

        With :attr:`uncertainty`, a pair ``(filled, sigma)``: ``sigma`` of
        the image's shape, float32 (lazy too for a lazy image).
        ``progress``, ``cancel`` and ``status`` are those of
        :func:`napari_inpaint.inpaint`.
        """
        hooks = Hooks(progress, cancel, status)
        hooks.check()
        filled, sigma = (graph.run if self.lazy else memory.run)(self, hooks)
        return (filled, sigma) if self.uncertainty else filled


def _resolve_seed(seed) -> int:
    """A non-negative integer seed; None draws one from the operating system."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer (or None for a fresh one), got {seed!r}")
    return int(seed)


def _as_mask(mask):
    """The mask as a NumPy or dask array of bool (nonzero = bad)."""
    if not is_dask(mask):
        return as_bool_mask(mask)
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"mask must be boolean or numeric (nonzero = bad pixel), got dtype {mask.dtype}")
    return mask if mask.dtype == bool else mask != 0


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind == "b" or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(
            f"image dtype {dtype} is not supported; give an integer or floating-point image "
            "(for a boolean or complex image, convert it first, e.g. image.astype(np.float32))"
        )


def _is_zarr(array) -> bool:
    return type(array).__module__.startswith("zarr.")


def _from_zarr(array):
    """A dask array of a zarr array (read chunk by chunk, never whole)."""
    import dask.array as da

    return da.from_zarr(array)
