#!/usr/bin/env python
"""How much ``method="auto"`` gains over the best single method, and whether ``return_uncertainty`` is honest.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_honest.py --quick      # 192² crops, one seed: a few minutes
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_honest.py --figure docs/images/calibration.png  # ~10 min

Cases are (image, mask, seed).  The images are scikit-image's bundled ones
(no download), centre-cropped to 256² (192² with ``--quick``; ``text`` and
``page`` are shorter than that and keep their full height): camera, moon,
coins, cell, brick, gravel, grass, text, page as uint8, hubble_deep_field as
float32 grey (``rgb2gray``), and three noisy ones: moon and cell as float32
Poisson counts (peaks of 40 and 20 photons) and camera with Gaussian noise
(sigma 10, uint8).  The truth of a hole pixel is the image's own (noisy) value:
what the detector would have recorded.  Masks (``masks.make``): strokes 5 %,
hot-pixels 1 %, debris 3 %, scratches 2 %, and hot-pixels 1 % | scratches 2 %.

Accuracy: the hole MSE and hole PSNR (over the mask pixels, data range = the
crop's max - min) of ``harmonic``, ``biharmonic``, ``tv``, ``exemplar`` (the
single methods: auto's default candidates are the first three, the oracle
chooses among all four), ``auto`` and, for reference, ``gp``.  Each call is timed
with ``time.perf_counter`` once, after every method has been warmed up on a
small image.  Because cases have different data ranges and difficulty, MSEs
are compared *normalised per case*:

- the best single method is the candidate with the smallest mean of
  MSE / range² over the cases;
- the oracle takes, per case, the candidate with the smallest MSE;
- with r_m = MSE_m / MSE_best-single on each case, averaged over the cases
  (so the best single method scores 1), the share of the oracle gap that auto
  captures is (1 - mean r_auto) / (1 - mean r_oracle): 1 means auto is as
  good as the oracle, 0 as good as the best single method, < 0 worse.  The
  same share from pooled MSE / range² (large-error cases weigh more) is
  printed next to it, and from the geometric mean of r (mean log r, the
  scale of the mean PSNR), which a few cases with large ratios dominate less.

Uncertainty: ``inpaint(..., return_uncertainty=True)`` for auto, biharmonic,
harmonic and gp.  Errors and sigmas are divided by the case's data range, then
pooled: coverage is the share of hole pixels with |err| <= 1.645 sigma (target
0.9, acceptable 0.85-0.95), and its range over the cases; the Spearman rank
correlation of sigma and |err| is computed pooled (on at most 200 000 pixels
drawn with a fixed seed) and within each case (median reported).  ``--figure``
saves the calibration plot: observed error against predicted sigma in
quantile bins of sigma, and the per-case coverage.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from scipy import stats
from skimage import color
from skimage import data as skdata

from napari_inpaint import inpaint, masks
from napari_inpaint.engine import FillJob

CANDIDATES = ("harmonic", "biharmonic", "tv", "exemplar")
FILLS = (*CANDIDATES, "auto", "gp")
UNCERTAIN = ("auto", "biharmonic", "harmonic", "gp")
Z90 = 1.6448536269514722
CLEAN_IMAGES = ("camera", "moon", "coins", "cell", "brick", "gravel", "grass", "text", "page", "hubble_deep_field")
NOISY_IMAGES = ("moon+poisson", "cell+poisson", "camera+gauss")
MASKS = (("strokes", 0.05), ("hot-pixels", 0.01), ("debris", 0.03), ("scratches", 0.02))
MIXED = "hot-pixels|scratches"
LOSS = 1.10  # auto "loses" on a case when its hole MSE exceeds this factor times the reference's
MAX_PIXELS = 200_000

# --------------------------------------------------------------------------- inputs


def _crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre crop of at most side × side pixels."""
    rows, cols = min(side, image.shape[0]), min(side, image.shape[1])
    top, left = (image.shape[0] - rows) // 2, (image.shape[1] - cols) // 2
    return image[top : top + rows, left : left + cols]


def load_image(name: str, side: int) -> np.ndarray:
    """A bundled image by name (``NAME+poisson`` / ``NAME+gauss`` for the noisy ones), cropped."""
    base, _, noise = name.partition("+")
    image = getattr(skdata, base)()
    if image.ndim == 3:
        image = color.rgb2gray(image).astype(np.float32)
    image = np.ascontiguousarray(_crop(image, side))
    rng = np.random.default_rng(7)
    if noise == "poisson":
        peak = {"moon": 40.0, "cell": 20.0}[base]
        return rng.poisson(image / 255.0 * peak).astype(np.float32)
    if noise == "gauss":
        return np.clip(np.rint(image + rng.normal(0.0, 10.0, image.shape)), 0, 255).astype(np.uint8)
    return image


def make_masks(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """The five masks of a case: one per kind, and hot pixels together with scratches."""
    out = {f"{kind} {round(100 * ratio)}%": masks.make(kind, shape, ratio, seed) for kind, ratio in MASKS}
    out[MIXED] = masks.make("hot-pixels", shape, 0.01, seed + 100) | masks.make("scratches", shape, 0.02, seed + 200)
    return out


def warm_up() -> None:
    """Run every method once on a small image: compile kernels and import lazily loaded modules before timing."""
    image = load_image("camera", 64)
    mask = masks.make("strokes", image.shape, 0.05, 0) | masks.make("hot-pixels", image.shape, 0.01, 0)
    for method in FILLS:
        inpaint(image, mask, method)
    for method in UNCERTAIN:
        inpaint(image, mask, method, return_uncertainty=True)


# --------------------------------------------------------------------------- one case


def _timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _choice(record: dict) -> str:
    """auto's choice per kind of hole, e.g. ``specks:tv large:harmonic``."""
    choice = record.get("auto", {}).get("choice", {})
    return " ".join(f"{kind}:{method}" for kind, method in choice.items()) or "?"


def run_case(image: np.ndarray, mask: np.ndarray) -> dict:
    """Fill one case with every method; hole MSEs, times, and the normalised errors and sigmas."""
    truth = image.astype(np.float64)
    span = float(truth.max() - truth.min()) or 1.0
    hole = truth[mask]
    out: dict = {"range": span, "pixels": int(mask.sum()), "mse": {}, "time": {}, "unc": {}}
    fills = {}
    for method in FILLS:
        fills[method], out["time"][method] = _timed(inpaint, image, mask, method)
        out["mse"][method] = float(np.mean((fills[method][mask].astype(np.float64) - hole) ** 2))
    for method in UNCERTAIN:
        job = FillJob.create(image, mask, method, uncertainty=True)
        (filled, sigma), seconds = _timed(job.run)
        if method == "auto":
            out["choice"] = _choice(job.outcome)
            out["auto_same"] = float(np.max(np.abs(filled.astype(np.float64) - fills["auto"])))
        error = (filled[mask].astype(np.float64) - hole) / span
        out["unc"][method] = {"err": error, "sigma": sigma[mask].astype(np.float64) / span, "time": seconds}
    return out


# --------------------------------------------------------------------------- statistics


def _psnr(mse: float, span: float) -> float:
    return float(10 * np.log10(span**2 / max(mse, 1e-12 * span**2)))


def accuracy(cases: list[dict]) -> dict:
    """Best single method, oracle, auto's share of the oracle gap and where auto loses."""
    nmse = {m: np.array([c["mse"][m] / c["range"] ** 2 for c in cases]) for m in FILLS}
    best = min(CANDIDATES, key=lambda m: nmse[m].mean())
    per_case = np.stack([nmse[m] for m in CANDIDATES])
    oracle = per_case.min(axis=0)
    ratio_auto = nmse["auto"] / nmse[best]
    ratio_oracle = oracle / nmse[best]
    gap = 1 - ratio_oracle.mean()
    pooled_gap = nmse[best].sum() - oracle.sum()
    log_gap = np.log(ratio_oracle).mean()
    psnr = {m: np.array([_psnr(c["mse"][m], c["range"]) for c in cases]) for m in FILLS}
    psnr["oracle"] = np.array([_psnr(o * c["range"] ** 2, c["range"]) for o, c in zip(oracle, cases)])
    losses = []
    for number, case in enumerate(cases):
        if nmse["auto"][number] > LOSS * nmse[best][number] or nmse["auto"][number] > LOSS * oracle[number]:
            losses.append((case, ratio_auto[number], nmse["auto"][number] / oracle[number],
                           CANDIDATES[int(per_case[:, number].argmin())]))
    return {
        "best": best,
        "psnr": psnr,
        "wins": {m: int(np.sum(per_case.argmin(axis=0) == i)) for i, m in enumerate(CANDIDATES)},
        "ratio_auto": float(ratio_auto.mean()),
        "ratio_oracle": float(ratio_oracle.mean()),
        "share": float((1 - ratio_auto.mean()) / gap) if gap > 0 else float("nan"),
        "share_pooled": float((nmse[best].sum() - nmse["auto"].sum()) / pooled_gap) if pooled_gap > 0 else float("nan"),
        "share_log": float(np.log(ratio_auto).mean() / log_gap) if log_gap < 0 else float("nan"),
        "losses": losses,
        "time": {m: sum(c["time"][m] for c in cases) for m in FILLS},
        "time_unc": {m: sum(c["unc"][m]["time"] for c in cases) for m in UNCERTAIN},
    }


def _spearman(sigma: np.ndarray, error: np.ndarray) -> float:
    if len(sigma) < 3 or np.ptp(sigma) == 0 or np.ptp(error) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(sigma, error).statistic)


def calibration(cases: list[dict], method: str) -> dict:
    """Coverage of ±1.645 sigma (pooled and per case) and the Spearman correlation of sigma and |err|."""
    errors, sigmas, coverage, within = [], [], [], []
    nan = zero = 0
    for case in cases:
        error, sigma = np.abs(case["unc"][method]["err"]), case["unc"][method]["sigma"]
        finite = np.isfinite(sigma)
        nan += int((~finite).sum())
        zero += int((sigma[finite] == 0).sum())
        error, sigma = error[finite], sigma[finite]
        if len(error):
            coverage.append(float(np.mean(error <= Z90 * sigma)))
            within.append(_spearman(sigma, error))
        errors.append(error)
        sigmas.append(sigma)
    error, sigma = np.concatenate(errors), np.concatenate(sigmas)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(error), MAX_PIXELS, replace=False) if len(error) > MAX_PIXELS else slice(None)
    return {
        "err": error, "sigma": sigma, "per_case": np.array(coverage),
        "coverage": float(np.mean(error <= Z90 * sigma)),
        "rms_ratio": float(np.sqrt(np.mean(error**2) / np.mean(sigma**2))),
        "median_ratio": float(np.median(error / np.maximum(sigma, 1e-300))),
        "over_range": float(np.mean(sigma > 1)),
        "max_sigma": float(sigma.max()) if len(sigma) else float("nan"),
        "spearman": _spearman(sigma[pick], error[pick]),
        "spearman_within": float(np.nanmedian(within)) if within else float("nan"),
        "nan": nan, "zero": zero,
    }


# --------------------------------------------------------------------------- report


def _label(case: dict) -> str:
    return f"{case['image']} | {case['mask']} | seed {case['seed']}"


def report(cases: list[dict], acc: dict, cal: dict[str, dict]) -> list[str]:
    """The plain-text tables and the summary block."""
    best = acc["best"]
    lines = ["", "Hole PSNR (dB), mean over cases; time: sum over cases of one call each (s)", ""]
    lines.append(f"{'method':<12} {'PSNR':>7} {'best on':>8} {'time':>8}")
    for method in (*CANDIDATES, "auto", "oracle", "gp"):
        wins = f"{acc['wins'][method]:>8d}" if method in acc["wins"] else " " * 8
        seconds = f"{acc['time'][method]:8.1f}" if method in acc["time"] else " " * 8
        note = {"oracle": "  (per case, the best of the 4 candidates)", "gp": "  (not a candidate of auto)",
                best: "  <- best single method"}.get(method, "")
        lines.append(f"{method:<12} {acc['psnr'][method].mean():7.2f} {wins} {seconds}{note}")

    lines += ["", "Mean hole PSNR (dB) per mask", ""]
    mask_names = list(dict.fromkeys(c["mask"] for c in cases))
    header = f"{'mask':<22}" + "".join(f"{m:>11}" for m in (*CANDIDATES, "auto", "oracle"))
    lines.append(header)
    for name in mask_names:
        rows = [i for i, c in enumerate(cases) if c["mask"] == name]
        cells = "".join(f"{acc['psnr'][m][rows].mean():11.2f}" for m in (*CANDIDATES, "auto", "oracle"))
        lines.append(f"{name:<22}{cells}")

    lines += ["", f"Cases where auto's hole MSE is > {LOSS:.2f}x that of {best} (best single) or of the oracle", ""]
    lines.append(f"{'case':<46} {'auto/' + best:>15} {'auto/oracle':>12} {'oracle':>11}  auto chose")
    for case, vs_best, vs_oracle, winner in acc["losses"]:
        flag = "*" if vs_best > LOSS else " "
        lines.append(f"{_label(case):<46} {vs_best:14.2f}{flag} {vs_oracle:12.2f} {winner:>11}  {case['choice']}")
    if not acc["losses"]:
        lines.append("(none)")

    lines += ["", "Uncertainty: errors and sigmas as fractions of each case's data range", ""]
    lines.append("(rms: RMS |err| / RMS sigma, med: median of |err|/sigma, 0.67 for Gaussian errors; "
                 "spearman: pooled, within: median over cases; sigma>range: share of hole pixels whose sigma "
                 "exceeds the case's data range, max: the largest sigma / range; time: sum of calls, s)")
    lines.append("")
    lines.append(f"{'method':<12} {'coverage':>9} {'per case min-max':>17} {'rms':>6} {'med':>6} "
                 f"{'spearman':>9} {'within':>7} {'NaN':>5} {'sigma=0':>8} {'sigma>range':>12} {'max':>6} {'time':>7}")
    for method, c in cal.items():
        span = f"{c['per_case'].min():.3f}-{c['per_case'].max():.3f}"
        lines.append(f"{method:<12} {c['coverage']:9.3f} {span:>17} {c['rms_ratio']:6.2f} {c['median_ratio']:6.2f} "
                     f"{c['spearman']:9.3f} {c['spearman_within']:7.3f} {c['nan']:5d} {c['zero']:8d} "
                     f"{c['over_range']:12.2%} {c['max_sigma']:6.2f} {acc['time_unc'][method]:7.1f}")

    n_loss = sum(v > LOSS for _, v, _, _ in acc["losses"])
    a = cal["auto"]
    outside = [(_label(case), cov) for case, cov in zip(cases, a["per_case"]) if not 0.85 <= cov <= 0.95]
    worst = sorted(outside, key=lambda item: abs(item[1] - 0.9), reverse=True)[:3]
    lines += [
        "",
        "=" * 28 + " summary " + "=" * 28,
        f"{len(cases)} cases ({len({c['image'] for c in cases})} images x {len(mask_names)} masks x "
        f"{len({c['seed'] for c in cases})} seed(s)); hole PSNR, data range = max - min of each crop.",
        "Mean hole PSNR: " + ", ".join(f"{m} {acc['psnr'][m].mean():.2f}" for m in CANDIDATES)
        + f"; auto {acc['psnr']['auto'].mean():.2f}; oracle {acc['psnr']['oracle'].mean():.2f} dB.",
        f"Best single method (mean MSE/range^2): {best}. Per-case MSE relative to it: auto "
        f"{acc['ratio_auto']:.3f}, oracle {acc['ratio_oracle']:.3f}.",
        f"Share of the oracle gap auto captures: {acc['share']:.0%} (per-case normalised; "
        f"{acc['share_pooled']:.0%} from pooled MSE/range^2, {acc['share_log']:.0%} from the geometric mean).",
        f"auto worse than {best} by > {LOSS - 1:.0%} on {n_loss}/{len(cases)} cases, than the oracle on "
        f"{len(acc['losses'])}/{len(cases)}.",
        f"Time: auto / biharmonic = {acc['time']['auto'] / acc['time']['biharmonic']:.1f}x (sum over cases); "
        f"with uncertainty: {acc['time_unc']['auto'] / acc['time']['biharmonic']:.1f}x.",
        "Coverage of +-1.645 sigma (pooled; per-case range): "
        + "; ".join(f"{m} {c['coverage']:.3f} ({c['per_case'].min():.2f}-{c['per_case'].max():.2f})"
                    for m, c in cal.items()) + ".",
        "Spearman(sigma, |err|) pooled / median within case: "
        + "; ".join(f"{m} {c['spearman']:.2f} / {c['spearman_within']:.2f}" for m, c in cal.items()) + ".",
        f"auto: {sum(0.85 <= v <= 0.95 for v in a['per_case'])}/{len(cases)} cases within 0.85-0.95 coverage"
        + (f"; furthest off: {'; '.join(f'{n} {v:.2f}' for n, v in worst)}." if worst else "."),
        "Sigma above the case's data range: " + "; ".join(
            f"{m} {c['over_range']:.1%} of hole pixels (max {c['max_sigma']:.1f}x)" for m, c in cal.items()) + ".",
        "=" * 65,
    ]
    return lines


# --------------------------------------------------------------------------- figure


def _binned(sigma: np.ndarray, error: np.ndarray, bins: int = 12) -> tuple[np.ndarray, ...]:
    """Per quantile bin of sigma: mean sigma, RMS error and the 90 % quantile of |err| / 1.645."""
    keep = sigma > 0
    sigma, error = sigma[keep], np.abs(error[keep])
    edges = np.unique(np.quantile(sigma, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, sigma, side="right") - 1, 0, len(edges) - 2)
    rows = [(sigma[index == b].mean(), np.sqrt(np.mean(error[index == b] ** 2)),
             np.quantile(error[index == b], 0.9) / Z90) for b in range(len(edges) - 1) if np.any(index == b)]
    return tuple(np.array(column) for column in zip(*rows))


def figure(cal: dict[str, dict], path: str, title: str) -> None:
    """Left: observed error against predicted sigma; right: coverage per case, with the 0.85-0.95 band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"auto": "#1f77b4", "biharmonic": "#d62728", "harmonic": "#2ca02c", "gp": "#9467bd"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1.15, 1]})
    low, high = np.inf, 0.0
    for method in ("auto", "biharmonic"):
        x, rms, q90 = _binned(cal[method]["sigma"], cal[method]["err"])
        left.plot(x, rms, "o-", color=colours[method], ms=4, lw=1.2, label=f"{method}: RMS error")
        left.plot(x, q90, "s--", color=colours[method], ms=4, lw=1, mfc="none",
                  label=f"{method}: 90 % quantile of |err| / 1.645")
        low, high = min(low, x.min(), rms.min(), q90.min()), max(high, x.max(), rms.max(), q90.max())
    line = np.array([low / 1.5, high * 1.5])
    left.plot(line, line, color="0.5", lw=0.8, zorder=0, label="y = x (calibrated)")
    left.set(xscale="log", yscale="log", xlim=line, ylim=line, xlabel="predicted σ (fraction of data range)",
             ylabel="observed error (fraction of data range)", title="Error against σ, 12 quantile bins of σ")
    left.legend(fontsize=7, loc="upper left", frameon=False)
    left.grid(True, which="major", lw=0.3, alpha=0.5)

    right.axhspan(0.85, 0.95, color="0.85", zorder=0, label="0.85-0.95")
    right.axhline(0.9, color="0.5", lw=0.8, zorder=1)
    rng = np.random.default_rng(0)
    for i, (method, c) in enumerate(cal.items()):
        values = c["per_case"]
        right.scatter(i + rng.uniform(-0.18, 0.18, len(values)), values, s=9, alpha=0.6, color=colours[method],
                      edgecolor="none", zorder=2)
        right.plot([i - 0.3, i + 0.3], [c["coverage"]] * 2, color="k", lw=1.5, zorder=3,
                   label="pooled over cases" if i == 0 else None)
    bottom = min(0.6, min(c["per_case"].min() for c in cal.values()) - 0.03)
    right.set(xticks=range(len(cal)), xticklabels=list(cal), ylim=(bottom, 1.005), xlim=(-0.6, len(cal) - 0.4),
              ylabel="share of hole pixels with |err| ≤ 1.645 σ", title="Coverage per case")
    right.legend(fontsize=7, loc="lower right", frameon=False)
    right.grid(True, axis="y", lw=0.3, alpha=0.5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="192² crops and one seed, to check the script")
    parser.add_argument("--seeds", type=int, help="mask seeds per (image, mask) (default 2, 1 with --quick)")
    parser.add_argument("--side", type=int, help="crop side (default 256, 192 with --quick; images smaller "
                        "than that keep their size)")
    parser.add_argument("--images", nargs="+", choices=CLEAN_IMAGES + NOISY_IMAGES, help="run only these images")
    parser.add_argument("--figure", help="save the calibration figure here (e.g. docs/images/calibration.png)")
    args = parser.parse_args(argv)
    side = args.side or (192 if args.quick else 256)
    seeds = range(args.seeds or (1 if args.quick else 2))
    names = args.images or CLEAN_IMAGES + NOISY_IMAGES

    clock = time.perf_counter()
    load = os.getloadavg()[0]
    warm_up()
    cases = []
    total = len(names) * (len(MASKS) + 1) * len(seeds)
    for name in names:
        image = load_image(name, side)
        for seed in seeds:
            for mask_name, mask in make_masks(image.shape, seed).items():
                case = {"image": name, "mask": mask_name, "seed": seed, **run_case(image, mask)}
                cases.append(case)
                psnrs = " ".join(f"{_psnr(case['mse'][m], case['range']):6.2f}" for m in (*CANDIDATES, "auto"))
                a = case["unc"]["auto"]
                coverage = np.mean(np.abs(a["err"]) <= Z90 * a["sigma"])
                print(f"[{len(cases):3d}/{total}] {_label(case):<46} PSNR h/b/tv/ex/auto {psnrs} | "
                      f"auto {case['time']['auto']:5.2f} s, bih {case['time']['biharmonic']:5.2f} s | "
                      f"cov {coverage:.2f} | {case['choice']}", flush=True)
    acc = accuracy(cases)
    cal = {method: calibration(cases, method) for method in UNCERTAIN}
    elapsed = time.perf_counter() - clock
    for line in report(cases, acc, cal):
        print(line)
    differ = [(_label(c), c["auto_same"]) for c in cases if c["auto_same"] > 0]
    if differ:
        print(f"Note: auto's fill with return_uncertainty differs from the plain call on {len(differ)} cases "
              f"(max |diff| {max(d for _, d in differ):.3g}, e.g. {differ[0][0]}).")
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"Wall time {elapsed / 60:.1f} min on {os.cpu_count()} cores (OPENBLAS_NUM_THREADS={blas}); "
          f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.")
    if args.figure:
        title = (f"return_uncertainty=True: {len(cases)} cases ({len(names)} bundled images × "
                 f"{len(MASKS) + 1} masks × {len(seeds)} seed{'s' if len(seeds) > 1 else ''}, {side}² crops)")
        figure(cal, args.figure, title)
        print(f"Figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
