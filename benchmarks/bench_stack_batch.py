#!/usr/bin/env python
"""A 64 × 2048 × 2048 uint16 stack filled by the command line: threads, then a local cluster.

Usage::

    python benchmarks/bench_stack_batch.py                 # 64 planes (512 MiB), about 5 minutes
    python benchmarks/bench_stack_batch.py --planes 8      # a quick check of the script

The stack is a drifting, bleaching field with Poisson and read noise (the
smooth multi-scale field of ``bench_scale.py``, shifted by a few pixels and
dimmed by 1 % per plane), written as an ImageJ TIFF with its mask: each
plane has its own debris and hot pixels (``napari_inpaint.masks``), about
0.5 % of its pixels.  ``napari-inpaint fill STACK --mask MASK --method
harmonic -o OUT`` then runs in a child process, once on threads (the stack
read into memory) and once with ``--workers 2`` (read lazily by the
workers).  Reported: wall time and the largest resident memory of any
process of the command (``RUSAGE_CHILDREN``: the CLI and its workers), and
the check that each output equals the in-memory :func:`napari_inpaint.inpaint`
of the whole stack, known pixels bit-identical.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_inpaint import inpaint, masks

SIDE = 2048
MiB = 2**20


def simulate(planes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The stack (uint16) and its mask (uint8, 255 = bad)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE].astype(np.float32)
    stack = np.empty((planes, SIDE, SIDE), np.uint16)
    mask = np.zeros((planes, SIDE, SIDE), np.uint8)
    for plane in range(planes):
        dy, dx = 0.7 * plane, -0.4 * plane  # stage drift, pixels
        y, x = yy + dy, xx + dx
        field = 2000 + 800 * np.sin(y / 90) * np.cos(x / 70) + 300 * np.sin((y + 2 * x) / 9.7)
        photons = rng.poisson(field * 0.99**plane)  # bleaching, shot noise
        stack[plane] = np.clip(photons + rng.normal(0, 3, field.shape), 0, 65535).astype(np.uint16)
        bad = masks.make("debris", (SIDE, SIDE), 0.004, seed=[seed, plane])
        bad |= masks.make("hot-pixels", (SIDE, SIDE), 0.001, seed=[seed, plane, 1])
        mask[plane] = bad * np.uint8(255)
    return stack, mask


def run(folder: Path, extra: list[str]) -> dict:
    """Fill through the command line in a child process; its wall time and largest RSS."""
    output = folder / f"out{'-'.join(extra)}.tif"
    command = [sys.executable, "-m", "napari_inpaint", "fill", str(folder / "stack.tif"), "--mask",
               str(folder / "mask.tif"), "--method", "harmonic", "-o", str(output), *extra]
    # A fresh process runs it and prints the largest resident set of its descendants (the CLI and its workers).
    measure = "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:], stdout=2).returncode; " \
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    peak = int(done.stdout.split()[-1]) * 1024
    return {"how": " ".join(extra) or "threads", "wall": wall, "peak": peak, "output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planes", type=int, default=64)
    arguments = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f} (2-core machine)")
    stack, mask = simulate(arguments.planes)
    expected = inpaint(stack, mask > 0, "harmonic")
    size = stack.nbytes
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        tifffile.imwrite(folder / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
        tifffile.imwrite(folder / "mask.tif", mask, imagej=True, metadata={"axes": "ZYX"})
        del stack
        print(f"{arguments.planes} x {SIDE}² uint16 ({size / MiB:.0f} MiB), {int((mask > 0).sum()):,} bad pixels")
        print("| run | wall (s) | largest process RSS | × stack | output equals inpaint() |")
        print("| --- | --- | --- | --- | --- |")
        for extra in ([], ["--workers", "2"]):
            result = run(folder, extra)
            equal = np.array_equal(tifffile.imread(result["output"]), expected)
            print(f"| {result['how']} | {result['wall']:.1f} | {result['peak'] / MiB:.0f} MiB | "
                  f"{result['peak'] / size:.2f} | {'yes' if equal else 'NO'} |")


if __name__ == "__main__":
    main()
