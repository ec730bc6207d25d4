"""What a finished trial keeps: ``model.pt`` (the final weights, weights only) and no resume
checkpoints, unless ``--keep-checkpoints`` -- which changes neither the results nor the
trial's identity or folder. A diverged trial keeps neither."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import CHECKPOINT, MODEL, PREV_CHECKPOINT, SUMMARY, TRIAL, run_trial
from cvloss.tasks import get_task_class
from cvloss.tasks.base import evaluating
from cvloss.tasks.seg import SegTask

CHEAP = {"epochs": 2, "n_train": 8, "n_val": 4}  # 2 epochs: a previous checkpoint exists while it runs
BASE = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=0, overrides=CHEAP)


def _checkpoints(trial_dir) -> list[str]:
    return sorted(p.name for p in trial_dir.glob("checkpoint*.pt"))


@pytest.fixture(scope="module")
def kept_and_dropped(tmp_path_factory):
    """The same trial twice: by default, and with ``keep_checkpoints``."""
    out = tmp_path_factory.mktemp("weights")
    dropped = replace(BASE, out=str(out / "dropped"))
    kept = replace(BASE, out=str(out / "kept"), keep_checkpoints=True)
    return (dropped, run_trial(dropped)), (kept, run_trial(kept))


def test_a_finished_trial_keeps_model_pt_and_no_checkpoint(kept_and_dropped):
    (cfg, summary), _ = kept_and_dropped
    # finished: a 2-epoch net on 8 images may end degenerate (at the majority class's mIoU), still with its weights
    assert summary["status"] in ("done", "degenerate") and (cfg.trial_dir / SUMMARY).exists()
    assert (cfg.trial_dir / MODEL).is_file()
    assert _checkpoints(cfg.trial_dir) == []


def test_keep_checkpoints_keeps_both_and_changes_no_result(kept_and_dropped):
    (dropped, a), (kept, b) = kept_and_dropped
    assert _checkpoints(kept.trial_dir) == sorted([CHECKPOINT, PREV_CHECKPOINT]) and (kept.trial_dir / MODEL).is_file()
    assert a["metrics"] == b["metrics"]
    # not part of what the trial is: the same identity, the same folder under its --out
    assert dropped.identity() == kept.identity()
    assert kept.trial_dir.relative_to(kept.out) == dropped.trial_dir.relative_to(dropped.out)
    info = json.loads((kept.trial_dir / TRIAL).read_text())
    assert info["config"]["keep_checkpoints"] is True and "keep_checkpoints" not in info["identity"]


def test_model_pt_is_the_last_checkpoints_model(kept_and_dropped):
    _, (kept, _) = kept_and_dropped
    weights = torch.load(kept.trial_dir / MODEL, weights_only=True)
    last = torch.load(kept.trial_dir / CHECKPOINT, weights_only=True)
    assert last["epoch"] == 2 and weights.keys() == last["model"].keys()
    for k, v in weights.items():
        assert v.device.type == "cpu" and torch.equal(v, last["model"][k]), k


def test_model_pt_loads_weights_only_into_the_task_model_and_scores_what_the_summary_says(kept_and_dropped):
    (cfg, summary), _ = kept_and_dropped
    task = get_task_class("seg")(cfg.dataset, cfg.params, torch.device("cpu"), None)
    assert isinstance(task, SegTask)
    task.load_data()
    model = task.build_model()
    model.load_state_dict(torch.load(cfg.trial_dir / MODEL, weights_only=True))  # strict: every key fits
    with evaluating(model):
        test = task.evaluate(model, "test")
    assert test["miou"] == pytest.approx(summary["metrics"]["miou"], rel=1e-6)
    assert test["miou"] != pytest.approx(summary["untrained"]["miou"], rel=1e-6)  # trained weights, not init


def test_a_diverged_trial_keeps_no_checkpoint_and_no_model(tmp_path, monkeypatch):
    """A NaN loss in epoch 2 (after epoch 1's checkpoint): diverged, nothing to resume."""
    step = SegTask.train_step
    calls = []

    def blow_up(self, model, plan, optimizers, batch):
        out = step(self, model, plan, optimizers, batch)
        calls.append(1)
        return {**out, "loss": torch.tensor(float("nan"))} if len(calls) > 2 else out

    monkeypatch.setattr(SegTask, "train_step", blow_up)
    cfg = replace(BASE, out=str(tmp_path), overrides={**CHEAP, "batch_size": 4})  # 2 steps per epoch
    summary = run_trial(cfg)
    assert summary["status"] == "diverged" and summary["diverged_at"]["epoch"] == 2
    assert _checkpoints(cfg.trial_dir) == [] and not (cfg.trial_dir / MODEL).exists()


def test_cli_keep_checkpoints_then_a_plain_rerun_skips_the_same_trial(tmp_path):
    """``--keep-checkpoints`` on train: both checkpoints stay; the same command without it
    finds the same trial done (same folder, same identity) and deletes nothing."""
    args = ["train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), "--set", "epochs=2",
            "--set", "n_train=8", "--set", "n_val=4"]
    first = CliRunner().invoke(app, [*args, "--quiet", "--keep-checkpoints"])
    assert first.exit_code == 0, first.output
    trial = tmp_path / "seg" / "synth-pets" / "smoke+epochs=2+n_train=8+n_val=4" / "ce" / "seed0"
    assert f"results: {trial}" in first.output
    assert _checkpoints(trial) == sorted([CHECKPOINT, PREV_CHECKPOINT]) and (trial / MODEL).is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "[seg/synth-pets/ce/seed0] already done, skipped" in again.output
    assert _checkpoints(trial) == sorted([CHECKPOINT, PREV_CHECKPOINT])
