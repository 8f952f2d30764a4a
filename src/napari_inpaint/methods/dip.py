r"""Deep Image Prior (``dip``): a randomly initialised network fitted to the known pixels.

A network that maps fixed noise to an image is fitted to the known pixels
only; the architecture's bias towards natural structure fills the holes [1]_.
It needs no training data and no download, but each crop is fitted from
scratch.

Notes
-----
With :math:`z` fixed uniform noise (32
channels, amplitude 0.1), :math:`f_\theta` the U-Net of ``learned`` with random
weights, :math:`K` the known pixels and :math:`\hat x` the image normalised
as ``learned`` does it, Adam minimises
:math:`\sum_K (f_\theta(z + \eta) - \hat x)^2` for ``iterations`` steps, with
fresh perturbations :math:`\eta \sim \mathcal N(0, (1/30)^2)` as in [1]_; the
fill is :math:`f_\theta(z)` in the holes.  Each call fits one crop from
scratch; it is slow on a CPU (seconds per 100 iterations for a 256^2 crop).

References
----------
.. [1] D. Ulyanov, A. Vedaldi and V. Lempitsky, "Deep Image Prior", CVPR 2018,
       arXiv:1711.10925.
"""

import numpy as np

from napari_inpaint.methods._training import (
    Check,
    Progress,
    check_image,
    normaliser,
    not_cancellable,
    torch_generator,
)
from napari_inpaint.methods.learned import WIDTH_HELP
from napari_inpaint.models.devices import DEVICE, select_device
from napari_inpaint.registry import Param, register

_NOISE_CHANNELS = 32


@register(
    "dip",
    summary="Deep Image Prior: fits a randomly initialised network to the known pixels (slow on CPU)",
    family="network",
    artifacts=("texture", "debris"),
    ndims=(2,),
    params=(
        Param("iterations", int, 1000, "optimisation steps", 1, 1_000_000),
        Param("learning_rate", float, 0.01, "Adam learning rate", 1e-5, 1.0, advanced=True),
        Param("width", int, 16, WIDTH_HELP, 4, 128, advanced=True),
        Param("context", int, 32, "known pixels around each hole to fit", 4, 4096, advanced=True),
        DEVICE,
    ),
    margin=lambda params: params["context"],
    local_fill=True,
    channel_independent=False,
    needs_torch=True,
)
def dip(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    iterations: int = 1000,
    learning_rate: float = 0.01,
    width: int = 16,
    context: int = 32,
    device: str = "auto",
    rng: np.random.Generator | None = None,
    check: Check = None,
    progress: Progress = None,
) -> np.ndarray:
    """Fill the holes with a Deep Image Prior fitted to the crop's known pixels.

    Parameters
    ----------
    %(image_mask)s
    iterations : int
        Adam steps.
    learning_rate : float
        Adam learning rate.
    width : int
        Channels of the network's first level.
    context : int
        Used by the engine only: pixels of known context around each hole.
    %(device)s
    rng : numpy.random.Generator, optional
        Seeds the weights, the input noise and its perturbations.
    check : callable, optional
        Called before every iteration; raises to cancel.
    progress : callable, optional
        ``progress(iteration, iterations)`` after every iteration.

    Returns
    -------
    ndarray
        ``image`` with the masked pixels replaced by the network's output.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> image = np.tile(np.linspace(0.0, 1.0, 32), (32, 1))
    >>> mask = np.zeros(image.shape, bool); mask[12:18, 12:18] = True
    >>> filled = inpaint(image, mask, "dip", iterations=5, width=4, device="cpu")
    >>> bool(np.array_equal(filled[~mask], image[~mask]))
    True
    """
    import torch

    from napari_inpaint.methods._networks import UNet, build

    check_image(image, mask)
    rng = np.random.default_rng(0) if rng is None else rng
    check = not_cancellable if check is None else check
    torch_device = select_device(device)
    low, scale = normaliser(image, ~mask)
    values = np.where(mask[..., None], 0.0, (image - low) / scale)
    generator = torch_generator(rng)  # the input noise and its perturbations
    net = build(UNet, _NOISE_CHANNELS, image.shape[-1], width, generator=torch_generator(rng))
    net.to(torch_device)
    noise = (0.1 * torch.rand((1, _NOISE_CHANNELS) + mask.shape, generator=generator)).to(torch_device)
    target = torch.from_numpy(np.moveaxis(values, -1, 0).astype(np.float32))[None].to(torch_device)
    weight = torch.from_numpy(~mask).to(torch_device)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    for iteration in range(iterations):
        check()
        jitter = torch.randn(noise.shape, generator=generator).to(torch_device) / 30.0
        loss = ((net(noise + jitter) - target) ** 2 * weight).sum() / (weight.sum() * target.shape[1])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(iteration + 1, iterations)
    with torch.no_grad():
        out = net(noise)[0].cpu().numpy().astype(np.float64)
    return np.where(mask[..., None], np.moveaxis(out, 0, -1) * scale + low, image)
