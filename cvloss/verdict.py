"""What one contrast lets a study conclude: its power, the smallest difference it could
have detected (MDE), the headroom the metric leaves, and one verdict.

A *contrast* is a paired difference ``A - B`` over seeds, read in the direction that
favours ``A``; its *family* is the set of contrasts corrected together. Every report of
cvloss (tables, forest plot, ``results/README.md``, studies) reads its verdict from
:func:`contrast_verdict`: ``appears``, ``reversed``, ``not detected`` (with its MDE),
``inconclusive`` (MDE >= headroom) or ``not measurable``. :func:`headroom` is the distance
from the baseline's mean to the metric's bound; :func:`contrast_mde` the difference the
paired t-test detects with 80% power at ``alpha / m``. docs/protocol.md gives the rules.

Pure: numbers in, numbers and words out. It imports nothing of cvloss, so every layer
(run, report, scripts) uses the same function.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from scipy import stats

APPEARS, REVERSED, NOT_DETECTED, INCONCLUSIVE, NOT_MEASURABLE = (
    "appears", "reversed", "not detected", "inconclusive", "not measurable")
VERDICTS = (APPEARS, REVERSED, NOT_DETECTED, INCONCLUSIVE, NOT_MEASURABLE)
ALPHA, POWER = 0.05, 0.8


# ---------------------------------------------------------------------------- power
def paired_power(dz: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` pairs at level ``alpha`` for a true
    standardised effect ``dz``: P(|T| > t_{1-α/2, n-1}) with T ~ noncentral t(n - 1,
    dz·√n). (3 pairs, α = 0.05: 18% at d_z = 1, 47% at d_z = 2.)"""
    if n < 2:
        return math.nan
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = dz * math.sqrt(n)
    upper = float(stats.nct.sf(crit, df, nc))
    # P(T < -c | nc) = P(T > c | -nc). scipy's cdf at -c returns NaN for a large
    # noncentrality at few degrees of freedom; that tail is then below P(Z < -nc) ~ 0.
    lower = float(stats.nct.sf(crit, df, -nc))
    if not math.isfinite(lower):
        lower = float(stats.norm.cdf(-abs(nc))) if nc > 0 else float(stats.nct.cdf(-crit, df, nc))
    return min(1.0, upper + lower)


def min_detectable_effect(sd_diff: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference (in the metric's units) that the two-sided paired
    t-test with ``n`` pairs detects with probability ``power`` at level ``alpha``:
    ``dz* · sd_diff`` with ``paired_power(dz*, n, alpha) = power``. NaN when it cannot be
    computed (n < 2, no spread estimate)."""
    if n < 2 or not math.isfinite(sd_diff) or sd_diff <= 0:
        return math.nan
    from scipy.optimize import brentq

    hi = 1.0
    while paired_power(hi, n, alpha) < power:
        hi *= 2
        if hi > 1e6:
            return math.inf
    return float(brentq(lambda dz: paired_power(dz, n, alpha) - power, 0.0, hi, xtol=1e-10)) * sd_diff


def seeds_needed(delta: float, sd_diff: float, alpha: float = ALPHA, power: float = POWER,
                 max_n: int = 100_000) -> int:
    """The fewest paired seeds (>= 2) whose two-sided paired t-test at level ``alpha``
    detects a true difference ``delta`` with probability ``power``; -1 when the inputs
    give no answer (no spread estimate, delta 0) or more than ``max_n`` would be needed."""
    if not (math.isfinite(sd_diff) and sd_diff > 0 and math.isfinite(delta) and delta != 0):
        return -1
    dz = abs(delta) / sd_diff
    lo, hi = 2, 2
    while paired_power(dz, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > max_n:
            return -1
    while lo < hi:  # the smallest n in [lo, hi] with enough power (power grows with n)
        mid = (lo + hi) // 2
        if paired_power(dz, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


# ---------------------------------------------------------------------------- one contrast
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def sd_of(diffs: Sequence[float]) -> float:
    """Sample SD (ddof 1) of the finite paired differences; NaN with fewer than two."""
    d = [float(x) for x in diffs if _finite(x)]
    if len(d) < 2:
        return math.nan
    mean = sum(d) / len(d)
    return math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))


def sd_from_ci(half_width: float, n: int, level: float = 0.95) -> float:
    """The SD of ``n`` paired differences whose Student-t CI half-width is ``half_width``
    (``half = t_{(1+level)/2, n-1} · sd / √n``): how a comparison written before per-contrast
    MDEs existed gives its contrasts' spread back. NaN when it cannot."""
    if n < 2 or not _finite(half_width) or half_width < 0:
        return math.nan
    return float(half_width * math.sqrt(n) / stats.t.ppf((1 + level) / 2, n - 1))


def family_level(m: int, alpha: float = ALPHA) -> float:
    """The level each contrast of a family of ``m`` measurable contrasts is powered at:
    ``alpha / m`` (Holm's strictest step; ``alpha`` for a family of one)."""
    return alpha / max(1, m)


def contrast_mde(sd_diff: float, n_pairs: int, m: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDE of one contrast: the smallest true mean difference the two-sided paired
    t-test detects with ``power`` (80%) at level ``alpha / m`` of its family of
    ``m`` measurable contrasts, the SD of its own ``n_pairs`` paired differences. Zero
    spread (every seed moved by the same amount) detects any difference: 0. NaN with
    fewer than two pairs."""
    if n_pairs < 2 or not _finite(sd_diff):
        return math.nan
    if sd_diff == 0:
        return 0.0
    return min_detectable_effect(sd_diff, n_pairs, family_level(m, alpha), power)


def headroom(baseline_mean: float, higher_is_better: bool, low: float | None = None,
             high: float | None = None) -> float:
    """How far the contrast's favoured direction can move the baseline's mean before the
    metric's bound: ``high - mean`` (higher is better), ``mean - low`` (lower is better;
    an error bounded by 0: the mean itself), ``inf`` without a bound that way, never
    below 0. NaN without a baseline mean."""
    if not _finite(baseline_mean):
        return math.nan
    bound = high if higher_is_better else low
    if bound is None or not _finite(bound):
        return math.inf
    return max(0.0, (bound - baseline_mean) if higher_is_better else (baseline_mean - bound))


def contrast_verdict(diff: float, p_adj: float, n_pairs: int, mde: float, room: float,
                     higher_is_better: bool, alpha: float = ALPHA) -> str:
    """The verdict of one contrast (rules: docs/protocol.md) from its mean paired difference
    ``diff`` (A - B), its corrected p ``p_adj``, its paired seeds ``n_pairs``, its MDE and
    its ``room`` (:func:`headroom`). A significant contrast is ``appears`` / ``reversed``
    whatever its MDE; a null is ``inconclusive`` when ``mde >= room`` (an MDE that cannot
    be computed, e.g. an infinite one, is no evidence of power either) and ``not
    detected`` otherwise."""
    if n_pairs < 2 or not _finite(diff) or not _finite(p_adj):
        return NOT_MEASURABLE
    if p_adj < alpha and diff != 0:
        favoured = diff > 0 if higher_is_better else diff < 0
        return APPEARS if favoured else REVERSED
    if not _finite(mde) or mde >= room:  # NaN room (no baseline mean) compares False
        return INCONCLUSIVE
    return NOT_DETECTED


def assess(diffs: Sequence[float], p_adj: float, m: int, baseline_mean: float, higher_is_better: bool,
           low: float | None = None, high: float | None = None, alpha: float = ALPHA,
           power: float = POWER) -> dict[str, Any]:
    """Everything one contrast carries, from its paired differences ``diffs`` (NaN where a
    seed lacks a pair): ``diff`` (mean), ``n_pairs``, ``sd_diff``, ``family_m``, ``level``,
    ``mde``, ``headroom`` and ``verdict``."""
    d = [float(x) for x in diffs if _finite(x)]
    sd = sd_of(d)
    mde = contrast_mde(sd, len(d), m, alpha, power)
    room = headroom(baseline_mean, higher_is_better, low, high)
    diff = sum(d) / len(d) if d else math.nan
    return {"diff": diff, "n_pairs": len(d), "sd_diff": sd, "family_m": m, "level": family_level(m, alpha),
            "mde": mde, "headroom": room,
            "verdict": contrast_verdict(diff, p_adj, len(d), mde, room, higher_is_better, alpha)}


def _num(x: Any, digits: int = 3) -> str:
    if not _finite(x):
        return "∞" if x == math.inf else "n/a"
    return f"{x:.{digits}g}"


def verdict_text(kind: str, mde: float = math.nan, room: float = math.nan) -> str:
    """The verdict in words, with what a null could have detected: ``not detected (MDE
    0.021)``, ``inconclusive (MDE 3.1 >= headroom 3.03: this study could not have detected
    it)``; the others as their name."""
    if kind == NOT_DETECTED:
        return f"not detected (MDE {_num(mde)})"
    if kind == INCONCLUSIVE:
        if not _finite(mde):
            return "inconclusive (no MDE could be computed: this study could not have detected it)"
        return f"inconclusive (MDE {_num(mde)} ≥ headroom {_num(room)}: this study could not have detected it)"
    return kind
