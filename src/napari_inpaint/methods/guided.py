r"""Guided fill: the structure of a reference, matched to the plane's own pixels around the hole.

The most informative data for a hole are often in the neighbouring slice of a
z-stack, the previous frame of a time-lapse or a second acquisition of the
same field: they show the same structures a micron or a second away.
``guided`` fills the hole with that structure (the reference, aligned by the
engine, see :mod:`napari_inpaint.engine.reference`), corrected so that it meets the
plane's known pixels seamlessly: a gradient-domain (Poisson) fill [1]_ of the
difference between the plane and the reference, as in semi-parametric
inpainting [2]_ where an auxiliary similar image guides the fill.

Notes
-----
In each crop, with :math:`r` the reference, :math:`f` the plane and
:math:`K` its known pixels (the hole's surroundings, ``context`` pixels
wide), an intensity model absorbs gain, offset and a linear trend
(bleaching, uneven illumination) between the two, by least squares on
:math:`K`:

.. math:: m(x) = a\, r(x) + b + c^\top x, \qquad
          (a, b, c) = \arg\min \sum_{x \in K} \big(f(x) - m(x)\big)^2 .

The residual :math:`f - m` is then filled harmonically (:math:`\Delta u = 0`
in the hole, :math:`u = f - m` on its border) and the fill is :math:`m + u`:
in the hole its Laplacian is the reference's, :math:`\Delta(m + u) = a
\Delta r`, so the reference's structure is kept while the seam disappears.
A plane equal to its reference plus a linear ramp is reproduced exactly.

Where the reference knows nothing, e.g. a hot pixel bad in every plane of
a stack, the engine completes it by the harmonic fill: :math:`m` is then
harmonic in the hole and :math:`m + u` is the plane's own harmonic fill
(except at the plane's border, where the linear trend is not harmonic): such
pixels are filled as without a reference.

The fill is only as good as the reference: where the structure moved or
changed between the two (fast motion, a neighbour far in z), it copies the
wrong structure.  Use a reference acquired close in space or time, and keep
``align`` on when the stage drifts.

References
----------
.. [1] P. Pérez, M. Gangnet and A. Blake, "Poisson image editing", ACM
       Trans. Graph. 22(3) (2003), 313-318.
.. [2] X. Qi, Q. Chen, J. Jia and V. Koltun, "Semi-parametric image
       synthesis", CVPR 2018, arXiv:1804.10992.
"""

import numpy as np

from napari_inpaint.methods.diffusion import harmonic
from napari_inpaint.registry import Param, register


@register(
    "guided",
    summary="Fills with the structure of a reference (a neighbouring plane or another acquisition), "
    "matched to the pixels around the hole",
    family="classical",
    artifacts=("debris", "large-holes", "texture", "scratches", "saturation"),
    ndims=(2, 3),
    params=(
        Param("context", int, 8, "known pixels around each hole used to match the reference's intensity", 2, 256),
    ),
    margin=lambda params: params["context"],
    local_fill=True,
    channel_independent=True,
    needs_reference=True,
)
def guided(image: np.ndarray, mask: np.ndarray, *, context: int = 8, reference: np.ndarray | None = None) -> np.ndarray:
    """Fill holes with the reference's structure, seamlessly joined to the known pixels.

    Parameters
    ----------
    %(image_mask)s
    context : int
        Used by the engine only: the width of known surroundings whose
        pixels fit the intensity model.
    %(reference)s

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> rng = np.random.default_rng(0)
    >>> texture = rng.random((32, 32))
    >>> yy, xx = np.mgrid[:32, :32]
    >>> plane = 2.0 * texture + 0.1 * yy + 5.0  # the reference, with gain, offset and a trend
    >>> mask = np.zeros(plane.shape, bool); mask[10:20, 8:24] = True
    >>> filled = inpaint(plane, mask, "guided", reference=texture, align=False)
    >>> bool(np.allclose(filled, plane))
    True
    """
    if reference is None:
        raise ValueError("method 'guided' needs a reference (inpaint(..., reference=...))")
    known = ~mask
    # Pixel coordinates about the known pixels' centre: the linear trend's regressors.
    grid = np.indices(mask.shape, dtype=np.float64).reshape(mask.ndim, -1).T
    grid -= grid[known.reshape(-1)].mean(axis=0)
    coordinates = grid[known.reshape(-1)]
    model = np.empty_like(image)
    for channel in range(image.shape[-1]):
        guide = reference[..., channel]
        design = np.column_stack([guide[known], np.ones(coordinates.shape[0]), coordinates])
        coefficients, *_ = np.linalg.lstsq(design, image[..., channel][known], rcond=None)
        full = np.column_stack([guide.reshape(-1), np.ones(grid.shape[0]), grid])
        model[..., channel] = (full @ coefficients).reshape(mask.shape)
    residual = harmonic(np.where(mask[..., None], 0.0, image - model), mask)
    return np.where(mask[..., None], model + residual, image)
