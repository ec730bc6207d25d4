"""Executors: how a comparison's trials get run, one after another or N at once.

A trial is a pure function of its configuration that writes one folder under its lock
(:func:`cvloss.run.trainer.run_trial`), so an executor only decides *where* and *when*
each :class:`~cvloss.run.config.TrialConfig` runs. Every executor implements
``run(cfgs, reporter) -> list[summary]`` (same order as ``cfgs``; the comparison
dispatches them seed-major, so an interrupted run holds complete paired sets):

* :class:`SerialExecutor` -- this process, in order (locks of other commands waited for);
* :class:`ProcessExecutor` -- ``jobs`` worker processes (``multiprocessing`` ``spawn``:
  no forked CUDA or thread state), each running :func:`run_trial` on plain-data jobs
  (``TrialConfig`` is a dataclass of str/int/dict), so a cluster executor (Ray) can ship
  the same function and arguments unchanged.

Worker processes never write to the terminal: their progress, stderr lines and warnings
travel as whole messages over one pipe per worker to the parent, which alone prints (one
line per event, never interleaved mid-line). A worker that dies (killed by a signal, out
of memory) is reported and its trial retried once in a fresh worker, resuming from its
last epoch checkpoint; a second death leaves no ``summary.json`` (a rerun retries) and
returns a ``{"status": "crashed"}`` summary. Ctrl-C interrupts every worker (each
releases its lock, its checkpoints stay) and re-raises :class:`KeyboardInterrupt`.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from collections import deque
from dataclasses import asdict, replace
from multiprocessing import connection, get_context
from typing import Any

from cvloss.errors import UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.progress import Reporter
from cvloss.run.trainer import run_trial, run_trials, trial_label

# Test hook: "<label substring>:<attempts>[,...]" makes a worker SIGKILL itself when that
# trial starts training, on its first <attempts> attempts (1: the retry path, 2: crashed).
KILL_HOOK_ENV = "CVLOSS_TEST_KILL_WORKER"
MAX_ATTEMPTS = 2  # a trial whose worker died is retried once
_BATCH_EVERY_S = 0.25  # per-batch progress is sent at most this often (the pipe is shared by events)
_STOP_GRACE_S = 60.0  # how long interrupted workers get to release locks before being killed


class Executor:
    """Runs trials; ``run`` returns their summaries in the order of ``cfgs``."""

    jobs = 1

    def run(self, cfgs: list[TrialConfig], reporter: Reporter | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError


class SerialExecutor(Executor):
    """Every trial in this process, in order (:func:`cvloss.run.trainer.run_trials`)."""

    def __init__(self, break_stale_locks: bool = False, devices: list[int] | None = None) -> None:
        self.break_stale_locks, self.devices = break_stale_locks, devices

    def run(self, cfgs, reporter=None):
        return run_trials(list(cfgs), reporter, break_stale_locks=self.break_stale_locks)


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


class ProcessExecutor(Executor):
    """``jobs`` trials at once in spawned worker processes.

    ``threads``: torch threads per worker (default :func:`default_threads`), recorded in
    each trial's config. ``devices``: CUDA indices; worker ``k`` trains on
    ``cuda:<devices[k % len(devices)]>`` (several workers may share one GPU).
    """

    def __init__(self, jobs: int, threads: int | None = None, devices: list[int] | None = None,
                 break_stale_locks: bool = False, plugins: list[str] | None = None) -> None:
        self.jobs = check_jobs(jobs)
        self.plugins = list(plugins or [])  # --plugin modules: every worker loads them, same registry
        self.threads = threads or default_threads(jobs)
        self.devices = devices
        self.break_stale_locks = break_stale_locks

    def _job(self, cfg: TrialConfig, slot: int) -> dict[str, Any]:
        cfg = replace(cfg, threads=self.threads)
        if self.devices:
            cfg = replace(cfg, device=f"cuda:{self.devices[slot % len(self.devices)]}")
        return asdict(cfg)

    def run(self, cfgs, reporter=None):
        return _Pool(self, list(cfgs), reporter or Reporter()).run()


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
        elif kind == "line":
            r.message(args[0])
        elif kind == "trial_start":
            r.trial_start(*args)
        elif kind == "trial_progress":
            r.trial_progress(*args)
        elif kind == "trial_epoch":
            r.trial_epoch(*args)
        elif kind == "trial_end":
            r.trial_end(*args)
        elif kind == "message":
            r.message(args[0])

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
        cfg = self.cfgs[i]
        self.results[i] = {"status": "crashed", "task": cfg.task, "dataset": cfg.dataset, "budget": cfg.budget,
                           "loss": cfg.loss, "seed": cfg.seed, "metrics": {},
                           "crash": f"worker died {MAX_ATTEMPTS} times ({how} the last time)"}
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
class _PipeReporter(Reporter):
    """A worker's reporter: every event is one message to the parent."""

    def __init__(self, conn, kill_hook: list[tuple[str, int]], attempt: int) -> None:
        self.conn, self.label, self.done, self.last = conn, "", 0, 0.0
        self.kill_hook, self.attempt = kill_hook, attempt

    def trial_start(self, label, epochs, batches, start_epoch):
        self.label, self.done, self.batches = label, start_epoch * batches, batches
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

    def trial_end(self, label, status, detail=""):
        self.conn.send(("trial_end", label, status, detail))

    def message(self, text):
        self.conn.send(("message", str(text)))


class _Lines:
    """A worker's sys.stdout/sys.stderr: whole lines, sent to the parent."""

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


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles, else a RuntimeError with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _kill_hook() -> list[tuple[str, int]]:
    rules = []
    for rule in os.environ.get(KILL_HOOK_ENV, "").split(","):
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
    sys.stdout = sys.stderr = _Lines(conn)
    import torch

    torch.set_num_threads(threads)
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, *a, **k: conn.send(("warning", str(message)))
    hook = _kill_hook()
    from cvloss.losses import load_plugins

    load_plugins(list(plugins))  # the parent loaded them already: they import here too
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            i, fields, attempt = job
            cfg = TrialConfig(**fields)
            if cfg.device.startswith("cuda:"):
                torch.cuda.set_device(int(cfg.device.split(":", 1)[1]))
            torch.set_num_threads(cfg.threads or threads)
            try:
                summary = run_trial(cfg, _PipeReporter(conn, hook, attempt), break_stale_locks=break_stale_locks)
            except KeyboardInterrupt:
                conn.send(("interrupted", i))
                return
            except Exception as exc:  # the parent raises it, as the serial executor would
                conn.send(("error", i, _portable(exc)))
                continue
            conn.send(("result", i, summary))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return
