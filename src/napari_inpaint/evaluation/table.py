"""The results of :func:`napari_inpaint.evaluation.evaluate`: scores per method and hole-ratio bucket.

:class:`EvaluationTable` holds one trial per method and hole and groups them
into 10 % buckets of hole ratio; :class:`Example` keeps the fills of one
scored hole for a front end to show.
"""

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUCKET_WIDTH = 0.1

# Column key -> (text header, format of a value in the text table).
_COLUMNS = {
    "method": ("method", "{}"),
    "mask": ("mask", "{}"),
    "bucket": ("holes", "{}"),
    "ratio": ("hole %", "{:.1%}"),
    "psnr_hole": ("PSNR hole dB", "{:.2f}"),
    "ssim_hole": ("SSIM hole", "{:.4f}"),
    "mae_hole": ("MAE hole %", "{:.2f}"),
    "psnr_image": ("PSNR image dB", "{:.2f}"),
    "lpips": ("LPIPS", "{:.4f}"),
    "seconds": ("seconds", "{:.3f}"),
    "n": ("n", "{}"),
    "error": ("error", "{}"),
}
_SCORES = ("ratio", "psnr_hole", "ssim_hole", "mae_hole", "psnr_image", "lpips", "seconds")


def bucket_of(ratio: float) -> str:
    """The label of the 10 % bucket holding a hole ratio: ``(k/10, (k+1)/10]`` is ``"10k-10(k+1)%"``.

    Examples
    --------
    >>> bucket_of(0.05), bucket_of(0.1), bucket_of(0.25)
    ('0-10%', '0-10%', '20-30%')
    """
    k = max(0, math.ceil(round(ratio / BUCKET_WIDTH, 9)) - 1)
    width = round(100 * BUCKET_WIDTH)
    return f"{k * width}-{(k + 1) * width}%"


@dataclass(frozen=True)
class Example:
    """One scored hole and the fills that were scored on it, to show next to the table.

    Attributes
    ----------
    kind : str
        The hole's mask kind.
    ratio : float
        The target hole ratio it was drawn at.
    hole : ndarray of bool
        The hidden pixels, of the scored plane's spatial shape.
    fills : dict of str to ndarray
        Each method's fill of the scored plane (the image, or the plane of a
        stack), in its shape and layout; methods that failed on this hole
        are absent.
    """

    kind: str
    ratio: float
    hole: np.ndarray
    fills: dict[str, np.ndarray]


@dataclass
class EvaluationTable:
    """Scores of an :func:`evaluate` run: one row per method and hole-ratio bucket.

    Attributes
    ----------
    trials : list of dict
        One record per (hidden mask, method): keys ``method``, ``mask``,
        ``ratio`` (actual hole ratio), ``bucket``, ``seed``, the scores
        ``psnr_hole``, ``ssim_hole``, ``mae_hole``, ``psnr_image``,
        ``lpips`` (None when not computed), ``seconds``, and ``error`` (None,
        or the message of a fill that failed; its scores are None).
    notes : list of str
        Remarks printed under the table (e.g. why LPIPS is missing).
    per_mask : bool
        Group the rows also by mask kind.
    example : Example or None
        With ``evaluate(..., keep_example=True)``: the first hole kind at the
        middle ratio (first repeat) and its fills; None otherwise, or when
        that hole did not fit.

    Examples
    --------
    >>> table = EvaluationTable([
    ...     {"method": "harmonic", "mask": "strokes", "ratio": 0.05, "bucket": "0-10%", "seed": 0,
    ...      "psnr_hole": 30.0, "ssim_hole": 0.8, "mae_hole": 2.0, "psnr_image": 43.0, "lpips": None,
    ...      "seconds": 0.01, "error": None}])
    >>> table.rows[0]["psnr_hole"], table.columns[:3]
    (30.0, ['method', 'bucket', 'ratio'])
    """

    trials: list[dict]
    notes: list[str] = field(default_factory=list)
    per_mask: bool = False
    example: Example | None = None

    @property
    def columns(self) -> list[str]:
        """Keys of :attr:`rows`, in display order (LPIPS only when some trial has it)."""
        keys = ["method"] + (["mask"] if self.per_mask else []) + ["bucket", *_SCORES, "n", "error"]
        if all(trial.get("lpips") is None for trial in self.trials):
            keys.remove("lpips")
        return keys

    @property
    def rows(self) -> list[dict]:
        """One dict per group (method, [mask,] bucket), in order of first appearance.

        Scores are means over the group's successful trials (None when none
        succeeded), ``n`` their count, ``error`` the distinct failure
        messages joined by ``"; "`` (None when none failed).
        """
        group_keys = ("method", "mask", "bucket") if self.per_mask else ("method", "bucket")
        groups: dict[tuple, list[dict]] = {}
        for trial in self.trials:
            groups.setdefault(tuple(trial[key] for key in group_keys), []).append(trial)
        # Buckets in ascending order within each method (and mask), methods as they came.
        order = {key: i for i, key in enumerate(dict.fromkeys(k[:-1] for k in groups))}
        rows = []
        for key in sorted(groups, key=lambda k: (order[k[:-1]], _bucket_start(k[-1]))):
            trials = groups[key]
            done = [t for t in trials if t["error"] is None]
            row = dict(zip(group_keys, key))
            for score in _SCORES:
                values = [t[score] for t in done if t.get(score) is not None]
                row[score] = float(np.mean(values)) if values else None
            errors = list(dict.fromkeys(t["error"] for t in trials if t["error"] is not None))
            row.update(n=len(done), error="; ".join(errors) or None)
            rows.append({column: row[column] for column in self.columns})
        return rows

    def to_dict(self) -> dict:
        """Plain data: ``{"columns": [...], "rows": [{column: value}], "notes": [...]}``.

        ``pandas.DataFrame(table.to_dict()["rows"])`` makes a data frame.
        """
        return {"columns": self.columns, "rows": self.rows, "notes": list(self.notes)}

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV text (empty cells for missing values); also written to ``path`` if given."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_text(self) -> str:
        """An aligned plain-text table, failures and notes below it."""
        columns = [c for c in self.columns if c != "error"]
        cells = [[_COLUMNS[c][0] for c in columns]]
        failures = []
        for row in self.rows:
            cells.append(["-" if row[c] is None else _COLUMNS[c][1].format(row[c]) for c in columns])
            if row["error"] is not None:
                where = " ".join(str(row[c]) for c in columns[: columns.index("bucket") + 1])
                failures.append(f"{where}: {row['error']}")
        widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
        text_columns = {"method", "mask", "bucket"}
        lines = [
            "  ".join(
                cell.ljust(width) if column in text_columns else cell.rjust(width)
                for cell, width, column in zip(line, widths, columns)
            ).rstrip()
            for line in cells
        ]
        lines += [f"failed: {failure}" for failure in failures]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _bucket_start(label: str) -> int:
    return int(label.split("-")[0])
