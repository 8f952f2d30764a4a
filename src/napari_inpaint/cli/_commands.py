"""The commands of the command line: each takes the parsed arguments and returns the exit status.

What a command offers (methods, their parameters and kinds, families,
weights) is read from the method registry, so a method registered anywhere
is listed, validated and run without a change here.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from napari_inpaint.cli._errors import did_you_mean
from napari_inpaint.cli._files import check_output, read_image, read_mask, replacing
from napari_inpaint.cli._progress import progress_bar
from napari_inpaint.cli._values import convert, domain, method_named, split, split_pair

if TYPE_CHECKING:
    from napari_inpaint.registry import Method

# Listings: the indent of a method's summary and parameters, and the fewest columns a description is
# wrapped into beside its row (else it goes under it).
_INDENT = 4
_NARROWEST = 30


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
    width = _terminal_width()
    method_widths = [max(len(m.name) for m in records), max(len(m.family) for m in records), 5]
    lines = _row(["METHOD", "FAMILY", "DIMS", "NEEDS"], method_widths, 0, width)
    for m in records:
        dims = "/".join(f"{n}D" for n in m.ndims)
        lines += _row([m.name, m.family, dims, ", ".join(_needs(m)) or "-"], method_widths, 0, width)
        lines += _row([m.summary], [], _INDENT, width)
        params = [[f"{p.name}={p.default}", p.kind.__name__, domain(p), p.help] for p in m.params]
        param_widths = [max(len(cells[i]) for cells in params) for i in range(3)] if params else []
        for cells in params:
            lines += _row(cells, param_widths, _INDENT, width)
    lines += ["", *_row(["Parameters are shown as NAME=DEFAULT; set one with --param NAME=VALUE.  Weights are "
                         "downloaded once, on first use or with 'napari-inpaint models fetch NAME'."], [], 0, width)]
    print("\n".join(lines))
    return 0


def _terminal_width() -> int:
    """The columns of the terminal (``$COLUMNS``, else the terminal's, else 80); at least 40."""
    import shutil

    return max(shutil.get_terminal_size().columns, 40)


def _row(cells: list[str], widths: list[int], indent: int, width: int) -> list[str]:
    """The lines of one row of a listing that fits ``width`` columns.

    The cells but the last are padded to ``widths`` after ``indent`` spaces;
    the last (a description) is wrapped beside them, or under them, indented
    further, when fewer than :data:`_NARROWEST` columns are left.  When the
    padded cells alone do not fit, the row is wrapped as text.
    """
    import textwrap

    head = " " * indent + "".join(f"{cell:<{w}}  " for cell, w in zip(cells[:-1], widths))
    wrap = partial(textwrap.wrap, break_on_hyphens=False)
    if len(head) - 2 > width:  # no room for the columns: the cells flow as text
        text = "  ".join(cell for cell in cells if cell)
        return wrap(text, width, initial_indent=" " * indent, subsequent_indent=" " * (indent + _INDENT))
    if width - len(head) >= _NARROWEST:
        return wrap(cells[-1], width, initial_indent=head, subsequent_indent=" " * len(head)) or [head.rstrip()]
    under = " " * (indent + _INDENT)
    return [head.rstrip(), *wrap(cells[-1], width, initial_indent=under, subsequent_indent=under)]


def _needs(method: Method) -> list[str]:
    """What a method needs beyond NumPy and SciPy: PyTorch, reference data, the weights it downloads."""
    needs = ["torch"] if method.needs_torch else []
    needs += ["reference"] if method.needs_reference else []
    return needs + [f"weights {name}" for name in method.weights]


def demo(args: argparse.Namespace) -> int:
    from napari_inpaint.cli.demo import format_table, run_demo

    for name in args.methods or ():
        method_named(name)  # a typo is refused before the demo runs
    rows = run_demo(args.output, args.methods)
    print(format_table(rows))
    print(f"\nimages written to {args.output}/ (comparison.png shows them side by side)")
    # Exit with failure only when no method could fill (the damaged row always scores).
    return 0 if any(row["error"] is None for row in rows[1:]) else 1


def compare(args: argparse.Namespace) -> int:
    from napari_inpaint.evaluation import DEFAULT_MASKS, default_methods, evaluate

    names = split(args.methods)
    methods = [method_named(name) for name in names]
    kinds = split(args.masks) or list(DEFAULT_MASKS)
    ratios = [convert(text, float, "--ratios") for text in split(args.ratios)]
    compared = names or default_methods(kinds, reference=args.reference is not None)
    params = _parse_shared_params(compared, args.param)
    if args.reference == "adjacent" and args.plane is None:
        raise ValueError(
            "--reference adjacent scores one plane of a stack against its neighbours: give --plane N"
        )
    for method in methods if args.reference is None else ():
        if method.needs_reference:
            raise ValueError(no_reference(method.name, "--plane N --reference adjacent"))
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
            params=params, **({"ratios": ratios} if ratios else {}),
        )
    print(table)
    if args.csv is not None:
        with replacing(args.csv) as partial:
            table.to_csv(partial)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0 if any(trial["error"] is None for trial in table.trials) else 1


def _parse_shared_params(names: list[str], pairs: list[str]) -> dict:
    """``NAME=VALUE`` strings converted with the kind of the first method that has the parameter.

    A name that no compared method has is refused, with the closest of their parameters' names.
    """
    methods = [method_named(name) for name in names]
    known = list(dict.fromkeys(p.name for m in methods for p in m.params))
    params = {}
    for pair in pairs:
        name, text = split_pair(pair)
        if name not in known:
            raise ValueError(f"no selected method has a parameter {name!r} (methods: {', '.join(names)}; their "
                             f"parameters: {', '.join(known) or 'none'}){did_you_mean(name, known)}")
        owner = next(m for m in methods if name in (p.name for p in m.params))
        params[name] = convert(text, owner.param(name).kind, f"parameter {name!r}")
    return params


def models(args: argparse.Namespace) -> int:
    from napari_inpaint import models as weights

    specs = [spec.describe() for spec in weights.list_models()]
    if args.json:
        print(json.dumps(specs, indent=2))
        return 0
    width = _terminal_width()
    widths = [max(len(spec["name"]) for spec in specs), max(len(spec["licence"]) for spec in specs), 9, 6]
    lines = _row(["MODEL", "LICENCE", f"{'SIZE':>9}", "CACHED", "SUMMARY"], widths, 0, width)
    for spec in specs:
        size = ("" if spec["size_exact"] else "~") + _megabytes(spec["size"])
        cached = "yes" if spec["cached"] else "no"
        lines += _row([spec["name"], spec["licence"], f"{size:>9}", cached, spec["summary"]], widths, 0, width)
        if not spec["commercial_use"]:
            lines += _row([f"note: {spec['licence']} forbids commercial use"], [], _INDENT, width)
    lines += ["", *_row([f"cache: {weights.cache_dir()}  (set {weights.CACHE_ENV} to change it; "
                         f"{weights.MIRROR_ENV} to download from a local server or folder)"], [], 0, width)]
    print("\n".join(lines))
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def models_fetch(args: argparse.Namespace) -> int:
    from napari_inpaint import models as weights

    if args.all:
        names = [spec.name for spec in weights.list_models()]
    elif args.names:
        known = [spec.name for spec in weights.list_models()]
        for name in args.names:  # unknown names fail before any download
            if name not in known:
                raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}"
                                 f"{did_you_mean(name, known)}")
        names = args.names
    else:
        raise ValueError("give the names of the models to fetch, or --all (see 'napari-inpaint models')")
    for name in names:
        print(f"{name}: {weights.fetch(name)}")
    return 0
