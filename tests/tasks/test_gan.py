"""Task ``gan``: the training step's schedule (n_critic, clipping, penalty, the optimiser
policies: the same Adam in smoke/quick, each paper's in full; generator update counts),
randomness that never touches the global RNG, exact resume, collapse detection, and
`cvloss compare` end to end on a shrunk smoke budget."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.losses import build_loss, list_losses
from cvloss.models.mlp_gan import MLPGAN
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import epoch_generator, run_trial
from cvloss.tasks.adversarial import policy_optimizer
from cvloss.tasks.base import evaluating
from cvloss.tasks.gan import GANTask, _spread

TINY = {"steps_per_epoch": 6, "batch_size": 32, "hidden": 16, "layers": 2, "n_eval": 200}
SET = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]


def make(loss_spec: str, seed: int = 0, **over):
    task = GANTask("ring8", GANTask.spec.budgets["smoke"] | TINY | over, torch.device("cpu"))
    task.load_data()
    plan = task.plan(build_loss(loss_spec, task="gan"))
    torch.manual_seed(seed)
    model = task.build_model()
    return task, model, plan.build_optimizers(model), plan


def evaluate(task, model):
    with evaluating(model):
        return task.evaluate(model)


def first_batch(task, seed=0):
    return next(task.train_batches(epoch_generator(seed, 1)))


@pytest.mark.parametrize("spec,d_calls", [("ns", 3), ("wgan", 11), ("wgan_gp", 16)])
def test_critic_steps_per_generator_step(spec, d_calls):
    """D forward passes per step: n_critic × (real + fake [+ penalty]) + 1 for G's step."""
    task, model, opts, loss = make(spec)
    calls = []
    model.D.register_forward_hook(lambda *a: calls.append(1))
    out = task.train_step(model, loss, opts, first_batch(task))
    assert len(calls) == d_calls
    assert torch.isfinite(out["loss"]) and set(out) == {"loss", "d_loss"}


def test_wgan_clips_the_critic_only():
    task, model, opts, loss = make("wgan")
    task.train_step(model, loss, opts, first_batch(task))
    assert max(p.abs().max().item() for p in model.D.parameters()) <= 0.01 + 1e-12
    assert max(p.abs().max().item() for p in model.G.parameters()) > 0.01  # G is never clipped
    assert task.stepper.counts() == {"generator_updates": 1, "discriminator_updates": 5}


ADVERSARIAL = sorted(i.name for i in list_losses("gan") if i.family == "adversarial")
# optimizer=paper, the constants of each paper (hinge: none given, the full budget's Adam).
PAPER = {"minimax": ("adam", {"lr": 2e-4, "betas": (0.5, 0.999)}),  # DCGAN, Radford et al. 2016
         "ns": ("adam", {"lr": 2e-4, "betas": (0.5, 0.999)}),
         "lsgan": ("adam", {"lr": 2e-4, "betas": (0.5, 0.999)}),
         "wgan": ("rmsprop", {"lr": 5e-5}),  # Arjovsky et al. 2017, Algorithm 1
         "wgan_gp": ("adam", {"lr": 1e-4, "betas": (0.0, 0.9)}),  # Gulrajani et al. 2017, Algorithm 1
         "hinge": ("adam", {"lr": 1e-4, "betas": (0.5, 0.999)})}


def _plan(budget: str, spec: str):
    return GANTask("ring8", GANTask.spec.budgets[budget], torch.device("cpu")).plan(build_loss(spec, task="gan"))


@pytest.mark.parametrize("budget", ["smoke", "quick"])
def test_smoke_and_quick_give_every_objective_the_same_adam(budget):
    assert GANTask.spec.budgets[budget]["optimizer"] == "equal"
    assert set(ADVERSARIAL) == set(PAPER)  # a new objective needs its paper's optimiser here
    seen = {(o.name, tuple(sorted(o.kwargs.items()))) for spec in ADVERSARIAL
            for o in _plan(budget, spec).optimizers.values()}
    assert seen == {("adam", (("betas", (0.5, 0.999)), ("lr", 1e-3)))}


def test_full_gives_each_objective_its_papers_optimiser():
    assert GANTask.spec.budgets["full"]["optimizer"] == "paper"
    for spec, (name, kwargs) in PAPER.items():
        plan = _plan("full", spec)
        assert {k: (o.name, o.kwargs) for k, o in plan.optimizers.items()} == {"g": (name, kwargs), "d": (name, kwargs)}
    opts = _plan("full", "wgan").build_optimizers(MLPGAN(2, 8, 1))
    assert all(isinstance(o, torch.optim.RMSprop) and o.param_groups[0]["lr"] == 5e-5 for o in opts.values())
    assert _plan("full", "wgan").adversarial[1].n_critic == 5 and _plan("full", "ns").adversarial[1].n_critic == 1


def test_policy_optimizer_resolves_each_policy_without_touching_the_constants():
    adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
    wgan, hinge = build_loss("wgan"), build_loss("hinge")
    assert policy_optimizer("equal", wgan, adam) == ("adam", adam)
    assert policy_optimizer("paper", wgan, adam) == ("rmsprop", {"lr": 5e-5})
    assert policy_optimizer("paper", hinge, adam) == ("adam", adam)  # no single paper setting
    assert policy_optimizer("paper", None, adam) == ("adam", adam)  # no adversarial term (translate: cycle)
    name, kw = policy_optimizer("paper", build_loss("ns"), adam)
    kw["lr"] = 1.0  # the caller's copy: the class constant stays
    assert build_loss("minimax").paper_optimizer == {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}
    with pytest.raises(ValueError, match="one of equal, paper"):
        policy_optimizer("adam", wgan, adam)


def test_no_global_rng_after_build_and_same_noise_for_every_objective():
    """The step draws only from generators derived from the batch: reseeding the global
    RNG in between changes nothing; a WGAN-GP step (ε drawn) is reproducible too."""
    results = []
    for global_seed in (1, 2):
        task, model, opts, loss = make("wgan_gp")
        torch.manual_seed(global_seed)
        task.train_step(model, loss, opts, first_batch(task))
        results.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(results[0], results[1])
    # a different batch seed does change the step
    task, model, opts, loss = make("wgan_gp")
    task.train_step(model, loss, opts, first_batch(task, seed=5))
    assert not torch.equal(results[0], torch.cat([p.flatten() for p in model.parameters()]))


def test_specs_without_exactly_one_adversarial_term_are_refused():
    task = make("ns")[0]
    assert task.plan(build_loss("2*lsgan", task="gan")).adversarial[0] == 2.0
    with pytest.raises(UsageError, match="2 adversarial terms"):
        build_loss("ns+lsgan", task="gan")
    with pytest.raises(UsageError, match="cannot route term"):
        task.plan(build_loss("l1"))


def test_collapse_is_one_mode_not_an_untrained_blob():
    task, model, _, _ = make("ns")
    last = model.G[-1]
    with torch.no_grad():  # G(z) = the first ring centre for every z
        last.weight.zero_()
        last.bias.copy_(task.mixture.centers[0])
    m = evaluate(task, model)
    assert m["modes"] == 1 and m["hq_pct"] == 100 and m["kl"] == pytest.approx(np.log(8))
    assert "mode collapse: 1 of 8" in task.collapse_reason(model, m)
    with torch.no_grad():  # every sample at one point far from the modes: collapsed too
        last.bias.fill_(10.0)
    m = evaluate(task, model)
    assert m["modes"] == 0 and "spread 0.00x" in task.collapse_reason(model, m)
    with torch.no_grad():  # a blob as wide as the data, far from every mode: poor, not collapsed
        last.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
        last.weight.mul_(2.0 / _spread(task.generate(model)))
    m = evaluate(task, model)
    assert m["modes"] == 0 and m["hq_pct"] == 0 and task.collapse_reason(model, m) is None
    assert evaluate(task, model) == m  # fixed evaluation noise


def test_resume_is_exact(tmp_path):
    """Interrupted after epoch 1 and resumed == uninterrupted (metrics, weights, update counts)."""
    over = TINY | {"epochs": 2, "optimizer": "paper"}
    base = TrialConfig(task="gan", loss="wgan_gp", dataset="ring8", budget="smoke", seed=1, overrides=over,
                       keep_checkpoints=True)  # the optimisers' states are compared below
    a = replace(base, out=str(tmp_path / "a"))
    b = replace(base, out=str(tmp_path / "b"))
    done = run_trial(a)
    assert run_trial(b, stop_after_epoch=1)["status"] == "interrupted"
    resumed = run_trial(b)
    # 2 epochs x 6 generator steps, each after n_critic = 5 critic steps
    for summary in (done, resumed):
        assert (summary["generator_updates"], summary["discriminator_updates"], summary["optimizer"]) == (12, 60, "paper")
    strip = lambda cfg: [{k: v for k, v in r.items() if not k.endswith("time_s")}
                         for r in csv.DictReader(open(cfg.trial_dir / "metrics.csv"))]
    assert strip(a) == strip(b)
    wa = torch.load(a.trial_dir / "checkpoint.pt", weights_only=False)
    wb = torch.load(b.trial_dir / "checkpoint.pt", weights_only=False)
    for k in wa["model"]:
        assert torch.equal(wa["model"][k], wb["model"][k]), k
    assert wb["optimizers"]["d"]["param_groups"][0]["betas"] == (0.0, 0.9)


def test_compare_cli_writes_every_output(tmp_path):
    res = CliRunner().invoke(app, ["compare", "--task", "gan", "--losses", "ns,wgan", "--budget", "smoke", "--seeds", "1",
                                   "--out", str(tmp_path), "--quiet", "--set", "epochs=1", *SET])
    assert res.exit_code == 0, res.output
    group = next((tmp_path / "gan" / "ring8").iterdir())
    for loss, n_critic in (("ns", 1), ("wgan", 5)):
        trial = group / loss / "seed0"
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] in ("done", "collapsed")
        # the same generator steps for both objectives (steps_per_epoch = 6), D steps x n_critic
        assert (summary["generator_updates"], summary["discriminator_updates"]) == (6, 6 * n_critic)
        params = json.loads((trial / "trial.json").read_text())["config"]["params"]
        assert params["optimizer"] == summary["optimizer"] == "equal" and params["lr"] == 1e-3
        assert summary["reference"]["real data"]["modes"] == 8 and summary["at_init"]["kl"] >= 0
        rows = list(csv.DictReader(open(trial / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["0", "1"] and {"modes", "hq_pct", "kl"} <= set(rows[0])
        with np.load(trial / "samples.npz") as z:
            assert set(z.files) == {"input", "truth", "pred"}
            assert z["pred"].dtype == np.uint8 and z["pred"].shape == (1, 240, 240, 3)
            assert np.array_equal(z["input"], z["truth"]) and not np.array_equal(z["pred"], z["truth"])
    cmp_dir = group / "compare--ns--wgan"
    assert {"compare.csv", "compare.json", "scatter.png", "samples.png"} <= {p.name for p in cmp_dir.iterdir()}
    assert json.loads((cmp_dir / "compare.json").read_text())["plots"]["scatter"] == "scatter.png"
    assert "ns" in res.output and "wgan" in res.output and "(real data)" in res.output  # table on stdout
