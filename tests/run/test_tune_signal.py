"""A search that picks by signal: every candidate of every loss at the same K
tuning seeds, scored by the mean of intent-to-treat val values; a Latin hypercube over
the whole range; ties broken by the secondary metric; repeats and their stability;
successive halving with the same trial-epochs for every loss; resume after a kill at
every step; the committed one-seed searches still read as K = 1.

Most tests drive the search with :class:`FakeExecutor`, which writes what a trial would
(``metrics.csv`` rows up to its stop, ``untrained.json``, ``summary.json`` at the end)
from a score function of (loss, candidate, seed, epoch): the search reads only folders,
so its decisions are tested without training. One test trains for real (the trainer's
stop-at-epoch and resume)."""
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from cvloss.errors import UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.progress import RUNG_STOP, Reporter
from cvloss.run.tune import (LEGACY_PROTOCOL, TUNE_SEED0, Halving, TuneProtocol, candidates, parse_space, select,
                             winner_config)
from cvloss.run.tuning import _search, planned_trial_epochs, rungs_of, run_tuned_comparison, scoring_of, search_record

ROOT = Path(__file__).resolve().parents[2]
STUDY1 = ROOT / "tests" / "fixtures" / "study1"  # the first reference study's records
UNTRAINED = {"miou": 0.05, "dice": 0.04}  # the untrained model's val scores every fake trial reports


class FakeExecutor:
    """Runs nothing: writes each trial's files from ``score(loss, i, seed, epoch)``;
    ``status(loss, i, seed)`` may make a trial diverge (no rows, untrained value) or end
    collapsed; ``kill_after`` raises KeyboardInterrupt before that many trials, as a
    killed command would."""

    def __init__(self, score, status=None, kill_after=None):
        self.score, self.status, self.kill_after = score, status or (lambda *_: "done"), kill_after
        self.ran: list[tuple[str, int, int, int]] = []  # (loss, candidate, seed, epochs trained now)

    def run(self, cfgs, reporter=None):
        for cfg in cfgs:
            if self.kill_after is not None and len(self.ran) >= self.kill_after:
                raise KeyboardInterrupt
            i = cfg.place.index
            d = cfg.trial_dir
            d.mkdir(parents=True, exist_ok=True)
            (d / "untrained.json").write_text(json.dumps(UNTRAINED))
            epochs, stop = cfg.params["epochs"], cfg.stop_at_epoch or cfg.params["epochs"]
            before = len((d / "metrics.csv").read_text().splitlines()) - 1 if (d / "metrics.csv").exists() else 0
            self.ran.append((cfg.name, i, cfg.seed, stop - before))
            status = self.status(cfg.name, i, cfg.seed)
            if status == "diverged":
                (d / "summary.json").write_text(json.dumps({"status": "diverged", "untrained": UNTRAINED}))
                continue
            rows = [(e, self.score(cfg.name, i, cfg.seed, e)) for e in range(1, stop + 1)]
            (d / "metrics.csv").write_text("epoch,miou,dice,epoch_time_s\n" + "".join(
                f"{e},{m},{m / 2},1.0\n" for e, m in rows))
            if stop == epochs:
                val = {"miou": rows[-1][1], "dice": rows[-1][1] / 2}
                (d / "summary.json").write_text(json.dumps({"status": status, "val_metrics": val, "metrics": val,
                                                            "untrained": UNTRAINED}))
        return [{} for _ in cfgs]


def _base(tmp_path, epochs=4):
    return TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path),
                       overrides={"epochs": epochs})


def _run(base, losses, space, ex):
    own, selections, seen = _search(base, losses, space, Reporter(), scoring_of(base), ex)
    return search_record(space, losses, scoring_of(base), own, selections, seen)


def _lr_score(loss, i, seed, epoch):
    return 0.5 + 0.01 * i + 0.001 * (seed - TUNE_SEED0) + 0.0001 * epoch


def test_every_candidate_of_every_loss_trains_at_the_same_k_seeds_and_raising_k_reuses_them(tmp_path):
    base = _base(tmp_path)
    items = ["lr=log(1e-3,1e-2)", "dice.weight=log(0.1,10)"]
    ex = FakeExecutor(_lr_score)
    rec = _run(base, ["ce", "ce+dice"], parse_space(items, 4, protocol=TuneProtocol(seeds=2)), ex)
    assert {(loss, i): sorted(s for l2, i2, s, _ in ex.ran if (l2, i2) == (loss, i)) for loss, i, _, _ in ex.ran} == \
        {(loss, i): [TUNE_SEED0, TUNE_SEED0 + 1] for loss in ("ce", "ce+dice") for i in range(4)}
    ce, both = rec["losses"]["ce"]["candidates"], rec["losses"]["ce+dice"]["candidates"]
    assert [c["lr"] for c in ce] == [c["lr"] for c in both]  # the same lrs; dice.weight only where dice is a term
    assert all(set(c) == {"lr"} for c in ce) and all(set(c) == {"lr", "dice.weight"} for c in both)
    assert (tmp_path / "seg" / "synth-pets" / "smoke+epochs=4" / f"tune--{parse_space(items, 4).key()}" / "ce" / "t3"
            / "seed10001" / "summary.json").is_file()
    again = FakeExecutor(_lr_score)  # K = 3: the same <h>, only the third seed trains
    _run(base, ["ce", "ce+dice"], parse_space(items, 4, protocol=TuneProtocol(seeds=3)), again)
    assert {s for _, _, s, _ in again.ran} == {TUNE_SEED0 + 2} and len(again.ran) == 8
    k2, k3 = (parse_space(items, 4, protocol=TuneProtocol(seeds=k)) for k in (2, 3))
    assert k2.key() == k3.key() and k2.tuned_key() != k3.tuned_key()


def test_the_score_is_the_itt_mean_over_seeds_and_a_diverged_seed_counts_at_the_untrained_value(tmp_path):
    values = {TUNE_SEED0: 0.6, TUNE_SEED0 + 1: 0.7, TUNE_SEED0 + 2: 0.8}

    def status(loss, i, seed):  # candidate 1 diverges at its last seed, candidate 2 collapses there
        return {1: "diverged", 2: "collapsed"}.get(i, "done") if seed == TUNE_SEED0 + 2 else "done"

    rec = _run(_base(tmp_path), ["ce"], parse_space(["lr=log(1e-3,1e-2)"], 3),
               FakeExecutor(lambda loss, i, seed, e: values[seed] + 0.1 * (i == 1), status))["losses"]["ce"]
    assert rec["seed_scores"][0] == [0.6, 0.7, 0.8] and math.isclose(rec["val_scores"][0], 0.7)
    assert math.isclose(rec["val_se"][0], 0.1 / math.sqrt(3))  # sd 0.1 over K = 3
    # its two lucky seeds score 0.7 and 0.8, but the diverged one counts at the untrained 0.05
    assert rec["seed_scores"][1] == pytest.approx([0.7, 0.8, 0.05]) and math.isclose(rec["val_scores"][1], 0.5167,
                                                                                       rel_tol=1e-3)
    assert rec["seed_scores"][2][2] == 0.8 and rec["status"][2] == "2 done, 1 collapsed"  # its own value
    assert rec["chosen_index"] == 0 and rec["status"][1] == "2 done, 1 diverged"


def test_a_one_dimensional_design_of_six_covers_both_ends():
    lrs = [c["lr"] for c in candidates(parse_space(["lr=log(1e-4,1e-2)"], 6, seed=7))]
    units = sorted(math.log(v / 1e-4) / math.log(100) for v in lrs)
    assert units == pytest.approx([(i + 0.5) / 6 for i in range(6)], abs=1e-3)  # the cell midpoints, log scale
    assert units[0] <= 0.15 and units[-1] >= 0.85
    grid = sorted(c["lr"] for c in candidates(parse_space(["lr=log(1e-4,1e-2)"], 3, "grid")))
    assert grid == [1e-4, 1e-3, 1e-2]  # grid keeps its endpoints
    old = candidates(parse_space(["lr=log(1e-4,1e-2)"], 6, "random"))  # the first sampler, unchanged
    assert old == candidates(parse_space(["lr=log(1e-4,1e-2)"], 6, "random")) and old != lrs


def test_an_exact_tie_is_broken_by_the_secondary_metric_then_by_the_centre():
    assert select([0.5, 0.5, 0.4], True, secondary=[0.2, 0.3, 0.9]) == 1
    assert select([0.5, 0.5], True, secondary=[0.2, 0.2], centre=[0.4, 0.1]) == 1
    assert select([2.0, 2.0], False, secondary=[0.3, 0.1], secondary_higher=False) == 1  # lower is better: kl


def test_an_exact_tie_in_a_search_goes_to_the_better_dice(tmp_path):
    class Tied(FakeExecutor):  # miou equal for candidates 0 and 1; candidate 1's dice higher
        def run(self, cfgs, reporter=None):
            out = super().run(cfgs, reporter)
            for cfg in cfgs:
                s = json.loads((cfg.trial_dir / "summary.json").read_text())
                s["val_metrics"]["dice"] = 0.3 if cfg.place.index == 1 else 0.1
                (cfg.trial_dir / "summary.json").write_text(json.dumps(s))
            return out

    rec = _run(_base(tmp_path), ["ce"], parse_space(["lr=log(1e-3,1e-2)"], 3, protocol=TuneProtocol(seeds=1)),
               Tied(lambda loss, i, seed, e: 0.4 if i == 2 else 0.5))["losses"]["ce"]
    assert rec["chosen_index"] == 1 and sorted(rec["indistinguishable"]) == [0, 1]  # K = 1: exact ties only


def test_repeats_report_how_often_each_candidate_won(tmp_path):
    # repeat 0 (seeds 10000, 10001) prefers t0, repeat 1 (10002, 10003) prefers t2 by more: pooled picks t2
    def score(loss, i, seed, e):
        r = (seed - TUNE_SEED0) // 2
        return {(0, 0): 0.6, (0, 2): 0.5, (1, 0): 0.5, (1, 2): 0.8}.get((r, i), 0.1)

    space = parse_space(["lr=log(1e-3,1e-2)"], 3, protocol=TuneProtocol(seeds=2, repeats=2))
    rec = _run(_base(tmp_path), ["ce"], space, FakeExecutor(score))["losses"]["ce"]
    cands = rec["candidates"]
    assert rec["stability"]["winners"] == [0, 2] and rec["stability"]["wins"] == {"t0": 1, "t2": 1}
    lrs = sorted([cands[0]["lr"], cands[2]["lr"]])
    assert rec["stability"]["spread"]["lr"] == lrs
    assert rec["chosen_index"] == 2 and rec["val_scores"][2] == pytest.approx(0.65)  # the pooled 4 seeds


def test_halving_gives_every_loss_the_same_trial_epochs(tmp_path):
    base = _base(tmp_path, epochs=9)
    space = parse_space(["lr=log(1e-3,1e-2)"], 9, protocol=TuneProtocol(seeds=2, halving=Halving(eta=3)))
    assert rungs_of(space, 9) == [1, 3, 9]
    # the losses prefer different candidates, so different trials continue
    ex = FakeExecutor(lambda loss, i, seed, e: (i if loss == "ce" else -i) + 0.01 * e)
    rec = _run(base, ["ce", "dice"], space, ex)
    per_loss = {loss: sum(n for l2, _, _, n in ex.ran if l2 == loss) for loss in ("ce", "dice")}
    assert per_loss == {"ce": 9 * 2 * 1 + 3 * 2 * 2 + 1 * 2 * 6, "dice": 42} == {
        "ce": planned_trial_epochs(space, [1, 3, 9]), "dice": rec["trial_epochs"]}
    assert rec["losses"]["ce"]["trained_epochs"] == rec["losses"]["dice"]["trained_epochs"] == 42
    assert rec["losses"]["ce"]["chosen_index"] == 8 and rec["losses"]["dice"]["chosen_index"] == 0
    assert [r["candidates"] for r in rec["losses"]["ce"]["rungs"]] == [list(range(9)), [6, 7, 8], [8]]
    assert rec["losses"]["dice"]["status"][5].startswith("stopped at epoch 1")
    with pytest.raises(UsageError, match="tpe cannot run as successive halving"):
        parse_space(["lr=log(1e-3,1e-2)"], 4, "tpe", protocol=TuneProtocol(halving=Halving()))
    with pytest.raises(UsageError, match="leave one rung"):
        rungs_of(parse_space(["lr=log(1e-3,1e-2)"], 4, protocol=TuneProtocol(halving=Halving(eta=3, min_epochs=2))), 3)


@pytest.mark.parametrize("halving", [None, Halving(eta=2)])
def test_a_search_killed_at_any_trial_resumes_to_the_same_choice(tmp_path, halving):
    space = parse_space(["lr=log(1e-3,1e-2)", "dice.weight=log(0.1,10)"], 4,
                        protocol=TuneProtocol(seeds=2, repeats=2, halving=halving))
    score = lambda loss, i, seed, e: ((i * 7 + seed) % 5) / 10 + 0.01 * e  # noqa: E731
    whole = FakeExecutor(score)
    reference = _run(_base(tmp_path / "whole"), ["ce", "ce+dice"], space, whole)
    for kill in range(0, len(whole.ran), 7):  # before the first trial, then every 7th
        base = _base(tmp_path / f"kill{kill}")
        with pytest.raises(KeyboardInterrupt):
            _run(base, ["ce", "ce+dice"], space, FakeExecutor(score, kill_after=kill))
        rest = FakeExecutor(score)
        again = _run(base, ["ce", "ce+dice"], space, rest)
        assert len(rest.ran) == len(whole.ran) - kill  # nothing finished is trained again
        assert {s: (r["chosen_index"], r["val_scores"]) for s, r in again["losses"].items()} == \
            {s: (r["chosen_index"], r["val_scores"]) for s, r in reference["losses"].items()}


def test_protocol_settings_are_refused_in_one_line():
    for kwargs, message in [({"seeds": 0}, "--tune-seeds must be an integer from 1 to 100; got 0"),
                            ({"repeats": 1.5}, "--tune-repeats must be an integer from 1 to 100; got 1.5")]:
        with pytest.raises(UsageError, match=message):
            TuneProtocol(**kwargs)
    with pytest.raises(UsageError, match=r"--tune-halving \(eta, the 1/eta that continue\) must be an integer from 2"):
        Halving(eta=1)
    with pytest.raises(UsageError, match="tpe cannot repeat the search"):
        parse_space(["lr=log(1e-3,1e-2)"], 4, "tpe", protocol=TuneProtocol(repeats=2))
    with pytest.raises(UsageError, match="= 200000 tuning trials per loss, more than 100000"):
        parse_space(["lr=log(1e-3,1e-2)"], 10_000, protocol=TuneProtocol(seeds=20))


def test_the_committed_one_seed_search_reads_as_k1_with_its_folder_names(tmp_path):
    """The first reference study's seg synth-vessels search (tests/fixtures/study1): the first protocol's search (random, t<i>/ at seed
    10000 + i) is read, not trained, and the winners' folder keeps its hash."""
    space = parse_space(["lr=log(2e-4,2e-2)"], 6, "random", 0, LEGACY_PROTOCOL)
    assert space.key() == space.tuned_key() == "b6efaaf1"
    base = TrialConfig(task="seg", loss="", dataset="synth-vessels", budget="quick", out=str(STUDY1))
    committed = json.loads(next((STUDY1 / "seg" / "synth-vessels" / "quick+tuned-b6efaaf1").glob(
        "compare--*/compare.json")).read_text())["tuning"]["losses"]
    losses = ["ce", "dice", "topo"]

    class Refuses(FakeExecutor):
        def run(self, cfgs, reporter=None):
            raise AssertionError(f"would train {[c.trial_dir for c in cfgs]}")

    rec = _run(base, losses, space, Refuses(None))
    for loss in losses:
        assert rec["losses"][loss]["val_scores"] == committed[loss]["val_scores"]
        assert rec["losses"][loss]["chosen_index"] == committed[loss]["chosen_index"]
        assert rec["losses"][loss]["val_se"] == [None] * 6 and rec["tune_seeds"] == 1
    assert winner_config(base, "ce", {"lr": 1e-3}, 0, space).trial_dir.parent.parent.name == "quick+tuned-b6efaaf1"


def test_a_halving_search_trains_rungs_and_resumes_a_killed_promotion(tmp_path, capture):
    """Real trials (smoke, 8 images): a rung stops at its epoch keeping its checkpoint;
    the promoted candidate resumes from it, also after a kill in the middle."""
    base = replace(_base(tmp_path, epochs=2), overrides={"epochs": 2, "n_train": 8, "n_val": 8})
    space = parse_space(["lr=log(1e-3,1e-2)"], 2, protocol=TuneProtocol(seeds=1, halving=Halving(eta=2)))

    class Kill(Reporter):
        resumed = False

        def trial_start(self, label, epochs, batches, start_epoch):
            self.resumed = start_epoch == 1  # the promoted candidate, resuming its rung

        def batch(self, loss):
            if self.resumed:  # killed in the middle of its second epoch
                raise KeyboardInterrupt

    kill = Kill()
    kill.ends = []
    kill.trial_end = lambda label, status, detail="": kill.ends.append((label, status, detail))
    with pytest.raises(KeyboardInterrupt):
        run_tuned_comparison(base, ["ce"], [0], space, kill)
    assert [(label.split("/", 2)[2], status, detail.split(" in ")[0]) for label, status, detail in kill.ends] == [
        (f"ce/t{i}/seed10000", RUNG_STOP, "epoch 1 of 2") for i in (0, 1)]  # each counted by the views
    search = tmp_path / "seg" / "synth-pets" / "smoke+epochs=2+n_train=8+n_val=8" / f"tune--{space.key()}" / "ce"
    rung = [d / "seed10000" for d in (search / "t0", search / "t1")]
    assert all((d / "checkpoint.pt").is_file() and not (d / "summary.json").exists() for d in rung)
    before = {d: (d / "metrics.csv").read_text() for d in rung}
    result = run_tuned_comparison(base, ["ce"], [0], space, capture)
    rec = result["tuning"]["losses"]["ce"]
    winner = rung[rec["chosen_index"]]
    label = f"seg/synth-pets/ce/t{rec['chosen_index']}/seed10000"
    assert f"START {label} at 1" in capture.lines  # resumed, not restarted
    # the kill came after both had stopped at the rung and said so; the rerun said nothing
    # of the rung (both had reached it): it ended the promoted candidate, then the winner
    ends = [line for line in capture.lines if line.startswith("END ")]
    assert [e.split()[1] for e in ends] == [label, "seg/synth-pets/ce/seed0"] and RUNG_STOP not in "".join(ends)
    assert (winner / "summary.json").is_file() and (winner / "metrics.csv").read_text().startswith(before[winner])
    loser = rung[1 - rec["chosen_index"]]
    assert (loser / "metrics.csv").read_text() == before[loser] and not (loser / "summary.json").exists()
    assert json.loads((winner / "untrained.json").read_text()).keys() >= {"miou", "dice"}  # scored on val, once
    assert rec["status"][1 - rec["chosen_index"]].startswith("stopped at epoch 1")


def test_a_one_seed_search_of_the_first_protocol_grows_into_k_seeds(tmp_path):
    """random with K = 1 keeps the first layout (t<i>/ at seed 10000 + i, its candidate.json
    naming every dimension); asking K = 2 of the same search keeps its candidates and
    trains the shared seeds in t<i>/seed<s>/."""
    base = _base(tmp_path)
    items = ["lr=log(1e-3,1e-2)", "dice.weight=log(0.1,10)"]
    one = FakeExecutor(_lr_score)
    legacy = parse_space(items, 2, "random", protocol=LEGACY_PROTOCOL)
    rec = _run(base, ["ce", "ce+dice"], legacy, one)
    assert sorted((loss, i, s) for loss, i, s, _ in one.ran) == [
        (loss, i, TUNE_SEED0 + i) for loss in ("ce", "ce+dice") for i in range(2)]
    assert rec["losses"]["ce"]["candidates"] == candidates(legacy) and rec["tuning_seeds"].startswith("10000..10001")
    two = FakeExecutor(_lr_score)
    _run(base, ["ce", "ce+dice"], parse_space(items, 2, "random", protocol=TuneProtocol(seeds=2)), two)
    assert len(two.ran) == 8 and all(
        (tmp_path / "seg" / "synth-pets" / "smoke+epochs=4" / f"tune--{legacy.key()}" / loss / f"t{i}" / f"seed{s}"
         / "summary.json").is_file() for loss, i, s, _ in two.ran)


def test_a_search_folder_of_another_configuration_is_refused_before_training(tmp_path, capture):
    from cvloss.run.analysis import ComparisonError
    from cvloss.run.tune import tuning_config

    base = replace(_base(tmp_path, epochs=1), overrides={"epochs": 1, "n_train": 8, "n_val": 8})
    space = parse_space(["lr=log(1e-3,1e-2)"], 2, protocol=TuneProtocol(seeds=1))
    cfg = tuning_config(base, "ce", candidates(space)[1], 1, space, TUNE_SEED0)
    cfg.trial_dir.mkdir(parents=True)
    (cfg.trial_dir / "trial.json").write_text(json.dumps({"identity": {**cfg.identity(), "seed": 7}}))
    (cfg.trial_dir / "summary.json").write_text(json.dumps({"status": "done", "val_metrics": {"miou": 0.99}}))
    with pytest.raises(ComparisonError, match=r"holds a finished trial of another configuration \(seed: recorded 7"):
        run_tuned_comparison(base, ["ce"], [0], space, capture, allow_mixed=True)  # past the code check
    assert not any(line.startswith("START") for line in capture.lines)


def test_a_search_record_is_checked_before_the_report_indexes_it(tmp_path):
    """compare.json is untrusted: the record's new lists must index real candidates."""
    from cvloss.errors import ResultsFileError
    from cvloss.io import check_tuning
    from cvloss.report.tuning import tuning_markdown

    rec = {"candidates": [{"lr": 0.001}, {"lr": 0.01}], "val_scores": [0.5, 0.5], "val_se": [0.1, None],
           "status": ["done", "1 done, 1 diverged"], "chosen_index": 1, "chosen": {"lr": 0.01}, "trained_spec": "ce",
           "cost_s": 1.0, "flags": [], "indistinguishable": [0, 1], "trained_epochs": 4,
           "stability": {"winners": [1, 0], "wins": {"t1": 1, "t0": 1}, "spread": {"lr": [0.001, 0.01]}}}
    t = {"space": ["lr=log(0.001,0.01)"], "trials": 2, "sampler_seed": 0, "sampler": "lhs", "metric": "miou",
         "hash": "ab12cd34", "tuning_seeds": "10000..10003", "tune_seeds": 2, "repeats": 2, "losses": {"ce": rec}}
    assert check_tuning(t, ["ce"], tmp_path / "compare.json") is t
    md = tuning_markdown({"losses": ["ce"], "tuning": t})
    assert "| `ce` | lr=0.01 | `ce` | 0.5 | 2 of 2: t0, t1 | t1 ×1, t0 ×1; lr 0.001–0.01 | 4 epochs, 1 s |" in md
    assert "0.5 ± 0.1 ≈" in md and "R = 2" in md
    for bad, what in [({"indistinguishable": [2]}, "'indistinguishable'"), ({"val_se": [0.1]}, "'val_se'"),
                      ({"stability": {"winners": ["t1"], "wins": {}, "spread": {}}}, "'stability'")]:
        with pytest.raises(ResultsFileError, match=what):
            check_tuning({**t, "losses": {"ce": {**rec, **bad}}}, ["ce"], tmp_path / "compare.json")
