"""The commands of the command line: each takes the parsed arguments and returns the exit status.

What a command offers (methods, their parameters and kinds, families,
weights) is read from the method registry, so a method registered anywhere
is listed, validated and run without a change here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from napari_inpaint.cli._files import (
    check_format,
    check_output,
    check_storable,
    read_image,
    read_mask,
    replacing,
    write_image,
)
from napari_inpaint.cli._progress import progress_bar

if TYPE_CHECKING:
    from napari_inpaint._registry import Method, Param

def fill(args: argparse.Namespace) -> int:
    from napari_inpaint._engine import inpaint
    from napari_inpaint.methods import get_method

    method = get_method(args.method)
    # Validate before reading anything: a typo should not cost the reading of a large stack.
    params = method.resolve(parse_params(method, args.param))
    if method.needs_reference and args.reference is None:
        raise ValueError(_no_reference(method.name, "--reference adjacent"))
    reference_file = _reference_file(args)
    inputs = (args.image, args.mask) + ((reference_file,) if reference_file else ())
    check_output(args.output, args.overwrite, inputs=inputs, file_name="filled.tif")
    check_format(args.output)
    image = read_image(args.image)
    check_storable(args.output, image.dtype)
    mask = read_mask(args.mask)
    reference = read_image(reference_file) if reference_file else args.reference
    with progress_bar(method.name) as progress:
        result = inpaint(
            image, mask, method.name, channel_axis=args.channel_axis, spatial_ndim=args.spatial_ndim,
            progress=progress, noise=args.noise, seed=args.seed, reference=reference, align=args.align,
            **params,
        )
    write_image(args.output, result)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _reference_file(args: argparse.Namespace) -> Path | None:
    """The file named by ``--reference``, or None for no reference or ``--reference adjacent``."""
    return None if args.reference in (None, "adjacent") else Path(args.reference)


def _no_reference(method: str, adjacent: str) -> str:
    """The error for a method that needs a reference, in the command line's words."""
    return (
        f"method {method!r} fills from reference data: give {adjacent} (a stack's neighbouring planes), "
        "or --reference FILE (an image of the same field)"
    )


def methods(args: argparse.Namespace) -> int:
    from napari_inpaint.methods import list_methods

    records = list_methods()
    if args.json:
        print(json.dumps([m.describe() for m in records], indent=2))
        return 0
    params = [p for m in records for p in m.params]
    setting_width = max((len(f"{p.name}={p.default}") for p in params), default=0)
    domain_width = max((len(_domain(p)) for p in params), default=0)
    needs = {m.name: ", ".join(_needs(m)) or "-" for m in records}
    name_width = max(len(m.name) for m in records)
    family_width = max(len(m.family) for m in records)
    needs_width = max(len(text) for text in needs.values())
    print(f"{'METHOD':<{name_width}}  {'FAMILY':<{family_width}}  {'DIMS':<5}  {'NEEDS':<{needs_width}}  SUMMARY")
    for m in records:
        dims = "/".join(f"{n}D" for n in m.ndims)
        print(f"{m.name:<{name_width}}  {m.family:<{family_width}}  {dims:<5}  {needs[m.name]:<{needs_width}}  "
              f"{m.summary}")
        for p in m.params:
            setting, domain = f"{p.name}={p.default}", _domain(p)
            print(f"    {setting:<{setting_width}}  {p.kind.__name__:<5}  {domain:<{domain_width}}  {p.help}")
    print("\nParameters are shown as NAME=DEFAULT; set one with --param NAME=VALUE.  Weights are downloaded "
          "once, on first use or with 'napari-inpaint models fetch NAME'.")
    return 0


def _needs(method: Method) -> list[str]:
    """What a method needs beyond NumPy and SciPy: PyTorch, reference data, the weights it downloads."""
    needs = ["torch"] if method.needs_torch else []
    needs += ["reference"] if method.needs_reference else []
    return needs + [f"weights {name}" for name in method.weights]


def _domain(param: Param) -> str:
    if param.choices is not None:
        return "|".join(param.choices)
    if param.pattern is not None:
        return param.pattern
    if param.low is None and param.high is None:
        return ""
    low = "-inf" if param.low is None else f"{param.low:g}"
    high = "inf" if param.high is None else f"{param.high:g}"
    return f"[{low}, {high}]"


def demo(args: argparse.Namespace) -> int:
    from napari_inpaint._demo import format_table, run_demo

    rows = run_demo(args.output, args.methods)
    print(format_table(rows))
    print(f"\nimages written to {args.output}/ (comparison.png shows them side by side)")
    # Exit with failure only when no method could fill (the damaged row always scores).
    return 0 if any(row["error"] is None for row in rows[1:]) else 1


def compare(args: argparse.Namespace) -> int:
    from napari_inpaint.evaluate import DEFAULT_MASKS, default_methods, evaluate
    from napari_inpaint.methods import get_method

    names = split(args.methods)
    kinds = split(args.masks) or list(DEFAULT_MASKS)
    ratios = [convert(text, float, "--ratios") for text in split(args.ratios)]
    compared = names or default_methods(kinds, reference=args.reference is not None)
    params = _parse_shared_params(compared, args.param)
    if args.reference == "adjacent" and args.plane is None:
        raise ValueError(
            "--reference adjacent scores one plane of a stack against its neighbours: give --plane N"
        )
    for name in names if args.reference is None else ():
        if get_method(name).needs_reference:
            raise ValueError(_no_reference(name, "--plane N --reference adjacent"))
    reference_file = _reference_file(args)
    if args.csv is not None:
        inputs = tuple(path for path in (args.image, args.region, reference_file) if path is not None)
        check_output(args.csv, args.overwrite, inputs=inputs, file_name="scores.csv")
    image = read_image(args.image)
    region = None if args.region is None else read_mask(args.region).astype(bool)
    if region is not None and region.ndim == 3 and args.plane in range(-len(region), len(region)):
        region = region[args.plane]  # a region of the whole stack (evaluate checks the plane)
    reference = read_image(reference_file) if reference_file else args.reference
    with progress_bar("compare") as progress:
        table = evaluate(
            image, names or None, kinds, region=region, seed=args.seed, plane=args.plane, reference=reference,
            align=args.align, repeats=args.repeats, channel_axis=args.channel_axis,
            lpips=True if args.lpips else "auto", per_mask=args.per_mask, progress=progress,
            **({"ratios": ratios} if ratios else {}), **params,
        )
    print(table)
    if args.csv is not None:
        with replacing(args.csv) as partial:
            table.to_csv(partial)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0 if any(trial["error"] is None for trial in table.trials) else 1


def _parse_shared_params(names: list[str], pairs: list[str]) -> dict:
    """``NAME=VALUE`` strings converted with the kind of the first method that has the parameter."""
    from napari_inpaint.methods import get_method

    params = {}
    for pair in pairs:
        name, text = split_pair(pair)
        owners = [m for m in map(get_method, names) if any(p.name == name for p in m.params)]
        # Without an owner the text goes on, and evaluate names the parameters there are.
        params[name] = convert(text, owners[0].param(name).kind, f"parameter {name!r}") if owners else text
    return params


def models(args: argparse.Namespace) -> int:
    from napari_inpaint import models as weights

    specs = [spec.describe() for spec in weights.list_models()]
    if args.json:
        print(json.dumps(specs, indent=2))
        return 0
    name_width = max(len(spec["name"]) for spec in specs)
    licence_width = max(len(spec["licence"]) for spec in specs)
    print(f"{'MODEL':<{name_width}}  {'LICENCE':<{licence_width}}  {'SIZE':>9}  {'CACHED':<6}  SUMMARY")
    for spec in specs:
        size = ("" if spec["size_exact"] else "~") + _megabytes(spec["size"])
        print(f"{spec['name']:<{name_width}}  {spec['licence']:<{licence_width}}  {size:>9}  "
              f"{'yes' if spec['cached'] else 'no':<6}  {spec['summary']}")
        if not spec["commercial_use"]:
            print(f"{'':<{name_width}}  note: {spec['licence']} forbids commercial use")
    print(f"\ncache: {weights.cache_dir()}  (set {weights.CACHE_ENV} to change it; "
          f"{weights.MIRROR_ENV} to download from a local server or folder)")
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def models_fetch(args: argparse.Namespace) -> int:
    from napari_inpaint import models as weights

    if args.all:
        names = [spec.name for spec in weights.list_models()]
    elif args.names:
        names = [weights.get_model(name).name for name in args.names]  # unknown names fail before any download
    else:
        raise ValueError("give the names of the models to fetch, or --all (see 'napari-inpaint models')")
    for name in names:
        print(f"{name}: {weights.fetch(name)}")
    return 0
