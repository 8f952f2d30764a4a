r"""Total-variation inpainting: fills that keep edges sharp, on the GPU when present.

Notes
-----
The fill minimises the isotropic total variation over the hole pixels with
the known pixels :math:`f` held fixed,

.. math:: \min_u \sum_x |\nabla u(x)|_2 \quad \text{subject to} \quad u = f \text{ outside the hole},

with forward differences and the Neumann condition at the border.  TV
interpolates level lines along straight, shortest paths, so a hole across an
edge is closed by a sharp edge rather than a blur; its weakness is that it
invents no texture and leaves flat "staircased" patches in wide holes.

Writing :math:`K = \nabla` (with :math:`\|K\|^2 \le 4d` in :math:`d`
dimensions), the problem is the saddle point
:math:`\min_u \max_{|p(x)| \le 1} \langle K u, p\rangle + \iota_C(u)`, where
:math:`C` is the set of images agreeing with :math:`f`.  It is solved with the
first-order primal-dual algorithm of Chambolle and Pock [1]_, primal step
first and over-relaxed (Condat [3]_):

.. math::

    \tilde u &= \Pi_C\big(u^n + \tau\, \mathrm{div}\, p^n\big), \qquad
    \bar u = 2 \tilde u - u^n \\
    \tilde p &= \Pi_{|p| \le 1}\big(p^n + \sigma \nabla \bar u\big) \\
    u^{n+1} &= u^n + \rho (\tilde u - u^n), \qquad p^{n+1} = p^n + \rho (\tilde p - p^n)

with :math:`\tau \sigma \|K\|^2 < 1` and :math:`\rho \in (0, 2)`, which
converges for any start.  The projection :math:`\Pi_C` resets the known
pixels; :math:`\Pi_{|p| \le 1}` scales each pixel's dual vector back into the
unit ball.  With :math:`\rho = 1.9` the fill reaches the errors of plain
steps (:math:`\rho = 1`) in about half the iterations, at a third more work
per iteration.  Each channel is normalised by the range of the known pixels
around its holes, so ``tol`` is scale free.

**Start.**  The iteration converges slowly on the long-range shape of a wide
hole's fill, quickly on local detail.  So the hole starts from the TV fill
and the dual vectors of the grid coarsened by 2 along each axis (blocks of 2
pixels per axis: a hole where all of a block is, else the mean of its known
pixels), solved the same way from a yet coarser grid (to a loose gap, 3 %),
down to a grid where no block is all hole (or a side is under 4 pixels),
which starts from the harmonic fill (Laplace's equation, one sparse solve)
and zero dual vectors.  The coarse grids added 3-25 % to the finest grid's
work on 1024²-2048² images.  There, with 2 % holes, this start reached a
given gap in about half the iterations, and after 2000 plain iterations (the
limit before the over-relaxation), the largest error (against the converged fill) was 1.3-5
times and the mean error 2-5 times smaller than when starting from the
harmonic fill.  At a fixed number of iterations the fill thus depends a
little on the crop's box (the blocks start at its corner).

Only the *active* pixels take part: the hole, the pixels whose forward
differences reach into it (they carry dual vectors) and the ring of known
pixels those differences read.  Every term of the energy that involves a hole
pixel involves only these, so the minimiser is the same as over the whole
image, and a crop with a few small holes costs what its holes cost.  On the
CPU the iteration runs over a list of the active pixels (numba); on a GPU
(PyTorch) over the whole crop, in float32, all channels as one batch.

**Stopping rule.**  Every 20 iterations the relative primal-dual gap of
each hole of each channel is computed (a hole: a connected component of the
mask, corners included; holes share no unknown and no dual vector, so each is
a problem of its own, and on the CPU each stops on its own: small holes
converge in a few hundred iterations, wide ones take thousands; on a GPU the
gap is taken over the whole crop),

.. math::

    G(u, p) = \frac{TV(u) - \langle \nabla u, p\rangle
              + \sum_{x \in \text{hole}} \max\big(q(x)(u(x) - a), q(x)(u(x) - b)\big)}{TV(u)},
    \qquad q = -\mathrm{div}\, p,

with :math:`p` projected onto the unit ball (the over-relaxed dual vectors
may leave it), where :math:`[a, b]` is the range of the known active pixels of the crop,
which holds each hole's ring (TV obeys a maximum principle, so the minimiser
lies in it and the dual function is finite on that box).
:math:`G \ge (TV(u) - \min TV) / TV(u)`, so stopping once
:math:`G \le` ``tol`` guarantees an energy within ``tol`` of the optimum.  The
gap bounds the energy, not the pixels (TV is not strictly convex).  The
default, 0.01 %, left pixel errors of at most 0.012 % of the contrast on a
sharp edge across a 3-pixel stroke (0.115 % with plain steps), where 0.1 %
left 0.014 % (plain: 0.46 %).  A channel also stops after ``iterations``
iterations (1000 by default); holes wider than about 30 pixels and long
crossing scratches usually stop there.  On the held-out cases of
``benchmarks/bench_classical.py`` (strokes, hot pixels, debris, scratches,
dropped lines on ten 8-bit images) the defaults left a mean error of at most
0.04 and a largest error of 0.66 grey levels (per kind of hole) against fills
converged further, where 2000 plain iterations left 0.03 and 0.75 (fewer
iterations cost proportionally less, at a larger error).  The fill is
clipped to :math:`[a, b]`: an iterate stopped early may overshoot the range
where the minimiser lies.

**Lone pixels.**  A hole pixel with no hole among its neighbours (most hot
pixels) enters only its own forward differences and those of its backward
neighbours, all of whose other pixels are known: the energy is a convex
function of one value.  It is minimised exactly (at a kink of the function,
or by Newton's method within a bracket) and the pixel leaves the iteration.

References
----------
.. [1] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for
       convex problems with applications to imaging", J. Math. Imaging Vis.
       40 (2011), 120-145, doi:10.1007/s10851-010-0251-1.
.. [2] T. F. Chan and J. Shen, "Mathematical models for local nontexture
       inpaintings", SIAM J. Appl. Math. 62(3) (2002), 1019-1043.
.. [3] L. Condat, "A primal-dual splitting method for convex optimization
       involving Lipschitzian, proximable and linear composite terms",
       J. Optim. Theory Appl. 158 (2013), 460-479, doi:10.1007/s10957-012-0245-9.
"""

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from napari_inpaint.methods.diffusion import harmonic
from napari_inpaint.models.devices import DEVICE, select_device
from napari_inpaint.registry import Param, register

if TYPE_CHECKING:
    import torch

# Iterations between cancellation and convergence checks (a check costs about one iteration, and
# on a GPU a synchronisation).
_CHECK_EVERY = 20
# Ratio tau / sigma of the step sizes.  On data normalised to [0, 1] a small
# primal and large dual step converge fastest: measured on edges, blobs, lines
# and scattered holes, 0.01-0.03 needs 2-5x fewer iterations than 1.
_STEP_RATIO = 0.02
# Over-relaxation of each step (Condat 2013; converges for any value in (0, 2)): measured on the held-out
# cases of bench_classical.py against fills converged further, 1.9 reaches the errors of plain steps (1) in
# about half the iterations.
_RELAXATION = 1.9
# The coarse grids only place the start: a loose tolerance there (1e-3 gave the same errors at the finest grid).
_COARSE_TOL = 0.03


def _steps(ndim: int) -> tuple[float, float]:
    """Primal and dual step sizes with ``tau * sigma * ||grad||^2 = 0.99``."""
    product = 0.99 / (4 * ndim)
    return float(np.sqrt(product * _STEP_RATIO)), float(np.sqrt(product / _STEP_RATIO))


@register(
    "tv",
    summary="Total-variation fill (Chambolle-Pock): keeps edges sharp across thin defects; GPU when present",
    family="classical",
    artifacts=("scratches", "debris", "saturation", "seams"),
    ndims=(2, 3),
    params=(
        Param("iterations", int, 1000, "maximum number of primal-dual iterations", 10, 20000, probe=100),
        Param("tol", float, 1e-4, "stop once the relative primal-dual gap is below tol (0: never)", 0.0, 1.0,
              probe=1e-3),
        DEVICE,
    ),
    margin=1,
    local_fill=True,
    channel_independent=True,
    needs_torch=True,
)
def tv(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    iterations: int = 1000,
    tol: float = 1e-4,
    device: str = "auto",
    check: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Fill holes with the image of least total variation that matches the known pixels.

    Parameters
    ----------
    %(image_mask)s
    iterations : int
        Maximum number of primal-dual iterations.
    tol : float
        Stop once the relative primal-dual gap (an upper bound on the
        relative distance of the total variation to its minimum; see the
        module notes) is below ``tol``; 0 runs all ``iterations``.
    %(device)s
    check : callable, optional
        Called every few iterations; raises to cancel.
    progress : callable, optional
        ``progress(iteration, iterations)`` every few iterations.

    Returns
    -------
    %(returns)s

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> step = np.zeros((16, 16)); step[:, 8:] = 100.0
    >>> mask = np.zeros(step.shape, bool); mask[6:10, :] = True  # a band across the edge
    >>> filled = inpaint(step, mask, "tv")
    >>> bool(np.abs(filled - step).max() < 1.0)
    True
    """
    if not mask.any():
        return image.copy()
    return _solve(image, mask, iterations, tol, device, check, progress)[0]


def _solve(image, mask, iterations: int, tol: float, device: str, check, progress):
    """The fill of :func:`tv`, with its dual vectors for a finer grid's start.

    Returns the filled image, the flat indices of the pixels with a dual
    vector and those vectors, shape (pixels, channels, axes).
    """
    from napari_inpaint.methods import _tv_kernels

    target = select_device(device)
    # The fill goes into a copy, and the mask too (writable: the kernels are compiled for writable arrays).
    out, mask = image.copy(), mask.copy()
    # Lone pixels (most hot pixels) are problems of one unknown each: solved exactly, they leave the iteration
    # (and, known now, are in no other hole's ring: holes are 8-connected).
    shape = np.array(mask.shape)
    lone = _tv_kernels.isolated(mask.ravel(), shape)
    if lone.size:
        _tv_kernels.fill_isolated(out.reshape(mask.size, -1), shape, lone)
        mask.ravel()[lone] = False
        if not mask.any():
            return out, np.zeros(0, np.intp), np.zeros((0, out.shape[-1], mask.ndim))
    active = _Active(mask)
    ring = out.reshape(mask.size, -1)[active.pixels[active.free :]]
    low = ring.min(axis=0)
    span = ring.max(axis=0) - low
    span[span == 0] = 1.0
    start, duals = _start(out, mask, active, iterations, tol, device, check)
    if target.type == "cpu":
        values, duals = _on_cpu((start.reshape(mask.size, -1)[active.pixels] - low) / span, duals, active,
                                iterations, tol, check, progress)
    else:
        values, duals = _on_device((start - low) / span, duals, mask, active, target, iterations, tol, check,
                                   progress)
    # The minimiser lies in the range of the known active pixels (maximum principle); an iterate stopped early
    # may overshoot it (the more for over-relaxed steps): clipping to it only brings each pixel closer.
    out.reshape(mask.size, -1)[active.pixels[: active.free]] = np.clip(values, 0.0, 1.0) * span + low
    # The over-relaxed dual vectors may lie outside the unit ball: a finer grid starts from their projection.
    duals /= np.maximum(1.0, np.sqrt(np.square(duals).sum(axis=-1, keepdims=True)))
    return out, active.pixels[: active.duals], duals


def _start(image, mask, active: "_Active", iterations: int, tol: float, device: str, check):
    """``image`` with a first fill of the holes and the first dual vectors (or None), from the coarser grids.

    A coarse pixel is a block of 2 pixels per axis: a hole where all of them
    are, else the mean of its known ones.  A pixel starts from the TV fill and
    the dual vector of its block (the last row or column of an odd size from
    the block next to it; zero where the block has no dual vector); the
    coarsest grid, where no block is all hole (or a side is under 4 pixels),
    starts from the harmonic fill and zero dual vectors.  See the module notes.
    """
    half = tuple(n // 2 for n in mask.shape)
    if min(half) < 2:
        return harmonic(image, mask, check=check), None
    known = _block_sums(~mask, half, np.int8)
    coarse_mask = known == 0
    if not coarse_mask.any() or coarse_mask.all():
        return harmonic(image, mask, check=check), None
    sums = _block_sums(np.where(mask[..., np.newaxis], 0.0, image), half, np.float64)
    coarse, coarse_pixels, coarse_duals = _solve(
        sums / np.maximum(known, 1)[..., np.newaxis], coarse_mask, iterations, max(tol, _COARSE_TOL), device, check,
        None,
    )

    def block(pixels: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return tuple(np.minimum(coord // 2, n - 1) for coord, n in zip(pixels, half))

    holes = np.nonzero(mask)
    start = image.copy()
    start[holes] = coarse[block(holes)]
    slot = np.full(coarse_mask.size, -1, np.intp)
    slot[coarse_pixels] = np.arange(coarse_pixels.size)
    slots = slot[np.ravel_multi_index(block(np.unravel_index(active.pixels[: active.duals], mask.shape)), half)]
    duals = np.zeros((slots.size,) + coarse_duals.shape[1:])
    duals[slots >= 0] = coarse_duals[slots[slots >= 0]]
    return start, duals


def _block_sums(array: np.ndarray, half: tuple[int, ...], dtype) -> np.ndarray:
    """The sums over the blocks of 2 pixels per leading axis of ``array`` (``half`` blocks per axis; an odd
    size's last row or column left out).

    Adds the ``2**d`` strided views: a reduction over the reshaped blocks' axes took 20 times longer.
    """
    total = np.zeros(half + array.shape[len(half) :], dtype)
    for corner in itertools.product((0, 1), repeat=len(half)):
        total += array[tuple(slice(c, c + 2 * n, 2) for c, n in zip(corner, half))]
    return total


class _Active:
    """The active pixels of a crop (see the module notes), numbered for :mod:`._tv_kernels`.

    ``pixels``: flat indices in the crop, the hole pixels first (up to
    ``free``), then the other pixels with a dual vector (up to ``duals``), then
    the rest of the ring; ``forward`` / ``backward``: per axis, the number of
    the next / previous pixel (-1 where there is none, and ``forward`` only
    for dual pixels).  Holes (connected components, ``components`` of them)
    share no unknown and no dual vector, so each is a problem of its own,
    stopped on its own gap: ``component`` gives the hole of each pixel with a
    dual vector, and within the first two groups the pixels are sorted by hole
    (then raster order), hole ``c`` holding ``hole_ranges[c]`` and
    ``dual_ranges[c]`` (start, stop) of them.
    """

    def __init__(self, mask: np.ndarray):
        # Two holes touching only at a corner share the dual vector of a pixel whose differences read both:
        # label with full connectivity.  A pixel carries a dual vector when its forward difference along
        # some axis reads a hole pixel; it belongs to that hole.
        labels, self.components = ndi.label(mask, np.ones((3,) * mask.ndim, bool))
        owner = labels.copy()
        for axis in range(mask.ndim):
            before = _along(owner, axis, slice(None, -1))
            np.maximum(before, _along(labels, axis, slice(1, None)), out=before)
        dual = owner > 0
        # The other active pixels: those the dual pixels' forward differences read.
        active = dual.copy()
        for axis in range(mask.ndim):
            after = _along(active, axis, slice(1, None))
            after |= _along(dual, axis, slice(None, -1))
        owner = owner.ravel()
        groups, bounds = [], []
        for pixels in (np.flatnonzero(mask), np.flatnonzero(dual & ~mask)):
            holes = owner[pixels]
            groups.append(pixels[np.argsort(holes, kind="stable")])
            bounds.append(np.concatenate([[0], np.cumsum(np.bincount(holes - 1, minlength=self.components))]))
        groups.append(np.flatnonzero(active & ~dual))
        self.free, self.duals = groups[0].size, groups[0].size + groups[1].size
        self.hole_ranges = np.stack([bounds[0][:-1], bounds[0][1:]], axis=1)
        self.dual_ranges = np.stack([bounds[1][:-1], bounds[1][1:]], axis=1) + self.free
        self._hole_and_dual_ranges = np.concatenate([self.hole_ranges, self.dual_ranges])
        self.pixels = np.concatenate(groups)
        self.component = (owner[self.pixels[: self.duals]] - 1).astype(np.intp)
        number = np.full(mask.size, -1, np.int32 if self.pixels.size < 2**31 else np.int64)
        number[self.pixels] = np.arange(self.pixels.size)
        coords = np.unravel_index(self.pixels, mask.shape)
        strides = np.cumprod((1,) + mask.shape[:0:-1])[::-1]
        self.forward, self.backward = [], []
        for coord, size, stride in zip(coords, mask.shape, strides):
            has_next = coord < size - 1
            has_next[self.duals :] = False
            self.forward.append(np.where(has_next, number[np.where(has_next, self.pixels + stride, 0)], -1))
            has_previous = coord > 0
            self.backward.append(np.where(has_previous, number[np.where(has_previous, self.pixels - stride, 0)], -1))
        self.forward, self.backward = tuple(self.forward), tuple(self.backward)

    def ranges(self, running: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (start, stop) ranges of the pixels of the ``running`` holes: with a dual vector, in the hole.

        Sorted as numbered (holes in order, the hole pixels before the other dual pixels), the adjacent ones
        joined; computed at every check where a hole stops (thousands of hot pixels), so in one compiled pass.
        """
        from napari_inpaint.methods._tv_kernels import merged_ranges

        both = np.concatenate([running, running])
        return merged_ranges(self._hole_and_dual_ranges, both), merged_ranges(self.hole_ranges, running)


def _along(array: np.ndarray, axis: int, part: slice) -> np.ndarray:
    """The view ``array[..., part, ...]`` with ``part`` on ``axis``."""
    return array[(slice(None),) * axis + (part,)]


def _on_cpu(start, duals, active: _Active, iterations: int, tol: float, check, progress):
    """Chambolle-Pock over the active pixels, channel by channel (numba).

    ``start``: the active pixels' values, one column per channel; ``duals``:
    the first dual vectors (pixels with one, channels, axes) or None (zero).
    Returns the hole's values and the final dual vectors.
    """
    from napari_inpaint.methods import _tv_kernels

    ndim = len(active.forward)
    tau, sigma = _steps(ndim)
    channels = start.shape[1]
    values = np.empty((active.free, channels))
    final = np.empty((active.duals, channels, ndim))
    for channel in range(channels):
        u = np.ascontiguousarray(start[:, channel])
        u_bar = u.copy()
        p = tuple(np.zeros(u.size) for _ in range(ndim))
        if duals is not None:
            for axis in range(ndim):
                p[axis][: active.duals] = duals[:, channel, axis]
        # The pixels still updated: those of the holes that have not converged yet.
        running = np.ones(active.components, bool)
        pixels, free = active.ranges(running)
        done = 0
        while done < iterations:
            chunk = min(_CHECK_EVERY, iterations - done)
            _tv_kernels.iterate(u, u_bar, p, active.forward, active.backward, pixels, free, tau, sigma, _RELAXATION,
                                chunk)
            done += chunk
            if check is not None:
                check()
            if progress is not None:
                progress(channel * iterations + done, channels * iterations)
            if tol > 0:
                # Only the running holes: a wide hole's checks cost its own pixels, not those of the small
                # holes stopped around it.
                energy, gap = _tv_kernels.energy_and_gap(
                    u, p, active.forward, active.backward, active.component, active.components, pixels, free, 0.0, 1.0
                )
                still = running & (gap > tol * energy)
                if not still.any():
                    break
                if still.sum() < running.sum():
                    running = still
                    pixels, free = active.ranges(running)
        values[:, channel] = u[: active.free]
        for axis in range(ndim):
            final[:, channel, axis] = p[axis][: active.duals]
    return values, final


def _on_device(start, duals, mask, active: _Active, target, iterations: int, tol: float, check, progress):
    """Chambolle-Pock over the whole crop on a PyTorch device, all channels at once.

    As :func:`_on_cpu`, with ``start`` the whole crop (channels last).
    """
    import torch

    ndim, channels = mask.ndim, start.shape[-1]
    dual_pixels = active.pixels[: active.duals]
    carries = np.zeros(mask.size, bool)
    carries[dual_pixels] = True
    p = np.zeros((ndim, channels, mask.size), np.float32)
    if duals is not None:
        p[:, :, dual_pixels] = duals.transpose(2, 1, 0)
    with torch.inference_mode():
        u = torch.from_numpy(np.ascontiguousarray(np.moveaxis(start, -1, 0), dtype=np.float32)).to(target)
        p = torch.from_numpy(p.reshape((ndim, channels) + mask.shape)).to(target)
        hole = torch.tensor(mask, device=target)
        u = _chambolle_pock(u, p, hole, torch.tensor(carries.reshape(mask.shape), device=target), iterations, tol,
                            check, progress)
        values = np.moveaxis(u.cpu().numpy().astype(np.float64), 0, -1).reshape(mask.size, -1)
        final = p.cpu().numpy().astype(np.float64).reshape(ndim, channels, -1)[:, :, dual_pixels]
        return values[active.pixels[: active.free]], final.transpose(2, 1, 0)


def _chambolle_pock(
    u: "torch.Tensor",
    p: "torch.Tensor",
    hole: "torch.Tensor",
    duals: "torch.Tensor",
    iterations: int,
    tol: float,
    check: Callable[[], None] | None,
    progress: Callable[[int, int], None] | None,
) -> "torch.Tensor":
    """Run the primal-dual iteration on ``u`` (channels first) and its dual vectors ``p`` (axes, then as ``u``)
    in place, changing only ``hole`` pixels of ``u``."""
    import torch

    ndim = hole.ndim
    tau, sigma = _steps(ndim)
    weight = hole.to(u.dtype) * tau  # primal step on the hole, zero on the fixed pixels
    # Every buffer is allocated once: on the CPU, allocating per iteration costs more than the arithmetic.
    u_bar = u.clone()
    step = torch.empty_like(u)
    ascent = torch.empty_like(p)
    for iteration in range(1, iterations + 1):
        _divergence(p, out=step)
        step.mul_(weight)
        torch.add(u, step, alpha=2.0, out=u_bar)  # extrapolation
        u.add_(step, alpha=_RELAXATION)
        ascent.copy_(p)
        _gradient(u_bar, ascent, sigma)
        _project(ascent, step)
        p.mul_(1.0 - _RELAXATION).add_(ascent, alpha=_RELAXATION)
        if iteration % _CHECK_EVERY == 0 or iteration == iterations:
            if check is not None:
                check()
            if progress is not None:
                progress(iteration, iterations)
            if tol > 0 and bool((_relative_gap(u, p, hole, duals) <= tol).all()):
                break
    return u


def _project(p: "torch.Tensor", norm: "torch.Tensor") -> None:
    """Scale each pixel's dual vector in ``p`` back into the unit ball, in place (``norm``: a buffer shaped as
    one axis of ``p``)."""
    import torch

    torch.mul(p[0], p[0], out=norm)
    for p_axis in p[1:]:
        norm.addcmul_(p_axis, p_axis)
    p.div_(norm.sqrt_().clamp_(min=1.0))


def _gradient(u: "torch.Tensor", out: "torch.Tensor", scale: float = 1.0) -> None:
    """Add ``scale`` times the forward differences of ``u`` to ``out`` (the last ones along each axis stay)."""
    for axis, out_axis in enumerate(out):
        length = u.shape[axis + 1] - 1
        target = out_axis.narrow(axis + 1, 0, length)
        target.add_(u.narrow(axis + 1, 1, length), alpha=scale)
        target.sub_(u.narrow(axis + 1, 0, length), alpha=scale)


def _relative_gap(u: "torch.Tensor", p: "torch.Tensor", hole: "torch.Tensor", duals: "torch.Tensor") -> "torch.Tensor":
    """Per channel, the relative primal-dual gap of the module notes (box [0, 1]), with ``p`` projected onto the
    unit ball."""
    import torch

    p = p.clone()
    _project(p, torch.empty_like(u))
    gradient = torch.zeros_like(p)
    _gradient(u, gradient)
    spatial = tuple(range(1, u.ndim))
    energy = (gradient.square().sum(0).sqrt() * duals).sum(spatial)
    pairing = ((gradient * p).sum(0) * duals).sum(spatial)
    divergence = _divergence(p, out=torch.empty_like(u))
    box = (torch.maximum(divergence * (1 - u), -divergence * u) * hole).sum(spatial)
    return (energy - pairing + box) / energy.clamp(min=torch.finfo(u.dtype).tiny)


def _divergence(p: "torch.Tensor", out: "torch.Tensor") -> "torch.Tensor":
    """Negative adjoint of the forward-difference gradient, written to ``out``.

    ``p`` must be zero at each axis's last entry, as the gradient is.
    """
    out.copy_(p[0])
    for p_axis in p[1:]:
        out.add_(p_axis)
    for axis, p_axis in enumerate(p):
        length = p_axis.shape[axis + 1] - 1
        out.narrow(axis + 1, 1, length).sub_(p_axis.narrow(axis + 1, 0, length))
    return out
