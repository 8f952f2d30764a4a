#!/usr/bin/env python
"""Large data: a 2 GiB zarr filled on a dask.distributed cluster, and the memory of one in-memory call.

Usage::

    python benchmarks/bench_scale.py --quick      # 8192² with 60 holes: checks the script, about a minute
    python benchmarks/bench_scale.py              # 32768² uint16 (2 GiB), chunks 2048², ~600 holes
    python benchmarks/bench_scale.py --dir /scratch/bench --keep   # then --reuse: skip writing the stores

The zarr case writes an image (a smooth field with noise, uint16) and its
mask into zarr stores chunk by chunk, then fills the image with ``harmonic``
on a ``LocalCluster`` of 1 and then 2 worker processes (one thread each),
writing the result to a zarr store with :func:`napari_inpaint.io.write_image`.
The holes are of mixed size: hot pixels and dust, blobs up to 400 pixels,
scratches, a dead column across the whole image, and holes placed on chunk
corners.  Each run happens in a fresh process; the peak resident memory
(RSS) of every process (the caller, the scheduler, each worker) is read
after the run.  The output is then checked chunk by chunk: known pixels
bit-identical, and every hole equal (within 1 LSB) to the in-memory fill of
its own crop.  The in-memory case fills a 4096² uint16 image with 200 small
holes and reports the peak memory one call adds (tracemalloc).

The stores need about 2.5 × the image's size on disk (``df -h`` the
folder first); they are deleted at the end unless ``--keep``.  Run it on an
otherwise idle machine: the report prints the load average.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHOD = "harmonic"  # a hole's fill depends only on its own boundary: exact to compare with per-hole crops
MARGIN = 1
MiB = 2**20


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- the data


def _field(top: int, left: int, rows: int, columns: int, seed: int) -> np.ndarray:
    """The image's pixels in a block: smooth structure at several scales plus noise, uint16."""
    yy, xx = np.mgrid[top : top + rows, left : left + columns].astype(np.float32)
    smooth = 20000 + 8000 * np.sin(yy / 900) * np.cos(xx / 700) + 3000 * np.sin((yy + 2 * xx) / 97)
    noise = np.random.default_rng([seed, top, left]).normal(0, 30, (rows, columns))
    return np.clip(smooth + noise, 0, 65535).astype(np.uint16)


def _holes(size: int, count: int, chunk: int, seed: int) -> list[dict]:
    """Non-touching holes of mixed shapes: (kind, box, and what draws them)."""
    rng = np.random.default_rng(seed)
    placed: list[tuple[int, int, int, int]] = []
    holes = []

    def free(top, left, bottom, right) -> bool:  # at least 3 pixels from every hole placed
        return all(
            bottom + 3 <= t or b + 3 <= top or right + 3 <= lft or r + 3 <= left for t, lft, b, r in placed
        )

    def add(kind, top, left, bottom, right, **shape) -> None:
        top, left, bottom, right = max(0, top), max(0, left), min(size, bottom), min(size, right)
        if bottom > top and right > left and free(top, left, bottom, right):
            placed.append((top, left, bottom, right))
            holes.append({"kind": kind, "box": [top, left, bottom, right], **shape})

    add("dead column", 0, size // 3 + 7, size, size // 3 + 8)
    corners = [(y, x) for y in range(chunk, size, chunk) for x in range(chunk, size, chunk)]
    for y, x in [corners[i] for i in rng.choice(len(corners), min(len(corners), count // 10), replace=False)]:
        half = int(rng.integers(4, 40))
        add("on a chunk corner", y - half, x - half, y + half, x + half, disc=True)
    while len(holes) < count:
        roll = rng.random()
        y, x = (int(v) for v in rng.integers(0, size, 2))
        if roll < 0.6:
            r = int(rng.integers(1, 8))
            add("hot pixels, dust", y, x, y + r, x + r)
        elif roll < 0.85:
            r = int(rng.integers(10, 60))
            add("blob", y - r, x - r, y + r, x + r, disc=True)
        elif roll < 0.9:
            r = int(rng.integers(100, 200))
            add("large blob", y - r, x - r, y + r, x + r, disc=True)
        else:
            length, width = int(rng.integers(100, 1500)), int(rng.integers(1, 4))
            add("scratch", y, x, y + width, x + length) if rng.random() < 0.5 else add(
                "scratch", y, x, y + length, x + width
            )
    return holes


def _draw(holes: list[dict], top: int, left: int, rows: int, columns: int) -> np.ndarray:
    """The mask of a block."""
    mask = np.zeros((rows, columns), bool)
    for hole in holes:
        t, lft, b, r = hole["box"]
        if b <= top or t >= top + rows or r <= left or lft >= left + columns:
            continue
        rows_in = slice(max(t, top), min(b, top + rows))
        columns_in = slice(max(lft, left), min(r, left + columns))
        region = (
            slice(rows_in.start - top, rows_in.stop - top),
            slice(columns_in.start - left, columns_in.stop - left),
        )
        if hole.get("disc"):
            yy, xx = np.ogrid[rows_in, columns_in]
            mask[region] |= (yy - (t + b - 1) / 2) ** 2 + (xx - (lft + r - 1) / 2) ** 2 <= ((b - t) / 2) ** 2
        else:
            mask[region] = True
    return mask


def make(folder: Path, size: int, chunk: int, count: int, seed: int) -> dict:
    import zarr

    holes = _holes(size, count, chunk, seed)
    layout = {"shape": (size, size), "chunks": (chunk, chunk)}
    image = zarr.create_array(folder / "image.zarr", dtype=np.uint16, **layout)
    mask = zarr.create_array(folder / "mask.zarr", dtype=bool, **layout)
    for top in range(0, size, chunk):
        for left in range(0, size, chunk):
            image[top : top + chunk, left : left + chunk] = _field(top, left, chunk, chunk, seed)
            mask[top : top + chunk, left : left + chunk] = _draw(holes, top, left, chunk, chunk)
    (folder / "holes.json").write_text(json.dumps(holes))
    return _summary(holes)


def _summary(holes: list[dict]) -> dict:
    kinds: dict[str, int] = {}
    for hole in holes:
        kinds[hole["kind"]] = kinds.get(hole["kind"], 0) + 1
    return {"holes": len(holes), "kinds": kinds}


# --------------------------------------------------------------------------- the runs


def fill(folder: Path, workers: int) -> dict:
    """Fill on a LocalCluster of ``workers`` processes; the wall time and the peak RSS of every process."""
    from distributed import Client, LocalCluster

    from napari_inpaint import inpaint
    from napari_inpaint.io import read_image, write_image

    output = folder / f"filled-{workers}.zarr"
    shutil.rmtree(output, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("napari_inpaint.methods.diffusion"))  # imports are not the work
        source = read_image(folder / "image.zarr")
        mask = read_image(folder / "mask.zarr").data
        start = time.perf_counter()
        lazy = inpaint(source.data, mask, METHOD)
        planned = time.perf_counter() - start
        units = [0]
        write_image(output, lazy, like=source, progress=lambda done, total: units.__setitem__(0, total))
        wall = time.perf_counter() - start
        workers_rss = sorted(client.run(_peak_rss).values())
        scheduler_rss = client.run_on_scheduler(_peak_rss)
    return {
        "workers": workers, "plan_s": planned, "wall_s": wall, "units": units[0],
        "caller_rss": _peak_rss(), "scheduler_rss": scheduler_rss, "worker_rss": workers_rss,
    }


def verify(folder: Path, workers: int) -> dict:
    """Known pixels bit-identical, every hole within 1 LSB of the in-memory fill of its own crop."""
    import zarr

    from napari_inpaint import inpaint

    image, mask = zarr.open_array(folder / "image.zarr"), zarr.open_array(folder / "mask.zarr")
    out = zarr.open_array(folder / f"filled-{workers}.zarr")
    chunk = image.chunks[0]
    changed_known = 0
    for top in range(0, image.shape[0], chunk):
        for left in range(0, image.shape[1], chunk):
            block = (slice(top, top + chunk), slice(left, left + chunk))
            known = ~mask[block]
            changed_known += int((out[block][known] != image[block][known]).sum())
    worst = 0
    for hole in json.loads((folder / "holes.json").read_text()):
        t, lft, b, r = hole["box"]
        region = (slice(max(0, t - MARGIN), b + MARGIN), slice(max(0, lft - MARGIN), r + MARGIN))
        region_mask = mask[region]
        own = np.zeros(region_mask.shape, bool)
        own[t - region[0].start : b - region[0].start, lft - region[1].start : r - region[1].start] = True
        own &= region_mask
        expected = inpaint(image[region], region_mask, METHOD)
        worst = max(worst, int(np.abs(out[region][own].astype(int) - expected[own]).max(initial=0)))
    return {"known_pixels_changed": changed_known, "largest_hole_difference": worst}


def in_memory(size: int = 4096, count: int = 200) -> dict:
    """Peak memory one ``inpaint`` call adds, on a NumPy uint16 image with small holes."""
    import tracemalloc

    from napari_inpaint import inpaint

    rng = np.random.default_rng(0)
    image = _field(0, 0, size, size, 0)
    mask = np.zeros(image.shape, bool)
    for y, x in rng.integers(20, size - 20, (count, 2)):
        mask[y : y + rng.integers(1, 12), x : x + rng.integers(1, 12)] = True
    results = {}
    for method in ("harmonic", "biharmonic"):
        inpaint(image[:64, :64], mask[:64, :64], method)  # imports first
        rss = _peak_rss()
        tracemalloc.start()
        start = time.perf_counter()
        inpaint(image, mask, method)
        wall = time.perf_counter() - start
        added = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[method] = {"added": added, "ratio": added / image.nbytes, "wall_s": wall,
                           "rss_growth": max(0, _peak_rss() - rss)}
    return {"image_bytes": image.nbytes, **results}


# --------------------------------------------------------------------------- the driver


def _child(*arguments: str) -> dict:
    """Run one phase in a fresh process (its memory is its own); return what it printed as JSON."""
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {arguments[0]} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(size, chunk, made, runs, checks, memory) -> str:
    image = size * size * 2
    lines = [
        (f"## Large data ({platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
         f"{time.strftime('%Y-%m-%d')})"),
        "",
        (f"{size}² uint16 zarr ({image / 2**30:.2f} GiB), chunks {chunk}², {made['holes']} holes "
         f"({', '.join(f'{n} {k}' for k, n in made['kinds'].items())}); method `{METHOD}`, "
         "written to a zarr store."),
        "",
        ("| workers | planning (s) | wall (s) | crops + chunks | caller RSS | scheduler RSS "
         "| worker RSS (each) |"),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        workers = ", ".join(f"{r / MiB:.0f}" for r in run["worker_rss"])
        lines.append(
            f"| {run['workers']} | {run['plan_s']:.1f} | {run['wall_s']:.1f} | {run['units']} | "
            f"{run['caller_rss'] / MiB:.0f} MiB | {run['scheduler_rss'] / MiB:.0f} MiB | {workers} MiB |"
        )
    largest = max(max(r["worker_rss"] + [r["caller_rss"], r["scheduler_rss"]]) for r in runs)
    lines += ["", f"Largest RSS of any process: {largest / image:.3f} × the image (target ≤ 0.25)."]
    for workers, check in checks.items():
        lines.append(
            f"Check ({workers} worker{'s' if workers > 1 else ''}): {check['known_pixels_changed']} known "
            f"pixels changed; largest difference from the in-memory fill of a hole's own crop: "
            f"{check['largest_hole_difference']} LSB."
        )
    lines += ["", f"In memory, {memory['image_bytes'] // MiB} MiB uint16 image (4096²), 200 small holes:", "",
              "| method | peak added (tracemalloc) | × image | wall (s) |", "| --- | --- | --- | --- |"]
    for method in ("harmonic", "biharmonic"):
        m = memory[method]
        lines.append(f"| {method} | {m['added'] / MiB:.1f} MiB | {m['ratio']:.2f} | {m['wall_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8192² with 60 holes")
    parser.add_argument("--dir", type=Path, default=None, help="folder of the stores (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--reuse", action="store_true", help="use the stores a --keep run left in --dir")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # a child: one phase, its result as JSON on the last line
        kind, *rest = args.phase
        functions = {
            "make": lambda f, s, c, n: make(Path(f), int(s), int(c), int(n), 0),
            "fill": lambda f, w: fill(Path(f), int(w)),
            "verify": lambda f, w: verify(Path(f), int(w)),
            "memory": in_memory,
        }
        print(json.dumps(functions[kind](*rest)))
        return
    size, chunk, count = (8192, 1024, 60) if args.quick else (32768, 2048, 600)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if args.reuse and (folder / "holes.json").exists():
            made = _summary(json.loads((folder / "holes.json").read_text()))
        else:
            made = _child("--phase", "make", str(folder), str(size), str(chunk), str(count))
        runs = [_child("--phase", "fill", str(folder), str(w)) for w in args.workers]
        checks = {w: _child("--phase", "verify", str(folder), str(w)) for w in args.workers}
        memory = _child("--phase", "memory")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(report(size, chunk, made, runs, checks, memory))


if __name__ == "__main__":
    main()
