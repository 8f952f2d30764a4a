"""Shared test setup.

Without a display, Qt is switched to its ``offscreen`` platform so that the
widget logic tests (which use napari's ViewerModel, no OpenGL canvas) still
run; tests that need a real napari window skip themselves in that case.
"""

import hashlib
import os
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest


@pytest.fixture(autouse=True)
def widget_settings(tmp_path_factory, monkeypatch):
    """Widgets keep their settings in a folder of this test only, never in the user's configuration."""
    monkeypatch.setenv("NAPARI_INPAINT_SETTINGS", str(tmp_path_factory.mktemp("settings")))


@pytest.fixture
def register_method():
    """``register_method(name, **record)``: a decorator registering a toy method for one test.

    The record's ``summary``, ``family`` and ``artifacts`` default to a toy's;
    the registry is restored after the test, so toy methods never leak.
    """
    from napari_inpaint import registry as _registry

    saved = dict(_registry._METHODS)

    def register(name: str, **record):
        record = {"summary": "a toy method of a test", "family": "classical", "artifacts": (), **record}
        return _registry.register(name, **record)

    yield register
    _registry._METHODS.clear()
    _registry._METHODS.update(saved)


def _stand_in_networks() -> dict:
    """The stand-in modules, defined in a function so that only the tests that use them import PyTorch."""
    import torch

    class MeanLama(torch.nn.Module):
        """LaMa's contract: RGB [0, 1] and a 1 = hole mask in; the hole gets each channel's known mean."""

        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            assert image.shape[-2] % 8 == 0 and image.shape[-1] % 8 == 0
            known = 1.0 - mask
            mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)
            return image * known + mean * mask

    class MeanMigan(torch.nn.Module):
        """MI-GAN's contract: 1x4x512x512 (0.5 - mask, erased RGB in [-1, 1]) in, RGB in [-1, 1] out."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1] == 4 and x.shape[2] == 512 and x.shape[3] == 512
            hole = 0.5 - x[:, :1]
            image = x[:, 1:]
            known = 1.0 - hole
            mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)
            return image * known + mean * hole

    return {"lama": MeanLama(), "migan": MeanMigan()}


@pytest.fixture(scope="session")
def stand_in_networks() -> dict:
    """Stand-ins for the pretrained networks, keyed by model name: the real TorchScript signatures, and
    each hole filled with the mean of the known pixels, so that results can be computed by hand."""
    pytest.importorskip("torch")
    return _stand_in_networks()


#: A folder of real weight files under their registry file names, for the tests that run real networks
#: (CI fills it with deepCR's, from its source distribution on PyPI: see .ci/run).
REAL_WEIGHTS_ENV = "NAPARI_INPAINT_TEST_WEIGHTS"


@pytest.fixture(scope="session")
def real_weight_files() -> dict:
    """``{model name: path}`` of the files in ``$NAPARI_INPAINT_TEST_WEIGHTS`` with the registry's hash."""
    from napari_inpaint import models
    from napari_inpaint.models import download as _download

    folder = Path(os.environ.get(REAL_WEIGHTS_ENV) or "/nonexistent")
    return {
        name: folder / spec.filename
        for name, spec in models.MODELS.items()
        if _download.matches_known_hash(folder / spec.filename, spec.known_hash)
    }


@pytest.fixture(scope="session")
def require_real_weights(real_weight_files):
    """``check(names)``: skip the test unless the real files of every model in ``names`` are there; fail
    instead when ``NAPARI_INPAINT_REQUIRE_WEIGHTS`` is set (CI, where .ci/run provides deepCR's)."""

    def check(names) -> None:
        missing = sorted(set(names) - set(real_weight_files))
        if missing:
            reason = f"the weights {missing} are not in ${REAL_WEIGHTS_ENV} (.ci/run puts deepCR's there)"
            if os.environ.get("NAPARI_INPAINT_REQUIRE_WEIGHTS"):
                pytest.fail(reason)
            pytest.skip(reason)

    return check


@pytest.fixture
def real_weights_mirror(real_weight_files, require_real_weights, monkeypatch, tmp_path):
    """``use(*names)``: the registry downloads the real files of ``names`` from their folder (as a mirror)
    into an empty cache, so that the hash check runs on them (skips as :func:`require_real_weights`)."""
    from napari_inpaint import models

    def use(*names) -> None:
        require_real_weights(names)
        monkeypatch.setenv(models.MIRROR_ENV, str(real_weight_files[names[0]].parent))
        monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))

    return use


@pytest.fixture(scope="session")
def _stand_in_mirror(tmp_path_factory, stand_in_networks, real_weight_files) -> Path:
    """A mirror folder holding the stand-in networks under the real weights' file names, written once,
    and the real weights there are (``real_weight_files``)."""
    import torch

    from napari_inpaint import models

    mirror = tmp_path_factory.mktemp("mirror")
    with warnings.catch_warnings():
        # torch.jit.script is deprecated (not removed) in recent PyTorch.
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, module in stand_in_networks.items():
            torch.jit.script(module).save(str(mirror / models.MODELS[name].filename))
    for path in real_weight_files.values():
        shutil.copyfile(path, mirror / path.name)
    return mirror


@pytest.fixture
def stand_in_weights(monkeypatch, tmp_path, _stand_in_mirror) -> set[str]:
    """Serve stand-ins for the pretrained weights from a mirror folder, through the real download path.

    The models are registered under their real names with the stand-ins'
    hashes, the cache is an empty folder of this test and
    ``NAPARI_INPAINT_MIRROR`` names the mirror, so each method fetches (pooch
    checks the hash) and loads its weights as it would in use.  Returns the
    names of the models that have a stand-in.
    """
    from napari_inpaint import models

    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.setattr(models, "_LOADED", {})
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(models.MIRROR_ENV, str(_stand_in_mirror))
    served = set()
    for name, spec in list(models.MODELS.items()):
        path = _stand_in_mirror / spec.filename
        if path.is_file():
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            models.register_model(replace(spec, known_hash=f"sha256:{digest}", size=len(data)))
            served.add(name)
    return served


@pytest.fixture
def method(request):
    """The method of an indirect parametrisation, its pretrained weights served from a mirror folder:
    stand-in networks, or the real files there are (deepCR's in CI); a test needing other weights skips
    (fails in CI: :func:`require_real_weights`)."""
    method = request.param
    if method.weights:
        served = request.getfixturevalue("stand_in_weights")
        missing = sorted(set(method.weights) - served)
        if missing:
            request.getfixturevalue("require_real_weights")(missing)
    return method
