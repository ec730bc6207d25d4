"""A whole task from outside cvloss: the test package ``tests/plugins/cvloss_depth`` (a toy
depth regression: its task, embedded dataset and report view) declared by entry points in
its ``*.dist-info``, found once its folder is on ``sys.path``, with no file of cvloss
naming it. ``losses list``, a smoke ``compare`` and ``report`` run it like a built-in."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cvloss
from cvloss.cli import app
from cvloss.data import registry as data_registry
from cvloss.task_registry import TASKS, VIEWS

PLUGIN = Path(__file__).parent / "plugins" / "cvloss_depth"
runner = CliRunner()


@pytest.fixture
def depth_plugin(monkeypatch):
    """The plugin's folder on ``sys.path`` for one test; afterwards its modules and the
    dataset its import registered are gone again (other tests see the built-ins only)."""
    assert "depth" not in TASKS and "depth-synth" not in data_registry.load_catalog()
    monkeypatch.syspath_prepend(str(PLUGIN))
    yield
    for name in [m for m in sys.modules if m == "cvloss_depth" or m.startswith("cvloss_depth.")]:
        del sys.modules[name]
    data_registry.DATASETS._entries.pop("depth-synth", None)
    data_registry._REGISTERED.pop("depth-synth", None)


def test_no_file_of_cvloss_names_the_plugin():
    names = ("cvloss_depth", "depth-synth", "DepthTask", "DEPTH_VIEW")
    hits = [f"{p.relative_to(Path(cvloss.__file__).parent)}: {n}" for p in Path(cvloss.__file__).parent.rglob("*")
            if p.is_file() and p.suffix in (".py", ".toml") for n in names if n in p.read_text(encoding="utf-8")]
    assert hits == []


def test_the_entry_points_add_task_dataset_and_view(depth_plugin):
    assert TASKS.names()[-1] == "depth" and "depth" in VIEWS
    info = data_registry.get_dataset(data_registry.default_dataset("depth"), task="depth")
    assert (info.name, info.tasks, info.embedded) == ("depth-synth", ("depth",), True)
    from cvloss.report.views import view_for

    assert view_for("depth").sample_titles == {"input": "image", "truth": "true depth"}


def test_losses_list_for_depth_is_every_image_loss(depth_plugin):
    result = runner.invoke(app, ["losses", "list", "--task", "depth"])
    assert result.exit_code == 0, result.output
    names = {line.split()[0] for line in result.output.splitlines()[3:] if line.strip()}
    # the one slot takes kind "image": sr's image losses and style's (none is excluded)
    assert names == {"l1", "mse", "charbonnier", "ssim", "perceptual", "content", "style", "texture", "tv"}


def test_compare_then_report(depth_plugin, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", "--task", "depth", "--losses", "l1,mse", "--budget", "smoke",
                                 "--seeds", "1", "--threads", "1", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    group = out / "depth" / "depth-synth" / "smoke"
    rows = list(csv.DictReader(open(group / "compare--l1--mse" / "compare.csv")))
    metrics = {r["metric"] for r in rows}
    assert {"abs_rel", "rmse", "delta1"} <= metrics
    trained = [r for r in rows if r["metric"] == "abs_rel" and r["analysis"] == "itt"]
    assert [r["loss"] for r in trained] == ["l1", "mse"] and all(r["n"] == "1" for r in trained)
    assert {r["loss"] for r in rows if r["analysis"] == "reference"} == {"mean depth", "untrained model"}
    delta1 = [float(r["mean"]) for r in rows if r["metric"] == "delta1"]
    assert delta1 and all(0 <= v <= 1 for v in delta1)
    summary = json.loads((group / "l1" / "seed0" / "summary.json").read_text())
    assert summary["status"] == "done"
    # trained beats untrained on the primary metric (lower is better)
    assert summary["metrics"]["abs_rel"] < summary["untrained"]["abs_rel"]

    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    text = (out / "REPORT.md").read_text()
    assert "depth · depth-synth" in text and "samples.png" in text
    assert (out / "report.html").stat().st_size > 0
