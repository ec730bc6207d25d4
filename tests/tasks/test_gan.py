"""Task ``gan``: the training step's schedule (n_critic, clipping, penalty, optimisers),
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
from cvloss.losses import build_loss
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import epoch_generator, run_trial
from cvloss.tasks.base import evaluating
from cvloss.tasks.gan import GANTask, _spread

TINY = {"steps_per_epoch": 6, "batch_size": 32, "hidden": 16, "layers": 2, "n_eval": 200}
SET = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]


def make(loss_spec: str, seed: int = 0, **over):
    task = GANTask("ring8", GANTask.budgets["smoke"] | TINY | over, torch.device("cpu"))
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


def test_wgan_clips_the_critic_and_uses_the_papers_optimisers():
    task, model, opts, loss = make("wgan")
    task.train_step(model, loss, opts, first_batch(task))
    assert max(p.abs().max().item() for p in model.D.parameters()) <= 0.01 + 1e-12
    assert max(p.abs().max().item() for p in model.G.parameters()) > 0.01  # G is never clipped
    for name in ("d", "g"):
        inner = opts[name]
        assert isinstance(inner, torch.optim.RMSprop) and inner.param_groups[0]["lr"] == 5e-5
    task, model, opts, loss = make("wgan_gp")
    task.train_step(model, loss, opts, first_batch(task))
    g = opts["d"].param_groups[0]
    assert isinstance(opts["d"], torch.optim.Adam) and g["lr"] == 1e-4 and tuple(g["betas"]) == (0.0, 0.9)
    task, model, opts, loss = make("ns")
    task.train_step(model, loss, opts, first_batch(task))
    g = opts["g"].param_groups[0]
    assert g["lr"] == 1e-3 and tuple(g["betas"]) == (0.5, 0.999)
    # optimizer=adam: one optimiser for every objective
    task, model, opts, loss = make("wgan", optimizer="adam")
    task.train_step(model, loss, opts, first_batch(task))
    assert isinstance(opts["d"], torch.optim.Adam)


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
    """Interrupted after epoch 1 and resumed == uninterrupted (metrics and weights)."""
    over = TINY | {"epochs": 2}
    base = TrialConfig(task="gan", loss="wgan_gp", dataset="ring8", budget="smoke", seed=1, overrides=over)
    a = replace(base, out=str(tmp_path / "a"))
    b = replace(base, out=str(tmp_path / "b"))
    run_trial(a)
    assert run_trial(b, stop_after_epoch=1)["status"] == "interrupted"
    run_trial(b)
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
    for loss in ("ns", "wgan"):
        trial = group / loss / "seed0"
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] in ("done", "collapsed")
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
