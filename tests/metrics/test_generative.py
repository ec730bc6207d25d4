"""PacGAN's mode metrics against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from cvloss.metrics.generative import mode_histogram, mode_metrics

CENTERS = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
SIGMA = 0.1  # HQ radius 3σ = 0.3


def test_hand_computed_case():
    x = torch.tensor([
        [0.0, 0.0],     # mode 0, d = 0           -> HQ
        [0.05, 0.0],    # mode 0, d = 0.05        -> HQ
        [1.0, 0.2],     # mode 1, d = 0.2         -> HQ
        [0.5, 0.5],     # d = 0.707 to both       -> not HQ
        [float("nan"), 0.0],  # diverged sample   -> never HQ
    ])
    hq, counts = mode_histogram(x, CENTERS, SIGMA)
    assert hq.tolist() == [True, True, True, False, False]
    assert counts.tolist() == [2, 1]
    m = mode_metrics(x, CENTERS, SIGMA)
    assert m["modes"] == 2
    assert m["hq_pct"] == pytest.approx(60.0)
    # p = (2/3, 1/3), K = 2: Σ p log(K p)
    assert m["kl"] == pytest.approx(2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3))
    # stricter coverage rule: a mode needs >= 2 HQ samples
    assert mode_metrics(x, CENTERS, SIGMA, min_count=2)["modes"] == 1


def test_boundary_is_inclusive_and_threshold_scales():
    # σ = 0.125: 3σ = 0.375 exactly in binary floating point, so the boundary is sharp
    x = torch.tensor([[0.375, 0.0], [0.376, 0.0], [0.0, -0.125]])
    assert mode_histogram(x, CENTERS, 0.125)[0].tolist() == [True, False, True]
    assert mode_histogram(x, CENTERS, 0.125, threshold=1.0)[0].tolist() == [False, False, True]


def test_extremes_uniform_one_mode_and_none():
    k = 4
    centers = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    balanced = centers.repeat(5, 1)  # 5 samples on every mode
    m = mode_metrics(balanced, centers, 0.05)
    assert m == {"modes": 4.0, "hq_pct": 100.0, "kl": 0.0}
    one = centers[:1].repeat(10, 1)
    m = mode_metrics(one, centers, 0.05)
    assert m["modes"] == 1 and m["kl"] == pytest.approx(math.log(k))  # empty modes add 0, no smoothing
    far = torch.full((7, 2), 10.0)
    m = mode_metrics(far, centers, 0.05)
    assert m == {"modes": 0.0, "hq_pct": 0.0, "kl": pytest.approx(math.log(k))}


def test_errors():
    with pytest.raises(ValueError, match="samples"):
        mode_metrics(torch.zeros(3, 3), CENTERS, SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        mode_metrics(torch.zeros(3, 2), CENTERS, 0.0)
    with pytest.raises(ValueError, match="min_count"):
        mode_metrics(torch.zeros(3, 2), CENTERS, SIGMA, min_count=0)
