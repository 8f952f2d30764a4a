"""``auto``: for each kind of hole, the method whose fills of probes hidden in the image's own pixels came closest.

Before any fill, the engine copies the call's holes onto known pixels
(:mod:`napari_inpaint.engine.probes`); each candidate fills those probes
as it would fill the holes, and for each kind of hole
(:data:`napari_inpaint.masks.HOLE_CLASSES`: specks, lines, blobs, large)
``auto`` keeps the first candidate unless others beat it clearly on that
kind's probes (a paired test over at least 3 probes); then the one of those
with the smallest mean squared error.  A kind with too few probes (50
pixels, 3 probes) is judged so on all the probes.  The
choice, each candidate's probe error and how many holes of each kind the
call has are recorded in the provenance (``auto``).

Candidates, in order of preference (the first is the safe choice): the
classical methods of the registry that need no preparation, by default
``harmonic, biharmonic, tv`` for planes (``guided``
too with reference data), and for volumes ``harmonic, biharmonic`` in 3D,
``biharmonic:2d`` and ``guided:adjacent``.  ``NAME:2d`` fills a volume plane
by plane with a 2D method; ``NAME:adjacent`` too, with a method that takes a
reference, each plane's reference built from its neighbouring planes in the
crop as for ``reference="adjacent"`` (aligned, see
:mod:`napari_inpaint.engine.reference`): a stack filled as a volume can so
take debris on moving or textured frames from the frames around it, as
``guided`` with ``reference="adjacent"`` does (its probes are filled by
``auto``'s own fill, as no method of the registry fills so).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint.masks import HOLE_CLASSES, hole_kinds
from napari_inpaint.registry import _METHODS, Param, Stack, register

# exemplar is left out: on the benchmark its probes never showed it clearly better (docs/uncertainty.md), and it
# costs a fifth of auto's time; name it in ``candidates`` to try it.
# In 3D, guided:adjacent stands for ``guided`` with reference="adjacent" (moving or textured frames, where
# neither 2D nor 3D fills see the structure): a stack filled as a volume has no other reference.
_DEFAULTS = {2: ("harmonic", "biharmonic", "tv"), 3: ("harmonic", "biharmonic", "biharmonic:2d", "guided:adjacent")}
_WITH_REFERENCE = ("guided",)
# What the widgets offer: the defaults, the fast pair, and the thorough set (with the Gaussian process).
_OFFERED = ("default", "harmonic,biharmonic", "harmonic,biharmonic,tv,exemplar,gp")
# The value of ``candidates`` that stands for the defaults of the call (they depend on its dimensions and reference).
_DEFAULT = "default"
# A kind of hole is chosen for on its own probes when they hold at least this many pixels, in this many probes.
_MIN_PIXELS = 50
_MIN_PROBES = 3
# Standard errors by which a candidate must beat the first one (a paired test over the probes).
_CLEARLY = 2.0
# NAME:2d fills a volume plane by plane; NAME:adjacent too, each plane with its neighbours in the crop as reference.
_PLANE_BY_PLANE, _ADJACENT = "2d", "adjacent"


def _names(text: str, ndim: int, reference: bool) -> list[str]:
    """The candidates of ``text`` (comma-separated; ``default`` or empty: the defaults), checked."""
    names = _listed(text)
    if not names:
        names = [*_DEFAULTS[ndim], *(_WITH_REFERENCE if reference else ())]
    for name in names:
        _check(name, ndim, reference)
    return names


def _check(name: str, ndim: int, reference: bool) -> None:
    method, mode = _split(name)
    usable = [
        m.name for m in _METHODS.values()
        if m.family == "classical" and m.prepare is None and m.name != "auto" and m.any_hole
    ]
    if method not in usable:
        raise ValueError(
            f"auto cannot choose {name!r}: its candidates are classical methods without a preparation, "
            f"{', '.join(usable)} (NAME:2d fills volumes plane by plane)"
        )
    if mode not in (None, _PLANE_BY_PLANE, _ADJACENT):
        raise ValueError(f"auto cannot choose {name!r}: NAME:2d and NAME:adjacent are the ways to name a method "
                         "that fills volumes plane by plane")
    spec = _METHODS[method]
    dims = 2 if mode else ndim
    if dims not in spec.ndims or (mode and ndim != 3):
        raise ValueError(f"auto cannot use {name!r} on {ndim}D data: {method} fills "
                         f"{' or '.join(f'{n}D' for n in spec.ndims)} data (NAME:2d is for volumes, as is "
                         "NAME:adjacent)")
    if mode == _ADJACENT and not spec.uses_reference:
        raise ValueError(f"auto cannot use {name!r}: {method} takes no reference")
    if spec.needs_reference and not reference and mode != _ADJACENT:
        raise ValueError(f"auto cannot use {name!r} without reference data (reference='adjacent' or an image)")


def _split(name: str) -> tuple[str, str | None]:
    """The method a candidate names, and how it fills a volume: None (as the call), ``2d`` or ``adjacent``."""
    method, _, mode = name.partition(":")
    return method, mode or None


def _listed(text: str) -> list[str]:
    """The names ``text`` lists (none for ``default``)."""
    return [name.strip() for name in text.split(",") if name.strip() and name.strip() != _DEFAULT]


def _margin(params: dict) -> int:
    # guided:adjacent takes 2 planes on each side of a hole from the crop; guided's margin (its context, 8) has them.
    names = _listed(params["candidates"])
    names = names or [*_DEFAULTS[2], *_DEFAULTS[3], *_WITH_REFERENCE]
    specs = [_METHODS[_split(name)[0]] for name in names if _split(name)[0] in _METHODS]
    return max([spec.margin(spec.resolve({})) for spec in specs], default=2)


@dataclass(frozen=True)
class Choice:
    """What ``auto`` chose: a candidate per kind of hole, and the record of why (``provenance``)."""

    methods: dict[str, str]
    provenance: dict
    # The engine's reference="adjacent" for planes in memory (the preparation's ``adjacent``), for NAME:adjacent.
    adjacent: Callable | None = None


def choose(
    stack: Stack,
    *,
    candidates: str = "default",
    probes: Callable,
    check: Callable[[], None],
    adjacent: Callable | None = None,
    progress: Callable | None = None,
    status: Callable[[str], None] | None = None,
) -> Choice:
    """Fill the call's probes with every candidate; per kind of hole, the one with the smallest error.

    Parameters
    ----------
    stack : Stack
        The call's planes (or volumes) and masks.
    candidates : str
        The candidates, comma-separated (``default``: see the module).
    probes : callable
        The engine's fill of probes (see :mod:`napari_inpaint.registry`).
    check : callable
        Raises when the user cancels.
    progress, status : callable, optional
        Progress over the candidates, and what is being filled.
    adjacent : callable, optional
        The engine's ``adjacent`` (a reference from neighbouring planes), for the ``NAME:adjacent`` candidates.

    Returns
    -------
    Choice
        A candidate per kind of hole, and the record of why.
    """
    ndim = stack.masks.ndim - 1
    names = _names(candidates, ndim, stack.reference is not None)
    scores = {}
    for done, name in enumerate(names):
        check()
        if status is not None:
            status(f"auto: filling probes with {name} ({done + 1}/{len(names)})")
        method, mode = _split(name)
        if mode == _ADJACENT:  # no method of the engine fills so: its probes go through auto's own fill
            scores[name] = probes("auto", prepared=Choice(dict.fromkeys(HOLE_CLASSES, name), {}, adjacent))
        else:
            scores[name] = probes(method, 2 if mode else None)
        if progress is not None:
            progress(done + 1, len(names))
    overall = _preferred(names, [scores[name]["all"] for name in names]) or names[0]
    methods = {kind: _preferred(names, [scores[name].get(kind) for name in names]) or overall for kind in HOLE_CLASSES}
    holes = _hole_counts(stack.masks)
    record = {
        "choice": {kind: methods[kind] for kind in HOLE_CLASSES if holes.get(kind)},
        "holes": holes,
        "probe_rmse": {
            name: {kind: round(float(np.sqrt(found[0])), 6) for kind, found in scores[name].items()} for name in names
        },
        "probe_pixels": {kind: found[1] for kind, found in scores[names[0]].items()},
    }
    if not scores[names[0]]["all"][1]:
        record["notes"] = [f"no probe fitted in the known pixels: {names[0]} fills every hole"]
    return Choice(methods, {"auto": record}, adjacent)


def _preferred(names: list[str], found: list) -> str | None:
    """The first candidate, unless others beat it clearly on the probes of a kind: then the best of those;
    None when the kind has too few probes to judge by.

    Clearly: over at least 3 probes, the mean of the per-probe differences
    of squared error (each probe weighing as its pixels) exceeds twice its
    standard error (a paired test), so that a few lucky probes (a texture
    copied from the right place) do not make the choice.
    """
    first = found[0]
    if first is None or first[1] < _MIN_PIXELS or len(first[2]) < _MIN_PROBES:
        return None
    weights = first[3] / first[3].sum()
    effective = 1.0 / np.sum(weights**2)  # probes as many as equal ones would be
    better = []
    for name, other in zip(names[1:], found[1:]):
        gain = first[2] - other[2]  # per probe: how much lower the other's error is
        mean = float(np.sum(weights * gain))
        spread = float(np.sqrt(np.sum(weights * (gain - mean) ** 2) * effective / max(effective - 1, 1)))
        if effective >= _MIN_PROBES and mean > _CLEARLY * spread / np.sqrt(effective):
            better.append((other[0], name))
    return min(better)[1] if better else names[0]


def _hole_counts(masks: np.ndarray) -> dict[str, int]:
    """How many holes of each kind the call's planes hold (one plane when every plane shares its mask)."""
    shared = masks.ndim > 1 and masks.strides[0] == 0
    counts = np.zeros(len(HOLE_CLASSES) + 1, np.int64)
    for plane in masks[:1] if shared else masks:
        counts += np.bincount(hole_kinds(plane)[1][1:], minlength=len(counts))
    factor = len(masks) if shared else 1
    return {kind: int(counts[i]) * factor for i, kind in enumerate(HOLE_CLASSES, start=1) if counts[i]}


@register(
    "auto",
    summary="chooses per kind of hole (specks, lines, blobs, large) the classical fill that came closest on "
    "holes hidden in the image's own pixels",
    family="classical",
    artifacts=("hot-pixels", "scratches", "debris", "dropped-lines", "seams", "texture"),
    ndims=(2, 3),
    params=(
        Param("candidates", str, "default", "methods to choose from, comma-separated, first the safe one (default: "
              "harmonic, biharmonic, tv; guided with a reference; in 3D harmonic, biharmonic, biharmonic:2d, "
              "guided:adjacent). NAME:2d fills a volume plane by plane, NAME:adjacent too with each plane's "
              "neighbours as reference",
              pattern=r"[a-z0-9_:, -]*", suggestions=lambda: list(_OFFERED)),
    ),
    margin=_margin,
    local_fill=True,
    prepare=choose,
)
def auto(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    prepared: Choice,
    reference: np.ndarray | None = None,
    scale: float = 1.0,
    rng: np.random.Generator | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill each hole with the method chosen for its kind (:func:`choose`, run by the engine once per call).

    Parameters
    ----------
    %(image_mask)s
    prepared : Choice
        The choice of the call's preparation.
    %(reference)s
    scale : float
        The power of two the crop was divided by.
    %(rng)s
    %(check)s

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = np.sin(xx / 6.0) * 100 + yy
    >>> mask = np.zeros(image.shape, bool); mask[20:23, 10:50] = True; mask[40, 40] = True
    >>> filled = inpaint(image, mask, "auto")
    >>> bool(np.abs(filled - image)[mask].max() < 5), bool((filled[~mask] == image[~mask]).all())
    (True, True)
    """
    labels, kind_of = hole_kinds(mask)
    kinds = kind_of[labels]
    chosen: dict[str, list[int]] = {}
    for index in np.unique(kind_of[1:]):
        chosen.setdefault(prepared.methods[HOLE_CLASSES[index - 1]], []).append(int(index))
    supplied = {"reference": reference, "scale": scale, "rng": rng, "check": check, "progress": None,
                "prepared": None}  # fmt: skip
    # The method of the most hole pixels fills every hole, so that each other one fills only its own holes
    # (and those its fill reads or solves with them), with those values as context.
    pixels = np.bincount(kinds.ravel(), minlength=len(HOLE_CLASSES) + 1)
    out = image.copy()
    for number, name in enumerate(sorted(chosen, key=lambda name: -pixels[chosen[name]].sum())):
        method, mode = _split(name)
        spec = _METHODS[method]
        params = spec.resolve({})
        keywords = {**params, **{k: v for k, v in supplied.items() if k in spec.engine_keywords}}
        own = np.isin(kinds, chosen[name])
        region = mask if number == 0 else _within_reach(mask, own, spec.margin(params))
        if mode == _ADJACENT:
            # (The references from the planes' own pixels: holes filled above are not data.)
            filled = _plane_by_plane(spec.fill, out, region, keywords, prepared.adjacent(image, mask, check=check))
        elif mode == _PLANE_BY_PLANE:
            given = keywords.get("reference")
            filled = _plane_by_plane(spec.fill, out, region, keywords, None if given is None else given.__getitem__)
        else:
            filled = spec.fill(out, region, **keywords)
        np.copyto(out, filled, where=(region if number == 0 else own)[..., np.newaxis])
    return out


def _within_reach(mask: np.ndarray, own: np.ndarray, reach: int) -> np.ndarray:
    """The holes of ``mask`` a fill of the holes ``own`` solves together with them: those joined to them
    through holes at most ``2 * reach`` pixels apart along every axis (a fill reads ``reach`` pixels around
    a hole).

    >>> mask = np.zeros((1, 16), bool); mask[0, [1, 4, 12]] = True
    >>> own = np.zeros_like(mask); own[0, 1] = True
    >>> np.flatnonzero(_within_reach(mask, own, 2)).tolist()
    [1, 4]
    """
    joined = ndi.maximum_filter(mask, size=2 * reach + 1, mode="constant", cval=False)
    groups = ndi.label(joined, structure=np.ones((3,) * mask.ndim, bool))[0]
    return mask & np.isin(groups, np.unique(groups[own]))


def _plane_by_plane(
    fill: Callable, image: np.ndarray, mask: np.ndarray, keywords: dict, reference: Callable | None = None
) -> np.ndarray:
    """A volume filled with a 2D fill, plane by plane along its first axis (``reference(z)`` the reference of
    plane ``z``, for a fill that takes one); a plane without a known pixel is filled in 3D by harmonic diffusion."""
    out = image.copy()
    whole = []
    for z in range(mask.shape[0]):
        if not mask[z].any():
            continue
        if mask[z].all():
            whole.append(z)
            continue
        planes = keywords if reference is None else {**keywords, "reference": reference(z)}
        out[z] = fill(image[z], mask[z], **planes)
    if whole:
        harmonic = _METHODS["harmonic"]
        filled = harmonic.fill(image, mask, **harmonic.resolve({}))
        out[whole] = filled[whole]
    return out
