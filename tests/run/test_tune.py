"""Per-loss tuning with an equal budget: the same candidates for every loss, selection on
val only, the retrained winner equal to a plain trial at its setting, resume, edge flags.
(The protocol's seeds, repeats, halving and ties: test_tune_signal.py.)"""
import json
import math
from dataclasses import replace

import pytest

from cvloss.errors import UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.executor import SerialExecutor
from cvloss.run.trainer import run_trial
from cvloss.run.tune import (TUNE_SEED0, Space, TuneProtocol, apply_candidate, candidates, check_space, edge_flags,
                             parse_dimension, parse_space, select)
from cvloss.run.tuning import run_tuned_comparison
from cvloss.tasks.seg import SegTask

TINY = {"epochs": 1, "n_train": 16, "n_val": 8}


def _base(tmp_path):
    return TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path), overrides=dict(TINY))


def test_candidates_are_a_pure_function_of_the_space_and_in_range():
    space = parse_space(["lr=log(1e-4,1e-2)", "batch_size=int(4,8)", "augment=choice(true,false)"], 6, seed=3)
    a, b = candidates(space), candidates(space)
    assert a == b and len(a) == 6
    assert all(1e-4 <= c["lr"] <= 1e-2 and 4 <= c["batch_size"] <= 8 and c["augment"] in ("true", "false") for c in a)
    assert candidates(replace(space, seed=4)) != a
    grid = candidates(parse_space(["lr=log(1e-4,1e-2)"], 3, sampler="grid"))
    assert sorted(c["lr"] for c in grid) == [1e-4, 1e-3, 1e-2]  # log-spaced ends and middle


def test_loss_parameters_apply_to_the_specs_that_hold_the_term():
    values = {"topo.mu": 0.5, "lr": 0.01, "dice#2.smooth": 2.0, "ce.weight": 0.3}
    assert apply_candidate("ce+topo", values) == ("0.3*ce+topo(mu=0.5)", {"lr": 0.01})
    assert apply_candidate("dice", values) == ("dice", {"lr": 0.01})  # no second dice: unchanged
    assert apply_candidate("dice+0.5*dice", values)[0] == "dice+0.5*dice(smooth=2)"
    check_space(parse_space(["topo.mu=log(0.01,1)"], 2), "seg", ["ce", "ce+topo"])  # one spec has it: fine
    with pytest.raises(UsageError, match="no loss of --losses has a term 'topo'"):
        check_space(parse_space(["topo.mu=log(0.01,1)"], 2), "seg", ["ce", "dice"])
    # a term's weight changes only a spec of two or more terms (alone, it rescales the gradient)
    assert apply_candidate("dice", {"dice.weight": 0.5}) == ("dice", {})
    assert apply_candidate("ce+dice", {"dice.weight": 0.5})[0] == "ce+0.5*dice"
    with pytest.raises(UsageError, match="no loss of --losses has a term 'dice' beside another term"):
        check_space(parse_space(["dice.weight=log(0.1,10)"], 2), "seg", ["ce", "dice"])


def test_selection_and_edge_flags():
    assert select([0.2, None, 0.5, 0.5], higher=True) == 2  # ties: the earlier; failed: last
    assert select([0.2, math.nan, 0.1], higher=False) == 2
    assert select([None, None], higher=True) == 0
    space = Space((parse_dimension("lr=log(1e-4,1e-2)"), parse_dimension("wd=uniform(0,1)")), 4)
    assert edge_flags(space, {"lr": 9e-3, "wd": 0.5}) == ["lr at the upper edge: widen the range"]
    assert edge_flags(space, {"lr": 1e-3, "wd": 0.05}) == ["wd at the lower edge: widen the range"]
    assert edge_flags(space, {"lr": 1e-3, "wd": 0.5}) == []


def test_a_tuned_comparison_selects_on_val_retrains_and_resumes(tmp_path, monkeypatch, capture):
    reads: list[tuple[str, str]] = []
    original = SegTask.evaluate

    def counting(self, model, split="val"):
        reads.append((self.params["lr"], split))
        return original(self, model, split)

    monkeypatch.setattr(SegTask, "evaluate", counting)
    base = _base(tmp_path)
    space = parse_space(["lr=log(1e-3,1e-2)"], 2, seed=1, protocol=TuneProtocol(seeds=1))
    cands = candidates(space)
    # a killed search: candidate 0 of ce already trained before the command ran
    from cvloss.run.tune import tuning_config
    first = tuning_config(base, "ce", cands[0], 0, space, TUNE_SEED0)
    run_trial(first, capture)
    stamp = (first.trial_dir / "summary.json").stat().st_mtime_ns
    reads.clear()

    class Recording(SerialExecutor):  # the executor of --jobs/--executor gets every trial
        batches: list[list[str]] = []

        def run(self, cfgs, reporter=None):
            self.batches.append([f"{c.loss}/{c.trial_dir.relative_to(c.trial_dir.parents[1])}" for c in cfgs])
            return super().run(cfgs, reporter)

    result = run_tuned_comparison(base, ["ce", "dice"], [0], space, capture, executor=Recording())
    # the finished ce/t0 is read, not sent again; every candidate at the one tuning seed
    assert Recording.batches == [["dice/t0/seed10000", "ce/t1/seed10000", "dice/t1/seed10000"],
                                 ["ce/ce/seed0", "dice/dice/seed0"]]
    assert (first.trial_dir / "summary.json").stat().st_mtime_ns == stamp  # not retrained
    # tuning (dice t0, ce t1, dice t1): the untrained model and epoch 1 on val, never test;
    # then each winner: untrained (test), epoch 1 (val), final (test)
    assert [s for _, s in reads] == ["val"] * 6 + ["test", "val", "test"] * 2
    t = result["tuning"]
    assert t["losses"]["ce"]["candidates"] == t["losses"]["dice"]["candidates"] == cands
    for spec in ("ce", "dice"):
        rec = t["losses"][spec]
        assert rec["chosen"] == cands[select(rec["val_scores"], True)]
        tdir = base.group_dir / f"tune--{space.key()}" / spec / "t0"
        assert json.loads((tdir / "candidate.json").read_text()) == cands[0]
        trial = tdir / f"seed{TUNE_SEED0}"
        assert json.loads((trial / "summary.json").read_text())["split"] == "val"
        assert {"miou", "dice"} <= set(json.loads((trial / "untrained.json").read_text()))  # the untrained model, on val
    # the retrained winner equals a plain trial at that setting and seed
    chosen = t["losses"]["ce"]["chosen"]
    plain = run_trial(replace(base, loss="ce", seed=0, overrides={**TINY, "lr": chosen["lr"]}), capture)
    winner = json.loads((tmp_path / "seg" / "synth-pets" / f"smoke+epochs=1+n_train=16+n_val=8+tuned-{space.tuned_key()}"
                         / "ce" / "seed0" / "summary.json").read_text())
    assert winner["metrics"] == plain["metrics"] and winner["split"] == "test"
    md = (tmp_path / "seg" / "synth-pets" / f"smoke+epochs=1+n_train=16+n_val=8+tuned-{space.tuned_key()}"
          / "compare--ce--dice" / "compare.md").read_text()
    assert "Tuning (selected on val, reported on test above)" in md and "(chosen)" in md


def test_tpe_search_is_seeded_and_resumes_from_the_recorded_candidates(tmp_path, capture):
    pytest.importorskip("optuna", reason="the optional cvloss[tune] extra (Optuna) is not installed")
    base = _base(tmp_path)
    space = parse_space(["lr=log(1e-3,1e-2)"], 3, sampler="tpe", seed=5, protocol=TuneProtocol(seeds=1))
    first = run_tuned_comparison(base, ["ce"], [0], space, capture)["tuning"]["losses"]["ce"]
    again = run_tuned_comparison(base, ["ce"], [0], space, capture)["tuning"]["losses"]["ce"]
    assert first["candidates"] == again["candidates"] and first["val_scores"] == again["val_scores"]
    assert all(1e-3 <= c["lr"] <= 1e-2 for c in first["candidates"])
    assert sum("already done, skipped" in line for line in capture.lines) >= 4  # 3 tuning trials + the winner
