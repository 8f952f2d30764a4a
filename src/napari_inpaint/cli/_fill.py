"""The commands that process image files: ``fill`` (inpaint them) and ``detect`` (write masks of bad pixels).

One image and one output file, or many images (files, folders) into an
output folder (see :mod:`napari_inpaint.cli._batch`).  Images are read and
written through :mod:`napari_inpaint.io`, so outputs keep the input's
metadata and record how they were made; a lazy image (zarr, OME-Zarr, a
large TIFF, any TIFF on a cluster) is filled crop by crop as its output is
written, on the cluster when there is one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from napari_inpaint.cli._batch import (
    Job,
    check_unique,
    cluster,
    images_in,
    is_batch,
    output_folder,
    paired_mask,
    run_batch,
)
from napari_inpaint.cli._commands import no_reference, reference_file
from napari_inpaint.cli._detection import KINDS, Detection
from napari_inpaint.cli._files import (
    Refused,
    check_format,
    check_output,
    check_storable,
    invented_beside,
    open_image,
    open_mask,
    read_image,
    write_image,
)
from napari_inpaint.cli._progress import progress_bar
from napari_inpaint.cli._values import method_named, parse_params

if TYPE_CHECKING:
    from napari_inpaint.io import Image
    from napari_inpaint.registry import Method


def fill(args: argparse.Namespace) -> int:
    method = method_named(args.method)
    # Validate before reading anything: a typo should not cost the reading of a large stack.
    params = method.resolve(parse_params(method, args.param))
    if method.needs_reference and args.reference is None:
        raise ValueError(no_reference(method.name, "--reference adjacent"))
    reference_path = reference_file(args)
    detection = Detection.from_args(args)
    if args.mask is None and args.mask_dir is None and detection is None:
        raise ValueError(
            "say which pixels are bad: --mask MASK, --mask-dir DIR (masks named like the images), or "
            f"--detect KIND ({', '.join(KINDS)}; see 'napari-inpaint fill --help')"
        )
    given = tuple(path for path in (args.mask, reference_path) if path is not None)
    if is_batch(args.images):
        images = [path for path in images_in(args.images) if not _any_same(path, given)]
        folder = output_folder(args.output, [*images, *given], args.mask_dir)
        jobs = [Job(image, folder / image.name, args.mask) for image in images]
        check_unique(jobs)
    else:
        source = args.images[0]
        mask = args.mask if args.mask_dir is None else paired_mask(source, args.mask_dir)
        jobs = [Job(source, args.output, mask)]
        inputs = tuple(path for path in (source, mask, reference_path) if path is not None)
        check_output(args.output, args.overwrite, inputs=inputs, file_name="filled.tif",
                     beside=_beside(args, jobs[0]))
        check_format(args.output)
    if detection is not None:
        detection.prepare()
    reference = read_image(reference_path) if reference_path else args.reference
    with cluster(args.workers, args.scheduler, args.dashboard) as on_cluster:
        work = partial(_fill_one, args=args, method=method, params=params, detection=detection,
                       reference=reference, on_cluster=on_cluster)
        if not is_batch(args.images):
            work(jobs[0], method.name)
            return 0
        return run_batch(jobs, work, overwrite=args.overwrite, outputs_of=partial(_outputs, args))


def _any_same(path: Path, others: tuple[Path, ...]) -> bool:
    """Whether ``path`` is one of ``others`` (a folder's mask or reference is no image to fill)."""
    return any(other.exists() and path.exists() and os.path.samefile(path, other) for other in others)


def _outputs(args: argparse.Namespace, job: Job) -> list[Path]:
    return [job.output, *_beside(args, job)]


def _beside(args: argparse.Namespace, job: Job) -> tuple[Path, ...]:
    """The files written beside the output of ``job``: its mask of invented pixels (``--invented``) and its
    uncertainty (``--uncertainty``)."""
    from napari_inpaint.io import sigma_path

    invented = invented_beside(job.output, job.source) if args.invented else None
    sigma = sigma_path(job.output) if args.uncertainty else None
    return tuple(path for path in (invented, sigma) if path is not None)


def _fill_one(job: Job, label: str, *, args: argparse.Namespace, method: Method, params: dict,
              detection: Detection | None, reference, on_cluster: bool) -> None:
    """Fill one image into ``job.output``: read, find or read its mask, fill, write with provenance."""
    import numpy as np

    from napari_inpaint.engine import FillJob
    from napari_inpaint.io import provenance

    source = open_image(job.source, cluster=on_cluster)
    check_storable(job.output, source.data.dtype, source.data.shape)
    mask_path = job.mask
    if mask_path is None and args.mask_dir is not None:
        mask_path = paired_mask(job.source, args.mask_dir)  # in a batch, a missing mask fails its image only
    mask, found = _mask(source, mask_path, detection, args, label, on_cluster)
    # The file's channel axis counts unless the mask has the image's every axis (one mask per channel).
    channel_axis = args.channel_axis
    if channel_axis is None and np.ndim(mask) < source.data.ndim:
        channel_axis = source.channel_axis
    fill_job = FillJob.create(
        source.data, mask, method.name, params=params, channel_axis=channel_axis, spatial_ndim=args.spatial_ndim,
        noise=args.noise, seed=args.seed, reference=reference, align=args.align, uncertainty=args.uncertainty,
    )
    # The crops of a lazy fill on this machine's threads stop at their next check once this is set, on
    # Ctrl-C or an error, instead of running on after the output is abandoned (a cluster cancels its own).
    stop = threading.Event() if fill_job.lazy and not on_cluster else None
    with progress_bar(label) as progress, _set_on_error(stop):
        result = fill_job.run(progress=None if fill_job.lazy else progress, cancel=stop)
        result, sigma = result if args.uncertainty else (result, None)
        grid = fill_job.grid_shape
        details = {"source": job.source.name, "spatial_ndim": args.spatial_ndim, "seed": args.seed}
        details.update({key: value for key, value in (
            ("mask_file", mask_path and mask_path.name), ("detected", found), ("noise", args.noise),
            ("reference", _reference_name(args)),
        ) if value is not None})
        details.update(fill_job.outcome)  # what the method's preparation found, e.g. learned's held-out check
        made = provenance(method.name, fill_job.params, mask=mask, shape=grid, **details)
        invented = _invented(args, job, mask, grid)
        write_image(job.output, result, like=source, provenance=made, invented=invented,
                    overwrite=args.overwrite, progress=progress if fill_job.lazy else None)
        if sigma is not None:
            from napari_inpaint.io import sigma_path

            write_image(sigma_path(job.output), sigma, like=source, provenance={**made, "sigma_of": job.output.name},
                        overwrite=args.overwrite, progress=progress if fill_job.lazy else None)
    print(f"wrote {' and '.join(map(str, (job.output, *_beside(args, job))))}", file=sys.stderr)


@contextlib.contextmanager
def _set_on_error(event: threading.Event | None) -> Iterator[None]:
    """Set ``event`` when the block raises (Ctrl-C included)."""
    try:
        yield
    except BaseException:
        if event is not None:
            event.set()
        raise


def _invented(args: argparse.Namespace, job: Job, mask, grid: tuple[int, ...]):
    """The mask of invented pixels to write with ``--invented``, or None.

    Beside the output, the mask as it is; inside an OME-Zarr output, a
    label image of the image's shape (a mask of one plane stands for every
    plane).
    """
    import numpy as np

    if not args.invented or invented_beside(job.output, job.source) or np.shape(mask) == grid:
        return mask if args.invented else None
    import dask.array as da

    return da.broadcast_to(da.asarray(mask), grid)  # lazily: one plane is held, however many planes


def _mask(source: Image, mask_path: Path | None, detection: Detection | None, args: argparse.Namespace,
          label: str, on_cluster: bool):
    """The mask of ``source``: the file's, the detected one, or both together; and what was detected."""
    import numpy as np

    given = None if mask_path is None else open_mask(mask_path, cluster=on_cluster)
    if detection is None:
        return given, None
    channel_axis = _channel_axis(args, source)
    with progress_bar(f"{label}: detecting") as progress:
        detected = detection.find(source.data, channel_axis=channel_axis, spatial_ndim=args.spatial_ndim,
                                  progress=progress)
    print(f"{source.path}: {detection.report(detected, source.path, filling=True)}", file=sys.stderr)
    if given is None:
        return detected, detection.describe()
    try:
        np.broadcast_shapes(np.shape(given), detected.shape)
    except ValueError:
        raise ValueError(
            f"the mask {mask_path} of shape {np.shape(given)} does not fit the bad pixels found in "
            f"{source.path} (shape {detected.shape}); give a mask of that shape or of its planes"
        ) from None
    return np.logical_or(given != 0, detected), detection.describe()


def _channel_axis(args: argparse.Namespace, source: Image) -> int | None:
    """The axis of ``source`` holding channels, for the detectors: ``--channel-axis``, else the file's."""
    if args.channel_axis is None:
        return source.channel_axis
    ndim = source.data.ndim
    if not -ndim <= args.channel_axis < ndim:
        raise ValueError(f"--channel-axis {args.channel_axis} is out of range for {source.path}, which has {ndim} "
                         f"axes (shape {source.data.shape})")
    return args.channel_axis


def _reference_name(args: argparse.Namespace) -> str | None:
    path = reference_file(args)
    return args.reference if path is None else path.name


def detect(args: argparse.Namespace) -> int:
    detection = Detection.from_args(args)
    if detection is None:
        kinds = ", ".join(KINDS)
        raise ValueError(f"say what to find: --detect KIND ({kinds}), --above VALUE or --below VALUE")
    if is_batch(args.images):
        images = images_in(args.images)
        folder = output_folder(args.output, images)
        jobs = [Job(image, folder / _mask_name(image)) for image in images]
        check_unique(jobs)
    else:
        jobs = [Job(args.images[0], args.output)]
        check_output(args.output, args.overwrite, inputs=(args.images[0],), file_name="mask.tif")
        check_format(args.output)
        if args.output.suffix.lower() in (".jpg", ".jpeg"):
            raise Refused(f"JPEG is lossy and would blur the mask; write {args.output.with_suffix('.png')}")
    detection.prepare()
    work = partial(_detect_one, args=args, detection=detection)
    if not is_batch(args.images):
        work(jobs[0], "detect")
        return 0
    return run_batch(jobs, work, overwrite=args.overwrite, outputs_of=lambda job: [job.output],
                     verb="wrote the masks of")


def _mask_name(image: Path) -> str:
    """The file name of the mask of ``image`` (a pairing by name finds it): the image's, a JPEG's as PNG."""
    return image.with_suffix(".png").name if image.suffix.lower() in (".jpg", ".jpeg") else image.name


def _detect_one(job: Job, label: str, *, args: argparse.Namespace, detection: Detection) -> None:
    """Write the mask of the bad pixels of one image (0 and 255), with the image's metadata where it fits."""
    import numpy as np

    from napari_inpaint.io import provenance

    source = open_image(job.source)
    channel_axis = _channel_axis(args, source)
    with progress_bar(label) as progress:
        mask = detection.find(source.data, channel_axis=channel_axis, spatial_ndim=args.spatial_ndim,
                              progress=progress)
    whole = mask.ndim == source.data.ndim
    axes = source.axes if whole else "".join(
        letter for i, letter in enumerate(source.axes) if i != channel_axis % source.data.ndim
    )
    report = detection.report(mask, job.source, filling=False)
    made = provenance("detect", detection.describe(), source=job.source.name, flagged_pixels=int(mask.sum()))
    write_image(job.output, mask.astype(np.uint8) * np.uint8(255), like=source if whole else None,
                axes=axes or None, provenance=made, overwrite=args.overwrite)
    print(f"{job.source}: {report}; wrote {job.output}", file=sys.stderr)
