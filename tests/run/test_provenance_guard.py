"""Provenance guards without blocking: a comparison refuses, before any training, to reuse
trials that other code made (or moves them aside and retrains them with --retrain-stale);
a report puts comparisons of different code and thread counts side by side, each with its
provenance; a comparison that pooled mixed code says so in every output."""
import io
import json
from dataclasses import replace

import pytest
import torch

from cvloss.io import SUMMARY_SCHEMA
from cvloss.report.console import print_comparison
from cvloss.report.html import write_reports
from cvloss.run.compare import ComparisonError, run_comparison, summarize_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.provenance import code_key, code_provenance, current_code_key, plugins_hash


def _tiny(tmp_path, **kw):
    return TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path), device="cpu",
                       overrides={"epochs": 1, "n_train": 8, "n_val": 4}, **kw)


def _fake_trial(base, loss, seed, miou=0.5, source="b" * 64, threads=1, device="cpu:x86_64", done=True):
    """A trial folder as another version of cvloss would leave it (``source`` its hash)."""
    d = replace(base, loss=loss, seed=seed).trial_dir
    d.mkdir(parents=True)
    if done:
        (d / "summary.json").write_text(json.dumps({
            "schema": SUMMARY_SCHEMA, "status": "done", "metrics": {"miou": miou}, "untrained": {"miou": 0.1},
            "train_time_s": 1.0}))
    (d / "trial.json").write_text(json.dumps({
        "code": {"commit": "c0ffee", "dirty": False, "source_sha256": source, "plugins_sha256": None},
        "versions": {"torch": torch.__version__}, "threads": threads, "device": device,
        "config": {"loss": loss}, "identity": replace(base, loss=loss, seed=seed).identity(), "feature_weights": None}))
    return d


def test_a_compare_that_would_reuse_trials_of_other_code_is_refused_before_training(tmp_path, capture):
    base = _tiny(tmp_path)
    old = _fake_trial(base, "ce", 0)
    unfinished = _fake_trial(base, "ce", 1, done=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ComparisonError) as err:
        run_comparison(base, ["ce", "dice"], [0, 1], capture)
    line = str(err.value)
    assert "\n" not in line and "2 trial folder(s)" in line and str(old) in line and str(unfinished) in line
    assert "source bbbbbbbbbbbb" in line and "--out" in line and "--retrain-stale" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no new trial folder
    assert not any(l.startswith("START") for l in capture.lines)


def test_retrain_stale_moves_the_old_trials_aside_and_retrains_them(tmp_path, capture):
    base = _tiny(tmp_path)
    old = _fake_trial(base, "ce", 0, miou=0.987)
    (old.parent / "seed0.stale-1").mkdir()  # an earlier move: the next number is taken
    result = run_comparison(base, ["ce"], [0], capture, retrain_stale=True)
    moved = old.parent / "seed0.stale-2"
    assert json.loads((moved / "summary.json").read_text())["metrics"]["miou"] == 0.987  # kept, as it was
    info = json.loads((old / "trial.json").read_text())
    assert code_key(info) == current_code_key("ce")  # retrained by this code
    assert result["provenance"]["mixed"] is False
    assert [r["mean"] for r in result["rows"] if r["metric"] == "miou" and r["loss"] == "ce"][0] != 0.987
    assert any("moved aside" in l and "seed0.stale-2" in l for l in capture.lines)


def test_allow_mixed_pools_finished_trials_of_other_code_and_says_so_everywhere(tmp_path, capture):
    base = _tiny(tmp_path)
    _fake_trial(base, "ce", 0)
    result = run_comparison(base, ["ce", "dice"], [0], capture, allow_mixed=True)
    assert result["provenance"]["mixed"] is True
    cmp_dir = base.group_dir / "compare--ce--dice"
    assert "MIXED CODE" in (cmp_dir / "compare.md").read_text()
    assert "MIXED CODE" in (cmp_dir / "compare.tex").read_text()
    paths = write_reports(tmp_path, replot=False)
    for kind in ("md", "tex", "html"):
        assert "MIXED CODE" in paths[kind].read_text(), kind
    stdout = io.StringIO()
    print_comparison(result, "seg", stdout)
    assert "⚠ MIXED CODE" in stdout.getvalue()


def test_a_report_puts_comparisons_of_other_code_and_threads_side_by_side(tmp_path):
    one = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    two = replace(one, overrides={"epochs": 1})  # another budget folder: another comparison
    for base, source, threads in ((one, "a" * 64, 1), (two, "c" * 64, 2)):
        for loss, miou in (("ce", 0.5), ("dice", 0.6)):
            _fake_trial(base, loss, 0, miou=miou, source=source, threads=threads)
        summarize_comparison(base, ["ce", "dice"], [0])
    paths = write_reports(tmp_path, replot=False)
    md = paths["md"].read_text()
    table = md.split("## Provenance", 1)[1]
    assert "| comparison | commit | source | torch | threads | device | mixed |" in table
    rows = [l for l in table.splitlines() if l.startswith("| `seg/")]
    assert len(rows) == 2
    assert "`aaaaaaaaaaaa`" in rows[0] and "| 1 |" in rows[0] and "`cccccccccccc`" in rows[1] and "| 2 |" in rows[1]
    assert "MIXED" not in md
    html = paths["html"].read_text()
    assert "aaaaaaaaaaaa" in html and "cccccccccccc" in html


def test_plugin_hashes_follow_the_spec_that_uses_them():
    records = [{"module": "p.py", "sha256": "1" * 64, "losses": ["softiou"]},
               {"module": "q.py", "sha256": "2" * 64, "losses": ["other"]}]
    base_code = code_provenance("ce")
    assert base_code["plugins_sha256"] is None
    # a trial.json written while every loaded plugin was hashed: a built-in spec reads as plugin-free
    old = {"code": {"source_sha256": base_code["source_sha256"], "plugins_sha256": plugins_hash(records)},
           "plugins": records, "config": {"loss": "ce"}, "versions": {"torch": torch.__version__}}
    assert code_key(old) == current_code_key("ce")
    old["config"]["loss"] = "ce+0.5*softiou"
    assert code_key(old)[0].endswith("+plugins " + plugins_hash(records[:1])[:8])
