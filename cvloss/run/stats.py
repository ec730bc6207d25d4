"""Statistics of a comparison over seeds: mean, 95% confidence interval from Student's t,
the paired difference against a baseline loss with a paired t-test p-value, and what a
reviewer asks next: p-values corrected for the many tests of a table (Holm for the primary
metric, Benjamini-Hochberg for the exploratory rest), effect sizes (d_z, P(A > B)), the
"best" loss only when it beats every other after correction, and the smallest effect the
study could have detected (noncentral t power of the paired test)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

# The power analysis (paired_power, min_detectable_effect, seeds_needed) lives with the
# verdicts it serves, importable from every layer; its names stay importable from here.
from cvloss import verdict
from cvloss.verdict import min_detectable_effect, paired_power, seeds_needed  # noqa: F401


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


# ---------------------------------------------------------------------------- many tests
def _finite_positions(pvalues: Sequence[float]) -> list[int]:
    return [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), same order as given.

    With the k finite p-values sorted ascending, p_(1) <= ... <= p_(k):
    ``adj_(i) = max_{j <= i} min(1, (k - j + 1) · p_(j))``. NaN entries (tests that could not
    be run) stay NaN and do not count in k. Reject at level α where ``adj <= α``.
    """
    idx = _finite_positions(pvalues)
    out = [math.nan] * len(pvalues)
    k = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (k - rank) * float(pvalues[i])))
        out[i] = running
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), same order as given.

    ``adj_(i) = min_{j >= i} min(1, k / j · p_(j))`` over the k finite p-values sorted
    ascending; NaN entries stay NaN and do not count in k.
    """
    idx = _finite_positions(pvalues)
    out = [math.nan] * len(pvalues)
    k = len(idx)
    running = 1.0
    for rank, i in reversed(list(enumerate(sorted(idx, key=lambda i: pvalues[i]), start=1))):
        running = min(running, min(1.0, k / rank * float(pvalues[i])))
        out[i] = running
    return out


# ---------------------------------------------------------------------------- effects
def _pairs(values: Sequence[float], baseline: Sequence[float]) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in zip(values, baseline)
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]


def effect_size_dz(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Cohen's d_z of paired data: mean(values - baseline) / sd(values - baseline) (ddof 1);
    NaN with fewer than two pairs or zero spread."""
    d = np.array([a - b for a, b in _pairs(values, baseline)])
    if len(d) < 2 or d.std(ddof=1) == 0:
        return math.nan
    return float(d.mean() / d.std(ddof=1))


def prob_improvement(values: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True) -> float:
    """P(A > B): the fraction of paired seeds where ``values`` is better than ``baseline``
    (ties count ½); NaN without pairs."""
    pairs = _pairs(values, baseline)
    if not pairs:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    wins = sum(1.0 if sign * (a - b) > 0 else 0.5 if a == b else 0.0 for a, b in pairs)
    return wins / len(pairs)


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """Pooled standard deviation of several samples (e.g. each loss's paired differences
    against the baseline): sqrt(Σ (n_i - 1) s_i² / Σ (n_i - 1)); NaN when no sample has two
    finite values."""
    num = den = 0.0
    for g in groups:
        x = np.array([v for v in g if v is not None and math.isfinite(v)], dtype=float)
        if len(x) >= 2:
            num += (len(x) - 1) * x.var(ddof=1)
            den += len(x) - 1
    return math.sqrt(num / den) if den else math.nan


# ---------------------------------------------------------------------------- a comparison
def _paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    return paired_difference(a, b)[2]


def best_after_correction(values: dict[str, Sequence[float]], higher_is_better: bool, alpha: float = 0.05,
                          adjust=holm) -> str | None:
    """The loss that beats every other one: the best mean, whose paired tests against each
    of the k - 1 others are all significant at ``alpha`` after ``adjust`` (Holm) over those
    k - 1 tests, each in its favour. ``None`` = no significant difference."""
    means = {loss: float(np.mean([v for v in vals if v is not None and math.isfinite(v)]))
             for loss, vals in values.items() if any(v is not None and math.isfinite(v) for v in vals)}
    if len(values) < 2 or len(means) < len(values):
        return None
    leader = (max if higher_is_better else min)(means, key=means.get)
    others = [loss for loss in values if loss != leader]
    adjusted = adjust([_paired_p(values[leader], values[o]) for o in others])
    ahead = all((means[leader] > means[o]) if higher_is_better else (means[leader] < means[o]) for o in others)
    return leader if ahead and all(math.isfinite(p) and p < alpha for p in adjusted) else None


#: What a comparison's summary MDE of a metric is (said under every table).
MDE_HOW = ("median over the contrasts against the baseline of each contrast's MDE: 80% power at its family's "
           "level alpha/m (m = that metric's measurable contrasts), from the SD of its own paired differences")


def annotate_comparison(values: dict[str, dict[str, Sequence[float]]], baseline: str, primary: str,
                        directions: dict[str, bool], alpha: float = 0.05, power: float = 0.8,
                        target_effect: float | None = None,
                        bounds: dict[str, Sequence[float | None]] | None = None) -> dict[str, Any]:
    """The corrected statistics of a comparison. ``values[loss][metric]`` lists one value
    per seed (NaN for a seed without a result), in the same seed order for every loss;
    ``bounds[metric]`` is its (low, high) range (None: unbounded), for the headroom.

    Returns ``{"cells": {(loss, metric): {...}}, "best": {metric: loss or None},
    "mde": {metric: float}, "seeds_needed": {metric: int}, ...}`` where each cell (losses
    other than the baseline) holds ``p_adj`` (Holm over the tests against the baseline
    for the primary metric; Benjamini-Hochberg for every other metric, which is
    exploratory), ``correction``, ``dz``, ``p_improve`` (P(A > B)) and the contrast's
    verdict (:func:`cvloss.verdict.assess`: ``sd_diff``, ``family_m``, ``mde`` at its
    family's level alpha/m with the SD of its own paired differences, ``headroom``,
    ``verdict``). A metric's family is its m measurable contrasts (a finite p). The
    summary ``mde`` of a metric is the median of its contrasts' MDEs (:data:`MDE_HOW`);
    ``seeds_needed`` uses the median contrast's SD at the primary family's level.
    """
    losses = list(values)
    others = [l for l in losses if l != baseline]
    metrics = list(directions)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    best: dict[str, str | None] = {}
    mde: dict[str, float] = {}
    needed: dict[str, int] = {}
    levels: dict[str, float] = {}
    for metric in metrics:
        up = directions[metric]
        low, high = (list((bounds or {}).get(metric) or (None, None)) + [None, None])[:2]
        base = values[baseline].get(metric, [])
        base_mean = _mean(base)
        raw = [_paired_p(values[o].get(metric, []), base) for o in others]
        method = holm if metric == primary else benjamini_hochberg
        adjusted = method(raw)
        m = sum(1 for p in raw if p is not None and math.isfinite(p))  # the family: measurable contrasts
        levels[metric] = verdict.family_level(m, alpha)
        contrast_mdes, sds = [], []
        for o, p_adj in zip(others, adjusted):
            a = values[o].get(metric, [])
            diffs = [x - y for x, y in zip(a, base)]  # NaN where a seed lacks a pair
            judged = verdict.assess(diffs, p_adj, m, base_mean, up, low, high, alpha, power)
            cells[(o, metric)] = {"p_adj": p_adj, "correction": "holm" if metric == primary else "bh",
                                  "dz": effect_size_dz(a, base), "p_improve": prob_improvement(a, base, up),
                                  **{k: judged[k] for k in ("sd_diff", "family_m", "mde", "headroom", "verdict")}}
            if math.isfinite(judged["mde"]):
                contrast_mdes.append(judged["mde"])
            if math.isfinite(judged["sd_diff"]):
                sds.append(judged["sd_diff"])
        mde[metric] = float(np.median(contrast_mdes)) if contrast_mdes else math.nan
        if target_effect is not None and others:
            needed[metric] = seeds_needed(target_effect, float(np.median(sds)) if sds else math.nan,
                                          levels[metric], power)
        best[metric] = best_after_correction({l: values[l].get(metric, []) for l in losses}, up, alpha,
                                             holm if metric == primary else benjamini_hochberg)
    return {"cells": cells, "best": best, "mde": mde, "seeds_needed": needed, "alpha": alpha, "power": power,
            "mde_level": levels.get(primary, alpha / max(1, len(others))), "mde_levels": levels,
            "mde_how": MDE_HOW, "target_effect": target_effect}


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN without one)."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(x) / len(x) if x else math.nan


# ---------------------------------------------------------------------------- items
def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test: P(a split of ``wins + losses`` fair coin flips at least
    as uneven as ``wins``:``losses``), ``binomtest(wins, wins + losses, 0.5)``; ties are
    left out before (the usual convention). 1.0 without an untied item (no evidence)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return float(stats.binomtest(wins, n, 0.5).pvalue)


def min_sign_p(n: int) -> float:
    """The smallest two-sided p the sign test (and the exact Wilcoxon signed-rank test)
    can give with ``n`` untied items: ``2 · 0.5**n`` (every item the same way), capped at
    1. Five items cannot reach 0.05 (0.0625): fewer than six cannot show anything."""
    return min(1.0, 2.0 * 0.5 ** n) if n > 0 else 1.0


def signed_rank_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences: zeros dropped first
    (Wilcoxon's convention), then scipy's test (exact for up to 50 differences without
    zeros, as here; tied magnitudes get the exact null's approximation). 1.0 when every
    difference is zero (no evidence), NaN without a finite one."""
    d = [float(x) for x in diffs if x is not None and math.isfinite(x)]
    if not d:
        return math.nan
    nonzero = [x for x in d if x != 0]
    if not nonzero:
        return 1.0
    return float(stats.wilcoxon(nonzero).pvalue)
