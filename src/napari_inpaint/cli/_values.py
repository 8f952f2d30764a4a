"""Values typed on the command line: ``NAME=VALUE`` pairs, lists, and text converted to a declared kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_inpaint.cli._errors import did_you_mean

if TYPE_CHECKING:
    from napari_inpaint.registry import Method, Param

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def method_named(name: str) -> Method:
    """The method called ``name``, or a ValueError that lists the methods and suggests the closest name.

    Examples
    --------
    >>> method_named("harmonic").family
    'classical'
    >>> method_named("harmonc")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'harmonc'; known methods: ...; did you mean 'harmonic'?
    """
    from napari_inpaint.methods import get_method, list_methods

    names = [method.name for method in list_methods()]
    if name not in names:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(names)}{did_you_mean(name, names)}")
    return get_method(name)


def parse_params(method: Method, pairs: list[str]) -> dict:
    """Convert ``NAME=VALUE`` strings with the kinds the method declares (its records validate them).

    A name the method does not have is refused, with the closest of its names.
    """
    names = [param.name for param in method.params]
    params = {}
    for pair in pairs:
        name, text = split_pair(pair)
        if not names:
            raise ValueError(f"method {method.name!r} has no parameters; leave out --param {pair}")
        if name not in names:
            raise ValueError(f"method {method.name!r} has no parameter {name!r}; its parameters are: "
                             f"{', '.join(names)}{did_you_mean(name, names)}")
        params[name] = convert(text, method.param(name).kind, f"parameter {name!r} of method {method.name!r}")
    return params


def split_pair(pair: str) -> tuple[str, str]:
    """``NAME=VALUE`` as ``(NAME, VALUE)``, or a ValueError that shows the expected form."""
    name, equals, text = pair.partition("=")
    if not equals or not name:
        raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
    return name, text


def convert(text: str, kind: type, where: str):
    """``text`` as a value of ``kind`` (int, float, bool or str), or a ValueError that names ``where``.

    Examples
    --------
    >>> convert("3", int, "--size"), convert("off", bool, "--flag")
    (3, False)
    """
    if kind is str:
        return text
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{where} must be true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(f"{where} must be {expected}, got {text!r}") from None


def split(values: list[str] | None) -> list[str]:
    """Items of options that take lists with commas, spaces or both.

    Examples
    --------
    >>> split(["a,b", "c"])
    ['a', 'b', 'c']
    """
    return [item for value in values or () for item in value.split(",") if item]


def domain(param: Param) -> str:
    """The values ``param`` accepts, in a few characters: ``a|b``, a pattern, or a range ``[low, high]``."""
    if param.choices is not None:
        return "|".join(param.choices)
    if param.pattern is not None:
        return param.pattern
    if param.low is None and param.high is None:
        return ""
    low = "-inf" if param.low is None else f"{param.low:g}"
    high = "inf" if param.high is None else f"{param.high:g}"
    return f"[{low}, {high}]"
