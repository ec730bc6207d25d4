"""Identical replicates are marked: two seeds of a loss with the same metric vector (timing
metrics left out) and the same training curves are found by the comparison and by the
report, and the tables say so, with the unit of replication. Trials written before the
degenerate rule keep their status; the rule's numbers part flags them as a note."""
from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

from cvloss.report.markdown import load_comparisons
from cvloss.report.tables import comparison_markdown, note_lines, runs_text
from cvloss.report.trial_notes import identical_groups, trial_notes
from cvloss.run.compare import summarize_comparison
from cvloss.run.config import TrialConfig
from cvloss.tasks.style import StyleTask

LOSSES = ["content+1000*style", "content+1000*style+0.01*tv"]
INIT = {"content_loss": 0.0, "style_dist": 3e-6, "tv": 0.1}


def _trial(trial_dir: Path, style_dist: float, curve: list[float], wall: float, schema: int = 3) -> None:
    """A finished style trial: its summary and metrics.csv (as the trainer writes them)."""
    trial_dir.mkdir(parents=True)
    metrics = {"content_loss": 0.01, "style_dist": style_dist, "tv": 0.05, "evals": 20.0, "wall_s": wall}
    summary = {"schema": schema, "status": "done", "task": "style", "dataset": "skimage-photos", "metrics": metrics,
               "val_metrics": metrics, "untrained": metrics, "reference": {"content image (init)": INIT}}
    if schema == 3:
        summary.update({"degenerate": None, "degenerate_on_test": None})
    (trial_dir / "summary.json").write_text(json.dumps(summary))
    with open(trial_dir / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["epoch", "train_loss", "style_dist", "epoch_time_s", "train_time_s"])
        w.writeheader()
        for epoch, loss in enumerate(curve, 1):
            w.writerow({"epoch": epoch, "train_loss": loss, "style_dist": style_dist, "epoch_time_s": wall / 2,
                        "train_time_s": wall / 3})


def _comparison(tmp_path: Path, schema: int = 3) -> tuple[TrialConfig, dict]:
    base = TrialConfig(task="style", loss="", dataset="skimage-photos", budget="smoke", out=str(tmp_path))
    a, b = LOSSES
    # a: seeds 0 and 2 identical but for their wall times; seed 1 has seed 0's metrics
    # but another training curve (not identical)
    _trial(replace(base, loss=a, seed=0).trial_dir, 1e-6, [5.0, 4.0], 1.0, schema)
    _trial(replace(base, loss=a, seed=1).trial_dir, 1e-6, [5.0, 3.9], 1.3, schema)
    _trial(replace(base, loss=a, seed=2).trial_dir, 1e-6, [5.0, 4.0], 2.7, schema)
    for seed, dist in enumerate((1.5e-6, 2e-6, 4e-6)):  # b's seed 2 ends above its initial image's distance
        _trial(replace(base, loss=b, seed=seed).trial_dir, dist, [6.0, 5.0 - seed], 1.0, schema)
    return base, summarize_comparison(base, LOSSES, [0, 1, 2])


def test_identical_replicates_are_marked_and_the_unit_named(tmp_path):
    base, result = _comparison(tmp_path)
    a, b = LOSSES
    assert result["identical_replicates"] == {a: [[0, 2]]}
    assert runs_text(result, a) == "3/3 (1 identical)" and runs_text(result, b) == "3/3"
    md = comparison_markdown(result)
    assert f"| `{a}` | 3/3 (1 identical) ⚠ |" in md
    assert f"⚠ Identical replicates (the same metrics and training curves): `{a}` seeds {{0, 2}}." in md
    assert f"Unit of replication: {StyleTask.spec.replicate_unit}." in md
    assert identical_groups([(0, ("x",)), (1, None), (2, ("x",)), (3, None), (4, ("y",))]) == [[0, 2]]


def test_a_summary_before_the_rule_keeps_its_status_and_gets_a_note(tmp_path):
    """Schema-2 summaries (the committed study's): b's seed 2 is 'done' as written, its
    stored test numbers fail today's rule (style distance not below the initial image's):
    a ⚠ note, no change to the statuses or the success rate."""
    base, result = _comparison(tmp_path, schema=2)
    a, b = LOSSES
    assert result["status"][b] == ["done"] * 3 and result["success"][b] == 1.0
    assert result["degenerate"][b] == [None] * 3 and result["degenerate_predates"][b] == [True] * 3
    assert result["degenerate_on_test"][b] == [None, None, "style distance 4e-06 not below the initial image's 3e-06"]
    lines = note_lines(result)
    assert any(line.startswith("⚠ Degenerate by today's rule, applied to the stored test metrics of trials written "
                               "before it") and f"`{b}` seed 2 (style distance 4e-06" in line for line in lines)
    assert f"| `{b}` | 3/3 ⚠ |" in comparison_markdown(result)  # marked, still 3 of 3


def test_the_report_finds_them_in_a_comparison_written_before_the_checks(tmp_path):
    base, result = _comparison(tmp_path, schema=2)
    path = Path(result["dir"]) / "compare.json"
    old = json.loads(path.read_text())
    for key in ("degenerate", "degenerate_on_test", "degenerate_predates", "identical_replicates", "replicate_unit",
                "degenerate_rule"):
        old.pop(key)
    path.write_text(json.dumps(old))
    (loaded,) = load_comparisons(tmp_path, replot=False)
    assert loaded.identical_replicates == {LOSSES[0]: [[0, 2]]}
    assert loaded.degenerate_on_test[LOSSES[1]][2].startswith("style distance 4e-06")
    text = "\n".join(note_lines(loaded))
    assert "Identical replicates" in text and "Degenerate by today's rule" in text
    assert f"(the comparison predates the record; its seeds may have drawn otherwise): {StyleTask.spec.replicate_unit}." \
        in text  # from the task, the file lacks it
    again = trial_notes(StyleTask, loaded.trials, loaded.seeds)
    assert again["identical_replicates"] == loaded.identical_replicates
