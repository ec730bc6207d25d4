"""`cvloss train/compare/report` on the seg task end to end (smoke budget, shrunk with
--set so each trial takes a second or two), checking the files each command wrote."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import run_trial

runner = CliRunner()
TINY = ["--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=2"]
LABEL = "smoke+epochs=2+n_train=16+n_val=8"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_compare_writes_every_output(tmp_path):
    result = invoke("compare", "--task", "seg", "--losses", "ce,0.5*dice", "--seeds", "2", "--out", str(tmp_path),
                    "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    group = tmp_path / "seg" / "synth-pets" / LABEL
    for loss in ("ce", "0.5xdice"):
        for seed in (0, 1):
            trial = group / loss / f"seed{seed}"
            names = {p.name for p in trial.iterdir()}
            assert {"trial.json", "metrics.csv", "model.pt", "samples.png", "samples.npz", "summary.json"} <= names
            summary = json.loads((trial / "summary.json").read_text())
            # finished (2 epochs on 16 images may end at the majority class's mIoU: degenerate)
            assert summary["status"] in ("done", "degenerate") and 0 <= summary["metrics"]["miou"] <= 1
            rows = list(csv.DictReader(open(trial / "metrics.csv")))
            assert [r["epoch"] for r in rows] == ["1", "2"]
            info = json.loads((trial / "trial.json").read_text())
            assert info["config"]["seed"] == seed and info["versions"]["torch"] and "device" in info
    cmp_dir = group / "compare--ce--0.5xdice"
    assert {"compare.csv", "compare.md", "compare.json", "bars.png", "curves.png", "samples.png"} <= {p.name for p in cmp_dir.iterdir()}
    rows = list(csv.DictReader(open(cmp_dir / "compare.csv")))
    # intent to treat: every trial that ran, degenerate ones too (2 epochs may end at the majority class's mIoU)
    miou = [r for r in rows if r["metric"] == "miou" and r["analysis"] == "itt"]
    assert [r["loss"] for r in miou] == ["ce", "0.5*dice"] and all(r["n"] == "2" for r in miou)
    assert {r["split"] for r in rows} == {"test"}
    assert [r["loss"] for r in rows if r["metric"] == "miou" and r["analysis"] == "reference"] == [
        "majority class", "untrained model"]
    assert miou[1]["p_value"] != ""  # paired test from two seeds on
    assert "miou" in result.output and "± " in result.output  # table on stdout
    assert max(len(line) for line in result.output.splitlines() if not line.startswith("results: ")) <= 120
    wide = invoke("compare", "--task", "seg", "--losses", "ce,0.5*dice", "--seeds", "2", "--out", str(tmp_path),
                  "--quiet", "--wide", *TINY)  # the trials are done: only the tables again, in one
    assert wide.exit_code == 0 and sum(line.startswith("loss ") for line in wide.output.splitlines()) == 1
    assert any(len(line) > 120 for line in wide.output.splitlines())
    # report gathers it
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = (tmp_path / "REPORT.md").read_text()
    assert "seg · synth-pets" in report and "bars.png" in report and "Reproduce: `cvloss compare" in report


def test_same_seed_same_init_and_batches_and_identical_reruns(tmp_path):
    """Two identical runs give identical metrics; two losses at one seed start from the
    same weights (checked through the trial's first-step state)."""
    a = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path / "a"), "--quiet", *TINY)
    b = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path / "b"), "--quiet", *TINY)
    assert a.exit_code == 0 and b.exit_code == 0
    read = lambda root: (Path(root) / "seg" / "synth-pets" / LABEL / "ce" / "seed0" / "metrics.csv").read_text()
    strip = lambda text: [line.rsplit(",", 3)[0] for line in text.splitlines()]  # drop timing columns
    assert strip(read(tmp_path / "a")) == strip(read(tmp_path / "b"))


def test_models_start_from_the_same_weights_for_every_loss(tmp_path):
    import torch

    from cvloss.losses import build_loss
    from cvloss.run.trainer import resolve_device, seed_everything
    from cvloss.tasks.seg import SegTask

    params = SegTask.spec.budgets["smoke"] | {"n_train": 8, "n_val": 4}
    weights = []
    for spec in ("ce", "topo", "dice"):
        build_loss(spec, task="seg", feature_weights="random")  # building a loss must not shift the RNG
        task = SegTask("synth-pets", params, resolve_device("cpu"))
        task.load_data()
        seed_everything(3)
        weights.append(torch.cat([p.flatten() for p in task.build_model().parameters()]))
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    base = dict(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=1,
                overrides={"n_train": 16, "n_val": 8, "epochs": 3})
    full = run_trial(TrialConfig(out=str(tmp_path / "full"), **base))
    crashed_cfg = TrialConfig(out=str(tmp_path / "crash"), **base)
    partial = run_trial(crashed_cfg, stop_after_epoch=1)
    assert partial["status"] == "interrupted" and not (crashed_cfg.trial_dir / "summary.json").exists()
    resumed = run_trial(crashed_cfg)
    assert resumed["metrics"] == full["metrics"]
    # a finished trial is skipped, not rerun
    again = run_trial(crashed_cfg)
    assert again == json.loads((crashed_cfg.trial_dir / "summary.json").read_text())


def test_divergence_is_reported_and_other_losses_go_on(tmp_path):
    # 1e39 overflows float32: the weighted loss is inf at the first step.
    result = invoke("compare", "--task", "seg", "--losses", "ce,1e39*ce", "--seeds", "1", "--out", str(tmp_path),
                    "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    group = tmp_path / "seg" / "synth-pets" / LABEL
    statuses = {p.parent.parent.name: json.loads(p.read_text())["status"] for p in group.glob("*/seed0/summary.json")}
    assert statuses["1e+39xce"] == "diverged" and statuses["ce"] in ("done", "degenerate") and len(statuses) == 2
    assert "0/1 (1 diverged)" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "--task", "nope", "--losses", "ce"], "unknown task 'nope'"),
        (["compare", "--task", "seg", "--losses", "ce,mes"], "unknown loss 'mes'"),
        (["compare", "--task", "seg", "--losses", "ce,triplet"], "does not serve task 'seg'"),
        (["compare", "--task", "seg", "--losses", "ce", "--dataset", "lfw"], "dataset 'lfw' serves embed"),
        (["compare", "--task", "seg", "--losses", "ce", "--dataset", "pets"], "unknown dataset 'pets'"),
        (["compare", "--task", "seg", "--losses", "ce", "--seeds", "0"], "--seeds must be a count >= 1"),
        (["compare", "--task", "seg", "--losses", "ce", "--budget", "huge"], "unknown budget 'huge'"),
        (["compare", "--task", "seg", "--losses", "ce", "--set", "epoch=1"], "unknown setting 'epoch'"),
        (["train", "--task", "seg", "--loss", "ce(", "--device", "cpu"], "syntax error at column 4"),
        (["train", "--task", "seg", "--loss", "ce", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = invoke(*args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists(), "nothing may be trained or written before the input is valid"


def test_real_dataset_missing_offline_names_what_to_fetch(tmp_path):
    result = invoke("compare", "--task", "seg", "--losses", "ce", "--dataset", "oxford-pets",
                    "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "cvloss datasets download oxford-pets" in line and str(tmp_path / "data" / "oxford-pets") in line


def test_unwritable_output_dir(tmp_path):
    # A regular file where the results folder should be: unwritable even for root.
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(blocker / "x"), "--quiet", *TINY)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: cannot write results to") and len(result.output.strip().splitlines()) == 1
    assert blocker.read_text() == "keep me"


def test_existing_results_with_other_configuration_are_protected(tmp_path):
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", out=str(tmp_path), overrides={"n_train": 16, "n_val": 8, "epochs": 1})
    run_trial(cfg, stop_after_epoch=0)
    info = json.loads((cfg.trial_dir / "trial.json").read_text())
    info["feature_weights"] = "imagenet"
    (cfg.trial_dir / "trial.json").write_text(json.dumps(info))
    (cfg.trial_dir / "summary.json").unlink(missing_ok=True)
    result = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), "--quiet",
                    "--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=1")
    assert result.exit_code == 2 and "trial of another configuration (feature weights: recorded 'imagenet'" in result.output


def test_ctrl_c_stops_cleanly_with_checkpoint_and_resumes(tmp_path, monkeypatch):
    from cvloss.tasks.seg import SegTask

    calls = {"n": 0}
    original = SegTask.train_step

    def interrupted_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # second epoch (2 batches per epoch at n_train=16, batch 8)
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SegTask, "train_step", interrupted_step)
    result = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), "--quiet", *TINY)
    assert result.exit_code == 130
    assert "interrupted" in result.output and "run the same command again to resume" in result.output
    trial = tmp_path / "seg" / "synth-pets" / LABEL / "ce" / "seed0"
    assert (trial / "checkpoint.pt").exists() and not (trial / "summary.json").exists()
    monkeypatch.setattr(SegTask, "train_step", original)
    result = invoke("train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), "--quiet", *TINY)
    assert result.exit_code == 0 and (trial / "summary.json").exists()
    assert [r["epoch"] for r in csv.DictReader(open(trial / "metrics.csv"))] == ["1", "2"]


@pytest.mark.slow  # processes killed or run side by side: .ci/run runs it (-m slow); the default suite leaves it out
def test_kill_9_mid_trial_then_same_command_resumes(tmp_path):
    """A real SIGKILL of the CLI process after its first checkpoint; the rerun resumes and
    ends with the metrics of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["--task", "seg", "--loss", "ce", "--quiet", "--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=4"]
    label = "smoke+epochs=4+n_train=16+n_val=8"
    cmd = [sys.executable, "-c", "from cvloss.cli import main; main()", "train", *args]
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    trial = killed_out / "seg" / "synth-pets" / label / "ce" / "seed0"
    proc = subprocess.Popen(cmd + ["--out", str(killed_out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (trial / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the trial finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (trial / "summary.json").exists()
    assert subprocess.run(cmd + ["--out", str(killed_out)], capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--out", str(clean_out)], capture_output=True).returncode == 0
    resumed = json.loads((trial / "summary.json").read_text())["metrics"]
    clean = json.loads((clean_out / trial.relative_to(killed_out) / "summary.json").read_text())["metrics"]
    assert resumed == clean


def test_a_divergence_is_a_result_unless_strict(tmp_path):
    args = ["compare", "--task", "seg", "--losses", "ce,1e39*ce", "--seeds", "1", "--quiet", *TINY]
    relaxed = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert relaxed.exit_code == 0, relaxed.output
    assert re.search(r"failures: (1 degenerate, )?1 diverged of 2 trial\(s\)", relaxed.stderr), relaxed.stderr
    assert "--strict" in relaxed.stderr
    strict = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--strict"])  # same trials, now strict
    assert strict.exit_code == 1 and re.search(r"failures: (1 degenerate, )?1 diverged", strict.stderr)
    one = runner.invoke(app, ["train", "--task", "seg", "--loss", "1e39*ce", "--quiet", "--out", str(tmp_path / "b"),
                              *TINY])
    assert one.exit_code == 0 and "failures: 1 diverged of 1 trial(s)" in one.stderr
