r"""deepCR's small U-Nets, written from the published state dicts (keys and shapes).

deepCR [1]_ ships two kinds of network, both U-Nets [2]_ of two (or three)
levels: *mask* networks, whose sigmoid output is the probability that a
pixel is hit by a cosmic ray, and *inpainting* networks, which take the
image with its holes set to zero and the hole mask and return the image.
This private module imports torch at the top; the modules that use it import
it inside their functions, so the package import stays torch-free.

Notes
-----
The published files (``learned_models/{mask,inpaint}/*.pth`` of deepCR
0.3.1) are state dicts of a ``module``-wrapped network with these entries,
which define the architecture built here:

- ``inc.conv.conv.{i}``: two 3x3 convolutions (``padding=1``) from the input
  channels (1 for masks; 2 = image and mask for inpainting) to the width
  ``w`` (32), each followed by batch normalisation (keys ``1`` and ``4``,
  with running statistics) and a ReLU, or, in the WFC3-UVIS mask network,
  by a ReLU alone with weight-normalised convolutions (``weight_g`` and
  ``weight_v``, keys ``0`` and ``2``);
- ``down{k}.mpconv.1.conv.{i}``: 2x2 max pooling, then the same double
  convolution doubling the width, once per extra level (``down1``;
  ``down1`` and ``down2`` in the three-level inpainting network);
- ``up{k}.up``: a 2x2 transposed convolution with stride 2 halving the
  width, concatenated *after* the skip connection of the same level, then
  a double convolution (``up8`` at the top level, ``up7`` below it);
- ``outc.conv``: a 1x1 convolution to one channel (followed by a sigmoid
  in the mask networks; the state dict cannot say so, the role does).

Weight normalisation stores a convolution's weight as a direction ``v`` and
a norm ``g`` per output channel, :math:`W = g \, v / \lVert v \rVert`
(the norm over all but the output axis); the weights are folded into plain
convolutions when loaded, which computes the same function.

Input sides must be multiples of :math:`2^{\mathrm{levels}-1}`;
:func:`run` pads by reflection and crops back.

References
----------
.. [1] K. Zhang and J. S. Bloom, "deepCR: cosmic ray rejection with deep
       learning", ApJ 889 (2020) 24, arXiv:1907.09500; code and weights at
       github.com/profjsb/deepCR (BSD-3-Clause).
.. [2] O. Ronneberger, P. Fischer and T. Brox, "U-Net: convolutional networks
       for biomedical image segmentation", MICCAI 2015, arXiv:1505.04597.

Examples
--------
>>> import torch
>>> net = DeepCRNet(in_channels=1, width=4, levels=2, batch_norm=True, sigmoid=True).eval()
>>> tuple(net(torch.zeros(1, 1, 8, 12)).shape)
(1, 1, 8, 12)
"""

import itertools
import math
import re

import torch
from torch import nn
from torch.nn import functional as F

_PREFIX = "module."
# deepCR's names of the levels: down1, down2 going down; up8 at the top level, up7 below it.
_UP_NAMES = {1: "up8", 2: "up7"}


class _DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by batch normalisation (optional) and a ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool):
        layers = []
        for channels in (in_channels, out_channels):
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels, momentum=0.005))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Up(nn.Module):
    """Upsample by a transposed convolution, join the skip connection, then a double convolution."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = _DoubleConv(in_channels, out_channels, batch_norm)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(deep)], dim=1))


class DeepCRNet(nn.Module):
    """deepCR's U-Net: ``levels`` resolutions, width doubling per level, one output channel.

    Parameters
    ----------
    in_channels : int
        1 for a mask network (the image), 2 for an inpainting network (the
        image with zeros in the holes, and the hole mask).
    width : int
        Channels of the top level.
    levels : int
        Number of resolutions (2 or 3).
    batch_norm : bool
        Batch normalisation after every convolution.
    sigmoid : bool
        A sigmoid on the output (the mask networks' probabilities).
    offset, scale : float
        The network's units: it sees ``(x - offset) / scale`` of data ``x``
        in the image's own units (0 and 1 for deepCR's published networks,
        which take the instrument's units; a network trained from scratch
        on normalised data records that normalisation here).
    """

    def __init__(
        self, in_channels: int, width: int, levels: int, batch_norm: bool, sigmoid: bool, offset: float = 0.0,
        scale: float = 1.0,
    ):
        super().__init__()
        self.config = {
            "in_channels": in_channels, "width": width, "levels": levels, "batch_norm": batch_norm,
            "sigmoid": sigmoid, "offset": offset, "scale": scale,
        }
        self.inc = _DoubleConv(in_channels, width, batch_norm)
        widths = [width << k for k in range(levels)]  # doubling at every level down
        self.downs = nn.ModuleList(_DoubleConv(a, b, batch_norm) for a, b in itertools.pairwise(widths))
        self.ups = nn.ModuleList(_Up(b, a, batch_norm) for a, b in itertools.pairwise(widths))
        self.outc = nn.Conv2d(width, 1, 1)
        self.sigmoid = sigmoid

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** len(self.downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in reversed(self.ups):
            x = up(x, skips.pop())
        x = self.outc(x)
        return torch.sigmoid(x) if self.sigmoid else x

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight as PyTorch's default initialisation does, from ``generator`` (for
        :func:`napari_inpaint.methods._networks.build`); batch norms start as the identity."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                # PyTorch's default: weight and bias uniform within +-1/sqrt(fan_in).
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()


class TrainingView(nn.Module):
    """``net`` as :func:`napari_inpaint.methods._training.fit` trains an inpainter, with frozen batch norms.

    ``fit`` feeds values normalised per plane, ``v = (x - low) / span``;
    this view maps them to the image's units with the typical plane's
    ``low`` and ``span`` given here, then to the network's own units
    (``net.config`` ``offset`` and ``scale``), and maps its output back.  The
    smooth fill ``fit`` also hands over is not used: deepCR sees the image
    and the holes only.  Batch normalisation keeps its published statistics
    (small batches of windows would estimate them badly); its scale and
    shift are trained.  Channels are filled one at a time, as a batch.
    """

    def __init__(self, net: DeepCRNet, low: float, span: float):
        super().__init__()
        self.net, self.low, self.span = net, low, span

    def forward(self, values: torch.Tensor, holes: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = values.shape
        offset, scale = self.net.config["offset"], self.net.config["scale"]
        units = ((self.low + self.span * values) - offset) / scale
        holes = holes.expand(-1, channels, -1, -1)
        pairs = torch.stack([units * (1 - holes), holes], dim=2).reshape(batch * channels, 2, height, width)
        out = run(self.net, pairs).reshape(batch, channels, height, width)
        return (out * scale + offset - self.low) / self.span

    def train(self, mode: bool = True) -> "TrainingView":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def _rename(key: str) -> str:
    """deepCR's key of a parameter -> this module's key."""
    key = key.removeprefix(_PREFIX)
    key = re.sub(r"^inc\.conv\.conv\.", "inc.", key)
    key = re.sub(r"^down(\d+)\.mpconv\.1\.conv\.", lambda m: f"downs.{int(m.group(1)) - 1}.", key)
    for level, name in _UP_NAMES.items():
        key = re.sub(rf"^{name}\.conv\.conv\.", f"ups.{level - 1}.conv.", key)
        key = re.sub(rf"^{name}\.up\.", f"ups.{level - 1}.up.", key)
    return re.sub(r"^outc\.conv\.", "outc.", key)


def _fold_weight_norm(state: dict) -> dict:
    """Replace every ``weight_g``/``weight_v`` pair by the weight they define, ``g * v / |v|``."""
    folded = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key.removesuffix("_v")
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.ndim - 1)))
            folded[stem] = state[stem + "_g"] * value / norm
        elif not key.endswith(".weight_g"):
            folded[key] = value
    return folded


def from_state_dict(state: dict, *, sigmoid: bool) -> DeepCRNet:
    """Build the network a deepCR state dict describes, and load it (evaluation mode).

    Parameters
    ----------
    state : dict
        A state dict as published by deepCR (keys ``module.inc.conv.conv.0.weight`` ...).
    sigmoid : bool
        True for a mask network.

    Raises
    ------
    ValueError
        When the keys or shapes are not those of a deepCR U-Net.

    Examples
    --------
    >>> _rename("module.down1.mpconv.1.conv.3.weight"), _rename("module.up8.up.bias")
    ('downs.0.3.weight', 'ups.0.up.bias')
    """
    state = {_rename(key): value for key, value in _fold_weight_norm(dict(state)).items()}
    first = state.get("inc.0.weight")
    if first is None or first.ndim != 4:
        raise ValueError("not a deepCR U-Net state dict: it has no first convolution (inc.conv.conv.0)")
    levels = 1 + len({key.split(".")[1] for key in state if key.startswith("downs.")})
    config = {"in_channels": first.shape[1], "width": first.shape[0], "levels": levels, "sigmoid": sigmoid}
    return assemble({**config, "batch_norm": "inc.1.running_mean" in state}, state)


def assemble(config: dict, state: dict) -> DeepCRNet:
    """The :class:`DeepCRNet` of ``config`` holding the weights ``state`` (this module's key names).

    Built on the ``meta`` device, so that no initial weights are drawn from
    torch's global random generator (shared by every thread) only to be
    overwritten.
    """
    with torch.device("meta"):
        net = DeepCRNet(**config)
    expected = net.state_dict()
    differing = sorted(set(expected) ^ set(state))
    differing = differing or [key for key, value in expected.items() if value.shape != state[key].shape]
    if differing:
        raise ValueError(f"not a deepCR U-Net state dict of the known layout (differs at {differing[:4]})")
    # deepCR's files store the batch counters as floats: each tensor takes the type this module expects.
    net.load_state_dict({key: state[key].to(value.dtype) for key, value in expected.items()}, assign=True)
    return net.eval()


def run(net: DeepCRNet, batch: torch.Tensor) -> torch.Tensor:
    """``net(batch)`` for any height and width: reflect-padded at the bottom and right, cropped back."""
    height, width = batch.shape[-2:]
    multiple = net.multiple
    rows, cols = -height % multiple, -width % multiple
    if rows or cols:
        # Reflection needs the pad to be smaller than the side; replicate covers tiny inputs.
        mode = "reflect" if rows < height and cols < width else "replicate"
        batch = F.pad(batch, (0, cols, 0, rows), mode=mode)
    return net(batch)[..., :height, :width]
