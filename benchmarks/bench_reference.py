#!/usr/bin/env python
"""Filling from neighbouring planes: ``guided`` and ``learned`` with references against single-plane fills.

Usage::

    python benchmarks/bench_reference.py --quick            # one stack, a few holes, under a minute
    python benchmarks/bench_reference.py --out docs/reference-benchmark.md

The stacks are simulated from scikit-image's bundled images (no download),
as a microscope records a textured field: per plane a sub-pixel stage drift,
bleaching, structure that changes slowly from plane to plane (a z-stack
samples a 3D object), photon (Poisson) and read noise.  One plane gets a
debris-like hole of each size; every method fills it from the damaged stack,
and the hole is scored against the undamaged plane (PSNR over the hole, SSIM
in the hole).  A failure case is included: a time-lapse where a bright object
moves fast, so the neighbouring frames show it elsewhere.
"""

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import data
from skimage.metrics import structural_similarity

from napari_inpaint import inpaint, masks

HOLE_RADII = (6, 12, 24)
PLANES = 7
TARGET = PLANES // 2
SIDE = 192


def simulate_stack(texture: np.ndarray, other: np.ndarray, *, drift=(0.45, -0.3), change=0.08, photons=400.0,
                   read_noise=3.0, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A (PLANES, SIDE, SIDE) uint16 stack and its noise-free truth.

    Plane ``t`` is the texture moved by ``t * drift`` pixels, blended with a
    second texture by ``change * |t - centre|`` (structure changing along z),
    bleached by 3 % per plane, then imaged with ``photons`` photons at the
    brightest pixel, Poisson noise and Gaussian read noise.
    """
    rng = np.random.default_rng(seed)
    truth, noisy = [], []
    for t in range(PLANES):
        shift = (drift[0] * t, drift[1] * t)
        moved = ndi.shift(texture, shift, order=3, mode="reflect")[:SIDE, :SIDE]
        changed = ndi.shift(other, shift, order=3, mode="reflect")[:SIDE, :SIDE]
        weight = min(1.0, change * abs(t - TARGET))
        plane = ((1 - weight) * moved + weight * changed) * 0.97**t
        expected = photons * plane / texture.max()
        truth.append(expected)
        noisy.append(rng.poisson(expected) + rng.normal(0, read_noise, expected.shape))
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16), np.stack(truth)


def moving_object_stack(texture: np.ndarray, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A time-lapse whose bright object moves 12 pixels per frame across a still background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    frames = []
    for t in range(PLANES):
        blob = np.exp(-((yy - SIDE / 2) ** 2 + (xx - SIDE / 2 - 12 * (t - TARGET)) ** 2) / (2 * 9.0**2))
        frames.append(200 * texture[:SIDE, :SIDE] / texture.max() + 600 * blob)
    truth = np.stack(frames)
    noisy = rng.poisson(truth) + rng.normal(0, 3.0, truth.shape)
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16), truth


def _scores(filled: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    span = float(clean.max() - clean.min())
    error = filled[hole].astype(float) - clean[hole]
    psnr = 10 * np.log10(span**2 / np.mean(error**2))
    _, ssim_map = structural_similarity(clean, filled.astype(float), data_range=span, full=True)
    return psnr, float(ssim_map[hole].mean())


def run(cases: dict, methods: dict, radii) -> list[dict]:
    rows = []
    for case, (stack, _truth) in cases.items():
        # Scored against the recorded (noisy) plane: the hole hid it, nothing else.
        clean = stack[TARGET].astype(float)
        for radius in radii:
            hole = np.zeros(stack.shape, bool)
            disc = masks.debris((SIDE, SIDE), radius, seed=radius)
            hole[TARGET] = disc
            for name, options in methods.items():
                start = time.perf_counter()
                filled = inpaint(stack, hole, options["method"], seed=0, **options.get("params", {}))
                seconds = time.perf_counter() - start
                psnr, ssim = _scores(filled[TARGET], clean, disc)
                rows.append({"case": case, "radius": radius, "holes px": int(disc.sum()), "method": name,
                             "psnr": psnr, "ssim": ssim, "seconds": seconds})
                print(f"{case:24s} r={radius:3d} {name:28s} PSNR {psnr:6.2f} dB  SSIM {ssim:.3f}  "
                      f"{seconds:6.2f} s", flush=True)
    return rows


def figure(path: Path, stack: np.ndarray, radius: int) -> None:
    """Before/after panels of the target plane: damaged, biharmonic, guided (adjacent), the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hole = np.zeros(stack.shape, bool)
    hole[TARGET] = masks.debris((SIDE, SIDE), radius, seed=radius)
    damaged = np.where(hole[TARGET], 0, stack[TARGET])
    panels = [("damaged plane", damaged), ("biharmonic", inpaint(stack, hole, "biharmonic")[TARGET]),
              ("guided, adjacent planes", inpaint(stack, hole, "guided", reference="adjacent")[TARGET]),
              ("recorded plane", stack[TARGET])]
    rows, cols = np.nonzero(hole[TARGET])
    box = (slice(max(0, rows.min() - 24), rows.max() + 24), slice(max(0, cols.min() - 24), cols.max() + 24))
    limits = np.percentile(stack[TARGET], [0.5, 99.5])
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for axis, (title, plane) in zip(axes, panels, strict=True):
        axis.imshow(plane[box], cmap="gray", vmin=limits[0], vmax=limits[1])
        axis.contour(hole[TARGET][box], levels=[0.5], colors="red", linewidths=0.6)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(rows: list[dict]) -> str:
    lines = ["| stack | hole radius (px) | method | hole PSNR dB | hole SSIM | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['radius']} | {row['method']} | {row['psnr']:.2f} | "
                     f"{row['ssim']:.3f} | {row['seconds']:.2f} |")
    return "\n".join(lines)


METHODS = {
    "biharmonic": {"method": "biharmonic"},
    "exemplar": {"method": "exemplar"},
    "guided (adjacent)": {"method": "guided", "params": {"reference": "adjacent"}},
    "guided (adjacent, no align)": {"method": "guided", "params": {"reference": "adjacent", "align": False}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one stack and one hole size")
    parser.add_argument("--learned-seconds", type=float, default=0.0,
                        help="also run 'learned' with and without reference, with this time budget per call")
    parser.add_argument("--out", type=Path, help="write a Markdown table here")
    parser.add_argument("--figure", type=Path, help="write before/after panels (PNG) of the first stack here")
    args = parser.parse_args()

    gravel, brick, cell = (image.astype(float) for image in (data.gravel(), data.brick(), data.cell()))
    cases = {"gravel z-stack (drift)": simulate_stack(gravel, brick)}
    if not args.quick:
        cases["brick z-stack (drift)"] = simulate_stack(brick, gravel, seed=1)
        cases["cell, fast drift 1.5 px/plane"] = simulate_stack(cell, gravel, drift=(1.5, 1.0), seed=2)
        cases["moving object (failure case)"] = moving_object_stack(gravel)
    methods = dict(METHODS)
    if args.learned_seconds:
        budget = {"seconds": args.learned_seconds, "steps": 1_000_000}
        methods["learned"] = {"method": "learned", "params": budget}
        methods["learned (adjacent)"] = {"method": "learned", "params": {**budget, "reference": "adjacent"}}
    rows = run(cases, methods, HOLE_RADII[1:2] if args.quick else HOLE_RADII)
    text = table(rows)
    print(text)
    if args.figure:
        figure(args.figure, next(iter(cases.values()))[0], HOLE_RADII[-1])
    if args.out:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        header = (f"Run {datetime.date.today()} on {platform.processor() or platform.machine()}, "
                  f"{os.cpu_count()} CPUs, load average {load:.2f} at the start.\n\n")
        args.out.write_text(header + text + "\n")


if __name__ == "__main__":
    main()
