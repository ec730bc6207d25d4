"""Generative-image metrics: FID and KID on Inception-v3 features, plus PSNR.

**FID** (Heusel et al. 2017): fit a Gaussian to each set of 2048-d Inception pool
features and take the Fréchet (2-Wasserstein) distance between the two Gaussians::

    FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})

with sample means μ and unbiased covariances Σ (ddof = 1). The trace of the matrix
square root is computed without ``sqrtm``: (Σ₁Σ₂)^{1/2} is similar to the symmetric PSD
matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}, so its trace is Σ √λᵢ over that matrix's eigenvalues (float64,
eigenvalues clipped at 0 against round-off).

**KID** (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimator of the
squared MMD with the cubic polynomial kernel ``k(x, y) = (xᵀy / d + 1)³``::

    MMD²ᵤ = 1/(m(m−1)) Σ_{i≠j} k(xᵢ, xⱼ) + 1/(n(n−1)) Σ_{i≠j} k(yᵢ, yⱼ) − 2/(mn) Σ_{i,j} k(xᵢ, yⱼ)

averaged over ``n_subsets`` random subsets of ``subset_size`` samples per set (the
paper's code: 100 subsets of 1000; smaller sets use all their samples per subset). Unlike
FID it is unbiased, so it can be compared across sample sizes; it can be slightly
negative.

**Inception weights**: torchvision's ImageNet ``inception_v3`` (``IMAGENET1K_V1``) from
the torch hub cache. They are never downloaded here: :func:`inception_status` says whether
the file is there and, if not, why the FID/KID columns are n/a. Note that published FIDs
use the TF "pt_inception-2015-12-05" graph; numbers from torchvision's weights are
comparable with each other, not with papers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["InceptionFeatures", "feature_stats", "fid_from_features", "frechet_distance", "inception_status",
           "kid_from_features", "mmd2_unbiased", "polynomial_kernel", "psnr"]


# ------------------------------------------------------------------ FID
def feature_stats(feats: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of features ``(n, d)``, n >= 2, float64."""
    x = np.asarray(feats.detach().cpu() if torch.is_tensor(feats) else feats, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected features of shape (n, d) with n >= 2; got {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2 Tr((Σ₁Σ₂)^{1/2}) for two Gaussians (float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched Gaussian parameters: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ₁^{1/2}
    m = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    """FID between two feature sets ``(n, d)`` and ``(m, d)``."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


# ------------------------------------------------------------------ KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(xᵀy / d + coef0) ** degree`` for all pairs: ``(n, d), (m, d) -> (n, m)``."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (the formula in the module docstring) with the cubic kernel, n, m >= 2."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # Σ_{i≠j}: drop the diagonal by subtracting the trace.
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid_from_features(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, n_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of :func:`mmd2_unbiased` over ``n_subsets`` subsets
    of ``min(subset_size, n, m)`` samples drawn without replacement (numpy generator
    seeded with ``seed``, so the value is deterministic). With the subset as large as both
    sets, one subset is the whole sets and the std is 0."""
    x = np.asarray(real.detach().cpu() if torch.is_tensor(real) else real, np.float64)
    y = np.asarray(fake.detach().cpu() if torch.is_tensor(fake) else fake, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected feature sets (n, d), (m, d) with n, m >= 2; got {x.shape} and {y.shape}")
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y):
        return mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
            for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals))


# ------------------------------------------------------------------ PSNR
def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR ``10 log10(L² / MSE)`` in dB, ``(N, C, H, W) -> (N,)``; MSE over
    C·H·W, float64; ``inf`` for identical images."""
    mse = (pred.double() - target.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


# ------------------------------------------------------------------ Inception features
def inception_status() -> tuple[Path | None, str]:
    """``(path, "")`` when torchvision's Inception-v3 ImageNet weights are in the torch hub
    cache, else ``(None, reason)``. Never downloads."""
    try:
        from torchvision.models import Inception_V3_Weights

        url = Inception_V3_Weights.IMAGENET1K_V1.url
    except Exception as exc:  # an old torchvision without the weights enum
        return None, f"torchvision has no Inception_V3_Weights ({exc})"
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if path.is_file():
        return path, ""
    return None, f"Inception-v3 weights not in the torch hub cache ({path}); FID/KID need them (no download offline)"


class InceptionFeatures(torch.nn.Module):
    """2048-d pool features of torchvision's ImageNet Inception-v3 (final fc removed).

    Input ``(N, 3, H, W)`` in [0, 1]; resized bilinearly to 299x299 and ImageNet-normalised
    (the weights' own ``transform_input`` then maps to the range they were trained on).
    """

    def __init__(self, weights_path: Path | str) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        net.fc = torch.nn.Identity()
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        out = []
        for i in range(0, len(x), batch_size):
            xb = F.interpolate(x[i : i + batch_size].float(), size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((xb - self.mean) / self.std).double().cpu())
        return torch.cat(out)

