"""The registry's own rules: what register() accepts, Param validation, and the facts every record keeps.

"A new method is one module and one register() call": the last test
registers a toy method and shows that it is listed, filled by ``inpaint``
and held to the whole contract of test_contract.py.
"""

import json
import re

import numpy as np
import pytest
from test_contract import check_cancel, check_fills, check_progress, check_threads, tiny_budget

from napari_inpaint import Param, get_method, inpaint, list_methods, models
from napari_inpaint.detect import COSMIC_RAY_DETECTORS
from napari_inpaint.evaluation import metrics
from napari_inpaint.models.devices import DEVICE, device_choices
from napari_inpaint.registry import FILL_DOCS


def _fill(image, mask, *, size: int = 3):
    return image


SIZE = Param("size", int, 3, "h")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ((SIZE, Param("radius", int, 1, "h")), "'radius' is not a keyword-only argument of"),
        ((Param("size", int, 5, "h"),), "'size' defaults to 5 in its Param but to 3 in the function"),
        ((), "keyword 'size' of the fill .*has no Param"),
    ],
)
def test_register_refuses_params_that_disagree_with_the_fill(register_method, params, match):
    with pytest.raises(ValueError, match=match):
        register_method("disagrees", params=params)(_fill)
    assert "disagrees" not in [m.name for m in list_methods()]


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"family": "quantum"}, "unknown family 'quantum'"),
        ({"artifacts": ("smudges",)}, r"unknown artifact kinds \['smudges'\]"),
        ({"family": "pretrained"}, "a pretrained method names its weights"),
        ({"weights": ("lama",)}, "a pretrained method names its weights, and only it does"),
    ],
)
def test_register_refuses_an_unknown_family_or_artifact_and_misplaced_weights(register_method, record, match):
    with pytest.raises(ValueError, match=match):
        register_method("refused", params=(SIZE,), **record)(_fill)
    assert "refused" not in [m.name for m in list_methods()]


def test_register_refuses_a_needed_reference_the_fill_does_not_take(register_method):
    with pytest.raises(ValueError, match="needs a reference but its fill function takes none"):
        register_method("blind", params=(SIZE,), needs_reference=True)(_fill)


def test_register_refuses_a_second_function_under_a_taken_name(register_method):
    # A package's method must never replace a built-in one (or another package's) silently.
    def harmonic(image, mask):
        return image

    with pytest.raises(ValueError, match=r"'harmonic' is registered already \(by napari_inpaint\.methods\.diffusion\)"):
        register_method("harmonic")(harmonic)
    assert get_method("harmonic").fill.__module__ == "napari_inpaint.methods.diffusion"


def test_fill_docs_blocks_are_filled(register_method):
    for method in list_methods():
        assert not re.search(r"%\(\w+\)s", method.fill.__doc__ or ""), method.name

    @register_method("documented")
    def documented(image, mask):
        """Fill.

        Parameters
        ----------
        %(image_mask)s
        """
        return image

    indented = "\n".join("        " + line for line in FILL_DOCS["image_mask"].splitlines())
    assert indented in get_method("documented").fill.__doc__


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "cuda:12", "mps"])
def test_device_names_match_the_pattern(device):
    assert DEVICE.validate(device, "m") == device


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:", "cuda:one", "CPU", " cpu"])
def test_other_device_names_are_refused(device):
    with pytest.raises(ValueError, match=f"parameter 'device' of method 'm' is not valid.*got {device!r}"):
        DEVICE.validate(device, "m")


def test_device_suggestions_are_the_devices_present():
    assert DEVICE.suggestions() == device_choices()
    assert DEVICE.suggestions()[0] == "auto" and DEVICE.suggestions()[-1] == "cpu"


def test_params_take_numpy_scalars():
    count, fraction = Param("n", int, 1, "h", 0, 5), Param("x", float, 0.5, "h", 0.0, 1.0)
    flag = Param("b", bool, False, "h")
    assert count.validate(np.int64(5), "m") == 5 and type(count.validate(np.uint8(3), "m")) is int
    assert count.validate(3.0, "m") == 3 and count.validate(np.float64(2.0), "m") == 2
    assert fraction.validate(np.float32(0.25), "m") == 0.25
    assert type(fraction.validate(np.float32(0.25), "m")) is float
    assert fraction.validate(np.int64(1), "m") == 1.0
    assert flag.validate(np.bool_(True), "m") is True and flag.validate(0, "m") is False


@pytest.mark.parametrize(
    ("param", "value", "error", "match"),
    [
        (Param("x", float, 0.5, "h", 0.0, 1.0), float("nan"), ValueError, "must be a finite number"),
        (Param("x", float, 0.5, "h"), np.float64(np.inf), ValueError, "must be a finite number"),
        (Param("n", int, 1, "h", 0, 5), float("nan"), TypeError, "must be an integer"),
        (Param("n", int, 1, "h", 0, 5), 2.5, TypeError, "must be an integer"),
        (Param("n", int, 1, "h", 0, 5), True, TypeError, "must be an integer"),
        (Param("n", int, 1, "h", 0, 5), np.int64(6), ValueError, r"must lie in \[0, 5\]"),
        (Param("x", float, 0.5, "h"), "0.5", TypeError, "must be a number"),
        (Param("b", bool, False, "h"), 2, TypeError, "must be True or False"),
        (Param("s", str, "a", "h", choices=("a", "b")), "c", ValueError, "must be one of a, b"),
        (Param("s", str, "a", "h"), 1, TypeError, "must be a string"),
    ],
)
def test_bad_param_values_are_refused_clearly(param, value, error, match):
    with pytest.raises(error, match=f"parameter {param.name!r} of method 'm' {match}"):
        param.validate(value, "m")


def test_describe_is_plain_data():
    for method in list_methods():
        described = method.describe()
        assert json.loads(json.dumps(described))["name"] == method.name
        assert [p["name"] for p in described["params"]] == [p.name for p in method.params]
    axis = next(p for p in get_method("interpolate").describe()["params"] if p["name"] == "axis")
    assert axis == {
        "name": "axis", "type": "int", "default": 0, "help": axis["help"], "range": (0, 2), "choices": None,
        "pattern": None, "advanced": False, "file": False,
    }


def test_every_torch_method_shares_the_one_device_param():
    torch_methods = [m for m in list_methods() if m.needs_torch]
    assert torch_methods
    for method in torch_methods:
        assert method.param("device") is DEVICE, method.name
    for method in list_methods():
        assert all(p is DEVICE for p in method.params if p.name == "device"), method.name


def test_every_method_weights_name_a_registered_model():
    for method in list_methods():
        assert set(method.weights) <= set(models.MODELS), method.name
        assert method.needs_download == bool(method.weights) == (method.family == "pretrained")


def test_every_registered_model_is_used_by_a_method_a_detector_or_a_metric():
    used = {name for method in list_methods() for name in method.weights} | set(metrics.LPIPS_MODELS)
    used |= {name for detector in COSMIC_RAY_DETECTORS.values() for name in detector.weights}
    assert set(models.MODELS) == used  # no registered stubs


def test_a_new_method_is_one_register_call_and_gets_the_contract(register_method):
    @register_method(
        "known-mean",
        ndims=(2, 3),
        params=(Param("steps", int, 1000, "rounds of the toy's work", 1, 10_000),),
        margin=1,
        channel_independent=True,
    )
    def known_mean(image, mask, *, steps=1000, check=None, progress=None):
        """Fill each channel with the mean of its known pixels, in ``steps`` rounds of the same work."""
        for step in range(1, steps + 1):
            if check is not None:
                check()
            if progress is not None:
                progress(step, steps)
        filled = image.copy()
        filled[mask] = image[~mask].mean(axis=0)
        return filled

    method = get_method("known-mean")
    assert method in list_methods() and method.engine_keywords == {"check", "progress"}
    assert tiny_budget(method) == {"steps": 2}

    image = np.arange(64.0).reshape(8, 8)
    mask = np.zeros(image.shape, bool)
    mask[2:4, 2:4] = True
    filled = inpaint(image, mask, "known-mean", steps=3)
    # The engine fills each hole in a crop with a margin of 1 pixel: the mean of the 12 pixels around it.
    np.testing.assert_allclose(filled[mask], image[1:5, 1:5][~mask[1:5, 1:5]].mean())

    check_fills(method)
    check_cancel(method)
    check_progress(method, register_method)
    check_threads(method)
