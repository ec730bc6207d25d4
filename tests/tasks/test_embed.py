"""Task ``embed``: the P×K sampler, the two task-side losses, collapse detection, K = 1
refusal, and `cvloss compare` end to end on a shrunk smoke budget (files written,
untrained reference row, ROC / PCA plots)."""
from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.budgets import budget_params
from cvloss.losses.metric import OfflineTripletLoss, SoftmaxLoss
from cvloss.tasks.base import evaluating
from cvloss.tasks.embed import EmbedTask

runner = CliRunner()
TINY = {"epochs": 1, "P": 4, "K": 3, "n_train_ids": 12, "per_id": 4, "n_val_ids": 20, "val_per_id": 2,
        "pairs_per_fold": 2, "width": 4, "dim": 16, "collapse_tol": 0.0}  # 3 steps: BN statistics barely move
TINY_ARGS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def task():
    t = EmbedTask("synth-ids", budget_params("embed", "smoke", TINY), torch.device("cpu"))
    t.load_data()
    return t


def test_pk_batches_are_p_identities_times_k_images(task):
    batches = list(task.train_batches(torch.Generator().manual_seed(0)))
    assert len(batches) == task.num_batches() == 12 // 4
    seen = []
    for b in batches:
        assert b.x.shape == (12, 3, 32, 32) and b.y.shape == (12,)
        ids = b.y.view(4, 3)
        assert (ids == ids[:, :1]).all() and len(set(ids[:, 0].tolist())) == 4  # P distinct ids, K each
        assert torch.equal(task.train_y[b.triplets[:, 0]], task.train_y[b.triplets[:, 1]])
        assert (task.train_y[b.triplets[:, 0]] != task.train_y[b.triplets[:, 2]]).all()
        assert b.triplets.shape == (4, 3)  # floor(P*K / 3) offline triplets
        seen += ids[:, 0].tolist()
    assert len(set(seen)) == len(seen) == 12  # an epoch visits every identity once
    again = list(task.train_batches(torch.Generator().manual_seed(0)))
    assert all(torch.equal(a.x, b.x) and torch.equal(a.triplets, b.triplets) for a, b in zip(batches, again))


def test_k_images_are_distinct_when_an_identity_has_enough(task):
    b = next(task.train_batches(torch.Generator().manual_seed(1)))
    # Undo the random flips, then no two images of one identity in the batch are equal.
    for p in range(4):
        for i in range(3):
            for j in range(i + 1, 3):
                xi, xj = b.x[3 * p + i], b.x[3 * p + j]
                assert not (torch.equal(xi, xj) or torch.equal(xi, xj.flip(-1)))


def test_softmax_and_offline_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    expected = -(torch.log_softmax(logits, 1)[[0, 1], [0, 1]]).mean()
    assert SoftmaxLoss()(logits, y) == pytest.approx(float(expected))
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    n = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # d²(a,p) = 2, 0; d²(a,n) = 0, 4: hinge(2 − 0 + 0.2) = 2.2 and hinge(0 − 4 + 0.2) = 0.
    assert OfflineTripletLoss()(a, p, n) == pytest.approx(1.1)


def test_every_kind_of_term_trains(task):
    from cvloss.losses import build_loss

    for spec in ("contrastive", "triplet(mining=all)", "softmax", "triplet_offline", "triplet+0.5*softmax"):
        loss = build_loss(spec, task="embed")
        torch.manual_seed(0)
        model = task.build_model()
        plan = task.plan(loss)
        opt = plan.build_optimizers(model)
        before = [p.detach().clone() for p in model.parameters()]
        out = task.train_step(model, plan, opt, next(task.train_batches(torch.Generator().manual_seed(0))))
        assert torch.isfinite(out["loss"]), spec
        changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
        assert changed, spec
        # The classifier learns only under a softmax term.
        assert (model.classifier.weight.grad is not None) == ("softmax" in spec), spec


def test_evaluate_and_collapse_detection(task):
    torch.manual_seed(0)
    model = task.build_model()
    with evaluating(model):
        m = task.evaluate(model)
    assert set(m) == set(EmbedTask.spec.metrics) and all(0 <= v <= 1 for v in m.values())
    # Fresh BatchNorm running statistics (mean 0, var 1) make an untrained net's eval-mode
    # embeddings nearly alike; set them from one train-mode pass (momentum None: exact).
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        model.features(task.train_x)
    tol = {**task.params, "collapse_tol": 0.05}
    task.params, saved = tol, task.params
    try:
        with evaluating(model):
            assert task.collapse_reason(model, m) is None
        with torch.no_grad():  # every image -> the same embedding
            model.head.weight.zero_()
            model.neck = torch.nn.Identity()
            model.head.bias.fill_(1.0)
        with evaluating(model):
            reason = task.collapse_reason(model, task.evaluate(model))
        assert reason and "collapsed" in reason
    finally:
        task.params = saved


def test_spread_formula_matches_pairwise_distances():
    e = F.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    d2 = torch.cdist(e, e).pow(2)
    expected = (d2.sum() / (50 * 49)).sqrt()
    assert EmbedTask.spread(e) == pytest.approx(float(expected), rel=1e-6)


def test_k_equal_one_is_refused_with_one_line(tmp_path):
    result = runner.invoke(app, ["train", "--task", "embed", "--loss", "triplet", "--out", str(tmp_path), "--quiet",
                                 *[a for k, v in (TINY | {"K": 1}).items() for a in ("--set", f"{k}={v}")]])
    assert result.exit_code != 0
    assert "K=1" in result.output and "int >= 2" in result.output and "Traceback" not in result.output


def test_compare_writes_every_output(tmp_path):
    losses = "contrastive,triplet(mining=batch_hard),softmax,triplet_offline"
    result = runner.invoke(app, ["compare", "--task", "embed", "--losses", losses, "--seeds", "1", "--out", str(tmp_path),
                                 "--quiet", *TINY_ARGS])
    assert result.exit_code == 0, result.output
    group = next((tmp_path / "embed" / "synth-ids").iterdir())
    for slug in ("contrastive", "triplet-mining=batch_hard", "softmax", "triplet_offline"):
        trial = group / slug / "seed0"
        assert {"trial.json", "metrics.csv", "model.pt", "samples.png", "samples.npz", "summary.json"} <= {
            p.name for p in trial.iterdir()}
        summary = json.loads((trial / "summary.json").read_text())
        # finished: a smoke trial may end at chance (degenerate), with every metric still
        assert summary["status"] in ("done", "degenerate") and set(summary["at_init"]) == set(EmbedTask.spec.metrics)
        rows = list(csv.DictReader(open(trial / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["0", "1"]
    cmp_dir = next(group.glob("compare--*"))
    assert {"compare.csv", "compare.json", "roc.png", "pca.png"} <= {p.name for p in cmp_dir.iterdir()}
    rows = list(csv.DictReader(open(cmp_dir / "compare.csv")))
    assert {r["loss"] for r in rows if r["metric"] == "verif_acc"} >= {"contrastive", "softmax", "untrained model"}
    assert "verif_acc" in result.output
