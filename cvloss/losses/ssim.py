"""Structural similarity (Wang et al. 2004): the functional ``ssim`` / ``ssim_map`` and
the loss ``ssim`` = 1 − SSIM.

For each position of a Gaussian window (11×11, σ = 1.5, unit sum)::

    SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))   (eq. 13)

with Gaussian-weighted population statistics, ``C1 = (0.01·L)²``, ``C2 = (0.03·L)²`` and
``L`` the data range (1 for [0, 1]). 'Valid' windows only: an ``H×W`` image gives an
``(H−10)×(W−10)`` map; channels are independent, and the image's SSIM is the mean over
map and channels (MSSIM, eq. 17). Matches ``skimage.metrics.structural_similarity(
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from cvloss.losses.base import Loss, _shape, check_image, check_weight, weighted_reduce
from cvloss.losses.pixel import _upcast
from cvloss.losses.registry import register_loss

K1 = 0.01
K2 = 0.03


def _gaussian_1d(window_size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian taps at integer offsets −r..r, r = window_size // 2.

    The 2-D window of the paper is the outer product of this with itself (a Gaussian is
    separable), so filtering runs as two 1-D passes: 2·11 instead of 121 taps a pixel.
    """
    r = window_size // 2
    offsets = torch.arange(-r, r + 1, dtype=dtype, device=device)
    g = torch.exp(-offsets.square() / (2.0 * sigma**2))
    return g / g.sum()


def _check_args(x: torch.Tensor, y: torch.Tensor, data_range: float, window_size: int, sigma: float) -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        got = _shape(x) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"ssim expects images of shape (N, C, H, W), floating point; got {got}")
    if not torch.is_tensor(y) or y.shape != x.shape:
        got = _shape(y) if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"ssim expects the second image of the same shape as the first {_shape(x)}; got {got}")
    if not (isinstance(window_size, int) and window_size >= 1 and window_size % 2 == 1):
        raise ValueError(f"ssim: window_size must be an odd positive integer; got {window_size!r}")
    if not sigma > 0:
        raise ValueError(f"ssim: sigma must be > 0; got {sigma}")
    if not data_range > 0:
        raise ValueError(f"ssim: data_range must be > 0; got {data_range}")
    if x.shape[2] < window_size or x.shape[3] < window_size:
        raise ValueError(
            f"ssim uses 'valid' {window_size}x{window_size} windows, so images of shape (N, C, H, W) "
            f"need H, W >= {window_size}; got {_shape(x)}"
        )


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Local SSIM map (Wang et al. 2004, eq. 13) of two image batches.

    Args:
        x, y: ``(N, C, H, W)`` float, values in ``[0, data_range]``; any ``C``.
        data_range: ``L`` in ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``.
        window_size, sigma: Gaussian window (11, 1.5 in the paper); ``H, W >= window_size``.

    Returns:
        ``(N, C, H − window_size + 1, W − window_size + 1)``: one value per window
        position that lies fully inside the image ('valid', no padding), in [−1, 1].
        Computed in float32 (float64 if the inputs are), with autocast disabled.
    """
    _check_args(x, y, data_range, window_size, sigma)
    # Variances are differences of nearly equal numbers (E[x²] − E[x]²): half precision
    # under autocast would cancel them to noise, so this always runs in >= float32.
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _upcast(x)
        y = y.to(x.dtype)
        n, c, h, w = x.shape
        g = _gaussian_1d(window_size, sigma, x.dtype, x.device)
        # One depthwise pass over the five statistics' inputs, each channel on its own.
        stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H, W)
        groups = stack.shape[1]
        stack = F.conv2d(stack, g.view(1, 1, 1, -1).expand(groups, 1, 1, window_size), groups=groups)
        stack = F.conv2d(stack, g.view(1, 1, -1, 1).expand(groups, 1, window_size, 1), groups=groups)
        mu_x, mu_y, e_xx, e_yy, e_xy = stack.split(c, dim=1)
        var_x = e_xx - mu_x.square()
        var_y = e_yy - mu_y.square()
        cov_xy = e_xy - mu_x * mu_y
        c1 = (K1 * data_range) ** 2
        c2 = (K2 * data_range) ** 2
        num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
        den = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
        return num / den


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    reduction: Literal["none", "mean"] = "none",
) -> torch.Tensor:
    """Mean SSIM (MSSIM, Wang et al. 2004 eq. 17) per image: the mean of :func:`ssim_map`
    over the valid window positions and the channels.

    Args:
        x, y: ``(N, C, H, W)`` float in ``[0, data_range]``, ``H, W >= window_size``.
        reduction: ``none`` -> ``(N,)``, one SSIM per image; ``mean`` -> scalar, the batch mean.

    Returns values in [−1, 1]; 1 iff ``x == y``.
    """
    per_image = ssim_map(x, y, data_range, window_size, sigma).mean(dim=(1, 2, 3))
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"ssim: unknown reduction {reduction!r}; valid: none, mean")


@register_loss("ssim", family="structural", paper="Wang et al. 2004, 'Image Quality Assessment: From Error Visibility to Structural Similarity'")
class SSIMLoss(Loss):
    """Structural dissimilarity 1 − SSIM (Wang et al. 2004), Gaussian 11×11 window, σ=1.5.

    ``loss = 1 − mean SSIM map``, with ``C1 = (0.01·L)²``, ``C2 = (0.03·L)²``, ``L =
    data_range`` (1 for images in [0, 1]), population (not sample) statistics, each
    channel separately, and only 'valid' window positions (no padding): an H×W image
    contributes an (H−10)×(W−10) map. Value in [0, 2]; 0 iff pred == target.

    Shapes: pred, target ``(N, C, H, W)``, C in {1, 3}, H, W >= window_size. An optional
    per-pixel weight map (``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, C, H, W)``) weighs each
    window by the weight at its centre pixel (the map is cropped by window_size // 2 on
    each side) and gives the weighted mean Σ w·(1 − SSIM) / Σ w.
    """

    kind = "image"

    def __init__(self, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> None:
        super().__init__()
        if not data_range > 0:
            raise ValueError(f"ssim: data_range must be > 0; got {data_range}")
        if window_size < 1 or window_size % 2 == 0:
            raise ValueError(f"ssim: window_size must be an odd positive integer; got {window_size}")
        if not sigma > 0:
            raise ValueError(f"ssim: sigma must be > 0; got {sigma}")
        self.data_range = float(data_range)
        self.window_size = int(window_size)
        self.sigma = float(sigma)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_image(pred, target)
        weight = check_weight(weight, pred)
        values = 1.0 - ssim_map(pred, target, self.data_range, self.window_size, self.sigma)
        if weight is not None:
            # Each valid window position is attributed to its centre pixel.
            r = self.window_size // 2
            weight = weight[..., r : weight.shape[-2] - r, r : weight.shape[-1] - r]
        return weighted_reduce(values, weight, "mean")
