"""The process-pool executor: the same metrics as serial for every task, a worker killed
once (retried) and twice (crashed, exit 1, no summary), Ctrl-C (resumable), and two
`compare --jobs 2` commands on one --out (each trial trained once). One thread per
process on both sides, so serial and parallel compute the same floats."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.config import TrialConfig
from cvloss.run.executor import KILL_HOOK_ENV, ProcessExecutor, SerialExecutor
from cvloss.run.trainer import SUMMARY

ROOT = Path(__file__).parents[2]
# One loss per task at tiny sizes (the task tests' TINY settings), one seed: six trials that
# finish out of order on two workers; adversarial ones where the task has them.
TASKS = {
    "seg": ("synth-pets", ["ce"], {"n_train": 8, "n_val": 4, "image_size": 32, "width": 4, "epochs": 1}),
    "sr": ("skimage-photos", ["l1+0.001*ns"], {"hr_size": 40, "patch": 16, "repeat": 1, "batch_size": 4, "n_feats": 4,
                                             "d_width": 4, "epochs": 1}),
    "style": ("skimage-photos", ["content+100*style+0.01*tv"], {"image_size": 32, "epochs": 1}),
    "embed": ("synth-ids", ["triplet(mining=semi_hard)"], {"epochs": 1, "P": 4, "K": 3, "n_train_ids": 12, "per_id": 4,
                                                        "n_val_ids": 20, "val_per_id": 2, "pairs_per_fold": 2,
                                                        "width": 4, "dim": 16, "collapse_tol": 0.0}),
    "translate": ("synth-stripes", ["2*lsgan+cycle+identity"],
                  {"n_train": 8, "n_val": 4, "epochs": 1, "batch_size": 4, "g_width": 4, "d_width": 4, "n_blocks": 1}),
    "gan": ("ring8", ["wgan_gp"], {"steps_per_epoch": 6, "batch_size": 32, "hidden": 16, "layers": 2,
                                       "n_eval": 200, "epochs": 1}),
}
TIMES = ("epoch_time_s", "train_time_s", "data_time_s", "wall_s")


def _cfgs(out: Path) -> list[TrialConfig]:
    from cvloss.run.budgets import resolve_overrides
    from cvloss.run.compare import canonical_specs

    cfgs = []
    for task, (dataset, losses, sets) in TASKS.items():
        overrides = resolve_overrides(task, {k: str(v) for k, v in sets.items()})
        for spec in canonical_specs(losses, task):
            cfgs.append(TrialConfig(task=task, loss=spec, dataset=dataset, budget="smoke", seed=0, device="cpu",
                                    out=str(out), feature_weights="random", overrides=overrides, threads=1))
    return cfgs


def _rows(trial_dir: Path) -> list[dict[str, str]]:
    with open(trial_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(fh)]


def _same(metrics: dict) -> dict:
    """NaN (a metric without its extra, e.g. lpips) compares equal to NaN; wall time
    (style's ``wall_s``) is not a result."""
    return {k: "nan" if v != v else v for k, v in metrics.items() if k not in ("wall_s",)}


def test_jobs_2_gives_the_serial_metrics_for_every_task(tmp_path, capture):
    serial = SerialExecutor().run(_cfgs(tmp_path / "serial"), capture)
    pooled_cfgs = _cfgs(tmp_path / "pool")
    pooled = ProcessExecutor(2, threads=1).run(pooled_cfgs, capture)
    assert [s["status"] for s in pooled] == [s["status"] for s in serial]
    assert set(s["task"] for s in pooled) == set(TASKS)
    for a, b, cfg in zip(serial, pooled, pooled_cfgs):
        assert a["metrics"] and _same(a["metrics"]) == _same(b["metrics"]), cfg.loss  # bit-identical floats
        serial_dir = Path(str(cfg.trial_dir).replace(str(tmp_path / "pool"), str(tmp_path / "serial")))
        assert _rows(cfg.trial_dir) == _rows(serial_dir)  # every epoch's metrics and train losses
    # the worker's threads are recorded per trial
    import json

    info = json.loads((pooled_cfgs[0].trial_dir / "trial.json").read_text())
    assert info["config"]["threads"] == 1 and "1 threads" in info["device"]


SEG = ["compare", "--task", "seg", "--losses", "ce,dice", "--budget", "smoke", "--threads", "1", "--jobs", "2",
       "--set", "n_train=8", "--set", "n_val=4", "--set", "image_size=32", "--set", "width=4"]


def _group(epochs: int) -> Path:
    return Path("seg", "synth-pets", f"smoke+epochs={epochs}+image_size=32+n_train=8+n_val=4+width=4")


@pytest.mark.slow  # processes killed or run side by side: .ci/run runs it (-m slow); the default suite leaves it out
def test_a_killed_worker_is_retried_once_then_its_trial_crashed(tmp_path, monkeypatch):
    out, group = tmp_path / "out", _group(1)
    # ce/seed0's worker dies on both attempts; dice/seed0's on its first only
    monkeypatch.setenv(KILL_HOOK_ENV, "/ce/seed0:2,/dice/seed0:1")
    res = CliRunner().invoke(app, [*SEG, "--seeds", "1", "--set", "epochs=1", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert re.search(r"^ce .*1 crashed", res.stdout, re.M), res.stdout  # the table is written, the trial counted as crashed
    assert res.output.count("died (killed by SIGKILL); retrying the trial (attempt 2 of 2)") == 2
    assert "[seg/synth-pets/ce/seed0] CRASHED" in res.output  # dice's 1-epoch trial may end degenerate too
    assert re.search(r"failures: 1 crashed(, 1 degenerate)? of 2 trial\(s\)", res.output), res.output
    assert not (out / group / "ce" / "seed0" / SUMMARY).exists()
    assert (out / group / "dice" / "seed0" / SUMMARY).exists()  # retried: the other trial goes on
    assert "took over the lock" in res.output  # the dead worker's lock is stale by its pid
    import json

    compare = json.loads((out / group / "compare--ce--dice" / "compare.json").read_text())
    assert compare["status"]["ce"] == ["crashed"] and compare["status"]["dice"] in (["done"], ["degenerate"])
    from cvloss.run.analysis import trial_status

    crashed = out / group / "ce" / "seed0"
    marker = json.loads((crashed / "crashed.json").read_text())  # read again later, it is still a crash
    assert marker["status"] == "crashed" and "worker died 2 times" in marker["crash"]
    assert trial_status(crashed, None) == "crashed"
    # a rerun retries the crashed trial (its worker dies once more, then it finishes)
    monkeypatch.setenv(KILL_HOOK_ENV, "/ce/seed0:1")
    res = CliRunner().invoke(app, [*SEG, "--seeds", "1", "--set", "epochs=1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "[seg/synth-pets/dice/seed0] already done, skipped" in res.output
    assert (out / group / "ce" / "seed0" / SUMMARY).exists() and not (crashed / "crashed.json").exists()
    assert not list(out.rglob("trial.lock*"))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path), "OMP_NUM_THREADS": "1",
            "CVLOSS_LOCK_POLL": "0.1", "CVLOSS_PLOT_FORMATS": "png"}


@pytest.mark.slow  # processes killed or run side by side: .ci/run runs it (-m slow); the default suite leaves it out
def test_ctrl_c_stops_every_worker_and_the_rerun_resumes(tmp_path):
    out, group = tmp_path / "out", _group(40)
    cmd = [sys.executable, "-m", "cvloss.cli", *SEG, "--seeds", "1", "--set", "epochs=40", "--out", str(out)]
    # SIGINT at its default in the child: a suite started in the background (`cmd &`) runs with
    # SIGINT ignored, which the child would inherit, and then Ctrl-C could not be simulated
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpts = [out / group / loss / "seed0" / "checkpoint.pt" for loss in ("ce", "dice")]
    deadline = time.monotonic() + 120
    while not any(p.exists() for p in ckpts) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)  # to the parent only: it interrupts its workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished epochs are checkpointed" in err
    assert not list(out.rglob("trial.lock*")), "a worker left its lock"
    assert not list(out.rglob(SUMMARY))
    started = sorted(p.parent.parent.name for p in ckpts if p.exists())
    res = CliRunner().invoke(app, [*SEG, "--seeds", "1", "--set", "epochs=40", "--out", str(out)])
    assert res.exit_code == 0, res.output
    resumed = re.findall(r"^\[seg/synth-pets/(\w+)/seed0\] 40 epochs x \d+ batches \(resuming at epoch (\d+)\)",
                         res.output, re.M)
    assert started and sorted(loss for loss, _ in resumed) == started, res.output  # every checkpointed trial resumes
    assert all(int(epoch) > 1 for _, epoch in resumed)
    for loss in ("ce", "dice"):
        rows = list(csv.DictReader(open(out / group / loss / "seed0" / "metrics.csv")))
        epochs = [int(r["epoch"]) for r in rows]
        assert epochs == sorted(set(epochs)) and epochs[-1] == 40  # each epoch once, to the end


@pytest.mark.slow  # processes killed or run side by side: .ci/run runs it (-m slow); the default suite leaves it out
def test_two_compares_with_jobs_on_one_out_train_each_trial_once(tmp_path):
    out, group = tmp_path / "out", _group(1)
    cmd = [sys.executable, "-m", "cvloss.cli", *SEG, "--seeds", "1", "--set", "epochs=1", "--out", str(out)]
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    starts = [m for _, err in logs for m in re.findall(r"^\[(\S+)\] \d+ epochs x \d+ batches", err, re.M)]
    labels = [f"seg/synth-pets/{loss}/seed0" for loss in ("ce", "dice")]
    assert sorted(starts) == sorted(labels), logs  # each trial trained once, by one of the two
    for label in labels:
        _, _, loss, seed = label.split("/")
        rows = list(csv.DictReader(open(out / group / loss / seed / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["1"]  # one epoch row: never trained twice
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary or lock files left behind"
    # plain lines, never two events on one line
    for _, err in logs:
        assert all(line.count("[seg/synth-pets/") <= 1 for line in err.splitlines()), err


# ---------------------------------------------------------------------- one interface, one registry
def test_the_registry_builds_each_executor_and_refuses_options_of_another():
    from cvloss.errors import UsageError
    from cvloss.run.executor import EXECUTORS, ExecutorOptions, executor_from_options, resolve_executor

    assert EXECUTORS.names()[:3] == ["local", "ray", "slurm"]
    serial = executor_from_options("local", ExecutorOptions())
    pool = executor_from_options("local", ExecutorOptions(jobs=2, threads=1))
    assert type(serial) is SerialExecutor and not serial.concurrent
    assert type(pool) is ProcessExecutor and pool.concurrent and pool.resources().cpus == 1
    assert pool.resources().describe() == "2 worker processes: 1 CPU thread(s) per trial"
    for name, opts, says in (
            ("local", ExecutorOptions(address="auto"),
             "--address is an option of --executor ray: it needs --executor ray"),
            ("ray", ExecutorOptions(slurm_qos="high"), "--slurm-qos is an option of --executor slurm"),
            ("local", ExecutorOptions(slurm_extra=["mem=1G"]), "--slurm-extra is an option of --executor slurm"),
            ("local", ExecutorOptions(jobs=0), "--jobs must be >= 1; got 0"),
            ("pbs", ExecutorOptions(), "unknown --executor 'pbs'; valid: local, ray, slurm")):
        with pytest.raises(UsageError) as err:
            executor_from_options(name, opts)
        assert str(err.value).startswith(says), (name, str(err.value))
    # the library's executor= argument: an executor, a registry name, or None
    assert type(resolve_executor(None)) is SerialExecutor and type(resolve_executor("local")) is SerialExecutor
    assert resolve_executor(pool) is pool


def test_the_view_follows_the_executor():
    from cvloss.run.progress import ComparisonView, LineReporter, Reporter

    assert type(SerialExecutor().progress(False, ["miou"])) is LineReporter  # not a terminal here
    assert type(ProcessExecutor(2, threads=1).progress(False, ["miou"])) is ComparisonView
    assert type(ProcessExecutor(2, threads=1).progress(True)) is Reporter  # --quiet


_PLUGIN = '''
from cvloss.run.executor import Executor, SerialExecutor, TrialResources

CALLS = []


class LabExecutor(Executor):
    """A lab's own executor: runs the trials here, and records that it did."""

    name = "lab"

    def __init__(self, threads):
        self.threads = threads

    @classmethod
    def from_options(cls, opts):
        return cls(opts.threads)

    def resources(self):
        return TrialResources(cpus=self.threads, where="the lab's queue")

    def run(self, cfgs, reporter=None):
        CALLS.append(len(cfgs))
        return SerialExecutor().run(cfgs, reporter)


def not_an_executor():
    return None
'''


def test_an_installed_executor_is_found_through_its_entry_point(tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    import cvloss.registry as registry
    from cvloss.errors import UsageError
    from cvloss.run.executor import EXECUTORS, ExecutorOptions, executor_from_options

    (tmp_path / "lab_executors.py").write_text(_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [EntryPoint("lab", "lab_executors:LabExecutor", "cvloss.executors"),
              EntryPoint("odd", "lab_executors:not_an_executor", "cvloss.executors")]
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    monkeypatch.setattr(EXECUTORS, "_plugins", None)  # read the (patched) entry points again
    monkeypatch.setattr(EXECUTORS, "_loaded", {})  # what the test loads goes away after
    assert EXECUTORS.names() == ["local", "ray", "slurm", "lab", "odd"]
    assert executor_from_options("lab", ExecutorOptions(threads=3)).resources().cpus == 3
    with pytest.raises(UsageError, match="--executor odd: its entry point names .*not a cvloss Executor subclass"):
        executor_from_options("odd")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce", "--seeds", "1", "--budget", "smoke",
                                   "--threads", "1", "--set", "n_train=8", "--set", "n_val=4", "--set", "epochs=1",
                                   "--set", "image_size=32", "--set", "width=4", "--executor", "lab",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    import lab_executors

    assert lab_executors.CALLS == [1] and len(list(out.rglob(SUMMARY))) == 1  # the CLI ran the trial through it


def test_cancel_stops_a_serial_run_at_a_batch_and_the_rerun_resumes(tmp_path, capture):
    from cvloss.run.budgets import resolve_overrides

    sets = {"n_train": "8", "n_val": "4", "epochs": "2", "image_size": "32", "width": "4"}
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=0, device="cpu",
                      out=str(tmp_path), overrides=resolve_overrides("seg", sets), threads=1)
    ex = SerialExecutor()

    class CancelAfterEpoch1(type(capture)):
        def epoch_end(self, epoch, epochs, row):
            ex.cancel()  # as another thread (or a signal handler) of a library user would

    with pytest.raises(KeyboardInterrupt):
        ex.run([cfg], CancelAfterEpoch1())
    trial = cfg.trial_dir
    assert (trial / "checkpoint.pt").exists() and not (trial / SUMMARY).exists()
    assert not (trial / "trial.lock").exists()  # the trial released its lock
    (summary,) = ex.run([cfg], capture)  # the request was consumed: a new run resumes and finishes
    assert summary["metrics"] and f"START {'seg/synth-pets/ce/seed0'} at 1" in capture.lines


def test_worker_messages_reach_the_reporter_and_the_pause_hook_pauses_once(monkeypatch, capture):
    import cvloss.run.executor as executor
    from cvloss.run.executor import Lines, PipeReporter, deliver

    monkeypatch.setattr(executor, "_PAUSE_S", 0.0)
    sent = []

    class Conn:
        send = sent.append

    rep = PipeReporter(Conn(), kill_hook=[], attempt=1, pause_hook=[("/ce/", 1)])
    rep.trial_start("seg/x/ce/seed0", 2, 3, 0)
    rep.epoch_end(1, 2, {"train_loss": 0.5, "note": "x", "skip": [1]})
    rep.trial_end("seg/x/ce/seed0", "done")
    Lines(Conn()).write("first line\n\npartial")
    assert sent[1] == ("trial_epoch", "seg/x/ce/seed0", 1, 2, {"train_loss": 0.5, "note": "x"})  # plain values only
    assert sent[2] == ("message", "[seg/x/ce/seed0] paused after epoch 1 (CVLOSS_TEST_PAUSE_WORKER)")
    assert sent[-1] == ("line", "first line")  # whole lines; the blank one dropped, the partial one kept
    assert [deliver(capture, m) for m in sent] == [True] * len(sent) and not deliver(capture, ("result", 0, {}))
    assert capture.lines == ["START seg/x/ce/seed0 at 0", "[seg/x/ce/seed0] paused after epoch 1 "
                             "(CVLOSS_TEST_PAUSE_WORKER)", "END seg/x/ce/seed0 done", "first line"]
    sent.clear()
    resumed = PipeReporter(Conn(), kill_hook=[], attempt=1, pause_hook=[("/ce/", 1)])
    resumed.trial_start("seg/x/ce/seed0", 2, 3, 1)  # resumed past epoch 1: no pause again
    resumed.epoch_end(2, 2, {})
    assert [m[0] for m in sent] == ["trial_start", "trial_epoch"]
