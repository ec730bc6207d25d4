"""The per-trial lock: atomic create, live holders waited for, stale ones taken over (and
said so), a lost lock noticed; and a comparison meeting a locked trial runs the others
first, then aggregates the holder's summary without training it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cvloss.errors import LockError, UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.lock import LOCK_NAME, TIMEOUT_ENV, TrialLock, pid_alive

HOST = socket.gethostname()


@pytest.fixture
def live_pid():
    """The pid of a live process that is not us (another command holding a lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def write_lock(trial: Path, pid: int, host: str = HOST, age: float = 0.0) -> Path:
    trial.mkdir(parents=True, exist_ok=True)
    path = trial / LOCK_NAME
    beat = time.time() - age
    path.write_text(json.dumps({"pid": pid, "host": host, "token": "theirs", "started": beat, "heartbeat": beat}))
    os.utime(path, (beat, beat))
    return path


def test_create_is_exclusive_and_release_removes_only_our_lock(tmp_path):
    a, b = TrialLock(tmp_path / "t"), TrialLock(tmp_path / "t")
    assert a.acquire() is None
    info = json.loads((tmp_path / "t" / LOCK_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] == HOST and info["token"] == a.token
    assert info["heartbeat"] == info["started"]  # a fresh lock has beaten once, when it was made
    holder = b.acquire()  # same pid, live: waits like any other holder
    assert holder["token"] == a.token
    b.release()
    assert (tmp_path / "t" / LOCK_NAME).exists()
    a.release()
    assert not (tmp_path / "t").exists()  # a lock taken and left without results leaves nothing behind


def test_threads_racing_for_one_lock_one_wins(tmp_path):
    for k in range(10):
        locks = [TrialLock(tmp_path / f"t{k}") for _ in range(6)]
        barrier = threading.Barrier(len(locks))
        won = []

        def grab(lock):
            barrier.wait()
            if lock.acquire() is None:
                won.append(lock)

        threads = [threading.Thread(target=grab, args=(l,)) for l in locks]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert len(won) == 1
        won[0].release()


def test_dead_pid_and_old_heartbeat_are_taken_over_and_said(tmp_path, dead_pid, live_pid, monkeypatch):
    said = []
    write_lock(tmp_path / "dead", dead_pid)
    assert TrialLock(tmp_path / "dead", say=said.append).acquire() is None
    assert said == [f"took over the lock of pid {dead_pid} on {HOST}, heartbeat 0s ago in {tmp_path / 'dead'}: "
                    f"its process (pid {dead_pid}) is gone"]
    write_lock(tmp_path / "old", live_pid, age=3600)
    assert TrialLock(tmp_path / "old", say=said.append).acquire() is None
    assert "its heartbeat is 3600s old (more than $CVLOSS_LOCK_TIMEOUT=600s)" in said[-1]
    # another host: its pid cannot be checked, only its heartbeat (timeout from the environment)
    write_lock(tmp_path / "far", 1, host="elsewhere", age=5)
    assert TrialLock(tmp_path / "far").acquire()["host"] == "elsewhere"
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    assert TrialLock(tmp_path / "far", say=said.append).acquire() is None
    assert "pid 1 on elsewhere" in said[-1] and "more than $CVLOSS_LOCK_TIMEOUT=2s" in said[-1]


def test_live_lock_is_kept_unless_forced(tmp_path, live_pid):
    write_lock(tmp_path / "t", live_pid, age=1)
    assert TrialLock(tmp_path / "t").acquire()["pid"] == live_pid
    said = []
    lock = TrialLock(tmp_path / "t", break_stale=True, say=said.append)
    assert lock.acquire() is None and said[0].endswith(": --break-stale-locks")
    assert json.loads((tmp_path / "t" / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_heartbeat_is_refreshed_and_a_lost_lock_is_noticed(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLOSS_LOCK_HEARTBEAT", "0.05")
    lock = TrialLock(tmp_path / "t")
    assert lock.acquire() is None
    path = tmp_path / "t" / LOCK_NAME
    first = json.loads(path.read_text())["heartbeat"]
    time.sleep(0.3)  # the background thread beats without the trainer's help
    assert json.loads(path.read_text())["heartbeat"] > first
    write_lock(tmp_path / "t", 12345, host="elsewhere")  # someone took it over
    with pytest.raises(LockError, match="was taken over .*pid 12345 on elsewhere.*not trained twice"):
        lock.refresh()
    lock.release()
    assert json.loads(path.read_text())["pid"] == 12345  # theirs is left alone


def test_bad_timeout_variable_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(UsageError, match=r"\$CVLOSS_LOCK_TIMEOUT must be a positive number of seconds; got 'soon'"):
        TrialLock(tmp_path)


TINY = {"n_train": 16, "n_val": 8, "epochs": 1}


def test_compare_runs_other_trials_first_then_waits_and_aggregates(tmp_path, live_pid, dead_pid, monkeypatch, capture):
    """Seed 0 is held by a live process with a fresh heartbeat (finished by a thread once the
    comparison has trained seed 1); seed 2 has a dead holder's lock: taken over and trained."""
    from cvloss.run.compare import run_comparison

    monkeypatch.setenv("CVLOSS_LOCK_POLL", "0.05")
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path), overrides=TINY)
    held, other, stale = (replace(base, loss="ce", seed=s).trial_dir for s in (0, 1, 2))
    lock = write_lock(held, live_pid)
    write_lock(stale, dead_pid)

    def holder():  # the other command: finishes its trial after ours have run, then unlocks
        deadline = time.time() + 60
        while not ((other / "summary.json").exists() and (stale / "summary.json").exists()) and time.time() < deadline:
            time.sleep(0.02)
        (held / "summary.json").write_text(json.dumps({"schema": 2, "status": "done", "metrics": {"miou": 0.123}}))
        lock.unlink()

    thread = threading.Thread(target=holder)
    thread.start()
    rep = capture
    result = run_comparison(base, ["ce"], [0, 1, 2], rep)
    thread.join()
    label = "seg/synth-pets/ce/seed"
    assert [l for l in rep.lines if l.startswith("START")] == [f"START {label}1 at 0", f"START {label}2 at 0"]
    waits = [l for l in rep.lines if "locked by" in l]
    assert len(waits) == 1 and waits[0].startswith(f"[{label}0] locked by pid {live_pid} on {HOST}")
    assert "running the other trials first, then waiting for it" in waits[0]
    assert any(l.startswith(f"[{label}2] took over the lock of pid {dead_pid}") for l in rep.lines)
    assert not (held / "trial.json").exists()  # never trained here
    # seed 0 as the other command wrote it; seeds 1 and 2 trained here (a tiny net may end degenerate)
    assert result["status"]["ce"][0] == "done" and set(result["status"]["ce"][1:]) <= {"done", "degenerate"}
    miou = next(r for r in result["rows"] if r["loss"] == "ce" and r["metric"] == "miou" and r["analysis"] == "itt")
    assert miou["n"] == 3 and miou["missing"] == 0
    assert not list(tmp_path.rglob(LOCK_NAME))


def test_train_waits_for_a_live_holder_then_reads_its_summary(tmp_path, live_pid, monkeypatch, capture):
    from cvloss.run.trainer import run_trial

    monkeypatch.setenv("CVLOSS_LOCK_POLL", "0.05")
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", out=str(tmp_path), overrides=TINY)
    lock = write_lock(cfg.trial_dir, live_pid)
    timer = threading.Timer(0.5, lambda: ((cfg.trial_dir / "summary.json").write_text(
        json.dumps({"schema": 2, "status": "done", "metrics": {"miou": 0.5}})), lock.unlink()))
    timer.start()
    rep = capture
    summary = run_trial(cfg, rep)
    timer.join()
    assert summary["metrics"] == {"miou": 0.5}
    assert rep.lines[0].startswith("[seg/synth-pets/ce/seed0] locked by pid") and ": waiting for it" in rep.lines[0]
    assert not [l for l in rep.lines if l.startswith("START")]
