"""Task ``translate`` (CycleGAN): image pool, loss routing (adversarial / cycle / identity,
n_critic as groups of batches per generator update, clipping, no D for ``cycle`` alone),
the optimiser policies (equal in smoke/quick, each paper's in full), update counts, RNG hygiene, LR schedule, metrics against
hand computations, collapse rule, exact resume, and ``cvloss compare`` end to end."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.io import loss_slug
from cvloss.losses import build_loss, list_losses
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import run_trial
from cvloss.tasks.base import evaluating
from cvloss.tasks.translate import ImagePool, TranslateTask

TINY = {"n_train": 16, "n_val": 8, "epochs": 2, "batch_size": 4, "g_width": 4, "d_width": 4, "n_blocks": 1}


@pytest.fixture(scope="module")
def task():
    t = TranslateTask("synth-stripes", TranslateTask.spec.budgets["smoke"] | TINY, torch.device("cpu"))
    t.load_data()
    return t


def _fresh(task, spec, seed=0):
    plan = task.plan(build_loss(spec, task="translate"))
    task.load_data()  # fresh pools
    torch.manual_seed(seed)
    model = task.build_model()
    return model, plan.build_optimizers(model), plan


def _params(module):
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def _batches(task, seed=0):
    """The training steps of an epoch under the latest plan: lists of n_critic (a, b) batches."""
    return list(task.train_batches(torch.Generator().manual_seed(seed)))


def _data(task, seed=0):
    """One data epoch of (a, b) batches, whatever the plan."""
    return list(task._data_batches(torch.Generator().manual_seed(seed)))


# ------------------------------------------------------------------ image pool
def test_image_pool_fills_then_swaps_half_and_restores_exactly():
    pool, gen = ImagePool(4), torch.Generator().manual_seed(0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first, gen), first) and pool.count == 3  # room: stored and returned
    out = pool.query(torch.full((1, 1, 1, 1), 9.0), gen)
    assert out.item() == 9.0 and pool.count == 4
    state = pool.state_dict() | {"images": pool.images.clone()}
    gen_state = gen.get_state()
    new = torch.arange(100.0, 400.0).view(300, 1, 1, 1)
    out = pool.query(new, gen)
    swapped = (out != new).flatten()
    assert 0.4 < swapped.float().mean() < 0.6  # probability 1/2
    # A returned old image is one that was stored before it (pool or earlier in the batch).
    assert set(out[swapped].flatten().tolist()) <= set(range(3)) | {9.0} | set(new.flatten().tolist())
    # Restoring pool + generator reproduces the same answers (exact resume).
    pool2, gen2 = ImagePool(4), torch.Generator()
    pool2.load_state_dict(state, torch.device("cpu"))
    gen2.set_state(gen_state)
    assert torch.equal(pool2.query(new, gen2), out)
    assert torch.equal(ImagePool(0).query(new, gen), new)  # size 0: no pool


# ------------------------------------------------------------------ routing and steps
def test_cycle_alone_never_trains_or_runs_the_discriminators(task):
    model, opts, plan = _fresh(task, "cycle")
    d0, g0 = _params(model.d_a), _params(model.g_ab)
    calls = []
    model.d_a.register_forward_hook(lambda *a: calls.append(1))
    out = task.train_step(model, plan, opts, _batches(task)[0])
    assert torch.equal(_params(model.d_a), d0) and not torch.equal(_params(model.g_ab), g0)
    assert not calls and set(out) == {"loss"} and torch.isfinite(out["loss"])


def test_gan_alone_trains_both_and_cyclegan_loss_is_the_sum_of_its_terms(task):
    model, opts, plan = _fresh(task, "2*lsgan")
    d0 = _params(model.d_b)
    task.train_step(model, plan, opts, _batches(task)[0])
    assert not torch.equal(_params(model.d_b), d0)
    # The G objective of 2*lsgan+cycle+identity, recomputed by hand from the same weights.
    model, opts, plan = _fresh(task, "2*lsgan+cycle+identity")
    ((a, b),) = _batches(task)[0]  # n_critic = 1: one batch per generator update
    with torch.no_grad():
        fb, fa = model.g_ab(a), model.g_ba(b)
        ls = lambda d: 0.5 * (d - 1).pow(2).mean()  # noqa: E731  (Mao's 1/2, c = 1)
        adv = 2 * (ls(model.d_b(fb)) + ls(model.d_a(fa)))
        cyc = 10 * ((model.g_ba(fb) - a).abs().mean() + (model.g_ab(fa) - b).abs().mean())
        idt = 5 * ((model.g_ab(b) - b).abs().mean() + (model.g_ba(a) - a).abs().mean())
    out = task.train_step(model, plan, opts, [(a, b)])
    assert out["loss"].item() == pytest.approx((adv + cyc + idt).item(), rel=1e-5)


def test_wgan_n_critic_and_clipping(task):
    """One step = one G update on a group of n_critic = 3 batches: G moves every step, D
    steps on all three; G's batches are those of an n_critic = 1 objective (fair), the
    critic's further batches fresh data from their own stream."""
    model, opts, plan = _fresh(task, "wgan(n_critic=3)+cycle")
    groups, plain = _batches(task), _data(task)
    assert len(groups) == len(plain) == task.num_batches() and {len(g) for g in groups} == {3}
    assert all(torch.equal(g[0][0], p[0]) and torch.equal(g[0][1], p[1]) for g, p in zip(groups, plain))
    assert not torch.equal(groups[0][1][0], groups[0][0][0])
    assert all(torch.equal(x[1][0], y[1][0]) for x, y in zip(groups, _batches(task)))  # a function of the seed
    g_before = [_params(model.g_ab)]
    for group in groups[:2]:
        task.train_step(model, plan, opts, group)
        g_before.append(_params(model.g_ab))
    assert all(not torch.equal(x, y) for x, y in zip(g_before, g_before[1:]))
    assert task.stepper.counts() == {"generator_updates": 2, "discriminator_updates": 6}
    assert max(p.abs().max().item() for p in model.discriminator_parameters()) <= 0.01 + 1e-7
    with pytest.raises(ValueError, match="group of n_critic = 3"):
        task.train_step(model, plan, opts, groups[2][:1])


ADVERSARIAL = sorted(i.name for i in list_losses("translate") if i.family == "adversarial")


def _optims(budget: str, spec: str):
    plan = TranslateTask("synth-stripes", TranslateTask.spec.budgets[budget], torch.device("cpu")).plan(
        build_loss(spec, task="translate"))
    return {k: (o.name, o.kwargs) for k, o in plan.optimizers.items()}


def test_optimiser_policy_equal_in_smoke_and_quick_paper_in_full():
    cyclegan = ("adam", {"lr": 2e-4, "betas": (0.5, 0.999)})  # Zhu et al. 2017, Sec. 4
    for budget in ("smoke", "quick"):
        assert TranslateTask.spec.budgets[budget]["optimizer"] == "equal"
        for spec in [f"{name}+cycle" for name in ADVERSARIAL] + ["cycle"]:
            assert _optims(budget, spec) == {"g": cyclegan, "d": cyclegan}, (budget, spec)
    assert TranslateTask.spec.budgets["full"]["optimizer"] == "paper"
    paper = {"wgan": ("rmsprop", {"lr": 5e-5}), "wgan_gp": ("adam", {"lr": 1e-4, "betas": (0.0, 0.9)}),
             "lsgan": cyclegan, "ns": cyclegan, "minimax": cyclegan, "hinge": cyclegan}
    assert set(paper) == set(ADVERSARIAL)
    for name, optim in paper.items():
        assert _optims("full", f"{name}+cycle+identity") == {"g": optim, "d": optim}, name
    assert _optims("full", "cycle") == {"g": cyclegan, "d": cyclegan}


def test_gradient_penalty_uses_task_generator_not_global_rng(task):
    model, opts, plan = _fresh(task, "wgan_gp+cycle+identity")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    for batch in _batches(task)[:2]:
        out = task.train_step(model, plan, opts, batch)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert out["d_loss"].item() != 0.0 and plan.adversarial[1].generator is task.stepper.penalty_gen


def test_discriminator_divergence_is_reported_for_the_trainer_to_see(task, monkeypatch):
    model, opts, plan = _fresh(task, "ns+cycle")
    monkeypatch.setattr(plan.adversarial[1], "d_loss", lambda r, f: (r.mean() + f.mean()) * float("inf"))
    out = task.train_step(model, plan, opts, _batches(task)[0])
    assert torch.isfinite(out["loss"]) and not torch.isfinite(out["d_loss"])  # the trainer checks every scalar


def test_unroutable_spec_is_refused(task):
    with pytest.raises(UsageError, match="2 adversarial terms"):
        build_loss("lsgan+ns", task="translate")
    with pytest.raises(UsageError, match="cannot route term"):
        task.plan(build_loss("ce"))


def test_lr_schedule_is_constant_then_linear_to_zero(task):
    saved, nb = task.params, task.num_batches()
    try:
        task.params = saved | {"epochs": 4}
        assert [task.lr_factor(e * nb) for e in range(4)] == pytest.approx([1, 1, 2 / 3, 1 / 3])
        assert task.lr_factor(3 * nb - 1) == pytest.approx(2 / 3)  # a function of the step: per epoch
        task.params = saved | {"epochs": 200}
        f = lambda e: task.lr_factor(e * nb)  # noqa: E731
        assert f(99) == 1 and f(100) == pytest.approx(1 - 1 / 101) and f(199) == pytest.approx(1 / 101)
    finally:
        task.params = saved


def test_batches_are_unpaired_and_come_from_the_generator(task):
    b1, b2 = _data(task, 5), _data(task, 5)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(b1, b2))
    assert len(b1) == task.num_batches() == 4 and b1[0][0].shape == (4, 3, 32, 32)
    assert b1[0][0].min() >= -1 and b1[0][0].max() <= 1
    assert not torch.equal(_data(task, 6)[0][0], b1[0][0])


# ------------------------------------------------------------------ metrics
def test_identity_reference_metrics_by_hand(task):
    ref = task.reference_metrics("val")["identity (B = A)"]
    a = task.val_a.numpy().astype(np.float64) / 2 + 0.5
    b = task.val_b.numpy().astype(np.float64) / 2 + 0.5
    assert ref["paired_l1"] == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    assert ref["paired_psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)
    from skimage.metrics import structural_similarity

    ssim = [structural_similarity(x, y, channel_axis=0, data_range=1, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False) for x, y in zip(a, b)]
    assert ref["paired_ssim"] == pytest.approx(np.mean(ssim), abs=1e-4)
    assert ref["cycle_l1"] == 0.0 and np.isnan(ref["fid"])  # no Inception weights offline


def test_evaluate_and_collapse_rule(task):
    model, _, _ = _fresh(task, "cycle")
    with evaluating(model):
        m = task.evaluate(model)
        assert task.collapse_reason(model, m) is None  # an untrained G still varies with its input
    assert list(m) == list(TranslateTask.spec.metrics) and 0 <= m["paired_l1"] <= 1 and m["cycle_l1"] > 0

    class Const(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x) + 0.3

    model.g_ab = Const()
    with evaluating(model):
        reason = task.collapse_reason(model, m)
        rows = task.sample_rows(model)
    assert reason and "all alike" in reason
    assert set(rows) == {"input", "truth", "pred", "recon"} and rows["pred"].shape == (4, 32, 32, 3)
    assert rows["pred"].dtype == np.uint8 and (rows["pred"] == round(0.65 * 255)).all()


# ------------------------------------------------------------------ runner integration
@pytest.mark.parametrize("spec,pooled,d_updates", [("2*lsgan+cycle+identity", 16, 8), ("wgan_gp+cycle", 50, 40)])
def test_resume_is_exact_with_pool_optimisers_and_update_counts(tmp_path, spec, pooled, d_updates):
    """2 epochs x 4 generator updates for every objective; wgan_gp's n_critic = 5 makes 5 D
    steps (and 5 batches of fakes into the pool of 50) per update. Interrupted after
    epoch 1 and resumed: the same metrics and counts as uninterrupted."""
    base = dict(task="translate", loss=spec, dataset="synth-stripes", overrides=TINY)
    full = run_trial(TrialConfig(out=str(tmp_path / "full"), **base))
    crashed = TrialConfig(out=str(tmp_path / "crash"), **base)
    assert run_trial(crashed, stop_after_epoch=1)["status"] == "interrupted"
    state = torch.load(crashed.trial_dir / "checkpoint.pt", weights_only=False)
    assert state["task"]["pool_b"]["count"] == pooled and set(state["optimizers"]) == {"g", "d"}
    assert state["task"]["stepper"]["g_updates"] == 4 and state["task"]["stepper"]["d_updates"] == d_updates // 2
    resumed = run_trial(crashed)
    # the status too: a tiny 1 + 1 epoch model may end degenerate (below the untrained model's paired SSIM)
    assert resumed["metrics"] == full["metrics"] and resumed["status"] == full["status"] != "diverged"
    for summary in (full, resumed):
        assert (summary["generator_updates"], summary["discriminator_updates"]) == (8, d_updates)


def test_compare_smoke_writes_every_output(tmp_path):
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(app, ["compare", "--task", "translate", "--losses", "2*lsgan+cycle+identity,cycle",
                                      "--budget", "smoke", "--seeds", "1", "--out", str(tmp_path), "--quiet", *sets])
    assert result.exit_code == 0, result.output
    group = next((tmp_path / "translate" / "synth-stripes").iterdir())
    trial = group / "cycle" / "seed0"
    assert {"trial.json", "metrics.csv", "model.pt", "samples.png", "samples.npz", "summary.json"} <= {
        p.name for p in trial.iterdir()}
    summary = json.loads((trial / "summary.json").read_text())
    # finished: a smoke trial may end below the untrained model (degenerate), with every metric still
    assert summary["status"] in ("done", "degenerate") and 0 <= summary["metrics"]["paired_ssim"] <= 1
    # cycle alone: G updates as every objective (2 epochs x 4), no D; the policy in both files
    assert (summary["generator_updates"], summary["discriminator_updates"], summary["optimizer"]) == (8, 0, "equal")
    gan = json.loads((group / loss_slug("2*lsgan+cycle+identity") / "seed0" / "summary.json").read_text())
    assert (gan["generator_updates"], gan["discriminator_updates"]) == (8, 8)
    assert "identity (B = A)" in summary["reference"]
    info = json.loads((trial / "trial.json").read_text())
    assert "FID/KID: n/a" in info["data"]  # why the FID column is empty
    assert info["config"]["params"]["optimizer"] == "equal"
    with np.load(trial / "samples.npz") as z:
        assert set(z.files) == {"input", "truth", "pred", "recon"}
    # epoch 0: the untrained model on val (what the degenerate rule compares with)
    assert [r["epoch"] for r in csv.DictReader(open(trial / "metrics.csv"))] == ["0", "1", "2"]
    cmp_dir = next(group.glob("compare--*"))
    assert {"compare.csv", "compare.md", "compare.json", "bars.png", "curves.png", "samples.png"} <= {
        p.name for p in cmp_dir.iterdir()}
    rows = list(csv.DictReader(open(cmp_dir / "compare.csv")))
    assert {r["loss"] for r in rows} == {"2*lsgan+cycle+identity", "cycle", "identity (B = A)", "untrained model"}
    assert "paired_ssim" in result.output and "n/a" in result.output


def _fake_weights_module():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_fake_weights",
                                                  Path(__file__).resolve().parents[1] / "fixtures" / "fake_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fid_weights_option_is_recorded_names_the_extractor_and_stays_out_of_the_folder(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity", reason="optional extra cvloss[fid] (torch-fidelity) not installed")
    from cvloss.metrics.fid import FID_WEIGHTS_ENV, FID_WEIGHTS_FILE

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache: only the option counts
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    weights = tmp_path / FID_WEIGHTS_FILE
    _fake_weights_module().fake_fid_weights(weights)
    tiny = TINY | {"n_train": 8, "n_val": 4, "n_test": 4, "epochs": 1}  # FID on 4 test images
    sets = [x for k, v in tiny.items() for x in ("--set", f"{k}={v}")]
    args = ["train", "--task", "translate", "--loss", "cycle", "--out", str(tmp_path / "r"), "--quiet", *sets]
    missing = CliRunner().invoke(app, [*args, "--fid-weights", str(tmp_path / "nope.pth")])
    assert missing.exit_code == 2 and "--fid-weights" in missing.output and not (tmp_path / "r").exists()
    result = CliRunner().invoke(app, [*args, "--fid-weights", str(weights)])
    assert result.exit_code == 0, result.output
    trial = next((tmp_path / "r" / "translate" / "synth-stripes").iterdir()) / "cycle" / "seed0"
    assert "fid" not in trial.parent.parent.name  # not part of the budget folder name
    info = json.loads((trial / "trial.json").read_text())
    assert info["config"]["fid_weights"] == str(weights.resolve()) and "fid_weights" not in info["identity"]
    assert "torch-fidelity" in info["data"] and "TF Inception 2015-12-05" in info["data"]
    metrics = json.loads((trial / "summary.json").read_text())["metrics"]
    assert np.isfinite(metrics["fid"]) and np.isfinite(metrics["kid"])
    assert FID_WEIGHTS_ENV not in __import__("os").environ  # the option does not leak past the command


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_paired_lpips_with_the_alexnet_file_in_the_hub_cache(tmp_path, monkeypatch):
    pytest.importorskip("lpips", reason="optional extra cvloss[lpips] (lpips) not installed")
    from cvloss.metrics.lpips_metric import ALEXNET_FILE

    (tmp_path / "checkpoints").mkdir()
    _fake_weights_module().fake_alexnet_features(tmp_path / "checkpoints" / ALEXNET_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    t = TranslateTask("synth-stripes", TranslateTask.spec.budgets["smoke"] | TINY, torch.device("cpu"))
    t.load_data()
    ref = t.reference_metrics()["identity (B = A)"]
    assert np.isfinite(ref["paired_lpips"]) and ref["paired_lpips"] > 0
    assert "paired_lpips: alexnet" in t.describe_data() and "independent of every translate loss" in t.describe_data()
