"""The trainer's half of the training contract, through a small task defined here (one
file, registered for the test only): a smoke compare runs through it; the trainer owns
eval mode and no_grad, the learning-rate schedule, every scalar a step returns, threads,
divergence on any scalar, exact resume and the refusal of an old checkpoint layout."""
from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch
from torch import nn

from cvloss import task_registry
from cvloss.errors import CvlossError
from cvloss.run.compare import run_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import CHECKPOINT, run_trial
from cvloss.tasks.base import Optim, Task
from cvloss.tasks.spec import Metric, TaskSpec


class ToyTask(Task):
    """Fit y = 2x + 1 per pixel with a 1x1 convolution; records what the trainer does."""

    spec = TaskSpec(name="toy", metrics={"mse": Metric(higher_is_better=False)}, primary="mse",
                    slots={"image": ("image",)}, budgets={"smoke": dict(epochs=3, batch_size=4, lr=0.1, cpu_threads=1)})
    seen: dict[str, list] = {}
    blow_up = 1.0  # a test sets inf: a non-finite scalar besides "loss"

    def load_data(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(16, 1, 4, 4, generator=g)
        self.y = (2 * self.x + 1) / 3  # in [1/3, 1]
        ToyTask.seen = {"lr": [], "eval": [], "threads": []}

    def build_model(self) -> nn.Module:
        return nn.Conv2d(1, 1, 1)

    def optimizers(self, slots) -> dict[str, Optim]:
        return {"model": Optim(nn.Module.parameters, "sgd", {"lr": self.params["lr"]})}

    def lr_factor(self, step: int) -> float:
        return 0.5 ** (step // self.num_batches())  # halved every epoch

    def num_batches(self) -> int:
        return len(self.x) // self.params["batch_size"]

    def train_batches(self, generator):
        order = torch.randperm(len(self.x), generator=generator)
        for b in range(self.num_batches()):
            idx = order[b * 4 : (b + 1) * 4]
            yield self.x[idx], self.y[idx]

    def train_step(self, model, plan, optimizers, batch):
        x, y = batch
        opt = optimizers["model"]
        ToyTask.seen["lr"].append(opt.param_groups[0]["lr"])
        ToyTask.seen["threads"].append(torch.get_num_threads())
        opt.zero_grad()
        value = plan["image"](model(x), y)
        value.backward()
        opt.step()
        return {"loss": value.detach(), "weight": model.weight.detach().sum() * self.blow_up}

    def evaluate(self, model, split="val"):
        ToyTask.seen["eval"].append((model.training, torch.is_grad_enabled()))
        return {"mse": float((model(self.x) - self.y).square().mean())}

    def sample_rows(self, model):
        img = (model(self.x[:2]).clamp(0, 1).expand(-1, 3, -1, -1).permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()
        return {"input": img, "truth": img, "pred": img}


@pytest.fixture
def toy(monkeypatch):
    """``toy`` in the task registry, for the test only; its image slot takes mse by kind."""
    monkeypatch.setitem(task_registry.TASKS._entries, "toy", ToyTask)
    return TrialConfig(task="toy", loss="mse", dataset="toy-data", budget="smoke", seed=0)


def _cfg(toy, tmp_path, **over):
    return replace(toy, out=str(tmp_path), overrides=over)


def _rows(cfg):
    with open(cfg.trial_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_a_smoke_compare_runs_through_a_task_defined_in_a_test(toy, tmp_path):
    result = run_comparison(_cfg(toy, tmp_path), ["mse"], [0, 1])
    rows = [r for r in result["rows"] if r["loss"] == "mse" and r["metric"] == "mse" and r["analysis"] == "completed"]
    assert len(rows) == 1 and rows[0]["n"] == 2 and rows[0]["higher_is_better"] is False
    assert rows[0]["mean"] < 0.1  # it learns
    assert (tmp_path / "toy" / "toy-data").is_dir()


def test_eval_mode_no_grad_schedule_threads_and_every_scalar(toy, tmp_path):
    cfg = _cfg(toy, tmp_path)
    torch.set_num_threads(2)
    summary = run_trial(cfg)
    assert summary["status"] == "done"
    assert ToyTask.seen["eval"] and all(e == (False, False) for e in ToyTask.seen["eval"])  # eval mode, no grad
    assert ToyTask.seen["lr"] == [0.1] * 4 + [0.05] * 4 + [0.025] * 4  # the task's lr_factor, per step
    assert set(ToyTask.seen["threads"]) == {1} and torch.get_num_threads() == 2  # cpu_threads for the trial only
    rows = _rows(cfg)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and {"train_loss", "train_weight"} <= set(rows[0])


def test_a_non_finite_scalar_other_than_loss_is_a_divergence(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(ToyTask, "blow_up", float("inf"))
    summary = run_trial(_cfg(toy, tmp_path))
    assert summary["status"] == "diverged" and summary["diverged_at"]["weight"] == "inf"


def test_resume_is_exact_and_the_step_is_checkpointed(toy, tmp_path):
    a, b = _cfg(toy, tmp_path / "a"), _cfg(toy, tmp_path / "b")
    run_trial(a)
    assert run_trial(b, stop_after_epoch=1)["status"] == "interrupted"
    assert torch.load(b.trial_dir / CHECKPOINT, weights_only=True)["step"] == 4
    run_trial(b)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in rows]  # noqa: E731
    assert strip(_rows(a)) == strip(_rows(b))


def test_a_checkpoint_of_the_old_layout_is_refused_in_one_line(toy, tmp_path):
    cfg = _cfg(toy, tmp_path)
    run_trial(cfg, stop_after_epoch=1)
    path = cfg.trial_dir / CHECKPOINT
    state = torch.load(path, weights_only=True)
    del state["layout"], state["step"]  # what cvloss wrote before the one training contract
    torch.save(state, path)
    with pytest.raises(CvlossError, match="older cvloss") as err:
        run_trial(cfg)
    assert "\n" not in str(err.value) and "delete the trial folder" in str(err.value)
