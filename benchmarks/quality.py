#!/usr/bin/env python
"""Fill quality of the classical methods on scikit-image's bundled images, by hole kind and size.

Usage::

    python benchmarks/quality.py --quick                  # 2 small images, a few seconds
    python benchmarks/quality.py --out docs/quality.md    # the full run, several minutes

Every image is cropped to its central ``--size`` square (256 by default; no
resampling, so noise and texture stay as recorded), holes of six kinds are
hidden at hole ratios of 5, 15 and 25 % (one mask each, seeded), and each
classical method fills them through :func:`napari_inpaint.evaluation.evaluate`:
the methods of :func:`napari_inpaint.evaluation.default_methods`, so a method made
for one damage only (``interpolate``) is run on that damage (dropped lines) only.
No image is downloaded: they ship with scikit-image.
"""

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import skimage
from skimage import data

import napari_inpaint
from napari_inpaint.evaluation import EvaluationTable, default_methods, evaluate

RATIOS = (0.05, 0.15, 0.25)
AREA_MASKS = ("strokes", "rectangles", "debris", "scratches", "hot-pixels")
LINE_MASKS = ("dropped-lines",)
IMAGES = {
    "camera": data.camera,
    "cell": data.cell,
    "moon": data.moon,
    "brick": data.brick,
    "grass": data.grass,
    "gravel": data.gravel,
    "immunohistochemistry": data.immunohistochemistry,
    "hubble_deep_field": data.hubble_deep_field,
}
QUICK_IMAGES = ("camera", "immunohistochemistry")


def _crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` square (or the whole side where the image is smaller)."""
    top, left = (max(0, (n - size) // 2) for n in image.shape[:2])
    return image[top : top + size, left : left + size]


def run(images: list[str], size: int, seed: int) -> EvaluationTable:
    trials = []
    for name in images:
        image = _crop(IMAGES[name](), size)
        start = time.perf_counter()
        for kinds in (AREA_MASKS, LINE_MASKS):
            table = evaluate(image, default_methods(kinds), kinds, ratios=RATIOS, seed=seed, lpips=False, per_mask=True)
            trials += [{**trial, "image": name} for trial in table.trials]
        print(f"{name} {image.shape} {image.dtype}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return EvaluationTable(trials, per_mask=True)


def _mean(trials: list[dict], key: str) -> float | None:
    values = [t[key] for t in trials if t["error"] is None]
    return float(np.mean(values)) if values else None


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def standings(table: EvaluationTable, key: str = "psnr_hole", higher: bool = True, fmt: str = "{:.2f}") -> str:
    """Mask kind x bucket rows, one column per method; the best score of a row in bold."""
    methods = list(dict.fromkeys(t["method"] for t in table.trials))
    groups = list(dict.fromkeys((t["mask"], t["bucket"]) for t in table.trials))
    rows = []
    for kind, bucket in groups:
        scores = {
            m: _mean([t for t in table.trials if (t["mask"], t["bucket"], t["method"]) == (kind, bucket, m)], key)
            for m in methods
        }
        present = [s for s in scores.values() if s is not None]
        best = (max if higher else min)(present) if present else None
        cells = []
        for m in methods:
            score = scores[m]
            text = "" if score is None else fmt.format(score)
            cells.append(f"**{text}**" if score is not None and fmt.format(score) == fmt.format(best) else text)
        rows.append([kind, bucket, *cells])
    return _markdown(["holes", "ratio", *methods], rows)


def winners(table: EvaluationTable) -> str:
    """For each image and mask kind, the method with the best hole PSNR averaged over the ratios."""
    kinds = list(dict.fromkeys(t["mask"] for t in table.trials))
    rows = []
    for image in dict.fromkeys(t["image"] for t in table.trials):
        cells = []
        for kind in kinds:
            trials = [t for t in table.trials if (t["image"], t["mask"]) == (image, kind)]
            scores = {m: _mean([t for t in trials if t["method"] == m], "psnr_hole") for m in dict.fromkeys(
                t["method"] for t in trials)}
            scores = {m: s for m, s in scores.items() if s is not None}
            cells.append(max(scores, key=scores.get) if scores else "")
        rows.append([image, *cells])
    return _markdown(["image", *kinds], rows)


def speed(table: EvaluationTable) -> str:
    """Median seconds per fill of each method, over all images and holes."""
    methods = list(dict.fromkeys(t["method"] for t in table.trials))
    rows = []
    for m in methods:
        seconds = [t["seconds"] for t in table.trials if t["method"] == m and t["error"] is None]
        rows.append([m, f"{np.median(seconds):.3f}", f"{np.max(seconds):.3f}", str(len(seconds))])
    return _markdown(["method", "median s", "max s", "fills"], rows)


def report(table: EvaluationTable, images: list[str], size: int, seconds: float, command: str) -> str:
    failures = sorted({f"{t['method']}: {t['error']}" for t in table.trials if t["error"] is not None})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        _INTRO,
        "## Where each method stands",
        "",
        f"Mean PSNR over the hole (dB, higher is better) of the {len(images)} images below, by hole kind and "
        "hole-to-image ratio bucket; the best of each row is in bold.",
        "",
        standings(table),
        "",
        "Mean SSIM over the hole (higher is better):",
        "",
        standings(table, "ssim_hole", fmt="{:.3f}"),
        "",
        "Mean absolute error over the hole, in % of the data range (lower is better):",
        "",
        standings(table, "mae_hole", higher=False),
        "",
        "## Best method per image and hole kind",
        "",
        "The method with the best hole PSNR, averaged over the three ratios:",
        "",
        winners(table),
        "",
        "## Speed",
        "",
        f"Seconds per fill of a {size} x {size} crop (after one untimed warm-up fill per method). The machine "
        f"was shared with other jobs (load average {load:.1f} on {os.cpu_count()} cores at the end of the "
        "run), so the times are inflated and only their ratios mean much.",
        "",
        speed(table),
        "",
        *(["Failures: " + "; ".join(failures), ""] if failures else []),
        "## How this was measured",
        "",
        f"`{command}` on {datetime.date.today().isoformat()}: napari-inpaint {napari_inpaint.__version__}, "
        f"scikit-image {skimage.__version__}, NumPy {np.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}; {seconds / 60:.1f} minutes in all.  Images (central {size} x {size} crops, "
        f"no resampling): {', '.join(images)}.  One mask per image, kind and ratio (seeded), so each cell "
        f"averages {len(images)} fills.",
        "",
        "The full table (`napari_inpaint.evaluation.EvaluationTable`, all images pooled):",
        "",
        "```text",
        table.to_text(),
        "```",
        "",
    ])


_INTRO = """# Fill quality: which method for which hole

*This page is written by `benchmarks/quality.py`; edit the script, not the page.*

Inpainting results are judged by hiding holes in pixels whose values are known,
filling them, and comparing the fill with the truth.  The holes are grouped by
how much of the image is missing, in buckets of the hole-to-image ratio
(0-10 %, 10-20 %, ...), as in the inpainting literature, and by their kind:

| kind | what it imitates |
|---|---|
| `strokes` | free-form brush strokes (the random strokes of DeepFill v2, Yu et al. 2019) |
| `rectangles` | large rectangular holes |
| `debris` | compact blobs: dust, debris, bubbles |
| `scratches` | thin curved lines, 3 pixels wide |
| `hot-pixels` | isolated bad pixels |
| `dropped-lines` | dropped rows |

Scores (`napari_inpaint.evaluation.metrics`): **PSNR** and **SSIM** over the hole, with the
data range of the dtype (255 for uint8, 65535 for uint16; max - min for floats);
the **MAE** over the hole in % of that range; the PSNR of the whole image; and
**LPIPS** (Zhang et al. 2018, AlexNet, v0.1) when its weights are downloaded.
LPIPS is left out below, as the benchmark runs offline.  **FID** is not
reported: it compares the feature statistics of two large *sets* of images and
is meaningless for one image.

## Your own data

The numbers below are for natural and microscopy test images; what works best
depends on your images.  Mark a region you know to be clean and let the same
machinery score the methods there:

```console
$ napari-inpaint compare cells.tif --masks strokes,scratches,debris --ratios 0.05,0.15 --per-mask
$ napari-inpaint compare cells.tif --region clean.png --methods harmonic,tv,exemplar --csv scores.csv
```

```python
from napari_inpaint.evaluation import evaluate

table = evaluate(image, ["harmonic", "tv", "exemplar"], masks=["scratches"], region=clean)
print(table)            # a text table; table.rows / table.to_csv() for the numbers
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two images of 128 x 128, for a smoke test")
    parser.add_argument("--size", type=int, default=256, help="side of the central crop (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    args = parser.parse_args(argv)
    images = list(QUICK_IMAGES if args.quick else IMAGES)
    size = 128 if args.quick else args.size
    start = time.perf_counter()
    table = run(images, size, args.seed)
    text = report(table, images, size, time.perf_counter() - start, "python " + " ".join(sys.argv))
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
