r"""Exemplar-based inpainting: fill holes with real texture copied from the known region.

Diffusion fills are smooth; in textured or noisy images they leave a blurred
blob.  The exemplar method of Criminisi, Pérez and Toyama [1]_ instead copies
whole patches of known pixels into the hole, so the fill has the grain, noise
and periodic structure of its surroundings.

Notes
-----
Let :math:`\Omega` be the hole, :math:`\Phi` the known pixels and
:math:`\Psi_p` the ``patch_size`` square centred at :math:`p`.  Every pixel
has a confidence :math:`C`, 1 on :math:`\Phi` and 0 on :math:`\Omega`.  Each
step

1. gives every pixel :math:`p` of the fill front :math:`\delta\Omega` (hole
   pixels with a known 4-neighbour) the priority

   .. math:: P(p) = C(p)\,\big(D(p) + \epsilon\big), \qquad
             C(p) = \frac{1}{|\Psi_p|}\sum_{q \in \Psi_p \setminus \Omega} C(q), \qquad
             D(p) = \frac{\lVert \nabla^\perp I \cdot n_p \rVert}{\alpha},

   where :math:`n_p` is the unit normal of the front (the Sobel gradient of
   the known-pixel indicator), :math:`\nabla^\perp I` the isophote at the
   strongest gradient among the known pixels of :math:`\Psi_p` (the norm is
   taken over channels), :math:`\alpha` the range of the known values and
   :math:`\epsilon = 10^{-3}` keeps the order confidence-driven where the
   image is flat;
2. takes the front pixel :math:`\hat p` of highest priority (ties: first in
   row-major order) and the source patch

   .. math:: \hat q = \arg\min_{\Psi_q \subset \Phi_0}
             \sum_{x \in \Psi_{\hat p} \setminus \Omega} \lVert I(x) - I(x - \hat p + q) \rVert^2

   over all channels jointly, among patches that are entirely known in the
   original image (:math:`\Phi_0`) and inside it, whose centre lies within
   ``search_radius`` pixels of :math:`\hat p` along each axis (the window is
   doubled while it holds no such patch, so holes wider than the window are
   still filled; ties go to the nearer centre, then the first in row-major
   order);
3. copies the pixels of :math:`\Psi_{\hat q}` onto the hole pixels of
   :math:`\Psi_{\hat p}`, gives them confidence :math:`C(\hat p)`, and
   updates gradients, front and priorities around :math:`\hat p`.

Every filled value is therefore a value of some known pixel, and the result
is deterministic.  When no entirely known ``patch_size`` patch exists (a
small crop, or a dense mask), the largest odd size that has one is used.
The search and the front updates run as compiled numba kernels (compiled
once, then cached on disk).

References
----------
.. [1] A. Criminisi, P. Pérez and K. Toyama, "Region filling and object
       removal by exemplar-based image inpainting", IEEE Trans. Image
       Process. 13(9) (2004), 1200-1212, doi:10.1109/TIP.2004.833105.
"""

from collections.abc import Callable

import numpy as np

from napari_inpaint.registry import Param, register

# Patches filled between two calls of ``check`` (each costs at most a few ms).
_PATCHES_PER_CHECK = 50


def _summed_area(array: np.ndarray) -> np.ndarray:
    """Summed-area table with a leading row and column of zeros: ``S[i, j] = array[:i, :j].sum()``."""
    table = np.zeros((array.shape[0] + 1, array.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(array, axis=0), axis=1, out=table[1:, 1:])
    return table


def _source_centres(mask: np.ndarray, half: int) -> np.ndarray:
    """True at the centres of (2 half + 1)^2 patches that lie inside the image and hold no masked pixel."""
    size = 2 * half + 1
    centres = np.zeros(mask.shape, bool)
    if min(mask.shape) < size:
        return centres
    table = _summed_area(mask)
    masked = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    centres[half : mask.shape[0] - half, half : mask.shape[1] - half] = masked == 0
    return centres


@register(
    "exemplar",
    summary="Patch-based filling (Criminisi): copies real texture from the known region",
    family="classical",
    artifacts=("texture", "debris", "large-holes"),
    ndims=(2,),
    params=(
        Param("patch_size", int, 9, "odd side of the copied patches, a bit over the texture grain", 3, 31),
        Param("search_radius", int, 64, "search source patches within this many pixels of the hole", 8, 512,
              probe=16),
    ),
    margin=lambda params: params["search_radius"] + params["patch_size"] // 2,
    local_fill=True,
    channel_independent=False,
)
def exemplar(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    patch_size: int = 9,
    search_radius: int = 64,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Fill masked pixels by copying best-matching known patches in priority order.

    Parameters
    ----------
    %(image_mask)s
    patch_size : int
        Odd side of the square patches that are matched and copied.
    search_radius : int
        Source patches are searched with their centre within this many pixels
        (along each axis) of the patch being filled.
    check : callable, optional
        Called every few dozen patches; raises to cancel.

    Returns
    -------
    ndarray
        ``image`` with the masked pixels replaced by copies of known pixels.

    Raises
    ------
    ValueError
        If ``patch_size`` is even, or no entirely known 3x3 patch exists.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> stripes = np.tile([0.0, 0.0, 1.0, 1.0], (32, 8))  # vertical stripes, period 4
    >>> mask = np.zeros(stripes.shape, bool)
    >>> mask[10:20, 10:20] = True
    >>> filled = inpaint(stripes, mask, "exemplar", patch_size=5, search_radius=16)
    >>> bool(np.array_equal(filled, stripes))
    True
    """
    if patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd (the patch has a centre pixel); got {patch_size}")
    from napari_inpaint.methods import _exemplar_kernels as kernels

    for half in range(patch_size // 2, 0, -1):
        source = _source_centres(mask, half)
        if source.any():
            break
    else:
        raise ValueError(
            f"no 3x3 patch of the {mask.shape[0]}x{mask.shape[1]} region around the hole is entirely "
            "known, so there is nothing to copy from; use a diffusion method (e.g. 'harmonic') instead"
        )
    values = np.array(image, dtype=np.float64, order="C")
    known = np.ascontiguousarray(~mask)
    spread = np.ptp(values[known], axis=0)
    alpha = float(np.sqrt(np.sum(spread**2))) or 1.0
    confidence = known.astype(np.float64)
    height, width = mask.shape
    gy = np.zeros_like(values)
    gx = np.zeros_like(values)
    gnorm = np.zeros((height, width))
    priority = np.empty((height, width))
    kernels.update_gradients(values, known, gy, gx, gnorm, 0, height, 0, width)
    kernels.update_priorities(known, confidence, gy, gx, gnorm, priority, half, alpha, 0, height, 0, width)
    source_sum = _summed_area(source)
    remaining = int(mask.sum())
    while remaining:
        if check is not None:
            check()
        filled = kernels.fill_patches(
            values, known, confidence, gy, gx, gnorm, priority, source, source_sum,
            half, search_radius, alpha, _PATCHES_PER_CHECK,
        )
        if filled == 0:
            raise RuntimeError("exemplar fill stalled with unfilled pixels left; please report this as a bug")
        remaining -= filled
    return values
