"""Task ``sr``: model shapes per scale, aligned augmented crops from the batch generator,
loss routing (adversarial term, refusals), bicubic reference row, resume state, and
``cvloss compare`` / ``train`` end to end including the bad-input errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.losses import build_loss
from cvloss.models.sr import EDSR
from cvloss.tasks.base import evaluating
from cvloss.tasks.sr import SRTask

TINY = {"hr_size": 40, "patch": 16, "repeat": 2, "batch_size": 4, "n_feats": 4, "d_width": 4, "epochs": 1}


@pytest.fixture(scope="module")
def task():
    t = SRTask("skimage-photos", SRTask.spec.budgets["smoke"] | TINY, torch.device("cpu"))
    t.load_data()
    return t


def _fresh(task, seed=0, spec="l1"):
    plan = task.plan(build_loss(spec, task="sr"))
    torch.manual_seed(seed)
    model = task.build_model()
    return model, plan.build_optimizers(model), plan


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_model_upscales_by_its_scale(scale):
    out = EDSR(scale, n_feats=4, n_blocks=1)(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    skip = EDSR(scale, n_feats=4, n_blocks=1, global_skip="bicubic")
    x = torch.rand(1, 3, 6, 6)
    bic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    torch.testing.assert_close(skip(x), bic)  # zero-initialised tail: starts as bicubic
    with pytest.raises(ValueError, match="2, 3 or 4"):
        EDSR(5)


def test_crops_are_aligned_augmented_and_come_from_the_generator(task):
    # Replace the data by HR images made of constant s x s blocks of a known LR image:
    # then an aligned crop pair satisfies hr == nearest-upsample(lr) under every flip/rotation.
    s = task.scale
    saved = task.train_lr, task.train_hr
    g = torch.Generator().manual_seed(1)
    task.train_lr = [torch.randint(0, 256, (3, 11, 13), generator=g, dtype=torch.uint8) for _ in range(3)]
    task.train_hr = [l.repeat_interleave(s, 1).repeat_interleave(s, 2) for l in task.train_lr]
    try:
        a = list(task._data_batches(torch.Generator().manual_seed(5)))  # one data epoch (whatever the plan)
        b = list(task._data_batches(torch.Generator().manual_seed(5)))
        c = list(task._data_batches(torch.Generator().manual_seed(6)))
    finally:
        task.train_lr, task.train_hr = saved
    assert len(a) == 3 * TINY["repeat"] // TINY["batch_size"]
    lr, hr = a[0]
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16) and 0 <= lr.min() and hr.max() <= 1
    for lr, hr in a:
        assert torch.equal(hr, torch.nn.functional.interpolate(lr, scale_factor=s, mode="nearest"))
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))


def test_fewer_crops_than_a_batch_still_fill_one_batch(task):
    """3 images at repeat 1 and batch 4 (a tiny folder): one full batch, the images wrapping round."""
    saved = task.train_lr, task.train_hr, dict(task.params)
    task.train_lr, task.train_hr = task.train_lr[:3], task.train_hr[:3]
    task.params["repeat"] = 1
    try:
        (batch,) = list(task._data_batches(torch.Generator().manual_seed(0)))
    finally:
        task.train_lr, task.train_hr = saved[:2]
        task.params.clear()
        task.params.update(saved[2])
    assert batch[0].shape[0] == 4 and batch[1].shape[0] == 4


def test_plain_loss_trains_g_only_and_adversarial_trains_d(task):
    model, opts, plan = _fresh(task)
    batch = next(task.train_batches(torch.Generator().manual_seed(0)))  # [one (lr, hr)]: no critic
    assert len(batch) == 1
    d0 = [p.clone() for p in model.d.parameters()]
    out = task.train_step(model, plan, opts, batch)
    assert torch.isfinite(out["loss"]) and all(torch.equal(a, b) for a, b in zip(d0, model.d.parameters()))
    assert set(out) == {"loss"}
    model, opts, plan = _fresh(task, spec="l1+1e-3*wgan_gp")
    gp_state = task.stepper.penalty_gen.get_state()
    group = next(task.train_batches(torch.Generator().manual_seed(0)))
    assert len(group) == 5 and all(torch.equal(x, y) for x, y in zip(group[0], batch[0]))  # G's batch: l1's
    out = task.train_step(model, plan, opts, group)  # n_critic = 5: one G step, five D steps
    assert not all(torch.equal(a, b) for a, b in zip(d0, model.d.parameters()))
    assert not torch.equal(task.stepper.penalty_gen.get_state(), gp_state)  # ε from task state
    assert plan.adversarial[1].generator is task.stepper.penalty_gen
    state = task.state_dict()["stepper"]
    assert (state["batches"], state["g_updates"], state["d_updates"]) == (5, 1, 5) and float(out["d_loss"]) != 0
    assert {o.name for o in plan.optimizers.values()} == {"adam"} and SRTask.spec.budgets["full"]["optimizer"] == "equal"


def test_g_init_does_not_depend_on_the_loss(task):
    a, _, _ = _fresh(task, seed=3)
    b, _, _ = _fresh(task, seed=3, spec="l1+1e-3*ns")
    c, _, _ = _fresh(task, seed=4)
    sa, sb = a.g.state_dict(), b.g.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a.g.head.weight, c.g.head.weight)


def test_bad_loss_specs_are_refused(task):
    with pytest.raises(UsageError, match="adversarial term alone"):
        task.plan(build_loss("ns", task="sr"))
    with pytest.raises(UsageError, match="cannot route term"):
        task.plan(build_loss("cycle"))


def test_bicubic_reference_equals_scoring_the_bicubic_image(task):
    ref = task.reference_metrics("test")["bicubic"]
    assert set(ref) == set(SRTask.spec.metrics) and 15 < ref["psnr_y"] < 60 and 0 < ref["ssim"] <= 1
    # the untrained bicubic-skip model is exactly bicubic, so it scores the same
    model, _, _ = _fresh(task)
    with evaluating(model):
        got = task.evaluate(model, "test")
        rows = task.sample_rows(model)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-9, nan_ok=True)  # lpips: n/a offline
    assert set(rows) == {"input", "bicubic", "truth", "pred"} and rows["pred"].shape[0] == 4
    assert rows["pred"].dtype == np.uint8 and np.array_equal(rows["pred"], rows["bicubic"])


def _sets(d):
    return [x for k, v in d.items() for x in ("--set", f"{k}={v}")]


def test_compare_smoke_writes_every_output_with_a_bicubic_row(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--task", "sr", "--losses", "l1,l1+1e-3*ns", "--budget", "smoke",
                                      "--seeds", "1", "--out", str(tmp_path), "--quiet", "--feature-weights", "random",
                                      *_sets(TINY | {"epochs": 2})])
    assert result.exit_code == 0, result.output
    group = next((tmp_path / "sr" / "skimage-photos").iterdir())
    trial = group / "l1" / "seed0"
    assert {"trial.json", "metrics.csv", "model.pt", "samples.png", "samples.npz", "summary.json"} <= {
        p.name for p in trial.iterdir()}
    summary = json.loads((trial / "summary.json").read_text())
    # finished: a smoke trial may end below bicubic (degenerate), with every metric still
    assert summary["status"] in ("done", "degenerate") and set(summary["metrics"]) == set(SRTask.spec.metrics)
    assert "bicubic" in summary["reference"]
    gan = json.loads((group / "l1+0.001xns" / "seed0" / "summary.json").read_text())
    n = summary["generator_updates"]  # epochs x batches per epoch, the same with and without D
    assert n > 0 and (gan["generator_updates"], gan["discriminator_updates"], summary["discriminator_updates"]) == (n, n, 0)
    assert summary["optimizer"] == gan["optimizer"] == "equal"
    data = json.loads((trial / "trial.json").read_text())["data"]
    assert "feat_dist: vgg16 relu3_3, weights random(seed=0) -- NOT independent: perceptual" in data
    assert "lpips: alexnet relu1,relu2,relu3,relu4,relu5" in data and "-- independent of every sr loss" in data
    assert [r["epoch"] for r in csv.DictReader(open(trial / "metrics.csv"))] == ["1", "2"]
    cmp_dir = next(group.glob("compare--*"))
    assert {"compare.csv", "compare.md", "compare.json", "bars.png", "curves.png", "samples.png"} <= {
        p.name for p in cmp_dir.iterdir()}
    rows = list(csv.DictReader(open(cmp_dir / "compare.csv")))
    assert {r["loss"] for r in rows} == {"l1", "l1+0.001*ns", "bicubic", "untrained model"}
    assert "psnr_y" in result.output and "bicubic" in result.output


@pytest.mark.parametrize("sets, message", [
    ({"scale": 5}, "--set scale=5: expected int >= 2, <= 4"),
    ({"patch": 200}, "smaller than the training crop of 200 px"),
    ({"patch": 15}, "multiple of the scale 2"),
])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, sets, message):
    result = CliRunner().invoke(app, ["train", "--task", "sr", "--loss", "l1", "--budget", "smoke",
                                      "--out", str(tmp_path), *_sets(TINY | sets)])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lpips_is_scored_when_the_alexnet_file_is_in_the_hub_cache(tmp_path, monkeypatch):
    pytest.importorskip("lpips", reason="optional extra cvloss[lpips] (lpips) not installed")
    import importlib.util
    from pathlib import Path

    from cvloss.metrics.lpips_metric import ALEXNET_FILE

    spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_fake_weights",
                                                  Path(__file__).resolve().parents[1] / "fixtures" / "fake_weights.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    (tmp_path / "checkpoints").mkdir()
    fake.fake_alexnet_features(tmp_path / "checkpoints" / ALEXNET_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    t = SRTask("skimage-photos", SRTask.spec.budgets["smoke"] | TINY, torch.device("cpu"), feature_weights="random")
    t.load_data()
    ref = t.reference_metrics()["bicubic"]
    assert np.isfinite(ref["lpips"]) and ref["lpips"] > 0
    assert "n/a" not in t.describe_data().split("lpips:")[1]
