"""The Compare widget's views of an :class:`~napari_inpaint.evaluation.EvaluationTable`: a table and a plot.

The table has one row per method and hole-ratio bucket, short columns that
fit a dock, the best value of each column within each bucket in bold on a
green ground, and sorts by any column (numerically).  The plot draws the
PSNR in the holes against the hole ratio, with the spread over repeated
holes as error bars and the number of holes under each bucket.
"""

from collections.abc import Callable

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor, QFont, QFontMetrics
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

# Column key of a table row -> header, value format, the better of two values (None: not a score), tooltip.
COLUMNS: dict[str, tuple[str, str, Callable | None, str]] = {
    "method": ("method", "{}", None, "The inpainting method"),
    "bucket": ("holes", "{}", None, "Share of the region hidden as holes (a 10 % bucket)"),
    "psnr_hole": ("PSNR", "{:.1f}", max, "PSNR in the holes (dB): higher is better"),
    "ssim_hole": ("SSIM", "{:.3f}", max, "Structural similarity in the holes (at most 1): higher is better"),
    "mae_hole": ("MAE %", "{:.2f}", min, "Mean absolute error in the holes (% of range): lower is better"),
    "lpips": ("LPIPS", "{:.3f}", min, "Perceptual distance (LPIPS) of the whole image: lower is better"),
    "seconds": ("s", "{:.2f}", min, "Seconds per fill: lower is faster"),
}
BEST = QColor(46, 160, 67, 90)  # a green that reads on napari's dark and light themes
_CELL_PADDING = 10  # pixels around a cell's text
SHOWN_ROWS = 12  # rows the table shows without scrolling
_DODGE = 0.06  # the plot's shift between methods, in buckets


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers, missing values last), not its text."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key

    def __lt__(self, other) -> bool:
        mine, theirs = self.key, getattr(other, "key", None)
        if mine is None or theirs is None:
            return theirs is None and mine is not None
        return mine < theirs


def make_table() -> QTableWidget:
    """An empty read-only score table, sortable, that fits its dock's width."""
    table = QTableWidget(0, 0)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.verticalHeader().setVisible(False)
    table.setSortingEnabled(True)
    table.setMinimumHeight(150)
    table.setToolTip(
        "Scores per method and hole size; click a header to sort. Bold on green: the best of its column "
        "among the rows of the same hole size"
    )
    return table


def fill_table(table: QTableWidget, evaluation) -> list[str]:
    """Show the rows of ``evaluation`` in ``table``; returns the lines to show under it (failures, notes)."""
    columns = [key for key in COLUMNS if key in evaluation.columns]
    rows = evaluation.rows
    table.setSortingEnabled(False)  # filling a sorted table moves rows under the loop
    table.clear()
    table.setColumnCount(len(columns))
    table.setRowCount(len(rows))
    for c, key in enumerate(columns):
        header = QTableWidgetItem(COLUMNS[key][0])
        header.setToolTip(COLUMNS[key][3])
        table.setHorizontalHeaderItem(c, header)
    best = _best(rows, columns)
    bold = QFont()
    bold.setBold(True)
    lines = []
    for r, row in enumerate(rows):
        note = f"{row['n']} hole{'s' if row['n'] != 1 else ''} scored"
        if row.get("psnr_image") is not None:
            note += f"; PSNR of the whole image {row['psnr_image']:.1f} dB"
        if row["error"]:
            note += f"; failed: {row['error']}"
            lines.append(f"{row['method']} ({row['bucket']}) failed: {row['error']}")
        for c, key in enumerate(columns):
            value = row[key]
            text = "–" if value is None else COLUMNS[key][1].format(value)
            item = _Item(text, _bucket_start(value) if key == "bucket" else value)
            item.setToolTip(f"{COLUMNS[key][3]}. {note}")
            if key not in ("method", "bucket"):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if value is not None and best.get((row["bucket"], key)) == value:
                item.setFont(bold)
                item.setBackground(QBrush(BEST))
            table.setItem(r, c, item)
    _fit_columns(table, bold)
    table.setSortingEnabled(True)
    lines += [f"Note: {note}" for note in evaluation.notes]
    return lines


def _fit_columns(table: QTableWidget, font: QFont) -> None:
    """Columns as wide as their texts (bold, as the best values are); the table asks its dock for that width.

    So the dock is never narrower than the table: no column is cut or
    scrolled to; the method's column takes any width left over.
    """
    metrics = QFontMetrics(font)
    header = table.horizontalHeader()
    header.setMinimumSectionSize(16)
    total = 0
    for c in range(table.columnCount()):
        cells = (table.item(r, c).text() for r in range(table.rowCount()))
        texts = [table.horizontalHeaderItem(c).text(), *cells]
        width = max(metrics.horizontalAdvance(text) for text in texts)
        header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
        table.setColumnWidth(c, width + _CELL_PADDING)
        total += width + _CELL_PADDING
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    if table.rowCount() > SHOWN_ROWS:  # a vertical scroll bar takes its share
        total += table.verticalScrollBar().sizeHint().width()
    table.setMinimumWidth(total + 2 * table.frameWidth())


def _bucket_start(label: str) -> float:
    return float(label.split("-")[0])


def _best(rows: list[dict], columns: list[str]) -> dict[tuple[str, str], float]:
    """The best value of each score column within each bucket (rows of a bucket compare like with like)."""
    best = {}
    for bucket in {row["bucket"] for row in rows}:
        for key in columns:
            better = COLUMNS[key][2]
            values = [row[key] for row in rows if row["bucket"] == bucket and row[key] is not None]
            if better is not None and len(values) > 1:
                best[(bucket, key)] = better(values)
    return best


def draw_scores(figure, evaluation, title: str) -> None:
    """Plot PSNR in the holes against the hole-ratio bucket: a line per method, error bars over repeats.

    Each bucket is labelled with the number of holes scored in it; the
    legend sits under the axes, never on the data.
    """
    rows = [row for row in evaluation.rows if row["psnr_hole"] is not None]
    buckets = sorted({row["bucket"] for row in rows}, key=_bucket_start)
    figure.clear()
    axes = figure.add_subplot()
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for k, method in enumerate(methods):
        mine = [row for row in rows if row["method"] == method]
        dodge = _DODGE * (k - (len(methods) - 1) / 2)  # side by side, so that no error bar hides another
        x = [buckets.index(row["bucket"]) + dodge for row in mine]
        y = [row["psnr_hole"] for row in mine]
        spread = [_spread(evaluation.trials, method, row["bucket"]) for row in mine]
        axes.errorbar(x, y, yerr=spread, marker="o", capsize=3, label=method)
    holes = {bucket: max(row["n"] for row in rows if row["bucket"] == bucket) for bucket in buckets}
    labels = [f"{bucket}\n{holes[bucket]} hole{'s' if holes[bucket] != 1 else ''}" for bucket in buckets]
    axes.set_xticks(range(len(buckets)), labels)
    axes.set(xlabel="share of the region hidden", ylabel="PSNR in the holes (dB)", title=title)
    axes.grid(alpha=0.3)
    if rows:
        figure.legend(loc="outside lower center", ncols=min(4, len(axes.containers)), fontsize="small",
                      frameon=False)


def _spread(trials: list[dict], method: str, bucket: str) -> float:
    """Standard deviation of the PSNR in the holes over the holes of one method and bucket (0 for one)."""
    values = [t["psnr_hole"] for t in trials if t["method"] == method and t["bucket"] == bucket
              and t["psnr_hole"] is not None]  # fmt: skip
    return float(np.std(values)) if len(values) > 1 else 0.0


def plot_canvas(width: float, height: float):
    """A matplotlib canvas for Qt with a constrained layout, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return FigureCanvasQTAgg(Figure(figsize=(width, height), layout="constrained"))
