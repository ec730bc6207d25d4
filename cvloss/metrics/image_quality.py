"""Image-quality metrics of super-resolution, as the SR literature computes them.

Images are ``(N, 3, H, W)`` float RGB in [0, 1]. Predictions are quantised to 8 bits
(:func:`quantize`: round(255·x)/255) and ``scale`` pixels are shaved from every border
(:func:`shave`). Y is BT.601 studio-swing luma, Y = 16 + 65.481·R + 128.553·G + 24.966·B
∈ [16, 235]. PSNR = 10·log10(peak² / MSE) per image, then averaged (peak 1 on RGB, 255 on
Y; +inf capped at :data:`PSNR_CAP` = 100 dB). SSIM: :func:`cvloss.losses.ssim.ssim` on
Y/255, per image then averaged. VGG feature distance: ‖φ(ŷ) − φ(y)‖² / (C·H·W) at one
layer of a network the caller chooses.

Conventions and their sources (EDSR / RCAN / SRGAN code, NTIRE): ``docs/tasks/sr.md``.
"""
from __future__ import annotations

import torch

from cvloss.losses.ssim import ssim as _ssim

__all__ = ["PSNR_CAP", "feature_distance", "psnr", "quantize", "rgb_to_y", "shave", "ssim_y"]

PSNR_CAP = 100.0
_Y_COEF = (65.481, 128.553, 24.966)


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValueError(f"expected RGB images (N, 3, H, W) of equal shape; got {tuple(pred.shape)} and {tuple(target.shape)}")


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid: round(255·x) / 255."""
    return x.clamp(0, 1).mul(255).round().div(255)


def shave(x: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels on each side of ``(…, H, W)``; 0 leaves ``x`` unchanged."""
    if border < 0:
        raise ValueError(f"border must be >= 0; got {border}")
    if border == 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"image {h}x{w} is too small to crop a border of {border} px")
    return x[..., border:-border, border:-border]


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma on the 0-255 scale: (N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) in [16, 235]."""
    coef = torch.tensor(_Y_COEF, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return 16.0 + (x * coef).sum(dim=1, keepdim=True)


def _psnr(mse: torch.Tensor, peak: float) -> torch.Tensor:
    out = 10.0 * torch.log10(peak**2 / mse)
    return out.clamp(max=PSNR_CAP).nan_to_num(PSNR_CAP)


def psnr(pred: torch.Tensor, target: torch.Tensor, border: int = 0, y_only: bool = False) -> torch.Tensor:
    """Per-image PSNR in dB, shape ``(N,)``.

    ``y_only=False``: on RGB in [0, 1], peak 1, MSE over 3·H·W values.
    ``y_only=True``: on BT.601 Y (0-255 scale, see :func:`rgb_to_y`), peak 255.
    ``border`` pixels are cropped first. Inputs are used as given (quantise the prediction
    with :func:`quantize` first to measure a saved image).
    """
    _check(pred, target)
    p, t = shave(pred.double(), border), shave(target.double(), border)
    if y_only:
        p, t = rgb_to_y(p), rgb_to_y(t)
    mse = (p - t).square().mean(dim=(1, 2, 3))
    return _psnr(mse, 255.0 if y_only else 1.0).float()


def ssim_y(pred: torch.Tensor, target: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Per-image SSIM on Y/255 (data range 1), ``border`` cropped first; shape ``(N,)``."""
    _check(pred, target)
    p, t = shave(pred, border), shave(target, border)
    return _ssim(rgb_to_y(p) / 255.0, rgb_to_y(t) / 255.0, data_range=1.0)


@torch.no_grad()
def feature_distance(pred: torch.Tensor, target: torch.Tensor, extractor, layer: str, border: int = 0) -> torch.Tensor:
    """Per-image VGG feature distance mean((φ(ŷ) − φ(y))²) at ``layer``, shape ``(N,)``.

    ``extractor`` is a :class:`cvloss.losses.features.VGGFeatures` (it applies the
    ImageNet normalisation itself); ``border`` pixels are cropped first.
    """
    _check(pred, target)
    p, t = shave(pred, border), shave(target, border)
    fp = extractor.extract(p, (layer,))[layer].float()
    ft = extractor.extract(t, (layer,))[layer].float()
    return (fp - ft).square().mean(dim=(1, 2, 3))

