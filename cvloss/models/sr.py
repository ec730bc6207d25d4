"""A small EDSR-baseline-like super-resolution network (Lim et al. 2017, EDSR).

    x (N, 3, h, w) in [0, 1]
      -> subtract the DIV2K mean RGB (0.4488, 0.4371, 0.4040)      EDSR's MeanShift
      -> head conv3x3 3 -> F; B residual blocks r + s·conv3x3(ReLU(conv3x3(r))), no BN,
         then conv3x3 plus the head's output (a long skip)
      -> upsampler: ×2, ×3: conv3x3 F -> F·s², PixelShuffle(s); ×4: two ×2 stages
      -> tail conv3x3 F -> 3, add the mean back (``global_skip="bicubic"``: add bicubic(x)
         instead; the tail starts at zero)
    -> (N, 3, s·h, s·w), not clamped (losses see the raw output; metrics clamp)

EDSR-baseline is F = 64, B = 16, residual scaling s = 1. Initialisation is PyTorch's
default from the global RNG, so the trainer's seeding gives every loss the same weights.
Why no BatchNorm and why the bicubic skip: ``docs/tasks/sr.md``, "Model".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvloss.data.div2k import SCALES

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def check_model_scale(scale: int) -> int:
    if scale not in SCALES:
        raise ValueError(f"super-resolution scale must be 2, 3 or 4; got {scale!r}")
    return int(scale)


class ResBlock(nn.Module):
    """EDSR residual block without BatchNorm: x + res_scale · conv(ReLU(conv(x)))."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


def upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """Sub-pixel convolution (Shi et al. 2016): conv to F·r² channels, PixelShuffle(r);
    ×4 is two ×2 stages, as in EDSR."""
    stages = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for r in stages:
        layers += [nn.Conv2d(n_feats, n_feats * r * r, 3, padding=1), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR-baseline-like SR net (layout in the module docstring). ``forward``: (N, 3, h, w) -> (N, 3, s·h, s·w)."""

    def __init__(self, scale: int = 2, n_feats: int = 64, n_blocks: int = 16, res_scale: float = 1.0,
                 global_skip: str = "none") -> None:
        super().__init__()
        self.scale = check_model_scale(scale)
        if global_skip not in ("none", "bicubic"):
            raise ValueError(f"global_skip must be 'none' or 'bicubic'; got {global_skip!r}")
        self.global_skip = global_skip
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_blocks)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.up = upsampler(n_feats, self.scale)
        self.tail = nn.Conv2d(n_feats, 3, 3, padding=1)
        if global_skip == "bicubic":
            # Residual over bicubic: start from exactly bicubic (zero residual), so early
            # training refines bicubic instead of first undoing a random offset.
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x - self.mean)
        h = h + self.body(h)
        out = self.tail(self.up(h))
        if self.global_skip == "bicubic":
            return out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out + self.mean


class SRModel(nn.Module):
    """The generator ``g`` (:class:`EDSR`) and the discriminator ``d`` of one trial.

    ``d`` is built for every loss, right after ``g``, so ``g``'s initial weights never
    depend on whether the loss is adversarial and every checkpoint has one shape; only
    losses with an adversarial term train it. ``forward`` is ``g``'s.
    """

    def __init__(self, g: nn.Module, d: nn.Module) -> None:
        super().__init__()
        self.g = g
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g(x)
