#!/usr/bin/env python
"""``auto`` on stacks: against 2D biharmonic, 3D biharmonic and ``guided`` with the adjacent planes.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_auto_stacks.py --quick   # two stacks, about a minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_auto_stacks.py           # four stacks

The stacks are those of ``bench_reference_defects.py`` (scikit-image's
bundled images, a random-walk sub-pixel drift, 1 % bleaching per plane,
photon and read noise; 20 planes of 128², 500 photons at the brightest
pixel), with persistent hot pixels (the same in every plane), transient
debris (different in each plane) or both.  Every fill is scored over all hole
pixels against the noise-free stack (PSNR, the stack's range as peak).

``auto`` runs two ways: plane by plane with the adjacent planes as reference
(candidates harmonic, biharmonic, tv and guided) and on the stack
as a volume (``spatial_ndim=3``: harmonic and biharmonic in 3D, biharmonic
plane by plane, and guided plane by plane with each plane's neighbours in
the crop as reference, ``guided:adjacent``).  The table gives each one's loss against the best of the
three references (2D biharmonic, 3D biharmonic, guided); the target is a loss
under 0.5 dB.
"""

import argparse
import time

import numpy as np
from bench_reference_defects import damage, hole_psnr, simulate_stack
from skimage import data

from napari_inpaint import inpaint

PLANES = 20
SHAPE = (128, 128)
REFERENCES = {
    "biharmonic 2D": {"method": "biharmonic"},
    "biharmonic 3D": {"method": "biharmonic", "spatial_ndim": 3},
    "guided": {"method": "guided", "reference": "adjacent"},
}
AUTOS = {
    "auto 2D + adjacent": {"method": "auto", "reference": "adjacent"},
    "auto 3D": {"method": "auto", "spatial_ndim": 3},
}


def fill(stack: np.ndarray, mask: np.ndarray, options: dict) -> tuple[np.ndarray, float]:
    """The filled stack and the seconds it took."""
    options = dict(options)
    start = time.perf_counter()
    filled = inpaint(stack, mask, options.pop("method"), **options)
    return filled, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two stacks only")
    args = parser.parse_args()
    stars = data.hubble_deep_field().mean(axis=-1)
    images = {"cell": data.cell(), "moon": data.moon(), "camera": data.camera(), "stars": stars}
    if args.quick:
        images = dict(list(images.items())[:2])
    names = [*REFERENCES, *AUTOS]
    print("| stack | defects | " + " | ".join(names) + " | auto 2D loss | auto 3D loss |")
    print("| --- | --- |" + " --- |" * (len(names) + 2))
    losses = {name: [] for name in AUTOS}
    seconds = dict.fromkeys(names, 0.0)
    for seed, (name, image) in enumerate(images.items()):
        recorded, truth = simulate_stack(image, SHAPE, seed=seed)
        recorded, truth = recorded[:PLANES], truth[:PLANES]
        for kind in ("hot pixels", "debris", "both"):
            damaged, mask = damage(recorded, kind, seed=seed)
            scores = {}
            for label in names:
                filled, took = fill(damaged, mask, {**REFERENCES, **AUTOS}[label])
                scores[label] = hole_psnr(filled, truth, mask)
                seconds[label] += took
            best = max(scores[label] for label in REFERENCES)
            for label in AUTOS:
                losses[label].append(best - scores[label])
            row = " | ".join(f"{scores[label]:.2f}" for label in names)
            print(f"| {name} | {kind} | {row} | {best - scores['auto 2D + adjacent']:.2f} | "
                  f"{best - scores['auto 3D']:.2f} |", flush=True)
    print()
    for label in AUTOS:
        values = np.array(losses[label])
        print(f"{label}: loss against the best reference: mean {values.mean():.2f} dB, worst {values.max():.2f} dB; "
              f"within 0.5 dB in {int((values <= 0.5).sum())}/{len(values)} cases")
    print("seconds (sum): " + ", ".join(f"{label} {seconds[label]:.1f}" for label in names))


if __name__ == "__main__":
    main()
