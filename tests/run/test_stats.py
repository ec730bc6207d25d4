"""Mean, 95% CI and paired differences against hand-computed values."""
import math

import pytest
from scipy import stats

from cvloss.run.stats import mean_ci, paired_difference


def test_mean_ci_matches_student_t_by_hand():
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    # s = 1, t_{0.975, 2} = 4.302652729911275, half = t * 1 / sqrt(3)
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)


def test_mean_ci_skips_non_finite_and_handles_small_n():
    assert mean_ci([float("nan"), 5.0, float("inf")])[::2] == (5.0, 1)
    assert math.isnan(mean_ci([5.0])[1])
    assert mean_ci([]) [2] == 0


def test_paired_difference_uses_paired_t_test():
    a, b = [0.8, 0.7, 0.9, 0.85], [0.6, 0.65, 0.7, 0.8]
    d, half, p, n = paired_difference(a, b)
    assert n == 4 and d == pytest.approx(0.125)
    assert p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert half == pytest.approx(mean_ci([x - y for x, y in zip(a, b)])[1])


def test_paired_difference_drops_unpaired_seeds_and_constant_shift():
    d, _, p, n = paired_difference([1.0, float("nan"), 3.0], [0.0, 1.0, 2.0])
    assert n == 2 and d == 1.0 and p == 0.0
    assert paired_difference([1.0, 2.0], [1.0, 2.0])[2] == 1.0
