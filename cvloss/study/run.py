"""``cvloss study run``: every comparison of a study through the library, in file order.

Each comparison runs as ``cvloss compare`` runs it -- the plan of
:mod:`cvloss.study.check` run by :func:`cvloss.api.run_plan` on an executor of
:func:`cvloss.api.executor_for`, no subprocess -- so it resumes like one, and a killed
``study run`` started again picks up where it stopped. A comparison's executor hints
(``jobs``, ``threads``, ``slurm``) apply where the command line leaves an option unset.
Before anything trains the study must match its lock
(:func:`cvloss.study.lock.check_unchanged`); an unlocked study runs only with
``unlocked`` (its hypotheses all post hoc). :class:`StudyProgress` names the comparison
and counts the study's finished trials on stderr.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from cvloss.errors import UsageError
from cvloss.run.progress import ForwardingReporter, Reporter
from cvloss.study.check import Plan, PlannedComparison
from cvloss.study.lock import check_unchanged, lock_path


@dataclass
class StudyRunOptions:
    """What ``study run`` takes beyond the study. ``None``: the comparison's hint, else
    the default (as ``cvloss compare``'s). ``only``: run just these comparisons."""

    executor: str = "local"
    jobs: int | None = None
    threads: int | None = None
    device: str = "auto"
    devices: str | None = None
    address: str | None = None
    slurm_partition: str | None = None
    slurm_time: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_gpus_per_trial: int | None = None
    slurm_array_parallelism: int | None = None
    slurm_max_requeues: int | None = None
    slurm_extra: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    break_stale_locks: bool = False
    allow_mixed: bool = False
    retrain_stale: bool = False
    unlocked: bool = False
    quiet: bool = False
    only: list[str] | None = None


_SLURM = ("slurm_partition", "slurm_time", "slurm_account", "slurm_qos", "slurm_gpus_per_trial",
          "slurm_array_parallelism", "slurm_max_requeues", "slurm_extra")


def run_options(c: PlannedComparison, opts: StudyRunOptions, out: str) -> Any:
    """The :class:`cvloss.api.RunOptions` of one comparison: the command line's, else its
    hints. With Slurm, ``slurm.cpus`` is the CPUs (threads) each trial reserves,
    ``slurm.gpus`` its GPUs and ``slurm.time`` each job's limit; other executors get only
    the Slurm options given on the command line (and refuse them, as ``compare`` does)."""
    from cvloss import api

    hints = c.entry
    slurm = opts.executor == "slurm"
    threads = opts.threads if opts.threads is not None else (
        (hints.slurm.cpus if slurm and hints.slurm.cpus is not None else None) or hints.threads)
    own = {k: getattr(opts, k) for k in _SLURM if getattr(opts, k) not in (None, [])}
    if slurm:
        own.setdefault("slurm_time", hints.slurm.time)
        own.setdefault("slurm_gpus_per_trial", hints.slurm.gpus)
    if opts.address is not None:
        own["address"] = opts.address
    return api.RunOptions(device=opts.device, out=out, threads=threads, break_stale_locks=opts.break_stale_locks,
                          plugins=tuple(opts.plugins), executor=opts.executor,
                          jobs=opts.jobs if opts.jobs is not None else (hints.jobs or 1), devices=opts.devices,
                          executor_options=own, quiet=opts.quiet)


class StudyProgress(ForwardingReporter):
    """A comparison's reporter wrapped for the study: every trial also counts towards the
    study's total, said in one line (``[study 7/24] vessels: ce/seed1 done``). A trial
    counts once, the first time it stops: under successive halving that is its first
    rung, where a candidate the search drops also ends (a later rung's stop or its end
    is said without counting it again)."""

    def __init__(self, inner: Reporter, name: str, counter: list[int], total: int,
                 say: Callable[[str], None]) -> None:
        self.inner, self.name, self.counter, self.total, self.say = inner, name, counter, total, say
        self.counted: set[str] = set()

    def trial_end(self, label, status, detail=""):
        self.inner.trial_end(label, status, detail)
        if label not in self.counted:
            self.counted.add(label)
            self.counter[0] += 1
        self.say(f"[study {self.counter[0]}/{self.total}] {self.name}: {label} {status}")


def check_runnable(plan: Plan, lock: dict[str, Any] | None, unlocked: bool) -> None:
    """Refuse (one line) a study that differs from its lock, or an unlocked one without
    ``unlocked``: its comparisons' trials read test."""
    check_unchanged(plan, lock)
    if lock is None and not unlocked:
        raise UsageError(f"{plan.study.path} is not locked, and its comparisons' trials read test: lock it first "
                         f"(cvloss study lock {plan.study.path}; no trial has read test yet), or pass --unlocked "
                         f"(every hypothesis is then post hoc, and the study can no longer be locked)")


def selected(plan: Plan, only: list[str] | None) -> list[PlannedComparison]:
    """The comparisons to run: all, or those ``only`` names (an unknown name is refused)."""
    if not only:
        return list(plan.comparisons)
    names = [c.name for c in plan.comparisons]
    for name in only:
        if name not in names:
            raise UsageError(f"--only {name!r}: no such comparison in {plan.study.path}; it has: {', '.join(names)}")
    return [c for c in plan.comparisons if c.name in only]


def run_one(c: PlannedComparison, opts: StudyRunOptions, options: Any, executor: Any, reporter: Reporter) -> Any:
    """One comparison through the library API (:func:`cvloss.api.run_plan`: what
    ``cvloss compare`` runs), with this run's options."""
    from cvloss import api

    plan = replace(c.plan, options=options, allow_mixed=opts.allow_mixed, retrain_stale=opts.retrain_stale,
                   base=replace(c.plan.base, device=options.device, threads=options.threads))
    api.prepare(options)  # torch's threads in this process (the serial executor trains here), the plugins
    return api.run_plan(plan, executor, reporter)


def run_study(plan: Plan, lock: dict[str, Any] | None, opts: StudyRunOptions,
              say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study's comparisons (module docstring); comparison name -> its
    :class:`~cvloss.result.ComparisonResult`. Everything that can be refused is refused
    before the first trial: the lock, each comparison's executor and its options."""
    from cvloss import api
    from cvloss.tasks import get_task_class

    say = say or (lambda line: None if opts.quiet else print(line, file=sys.stderr, flush=True))
    from cvloss.run.trainer import resolve_device

    check_runnable(plan, lock, opts.unlocked)
    chosen = selected(plan, opts.only)
    resolve_device(opts.device)  # an unavailable device fails now, not after the first comparison
    options = {c.name: run_options(c, opts, str(plan.out)) for c in chosen}
    executors = {c.name: api.executor_for(options[c.name]) for c in chosen}
    total = sum(c.trials + c.search_trials for c in chosen)
    counter = [0]
    say(f"study {plan.study.path.name}: {len(chosen)} comparison(s), {total} trial(s) at most"
        + ("" if lock is not None else "; UNLOCKED: every hypothesis is post hoc")
        + f" (lock: {lock_path(plan.study.path).name if lock else 'none'})")
    results = {}
    threads = None
    try:
        for k, c in enumerate(chosen, 1):
            say(f"[study] comparison {k}/{len(chosen)} {c.name}: {c.base.task} / {c.base.dataset} / "
                f"{c.base.group_dir.name}, {len(c.specs)} loss(es) x {len(c.seeds)} seed(s)"
                + (f" + {c.search_trials} search trial(s)" if c.search_trials else ""))
            executor = executors[c.name]
            inner = executor.progress(opts.quiet, keys=list(get_task_class(c.base.task).spec.metrics))
            threads = threads if threads is not None else _torch_threads()
            results[c.name] = run_one(c, opts, options[c.name], executor,
                                      StudyProgress(inner, c.name, counter, total, say))
    finally:
        if threads is not None:  # this process's torch threads as they were before the study
            _set_torch_threads(threads)
    return results


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
