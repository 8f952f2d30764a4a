"""What a job does once before any fill: a method's preparation (training a network, choosing among
methods on probes) with its Stack, and the calibration of the fill's uncertainty on probes.

Both executors run them the same way, in the caller's thread before any fill,
with their share of the progress bar, their status and cancel: a lazy result
is prepared when it is made, so that its graph (on a cluster too) only holds
the prepared values.
"""

import functools
import inspect
from collections.abc import Callable

import numpy as np

from napari_inpaint.engine import probes
from napari_inpaint.engine.calibration import Calibration
from napari_inpaint.engine.planning import Window
from napari_inpaint.engine.reference import adjacent_planes
from napari_inpaint.engine.unit import Unit, reference_of
from napari_inpaint.methods import get_method
from napari_inpaint.registry import Stack


def stack_of(job, check: Callable[[], None]) -> Stack:
    """The :class:`~napari_inpaint.registry.Stack` a preparation sees for ``job``.

    Its planes are a read-only view of the image, channels last (a dask
    array stays lazy: the method reads what it needs); its masks are read
    into memory; its reference, when the job has one, gives each plane's
    aligned and complete reference, built as the fills' are.
    """
    planes = job.channels_last(job.image).reshape((-1, *job.spatial_shape, job.channels))
    if isinstance(planes, np.ndarray):
        planes = planes.view()
        planes.flags.writeable = False
    masks = np.broadcast_to(np.asarray(job.mask), job.grid_shape).reshape((-1, *job.spatial_shape))
    reference = None
    if job.reference is not None:
        whole = Window(tuple(slice(0, n) for n in job.spatial_shape))
        arrays = {"image": job.image, "mask": job.mask_grid, "reference": job.reference_array}

        def read(name: str, region: tuple) -> np.ndarray:  # a region of a dask array is computed
            return np.asarray(arrays[name][region])

        def reference(index: int) -> np.ndarray:
            plane = tuple(int(i) for i in np.unravel_index(index, job.batch_shape))
            return reference_of(job, Unit(0, (plane,), whole), read, check)

    return Stack(planes, masks, reference)


def prepare(job, hooks) -> object:
    """Run the method's preparation once for ``job`` (None for a method without one)."""
    spec = job.method
    if spec.prepare is None:
        return None
    taken = inspect.signature(spec.prepare).parameters
    keywords = {name: value for name, value in job.params.items() if name in taken}
    if "status" not in taken:
        hooks.say(f"preparing {spec.name}")
    stack = stack_of(job, hooks.check)

    def run(check: Callable[[], None], progress: Callable | None) -> object:
        supplied = {
            "rng": np.random.default_rng([job.seed, 0]), "check": check, "progress": progress, "status": hooks.status,
            "adjacent": functools.partial(adjacent_planes, align=job.align),
        }
        if "probes" in taken:
            supplied["probes"] = _prober(job, check)
        return spec.prepare(stack, **keywords, **{k: v for k, v in supplied.items() if k in taken})

    hooks.check()
    prepared = hooks.call(run, hooks.preparing())
    job.outcome.update(getattr(prepared, "provenance", None) or {})
    return prepared


def _prober(job, check: Callable[[], None]) -> Callable:
    """The ``probes(method, spatial_ndim=None, prepared=None)`` a preparation gets: the errors of ``method``
    (its default parameters, or their cheaper ``Param.probe`` values; ``prepared`` its preparation's result)
    on probes hidden in the job's known pixels, per kind of hole (placed once per call)."""
    windows: list = []

    def errors(
        method: str, spatial_ndim: int | None = None, prepared=None
    ) -> dict[str, tuple[float, int, np.ndarray, np.ndarray]]:
        if not windows:
            windows.append(probes.place(job, np.random.default_rng([job.seed, 1]), scaled=False))
        spec = get_method(method)
        params = spec.resolve({p.name: p.probe for p in spec.params if p.probe is not None})
        return probes.fill_probes(job, windows[0], method, params, prepared, check, spatial_ndim).mse()

    return errors


def calibrate(job, hooks, prepared) -> Calibration | None:
    """The calibration of ``job``'s uncertainty (None when the job does not ask for one): its own fill of
    probes placed apart from any a preparation chose on, and the errors there."""
    if not job.uncertainty:
        return None
    hooks.say("measuring the fill's errors on probes")
    hooks.check()
    progress = hooks.preparing()

    def measure(check: Callable[[], None], _progress) -> Calibration:
        windows = probes.place(job, np.random.default_rng([job.seed, 2]))
        found = probes.fill_probes(job, windows, job.method.name, job.params, prepared, check)
        return Calibration.fit(found.errors, found.distance, found.scale)

    calibration = hooks.call(measure, None)
    if progress is not None:
        progress(1, 1)
    job.outcome["uncertainty"] = calibration.provenance
    return calibration
