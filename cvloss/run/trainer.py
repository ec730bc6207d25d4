"""The training loop of one trial: seed, build, train, evaluate, checkpoint, resume.

Fairness: the model is built right after ``torch.manual_seed(seed)``, so every loss starts
from the same weights at a seed, and each epoch's batches come from a generator seeded by
(seed, epoch) alone, so every loss -- and a resumed trial -- sees the same batches. Every
epoch is scored on ``val``; ``test`` is read twice: the untrained model
(``untrained.json``, the intent-to-treat value of a failed trial) and the final one.
Files in ``cfg.trial_dir``, written atomically: ``trial.json`` first (with
:mod:`cvloss.run.provenance`), ``metrics.csv`` and checkpoints each epoch, samples,
``model.pt``, ``report_data.npz``, ``test_items.json``, ``summary.json`` last (a rerun skips the trial only
when its identity matches, :func:`identity_mismatch`); checkpoints are then deleted
unless ``cfg.keep_checkpoints``. Training runs under the folder's lock
(:mod:`cvloss.run.lock`); a bad checkpoint is set aside and the trial resumes from the
previous one (:func:`_apply_checkpoint`). Details: docs/running.md, docs/protocol.md.
"""
from __future__ import annotations

import copy
import math
import os
import platform
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from cvloss import __version__
from cvloss.data.folders import dataset_label, describe_folder, fingerprint as folder_fingerprint
from cvloss.errors import CheckpointError, CvlossError, ResultsFileError, UsageError
from cvloss.io import (SUMMARY_SCHEMA, atomic_path, check_untrained, load_checkpoint, loss_slug, read_json,
                       read_json_object, read_summary, save_checkpoint, write_csv, write_json)
from cvloss.losses import build_loss, get_loss_info, parse_spec, plugin_provenance
from cvloss.losses.features import FeatureLoss, FeatureWeightsError, _parse_weights
from cvloss.report.grid import save_grid
from cvloss.report.task_plots import REPORT_DATA, UNTRAINED_PREFIX, read_report_data
from cvloss.report.views import view_for
from cvloss.run.config import TrialConfig, identity_difference
from cvloss.run.folds import collect, expand, fold_dirs
from cvloss.run.item_analysis import write_test_items
from cvloss.run.lock import DEFAULT_POLL_S, POLL_ENV, TIMEOUT_ENV, TrialLock, describe, env_seconds
from cvloss.run.live_log import LiveLog
from cvloss.run.memory import PeakMemory
from cvloss.run.provenance import code_key, code_provenance, plugins_used
from cvloss.run.progress import RUNG_STOP, Reporter, data_line
from cvloss.tasks.base import evaluating, metric_names, seed_everything
from cvloss.tasks import get_task_class

SUMMARY, TRIAL, METRICS, CHECKPOINT = "summary.json", "trial.json", "metrics.csv", "checkpoint.pt"
UNTRAINED = "untrained.json"
#: Left in a trial's folder by an executor that gave the trial up (its worker died on
#: every attempt, or its job was cancelled), so that a later report counts it as crashed,
#: not missing; removed when a rerun starts the trial again.
CRASHED = "crashed.json"
# untrained.json also records when the trial first read test (UTC, ISO 8601): what a
# study lock (cvloss.study.lock) checks, since a study may be locked only before that
TEST_READ = "test_read_utc"
PREV_CHECKPOINT = "checkpoint.prev.pt"
MODEL = "model.pt"  # a finished trial's final weights (the model's state_dict only)
# the untrained model's report arrays until the trial ends (a resumed trial's model is no longer untrained)
REPORT_DATA_UNTRAINED = "report_data_untrained.npz"
CHECKPOINT_LAYOUT = 2  # 2: the one training contract (plan optimisers, trainer step, task steppers)
_END = object()


def _no_cuda_advice() -> str:
    """Why torch sees no GPU and what fixes it (a CPU-only build, no driver, a hidden GPU)."""
    from cvloss.environment import cuda_advice, installed_version

    return cuda_advice(installed_version("torch"))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device (``cuda:N`` included)
    must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda:"):  # one GPU of several (--devices places workers so)
        index = name[5:]
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not index.isdigit() or int(index) >= count:
            raise UsageError(f"--device {name}: no such CUDA device; torch sees "
                             + (f"{count} (cuda:0..cuda:{count - 1})" if count else "none" + _no_cuda_advice()))
        return torch.device(name)
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N, mps")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but torch sees no CUDA device" + _no_cuda_advice())
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps requested but MPS is not available")
    return torch.device(name)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's batch order and augmentation: a function of (seed,
    epoch) only, never of the loss or of what ran before (resume-exact, loss-fair)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _versions() -> dict[str, str]:
    import torchvision

    return {"cvloss": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


class TrialError(CvlossError):
    pass


def data_scope(cfg: TrialConfig) -> str:
    """``<task>/<dataset>`` as the results folders name them: a dataset folder is its
    ``<basename>-<hash>`` results folder, never its full path."""
    return f"{cfg.task}/{dataset_label(cfg.dataset)}"


def trial_label(cfg: TrialConfig) -> str:
    """The progress prefix of a trial: ``<task>/<dataset>/<loss-slug>/seed<k>[/fold<f>]``
    (``t<i>/seed<s>``, legacy ``t<i>``, in place of ``seed<k>`` for a tuning trial), each part the folder name the
    results layout gives it (:attr:`TrialConfig.trial_dir`)."""
    fold = "" if cfg.fold is None else f"/fold{cfg.fold}"
    return f"{data_scope(cfg)}/{loss_slug(cfg.name or cfg.loss)}/{cfg.seed_part}{fold}"


def run_trial(cfg: TrialConfig, reporter: Reporter | None = None, stop_after_epoch: int | None = None,
              break_stale_locks: bool = False) -> dict[str, Any]:
    """Run (or resume, or skip) one trial and return its summary; a trial locked by a live
    process is waited for (see :func:`run_trials`).

    ``stop_after_epoch`` stops after that epoch as if the process had been killed (tests
    of resume use it); the returned dict then has ``status == "interrupted"``.
    """
    return run_trials([cfg], reporter, stop_after_epoch, break_stale_locks)[0]


def run_trials(cfgs: list[TrialConfig], reporter: Reporter | None = None, stop_after_epoch: int | None = None,
               break_stale_locks: bool = False) -> list[dict[str, Any]]:
    """Run every trial of ``cfgs`` in order and return their summaries (same order); a
    trial of a k-fold protocol runs as its k fold sub-trials, and its seed summary is
    written after the last (:mod:`cvloss.run.folds`)."""
    flat, where = expand(cfgs)
    return collect(cfgs, where, _run_flat(flat, reporter, stop_after_epoch, break_stale_locks))


def _run_flat(cfgs: list[TrialConfig], reporter: Reporter | None = None, stop_after_epoch: int | None = None,
              break_stale_locks: bool = False) -> list[dict[str, Any]]:
    """Run every trial of ``cfgs`` in order and return their summaries (same order).

    A trial whose lock is held by a live process is left for later: the others run
    first, then the locked ones are polled (every ``$CVLOSS_LOCK_POLL`` seconds, default
    2) until their holder finishes -- its summary is read, never retrained -- or stops
    or dies -- the lock is taken over and the trial resumed from its checkpoint.
    """
    reporter = reporter or Reporter()
    poll = env_seconds(POLL_ENV, DEFAULT_POLL_S)
    done: dict[int, dict[str, Any]] = {}
    pending = list(range(len(cfgs)))
    announced: set[int] = set()
    while pending:
        waiting = []
        for i in pending:
            summary = _attempt_trial(cfgs[i], reporter, stop_after_epoch, break_stale_locks)
            if not isinstance(summary, _Locked):
                done[i] = summary
                continue
            waiting.append(i)
            if i not in announced:
                announced.add(i)
                later = "running the other trials first, then waiting" if len(cfgs) > 1 else "waiting"
                reporter.message(f"[{trial_label(cfgs[i])}] locked by {describe(summary.holder)}: {later} for it "
                                 f"(taken over if its process dies or its heartbeat is older than ${TIMEOUT_ENV}; "
                                 "--break-stale-locks forces it)")
        pending = waiting
        if pending:
            time.sleep(poll)
    return [done[i] for i in range(len(cfgs))]


def _finished(cfg: TrialConfig, label: str, reporter: Reporter) -> dict[str, Any] | None:
    """The summary of ``cfg``'s finished trial (said "already done, skipped"), None when
    it is not finished; a finished trial of another configuration is refused
    (:func:`identity_mismatch`): its numbers are never passed off as ``cfg``'s."""
    out_dir = cfg.trial_dir
    if not (out_dir / SUMMARY).exists():
        return None
    mismatch = identity_mismatch(cfg)
    if mismatch is not None:
        raise TrialError(mismatch)
    summary = read_summary(out_dir / SUMMARY)
    reporter.trial_end(label, "already done, skipped", str(out_dir))
    return summary


_UNKNOWN = object()  # feature weights that only the environment decides (``auto``)


def requested_feature_weights(spec: str, request: str) -> Any:
    """What a trial of ``spec`` with ``--feature-weights request`` records as its
    ``feature_weights`` (:attr:`cvloss.losses.base.Loss.feature_weights`), known without
    building or loading anything: ``random:N`` -> ``random(seed=N)``, ``imagenet``, a
    path -> ``file:<absolute path>`` (so a relative path from another folder differs),
    for every feature term of cvloss's own (``weights=`` of the spec first, else
    ``request``); None for a spec without one. ``auto`` resolves to ImageNet or
    ``random(seed=0)`` by what this machine has when the trial is built, and a plugin's
    term by its own code: then ``_UNKNOWN``, and the recorded value stands (every table
    shows it)."""
    try:
        terms = parse_spec(spec)
        infos = [get_loss_info(t.name) for t in terms]
    except (CvlossError, KeyError):
        return _UNKNOWN
    labels = set()
    for term, info in zip(terms, infos):
        if not (isinstance(info.cls, type) and issubclass(info.cls, FeatureLoss)):
            continue
        if info.plugin is not None:
            return _UNKNOWN
        try:
            mode, arg = _parse_weights(term.args.get("weights", request))
        except FeatureWeightsError:
            return _UNKNOWN
        if mode == "auto":
            return _UNKNOWN
        labels.add({"random": f"random(seed={arg})", "file": f"file:{arg}", "imagenet": "imagenet"}[mode])
    return ", ".join(sorted(labels)) or None


def _recorded_trials(cfg: TrialConfig) -> list[tuple[Path, TrialConfig]]:
    """The trial folders whose ``trial.json`` records what ``cfg``'s folder holds, each
    with the config it must equal: the folder itself and, for a seed's trial of a k-fold
    protocol (:mod:`cvloss.run.folds`), its ``fold<f>`` sub-trials."""
    found = [(cfg.trial_dir, cfg)]
    if cfg.fold is None:
        found += [(d, replace(cfg, fold=int(d.name[4:]))) for d in fold_dirs(cfg.trial_dir)]
    return found


def identity_mismatch(cfg: TrialConfig) -> str | None:
    """One line when ``cfg``'s trial folder holds a trial (finished or not) that is not
    the one ``cfg`` requests, naming the folder and both sides; None when it holds none or
    the same. "The same": the recorded ``identity`` equals :meth:`TrialConfig.identity`
    (spec, task, dataset, budget and settings, seed, the ``--feature-weights`` request,
    a dataset folder's data fingerprint), and the recorded ``feature_weights`` equal what
    the request resolves to wherever that is known beforehand
    (:func:`requested_feature_weights`; ``auto`` is whatever the machine had when the
    trial ran). cvloss writes ``trial.json`` before anything else, so only a folder made
    by hand holds a summary without it: with no recorded identity to compare, it is read
    as before (whoever can write a summary could write a matching record too)."""
    how = "use another --out, or delete that folder to train it anew"
    for trial_dir, want in _recorded_trials(cfg):
        path = trial_dir / TRIAL
        if not (path.exists() or path.is_symlink()):
            continue
        info = read_json_object(path, "trial record", root=trial_dir)
        diff = identity_difference(info.get("identity"), want.identity())
        expected = requested_feature_weights(want.loss, want.feature_weights)
        if diff is None and expected is not _UNKNOWN and info.get("feature_weights") != expected:
            diff = f"feature weights: recorded {info.get('feature_weights')!r}, requested {expected!r}"
        if diff is not None:
            state = "a finished" if (trial_dir / SUMMARY).exists() else "an unfinished"
            return (f"{trial_dir} holds {state} trial of another configuration ({diff}); it is neither reused nor "
                    f"overwritten: {how}")
    return None


def _cannot_write(out_dir: Path, exc: OSError) -> TrialError:
    reason = exc.strerror or type(exc).__name__  # permission denied, a file in the way, read-only file system
    return TrialError(f"cannot write results to {out_dir}: {reason.lower()}; choose another --out")


class _Locked(NamedTuple):
    holder: dict[str, Any]  # the live holder's lock content


def data_changed(cfg: TrialConfig, trial_dirs: list[Path] | None = None) -> str | None:
    """One line when a trial of ``trial_dirs`` (default: every trial of ``cfg``'s group)
    ran on a dataset folder whose fingerprint differs from ``cfg.data_fingerprint``
    (a file added, removed, rewritten or touched since): such a trial is neither resumed
    nor skipped as done. ``None`` when nothing differs (or ``cfg`` is no folder dataset)."""
    if cfg.data_fingerprint is None:
        return None
    # every trial of the group: seeds, their folds, and tuning trials (rglob)
    dirs = trial_dirs if trial_dirs is not None else sorted(p.parent for p in cfg.group_dir.rglob(TRIAL))
    for trial_dir in dirs:
        if not (trial_dir / TRIAL).is_file():
            continue
        recorded = read_json_object(trial_dir / TRIAL, "trial record", root=trial_dir).get("identity")
        old = recorded.get("data_fingerprint") if isinstance(recorded, dict) else None
        if old != cfg.data_fingerprint:
            return (f"the dataset folder {cfg.dataset} changed since {trial_dir} ran on it (data fingerprint "
                    f"{str(old)[:12]} then, {cfg.data_fingerprint[:12]} now): its results would not be of this data; "
                    f"use another --out, or delete {cfg.group_dir} to rerun")
    return None


def _attempt_trial(cfg: TrialConfig, reporter: Reporter, stop_after_epoch: int | None,
                   break_stale_locks: bool) -> dict[str, Any] | _Locked:
    """One try: the summary of a finished trial, :class:`_Locked` when a live process
    holds the trial, else the trial trained under its lock. A trial of a dataset folder
    that changed since it ran is refused (:func:`data_changed`), done or not."""
    out_dir = cfg.trial_dir
    label = trial_label(cfg)
    changed = data_changed(cfg, [out_dir])
    if changed is not None:
        raise TrialError(changed)
    summary = _finished(cfg, label, reporter)
    if summary is not None:
        return summary
    lock = TrialLock(out_dir, break_stale=break_stale_locks, say=lambda text: reporter.message(f"[{label}] {text}"))
    try:
        try:
            holder = lock.acquire()
        except OSError as exc:
            raise _cannot_write(out_dir, exc) from None
        if holder is not None:
            return _Locked(holder)
        # finished by another process between our first look and taking the lock
        done = _finished(cfg, label, reporter)
        if done is not None:
            return done
        (out_dir / CRASHED).unlink(missing_ok=True)  # this attempt decides anew
        return _train(cfg, reporter, stop_after_epoch, lock, label)
    finally:
        lock.release()


class _Trial:
    """Everything one trial trains with, built by :func:`_prepare`."""

    def __init__(self, cfg: TrialConfig, label: str, lock: TrialLock) -> None:
        self.cfg, self.label, self.lock, self.out_dir = cfg, label, lock, cfg.trial_dir
        self.device = resolve_device(cfg.device)
        self.params = cfg.params
        self.loss = build_loss(cfg.loss, task=cfg.task, feature_weights=cfg.feature_weights).to(self.device)
        self.task = get_task_class(cfg.task)(cfg.dataset, self.params, self.device, cfg.data_dir,
                                             feature_weights=cfg.feature_weights, fid_weights=cfg.fid_weights)
        cuda = self.device.type == "cuda"
        self.amp = cuda and bool(self.params.get("amp", False))
        self.channels_last = cuda and bool(self.params.get("channels_last", False))
        self.history: list[dict[str, Any]] = []
        self.start_epoch = self.step = 0
        self.memory = PeakMemory(self.device)
        self.untrained: dict[str, float] = {}
        self.at_init: dict[str, float] | None = None  # a tuning trial's untrained val evaluation, reused as epoch 0

    def fresh_model(self) -> None:
        """Seed, build the model and the plan's optimisers (same weights for every loss)."""
        seed_everything(self.cfg.seed)
        model = self.task.build_model()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizers = self.plan.build_optimizers(model)
        for opt in self.optimizers.values():
            for group in opt.param_groups:  # the base rate the schedule multiplies
                group.setdefault("initial_lr", group["lr"])

    def autocast(self):
        """bf16 autocast on CUDA when the budget asks (``amp``); losses stay fp32 (Slot)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def evaluating(self):
        """Eval mode, no_grad and the budget's autocast (see :func:`cvloss.tasks.base.evaluating`)."""
        return evaluating(self.model, self.autocast())

    def evaluate(self, split: str = "val") -> dict[str, float]:
        with self.evaluating() as model:
            return self.task.evaluate(model, split)

    def set_lr(self) -> None:
        factor = self.task.lr_factor(self.step)
        if factor is None:
            return
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * factor


def _train(cfg: TrialConfig, reporter: Reporter, stop_after_epoch: int | None, lock: TrialLock,
           label: str) -> dict[str, Any]:
    threads = torch.get_num_threads()
    live = None
    try:
        trial = _prepare(cfg, label, lock)
        _untrained(trial, reporter)  # before any checkpoint is loaded: the initial weights
        _untrained_report_data(trial)
        _resume(trial, reporter)
        live = LiveLog(cfg.log, trial.out_dir, cfg)  # --log: TensorBoard, MLflow, W&B (views, never read back)
        stopped = _epochs(trial, reporter, stop_after_epoch, live)
        summary = stopped if stopped is not None else _finish(trial, reporter)
        live.finish(summary)  # final metrics, status, samples; an interrupted trial's runs are resumed by a rerun
        return summary
    finally:
        if live is not None:
            live.close()
        torch.set_num_threads(threads)  # a budget's cpu_threads holds for its trial only


def _prepare(cfg: TrialConfig, label: str, lock: TrialLock) -> _Trial:
    """Build loss, task, data, plan, model and optimisers; write (or check) trial.json."""
    trial = _Trial(cfg, label, lock)
    task = trial.task
    if trial.device.type == "cpu" and trial.params.get("cpu_threads"):
        # Small models gain nothing from intra-op threads, and on a shared CPU every
        # parallel op can stall for a scheduler slice (gan: 50 WGAN-GP steps 34 s with 2
        # threads on a loaded 2-core machine vs ~3 s with one).
        torch.set_num_threads(int(trial.params["cpu_threads"]))
    if cfg.data_fingerprint is not None and folder_fingerprint(cfg.dataset) != cfg.data_fingerprint:
        raise TrialError(f"the dataset folder {cfg.dataset} changed after this run began (its data fingerprint "
                         f"differs); rerun the command on the data as it is now")
    trial.memory.start()
    task.load_data()
    trial.plan = task.plan(trial.loss)
    trial.fresh_model()
    trial.info = {
        "identity": cfg.identity(),
        "config": {**cfg.record(), "params": trial.params},
        "loss": trial.loss.config(),
        "feature_weights": trial.loss.feature_weights,
        "data": task.describe_data(),
        **({"data_folder": {"path": cfg.dataset, "fingerprint": cfg.data_fingerprint,
                            "splits": describe_folder(cfg.dataset, cfg.task)}} if cfg.data_fingerprint else {}),
        "versions": _versions(),
        "code": code_provenance(cfg.loss),
        "plugins": plugins_used(plugin_provenance(), cfg.loss),  # only those its spec uses
        "threads": torch.get_num_threads(),
        "device": _device_name(trial.device),
        "parameters": sum(p.numel() for p in trial.model.parameters()),
    }
    trial.info["git_commit"] = trial.info["code"]["commit"]  # the key older readers know
    _check_or_write_trial(trial.out_dir, trial.info)
    return trial


def _untrained(trial: _Trial, reporter: Reporter) -> None:
    """The untrained model's test metrics: measured once, before any checkpoint is loaded,
    and kept in untrained.json so a resumed trial never reads test again.

    A kept file is read as untrusted (:func:`cvloss.io.check_untrained`: the task's metric
    names, each a finite number or null). One that is not is measured again, saying so in
    one line, rather than refused: the model here is the untrained one, built from the
    seed alone, so the measurement gives the numbers the file should have held -- and
    what reads test is still the untrained model, never a trained one."""
    path = trial.out_dir / UNTRAINED
    if not trial.cfg.test:  # a tuning trial never reads test: its untrained model is scored on val
        return _untrained_val(trial, path)
    first_read = None  # a file measured again keeps the time test was first read
    if path.exists() or path.is_symlink():
        try:
            kept = read_json(path, trial.out_dir)
            if isinstance(kept, dict) and isinstance(kept.get(TEST_READ), str):
                first_read = kept.pop(TEST_READ)
            trial.untrained = check_untrained(kept, path, metric_names(trial.task))
            return
        except ResultsFileError as exc:
            reporter.message(f"[{trial.label}] {exc}; measuring the untrained model again")
    # one entry per metric of the task, as the check above reads it: a value that is not a
    # number is null (as a NaN is written), in the order evaluate gives them
    names = metric_names(trial.task)
    from datetime import datetime, timezone

    first_read = first_read or datetime.now(timezone.utc).isoformat(timespec="seconds")
    measured = {k: v for k, v in trial.evaluate("test").items() if k in names}
    trial.untrained = {k: v if isinstance(measured.get(k), (int, float)) else None
                       for k, v in {**measured, **{n: None for n in names if n not in measured}}.items()}
    write_json(path, {**trial.untrained, TEST_READ: first_read})


def _untrained_val(trial: _Trial, path: Path) -> None:
    """A tuning trial's untrained model on val, once (``untrained.json``): what a diverged
    or crashed seed of a search candidate counts at (:mod:`cvloss.run.tune_score`). The
    whole evaluation is kept as the epoch-0 row of a task that scores its untrained model,
    so val is not evaluated twice."""
    names = metric_names(trial.task)
    if path.exists() and not path.is_symlink():
        try:
            trial.untrained = check_untrained(read_json(path, trial.out_dir), path, names)
            return
        except ResultsFileError:
            pass  # measured again below: the model here is the untrained one
    trial.at_init = trial.evaluate("val")
    trial.untrained = {n: trial.at_init[n] if isinstance(trial.at_init.get(n), (int, float)) else None for n in names}
    write_json(path, trial.untrained)


def _resume(trial: _Trial, reporter: Reporter) -> None:
    """Continue from the newest usable checkpoint; set aside those that cannot be read or
    do not fit this trial (:func:`_apply_checkpoint`)."""
    task_state0 = copy.deepcopy(trial.task.state_dict())
    set_aside: list[str] = []
    for name in (CHECKPOINT, PREV_CHECKPOINT):
        path = trial.out_dir / name
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path)
            _apply_checkpoint(state, trial, path, task_state0)
        except CheckpointError as exc:
            if exc.holds_code:  # an attack, not an accident: stop and let the user look
                raise CheckpointError(f"{exc}; delete it to restart the trial", holds_code=True) from None
            set_aside.append(f"{name} ({str(exc).split(' refused: ', 1)[-1]}) as {_set_aside(path)}")
            trial.fresh_model()  # a failed load may have changed some weights
            trial.task.load_state_dict(copy.deepcopy(task_state0))
            continue
        trial.history, trial.start_epoch, trial.step = list(state["history"]), int(state["epoch"]), int(state["step"])
        break
    if set_aside:
        then = (f"resuming from {PREV_CHECKPOINT} (epoch {trial.start_epoch})" if trial.start_epoch
                else "restarting the trial from scratch")
        reporter.message(f"[{trial.label}] unusable checkpoint set aside: {'; '.join(set_aside)}; {then}")


def _epochs(trial: _Trial, reporter: Reporter, stop_after_epoch: int | None, live: LiveLog) -> dict[str, Any] | None:
    """Train the remaining epochs; a summary when the trial diverged or was stopped."""
    cfg, task, epochs = trial.cfg, trial.task, trial.params["epochs"]
    # said once per comparison, not per trial: the reporter drops a data line it has shown
    scope = data_scope(cfg)
    reporter.message(data_line(scope, f"{task.describe_data()}; device: {trial.info['device']}"))
    if trial.loss.feature_weights:  # differs by loss (l1: none), so a line of its own
        reporter.message(data_line(scope, str(trial.loss.feature_weights), key="feature weights"))
    if task.spec.evaluate_at_init and not trial.history:
        trial.history.append({"epoch": 0, "train_loss": math.nan, **(trial.at_init or trial.evaluate()),
                              "epoch_time_s": 0.0, "train_time_s": 0.0, "data_time_s": 0.0})
        write_csv(trial.out_dir / METRICS, trial.history)
    reporter.trial_start(trial.label, epochs, task.num_batches(), trial.start_epoch)
    trial.t_start = time.perf_counter()
    live.history(trial.history, trial.start_epoch)  # the untrained model's row; rows a resumed run lacks
    return _epoch_loop(trial, reporter, stop_after_epoch, live)


def _epoch_loop(trial: _Trial, reporter: Reporter, stop_after_epoch: int | None, live: LiveLog) -> dict[str, Any] | None:
    task, epochs = trial.task, trial.params["epochs"]
    rung = trial.cfg.stop_at_epoch  # a successive-halving rung: stop there, the checkpoint kept for the next rung
    if rung is not None:
        if trial.start_epoch >= rung and trial.start_epoch < epochs:  # resumed at (or past) its rung already
            return _rung_stop(trial, reporter, trial.start_epoch)
        stop_after_epoch = rung if stop_after_epoch is None else min(rung, stop_after_epoch)
    for epoch in range(trial.start_epoch + 1, epochs + 1):
        row = _epoch(trial, epoch, reporter)
        if row.get("status") == "diverged":
            return row
        trial.history.append(row)
        live.epoch(row)
        write_csv(trial.out_dir / METRICS, trial.history)
        trial.lock.refresh()  # the heartbeat; raises if another process has taken the trial over
        save_checkpoint(trial.out_dir / CHECKPOINT, keep_previous=trial.out_dir / PREV_CHECKPOINT, state={
            "layout": CHECKPOINT_LAYOUT,
            "epoch": epoch,
            "step": trial.step,
            "model": trial.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in trial.optimizers.items()},
            "task": task.state_dict(),
            "history": trial.history,
        })
        reporter.epoch_end(epoch, epochs, row)
        if rung is not None and epoch == rung < epochs:
            return _rung_stop(trial, reporter, epoch)
        if stop_after_epoch is not None and stop_after_epoch <= epoch < epochs:
            return {"status": "interrupted", "epoch": epoch}
    return None


def _rung_stop(trial: _Trial, reporter: Reporter, epoch: int) -> dict[str, Any]:
    """A search trial at its rung: its batch is done with it (the progress views count it
    and stop showing it as running); the checkpoint stays for a later rung."""
    reporter.trial_end(trial.label, RUNG_STOP, f"epoch {epoch} of {trial.params['epochs']} "
                                               f"in {time.perf_counter() - trial.t_start:.1f}s")
    return {"status": "interrupted", "epoch": epoch}


def _epoch(trial: _Trial, epoch: int, reporter: Reporter) -> dict[str, Any]:
    """One epoch: every batch's step (every scalar it returns logged and checked), then
    the evaluation; the metrics.csv row, or the diverged summary."""
    trial.model.train()
    t0 = time.perf_counter()
    data_time, sums, n = 0.0, {}, 0
    batches = trial.task.train_batches(epoch_generator(trial.cfg.seed, epoch))
    while True:
        t_data = time.perf_counter()
        batch = next(batches, _END)
        if batch is _END:
            break
        data_time += time.perf_counter() - t_data
        trial.set_lr()
        with trial.autocast():
            out = trial.task.train_step(trial.model, trial.plan, trial.optimizers, batch)
        trial.step += 1
        n += 1
        values = {k: float(v) for k, v in out.items()}
        bad = next((k for k, v in values.items() if not math.isfinite(v)), None)
        if bad is not None:
            return _diverged(trial, epoch, n, bad, values[bad], reporter)
        for k, v in values.items():
            sums.setdefault(k, []).append(v)
        reporter.batch(values["loss"])
    train_time = time.perf_counter() - t0
    row = {"epoch": epoch, **{f"train_{k}": float(np.mean(v)) for k, v in sums.items()}}
    row.setdefault("train_loss", math.nan)
    row.update(trial.evaluate())
    row["epoch_time_s"] = time.perf_counter() - t0
    row["train_time_s"] = train_time  # the optimisation part of the epoch (no evaluation)
    row["data_time_s"] = data_time  # of which waiting for batches
    return row


def _finish(trial: _Trial, reporter: Reporter) -> dict[str, Any]:
    """Samples, the collapse and degenerate checks and summary.json (written last). The
    status: ``collapsed`` (the task's collapse check on val), else ``degenerate`` (its
    degenerate rule on val, :func:`_degenerate`), else ``done``; the rule's verdict on
    test is recorded as ``degenerate_on_test``, a note that decides nothing."""
    cfg, task, out_dir, history = trial.cfg, trial.task, trial.out_dir, trial.history
    with trial.evaluating() as model:
        rows = task.sample_rows(model)
        arrays = task.report_arrays(model) if cfg.test else {}  # for the report's plots: a comparison's trials
        final = history[-1] if history else {}
        names = metric_names(task)
        val_metrics = {k: final[k] for k in names if k in final}
        collapse = task.collapse_reason(model, val_metrics)  # a decision: on val
        split = "test" if cfg.test else "val"  # a tuning trial is scored on val alone
        metrics = {k: v for k, v in task.evaluate(model, "test").items() if k in names} if cfg.test else dict(val_metrics)
        items = task.test_items("test") if cfg.test else None  # that evaluation per test item (few-item test splits)
        reference = task.reference_metrics(split)
        degenerate, degenerate_on_test = _degenerate(trial, model, val_metrics, metrics, collapse)
    status = "collapsed" if collapse else "degenerate" if degenerate else "done"
    with atomic_path(out_dir / "samples.npz") as tmp:
        np.savez_compressed(tmp, **rows)
    # The grid shows the image rows (uint8 (K, H, W, 3)); a task may save other arrays too.
    images = {k: v for k, v in rows.items() if v.ndim == 4 and v.shape[-1] == 3 and v.dtype == np.uint8}
    view = view_for(cfg.task)
    save_grid(images, out_dir / "samples.png", titles={**view.sample_titles, "pred": cfg.loss}, note=view.sample_note)
    _write_report_data(trial, arrays)
    save_model(trial.model, out_dir / MODEL)  # before summary.json: a done trial always has it
    summary = {
        **_summary_head(trial, status),
        "metrics": metrics,
        "val_metrics": val_metrics,
        **({"collapse": collapse} if collapse else {}),
        # always present (null: not degenerate), so a reader tells a trial the rule passed
        # from one written before the rule existed (no such keys)
        "degenerate": degenerate,
        "degenerate_on_test": degenerate_on_test,
        **({"at_init": {k: history[0][k] for k in names if k in history[0]}} if task.spec.evaluate_at_init else {}),
        "reference": reference,
        "train_loss": final.get("train_loss"),
        "epochs": trial.params["epochs"],
        **_compute(trial),
        "feature_weights": trial.loss.feature_weights,
        "device": _device_name(trial.device),
    }
    write_test_items(out_dir, items, task.spec.item_unit)  # test_items.json, for a test split of few items
    write_json(out_dir / SUMMARY, summary)
    _drop_checkpoints(trial)
    primary = summary["metrics"].get(task.spec.primary, math.nan)
    why = collapse or degenerate
    reporter.trial_end(trial.label, summary["status"] + (f" ({why})" if why else ""),
                       f"{task.spec.primary}={primary:.4g} in {time.perf_counter() - trial.t_start:.1f}s")
    return summary


def _degenerate(trial: _Trial, model: torch.nn.Module, val_metrics: dict[str, float], metrics: dict[str, float],
                collapse: str | None) -> tuple[str | None, str | None]:
    """The task's degenerate rule (:meth:`cvloss.tasks.base.Task.degenerate_reason`) on
    the trained model: (its reason on val -- the decision --, its reason on test -- a note,
    measured only by a trial that reads test). Neither is asked of a collapsed trial:
    degenerate is checked only when a trial neither diverged nor collapsed. The untrained
    model's metrics the rule compares with: on val, the epoch-0 row of a task that scores
    its untrained model (``spec.evaluate_at_init``); on test, ``untrained.json``'s."""
    if collapse:
        return None, None
    task, history = trial.task, trial.history
    names = set(metric_names(task))
    first = history[0] if history and history[0].get("epoch") == 0 else {}
    untrained_val = {k: v for k, v in first.items() if k in names}
    on_val = task.degenerate_reason(model, val_metrics, "val", untrained_val)
    on_test = task.degenerate_reason(model, metrics, "test", trial.untrained) if trial.cfg.test else None
    return on_val, on_test


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as an uncompressed ``.npz`` (plain arrays: read back without pickle), atomically."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})


def _untrained_report_data(trial: _Trial) -> None:
    """The untrained model's :meth:`~cvloss.tasks.base.Task.report_arrays`, taken before any
    checkpoint is loaded and kept in :data:`REPORT_DATA_UNTRAINED` until the trial ends, so a
    resumed trial still has them. Only a trial that reads test (a comparison's) keeps report
    data; a task without report arrays writes nothing."""
    path = trial.out_dir / REPORT_DATA_UNTRAINED
    if not trial.cfg.test or path.exists():
        return
    with trial.evaluating() as model:
        arrays = trial.task.report_arrays(model)
    if arrays:
        _save_arrays(path, arrays)


def _write_report_data(trial: _Trial, arrays: dict[str, np.ndarray]) -> None:
    """:data:`REPORT_DATA`: the final model's report arrays plus the untrained model's
    (keys prefixed ``untrained.``; left out when their file cannot be read), then the
    untrained file goes. Nothing for a task without report arrays."""
    if not arrays:
        return
    kept = trial.out_dir / REPORT_DATA_UNTRAINED
    untrained: dict[str, np.ndarray] = {}
    if kept.exists():
        try:
            untrained = read_report_data(trial.out_dir, REPORT_DATA_UNTRAINED)
        except ResultsFileError:
            pass  # the final arrays still draw; the plot lacks the untrained curve
    _save_arrays(trial.out_dir / REPORT_DATA, {**arrays, **{UNTRAINED_PREFIX + k: v for k, v in untrained.items()}})
    kept.unlink(missing_ok=True)


def save_model(model: torch.nn.Module, path: Path) -> None:
    """Write ``model``'s ``state_dict`` (CPU tensors: it loads on a machine without the
    GPU it trained on) atomically to ``path``: plain tensors, so
    ``torch.load(path, weights_only=True)`` reads it and ``model.load_state_dict`` takes it.
    Adversarial tasks' models hold their generator(s) and discriminator(s) alike."""
    state = model.state_dict()
    cpu = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    if hasattr(state, "_metadata"):  # the modules' versions, as load_state_dict reads them
        cpu._metadata = state._metadata  # type: ignore[attr-defined]
    save_checkpoint(path, cpu)


def _drop_checkpoints(trial: _Trial) -> None:
    """Delete a finished trial's resume checkpoints (its ``summary.json`` is written: a
    rerun skips it, nothing resumes from them) unless ``--keep-checkpoints``. A process
    killed before this leaves them behind, which is harmless. Set-aside corrupt ones
    (``checkpoint.pt.corrupt-<n>``) stay for a post-mortem."""
    if trial.cfg.keep_checkpoints:
        return
    for name in (CHECKPOINT, PREV_CHECKPOINT, REPORT_DATA_UNTRAINED):  # the last: a diverged trial's, resume state too
        try:
            (trial.out_dir / name).unlink()
        except FileNotFoundError:  # a trial of one epoch has no previous checkpoint
            pass


def _summary_head(trial: _Trial, status: str) -> dict[str, Any]:
    """The fields every summary starts with: schema, status, what ran, on which split,
    and the untrained model's test metrics (the intent-to-treat value of a failure; a
    tuning trial's are on val)."""
    cfg = trial.cfg
    return {"schema": SUMMARY_SCHEMA, "status": status, "task": cfg.task, "dataset": cfg.dataset,
            "budget": cfg.budget, "loss": cfg.loss, "seed": cfg.seed, "split": "test" if cfg.test else "val",
            "untrained": trial.untrained}


def _compute(trial: _Trial) -> dict[str, Any]:
    """What the trial cost: wall time of its epochs (training + val evaluation), training
    time per optimisation step, steps, peak memory with how it was measured, and the
    task's own counts (generator updates of adversarial tasks)."""
    train = sum(r.get("train_time_s", 0.0) for r in trial.history)
    peak, how = trial.memory.read()
    return {"train_time_s": sum(r.get("epoch_time_s", 0.0) for r in trial.history),
            "steps": trial.step, "step_time_s": train / trial.step if trial.step else None,
            "peak_mem_mib": peak, "peak_mem_how": how, **trial.task.summary_extras()}


def _check_or_write_trial(out_dir: Path, info: dict[str, Any]) -> None:
    """Write trial.json, or check that an existing one describes the same trial and was
    started by the same code, so a rerun never mixes two configurations -- or two
    versions of the code -- in one folder."""
    path = out_dir / TRIAL
    if path.exists():
        old = read_json_object(path, "trial record", root=out_dir)
        diff = identity_difference(old.get("identity"), info["identity"])
        if diff is None and old.get("feature_weights") != info["feature_weights"]:  # resolved: auto included
            diff = f"feature weights: recorded {old.get('feature_weights')!r}, requested {info['feature_weights']!r}"
        if diff is not None:
            raise TrialError(f"{out_dir} holds an unfinished trial of another configuration ({diff}); it is neither "
                             f"resumed nor overwritten: use another --out, or delete that folder to train it anew")
        then, now = code_key(old), code_key(info)
        if then != now:
            raise TrialError(
                f"{out_dir} holds an unfinished trial started by other code (source {then[0]}, torch {then[1]}; now "
                f"{now[0]}, torch {now[1]}); a trial is never resumed by different code: delete that folder to "
                f"restart it, rerun the comparison with --retrain-stale, or finish it with the code that started it")
        return
    try:
        write_json(path, info)
    except OSError as exc:
        raise _cannot_write(out_dir, exc) from None


def _apply_checkpoint(state: dict[str, Any], trial: _Trial, path: Path, task_state0: dict[str, Any]) -> None:
    """Load a checkpoint's states after checking that it is one of this trial: its epoch
    and step within the budget, its history those epochs', its optimisers this plan's
    (same names, hyper-parameters, state tensors of the parameters' shapes) and its task
    state shaped like ``task_state0`` (the fresh task's). One that does not fit -- a file
    edited by hand, another trial's -- is a :class:`CheckpointError` (set aside like a
    corrupt one). One of an older layout (before the one training contract) is refused
    with one line."""
    if isinstance(state, dict) and "layout" not in state and "model" in state:
        raise TrialError(f"checkpoint {path} was written by an older cvloss (another checkpoint layout); "
                         f"delete the trial folder {trial.out_dir} or rerun with the version that wrote it")
    try:
        if state["layout"] != CHECKPOINT_LAYOUT:
            raise ValueError(f"layout {str(state['layout'])[:20]!r}")
        misfit = _progress_misfit(state, trial)
        if misfit is None:
            trial.model.load_state_dict(state["model"])
            misfit = _load_optimizers(state["optimizers"], trial)
        if misfit is None:
            misfit = _state_misfit(task_state0, state["task"], "task state")
            if misfit is None:
                trial.task.load_state_dict(state["task"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        misfit = type(exc).__name__
    if misfit is not None:
        raise CheckpointError(f"checkpoint {path} refused: it does not fit this trial ({misfit})")


def _progress_misfit(state: dict[str, Any], trial: _Trial) -> str | None:
    """Why a checkpoint's epoch, step or history cannot be this trial's, or None. Every
    epoch runs ``num_batches()`` steps (the trainer counts them), so a checkpoint written
    after epoch ``e`` of ``0 <= e <= epochs`` holds step ``e * num_batches()`` and the
    history rows of epochs 1..e (0..e when the task scores the untrained model). An epoch
    past the budget would mark the trial done untrained; a negative one would train
    extra epochs; another step would shift the learning-rate schedule."""
    epochs, per_epoch = int(trial.params["epochs"]), trial.task.num_batches()
    epoch, step, history = state["epoch"], state["step"], state["history"]
    if type(epoch) is not int or not 0 <= epoch <= epochs:
        return f"epoch {str(epoch)[:20]} is outside this trial's 0..{epochs}"
    if type(step) is not int or step != epoch * per_epoch:
        return f"step {str(step)[:20]} after epoch {epoch} is not {epoch} x {per_epoch} batches"
    first = 0 if trial.task.spec.evaluate_at_init else 1
    if not (isinstance(history, list) and all(isinstance(r, dict) for r in history)
            and [r.get("epoch") for r in history] == list(range(first, epoch + 1))
            and all(isinstance(k, str) and (v is None or isinstance(v, (int, float, str)))
                    for r in history for k, v in r.items())):
        return f"its history is not the rows of epochs {first}..{epoch}"
    return None


def _load_optimizers(saved: Any, trial: _Trial) -> str | None:
    """Load every optimiser of the plan from ``saved`` (name -> state_dict); why they do
    not fit, or None. The hyper-parameters must be the plan's (``lr`` too where the task
    keeps it constant: with a schedule :meth:`_Trial.set_lr` sets it before every step),
    and every state tensor a scalar, of its parameter's shape, or flat over all of them
    (L-BFGS's history), so a step can neither crash nor silently train otherwise."""
    if not isinstance(saved, dict) or set(saved) != set(trial.optimizers):
        found = sorted(map(str, saved))[:4] if isinstance(saved, dict) else "none"
        return f"optimisers {found}, not this plan's {sorted(trial.optimizers)}"
    skip = ("params", "lr") if trial.task.lr_factor(trial.step) is not None else ("params",)
    for name, opt in trial.optimizers.items():
        plan = [{k: v for k, v in g.items() if k not in skip} for g in opt.param_groups]
        opt.load_state_dict(saved[name])
        if [{k: v for k, v in g.items() if k not in skip} for g in opt.param_groups] != plan:
            return f"optimiser {name!r} has other hyper-parameters than this plan's"
        flat = sum(p.numel() for g in opt.param_groups for p in g["params"])
        for param, per_param in opt.state.items():
            for value in _tensors(per_param):
                if value.dim() and value.shape != param.shape and not (value.dim() == 1 and value.numel() == flat):
                    return (f"optimiser {name!r} holds a state of shape {tuple(value.shape)} for a parameter of "
                            f"{tuple(param.shape)}")
    return None


def _tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value`` (nested dicts, lists and tuples)."""
    if isinstance(value, torch.Tensor):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return [t for item in items for t in _tensors(item)]


def _state_misfit(fresh: Any, saved: Any, where: str) -> str | None:
    """Why ``saved`` is not shaped like ``fresh`` (a task's state as built), or None: the
    same keys, list lengths and types; tensors of the same dtype and shape (an image pool
    not yet filled is None when fresh: then a tensor too); counts whole numbers >= 0."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            return f"{where} has other entries than this task's"
        misfits = (_state_misfit(fresh[k], saved[k], f"{where}[{k!r}]") for k in fresh)
        return next((m for m in misfits if m is not None), None)
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return f"{where} is not a list of {len(fresh)}"
        misfits = (_state_misfit(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(fresh, saved)))
        return next((m for m in misfits if m is not None), None)
    if isinstance(fresh, torch.Tensor):
        ok = isinstance(saved, torch.Tensor) and saved.dtype == fresh.dtype and saved.shape == fresh.shape
        return None if ok else f"{where} is not a {fresh.dtype} tensor of shape {tuple(fresh.shape)}"
    if fresh is None:
        return None if saved is None or isinstance(saved, torch.Tensor) else f"{where} is not a tensor"
    if isinstance(fresh, bool) or isinstance(fresh, str):
        return None if type(saved) is type(fresh) else f"{where} is not a {type(fresh).__name__}"
    if isinstance(fresh, int):
        return None if type(saved) is int and saved >= 0 else f"{where} is not a count >= 0"
    if isinstance(fresh, float):
        ok = isinstance(saved, (int, float)) and not isinstance(saved, bool) and math.isfinite(saved)
        return None if ok else f"{where} is not a finite number"
    return None


def _set_aside(path: Path) -> str:
    """Rename a corrupt checkpoint to ``<name>.corrupt-<n>`` (kept for a post-mortem)."""
    n = 1
    while path.with_name(f"{path.name}.corrupt-{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, aside)
    return aside.name


def _diverged(trial: _Trial, epoch: int, step: int, key: str, value: float, reporter: Reporter) -> dict[str, Any]:
    summary = {
        **_summary_head(trial, "diverged"),
        "diverged_at": {"epoch": epoch, "step": step, key: repr(value)},
        "metrics": {},
        **_compute(trial),
    }
    if trial.history:
        write_csv(trial.out_dir / METRICS, trial.history)
    write_json(trial.out_dir / SUMMARY, summary)
    _drop_checkpoints(trial)  # a done trial is never resumed; no model.pt: its weights may not be finite
    reporter.trial_end(trial.label, "DIVERGED", f"{key}={value} at epoch {epoch}, step {step}")
    return summary
