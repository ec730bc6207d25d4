"""A small SRGAN-style discriminator (Ledig et al. 2017, Fig. 4), scaled down.

SRGAN's D: conv3x3(64) + LeakyReLU(0.2), then blocks of conv3x3 (+BN) + LeakyReLU that
alternate stride 2 and stride 1 while the width doubles 64 -> 512, then Dense(1024),
LeakyReLU, Dense(1) on a 96×96 input. Here: ``width`` channels first, ``n_down`` stride-2
blocks (each doubling the width, capped at 8·width), each followed by a stride-1 conv,
and -- instead of the fixed-size dense layers -- global average pooling and one linear
layer, so any patch size works. No BatchNorm: WGAN-GP's per-sample gradient penalty is
invalid with it (Gulrajani et al. 2017), and one D for every objective keeps the
comparison fair. Output: raw logits (N,), never probabilities (the objectives take logits).
"""
from __future__ import annotations

import torch
from torch import nn


class SRDiscriminator(nn.Module):
    """``forward``: (N, 3, H, W) in [0, 1] -> (N,) logits; H, W >= 2**n_down."""

    def __init__(self, width: int = 16, n_down: int = 3) -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), act()]
        ch = width
        for _ in range(n_down):
            out = min(ch * 2, 8 * width)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), act(), nn.Conv2d(out, out, 3, padding=1), act()]
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre the input around 0 (like SRGAN's [-1, 1] scaling) for better-conditioned first convs.
        h = self.features(x * 2 - 1)
        return self.head(h.mean(dim=(2, 3)))[:, 0]
