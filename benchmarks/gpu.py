#!/usr/bin/env python
"""The GPU paths end to end: seconds per call on CUDA, and agreement of CUDA with the CPU.

Usage (on a machine with an NVIDIA GPU; under 5 minutes)::

    python benchmarks/gpu.py --out docs/gpu-benchmark.md
    python benchmarks/gpu.py --device cpu --quick     # checks the script where there is no GPU

Every case runs through :func:`napari_inpaint.inpaint`, so the figures
include the engine (crops, normalisation, padding, compositing), not only the
network:

* ``tv`` (Chambolle-Pock in PyTorch), ``learned`` (training once per call, a
  fixed number of steps so that both devices do the same work), ``dip``
  (a fixed number of iterations);
* ``lama`` and ``migan``: stand-in TorchScript networks of the real ones' size
  and cost (``bench_models.py`` builds them; real weights are used when they
  are cached), in float32 and with ``fp16=True`` (CUDA autocast).

Each method fills an RGB image of 512² and 2048² (a debris hole of a tenth of
the side, plus scattered strokes at 2048²); the time is the median of
``--repeats`` calls after a warm-up call.  Agreement is measured at 512²: the
largest difference between the CUDA and the CPU fill over the hole, in
percent of the image's range, against the tolerance stated per method (the
training methods draw the same windows but their floating-point sums differ,
so they are compared by hole error against the truth instead).
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_models

from napari_inpaint import inpaint, masks, models

# method -> (parameters, how CPU and CUDA are compared, tolerance in % of the range)
CASES = {
    "tv": ({"iterations": 300, "tol": 0.0}, "pixels", 0.5),
    "learned": ({"steps": 40, "seconds": 0, "width": 16}, "hole error", 1.0),
    "dip": ({"iterations": 50, "width": 16}, "hole error", 2.0),
    "lama": ({}, "pixels", 0.5),
    "migan": ({}, "pixels", 0.5),
}
FP16 = ("lama", "migan")
FP16_TOLERANCE = 3.0  # % of the range: half precision keeps about 3 significant digits


def _image(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB float32 image in [0, 1] and its holes (a blob, and strokes at the larger size)."""
    from skimage import data
    from skimage.transform import resize

    image = resize(data.astronaut() / 255.0, (size, size, 3), order=1, anti_aliasing=True).astype(np.float32)
    mask = masks.debris((size, size), size / 20, seed=seed, center=(size / 2, size / 2))
    if size > 512:
        mask |= masks.strokes((size, size), 0.03, seed=seed)
    return image, mask


def _seconds(image, mask, method: str, repeats: int, **params) -> tuple[float, np.ndarray]:
    filled = inpaint(image, mask, method, seed=0, **params)  # warm-up: loads, compiles, allocates
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        filled = inpaint(image, mask, method, seed=0, **params)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), filled


def _agreement(how: str, cpu: np.ndarray, gpu: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Percent of the range: the largest pixel difference, or the difference of the two hole errors."""
    span = float(truth.max() - truth.min())
    if how == "pixels":
        return 100 * float(np.abs(cpu[mask] - gpu[mask]).max()) / span
    cpu_error, gpu_error = (float(np.abs(out[mask] - truth[mask]).mean()) for out in (cpu, gpu))
    return 100 * abs(cpu_error - gpu_error) / span


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="the device to time (cuda, cuda:1, mps, or cpu)")
    parser.add_argument("--quick", action="store_true", help="512² only, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run on a machine with a GPU, or pass --device cpu to check the script")
        return 2
    name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "CPU"
    header = (f"{datetime.date.today()}: {name}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs for the CPU runs")
    print(header)
    sizes = (512,) if args.quick else (512, 2048)
    repeats = 1 if args.quick else args.repeats
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        if not all(models.is_cached(m) for m in FP16):
            os.environ[models.CACHE_ENV] = os.environ[models.MIRROR_ENV] = folder
            bench_models._stand_ins(Path(folder))
        for method in args.methods:
            params, how, tolerance = CASES[method]
            variants = [("float32", {})] + ([("fp16", {"fp16": True})] if method in FP16 else [])
            for precision, extra in variants:
                for size in sizes:
                    image, mask = _image(size)
                    damaged = np.where(mask[..., None], 0, image)
                    seconds, filled = _seconds(damaged, mask, method, repeats, device=args.device, **params, **extra)
                    agree = ""
                    if size == 512:
                        reference = inpaint(damaged, mask, method, seed=0, device="cpu", **params)
                        limit = FP16_TOLERANCE if precision == "fp16" else tolerance
                        difference = _agreement(how, reference, filled, image, mask)
                        agree = f"{difference:.3f} % ({how}; limit {limit} %){' FAIL' if difference > limit else ''}"
                    rows.append((method, precision, f"{size}²", f"{seconds:.3f}", agree))
                    print(" | ".join(rows[-1]), flush=True)
    table = "\n".join(["| method | precision | image | seconds per call | CPU vs device |",
                       "| --- | --- | --- | --- | --- |"] + [f"| {' | '.join(row)} |" for row in rows])
    print(table)
    if args.out:
        args.out.write_text(f"{header}\n\n{table}\n")
    return 1 if any("FAIL" in row[-1] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
