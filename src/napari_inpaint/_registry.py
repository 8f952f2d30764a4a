"""The method registry: the single description of every inpainting method.

Each method family module in :mod:`napari_inpaint.methods` registers its fill
functions here with :func:`register`.  The engine, the command line and the
napari widgets all read the same :class:`Method` records, so a parameter's
type, default and range are written once, next to the code that uses it.

A fill function has the signature::

    fill(image, mask, *, <its parameters>, [rng], [check]) -> ndarray

where ``image`` is a float64 array of shape ``mask.shape + (C,)`` (C >= 1
channels, last) whose masked entries are zero and must be ignored, ``mask`` is
a boolean array (2D or 3D, ``True`` marks unknown pixels) holding at least one
known and one unknown pixel, and the result has the shape of ``image``; only
its masked entries are used.  Three keywords are supplied by the engine when
the function's signature names them: ``rng`` (a seeded
:class:`numpy.random.Generator`), ``check`` (a callable to call inside long
loops: it raises when the user cancelled) and ``progress`` (``progress(step,
steps)`` for methods that iterate: the engine turns it into fractional
progress of the whole run).
"""

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Artifact vocabulary shared by the method records, the docs and the widgets.
ARTIFACTS = {
    "hot-pixels": "isolated hot, dead or stuck pixels",
    "scratches": "thin lines: scratches, cracks, fibres",
    "debris": "dust, debris or bubbles covering a compact blob",
    "dropped-lines": "missing scan lines, detector rows/columns, z-slices or frames",
    "saturation": "saturated or clipped regions",
    "seams": "stitching seams and detector gaps",
    "large-holes": "large missing regions that need invented structure",
    "texture": "holes in textured or noisy regions",
}


@dataclass(frozen=True)
class Param:
    """One tunable parameter of a method.

    Parameters
    ----------
    name : str
        Keyword name passed to the fill function.
    kind : type
        One of ``int``, ``float``, ``bool`` or ``str``.
    default : object
        Default value.
    help : str
        One-line description shown in the CLI and the widgets.
    low, high : float, optional
        Inclusive range for numeric parameters.
    choices : tuple of str, optional
        Allowed values for a ``str`` parameter.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def validate(self, value: Any, method: str) -> Any:
        """Return ``value`` coerced to :attr:`kind`, or raise a clear error."""
        where = f"parameter {self.name!r} of method {method!r}"
        if self.kind is bool:
            if not isinstance(value, (bool, np.bool_, numbers.Integral)) or value not in (0, 1):
                raise TypeError(f"{where} must be True or False, got {value!r}")
            return bool(value)
        if self.kind is str:
            if not isinstance(value, str):
                raise TypeError(f"{where} must be a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{where} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        # numbers.Real admits NumPy scalars (np.int64(5), np.float32(1e-3)) as well as Python numbers.
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or (
            self.kind is int and not (isinstance(value, numbers.Integral) or float(value).is_integer())
        ):
            raise TypeError(f"{where} must be {'an integer' if self.kind is int else 'a number'}, got {value!r}")
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number; got {value!r}")
        value = self.kind(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{where} must lie in [{self.low}, {self.high}]; got {value!r}")
        return value

    def describe(self) -> dict:
        """Plain-data description (for JSON, the CLI and widget generation)."""
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "help": self.help,
            "range": None if self.low is None and self.high is None else (self.low, self.high),
            "choices": None if self.choices is None else list(self.choices),
        }


@dataclass(frozen=True)
class Method:
    """Everything the engine and the front ends know about one method.

    Attributes
    ----------
    name : str
        Name used as ``inpaint(..., method=name)``.
    fill : callable
        The fill function (see the module docstring for its contract).
    summary : str
        One-line description.
    artifacts : tuple of str
        Keys of :data:`ARTIFACTS` this method suits best.
    ndims : tuple of int
        Spatial dimensionalities supported: ``(2,)`` or ``(2, 3)``.
    params : tuple of Param
        Tunable parameters.
    margin : callable
        ``margin(params) -> int``: pixels of known context the method needs
        around each hole.  The engine crops each hole with this margin.
    channel_independent : bool
        True when channels are filled independently of each other; the engine
        then stacks planes that share a mask as extra channels and fills them
        in one call (one matrix factorisation for a whole stack).
    needs_torch, needs_download : bool
        Whether the method runs on PyTorch, and whether it fetches weights.
    """

    name: str
    fill: Callable[..., Any]
    summary: str
    artifacts: tuple[str, ...]
    ndims: tuple[int, ...]
    params: tuple[Param, ...]
    margin: Callable[[dict], int]
    channel_independent: bool
    needs_torch: bool = False
    needs_download: bool = False
    engine_keywords: frozenset[str] = field(default=frozenset())

    def param(self, name: str) -> Param:
        """Return the :class:`Param` called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve(self, given: dict) -> dict:
        """Validate ``given`` keyword values and complete them with defaults."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise TypeError(
                f"method {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {names}"
            )
        return {name: p.validate(given[name], self.name) if name in given else p.default for name, p in known.items()}

    def describe(self) -> dict:
        """Plain-data description (for JSON, the CLI and widget generation)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "artifacts": list(self.artifacts),
            "ndims": list(self.ndims),
            "needs_torch": self.needs_torch,
            "needs_download": self.needs_download,
            "params": [p.describe() for p in self.params],
        }


_METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    summary: str,
    artifacts: Sequence[str],
    ndims: Sequence[int] = (2,),
    params: Sequence[Param] = (),
    margin: int | Callable[[dict], int] = 2,
    channel_independent: bool = False,
    needs_torch: bool = False,
    needs_download: bool = False,
) -> Callable:
    """Decorator that registers a fill function as method ``name``."""
    bad = set(artifacts) - set(ARTIFACTS)
    if bad:
        raise ValueError(f"unknown artifact kinds {sorted(bad)}; known: {sorted(ARTIFACTS)}")

    def decorator(fill: Callable) -> Callable:
        signature = inspect.signature(fill).parameters
        _METHODS[name] = Method(
            name=name,
            fill=fill,
            summary=summary,
            artifacts=tuple(artifacts),
            ndims=tuple(ndims),
            params=tuple(params),
            margin=margin if callable(margin) else (lambda _params, m=int(margin): m),
            channel_independent=channel_independent,
            needs_torch=needs_torch,
            needs_download=needs_download,
            engine_keywords=frozenset({"rng", "check", "progress"} & set(signature)),
        )
        return fill

    return decorator


def _load() -> dict[str, Method]:
    # Importing the package registers every built-in method.
    from napari_inpaint import methods  # noqa: F401

    return _METHODS


def list_methods() -> list[Method]:
    """Describe every available inpainting method.

    Returns
    -------
    list of Method
        One record per method, in registration order; ``Method.describe()``
        gives a plain dictionary.

    Examples
    --------
    >>> from napari_inpaint import list_methods
    >>> [m.name for m in list_methods()][:2]
    ['harmonic', 'biharmonic']
    """
    return list(_load().values())


def get_method(name: str) -> Method:
    """Return the :class:`Method` called ``name`` or raise a ValueError listing the known ones."""
    methods = _load()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(methods)}")
    return methods[name]
