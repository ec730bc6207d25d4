"""Task ``style``: each loss term gets its own target, metrics against hand computations,
the seed draws the pairs, L-BFGS and Adam, exact resume, bad input through the CLI, and
``cvloss compare`` end to end."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import skimage.io
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.losses import build_loss
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import run_trial
from cvloss.tasks.style import EVAL_STYLE_LAYERS, StyleImage, StyleTask

TINY = {"image_size": 32, "pairs": "chelsea:waves,coffee:gravel"}


@pytest.fixture(scope="module")
def task():
    t = StyleTask("skimage-photos", StyleTask.spec.budgets["smoke"] | TINY, torch.device("cpu"), feature_weights="random")
    t.load_data()
    torch.manual_seed(0)
    t.model = t.build_model()
    return t


def objective(task, spec, x):
    return task.objective(task.plan(build_loss(spec, task="style", feature_weights="random")), x)


def test_each_term_is_called_with_its_own_target(task):
    loss = build_loss("content+2*style+3*tv", task="style", feature_weights="random")
    x = task.model().detach() + 0.05 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = x.clamp(0, 1)
    (_, content), (_, style), (_, tv) = loss.weighted_terms()
    want = content(x, task.content) + 2 * style(x, task.style) + 3 * tv(x)
    got = objective(task, "content+2*style+3*tv", x)
    assert torch.allclose(got, want, rtol=1e-5)
    swapped = content(x, task.style) + 2 * style(x, task.content) + 3 * tv(x)
    assert not torch.allclose(got, swapped, rtol=1e-3)  # the routing matters
    assert torch.allclose(objective(task, "style", x), style(x, task.style))  # a single loss: one term


def test_metrics_against_hand_computed_values(task):
    m = task.image_metrics(task.content)
    assert m["content_loss"] == 0.0 and m["style_dist"] > 0
    assert task.image_metrics(task.style)["style_dist"] == pytest.approx(0.0, abs=1e-12)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    x = checker.float().expand(2, 3, 32, 32).contiguous()
    m = task.image_metrics(x)
    assert m["tv"] == pytest.approx(1.0)  # every neighbour differs by exactly 1
    # E_l = 1 / (4 N_l^2 M_l^2) * sum (G - A)^2, Gram without normalisation, per image, mean
    net = task._eval_net
    l = EVAL_STYLE_LAYERS[1]
    fx, fs = net.extract(x, [l])[l], net.extract(task.style, [l])[l]
    n_l, m_l = fx.shape[1], fx.shape[2] * fx.shape[3]
    fx, fs = fx.double().flatten(2), fs.double().flatten(2)
    e = ((fx @ fx.transpose(1, 2) - fs @ fs.transpose(1, 2)) ** 2).sum(dim=(1, 2)) / (4 * n_l**2 * m_l**2)
    assert m[f"gram_{l}"] == pytest.approx(float(e.mean()), rel=1e-4)
    assert m["style_dist"] == pytest.approx(np.mean([m[f"gram_{k}"] for k in EVAL_STYLE_LAYERS]))


def test_seed_draws_the_pairs_and_content_init():
    t = StyleTask("skimage-photos", StyleTask.spec.budgets["smoke"] | {"image_size": 32}, torch.device("cpu"))
    t.load_data()
    drawn = []
    for seed in (0, 1, 2, 3, 0):
        torch.manual_seed(seed)
        model = t.build_model()
        drawn.append(list(t.pairs))
        assert torch.equal(model(), t.content)  # content init, no noise by default
    assert drawn[0] == drawn[-1] and len({tuple(d) for d in drawn}) > 1
    img = StyleImage(t.content, "sigmoid")
    assert torch.allclose(img(), t.content.clamp(1e-3, 1 - 1e-3), atol=1e-5)


def _cfg(tmp_path, **overrides):
    return TrialConfig(task="style", loss="content+100*style+0.01*tv", dataset="skimage-photos", budget="smoke",
                       out=str(tmp_path), feature_weights="random", overrides={"image_size": 32, **overrides})


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisers_lower_the_style_distance_and_resume_exactly(tmp_path, optimizer):
    cfg = _cfg(tmp_path / "a", optimizer=optimizer, pairs="chelsea:waves")
    done = run_trial(cfg)
    rows = list(csv.DictReader(open(cfg.trial_dir / "metrics.csv")))
    assert done["metrics"]["style_dist"] < done["reference"]["content image (init)"]["style_dist"]
    assert rows[0]["eval_feature_weights"] == "random(seed=0)"
    evals = [float(r["evals"]) for r in rows]
    assert evals[0] >= 2 and (optimizer == "lbfgs" or evals == [2.0, 4.0])
    cfg2 = _cfg(tmp_path / "b", optimizer=optimizer, pairs="chelsea:waves")
    assert run_trial(cfg2, stop_after_epoch=1)["status"] == "interrupted"
    resumed = run_trial(cfg2)
    # every metric but the optimisation's wall time (which differs from run to run) resumes exactly
    untimed = lambda m: {k: v for k, v in m.items() if k != "wall_s"}  # noqa: E731
    assert untimed(resumed["metrics"]) == pytest.approx(untimed(done["metrics"]), rel=1e-5)


def test_bad_inputs_fail_with_one_line(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    skimage.io.imsave(str(tmp_path / "c.png"), img, check_contrast=False)
    skimage.io.imsave(str(tmp_path / "tiny.png"), img[:30, :30], check_contrast=False)
    base = ["train", "--task", "style", "--loss", "content+style", "--budget", "smoke", "--out", str(tmp_path / "r"),
            "--feature-weights", "random"]
    cases = {
        ("content=" + str(tmp_path / "missing.png"), "style=" + str(tmp_path / "c.png")): "no such file",
        ("content=" + str(tmp_path / "c.png"), "style=" + str(tmp_path / "tiny.png")): "less than 1/4",
        ("content=" + str(tmp_path / "c.png"),): "give both",
        ("optimizer=sgd",): "expected one of lbfgs, adam",
    }
    for sets, match in cases.items():
        args = base + [a for s in sets for a in ("--set", s)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        err = result.stderr.strip()
        assert match in err and len(err.splitlines()) == 1 and err.startswith("error:"), err


def test_compare_writes_tables_and_plots(tmp_path):
    result = CliRunner().invoke(app, [
        "compare", "--task", "style", "--losses", "content+100*style+0.01*tv,content+100*style", "--budget", "smoke",
        "--seeds", "1", "--out", str(tmp_path), "--feature-weights", "random",
        "--set", "image_size=32", "--set", "epochs=1", "--set", "pairs=astronaut:mosaic"])
    assert result.exit_code == 0, result.output
    group = next((tmp_path / "style" / "skimage-photos").iterdir())
    for loss in ("content+100xstyle+0.01xtv", "content+100xstyle"):
        trial = group / loss / "seed0"
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] == "done" and summary["feature_weights"] == "random(seed=0)"
        assert set(StyleTask.spec.metrics) <= set(summary["metrics"])
        with np.load(trial / "samples.npz") as z:
            assert z["input"].shape == z["pred"].shape == (1, 32, 32, 3) and z["pred"].dtype == np.uint8
        assert (trial / "metrics.csv").exists() and (trial / "samples.png").exists()
    comp = next(p for p in group.iterdir() if (p / "compare.csv").exists())
    rows = list(csv.DictReader(open(comp / "compare.csv")))
    assert {"content image (init)", "style image"} <= {r["loss"] for r in rows}
    for plot in ("bars.png", "samples.png", "stylised_all_seeds.png"):
        assert (comp / plot).stat().st_size > 0, plot


def test_evaluation_network_is_vgg16_whatever_the_loss_and_is_named(task):
    from cvloss.tasks.style import EVAL_ARCH

    assert EVAL_ARCH == "vgg16" and task._eval_net.arch == "vgg16"
    data = task.describe_data()
    assert "style_dist: vgg16 relu1_2,relu2_2,relu3_3,relu4_3, weights random(seed=0) -- NOT independent: perceptual" in data
    assert "content_loss: vgg16 relu4_3" in data
