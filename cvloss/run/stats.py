"""Statistics of a comparison over seeds: mean, 95% confidence interval from Student's t,
and the paired difference against a baseline loss with a paired t-test p-value."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Return (mean, half-width of the `level` CI, n) over the finite values.

    Half-width = t_{(1+level)/2, n-1} · s / √n with s the sample standard deviation
    (ddof=1); NaN when n < 2 (one seed says nothing about spread).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float, int]:
    """Paired difference ``values - baseline`` over seeds where both are finite.

    Returns (mean difference, 95% CI half-width, two-sided p-value of the paired t-test, n
    pairs). The p-value is NaN with fewer than two pairs, and 1.0 (no evidence) when all
    differences are exactly zero.
    """
    pairs = [(a, b) for a, b in zip(values, baseline)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    n = len(pairs)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    d = np.array([a - b for a, b in pairs], dtype=float)
    mean, half, _ = mean_ci(d.tolist())
    if n < 2:
        return mean, half, math.nan, n
    if np.all(d == d[0]):
        # Constant differences: t is undefined (zero variance). Zero difference means no
        # evidence either way; a constant non-zero shift is as significant as it gets.
        return mean, 0.0, (1.0 if d[0] == 0 else 0.0), n
    p = float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
    return mean, half, p, n
