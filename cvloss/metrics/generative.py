"""Mode-coverage metrics of a generator on a 2-D Gaussian mixture, as PacGAN reports them
(Lin et al. 2018, Sec. 5; the protocol of Srivastava et al. 2017, VEEGAN).

Given N generated samples and the K mixture means μ_k with common σ: a sample is high
quality (HQ) when min_k ‖x_i − μ_k‖₂ ≤ 3σ, ``hq_pct`` = 100 · #HQ / N; a mode is covered
when at least ``min_count`` HQ samples are nearest to it (default 1), ``modes`` =
#covered; ``kl`` = KL(p̂ ‖ u) = Σ_k p̂_k log(K p̂_k), the reverse KL of the HQ samples'
mode histogram p̂ against the uniform 1/K, in [0, log K] nats (0·log 0 = 0; no HQ sample
at all: log K). Why the reverse direction: ``docs/tasks/gan.md``, "Metrics".
"""
from __future__ import annotations

import math

import torch

__all__ = ["mode_histogram", "mode_metrics"]


def mode_histogram(samples: torch.Tensor, centers: torch.Tensor, sigma: float,
                   threshold: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """HQ mask and per-mode HQ counts.

    Args:
        samples: ``(N, 2)`` (or ``(N, D)``) generated points, any real values.
        centers: ``(K, D)`` mixture means.
        sigma: the mixture's standard deviation (> 0).
        threshold: HQ radius in units of σ (3 in VEEGAN/PacGAN).

    Returns:
        ``(hq, counts)``: ``hq`` a ``(N,)`` bool mask (nearest mean within ``threshold·σ``;
        non-finite samples are never HQ), ``counts`` a ``(K,)`` int64 histogram of the HQ
        samples over their nearest mean.
    """
    if samples.dim() != 2 or centers.dim() != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"expected samples (N, D) and centers (K, D); got {tuple(samples.shape)} and {tuple(centers.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0; got {sigma}")
    x = samples.detach().to(torch.float64)
    mu = centers.detach().to(device=x.device, dtype=torch.float64)
    dist = torch.cdist(x, mu)  # (N, K) Euclidean distances
    dmin, nearest = dist.min(dim=1)
    hq = dmin <= threshold * sigma  # NaN compares False: a diverged sample is never HQ
    counts = torch.bincount(nearest[hq], minlength=mu.shape[0])
    return hq, counts


def mode_metrics(samples: torch.Tensor, centers: torch.Tensor, sigma: float,
                 threshold: float = 3.0, min_count: int = 1) -> dict[str, float]:
    """PacGAN's three numbers for one set of generated samples (see the module docstring).

    Returns ``{"modes": covered modes in [0, K], "hq_pct": % HQ samples in [0, 100],
    "kl": reverse KL(p̂ ‖ uniform) in [0, log K] nats}``.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1; got {min_count}")
    hq, counts = mode_histogram(samples, centers, sigma, threshold)
    k = counts.numel()
    n_hq = int(counts.sum())
    if n_hq == 0:
        kl = math.log(k)
    else:
        p = counts.to(torch.float64) / n_hq
        # xlogy(p, K·p) = p log(K p) with 0·log 0 = 0: empty modes add nothing.
        kl = float(torch.special.xlogy(p, p * k).sum().clamp_min(0.0))
    return {
        "modes": float((counts >= min_count).sum()),
        "hq_pct": 100.0 * float(hq.to(torch.float64).mean()) if hq.numel() else 0.0,
        "kl": kl,
    }
