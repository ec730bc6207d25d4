"""Inputs are files, bounded; bad input is refused before anything is written.

Results files (compare.json, summary.json, runs.csv, trial.lock) are read only as regular
files inside their folder, at most 32 MiB and 64 levels of JSON deep; a lock whose
heartbeat lies in the future is stale; a full disk names the file it could not write; a
``--tune`` space is checked whole -- every candidate applied to every spec -- before its
first folder. Each refusal is one line naming the file or the setting."""
from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss import io as cio
from cvloss.cli import app
from cvloss.errors import LockError, ResultsFileError, UsageError
from cvloss.io import MAX_JSON_DEPTH, check_comparison, read_bounded, read_csv, read_json, read_summary, write_json
from cvloss.run.config import TrialConfig
from cvloss.run.lock import CLOCK_SKEW_S, LOCK_NAME, TrialLock, describe, stale_reason
from cvloss.run.tune import MAX_GRID_POINTS, MAX_TRIALS, check_space, parse_space
from cvloss.run.tuning import run_tuned_comparison

runner = CliRunner()


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: equal before and after = nothing written."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def _compare_json(**changes) -> dict:
    """A minimal valid compare.json: one loss, one seed, one metric (no trial folders)."""
    obj = {"task": "seg", "dataset": "synth-pets", "budget": "smoke", "losses": ["ce", "dice"], "seeds": [0],
           "baseline": "ce", "metrics": ["miou"], "directions": {"miou": True}, "bounds": {"miou": [0.0, 1.0]},
           "rows": [{"loss": "ce", "metric": "miou", "n": 1, "mean": 0.5, "ci95": None},
                    {"loss": "dice", "metric": "miou", "n": 1, "mean": 0.6, "ci95": None}],
           "status": {"ce": ["done"], "dice": ["done"]}}
    obj.update(changes)
    return obj


def _comparison(root: Path, text: str | None = None, **changes) -> Path:
    """``<root>/seg/synth-pets/smoke/compare--ce--dice/`` holding compare.json (``text``
    verbatim, else :func:`_compare_json` with ``changes``); returns the folder."""
    folder = root / "seg" / "synth-pets" / "smoke" / "compare--ce--dice"
    folder.mkdir(parents=True)
    (folder / "compare.json").write_text(text if text is not None else json.dumps(_compare_json(**changes)))
    return folder


def _report_refused(root: Path, *fragments: str) -> str:
    """``cvloss report root`` exits 2 with one ``error:`` line holding ``fragments``, and
    writes nothing under ``root``."""
    before = _listing(root)
    result = runner.invoke(app, ["report", str(root)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert _listing(root) == before, "a refused report must write nothing"
    return lines[0]


class _Unblock:
    """Guard for a FIFO: should a reader block on it, open its write end after ``seconds``
    so the reader sees end-of-file and the test fails instead of hanging."""

    def __init__(self, fifo: Path, seconds: float = 20.0) -> None:
        self.fifo, self.fired = fifo, threading.Event()
        self.timer = threading.Timer(seconds, self._fire)

    def _fire(self) -> None:
        self.fired.set()
        try:
            os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    def __enter__(self) -> _Unblock:
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        assert not self.fired.is_set(), f"reading {self.fifo} blocked: a FIFO was opened"


fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


# ---------------------------------------------------------------- results files
def test_deep_json_is_one_line_naming_the_file(tmp_path):
    deep, shallow = tmp_path / "deep.json", tmp_path / "shallow.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # the parser's recursion limit: RecursionError today
    with pytest.raises(ResultsFileError, match=rf"^{deep} nests deeper than {MAX_JSON_DEPTH} levels"):
        read_json(deep)
    over = tmp_path / "over.json"
    over.write_text("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))  # parses, then the depth check
    with pytest.raises(ResultsFileError, match="nests deeper"):
        read_json(over)
    shallow.write_text("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    value = read_json(shallow)
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value[0]
    assert value == []


def test_deep_compare_json_stops_the_report(tmp_path):
    folder = _comparison(tmp_path, text='{"task": ' + "[" * 200_000 + "]" * 200_000 + "}")
    _report_refused(tmp_path, str(folder / "compare.json"), "nests deeper than 64 levels")


@fifo_only
def test_a_fifo_named_compare_json_does_not_hang_the_report(tmp_path):
    folder = tmp_path / "seg" / "synth-pets" / "smoke" / "compare--ce"
    folder.mkdir(parents=True)
    fifo = folder / "compare.json"
    os.mkfifo(fifo)
    with _Unblock(fifo):
        _report_refused(tmp_path, f"{fifo} is a FIFO, not a regular results file")
        with pytest.raises(ResultsFileError, match="is a FIFO"):
            read_summary(fifo)


def test_devices_folders_and_oversized_files_are_not_read(tmp_path):
    if Path("/dev/zero").exists():  # what $CVLOSS_CATALOG=/dev/zero was: read until the OOM killer came
        with pytest.raises(ResultsFileError, match="^/dev/zero is a character device"):
            read_bounded(Path("/dev/zero"), root=Path("/dev"))
    (tmp_path / "summary.json").mkdir()
    with pytest.raises(ResultsFileError, match="is a folder"):
        read_json(tmp_path / "summary.json")
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * 20 + b"0]")  # 43 bytes
    with pytest.raises(ResultsFileError, match=rf"^{big} holds 43 bytes, more than a results file may \(42\)"):
        read_bounded(big, limit=42)
    assert read_bounded(big, limit=43) == big.read_bytes()
    with pytest.raises(FileNotFoundError):  # missing stays missing: callers look for it
        read_json(tmp_path / "absent.json")


def test_a_results_file_that_links_out_of_its_folder_is_not_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "summary.json").write_text(json.dumps({"schema": 2, "status": "done", "metrics": {"miou": 0.9}}))
    trial = tmp_path / "results" / "seed0"
    trial.mkdir(parents=True)
    (trial / "summary.json").symlink_to(outside / "summary.json")
    with pytest.raises(ResultsFileError, match=rf"^{trial / 'summary.json'} is a symbolic link out of {trial}"):
        read_summary(trial / "summary.json")
    (trial / "copy.json").write_text('{"a": 1}')
    (trial / "same.json").symlink_to("copy.json")  # a link within the folder leads nowhere else
    assert read_json(trial / "same.json") == {"a": 1}
    with pytest.raises(ResultsFileError, match="symbolic link out of"):  # with a root: out of the root
        read_json(trial / "copy.json", root=outside)


def test_a_runs_csv_linked_to_an_outside_file_is_not_merged(tmp_path):
    root = tmp_path / "results"
    folder = _comparison(root)
    secret = tmp_path / "secret.csv"
    secret.write_text("loss,seed\nSECRET-ROW,0\n")
    (folder / "runs.csv").symlink_to(secret)
    with pytest.raises(ResultsFileError, match=rf"^{folder / 'runs.csv'} is a symbolic link out of {root} "):
        read_csv(folder / "runs.csv", root=root)
    result = runner.invoke(app, ["report", str(root), "--no-html"])  # the report leaves it out
    assert result.exit_code == 0, result.stderr
    assert "SECRET-ROW" not in (root / "runs.csv").read_text() and "SECRET-ROW" not in (root / "REPORT.md").read_text()


@pytest.mark.parametrize("changes, reason", [
    ({"compute": 5}, "'compute' must be an object of per-loss objects of numbers"),
    ({"compute": {"ce": {"train_time_s": "fast"}}}, "'compute' must be"),
    ({"compute": {"ce": 5}}, "'compute' must be"),
    ({"best": ["ce"]}, "'best' must be an object of loss names or null"),
    ({"best": {"miou": [1]}}, "'best' must be an object of loss names"),
    ({"best": {"miou": "softiou"}}, "'best' names 'softiou', not a loss of 'losses'"),
    ({"mde": {"miou": "x"}}, "'mde' must be an object of numbers or null"),
    ({"mde": 0.1}, "'mde' must be"),
    ({"alpha": "0.05"}, "'alpha' must be a number"),
    ({"target_effect": "big"}, "'target_effect' must be a number or null"),
    ({"provenance": "git"}, "'provenance' must be an object"),
    ({"bounds": {"miou": [1.0, 0.0]}}, "bounds['miou'] = [1.0, 0.0] has low above high"),
    ({"bounds": {"miou": [0.0, 0.55]}}, "rows[1] mean 0.6 lies outside bounds['miou'] = [0.0, 0.55]"),
    ({"tuning": 5}, "'tuning' must be an object"),
    ({"tuning": {"space": ["lr"]}}, "'tuning' 'space' must be a list of NAME=dist(...) texts"),
])
def test_wrong_types_in_compare_json_name_the_file_and_field(tmp_path, changes, reason):
    path = tmp_path / "compare.json"
    with pytest.raises(ResultsFileError, match=r"^\S+compare.json is not a valid comparison file: ") as err:
        check_comparison(_compare_json(**changes), path)
    assert str(path) in str(err.value) and reason in str(err.value)


def _tuning(**changes) -> dict:
    rec = {"chosen": {"lr": 0.01}, "chosen_index": 1, "trained_spec": "ce", "cost_s": 3.0, "flags": [],
           "candidates": [{"lr": 0.001}, {"lr": 0.01}], "val_scores": [0.4, 0.5], "status": ["done", "done"]}
    t = {"space": ["lr=log(0.001,0.01)"], "trials": 2, "sampler": "random", "sampler_seed": 0, "hash": "abcd1234",
         "metric": "miou", "higher_is_better": True, "tuning_seeds": "10000..10001", "split": "val",
         "losses": {"ce": rec, "dice": dict(rec)}}
    for key, value in changes.items():
        if key in rec:
            t["losses"]["dice"] = {**rec, key: value}
        else:
            t[key] = value
    return t


@pytest.mark.parametrize("changes, reason", [
    ({"trials": "2"}, "'trials' must be a whole number >= 1"),
    ({"sampler_seed": "<script>"}, "'sampler_seed' must be a whole number"),
    ({"losses": {"ce": {}}}, "'losses' must hold a record for every loss"),
    ({"chosen_index": 7}, "losses['dice']['chosen_index'] must be a whole number below 2"),
    ({"val_scores": [0.4]}, "losses['dice']['val_scores'] must be 2 numbers or null"),
    ({"candidates": [{"lr": 0.001}, {"wd": 0.01}]}, "must all name the same parameters"),
    ({"chosen": {"wd": 1}}, "losses['dice']['chosen'] must be an object of the candidates' parameters"),
    ({"cost_s": "long"}, "needs 'trained_spec' (a string), 'cost_s' (a number)"),
])
def test_wrong_tuning_records_name_the_field(tmp_path, changes, reason):
    check_comparison(_compare_json(tuning=_tuning()), tmp_path / "compare.json")  # the record as written: fine
    with pytest.raises(ResultsFileError, match="is not a valid comparison file: 'tuning' ") as err:
        check_comparison(_compare_json(tuning=_tuning(**changes)), tmp_path / "compare.json")
    assert reason in str(err.value)


def test_wrong_tuning_in_compare_json_stops_the_report(tmp_path):
    folder = _comparison(tmp_path, tuning=_tuning(trials=10**9))
    _report_refused(tmp_path, str(folder / "compare.json"), "'tuning' losses['ce']['candidates'] must be 1000000000")


# ---------------------------------------------------------------- writes
def _full_disk(path, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() and fsync() raise it: no file name


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(cio, "_write_synced", _full_disk)
    target = tmp_path / "out" / "summary.json"
    with pytest.raises(OSError) as err:
        write_json(target, {"status": "done"})
    assert str(err.value) == f"cannot write {target}: no space left on device"
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)  # still an OSError for callers
    assert os.listdir(tmp_path / "out") == []  # the temporary is gone


def test_a_full_disk_is_one_line_from_the_cli(tmp_path, monkeypatch):
    _comparison(tmp_path)
    monkeypatch.setattr(cio, "_write_synced", _full_disk)
    _report_refused(tmp_path, f"error: cannot write {tmp_path / 'REPORT.md'}: no space left on device")


# ---------------------------------------------------------------- locks
def _lock_file(trial: Path, heartbeat: float, host: str = "another-host") -> Path:
    trial.mkdir(parents=True, exist_ok=True)
    path = trial / LOCK_NAME
    path.write_text(json.dumps({"pid": 4242, "host": host, "token": "theirs", "started": heartbeat,
                                "heartbeat": heartbeat}) + "\n")
    return path


def test_a_lock_with_a_heartbeat_in_the_future_is_stale(tmp_path):
    now = time.time()
    path = _lock_file(tmp_path / "future", now + 3600)  # train used to wait for it for ever ("heartbeat 0s ago")
    info = json.loads(path.read_text())
    assert stale_reason(info, mtime=now, timeout=600, now=now) == \
        "its heartbeat is 3600s in the future (a clock more than 60s ahead, or a forged lock)"
    assert describe(info, now=now) == "pid 4242 on another-host, heartbeat 3600s in the future"
    said = []
    lock = TrialLock(tmp_path / "future", say=said.append)
    try:
        assert lock.acquire() is None and lock.held  # taken over at once
        assert "theirs" not in path.read_text()
    finally:
        lock.release()
    (line,) = said
    assert line.startswith("took over the lock of pid 4242 on another-host, heartbeat ") and \
        f"in the future in {tmp_path / 'future'}: its heartbeat is " in line and line.endswith("or a forged lock)")


def test_a_heartbeat_within_the_clock_skew_or_the_timeout_is_live(tmp_path):
    now = time.time()
    ahead = {"pid": 1, "host": "another-host", "heartbeat": now + CLOCK_SKEW_S / 2}
    assert stale_reason(ahead, mtime=now, timeout=600, now=now) is None
    assert stale_reason({"host": "another-host", "heartbeat": now - 599}, mtime=now - 599, timeout=600, now=now) is None
    assert "601s old" in stale_reason({"host": "another-host", "heartbeat": now - 601}, mtime=now - 601, timeout=600,
                                      now=now)
    # a future mtime cannot keep a lock without a heartbeat alive either; beside a live
    # heartbeat it is the file server's clock, which breaks no live holder's lock
    assert "modification time is 7200s in the future" in stale_reason({}, mtime=now + 7200, timeout=600, now=now)
    assert stale_reason({"host": "another-host", "heartbeat": now}, mtime=now + 7200, timeout=600, now=now) is None
    path = _lock_file(tmp_path / "live", now + CLOCK_SKEW_S / 2)
    holder = TrialLock(tmp_path / "live").acquire()
    assert holder is not None and holder["token"] == "theirs" and "theirs" in path.read_text()


@fifo_only
def test_a_fifo_named_trial_lock_is_refused_not_waited_on(tmp_path):
    trial = tmp_path / "trial"
    trial.mkdir()
    fifo = trial / LOCK_NAME
    os.mkfifo(fifo)
    with _Unblock(fifo):
        with pytest.raises(LockError, match=rf"^{fifo} is a FIFO, not a regular trial lock; not read: remove it"):
            TrialLock(trial).acquire()


# ---------------------------------------------------------------- tuning spaces
def test_trial_counts_and_grids_are_bounded_before_any_candidate_is_built():
    with pytest.raises(UsageError, match=rf"--tune-trials 1000000000: at most {MAX_TRIALS} candidates per loss"):
        parse_space(["lr=log(1e-4,1e-2)"], 10**9, sampler="grid")
    dims = [f"{name}=uniform(0,1)" for name in ("weight_decay", "beta1", "beta2")] + \
           [f"ce.label_smoothing=uniform(0,0.5)"] + [f"x{i}=int(0,1)" for i in range(14)]
    with pytest.raises(UsageError, match=rf"has 262144 points \({'x'.join(['2'] * 18)}\), more than {MAX_GRID_POINTS}"):
        parse_space(dims, 2, sampler="grid")
    space = parse_space(["lr=log(1e-4,1e-2)"], MAX_TRIALS, sampler="grid")  # the most a search may ask for
    assert space.trials == MAX_TRIALS


@pytest.mark.parametrize("items, losses, fragment", [
    (["lr=choice(a,b)"], ["ce"], "--tune 'lr=choice(a,b)': lr=a: expected float > 0"),
    (["ce.nope=uniform(0,1)"], ["ce"], "--tune 'ce.nope': loss 'ce' has no argument 'nope'"),
    (["dice.weight=uniform(-5,-1)"], ["ce+dice"], "a loss weight must be >= 0"),
    (["dice.weight=choice(1,-2)"], ["ce+dice"], "a loss weight must be >= 0"),
    (["epochs=uniform(1,3)"], ["ce"], "epochs takes whole numbers: use int(a,b) or choice"),
    (["epochs=int(1,1000000)"], ["ce"], "epochs=1000000: expected int >= 1, <= 100000"),
    # only some candidates fail: found by applying all of them
    (["ce.label_smoothing=uniform(0.5,2)"], ["ce", "dice"], "label_smoothing must lie in [0, 1)"),
    (["cldice.iters=uniform(1,5)"], ["ce+cldice"], "argument iters="),
])
def test_a_bad_space_is_refused_whole_in_one_line(items, losses, fragment):
    with pytest.raises(UsageError) as err:
        check_space(parse_space(items, 8), "seg", losses)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_space_the_budget_refuses_is_refused_before_the_first_folder(tmp_path, capture):
    """image_size 30 passes its schema but not translate's check against n_down: only
    the budget-aware check sees it, still before anything is written."""
    base = TrialConfig(task="translate", loss="", dataset="synth-stripes", budget="smoke", out=str(tmp_path / "out"))
    space = parse_space(["image_size=choice(32,30)"], 2, sampler="grid")
    check_space(space, "translate", ["lsgan+cycle"])  # the schema alone: fine
    with pytest.raises(UsageError, match=r"^--tune: candidate image_size=30 for loss 'lsgan\+cycle' is refused: "
                                         r"image_size 30 must be divisible by 2\*\*n_down = 4"):
        run_tuned_comparison(base, ["lsgan+cycle"], [0], space, capture)
    assert not (tmp_path / "out").exists()


def test_negative_weights_are_never_formatted_into_a_spec():
    from cvloss.losses.spec import SpecError, format_term
    from cvloss.run.tune import apply_candidate

    assert apply_candidate("ce+dice", {"dice.weight": 0.5}) == ("ce+0.5*dice", {})
    with pytest.raises(SpecError, match=r"weight -1.622 must be a finite number >= 0 \(a negative weight"):
        apply_candidate("ce+dice", {"dice.weight": -1.622})  # was 'ce+-1.622*dice', a syntax error later
    with pytest.raises(SpecError, match="weight inf must be a finite number"):
        format_term("ce", {}, float("inf"))
