"""2-D Gaussian mixtures: the standard cheap benchmark for mode coverage of GAN objectives.

Embedded, infinite (samples drawn on demand), every component of weight 1/K:

* ``ring8`` -- 8 Gaussians on a circle of radius 2, ``(2 cos(2πk/8), 2 sin(2πk/8))``,
  isotropic σ = 0.02 (Metz et al. 2017; PacGAN's 2D-ring);
* ``grid25`` -- 25 Gaussians on the grid ``{-4, -2, 0, 2, 4}²``, σ = 0.05 (Srivastava et
  al. 2017, VEEGAN; PacGAN's 2D-grid).

Splits are one mixture drawn from different streams: ``train`` from the trainer's epoch
generator; :meth:`Mixture2D.reference` seeds a split's fixed sample with
:data:`REFERENCE_SEEDS` (``val`` 12345, unchanged; ``test`` 12345 + 0x7E57, a new
stream). More: ``docs/tasks/gan.md``, "Data".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cvloss.data.types import check_split

__all__ = ["REFERENCE_SEEDS", "Mixture2D", "ring8", "grid25", "load_ring8", "load_grid25"]

#: seed of each split's fixed reference sample (see the module docstring); train's is
#: for completeness (training batches come from the trainer's generator).
REFERENCE_SEEDS = {"train": 0x7121, "val": 12345, "test": 12345 + 0x7E57}


@dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of K isotropic 2-D Gaussians N(μ_k, σ² I).

    Attributes:
        centers: ``(K, 2)`` float32 component means μ_k.
        sigma: the common standard deviation σ (> 0).
        name: catalog name (``"ring8"``, ``"grid25"``).
        description: one line: layout, spacing, σ.
        split: the split it was loaded as; picks the stream of :meth:`reference`.
    """

    centers: torch.Tensor
    sigma: float
    name: str
    description: str = ""
    split: str = "train"

    def __post_init__(self) -> None:
        c = self.centers
        if not isinstance(c, torch.Tensor) or c.dim() != 2 or c.shape[1] != 2 or c.shape[0] < 1:
            got = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise ValueError(f"expected centers of shape (K, 2) with K >= 1; got {got}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0; got {self.sigma}")

    @property
    def n_modes(self) -> int:
        return int(self.centers.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` samples ``(n, 2)`` float32: a uniform component index, then μ_k + σ·N(0, I).

        Both draws come from ``generator`` (which must live on ``device``; CPU by default),
        so the same generator state gives the same samples.
        """
        device = torch.device(device) if device is not None else (generator.device if generator is not None else torch.device("cpu"))
        idx = torch.randint(self.n_modes, (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, generator=generator, device=device)
        return self.centers.to(device)[idx] + self.sigma * noise


    def reference(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The split's fixed sample ``(n, 2)`` float32: :meth:`sample` from a CPU
        generator seeded with ``REFERENCE_SEEDS[self.split]`` (then moved to ``device``),
        so the same split always gives the same points and the splits' points differ."""
        g = torch.Generator().manual_seed(REFERENCE_SEEDS[check_split(self.split, self.name)])
        points = self.sample(n, g)
        return points.to(device) if device is not None else points


def ring8(radius: float = 2.0, sigma: float = 0.02, k: int = 8) -> Mixture2D:
    """``k`` Gaussians on a circle of ``radius``, the first at angle 0 (Metz et al. 2017)."""
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    centers = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1).float()
    return Mixture2D(centers, float(sigma), "ring8", f"{k} Gaussians on a ring of radius {radius:g}, sigma {sigma:g}")


def grid25(spacing: float = 2.0, sigma: float = 0.05, side: int = 5) -> Mixture2D:
    """``side``² Gaussians on a square grid centred at 0 with ``spacing``: the default
    5×5 grid has means at {-4, -2, 0, 2, 4}² (Srivastava et al. 2017)."""
    axis = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    centers = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    lo, hi = float(axis[0]), float(axis[-1])
    return Mixture2D(centers, float(sigma), "grid25",
                     f"{side * side} Gaussians on a {side}x{side} grid at {lo:g}..{hi:g} step {spacing:g}, sigma {sigma:g}")


def load_ring8(root: str | Path | None = None, split: str = "train") -> Mixture2D:
    """Catalog loader of ``ring8``: the mixture, marked with ``split`` (its
    :meth:`~Mixture2D.reference` stream); ``root`` is ignored (embedded)."""
    return replace(ring8(), split=check_split(split, "ring8"))


def load_grid25(root: str | Path | None = None, split: str = "train") -> Mixture2D:
    """Catalog loader of ``grid25`` (see :func:`load_ring8`)."""
    return replace(grid25(), split=check_split(split, "grid25"))
