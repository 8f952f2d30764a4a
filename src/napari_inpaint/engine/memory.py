"""The in-memory executor: a job's units filled one after the other into a copy of a NumPy image."""

from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.engine.hooks import Hooks
from napari_inpaint.engine.preparation import calibrate, prepare
from napari_inpaint.engine.unit import fill_in_memory, plan_units

if TYPE_CHECKING:
    from napari_inpaint.engine.job import FillJob


def run(job: "FillJob", hooks: Hooks) -> tuple[np.ndarray, np.ndarray | None]:
    """The filled image (a new array of the image's shape and dtype, only its holes changed) and, for a job
    with ``uncertainty``, the sigma of its pixels (float32, 0 on known pixels)."""
    units = plan_units(job)
    if not units:
        return np.array(job.image, copy=True), np.zeros(job.image.shape, np.float32) if job.uncertainty else None
    hooks.plan(len(units), preparation=job.method.prepare is not None or job.uncertainty)
    prepared = prepare(job, hooks)
    calibration = calibrate(job, hooks, prepared)
    return fill_in_memory(job, units, prepared, hooks, calibration)
