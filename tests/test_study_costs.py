"""`study check`'s CPU-hour estimate: trial-epochs times the measured seconds per epoch,
with successive halving counted rung by rung."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from cvloss.run.tune import Halving, TuneProtocol
from cvloss.study.check import search_epochs
from cvloss.study.costs import cpu_hours, seconds_per_epoch


def _space(trials: int, seeds: int = 3, repeats: int = 1, halving: Halving | None = None) -> SimpleNamespace:
    return SimpleNamespace(trials=trials, protocol=TuneProtocol(seeds=seeds, repeats=repeats, halving=halving))


def test_search_without_halving_trains_every_candidate_fully():
    # 4 losses x 3 seeds x 2 repeats x 6 candidates x 8 epochs
    assert search_epochs(_space(6, seeds=3, repeats=2), 4, 8) == 4 * 3 * 2 * 6 * 8


def test_halving_counts_each_rung_from_the_previous_one():
    # eta 3, min 2, 8 epochs: rungs [3, 8]; 6 candidates train 3 epochs, 6 // 3 = 2 go on
    # for 5 more: 28 epochs per search instead of 48
    assert Halving(3, 2).rungs(8) == [3, 8]
    assert search_epochs(_space(6, seeds=3, halving=Halving(3, 2)), 2, 8) == 2 * 3 * 28
    # 40 epochs, eta 3, min 5: rungs [5, 14, 40], survivors 6, 2, 1 -> 30 + 18 + 26 = 74
    assert search_epochs(_space(6, seeds=1, halving=Halving(3, 5)), 1, 40) == 74


def test_no_search_costs_nothing():
    assert search_epochs(None, 6, 40) == 0


def test_cpu_hours_is_trial_epochs_times_the_table():
    per = seconds_per_epoch()["gan"]["quick"]
    assert cpu_hours("gan", "quick", 3600) == pytest.approx(per)
    assert cpu_hours("gan", "full", 100) is None  # a GPU budget: no CPU figure
