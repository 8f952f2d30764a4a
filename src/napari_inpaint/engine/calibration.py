r"""How far off a filled pixel may be: a calibrated standard deviation from the errors of probe fills.

:mod:`napari_inpaint.engine.probes` hides holes like the real ones in known
pixels, fills them, and hands their errors here.  Each error is divided by
the *local scale* of its pixel (:func:`local_scale`: how much the known
pixels around the hole vary), and the 90 % quantile of that ratio is taken
per band of distance into the hole (:data:`DISTANCE_EDGES`).  A filled
pixel's sigma is then

.. math:: \sigma(p) = q_{0.9}\big(d(p)\big)\, s(p) / 1.645,

with :math:`d` its distance to the nearest known pixel and :math:`s` its
local scale, so that 90 % of the errors lie within :math:`1.645\,\sigma`
when the probes are like the holes (split conformal prediction: the probe
errors are the calibration set).  The quantiles are kept non-decreasing with
depth; beyond the deepest probed pixel they grow as the square root of the
distance (an extrapolation, said so in the provenance).
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint.methods import get_method

#: Lower edges of the bands of distance into a hole (pixels): a hole's edge pixel lies at distance 1.
DISTANCE_EDGES = (1.0, 2.0, 3.0, 5.0, 9.0, 17.0)
#: The share of errors an interval of 1.645 sigma holds (a normal distribution's 90 % interval).
COVERAGE = 0.9
Z90 = 1.6448536269514722
# A band holds at least this many probe errors to have its own quantile (else the band below it speaks).
_MIN_BAND = 40
# The Gaussian window (pixels) over which the known pixels' spread is measured.
_SCALE_WIDTH = 2.0
# No pixel's scale is taken below this share of the probes' median scale (flat regions are not exact).
_FLOOR_SHARE = 0.1
#: Known pixels a crop needs around its holes for :func:`local_scale` (its window's reach).
SCALE_MARGIN = int(4 * _SCALE_WIDTH)


def local_scale(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance into the hole and the local scale of every pixel of ``values`` (channels last).

    The local scale of a known pixel is the standard deviation of the known
    pixels in a Gaussian window (width 2 pixels) around it; a hole pixel takes
    the harmonic interpolation of those scales across its hole (the mean of
    the scales a random walk from it meets first: near the edge, the scale
    there; deep inside, an average over the hole's rim).

    Returns
    -------
    distance : ndarray, shape mask.shape
        Euclidean distance to the nearest known pixel (0 on known pixels).
    scale : ndarray, shape values.shape
        Per channel, in the values' units.

    Examples
    --------
    >>> values = np.zeros((9, 9, 1)); values[:, ::2] = 2.0
    >>> mask = np.zeros((9, 9), bool); mask[4, 4] = True
    >>> distance, scale = local_scale(values, mask)
    >>> float(distance[4, 4]), bool(0.5 < scale[4, 4, 0] <= 1.0)
    (1.0, True)
    """
    known = ~np.asarray(mask, bool)
    if not known.any():
        return np.full(known.shape, np.inf), np.zeros(values.shape)
    weights = ndi.gaussian_filter(known.astype(np.float64), _SCALE_WIDTH, mode="constant")
    distance = ndi.distance_transform_edt(~known)
    spread = np.zeros(values.shape, np.float64)
    for channel in range(values.shape[-1]):
        plane = np.where(known, values[..., channel], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = ndi.gaussian_filter(plane, _SCALE_WIDTH, mode="constant") / weights
            square = ndi.gaussian_filter(plane * plane, _SCALE_WIDTH, mode="constant") / weights
        spread[..., channel] = np.where(known, np.sqrt(np.clip(square - mean * mean, 0.0, None)), 0.0)
    if known.all():
        return distance, spread
    # Smooth across a hole (the nearest known pixel's scale drew rays from its rim to its centre).
    harmonic = get_method("harmonic")
    return distance, harmonic.fill(spread, ~known, **harmonic.resolve({}))


@dataclass(frozen=True)
class Calibration:
    """The quantiles that turn a pixel's distance and local scale into its sigma (see the module's notes).

    Attributes
    ----------
    quantiles : ndarray
        Per band of :data:`DISTANCE_EDGES`, the 90 % quantile of error /
        scale (NaN where no probe error could be measured).
    floor : ndarray
        Per channel, the smallest local scale used.
    deepest : float
        The largest distance into a hole among the probe errors.
    pixels : int
        The probe errors measured (per channel).
    """

    quantiles: np.ndarray
    floor: np.ndarray
    deepest: float
    pixels: int
    notes: list = field(default_factory=list, compare=False)

    @classmethod
    def fit(cls, errors: np.ndarray, distance: np.ndarray, scale: np.ndarray) -> "Calibration":
        """Fit to probe errors: ``errors`` and ``scale`` (n, C), ``distance`` (n,).

        With fewer than 40 errors nothing can be said: every quantile is NaN.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> errors = np.abs(rng.normal(0, 2.0, (4000, 1)))
        >>> fitted = Calibration.fit(errors, rng.uniform(1, 4, 4000), np.ones((4000, 1)))
        >>> bool(abs(fitted.quantiles[0] / 1.645 - 2.0) < 0.2)  # the errors' sigma, 2
        True
        """
        channels = scale.shape[-1] if scale.ndim == 2 else 1
        if len(distance) < _MIN_BAND:
            return cls(np.full(len(DISTANCE_EDGES), np.nan), np.zeros(channels), 0.0, len(distance),
                       [f"only {len(distance)} probe pixels fitted in the known pixels: sigma is unknown (NaN)"])
        floor = _FLOOR_SHARE * np.median(scale, axis=0)
        floor = np.maximum(floor, np.finfo(np.float64).tiny)
        ratio = (errors / np.maximum(scale, floor)).ravel()
        bands = np.repeat(np.searchsorted(DISTANCE_EDGES, distance, side="right") - 1, errors.shape[-1])
        quantiles = np.full(len(DISTANCE_EDGES), np.nan)
        for band in range(len(DISTANCE_EDGES)):
            inside = ratio[bands == band]
            if len(inside) >= _MIN_BAND * errors.shape[-1]:
                quantiles[band] = np.quantile(inside, COVERAGE)
        if np.isnan(quantiles).all():  # every band thin: one quantile for all
            quantiles[:] = np.quantile(ratio, COVERAGE)
        # A band without its own errors takes the band below it; deeper is never more certain.
        quantiles[0] = quantiles[0] if np.isfinite(quantiles[0]) else np.nanmin(quantiles)
        quantiles = np.fmax.accumulate(quantiles)
        return cls(quantiles, floor, float(distance.max()), len(distance))

    @classmethod
    def unit(cls, channels: int) -> "Calibration":
        """The calibration whose sigma is the scale itself: what probes measure errors against."""
        return cls(np.full(len(DISTANCE_EDGES), Z90), np.full(channels, np.finfo(np.float64).tiny), np.inf, 0)

    def sigma(self, values: np.ndarray, mask: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """The sigma of every hole pixel of ``values`` (channels last; 0 on known pixels), float64.

        ``own``: the fill's own standard deviation of each pixel's error
        (``values``' shape), taken as the scale instead of the known pixels'
        spread.
        """
        distance, scale = local_scale(values, mask)
        if own is not None:
            scale = own
        band = np.clip(np.searchsorted(DISTANCE_EDGES, distance, side="right") - 1, 0, None)
        quantile = self.quantiles[band]
        deeper = distance > max(self.deepest, 1.0)
        if deeper.any():  # beyond the probes: grow as the square root of the distance
            quantile = np.where(deeper, quantile * np.sqrt(distance / max(self.deepest, 1.0)), quantile)
        sigma = quantile[..., np.newaxis] * np.maximum(scale, self.floor) / Z90
        sigma[~np.asarray(mask, bool)] = 0.0
        return sigma

    @property
    def provenance(self) -> dict:
        """The calibration as plain data, for the provenance of the outputs."""
        record = {
            "coverage": COVERAGE,
            "probe_pixels": self.pixels,
            "distance_bands": list(DISTANCE_EDGES),
            "quantiles": [None if not np.isfinite(q) else round(float(q), 4) for q in self.quantiles],
            "deepest_probe": round(self.deepest, 2),
        }
        if self.notes:
            record["notes"] = list(self.notes)
        return record
