"""Every task's ``smoke`` budget, as shipped (no overrides), with its first reference loss:
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


@pytest.mark.parametrize("task", ["seg", "sr", "style", "embed", "translate", "gan"])
def test_smoke_writes_every_output_and_moves_the_model(tmp_path, task):
    cls = get_task_class(task)
    cfg = TrialConfig(task=task, loss=cls.reference_specs[0], dataset=default_dataset(task), out=str(tmp_path),
                      feature_weights="random")
    summary = run_trial(cfg)
    # smoke is seconds of training: its trials may end degenerate (worse than the trivial answer)
    assert summary["status"] in ("done", "collapsed", "degenerate"), summary
    assert {p.name for p in cfg.trial_dir.iterdir()} == OUTPUTS
    key = cls.primary_metric
    trained, untrained = fmt(summary["metrics"][key]), fmt(summary["untrained"][key])
    assert trained != untrained, (key, trained)
    if task == "sr":
        bicubic = fmt(summary["reference"]["bicubic"][key])
        assert untrained == bicubic and float(trained) > float(bicubic), (trained, bicubic)
