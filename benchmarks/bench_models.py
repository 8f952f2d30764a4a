#!/usr/bin/env python
"""Seconds per call of the deep methods (LaMa, MI-GAN) on the CPU, and the cost of the crop strategy.

Usage::

    python benchmarks/bench_models.py               # 512^2, 2048^2 and the 8192^2 crop case
    python benchmarks/bench_models.py --quick       # 512^2 only
    python benchmarks/bench_models.py --threads 2   # fix torch's thread count

When the real weights are in the cache (``napari-inpaint models fetch lama
migan``) they are timed.  Otherwise a stand-in TorchScript network with the
real one's architecture shape and cost is timed instead, built here with
random weights (a fill's quality means nothing then, only its time):

* LaMa: Big LaMa's generator layout [1]_: a 7x7 convolution to 64 channels,
  three stride-2 convolutions to 512 channels at 1/8 resolution, 18 residual
  blocks of two fast Fourier convolutions each (75 % of the channels go
  through the global branch: 1x1 convolution, real FFT, 1x1 convolution in
  the frequency domain, inverse FFT), three transposed convolutions back and
  a 7x7 convolution to RGB.
  It has 51.0 M parameters, as the paper gives for Big LaMa, and costs
  440 GFLOP per 512 x 512 call.
* MI-GAN: an encoder-decoder of depthwise-separable 3x3 convolutions from
  32 to 256 channels at its fixed 512 x 512 input (0.5 M parameters,
  6.9 GFLOP per call), in the class of MI-GAN's mobile-sized network; its
  time is a rough guide only.

Each figure is the median of ``--repeats`` runs of
:func:`napari_inpaint.inpaint` (one run for the large cases) after a
warm-up on a small image that loads the network, so it includes the engine,
the normalisation, padding and resizing, not only the network.

References
----------
.. [1] R. Suvorov et al., "Resolution-robust large mask inpainting with
       Fourier convolutions", WACV 2022 (the ``ffc_resnet`` generator,
       ``n_blocks=18``, ``ngf=64``, ``ratio_gin=ratio_gout=0.75``).
"""

import argparse
import hashlib
import itertools
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_inpaint import inpaint, models


class _Spectral(nn.Module):
    """The global branch of a fast Fourier convolution."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.reduce = nn.Sequential(nn.Conv2d(channels, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())
        self.spectral = nn.Sequential(nn.Conv2d(2 * half, 2 * half, 1, bias=False), nn.BatchNorm2d(2 * half),
                                      nn.ReLU())
        self.expand = nn.Conv2d(half, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        height, width = x.shape[-2:]
        freq = torch.fft.rfft2(x, norm="ortho")
        freq = self.spectral(torch.cat([freq.real, freq.imag], dim=1))
        real, imag = freq.chunk(2, dim=1)
        return self.expand(x + torch.fft.irfft2(torch.complex(real, imag), s=(height, width), norm="ortho"))


class _FFC(nn.Module):
    """A fast Fourier convolution layer with 75 % global channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.g = channels * 3 // 4
        local = channels - self.g
        self.l2l = nn.Conv2d(local, local, 3, padding=1, padding_mode="reflect", bias=False)
        self.l2g = nn.Conv2d(local, self.g, 3, padding=1, padding_mode="reflect", bias=False)
        self.g2l = nn.Conv2d(self.g, local, 3, padding=1, padding_mode="reflect", bias=False)
        self.g2g = _Spectral(self.g)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_l, x_g = x[:, : x.shape[1] - self.g], x[:, x.shape[1] - self.g :]
        out = torch.cat([self.l2l(x_l) + self.g2l(x_g), self.l2g(x_l) + self.g2g(x_g)], dim=1)
        return torch.relu(self.norm(out))


class LamaStandIn(nn.Module):
    """Big LaMa's generator layout with random weights; LaMa's TorchScript signature."""

    def __init__(self, blocks: int = 18):
        super().__init__()
        layers = [nn.Conv2d(4, 64, 7, padding=3, padding_mode="reflect"), nn.ReLU()]
        for width in (64, 128, 256):
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                       nn.ReLU()]
        self.down = nn.Sequential(*layers)
        self.blocks = nn.ModuleList([nn.Sequential(_FFC(512), _FFC(512)) for _ in range(blocks)])
        layers = []
        for width in (512, 256, 128):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.BatchNorm2d(width // 2), nn.ReLU()]
        layers += [nn.Conv2d(64, 3, 7, padding=3, padding_mode="reflect"), nn.Sigmoid()]
        self.up = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.down(torch.cat([image * (1 - mask), mask], dim=1))
        for block in self.blocks:
            x = x + block(x)
        return self.up(x)


def _separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin)
    return nn.Sequential(depthwise, nn.Conv2d(cin, cout, 1), nn.LeakyReLU(0.2))


class MiganStandIn(nn.Module):
    """An encoder-decoder of MI-GAN's size with MI-GAN's TorchScript signature (1x4x512x512 in)."""

    def __init__(self):
        super().__init__()
        widths = (32, 64, 128, 256, 256)
        self.stem = nn.Conv2d(4, widths[0], 3, padding=1)
        self.encoder = nn.ModuleList([_separable(a, b, 2) for a, b in itertools.pairwise(widths)])
        self.middle = nn.Sequential(*[_separable(256, 256) for _ in range(4)])
        self.decoder = nn.ModuleList([_separable(b, a) for a, b in itertools.pairwise(widths)][::-1])
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.encoder:
            x = layer(x)
        x = self.middle(x)
        for layer in self.decoder:
            x = layer(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
        return torch.tanh(self.head(x))


def _stand_ins(folder: Path) -> None:
    """Save the stand-ins and register them under the real names, served from ``folder``."""
    torch.manual_seed(0)
    examples = {
        "lama": (torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)),
        "migan": (torch.rand(1, 4, 512, 512),),
    }
    for name, module in (("lama", LamaStandIn()), ("migan", MiganStandIn())):
        spec = models.MODELS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module.eval(), examples[name], check_trace=False)
        path = folder / spec.filename
        traced.save(str(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        models.register_model(replace(spec, known_hash=f"sha256:{digest}", size=path.stat().st_size))
        print(f"{name}: stand-in, {sum(p.numel() for p in module.parameters()) / 1e6:.1f} M parameters")


def _case(size: int, hole: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
    mask = np.zeros((size, size), bool)
    start = (size - hole) // 2
    mask[start : start + hole, start : start + hole] = True
    return image, mask


def _scattered(size: int, holes: int, hole: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((size, size, 3), 128, np.uint8)  # memory, not content, matters here
    mask = np.zeros((size, size), bool)
    for i in range(holes):
        y, x = (i + 1) * size // (holes + 1), (2 * i + 1) * size // (2 * holes)
        mask[y : y + hole, x : x + hole] = True
    return image, mask


def _time(image, mask, method, repeats, **params) -> float:
    small, hole = _case(64, 16)
    inpaint(small, hole, method, device="cpu")  # loads the network once per process
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inpaint(image, mask, method, device="cpu", **params)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="512^2 only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}, {os.cpu_count()} CPUs")

    real = {name: models.is_cached(name) for name in ("lama", "migan")}
    with tempfile.TemporaryDirectory() as folder:
        if not all(real.values()):
            os.environ[models.CACHE_ENV] = os.environ[models.MIRROR_ENV] = folder
            _stand_ins(Path(folder))
        kind = "real weights" if all(real.values()) else "stand-in"
        rows = []
        for method in ("lama", "migan"):
            image, mask = _case(512, 160)
            rows.append((method, "512x512 crop", _time(image, mask, method, args.repeats, context=256)))
            if not args.quick:
                image, mask = _case(2048, 640)
                # context 1024 makes the crop the whole image; max_size decides the network's resolution.
                for max_size in (512, 1024) if method == "lama" else (512,):
                    seconds = _time(image, mask, method, 1, context=1024, max_size=max_size)
                    rows.append((method, f"2048x2048 crop, max_size={max_size}", seconds))
        if not args.quick:
            image, mask = _scattered(8192, 5, 12)
            for method in ("lama", "migan"):
                seconds = _time(image, mask, method, 1)
                rows.append((method, "8192x8192 RGB, five 12x12 holes, default context", seconds))
        print(f"\n| method | case ({kind}) | seconds per call |\n|---|---|---|")
        for method, case, seconds in rows:
            print(f"| {method} | {case} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
