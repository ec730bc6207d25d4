"""The training loop of one trial: seed, build, train, evaluate, checkpoint, resume.

Fairness: the model is built right after ``torch.manual_seed(seed)``, before anything
else draws from the global generator, so every loss starts from the same weights at a
given seed; each epoch's batch order and augmentation come from a generator seeded by
(seed, epoch) alone, so every loss sees the same batches in the same order -- and a
resumed trial sees exactly the batches an uninterrupted one would have.

Files (written atomically, see :mod:`cvloss.run.io`), in ``cfg.trial_dir``:
``trial.json`` (first), ``metrics.csv`` and ``checkpoint.pt`` (each epoch; the one before
is kept as ``checkpoint.prev.pt``), ``samples.png`` and ``samples.npz``, then
``summary.json`` (last: its presence means the trial is done).

A trial is trained under its folder's lock (:mod:`cvloss.run.lock`): a command that meets
a trial locked by a live process runs its other trials first, then waits for that one
and reads its summary, so no trial is ever trained twice at once.

A checkpoint that cannot be read (0 bytes, truncated) is set aside as
``checkpoint.pt.corrupt-<n>`` and the trial resumes from the previous one, or restarts
from scratch when neither is good, saying so in one line. A checkpoint that holds code is
never loaded: the trial stops with one line naming it.
"""
from __future__ import annotations

import copy
import math
import os
import platform
import random
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from cvloss import __version__
from cvloss.errors import CheckpointError, CvlossError, UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.io import atomic_path, load_checkpoint, read_json, read_summary, save_checkpoint, write_csv, write_json
from cvloss.run.lock import DEFAULT_POLL_S, POLL_ENV, TIMEOUT_ENV, TrialLock, describe, env_seconds
from cvloss.run.progress import Reporter

SUMMARY, TRIAL, METRICS, CHECKPOINT = "summary.json", "trial.json", "metrics.csv", "checkpoint.pt"
PREV_CHECKPOINT = "checkpoint.prev.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; valid: auto, cpu, cuda, mps")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but torch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps requested but MPS is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's batch order and augmentation: a function of (seed,
    epoch) only, never of the loss or of what ran before (resume-exact, loss-fair)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


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


def trial_label(cfg: TrialConfig) -> str:
    return f"{cfg.task}/{cfg.dataset}/{cfg.loss}/seed{cfg.seed}"


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


def _finished(out_dir: Path, label: str, reporter: Reporter) -> dict[str, Any] | None:
    if not (out_dir / SUMMARY).exists():
        return None
    summary = read_summary(out_dir / SUMMARY)
    reporter.trial_end(label, "already done, skipped", str(out_dir))
    return summary


def _cannot_write(out_dir: Path, exc: OSError) -> TrialError:
    reason = exc.strerror or type(exc).__name__  # permission denied, a file in the way, read-only file system
    return TrialError(f"cannot write results to {out_dir}: {reason.lower()}; choose another --out")


class _Locked(NamedTuple):
    holder: dict[str, Any]  # the live holder's lock content


def _attempt_trial(cfg: TrialConfig, reporter: Reporter, stop_after_epoch: int | None,
                   break_stale_locks: bool) -> dict[str, Any] | _Locked:
    """One try: the summary of a finished trial, :class:`_Locked` when a live process
    holds the trial, else the trial trained under its lock."""
    out_dir = cfg.trial_dir
    label = trial_label(cfg)
    summary = _finished(out_dir, label, reporter)
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
        return _finished(out_dir, label, reporter) or _train(cfg, reporter, stop_after_epoch, lock, label)
    finally:
        lock.release()


def _train(cfg: TrialConfig, reporter: Reporter, stop_after_epoch: int | None, lock: TrialLock,
           label: str) -> dict[str, Any]:
    from cvloss.losses import build_loss
    from cvloss.tasks import get_task_class

    out_dir = cfg.trial_dir
    device = resolve_device(cfg.device)
    params = cfg.params
    loss = build_loss(cfg.loss, task=cfg.task, feature_weights=cfg.feature_weights).to(device)
    task = get_task_class(cfg.task)(cfg.dataset, params, device, cfg.data_dir)
    task.feature_weights = cfg.feature_weights
    task.fid_weights = cfg.fid_weights  # --fid-weights: recorded in trial.json, not part of identity
    task.load_data()

    def fresh_model():
        seed_everything(cfg.seed)
        model = task.build_model()
        return model, task.build_optimizers(model)

    model, optimizers = fresh_model()
    trial_info = {
        "identity": cfg.identity(),
        "config": {**cfg.__dict__, "params": params},
        "loss": loss.config(),
        "feature_weights": loss.feature_weights,
        "data": task.describe_data(),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "device": _device_name(device),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    _check_or_write_trial(out_dir, trial_info)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    task_state0 = copy.deepcopy(task.state_dict())
    set_aside: list[str] = []
    for name in (CHECKPOINT, PREV_CHECKPOINT):
        path = out_dir / name
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path)
            _apply_checkpoint(state, model, optimizers, task, path)
        except CheckpointError as exc:
            if exc.holds_code:  # an attack, not an accident: stop and let the user look
                raise CheckpointError(f"{exc}; delete it to restart the trial", holds_code=True) from None
            set_aside.append(f"{name} ({str(exc).split(' refused: ', 1)[-1]}) as {_set_aside(path)}")
            model, optimizers = fresh_model()  # a failed load may have changed some weights
            task.load_state_dict(copy.deepcopy(task_state0))
            continue
        history, start_epoch = list(state["history"]), int(state["epoch"])
        break
    if set_aside:
        then = f"resuming from {PREV_CHECKPOINT} (epoch {start_epoch})" if start_epoch else "restarting the trial from scratch"
        reporter.message(f"[{label}] unreadable checkpoint set aside: {'; '.join(set_aside)}; {then}")

    epochs = params["epochs"]
    reporter.message(f"[{label}] data: {task.describe_data()}; device: {trial_info['device']}; "
                     f"feature weights: {loss.feature_weights or 'none'}")
    if task.evaluate_at_init and not history:
        history.append({"epoch": 0, "train_loss": math.nan, **task.evaluate(model),
                        "epoch_time_s": 0.0, "train_time_s": 0.0, "data_time_s": 0.0})
        write_csv(out_dir / METRICS, history)
    reporter.trial_start(label, epochs, task.num_batches(), start_epoch)
    t_start = time.perf_counter()
    for epoch in range(start_epoch + 1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        data_time, losses = 0.0, []
        batches = task.train_batches(epoch_generator(cfg.seed, epoch))
        step = 0
        while True:
            t_data = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            data_time += time.perf_counter() - t_data
            step += 1
            value = float(task.train_step(model, loss, optimizers, batch)["loss"])
            if not math.isfinite(value):
                return _diverged(cfg, out_dir, history, epoch, step, value, reporter, label)
            losses.append(value)
            reporter.batch(value)
        train_time = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan}
        row.update(task.evaluate(model))
        row["epoch_time_s"] = time.perf_counter() - t0
        row["train_time_s"] = train_time  # the optimisation part of the epoch (no evaluation)
        row["data_time_s"] = data_time  # of which waiting for batches
        history.append(row)
        write_csv(out_dir / METRICS, history)
        lock.refresh()  # the heartbeat; raises if another process has taken the trial over
        save_checkpoint(out_dir / CHECKPOINT, keep_previous=out_dir / PREV_CHECKPOINT, state={
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "task": task.state_dict(),
            "history": history,
        })
        reporter.epoch_end(epoch, epochs, row)
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < epochs:
            return {"status": "interrupted", "epoch": epoch}

    rows = task.sample_rows(model)
    with atomic_path(out_dir / "samples.npz") as tmp:
        np.savez_compressed(tmp, **rows)
    from cvloss.tasks.base import save_grid

    # The grid shows the image rows (uint8 (K, H, W, 3)); a task may save other arrays too.
    images = {k: v for k, v in rows.items() if v.ndim == 4 and v.shape[-1] == 3 and v.dtype == np.uint8}
    save_grid(images, out_dir / "samples.png", titles={"pred": cfg.loss})
    final = history[-1] if history else {}
    metrics = {k: final[k] for k in task.metrics if k in final}
    collapse = task.collapse_reason(model, metrics)
    summary = {
        "status": "collapsed" if collapse else "done",
        "task": cfg.task, "dataset": cfg.dataset, "budget": cfg.budget, "loss": cfg.loss, "seed": cfg.seed,
        "metrics": metrics,
        **({"collapse": collapse} if collapse else {}),
        **({"at_init": {k: history[0][k] for k in task.metrics if k in history[0]}} if task.evaluate_at_init else {}),
        "reference": task.reference_metrics(),
        "train_loss": final.get("train_loss"),
        "epochs": epochs,
        "train_time_s": sum(r["epoch_time_s"] for r in history),
        "feature_weights": loss.feature_weights,
        "device": _device_name(device),
    }
    write_json(out_dir / SUMMARY, summary)
    reporter.trial_end(label, summary["status"] + (f" ({collapse})" if collapse else ""), f"{task.primary_metric}={summary['metrics'].get(task.primary_metric, math.nan):.4g} "
                       f"in {time.perf_counter() - t_start:.1f}s")
    return summary


def _check_or_write_trial(out_dir: Path, info: dict[str, Any]) -> None:
    """Write trial.json, or check that an existing one describes the same trial, so a
    rerun never mixes two configurations in one folder."""
    path = out_dir / TRIAL
    if path.exists():
        old = read_json(path)
        if old.get("identity") != info["identity"] or old.get("feature_weights") != info["feature_weights"]:
            raise TrialError(
                f"{out_dir} holds a trial with a different configuration "
                f"(feature weights {old.get('feature_weights')} vs {info['feature_weights']}, or settings); "
                f"use another --out or delete that folder"
            )
        return
    try:
        write_json(path, info)
    except OSError as exc:
        raise _cannot_write(out_dir, exc) from None


def _apply_checkpoint(state: dict[str, Any], model, optimizers: dict, task, path: Path) -> None:
    """Load a checkpoint's states; one that loads but does not fit is corrupt too."""
    try:
        model.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        task.load_state_dict(state.get("task", {}))
        int(state["epoch"]), list(state["history"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} refused: it does not fit this trial ({type(exc).__name__})") from None


def _set_aside(path: Path) -> str:
    """Rename a corrupt checkpoint to ``<name>.corrupt-<n>`` (kept for a post-mortem)."""
    n = 1
    while path.with_name(f"{path.name}.corrupt-{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, aside)
    return aside.name


def _diverged(cfg, out_dir, history, epoch, step, value, reporter, label) -> dict[str, Any]:
    summary = {
        "status": "diverged",
        "task": cfg.task, "dataset": cfg.dataset, "budget": cfg.budget, "loss": cfg.loss, "seed": cfg.seed,
        "diverged_at": {"epoch": epoch, "step": step, "loss": repr(value)},
        "metrics": {},
    }
    if history:
        write_csv(out_dir / METRICS, history)
    write_json(out_dir / SUMMARY, summary)
    reporter.trial_end(label, "DIVERGED", f"loss={value} at epoch {epoch}, step {step}")
    return summary
