"""The built-in demonstration: damage a real microscopy image, fill it, score the fills.

Runs offline on the plugin's sample (:func:`napari_inpaint.evaluation.sample.damaged_cell`):
:func:`skimage.data.cell`, bundled with scikit-image, with hot pixels, a
scratch and a debris blob drawn by :mod:`napari_inpaint.masks`.
"""

import time
from pathlib import Path

import numpy as np

from napari_inpaint.engine import inpaint
from napari_inpaint.evaluation import default_methods, warm_up
from napari_inpaint.evaluation.metrics import hole_mae, psnr, ssim
from napari_inpaint.evaluation.sample import damaged_cell

# The damage drawn into the sample, as named in the registry's ARTIFACTS.
SAMPLE_DAMAGE = ("hot-pixels", "scratches", "debris")
# A first small fill taking this long (seconds) shows a one-time cost, told apart from the fill's time.
FIRST_USE_NOTABLE = 0.2


def run_demo(output_dir: str | Path, methods: list[str] | tuple[str, ...] | None = None) -> list[dict]:
    """Damage a real image, fill it with several methods and score each fill.

    Writes ``original.png``, ``damaged.png``, ``mask.png``, one
    ``filled-<method>.png`` per method that ran and ``comparison.png`` (all
    panels side by side, each titled with its method, PSNR and time) into
    ``output_dir``, replacing files of those names.  Each method first fills
    a small crop, so that its time leaves out one-time costs (imports,
    compilation), which are reported apart.

    Parameters
    ----------
    output_dir : str or Path
        Folder for the PNG files; created when missing.
    methods : sequence of str, optional
        Methods to run; default: the methods a comparison offers for the
        sample's damage (:func:`napari_inpaint.evaluation.default_methods`).
        A method that is unknown, unavailable or fails is reported in its
        row, not raised.

    Returns
    -------
    list of dict
        One row for the damaged input and one per method, with keys
        ``method``, ``psnr`` (dB, whole image), ``ssim``, ``hole_mae`` (% of
        the data range), ``seconds``, ``first_use`` (the seconds of the first
        small fill when at least :data:`FIRST_USE_NOTABLE`, else None),
        ``error`` (None or a message) and ``file`` (the written PNG or None).  Scores are against the clean
        original; they are None where the method failed.

    Raises
    ------
    FileExistsError
        When ``output_dir`` is a file.

    Examples
    --------
    >>> rows = run_demo("demo-output", methods=["harmonic"])  # doctest: +SKIP
    >>> print(format_table(rows))  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} is a file; give a folder for the demo's images (made if missing)")
    output_dir.mkdir(parents=True, exist_ok=True)
    methods = default_methods(SAMPLE_DAMAGE) if methods is None else tuple(methods)
    clean, damaged, labels = damaged_cell()
    mask = labels > 0
    _save(output_dir / "original.png", clean)
    _save(output_dir / "mask.png", mask.astype(np.uint8) * 255)

    rows = [_score("damaged", clean, damaged, mask, None, output_dir / "damaged.png")]
    panels = [("original", clean), ("damaged", damaged)]
    for name in methods:
        try:
            first_use = _first_use(damaged, name)
            start = time.perf_counter()
            filled = inpaint(damaged, mask, method=name)
        except Exception as exc:  # a failing method is reported; the others still run
            rows.append(_row(name, error=f"{type(exc).__name__}: {exc}"))
            continue
        seconds = time.perf_counter() - start
        rows.append(_score(name, clean, filled, mask, seconds, output_dir / f"filled-{name}.png", first_use))
        panels.append((name, filled))
    _save_comparison(output_dir / "comparison.png", panels, {row["method"]: row for row in rows})
    return rows


def _first_use(image: np.ndarray, method: str) -> float | None:
    """Seconds of a first, small fill (imports, compilation) when notable, else None."""
    start = time.perf_counter()
    warm_up(image, None, None, method, {})
    seconds = time.perf_counter() - start
    return seconds if seconds >= FIRST_USE_NOTABLE else None


def _row(method: str, **values) -> dict:
    empty = dict.fromkeys(("psnr", "ssim", "hole_mae", "seconds", "first_use", "error", "file"))
    return {"method": method, **empty, **values}


def _score(method, clean, result, mask, seconds, path: Path, first_use: float | None = None) -> dict:
    """Write ``result`` to ``path`` and score it against ``clean``."""
    _save(path, result)
    return _row(
        method, psnr=psnr(clean, result), ssim=ssim(clean, result), hole_mae=hole_mae(clean, result, mask),
        seconds=seconds, first_use=first_use, file=str(path),
    )


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`run_demo` rows; a method's one-time cost on first use is noted apart.

    Examples
    --------
    >>> rows = [_row("damaged", psnr=28.3, ssim=0.9, hole_mae=29.0),
    ...         _row("telea", psnr=46.4, ssim=0.999, hole_mae=1.9, seconds=0.06, first_use=2.5)]
    >>> print(format_table(rows))
    method   PSNR dB    SSIM hole MAE %  seconds
    damaged    28.30  0.9000      29.00        -
    telea      46.40  0.9990       1.90     0.06  (+2.5 s on first use: imports, compilation)
    """
    width = max(len("method"), *(len(row["method"]) for row in rows))
    lines = [f"{'method':<{width}} {'PSNR dB':>8} {'SSIM':>7} {'hole MAE %':>10} {'seconds':>8}"]
    for row in rows:
        if row["error"] is not None:
            lines.append(f"{row['method']:<{width}} skipped: {row['error']}")
            continue
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        scores = f"{row['psnr']:>8.2f} {row['ssim']:>7.4f} {row['hole_mae']:>10.2f}"
        first = row["first_use"]
        first = "" if first is None else f"  (+{first:.1f} s on first use: imports, compilation)"
        lines.append(f"{row['method']:<{width}} {scores} {seconds:>8}{first}")
    return "\n".join(lines)


def _save(path: Path, image: np.ndarray) -> None:
    from skimage import io  # its codecs load when the demo runs, not when the command line starts

    io.imsave(path, image, check_contrast=False)


def _save_comparison(path: Path, panels: list[tuple[str, np.ndarray]], rows: dict[str, dict]) -> None:
    """All panels in a grid, four a row, each titled with its name, PSNR and time (drawn with Pillow)."""
    titled = [_titled(image, _title(name, rows.get(name))) for name, image in panels]
    _save(path, _tile(titled, min(4, len(titled))))


def _title(name: str, row: dict | None) -> list[str]:
    """The two lines over a panel: what it shows, and its scores."""
    if row is None:
        return [name, "the clean image"]
    if row["seconds"] is None:
        return [name, f"PSNR {row['psnr']:.1f} dB (the input)"]
    return [name, f"PSNR {row['psnr']:.1f} dB, {row['seconds']:.2f} s"]


def _titled(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """``image`` (uint8, grey) under a white strip holding ``lines`` of black text."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(12, image.shape[1] // 22)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a small bitmap font, without sizes
        font = ImageFont.load_default()
    strip = Image.new("L", (image.shape[1], round(size * 1.3) * len(lines) + size // 2), 255)
    draw = ImageDraw.Draw(strip)
    for k, line in enumerate(lines):
        draw.text((size // 3, size // 4 + k * round(size * 1.3)), line, fill=0, font=font)
    return np.concatenate([np.asarray(strip), image])


def _tile(images: list[np.ndarray], columns: int, gap: int = 8) -> np.ndarray:
    """Images of one shape in a grid with white gaps, row by row."""
    padded = [np.pad(image, ((0, gap), (0, gap)), constant_values=255) for image in images]
    padded += [np.full_like(padded[0], 255)] * (-len(padded) % columns)
    grid = np.block([padded[i : i + columns] for i in range(0, len(padded), columns)])
    return grid[:-gap, :-gap]
