"""docs/writing-a-method.md holds: the package it shows, installed as pip would, adds a method everywhere.

The module and the entry point are taken from the page itself, so that the
page's example is what runs: the package is laid out as an installed
distribution (its module and a ``.dist-info`` with ``entry_points.txt``) on
``PYTHONPATH`` of fresh processes, which find it as they would after
``pip install``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

PAGE = Path(__file__).parents[1] / "docs" / "writing-a-method.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The environment of a process that has the page's package installed."""
    site = tmp_path_factory.mktemp("site")
    module = next(block for block in _blocks("python") if "@register(" in block)
    (site / "inpaint_nearest.py").write_text(module)
    toml = _blocks("toml")[0]
    group, name, module = re.search(r'\[project\.entry-points\."([\w.]+)"\]\n(\w+) = "([\w.]+)"', toml).groups()
    info = site / "inpaint_nearest-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inpaint-nearest\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")  # what pip writes for it
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def _run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_pages_method_is_listed_with_its_parameter_by_the_command_line(installed, tmp_path):
    listed = _run([sys.executable, "-m", "napari_inpaint", "methods", "--json"], installed, tmp_path)
    assert listed.returncode == 0, listed.stderr
    nearest = next(m for m in json.loads(listed.stdout) if m["name"] == "nearest")
    assert nearest["ndims"] == [2, 3] and nearest["params"][0]["choices"] == ["euclidean", "taxicab", "chessboard"]
    table = _run([sys.executable, "-m", "napari_inpaint", "methods"], installed, tmp_path)
    assert re.search(r"^nearest +classical +2D/3D +-\n +Copy each missing pixel", table.stdout, re.MULTILINE)


def test_the_pages_method_fills_from_the_nearest_known_pixel_in_numpy_dask_and_the_command_line(
    installed, tmp_path
):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4000, (3, 40, 48), dtype=np.uint16)
    mask = np.zeros((40, 48), bool)
    mask[rng.integers(2, 38, 30), rng.integers(2, 46, 30)] = True
    mask[10:14, 20:23] = True
    tifffile.imwrite(tmp_path / "hot.tif", image)
    tifffile.imwrite(tmp_path / "hot-mask.tif", mask.astype(np.uint8) * 255)
    script = """
import dask.array as da, numpy as np, tifffile
from napari_inpaint import inpaint
image, mask = tifffile.imread("hot.tif"), tifffile.imread("hot-mask.tif") > 0
numpy = inpaint(image, mask, "nearest", metric="taxicab")
lazy = inpaint(da.from_array(image, chunks=(1, 20, 48)), mask, "nearest", metric="taxicab")
np.save("numpy.npy", numpy)
np.save("dask.npy", lazy.compute())
"""
    run = _run([sys.executable, "-c", script], installed, tmp_path)
    assert run.returncode == 0, run.stderr
    cli = _run(
        [sys.executable, "-m", "napari_inpaint", "fill", "hot.tif", "--mask", "hot-mask.tif", "--method", "nearest",
         "--param", "metric=taxicab", "-o", "filled.tif"],
        installed, tmp_path,
    )
    assert cli.returncode == 0, cli.stderr
    # The answer, worked out here: each hole pixel takes the value of its nearest known pixel (taxicab).
    indices = ndimage.distance_transform_cdt(mask, metric="taxicab", return_distances=False, return_indices=True)
    expected = image[(slice(None), *indices)]
    results = [np.load(tmp_path / "numpy.npy"), np.load(tmp_path / "dask.npy")]
    results.append(tifffile.imread(tmp_path / "filled.tif"))
    for filled in results:
        np.testing.assert_array_equal(filled, expected)
        np.testing.assert_array_equal(filled[:, ~mask], image[:, ~mask])


def test_a_package_whose_module_fails_is_reported_and_the_built_in_methods_stay(installed, tmp_path):
    site = Path(installed["PYTHONPATH"].split(os.pathsep)[0])
    broken = tmp_path / "site"
    broken.mkdir()
    info = broken / "broken_methods-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-methods\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[napari_inpaint.methods]\nbroken = no_such_module\n")
    env = {**installed, "PYTHONPATH": os.pathsep.join([str(broken), str(site)])}
    run = _run([sys.executable, "-c", "from napari_inpaint import list_methods; print(len(list_methods()))"], env,
               tmp_path)
    assert run.returncode == 0, run.stderr
    assert "the inpainting methods of broken-methods (broken = no_such_module) could not be loaded" in run.stderr
    assert "ModuleNotFoundError" in run.stderr
    from napari_inpaint import list_methods

    assert int(run.stdout) == len(list_methods()) + 1  # the built-in ones, and the page's nearest
