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
first-order primal-dual algorithm of Chambolle and Pock [1]_:

.. math::

    p^{n+1} &= \Pi_{|p| \le 1}\big(p^n + \sigma \nabla \bar u^n\big) \\
    u^{n+1} &= \Pi_C\big(u^n + \tau\, \mathrm{div}\, p^{n+1}\big) \\
    \bar u^{n+1} &= 2 u^{n+1} - u^n

with :math:`\tau \sigma \|K\|^2 < 1`, which converges for any start.  The
projection :math:`\Pi_C` resets the known pixels; :math:`\Pi_{|p| \le 1}`
scales each pixel's dual vector back into the unit ball.  The hole starts
from the harmonic fill (Laplace's equation, one sparse solve), already close
to the TV solution away from edges.  Each channel is normalised by the range
of the known pixels around its holes, so ``tol`` is scale free.

Only the *active* pixels take part: the hole, the pixels whose forward
differences reach into it (they carry dual vectors) and the ring of known
pixels those differences read.  Every term of the energy that involves a hole
pixel involves only these, so the minimiser is the same as over the whole
image, and a crop with a few small holes costs what its holes cost.  On the
CPU the iteration runs over a list of the active pixels (numba); on a GPU
(PyTorch) over the whole crop, in float32, all channels as one batch.

**Stopping rule.**  Every 20 iterations the relative primal-dual gap of
each channel is computed,

.. math::

    G(u, p) = \frac{TV(u) - \langle \nabla u, p\rangle
              + \sum_{x \in \text{hole}} \max\big(q(x)(u(x) - a), q(x)(u(x) - b)\big)}{TV(u)},
    \qquad q = -\mathrm{div}\, p,

where :math:`[a, b]` is the range of the ring (TV obeys a maximum
principle, so the minimiser lies in it and the dual function is finite on
that box).  :math:`G \ge (TV(u) - \min TV) / TV(u)`, so stopping once
:math:`G \le` ``tol`` (0.001 % by default) guarantees an energy within ``tol``
of the optimum.  A channel also stops after ``iterations`` iterations; wide
holes (tens of pixels across) converge slowly and usually stop there.

References
----------
.. [1] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for
       convex problems with applications to imaging", J. Math. Imaging Vis.
       40 (2011), 120-145, doi:10.1007/s10851-010-0251-1.
.. [2] T. F. Chan and J. Shen, "Mathematical models for local nontexture
       inpaintings", SIAM J. Appl. Math. 62(3) (2002), 1019-1043.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint._registry import Param, register
from napari_inpaint.devices import DEVICE, select_device
from napari_inpaint.methods.diffusion import harmonic

if TYPE_CHECKING:
    import torch

# Iterations between cancellation and convergence checks (a check costs about one iteration, and
# on a GPU a synchronisation).
_CHECK_EVERY = 20
# Ratio tau / sigma of the step sizes.  On data normalised to [0, 1] a small
# primal and large dual step converge fastest: measured on edges, blobs, lines
# and scattered holes, 0.01-0.03 needs 2-5x fewer iterations than 1.
_STEP_RATIO = 0.02


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
        Param("iterations", int, 2000, "maximum number of primal-dual iterations", 10, 20000),
        Param("tol", float, 1e-5, "stop once the relative primal-dual gap is below tol (0: never)", 0.0, 1.0),
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
    iterations: int = 2000,
    tol: float = 1e-5,
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
    target = select_device(device)
    active = _Active(mask)
    ring = image.reshape(mask.size, -1)[active.pixels[active.free :]]
    low = ring.min(axis=0)
    span = ring.max(axis=0) - low
    span[span == 0] = 1.0
    start = (harmonic(image, mask) - low) / span
    if target.type == "cpu":
        values = _on_cpu(start.reshape(mask.size, -1), active, iterations, tol, check, progress)
    else:
        values = _on_device(start, mask, active, target, iterations, tol, check, progress)
    out = image.copy()
    out[mask] = values * span + low
    return out


class _Active:
    """The active pixels of a crop (see the module notes), numbered for :mod:`._tv_kernels`.

    ``pixels``: flat indices in the crop, the hole pixels first (raster
    order, so ``values[pixels[:free]]`` are ``values[mask]``), then the other
    pixels with a dual vector (up to ``duals``), then the rest of the ring;
    ``forward`` / ``backward``: per axis, the number of the next / previous
    pixel (-1 where there is none, and ``forward`` only for dual pixels).
    """

    def __init__(self, mask: np.ndarray):
        # A pixel carries a dual vector when its forward difference along some axis reads a hole pixel.
        dual = mask.copy()
        for axis in range(mask.ndim):
            before = _along(dual, axis, slice(None, -1))
            before |= _along(mask, axis, slice(1, None))
        # The other active pixels: those the dual pixels' forward differences read.
        active = dual.copy()
        for axis in range(mask.ndim):
            after = _along(active, axis, slice(1, None))
            after |= _along(dual, axis, slice(None, -1))
        groups = [np.flatnonzero(mask), np.flatnonzero(dual & ~mask), np.flatnonzero(active & ~dual)]
        self.free, self.duals = groups[0].size, groups[0].size + groups[1].size
        self.pixels = np.concatenate(groups)
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


def _along(array: np.ndarray, axis: int, part: slice) -> np.ndarray:
    """The view ``array[..., part, ...]`` with ``part`` on ``axis``."""
    return array[(slice(None),) * axis + (part,)]


def _on_cpu(start, active: _Active, iterations: int, tol: float, check, progress) -> np.ndarray:
    """Chambolle-Pock over the active pixels, channel by channel (numba); the hole's values."""
    from napari_inpaint.methods import _tv_kernels

    tau, sigma = _steps(len(active.forward))
    channels = start.shape[1]
    values = np.empty((active.free, channels))
    for channel in range(channels):
        u = np.ascontiguousarray(start[active.pixels, channel])
        u_bar = u.copy()
        p = tuple(np.zeros(u.size) for _ in active.forward)
        done = 0
        while done < iterations:
            chunk = min(_CHECK_EVERY, iterations - done)
            _tv_kernels.iterate(u, u_bar, p, active.forward, active.backward, active.duals, active.free, tau, sigma,
                                chunk)
            done += chunk
            if check is not None:
                check()
            if progress is not None:
                progress(channel * iterations + done, channels * iterations)
            if tol > 0:
                energy, gap = _tv_kernels.energy_and_gap(
                    u, p, active.forward, active.backward, active.duals, active.free, 0.0, 1.0
                )
                if gap <= tol * energy:
                    break
        values[:, channel] = u[: active.free]
    return values


def _on_device(start, mask, active: _Active, target, iterations: int, tol: float, check, progress) -> np.ndarray:
    """Chambolle-Pock over the whole crop on a PyTorch device, all channels at once; the hole's values."""
    import torch

    duals = np.zeros(mask.size, bool)
    duals[active.pixels[: active.duals]] = True
    with torch.inference_mode():
        u = torch.from_numpy(np.ascontiguousarray(np.moveaxis(start, -1, 0), dtype=np.float32)).to(target)
        hole = torch.tensor(mask, device=target)
        u = _chambolle_pock(u, hole, torch.tensor(duals.reshape(mask.shape), device=target), iterations, tol, check,
                            progress)
        return np.moveaxis(u.cpu().numpy().astype(np.float64), 0, -1)[mask]


def _chambolle_pock(
    u: "torch.Tensor",
    hole: "torch.Tensor",
    duals: "torch.Tensor",
    iterations: int,
    tol: float,
    check: Callable[[], None] | None,
    progress: Callable[[int, int], None] | None,
) -> "torch.Tensor":
    """Run the primal-dual iteration on ``u`` (channels first) in place, changing only ``hole`` pixels."""
    import torch

    ndim = hole.ndim
    tau, sigma = _steps(ndim)
    weight = hole.to(u.dtype) * tau  # primal step on the hole, zero on the fixed pixels
    # Every buffer is allocated once: on the CPU, allocating per iteration costs more than the arithmetic.
    p = torch.zeros((ndim,) + u.shape, dtype=u.dtype, device=u.device)
    u_bar = u.clone()
    step = torch.empty_like(u)
    for iteration in range(1, iterations + 1):
        _gradient(u_bar, p, sigma)
        # Project each pixel's dual vector onto the unit ball (step holds |p| here).
        torch.mul(p[0], p[0], out=step)
        for p_axis in p[1:]:
            step.addcmul_(p_axis, p_axis)
        p.div_(step.sqrt_().clamp_(min=1.0))
        _divergence(p, out=step)
        step.mul_(weight)
        u.add_(step)
        # Over-relaxation: u_bar = 2 u_new - u_old = u_new + step.
        torch.add(u, step, out=u_bar)
        if iteration % _CHECK_EVERY == 0 or iteration == iterations:
            if check is not None:
                check()
            if progress is not None:
                progress(iteration, iterations)
            if tol > 0 and bool((_relative_gap(u, p, hole, duals) <= tol).all()):
                break
    return u


def _gradient(u: "torch.Tensor", out: "torch.Tensor", scale: float = 1.0) -> None:
    """Add ``scale`` times the forward differences of ``u`` to ``out`` (the last ones along each axis stay)."""
    for axis, out_axis in enumerate(out):
        length = u.shape[axis + 1] - 1
        target = out_axis.narrow(axis + 1, 0, length)
        target.add_(u.narrow(axis + 1, 1, length), alpha=scale)
        target.sub_(u.narrow(axis + 1, 0, length), alpha=scale)


def _relative_gap(u: "torch.Tensor", p: "torch.Tensor", hole: "torch.Tensor", duals: "torch.Tensor") -> "torch.Tensor":
    """Per channel, the relative primal-dual gap of the module notes (box [0, 1])."""
    import torch

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
