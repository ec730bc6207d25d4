"""Several commands at once: two identical comparisons started together train each trial
exactly once and leave the table a single run leaves; one plot written from many threads
and processes at once never fails and is always one whole file."""
from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cvloss.cli import app

PNG = b"\x89PNG\r\n\x1a\n"
ARGS = ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "2", "--budget", "smoke", "--threads", "1",
        "--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=1"]
CMP = Path("seg", "synth-pets", "smoke+epochs=1+n_train=16+n_val=8", "compare--ce--dice")


@pytest.mark.slow  # processes killed or run side by side: .ci/run runs it (-m slow); the default suite leaves it out
def test_two_identical_compares_at_once_train_each_trial_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2])] + sys.path),
           "OMP_NUM_THREADS": "1", "CVLOSS_LOCK_POLL": "0.1"}
    out = tmp_path / "together"
    cmd = [sys.executable, "-m", "cvloss.cli", *ARGS, "--out", str(out)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    # a trial start is the line "[<label>] <epochs> epochs x <batches> batches" (progress on stderr)
    starts = [m for _, err in logs for m in re.findall(r"^\[(\S+)\] \d+ epochs x \d+ batches", err, re.M)]
    labels = [f"seg/synth-pets/{loss}/seed{s}" for s in (0, 1) for loss in ("ce", "dice")]
    assert sorted(starts) == sorted(labels), logs  # each trial trained once, by one of the two
    assert not any("resuming" in err for _, err in logs)
    single = tmp_path / "single"
    result = CliRunner().invoke(app, [*ARGS, "--out", str(single), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / CMP / "compare.csv").read_text() == (single / CMP / "compare.csv").read_text()
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary or lock files left behind"


def _grid(path: Path, times: int, seed: int) -> None:
    from cvloss.report.grid import save_grid

    img = np.random.default_rng(seed).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    for _ in range(times):
        save_grid({"input": img, "pred": img}, path)


def _plot(path: Path, times: int) -> None:
    from cvloss.report import plots

    for _ in range(times):
        fig, ax = plots.plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [0, 1])
        plots.save_figure(fig, path)


@pytest.mark.parametrize("writer", [_grid, _plot])
def test_one_plot_written_by_many_threads_and_processes_at_once(tmp_path, writer, monkeypatch):
    monkeypatch.delenv("CVLOSS_PLOT_FORMATS", raising=False)  # every format: more files written at once
    path = tmp_path / "samples.png"
    args = (path, 5) if writer is _plot else (path, 5, 0)
    errors = []

    def run():
        try:
            writer(*args)
        except Exception as exc:  # pragma: no cover - what the test is for
            errors.append(exc)

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=writer, args=args) for _ in range(3)]
    threads = [threading.Thread(target=run) for _ in range(4)]
    [p.start() for p in procs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    [p.join(60) for p in procs]
    assert not errors and [p.exitcode for p in procs] == [0, 0, 0]
    assert path.read_bytes().startswith(PNG)
    # no temporary file left; comparison plots come with their PDF and SVG (report.plots.save_figure)
    expected = ["samples.png"] if writer is _grid else ["samples.pdf", "samples.png", "samples.svg"]
    assert sorted(os.listdir(tmp_path)) == expected
