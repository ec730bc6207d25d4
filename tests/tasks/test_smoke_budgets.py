"""Every task's ``smoke`` budget, as shipped (no overrides), with its first reference loss
(the first spec of its comparison in the reference study, ``results/study.toml``):
writes every output and trains enough to show -- the primary metric, as the tables print
it (4 significant digits), differs from the untrained model's; sr's also from bicubic (its
untrained model *is* bicubic: the residual starts at zero)."""
from __future__ import annotations

import pytest

from cvloss.data.registry import default_dataset
from cvloss.report.text import fmt
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import run_trial
from cvloss.tasks import get_task_class

OUTPUTS = {"trial.json", "untrained.json", "metrics.csv", "samples.png", "samples.npz", "model.pt", "summary.json"}
# the first spec of each task's reference comparison (results/study.toml), as it reads there
FIRST_SPEC = {"seg": "ce", "sr": "l1", "style": "content+1000*style+0.01*tv", "embed": "triplet(mining=all)",
              "translate": "2*lsgan+cycle+identity", "gan": "ns"}


def test_the_first_specs_are_the_reference_studys():
    from pathlib import Path

    from cvloss.study.schema import read_study

    study = read_study(Path(__file__).resolve().parents[2] / "results" / "study.toml")
    assert {c.task: c.losses[0] for c in reversed(study.comparisons)} == FIRST_SPEC


@pytest.mark.parametrize("task", ["seg", "sr", "style", "embed", "translate", "gan"])
def test_smoke_writes_every_output_and_moves_the_model(tmp_path, task):
    cls = get_task_class(task)
    cfg = TrialConfig(task=task, loss=FIRST_SPEC[task], dataset=default_dataset(task), out=str(tmp_path),
                      feature_weights="random")
    summary = run_trial(cfg)
    # smoke is seconds of training: its trials may end degenerate (worse than the trivial answer)
    assert summary["status"] in ("done", "collapsed", "degenerate"), summary
    items = {"test_items.json"} if task in ("sr", "style") else set()  # few test items: per-item metrics
    if task == "embed":  # its ROC and PCA plots' arrays (Task.report_arrays); the untrained ones merged in
        items.add("report_data.npz")
    assert {p.name for p in cfg.trial_dir.iterdir()} == OUTPUTS | items
    key = cls.spec.primary
    trained, untrained = fmt(summary["metrics"][key]), fmt(summary["untrained"][key])
    assert trained != untrained, (key, trained)
    if task == "sr":
        bicubic = fmt(summary["reference"]["bicubic"][key])
        assert untrained == bicubic and float(trained) > float(bicubic), (trained, bicubic)
