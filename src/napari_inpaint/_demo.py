"""The built-in demonstration: damage a real microscopy image, fill it, score the fills.

Runs offline on the plugin's sample (:func:`napari_inpaint._sample_data.damaged_cell`):
:func:`skimage.data.cell`, bundled with scikit-image, with hot pixels, a
scratch and a debris blob drawn by :mod:`napari_inpaint.masks`.
"""

import time
from pathlib import Path

import numpy as np

from napari_inpaint._engine import inpaint
from napari_inpaint._sample_data import damaged_cell
from napari_inpaint.evaluate import default_methods
from napari_inpaint.metrics import hole_mae, psnr, ssim

# The damage drawn into the sample, as named in the registry's ARTIFACTS.
SAMPLE_DAMAGE = ("hot-pixels", "scratches", "debris")


def run_demo(output_dir: str | Path, methods: list[str] | tuple[str, ...] | None = None) -> list[dict]:
    """Damage a real image, fill it with several methods and score each fill.

    Writes ``original.png``, ``damaged.png``, ``mask.png``, one
    ``filled-<method>.png`` per method that ran and ``comparison.png`` (all
    panels side by side) into ``output_dir``, replacing files of those names.

    Parameters
    ----------
    output_dir : str or Path
        Folder for the PNG files; created when missing.
    methods : sequence of str, optional
        Methods to run; default: the methods a comparison offers for the
        sample's damage (:func:`napari_inpaint.evaluate.default_methods`).
        A method that is unknown, unavailable or fails is reported in its
        row, not raised.

    Returns
    -------
    list of dict
        One row for the damaged input and one per method, with keys
        ``method``, ``psnr`` (dB, whole image), ``ssim``, ``hole_mae`` (% of
        the data range), ``seconds``, ``error`` (None or a message) and
        ``file`` (the written PNG or None).  Scores are against the clean
        original; they are None where the method failed.

    Examples
    --------
    >>> rows = run_demo("demo-output", methods=["harmonic"])  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    methods = default_methods(SAMPLE_DAMAGE) if methods is None else tuple(methods)
    clean, damaged, labels = damaged_cell()
    mask = labels > 0
    _save(output_dir / "original.png", clean)
    _save(output_dir / "mask.png", mask.astype(np.uint8) * 255)

    rows = [_score("damaged", clean, damaged, mask, None, output_dir / "damaged.png")]
    panels = [("original", clean), ("damaged", damaged)]
    for name in methods:
        start = time.perf_counter()
        try:
            filled = inpaint(damaged, mask, method=name)
        except Exception as exc:  # a failing method is reported; the others still run
            rows.append(_row(name, error=f"{type(exc).__name__}: {exc}"))
            continue
        seconds = time.perf_counter() - start
        rows.append(_score(name, clean, filled, mask, seconds, output_dir / f"filled-{name}.png"))
        panels.append((name, filled))
    _save_comparison(output_dir / "comparison.png", panels, {row["method"]: row for row in rows})
    return rows


def _row(method: str, **values) -> dict:
    empty = dict.fromkeys(("psnr", "ssim", "hole_mae", "seconds", "error", "file"))
    return {"method": method, **empty, **values}


def _score(method, clean, result, mask, seconds, path: Path) -> dict:
    """Write ``result`` to ``path`` and score it against ``clean``."""
    _save(path, result)
    return _row(
        method, psnr=psnr(clean, result), ssim=ssim(clean, result), hole_mae=hole_mae(clean, result, mask),
        seconds=seconds, file=str(path),
    )


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`run_demo` rows."""
    width = max(len("method"), *(len(row["method"]) for row in rows))
    lines = [f"{'method':<{width}} {'PSNR dB':>8} {'SSIM':>7} {'hole MAE %':>10} {'seconds':>8}"]
    for row in rows:
        if row["error"] is not None:
            lines.append(f"{row['method']:<{width}} skipped: {row['error']}")
            continue
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        scores = f"{row['psnr']:>8.2f} {row['ssim']:>7.4f} {row['hole_mae']:>10.2f}"
        lines.append(f"{row['method']:<{width}} {scores} {seconds:>8}")
    return "\n".join(lines)


def _save(path: Path, image: np.ndarray) -> None:
    from skimage import io  # its codecs load when the demo runs, not when the command line starts

    io.imsave(path, image, check_contrast=False)


def _save_comparison(path: Path, panels: list[tuple[str, np.ndarray]], rows: dict[str, dict]) -> None:
    """All panels in a grid: titled with matplotlib when installed, else tiled with NumPy."""
    columns = min(4, len(panels))
    grid_rows = -(-len(panels) // columns)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        _save(path, _tile([image for _, image in panels], columns))
        return
    height, width = panels[0][1].shape
    figure = Figure(figsize=(3 * columns, 3 * grid_rows * height / width + 0.6 * grid_rows))
    axes = figure.subplots(grid_rows, columns, squeeze=False).ravel()
    for axis, (name, image) in zip(axes, panels):
        axis.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        row = rows.get(name)
        axis.set_title(name if row is None else f"{name}\nPSNR {row['psnr']:.1f} dB", fontsize=9)
    for axis in axes:
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=200)


def _tile(images: list[np.ndarray], columns: int, gap: int = 8) -> np.ndarray:
    """Images of one shape in a grid with white gaps, row by row."""
    padded = [np.pad(image, ((0, gap), (0, gap)), constant_values=255) for image in images]
    padded += [np.full_like(padded[0], 255)] * (-len(padded) % columns)
    grid = np.block([padded[i : i + columns] for i in range(0, len(padded), columns)])
    return grid[:-gap, :-gap]
