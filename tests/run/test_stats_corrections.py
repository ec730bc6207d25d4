"""Corrections for many tests, effect sizes and power, against hand-computed values."""
from __future__ import annotations

import math

import pytest

from cvloss.run.stats import (benjamini_hochberg, clip_interval, effect_size_dz, holm, min_detectable_effect,
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


def test_minimum_detectable_effect_is_the_inverse_of_power():
    mde = min_detectable_effect(2.0, 10)  # in metric units: d_z* x sd
    assert paired_power(mde / 2.0, 10) == pytest.approx(0.8, abs=1e-6)
    assert min_detectable_effect(2.0, 10, alpha=0.01) > mde  # a stricter level needs a larger effect
    assert math.isnan(min_detectable_effect(1.0, 1)) and math.isnan(min_detectable_effect(0.0, 5))


def test_bounded_intervals_stop_at_their_bounds():
    assert clip_interval(0.95, 0.1, 0.0, 1.0) == pytest.approx((0.85, 1.0))
    assert clip_interval(2.0, 5.0, lo=0.0) == pytest.approx((0.0, 7.0))
