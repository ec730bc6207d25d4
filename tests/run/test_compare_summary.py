"""Aggregation of finished trials into a comparison, from hand-written summaries."""
import json
from dataclasses import replace

import pytest

from cvloss.run.compare import summarize_comparison
from cvloss.run.config import TrialConfig


def _write(base, loss, seed, summary):
    d = replace(base, loss=loss, seed=seed).trial_dir
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps(summary))


def test_means_paired_differences_references_and_statuses(tmp_path):
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    ref = lambda v: {"reference": {"bicubic": {"miou": v}}, "at_init": {"miou": 0.1 + v}}
    _write(base, "ce", 0, {"status": "done", "metrics": {"miou": 0.5}, **ref(0.2)})
    _write(base, "ce", 1, {"status": "done", "metrics": {"miou": 0.7}, **ref(0.4)})
    _write(base, "dice", 0, {"status": "done", "metrics": {"miou": 0.6}, **ref(0.2)})
    _write(base, "dice", 1, {"status": "diverged", "metrics": {}})
    result = summarize_comparison(base, ["ce", "dice"], [0, 1])
    rows = {(r["loss"], r["metric"]): r for r in result["rows"]}
    assert rows[("ce", "miou")]["mean"] == pytest.approx(0.6) and rows[("ce", "miou")]["n"] == 2
    assert rows[("dice", "miou")]["n"] == 1 and rows[("dice", "miou")]["diverged"] == 1
    assert rows[("dice", "miou")]["diff_vs_baseline"] == pytest.approx(0.1)  # paired on seed 0 only
    assert rows[("dice", "miou")]["n_pairs"] == 1
    # one value per seed for references, however many losses report them
    assert rows[("bicubic", "miou")]["n"] == 2 and rows[("bicubic", "miou")]["mean"] == pytest.approx(0.3)
    assert rows[("untrained (epoch 0)", "miou")]["n"] == 2
    assert result["status"] == {"ce": ["done", "done"], "dice": ["done", "diverged"]}
    assert (tmp_path / "seg" / "synth-pets" / "smoke" / "compare--ce--dice" / "compare.csv").exists()
