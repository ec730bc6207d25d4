"""Pixel-wise image losses: ``mse``, ``l1`` and ``charbonnier``.

Every loss here takes images ``pred``, ``target`` of shape ``(N, C, H, W)`` with
``C`` in {1, 3}, float, values in [0, 1], and an optional per-pixel ``weight`` map of
shape ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, C, H, W)`` (>= 0). With a weight map the
``mean`` reduction is the weighted mean ``Σ w·ρ / Σ w`` (BasicSR's convention: a weight
map moves where the loss looks without changing its scale); ``sum`` is ``Σ w·ρ``;
``none`` is the (N, C, H, W) map ``w·ρ`` (``train``/``compare`` refuse it: they need a scalar).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from cvloss.losses.base import Loss, check_image, check_weight, weighted_reduce
from cvloss.losses.registry import register_loss

_REDUCTIONS = ("mean", "sum", "none")


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (float32/float64 untouched).

    A network run under ``torch.autocast`` hands us bfloat16 outputs; squaring and
    summing in 8 mantissa bits would round small residuals to zero, so losses are
    always evaluated in at least float32. float64 is kept for ``gradcheck``.
    """
    return t.float() if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64) else t


_REDUCTION_ENUM = {"none": 0, "mean": 1, "sum": 2}


def fused_kernel(name: str, pred: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """torch's fused ``mse_loss`` / ``l1_loss`` kernel on same-shape inputs.

    Called as ``torch._C._nn.<name>`` -- the op that ``F.mse_loss`` / ``F.l1_loss`` end in
    -- without their Python wrapper (a ``broadcast_tensors`` call and a reduction
    lookup): the shapes are checked equal already, and at a few hundred µs per step the
    wrapper is a measurable share. Falls back to ``F.<name>`` if the op is not there.
    """
    op = getattr(torch._C._nn, name, None)
    if op is None:  # pragma: no cover - every torch this package supports has it
        return getattr(F, name)(pred, target, reduction=reduction)
    return op(pred, target, _REDUCTION_ENUM[reduction])


def check_reduction(reduction: str, valid: tuple[str, ...] = _REDUCTIONS) -> str:
    """``reduction`` if it is one of ``valid``; ``ValueError`` naming them otherwise."""
    if reduction not in valid:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(valid)}")
    return reduction


class _PixelLoss(Loss):
    """Shared body: shape checks, float32 upcast, weighted reduction of ``rho(pred - target)``."""

    kind = "image"

    def __init__(self, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    #: torch's fused kernel for this ρ (``mse_loss``, ``l1_loss``), used when there is
    #: no weight map: one pass forward and one backward instead of subtract, ρ, reduce.
    fused: str | None = None

    def rho(self, diff: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_image(pred, target)
        pred = _upcast(pred)
        if target.dtype != pred.dtype:
            target = target.to(pred.dtype)
        if weight is None and self.fused is not None:
            # float32 inputs stay float32 under autocast (these ops are in no
            # lower-precision list), so no autocast guard is needed.
            return fused_kernel(self.fused, pred, target, self.reduction)
        return weighted_reduce(self.rho(pred - target), check_weight(weight, pred), self.reduction)


@register_loss("mse", family="pixel-wise", paper="classical least squares (L2); see Zhao et al. 2017, 'Loss Functions for Image Restoration with Neural Networks'")
class MSELoss(_PixelLoss):
    """Mean squared error: mean over pixels and channels of (pred - target)².

    ``ρ(d) = d²`` with ``d = pred - target``; for inputs in [0, 1] the value lies in [0, 1].
    Shapes: pred, target ``(N, C, H, W)``, C in {1, 3}; optional weight ``(N, H, W)``,
    ``(N, 1, H, W)`` or ``(N, C, H, W)`` -> weighted mean Σ w·d² / Σ w.
    ``reduction``: ``mean`` (default), ``sum`` or ``none``.
    """

    fused = "mse_loss"

    def rho(self, diff: torch.Tensor) -> torch.Tensor:
        return diff.square()


@register_loss("l1", family="pixel-wise", paper="mean absolute error; see Zhao et al. 2017, 'Loss Functions for Image Restoration with Neural Networks'")
class L1Loss(_PixelLoss):
    """Mean absolute error: mean over pixels and channels of |pred - target|.

    ``ρ(d) = |d|``; for inputs in [0, 1] the value lies in [0, 1]. Shapes as ``mse``;
    optional weight map -> weighted mean Σ w·|d| / Σ w. ``reduction``: ``mean``, ``sum`` or ``none``.
    """

    fused = "l1_loss"

    def rho(self, diff: torch.Tensor) -> torch.Tensor:
        return diff.abs()


@register_loss("charbonnier", family="pixel-wise", paper="Lai et al. 2017, 'Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution' (LapSRN)")
class CharbonnierLoss(_PixelLoss):
    """Charbonnier penalty, a differentiable L1: mean of sqrt((pred - target)² + ε²).

    ``ρ(d) = sqrt(d² + ε²)`` with ``ε = 1e-3`` (Lai et al. 2017, LapSRN, eq. 3 and §3.3).
    As in the paper nothing is subtracted, so the minimum (at ``pred == target``) is
    ``ε``, not 0; the gradient ``d / sqrt(d² + ε²)`` is smooth at 0 unlike L1.
    Shapes as ``mse``; optional weight map -> weighted mean. ``reduction``: ``mean``, ``sum`` or ``none``.
    """

    def __init__(self, eps: float = 1e-3, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__(reduction)
        if not eps > 0:
            raise ValueError(f"charbonnier: eps must be > 0; got {eps}")
        self.eps = float(eps)

    def rho(self, diff: torch.Tensor) -> torch.Tensor:
        return (diff.square() + self.eps**2).sqrt()
