"""The method registry: the single description of every inpainting method.

Each module of :mod:`napari_inpaint.methods` registers its fill functions here
with :func:`register`.  The engine, the command line, the evaluation and the
napari widgets all read the same :class:`Method` records, so what a method is
(its family, the damage it suits, the weights it downloads) and what it takes
(a parameter's type, default and range) are written once, next to the code
that uses them; :func:`register` refuses a record that disagrees with its
fill function's signature.

A fill function has the signature::

    fill(image, mask, *, <its parameters>, [rng], [check], [progress]) -> ndarray

where ``image`` is a float64 array of shape ``mask.shape + (C,)`` (C >= 1
channels, last) whose masked entries are zero and must be ignored, ``mask`` is
a boolean array (2D or 3D, ``True`` marks unknown pixels) holding at least one
known and one unknown pixel, and the result has the shape of ``image``; only
its masked entries are used; the engine divides it by a power of two (an
exact scaling) so that its values are of order one.  Keywords supplied by
the engine when the function's signature names them: ``rng`` (a seeded
:class:`numpy.random.Generator`), ``check`` (a callable to call inside long
loops: it raises when the user cancelled), ``progress`` (``progress(step,
steps)`` for methods that iterate: the engine turns it into fractional
progress of the whole run), ``scale`` (the power of two the crop was divided
by, for a method that needs the image's own units), ``reference`` (the crop
of the plane's aligned reference, same shape and scale as ``image``; None
when the call has none; see :mod:`napari_inpaint.engine.reference`),
``spread`` (True when the call asks for its uncertainty: the function then
returns ``(filled, std)``, its own standard deviation of each pixel's error,
which the engine calibrates on probes instead of the spread of the known
pixels around it; see :mod:`napari_inpaint.engine.calibration`) and
``prepared`` (below).

A method may also register a preparation, called once per ``inpaint`` call
before any fill (e.g. to train a network once on every plane of a stack)::

    prepare(stack, *, <its parameters>, [rng], [check], [progress], [status], [probes], [adjacent]) -> object

where ``stack`` is a :class:`Stack`; every fill of the call then receives the
result as ``prepared``; a ``provenance`` mapping on that result (an attribute)
is recorded with the outputs of the call.  A parameter belongs to the fill,
the preparation or both.  The preparation sees the image's own values, while fills see crops
divided by a power of two (exact, see :func:`napari_inpaint.inpaint`): what
it hands the fills must not depend on the units (normalise, as ``learned``
does), or the fill multiplies by ``scale``.  ``check`` and ``progress``
behave as for fills (``progress`` may be None); ``status(text)`` says what
the preparation is doing, for a status line; ``probes(method, spatial_ndim=None, prepared=None)``
fills holes hidden in the call's known pixels with another method (its
defaults; ``prepared`` the result of its preparation) and returns its errors there: ``{kind: (mean squared error,
pixels, each probe's mean squared error, each probe's pixels)}`` per kind
of hole (:data:`napari_inpaint.masks.HOLE_CLASSES`, and
``"all"``), as ``auto`` chooses (:mod:`napari_inpaint.engine.probes`);
``adjacent(planes, masks, check=None)`` builds, for planes in memory (a
volume's crop, ``(N,) + spatial + (C,)``), each plane's reference from its
neighbours as ``reference="adjacent"`` does (with the call's ``align``;
:func:`napari_inpaint.engine.reference.adjacent_planes`), for the result to
hand its fills.  Docstrings of fill functions
may use the shared blocks of :data:`FILL_DOCS` as ``%(name)s``.
"""

import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The damage vocabulary, shared by the method records, the mask generators
# (napari_inpaint.masks), the docs, the command line and the widgets.
ARTIFACTS = {
    "hot-pixels": "isolated hot, dead or stuck pixels",
    "scratches": "thin lines: scratches, cracks, fibres",
    "debris": "dust, debris or bubbles covering a compact blob",
    "dropped-lines": "missing scan lines, detector rows/columns, z-slices or frames",
    "saturation": "saturated or clipped regions",
    "seams": "stitching seams and detector gaps",
    "large-holes": "large missing regions that need invented structure",
    "texture": "holes in textured or noisy regions",
    "cosmic-rays": "cosmic-ray hits: sharp dots and tracks in astronomical or counting-detector images",
}

# What kind of method it is: front ends choose and group methods by family.
FAMILIES = {
    "classical": "classical fill: no network, fast on a CPU",
    "network": "deep network trained on the image itself: no download, slow on a CPU",
    "pretrained": "pretrained deep network: downloads its weights once",
}

# Keywords the engine supplies to a fill function that names them.
ENGINE_KEYWORDS = frozenset({"rng", "check", "progress", "reference", "prepared", "scale", "spread"})
# Keywords the engine supplies to a preparation function that names them.
PREPARE_KEYWORDS = frozenset({"rng", "check", "progress", "status", "probes", "adjacent"})
# The arguments of ``napari_inpaint.inpaint`` other than a method's parameters (its ``**params``): a
# parameter of one of these names would be taken by the engine, so no method may declare one.
ENGINE_OPTIONS = frozenset({
    "image", "mask", "method", "channel_axis", "spatial_ndim", "progress", "cancel", "noise", "seed", "clip",
    "reference", "align", "status", "return_uncertainty",
})

#: Numpydoc blocks shared by the fill functions' docstrings (``%(name)s`` there).
FILL_DOCS = {
    "image_mask": """image : ndarray, shape mask.shape + (C,)
    Float image, channels last; masked entries are zero and ignored.
mask : ndarray of bool
    True on the pixels to fill.""",
    "returns": """ndarray
    ``image`` with the masked pixels replaced.""",
    "check": """check : callable, optional
    Called regularly; raises to cancel.""",
    "progress": """progress : callable, optional
    ``progress(step, steps)`` as the iteration advances.""",
    "rng": """rng : numpy.random.Generator, optional
    The engine's seeded generator: the source of every random draw.""",
    "reference": """reference : ndarray, optional
    The crop of the aligned reference, of ``image``'s shape and scale.""",
    "device": """device : str
    PyTorch device: ``auto`` (a GPU when present), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``; see :func:`napari_inpaint.models.devices.select_device`.""",
}


def fill_docs(function: Callable) -> Callable:
    """Replace each ``%(name)s`` line of ``function``'s docstring by the block ``FILL_DOCS[name]``.

    Each line of the block is indented as the placeholder is.

    Examples
    --------
    >>> def fill(image, mask):
    ...     '''Fill.
    ...
    ...     Parameters
    ...     ----------
    ...     %(image_mask)s
    ...     '''
    >>> print(fill_docs(fill).__doc__.splitlines()[4])
        image : ndarray, shape mask.shape + (C,)
    """

    def block(match: re.Match) -> str:
        indent, name = match.group(1), match.group(2)
        return "\n".join(indent + line if line else line for line in FILL_DOCS[name].splitlines())

    if function.__doc__:
        function.__doc__ = re.sub(r"^([ \t]*)%\((\w+)\)s$", block, function.__doc__, flags=re.MULTILINE)
    return function


@dataclass(frozen=True)
class Stack:
    """Everything one inpaint call holds, for a method's preparation.

    Attributes
    ----------
    planes : array_like
        The planes (or volumes) to fill, ``(N,) + spatial + (C,)`` in the
        image's dtype: a read-only NumPy view, or a dask array (read what
        you need of it).
    masks : ndarray of bool
        ``(N,) + spatial``, True on the pixels to fill (may be a broadcast
        view: one mask for every plane).
    reference : callable or None
        ``reference(i)``: the aligned, complete reference of plane ``i``
        (float64, ``spatial + (C,)``), when the call has reference data.
    """

    planes: Any
    masks: np.ndarray
    reference: Callable[[int], np.ndarray] | None = None


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
    pattern : str, optional
        Regular expression a ``str`` value must match in full (when the
        values cannot be listed, e.g. ``cuda:N``).
    suggestions : callable, optional
        ``suggestions() -> list of str``: the values worth offering now (e.g.
        the devices present), for drop-downs; computed when asked.
    advanced : bool
        A parameter most users leave at its default: front ends fold it
        away (the widgets' "Advanced" section).
    file : bool
        The value is a file path (front ends offer a file picker).
    probe : object, optional
        A cheaper value for fills of probes that only rank methods
        (``auto``'s choice, :mod:`napari_inpaint.engine.probes`): a looser
        tolerance, a smaller search.  None: the default.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    suggestions: Callable[[], list[str]] | None = None
    advanced: bool = False
    file: bool = False
    probe: Any = None

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
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise ValueError(f"{where} is not valid ({self.help}); got {value!r}")
            return str(value)
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
            "pattern": self.pattern,
            "advanced": self.advanced,
            "file": self.file,
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
    family : str
        A key of :data:`FAMILIES`: ``classical``, ``network`` or ``pretrained``.
    artifacts : tuple of str
        Keys of :data:`ARTIFACTS` this method suits best.
    any_hole : bool
        False for a method made for its artifacts only (``interpolate``
        fills along one axis: dropped lines); comparisons then offer it only
        for that damage.
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
    needs_torch : bool
        Whether the method runs on PyTorch.
    weights : tuple of str
        Names of the pretrained weights (:mod:`napari_inpaint.models`) the
        method downloads before its first run.
    needs_reference : bool
        Whether the method cannot fill without reference data
        (``inpaint(..., reference=...)``).
    engine_keywords : frozenset of str
        The engine's keywords (``rng``, ``check``, ``progress``,
        ``reference``, ``prepared``) that the fill function takes.
    prepare : callable, optional
        The per-call preparation (see the module docstring).
    local_fill : bool
        Whether the fill of a pixel depends only on the data within a few
        hole widths of it (plus the margin): a long thin hole (a stitching
        seam, a dead column) may then be filled in overlapping pieces
        instead of one crop as long as the hole.  False for a fill that
        reaches as far as the hole is long (``interpolate`` along its axis).
    """

    name: str
    fill: Callable[..., Any]
    summary: str
    family: str
    artifacts: tuple[str, ...]
    any_hole: bool
    ndims: tuple[int, ...]
    params: tuple[Param, ...]
    margin: Callable[[dict], int]
    channel_independent: bool
    needs_torch: bool
    weights: tuple[str, ...]
    needs_reference: bool
    engine_keywords: frozenset[str]
    prepare: Callable[..., Any] | None = None
    local_fill: bool = False

    @property
    def fill_keywords(self) -> frozenset[str]:
        """The keywords of the fill function: a parameter of the preparation only is not among them."""
        return frozenset(inspect.signature(self.fill).parameters)

    @property
    def uses_reference(self) -> bool:
        """Whether the method takes reference data (``inpaint(..., reference=...)``)."""
        return "reference" in self.engine_keywords

    @property
    def needs_download(self) -> bool:
        """Whether the method fetches pretrained weights before its first run."""
        return bool(self.weights)

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
            "family": self.family,
            "artifacts": list(self.artifacts),
            "any_hole": self.any_hole,
            "ndims": list(self.ndims),
            "needs_torch": self.needs_torch,
            "needs_download": self.needs_download,
            "weights": list(self.weights),
            "reference": "needed" if self.needs_reference else "optional" if self.uses_reference else "unused",
            "local_fill": self.local_fill,
            "params": [p.describe() for p in self.params],
        }


_METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    summary: str,
    family: str,
    artifacts: Sequence[str],
    any_hole: bool = True,
    ndims: Sequence[int] = (2,),
    params: Sequence[Param] = (),
    margin: int | Callable[[dict], int] = 2,
    channel_independent: bool = False,
    needs_torch: bool = False,
    weights: Sequence[str] = (),
    needs_reference: bool = False,
    prepare: Callable | None = None,
    local_fill: bool = False,
) -> Callable:
    """Decorator that registers a fill function as method ``name``.

    The record is checked against the function: every :class:`Param` must be
    a keyword of the function with the same default, and every keyword of the
    function (but the engine's ``rng``, ``check`` and ``progress``) a
    :class:`Param`.  No parameter may take the name of an argument of
    :func:`napari_inpaint.inpaint` (:data:`ENGINE_OPTIONS`), so that a
    method's parameters and the engine's options never share a name.  The
    docstring's ``%(name)s`` blocks are filled from :data:`FILL_DOCS`.

    Raises
    ------
    ValueError
        For an unknown family or artifact, a pretrained method without
        weights, parameters that disagree with the function's signature, a
        parameter named like an option of the engine, or a name another
        function has registered already.
    """
    bad = set(artifacts) - set(ARTIFACTS)
    if bad:
        raise ValueError(f"unknown artifact kinds {sorted(bad)}; known: {sorted(ARTIFACTS)}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} of method {name!r}; known: {', '.join(FAMILIES)}")
    if (family == "pretrained") != bool(weights):
        raise ValueError(f"method {name!r}: a pretrained method names its weights, and only it does")

    def decorator(fill: Callable) -> Callable:
        signature = inspect.signature(fill).parameters
        _check_params(name, params, signature, {} if prepare is None else inspect.signature(prepare).parameters)
        if needs_reference and "reference" not in signature:
            raise ValueError(f"method {name!r} needs a reference but its fill function takes none")
        taken = _METHODS.get(name)
        if taken is not None and (taken.fill.__module__, taken.fill.__qualname__) != (
            fill.__module__, fill.__qualname__
        ):  # the same function again is a module imported twice (a reload), not a second method
            raise ValueError(
                f"method {name!r} is registered already (by {taken.fill.__module__}): choose another name"
            )
        _METHODS[name] = Method(
            name=name,
            fill=fill_docs(fill),
            summary=summary,
            family=family,
            artifacts=tuple(artifacts),
            any_hole=any_hole,
            ndims=tuple(ndims),
            params=tuple(params),
            margin=margin if callable(margin) else (lambda _params, m=int(margin): m),
            channel_independent=channel_independent,
            needs_torch=needs_torch,
            weights=tuple(weights),
            needs_reference=needs_reference,
            engine_keywords=ENGINE_KEYWORDS & set(signature),
            prepare=prepare,
            local_fill=local_fill,
        )
        return fill

    return decorator


def _check_params(name: str, params: Sequence[Param], signature: Mapping, preparation: Mapping) -> None:
    """Refuse parameters that neither the fill nor the preparation takes with the same default, or forgotten ones."""
    keywords = {}
    for parameters, supplied in ((signature, ENGINE_KEYWORDS), (preparation, PREPARE_KEYWORDS)):
        keywords.update(
            (key, p.default) for key, p in parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and key not in supplied
        )
    declared = {p.name: p.default for p in params}
    problems = [
        f"{key!r} is an argument of inpaint() itself: name the parameter otherwise"
        for key in declared.keys() & ENGINE_OPTIONS
    ]
    problems += [
        f"{key!r} is not a keyword-only argument of the fill or preparation function"
        for key in declared.keys() - keywords
    ]
    problems += [
        f"keyword {key!r} of the fill or preparation function has no Param" for key in keywords.keys() - declared
    ]
    problems += [
        f"{key!r} defaults to {declared[key]!r} in its Param but to {keywords[key]!r} in the function"
        for key in declared.keys() & keywords.keys() if declared[key] != keywords[key]
    ]
    if problems:
        raise ValueError(f"method {name!r}: " + "; ".join(sorted(problems)))
