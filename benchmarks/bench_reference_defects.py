#!/usr/bin/env python
"""``guided`` with the adjacent planes on persistent hot pixels and transient debris, against 2D fills.

Usage::

    python benchmarks/bench_reference_defects.py --quick   # the small-plane cases only, under a minute
    python benchmarks/bench_reference_defects.py           # all cases

A camera's hot pixels are bad at the same place in every plane of a stack, so
no neighbouring plane knows them: ``guided`` must then do as well as a plain 2D
fill, and as fast.  Debris differs from plane to plane, so the neighbours know
it.  The stacks are simulated from scikit-image's bundled images (no
download): a random-walk sub-pixel stage drift, 1 % bleaching per plane,
photon (Poisson) and read noise, on small planes (33×41 pixels, where phase
correlation has little to go on) and on 256² planes.  Every plane's holes are
scored against the noise-free stack: PSNR over all hole pixels, with the
stack's range as peak.
"""

import argparse
import itertools
import time

import numpy as np
from scipy import ndimage as ndi
from skimage import data

from napari_inpaint import inpaint, masks

PLANES = 30
# Photons at the brightest pixel: a bright stack, and a dim one where noise dominates small planes.
PHOTONS = (500.0, 30.0)


def simulate_stack(image: np.ndarray, shape: tuple[int, int], *, drift=0.3, photons=500.0, read_noise=3.0,
                   seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A (PLANES,) + shape uint16 stack of a crop of ``image`` drifting by a random walk, and its noise-free truth.

    The stage moves by a normal step of ``drift`` pixels (per axis) between planes.
    """
    rng = np.random.default_rng(seed)
    field = image.astype(float) / image.max()
    offset = (np.array(field.shape) - shape) // 2
    position = np.zeros(2)
    planes, truth = [], []
    for t in range(PLANES):
        position += rng.normal(0, drift, 2)
        moved = ndi.shift(field, position, order=3, mode="reflect")
        crop = moved[offset[0] : offset[0] + shape[0], offset[1] : offset[1] + shape[1]]
        expected = photons * np.clip(crop, 0, None) * 0.99**t
        truth.append(expected)
        planes.append(rng.poisson(expected) + rng.normal(0, read_noise, expected.shape))
    return np.clip(np.rint(planes), 0, 65535).astype(np.uint16), np.stack(truth)


def damage(stack: np.ndarray, kind: str, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """The stack with its defects written in (hot pixels saturate, debris is dark) and their mask."""
    rng = np.random.default_rng(seed)
    shape = stack.shape[1:]
    mask = np.zeros(stack.shape, bool)
    if kind in ("hot pixels", "both"):
        mask |= masks.hot_pixels(shape, 0.01, seed=seed)  # the same pixels in every plane
    if kind in ("debris", "both"):
        radius = max(2.0, min(shape) / 12)
        for plane in range(len(stack)):
            mask[plane] |= masks.debris(shape, radius, seed=rng)
    damaged = stack.copy()
    damaged[mask] = np.where(rng.random(int(mask.sum())) < 0.5, 65535, 0)
    return damaged, mask


def hole_psnr(filled: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the holes against the noise-free stack (no fill can know the noise), its range as peak."""
    span = float(truth.max() - truth.min())
    error = filled[mask].astype(float) - truth[mask]
    return 10 * np.log10(span**2 / np.mean(error**2))


METHODS = {
    "biharmonic": {"method": "biharmonic"},
    "harmonic": {"method": "harmonic"},
    "guided (adjacent)": {"method": "guided", "reference": "adjacent"},
    "guided (adjacent, no align)": {"method": "guided", "reference": "adjacent", "align": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 33×41 stacks only")
    args = parser.parse_args()
    # A star field (sparse bright points on a dark, noisy background) is the hardest to register.
    stars = data.hubble_deep_field().mean(axis=-1)
    images = {"cell": data.cell(), "camera": data.camera(), "moon": data.moon(), "stars": stars}
    shapes = [(33, 41)] if args.quick else [(33, 41), (256, 256)]
    print("| stack | photons | defects | method | hole PSNR dB | seconds |\n| --- | --- | --- | --- | --- | --- |")
    for shape, photons in itertools.product(shapes, PHOTONS):
        for seed, (name, image) in enumerate(images.items()):
            recorded, truth = simulate_stack(image, shape, photons=photons, seed=seed)
            for kind in ("hot pixels", "debris", "both"):
                damaged, mask = damage(recorded, kind, seed=seed)
                for label, options in METHODS.items():
                    options = dict(options)
                    start = time.perf_counter()
                    filled = inpaint(damaged, mask, options.pop("method"), **options)
                    seconds = time.perf_counter() - start
                    psnr = hole_psnr(filled, truth, mask)
                    print(f"| {name} {shape[0]}×{shape[1]} | {photons:g} | {kind} | {label} | {psnr:.2f} | "
                          f"{seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
