#!/usr/bin/env python
"""Cosmic rays on realistic simulations: detection rates, fill errors, and fine-tuning deepCR.

Usage::

    python benchmarks/bench_cosmic.py                  # everything (about ten minutes on two cores)
    python benchmarks/bench_cosmic.py --only detect    # or: fill, tune
    python benchmarks/bench_cosmic.py --seconds 30     # the training budget of the fine-tuning runs
    python benchmarks/bench_cosmic.py --quick          # 256-pixel crops and 10-second budgets

deepCR's weights are fetched through the registry: put them in the cache
(``napari-inpaint models fetch --all``) or point ``NAPARI_INPAINT_MIRROR`` at
a folder holding the ``.pth`` files of deepCR's source distribution
(``pip download --no-deps --no-binary :all: deepCR==0.3.1``).  L.A.Cosmic
needs ``pip install "napari-inpaint[astro]"``.

The scenes, in photo-electrons (gain 1):

* **sky**: scikit-image's ``hubble_deep_field`` (a JPEG of the Hubble Deep
  Field), grey, blurred by a Gaussian of 1.5 pixels so that it is well
  sampled as a telescope's image is (and its JPEG blocks are gone),
  stretched to a sky of 80 electrons and objects of up to 3000, with Poisson
  noise and 5 electrons of read noise;
* **fluorescence**: scikit-image's ``cell`` as photon counts, 20 of
  background and up to 1000 in the cell, Poisson noise and 2 electrons of
  read noise: a domain deepCR was not trained on.

Cosmic rays are added on top, far above the noise (300 to 3000 electrons,
sharp, not blurred by the optics): half single hits of one to four pixels,
half straight tracks of 3 to 15 pixels at random angles.

Detection is scored per pixel: recall is the share of hit pixels flagged; a
false positive is a flag more than two pixels from any hit (a flag on the
edge of a hit is a generous mask, not a false detection), and its rate is
per such pixel.  Fills are scored by the mean absolute error in the holes
against the noise-free scene, in electrons and in units of the typical
noise of those pixels.
"""

import argparse
import platform
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage as ndi
from skimage import color, data

import napari_inpaint
from napari_inpaint import detect, inpaint
from napari_inpaint.engine import training_stack
from napari_inpaint.methods import deepcr


def scene(name: str, seed: int, size: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """(noise-free scene, noisy observation, read noise), in electrons."""
    rng = np.random.default_rng(seed)
    if name == "sky":
        grey = ndi.gaussian_filter(color.rgb2gray(data.hubble_deep_field()).astype(float), 1.5)
        grey = np.clip(grey - np.percentile(grey, 5), 0, None)
        truth, read_noise = 80.0 + 3000.0 * (grey / grey.max()) ** 2, 5.0
    else:
        cell = data.cell().astype(float)
        truth, read_noise = 20.0 + 1000.0 * cell / cell.max(), 2.0
    if size is not None:
        truth = truth[:size, :size]
    return truth, rng.poisson(truth) + rng.normal(0, read_noise, truth.shape), read_noise


def cosmic_rays(shape: tuple[int, int], count: int, seed: int) -> np.ndarray:
    """Deposited electrons of ``count`` hits: dots of 1-4 pixels and straight tracks of 3-15 pixels."""
    rng = np.random.default_rng(seed)
    deposit = np.zeros(shape)
    for _ in range(count):
        y, x, energy = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5), rng.uniform(300, 3000)
        if rng.random() < 0.5:
            for _ in range(rng.integers(1, 5)):
                deposit[y + rng.integers(-1, 2), x + rng.integers(-1, 2)] += energy * rng.uniform(0.5, 1)
        else:
            length, angle = rng.uniform(3, 15), rng.uniform(0, np.pi)
            steps = np.linspace(0, length, int(length * 3) + 2)
            rows = np.clip(np.round(y + steps * np.sin(angle)).astype(int), 0, shape[0] - 1)
            cols = np.clip(np.round(x + steps * np.cos(angle)).astype(int), 0, shape[1] - 1)
            track = np.zeros(shape, bool)
            track[rows, cols] = True
            deposit[track] += energy * rng.uniform(0.5, 1)
    return deposit


def damaged(name: str, seed: int, size: int | None) -> dict:
    truth, observed, read_noise = scene(name, seed, size)
    deposit = cosmic_rays(truth.shape, max(20, truth.size // 3000), seed + 100)
    return {
        "truth": truth,
        "image": observed + deposit,
        "clean": observed,
        "hits": deposit > 0,
        "read_noise": read_noise,
    }


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _lacosmic_available() -> bool:
    return detect.COSMIC_RAY_DETECTORS["lacosmic"].available()


def detection(scenes: dict) -> str:
    detectors = [("outliers k=5 (mask_from_image)", None)]
    if _lacosmic_available():
        detectors.append(("lacosmic (defaults, read noise set)", "lacosmic"))
    detectors += [
        (f"deepcr {model} t={t}", ("deepcr", model, t))
        for model, t in (("ACS-WFC", 0.5), ("WFC3-UVIS", 0.2), ("WFC3-UVIS", 0.5), ("decam", 0.5))
    ]
    rows = []
    for label, how in detectors:
        row = [label]
        for case in scenes.values():
            start = time.perf_counter()
            if how is None:
                flagged = detect.mask_from_image(case["image"], outliers=True, nonfinite=False)
            elif how == "lacosmic":
                flagged = detect.cosmic_rays(case["image"], method="lacosmic", read_noise=case["read_noise"])
            else:
                flagged = detect.cosmic_rays(case["image"], method="deepcr", model=how[1], threshold=how[2])
            seconds = time.perf_counter() - start
            hits, far = case["hits"], ~ndi.binary_dilation(case["hits"], iterations=2)
            row += [
                f"{(flagged & hits).sum() / hits.sum():.3f}",
                f"{(flagged & far).sum() / far.sum():.1e}",
                f"{seconds:.1f}",
            ]
        rows.append(row)
    header = ["detector"] + [f"{name} {what}" for name in scenes for what in ("recall", "false pos.", "s")]
    return _table(header, rows)


def _noise(case: dict, where: np.ndarray) -> float:
    return float(np.sqrt(case["truth"][where] + case["read_noise"] ** 2).mean())


def fills(scenes: dict) -> str:
    """Fill errors in the grown hits, and in L.A.Cosmic's mask (the one astroscrappy's cleaning fills)."""
    methods = [("deepcr ACS-WFC-F606W-2-32", {"method": "deepcr"}),
               ("deepcr ACS-WFC-F606W-3-32", {"method": "deepcr", "network": "ACS-WFC-F606W-3-32"}),
               ("biharmonic", {"method": "biharmonic"}), ("harmonic", {"method": "harmonic"})]
    cleaning = "astroscrappy's cleaning (5x5 masked mean)"
    results = {label: [] for label, _ in methods} | ({cleaning: []} if _lacosmic_available() else {})
    for case in scenes.values():
        grown = ndi.binary_dilation(case["hits"])  # hits and their edges, as a detector's mask is grown
        if _lacosmic_available():
            import astroscrappy

            found, cleaned = astroscrappy.detect_cosmics(
                case["image"].astype(np.float32), gain=1.0, readnoise=case["read_noise"], satlevel=65535.0
            )
            results[cleaning] += ["", "", *_errors(case, cleaned, found)]
        for label, options in methods:
            start = time.perf_counter()
            filled = inpaint(case["image"], grown, **options)
            seconds = time.perf_counter() - start
            results[label] += [*_errors(case, filled, grown)[:1], f"{seconds:.1f}"]
            if _lacosmic_available():
                results[label] += _errors(case, inpaint(case["image"], found, **options), found)
    columns = ("MAE e- (grown hits)", "s")
    if cleaning in results:
        columns += ("MAE e- (L.A.Cosmic's mask)", "/ noise")
    header = ["fill"] + [f"{name} {what}" for name in scenes for what in columns]
    return _table(header, [[label, *values] for label, values in results.items()])


def _errors(case: dict, filled: np.ndarray, holes: np.ndarray) -> list[str]:
    """Mean absolute error in the holes against the noise-free scene, in electrons and in noise deviations."""
    error = float(np.abs(filled[holes] - case["truth"][holes]).mean())
    return [f"{error:.1f}", f"{error / _noise(case, holes):.2f}"]


def _hole_error(case: dict, holes: np.ndarray, filled: np.ndarray) -> float:
    return float(np.abs(filled[holes] - case["truth"][holes]).mean())


def tuning(seconds: float, size: int | None, seeds: list[int]) -> str:
    tuned, scratch, learned = (
        f"{what} {seconds:g} s"
        for what in ("deepcr fine-tuned", "deepcr architecture from scratch", "learned (own network)")
    )
    labels = ("deepcr as published", tuned, scratch, learned, "biharmonic", "harmonic")
    errors = {label: [] for label in labels}
    steps = {tuned: [], scratch: []}
    for seed in seeds:
        case = damaged("fluorescence", seed, size)
        holes = ndi.binary_dilation(case["hits"])
        errors["deepcr as published"].append(
            _hole_error(case, holes, inpaint(case["image"], holes, "deepcr"))
        )
        for method in ("biharmonic", "harmonic"):
            errors[method].append(_hole_error(case, holes, inpaint(case["image"], holes, method)))
        for label, pretrained in ((tuned, True), (scratch, False)):
            reports = []
            net = deepcr.fine_tune(
                training_stack(case["image"], holes, method="deepcr"),
                pretrained=pretrained,
                steps=1_000_000,
                seconds=seconds,
                seed=seed,
                progress=lambda *_, reports=reports: reports.append(1),
            )
            path = f"{tempfile.gettempdir()}/bench_cosmic_{seed}_{pretrained}.pt"
            deepcr.save_model(net, path)
            errors[label].append(
                _hole_error(case, holes, inpaint(case["image"], holes, "deepcr", model=path))
            )
            steps[label].append(len(reports))  # one report per training step
        filled = inpaint(case["image"], holes, "learned", steps=1_000_000, seconds=seconds, seed=seed)
        errors[learned].append(_hole_error(case, holes, filled))
    header = ["fluorescence fill", "MAE e- (mean over seeds)", "per seed", "training steps"]
    rows = [
        [
            label,
            f"{np.mean(values):.2f}",
            ", ".join(f"{v:.2f}" for v in values),
            ", ".join(map(str, steps.get(label, []))),
        ]
        for label, values in errors.items()
    ]
    return _table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("detect", "fill", "tune"))
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget of each fine-tuning run")
    parser.add_argument("--quick", action="store_true", help="256-pixel crops, 10-second budgets, one seed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = 256 if args.quick else None
    seconds = 10.0 if args.quick else args.seconds
    seeds = [args.seed] if args.quick else [args.seed, args.seed + 1]
    import torch

    threads, machine = torch.get_num_threads(), platform.processor() or platform.machine()
    print(f"napari-inpaint {napari_inpaint.__version__}, PyTorch {torch.__version__} ({threads} threads), "
          f"{machine}; command: {' '.join(sys.argv)}\n")
    scenes = {name: damaged(name, args.seed, size) for name in ("sky", "fluorescence")}
    for name, case in scenes.items():
        print(f"{name}: {case['image'].shape}, {int(case['hits'].sum())} hit pixels")
    if args.only in (None, "detect"):
        print("\n" + detection(scenes))
    if args.only in (None, "fill"):
        print("\n" + fills(scenes))
    if args.only in (None, "tune"):
        print("\n" + tuning(seconds, size, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
