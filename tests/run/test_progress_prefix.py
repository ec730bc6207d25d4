"""Progress lines name a trial as the results layout does (``[seg/myseg-<hash>/ce/seed0]``,
never a dataset folder's full path), and a comparison describes its data once, not once
per trial."""
from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.config import SearchCandidate, TrialConfig
from cvloss.run.progress import ComparisonView, LineReporter, data_line
from cvloss.run.trainer import trial_label

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_folder_datasets_prefix",
    Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py")
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)


def _short(path: str) -> str:
    return f"{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def test_trial_label_names_the_results_folders():
    folder = "/home/me/data/myseg"
    cfg = TrialConfig(task="seg", loss="0.5*dice", dataset=folder, seed=3)
    label = trial_label(cfg)
    assert label == f"seg/{_short(folder)}/0.5xdice/seed3"
    # each part is the folder the trial is written to
    assert label.split("/")[1:] == [cfg.trial_dir.parents[2].name, cfg.trial_dir.parent.name, cfg.trial_dir.name]
    assert trial_label(TrialConfig(task="seg", loss="ce", dataset="synth-pets")) == "seg/synth-pets/ce/seed0"
    assert trial_label(replace(cfg, fold=1)) == f"seg/{_short(folder)}/0.5xdice/seed3/fold1"
    # a tuning trial: named after the spec compared, t<i> for the seed
    tuning = replace(cfg, loss="dice(smooth=0.5)", name="dice", place=SearchCandidate("abcd1234", 2))
    assert trial_label(tuning) == f"seg/{_short(folder)}/dice/t2"


def test_a_data_line_is_printed_once_per_distinct_text():
    for reporter_cls in (LineReporter, ComparisonView):
        out = io.StringIO()
        rep = reporter_cls(out)
        pets = data_line("seg/synth-pets", "32 train / 16 val / 16 test images; device: cpu")
        for _ in range(3):  # three trials of one comparison
            rep.message(pets)
            rep.message("[seg/synth-pets/ce/seed0] locked by pid 1")  # other messages: every time
        rep.message(data_line("seg/synth-vessels", "8 train / 4 val / 4 test images; device: cpu"))
        rep.message(data_line("seg/synth-pets", "random(seed=0)", key="feature weights"))
        rep.message(data_line("seg/synth-pets", "random(seed=0)", key="feature weights"))
        assert out.getvalue().splitlines() == [
            "[seg/synth-pets] data: 32 train / 16 val / 16 test images; device: cpu",
            *["[seg/synth-pets/ce/seed0] locked by pid 1"] * 3,
            "[seg/synth-vessels] data: 8 train / 4 val / 4 test images; device: cpu",
            "[seg/synth-pets] feature weights: random(seed=0)",
        ], reporter_cls


def test_a_two_loss_comparison_on_a_folder_prints_short_prefixes_and_the_data_once(tmp_path):
    root = fd.build_seg(tmp_path / "myseg", n=12)
    res = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "1",
                                   "--dataset", str(root), "--out", str(tmp_path / "out"), "--set", "n_train=8",
                                   "--set", "n_val=2", "--set", "image_size=16", "--set", "batch_size=4",
                                   "--set", "width=4", "--set", "epochs=1"])
    assert res.exit_code == 0, res.output
    short = _short(str(root.resolve()))
    assert (tmp_path / "out" / "seg" / short).is_dir()  # the results folder the prefix names
    lines = res.output.splitlines()
    data = [line for line in lines if "] data: " in line]
    assert len(data) == 1 and data[0].startswith(f"[seg/{short}] data: ")
    assert "8 train / 1 val / 1 test images" in data[0]  # the folder's split, described once for both losses
    for loss in ("ce", "dice"):
        assert f"[seg/{short}/{loss}/seed0] 1 epochs x 2 batches" in lines
    assert not [line for line in lines if line.startswith("[") and str(root) in line.split("]")[0]]
