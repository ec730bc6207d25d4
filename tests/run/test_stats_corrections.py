"""Corrections for many tests, effect sizes and power, against hand-computed values."""
from __future__ import annotations

import math

import pytest

from cvloss.run.stats import (benjamini_hochberg, effect_size_dz, holm, min_detectable_effect,
                              paired_power, pooled_sd, prob_improvement, seeds_needed)


def test_holm_by_hand():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_benjamini_hochberg_by_hand():
    # sorted: 0.005 x4/1 = 0.02, 0.01 x4/2 = 0.02, 0.03 x4/3 = 0.04, 0.04 x4/4 = 0.04; step-up minimum
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.04, 0.01]) == pytest.approx([0.04, 0.02])


def test_nan_tests_are_not_counted():
    out = holm([0.01, math.nan, 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert math.isnan(benjamini_hochberg([math.nan])[0])


def test_effect_size_and_probability_of_improvement():
    a, b = [3.0, 5.0, 4.0, 6.0], [2.0, 2.0, 4.0, 3.0]  # d = 1, 3, 0, 3: mean 1.75, sd 1.5
    assert effect_size_dz(a, b) == pytest.approx(1.75 / 1.5)
    assert prob_improvement(a, b) == pytest.approx((1 + 1 + 0.5 + 1) / 4)  # the tie counts 1/2
    assert prob_improvement(a, b, higher_is_better=False) == pytest.approx(0.5 / 4)
    assert math.isnan(prob_improvement([math.nan], [1.0]))


def test_pooled_sd_weights_by_degrees_of_freedom():
    # var([1, 3]) = 2 (df 1), var([0, 0, 3]) = 3 (df 2): pooled = sqrt((2 + 6) / 3)
    assert pooled_sd([[1.0, 3.0], [0.0, 0.0, 3.0], [7.0]]) == pytest.approx(math.sqrt(8 / 3))
    assert math.isnan(pooled_sd([[1.0]]))


def test_power_matches_the_issue_and_textbook_sample_sizes():
    assert paired_power(1.0, 3) == pytest.approx(0.179, abs=1e-3)  # "18% power at d_z = 1" with 3 seeds
    assert paired_power(2.0, 3) == pytest.approx(0.471, abs=1e-3)  # "47% at d_z = 2"
    # d_z = 1, alpha 0.05, power 0.8 needs 10 pairs (G*Power's paired t-test table); 0.5 needs 34.
    assert seeds_needed(1.0, 1.0) == 10 and seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.0, 1.0) == -1 and seeds_needed(1.0, math.nan) == -1


def test_power_is_finite_and_monotone_where_scipy_returns_nan():
    # scipy's noncentral t cdf is NaN from d_z = 8 at 2 pairs; power must still rise to 1
    values = [paired_power(dz, 2) for dz in (1, 4, 8, 16, 64)]
    assert all(0 < a < b <= 1 for a, b in zip(values, values[1:]))
    assert paired_power(8.0, 2) == pytest.approx(0.6253, abs=1e-4)  # the upper tail alone, lower ~ 0


def test_minimum_detectable_effect_is_the_inverse_of_power():
    mde = min_detectable_effect(2.0, 10)  # in metric units: d_z* x sd
    assert paired_power(mde / 2.0, 10) == pytest.approx(0.8, abs=1e-6)
    assert min_detectable_effect(2.0, 10, alpha=0.01) > mde  # a stricter level needs a larger effect
    assert math.isnan(min_detectable_effect(1.0, 1)) and math.isnan(min_detectable_effect(0.0, 5))


def test_best_only_when_it_beats_every_other_loss_after_correction():
    from cvloss.run.stats import best_after_correction

    clear = {"a": [0.90, 0.91, 0.92, 0.93], "b": [0.50, 0.52, 0.51, 0.55], "c": [0.60, 0.58, 0.61, 0.62]}
    assert best_after_correction(clear, higher_is_better=True) == "a"
    assert best_after_correction(clear, higher_is_better=False) == "b"  # lower is better: b leads
    close = {"a": [0.90, 0.50, 0.92, 0.40], "b": [0.50, 0.52, 0.51, 0.55]}  # best mean, but no evidence
    assert best_after_correction(close, higher_is_better=True) is None
    assert best_after_correction({"a": [1.0, 2.0]}, higher_is_better=True) is None  # nothing to beat


def test_a_comparison_carries_corrected_p_effects_and_mde(tmp_path):
    import json
    from dataclasses import replace

    from cvloss.run.compare import summarize_comparison
    from cvloss.run.config import TrialConfig

    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    miou = {"ce": [0.50, 0.52, 0.51, 0.53], "dice": [0.60, 0.63, 0.61, 0.62], "focal": [0.51, 0.52, 0.50, 0.55]}
    for loss, vals in miou.items():
        for seed, v in enumerate(vals):
            d = replace(base, loss=loss, seed=seed).trial_dir
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps({"schema": 2, "status": "done", "metrics": {"miou": v, "dice": v / 2}}))
    result = summarize_comparison(base, list(miou), [0, 1, 2, 3])
    rows = {(r["loss"], r["metric"]): r for r in result["rows"]}
    dice_row, focal_row = rows[("dice", "miou")], rows[("focal", "miou")]
    raw = sorted([dice_row["p_value"], focal_row["p_value"]])
    # Holm over the k - 1 = 2 tests against the baseline on the primary metric (miou)
    assert min(dice_row["p_adj"], focal_row["p_adj"]) == pytest.approx(2 * raw[0])
    assert dice_row["correction"] == "holm" and rows[("dice", "dice")]["correction"] == "bh"
    assert dice_row["p_improve"] == 1.0 and dice_row["dz"] > 0
    assert result["best"]["miou"] == "dice"
    assert math.isfinite(result["mde"]["miou"]) and result["mde_level"] == pytest.approx(0.025)
