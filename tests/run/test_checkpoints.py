"""Checkpoints and weights files: a file that holds code or is corrupt is one line naming
it (never torch's advice to pass weights_only=False); our own trial's corrupt checkpoint
is set aside and the trial resumes from the previous one, or restarts from scratch."""
from __future__ import annotations

import os
import pickle

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import CheckpointError
from cvloss.run.config import TrialConfig
from cvloss.io import load_checkpoint, save_checkpoint
from cvloss.run.trainer import CHECKPOINT, PREV_CHECKPOINT, run_trial


class Payload:
    """Unpickling this runs ``touch <marker>``: the test fails if the marker appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_files(tmp_path):
    marker = tmp_path / "PWNED"
    zip_format, legacy = tmp_path / "zip.pt", tmp_path / "legacy.pt"
    torch.save({"model": Payload(marker)}, zip_format)
    with open(legacy, "wb") as fh:
        pickle.dump({"model": Payload(marker)}, fh, protocol=4)
    return marker, [zip_format, legacy]


def test_hostile_and_corrupt_checkpoints_are_one_line_of_our_own(tmp_path):
    marker, hostile = hostile_files(tmp_path)
    for path in hostile:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert info.value.holds_code and msg.startswith(f"checkpoint {path} refused: it holds code")
        assert "posix.system" in msg and "\n" not in msg and "weights_only" not in msg
    assert not marker.exists()
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"w": torch.ones(64)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:300])
    for path, reason in ((empty, "it is empty (0 bytes)"), (cut, "it is corrupt or truncated (300 bytes")):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert not info.value.holds_code and str(info.value).startswith(f"checkpoint {path} refused: {reason}")


def test_hostile_feature_weights_file_is_one_line(tmp_path):
    marker, (path, _) = hostile_files(tmp_path)
    result = CliRunner().invoke(app, ["train", "--task", "sr", "--loss", "perceptual", "--feature-weights", str(path),
                                      "--out", str(tmp_path / "out"), "--quiet", "--set", "epochs=1"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and f"feature weights file {path} refused: it holds code" in lines[0]
    assert "weights_only" not in result.output and not marker.exists()
    assert not (tmp_path / "out").exists()


BASE = dict(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=1,
            overrides={"n_train": 16, "n_val": 8, "epochs": 3})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run_trial(TrialConfig(out=str(tmp_path_factory.mktemp("full")), **BASE))["metrics"]


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_corrupt_checkpoint_is_set_aside_and_the_previous_resumes(tmp_path, uninterrupted, damage, capture):
    cfg = TrialConfig(out=str(tmp_path), **BASE)
    assert run_trial(cfg, stop_after_epoch=2)["status"] == "interrupted"
    ckpt = cfg.trial_dir / CHECKPOINT
    assert load_checkpoint(ckpt)["epoch"] == 2 and load_checkpoint(cfg.trial_dir / PREV_CHECKPOINT)["epoch"] == 1
    data = ckpt.read_bytes()
    damaged = data[: len(data) // 2] if damage == "truncate" else b""
    ckpt.write_bytes(damaged)
    rep = capture
    assert run_trial(cfg, rep)["metrics"] == uninterrupted
    said = [l for l in rep.lines if "set aside" in l]
    assert len(said) == 1 and said[0].startswith("[seg/synth-pets/ce/seed1] unusable checkpoint set aside: checkpoint.pt (")
    assert said[0].endswith("as checkpoint.pt.corrupt-1; resuming from checkpoint.prev.pt (epoch 1)")
    assert "START seg/synth-pets/ce/seed1 at 1" in rep.lines
    assert (cfg.trial_dir / "checkpoint.pt.corrupt-1").read_bytes() == damaged  # kept for a post-mortem


def test_both_checkpoints_corrupt_restarts_from_scratch(tmp_path, uninterrupted, capture):
    cfg = TrialConfig(out=str(tmp_path), **BASE)
    run_trial(cfg, stop_after_epoch=2)
    (cfg.trial_dir / CHECKPOINT).write_bytes(b"")
    (cfg.trial_dir / PREV_CHECKPOINT).write_bytes(b"garbage")
    rep = capture
    assert run_trial(cfg, rep)["metrics"] == uninterrupted
    said = [l for l in rep.lines if "set aside" in l]
    assert len(said) == 1 and said[0].endswith("restarting the trial from scratch")
    assert "checkpoint.pt.corrupt-1" in said[0] and "checkpoint.prev.pt.corrupt-1" in said[0]


def test_hostile_checkpoint_in_a_trial_stops_it_with_one_line(tmp_path):
    cfg = TrialConfig(out=str(tmp_path), **BASE)
    run_trial(cfg, stop_after_epoch=1)
    marker, (hostile, _) = hostile_files(tmp_path)
    os.replace(hostile, cfg.trial_dir / CHECKPOINT)
    result = CliRunner().invoke(app, ["train", "--task", "seg", "--loss", "ce", "--seed", "1", "--out", str(tmp_path),
                                      "--quiet", "--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=3"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: checkpoint {cfg.trial_dir / CHECKPOINT} refused: it holds code")
    assert lines[0].endswith("delete it to restart the trial") and "weights_only" not in lines[0]
    assert not marker.exists() and not (cfg.trial_dir / "summary.json").exists()
    assert not (cfg.trial_dir / "trial.lock").exists()
