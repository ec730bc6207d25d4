"""Generative-image metrics: FID and KID on Inception-v3 features (PSNR: :mod:`cvloss.metrics.image_quality`).

* FID (Heusel et al. 2017) = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}) on 2048-d pool
  features, unbiased covariances; the trace of the square root is Σ √λᵢ of
  Σ₁^{1/2} Σ₂ Σ₁^{1/2} (no ``sqrtm``), or with fewer samples than dimensions the sum of
  the singular values of M = X₁X₂ᵀ / √((n−1)(m−1)) (centred features; exact, O(nmd)).
* KID (Bińkowski et al. 2018): the unbiased MMD² with the kernel (xᵀy / d + 1)³, averaged
  over ``n_subsets`` subsets of ``min(subset_size, n)``; it can be slightly negative.
* :class:`FIDInception`: the 2015-12-05 TF Inception as torch-fidelity ports it (extra
  ``cvloss[fid]``): uint8 images resized to 299x299 TF-1.x style, pool3 features. Its
  weights are never downloaded: :func:`fid_weights_status` looks at ``--fid-weights``,
  ``$CVLOSS_FID_WEIGHTS`` and the torch hub cache, else says where to place the file.

Formulas, derivations and why not torchvision's Inception: ``docs/tasks/translate.md``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from cvloss.errors import UsageError

__all__ = ["FIDInception", "feature_stats", "fid_extractor_name", "fid_from_features",
           "fid_weights_status", "frechet_distance", "kid_from_features", "mmd2_unbiased", "polynomial_kernel"]


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
    """FID between two feature sets ``(n, d)`` and ``(m, d)`` (n, m >= 2); the low-rank
    form (docs/tasks/translate.md) when min(n, m) < d, else :func:`frechet_distance`."""
    x = np.asarray(real.detach().cpu() if torch.is_tensor(real) else real, dtype=np.float64)
    y = np.asarray(fake.detach().cpu() if torch.is_tensor(fake) else fake, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected feature sets (n, d), (m, d) with n, m >= 2; got {x.shape} and {y.shape}")
    if min(len(x), len(y)) >= x.shape[1]:
        return frechet_distance(*feature_stats(x), *feature_stats(y))
    xc, yc = x - x.mean(0), y - y.mean(0)
    cn, cm = len(x) - 1, len(y) - 1
    tr_covmean = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(cn * cm)
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + (xc * xc).sum() / cn + (yc * yc).sum() / cm - 2 * tr_covmean)


# ------------------------------------------------------------------ KID
def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(xᵀy / d + coef0) ** degree`` for all pairs: ``(n, d), (m, d) -> (n, m)``."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic kernel k, n, m >= 2: 1/(m(m−1)) Σ_{i≠j} k(xᵢ, xⱼ)
    + 1/(n(n−1)) Σ_{i≠j} k(yᵢ, yⱼ) − 2/(mn) Σ_{i,j} k(xᵢ, yⱼ)."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # Σ_{i≠j}: drop the diagonal by subtracting the trace.
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid_from_features(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, n_subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of :func:`mmd2_unbiased` over ``n_subsets`` subsets.

    Each set gives ``min(subset_size, its size)`` samples per subset, drawn without
    replacement by a numpy generator seeded with ``seed`` (deterministic). A set no larger
    than ``subset_size`` enters every subset whole; when both do, there is one subset --
    the two whole sets -- and the result is ``(MMD²ᵤ(real, fake), 0.0)`` for any seed.
    """
    x = np.asarray(real.detach().cpu() if torch.is_tensor(real) else real, np.float64)
    y = np.asarray(fake.detach().cpu() if torch.is_tensor(fake) else fake, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"expected feature sets (n, d), (m, d) with n, m >= 2; got {x.shape} and {y.shape}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2; got {subset_size}")
    if len(x) <= subset_size and len(y) <= subset_size:
        return mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)

    def draw(z: np.ndarray) -> np.ndarray:
        return z if len(z) <= subset_size else z[rng.choice(len(z), subset_size, replace=False)]

    vals = [mmd2_unbiased(draw(x), draw(y)) for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals))


# ------------------------------------------------------------------ the FID extractor
#: torch-fidelity's port of the TF Inception graph of 2015-12-05 (what FID is defined on).
FID_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{FID_WEIGHTS_FILE}"
#: pytorch-fid's file name for the converted weights (the same sha256 prefix); loaded strictly,
#: so a file whose keys do not match torch-fidelity's network is refused in one line.
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: A default weights file for every run, when ``--fid-weights`` is not given.
FID_WEIGHTS_ENV = "CVLOSS_FID_WEIGHTS"


def fid_extractor_name(path: Path | str | None = None) -> str:
    """The extractor, as tables and trial.json name it."""
    try:
        from importlib.metadata import version

        lib = f"torch-fidelity {version('torch-fidelity')}"
    except Exception:  # not installed: the name still says what would be used
        lib = "torch-fidelity"
    where = f", weights {Path(path).name}" if path else ""
    return (f"{lib} inception-v3-compat (TF Inception 2015-12-05{where}), uint8 input, TF-1.x bilinear resize "
            f"to 299x299, 2048-d pool3")


def fid_weights_status(path: str | Path | None = None) -> tuple[Path | None, str]:
    """``(weights file, "")`` or ``(None, one-line reason)``. Never downloads.

    Looks at ``path`` (``--fid-weights``), else ``$CVLOSS_FID_WEIGHTS``, else the torch hub
    cache (``<hub>/checkpoints/``) under torch-fidelity's and pytorch-fid's file names;
    the reason of a failure names the file to place where, or the extra to install.
    """
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return None, "FID/KID need the optional extra: pip install 'cvloss[fid]' (torch-fidelity)"
    given = path or os.environ.get(FID_WEIGHTS_ENV, "").strip() or None
    if given is not None:
        p = Path(given).expanduser()
        if p.is_file():
            return p.resolve(), ""
        return None, f"no FID Inception weights file at {p} (--fid-weights / ${FID_WEIGHTS_ENV})"
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in (FID_WEIGHTS_FILE, PYTORCH_FID_FILE):
        if (cache / name).is_file():
            return cache / name, ""
    return None, (f"FID Inception weights not found: place {FID_WEIGHTS_FILE} (from {FID_WEIGHTS_URL}) in {cache}/ "
                  f"or pass --fid-weights PATH (no download offline)")


class FIDInception(torch.nn.Module):
    """The standard FID extractor: torch-fidelity's ``FeatureExtractorInceptionV3``
    (``inception-v3-compat``) with the 2015-12-05 weights from ``weights_path``.

    ``forward`` takes images ``(N, 3, H, W)`` in [0, 1] (quantised to uint8 here, as a
    saved PNG would be) or uint8, and returns 2048-d pool3 features, float64 on the CPU;
    resizing to 299x299 is torch-fidelity's own. The file is first read with
    ``weights_only=True``, so a file that is not a plain state_dict is refused before the
    library unpickles it.
    """

    def __init__(self, weights_path: Path | str) -> None:
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise UsageError("FID/KID need the optional extra: pip install 'cvloss[fid]' (torch-fidelity)") from None
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise TypeError(f"a {type(state).__name__}, not a state_dict")
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights_path))
        except Exception as exc:
            raise UsageError(f"cannot load FID Inception weights from {weights_path}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}; expected {FID_WEIGHTS_FILE} ({FID_WEIGHTS_URL})") from None
        self.net = net.eval().requires_grad_(False)
        self.weights_path = Path(weights_path)
        self.name = fid_extractor_name(weights_path)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
        device = next(self.net.parameters()).device
        out = [self.net(x[i : i + batch_size].to(device))[0].double().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out)
