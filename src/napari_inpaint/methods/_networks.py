r"""Compact PyTorch networks for the ``learned`` and ``dip`` methods.

This private module imports torch at the top; :mod:`napari_inpaint.methods.learned`
imports it only inside its functions, so the package import stays torch-free.

Notes
-----
:class:`UNet` is a three-level U-Net [3]_ built from gated convolutions
(DeepFill v2 [1]_): every layer computes features :math:`F` and a gate
:math:`G` from the same input and outputs

.. math:: y = \mathrm{ELU}(F) \odot \sigma(G),

a soft, learned, per-channel mask that lets the network tell known pixels
from holes at every depth (a learned generalisation of the partial
convolution's hard mask update [2]_).  The bottleneck holds residual
fast-Fourier-convolution blocks (LaMa [4]_): a 1x1 convolution applied to the
real and imaginary parts of the 2D FFT of the features gives every output
pixel a receptive field as large as the image, which is what lets a small
network continue periodic texture across a wide hole.

:class:`Inpainter` predicts a correction to a smooth fill: with :math:`m`
the hole indicator and :math:`b` a smooth fill of the holes from the known
values (the caller's; :mod:`~napari_inpaint.methods.learned` uses the
biharmonic fill),

.. math:: f(x, m) = b + \mathrm{UNet}\big(x \odot (1 - m),\ m,\ b\big),

and the U-Net's last layer starts at zero, so an untrained or briefly
trained network already gives the smooth fill and training only adds what
it learns (texture, edges).

References
----------
.. [1] J. Yu, Z. Lin, J. Yang, X. Shen, X. Lu and T. Huang, "Free-form image
       inpainting with gated convolution", ICCV 2019, arXiv:1806.03589.
.. [2] G. Liu, F. A. Reda, K. J. Shih, T.-C. Wang, A. Tao and B. Catanzaro,
       "Image inpainting for irregular holes using partial convolutions",
       ECCV 2018, arXiv:1804.07723.
.. [3] O. Ronneberger, P. Fischer and T. Brox, "U-Net: convolutional networks
       for biomedical image segmentation", MICCAI 2015, arXiv:1505.04597.
.. [4] R. Suvorov et al., "Resolution-robust large mask inpainting with
       Fourier convolutions", WACV 2022, arXiv:2109.07161.

Examples
--------
>>> import torch
>>> net = Inpainter(channels=1, width=8)
>>> values, holes = torch.ones(1, 1, 30, 45), torch.zeros(1, 1, 30, 45)
>>> holes[..., 10:20, 10:20] = 1
>>> smooth = values.clone()
>>> bool(torch.equal(net(values * (1 - holes), holes, smooth), smooth))  # untrained: the smooth fill
True
"""

import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

Network = TypeVar("Network", bound=nn.Module)

# Pixel-unshuffle by 2, then two stride-2 levels: inputs are padded to a multiple of this.
_SHUFFLE = 2
_STRIDE = 4 * _SHUFFLE


class GatedConv(nn.Module):
    """Gated convolution: ``ELU(features) * sigmoid(gate)``, both from one convolution."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv2d(cin, 2 * cout, kernel, stride, padding=padding, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gate)


class FourierUnit(nn.Module):
    """A 1x1 convolution in the 2D Fourier domain (real and imaginary parts as channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft2(x, norm="ortho")
        mixed = F.relu(self.conv(torch.cat([spectrum.real, spectrum.imag], dim=1)))
        real, imag = mixed.chunk(2, dim=1)
        return torch.fft.irfft2(torch.complex(real, imag), s=x.shape[-2:], norm="ortho")


class FourierBlock(nn.Module):
    """Residual block mixing a local gated convolution with a global Fourier unit."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.local = GatedConv(channels, channels, dilation=2)
        self.spectral = FourierUnit(channels)
        self.mix = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(torch.cat([self.local(x), self.spectral(x)], dim=1))


class UNet(nn.Module):
    """Three-level gated-convolution U-Net with Fourier blocks in the bottleneck.

    The input is first rearranged into 2x2 blocks (pixel unshuffle) and the
    output assembled back (pixel shuffle): the full-resolution layers, the
    costliest, then run on a quarter of the pixels.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    width : int
        Channels of the first level; the deeper levels have 2x and 4x.
    fourier_blocks : int
        Residual Fourier blocks in the bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, fourier_blocks: int = 2) -> None:
        super().__init__()
        w = width
        self.enc1 = GatedConv(_SHUFFLE**2 * in_channels, w, kernel=5)
        self.enc2 = GatedConv(w, 2 * w, stride=2)
        self.enc3 = GatedConv(2 * w, 4 * w, stride=2)
        self.middle = nn.Sequential(*(FourierBlock(4 * w) for _ in range(fourier_blocks)))
        self.dec2 = GatedConv(4 * w + 2 * w, 2 * w)
        self.dec1 = GatedConv(2 * w + w, w)
        self.out = nn.Conv2d(w, _SHUFFLE**2 * out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # Replicate padding works for any size (reflection needs 2+ pixels).
        x = F.pad(x, (0, -width % _STRIDE, 0, -height % _STRIDE), mode="replicate")
        e1 = self.enc1(F.pixel_unshuffle(x, _SHUFFLE))
        e2 = self.enc2(e1)
        e3 = self.middle(self.enc3(e2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="nearest"), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], dim=1))
        return F.pixel_shuffle(self.out(d1), _SHUFFLE)[..., :height, :width]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight as PyTorch's default initialisation does, from ``generator``.

        The convolutions are drawn in the order they were built, so a generator
        seeded with ``s`` gives the weights ``torch.manual_seed(s)`` followed
        by construction would give.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # PyTorch's Conv2d default: weight and bias uniform within +-1/sqrt(fan_in).
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif next(module.parameters(recurse=False), None) is not None:
                # build() leaves uninitialised memory in any layer not drawn here.
                raise TypeError(f"UNet.reset_parameters cannot initialise a {type(module).__name__} layer")


class Inpainter(nn.Module):
    """A :class:`UNet` that corrects a smooth (biharmonic) fill of the holes.

    Parameters
    ----------
    channels : int
        Image channels.
    width, fourier_blocks : int
        See :class:`UNet`.
    reference : bool
        Whether the network also sees an aligned reference (``channels``
        more input channels), as semi-parametric inpainting feeds an
        auxiliary similar image.

    Attributes
    ----------
    config : dict
        The constructor arguments, saved with the weights.
    """

    def __init__(self, channels: int, width: int = 16, fourier_blocks: int = 2, reference: bool = False) -> None:
        super().__init__()
        self.config = {"channels": channels, "width": width, "fourier_blocks": fourier_blocks, "reference": reference}
        inputs = (3 if reference else 2) * channels + 1
        self.unet = UNet(inputs, channels, width, fourier_blocks)
        self._start_as_smooth_fill()

    def _start_as_smooth_fill(self) -> None:
        # A zero last layer: the untrained network gives the smooth fill; training adds the correction.
        nn.init.zeros_(self.unet.out.weight)
        nn.init.zeros_(self.unet.out.bias)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the weights from ``generator`` (see :meth:`UNet.reset_parameters`); the last layer zero."""
        self.unet.reset_parameters(generator)
        self._start_as_smooth_fill()

    def forward(
        self, values: torch.Tensor, holes: torch.Tensor, smooth: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Fill ``values`` (B, C, H, W; zero in the holes) where ``holes`` (B, 1, H, W) is 1.

        ``smooth`` (B, C, H, W) is a base fill of the same holes, computed by
        the caller (biharmonic, or guided by the reference); ``reference``
        (B, C, H, W) the aligned reference, for a network built with
        ``reference=True``.
        """
        if (reference is not None) != self.config["reference"]:
            raise ValueError(
                "this network was trained " + ("with" if self.config["reference"] else "without")
                + " a reference, and must be given " + ("one" if self.config["reference"] else "none")
            )
        parts = [values, holes, smooth] + ([reference] if reference is not None else [])
        return smooth + self.unet(torch.cat(parts, dim=1))


def build(network: Callable[..., Network], *args, generator: torch.Generator, **kwargs) -> Network:
    """Build ``network(*args, **kwargs)`` on the CPU with weights drawn from ``generator`` only.

    Plain construction draws the weights from torch's global RNG, which every
    thread shares: two threads building networks at once would get each
    other's draws.  The layers are built on the ``meta`` device instead (no
    memory, no draws; the device context is per thread) and then filled by
    ``reset_parameters(generator)``.

    Examples
    --------
    >>> first = build(UNet, 2, 1, width=4, generator=torch.Generator().manual_seed(0))
    >>> again = build(UNet, 2, 1, width=4, generator=torch.Generator().manual_seed(0))
    >>> all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    True
    """
    with torch.device("meta"):
        net = network(*args, **kwargs)
    # Allocate the tensors on the CPU; net.to_empty would too, but it imports sympy on first use (~1 s).
    empty = {name: torch.empty(value.shape, dtype=value.dtype) for name, value in net.state_dict().items()}
    net.load_state_dict(empty, assign=True)
    net.reset_parameters(generator)
    return net
