"""Every front end fills exactly as the engine does, for every method and every parameter.

Each method of ``list_methods()`` runs with a value other than the default
for each of its parameters (:func:`non_default`) through
:func:`napari_inpaint.inpaint_layer`, the Inpaint widget and
``napari-inpaint fill --param``, and each result must be bit-identical to
``inpaint(image, mask, method, **params)``.  A parameter named like a
front end's own setting (``telea``'s ``radius`` and the Points radius) must
reach the method, never the setting.
"""

import numpy as np
import pytest
import tifffile
from napari.components import ViewerModel

from napari_inpaint import Method, inpaint, inpaint_layer, list_methods
from napari_inpaint.cli import main
from napari_inpaint.models.devices import DEVICE

METHODS = list_methods()


def non_default(method: Method) -> dict:
    """A valid value other than the default for each parameter of ``method``, as cheap as the range allows.

    Numbers take their lowest value (the smallest budget of a network), or
    the next one up when that is the default; strings another choice (or
    suggestion), a device the CPU.  A file parameter keeps its default: no file is given.
    """
    values = {}
    for param in method.params:
        if param.file:
            continue
        if param is DEVICE:
            values[param.name] = "cpu"
        elif param.kind is bool:
            values[param.name] = not param.default
        elif param.kind is str:
            offered = param.choices or param.suggestions()
            values[param.name] = next(choice for choice in reversed(offered) if choice != param.default)
        elif param.low != param.default:
            values[param.name] = param.kind(param.low)
        else:
            values[param.name] = param.kind(param.low + 1)
    return values


def test_non_default_gives_every_parameter_but_files_another_valid_value():
    for method in METHODS:
        values = non_default(method)
        resolved = method.resolve(values)  # valid
        for param in method.params:
            assert param.file or resolved[param.name] != param.default, (method.name, param.name)


def _image() -> np.ndarray:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :48]
    plane = 2000 + 800 * np.sin(xx / 4.0) * np.cos(yy / 6.0) + rng.normal(0, 30, (48, 48))
    return plane.astype(np.uint16)


def _mask() -> np.ndarray:
    mask = np.zeros((48, 48), bool)
    mask[18:26, 20:27] = True
    mask[36, 6:40] = True
    return mask


each_method = pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS], indirect=True)


@each_method
def test_every_front_end_gives_the_engines_pixels(method, qtbot, tmp_path):
    from napari_inpaint.napari.widgets import InpaintWidget
    from napari_inpaint.napari.widgets._common import set_control_value

    image, mask = _image(), _mask()
    reference = np.roll(image, 1, axis=1) if method.uses_reference else None
    params = non_default(method)
    expected = inpaint(image, mask, method.name, reference=reference, **params)

    viewer = ViewerModel()
    source = viewer.add_image(image, name="image")
    damage = viewer.add_labels(mask.astype(np.uint8), name="damage")
    if reference is not None:
        viewer.add_image(reference, name="reference")
    given_reference = None if reference is None else "reference"
    # ``radius`` is also the Points radius of the console call: the method's must reach the method.
    console = inpaint_layer(viewer, source, damage, method.name, params=params, reference=given_reference,
                            radius=1.0)
    np.testing.assert_array_equal(console.data, expected, err_msg=f"inpaint_layer, {method.name}")

    widget = InpaintWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.image.value, widget.mask.value, widget.method.value = source, damage, method.name
    if reference is not None:
        widget.reference.value = viewer.layers["reference"]
    for name, value in params.items():
        assert set_control_value(widget.param_control(name), value), (method.name, name, value)
    widget.results.value = "new"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    made = viewer.layers[f"image inpainted ({method.name})"]
    np.testing.assert_array_equal(made.data, expected, err_msg=f"Inpaint widget, {method.name}: {widget.status.value}")

    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8) * 255)
    arguments = ["fill", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", method.name]
    if reference is not None:
        tifffile.imwrite(tmp_path / "reference.tif", reference)
        arguments += ["--reference", str(tmp_path / "reference.tif")]
    for name, value in params.items():
        arguments += ["--param", f"{name}={value}"]
    assert main([*arguments, "-o", str(tmp_path / "filled.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "filled.tif"), expected, err_msg=f"CLI, {method.name}")


def test_a_method_parameter_named_like_an_engine_option_is_refused(register_method):
    from napari_inpaint import Param

    with pytest.raises(ValueError, match="'seed' is an argument of inpaint"):

        @register_method("seeded", params=(Param("seed", int, 0, "a seed of its own"),))
        def seeded(image, mask, *, seed=0):
            return image


def test_the_reserved_names_are_the_engines_arguments():
    import inspect

    from napari_inpaint.registry import ENGINE_OPTIONS

    arguments = inspect.signature(inpaint).parameters
    assert {name for name, p in arguments.items() if p.kind is not p.VAR_KEYWORD} == ENGINE_OPTIONS


def _references(method: Method, stack: np.ndarray) -> list:
    """Each kind of reference ``method`` takes: none, an array of the stack's shape, one plane, adjacent planes."""
    if not method.uses_reference:
        return [None]
    shifted = np.roll(stack, 1, axis=-1)
    return [*([] if method.needs_reference else [None]), shifted, shifted[0], "adjacent"]


@each_method
def test_every_method_gives_the_same_pixels_on_numpy_and_dask_input_with_every_reference(method):
    # The two executors (in memory, a dask graph) fill the same units with the same function: bit-identical,
    # whatever the chunks (planes split across chunks too), the reference or the stochastic parts (noise).
    import dask.array as da

    stack = np.stack([_image(), np.roll(_image(), 3, axis=0), np.roll(_image(), -2, axis=1)])
    mask = _mask()
    params = non_default(method)
    for reference in _references(method, stack):
        expected = inpaint(stack, mask, method.name, reference=reference, noise="gaussian", **params)
        lazy_reference = da.from_array(reference, chunks=24) if isinstance(reference, np.ndarray) else reference
        for chunks in ((1, 48, 48), (2, 24, 40)):
            filled = inpaint(da.from_array(stack, chunks=chunks), da.from_array(mask, chunks=chunks[1:]),
                             method.name, reference=lazy_reference, noise="gaussian", **params)
            assert isinstance(filled, da.Array) and filled.chunks == da.from_array(stack, chunks=chunks).chunks
            described = "adjacent planes" if isinstance(reference, str) else np.shape(reference)
            np.testing.assert_array_equal(filled.compute(), expected,
                                          err_msg=f"{method.name}, reference {described}, chunks {chunks}")
            np.testing.assert_array_equal(expected[:, ~mask], stack[:, ~mask])


@each_method
def test_every_method_gives_the_same_uncertainty_on_numpy_and_dask_input(method):
    # return_uncertainty leaves the fill as it is and gives the same sigma through both executors: float32,
    # the image's shape, 0 on known pixels, finite and positive on the holes (probes fit in these planes).
    import dask
    import dask.array as da

    stack = np.stack([_image(), np.roll(_image(), 3, axis=0), np.roll(_image(), -2, axis=1)])
    mask = _mask()
    params = non_default(method)
    reference = _references(method, stack)[-1]
    expected = inpaint(stack, mask, method.name, reference=reference, **params)
    filled, sigma = inpaint(stack, mask, method.name, reference=reference, return_uncertainty=True, **params)
    np.testing.assert_array_equal(filled, expected)
    assert sigma.dtype == np.float32 and sigma.shape == stack.shape
    assert (sigma[:, ~mask] == 0).all() and np.isfinite(sigma[:, mask]).all() and (sigma[:, mask] > 0).all()
    lazy = inpaint(da.from_array(stack, chunks=(2, 24, 40)), mask, method.name,
                   reference=reference, return_uncertainty=True, **params)  # fmt: skip
    lazy_filled, lazy_sigma = dask.compute(*lazy)
    np.testing.assert_array_equal(lazy_filled, expected)
    np.testing.assert_array_equal(lazy_sigma, sigma, err_msg=method.name)
