"""CycleGAN's reconstruction terms (Zhu et al. 2017): cycle consistency and identity.

Both are L1 distances between two images of the same shape ``(N, C, H, W)``, C in {1, 3}.
L1 does not care about the value range: images in [0, 1] or in [-1, 1] (CycleGAN's tanh
generators) both work, but the range scales the loss -- an error of 0.1 in [0, 1] is 0.2
in [-1, 1] -- so compare losses only at one range.

The task routes the pairs (``kind = "cycle"``): the cycle term sees F(G(x)) vs x and
G(F(y)) vs y, the identity term G(y) vs y and F(x) vs x. Each term carries its paper
weight λ itself; a spec weight (``2*cycle``) multiplies it.
"""
from __future__ import annotations

from typing import Literal  # noqa: F401  (annotations are eval'd by the registry)

import torch

from cvloss.losses.base import Loss, check_image
from cvloss.losses.registry import register_loss

__all__ = ["CycleConsistencyLoss", "IdentityLoss", "l1_mean"]


def l1_mean(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over all N·C·H·W elements, accumulated in float32 at least.

    Reduced-precision inputs (bf16 under autocast) are upcast: a bf16 mean over a batch
    of images keeps only ~3 significant digits.
    """
    if pred.dtype in (torch.float16, torch.bfloat16) or target.dtype in (torch.float16, torch.bfloat16):
        pred, target = pred.float(), target.float()
    return (pred - target).abs().mean()


def _check_nonneg(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return float(value)


@register_loss("cycle", family="cycle",
               paper="Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks")
class CycleConsistencyLoss(Loss):
    """CycleGAN cycle-consistency loss: λ · mean |F(G(x)) - x| (L1, λ = 10).

    Zhu et al. 2017, eq. 2: L_cyc(G, F) = E_x[‖F(G(x)) - x‖₁] + E_y[‖G(F(y)) - y‖₁],
    weighted by λ = 10 in the full objective (eq. 3, Sec. 4). The paper writes the
    expectation of the L1 norm of the whole image; implementations (the official one
    included) take the per-pixel mean, i.e. the norm divided by C·H·W, which is what λ = 10
    was tuned with. This term computes one direction:

        loss(reconstruction, original) = λ · mean_{n,c,h,w} |reconstruction - original|

    Inputs: ``reconstruction`` F(G(x)) and ``original`` x, both ``(N, C, H, W)`` float,
    C in {1, 3}, the same shape; any common value range ([0, 1] or [-1, 1]: L1 is
    range-agnostic, but a [-1, 1] range doubles the value). The task adds the two
    directions.

    Args:
        lam: λ, the cycle weight (>= 0), 10 in the paper.
    """

    kind = "cycle"

    def __init__(self, lam: float = 10.0) -> None:
        super().__init__()
        self.lam = _check_nonneg("lam", lam)

    def forward(self, reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        check_image(reconstruction, original)
        return self.lam * l1_mean(reconstruction, original)


@register_loss("identity", family="cycle",
               paper="Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks (Sec. 5.2)")
class IdentityLoss(Loss):
    """CycleGAN identity-mapping loss: ratio·λ · mean |G(y) - y| (L1, weight 0.5·λ = 5).

    Zhu et al. 2017, Sec. 5.2 (after Taigman et al. 2017):
    L_identity(G, F) = E_y[‖G(y) - y‖₁] + E_x[‖F(x) - x‖₁], which keeps a generator
    fed an image of its target domain close to the identity (it preserves colour
    composition, e.g. in painting -> photo). Its weight is 0.5·λ where λ is the cycle
    weight -- the official implementation's default ``lambda_identity = 0.5`` times
    λ = 10, i.e. 5. Per-pixel mean like ``cycle``; one direction:

        loss(mapped, original) = ratio · λ · mean_{n,c,h,w} |mapped - original|

    Inputs: ``mapped`` G(y) and ``original`` y, both ``(N, C, H, W)`` float, C in {1, 3},
    the same shape, any common value range (L1 is range-agnostic; [-1, 1] doubles it).

    Args:
        lam: λ, the cycle weight the identity weight is relative to (>= 0), 10.
        ratio: the identity weight as a fraction of λ (>= 0), 0.5.
    """

    kind = "cycle"

    def __init__(self, lam: float = 10.0, ratio: float = 0.5) -> None:
        super().__init__()
        self.lam = _check_nonneg("lam", lam)
        self.ratio = _check_nonneg("ratio", ratio)

    @property
    def effective_lam(self) -> float:
        """The effective weight ratio·λ (5 by default)."""
        return self.ratio * self.lam

    def forward(self, mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        check_image(mapped, original)
        return self.effective_lam * l1_mean(mapped, original)
