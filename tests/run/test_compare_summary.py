"""Aggregation of finished trials into a comparison, from hand-written summaries."""
import json
import re
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
    ref = lambda v: {"reference": {"bicubic": {"miou": v}}, "untrained": {"miou": 0.1 + v}}
    _write(base, "ce", 0, {"schema": 2, "status": "done", "metrics": {"miou": 0.5}, **ref(0.2)})
    _write(base, "ce", 1, {"schema": 2, "status": "done", "metrics": {"miou": 0.7}, **ref(0.4)})
    _write(base, "dice", 0, {"schema": 2, "status": "done", "metrics": {"miou": 0.6}, **ref(0.2)})
    _write(base, "dice", 1, {"schema": 2, "status": "diverged", "metrics": {}})
    result = summarize_comparison(base, ["ce", "dice"], [0, 1])
    rows = {(r["loss"], r["metric"]): r for r in result["rows"] if r.get("analysis") != "itt"}
    assert rows[("ce", "miou")]["mean"] == pytest.approx(0.6) and rows[("ce", "miou")]["n"] == 2
    assert rows[("dice", "miou")]["n"] == 1 and rows[("dice", "miou")]["diverged"] == 1
    assert rows[("dice", "miou")]["diff_vs_baseline"] == pytest.approx(0.1)  # paired on seed 0 only
    assert rows[("dice", "miou")]["n_pairs"] == 1
    # one value per seed for references, however many losses report them
    assert rows[("bicubic", "miou")]["n"] == 2 and rows[("bicubic", "miou")]["mean"] == pytest.approx(0.3)
    assert rows[("untrained model", "miou")]["n"] == 2
    assert result["status"] == {"ce": ["done", "done"], "dice": ["done", "diverged"]}
    assert (tmp_path / "seg" / "synth-pets" / "smoke" / "compare--ce--dice" / "compare.csv").exists()


def test_seed_set_is_part_of_a_comparisons_identity(tmp_path, capture):
    """Same seeds redo it, a superset extends it (said on stderr), a subset or another set
    is refused with one line naming both, before any training, and nothing is replaced."""
    from typer.testing import CliRunner

    from cvloss.cli import app
    from cvloss.run.compare import ComparisonError, comparison_dir, run_comparison

    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    for loss in ("ce", "dice"):
        for seed in (0, 1, 2):
            _write(base, loss, seed, {"schema": 2, "status": "done", "metrics": {"miou": 0.5 + seed / 10}})
    cmp_json = comparison_dir(base, ["ce", "dice"]) / "compare.json"
    run_comparison(base, ["ce", "dice"], [0, 1], capture)
    assert json.loads(cmp_json.read_text())["seeds"] == [0, 1]
    before = cmp_json.read_text()
    for seeds in ([0], [1, 2]):
        with pytest.raises(ComparisonError, match=re.escape(f"holds a comparison over seeds [0, 1]; --seeds {seeds} would "
                                                           "replace it (give a superset of [0, 1] to extend it")):
            run_comparison(base, ["ce", "dice"], list(seeds), capture)
    result = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "1",
                                      "--out", str(tmp_path), "--quiet"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "seeds [0, 1]; --seeds [0] would replace it" in lines[0]
    assert cmp_json.read_text() == before
    run_comparison(base, ["ce", "dice"], [0, 1], capture)  # the same set: redone, silently
    assert not [l for l in capture.lines if "extending" in l]
    result = run_comparison(base, ["ce", "dice"], [2, 0, 1], capture)
    assert [l for l in capture.lines if "extending" in l] == [
        f"extending the comparison in {cmp_json.parent} from seeds [0, 1] to [0, 1, 2]"]
    assert json.loads(cmp_json.read_text())["seeds"] == [2, 0, 1]
    assert {r["n"] for r in result["rows"]} == {3}
