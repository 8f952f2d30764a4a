"""The ``napari-inpaint`` command line: fill image files, list methods, run the demo, compare methods.

Examples
--------
.. code-block:: console

    $ napari-inpaint methods
    $ napari-inpaint fill stack.tif --mask bad.tif --method biharmonic -o filled.tif
    $ napari-inpaint fill photo.png --mask dust.png --method exemplar --param patch_size=11 -o clean.png
    $ napari-inpaint demo -o demo-output
    $ napari-inpaint compare cells.tif --masks strokes,scratches --ratios 0.05,0.15 --csv scores.csv
    $ napari-inpaint models
    $ napari-inpaint models fetch lama migan

Every user error (a missing or unreadable file, an unknown method, a bad
parameter, an output that would overwrite data or does not fit on its device)
prints one ``error: ...`` line on stderr and exits with status 2.  Ctrl-C prints
``interrupted`` and exits with status 130.  An output file is either written
completely or not at all.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from napari_inpaint import __version__

if TYPE_CHECKING:
    import numpy as np

    from napari_inpaint._registry import Method

# Heavy modules (numpy, scipy through the engine, image codecs) are imported inside the functions that
# use them, so that they load within main's handling of errors and Ctrl-C.

_TIFF_SUFFIXES = (".tif", ".tiff")
_READABLE = "expected a TIFF, PNG or JPEG file"
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


class _Refused(Exception):
    """A request the command line declines: it would lose data, or an input or output is unusable."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Examples
    --------
    >>> main(["methods", "--json"])  # doctest: +SKIP
    0
    """
    try:
        # Parsing is inside too: building the parser imports the engine, which takes a moment.
        args = _parser().parse_args(argv)
        return args.command(args)
    except BrokenPipeError:
        # The reader of stdout left (as `| head` does): stop quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, OSError, _Refused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    from napari_inpaint._engine import NOISE_MODELS

    parser = argparse.ArgumentParser(
        prog="napari-inpaint", description="Fill bad or missing pixels of scientific images."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    fill = commands.add_parser(
        "fill",
        help="fill the masked pixels of an image file",
        description="Fill the pixels of IMAGE that are nonzero in MASK and write the result to OUT. "
        "TIFF files keep their dtype; PNG/JPEG are read and written as 8 or 16-bit images.",
    )
    fill.add_argument("image", type=Path, metavar="IMAGE", help="input image (TIFF, PNG or JPEG)")
    fill.add_argument(
        "--mask", type=Path, required=True,
        help="mask image: nonzero marks a bad pixel (in a colour PNG/JPEG, any nonzero R, G or B)",
    )
    fill.add_argument("--method", required=True, help="inpainting method (see 'napari-inpaint methods')")
    fill.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="method parameter, repeatable (see 'napari-inpaint methods')",
    )
    fill.add_argument(
        "--spatial-ndim", type=int, choices=(2, 3), default=2,
        help="2: fill each 2D plane of a stack; 3: fill 3D volumes (default 2)",
    )
    fill.add_argument(
        "--channel-axis", type=int, metavar="N", help="axis holding channels (default: RGB(A) last)"
    )
    fill.add_argument("--noise", choices=NOISE_MODELS, help="add noise matching the surroundings to the fill")
    fill.add_argument("--seed", type=int, default=0, help="seed for noise and stochastic methods (default 0)")
    fill.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output image")
    fill.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    fill.set_defaults(command=_fill)

    methods = commands.add_parser("methods", help="list the inpainting methods and their parameters")
    methods.add_argument("--json", action="store_true", help="print machine-readable JSON")
    methods.set_defaults(command=_methods)

    demo = commands.add_parser(
        "demo",
        help="damage a bundled microscopy image, fill it with several methods and score them (offline)",
    )
    demo.add_argument(
        "-o", "--output", type=Path, default=Path("demo-output"), metavar="DIR",
        help="folder for the PNG files (default: demo-output)",
    )
    demo.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="methods to compare (default: a set of classical ones)"
    )
    demo.set_defaults(command=_demo)

    compare = commands.add_parser(
        "compare",
        help="score methods on holes hidden in a clean image: which method suits my data (offline)",
        description="Hide synthetic holes of several kinds and sizes in the known pixels of IMAGE (or only "
        "in REGION), fill them with each method and print PSNR, SSIM and MAE on the holes per method and "
        "bucket of hole-to-image ratio (0-10%%, 10-20%%, ...).  Lists take commas or spaces.",
    )
    compare.add_argument("image", type=Path, metavar="IMAGE", help="a clean 2D image (TIFF, PNG or JPEG)")
    compare.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="methods to compare (default: the classical ones)"
    )
    compare.add_argument(
        "--masks", nargs="+", metavar="KIND",
        help="kinds of hole: strokes, rectangles, hot-pixels, scratches, debris, scan-lines "
        "(default: strokes,rectangles)",
    )
    compare.add_argument(
        "--ratios", nargs="+", metavar="RATIO", help="target hole ratios in (0, 1) (default: 0.05,0.15,0.25)"
    )
    compare.add_argument(
        "--region", type=Path, metavar="MASK",
        help="image whose nonzero pixels are known to be clean: holes are hidden only there",
    )
    compare.add_argument("--repeats", type=int, default=1, help="masks per kind and ratio (default 1)")
    compare.add_argument("--per-mask", action="store_true", help="one row per mask kind as well")
    compare.add_argument(
        "--lpips", action="store_true",
        help="also score LPIPS, downloading its weights once (about 245 MB); by default LPIPS is scored "
        "only when they are already downloaded",
    )
    compare.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="parameter given to every compared method that has it, repeatable",
    )
    compare.add_argument(
        "--channel-axis", type=int, metavar="N", help="axis holding channels (default: RGB(A) last)"
    )
    compare.add_argument("--seed", type=int, default=0, help="seed of the hidden holes (default 0)")
    compare.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV to OUT")
    compare.add_argument("--overwrite", action="store_true", help="replace the CSV file if it exists")
    compare.set_defaults(command=_compare)

    models = commands.add_parser(
        "models",
        help="list the pretrained model weights (licence, size, cached), or download them",
        description="List the downloadable weights of the deep methods. 'models fetch NAME' downloads "
        "one ahead of use, e.g. before going offline; NAPARI_INPAINT_CACHE sets the folder and "
        "NAPARI_INPAINT_MIRROR a server or folder to download from instead of the internet.",
    )
    models.add_argument("--json", action="store_true", help="print machine-readable JSON")
    models.set_defaults(command=_models)
    model_actions = models.add_subparsers(metavar="ACTION")
    fetch = model_actions.add_parser("fetch", help="download model weights into the cache")
    fetch.add_argument(
        "names", nargs="*", metavar="NAME", help="models to download (see 'napari-inpaint models')"
    )
    fetch.add_argument("--all", action="store_true", help="download every model the package can use")
    fetch.set_defaults(command=_models_fetch)
    return parser


def _fill(args: argparse.Namespace) -> int:
    from napari_inpaint._engine import inpaint
    from napari_inpaint.methods import get_method

    method = get_method(args.method)
    # Validate before reading anything: a typo should not cost the reading of a large stack.
    params = method.resolve(_parse_params(method, args.param))
    _check_output(args.output, args.overwrite, inputs=(args.image, args.mask), file_name="filled.tif")
    _check_format(args.output)
    image = _read(args.image)
    _check_storable(args.output, image.dtype)
    mask = _read_mask(args.mask)
    with _progress_bar(method.name) as progress:
        result = inpaint(
            image, mask, method.name, channel_axis=args.channel_axis, spatial_ndim=args.spatial_ndim,
            progress=progress, noise=args.noise, seed=args.seed, **params,
        )
    _write(args.output, result)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _parse_params(method: Method, pairs: list[str]) -> dict:
    """Convert ``NAME=VALUE`` strings with the kinds the method declares."""
    params = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            kind = method.param(name).kind
        except KeyError:
            params[name] = text  # the engine rejects it, naming the method's parameters
            continue
        params[name] = _convert(text, kind, f"parameter {name!r} of method {method.name!r}")
    return params


def _convert(text: str, kind: type, where: str):
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


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in _TIFF_SUFFIXES


def _read(path: Path) -> np.ndarray:
    """Read the image file ``path``; any failure raises one :class:`_Refused` that names the file.

    Raises
    ------
    _Refused
        When the file system refuses the file (missing, a folder, no permission), or its contents
        cannot be decoded as an image.
    """
    try:
        image = _read_tiff(path) if _is_tiff(path) else _read_with_imageio(path)
    except MemoryError:  # the machine's limit, not the file's fault
        raise
    except Exception as exc:
        # The file system's errors carry an errno; decoders raise about anything on corrupt data
        # (Pillow a SyntaxError, tifffile a ValueError, imageio an OSError without errno...).
        if isinstance(exc, OSError) and exc.errno is not None:
            raise _Refused(f"cannot read {path}: {exc.strerror}") from None
        message = str(exc).strip()
        reason = message.splitlines()[0] if message else type(exc).__name__
        raise _Refused(f"cannot read {path} as an image: {reason}; {_READABLE}") from None
    if image.size == 0:
        raise _Refused(f"cannot read {path} as an image: it holds no pixels; {_READABLE}")
    return image


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    # tifffile logs, rather than raises, on some corrupt files and then returns an empty array: its
    # log is shown only when the file gave pixels, else the one error about the file says it all.
    logger = logging.getLogger("tifffile")
    with _log_held(logger) as records:
        image = tifffile.imread(path)
    if image.size:
        for record in records:
            logger.handle(record)
    return image


def _read_with_imageio(path: Path) -> np.ndarray:
    from skimage import io

    return io.imread(path)


@contextlib.contextmanager
def _log_held(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """Hold back the records ``logger`` handles meanwhile, so the caller can decide to show them."""
    records: list[logging.LogRecord] = []
    holder = logging.Handler()
    holder.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(holder)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield records
    finally:
        logger.removeHandler(holder)
        logger.propagate = propagate


def _read_mask(path: Path) -> np.ndarray:
    mask = _read(path)
    if not _is_tiff(path) and mask.ndim == 3 and mask.shape[-1] in (3, 4):
        mask = mask[..., :3].any(axis=-1)  # a mask painted in colour; alpha is ignored
    return mask


def _check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...], file_name: str) -> None:
    """Refuse to write over a folder or an input, or over any existing file without ``overwrite``.

    ``file_name`` is suggested as a file inside ``output`` when that is a folder.
    """
    if output.is_dir():
        raise _Refused(f"the output {output} is a folder; give a file name, e.g. {output / file_name}")
    if not output.parent.is_dir():
        raise _Refused(f"the folder {output.parent} of the output does not exist")
    if not output.exists():
        return
    for path in inputs:
        if path.exists() and os.path.samefile(output, path):
            raise _Refused(f"the output {output} is the input {path}; write the result to a new file")
    if not overwrite:
        raise _Refused(f"{output} exists; pass --overwrite to replace it")


def _check_format(output: Path) -> None:
    """Refuse, before any work, an output whose extension names no image format that can be written."""
    if _is_tiff(output):
        return
    if not output.suffix:
        raise _Refused(f"the output {output} has no extension to choose its format by, e.g. {output}.tif")
    import warnings

    import numpy as np

    try:
        with warnings.catch_warnings():  # imageio warns before it fails on an unknown extension
            warnings.simplefilter("ignore")
            _encode(np.zeros((1, 1), np.uint8), output.suffix)
    except Exception:  # imageio raises ValueError, among others, for an extension it cannot write
        raise _Refused(f"cannot write {output.suffix} images; write a .tif, .png or .jpg file") from None


def _check_storable(output: Path, dtype: np.dtype) -> None:
    import numpy as np

    suffix = output.suffix.lower()
    if not (_is_tiff(output) or dtype == np.uint8 or (dtype == np.uint16 and suffix == ".png")):
        raise _Refused(f"{output.suffix} cannot store {dtype} pixels; write a .tif file to keep them")
    if suffix in (".jpg", ".jpeg"):
        print("warning: JPEG is lossy, so the good pixels will change too; write .png or .tif to keep them",
              file=sys.stderr)


def _write(path: Path, image: np.ndarray) -> None:
    """Write ``image`` in the format that the extension of ``path`` names, completely or not at all."""
    with _replacing(path) as partial:
        if _is_tiff(path):
            import tifffile

            tifffile.imwrite(partial, image)
        else:
            partial.write_bytes(_encode(image, path.suffix))


def _encode(image: np.ndarray, suffix: str) -> bytes:
    """``image`` encoded in memory in the format that ``suffix`` names (PNG, JPEG, ...).

    The bytes are written by the caller: imageio writing a file itself retries a failed close when
    it is garbage-collected, which prints a traceback after the error on a full device.
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=suffix.lower())


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` that replaces ``path`` once written completely.

    An error or Ctrl-C while writing removes the temporary file and leaves an existing ``path`` as it
    was, so an output is never left half written.

    Raises
    ------
    _Refused
        When writing fails, saying so plainly when the device is full.
    """
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    except OSError as exc:
        if _device_full(exc, path.parent):
            raise _Refused(f"no space left on the device to write {path}; nothing was written") from None
        raise _Refused(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _device_full(error: OSError, folder: Path) -> bool:
    """Whether ``error``, raised while writing into ``folder``, comes from a full device.

    numpy's ``tofile`` (which tifffile writes with) reports a short write without an errno, as
    "N requested and M written"; the device having no free space left tells that case apart.
    """
    if error.errno == errno.ENOSPC:
        return True
    return error.errno is None and shutil.disk_usage(folder).free == 0


class _TextBar:
    """A one-line progress bar for when tqdm is not installed."""

    def __init__(self, label: str, stream, width: int = 30):
        self.label, self.stream, self.width = label, stream, width
        self.shown: int | None = None

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total
        if percent == self.shown:
            return
        self.shown = percent
        bar = "#" * (self.width * done // total)
        self.stream.write(f"\r{self.label} [{bar:.<{self.width}}] {percent:3d}% ({done}/{total})")
        self.stream.flush()

    def close(self) -> None:
        if self.shown is not None:
            self.stream.write("\n")


class _TqdmBar:
    """tqdm, created on the first report so that it starts with the right total."""

    def __init__(self, label: str, stream):
        from tqdm import tqdm

        self.tqdm, self.label, self.stream = tqdm, label, stream
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = self.tqdm(desc=self.label, total=total, file=self.stream)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawn on stderr: tqdm when installed, else plain text."""
    try:
        bar = _TqdmBar(label, sys.stderr)
    except ImportError:
        bar = _TextBar(label, sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


def _methods(args: argparse.Namespace) -> int:
    from napari_inpaint.methods import list_methods

    methods = list_methods()
    if args.json:
        print(json.dumps([m.describe() for m in methods], indent=2))
        return 0
    params = [p for m in methods for p in m.params]
    setting_width = max((len(f"{p.name}={p.default}") for p in params), default=0)
    domain_width = max((len(_domain(p)) for p in params), default=0)
    name_width = max(len(m.name) for m in methods)
    print(f"{'METHOD':<{name_width}}  {'DIMS':<5}  {'NEEDS':<15}  SUMMARY")
    for m in methods:
        dims = "/".join(f"{n}D" for n in m.ndims)
        needs = ", ".join(n for n, flag in (("torch", m.needs_torch), ("download", m.needs_download)) if flag)
        print(f"{m.name:<{name_width}}  {dims:<5}  {needs or '-':<15}  {m.summary}")
        for p in m.params:
            setting, domain = f"{p.name}={p.default}", _domain(p)
            print(f"    {setting:<{setting_width}}  {p.kind.__name__:<5}  {domain:<{domain_width}}  {p.help}")
    print("\nParameters are shown as NAME=DEFAULT; set one with --param NAME=VALUE.")
    return 0


def _domain(param) -> str:
    if param.choices is not None:
        return "|".join(param.choices)
    if param.low is None and param.high is None:
        return ""
    low = "-inf" if param.low is None else f"{param.low:g}"
    high = "inf" if param.high is None else f"{param.high:g}"
    return f"[{low}, {high}]"


def _demo(args: argparse.Namespace) -> int:
    from napari_inpaint._demo import format_table, run_demo

    rows = run_demo(args.output, args.methods)
    print(format_table(rows))
    print(f"\nimages written to {args.output}/ (comparison.png shows them side by side)")
    # Exit with failure only when no method could fill (the damaged row always scores).
    return 0 if any(row["error"] is None for row in rows[1:]) else 1


def _compare(args: argparse.Namespace) -> int:
    from napari_inpaint.evaluate import DEFAULT_MASKS, default_methods, evaluate

    methods = _split(args.methods)
    masks = _split(args.masks) or list(DEFAULT_MASKS)
    ratios = [_convert(text, float, "--ratios") for text in _split(args.ratios)]
    params = _parse_shared_params(methods or default_methods(masks), args.param)
    if args.csv is not None:
        inputs = (args.image,) if args.region is None else (args.image, args.region)
        _check_output(args.csv, args.overwrite, inputs=inputs, file_name="scores.csv")
    image = _read(args.image)
    region = None if args.region is None else _read_mask(args.region).astype(bool)
    with _progress_bar("compare") as progress:
        table = evaluate(
            image, methods or None, masks, region=region, seed=args.seed, repeats=args.repeats,
            channel_axis=args.channel_axis, lpips=True if args.lpips else "auto", per_mask=args.per_mask,
            progress=progress, **({"ratios": ratios} if ratios else {}), **params,
        )
    print(table)
    if args.csv is not None:
        with _replacing(args.csv) as partial:
            table.to_csv(partial)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0 if any(trial["error"] is None for trial in table.trials) else 1


def _split(values: list[str] | None) -> list[str]:
    """Items of options that take lists with commas, spaces or both."""
    return [item for value in values or () for item in value.split(",") if item]


def _parse_shared_params(methods: list[str], pairs: list[str]) -> dict:
    """``NAME=VALUE`` strings converted with the kind of the first method that has the parameter."""
    from napari_inpaint.methods import get_method

    params = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        owners = [m for m in map(get_method, methods) if any(p.name == name for p in m.params)]
        # Without an owner the text goes on, and evaluate names the parameters there are.
        params[name] = _convert(text, owners[0].param(name).kind, f"parameter {name!r}") if owners else text
    return params


def _models(args: argparse.Namespace) -> int:
    from napari_inpaint import models

    specs = [spec.describe() for spec in models.list_models()]
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
        if not spec["available"]:
            print(f"{'':<{name_width}}  not usable yet: {spec['reason']}")
    print(f"\ncache: {models.cache_dir()}  (set {models.CACHE_ENV} to change it; "
          f"{models.MIRROR_ENV} to download from a local server or folder)")
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _models_fetch(args: argparse.Namespace) -> int:
    from napari_inpaint import models

    if args.all:
        names = [spec.name for spec in models.list_models() if spec.available]
    elif args.names:
        names = [models.get_model(name).name for name in args.names]  # unknown names fail before any download
    else:
        raise ValueError("give the names of the models to fetch, or --all (see 'napari-inpaint models')")
    for name in names:
        print(f"{name}: {models.fetch(name)}")
    return 0
