#!/usr/bin/env python
"""Speed, peak memory and accuracy of the classical fills against scikit-image and OpenCV.

Usage::

    python benchmarks/bench_classical.py --quick              # small sizes, a minute
    python benchmarks/bench_classical.py --out docs/benchmarks.md
    python benchmarks/bench_classical.py --full --out docs/benchmarks.md   # also skimage on the 40^3 hole
    python benchmarks/bench_classical.py --groups issue       # only the three cases of the speed targets
    python benchmarks/bench_classical.py --no-cholmod         # SuperLU even where CHOLMOD is installed

Every (case, method) pair runs in its own child process (forked from this
one after it has imported and warmed up the libraries, the multigrid's
compiled kernels included, so a child starts in milliseconds).  In the
child the inputs are loaded and the method is warmed up on a tiny input
first; then the kernel's peak-RSS counter is reset
(``/proc/self/clear_refs``) and the method runs up to ``--repeats`` times.
Time is the median wall-clock time (``time.perf_counter``); peak memory is
the peak resident set size during those runs minus the resident set size
just before them, which counts every allocation (NumPy, SuperLU, OpenCV)
and nothing of the interpreter, libraries or inputs.  Accuracy is the PSNR
over the hole pixels against the clean image.

The speed targets (biharmonic >= 5x faster than scikit-image at equal PSNR,
harmonic within 1.5x of OpenCV's Navier-Stokes fill, tv within 3x of
biharmonic) are checked on every case where both methods ran; the three
"issue" cases (camera with 40 discs, moon with strokes, RGB astronaut with
a blob) also get a table of their ratios, all from the same run.
"""

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import scipy
import scipy.sparse.linalg
import skimage
from scipy import ndimage as ndi
from skimage import color, draw
from skimage import data as skdata
from skimage.restoration import inpaint_biharmonic
from skimage.transform import resize

import napari_inpaint
from napari_inpaint import inpaint, masks
from napari_inpaint.evaluation.metrics import psnr

OURS_2D = ("biharmonic", "harmonic", "tv", "telea", "navier-stokes")
OURS_ND = ("biharmonic", "harmonic")
OPENCV_RADIUS = 5  # the default radius of our telea / navier-stokes


# --------------------------------------------------------------------------- runners


def _run_ours(method: str):
    def run(image, mask, spatial_ndim):
        return inpaint(image, mask, method=method, spatial_ndim=spatial_ndim)

    return run


def _run_skimage(image, mask, spatial_ndim):
    scale = np.iinfo(image.dtype).max
    filled = inpaint_biharmonic(image / scale, mask, channel_axis=-1 if image.ndim > mask.ndim else None)
    return np.clip(np.rint(filled * scale), 0, scale).astype(image.dtype)


def _run_opencv(flag: int):
    def run(image, mask, spatial_ndim):
        return cv2.inpaint(image, mask.astype(np.uint8), OPENCV_RADIUS, flag)

    return run


RUNNERS = {f"ours {name}": _run_ours(name) for name in OURS_2D} | {
    "skimage biharmonic": _run_skimage,
    "opencv telea": _run_opencv(cv2.INPAINT_TELEA),
    "opencv ns": _run_opencv(cv2.INPAINT_NS),
}
METHODS_2D = [f"ours {name}" for name in OURS_2D] + ["skimage biharmonic", "opencv telea", "opencv ns"]
ISSUE_METHODS = ["ours biharmonic", "ours harmonic", "ours tv", "skimage biharmonic", "opencv ns"]
GROUPS = ("solver", "large", "issue", "2d", "stack", "3d")
# The cases of the solver targets (issue 21): ordinary holes in bundled images of every kind, at 512².
HELDOUT_IMAGES = ("camera", "moon", "coins", "cell", "brick", "gravel", "grass", "text", "page", "hubble_deep_field")
HELDOUT_MASKS = (("strokes", 0.05), ("hot-pixels", 0.01), ("debris", 0.03), ("scratches", 0.02),
                 ("dropped-lines", 0.01))
LARGE_METHODS = ["ours harmonic", "ours biharmonic"]

# --------------------------------------------------------------------------- memory


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_kib(reset: bool) -> int:
    # Without a reset ru_maxrss also counts earlier peaks (loading the inputs), an over-estimate.
    return _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------- child


def _tiny_like(image: np.ndarray, mask: np.ndarray, rgb: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A small input of the same dtype and layout, to warm up a method (lazy imports, caches)."""
    shape = tuple(min(n, 16) for n in image.shape[: image.ndim - rgb]) + image.shape[image.ndim - rgb :]
    spatial = shape[:-1] if rgb else shape
    tiny_mask = np.zeros(spatial[len(spatial) - mask.ndim :], bool)
    # A hole of 2 x 3 (x 3) pixels from an odd index: no 2 x 2 block of it starts at even indices, so tv starts it
    # from the harmonic fill, as it does at the coarsest grid of larger holes; and a lone pixel (tv solves those
    # apart).
    odd = tuple(n // 3 | 1 for n in tiny_mask.shape)
    tiny_mask[tuple(slice(o, o + (2 if axis == 0 else 3)) for axis, o in enumerate(odd))] = True
    tiny_mask[(-1,) * tiny_mask.ndim] = True
    middle = np.iinfo(image.dtype).max // 2 if np.issubdtype(image.dtype, np.integer) else 0.5
    tiny = np.full(shape, middle, image.dtype)
    return tiny, tiny_mask


def _warm_up_multigrid() -> None:
    """Fill one hole in 2D and one in 3D large enough for multigrid: its compiled kernels load once, here."""
    for shape, side in (((260, 260), 256), ((28, 28, 28), 24)):  # above CHOLMOD's thresholds too
        mask = np.zeros(shape, bool)
        mask[tuple(slice(2, 2 + side) for _ in shape)] = True
        for method in OURS_ND:
            inpaint(np.ones(shape, np.float32), mask, method=method, spatial_ndim=len(shape))


def _child(spec: dict, repeats: int, budget: float, conn) -> None:
    try:
        clean = np.load(spec["clean"])
        mask = np.load(spec["mask"])
        rgb = spec.get("rgb", False)
        full_mask = np.broadcast_to(mask[..., np.newaxis] if rgb else mask, clean.shape)
        image = clean.copy()
        image[full_mask] = 0  # no method may peek at the truth
        run = RUNNERS[spec["method"]]
        run(*_tiny_like(image, mask, rgb), spec["spatial_ndim"])

        times = []
        before = _rss_kib("VmRSS")
        reset = _reset_peak()
        for _ in range(repeats):
            start = time.perf_counter()
            result = run(image, mask, spec["spatial_ndim"])
            times.append(time.perf_counter() - start)
            if sum(times) > budget:
                break
            if len(times) < repeats:
                del result
        peak = max(_peak_kib(reset) - before, 0) * 1024
        score = psnr(clean, result, mask=full_mask)
        conn.send({"time": statistics.median(times), "runs": len(times), "peak": peak, "psnr": score})
    except Exception as error:  # report, do not hang the parent
        conn.send({"error": f"{type(error).__name__}: {error}"})
    finally:
        conn.close()


def run_case(ctx, spec: dict, repeats: int, budget: float, timeout: float) -> dict:
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(spec, repeats, budget, send))
    process.start()
    send.close()
    if receive.poll(timeout):
        try:
            outcome = receive.recv()
        except EOFError:
            outcome = {"error": "the child died (out of memory?)"}
    else:
        outcome = {"skipped": f"skipped: > {timeout:.0f} s"}
    process.kill()
    process.join()
    return outcome


# --------------------------------------------------------------------------- inputs


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def images_2d(sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Bundled scikit-image images, centre-cropped to a square and resized."""
    out = {}
    for name in ("camera", "cell"):
        base = getattr(skdata, name)()
        side = min(base.shape)
        top, left = (base.shape[0] - side) // 2, (base.shape[1] - side) // 2
        base = base[top : top + side, left : left + side] / 255.0
        for size in sizes:
            out[f"{name} {size}²"] = _to_uint8(resize(base, (size, size), order=3) if size != side else base)
    return out


def discs(size: int, count: int = 40, seed: int = 4) -> np.ndarray:
    """``count`` random discs of radius 3-20 pixels (per 1024 pixels of side)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    for _ in range(count):
        centre = rng.uniform(0.03 * size, 0.97 * size, 2)
        mask[draw.disk(tuple(centre), rng.uniform(3, 20) * size / 1024, shape=mask.shape)] = True
    return mask


def issue_cases(quick: bool) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """The three cases of the speed targets: (image label, image, mask label, mask); half size with --quick."""
    scale = 2 if quick else 1
    camera = skdata.camera() / 255.0
    moon = skdata.moon() / 255.0
    side, big, rgb_side = 1024 // scale, 2048 // scale, 512 // scale
    astronaut = skdata.astronaut() / 255.0
    return [
        (f"camera {side}²", _to_uint8(resize(camera, (side, side), order=3)), "40 discs", discs(side)),
        (f"moon {big}²", _to_uint8(resize(moon, (big, big), order=3)), "strokes 5%",
         masks.strokes((big, big), 0.05, seed=3)),
        (f"astronaut {rgb_side}² RGB", _to_uint8(resize(astronaut, (rgb_side, rgb_side, 3), order=3)),
         f"blob r={rgb_side // 16}",
         masks.debris((rgb_side, rgb_side), rgb_side // 16, seed=2, center=(rgb_side / 2, rgb_side / 2))),
    ]


def solver_cases(quick: bool) -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """Ordinary holes: 10 bundled images (grey uint8, centre crops of at most 512², 256² with --quick; text and
    page are smaller) × strokes 5 %, hot pixels 1 %, debris 3 %, scratches 2 %, dropped lines 1 % (seed 1)."""
    side = 256 if quick else 512
    cases = []
    for name in HELDOUT_IMAGES[:4] if quick else HELDOUT_IMAGES:
        image = getattr(skdata, name)()
        if image.ndim == 3:
            image = _to_uint8(color.rgb2gray(image))
        rows, cols = min(side, image.shape[0]), min(side, image.shape[1])
        top, left = (image.shape[0] - rows) // 2, (image.shape[1] - cols) // 2
        image = np.ascontiguousarray(image[top : top + rows, left : left + cols])
        for kind, ratio in HELDOUT_MASKS:
            cases.append((f"{name} {rows}×{cols}", image, f"{kind} {round(100 * ratio)}%",
                          masks.make(kind, image.shape, ratio, 1)))
    return cases


def large_cases(quick: bool) -> list[tuple[str, np.ndarray, str, np.ndarray, int]]:
    """One 600² hole in a 4096² uint16 image (the camera, upscaled), one 64³ hole in a 256³ float32 volume
    (a quarter of the sides with --quick): (image label, image, mask label, mask, spatial_ndim)."""
    scale = 4 if quick else 1
    side, hole = 4096 // scale, 600 // scale
    image = np.rint(resize(skdata.camera() / 255.0, (side, side), order=1) * 60000 + 2000).astype(np.uint16)
    flat = np.zeros(image.shape, bool)
    start = (side - hole) // 2
    flat[start : start + hole, start : start + hole] = True
    cube = volume(256 // scale)
    cube = (cube / np.float32(65535)).astype(np.float32)
    return [(f"{side}² uint16", image, f"{hole}² hole", flat, 2),
            (f"{256 // scale}³ float32", cube, f"{64 // scale}³ cube hole", cube_hole(256 // scale, 64 // scale), 3)]


def masks_2d(size: int) -> dict[str, np.ndarray]:
    shape = (size, size)
    out = {f"strokes {round(100 * r)}%": masks.strokes(shape, r, seed=1) for r in (0.05, 0.10, 0.30)}
    out[f"debris r={size // 16}"] = masks.debris(shape, size // 16, seed=2, center=(size / 2, size / 2))
    return out


def stack(planes: int, size: int) -> np.ndarray:
    """The cell image, drifting by a pixel per plane, as a uint16 time-lapse."""
    base = images_2d((size,))[f"cell {size}²"].astype(np.uint16) * 257
    return np.stack([np.roll(base, (z, z // 2), axis=(0, 1)) for z in range(planes)])


def volume(size: int) -> np.ndarray:
    """Smooth random structure: Gaussian-filtered noise scaled to most of the uint16 range."""
    noise = np.random.default_rng(3).standard_normal((size,) * 3)
    smooth = ndi.gaussian_filter(noise, sigma=size / 16, mode="wrap")
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    return np.rint(2000 + smooth * 60000).astype(np.uint16)


def cube_hole(size: int, side: int) -> np.ndarray:
    mask = np.zeros((size,) * 3, bool)
    start = (size - side) // 2
    mask[(slice(start, start + side),) * 3] = True
    return mask


# --------------------------------------------------------------------------- plan


def plan(args, folder: Path) -> list[dict]:
    """Cases to run: dicts with the inputs' paths, the method and how to label it."""
    quick = args.quick
    sizes = (128, 256) if quick else (512, 2048)
    n_planes, plane = (4, 128) if quick else (64, 512)
    vol, sides = (48, (8, 12, 16)) if quick else (128, (24, 32, 40))
    skimage_sides = sides if (args.full or quick) else sides[:2]
    selected = set(args.methods or RUNNERS)
    groups = set(args.groups)
    cases = []

    def save(name: str, array: np.ndarray) -> str:
        path = folder / f"{len(list(folder.iterdir()))}-{name.replace(' ', '_').replace('²', '')}.npy"
        np.save(path, array)
        return str(path)

    def add(group, label, mask_label, clean_path, mask_path, nbytes, spatial_ndim, methods, not_run=(), rgb=False):
        for method in methods:
            if method not in selected:
                continue
            case = {"group": group, "image": label, "mask_name": mask_label, "method": method,
                    "clean": clean_path, "mask": mask_path, "nbytes": nbytes, "spatial_ndim": spatial_ndim,
                    "rgb": rgb}
            if method in not_run:
                case["outcome"] = {"skipped": "not run (use --full)"}
            cases.append(case)

    if "solver" in groups:
        for label, image, mask_label, mask in solver_cases(quick):
            add("solver", label, mask_label, save(label, image), save(f"{label} {mask_label}", mask), image.nbytes, 2,
                ISSUE_METHODS)

    if "large" in groups:
        for label, image, mask_label, mask, spatial_ndim in large_cases(quick):
            add("large", label, mask_label, save(label, image), save(mask_label, mask), image.nbytes, spatial_ndim,
                LARGE_METHODS)

    if "issue" in groups:
        for label, image, mask_label, mask in issue_cases(quick):
            add("issue", label, mask_label, save(label, image), save(mask_label, mask), image.nbytes, 2,
                ISSUE_METHODS, rgb=image.ndim == 3)

    if "2d" in groups:
        for label, image in images_2d(sizes).items():
            clean_path = save(label, image)
            for mask_label, mask in masks_2d(image.shape[0]).items():
                add("2d", label, mask_label, clean_path, save(mask_label, mask), image.nbytes, 2, METHODS_2D)

    if "stack" in groups:
        frames = stack(n_planes, plane)
        frames_path = save("stack", frames)
        per_plane = np.stack([masks.strokes((plane, plane), 0.10, seed=10 + z) for z in range(n_planes)])
        shared = masks.strokes((plane, plane), 0.10, seed=10)
        for mask_label, mask in (("strokes 10%, one per plane", per_plane), ("strokes 10%, shared", shared)):
            add("stack", f"{n_planes}×{plane}² uint16", mask_label, frames_path, save(mask_label, mask),
                frames.nbytes, 2, [f"ours {name}" for name in OURS_ND])

    if "3d" in groups:
        cube = volume(vol)
        cube_path = save("volume", cube)
        for side in sides:
            not_run = () if side in skimage_sides else ("skimage biharmonic",)
            add("3d", f"{vol}³ uint16", f"{side}³ cube hole", cube_path, save("hole", cube_hole(vol, side)),
                cube.nbytes, 3, [f"ours {name}" for name in OURS_ND] + ["skimage biharmonic"], not_run)
    return cases


# --------------------------------------------------------------------------- report

METHOD_NOTES = """\
## Method

- Each (input, hole, method) runs in its own child process, forked from the driver after it has imported
  the libraries and warmed each method up (and the multigrid on a 2D and a 3D hole, so that its compiled
  kernels are loaded: the first multigrid call of a process loads them, tens of MiB). The child loads the
  inputs, zeroes the masked pixels, warms the method up on a tiny input, then runs it up to {repeats} times
  (once only when a run takes longer than {budget:g} s).
- **time**: median wall-clock time (`time.perf_counter`) of those runs, including dtype conversions
  (`napari_inpaint.inpaint` takes and returns the input's dtype; scikit-image gets `image / max` and its
  float result is rounded back; OpenCV gets the uint8 image and a uint8 mask, radius {radius} as ours).
- **peak memory**: the kernel's peak resident set size of the child (`VmHWM`, reset through
  `/proc/self/clear_refs` just before the runs) minus its resident set size just before the runs. Unlike
  `tracemalloc` this counts SuperLU's and OpenCV's own allocations; it excludes the interpreter, the
  libraries and the inputs (resolution: about 1 MiB). **peak / image** divides by the input's size in its
  own dtype (uint8 for the 2D images, where a float64 copy alone is 8×).
- **PSNR**: over the hole pixels only, against the clean image, with the dtype's range (255 or 65535).
  The whole-image PSNR is the hole PSNR + 10·log10(1 / hole fraction).
- Cases running longer than {timeout:g} s are stopped and reported as "skipped".
- `ours telea` and `ours navier-stokes` use their default backend (`auto`: `cv2.inpaint` with range
  scaling), so next to `opencv telea` / `opencv ns` they show the engine's overhead.
"""


def _cell(outcome: dict | None, key: str) -> str:
    if outcome is None:
        return ""
    if "skipped" in outcome or "error" in outcome:
        return outcome.get("skipped") or f"error: {outcome['error']}"
    value = outcome[key]
    if key == "time":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if key == "psnr":
        return f"{value:.2f}"
    return f"{value / 2**20:.1f}"


def _pivot(cases: list[dict], key: str) -> list[str]:
    """One row per (image, mask), one column per method."""
    methods = [m for m in METHODS_2D if any(c["method"] == m for c in cases)]
    rows = {}
    for case in cases:
        rows.setdefault((case["image"], case["mask_name"]), {})[case["method"]] = case.get("outcome")
    lines = ["| image | mask | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
    for (image, mask_name), outcomes in rows.items():
        cells = " | ".join(_cell(outcomes.get(m), key) for m in methods)
        lines.append(f"| {image} | {mask_name} | {cells} |")
    return lines


def _long(cases: list[dict]) -> list[str]:
    """One row per case."""
    lines = [
        "| input | hole | method | time (s) | peak (MiB) | peak / image | hole PSNR (dB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for case in cases:
        outcome = case.get("outcome")
        ratio = f"{outcome['peak'] / case['nbytes']:.2f}" if _ok(outcome) else ""
        cells = [case["image"], case["mask_name"], case["method"], _cell(outcome, "time"),
                 _cell(outcome, "peak"), ratio, _cell(outcome, "psnr")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ok(outcome: dict | None) -> bool:
    return bool(outcome) and "time" in outcome


def targets(cases: list[dict], quick: bool) -> list[str]:
    """Yes/no for each target, with the numbers behind it."""
    by_key = {(c["group"], c["image"], c["mask_name"], c["method"]): c.get("outcome") for c in cases}
    lines = ["| target | met | numbers |", "|---|---|---|"]

    def line(name, values, met, detail):
        verdict = "n/a" if not values else ("yes" if met else "no")
        lines.append(f"| {name} | {verdict} | {detail if values else 'no data'} |")

    def versus(ours_name, theirs_name):
        """(label, ours, theirs) for every case where both ran."""
        out = []
        for (group, image, mask_name, method), ours in by_key.items():
            theirs = by_key.get((group, image, mask_name, theirs_name))
            if method == ours_name and _ok(ours) and _ok(theirs):
                out.append((f"{image} {mask_name}", ours, theirs))
        return out

    pairs = [(label, t["time"] / o["time"], o["psnr"] - t["psnr"])
             for label, o, t in versus("ours biharmonic", "skimage biharmonic")]
    detail = ""
    if pairs:
        slowest, worst = min(pairs, key=lambda p: p[1]), min(pairs, key=lambda p: p[2])
        detail = (f"speed-up from {slowest[1]:.1f}× ({slowest[0]}) to {max(p[1] for p in pairs):.1f}×, "
                  f"{sum(p[1] >= 5 for p in pairs)}/{len(pairs)} cases ≥ 5×; PSNR ours − skimage from "
                  f"{worst[2]:+.2f} dB ({worst[0]}) to {max(p[2] for p in pairs):+.2f} dB")
    met = all(p[1] >= 5 and p[2] >= -0.05 for p in pairs)
    line("biharmonic ≥ 5× faster than skimage at equal or better PSNR (−0.05 dB)", pairs, met, detail)

    ratios = [(label, o["time"] / t["time"]) for label, o, t in versus("ours harmonic", "opencv ns")]
    detail = ""
    if ratios:
        worst = max(ratios, key=lambda r: r[1])
        detail = (f"time harmonic / opencv ns from {min(r[1] for r in ratios):.2f}× to {worst[1]:.2f}× "
                  f"({worst[0]}); {sum(r[1] <= 1.5 for r in ratios)}/{len(ratios)} cases within 1.5×")
    line("harmonic within 1.5× of OpenCV NS's time", ratios, all(r[1] <= 1.5 for r in ratios), detail)

    pairs = [(label, o["time"] / t["time"], o["psnr"] - t["psnr"])
             for label, o, t in versus("ours tv", "ours biharmonic")]
    detail = ""
    if pairs:
        worst = max(pairs, key=lambda p: p[1])
        detail = (f"time tv / biharmonic from {min(p[1] for p in pairs):.2f}× to {worst[1]:.2f}× ({worst[0]}); "
                  f"{sum(p[1] <= 3 for p in pairs)}/{len(pairs)} cases within 3×; PSNR tv − biharmonic from "
                  f"{min(p[2] for p in pairs):+.2f} to {max(p[2] for p in pairs):+.2f} dB")
    line("tv within 3× of biharmonic's time", pairs, all(p[1] <= 3 for p in pairs), detail)

    times = [(f"{c['method'][5:]}, {c['mask_name']}", c["outcome"]["time"])
             for c in cases if c["group"] == "stack" and _ok(c.get("outcome"))]
    detail = "; ".join(f"{name}: {t:.2f} s" for name, t in times)
    name = "stack under 10 s" + (" (quick sizes)" if quick else "")
    line(name, times, all(t < 10 for _, t in times), detail)

    side = 16 if quick else 40
    times = [(c["method"][5:], c["outcome"]["time"]) for c in cases
             if c["group"] == "3d" and c["mask_name"].startswith(f"{side}³")
             and c["method"].startswith("ours") and _ok(c.get("outcome"))]
    detail = "; ".join(f"{name}: {t:.2f} s" for name, t in times)
    line(f"{side}³ hole under 3 s", times, all(t < 3 for _, t in times), detail)

    # Small inputs are dominated by fixed costs of a few MiB: judge the largest input of each group.
    largest = {}
    for case in cases:
        largest[case["group"]] = max(largest.get(case["group"], 0), case["nbytes"])
    worst = {}
    for c in cases:
        if c["method"].startswith("ours") and _ok(c.get("outcome")) and c["nbytes"] == largest[c["group"]]:
            ratio = c["outcome"]["peak"] / c["nbytes"]
            if ratio > worst.get((c["group"], c["method"]), (0.0, ""))[0]:
                worst[c["group"], c["method"]] = (ratio, f"{c['image']} {c['mask_name']}")
    detail = "; ".join(f"{m[5:]}: {ratio:.1f}× ({where})" for (_, m), (ratio, where) in worst.items())
    met = all(ratio < 4 for ratio, _ in worst.values())
    name = "peak memory under 4× the image (ours, worst case per method and group, largest inputs)"
    line(name, worst, met, detail)
    return lines


def solver_targets(cases: list[dict]) -> list[str]:
    """The table of the solver targets (issue 21): sums of times over the "solver" cases, and the large holes."""
    by_case: dict[tuple, dict] = {}
    for c in cases:
        if c["group"] == "solver":
            by_case.setdefault((c["image"], c["mask_name"]), {})[c["method"]] = c.get("outcome")
    complete = {key: got for key, got in by_case.items() if all(_ok(got.get(m)) for m in ISSUE_METHODS)}

    def total(method: str, kind: str = "") -> float:
        return sum(got[method]["time"] for (_, mask), got in complete.items() if mask.startswith(kind))

    lines = ["| target | now | met |", "|---|---|---|"]
    if complete:
        gaps = [got["ours biharmonic"]["psnr"] - got["skimage biharmonic"]["psnr"] for got in complete.values()]
        speedup = total("skimage biharmonic") / total("ours biharmonic")
        harmonic = total("ours harmonic") / total("opencv ns")
        tv = total("ours tv") / total("ours biharmonic")
        lines += [
            f"| biharmonic ≥ 5× faster than scikit-image, same PSNR ({len(complete)} cases, summed times) | "
            f"{speedup:.2f}×; PSNR ours − skimage mean {np.mean(gaps):+.3f} dB, lowest {min(gaps):+.3f} dB | "
            f"{'yes' if speedup >= 5 and min(gaps) >= -0.01 else 'no'} |",
            f"| harmonic time ≤ 1.0× OpenCV Navier-Stokes (same cases) | {harmonic:.2f}× | "
            f"{'yes' if harmonic <= 1 else 'no'} |",
            f"| tv time ≤ 3× biharmonic (same cases) | {tv:.2f}× | {'yes' if tv <= 3 else 'no'} |",
        ]
    large = {(c["spatial_ndim"], c["method"]): c for c in cases if c["group"] == "large" and _ok(c.get("outcome"))}
    flat = [large.get((2, m)) for m in LARGE_METHODS]
    if all(flat):
        ratios = [c["outcome"]["peak"] / c["nbytes"] for c in flat]
        lines.append(f"| {flat[0]['mask_name']} in a {flat[0]['image']} image: memory added ≤ 3× the image | "
                     f"harmonic {ratios[0]:.2f}×, biharmonic {ratios[1]:.2f}× | "
                     f"{'yes' if max(ratios) <= 3 else 'no'} |")
    cube = [large.get((3, m)) for m in LARGE_METHODS]
    if all(cube):
        ratio = cube[1]["outcome"]["time"] / cube[0]["outcome"]["time"]
        peak = cube[1]["outcome"]["peak"] / 2**20
        lines.append(f"| {cube[0]['mask_name']} in a {cube[0]['image']} volume, biharmonic: ≤ 2.5× harmonic's time, "
                     f"≤ 256 MiB | {cube[1]['outcome']['time']:.2f} s = {ratio:.2f}× harmonic's, +{peak:.0f} MiB | "
                     f"{'yes' if ratio <= 2.5 and peak <= 256 else 'no'} |")
    if complete:
        lines += ["", "Per kind of hole (sums over the images):", "",
                  "| holes | skimage / ours biharmonic | ours harmonic / opencv ns | ours tv / ours biharmonic |",
                  "|---|---:|---:|---:|"]
        for kind, _ in HELDOUT_MASKS:
            lines.append(f"| {kind} | {total('skimage biharmonic', kind) / total('ours biharmonic', kind):.2f} | "
                         f"{total('ours harmonic', kind) / total('opencv ns', kind):.2f} | "
                         f"{total('ours tv', kind) / total('ours biharmonic', kind):.2f} |")
    return lines


def issue_ratios(cases: list[dict]) -> list[str]:
    """The ratios of the speed targets on each case of the "issue" group (one run, same machine state)."""
    by_key = {(c["image"], c["mask_name"], c["method"]): c.get("outcome") for c in cases if c["group"] == "issue"}
    lines = ["| case | biharmonic: skimage time / ours (≥ 5) | PSNR ours − skimage (dB) | "
             "harmonic / opencv ns (≤ 1.5) | tv / biharmonic (≤ 3) | PSNR tv, biharmonic (dB) |",
             "|---|---:|---:|---:|---:|---:|"]

    def ratio(top: dict | None, bottom: dict | None) -> str:
        return f"{top['time'] / bottom['time']:.2f}" if _ok(top) and _ok(bottom) else ""

    for image, mask_name in dict.fromkeys((i, m) for i, m, _ in by_key):
        get = {method: by_key.get((image, mask_name, method)) for method in ISSUE_METHODS}
        bih, skim, tv = get["ours biharmonic"], get["skimage biharmonic"], get["ours tv"]
        psnr_gap = f"{bih['psnr'] - skim['psnr']:+.2f}" if _ok(bih) and _ok(skim) else ""
        tv_psnr = f"{tv['psnr']:.2f}, {bih['psnr']:.2f}" if _ok(tv) and _ok(bih) else ""
        cells = [f"{image}, {mask_name}", ratio(skim, bih), psnr_gap,
                 ratio(get["ours harmonic"], get["opencv ns"]), ratio(tv, bih), tv_psnr]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _disagreements(cases: list[dict]) -> list[str]:
    """Flag cases where scikit-image's biharmonic fill differs from ours: both solve the same equations."""
    ours = {(c["image"], c["mask_name"]): c.get("outcome") for c in cases if c["method"] == "ours biharmonic"}
    odd = [f"{c['image']} {c['mask_name']} ({c['outcome']['psnr']:.2f} dB vs "
           f"{ours[c['image'], c['mask_name']]['psnr']:.2f} dB)"
           for c in cases if c["method"] == "skimage biharmonic" and _ok(c.get("outcome"))
           and _ok(ours.get((c["image"], c["mask_name"])))
           and abs(c["outcome"]["psnr"] - ours[c["image"], c["mask_name"]]["psnr"]) > 0.5]
    if not odd:
        return []
    return [f"**Note:** scikit-image's biharmonic PSNR differs from ours by more than 0.5 dB in: "
            f"{'; '.join(odd)}. Both discretise the same equation (they agree to 0.01 dB elsewhere).", ""]


def _sparse_solver() -> str:
    """The direct solver of the diffusion fills: CHOLMOD where cvxopt imports, else SuperLU."""
    try:
        import cvxopt
    except ImportError:
        return f"SuperLU (scipy {scipy.__version__})"
    return f"CHOLMOD (cvxopt {cvxopt.__version__})"


def _blas_threads() -> str:
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    chosen = [f"{name}={os.environ[name]}" for name in names if name in os.environ]
    return ", ".join(chosen) or "library default (one per core)"


def report(cases: list[dict], args, started: str, loads: tuple[float, float], elapsed: float) -> str:
    """The markdown report: machine, method, tables and targets."""
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = os.cpu_count()
    flags = "".join(f" {flag}" for flag, on in (("--quick", args.quick), ("--full", args.full)) if on)
    issue = [c for c in cases if c["group"] == "issue"]
    two_d = [c for c in cases if c["group"] == "2d"]
    rest = [c for c in cases if c["group"] in ("stack", "3d")]
    out = [
        "# Benchmarks: classical fills" + (" (quick sizes)" if args.quick else ""),
        "",
        f"Generated by `python benchmarks/bench_classical.py{flags}` on {started} "
        f"(the run took {elapsed / 60:.1f} min).",
        "",
        f"- Machine: {cores} cores ({cpu}), {memory_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.",
        f"- Versions: Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-image {skimage.__version__}, opencv {cv2.__version__}, "
        f"napari-inpaint {napari_inpaint.__version__}; BLAS threads: {_blas_threads()}; "
        f"sparse direct solver: {_sparse_solver()}.",
        "",
        METHOD_NOTES.format(
            repeats=args.repeats, budget=args.budget, radius=OPENCV_RADIUS, timeout=args.timeout
        ),
    ]
    if any(c["group"] in ("solver", "large") for c in cases):
        out += [
            "## The solver targets (issue 21)",
            "",
            "`solver`: " + solver_cases.__doc__.split(":", 1)[1].strip().replace("\n    ", " ") + " `large`: "
            + large_cases.__doc__.split("(a quarter")[0].strip().replace("\n    ", " ") + ".",
            "",
            *solver_targets(cases),
            "",
            *_long([c for c in cases if c["group"] == "large"]),
            "",
        ]
    if issue:
        out += [
            "## The cases of the speed targets",
            "",
            "uint8; 40 random discs of radius 3-20 pixels (per 1024 pixels), `masks.strokes(shape, 0.05, "
            "seed=3)`, one `masks.debris` blob of radius side / 16 in the centre of the RGB image.",
            "",
            *issue_ratios(issue),
            "",
            *_long(issue),
            "",
        ]
    if two_d:
        out += [
            "## 2D images",
            "",
            "uint8; strokes: `masks.strokes(shape, ratio, seed=1)`; debris: one `masks.debris` blob in the "
            "centre. The 2048² images are the 512² ones upscaled (cubic), so they are smoother.",
            "",
            "### Time (s)",
            "",
            *_pivot(two_d, "time"),
            "",
            "### Hole PSNR (dB)",
            "",
            *_pivot(two_d, "psnr"),
            "",
            "### Peak memory (MiB above the inputs)",
            "",
            *_pivot(two_d, "peak"),
            "",
        ]
    if rest:
        out += [
            "## Stack (spatial_ndim=2) and 3D holes (spatial_ndim=3)",
            "",
            "The stack is the cell image as uint16, shifted by about a pixel per plane. The volume is "
            "Gaussian-filtered noise scaled to uint16; the holes are centred cubes. scikit-image needs "
            "about a minute and 2.6 GB for the largest hole, so it runs there only with `--full`.",
            "",
            *_long(rest),
            "",
        ]
    out += ["## Targets", "", *targets(cases, args.quick), ""]
    out += _disagreements(cases)
    if max(loads) > cores:
        out += [f"**Note:** the load average ({max(loads):.1f}) exceeded the {cores} cores during the run: "
                "other work inflated the times.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--full", action="store_true", help="also run scikit-image on the largest 3D hole")
    parser.add_argument("--out", type=Path, help="write the markdown report here (e.g. docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median time is reported")
    parser.add_argument("--budget", type=float, default=2.0, help="stop repeating after this many seconds")
    parser.add_argument("--timeout", type=float, default=90.0, help="stop a case after this many seconds")
    parser.add_argument("--methods", nargs="+", choices=sorted(RUNNERS), help="run only these methods")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=GROUPS, help="run only these groups of cases")
    parser.add_argument("--no-cholmod", action="store_true",
                        help="solve with SuperLU even where CHOLMOD (the cvxopt package) is installed")
    args = parser.parse_args(argv)
    if args.no_cholmod:
        sys.modules["cvxopt"] = None  # import cvxopt now raises ImportError: the solver falls back to SuperLU

    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()[0]
    clock = time.perf_counter()
    # Forked children start in milliseconds with every library imported and warmed up (spawned ones
    # would import them again); the parent runs no method on real data, so it passes on little memory.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    tiny, tiny_mask = _tiny_like(np.zeros((16, 16), np.uint8), np.zeros((16, 16), bool))
    for run in RUNNERS.values():
        psnr(tiny, run(tiny, tiny_mask, 2), mask=tiny_mask)
    _warm_up_multigrid()
    with tempfile.TemporaryDirectory(prefix="bench-inpaint-") as folder:
        # Built in a child too: large temporary arrays freed here would raise glibc's mmap threshold, and
        # every forked child would then get recycled, non-zero memory from np.empty.
        with ctx.Pool(1) as pool:
            cases = pool.apply(plan, (args, Path(folder)))
        for number, case in enumerate(cases, 1):
            if "outcome" not in case:
                case["outcome"] = run_case(ctx, case, args.repeats, args.budget, args.timeout)
            outcome = case["outcome"]
            if _ok(outcome):
                summary = (f"{outcome['time']:8.3f} s {outcome['peak'] / 2**20:8.1f} MiB "
                           f"{outcome['psnr']:6.2f} dB")
            else:
                summary = outcome.get("skipped") or outcome.get("error")
            print(f"[{number:3d}/{len(cases)}] {case['image']:>18} | {case['mask_name']:<26} | "
                  f"{case['method']:<20} | {summary}", flush=True)
    text = report(cases, args, started, (load_start, os.getloadavg()[0]), time.perf_counter() - clock)
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        raw = [{k: v for k, v in c.items() if k not in ("clean", "mask")} for c in cases]
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
