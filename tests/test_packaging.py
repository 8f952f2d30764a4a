"""What the package index and the napari hub get: a buildable project, a complete sdist, a README that works there."""

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Where the README's links point on the hub and the index (relative links break there).
BLOB = "https://github.com/napari-inpaint/napari-inpaint/blob/main/"
RAW = "https://raw.githubusercontent.com/napari-inpaint/napari-inpaint/main/"


def test_the_build_backend_understands_the_licence_expression():
    # An SPDX string in ``license`` (PEP 639) needs setuptools 77; 76 fails to build.
    assert isinstance(PROJECT["project"]["license"], str)
    (setuptools,) = [r for r in PROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.search(r">=\s*(\d+)", setuptools).group(1)) >= 77


def test_every_optional_dependency_of_the_library_is_in_the_all_extra():
    extras = PROJECT["project"]["optional-dependencies"]
    name = re.compile(r"[A-Za-z0-9_.-]+")
    in_all = {name.match(r).group(0).lower() for r in extras["all"]}
    for extra in ("opencv", "astro", "zarr", "distributed", "fast"):
        for requirement in extras[extra]:
            assert name.match(requirement).group(0).lower() in in_all, (extra, requirement)


def test_the_readme_links_and_images_are_absolute_and_point_at_files_that_exist():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    for target in targets:
        assert target.startswith(("https://", "http://")), f"relative link {target!r} breaks on PyPI and the hub"
        for prefix in (BLOB, RAW):
            if target.startswith(prefix):
                assert (ROOT / target[len(prefix) :].split("#")[0]).exists(), target


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="builds the sdist from a source checkout")
def test_the_sdist_holds_the_tests_their_conftest_and_the_docs(tmp_path):
    pytest.importorskip("build")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}
    tracked = subprocess.run(["git", "ls-files", "tests", "docs"], cwd=ROOT, capture_output=True, text=True).stdout
    missing = sorted(set(tracked.split()) - names)
    assert not missing, f"not in the sdist: {missing}"
    assert "tests/conftest.py" in names and "src/napari_inpaint/napari/napari.yaml" in names
