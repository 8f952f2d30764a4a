"""One inpainting of a napari image layer: a run of the Inpaint widget, or a console call.

The console's :func:`inpaint_layer` and the widget
go through the same steps, so that a console call does exactly what the
widget does:

- :func:`plan_fill` (GUI thread) turns the layers and settings (label,
  dilation, scope, noise, reference...) into a :class:`LayerFill`: the mask,
  the plane, the engine's arguments and the :class:`~napari_inpaint.napari.layers.Provenance`
  of the result; it raises what is wrong before anything runs;
- :meth:`LayerFill.run` fetches the method's weights and fills (any thread:
  it reads the data captured by the plan and touches no layer);
- :meth:`LayerFill.add` adds (or replaces) the result layers (GUI thread);
- or :meth:`LayerFill.write` fills and writes the whole result into a file
  (any thread), chunk by chunk for a lazy layer.

A lazy layer (dask, or the levels of a multiscale layer: napari's zarr
reader and napari-ome-zarr open OME-Zarr images so) is filled at its
highest resolution and stays lazy: the result layer computes the crops of
the planes and tiles napari shows, and nothing else (:func:`pyramid` gives
a multiscale result its coarser levels).

napari is only imported inside functions, so importing this module is cheap.
"""

import dataclasses
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_inpaint import models
from napari_inpaint.detect import dilate_mask
from napari_inpaint.engine import FillJob
from napari_inpaint.engine.layout import is_dask
from napari_inpaint.engine.reference import _ADJACENT_REACH, ADJACENT
from napari_inpaint.methods import get_method, list_methods
from napari_inpaint.napari.layers import (
    INPAINT,
    OVERLAY_SUFFIX,
    RESULT_SUFFIX,
    SIGMA_SUFFIX,
    Provenance,
    add_mask,
    add_result,
    add_sigma,
    grid_shape,
    layer_data,
    layer_mask,
    reference_data,
)
from napari_inpaint.registry import Method

# What one run fills: every plane of a stack (each on its own), the plane on screen, or 3D volumes.
STACK, PLANE, VOLUME = "stack", "plane", "volume"
SCOPES = (STACK, PLANE, VOLUME)


def plane_of(mask: np.ndarray, plane: tuple[int, ...]) -> np.ndarray:
    """The 2D mask of ``plane`` (leading indices of the image) from a mask of any trailing shape.

    Examples
    --------
    >>> plane_of(np.zeros((4, 5)), (2, 3)).shape, plane_of(np.zeros((6, 4, 5)), (2, 3)).shape
    ((4, 5), (4, 5))
    """
    return mask[plane[len(plane) + 2 - mask.ndim :]]


def adjacent_window(plane: tuple[int, ...], grid: tuple[int, ...]) -> tuple:
    """The index of the planes around ``plane`` on the stack axis that a fill from adjacent planes reads.

    The engine takes each pixel of a plane's reference from the nearest
    planes along the stack axis (the last before the plane's two) that know
    it, up to ``_ADJACENT_REACH`` planes on each side (see
    :mod:`napari_inpaint.engine.reference`): those planes are all a fill of one
    plane reads, whatever its holes.

    Examples
    --------
    >>> adjacent_window((4,), (9, 4, 4))
    (slice(2, 7, None),)
    >>> adjacent_window((0, 0), (2, 9, 4, 4))
    (0, slice(0, 3, None))
    """
    *outer, index = plane
    length = grid[len(plane) - 1]
    return (*outer, slice(max(0, index - _ADJACENT_REACH), min(length, index + _ADJACENT_REACH + 1)))


def current_plane(viewer, image_layer) -> tuple[int, ...]:
    """Indices of the plane on screen along the image's leading (non-plane) axes."""
    position = image_layer.world_to_data(viewer.dims.point)
    leading = grid_shape(image_layer)[:-2]
    return tuple(int(np.clip(np.rint(p), 0, n - 1)) for p, n in zip(position[: len(leading)], leading))


def size_text(size: int) -> str:
    """A file size for people.

    Examples
    --------
    >>> size_text(205669692), size_text(416836)
    ('196 MiB', '0.4 MiB')
    """
    mib = size / 2**20
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def missing_weights(spec: Method) -> list[str]:
    """The weights of ``spec`` that a run would download first."""
    return [name for name in spec.weights if not models.is_cached(name)]


@dataclasses.dataclass(frozen=True)
class LayerFill:
    """One planned inpainting of an image layer (made by :func:`plan_fill`).

    Attributes
    ----------
    image_layer : napari.layers.Image
        The source (never modified).
    job : FillJob
        The engine's job: the layer's data when planned, and the pixels to
        fill (with the scope ``"plane"``, those of the plane on screen only).
    mask : ndarray of bool
        The mask made from the mask layer, of the image's grid or of its trailing planes.
    plane : tuple of int or None
        With scope ``"plane"``: the plane filled; None: every plane.
    provenance : Provenance
        What the result layers record.
    name : str or None
        Name of the result layer; None: ``"<image> inpainted"``, replaced on a rerun.
    overlay : bool
        Also add a Labels layer marking the filled pixels.

    With ``job.uncertainty`` the run also gives the sigma of the fill,
    added as the layer ``"<image> inpainted sigma"`` and written beside a
    file (:func:`napari_inpaint.io.sigma_path`).
    """

    image_layer: Any
    job: FillJob
    mask: np.ndarray
    plane: tuple[int, ...] | None
    provenance: Provenance
    name: str | None
    overlay: bool

    @property
    def method(self) -> Method:
        return self.job.method

    def describe(self) -> str:
        """What the run will fill, in a line.

        For example ``"1,840 px on each of 20 planes: a 2D mask applies to every plane"``.
        """
        grid = self.job.grid_shape
        spatial = self.job.spatial_ndim
        if self.plane is not None:
            where = "plane " + ", ".join(map(str, self.plane))
            text = f"{int(plane_of(self.mask, self.plane).sum()):,} px on {where} (the plane on screen)"
        else:
            units = int(np.prod(grid[: len(grid) - spatial]))
            noun = "volume" if spatial == 3 else "plane"
            shared = self.mask.ndim < len(grid)
            if units == 1:
                text = f"{int(self.mask.sum()):,} px" + (" in 3D" if spatial == 3 else "")
            elif shared and self.mask.ndim == spatial:
                text = (
                    f"{int(self.mask.sum()):,} px on each of {units} {noun}s: "
                    f"a {self.mask.ndim}D mask applies to every {noun}"
                )
            else:
                full = np.broadcast_to(self.mask, grid).reshape(units, -1)
                touched = int(full.any(axis=1).sum())
                text = f"{int(full.sum()):,} px on {touched} of {units} {noun}s"
        missing = missing_weights(self.method)
        if missing:
            size = sum(models.get_model(name).size for name in missing)
            text += f"; downloads {', '.join(missing)} ({size_text(size)}) first"
        return text

    def run(
        self,
        *,
        cancel=None,
        progress: Callable[[float, int], None] | None = None,
        status: Callable[[str], None] | None = None,
    ):
        """Fetch the method's weights, then fill; returns the result (lazy for a dask layer).

        ``status(text)`` is told each stage: "downloading weights: lama
        (196 MiB)", then the engine's ("training the network", "filling
        3/12 (plane 2)"); ``progress`` and ``cancel`` are the engine's.  A
        dask layer's result is computed plane by plane as napari shows it.
        """
        for name in self.method.weights:
            if status is not None and not models.is_cached(name):
                status(f"downloading weights: {name} ({size_text(models.get_model(name).size)})")
            models.fetch(name, progress=progress)
        filled = self.job.run(cancel=cancel, progress=progress, status=status)
        filled, sigma = filled if self.job.uncertainty else (filled, None)
        if self.plane is not None and self.job.lazy:
            # The plane on screen of a dask layer is filled here, off napari's thread (which would compute a
            # lazy plane as it draws it, frozen meanwhile); the other planes stay the layer's, lazily.
            import dask
            import dask.array as da

            result = self.job.image.copy()
            if sigma is None:
                result[self.plane] = np.asarray(filled[self.plane])
            else:
                values, spread = dask.compute(filled[self.plane], sigma[self.plane])  # each crop filled once
                result[self.plane] = values
                sigma = da.zeros(sigma.shape, sigma.dtype, chunks=sigma.chunks)
                sigma[self.plane] = spread
            filled = result
        return filled if sigma is None else (filled, sigma)

    def outcome_text(self) -> str:
        """What the run found out, for the status line: ``auto``'s choice, the calibration of its sigma."""
        found = self.job.outcome
        parts = []
        if "auto" in found:
            choice = ", ".join(f"{kind} → {method}" for kind, method in found["auto"]["choice"].items())
            parts.append(f"auto chose {choice}")
        if "uncertainty" in found:
            calibration = found["uncertainty"]
            parts.append(f"sigma calibrated on {calibration['probe_pixels']:,} probe pixels"
                         + ("" if "notes" not in calibration else f" ({'; '.join(calibration['notes'])})"))
        return "; ".join(parts)

    def invented(self, *, lazy: bool = False):
        """The pixels the fill invents, of the image's grid; ``lazy``: as a dask array, not held in memory."""
        grid = grid_shape(self.image_layer)
        if self.plane is not None:
            return _only_plane(self.mask, self.plane, grid, lazy=lazy)
        if not lazy:
            return self.mask
        import dask.array as da

        return da.broadcast_to(da.from_array(self.mask), grid)

    def add(self, viewer, result):
        """Add the result (and the overlay of filled pixels) to ``viewer``; returns the result layer.

        The result of a multiscale layer is a multiscale layer too (see :func:`pyramid`).
        """
        image = self.image_layer
        result, sigma = result if self.job.uncertainty else (result, None)
        if image.multiscale:
            result = pyramid(list(image.data), result, self.invented(lazy=True))
        made = dataclasses.replace(self.provenance, details={**self.provenance.details, **self.job.outcome})
        layer = add_result(viewer, image, result, made, name=self.name, replace=self.name is None)
        if sigma is not None:
            name = None if self.name is None else f"{image.name}{SIGMA_SUFFIX} ({self.method.name})"
            add_sigma(viewer, image, sigma, made, name=name, replace=self.name is None)
        if self.overlay:
            name = image.name + OVERLAY_SUFFIX
            if self.name is not None:
                name += f" ({self.method.name})"
            add_mask(
                viewer, image, self.invented(), name=name, provenance=made,
                replace=self.name is None,
            )
        return layer

    def outputs(self, path) -> list[Path]:
        """The files :meth:`write` makes at ``path``: the image, with ``overlay`` a mask beside it, with the
        job's ``uncertainty`` its sigma beside it."""
        from napari_inpaint import io

        path, name = Path(path), Path(path).name.lower()
        sigma = [io.sigma_path(path)] if self.job.uncertainty else []
        if not self.overlay or name.endswith(".ome.zarr"):
            return [path, *sigma]
        # A .zarr output is an OME-Zarr image holding the mask when the layer's file is one (read only then).
        like = None if name.endswith((".tif", ".tiff")) else source_file(self.image_layer)
        invented = [] if io.output_format(path, like) == "ome-zarr" else [io.invented_path(path)]
        return [path, *invented, *sigma]

    def write(self, path, *, overwrite: bool = False, cancel=None, progress=None, status=None) -> Path:
        """Fill, and write the whole result into the file ``path``: TIFF, zarr or OME-Zarr, by its suffix.

        Through :func:`napari_inpaint.io.write_image`: a lazy result (a dask
        or multiscale layer) is computed chunk by chunk into the file, each
        crop once, never whole in memory; the output keeps the metadata of
        the file the layer was read from (:func:`source_file`: axes,
        calibration, pyramid levels...), or an OME-Zarr output the layer's
        scale, translation and units, records the provenance of the fill
        and, with ``overlay``, the mask of the invented pixels (inside an
        OME-Zarr output, beside the others: :meth:`outputs`).  Existing
        files are refused before anything is filled, unless ``overwrite``:
        then replaced only once the new ones are complete.  On an error or a
        cancel nothing is left at ``path``.  ``progress`` counts the crops
        filled and the chunks written; ``status`` is told each stage.
        """
        from napari_inpaint import io

        path, image = Path(path), self.image_layer
        like = source_file(image)
        if like is not None and like.path.resolve() == path.resolve():
            raise ValueError(f"layer {image.name!r} is read from {path}: write the result to another file")
        existing = [str(p) for p in self.outputs(path) if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{exist_text(existing)}: choose another name, or allow replacing it")
        stage = []  # once writing: the engine's stages are those of the crops computed for the file

        def told(text: str) -> None:
            if status is not None:
                status(": ".join([*stage, text]))

        lazy = self.job.lazy
        filled = self.run(cancel=cancel, progress=None if lazy else progress, status=told)
        filled, sigma = filled if self.job.uncertainty else (filled, None)
        made = self.provenance
        holes = (self.mask, grid_shape(image)) if self.plane is None else (plane_of(self.mask, self.plane), None)
        details = {"source": image.name, "mask_layer": made.mask_layer, **made.details, **self.job.outcome}
        details.update({} if like is None else {"source_file": like.path.name})
        record = io.provenance(self.method.name, made.parameters, mask=holes[0], shape=holes[1], **details)
        told(f"writing {path.name}")
        stage.append(f"writing {path.name}")
        axes = None
        if like is None:  # a layer of no file: its own calibration, as napari's File > Save keeps it
            from napari_inpaint.napari.files import calibrated_like

            like, axes = calibrated_like(
                path, layer_data(image).shape, rgb=image.rgb, scale=image.scale, translate=image.translate,
                units=image.units, dtype=image.dtype, axis_labels=image.axis_labels,
            )
        written = io.write_image(
            path, filled, like=like, axes=axes, provenance=record, overwrite=overwrite, progress=progress,
            invented=self.invented(lazy=True) if self.overlay else None, cancel=cancel,
        )
        if sigma is not None:
            told(f"writing {io.sigma_path(path).name}")
            io.write_image(
                io.sigma_path(path), sigma, like=like, axes=axes, provenance={**record, "sigma_of": path.name},
                overwrite=overwrite, progress=progress, cancel=cancel,
            )
        return written


def exist_text(paths: list[str]) -> str:
    """That the files ``paths`` exist, in words.

    Examples
    --------
    >>> exist_text(["a.tif"]), exist_text(["a.tif", "a.invented.tif"])
    ('a.tif exists', 'a.tif and a.invented.tif exist')
    """
    return f"{' and '.join(paths)} {'exists' if len(paths) == 1 else 'exist'}"


def source_file(image_layer):
    """The file ``image_layer`` was opened from, as :func:`napari_inpaint.io.read_image` reads it, or None.

    Its pixels are not read (a TIFF lazily), only its metadata; None when the
    layer has no file, a file that ``read_image`` does not read, or a file
    whose highest resolution is not of the layer's shape (e.g. a channel of
    it, split into a layer of its own).
    """
    from napari_inpaint import io

    path = getattr(image_layer.source, "path", None)
    if not path:
        return None
    try:
        image = io.read_image(path, lazy=True)
    except (OSError, ValueError, KeyError, TypeError):  # not a file io reads: written without its metadata
        return None
    return image if tuple(image.data.shape) == tuple(layer_data(image_layer).shape) else None


def pyramid(levels: list, filled, invented) -> list:
    """The levels of the result of a multiscale layer, each as lazy as the source's.

    Level 0 is the ``filled`` highest resolution.  Each coarser level is the
    source's, but for its pixels over ``invented`` pixels (a mask of the
    grid of level 0, as :meth:`LayerFill.invented` gives), which are the
    mean of the fill beneath them: a tile napari shows computes the crops
    under its holes, and reads nothing more than the source's level.
    """
    import dask.array as da

    result = [filled]
    for level in levels[1:]:
        level = level if is_dask(level) else da.from_array(level)
        factors = tuple(max(1, round(n / m)) for n, m in zip(filled.shape, level.shape))
        name = f"inpaint-level-{uuid.uuid4().hex}"  # named: tokenizing would hash the fill's graph
        result.append(level.map_blocks(_FillBeneath(filled, invented, factors), dtype=level.dtype, name=name))
    return result


class _FillBeneath:
    """Computes a block of a coarser level of a result (see :func:`pyramid`).

    The fill is held by this object, not handed to dask as an argument,
    which would make its whole graph a dependency of every block.
    """

    def __init__(self, filled, invented, factors: tuple[int, ...]):
        self.filled, self.invented, self.factors = filled, invented, factors

    def __call__(self, block: np.ndarray, block_info=None) -> np.ndarray:
        grid = self.invented.ndim  # the axes but an RGB one, which is last and not downsampled
        starts = [start for start, _ in block_info[0]["array-location"]]
        region = tuple(slice(s * f, (s + n) * f) for s, n, f in zip(starts, block.shape, self.factors))
        affected = _block_reduce(_read(self.invented, region[:grid]), self.factors[:grid], block.shape[:grid],
                                 False, np.any)
        if not affected.any():
            return block
        where = np.argwhere(affected)
        low, high = where.min(axis=0), where.max(axis=0) + 1  # the box of the affected pixels
        inner = tuple(slice(a, b) for a, b in zip(low, high))
        factors = self.factors
        beneath = tuple(slice((s + a) * f, (s + b) * f) for s, a, b, f in zip(starts, low, high, factors))
        values = _read(self.filled, beneath + region[grid:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the padding beyond the image's edge is NaN
            shape = tuple(high - low) + block.shape[grid:]
            means = _block_reduce(values.astype(np.float64), self.factors, shape, np.nan, np.nanmean)
        if np.issubdtype(block.dtype, np.integer):
            info = np.iinfo(block.dtype)
            means = np.clip(np.rint(means), info.min, info.max)
        out = block.copy()
        chosen = affected[inner].reshape(affected[inner].shape + (1,) * (block.ndim - grid))
        out[inner] = np.where(chosen, means.astype(block.dtype), out[inner])
        return out


def _read(array, region: tuple[slice, ...]) -> np.ndarray:
    """``array[region]`` as NumPy; a dask array's computed in this thread (the caller is a dask task)."""
    part = array[region]
    return part.compute(scheduler="sync") if is_dask(part) else np.asarray(part)


def _block_reduce(values: np.ndarray, factors, shape: tuple[int, ...], pad, reduce) -> np.ndarray:
    """``reduce`` over the blocks of ``factors`` pixels of ``values``, padded with ``pad`` to ``shape`` blocks

    Examples
    --------
    >>> _block_reduce(np.arange(5.0), (2,), (3,), np.nan, np.nanmean).tolist()
    [0.5, 2.5, 4.0]
    """
    widths = [(0, n * f - m) for n, f, m in zip(shape, factors, values.shape)]
    padded = np.pad(values, widths, constant_values=pad)
    split = [size for n, f in zip(shape, factors) for size in (n, f)]
    return reduce(padded.reshape(split), axis=tuple(range(1, 2 * len(shape), 2)))


def reference_details(reference, align: bool) -> dict[str, Any]:
    """What :attr:`Provenance.details` records of a fill's reference (nothing when it had none).

    ``reference`` is what the fill was given: None, ``"adjacent"`` (the
    stack's neighbouring planes), an Image layer or an array.

    Examples
    --------
    >>> reference_details("adjacent", True)
    {'reference': 'adjacent', 'align': True}
    >>> reference_details(None, True)
    {}
    """
    from napari.layers import Layer

    if reference is None:
        return {}
    if isinstance(reference, str):
        return {"reference": reference, "align": align}
    if isinstance(reference, Layer):
        return {"reference": "layer", "reference_layer": reference.name, "align": align}
    return {"reference": "array", "align": align}


def mask_details(mask_layer, *, label: int | None, radius: float) -> dict[str, Any]:
    """What :func:`layer_mask` took from ``mask_layer``, for :attr:`Provenance.details`.

    The label of a Labels layer (``"all"``: every nonzero label) or the
    point radius of a Points layer; nothing for Shapes.
    """
    from napari.layers import Labels, Points

    if isinstance(mask_layer, Labels):
        return {"label": label or "all"}
    if isinstance(mask_layer, Points):
        return {"point_radius": radius}
    return {}


def plan_fill(
    viewer,
    image_layer,
    mask_layer,
    method: str = "biharmonic",
    *,
    label: int | None = None,
    radius: float = 3.0,
    dilate: float = 0,
    scope: str = STACK,
    noise: str | None = None,
    seed: int = 0,
    reference=None,
    align: bool = True,
    new_layer: bool = False,
    overlay: bool = False,
    params: Mapping[str, Any] | None = None,
    uncertainty: bool = False,
) -> LayerFill:
    """Check the settings of one inpainting of a layer and plan it.

    The parameters are those of :func:`inpaint_layer`.

    Raises
    ------
    ValueError, TypeError
        For settings that cannot run (the message says what to change):
        a label the Labels layer does not hold, an empty mask, a scope the
        image or method does not have, a missing reference...
    """
    image_layer = viewer.layers[image_layer] if isinstance(image_layer, str) else image_layer
    mask_layer = viewer.layers[mask_layer] if isinstance(mask_layer, str) else mask_layer
    spec = get_method(method)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(map(repr, SCOPES))}, got {scope!r}")
    grid = grid_shape(image_layer)
    if scope != STACK and len(grid) < 3:
        raise ValueError(f"layer {image_layer.name!r} is a single plane: choose the scope 'whole image'")
    if scope == VOLUME and 3 not in spec.ndims:
        raise ValueError(
            f"{spec.name} fills plane by plane: choose the scope 'every plane of the stack', or a method "
            f"that fills in 3D ({', '.join(m.name for m in list_methods() if 3 in m.ndims)})"
        )
    spatial_ndim = 3 if scope == VOLUME else 2
    mask = layer_mask(mask_layer, image_layer, label=label, radius=radius)
    if dilate:
        mask = dilate_mask(mask, dilate, spatial_ndim=min(spatial_ndim, mask.ndim))
    plane = current_plane(viewer, image_layer) if scope == PLANE else None
    if not (mask.any() if plane is None else plane_of(mask, plane).any()):
        where = "" if plane is None else f" on the plane on screen ({', '.join(map(str, plane))})"
        raise ValueError(f"the mask from layer {mask_layer.name!r} is empty{where}: mark some pixels first")
    data = layer_data(image_layer)
    chosen, given = _reference(viewer, image_layer, spec, scope, reference)
    job = FillJob.create(
        data, mask if plane is None else _only_plane(mask, plane, grid, lazy=is_dask(data)), spec.name,
        params=params, spatial_ndim=spatial_ndim, channel_axis=-1 if image_layer.rgb else None, noise=noise,
        seed=seed, reference=given, align=align, uncertainty=uncertainty,
    )
    details: dict[str, Any] = {"scope": scope, "dilate": dilate, "noise": noise or "none", "seed": seed}
    if plane is not None:
        details["plane"] = list(plane)
    details.update(reference_details(chosen, align))
    details.update(mask_details(mask_layer, label=label, radius=radius))
    made = Provenance(image_layer.name, INPAINT, method=spec.name, parameters=dict(job.params),
                      mask_layer=mask_layer.name, details=details)  # fmt: skip
    name = f"{image_layer.name}{RESULT_SUFFIX} ({spec.name})" if new_layer else None
    return LayerFill(image_layer, job, mask, plane, made, name, overlay)


def _only_plane(mask: np.ndarray, plane: tuple[int, ...], grid: tuple[int, ...], *, lazy: bool):
    """The mask of the image's grid that holds the holes of ``plane`` only (a dask array for a lazy image).

    The engine then fills that plane as it would within the whole stack,
    reading the neighbouring planes where the reference is ``"adjacent"``.
    """
    if not lazy:
        only = np.zeros(grid, bool)
        only[plane] = plane_of(mask, plane)
        return only
    import dask.array as da

    only = da.zeros(grid, bool, chunks=(1,) * (len(grid) - 2) + grid[-2:])
    only[plane] = plane_of(mask, plane)
    return only


def _reference(viewer, image_layer, spec: Method, scope: str, reference) -> tuple[Any, Any]:
    """The reference chosen (None, ADJACENT, a layer or an array), and what the engine is given for it."""
    from napari.layers import Layer

    if isinstance(reference, str) and reference != ADJACENT:  # a layer's name
        reference = viewer.layers[reference]
    if reference is None:
        if spec.needs_reference:
            raise ValueError(
                f"{spec.name} fills from reference data: choose the reference 'adjacent planes' (a stack; "
                "reference='adjacent') or an image layer of the same field"
            )
        return None, None
    if isinstance(reference, str):
        if scope == VOLUME:
            raise ValueError(
                "adjacent planes are the reference of a stack filled plane by plane: choose the scope "
                "'every plane of the stack' or 'current plane'"
            )
        return reference, reference
    if isinstance(reference, Layer):
        return reference, reference_data(reference, image_layer)
    return reference, np.asarray(reference)


def inpaint_layer(
    viewer,
    image_layer,
    mask_layer,
    method: str = "biharmonic",
    *,
    label: int | None = None,
    radius: float = 3.0,
    dilate: float = 0,
    scope: str = "stack",
    noise: str | None = None,
    seed: int = 0,
    reference=None,
    align: bool = True,
    new_layer: bool = False,
    overlay: bool = False,
    params: dict[str, Any] | None = None,
    uncertainty: bool = False,
):
    """Inpaint a napari image layer with a mask layer and add the result, exactly as the Inpaint widget does.

    The one-call console helper, with the widget's settings as keywords:
    the mask is built from ``mask_layer`` (:func:`~napari_inpaint.napari.layers.layer_mask`, then
    dilated), the image filled with :func:`napari_inpaint.inpaint` and the
    result added (or replaced) as ``"<image> inpainted"`` with the source's
    calibration and a :class:`~napari_inpaint.napari.layers.Provenance` of every setting.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
    image_layer, mask_layer : napari layer or str
        Layers, or their names in ``viewer.layers``.
    method : str
        Inpainting method.
    label : int, optional
        Only this label of a Labels mask (default: every nonzero label); a
        label the layer does not hold is an error naming those it holds.
    radius : float
        Radius of Points in pixels.
    dilate : float
        Grow the mask by this many pixels, within each plane (each volume
        with ``scope="volume"``).
    scope : {"stack", "plane", "volume"}
        Fill every plane of a stack on its own, only the plane on screen
        (the other planes are copied), or whole 3D volumes.
    noise : {None, "gaussian", "poisson"}
        Noise like the surroundings' added to the fill.
    seed : int
        Seed of the noise and of stochastic methods.
    reference : None, "adjacent", napari layer, str or array_like
        Reference data for methods that use it (``guided``):
        ``"adjacent"`` (the neighbouring planes of a stack), an Image layer
        or its name (see :func:`~napari_inpaint.napari.layers.reference_data`), or an array (see
        :func:`napari_inpaint.inpaint`).
    align : bool
        Shift the reference onto each plane first.
    new_layer : bool
        Add a new layer ``"<image> inpainted (<method>)"`` instead of
        replacing the last result.
    overlay : bool
        Also add a Labels layer ``"<image> inpainted pixels"`` marking the
        filled pixels.
    params : dict, optional
        The method's parameters, e.g. ``{"patch_size": 11}`` for ``exemplar``
        or ``{"radius": 9}`` for ``telea`` (apart from the keywords above,
        which are the widget's settings: ``radius`` is the Points radius).
    uncertainty : bool
        Also add ``"<image> inpainted sigma"``: per filled pixel, the
        standard deviation of its expected error, calibrated on holes hidden
        in the image's known pixels (``return_uncertainty`` of
        :func:`napari_inpaint.inpaint`).

    Returns
    -------
    napari.layers.Image

    Examples
    --------
    In napari's console::

        from napari_inpaint import inpaint_layer
        inpaint_layer(viewer, "damaged cell", "damage", "biharmonic", label=3, dilate=2)
        inpaint_layer(viewer, "z-stack", "debris", "guided", reference="adjacent", scope="plane")
        inpaint_layer(viewer, "cell", "scratches", "telea", params={"radius": 9})
        inpaint_layer(viewer, "cell", "scratches", "auto", uncertainty=True)
    """
    planned = plan_fill(
        viewer, image_layer, mask_layer, method, label=label, radius=radius, dilate=dilate, scope=scope,
        noise=noise, seed=seed, reference=reference, align=align, new_layer=new_layer, overlay=overlay,
        params=params, uncertainty=uncertainty,
    )
    return planned.add(viewer, planned.run())
