"""The Slurm executor, against a real one-node Slurm (the ``slurm_cluster`` fixture of
tests/run/conftest.py): the serial metrics bit for bit, a job preempted mid-trial
(``scancel --signal=USR2``) or requeued by Slurm (``scontrol requeue``) resumes, a job
that dies twice is crashed while the others finish, a job array, refusals before any
trial is submitted, and Ctrl-C. Every trial is a tiny seg trial at one thread.

The tests that need the cluster carry the ``slurm`` marker: they run in a pytest process
of their own (``pytest -m slurm``, as `.ci/run` does). The option parsing and the sbatch
script (``--slurm-gpus-per-trial`` included: there is no GPU here) are checked without it.
"""
from __future__ import annotations

import csv
import json
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
from cvloss.errors import UsageError
from cvloss.run.budgets import resolve_overrides
from cvloss.run.config import TrialConfig
from cvloss.run.executor import KILL_HOOK_ENV, PAUSE_HOOK_ENV, ExecutorOptions, executor_from_options
from cvloss.run.slurm_executor import LOGS_DIR, parse_extra, parse_time
from cvloss.run.trainer import CHECKPOINT, SUMMARY

ROOT = Path(__file__).parents[2]
TIMES = ("epoch_time_s", "train_time_s", "data_time_s", "wall_s")
# Two tiny epochs: a trial can be stopped after the first one's checkpoint and resume.
SETS = {"epochs": "2", "n_train": "8", "n_val": "4", "image_size": "32", "width": "4"}
GROUP = "seg/synth-pets/smoke+" + "+".join(f"{k}={v}" for k, v in sorted(SETS.items()))
runner = CliRunner()

try:
    import submitit
except ImportError:
    submitit = None
needs_submitit = pytest.mark.skipif(submitit is None, reason="submitit is not installed (pip install 'cvloss[slurm]')")


def _compare(out: Path, losses: str = "ce,dice", seeds: str = "1", *extra: str) -> list[str]:
    args = ["compare", "--task", "seg", "--losses", losses, "--seeds", seeds, "--budget", "smoke", "--threads", "1",
            "--out", str(out)]
    for key, value in SETS.items():
        args += ["--set", f"{key}={value}"]
    return [*args, *extra]


def _trials(out: Path) -> dict[str, tuple[dict, list[dict]]]:
    """Trial folder (relative) -> (final metrics, metrics.csv rows without times)."""
    found = {}
    for summary in sorted(out.rglob(SUMMARY)):
        with open(summary.parent / "metrics.csv", newline="") as fh:
            rows = [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(fh)]
        found[str(summary.parent.relative_to(out))] = (json.loads(summary.read_text())["metrics"], rows)
    return found


def _log_folder(out: Path) -> Path:
    (folder,) = (out / LOGS_DIR).iterdir()
    return folder


def _jobs(out: Path) -> list[list[str]]:
    """jobs.tsv of the run: job id, attempt, trial label, trial folder."""
    return [line.split("\t") for line in (_log_folder(out) / "jobs.tsv").read_text().splitlines()]


# ---------------------------------------------------------------------- without a cluster
def test_time_limits_in_slurm_forms():
    assert parse_time(None) == 240
    assert [parse_time(t) for t in ("90", "1:30", "4:00:00", "1-00", "1-2:30", "0-0:0:30", "2-0:0:1")] == \
        [90, 2, 240, 1440, 1590, 1, 2881]  # minutes, rounded up
    for bad in ("0", "0:00", "1:2:3:4", "abc", "-5", "1-", ""):
        with pytest.raises(UsageError, match="--slurm-time"):
            parse_time(bad)


def test_extra_options_and_the_ones_cvloss_sets_itself():
    assert parse_extra(["mem=8G", "constraint=a100", "exclusive", "mail_type=END"]) == \
        {"mem": "8G", "constraint": "a100", "exclusive": True, "mail-type": "END"}
    for item, says in (("time=5", "set by --slurm-time"), ("cpus_per_task=2", "set by --threads"),
                       ("gres=gpu:1", "set by --slurm-gpus-per-trial"), ("--partition=x", "set by --slurm-partition"),
                       ("output=x.log", "set by cvloss"), ("=8G", "expected KEY=VALUE"), ("mem=", "expected KEY=VALUE"),
                       ("a b=1", "expected KEY=VALUE")):
        with pytest.raises(UsageError, match=re.escape(says)):
            parse_extra([item])
    with pytest.raises(UsageError, match="gives --mem twice"):
        parse_extra(["mem=1G", "mem=2G"])


@pytest.mark.parametrize("opts, says", [
    (dict(jobs=2), "--jobs runs local worker processes"),
    (dict(devices="0"), "--devices names local GPUs"),
    (dict(device="cuda"), "--device cuda with --executor slurm"),
    (dict(device="cpu", slurm_gpus_per_trial=1), "--device cpu with --executor slurm"),
    (dict(slurm_gpus_per_trial=-1), "--slurm-gpus-per-trial must be >= 0"),
    (dict(slurm_array_parallelism=0), "--slurm-array-parallelism must be >= 1"),
    (dict(slurm_max_requeues=-1), "--slurm-max-requeues must be >= 0"),
    (dict(threads=0), "--threads must be >= 1"),
    (dict(slurm_time="soon"), "--slurm-time 'soon'"),
])
def test_bad_options_of_the_slurm_executor(opts, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        executor_from_options("slurm", ExecutorOptions(**opts))


def test_a_bad_option_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    for extra, says in ((["--slurm-extra", "time=5"], "--slurm-extra 'time=5': --time is set by --slurm-time"),
                        (["--slurm-time", "1:2:3:4"], "--slurm-time '1:2:3:4': expected a Slurm time limit"),
                        (["--jobs", "2"], "--jobs runs local worker processes")):
        result = runner.invoke(app, _compare(tmp_path / "out", "ce", "1", "--executor", "slurm", *extra))
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {says}"), result.output
    result = runner.invoke(app, _compare(tmp_path / "out", "ce", "1", "--slurm-partition", "gpu"))
    assert result.exit_code == 2 and result.stderr.strip() == \
        "error: --slurm-partition is an option of --executor slurm: it needs --executor slurm"
    assert list(tmp_path.iterdir()) == []


@needs_submitit
def test_the_sbatch_script_asks_for_what_the_options_say(tmp_path):
    ex = executor_from_options("slurm", ExecutorOptions(
        threads=4, slurm_gpus_per_trial=2, slurm_partition="gpu", slurm_account="lab", slurm_qos="high",
        slurm_time="1:30:00", slurm_extra=["mem=8G", "exclusive"], slurm_array_parallelism=2))
    script = ex.sbatch_script(tmp_path, trials=6, job_name="cvloss:seg")
    flags = set(re.findall(r"^#SBATCH (\S+)$", script, re.M))
    assert {"--gres=gpu:2", "--cpus-per-task=4", "--partition=gpu", "--account=lab", "--qos=high", "--time=90",
            "--mem=8G", "--exclusive", "--array=0-5%2", "--job-name=cvloss:seg", "--signal=USR2@90"} <= flags, script
    assert f"--output={tmp_path}/%A_%a_0_log.out" in flags  # the logs of each job in the run's folder
    assert re.search(r"^srun .* -m submitit\.core\._submit ", script, re.M)
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=0, device="auto",
                      out="rel/out", overrides=resolve_overrides("seg", dict(SETS)))
    fields = ex._fields(cfg)
    assert fields["device"] == "cuda" and fields["threads"] == 4 and Path(fields["out"]).is_absolute()
    single = executor_from_options("slurm", ExecutorOptions())  # the defaults: one CPU, no GPU, 4 h, no array
    flags = set(re.findall(r"^#SBATCH (\S+)$", single.sbatch_script(tmp_path, trials=6), re.M))
    assert {"--cpus-per-task=1", "--time=240"} <= flags and not any(f.startswith(("--gres", "--array")) for f in flags)
    assert single._fields(cfg)["device"] == "cpu"


@needs_submitit
def test_a_preempted_trial_is_requeued_up_to_its_limit(tmp_path):
    """What submitit calls on USR2: a requeue (the same trial, its count one more) while
    fewer than max_requeues happened, then None (the job ends: the trial is crashed)."""
    from cvloss.run.slurm_executor import SlurmTrial

    events = tmp_path / "trial-0.jsonl"
    trial = SlurmTrial({}, str(events), {}, "owner", [], False, attempt=1, max_requeues=2)
    first = trial.checkpoint()
    second = first.function.checkpoint()
    assert first.function is trial and second.function.requeues == 2 and trial.checkpoint() is None
    assert [json.loads(line) for line in events.read_text().splitlines()] == \
        [["requeued", 1, 2], ["requeued", 2, 2], ["requeue_limit", 2]]


@needs_submitit
def test_without_the_slurm_commands_it_says_where_to_run(tmp_path, monkeypatch):
    from cvloss.run.slurm_executor import SlurmExecutor

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=0, out=str(tmp_path / "out"))
    with pytest.raises(UsageError, match=r"^--executor slurm: no sbatch on PATH: run cvloss on a Slurm login node"):
        SlurmExecutor().run([cfg])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- against the cluster
@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial runs (this process, one thread) of every trial the tests below make:
    ce, dice and focal at seeds 0 and 1."""
    out = tmp_path_factory.mktemp("serial")
    result = runner.invoke(app, _compare(out, "ce,dice,focal", "2"))
    assert result.exit_code == 0, result.output
    return _trials(out)


def _same_as_serial(serial: dict, out: Path, expect: int) -> None:
    trials = _trials(out)
    assert len(trials) == expect
    for name, (metrics, rows) in trials.items():
        assert metrics and metrics == serial[name][0], name  # bit-identical floats
        assert rows == serial[name][1], name  # every epoch's metrics and train losses


def _cluster_env(cluster, **more: str) -> dict[str, str]:
    return {**cluster.env, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path), "OMP_NUM_THREADS": "1",
            "CVLOSS_PLOT_FORMATS": "png", **more}


def _our_jobs(cluster) -> set[str]:
    return {job for job, name, _ in cluster.squeue() if name.startswith("cvloss:")}


@pytest.mark.slurm
def test_a_comparison_on_slurm_gives_the_serial_metrics(slurm_cluster, serial, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    out = tmp_path / "out"
    result = runner.invoke(app, _compare(out, "ce,dice", "1", "--executor", "slurm"))
    assert result.exit_code == 0, result.output
    _same_as_serial(serial, out, 2)
    jobs = _jobs(out)
    assert sorted(j[2] for j in jobs) == ["seg/synth-pets/ce/seed0", "seg/synth-pets/dice/seed0"]
    assert all(j[1] == "1" and re.fullmatch(r"\d+", j[0]) for j in jobs)  # one job per trial, first attempt
    logs = _log_folder(out)
    assert all((logs / f"{j[0]}_0_log.err").exists() for j in jobs)
    assert f"logs in {logs}" in result.stderr and "[slurm] 0 queued, 0 running, 2 done, 0 failed" in result.stderr
    for stream in (result.stdout, result.stderr):  # submitit's log lines and sacct never reach the user
        assert "submitit" not in stream and "sacct" not in stream
    assert not list(out.glob(".cvloss-probe-*")) and not list(out.rglob("trial.lock*"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # a rerun of finished trials asks nothing of Slurm
    again = runner.invoke(app, _compare(out, "ce,dice", "1", "--executor", "slurm"))
    assert again.exit_code == 0, again.output
    assert again.stderr.count("already done, skipped") == 2 and list((out / LOGS_DIR).iterdir()) == [logs]


def _wait_paused(out: Path, proc: subprocess.Popen, count: int) -> list[list[str]]:
    """Wait until ``count`` trials paused after their first epoch (PAUSE_HOOK_ENV); the
    run's jobs."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        events = list(out.glob(f"{LOGS_DIR}/*/events/*.jsonl"))
        if sum("paused after epoch 1" in p.read_text() for p in events) == count:
            return _jobs(out)
        time.sleep(0.25)
    raise AssertionError(f"the trials did not pause: {proc.poll()} {proc.communicate(timeout=60)}")


@pytest.mark.slurm
def test_a_preempted_or_requeued_job_resumes_and_gives_the_serial_metrics(slurm_cluster, serial, tmp_path):
    out = tmp_path / "out"
    env = _cluster_env(slurm_cluster, **{PAUSE_HOOK_ENV: "/ce/seed0:1,/dice/seed0:1"})
    proc = subprocess.Popen([sys.executable, "-m", "cvloss.cli", *_compare(out, "ce,dice", "1", "--executor", "slurm")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jobs = {label.split("/")[2]: job for job, _, label, _ in _wait_paused(out, proc, 2)}
    for loss in ("ce", "dice"):
        assert (out / GROUP / loss / "seed0" / CHECKPOINT).exists()
    # ce: the signal Slurm sends before a time limit or a preemption; dice: requeued by Slurm itself
    subprocess.run(["scancel", "--signal=USR2", jobs["ce"]], env=env, check=True)
    subprocess.run(["scontrol", "requeue", jobs["dice"]], env=env, check=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _same_as_serial(serial, out, 2)
    assert f"[seg/synth-pets/ce/seed0] slurm job {jobs['ce']} preempted or at its time limit: requeued (1 of 3)" in err
    assert f"[seg/synth-pets/dice/seed0] slurm job {jobs['dice']} queued again" in err
    for loss in ("ce", "dice"):  # the same job, resumed after its first epoch
        assert f"[seg/synth-pets/{loss}/seed0] 2 epochs x 1 batches (resuming at epoch 2)" in err, err
    assert len(_jobs(out)) == 2 and not list(out.rglob("trial.lock*"))


@pytest.mark.slurm
def test_a_job_that_dies_twice_is_crashed_and_the_others_finish(slurm_cluster, serial, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    monkeypatch.setenv(KILL_HOOK_ENV, "/ce/seed0:2")  # its process kills itself (SIGKILL) on both attempts
    out = tmp_path / "out"
    result = runner.invoke(app, _compare(out, "ce,dice", "1", "--executor", "slurm"))
    assert result.exit_code == 1, result.output  # a crashed trial: exit 1
    assert re.search(r"^ce .*1 crashed", result.stdout, re.M), result.stdout
    assert re.search(r"^failures: (.*, )?1 crashed(, .*)? of 2 trial\(s\)", result.stderr, re.M), result.stderr
    attempts = [(j[1], j[2]) for j in _jobs(out)]
    assert sorted(attempts) == [("1", "seg/synth-pets/ce/seed0"), ("1", "seg/synth-pets/dice/seed0"),
                                ("2", "seg/synth-pets/ce/seed0")]
    assert "submitting it again (attempt 2 of 2), from its last checkpoint" in result.stderr
    assert re.search(r"\[seg/synth-pets/ce/seed0\] CRASHED: its slurm jobs ended without a result 2 times "
                     r"\(last: job \d+, failed, exit code 137", result.stderr), result.stderr
    trials = _trials(out)
    dice = f"{GROUP}/dice/seed0"
    assert list(trials) == [dice] and trials[dice][0] == serial[dice][0]
    assert not (out / GROUP / "ce" / "seed0" / "trial.lock").exists()  # the dead job's lock: removed by the driver
    compare = json.loads((out / GROUP / "compare--ce--dice" / "compare.json").read_text())
    assert compare["status"]["ce"] == ["crashed"]


@pytest.mark.slurm
def test_a_job_array_with_parallelism_2_runs_6_trials(slurm_cluster, serial, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    out = tmp_path / "out"
    result = runner.invoke(app, _compare(out, "ce,dice,focal", "2", "--executor", "slurm",
                                         "--slurm-array-parallelism", "2"))
    assert result.exit_code == 0, result.output
    _same_as_serial(serial, out, 6)
    jobs = _jobs(out)
    array = {j[0].split("_")[0] for j in jobs}
    assert len(array) == 1 and sorted(int(j[0].split("_")[1]) for j in jobs) == list(range(6))
    (script,) = _log_folder(out).glob("*_submission.sh")
    assert "#SBATCH --array=0-5%2" in script.read_text()
    assert ", arrays of up to 2 at once" in result.stderr


@pytest.mark.slurm
def test_refusals_are_one_line_and_submit_no_trial(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    before = _our_jobs(slurm_cluster)
    cases = [(["--slurm-partition", "nosuch"], tmp_path / "a", "sbatch refuses the trials' job: invalid partition"),
             (["--slurm-gpus-per-trial", "1"], tmp_path / "b", "sbatch refuses the trials' job:"),
             (["--slurm-extra", "nosuchoption=1"], tmp_path / "c", "sbatch refuses the trials' job:")]
    if slurm_cluster.node_local is not None:  # a folder that the node sees as its own local disk
        cases.append(([], slurm_cluster.node_local / "results",
                      "must be a folder every Slurm node sees (a shared filesystem): on "))
    for extra, out, says in cases:
        result = runner.invoke(app, _compare(out, "ce", "1", "--executor", "slurm", *extra))
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], \
            (extra, result.output)
        assert not out.exists(), extra  # nothing written
    if slurm_cluster.node_local is not None:
        assert "does not hold the driver's probe file" in lines[0] and list(slurm_cluster.node_local.iterdir()) == []
    assert _our_jobs(slurm_cluster) == before  # no trial job submitted (only the probe job ran)


@pytest.mark.slurm
def test_ctrl_c_cancels_the_jobs_and_exits_130(slurm_cluster, tmp_path):
    out = tmp_path / "out"
    env = _cluster_env(slurm_cluster, **{PAUSE_HOOK_ENV: "/ce/seed0:1,/dice/seed0:1"})
    # SIGINT at its default in the driver (a suite started in the background runs with it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "cvloss.cli", *_compare(out, "ce,dice", "1", "--executor", "slurm")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    jobs = [job for job, *_ in _wait_paused(out, proc, 2)]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished epochs are checkpointed" in err
    states = {job: state for job, _, state in slurm_cluster.squeue() if job in jobs}
    assert len(states) == 2 and not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values()), states
    for loss in ("ce", "dice"):  # each trial released its lock and kept its checkpoint
        trial = out / GROUP / loss / "seed0"
        assert (trial / CHECKPOINT).exists() and not (trial / "trial.lock").exists() and not (trial / SUMMARY).exists()
