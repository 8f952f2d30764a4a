"""The in-memory executor: a job's units filled one after the other into a copy of a NumPy image."""

from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.engine.hooks import Hooks
from napari_inpaint.engine.preparation import prepare
from napari_inpaint.engine.unit import fill_unit, known_range, plan_units, read_unit, unit_reads

if TYPE_CHECKING:
    from napari_inpaint.engine.job import FillJob


def run(job: "FillJob", hooks: Hooks) -> np.ndarray:
    """The filled image: a new array of the image's shape and dtype, only its holes changed."""
    output = np.array(job.image, copy=True)
    units = plan_units(job)
    if not units:
        return output
    hooks.plan(len(units), preparation=job.method.prepare is not None)
    prepared = prepare(job, hooks)
    written = job.channels_last(output)  # a view: writing into it writes the result
    source = job.channels_last(job.image)
    mask = job.mask_grid
    arrays = {"image": job.image, "mask": mask, "reference": job.reference_array}
    limits: dict[tuple, tuple] = {}  # each plane's known range, computed when a unit of it is clipped first
    for unit in units:
        hooks.check()
        if job.clip:
            for plane in set(unit.planes) - set(limits):
                limits[plane] = known_range(source[plane], mask[plane])
        reads = unit_reads(job, unit)
        data = read_unit(reads, lambda name, region: arrays[name][region])
        for plane, coordinates, values in fill_unit(
            job, unit, reads, data, [limits[p] for p in unit.planes] if job.clip else None, prepared, hooks
        ):
            written[plane][coordinates] = values
    return output

