"""Executors: where and when a comparison's trials run -- one interface, one registry.

A trial is a pure function of its configuration that writes one folder under its lock
(:func:`cvloss.run.trainer.run_trial`), so an executor only decides *where* and *when*
each :class:`~cvloss.run.config.TrialConfig` runs. :class:`Executor` declares ``run``
(summaries in the order of the configurations; a trial whose worker died on every
attempt gets :func:`crashed_summary`), ``progress``, ``cancel`` and ``resources``.

:data:`EXECUTORS` holds ``local`` (:class:`SerialExecutor`, :class:`ProcessExecutor`),
``ray``, ``slurm`` and the entry-point group ``cvloss.executors``;
:func:`executor_from_options` is the one place options are checked. Workers never write
to the terminal: their messages (:class:`PipeReporter`, :class:`Lines`) travel to the one
process that prints. A pool worker that dies is retried once from its last checkpoint;
a second death makes the trial crashed. See docs/running.md.
"""
from __future__ import annotations

import abc
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field, fields, replace
from multiprocessing import connection, get_context
from typing import Any, ClassVar

from cvloss.errors import UsageError
from cvloss.io import write_json
from cvloss.registry import Registry
from cvloss.run.config import TrialConfig
from cvloss.run.progress import ComparisonView, ForwardingReporter, Reporter, RichComparisonView, make_reporter
from cvloss.run.trainer import CRASHED, run_trial, run_trials, trial_label

# Test hooks, read by the worker side of every executor. KILL: "<label substring>:<attempts>[,...]"
# makes a worker SIGKILL itself when that trial starts training, on its first <attempts>
# attempts (1: the retry path, 2: crashed). PAUSE: "<label substring>:<epoch>" makes the
# trial sleep after that epoch's checkpoint when it trained that epoch itself (not when it
# resumed past it): a test stops or signals it there, at a known point.
KILL_HOOK_ENV = "CVLOSS_TEST_KILL_WORKER"
PAUSE_HOOK_ENV = "CVLOSS_TEST_PAUSE_WORKER"
_PAUSE_S = 300.0
MAX_ATTEMPTS = 2  # a trial whose worker died is retried once
_BATCH_EVERY_S = 0.25  # per-batch progress is sent at most this often (the pipe is shared by events)
_STOP_GRACE_S = 60.0  # how long interrupted workers get to release locks before being killed


# ---------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class TrialResources:
    """What one trial gets where it runs: ``cpus`` (its torch threads, reserved where
    the executor reserves), ``gpus`` (0; a share of one with Ray), ``where`` (in words)."""

    cpus: int | None
    gpus: float = 0.0
    where: str = "this process"

    def describe(self) -> str:
        cpus = f"{self.cpus} CPU thread(s)" if self.cpus else "torch's CPU threads"
        return f"{self.where}: {cpus}" + (f" and {self.gpus:g} GPU" if self.gpus else "") + " per trial"


def crashed_summary(cfg: TrialConfig, why: str) -> dict[str, Any]:
    """The summary of a trial whose worker died on every attempt (or whose job was
    cancelled): no metrics, counted as a failure (intent to treat) by the comparison.
    It is also left in the trial's folder as ``crashed.json`` (never ``summary.json``: a
    rerun retries the trial), so a later ``cvloss report`` counts it crashed, not missing."""
    summary = {"status": "crashed", "task": cfg.task, "dataset": cfg.dataset, "budget": cfg.budget,
               "loss": cfg.loss, "seed": cfg.seed, "metrics": {}, "crash": why,
               "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        cfg.trial_dir.mkdir(parents=True, exist_ok=True)
        write_json(cfg.trial_dir / CRASHED, summary)
    except OSError as exc:  # the comparison still counts it; only a later report would not
        warnings.warn(f"could not write {cfg.trial_dir / CRASHED}: {exc}", stacklevel=2)
    return summary


class Executor(abc.ABC):
    """Runs trials; see the module docstring for what each method promises.

    Subclasses set :attr:`name` (their registry name) and :attr:`options` (the fields of
    :class:`ExecutorOptions` beyond the common ones that they read, e.g. ``("address",)``
    for Ray: any other such option given is refused), and build themselves in
    :meth:`from_options`.
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_options(cls, opts: "ExecutorOptions") -> "Executor":
        """An executor from the user's options, each checked (one UsageError line)."""
        return cls()

    @abc.abstractmethod
    def run(self, cfgs: list[TrialConfig], reporter: Reporter | None = None) -> list[dict[str, Any]]:
        """Every trial of ``cfgs``; their summaries in the same order."""

    @abc.abstractmethod
    def resources(self) -> TrialResources:
        """What one trial gets."""

    @property
    def concurrent(self) -> bool:
        """Whether several trials may run at once (the comparison's view shows them)."""
        return False

    def progress(self, quiet: bool = False, keys: list[str] | None = None) -> Reporter:
        """The reporter to show a run of this executor with: silent with ``quiet``, the
        whole comparison's view when trials run side by side, else one trial's lines or
        bars (rich on a terminal)."""
        if quiet or not self.concurrent:
            return make_reporter(quiet, keys)
        return RichComparisonView(keys) if sys.stderr.isatty() else ComparisonView(sys.stderr, keys)

    def cancel(self) -> None:
        """Stop the trials running now: each releases its lock and keeps its checkpoints,
        and :meth:`run` raises KeyboardInterrupt. Safe from another thread; idempotent."""
        self._cancel_event().set()

    def _cancel_event(self) -> threading.Event:
        event = self.__dict__.get("_cancelled")
        if event is None:
            event = self.__dict__.setdefault("_cancelled", threading.Event())
        return event

    def _check_cancelled(self) -> None:
        """Raise KeyboardInterrupt once :meth:`cancel` was called (and forget the request)."""
        event = self._cancel_event()
        if event.is_set():
            event.clear()
            raise KeyboardInterrupt


# ---------------------------------------------------------------------- options and registry
def _option(default: Any = None, executor: str | None = None, flag: str = "") -> Any:
    return field(default=default, metadata={"executor": executor, "flag": flag})


@dataclass
class ExecutorOptions:
    """Every option of every executor, as the user gave them (unchecked text where the
    CLI has text). :func:`executor_from_options` refuses an option that belongs to
    another executor than the one named, then lets that executor check the rest."""

    jobs: int = _option(1, flag="--jobs")
    threads: int | None = _option(None, flag="--threads")
    devices: str | None = _option(None, flag="--devices")
    device: str = _option("auto", flag="--device")
    break_stale_locks: bool = _option(False, flag="--break-stale-locks")
    plugins: list[str] = field(default_factory=list)
    address: str | None = _option(None, "ray", "--address")
    slurm_partition: str | None = _option(None, "slurm", "--slurm-partition")
    slurm_time: str | None = _option(None, "slurm", "--slurm-time")
    slurm_account: str | None = _option(None, "slurm", "--slurm-account")
    slurm_qos: str | None = _option(None, "slurm", "--slurm-qos")
    slurm_gpus_per_trial: int | None = _option(None, "slurm", "--slurm-gpus-per-trial")
    slurm_array_parallelism: int | None = _option(None, "slurm", "--slurm-array-parallelism")
    slurm_max_requeues: int | None = _option(None, "slurm", "--slurm-max-requeues")
    slurm_extra: list[str] = field(default_factory=list, metadata={"executor": "slurm", "flag": "--slurm-extra"})


EXECUTORS: Registry[type[Executor]] = Registry("executor", group="cvloss.executors", option="--executor")
EXECUTORS.register("local", "cvloss.run.executor:ProcessExecutor")
EXECUTORS.register("ray", "cvloss.run.ray_executor:RayExecutor")
EXECUTORS.register("slurm", "cvloss.run.slurm_executor:SlurmExecutor")


def executor_from_options(name: str, opts: ExecutorOptions | None = None) -> Executor:
    """The executor ``name`` of :data:`EXECUTORS`, built from ``opts``: the one place the
    executor options are checked, before anything is written or submitted. An unknown
    name, or an option of another executor, is one UsageError line."""
    opts = opts or ExecutorOptions()
    cls = EXECUTORS.get(name)  # an unknown name: one line listing the valid ones
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise UsageError(f"--executor {name}: its entry point names {cls!r}, not a cvloss Executor subclass")
    for f in fields(opts):
        owner = f.metadata.get("executor")
        if owner and f.name not in cls.options and getattr(opts, f.name) not in (None, [], ()):
            raise UsageError(f"{f.metadata['flag']} is an option of --executor {owner}: it needs --executor {owner}")
    return cls.from_options(opts)


def resolve_executor(executor: "Executor | str | None", break_stale_locks: bool = False) -> Executor:
    """What the library's ``executor=`` argument may be: an :class:`Executor`, a registry
    name (built with default options) or None (this process, one trial after another)."""
    if executor is None:
        return SerialExecutor(break_stale_locks)
    if isinstance(executor, str):
        return executor_from_options(executor, ExecutorOptions(break_stale_locks=break_stale_locks))
    return executor


# ---------------------------------------------------------------------- local executors
class SerialExecutor(Executor):
    """Every trial in this process, in order (:func:`cvloss.run.trainer.run_trials`);
    with ``devices``, on the first one listed."""

    name = "local"

    def __init__(self, break_stale_locks: bool = False, devices: list[int] | None = None) -> None:
        self.break_stale_locks, self.devices = break_stale_locks, devices

    @classmethod
    def from_options(cls, opts: ExecutorOptions) -> Executor:
        return ProcessExecutor.from_options(replace(opts, jobs=1))

    def resources(self) -> TrialResources:
        return TrialResources(cpus=None, gpus=1.0 if self.devices else 0.0)

    def run(self, cfgs, reporter=None):
        cfgs = list(cfgs)
        if self.devices:  # one job: it trains on the first device listed
            cfgs = [replace(c, device=f"cuda:{self.devices[0]}") for c in cfgs]
        try:
            return run_trials(cfgs, _Cancellable(reporter or Reporter(), self._check_cancelled),
                              break_stale_locks=self.break_stale_locks)
        finally:
            self._cancel_event().clear()


class _Cancellable(ForwardingReporter):
    """The serial executor's way to honour :meth:`Executor.cancel`: the trial's own
    reporter calls are where it stops (at a batch: the trainer releases its lock)."""

    def __init__(self, inner: Reporter, check) -> None:
        self.inner, self.check = inner, check

    def trial_start(self, label, epochs, batches, start_epoch):
        self.check()
        self.inner.trial_start(label, epochs, batches, start_epoch)

    def batch(self, loss):
        self.check()
        self.inner.batch(loss)


def default_threads(jobs: int) -> int:
    """Torch threads per worker: the CPUs this process may use, shared out (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, cpus // jobs)


def parse_devices(text: str | None) -> list[int] | None:
    """``--devices 0,1`` -> ``[0, 1]``: distinct CUDA indices that exist here."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise UsageError(f"--devices {text!r}: expected comma-separated CUDA device indices, e.g. --devices 0,1")
    devices = [int(p) for p in parts]
    if len(set(devices)) != len(devices):
        raise UsageError(f"--devices {text!r} lists a device twice")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    bad = [d for d in devices if d >= count]
    if bad:
        seen = f"{count} CUDA device(s) (0..{count - 1})" if count else "no CUDA device"
        raise UsageError(f"--devices {text}: no CUDA device {bad[0]}; torch sees {seen}")
    return devices


def check_jobs(jobs: int) -> int:
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1; got {jobs}")
    return jobs


def check_threads(threads: int | None) -> int | None:
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    return threads


class ProcessExecutor(Executor):
    """``jobs`` trials at once in spawned worker processes.

    ``threads``: torch threads per worker (default :func:`default_threads`), recorded in
    each trial's config. ``devices``: CUDA indices; worker ``k`` trains on
    ``cuda:<devices[k % len(devices)]>`` (several workers may share one GPU).
    """

    name = "local"

    def __init__(self, jobs: int, threads: int | None = None, devices: list[int] | None = None,
                 break_stale_locks: bool = False, plugins: list[str] | None = None) -> None:
        self.jobs = check_jobs(jobs)
        self.plugins = list(plugins or [])  # --plugin modules: every worker loads them, same registry
        self.threads = check_threads(threads) or default_threads(jobs)
        self.devices = devices
        self.break_stale_locks = break_stale_locks

    @classmethod
    def from_options(cls, opts: ExecutorOptions) -> Executor:
        """``--jobs 1``: :class:`SerialExecutor` (this process); more: a pool."""
        check_jobs(opts.jobs)
        check_threads(opts.threads)
        indices = parse_devices(opts.devices)
        if indices is not None and opts.device not in ("auto", "cuda"):
            raise UsageError(f"--devices places trials on CUDA devices; it cannot go with --device {opts.device}")
        if opts.jobs == 1:
            return SerialExecutor(opts.break_stale_locks, devices=indices)
        return cls(opts.jobs, threads=opts.threads, devices=indices, break_stale_locks=opts.break_stale_locks,
                   plugins=opts.plugins)  # each worker loads the same plugins

    @property
    def concurrent(self) -> bool:
        return self.jobs > 1

    def resources(self) -> TrialResources:
        gpus = min(1.0, len(self.devices) / self.jobs) if self.devices else 0.0
        return TrialResources(cpus=self.threads, gpus=gpus, where=f"{self.jobs} worker processes")

    def _job(self, cfg: TrialConfig, slot: int) -> dict[str, Any]:
        cfg = replace(cfg, threads=self.threads)
        if self.devices:
            cfg = replace(cfg, device=f"cuda:{self.devices[slot % len(self.devices)]}")
        return cfg.record()

    def run(self, cfgs, reporter=None):
        try:
            return _Pool(self, list(cfgs), reporter or Reporter()).run()
        finally:
            self._cancel_event().clear()


class _Slot:
    """One worker place: its process (restarted after a death) and the trial it runs."""

    def __init__(self, index: int) -> None:
        self.index, self.proc, self.conn, self.job = index, None, None, None
        self.attempt, self.stopping = 0, False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.exitcode is None


class _Pool:
    def __init__(self, ex: ProcessExecutor, cfgs: list[TrialConfig], reporter: Reporter) -> None:
        self.ex, self.cfgs, self.reporter = ex, cfgs, reporter
        self.ctx = get_context("spawn")
        self.labels = [trial_label(c) for c in cfgs]
        self.queue = deque(range(len(cfgs)))
        self.attempts = [0] * len(cfgs)
        self.results: dict[int, dict[str, Any]] = {}
        self.slots = [_Slot(i) for i in range(min(ex.jobs, len(cfgs)))]
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> list[dict[str, Any]]:
        self.reporter.begin(len(self.cfgs), len(self.slots))
        try:
            while (self.queue or any(s.job is not None for s in self.slots)) and self.error is None:
                self.ex._check_cancelled()
                self._dispatch()
                self._pump(timeout=1.0)
        except BaseException:  # Ctrl-C included
            self._stop(interrupt=True)
            raise
        finally:
            self.reporter.close()
        self._stop(interrupt=self.error is not None)
        if self.error is not None:
            raise self.error
        return [self.results[i] for i in range(len(self.cfgs))]

    def _start(self, slot: _Slot) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=worker_main, args=(child, self.ex.threads, self.ex.break_stale_locks, self.ex.plugins),
                                name=f"cvloss-worker-{slot.index}", daemon=True)
        proc.start()
        child.close()  # the parent keeps only its end: the worker's death is EOF here
        slot.proc, slot.conn, slot.stopping = proc, parent, False

    def _dispatch(self) -> None:
        for slot in self.slots:
            if slot.job is not None:
                continue
            if not self.queue:
                if slot.alive and not slot.stopping:
                    slot.stopping = True
                    self._send(slot, None)  # nothing left: let it exit
                continue
            if not slot.alive:
                self._start(slot)
            i = self.queue.popleft()
            self.attempts[i] += 1
            slot.job, slot.attempt = i, self.attempts[i]
            self._send(slot, (i, self.ex._job(self.cfgs[i], slot.index), self.attempts[i]))

    def _send(self, slot: _Slot, message) -> None:
        try:
            slot.conn.send(message)
        except (OSError, EOFError):
            pass  # it died: the sentinel says so on the next pump

    def _pump(self, timeout: float) -> None:
        """Forward what the workers said; notice the ones that died."""
        live = [s for s in self.slots if s.proc is not None]
        ready = connection.wait([s.conn for s in live] + [s.proc.sentinel for s in live], timeout)
        for slot in live:
            if slot.conn in ready or slot.proc.sentinel in ready:
                self._drain(slot)
                if slot.proc.exitcode is not None or slot.proc.sentinel in ready:
                    slot.proc.join(5)
                if slot.proc.exitcode is not None:
                    self._died(slot)

    def _drain(self, slot: _Slot) -> None:
        try:
            while slot.conn.poll():
                self._handle(slot, slot.conn.recv())
        except (EOFError, OSError):
            slot.proc.join(5)

    # ------------------------------------------------------------------ events
    def _handle(self, slot: _Slot, msg: tuple) -> None:
        kind, args = msg[0], msg[1:]
        r = self.reporter
        if kind == "result":
            i, summary = args
            self.results[i] = summary
            slot.job = None
        elif kind == "error":
            self.error = self.error or args[1]
            slot.job = None
        elif kind == "interrupted":
            slot.job = None
        elif kind == "warning":
            warnings.warn(args[0], UserWarning, stacklevel=1)
        else:
            deliver(r, msg)

    def _died(self, slot: _Slot) -> None:
        code = slot.proc.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit code {code}"
        pid = slot.proc.pid
        slot.proc = slot.conn = None
        i, slot.job = slot.job, None
        if i is None or i in self.results:
            return  # it died between trials, or after sending its result
        label = self.labels[i]
        if self.attempts[i] < MAX_ATTEMPTS:
            self.reporter.message(f"[{label}] worker pid {pid} died ({how}); retrying the trial "
                                  f"(attempt {self.attempts[i] + 1} of {MAX_ATTEMPTS}), from its last checkpoint")
            self.queue.appendleft(i)
            return
        self.results[i] = crashed_summary(self.cfgs[i], f"worker died {MAX_ATTEMPTS} times ({how} the last time)")
        self.reporter.trial_end(label, "CRASHED", f"its worker died {MAX_ATTEMPTS} times (last: pid {pid}, {how}); "
                                                  "no summary.json written, a rerun retries it")

    def _stop(self, interrupt: bool) -> None:
        """Every worker gone: told to exit (``None``), or interrupted (SIGINT: the trial
        releases its lock, its checkpoints stay), killed after a grace period."""
        live = [s for s in self.slots if s.alive]
        for slot in live:
            if interrupt and slot.job is not None:
                try:
                    os.kill(slot.proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
            else:
                self._send(slot, None)
        deadline = time.monotonic() + _STOP_GRACE_S
        while any(s.alive for s in live) and time.monotonic() < deadline:
            alive = [s for s in live if s.alive]
            ready = connection.wait([s.conn for s in alive] + [s.proc.sentinel for s in alive], 0.5)
            for slot in alive:
                if slot.conn in ready:
                    try:
                        while slot.conn.poll():
                            msg = slot.conn.recv()
                            if msg[0] in ("line", "message", "trial_end"):
                                self._handle(slot, msg)
                    except (EOFError, OSError):
                        slot.proc.join(1)
        for slot in live:
            if slot.alive:
                slot.proc.kill()
            slot.proc.join()


# ---------------------------------------------------------------------- the worker side
class PipeReporter(Reporter):
    """A worker's reporter: every event is one message (a tuple of plain values) sent on
    ``conn`` -- anything with ``send(message)``: a pipe's end, a Ray queue, a file (the
    Slurm executor) -- to the one process that prints.

    Messages: ``("trial_start", label, epochs, batches, start_epoch)``,
    ``("trial_progress", label, batches_done, loss)`` (at most every 0.25 s),
    ``("trial_epoch", label, epoch, epochs, row)``, ``("trial_end", label, status,
    detail)``, ``("message", text)``; :class:`Lines` adds ``("line", text)``. The
    receiving side calls the reporter method of the same name (:func:`deliver`).
    ``attempt`` (1, 2, ...) is which try of the trial this is, for the test hooks
    (:data:`KILL_HOOK_ENV`, :data:`PAUSE_HOOK_ENV`; read from the environment when not given).
    """

    def __init__(self, conn, kill_hook: list[tuple[str, int]] | None = None, attempt: int = 1,
                 pause_hook: list[tuple[str, int]] | None = None) -> None:
        self.conn, self.label, self.done, self.last = conn, "", 0, 0.0
        self.kill_hook = kill_hook if kill_hook is not None else hook_rules(KILL_HOOK_ENV)
        self.pause_hook = pause_hook if pause_hook is not None else hook_rules(PAUSE_HOOK_ENV)
        self.attempt, self.start_epoch = attempt, 0

    def trial_start(self, label, epochs, batches, start_epoch):
        self.label, self.done, self.batches = label, start_epoch * batches, batches
        self.start_epoch = start_epoch
        self.conn.send(("trial_start", label, epochs, batches, start_epoch))
        if any(pattern in label and self.attempt <= times for pattern, times in self.kill_hook):
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: die holding the lock, as an OOM kill would

    def batch(self, loss):
        self.done += 1
        now = time.monotonic()
        if now - self.last >= _BATCH_EVERY_S:
            self.last = now
            self.conn.send(("trial_progress", self.label, self.done, float(loss)))

    def epoch_end(self, epoch, epochs, row):
        plain = {k: v for k, v in row.items() if isinstance(v, (int, float, str))}
        self.conn.send(("trial_epoch", self.label, epoch, epochs, plain))
        if any(pattern in self.label and epoch == at > self.start_epoch for pattern, at in self.pause_hook):
            self.conn.send(("message", f"[{self.label}] paused after epoch {epoch} ({PAUSE_HOOK_ENV})"))
            time.sleep(_PAUSE_S)  # test hook: its checkpoint is written; the test signals it now

    def trial_end(self, label, status, detail=""):
        self.conn.send(("trial_end", label, status, detail))

    def message(self, text):
        self.conn.send(("message", str(text)))


#: The reporter methods a :class:`PipeReporter` message names (its first element).
EVENTS = ("trial_start", "trial_progress", "trial_epoch", "trial_end", "message")


def deliver(reporter: Reporter, message: tuple | list) -> bool:
    """Call ``reporter``'s method for one :class:`PipeReporter`/:class:`Lines` message;
    False for a message of another kind (the executor's own)."""
    kind, args = message[0], message[1:]
    if kind == "line":
        reporter.message(args[0])
    elif kind in EVENTS:
        getattr(reporter, kind)(*args)
    else:
        return False
    return True


class Lines:
    """A worker's sys.stdout/sys.stderr: whole lines, each sent on ``conn`` as
    ``("line", text)`` (blank lines dropped)."""

    def __init__(self, conn) -> None:
        self.conn, self.buf = conn, ""

    def write(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.strip():
                self.conn.send(("line", line.rstrip("\r")))
        return len(text)

    def flush(self) -> None: ...

    def isatty(self) -> bool:
        return False


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles, else a RuntimeError with its text (what a
    worker sends back so that the driver raises it, as the serial executor would)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def load_worker_plugins(modules: list[str] | tuple) -> None:
    """Import the ``--plugin`` modules in a worker (entry-point plugins load by
    themselves), as the driver did: the same list gives the same loss registry."""
    if not modules:
        return
    import cvloss.losses as losses

    load = getattr(losses, "load_plugins", None)
    if load is not None:
        load(list(modules))


def plugin_paths(plugins: list[str] | None) -> list[str]:
    """``--plugin`` items for workers elsewhere: a ``.py`` path made absolute (a worker's
    working directory is not the driver's), a module name as it is."""
    from pathlib import Path

    from cvloss.losses.plugins import _is_path

    return [str(Path(p).expanduser().resolve()) if _is_path(p) else p for p in (plugins or [])]


def hook_rules(env: str) -> list[tuple[str, int]]:
    """``"<pattern>:<n>[,...]"`` of a test-hook variable -> [(pattern, n)]."""
    rules = []
    for rule in os.environ.get(env, "").split(","):
        if ":" in rule:
            pattern, times = rule.rsplit(":", 1)
            rules.append((pattern, int(times)))
    return rules


def _first_interrupt(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us and the parent forwards it: once is enough
    raise KeyboardInterrupt


def worker_main(conn, threads: int, break_stale_locks: bool, plugins: list[str] | tuple = ()) -> None:
    """A worker process: receive ``(index, TrialConfig fields, attempt)`` jobs until
    ``None``, run each with :func:`run_trial`, send its summary (or error) back."""
    signal.signal(signal.SIGINT, _first_interrupt)
    sys.stdout = sys.stderr = Lines(conn)
    import torch

    torch.set_num_threads(threads)
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, *a, **k: conn.send(("warning", str(message)))
    hook = hook_rules(KILL_HOOK_ENV)
    from cvloss.losses import load_plugins

    load_plugins(list(plugins))  # the parent loaded them already: they import here too
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            i, values, attempt = job
            cfg = TrialConfig.from_record(values)
            if cfg.device.startswith("cuda:"):
                torch.cuda.set_device(int(cfg.device.split(":", 1)[1]))
            torch.set_num_threads(cfg.threads or threads)
            try:
                summary = run_trial(cfg, PipeReporter(conn, hook, attempt), break_stale_locks=break_stale_locks)
            except KeyboardInterrupt:
                conn.send(("interrupted", i))
                return
            except Exception as exc:  # the parent raises it, as the serial executor would
                conn.send(("error", i, portable(exc)))
                continue
            conn.send(("result", i, summary))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return
