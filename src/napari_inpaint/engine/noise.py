"""Noise like the surroundings' for the filled pixels, and the noise level of known pixels.

A smooth fill in a noisy image is conspicuous (and biases statistics that
assume noise everywhere): ``noise="gaussian"`` adds noise of the standard
deviation of the crop's known pixels, ``noise="poisson"`` draws photon counts
with the fill as mean.
"""

import numpy as np

# Above this mean, Poisson noise is drawn from its normal limit (numpy refuses means near 1e19;
# the relative error of the approximation is below 1e-4 here).
_POISSON_NORMAL_LIMIT = 1e8


def poisson(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photon-count noise with the fill as mean (its normal limit for very large means)."""
    if (values < 0).any():
        raise ValueError("noise='poisson' needs non-negative data (photon counts); use noise='gaussian'")
    large = values > _POISSON_NORMAL_LIMIT
    noisy = rng.poisson(np.where(large, 0.0, values)).astype(np.float64)
    normal = values + np.sqrt(values, where=large, out=np.zeros_like(values)) * rng.standard_normal(values.shape)
    return np.where(large, np.maximum(normal, 0.0), noisy)


def noise_sigma(work: np.ndarray, crop_mask: np.ndarray) -> np.ndarray:
    """Robust per-channel noise standard deviation of the known pixels.

    The discrete Laplacian of white noise with variance s^2 has variance
    ``(2d)^2 s^2 + 2d s^2`` in d dimensions; its median absolute deviation is
    insensitive to edges and smooth structure.
    """
    ndim = crop_mask.ndim
    lap = -2 * ndim * work
    valid = ~crop_mask
    for axis in range(ndim):
        for shift in (-1, 1):
            lap += np.roll(work, shift, axis=axis)
            valid &= ~np.roll(crop_mask, shift, axis=axis)
    # np.roll wraps around: the border pixels do not have true neighbours.
    for axis in range(ndim):
        edge = [slice(None)] * ndim
        for index in (0, -1):
            edge[axis] = index
            valid[tuple(edge)] = False
    if valid.sum() < 8:
        return np.zeros(work.shape[-1])
    samples = lap[valid]
    mad = np.median(np.abs(samples - np.median(samples, axis=0)), axis=0)
    return 1.4826 * mad / np.sqrt((2 * ndim) ** 2 + 2 * ndim)
