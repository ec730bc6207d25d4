"""Batch orders and augmentations, every random choice drawn from a given generator (the
trainer's epoch generator: the same for every loss at a seed, and resume-exact)."""
from __future__ import annotations

import math

import torch


def permutations(n: int, total: int, generator: torch.Generator) -> torch.Tensor:
    """``total`` indices: concatenated random permutations of ``range(n)``."""
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(math.ceil(total / n))])[:total]


def dihedral(x: torch.Tensor, a: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: bit 0 = horizontal flip, bit 1 = vertical
    flip, bit 2 = transpose (with the flips, every 90° rotation)."""
    if a & 1:
        x = x.flip(-1)
    if a & 2:
        x = x.flip(-2)
    if a & 4:
        x = x.transpose(-1, -2)
    return x


def crop_and_flip(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``size`` crop and a horizontal flip with probability ½, per image of ``x`` (N, C, H, W)."""
    n, full = x.shape[0], x.shape[-1]
    offs = torch.randint(full - size + 1, (n, 2), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    out = torch.stack([x[i, :, oy : oy + size, ox : ox + size] for i, (oy, ox) in enumerate(offs)])
    return flip_where(out, torch.tensor(flips))


def flip_where(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x`` (N, ...) with the items where ``mask`` (N,) is True flipped along ``dim``."""
    return torch.where(mask.to(x.device).view(-1, *[1] * (x.dim() - 1)), x.flip(dim), x)


def flip_hv(x: torch.Tensor, fh: torch.Tensor, fv: torch.Tensor) -> torch.Tensor:
    """``x`` (N, ..., H, W) flipped horizontally where ``fh`` and vertically where ``fv`` ((N,) bool)."""
    return flip_where(flip_where(x, fh, -1), fv, -2)
