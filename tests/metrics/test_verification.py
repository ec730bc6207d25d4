"""Verification metrics against hand-computed values (cvloss.metrics.verification)."""
from __future__ import annotations

import numpy as np
import pytest

from cvloss.metrics.verification import (best_threshold, cosine_scores, kfold_accuracy, roc_auc, roc_curve,
                                         tar_at_far, verification_metrics)

# Same pairs score 0.9, 0.8, 0.6; different pairs 0.7, 0.4, 0.3.
S = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
Y = np.array([True, True, False, True, False, False])


def test_roc_points_by_hand():
    far, tar, thr = roc_curve(S, Y)
    assert np.allclose(far, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert np.allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert thr[0] == np.inf and np.allclose(thr[1:], S)


def test_auc_by_hand_and_ties_count_half():
    # 8 of the 9 (same, different) score pairs are ordered correctly: 0.6 < 0.7.
    assert roc_auc(S, Y) == pytest.approx(8 / 9)
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert roc_auc([0.9, 0.1], [True, False]) == pytest.approx(1.0)
    assert roc_auc([0.1, 0.9], [True, False]) == pytest.approx(0.0)


def test_auc_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=200), 1)  # rounding makes ties
    y = rng.random(200) < 0.4
    pos, neg = s[y][:, None], s[~y][None, :]
    expected = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    assert roc_auc(s, y) == pytest.approx(expected)


def test_tar_at_far_is_a_step_without_interpolation():
    assert tar_at_far(S, Y, 0.0) == pytest.approx(2 / 3)  # no false accept allowed: t = 0.8
    assert tar_at_far(S, Y, 0.3) == pytest.approx(2 / 3)  # 1/3 > 0.3 is not reachable
    assert tar_at_far(S, Y, 1 / 3) == pytest.approx(1.0)
    assert tar_at_far(S, Y, 1e-3) == pytest.approx(2 / 3)


def test_best_threshold_by_hand():
    # t = 0.5 (midpoint of 0.4 and 0.6) and t = 0.75 both get 5/6 right; the smaller wins.
    assert best_threshold(S, Y) == pytest.approx(0.5)


def test_kfold_threshold_comes_from_the_other_folds():
    s = np.r_[S, 0.2, 0.1]
    y = np.r_[Y, True, False]
    f = np.r_[np.zeros(6, int), 1, 1]
    mean, std, accs = kfold_accuracy(s, y, f)
    # fold 1 uses t = 0.5 from fold 0: both pairs called "different" -> 1/2.
    # fold 0 uses t = 0.15 from fold 1: every pair called "same" -> 3/6.
    assert np.allclose(accs, [0.5, 0.5]) and mean == pytest.approx(0.5) and std == pytest.approx(0.0)


def test_perfect_separation_and_metric_keys():
    rng = np.random.default_rng(1)
    y = np.tile([True, False], 50)
    s = np.where(y, 0.5, -0.5) + rng.uniform(-0.1, 0.1, 100)
    out = verification_metrics(s, y, np.arange(100) % 10)
    assert out == pytest.approx({"verif_acc": 1.0, "verif_acc_std": 0.0, "auc": 1.0, "tar_far1e-2": 1.0,
                                 "tar_far1e-3": 1.0})


def test_cosine_scores_normalise():
    a = np.array([[3.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [-2.0, -2.0]])
    assert np.allclose(cosine_scores(a, b), [1.0, -1.0])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        roc_curve([0.1, 0.2], [True, True])  # no different pair
    with pytest.raises(ValueError):
        roc_auc([0.1, np.nan], [True, False])
    with pytest.raises(ValueError):
        kfold_accuracy(S, Y, np.zeros(6))  # a single fold
