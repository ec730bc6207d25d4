"""Task ``seg``: the plan routes seg terms and refuses others, per-class IoU metrics are
declared (not mutated per instance), batches are flipped with their masks, a step trains,
evaluation gives every metric, and the wce border map is bound once per trial."""
from __future__ import annotations

import pytest
import torch

from cvloss.errors import UsageError
from cvloss.losses import build_loss
from cvloss.tasks.base import evaluating, metric_names
from cvloss.tasks.seg import SegTask

TINY = {"n_train": 16, "n_val": 8, "image_size": 32, "width": 4}


@pytest.fixture(scope="module")
def task():
    t = SegTask("synth-pets", SegTask.spec.budgets["smoke"] | TINY, torch.device("cpu"))
    t.load_data()
    return t


def test_plan_routes_seg_terms_and_refuses_the_rest(task):
    plan = task.plan(build_loss("ce+0.5*dice", task="seg"))
    assert [t.name for _, t in plan["seg"]] == ["ce", "dice"] and set(plan.optimizers) == {"model"}
    with pytest.raises(UsageError, match="cannot route term"):
        task.plan(build_loss("l1"))


def test_per_class_iou_is_declared_once(task):
    names = metric_names(task)
    assert names[: len(SegTask.spec.metrics)] == list(SegTask.spec.metrics)
    assert names[len(SegTask.spec.metrics):] == [f"iou_{c}" for c in task.class_names]
    assert SegTask.spec.direction("iou_pet") is True and SegTask.spec.direction("betti0_err") is False
    assert "iou_pet" not in SegTask.spec.metrics  # the class is never mutated per instance


def test_batches_flip_images_with_their_masks(task):
    batches = list(task.train_batches(torch.Generator().manual_seed(0)))
    assert len(batches) == task.num_batches() == 2
    for x, y, (idx, fh, fv) in batches:
        raw_x, raw_y = task.train_x[idx], task.train_y[idx]
        for i in range(len(idx)):
            def undo(t):
                t = t.flip(-1) if fh[i] else t
                return t.flip(-2) if fv[i] else t
            assert torch.equal(undo(x[i]), raw_x[i]) and torch.equal(undo(y[i]), raw_y[i])


@pytest.mark.parametrize("spec", ["ce", "wce"])
def test_a_step_trains_and_evaluation_gives_every_metric(task, spec):
    plan = task.plan(build_loss(spec, task="seg"))
    torch.manual_seed(0)
    model = task.build_model()
    opts = plan.build_optimizers(model)
    before = [p.detach().clone() for p in model.parameters()]
    out = task.train_step(model, plan, opts, next(task.train_batches(torch.Generator().manual_seed(0))))
    assert set(out) == {"loss"} and torch.isfinite(out["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert bool(task._wce) == (spec == "wce")  # bound once per trial by plan()
    with evaluating(model):
        m = task.evaluate(model)
        rows = task.sample_rows(model)
    assert list(m) == [k for k in metric_names(task) if k in m] and set(metric_names(task)) <= set(m)
    assert 0 <= m["miou"] <= 1 and rows["pred"].shape == (4, 32, 32, 3)


def test_class_weights_of_the_wrong_count_are_refused_before_the_trial_is_written(tmp_path):
    from cvloss.errors import UsageError
    from cvloss.run.config import TrialConfig
    from cvloss.run.trainer import run_trial

    cfg = TrialConfig(task="seg", loss="ce(weight=[1,2])", dataset="synth-pets", budget="smoke", out=str(tmp_path),
                      overrides={"n_train": 8, "n_val": 4})
    with pytest.raises(UsageError, match=r"has 2 entries but synth-pets has 3 classes"):
        run_trial(cfg)
    assert not (cfg.trial_dir / "trial.json").exists()
