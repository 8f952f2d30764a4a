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

from napari_inpaint.cli._files import check_output, read_image, read_mask, replacing
from napari_inpaint.cli._progress import progress_bar
from napari_inpaint.cli._values import convert, domain, split, split_pair

if TYPE_CHECKING:
    from napari_inpaint._registry import Method


def reference_file(args: argparse.Namespace) -> Path | None:
    """The file named by ``--reference``, or None for no reference or ``--reference adjacent``."""
    return None if args.reference in (None, "adjacent") else Path(args.reference)


def no_reference(method: str, adjacent: str) -> str:
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
    domain_width = max((len(domain(p)) for p in params), default=0)
    needs = {m.name: ", ".join(_needs(m)) or "-" for m in records}
    name_width = max(len(m.name) for m in records)
    family_width = max(len(m.family) for m in records)
    needs_width = max(len(text) for text in needs.values())
    print(f"{'METHOD':<{name_width}}  {'FAMILY':<{family_width}}  {'DIMS':<5}  "
          f"{'NEEDS':<{needs_width}}  SUMMARY")
    for m in records:
        dims = "/".join(f"{n}D" for n in m.ndims)
        print(f"{m.name:<{name_width}}  {m.family:<{family_width}}  {dims:<5}  "
              f"{needs[m.name]:<{needs_width}}  {m.summary}")
        for p in m.params:
            setting, accepted = f"{p.name}={p.default}", domain(p)
            kind = p.kind.__name__
            print(f"    {setting:<{setting_width}}  {kind:<5}  {accepted:<{domain_width}}  {p.help}")
    print("\nParameters are shown as NAME=DEFAULT; set one with --param NAME=VALUE.  Weights are downloaded "
          "once, on first use or with 'napari-inpaint models fetch NAME'.")
    return 0


def _needs(method: Method) -> list[str]:
    """What a method needs beyond NumPy and SciPy: PyTorch, reference data, the weights it downloads."""
    needs = ["torch"] if method.needs_torch else []
    needs += ["reference"] if method.needs_reference else []
    return needs + [f"weights {name}" for name in method.weights]


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
            raise ValueError(no_reference(name, "--plane N --reference adjacent"))
    reference_path = reference_file(args)
    if args.csv is not None:
        inputs = tuple(path for path in (args.image, args.region, reference_path) if path is not None)
        check_output(args.csv, args.overwrite, inputs=inputs, file_name="scores.csv")
    image = read_image(args.image)
    region = None if args.region is None else read_mask(args.region).astype(bool)
    if region is not None and region.ndim == 3 and args.plane in range(-len(region), len(region)):
        region = region[args.plane]  # a region of the whole stack (evaluate checks the plane)
    reference = read_image(reference_path) if reference_path else args.reference
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
        # Unknown names fail before any download.
        names = [weights.get_model(name).name for name in args.names]
    else:
        raise ValueError("give the names of the models to fetch, or --all (see 'napari-inpaint models')")
    for name in names:
        print(f"{name}: {weights.fetch(name)}")
    return 0
