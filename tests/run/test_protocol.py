"""The study protocol: test read only by the untrained and final evaluations, intent to
treat, provenance (code, torch, threads) and the summary schema."""
import json
from dataclasses import replace

import pytest

from cvloss.errors import ResultsFileError
from cvloss.io import SUMMARY_SCHEMA, read_summary
from cvloss.report.tables import comparison_markdown, interval_text
from cvloss.run.compare import ComparisonError, summarize_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.provenance import code_provenance, source_sha256
from cvloss.run.trainer import TrialError, run_trial
from cvloss.tasks.seg import SegTask


def _seg(tmp_path, **params):
    return TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", out=str(tmp_path), device="cpu",
                       overrides={"epochs": 2, "n_train": 16, "n_val": 8, **params})


def test_test_split_is_read_twice_per_trial_even_across_a_resume(tmp_path, monkeypatch, capture):
    """Untrained model once, final model once; a resumed trial reads test no more; every
    epoch is scored on val."""
    reads = []
    original = SegTask.evaluate

    def counting(self, model, split="val"):
        reads.append(split)
        return original(self, model, split)

    monkeypatch.setattr(SegTask, "evaluate", counting)
    cfg = _seg(tmp_path)
    assert run_trial(cfg, capture, stop_after_epoch=1)["status"] == "interrupted"
    assert reads == ["test", "val"]  # untrained (test), epoch 1 (val)
    summary = run_trial(cfg, capture)
    assert reads == ["test", "val", "val", "test"]  # resumed: epoch 2 (val), then the final test
    assert summary["split"] == "test" and summary["schema"] == SUMMARY_SCHEMA
    assert set(summary["untrained"]) >= {"miou", "dice"} and summary["metrics"]["miou"] != summary["untrained"]["miou"]
    assert summary["val_metrics"]["miou"] == pytest.approx(
        float([l for l in (cfg.trial_dir / "metrics.csv").read_text().splitlines()][-1].split(",")[
            (cfg.trial_dir / "metrics.csv").read_text().splitlines()[0].split(",").index("miou")]))
    assert summary["steps"] == 4 and summary["step_time_s"] > 0 and summary["peak_mem_mib"] > 0
    assert "peak RSS" in summary["peak_mem_how"]


def _write(base, loss, seed, status, miou, untrained, code="a" * 64, threads=1):
    d = replace(base, loss=loss, seed=seed).trial_dir
    d.mkdir(parents=True)
    summary = {"schema": SUMMARY_SCHEMA, "status": status, "metrics": {} if status == "diverged" else {"miou": miou},
               "untrained": {"miou": untrained}, "train_time_s": 10.0, "step_time_s": 0.1, "peak_mem_mib": 100.0,
               "peak_mem_how": "process peak RSS, reset per trial"}
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "trial.json").write_text(json.dumps({"code": {"commit": "c0ffee", "dirty": False, "source_sha256": code},
                                              "versions": {"torch": "2.14.1"}, "threads": threads}))


def test_a_diverged_seed_lowers_the_intent_to_treat_mean(tmp_path):
    """Completed trials: dice looks better than ce (its failure dropped); intent to treat:
    the diverged seed counts at the untrained value and dice's mean falls below ce's. A
    collapsed trial counts at its own metrics there."""
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    for seed, (ce, dice, init) in enumerate([(0.50, 0.52, 0.10), (0.60, 0.62, 0.20), (0.70, None, 0.30)]):
        _write(base, "ce", seed, "done", ce, init)
        _write(base, "dice", seed, "diverged" if dice is None else "done", dice, init)
    _write(base, "topo", 0, "done", 0.5, 0.1)
    _write(base, "topo", 1, "collapsed", 0.05, 0.2)
    _write(base, "topo", 2, "done", 0.7, 0.3)
    result = summarize_comparison(base, ["ce", "dice", "topo"], [0, 1, 2])
    rows = {(r["analysis"], r["loss"]): r for r in result["rows"] if r["metric"] == "miou"}
    assert rows[("completed", "dice")]["mean"] == pytest.approx(0.57) and rows[("completed", "dice")]["n"] == 2
    assert rows[("itt", "dice")]["mean"] == pytest.approx((0.52 + 0.62 + 0.30) / 3) and rows[("itt", "dice")]["n"] == 3
    assert rows[("itt", "dice")]["mean"] < rows[("itt", "ce")]["mean"]
    # completed trials alone: dice beats ce on every seed it finished
    assert rows[("completed", "dice")]["diff_vs_baseline"] == pytest.approx(0.02)
    assert rows[("itt", "topo")]["mean"] == pytest.approx((0.5 + 0.05 + 0.7) / 3)
    assert rows[("completed", "topo")]["n"] == 2
    # the paired test covers both summaries: 3 pairs under intent to treat, 2 completed
    assert rows[("itt", "dice")]["n_pairs"] == 3 and rows[("completed", "dice")]["n_pairs"] == 2
    assert rows[("itt", "dice")]["diff_vs_baseline"] == pytest.approx((0.02 + 0.02 - 0.40) / 3)
    assert result["success"] == {"ce": 1.0, "dice": pytest.approx(2 / 3), "topo": pytest.approx(2 / 3)}
    md = comparison_markdown(result)
    assert "Intent to treat" in md and "67%" in md and "Measured on the `test` split." in md


def test_mixing_code_is_refused_unless_allowed_and_threads_are_shown_not_refused(tmp_path):
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    _write(base, "ce", 0, "done", 0.5, 0.1)
    _write(base, "dice", 0, "done", 0.6, 0.1, code="b" * 64)
    with pytest.raises(ComparisonError, match="different code.*--retrain-stale.*--allow-mixed"):
        summarize_comparison(base, ["ce", "dice"], [0])
    out = base.group_dir / "compare--ce--dice"
    assert not (out / "compare.csv").exists()  # refused before anything is written
    result = summarize_comparison(base, ["ce", "dice"], [0], allow_mixed=True)
    assert result["provenance"]["mixed"] and "MIXED CODE" in (out / "compare.md").read_text()
    assert "MIXED CODE" in (out / "compare.tex").read_text()
    # one code, two thread counts: pooled, and both counts are shown
    other = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path / "t"))
    _write(other, "ce", 0, "done", 0.5, 0.1, threads=1)
    _write(other, "dice", 0, "done", 0.6, 0.1, threads=2)
    result = summarize_comparison(other, ["ce", "dice"], [0])
    assert not result["provenance"]["mixed"]
    assert sorted(c["threads"] for c in result["provenance"]["combinations"]) == ["1", "2"]
    md = (other.group_dir / "compare--ce--dice" / "compare.md").read_text()
    assert "MIXED" not in md and "Ran with 1 thread(s) (1 trials); 2 thread(s) (1 trials)" in md


def test_a_trial_is_not_resumed_by_other_code(tmp_path, capture):
    cfg = _seg(tmp_path)
    run_trial(cfg, capture, stop_after_epoch=1)
    info = json.loads((cfg.trial_dir / "trial.json").read_text())
    info["code"]["source_sha256"] = "0" * 64
    (cfg.trial_dir / "trial.json").write_text(json.dumps(info))
    with pytest.raises(TrialError, match="started by other code .*never resumed by different code"):
        run_trial(cfg, capture)
    # an edited plugin is other code too
    info["code"]["source_sha256"] = json.loads(json.dumps(code_provenance()))["source_sha256"]
    info["code"]["plugins_sha256"] = "f" * 64
    (cfg.trial_dir / "trial.json").write_text(json.dumps(info))
    with pytest.raises(TrialError, match="plugins ffffffff"):
        run_trial(cfg, capture)


def test_an_older_summary_schema_is_refused_with_one_line(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"status": "done", "metrics": {"miou": 0.5}}))
    with pytest.raises(ResultsFileError, match="schema 1.*reads schemas 2 and 3") as info:
        read_summary(path)
    assert "\n" not in str(info.value)


def test_source_hash_follows_every_source_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.toml").write_text("k = 1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    h = source_sha256(tmp_path)
    (tmp_path / "notes.txt").write_text("still ignored")
    assert source_sha256(tmp_path) == h
    (tmp_path / "sub" / "b.toml").write_text("k = 2\n")
    assert source_sha256(tmp_path) != h
    prov = code_provenance()
    assert len(prov["source_sha256"]) == 64 and set(prov) == {"commit", "dirty", "source_sha256", "plugins_sha256"}


@pytest.mark.parametrize("mean, ci, low, high, text", [
    (0.9, 0.05, 0.0, 1.0, "0.9 ± 0.05"),
    (0.9, 0.2, 0.0, 1.0, "0.9 [0.7, 1]"),  # a rate's interval stops at 1
    (0.1, 0.3, 0.0, 1.0, "0.1 [0, 0.4]"),
    (5.0, 9.0, None, None, "5 ± 9"),  # unbounded (KID): shown as computed
])
def test_intervals_stop_at_the_bounds_of_the_quantity(mean, ci, low, high, text):
    assert interval_text(mean, ci, low, high) == text
