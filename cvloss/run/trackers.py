"""MLflow and Weights & Biases runs of cvloss's trials (``--log mlflow``, ``--log wandb``).

The results folder stays the source of truth; a tracker run is a view of one trial
folder, written live while the trial trains (:class:`TrialRun`, through
:class:`cvloss.run.live_log.LiveLog`) or afterwards from its files
(:mod:`cvloss.run.trackers_export`). Both ways go through the functions here, so a run
pushed from the files holds the same params, metric histories and tags as one logged
live. One run per trial folder, in experiment/group ``<task>/<dataset>/<budget>``, named
after the trial folder; a comparison is a tag. Each trial folder remembers its runs in
``trackers.json``, so a resumed trial continues its run and an export never pushes a run
twice. A tracker that fails is one warning line and is off for the rest of the trial
(:class:`Guard`). What a run holds: docs/running.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from cvloss.errors import CvlossError, ResultsFileError
from cvloss.io import file_inside, read_csv, read_json, write_json
from cvloss.run.config import is_search_run
from cvloss.run.trackers_base import Backend, RunNames

TRACKERS = ("mlflow", "wandb")
STATE = "trackers.json"  # in the trial folder: each tracker's run of it
SAMPLES = "samples.png"
_TRIAL, _METRICS, _SUMMARY = "trial.json", "metrics.csv", "summary.json"


class TrackerError(CvlossError):
    """A tracker that cannot be written (``cvloss export``: the command fails, one line)."""


# ---------------------------------------------------------------- what a run holds
def run_names(group_dir: Path, trial_dir: Path) -> RunNames:
    """The names the results layout gives a trial: ``<group_dir>``'s last three parts and
    the trial folder relative to it (the same wherever the results folder lies)."""
    group_dir, trial_dir = Path(group_dir), Path(trial_dir)
    run = trial_dir.relative_to(group_dir).as_posix()
    return RunNames("/".join(group_dir.parts[-3:]), run, "search" if is_search_run(run) else "final")


def read_trial(trial_dir: Path) -> dict[str, Any]:
    """A trial folder's ``trial.json`` (bounded read; one line when it is not an object)."""
    info = read_json(Path(trial_dir) / _TRIAL, Path(trial_dir))
    if not isinstance(info, dict) or not isinstance(info.get("identity"), dict):
        raise ResultsFileError(f"{Path(trial_dir) / _TRIAL} is not a trial record")
    return info


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif value is not None:  # an unset field (fold of an ordinary trial) is no param
        out[prefix] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)


def trial_params(info: dict[str, Any]) -> dict[str, Any]:
    """The params of a trial's run from its ``trial.json``: its identity (task, dataset,
    loss, budget, seed, feature weights as requested and as resolved, the budget's resolved
    settings as ``params.<key>``, tuned values as ``tuned.<key>``), without the overrides
    (already in ``params``); values typed as JSON has them (W&B keeps the types for its
    parallel-coordinates panels, MLflow writes them as text)."""
    identity = {k: v for k, v in info["identity"].items() if k != "overrides"}
    out: dict[str, Any] = {}
    _flat(identity, "", out)
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    if config.get("name"):  # the spec as the comparison names it (a tuned winner trains another)
        out["compared_as"] = str(config["name"])
    if info.get("feature_weights") is not None:
        out["feature_weights_used"] = str(info["feature_weights"])
    return out


def base_tags(info: dict[str, Any], names: RunNames) -> dict[str, str]:
    """The tags every run of a trial has from the start: the code that made it (commit,
    source hash, whether the checkout was edited), torch, cvloss, device, and its stage."""
    code = info.get("code") if isinstance(info.get("code"), dict) else {}
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    tags = {"commit": code.get("commit"), "source": str(code.get("source_sha256") or "")[:12] or None,
            "dirty": None if code.get("dirty") is None else str(bool(code.get("dirty"))).lower(),
            "torch": versions.get("torch"), "cvloss": versions.get("cvloss"), "device": info.get("device"),
            "stage": names.stage}
    return {k: str(v) for k, v in tags.items() if v is not None}


def comparison_slug(cmp_dir: Path) -> str:
    """A comparison's name in tags: its folder without ``compare--`` (``ce--dice``)."""
    name = Path(cmp_dir).name
    return name[len("compare--"):] if name.startswith("compare--") else name


def comparison_tag(slug: str) -> tuple[str, str]:
    """The MLflow-style tag of a comparison: ``comparison.<key>`` -> slug. A key keeps a
    slug's letters, digits, ``_ . -``; MLflow refuses ``=`` and ``+`` in keys, so a slug
    with such characters has them as ``_`` and 8 hex of its sha1 appended (two slugs never
    share a key)."""
    key = re.sub(r"[^A-Za-z0-9_.\-]", "_", slug)
    if key != slug:
        key = f"{key[:80]}-{hashlib.sha1(slug.encode()).hexdigest()[:8]}"
    return f"comparison.{key}", slug


def run_tags(info: dict[str, Any], names: RunNames, status: str | None, comparisons: list[str]) -> dict[str, str]:
    """Every tag of a trial's run: :func:`base_tags`, its status when known, one per
    comparison it belongs to (:func:`comparison_tag`)."""
    tags = base_tags(info, names)
    if status:
        tags["status"] = status
    tags.update(comparison_tag(slug) for slug in sorted(set(comparisons)))
    return tags


def _number(value: Any) -> float | None:
    """A finite number as float; None for anything else (NaN, text, a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def epoch_metrics(row: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) of one metrics.csv row -- live (numbers) or read back (text) alike:
    step = its epoch, metrics = every other finite number (NaN cells, e.g. the untrained
    row's train_loss, are left out). None for a row without an epoch."""
    step = _number(row.get("epoch"))
    if step is None:
        return None
    metrics = {str(k): v for k, v in ((k, _number(v)) for k, v in row.items() if k != "epoch") if v is not None}
    return int(step), metrics


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The final metrics of a finished trial as ``<split>_<metric>`` (``test_miou``; a
    search trial's are ``val_``): the per-epoch curves are on val, these are the numbers
    the tables hold."""
    split = str(summary.get("split") or "test")
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    return {f"{split}_{k}": v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None}


def samples_file(trial_dir: Path) -> list[tuple[Path, str]]:
    """The trial's samples.png as a run file (at the run's top), if it is a plain file
    of the folder: a link could lead anywhere, and a run's files may leave the machine."""
    path = file_inside(Path(trial_dir), SAMPLES)
    return [] if path is None else [(path, "")]


def history_rows(trial_dir: Path) -> list[dict[str, str]]:
    """A trial folder's metrics.csv rows (none when it has no file yet)."""
    path = Path(trial_dir) / _METRICS
    return read_csv(path, Path(trial_dir)) if path.is_file() else []


def read_summary_file(trial_dir: Path) -> dict[str, Any] | None:
    path = Path(trial_dir) / _SUMMARY
    if not path.is_file():
        return None
    summary = read_json(path, Path(trial_dir))
    return summary if isinstance(summary, dict) else None


# ---------------------------------------------------------------- the trial folder's memory
class TrackerState:
    """``<trial>/trackers.json``: per tracker and store (:attr:`Backend.store`), the run
    of this trial -- ``{"run_id", "last_step", "comparisons", "status"}`` (and
    ``pending_id``: an id chosen for a run not yet known to exist). A file that cannot be
    read is started afresh (it only saves a duplicate run)."""

    def __init__(self, trial_dir: Path) -> None:
        self.path = Path(trial_dir) / STATE
        try:
            data = read_json(self.path, Path(trial_dir)) if self.path.is_file() else {}
        except ResultsFileError:
            data = {}
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def entry(self, kind: str, store: str) -> dict[str, Any]:
        """The (mutable) record of ``kind``'s run in ``store``; an empty one when none."""
        stores = self.data.setdefault(kind, {})
        if not isinstance(stores, dict):
            stores = self.data[kind] = {}
        entry = stores.setdefault(store, {})
        if not isinstance(entry, dict):
            entry = stores[store] = {}
        return entry

    def save(self) -> None:
        write_json(self.path, self.data)


# ---------------------------------------------------------------- failures
def _one_line(exc: BaseException) -> str:
    """Why a tracker call failed, in a few words; an OS error without its file name (a
    run's own folder: the store is named beside it, and every trial then says the same)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def library_quiet() -> Iterator[None]:
    """Around every tracker call: the libraries' own warnings (deprecations of their
    dependencies) are theirs, not the user's; cvloss's CLI would print each one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class Guard:
    """Runs one tracker's calls; the first that fails turns the tracker off for the rest
    of the trial with one warning line (``strict``: raises :class:`TrackerError`, for
    ``cvloss export``, whose whole job the tracker is). The text names no trial, so the
    trials of one command that meet the same broken store print it once."""

    def __init__(self, kind: str, store: str, strict: bool = False) -> None:
        self.kind, self.store, self.strict, self.on = kind, store, strict, True

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self.on:
            return None
        try:
            with library_quiet():
                return fn(*args)
        except Exception as exc:  # any failure of the tracker's library: the trial must go on
            self.on = False
            reason = _one_line(exc)
            if self.strict:
                raise TrackerError(f"{self.kind} store {self.store}: {reason}") from None
            warnings.warn(f"--log {self.kind}: cannot write to {self.store} ({reason}); the trials go on without "
                          f"it (their results folders hold everything: `cvloss export {self.kind}` pushes them later)",
                          stacklevel=2)
            return None


# ---------------------------------------------------------------- the stores
def backend(kind: str, out: Path) -> Backend:
    """The store of ``kind`` for results under ``out`` (the tools' own environment
    variables first, else ``<out>/mlruns`` / ``<out>/wandb``). Nothing is opened yet."""
    if kind == "mlflow":
        from cvloss.run.trackers_mlflow import MlflowBackend

        return MlflowBackend(out)
    if kind == "wandb":
        from cvloss.run.trackers_wandb import WandbBackend

        return WandbBackend(out)
    raise ValueError(f"unknown tracker {kind!r}")


_UNOPENABLE: set[tuple[str, str]] = set()  # (kind, store) whose run could not be started in this process


def unopenable(kind: str, store: str) -> bool:
    """True when a trial of this process could not start a run in ``store``: the later
    trials of the command (and its comparison's tags) leave it alone instead of meeting
    the same failure -- and warning -- each time. A failure after the start (a disk that
    fills up) is tried again by the next trial."""
    return (kind, store) in _UNOPENABLE


def outcome_of(status: str | None, finished: bool) -> str | None:
    """How a run ends from its trial's status: a result (done, diverged, collapsed,
    degenerate) ``finished``; a trial whose worker died ``failed``; unfinished None."""
    if finished:
        return "finished"
    return "failed" if status == "crashed" else None


# ---------------------------------------------------------------- live: one trial as it trains
class TrialRun:
    """One tracker's run of one trial while it trains (see :class:`cvloss.run.live_log.LiveLog`).

    Opened after ``trial.json`` is written: resumes the run ``trackers.json`` names for
    this store, else starts one (its id is written to ``trackers.json`` first where the
    tracker lets the id be chosen, so a kill at any point never leaves two runs)."""

    def __init__(self, kind: str, out: Path, group_dir: Path, trial_dir: Path, state: TrackerState) -> None:
        self.trial_dir, self.state = Path(trial_dir), state
        self.store = backend(kind, out)
        self.guard = Guard(kind, self.store.store)
        self.names = run_names(group_dir, trial_dir)
        self.done = False
        self.entry: dict[str, Any] = {}
        if unopenable(kind, self.store.store):
            self.guard.on = False  # said once; an unreachable server would stall every trial for its timeouts
            return
        self.guard(self._start)
        if not self.guard.on:
            _UNOPENABLE.add((kind, self.store.store))

    def _start(self) -> None:
        info = read_trial(self.trial_dir)
        self.info = info
        entry = self.state.entry(self.store.kind, self.store.store)
        run_id = chosen_id(self.store, self.state, entry)
        tags = run_tags(info, self.names, None, comparisons_of(entry))
        started = self.store.start(self.names, run_id, trial_params(info), tags)
        if started != entry.get("run_id"):  # a new run: nothing logged to it yet
            entry.update(run_id=started, last_step=-1, comparisons=[], status=None)
        entry.pop("pending_id", None)
        self.state.save()
        self.entry = entry

    @property
    def on(self) -> bool:
        return self.guard.on

    def rows(self, rows: list[dict[str, Any]]) -> bool:
        """Log the rows after the last step this run holds (a resumed trial's history
        rows logged before the kill are not logged twice; rows a kill kept from the run
        are); True when something was logged (the caller saves :class:`TrackerState`)."""
        last = self.entry.get("last_step", -1) if isinstance(self.entry.get("last_step"), int) else -1
        logged = False
        for row in rows:
            parsed = epoch_metrics(row)
            if not self.on or parsed is None or parsed[0] <= last:
                continue
            self.guard(self.store.log, *parsed)
            if self.on:
                self.entry["last_step"] = last = parsed[0]
                logged = True
        return logged

    def finish(self, summary: dict[str, Any]) -> None:
        """The finished trial: final metrics, status tag, samples.png, the run ended."""
        if not self.on:
            return  # off after a failure: close() releases the run
        status = str(summary.get("status"))
        self.entry["status"] = status  # the status tag this run has (a comparison re-tags a crashed one)
        last = self.entry.get("last_step", 0)
        self.guard(self.store.final, max(int(last), 0) if isinstance(last, int) else 0, final_metrics(summary))
        self.guard(self.store.set_tags, run_tags(self.info, self.names, status, comparisons_of(self.entry)))
        self.guard(self.store.files, samples_file(self.trial_dir))
        self.guard(self.store.end, "finished")
        self.done = self.on

    def close(self) -> None:
        """A run not finished -- the trial stopped before its end (interrupted, an
        exception), or the tracker failed on the way -- is ended as ``killed`` (a rerun
        resumes it); after a failure quietly: its one warning has been said."""
        if self.done:
            return
        self.done = True
        if self.on:
            self.guard(self.store.end, "killed")
            return
        try:
            with library_quiet():
                self.store.end("killed")
        except Exception:  # the store that failed before: nothing more to say
            pass


def chosen_id(store: Backend, state: TrackerState, entry: dict[str, Any]) -> str | None:
    """The id to start or resume a run with: the run the entry names, else one chosen now
    and written as ``pending_id`` before the run exists (W&B: a kill between its start and
    the next write resumes that run, never makes a second); None where the store assigns
    ids (MLflow)."""
    for key in ("run_id", "pending_id"):
        if isinstance(entry.get(key), str):
            return entry[key]
    run_id = store.new_id()
    if run_id is not None:
        entry["pending_id"] = run_id
        state.save()
    return run_id


def comparisons_of(entry: dict[str, Any]) -> list[str]:
    """The comparisons a run is tagged with, as trackers.json records them."""
    found = entry.get("comparisons")
    return [c for c in found if isinstance(c, str)] if isinstance(found, list) else []
