"""One verdict per contrast (cvloss.verdict), on crafted numbers: appears, reversed, not
detected (with its MDE), inconclusive (MDE >= headroom: the ring8-like ceiling and the
Betti-like error count), not measurable; each contrast's MDE at its own family's level and
from its own SD (annotate_comparison), and the same verdict from a stored row of a
comparison written before per-contrast MDEs (the tables)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cvloss import verdict as vd
from cvloss.report.tables import contrast_verdicts, verdict_lines
from cvloss.run.stats import annotate_comparison, holm, paired_difference


def _sd(x):
    return float(np.std(x, ddof=1))


def test_headroom_is_the_distance_to_the_bound_the_contrast_favours():
    assert vd.headroom(0.7, True, 0.0, 1.0) == pytest.approx(0.3)  # a rate: up to 1
    assert vd.headroom(3.03, False, 0.0, None) == pytest.approx(3.03)  # an error count: the mean itself
    assert vd.headroom(29.0, True, 0.0, None) == math.inf  # unbounded above
    assert vd.headroom(8.0, True, 0.0, 8.0) == 0.0  # already at the ceiling
    assert math.isnan(vd.headroom(math.nan, True, 0.0, 1.0))


def test_each_verdict_kind_on_crafted_numbers():
    up = True
    assert vd.contrast_verdict(0.1, 0.01, 10, 0.05, math.inf, up) == vd.APPEARS
    assert vd.contrast_verdict(-0.1, 0.01, 10, 0.05, math.inf, up) == vd.REVERSED
    assert vd.contrast_verdict(-0.1, 0.01, 10, 0.05, math.inf, False) == vd.APPEARS  # lower is better
    assert vd.contrast_verdict(0.01, 0.4, 10, 0.05, 0.3, up) == vd.NOT_DETECTED  # MDE 0.05 < headroom 0.3
    assert vd.contrast_verdict(0.01, 0.4, 10, 0.3, 0.3, up) == vd.INCONCLUSIVE  # MDE == headroom
    assert vd.contrast_verdict(math.nan, math.nan, 0, math.nan, 0.3, up) == vd.NOT_MEASURABLE  # n/a metric
    assert vd.contrast_verdict(0.2, 0.5, 1, math.nan, 0.3, up) == vd.NOT_MEASURABLE  # one pair: no test
    assert vd.verdict_text(vd.NOT_DETECTED, 0.0213) == "not detected (MDE 0.0213)"
    assert vd.verdict_text(vd.INCONCLUSIVE, 3.1, 3.03).startswith("inconclusive (MDE 3.1 ≥ headroom 3.03")


def test_ring8_like_ceiling_is_inconclusive():
    """7 of 10 min-max seeds already cover 8 of 8 modes: the largest possible gain is the
    0.9 left, below what 10 seeds could detect."""
    minimax = [8.0] * 7 + [5.0, 5.0, 5.0]
    wgan_gp = [8.0, 7.0, 8.0, 8.0, 8.0, 7.0, 8.0, 8.0, 8.0, 8.0]
    diffs = [a - b for a, b in zip(wgan_gp, minimax)]
    p = paired_difference(wgan_gp, minimax)[2]
    assert p > 0.05
    got = vd.assess(diffs, p, 1, float(np.mean(minimax)), True, 0.0, 8.0)
    assert got["headroom"] == pytest.approx(0.9)
    assert got["mde"] == pytest.approx(vd.min_detectable_effect(_sd(diffs), 10, 0.05))
    assert got["mde"] >= 0.9 and got["verdict"] == vd.INCONCLUSIVE
    unbounded = vd.assess(diffs, p, 1, float(np.mean(minimax)), True, 0.0, None)
    assert unbounded["verdict"] == vd.NOT_DETECTED  # the same numbers without the ceiling


def test_betti_like_error_count_with_mde_above_the_baseline_mean_is_inconclusive():
    """An error count (lower is better, bounded by 0): a baseline mean of 3.03 errors leaves
    3.03 to gain; an MDE above it means only removing every error was detectable."""
    ce = [3.0, 2.5, 3.3, 2.8, 3.6, 3.1, 2.9, 3.2, 2.7, 3.2]
    diffs = [-4.0, 2.0, -3.5, 1.0, -5.0, 0.5, -2.0, 1.5, -3.0, -3.1]
    got = vd.assess(diffs, 0.28, 4, float(np.mean(ce)), False, 0.0, None)
    assert got["headroom"] == pytest.approx(3.03)
    assert got["mde"] > 3.03 and got["verdict"] == vd.INCONCLUSIVE
    tight = vd.assess([d / 10 for d in diffs], 0.28, 4, float(np.mean(ce)), False, 0.0, None)
    assert tight["mde"] < 3.03 and tight["verdict"] == vd.NOT_DETECTED


def test_a_contrasts_mde_uses_its_familys_size_and_its_own_sd():
    """Primary family: 3 contrasts against ``a`` (m = 3); the other metric's family has 2
    measurable contrasts (``d`` has no values there): m = 2. Each MDE is at alpha/m with
    the SD of that contrast's paired differences -- a noisy loss leaves the others' alone."""
    a = [0.50, 0.52, 0.49, 0.51, 0.50, 0.53]
    b = [0.60, 0.61, 0.60, 0.62, 0.59, 0.61]  # tight differences
    c = [0.40, 0.70, 0.30, 0.80, 0.45, 0.65]  # noisy differences
    d = [0.55, 0.56, 0.54, 0.57, 0.55, 0.58]
    nan = [math.nan] * 6
    values = {"a": {"acc": a, "err": a}, "b": {"acc": b, "err": b}, "c": {"acc": c, "err": c},
              "d": {"acc": d, "err": nan}}
    out = annotate_comparison(values, "a", "acc", {"acc": True, "err": False},
                              bounds={"acc": [0.0, 1.0], "err": [0.0, None]})
    for loss, vals in (("b", b), ("c", c)):
        sd = _sd([x - y for x, y in zip(vals, a)])
        assert out["cells"][(loss, "acc")]["family_m"] == 3
        assert out["cells"][(loss, "acc")]["mde"] == pytest.approx(vd.min_detectable_effect(sd, 6, 0.05 / 3))
        assert out["cells"][(loss, "err")]["family_m"] == 2
        assert out["cells"][(loss, "err")]["mde"] == pytest.approx(vd.min_detectable_effect(sd, 6, 0.05 / 2))
    assert out["cells"][("d", "err")]["verdict"] == vd.NOT_MEASURABLE
    assert out["cells"][("b", "acc")]["mde"] < out["cells"][("c", "acc")]["mde"] / 5  # its own SD, not pooled
    assert out["cells"][("b", "acc")]["verdict"] == vd.APPEARS
    assert out["cells"][("b", "acc")]["headroom"] == pytest.approx(1 - np.mean(a))
    assert out["mde"]["acc"] == pytest.approx(np.median([out["cells"][(l, "acc")]["mde"] for l in "bcd"]))
    assert out["mde_levels"] == {"acc": pytest.approx(0.05 / 3), "err": pytest.approx(0.05 / 2)}
    assert out["cells"][("b", "acc")]["p_adj"] == pytest.approx(
        holm([paired_difference(v, a)[2] for v in (b, c, d)])[0])


def _stored(rows_values, bounds=None, verdicts=False):
    """A comparison as compare.json stores it: baseline ``a`` and contrasts on ``modes``
    (ring8: at most 8), rows with the paired difference's CI (no per-contrast fields unless
    ``verdicts``)."""
    base = rows_values["a"]
    values = {loss: {"modes": v} for loss, v in rows_values.items()}
    stats = annotate_comparison(values, "a", "modes", {"modes": True}, bounds={"modes": [0.0, 8.0]})
    rows = [{"loss": "a", "metric": "modes", "analysis": "completed", "mean": float(np.mean(base)), "n": len(base),
             "n_pairs": len(base), "diff_vs_baseline": math.nan, "diff_ci95": math.nan, "p_value": math.nan}]
    for loss, v in rows_values.items():
        if loss == "a":
            continue
        d, half, p, n = paired_difference(v, base)
        row = {"loss": loss, "metric": "modes", "analysis": "completed", "mean": float(np.mean(v)), "n": len(v),
               "n_pairs": n, "diff_vs_baseline": d, "diff_ci95": half, "p_value": p,
               "p_adj": stats["cells"][(loss, "modes")]["p_adj"], "correction": "holm"}
        if verdicts:
            row.update({k: stats["cells"][(loss, "modes")][k] for k in ("sd_diff", "family_m", "mde", "headroom",
                                                                        "verdict")})
        rows.append(row)
    return {"task": "gan", "dataset": "ring8", "losses": list(rows_values), "seeds": list(range(len(base))),
            "baseline": "a", "primary_metric": "modes", "metrics": ["modes"], "directions": {"modes": True},
            "bounds": bounds if bounds is not None else {"modes": [0.0, None]}, "rows": rows,
            "best": {"modes": None}, "alpha": 0.05, "mde": {"modes": 2.0}, "mde_level": 0.05}, stats


def test_an_older_comparison_gets_the_same_verdict_from_its_stored_rows():
    """Rows without per-contrast fields (the committed study's): the SD comes back from the
    stored CI, the ceiling from the task (ring8: 8 modes, though the file says unbounded),
    and the verdict equals the one the comparison would write now."""
    minimax = [8.0] * 7 + [5.0, 5.0, 5.0]
    wgan_gp = [8.0, 7.0, 8.0, 8.0, 8.0, 7.0, 8.0, 8.0, 8.0, 8.0]
    result, stats = _stored({"a": minimax, "b": wgan_gp})
    (c,) = contrast_verdicts(result, "modes")
    now = stats["cells"][("b", "modes")]
    assert c["verdict"] == now["verdict"] == vd.INCONCLUSIVE
    assert c["mde"] == pytest.approx(now["mde"], rel=1e-6) and c["headroom"] == pytest.approx(0.9)
    line = verdict_lines(result)[0]
    assert "inconclusive (MDE ≥ headroom: this study could not have detected it): `b` (MDE" in line
    assert "≥ headroom 0.9)" in line and "does not appear" not in line
    written, _ = _stored({"a": minimax, "b": wgan_gp}, verdicts=True)
    assert contrast_verdicts(written, "modes")[0]["verdict"] == vd.INCONCLUSIVE  # the written one, read back
