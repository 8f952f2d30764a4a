"""The demo a newcomer runs first: its labelled comparison figure and its table."""

import sys

import numpy as np
from skimage import io as skio

from napari_inpaint.cli.demo import FIRST_USE_NOTABLE, _row, format_table, run_demo


def test_demo_figure_labels_every_panel_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # a fresh install: no matplotlib
    rows = run_demo(tmp_path, methods=["harmonic", "biharmonic"])
    assert [row["method"] for row in rows] == ["damaged", "harmonic", "biharmonic"]
    original = skio.imread(tmp_path / "original.png")
    figure = skio.imread(tmp_path / "comparison.png")
    height, width = original.shape
    # Four panels in a row (original, damaged, two fills), each under a white strip holding its title.
    strip = figure.shape[0] - height
    assert 20 < strip < height // 4 and figure.shape[1] == 4 * width + 3 * 8
    for k in range(4):
        left = k * (width + 8)
        title, panel = figure[:strip, left : left + width], figure[strip:, left : left + width]
        assert (title < 100).sum() > 200, f"panel {k} has no title"  # dark text on white
        assert (title == 255).mean() > 0.8
        if k == 0:
            np.testing.assert_array_equal(panel, original)
    # The titles differ: each names its method and scores (different text, different pixels).
    titles = [figure[:strip, k * (width + 8) : k * (width + 8) + width] for k in range(4)]
    assert all(not np.array_equal(titles[i], titles[j]) for i in range(4) for j in range(i + 1, 4))


def test_demo_table_tells_first_use_costs_apart():
    rows = [
        _row("damaged", psnr=28.3, ssim=0.9, hole_mae=29.0),
        _row("telea", psnr=46.4, ssim=0.999, hole_mae=1.9, seconds=0.06, first_use=3.21),
        _row("harmonic", psnr=47.0, ssim=0.999, hole_mae=2.3, seconds=0.04),
    ]
    lines = format_table(rows).splitlines()
    assert lines[2].endswith("0.06  (+3.2 s on first use: imports, compilation)")
    assert lines[3].endswith("0.04") and "first use" not in lines[1]


def test_demo_rows_time_the_fill_apart_from_its_first_use(tmp_path):
    rows = run_demo(tmp_path, methods=["harmonic"])
    first = rows[1]["first_use"]
    assert rows[1]["seconds"] > 0 and (first is None or first >= FIRST_USE_NOTABLE)
