"""Many images in one command, on this machine or a cluster: inputs, paired masks, outputs, failures.

A command given several images, or a folder of them, writes its outputs into
a folder under the inputs' names.  It keeps going past a file that fails and
reports every failure at the end.  Outputs are moved into place only once
complete, so an output that exists is complete: running the same command
again after an interruption skips the files already done (``--overwrite``
makes them again).

``--workers N`` starts a ``distributed.LocalCluster`` for the command and
``--scheduler ADDRESS`` connects to a running cluster; every file is then
computed there, one after the other, each spread over the workers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from napari_inpaint.cli._errors import Refused, in_flags
from napari_inpaint.cli._files import IMAGE_SUFFIXES, image_stem, is_image, is_store


@dataclass(frozen=True)
class Job:
    """One image to process: where it is, where its result goes, and the mask given for it (if any)."""

    source: Path
    output: Path
    mask: Path | None = None


def is_batch(paths: Sequence[Path]) -> bool:
    """Whether the inputs are several images (several paths, or a folder of images), not one file."""
    return len(paths) > 1 or (paths[0].is_dir() and not is_store(paths[0]))


def images_in(paths: Sequence[Path]) -> list[Path]:
    """The images named by ``paths``: files and zarr stores as given, and the images directly in folders."""
    images = []
    for path in paths:
        if path.is_dir() and not is_store(path):
            found = sorted(entry for entry in path.iterdir() if is_image(entry))
            if not found:
                kinds = ", ".join(IMAGE_SUFFIXES)
                raise Refused(f"the folder {path} holds no images ({kinds} files or zarr stores)")
            images += found
        else:
            images.append(path)  # a missing or unreadable file fails on its own, in the report
    return images


def output_folder(output: Path, inputs: Sequence[Path], mask_dir: Path | None = None) -> Path:
    """Check (and create) the folder that several outputs go into.

    Refused when it is a file, when it holds an input (an image, the mask,
    the reference) or is the folder of the masks (an output could replace
    them, or pass for a finished one), or when its name looks like a file's.
    """
    if output.exists() and (not output.is_dir() or is_store(output)):
        raise Refused(f"several images are written into a folder, and {output} is not one; give a folder")
    if output.exists():
        for path in inputs:
            if path.parent.exists() and os.path.samefile(path.parent, output):
                raise Refused(f"the output folder {output} holds the input {path}; write into another folder")
        if mask_dir is not None and mask_dir.exists() and os.path.samefile(mask_dir, output):
            raise Refused(f"the output folder {output} is the folder of the masks; write into another folder")
        return output
    if output.suffix.lower() in (*IMAGE_SUFFIXES, ".zarr"):
        raise Refused(
            f"several images are written into a folder, and -o {output} names a file; give a folder, "
            f"e.g. -o {output.with_suffix('')}"
        )
    if not output.parent.is_dir():
        raise Refused(f"the folder {output.parent} of the output does not exist")
    output.mkdir()
    return output


def check_unique(jobs: Sequence[Job]) -> None:
    """Refuse inputs whose outputs would have the same name (``a/x.tif`` and ``b/x.tif``)."""
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise Refused(
                f"{seen[job.output]} and {job.source} would both be written to {job.output}; "
                "process them into separate folders"
            )
        seen[job.output] = job.source


def paired_mask(source: Path, mask_dir: Path) -> Path:
    """The mask of ``source`` in ``mask_dir``: the same file name, else the same name in another format."""
    exact = mask_dir / source.name
    if exact.exists():
        return exact
    if not mask_dir.is_dir():
        raise Refused(f"the mask folder {mask_dir} does not exist")
    stem = image_stem(source)
    found = sorted(path for path in mask_dir.iterdir() if is_image(path) and image_stem(path) == stem)
    if len(found) != 1:
        several = f" (several: {', '.join(path.name for path in found)})" if found else ""
        raise Refused(f"no single mask for {source.name} in {mask_dir}{several}: expected {exact}")
    return found[0]


def run_batch(
    jobs: Sequence[Job], work: Callable[[Job, str], None], *, overwrite: bool,
    outputs_of: Callable[[Job], list[Path]], verb: str = "wrote",
) -> int:
    """Run ``work(job, label)`` for each job; skip the done ones; report the failures; return the exit status.

    A job is done when all its outputs exist (unless ``overwrite``).  Any
    error of one job (an unreadable file, a mask that does not fit, a fill
    that fails) is reported and the next job runs; Ctrl-C stops the batch.
    The status is 0 when no job failed, else 1.
    """
    failures: list[tuple[Path, str]] = []
    skipped = 0
    for number, job in enumerate(jobs, start=1):
        expected = outputs_of(job)
        present = [path for path in expected if path.exists()]
        if present and not overwrite:
            if len(present) == len(expected):
                skipped += 1
                print(f"skipped {job.source}: {job.output} exists", file=sys.stderr)
                continue
            absent = ", ".join(str(path) for path in expected if path not in present)
            reason = f"{present[0]} exists but not {absent}; pass --overwrite to redo it"
            failures.append((job.source, reason))
            continue
        try:
            work(job, f"[{number}/{len(jobs)}] {job.source.name}")
        except Exception as exc:  # one bad file must not stop the others: it is reported at the end
            failures.append((job.source, _reason(exc).removeprefix(f"{job.source}: ")))
            print(f"failed {job.source}: {failures[-1][1]}", file=sys.stderr)
    done = len(jobs) - skipped - len(failures)
    print(f"{verb} {done} of {len(jobs)} images" + (f", skipped {skipped} already done" if skipped else ""),
          file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} of {len(jobs)} images failed:", file=sys.stderr)
        for source, reason in failures:
            print(f"  {source}: {reason}", file=sys.stderr)
        return 1
    return 0


def _reason(error: Exception) -> str:
    """One line for a failed job: the message of an error the user can act on, else its type as well."""
    message = in_flags(str(error).strip().splitlines()[0]) if str(error).strip() else ""
    if isinstance(error, (ValueError, TypeError, OSError, Refused, ImportError)) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@contextlib.contextmanager
def cluster(workers: int | None, scheduler: str | None, dashboard: bool = False) -> Iterator[bool]:
    """Within the block, dask computes on a new ``LocalCluster`` of ``workers`` processes, or on the cluster
    at ``scheduler``; without either, on local threads.  Yields whether a cluster is used.

    The ``LocalCluster`` serves its dashboard only with ``dashboard`` (whose address is printed).
    """
    if dashboard and workers is None:
        raise Refused("--dashboard shows the cluster that --workers starts; a cluster given by --scheduler "
                      "serves its own (at its scheduler's address, port 8787 by default)")
    if dashboard and importlib.util.find_spec("bokeh") is None:
        raise Refused('--dashboard needs bokeh: pip install "bokeh>=3.1"')
    if workers is None and scheduler is None:
        yield False
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise Refused(
            '--workers and --scheduler run on dask.distributed: pip install "napari-inpaint[distributed]"'
        ) from None
    if workers is not None:
        # One thread per worker: the fills use their own threads (BLAS, PyTorch).  The workers log
        # nothing: the command reports the errors of its work (a file's failure), and the workers' logs
        # add tracebacks of connections cut as the cluster closes, after a Ctrl-C most of all.
        # Without a dashboard the scheduler's web server (it serves more than the dashboard) takes any free
        # port of this machine only: asking for none would still take 8787, and warn when another cluster
        # holds it.  With one, that warning is replaced by the address printed.
        with _started_deaf_to_ctrl_c(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Port .* is already in use")
            local = LocalCluster(n_workers=workers, threads_per_worker=1, silence_logs=logging.CRITICAL,
                                 dashboard_address=":8787" if dashboard else "127.0.0.1:0",
                                 scheduler_kwargs={"dashboard": dashboard})
        if dashboard:
            print(f"dashboard: {local.dashboard_link}", file=sys.stderr)
        with local, Client(local):
            yield True
        return
    try:
        client = Client(scheduler)
    except OSError as exc:  # distributed's time-out is an OSError too
        raise Refused(f"cannot reach the scheduler at {scheduler}: {exc}") from None
    with client:
        yield True


@contextlib.contextmanager
def _started_deaf_to_ctrl_c() -> Iterator[None]:
    """Processes started within the block ignore Ctrl-C (SIGINT), and so do the processes they start.

    A terminal sends Ctrl-C to every process of the command: the workers of
    its LocalCluster would die at once, each with a traceback, while the
    command cancels their work and closes them.  An ignored signal is the one
    disposition a new process inherits; Ctrl-C is ignored meanwhile (the
    start takes seconds) and works again after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread handles signals
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
