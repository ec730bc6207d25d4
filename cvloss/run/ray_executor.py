"""The Ray executor: a comparison's trials as Ray tasks, on a local instance or a cluster.

Another :class:`cvloss.run.executor.Executor`: each
:class:`~cvloss.run.config.TrialConfig` becomes one Ray task that runs
:func:`cvloss.run.trainer.run_trial` under the trial folder's lock, so a trial's result
does not depend on where it ran. A task asks ``num_cpus = threads`` and, with
``--devices``, ``num_gpus = min(1, len(devices) / jobs)``; every node must see ``--out``
(a probe proves it before the first trial, else one UsageError line). A dead worker's
trial is retried once (``max_retries=1``) from its last checkpoint, taking over the dead
attempt's lock through ``$CVLOSS_LOCK_OWNER``; a second death leaves it crashed. Progress
travels through one Ray queue to the driver; Ctrl-C cancels every task and re-raises
KeyboardInterrupt; ``--plugin`` modules are imported in every task. Ray is an optional
extra (``pip install 'cvloss[ray]'``; :func:`require_ray`). See docs/running.md.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from cvloss.errors import UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.executor import (MAX_ATTEMPTS, Executor, ExecutorOptions, Lines, PipeReporter, TrialResources,
                                 check_jobs, check_threads, crashed_summary, deliver, load_worker_plugins,
                                 plugin_paths)
from cvloss.run.lock import OWNER_ENV, take_over_owned
from cvloss.run.progress import Reporter
from cvloss.run.shared_folder import PROBE_PREFIX
from cvloss.run.shared_folder import check_shared_folder as _check_shared_folder
from cvloss.run.shared_folder import probe_task as _probe_task
from cvloss.run.trainer import run_trial, trial_label

INSTALL_HINT = "pip install 'cvloss[ray]'"
_PROBE_TIMEOUT_S = 120.0  # a task must be scheduled and answer within this (a busy cluster queues it)
_CANCEL_GRACE_S = 30.0  # cancelled trials get this long to release their locks
__all__ = ["PROBE_PREFIX", "RayExecutor", "check_shared_folder", "probe_task"]


def require_ray():
    """The ``ray`` module, or one UsageError line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_address(address: str | None) -> str | None:
    """``--address``: ``auto`` (the cluster ``ray start`` made on this node) or
    ``HOST:PORT`` of a running head; None starts a local instance."""
    if address is None or address == "auto":
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r}: expected auto or HOST:PORT of a Ray head, e.g. 10.0.0.1:6379")
    return address


def parse_device_list(text: str | None) -> list[int] | None:
    """``--devices 0,1`` with Ray: distinct indices, counted, not looked up here (Ray
    assigns each task a GPU of its node; the driver may have none)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise UsageError(f"--devices {text!r}: expected distinct comma-separated GPU indices, e.g. --devices 0,1")
    return [int(p) for p in parts]


def check_device(device: str, devices: list[int] | None) -> None:
    """With Ray a trial gets a GPU only through ``--devices`` (Ray reserves it on the
    node); ``--device`` may be ``auto`` or ``cpu`` (``cpu`` not with ``--devices``)."""
    if devices and device == "cpu":
        raise UsageError("--devices places trials on GPUs; it cannot go with --device cpu")
    if device not in ("auto", "cpu"):
        raise UsageError(f"--device {device} with --executor ray: Ray places trials on GPUs; use --devices "
                         "(e.g. --devices 0 for one GPU per trial) and leave --device auto")


def gpu_share(devices: list[int] | None, jobs: int) -> float:
    """``num_gpus`` of one trial: 0 without ``--devices``, else the devices shared out
    over ``jobs`` trials at once, at most one GPU (a trial trains on one device)."""
    if not devices:
        return 0.0
    return min(1.0, len(devices) / max(1, jobs))


# ---------------------------------------------------------------------- worker side
class _QueueConn:
    """What the worker-side reporter of :mod:`cvloss.run.executor` sends to: each message
    goes to the driver's queue, tagged with the trial's index."""

    def __init__(self, queue, index: int) -> None:
        self.queue, self.index = queue, index

    def send(self, message: tuple) -> None:
        self.queue.put((self.index, message))


def _node_name() -> str:
    """``host (node 1a2b3c4d)`` in a Ray worker (a host may run several Ray nodes, as the
    tests do); the host alone elsewhere."""
    try:
        import ray

        if ray.is_initialized():
            return f"{socket.gethostname()} (node {ray.get_runtime_context().get_node_id()[:8]})"
    except ImportError:
        pass
    return socket.gethostname()


_load_plugins = load_worker_plugins  # the name the Ray tasks and tests use


def trial_task(index: int, fields: dict[str, Any], queue, env: dict[str, str], owner: str,
               plugins: list[str], break_stale_locks: bool) -> dict[str, Any]:
    """One trial on a Ray worker: the driver's ``CVLOSS_*`` settings, the plugins, the
    lock takeover of a dead earlier attempt, then :func:`run_trial`. Its reporter events
    and printed lines go to ``queue``; the worker process is reused, so what it changes
    (environment, streams, threads) is put back."""
    import torch

    conn = _QueueConn(queue, index)
    conn.send(("attempt", os.getpid(), _node_name()))
    saved_env = {k: os.environ.get(k) for k in [*env, OWNER_ENV]}
    saved_streams, saved_threads = (sys.stdout, sys.stderr), torch.get_num_threads()
    os.environ.update(env)
    os.environ[OWNER_ENV] = owner
    sys.stdout = sys.stderr = Lines(conn)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *a, **k: conn.send(("warning", str(message)))
            _load_plugins(plugins)
            cfg = TrialConfig.from_record(fields)
            label = trial_label(cfg)
            if take_over_owned(cfg.trial_dir, owner):
                conn.send(("message", f"[{label}] took over the lock of this trial's earlier attempt, "
                                      "whose Ray worker died"))
            torch.set_num_threads(cfg.threads or 1)
            return run_trial(cfg, PipeReporter(conn, [], 1, []), break_stale_locks=break_stale_locks)
    finally:
        sys.stdout, sys.stderr = saved_streams
        torch.set_num_threads(saved_threads)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def probe_task(folder: str, token: str) -> dict[str, str]:
    """:func:`cvloss.run.shared_folder.probe_task` on a Ray worker, which names itself
    with its Ray node (a host may run several)."""
    return _probe_task(folder, token, _node_name())


def check_shared_folder(folder: Path, run_probe: Callable[[str, str], dict[str, str]]) -> dict[str, str]:
    """:func:`cvloss.run.shared_folder.check_shared_folder` for Ray nodes."""
    return _check_shared_folder(folder, run_probe, nodes="Ray node")


# ---------------------------------------------------------------------- driver side
class RayExecutor(Executor):
    """Trials as Ray tasks (see the module docstring).

    ``address``: None (start a local instance, or use the one this process already
    started), ``auto`` or ``HOST:PORT``. ``threads``: CPUs and torch threads per trial
    (default 1). ``devices``/``jobs``: see :func:`gpu_share`; ``jobs`` also caps trials
    in flight. ``plugins``: loss-plugin modules imported in every task.
    """

    name = "ray"
    options = ("address",)

    def __init__(self, address: str | None = None, threads: int | None = None, devices: list[int] | None = None,
                 jobs: int | None = None, break_stale_locks: bool = False, plugins: list[str] | None = None) -> None:
        self.address = check_address(address)
        self.threads = check_threads(threads) or 1
        self.devices = devices
        self.max_in_flight = check_jobs(jobs) if jobs is not None else None
        self.num_gpus = gpu_share(devices, jobs or 1)
        self.break_stale_locks = break_stale_locks
        self.plugins = plugin_paths(plugins)
        self.ray = require_ray()

    @classmethod
    def from_options(cls, opts: ExecutorOptions) -> "RayExecutor":
        """``--address``, ``--threads``, ``--jobs`` (a cap of trials in flight),
        ``--devices`` (only counted here: Ray picks each task's GPU on its node, and the
        driver may be a node without GPUs) with ``--device`` auto or cpu."""
        check_jobs(opts.jobs)
        indices = parse_device_list(opts.devices)
        check_device(opts.device, indices)
        return cls(opts.address, threads=opts.threads, devices=indices, jobs=opts.jobs if opts.jobs > 1 else None,
                   break_stale_locks=opts.break_stale_locks, plugins=opts.plugins)

    @property
    def concurrent(self) -> bool:
        return True

    def resources(self) -> TrialResources:
        return TrialResources(cpus=self.threads, gpus=self.num_gpus, where="Ray tasks")

    # -------------------------------------------------------------- connection
    def _connect(self) -> bool:
        """Join the cluster (or start a local instance); True when this call started it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if self.address is not None:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise UsageError(f"--address {self.address}: no Ray cluster there ({str(exc).splitlines()[0]}); "
                             "start one with `ray start --head`") from None
        return True

    def _job(self, cfg: TrialConfig) -> dict[str, Any]:
        """The fields a task receives: absolute paths (a worker's working directory is
        not the driver's), the threads, and ``cuda`` when Ray hands the task a GPU."""
        cfg = replace(cfg, out=str(Path(cfg.out).resolve()), threads=self.threads,
                      data_dir=str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None)
        # A trial trains on the GPU Ray reserved for it, else on the CPU: never on a GPU of
        # its node that another task holds (--device auto would pick it).
        cfg = replace(cfg, device="cuda" if self.num_gpus else "cpu")
        return cfg.record()

    def run(self, cfgs, reporter=None):
        cfgs = list(cfgs)
        reporter = reporter or Reporter()
        if not cfgs:
            return []
        started = self._connect()
        try:
            return _Driver(self, cfgs, reporter).run()
        finally:
            self._cancel_event().clear()
            if started:
                self.ray.shutdown()


class _Driver:
    """One run of :class:`RayExecutor`: submit, forward progress, collect, cancel."""

    def __init__(self, ex: RayExecutor, cfgs: list[TrialConfig], reporter: Reporter) -> None:
        from ray.util.queue import Queue

        self.ex, self.ray, self.cfgs, self.reporter = ex, ex.ray, cfgs, reporter
        self.labels = [trial_label(c) for c in cfgs]
        self.queue = Queue(actor_options={"num_cpus": 0})
        self.attempts: dict[int, list[tuple[int, str]]] = {}  # index -> (pid, node) of each attempt
        self.results: dict[int, dict[str, Any]] = {}
        # The driver's settings travel with the tasks; folders as absolute paths.
        self.env = {k: os.path.abspath(v) if k in ("CVLOSS_DATA", "CVLOSS_RESULTS") and v.strip() else v
                    for k, v in os.environ.items() if k.startswith("CVLOSS_")}

    def _probe(self, folder: str, token: str) -> dict[str, str]:
        """:func:`probe_task` on one worker; a worker without cvloss, or another version
        of it, is refused here (one line)."""
        from cvloss import __version__

        ray = self.ray
        ref = ray.remote(num_cpus=0, max_retries=1)(probe_task).remote(folder, token)
        ready, _ = ray.wait([ref], timeout=_PROBE_TIMEOUT_S)
        if not ready:
            ray.cancel(ref, force=True)
            raise TimeoutError(f"no Ray worker answered within {_PROBE_TIMEOUT_S:.0f}s")
        try:
            info = ray.get(ref)
        except Exception as exc:
            if "No module named 'cvloss" in str(exc):
                raise UsageError("a Ray worker cannot import cvloss: install the same cvloss version on every "
                                 f"node ({INSTALL_HINT}; README: running on a cluster)") from None
            raise
        if info["cvloss"] != __version__:
            raise UsageError(f"a Ray worker on {info['node']} runs cvloss {info['cvloss']}, this driver "
                             f"{__version__}: install the same version on every node")
        return info

    def run(self) -> list[dict[str, Any]]:
        ray, ex = self.ray, self.ex
        check_shared_folder(Path(self.cfgs[0].out).resolve(), self._probe)
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
        slots = max(1, int(cpus // ex.threads))
        if ex.num_gpus:
            slots = min(slots, max(1, int(gpus / ex.num_gpus + 1e-9)))
        if ex.max_in_flight:
            slots = min(slots, ex.max_in_flight)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        each = f"{ex.threads} CPU(s)" + (f" and {ex.num_gpus:g} GPU" if ex.num_gpus else "")
        self.reporter.message(f"ray: {nodes} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s); up to {slots} trial(s) "
                              f"at once, {each} each")
        task = ray.remote(num_cpus=ex.threads, num_gpus=ex.num_gpus, max_retries=MAX_ATTEMPTS - 1,
                          retry_exceptions=False)(trial_task)
        owners = {i: uuid.uuid4().hex for i in range(len(self.cfgs))}
        queued = list(range(len(self.cfgs)))  # seed-major, as the comparison gave them
        pending: dict[Any, int] = {}
        self.reporter.begin(len(self.cfgs), min(slots, len(self.cfgs)))
        try:
            while queued or pending:
                ex._check_cancelled()
                while queued and len(pending) < slots:
                    i = queued.pop(0)
                    ref = task.remote(i, ex._job(self.cfgs[i]), self.queue, self.env, owners[i], ex.plugins,
                                      ex.break_stale_locks)
                    pending[ref] = i
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                self._drain()
                for ref in ready:
                    self._collect(pending.pop(ref), ref)
            self._drain()
        except BaseException:  # Ctrl-C included: cancel what runs, let it release its locks
            self._cancel(list(pending))
            raise
        finally:
            self.reporter.close()
        return [self.results[i] for i in range(len(self.cfgs))]

    def _collect(self, i: int, ref) -> None:
        ray = self.ray
        try:
            self.results[i] = ray.get(ref)
            return
        except ray.exceptions.RayTaskError as exc:  # the trial raised: as the serial executor would
            self._drain()
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            raise cause from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.LocalRayletDiedError, ray.exceptions.OutOfMemoryError) as exc:
            how = type(exc).__name__
        self._drain()
        where = ", ".join(f"pid {pid} on {host}" for pid, host in self.attempts.get(i, [])) or "unknown"
        self.results[i] = crashed_summary(self.cfgs[i], f"its Ray worker died {MAX_ATTEMPTS} times ({how}; {where})")
        self.reporter.trial_end(self.labels[i], "CRASHED", f"its Ray worker died {MAX_ATTEMPTS} times ({where}); "
                                                           "no summary.json written, a rerun retries it")

    def _drain(self) -> None:
        """Deliver every queued message to the reporter, in the order the tasks sent them."""
        from ray.util.queue import Empty

        while True:
            try:
                items = self.queue.get_nowait_batch(max(1, self.queue.qsize()))
            except Empty:
                return
            if not items:
                return
            for i, msg in items:
                self._deliver(i, msg)

    def _deliver(self, i: int, msg: tuple) -> None:
        kind, args = msg[0], msg[1:]
        if kind == "attempt":
            seen = self.attempts.setdefault(i, [])
            if seen:
                pid, host = seen[-1]
                self.reporter.message(f"[{self.labels[i]}] its Ray worker (pid {pid} on {host}) died; retrying the "
                                      f"trial (attempt {len(seen) + 1} of {MAX_ATTEMPTS}) from its last checkpoint")
            seen.append(args)
        elif kind == "warning":
            warnings.warn(args[0], UserWarning, stacklevel=1)
        else:
            deliver(self.reporter, msg)

    def _cancel(self, refs: list) -> None:
        """``ray.cancel`` every pending task (a running trial gets KeyboardInterrupt and
        releases its lock); wait a little for them to end, forwarding their last lines."""
        ray = self.ray
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception:  # already finished or gone
                pass
        deadline = time.monotonic() + _CANCEL_GRACE_S
        while refs and time.monotonic() < deadline:
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)
            try:
                self._drain()
            except Exception:
                return
