"""A folder is one trial: loss folder names are injective (a lossy name carries a
hash of the spec; the committed results keep theirs), a finished trial is skipped only when
its recorded identity is the requested one, a checkpoint or untrained.json that does not
fit its trial is set aside or measured again, and a plugin's broken loss is one line."""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import ResultsFileError
from cvloss.io import check_untrained, load_checkpoint, loss_slug, save_checkpoint
from cvloss.losses import registry
from cvloss.run.compare import ComparisonError, comparison_dir, run_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import (CHECKPOINT, TRIAL, UNTRAINED, _UNKNOWN, identity_mismatch,
                                requested_feature_weights, run_trial)

RESULTS = Path(__file__).resolve().parents[2] / "results"
STUDY1 = RESULTS.parent / "tests" / "fixtures" / "study1"  # the first reference study's records
TINY = ["--set", "epochs=1", "--set", "n_train=8", "--set", "n_val=4", "--threads", "1", "--quiet"]
runner = CliRunner()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what a refused command must not change."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ---------------------------------------------------------------- folder names
def test_a_lossy_slug_carries_a_hash_and_an_injective_one_keeps_its_name(tmp_path):
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", out=str(tmp_path))
    a, b = (replace(base, loss=f"ce+0.1*topo(weights=/x/{w})").trial_dir for w in ("a/b.pt", "a_b.pt"))
    assert a != b and a.parent.name.startswith("ce+0.1xtopo-weights=_x_a_b.pt-")
    assert re.fullmatch(r"ce\+0\.1xtopo-weights=_x_a_b\.pt-[0-9a-f]{8}", b.parent.name)
    # read back as exactly their spec: names as before
    assert loss_slug("ce+0.1*topo(mu=0.5)") == "ce+0.1xtopo-mu=0.5"
    assert loss_slug("l1+1e-05*tv") == "l1+1e-05xtv" and loss_slug("topo(mu=-1)") == "topo-mu=-1"
    # a name a hashed one could have: hashed too, so the two kinds never meet
    assert loss_slug("f(k=a-deadbeef)") != "f-k=a-deadbeef"
    # names that meet on a case-insensitive file system
    assert loss_slug("triplet(mining=A)").lower() != loss_slug("triplet(mining=a)").lower()


@pytest.mark.parametrize("root", [STUDY1, RESULTS], ids=["study1", "results"])
def test_the_committed_results_keep_their_folder_names(root):
    """Every committed trial's recorded config gives its own folder, and its recorded
    identity: exactly today's for the reference study's trials under results/; for the
    first study's (tests/fixtures/study1) today's but for the test-split caps that the
    larger test splits added (a rerun on them is another configuration: it is refused,
    never mixed with these). Every compare.json's losses name its loss folders and its
    comparison folder."""
    trials = sorted(root.rglob(TRIAL))
    assert root == RESULTS or len(trials) == 129  # results/ holds what the rerun has landed so far
    test_caps = {"n_test", "n_test_ids", "test_pairs_per_fold"} if root == STUDY1 else set()
    for path in trials:
        info = json.loads(path.read_text())
        cfg = replace(TrialConfig.from_record(info["config"]), out=str(root))  # recorded relative to the repository
        assert cfg.trial_dir == path.parent, path
        now, then = cfg.identity(), info["identity"]
        added = set(now["params"]) - set(then["params"])
        assert added <= test_caps and {k: v for k, v in now["params"].items() if k not in added} == then["params"]
        assert {**now, "params": None} == {**then, "params": None}, path
    comparisons = sorted(root.rglob("compare.json"))
    assert root == RESULTS or len(comparisons) == 2
    for path in comparisons:
        losses = json.loads(path.read_text())["losses"]
        assert comparison_dir(TrialConfig(task="seg", loss="", dataset="x"), losses).name == path.parent.name
        if root == RESULTS or "seg" in path.parts:  # the fixture keeps embed's compare.json alone
            assert all((path.parents[1] / loss_slug(spec)).is_dir() for spec in losses), path


# ---------------------------------------------------------------- plugins
PLUGIN = '''
from cvloss.losses import Loss, register_loss
from cvloss.losses.segmentation import CrossEntropyLoss


@register_loss("lossé", family="pixel-wise", paper="test")
class Acute(CrossEntropyLoss):
    """Cross-entropy under another name."""


@register_loss("lossè", family="pixel-wise", paper="test")
class Grave(CrossEntropyLoss):
    """Cross-entropy under another name."""


@register_loss("broken", family="pixel-wise", paper="test")
class Broken(Loss):
    """Its constructor fails."""

    kind = "seg"

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        raise KeyError("no such thing")


@register_loss("make", family="pixel-wise", paper="test")
class Make(Loss):
    """Its constructor returns a number."""

    kind = "seg"

    def __new__(cls, k: int = 5):
        return k
'''


@pytest.fixture
def plugin_file(tmp_path):
    """A plugin file (``--plugin``); the registry and modules as before afterwards."""
    from cvloss.losses import list_losses, plugins

    list_losses()
    before, loaded, modules = dict(registry._REGISTRY), dict(plugins._LOADED), set(sys.modules)
    path = tmp_path / "accents.py"
    path.write_text(PLUGIN, encoding="utf-8")
    yield path
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if name.startswith("cvloss_plugin_"):
            del sys.modules[name]


def test_plugin_losses_lossé_and_lossè_train_in_two_folders(plugin_file, tmp_path):
    out = tmp_path / "out"
    for name in ("lossé", "lossè"):
        result = runner.invoke(app, ["train", "--plugin", str(plugin_file), "--task", "seg", "--loss", name,
                                     "--out", str(out), *TINY])
        assert result.exit_code == 0, result.output
        assert "already done" not in result.output
    summaries = sorted(out.glob("seg/synth-pets/*/loss_-*/seed0/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["loss"] for p in summaries} == {"lossé", "lossè"}


def test_a_plugin_loss_that_fails_to_build_is_one_line_naming_it(plugin_file, tmp_path):
    for name, said in (("broken", "plugin accents.py failed to build it (KeyError: 'no such thing')"),
                       ("make", "plugin accents.py built a value of type 'int', not a cvloss Loss")):
        result = runner.invoke(app, ["train", "--plugin", str(plugin_file), "--task", "seg", "--loss", name,
                                     "--out", str(tmp_path / "out"), *TINY])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith(f"error: loss '{name}': {said}") and "bug" not in lines[0]
    assert not (tmp_path / "out").exists()
    def fn(k: int = 5):
        return k

    with pytest.raises(TypeError, match=r"register_loss\('fn'\) decorates fn, a function, not a subclass"):
        registry.register_loss("fn", family="pixel-wise", paper="test")(fn)
    assert "fn" not in registry._REGISTRY


# ---------------------------------------------------------------- identity of a finished trial
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished trial of ``ce`` trained with ``--feature-weights random:1``."""
    out = tmp_path_factory.mktemp("finished")
    result = runner.invoke(app, ["train", "--task", "seg", "--loss", "ce", "--feature-weights", "random:1",
                                 "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    (trial,) = out.glob("seg/synth-pets/*/ce/seed0")
    return out, trial


def test_a_finished_trial_of_other_feature_weights_is_refused_not_skipped(finished):
    out, trial = finished
    before = _tree(out)
    for command in (["train", "--loss", "ce"], ["compare", "--losses", "ce", "--seeds", "1"]):
        result = runner.invoke(app, [*command, "--task", "seg", "--feature-weights", "random:2", "--out", str(out), *TINY])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0] == (f"error: {trial} holds a finished trial of another configuration (feature_weights: "
                            f"recorded 'random:1', requested 'random:2'); it is neither reused nor overwritten: use "
                            f"another --out, or delete that folder to train it anew")
        assert _tree(out) == before  # nothing trained, nothing written
    same = runner.invoke(app, ["train", "--task", "seg", "--loss", "ce", "--feature-weights", "random:1",
                               "--out", str(out), *TINY[:-1]])
    assert same.exit_code == 0 and "already done, skipped" in same.output


def test_a_comparison_refuses_a_mismatched_trial_before_training(finished, capture):
    out, trial = finished
    info = json.loads((trial / TRIAL).read_text())
    base = replace(TrialConfig.from_record(info["config"]), loss="", feature_weights="random:2", seed=0)
    before = _tree(out)
    with pytest.raises(ComparisonError, match=re.escape(f"{trial} holds a finished trial of another configuration")):
        run_comparison(base, ["dice", "ce"], [0], capture)  # dice would train first: it does not
    assert _tree(out) == before and not [l for l in capture.lines if l.startswith("START")]


def test_feature_weights_are_compared_where_the_request_decides_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert requested_feature_weights("ce+0.1*topo(weights=w.pt)", "auto") == f"file:{tmp_path / 'w.pt'}"
    assert requested_feature_weights("l1+perceptual+style(weights=imagenet)", "random:3") == "imagenet, random(seed=3)"
    assert requested_feature_weights("ce", "random:3") is None
    assert requested_feature_weights("perceptual", "auto") is _UNKNOWN  # this machine decides, when built
    cfg = TrialConfig(task="seg", loss="ce+0.1*topo(weights=w.pt)", dataset="synth-pets", out=str(tmp_path))
    cfg.trial_dir.mkdir(parents=True)
    record = {"identity": cfg.identity(), "feature_weights": "file:/elsewhere/w.pt"}
    (cfg.trial_dir / TRIAL).write_text(json.dumps(record))  # same request, run from another folder
    assert identity_mismatch(cfg) == (
        f"{cfg.trial_dir} holds an unfinished trial of another configuration (feature weights: recorded "
        f"'file:/elsewhere/w.pt', requested 'file:{tmp_path / 'w.pt'}'); it is neither reused nor overwritten: use "
        f"another --out, or delete that folder to train it anew")
    (cfg.trial_dir / TRIAL).write_text(json.dumps({**record, "feature_weights": f"file:{tmp_path / 'w.pt'}"}))
    assert identity_mismatch(cfg) is None


# ---------------------------------------------------------------- checkpoints and untrained.json
def _interrupted(tmp_path) -> TrialConfig:
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", out=str(tmp_path), device="cpu",
                      overrides={"epochs": 2, "n_train": 8, "n_val": 4})
    assert run_trial(cfg, stop_after_epoch=1)["status"] == "interrupted"
    return cfg


def _tamper_lr(state):
    state["optimizers"]["model"]["param_groups"][0]["lr"] *= 100


@pytest.mark.parametrize("tamper, why", [
    (lambda s: s.update(epoch=10**9), "epoch 1000000000 is outside this trial's 0..2"),
    (lambda s: s.update(epoch=-5), "epoch -5 is outside this trial's 0..2"),
    (lambda s: s.update(step=0), "step 0 after epoch 1 is not 1 x 1 batches"),
    (_tamper_lr, "optimiser 'model' has other hyper-parameters than this plan's"),
])
def test_a_checkpoint_that_does_not_fit_its_trial_is_set_aside_and_the_trial_restarts(tmp_path, capture, tamper, why):
    cfg = _interrupted(tmp_path)
    path = cfg.trial_dir / CHECKPOINT
    state = load_checkpoint(path)
    assert set(state["optimizers"]) == {"model"} and state["epoch"] == state["step"] == 1
    tamper(state)
    save_checkpoint(path, state)
    summary = run_trial(cfg, capture)
    said = [l for l in capture.lines if "set aside" in l]
    assert said == [f"[seg/synth-pets/ce/seed0] unusable checkpoint set aside: checkpoint.pt (it does not fit this "
                    f"trial ({why})) as checkpoint.pt.corrupt-1; restarting the trial from scratch"]
    assert "START seg/synth-pets/ce/seed0 at 0" in capture.lines
    # both epochs trained again, no more (a tiny net may end degenerate: finished all the same)
    assert summary["status"] in ("done", "degenerate") and summary["steps"] == 2
    rows = (cfg.trial_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert (cfg.trial_dir / "checkpoint.pt.corrupt-1").is_file()


@pytest.mark.parametrize("tamper, why", [
    (lambda m: {**m, "miou": "<script>"}, "'miou' = '<script>' is not a finite number or null"),
    (lambda m: {"miou": 0.99, "extra": 1}, "its keys are not this task's metrics (not a metric: 'extra') (missing: "),
])
def test_a_tampered_untrained_json_is_measured_again(tmp_path, capture, tamper, why):
    cfg = _interrupted(tmp_path)
    path = cfg.trial_dir / UNTRAINED
    measured = json.loads(path.read_text())
    first_read = measured.pop("test_read_utc")  # when the trial first read test: kept when measured again
    assert set(measured) >= {"miou", "dice"} and all(isinstance(v, float) for v in measured.values())
    path.write_text(json.dumps({**tamper(measured), "test_read_utc": first_read}))
    summary = run_trial(cfg, capture)
    said = [l for l in capture.lines if UNTRAINED in l]
    assert len(said) == 1 and said[0].startswith(f"[seg/synth-pets/ce/seed0] {path} is not a valid untrained-model "
                                                  f"metrics file: {why}")
    assert said[0].endswith("; measuring the untrained model again")
    # the same initial weights, the same numbers; test was first read when it was first measured
    assert json.loads(path.read_text()) == {**measured, "test_read_utc": first_read}
    assert measured == summary["untrained"]


def test_untrained_json_shapes():
    names = ["miou", "dice"]
    assert check_untrained({"miou": 0.5, "dice": None}, Path("u.json"), names) == {"miou": 0.5, "dice": None}
    for bad, why in (([0.5], "it holds a JSON list, not an object"), ({"miou": 1e999, "dice": 0}, "'miou' = 'inf'"),
                     ({"miou": True, "dice": 0}, "'miou' = 'True'"), ({"miou": {}, "dice": 0}, "'miou' = '{}'")):
        with pytest.raises(ResultsFileError, match=re.escape(f"u.json is not a valid untrained-model metrics file: {why}")):
            check_untrained(bad, Path("u.json"), names)
