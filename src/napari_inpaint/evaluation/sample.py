"""A damaged microscopy image, its mask and its clean original: the demo's data and napari's sample.

The image is scikit-image's ``cell`` (a bundled file, no download) with three
kinds of damage drawn by :mod:`napari_inpaint.masks`: hot pixels (stuck at
the detector's maximum), a dark scratch and an opaque debris blob with a soft
halo.  The mask marks each kind with its own label so that the Inpaint
widget can fill all of them or one kind at a time.
"""

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint import masks

# Label values of the sample mask, one per artifact kind.
LABELS = {"hot pixels": 1, "scratch": 2, "debris": 3}
# The debris sits on the rim of the cell, where a fill must continue an edge.
_DEBRIS_CENTER = (330, 372)


def damaged_cell(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build the sample: the clean cell, its damaged copy and the damage labels.

    Parameters
    ----------
    seed : int
        Seed of the artifact placement.

    Returns
    -------
    clean, damaged : ndarray of uint8
        The original image and the image with hot pixels (255), a dark
        scratch and a dark debris blob.
    labels : ndarray of uint8
        Damaged pixels, labelled as in :data:`LABELS`; 0 elsewhere.

    Examples
    --------
    >>> clean, damaged, labels = damaged_cell()
    >>> bool((damaged[labels == 0] == clean[labels == 0]).all())
    True
    """
    from skimage import data

    clean = data.cell()
    shape = clean.shape
    rng = np.random.default_rng(seed)
    hot = masks.hot_pixels(shape, 0.002, seed=rng)
    scratch = masks.scratch(shape, width=3, seed=rng)
    blob = masks.debris(shape, radius=18, seed=rng, center=_DEBRIS_CENTER)
    # Debris darkens its surroundings too: a halo two pixels wide, blended by distance.
    halo = masks.dilate(blob, 2)

    damaged = clean.astype(np.float64)
    damaged[scratch] = rng.uniform(0, 12, int(scratch.sum()))
    distance = ndi.distance_transform_edt(~blob)
    damaged[halo] *= np.clip(distance[halo] / 3.0, 0.05, 1.0)
    damaged[hot] = 255
    damaged = np.clip(np.rint(damaged), 0, 255).astype(np.uint8)

    labels = np.zeros(shape, np.uint8)
    labels[hot] = LABELS["hot pixels"]
    labels[scratch] = LABELS["scratch"]
    labels[halo] = LABELS["debris"]
    return clean, damaged, labels

