"""The Slurm executor: each trial a Slurm job (submitit), or one job array per batch.

Another :class:`cvloss.run.executor.Executor`: each
:class:`~cvloss.run.config.TrialConfig` becomes one Slurm job that runs
:func:`cvloss.run.trainer.run_trial` under the trial folder's lock, so its result does
not depend on where it ran. Finished trials are read on the driver (a rerun submits only
what is left). Before anything is submitted, ``sbatch --test-only`` and a probe job
(:mod:`cvloss.run.shared_folder`) check the options and the shared ``--out``. Logs go to
``<out>/slurm-logs/<run>/``. ``USR2`` before the time limit stops, keeps the checkpoint
and requeues (up to ``--slurm-max-requeues``); a job that dies is submitted once more;
a second death, or the user's ``scancel``, makes the trial crashed. Job state comes from
``squeue`` and the jobs' files (never ``sacct``); progress from each trial's events file.
Ctrl-C cancels the jobs and re-raises KeyboardInterrupt. submitit is an optional extra
(``pip install 'cvloss[slurm]'``; :func:`require_submitit`). See docs/running.md.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError
from cvloss.run.config import TrialConfig
from cvloss.run.executor import (MAX_ATTEMPTS, Executor, ExecutorOptions, Lines, PipeReporter, TrialResources,
                                 check_threads, crashed_summary, deliver, load_worker_plugins, plugin_paths,
                                 portable)
from cvloss.run.lock import OWNER_ENV, take_over_owned
from cvloss.run.progress import Reporter
from cvloss.run.shared_folder import PROBE_EXIT, PROBE_PREFIX, check_shared_folder
from cvloss.io import read_summary
from cvloss.run.trainer import SUMMARY, data_changed, identity_mismatch, run_trial, trial_label

INSTALL_HINT = "pip install 'cvloss[slurm]'"
LOGS_DIR = "slurm-logs"  # under --out: one folder per run
DEFAULT_TIME_MIN = 240
DEFAULT_MAX_REQUEUES = 3
JOB_PREFIX = "cvloss:"  # trial jobs are named cvloss:<loss-slug>:seed<k> (arrays cvloss:<task>)
PROBE_JOB = "cvloss-probe"
_PROBE_TIMEOUT_S = 300.0  # the probe job must start and end within this (a busy queue may hold it)
_CANCEL_GRACE_S = 30.0  # interrupted jobs get this long to release their locks before scancel
_RESULT_GRACE_S = 30.0  # a job ended COMPLETED: its result pickle may show late on network storage
# A job seen ended without a result is acted on only if it stays ended this long: Slurm
# itself requeues a preempted job or one whose node failed (it shows PENDING again).
_END_GRACE_S = 5.0
_POLL_MIN_S, _POLL_MAX_S = 1.0, 15.0  # squeue: every second after a change, slower while nothing changes
# sbatch options this executor sets itself: --slurm-extra may not, and says which option does.
_MANAGED = {"time": "--slurm-time", "t": "--slurm-time", "partition": "--slurm-partition", "p": "--slurm-partition",
            "account": "--slurm-account", "A": "--slurm-account", "qos": "--slurm-qos", "q": "--slurm-qos",
            "gres": "--slurm-gpus-per-trial", "gpus": "--slurm-gpus-per-trial", "G": "--slurm-gpus-per-trial",
            "gpus-per-node": "--slurm-gpus-per-trial", "gpus-per-task": "--slurm-gpus-per-trial",
            "cpus-per-task": "--threads", "c": "--threads", "array": "--slurm-array-parallelism",
            "output": "cvloss (the run's log folder)", "o": "cvloss (the run's log folder)",
            "error": "cvloss (the run's log folder)", "e": "cvloss (the run's log folder)",
            "signal": "cvloss (requeue before the time limit)", "open-mode": "cvloss", "job-name": "cvloss",
            "J": "cvloss", "wckey": "cvloss", "requeue": "cvloss", "no-requeue": "cvloss"}
# squeue's states: still to run, running, and ended (how a job without a result ended).
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SUSPENDED"}
_ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
          "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"}


# ---------------------------------------------------------------------- options
def require_submitit():
    """The ``submitit`` module (its log lines kept off the user's streams), or one
    UsageError line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--executor slurm needs submitit, which is not installed: {INSTALL_HINT}") from None
    _quiet_submitit()
    return submitit


def _quiet_submitit() -> logging.Logger:
    """submitit configures its logger to print on stdout and stderr when imported; on the
    driver its lines go to the run's ``driver.log`` (:meth:`_Driver.run`) or nowhere."""
    log = logging.getLogger("submitit")
    for handler in list(log.handlers):
        if not isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str | None) -> int:
    """``--slurm-time`` in any of Slurm's forms -> whole minutes (rounded up): ``MM``,
    ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``. None: the default
    (:data:`DEFAULT_TIME_MIN`)."""
    if text is None:
        return DEFAULT_TIME_MIN
    match = _TIME.match(text.strip())
    if not match:
        raise UsageError(f"--slurm-time {text!r}: expected a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM "
                         "or D-HH:MM:SS (e.g. 4:00:00)")
    days, a, b, c = match.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        h, m, s = (parts + [0, 0])[:3]
        seconds = ((int(days) * 24 + h) * 60 + m) * 60 + s
    elif len(parts) == 3:  # HH:MM:SS
        seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    elif len(parts) == 2:  # MM:SS
        seconds = parts[0] * 60 + parts[1]
    else:  # MM
        seconds = parts[0] * 60
    if seconds <= 0:
        raise UsageError(f"--slurm-time {text!r}: a trial needs a time limit above zero")
    return math.ceil(seconds / 60)


_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def parse_extra(items: list[str] | None) -> dict[str, Any]:
    """``--slurm-extra KEY=VALUE`` (or a bare ``KEY`` for a flag such as ``exclusive``)
    -> sbatch options, ``{"mem": "8G", "exclusive": True}``. Options this executor sets
    itself are refused, naming the cvloss option that sets them."""
    extra: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not _KEY.match(key) or (sep and not value.strip()) or "\n" in value:
            raise UsageError(f"--slurm-extra {item!r}: expected KEY=VALUE of an sbatch option, e.g. "
                             "--slurm-extra mem=8G or --slurm-extra constraint=a100 (a bare KEY for a flag)")
        name = key.replace("_", "-")
        if name in _MANAGED or key in _MANAGED:
            raise UsageError(f"--slurm-extra {item!r}: --{name} is set by {_MANAGED.get(name) or _MANAGED[key]}")
        if name in extra:
            raise UsageError(f"--slurm-extra gives --{name} twice")
        extra[name] = value.strip() if sep else True
    return extra


def _at_least(flag: str, value: int | None, low: int) -> int | None:
    if value is not None and value < low:
        raise UsageError(f"{flag} must be >= {low}; got {value}")
    return value


# ---------------------------------------------------------------------- the job side
class FileConn:
    """Where a job's :class:`~cvloss.run.executor.PipeReporter` sends: one JSON line per
    message, appended to the trial's events file (one writer at a time: a trial's jobs
    run one after another), which the driver reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def send(self, message: tuple) -> None:
        line = json.dumps(list(message), default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:  # O_APPEND: whole lines, in order
            fh.write(line)


class SlurmTrial:
    """The callable one Slurm job runs (pickled by submitit): one trial, with the
    driver's ``CVLOSS_*`` settings, plugins, lock owner token and attempt number.

    Returns ``("result", summary)`` or ``("error", exception)`` (the trial raised: the
    driver raises it). :meth:`checkpoint` is what submitit calls on ``USR2``
    (preemption, time limit): it allows a requeue while fewer than ``max_requeues``
    happened; the trial's own epoch checkpoints are what it resumes from.
    """

    def __init__(self, fields: dict[str, Any], events: str, env: dict[str, str], owner: str, plugins: list[str],
                 break_stale_locks: bool, attempt: int, max_requeues: int) -> None:
        self.fields, self.events, self.env, self.owner = fields, events, env, owner
        self.plugins, self.break_stale_locks = plugins, break_stale_locks
        self.attempt, self.max_requeues, self.requeues = attempt, max_requeues, 0

    def __call__(self) -> tuple[str, Any]:
        import torch

        conn = FileConn(self.events)
        conn.send(("attempt", self.attempt, self.requeues, os.getpid(), socket.gethostname(),
                   os.environ.get("SLURM_JOB_ID", "")))
        os.environ.update(self.env)
        os.environ[OWNER_ENV] = self.owner
        streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = Lines(conn)  # the trial's lines to the driver; submitit's to the job's logs
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *a, **k: conn.send(("warning", str(message)))
        try:
            load_worker_plugins(self.plugins)
            cfg = TrialConfig.from_record(self.fields)
            label = trial_label(cfg)
            if take_over_owned(cfg.trial_dir, self.owner):
                conn.send(("message", f"[{label}] took over the lock of this trial's earlier attempt, whose job ended"))
            torch.set_num_threads(cfg.threads or 1)
            return "result", run_trial(cfg, PipeReporter(conn, attempt=self.attempt),
                                       break_stale_locks=self.break_stale_locks)
        except Exception as exc:
            if type(exc).__name__ == "UncompletedJobError":  # submitit's: not requeued again, the job is over
                raise
            return "error", portable(exc)
        finally:  # a traceback of the job's end (SIGINT, a requeue's exit) goes to its .err log, not the driver
            sys.stdout, sys.stderr = streams

    def checkpoint(self) -> Any:
        """Requeue (a ``DelayedSubmission`` of this trial) unless ``max_requeues`` were
        used; None makes submitit end the job without a result (the trial is crashed)."""
        from submitit.helpers import DelayedSubmission

        if self.requeues >= self.max_requeues:
            FileConn(self.events).send(("requeue_limit", self.requeues))
            return None
        self.requeues += 1
        FileConn(self.events).send(("requeued", self.requeues, self.max_requeues))
        return DelayedSubmission(self)


# ---------------------------------------------------------------------- the driver side
class SlurmExecutor(Executor):
    """Trials as Slurm jobs (see the module docstring).

    ``threads``: CPUs per job and torch threads per trial (default 1).
    ``time_min``: the job's time limit in minutes. ``gpus_per_trial``: ``--gres=gpu:N``
    (the trial trains on ``cuda``). ``array_parallelism``: None submits one job per
    trial; N submits each batch of trials as one array running N at once.
    ``extra``: more sbatch options (:func:`parse_extra`). ``python``: the command that
    starts Python on the nodes (default this interpreter's path).
    """

    name = "slurm"
    options = ("slurm_partition", "slurm_time", "slurm_account", "slurm_qos", "slurm_gpus_per_trial",
               "slurm_array_parallelism", "slurm_max_requeues", "slurm_extra")

    def __init__(self, threads: int | None = None, partition: str | None = None, time_min: int = DEFAULT_TIME_MIN,
                 account: str | None = None, qos: str | None = None, gpus_per_trial: int = 0,
                 array_parallelism: int | None = None, max_requeues: int = DEFAULT_MAX_REQUEUES,
                 extra: dict[str, Any] | None = None, break_stale_locks: bool = False,
                 plugins: list[str] | None = None, python: str | None = None) -> None:
        self.threads = check_threads(threads) or 1
        self.partition, self.account, self.qos = partition, account, qos
        self.time_min = _at_least("--slurm-time (minutes)", time_min, 1)
        self.gpus_per_trial = _at_least("--slurm-gpus-per-trial", gpus_per_trial, 0) or 0
        self.array_parallelism = _at_least("--slurm-array-parallelism", array_parallelism, 1)
        self.max_requeues = _at_least("--slurm-max-requeues", max_requeues, 0)
        self.extra = dict(extra or {})
        self.break_stale_locks = break_stale_locks
        self.plugins = plugin_paths(plugins)
        self.python = python or shlex.quote(sys.executable)
        self.submitit = require_submitit()

    @classmethod
    def from_options(cls, opts: ExecutorOptions) -> "SlurmExecutor":
        """The ``--slurm-*`` options and ``--threads``; ``--jobs``, ``--devices`` and a
        ``--device`` other than auto/cpu are refused (Slurm places the trials)."""
        if opts.jobs != 1:
            raise UsageError("--jobs runs local worker processes; with --executor slurm every trial is a job "
                             "(cap how many run at once with --slurm-array-parallelism)")
        if opts.devices is not None:
            raise UsageError("--devices names local GPUs; with --executor slurm ask each trial's GPUs with "
                             "--slurm-gpus-per-trial")
        gpus = _at_least("--slurm-gpus-per-trial", opts.slurm_gpus_per_trial, 0) or 0
        if opts.device not in ("auto", "cpu") or (gpus and opts.device == "cpu"):
            raise UsageError(f"--device {opts.device} with --executor slurm: a trial trains on the GPUs its job "
                             "gets (--slurm-gpus-per-trial), else on the CPU; leave --device auto")
        requeues = opts.slurm_max_requeues
        return cls(threads=opts.threads, partition=opts.slurm_partition, time_min=parse_time(opts.slurm_time),
                   account=opts.slurm_account, qos=opts.slurm_qos, gpus_per_trial=gpus,
                   array_parallelism=opts.slurm_array_parallelism,
                   max_requeues=DEFAULT_MAX_REQUEUES if requeues is None else requeues,
                   extra=parse_extra(opts.slurm_extra), break_stale_locks=opts.break_stale_locks,
                   plugins=opts.plugins)

    @property
    def concurrent(self) -> bool:
        return True

    def resources(self) -> TrialResources:
        partition = f", partition {self.partition}" if self.partition else ""
        return TrialResources(cpus=self.threads, gpus=float(self.gpus_per_trial),
                              where=f"Slurm jobs ({self.time_min} min{partition})")

    # -------------------------------------------------------------- the job script
    def parameters(self, job_name: str = "cvloss") -> dict[str, Any]:
        """submitit's ``update_parameters`` for a trial's job: the sbatch options."""
        params: dict[str, Any] = {"job_name": job_name, "time": self.time_min, "cpus_per_task": self.threads,
                                  "nodes": 1, "ntasks_per_node": 1}
        for key, value in (("partition", self.partition), ("account", self.account), ("qos", self.qos)):
            if value:
                params[key] = value
        if self.gpus_per_trial:
            params["gres"] = f"gpu:{self.gpus_per_trial}"
        if self.array_parallelism:
            params["array_parallelism"] = self.array_parallelism
        if self.extra:
            params["additional_parameters"] = dict(self.extra)
        return params

    def sbatch_script(self, folder: str | Path, trials: int = 1, job_name: str = "cvloss") -> str:
        """The sbatch script of a trial's job (of an array of ``trials`` with
        ``array_parallelism``), as submitit writes it into ``folder``."""
        from submitit.slurm.slurm import _make_sbatch_string

        params = self.parameters(job_name)
        if self.array_parallelism and trials > 1:
            params["map_count"] = trials
        command = f"{self.python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
        return _make_sbatch_string(command=command, folder=folder, **params)

    def _fields(self, cfg: TrialConfig) -> dict[str, Any]:
        """What a job receives: absolute paths (a job's working directory may differ),
        the threads, and the device its job gets (``cuda`` with GPUs, else ``cpu``)."""
        cfg = replace(cfg, out=str(Path(cfg.out).resolve()), threads=self.threads,
                      data_dir=str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None,
                      device="cuda" if self.gpus_per_trial else "cpu")
        return cfg.record()

    def run(self, cfgs, reporter=None):
        cfgs = list(cfgs)
        if not cfgs:
            return []
        try:
            return _Driver(self, cfgs, reporter or Reporter()).run()
        finally:
            self._cancel_event().clear()


# ---------------------------------------------------------------------- talking to Slurm
def _slurm(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """A Slurm client command; its output as text (a missing command is a UsageError)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UsageError(f"--executor slurm: no {args[0]} on PATH: run cvloss on a Slurm login node (a host "
                         "with the Slurm client commands and the cluster's configuration)") from None


def _first_error(proc: subprocess.CompletedProcess) -> str:
    """sbatch's/scontrol's complaint, without its ``sbatch: error:`` prefix."""
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines or [f"exit code {proc.returncode}"]
    return re.sub(r"^(sbatch|srun|scontrol|squeue): (error: )?", "", errors[0])


@dataclass
class JobState:
    state: str  # squeue's %T: PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, ...
    reason: str  # squeue's %r: why it waits (Resources, Priority, BeginTime) or ended
    node: str


def job_states(job_ids: list[str]) -> dict[str, JobState] | None:
    """``squeue`` on these jobs (array elements one per line): job id -> state. Jobs
    that Slurm has forgotten (ended more than ``MinJobAge`` ago) are absent; None when
    squeue itself failed (the controller busy or restarting: ask again later)."""
    bases = sorted({j.split("_")[0] for j in job_ids})
    if not bases:
        return {}
    proc = _slurm(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r|%N",
                   f"--jobs={','.join(bases)}"])
    if proc.returncode != 0:
        return {} if "Invalid job id" in proc.stderr else None
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            states[parts[0]] = JobState(parts[1], parts[2], parts[3])
    return states


def exit_code(job_id: str) -> tuple[str, int | None, str]:
    """(state, exit code, node) of an ended job, from ``scontrol show job`` (None when
    Slurm no longer knows it)."""
    proc = _slurm(["scontrol", "show", "job", "--oneliner", job_id])
    text = proc.stdout if proc.returncode == 0 else ""
    state = re.search(r"\bJobState=(\S+)", text)
    code = re.search(r"\bExitCode=(\d+):(\d+)", text)
    node = re.search(r"\bBatchHost=(\S+)", text) or re.search(r"\bNodeList=(\S+)", text)
    how = None if code is None else (int(code.group(1)) or (128 + int(code.group(2)) if int(code.group(2)) else 0))
    return (state.group(1) if state else "UNKNOWN"), how, (node.group(1) if node else "?")


def cancel_jobs(job_ids: list[str], signal_name: str | None = None) -> None:
    """``scancel`` (with ``--signal`` when given) on these jobs; errors (a job already
    gone) are ignored."""
    if job_ids:
        _slurm(["scancel", *([f"--signal={signal_name}"] if signal_name else []), *job_ids], timeout=60.0)


class _Trial:
    """One trial of a run: its job (resubmitted after a death), events file, state."""

    def __init__(self, index: int, cfg: TrialConfig, events: Path) -> None:
        self.index, self.cfg, self.label = index, cfg, trial_label(cfg)
        self.events, self.offset, self.tail = events, 0, b""
        self.owner = uuid.uuid4().hex  # the submission's lock owner: its retries take over its lock
        self.job: Any = None
        self.attempt, self.state, self.ended_at = 0, "queued", None

    @property
    def job_id(self) -> str:
        return self.job.job_id


class _Driver:
    """One run of :class:`SlurmExecutor`: check, probe, submit, follow, collect, cancel."""

    def __init__(self, ex: SlurmExecutor, cfgs: list[TrialConfig], reporter: Reporter) -> None:
        self.ex, self.cfgs, self.reporter = ex, cfgs, reporter
        self.out = Path(cfgs[0].out).resolve()
        self.logs = self.out / LOGS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.trials = [_Trial(i, c, self.logs / "events" / f"trial-{i}.jsonl") for i, c in enumerate(cfgs)]
        self.results: dict[int, dict[str, Any]] = {}
        # The driver's settings travel with the jobs; folders as absolute paths.
        self.env = {k: os.path.abspath(v) if k in ("CVLOSS_DATA", "CVLOSS_RESULTS") and v.strip() else v
                    for k, v in os.environ.items() if k.startswith("CVLOSS_")}
        self.tally = ""

    # -------------------------------------------------------------- before submitting
    def check_cluster(self) -> None:
        """sbatch, srun and the trials' script accepted by ``sbatch --test-only``: a bad
        partition, account, QOS, gres or extra option is one line, before any job."""
        for command in ("sbatch", "srun", "squeue", "scancel", "scontrol"):
            if shutil.which(command) is None:
                _slurm([command])  # the one UsageError line
        with tempfile.TemporaryDirectory(prefix="cvloss-sbatch-") as tmp:
            script = Path(tmp) / "trial.sh"
            script.write_text(self.ex.sbatch_script(tmp, trials=len(self.cfgs)))
            proc = _slurm(["sbatch", "--test-only", str(script)])
        if proc.returncode != 0:
            raise UsageError(f"--executor slurm: sbatch refuses the trials' job: {_first_error(proc)}")

    def probe(self, folder: str, token: str) -> dict[str, str]:
        """A tiny job (same partition, account, QOS and extra options as the trials)
        that answers the driver's probe in ``folder`` (:mod:`cvloss.run.shared_folder`);
        how it ended says whether the node sees the folder."""
        from cvloss import __version__

        ex = self.ex
        args = ["sbatch", "--parsable", f"--job-name={PROBE_JOB}", "--output=/dev/null", "--error=/dev/null",
                "--cpus-per-task=1", "--ntasks=1", "--time=5"]
        args += [f"--{k}={v}" for k, v in (("partition", ex.partition), ("account", ex.account), ("qos", ex.qos)) if v]
        args += [f"--{k}" if v is True else f"--{k}={v}" for k, v in ex.extra.items()]
        command = f"{ex.python} -m cvloss.run.shared_folder {shlex.quote(folder)} {token} {__version__}"
        proc = _slurm([*args, f"--wrap={command}"])
        if proc.returncode != 0:
            raise UsageError(f"--executor slurm: sbatch refuses the probe job: {_first_error(proc)}")
        job = proc.stdout.strip().split(";")[0]
        deadline, seen = time.monotonic() + _PROBE_TIMEOUT_S, JobState("PENDING", "", "")
        while True:
            states = job_states([job])
            seen = (states or {}).get(job, seen)
            if states is not None and (seen.state in _ENDED or job not in states):
                break
            if time.monotonic() > deadline:
                cancel_jobs([job])
                why = f": {seen.reason}" if seen.reason not in ("", "None") else ""
                raise TimeoutError(f"the probe job {job} did not end within {_PROBE_TIMEOUT_S:.0f}s "
                                   f"({seen.state.lower()}{why})")
            time.sleep(0.5)
        state, code, node = exit_code(job)
        answer = Path(folder) / f"{PROBE_PREFIX}{token}.answer"
        if code == 0:
            return {"node": answer.read_text() if answer.is_file() else node, "cvloss": __version__}
        why = PROBE_EXIT.get(code) or (f"Python or cvloss cannot start there ({ex.python}; exit code {code}): "
                                       f"install the same cvloss on every node" if code else f"the job ended {state}")
        raise RuntimeError(f"on {node}, {why}")

    # -------------------------------------------------------------- the run
    def run(self) -> list[dict[str, Any]]:
        todo = self._skip_finished()
        if not todo:  # a rerun of a finished comparison asks nothing of Slurm
            self.reporter.begin(len(self.trials), 1)
            self._report_skipped()
            self.reporter.close()
            return [self.results[i] for i in range(len(self.trials))]
        self.check_cluster()
        check_shared_folder(self.out, self.probe, nodes="Slurm node")
        (self.logs / "events").mkdir(parents=True, exist_ok=True)
        log = _quiet_submitit()
        handler = logging.FileHandler(self.logs / "driver.log")
        log.addHandler(handler)
        try:
            return self._follow(todo)
        finally:
            log.removeHandler(handler)
            handler.close()

    def _skip_finished(self) -> list[_Trial]:
        """The trials that need a job: a finished one (its ``summary.json``, of the same
        configuration and data) is read here, as its job would only read it. A folder of
        another configuration or data is left to the job, which refuses it in one line."""
        todo = []
        for t in self.trials:
            path = t.cfg.trial_dir / SUMMARY
            if path.is_file() and data_changed(t.cfg, [t.cfg.trial_dir]) is None and identity_mismatch(t.cfg) is None:
                self.results[t.index], t.state = read_summary(path), "done"
            else:
                todo.append(t)
        return todo

    def _report_skipped(self) -> None:
        for t in self.trials:
            if t.index in self.results:
                self.reporter.trial_end(t.label, "already done, skipped", str(t.cfg.trial_dir))

    def _follow(self, todo: list[_Trial]) -> list[dict[str, Any]]:
        ex = self.ex
        width = min(len(todo), ex.array_parallelism or len(todo))
        self.reporter.message(f"slurm: {len(todo)} trial job(s), {ex.resources().describe()}"
                              + (f", arrays of up to {ex.array_parallelism} at once" if ex.array_parallelism else "")
                              + f"; logs in {self.logs}")
        self.reporter.begin(len(self.trials), width)
        self._report_skipped()
        try:
            self._submit(todo)
            poll, next_poll = _POLL_MIN_S, 0.0
            while len(self.results) < len(self.trials):
                ex._check_cancelled()
                changed = self._read_all()
                if time.monotonic() >= next_poll:
                    changed = self._poll() or changed
                    poll = _POLL_MIN_S if changed else min(_POLL_MAX_S, poll * 1.5)
                    next_poll = time.monotonic() + poll
                self._show_tally()
                time.sleep(0.25)
            self._read_all()
        except BaseException:  # Ctrl-C included: cancel what is queued or runs, let it release its locks
            self._cancel()
            raise
        finally:
            self.reporter.close()
        return [self.results[i] for i in range(len(self.trials))]

    def _submit(self, trials: list[_Trial]) -> None:
        """Submit ``trials`` (one array when ``array_parallelism`` and several, else one
        job each); a refusal of sbatch cancels what was submitted and is one line."""
        sub = self.ex.submitit.SlurmExecutor(folder=self.logs, max_num_timeout=max(self.ex.max_requeues, 0),
                                             python=self.ex.python)
        calls = []
        for t in trials:
            t.attempt += 1
            calls.append(SlurmTrial(self.ex._fields(t.cfg), str(t.events), self.env, t.owner, self.ex.plugins,
                                    self.ex.break_stale_locks, t.attempt, self.ex.max_requeues))
        try:
            if self.ex.array_parallelism and len(trials) > 1:
                sub.update_parameters(**self.ex.parameters(f"{JOB_PREFIX}{trials[0].cfg.task}"))
                with sub.batch():
                    jobs = [sub.submit(call) for call in calls]
            else:
                jobs = []
                for t, call in zip(trials, calls):
                    sub.update_parameters(**self.ex.parameters(f"{JOB_PREFIX}{t.cfg.trial_dir.parent.name}:"
                                                               f"{t.cfg.trial_dir.name}"))
                    jobs.append(sub.submit(call))
                    t.job = jobs[-1]
        except Exception as exc:
            self._cancel()
            text = str(exc).strip().splitlines()
            raise UsageError(f"--executor slurm: sbatch refused a trial's job: {text[-1] if text else exc}") from None
        with open(self.logs / "jobs.tsv", "a", encoding="utf-8") as fh:
            for t, job in zip(trials, jobs):
                t.job, t.state, t.ended_at = job, "queued", None
                fh.write(f"{job.job_id}\t{t.attempt}\t{t.label}\t{t.cfg.trial_dir}\n")

    # -------------------------------------------------------------- following the jobs
    def _read_all(self) -> bool:
        """Forward what the jobs wrote to their events files, and collect the results
        that appeared; True when anything happened."""
        changed = False
        for t in self.trials:
            changed = self._read_events(t) or changed
            if t.index not in self.results and t.job is not None and t.job.paths.result_pickle.exists():
                self._collect(t)
                changed = True
        return changed

    def _read_events(self, t: _Trial) -> bool:
        """Deliver the whole lines a trial's jobs appended since the last read (bytes: a
        line being written is kept until its end arrives)."""
        try:
            with open(t.events, "rb") as fh:
                fh.seek(t.offset)
                data = fh.read()
                t.offset = fh.tell()
        except FileNotFoundError:
            return False
        if not data:
            return False
        lines = (t.tail + data).split(b"\n")
        t.tail = lines.pop()
        for line in lines:
            try:
                message = json.loads(line.decode("utf-8"))
            except ValueError:  # not ours (a torn line): skipped
                continue
            self._deliver(t, message)
        return True

    def _deliver(self, t: _Trial, message: list) -> None:
        kind, args = message[0], message[1:]
        if kind == "attempt":
            attempt, requeues, pid, host, job = args
            if t.state != "running":
                self._state(t, "running", f"slurm job {job} running on {host} (pid {pid})"
                            + (f", after requeue {requeues}" if requeues else ""))
        elif kind == "requeued":
            self.reporter.message(f"[{t.label}] slurm job {t.job_id} preempted or at its time limit: requeued "
                                  f"({args[0]} of {args[1]}), it resumes from its last epoch checkpoint")
            t.state = "queued"
        elif kind == "requeue_limit":
            self.reporter.message(f"[{t.label}] slurm job {t.job_id} preempted or at its time limit after "
                                  f"{args[0]} requeue(s), the limit (--slurm-max-requeues): not requeued")
        elif kind == "warning":
            warnings.warn(args[0], UserWarning, stacklevel=1)
        else:
            deliver(self.reporter, message)

    def _collect(self, t: _Trial) -> None:
        """Read a job's result pickle: the trial's summary, its exception (raised here),
        or submitit's error (a job stopped past its requeue limit: crashed)."""
        try:
            with open(t.job.paths.result_pickle, "rb") as fh:
                outcome, value = pickle.load(fh)
        except (EOFError, pickle.UnpicklingError):  # being written: read it next time
            return
        self._read_events(t)
        if outcome == "success" and value[0] == "result":
            self.results[t.index] = value[1]
            t.state = "done"
            return
        if outcome == "success":  # the trial raised: as the serial executor would
            raise value[1]
        last = str(value).strip().splitlines()[-1] if str(value).strip() else "no traceback"
        if "UncompletedJobError" in last:
            self._crashed(t, f"its slurm job {t.job_id} was preempted or reached its time limit more than "
                             f"{self.ex.max_requeues} time(s) (--slurm-max-requeues)")
            return
        raise RuntimeError(f"slurm job {t.job_id} of {t.label} failed outside the trial: {last} "
                           f"(log: {t.job.paths.stderr})")

    def _poll(self) -> bool:
        """Ask squeue; act on the jobs that ended without a result. True on a change."""
        live = [t for t in self.trials if t.index not in self.results and t.job is not None]
        states = job_states([t.job_id for t in live])
        if states is None:
            return False
        changed = False
        for t in live:
            seen = states.get(t.job_id)
            if seen is None or seen.state in _ENDED:
                changed = self._ended(t, seen) or changed
                continue
            t.ended_at = None  # back in the queue (requeued by Slurm), or still running
            if seen.state in _QUEUED and t.state != "queued":
                self._state(t, "queued", f"slurm job {t.job_id} queued again ({seen.state.lower()}: {seen.reason})")
                changed = True
            elif seen.state == "RUNNING" and t.state == "queued":
                self._state(t, "running", f"slurm job {t.job_id} running on {seen.node}")
                changed = True
        return changed

    def _ended(self, t: _Trial, seen: JobState | None) -> bool:
        """A job that left the queue (or is no longer known) without a result pickle:
        cancelled by the user (final), or died (submitted again once)."""
        if t.job.paths.result_pickle.exists():
            return False  # _read_all collects it
        now = time.monotonic()
        t.ended_at = t.ended_at or now
        grace = _RESULT_GRACE_S if seen is not None and seen.state == "COMPLETED" else _END_GRACE_S
        if now - t.ended_at < grace:
            return False  # requeued by Slurm, or its result not visible here yet: look again
        state, code, node = exit_code(t.job_id)
        how = f"{(seen.state if seen else state).lower()}" + (f", exit code {code}" if code else "") + f" on {node}"
        take_over_owned(t.cfg.trial_dir, t.owner)  # its lock, left by the dead job: a rerun need not wait
        self._read_events(t)
        if (seen.state if seen else state) == "CANCELLED":
            self._crashed(t, f"its slurm job {t.job_id} was cancelled ({how}); scancel is final: a rerun retries it")
        elif t.attempt < MAX_ATTEMPTS:
            self.reporter.message(f"[{t.label}] slurm job {t.job_id} ended without a result ({how}); submitting it "
                                  f"again (attempt {t.attempt + 1} of {MAX_ATTEMPTS}), from its last checkpoint")
            old = t.job_id
            self._submit([t])
            self.reporter.message(f"[{t.label}] slurm job {t.job_id} replaces {old}")
        else:
            self._crashed(t, f"its slurm jobs ended without a result {MAX_ATTEMPTS} times (last: job {t.job_id}, "
                             f"{how}; log {t.job.paths.stderr})")
        return True

    def _crashed(self, t: _Trial, why: str) -> None:
        self.results[t.index] = crashed_summary(t.cfg, why)
        t.state = "failed"
        self.reporter.trial_end(t.label, "CRASHED", f"{why}; no summary.json written, a rerun retries it")

    def _state(self, t: _Trial, state: str, line: str) -> None:
        t.state = state
        self.reporter.message(f"[{t.label}] {line}")

    def _show_tally(self) -> None:
        """``[slurm] 2 queued, 2 running, 3 done, 1 failed``, printed when it changes."""
        counts = {k: 0 for k in ("queued", "running", "done", "failed")}
        for t in self.trials:
            counts[t.state] += 1
        tally = "[slurm] " + ", ".join(f"{n} {k}" for k, n in counts.items())
        if tally != self.tally:
            self.tally = tally
            self.reporter.message(tally)

    # -------------------------------------------------------------- Ctrl-C
    def _cancel(self) -> None:
        """Cancel the run's jobs: queued ones at once, running ones with SIGINT first
        (the trial releases its lock, keeps its checkpoints), then ``scancel`` after a
        grace period; their last lines are forwarded."""
        live = [t for t in self.trials if t.job is not None and t.index not in self.results]
        if not live:
            return
        states = job_states([t.job_id for t in live]) or {}
        running = [t.job_id for t in live if states.get(t.job_id, JobState("", "", "")).state == "RUNNING"]
        cancel_jobs([t.job_id for t in live if t.job_id not in running])
        cancel_jobs(running, "INT")
        deadline = time.monotonic() + _CANCEL_GRACE_S
        while running and time.monotonic() < deadline:
            time.sleep(0.5)
            for t in live:
                self._read_events(t)
            states = job_states(running)
            if states is not None:
                running = [j for j in running if j in states and states[j].state not in _ENDED]
        cancel_jobs(running)
        for t in live:
            self._read_events(t)
