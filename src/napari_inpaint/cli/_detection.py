"""Finding the bad pixels of each image, for ``fill --detect`` and ``detect``: the detectors as flags.

The flags follow :mod:`napari_inpaint.detect`: the criteria of "Mask from
image" (thresholds, saturation, NaN and infinite values, hot pixels) with
the defaults of :func:`~napari_inpaint.detect.mask_from_image`, and for
``cosmic-rays`` one flag per parameter of each detector of
:data:`~napari_inpaint.detect.COSMIC_RAY_DETECTORS`, named after it
(``--lacosmic-gain``, ``--deepcr-model``), with the help, default and
accepted values of its parameter record, which validates the value.  A
detector added there gets its flags without a change here.

Detectors work in memory: an image is read whole to find its bad pixels.
Each image's count of flagged pixels and their share is reported; above
``--max-flagged`` percent (by default :data:`~napari_inpaint.detect.SANITY_SHARE`)
``detect`` warns and ``fill`` refuses to fill them.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from napari_inpaint.cli._files import Refused
from napari_inpaint.cli._values import convert, domain, split

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from napari_inpaint.detect import Detector
    from napari_inpaint.registry import Param

#: The kinds of bad pixel ``--detect`` finds.
KINDS = {
    "nan": "NaN and infinite pixels",
    "saturated": "pixels at the saturation level",
    "hot-pixels": "hot, dead or stuck pixels, far from the median of their neighbours",
    "cosmic-rays": "cosmic-ray hits (sharp spots and short tracks)",
}
# The flags of one kind, by destination: given without their kind, they would do nothing.
_FLAGS_OF = {
    "saturation_level": "saturated", "hot_threshold": "hot-pixels", "hot_window": "hot-pixels",
    "persistent": "hot-pixels", "cosmic_detector": "cosmic-rays",
}


def add_options(parser: argparse.ArgumentParser, purpose: str) -> None:
    """Add ``--detect`` and the detectors' flags to ``parser``; ``purpose`` ends the group's description."""
    from napari_inpaint.detect import COSMIC_RAY_DETECTORS, SANITY_SHARE, mask_from_image

    defaults = inspect.signature(mask_from_image).parameters
    kinds = "; ".join(f"{name}: {text}" for name, text in KINDS.items())
    group = parser.add_argument_group(
        "finding the bad pixels", f"Flag bad pixels in each image, {purpose}.  Kinds: {kinds}.  The criteria "
        "are combined (a pixel flagged by any is bad), then small components are dropped and the mask grown.",
    )
    # One value (a comma list) per --detect: a list taking spaces would take the IMAGEs that follow it.
    group.add_argument(
        "--detect", action="append", metavar="KIND[,KIND]",
        help=f"kinds of bad pixel to find, separated by commas or given repeatedly: {', '.join(KINDS)}",
    )
    group.add_argument("--above", type=float, metavar="VALUE", help="flag pixels above VALUE")
    group.add_argument("--below", type=float, metavar="VALUE", help="flag pixels below VALUE")
    group.add_argument(
        "--saturation-level", type=float, metavar="VALUE",
        help="saturated: the level (default: the dtype's maximum, or a float image's largest value)",
    )
    group.add_argument(
        "--hot-threshold", type=float, metavar="K",
        help="hot-pixels: distance from the neighbours' median, in robust standard deviations "
        f"(default {defaults['k'].default:g}; lower flags more)",
    )
    group.add_argument(
        "--hot-window", type=int, metavar="N",
        help=f"hot-pixels: odd width of the median window (default {defaults['size'].default}; "
        "5 catches 2x2 clusters)",
    )
    group.add_argument(
        "--persistent", action="store_true",
        help="hot-pixels of a stack: flag only the positions bad in 90%% of its planes, in every plane "
        "(a stronger criterion, that lets --hot-threshold be lower, e.g. 3)",
    )
    group.add_argument(
        "--min-size", type=int, metavar="N", help="drop flagged components smaller than N pixels"
    )
    group.add_argument("--dilate", type=int, metavar="PIXELS", help="grow the mask by PIXELS (e.g. 1)")
    group.add_argument(
        "--max-flagged", type=float, metavar="PERCENT",
        help="the share of an image's pixels the detectors may flag: above it, fill refuses to fill them "
        f"and detect warns (default {100 * SANITY_SHARE:g}; real defects and cosmic rays cover far fewer, "
        "the detail of a natural photo more)",
    )
    group.add_argument(
        "--cosmic-detector", choices=list(COSMIC_RAY_DETECTORS), metavar="NAME",
        help=f"cosmic-rays: the detector, {', '.join(COSMIC_RAY_DETECTORS)} (default {_default_detector()}); "
        "its parameters follow",
    )
    for detector in COSMIC_RAY_DETECTORS.values():
        _add_detector(parser, detector)


def _add_detector(parser: argparse.ArgumentParser, detector: Detector) -> None:
    needs = f" Needs {detector.module}: {detector.install}." if detector.install else ""
    weights = " Downloads its weights on first use." if detector.weights else ""
    group = parser.add_argument_group(
        f"cosmic-ray detector {detector.name} (--detect cosmic-rays --cosmic-detector {detector.name})",
        f"{detector.summary}.{needs}{weights}".replace("%", "%%"),
    )
    for param in detector.params:
        accepted = domain(param)
        text = f"{param.help} (default {param.default}{'; ' + accepted if accepted else ''})"
        group.add_argument(
            _flag(detector, param), dest=_dest(detector, param), metavar=param.name.upper(),
            help=text.replace("%", "%%"),
        )


def _default_detector() -> str:
    """The cosmic-ray detector that ``cosmic_rays`` uses by default."""
    from napari_inpaint.detect import cosmic_rays

    return inspect.signature(cosmic_rays).parameters["method"].default


def _flag(detector: Detector, param: Param) -> str:
    return f"--{detector.name}-{param.name.replace('_', '-')}"


def _dest(detector: Detector, param: Param) -> str:
    return f"{detector.name}_{param.name}"


@dataclass(frozen=True)
class Detection:
    """What to detect in every image: the criteria of ``mask_from_image`` and a cosmic-ray detector."""

    kinds: tuple[str, ...]
    criteria: dict = field(default_factory=dict)  # keyword arguments of mask_from_image
    cosmic: str | None = None  # the cosmic-ray detector
    cosmic_params: dict = field(default_factory=dict)
    min_size: int = 0
    dilate: int = 0
    max_flagged: float | None = None  # a share; None: the sanity share

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Detection | None:
        """The detection the flags ask for (validated), or None when they ask for none."""
        kinds = tuple(split(args.detect))
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown:
            known = ", ".join(KINDS)
            raise ValueError(f"unknown kind of bad pixel {unknown[0]!r} for --detect; known: {known}")
        for path in args.images:
            if path.name in KINDS and not path.exists():  # as in "--detect nan saturated IMAGE"
                raise ValueError(f"{path} is a kind of bad pixel, not an image: give the kinds separated by "
                                 f"commas, e.g. --detect {','.join([*kinds, path.name])}")
        for dest, kind in _FLAGS_OF.items():
            if getattr(args, dest) not in (None, False) and kind not in kinds:
                raise ValueError(f"--{dest.replace('_', '-')} applies to --detect {kind}; add it to --detect")
        cosmic, cosmic_params = _cosmic_rays(args, kinds)
        if not kinds and args.above is None and args.below is None:
            for dest in ("min_size", "dilate", "max_flagged"):
                if getattr(args, dest) is not None:
                    flag = "--" + dest.replace("_", "-")
                    raise ValueError(f"{flag} acts on detected pixels: give --detect KIND")
            return None
        _check_counts(args)
        criteria = {
            "above": args.above, "below": args.below, "nonfinite": "nan" in kinds,
            "saturated": "saturated" in kinds, "saturation_value": args.saturation_level,
            "outliers": "hot-pixels" in kinds, "persistent": args.persistent,
        }
        criteria.update({name: value for name, value in (("k", args.hot_threshold), ("size", args.hot_window))
                         if value is not None})
        max_flagged = None if args.max_flagged is None else args.max_flagged / 100
        return cls(kinds, criteria, cosmic, cosmic_params, args.min_size or 0, args.dilate or 0, max_flagged)

    @property
    def pixelwise(self) -> bool:
        """Whether a criterion of ``mask_from_image`` is asked for (anything but cosmic rays)."""
        thresholds = self.criteria["above"] is not None or self.criteria["below"] is not None
        return thresholds or bool(set(self.kinds) - {"cosmic-rays"})

    def prepare(self) -> None:
        """Check that the cosmic-ray detector can run, and download its weights once, before any image."""
        if self.cosmic is None:
            return
        from napari_inpaint import models
        from napari_inpaint.detect import COSMIC_RAY_DETECTORS

        detector = COSMIC_RAY_DETECTORS[self.cosmic]
        if not detector.available():
            how = f": {detector.install}" if detector.install else ""
            raise Refused(f"the cosmic-ray detector {detector.name} needs the package {detector.module}{how}")
        for name in detector.weights_for(self.cosmic_params):
            models.fetch(name)

    def find(self, image, *, channel_axis: int | None, spatial_ndim: int,
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The mask of the bad pixels of ``image`` (read whole), of its shape without the channel axis."""
        import numpy as np

        from napari_inpaint.detect import cosmic_rays, dilate_mask, mask_from_image, remove_small

        image = np.asarray(image)
        found = []
        if self.pixelwise:
            found.append(mask_from_image(image, **self.criteria, spatial_ndim=spatial_ndim,
                                         channel_axis=channel_axis))
        if self.cosmic is not None:
            planes = image if channel_axis is None else np.moveaxis(image, channel_axis, 0)
            hits = cosmic_rays(planes, method=self.cosmic, progress=progress, **self.cosmic_params)
            found.append(hits if channel_axis is None else hits.any(axis=0))
        mask = np.logical_or.reduce(found)
        mask = remove_small(mask, self.min_size, spatial_ndim=spatial_ndim)
        return dilate_mask(mask, self.dilate, spatial_ndim=spatial_ndim)

    def report(self, mask: np.ndarray, source: Path, *, filling: bool) -> str:
        """How many pixels of ``source`` were flagged, as ``"N pixels flagged (x% of M)"``.

        Above ``--max-flagged``, ``detect`` warns on stderr (its mask is
        written, to be checked) and ``fill`` refuses: it would rewrite that
        much of the image.
        """
        from napari_inpaint.detect import SANITY_SHARE, Flagged, percent

        flagged = Flagged.of(mask)
        limit = SANITY_SHARE if self.max_flagged is None else self.max_flagged
        if not flagged.excessive(limit):
            return str(flagged)
        if filling:
            enough = math.ceil(1000 * flagged.share) / 10  # a percentage that lets this image through
            raise Refused(
                f"{source}: {flagged.warning(limit)}. Nothing was filled: check the mask first with "
                f"'napari-inpaint detect', or pass --max-flagged {enough:g} to fill them anyway"
            )
        print(f"warning: {source}: {flagged.warning(limit)}; check the mask before filling from it "
              f"('fill' refuses above {percent(limit)} unless --max-flagged allows more)", file=sys.stderr)
        return str(flagged)

    def describe(self) -> dict:
        """What was detected, for the provenance of an output."""
        criteria = {name: value for name, value in self.criteria.items() if value not in (None, False)}
        record = {"kinds": list(self.kinds), **criteria, "min_size": self.min_size, "dilate": self.dilate}
        if self.cosmic is not None:
            record.update(cosmic_ray_detector=self.cosmic, cosmic_ray_parameters=self.cosmic_params)
        return record


def _cosmic_rays(args: argparse.Namespace, kinds: tuple[str, ...]) -> tuple[str | None, dict]:
    """The cosmic-ray detector asked for and its parameters, validated by its record; (None, {}) for none.

    A parameter flag of another detector is refused: it would do nothing.
    """
    from napari_inpaint.detect import COSMIC_RAY_DETECTORS

    cosmic = None
    if "cosmic-rays" in kinds:
        cosmic = args.cosmic_detector or _default_detector()
    given = {}
    for detector in COSMIC_RAY_DETECTORS.values():
        for param in detector.params:
            text = getattr(args, _dest(detector, param))
            if text is None:
                continue
            if detector.name != cosmic:
                also = "" if cosmic is None else f" (the detector is {cosmic})"
                raise ValueError(
                    f"{_flag(detector, param)} is a parameter of the cosmic-ray detector "
                    f"{detector.name}: give --detect cosmic-rays --cosmic-detector {detector.name}{also}"
                )
            given[param.name] = convert(text, param.kind, _flag(detector, param))
    return cosmic, ({} if cosmic is None else COSMIC_RAY_DETECTORS[cosmic].resolve(given))


def _check_counts(args: argparse.Namespace) -> None:
    """Refuse the values of the detection flags that no detector takes, before any image is read."""
    if args.hot_threshold is not None and not (math.isfinite(args.hot_threshold) and args.hot_threshold > 0):
        raise ValueError(f"--hot-threshold must be a positive finite number, got {args.hot_threshold}")
    if args.hot_window is not None and (args.hot_window < 3 or args.hot_window % 2 == 0):
        raise ValueError(f"--hot-window must be an odd number of 3 or more, got {args.hot_window}")
    for dest in ("min_size", "dilate"):
        if (getattr(args, dest) or 0) < 0:
            raise ValueError(f"--{dest.replace('_', '-')} must not be negative, got {getattr(args, dest)}")
    for dest in ("above", "below", "saturation_level"):
        if getattr(args, dest) is not None and not math.isfinite(getattr(args, dest)):
            raise ValueError(f"--{dest.replace('_', '-')} must be a finite number, got {getattr(args, dest)}")
    if args.max_flagged is not None and not 0 < args.max_flagged <= 100:
        raise ValueError(f"--max-flagged is a percentage of the pixels, in (0, 100]; got {args.max_flagged:g}")
