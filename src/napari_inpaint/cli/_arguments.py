"""The parser of the command line: its commands, their arguments and help.

The lists the help shows (methods, their dimensions, hole kinds, models,
cosmic-ray detectors and their parameters) are read from the registries, so
they never disagree with what the commands accept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_inpaint import __version__
from napari_inpaint.cli import _commands, _detection, _fill


def parser() -> argparse.ArgumentParser:
    """The parser of ``napari-inpaint``: each command sets ``command``, the function that runs it."""
    command_line = argparse.ArgumentParser(
        prog="napari-inpaint", description="Fill bad or missing pixels of scientific images."
    )
    command_line.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = command_line.add_subparsers(required=True, metavar="COMMAND")
    _add_fill(commands)
    _add_detect(commands)
    methods = commands.add_parser("methods", help="list the inpainting methods and their parameters")
    methods.add_argument("--json", action="store_true", help="print machine-readable JSON")
    methods.set_defaults(command=_commands.methods)
    _add_demo(commands)
    _add_compare(commands)
    _add_models(commands)
    return command_line


def _add_fill(commands) -> None:
    from napari_inpaint.engine import NOISE_MODELS
    from napari_inpaint.methods import list_methods

    records = list_methods()
    fill = commands.add_parser(
        "fill",
        help="fill the bad pixels of image files (one, or many into a folder; on a cluster if asked)",
        description="Fill the bad pixels of each IMAGE and write the result to OUT: the pixels that are "
        "nonzero in its mask (--mask, --mask-dir) or that a detector finds (--detect), or both.  One IMAGE "
        "file gives the file OUT; several, or a folder of them, go into the folder OUT under their own names "
        "(existing outputs are complete and skipped, so running a stopped batch again resumes it; a file "
        "that fails is reported at the end and the exit status is 1).  TIFF, zarr and OME-Zarr outputs keep "
        "the input's dtype, axes and metadata and record how they were filled; PNG/JPEG are read and written "
        "as 8 or 16-bit images.",
    )
    fill.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE",
        help="input images (TIFF, OME-TIFF, zarr, OME-Zarr, PNG or JPEG), or folders of them",
    )
    masks = fill.add_mutually_exclusive_group()
    masks.add_argument(
        "--mask", type=Path,
        help="mask image: nonzero marks a bad pixel (in a colour PNG/JPEG, any nonzero R, G or B); "
        "of the image's shape without channels, or of its planes; one for every IMAGE",
    )
    masks.add_argument(
        "--mask-dir", type=Path, metavar="DIR",
        help="folder of masks named like the images (the same file name, or the same name in another format)",
    )
    fill.add_argument(
        "--method", required=True,
        help=f"inpainting method: {', '.join(m.name for m in records)} (see 'napari-inpaint methods')",
    )
    fill.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="method parameter, repeatable (see 'napari-inpaint methods')",
    )
    dimensions = sorted({n for m in records for n in m.ndims})
    _add_layout(fill, dimensions, "fill each 2D plane of a stack; 3: fill 3D volumes, with a method that can")
    users = ", ".join(m.name for m in records if m.uses_reference)
    fill.add_argument(
        "--reference", metavar="adjacent|FILE",
        help="data showing what the holes hide, for methods that use it "
        f"({users}): 'adjacent' (a stack's neighbouring planes) or an image file of the same field",
    )
    fill.add_argument(
        "--no-align", dest="align", action="store_false",
        help="the reference is already registered: do not shift it onto each plane",
    )
    fill.add_argument("--noise", choices=NOISE_MODELS, help="add noise matching the surroundings to the fill")
    fill.add_argument("--seed", type=int, default=0, help="seed for noise and stochastic methods (default 0)")
    fill.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT",
        help="output image (.tif, .ome.tif, .zarr, .ome.zarr, .png, .jpg), or folder for several images",
    )
    fill.add_argument(
        "--invented", action="store_true",
        help="also write the mask of the filled (invented) pixels beside each output, as NAME.invented.EXT "
        "(inside an OME-Zarr output, as its label image 'invented')",
    )
    fill.add_argument(
        "--uncertainty", action="store_true",
        help="also write the uncertainty of the fill beside each output, as NAME.sigma.EXT (float32; a PNG's or "
        "JPEG's as TIFF): per filled pixel the standard deviation of its expected error, calibrated on holes "
        "hidden in the image's known pixels; 0 on known pixels",
    )
    fill.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    _add_cluster(fill)
    _detection.add_options(fill, "to fill them (with --mask or --mask-dir: as well as the mask's)")
    fill.set_defaults(command=_fill.fill)


def _add_layout(parser, dimensions: list[int], three: str) -> None:
    """The options that say how an image's axes are laid out: planes or volumes, channels."""
    parser.add_argument(
        "--spatial-ndim", type=int, choices=dimensions, default=2,
        help=f"2: {three} (default 2)",
    )
    parser.add_argument(
        "--channel-axis", type=int, metavar="N",
        help="axis holding channels (default: the file's channel axis, else RGB(A) last)",
    )


def _add_cluster(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_positive, metavar="N",
        help="compute on a local dask.distributed cluster of N worker processes (default: threads of "
        "this process)",
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="compute on a running dask.distributed cluster, e.g. tcp://10.0.0.5:8786 (dask-jobqueue, "
        "Kubernetes and SSH clusters give such an address); its workers must reach the files",
    )
    parser.add_argument(
        "--dashboard", action="store_true",
        help="with --workers: serve the cluster's dashboard (needs bokeh) on port 8787, or a free one, and print "
        "its address; without it the cluster has none",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _add_detect(commands) -> None:
    detect = commands.add_parser(
        "detect",
        help="write masks of the bad pixels that detectors find, to check them before filling",
        description="Find the bad pixels of each IMAGE and write their mask (0 and 255, with the image's "
        "metadata) to OUT: one IMAGE file gives the file OUT; several, or a folder of them, go into the "
        "folder OUT under the images' names (a JPEG's as PNG), where 'fill --mask-dir OUT' finds them.  "
        "Existing masks are skipped; a file that fails is reported at the end and the exit status is 1.",
    )
    detect.add_argument(
        "images", type=Path, nargs="+", metavar="IMAGE",
        help="input images (TIFF, OME-TIFF, zarr, OME-Zarr, PNG or JPEG), or folders of them",
    )
    detect.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT",
        help="mask file (.tif, .zarr, .ome.zarr, .png), or folder for several images",
    )
    detect.add_argument("--overwrite", action="store_true", help="replace masks that exist")
    _add_layout(detect, [2, 3], "work plane by plane; 3: volume by volume (hot pixels, sizes, dilation)")
    _detection.add_options(detect, "and write where they are")
    detect.set_defaults(command=_fill.detect)


def _add_demo(commands) -> None:
    from napari_inpaint.cli.demo import SAMPLE_DAMAGE
    from napari_inpaint.evaluation import default_methods

    demo = commands.add_parser(
        "demo",
        help="damage a bundled microscopy image, fill it with several methods and score them (offline)",
    )
    demo.add_argument(
        "-o", "--output", type=Path, default=Path("demo-output"), metavar="DIR",
        help="folder for the PNG files (default: demo-output)",
    )
    demo.add_argument(
        "--methods", nargs="+", metavar="METHOD",
        help=f"methods to compare (default: {', '.join(default_methods(SAMPLE_DAMAGE))})",
    )
    demo.set_defaults(command=_commands.demo)


def _add_compare(commands) -> None:
    from napari_inpaint import masks
    from napari_inpaint.evaluation import DEFAULT_MASKS, DEFAULT_RATIOS, default_methods
    from napari_inpaint.methods import list_methods

    compare = commands.add_parser(
        "compare",
        help="score methods on holes hidden in a clean image: which method suits my data (offline)",
        description="Hide synthetic holes of several kinds and sizes in the known pixels of IMAGE (or only "
        "in REGION), fill them with each method and print PSNR, SSIM and MAE on the holes per method and "
        "bucket of hole-to-image ratio (0-10%, 10-20%, ...).  Lists take commas or spaces.  With --plane, "
        "IMAGE is a stack and one plane is scored; with --reference adjacent, its neighbouring planes serve "
        "as reference (holes are hidden in that plane only).",
    )
    compare.add_argument(
        "image", type=Path, metavar="IMAGE",
        help="a clean 2D image (TIFF, PNG or JPEG), or a stack (plane axis first) with --plane",
    )
    compare.add_argument(
        "--plane", type=int, metavar="N", help="IMAGE is a stack: score its plane N (counted from 0)"
    )
    users = ", ".join(m.name for m in list_methods() if m.uses_reference)
    compare.add_argument(
        "--reference", metavar="adjacent|FILE",
        help=f"reference data for the methods that use it ({users}), which join the default methods: "
        "'adjacent' (the neighbouring planes of the stack, with --plane) or an image file of the same field",
    )
    compare.add_argument(
        "--no-align", dest="align", action="store_false",
        help="the reference is already registered: do not shift it onto the plane",
    )
    compare.add_argument(
        "--methods", nargs="+", metavar="METHOD",
        help="methods to compare (default: the classical methods, "
        f"{', '.join(default_methods(DEFAULT_MASKS))}, those made only for a damage among the KINDs hidden, "
        "and with --reference those that need one)",
    )
    compare.add_argument(
        "--masks", nargs="+", metavar="KIND",
        help=f"kinds of hole: {', '.join(masks.KINDS)} (default: {','.join(DEFAULT_MASKS)})",
    )
    compare.add_argument(
        "--ratios", nargs="+", metavar="RATIO",
        help=f"target hole ratios in (0, 1) (default: {','.join(map(str, DEFAULT_RATIOS))})",
    )
    compare.add_argument(
        "--region", type=Path, metavar="MASK",
        help="image whose nonzero pixels are known to be clean: holes are hidden only there (with --plane, "
        "of one plane or of the whole stack)",
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
    compare.set_defaults(command=_commands.compare)


def _add_models(commands) -> None:
    from napari_inpaint import models as weights

    models = commands.add_parser(
        "models",
        help="list the pretrained model weights (licence, size, cached), or download them",
        description="List the downloadable weights of the deep methods. 'models fetch NAME' downloads "
        f"one ahead of use, e.g. before going offline; {weights.CACHE_ENV} sets the folder and "
        f"{weights.MIRROR_ENV} a server or folder to download from instead of the internet.",
    )
    models.add_argument("--json", action="store_true", help="print machine-readable JSON")
    models.set_defaults(command=_commands.models)
    model_actions = models.add_subparsers(metavar="ACTION")
    fetch = model_actions.add_parser("fetch", help="download model weights into the cache")
    fetch.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"models to download: {', '.join(spec.name for spec in weights.list_models())}",
    )
    fetch.add_argument("--all", action="store_true", help="download every model")
    fetch.set_defaults(command=_commands.models_fetch)
