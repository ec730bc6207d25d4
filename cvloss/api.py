"""The library API: what the ``cvloss`` commands do, as typed calls a script can make.

    from cvloss.api import RunOptions, compare

    result = compare("seg", ["ce", "dice"], seeds=3, options=RunOptions(threads=1))

A command is three calls: :class:`RunOptions` (how and where trials run; built into an
executor by :func:`executor_for`, applied process-wide by :func:`prepare`);
:func:`plan_comparison` / :func:`plan_trial` (every input checked and made canonical
before anything is written: a bad one is one :class:`~cvloss.errors.UsageError` line);
:func:`run_plan` / :func:`train` (a :class:`~cvloss.result.ComparisonResult` or the
trial's summary). :func:`compare` does all three; :func:`write_report` and
:func:`export_results` are ``cvloss report`` and ``cvloss export``. Heavy parts (torch,
the tasks) are imported inside the functions, so importing this costs nothing (docs/running.md).
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from cvloss.errors import UsageError

if TYPE_CHECKING:
    from cvloss.result import ComparisonResult
    from cvloss.run.config import TrialConfig
    from cvloss.run.executor import Executor
    from cvloss.run.progress import Reporter
    from cvloss.run.tune import Space

#: Candidates per loss of a search whose ``trials`` is not given (``--tune-trials``).
DEFAULT_TUNE_TRIALS = 8

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _strings(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A repeatable option as a tuple: one string is one item (not its characters)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def __getattr__(name: str) -> Any:
    """``cvloss.api.ComparisonResult``: the result type, imported on first use (it loads torch)."""
    if name == "ComparisonResult":
        from cvloss.result import ComparisonResult

        return ComparisonResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- options
@dataclass(frozen=True)
class RunOptions:
    """How and where trials run, not what they compute: nothing here is part of a
    trial's identity except ``out``, the results root the trial folders go under.

    ``device``: auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps. ``out``: the results
    root (None: ``$CVLOSS_RESULTS``, else ``./cvloss-results``). ``threads``: torch's
    CPU threads per process (None: torch's choice; with ray or slurm also the CPUs each
    trial reserves). ``log``: live views (none, tensorboard, mlflow, wandb).
    ``break_stale_locks``: take over every trial lock met. ``plugins``: modules that
    register losses (dotted names or ``.py`` paths), loaded before any spec is read.
    ``executor``: a name of the executor registry (local, ray, slurm, or one an installed
    package registers); ``jobs`` and ``devices``: local worker processes and the CUDA
    devices they share; ``executor_options``: the named executor's own options by
    :class:`~cvloss.run.executor.ExecutorOptions` field (``address`` for ray,
    ``slurm_time``, ``slurm_extra``, ... for slurm; None values are left out).
    ``quiet``: no progress output.

    ``threads`` is checked here (>= 1); the rest where it is used, each before anything
    is written."""

    device: str = "auto"
    out: str | None = None
    threads: int | None = None
    log: tuple[str, ...] = ()
    break_stale_locks: bool = False
    plugins: tuple[str, ...] = ()
    executor: str = "local"
    jobs: int = 1
    devices: str | None = None
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    quiet: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "log", _strings(self.log))
        object.__setattr__(self, "plugins", _strings(self.plugins))
        object.__setattr__(self, "executor_options", {k: v for k, v in dict(self.executor_options).items()
                                                      if v is not None})
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1; got {self.threads}")


def executor_for(options: RunOptions) -> Executor:
    """The executor ``options`` names, from the registry, with every executor option
    checked in one place (:func:`cvloss.run.executor.executor_from_options`: an unknown
    name, an option of another executor, a bad ``jobs`` or ``devices``) before anything
    is written or submitted."""
    from dataclasses import fields

    from cvloss.run.executor import ExecutorOptions, executor_from_options

    common = {"jobs", "threads", "devices", "device", "break_stale_locks", "plugins"}
    own = sorted(f.name for f in fields(ExecutorOptions) if f.name not in common)
    unknown = sorted(set(options.executor_options) - set(own))
    if unknown:
        raise UsageError(f"unknown executor option {unknown[0]!r}; valid: {', '.join(own)}")
    extra = {k: list(_strings(v)) if k == "slurm_extra" else v for k, v in options.executor_options.items()}
    opts = ExecutorOptions(jobs=options.jobs, threads=options.threads, devices=options.devices,
                           device=options.device, break_stale_locks=options.break_stale_locks,
                           plugins=list(options.plugins), **extra)
    return executor_from_options(options.executor, opts)


def prepare(options: RunOptions) -> None:
    """The process-wide part of ``options``: torch's thread count, and the plugin
    modules imported (each once per process; one that cannot be imported is one error
    line, an installed plugin that cannot be used one warning)."""
    if options.threads is not None:
        import torch

        torch.set_num_threads(options.threads)
    from cvloss.losses import load_plugins

    load_plugins(list(options.plugins))


def use_catalog(path: str | None, trust: bool = False) -> None:
    """``--catalog FILE``: checked now, and exported as ``$CVLOSS_CATALOG`` so that every
    part of the run (and any worker process it starts) reads the same catalog.
    ``trust`` (``--trust-catalog``): the sha256 of that catalog's bytes is exported as
    ``$CVLOSS_TRUSTED_CATALOG`` (those bytes, and no edit of them, may name
    ``module:function`` loaders); without it the variable is cleared, so only the flag
    trusts a catalog. A catalog that is refused leaves the environment as it was."""
    from cvloss.data.registry import CATALOG_ENV, TRUST_ENV, load_catalog, user_catalog_digest

    before = {key: os.environ.get(key) for key in (CATALOG_ENV, TRUST_ENV)}
    try:
        if path is not None:
            os.environ[CATALOG_ENV] = os.path.abspath(os.path.expanduser(path))
        os.environ.pop(TRUST_ENV, None)
        digest = user_catalog_digest() if trust else None
        if digest is not None:
            os.environ[TRUST_ENV] = digest
        load_catalog()  # a malformed, clashing or untrusted user catalog is one line now, before anything runs
    except Exception:
        for key, value in before.items():  # the environment as it was (tests run the CLI in-process)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        raise


# ---------------------------------------------------------------- plans
@dataclass(frozen=True)
class Tuning:
    """A search per loss on val before the comparison (``--tune``): ``space`` its
    dimensions (``NAME=log(a,b)|uniform(a,b)|int(a,b)|choice(x,y,...)``; empty: no
    search), ``trials`` candidates per loss (None: :data:`DEFAULT_TUNE_TRIALS`),
    ``sampler`` lhs | grid | random | tpe, ``seed`` the sampler's seed (the same
    candidates for every loss); ``seeds`` K tuning seeds per candidate (None: 3),
    ``repeats`` R whole searches (None: 1), ``halving`` the successive-halving factor eta
    (None: off) and ``min_epochs`` its first rung's fewest epochs (None: 1). A new search setting is a new field here, checked by
    :func:`plan_comparison` and passed on by :func:`run_plan`."""

    space: tuple[str, ...] = ()
    trials: int | None = None
    sampler: str = "lhs"
    seed: int = 0
    seeds: int | None = None
    repeats: int | None = None
    halving: int | None = None
    min_epochs: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", _strings(self.space))


@dataclass(frozen=True)
class ComparisonPlan:
    """A checked comparison (:func:`plan_comparison`): ``base`` is every trial's
    configuration but loss and seed; ``losses`` the canonical specs, baseline first;
    ``seeds`` the replicates; ``tuning`` the search asked for and ``space`` that search
    checked (None: no search)."""

    base: TrialConfig
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    options: RunOptions
    tuning: Tuning | None = None
    space: Space | None = None
    target_effect: float | None = None
    allow_mixed: bool = False
    retrain_stale: bool = False

    @property
    def group_dir(self) -> Path:
        """``<out>/<task>/<dataset>/<budget label>``: the trials' folders are under it."""
        return self.base.group_dir

    @property
    def out_dir(self) -> Path:
        """The comparison's folder (``compare.json`` and the tables); a tuned one's
        lies under ``<budget label>+tuned-<hash>``."""
        from cvloss.run.compare import comparison_dir

        base = self.base if self.space is None else replace(self.base, place=self.space.winners())
        return comparison_dir(base, list(self.losses))

    def trial_configs(self) -> list[TrialConfig]:
        """Every trial of an untuned comparison, seed-major (all losses at the first seed,
        then the next): at one seed, every loss starts from the same weights and sees the
        same batches. A tuned comparison's trials follow from its search: none listed."""
        if self.space is not None:
            return []
        return [replace(self.base, loss=spec, seed=seed) for seed in self.seeds for spec in self.losses]

    @property
    def dataset_label(self) -> str:
        """The dataset as the tables' titles name it: an embedded one says what it stands in for."""
        from cvloss.data.registry import get_dataset

        real = get_dataset(self.base.dataset).real
        return f"{self.base.dataset} (embedded stand-in for {real})" if real else self.base.dataset


@dataclass(frozen=True)
class TrialPlan:
    """A checked trial (:func:`plan_trial`): its whole configuration."""

    config: TrialConfig
    options: RunOptions

    @property
    def trial_dir(self) -> Path:
        return self.config.trial_dir


def plan_comparison(task: str, losses: str | Sequence[str], *, dataset: str | None = None, budget: str = "smoke",
                    seeds: int | str | Sequence[int] = 3, sets: Sequence[str] = (), data_dir: str | None = None,
                    feature_weights: str = "auto", catalog: str | None = None, trust_catalog: bool = False,
                    fid_weights: str | None = None, keep_checkpoints: bool = False,
                    target_effect: float | None = None, tuning: Tuning | None = None, allow_mixed: bool = False,
                    retrain_stale: bool = False, options: RunOptions = RunOptions(),
                    say: Say = _stderr) -> ComparisonPlan:
    """The comparison of ``losses`` (specs, the first the baseline; a list, or the
    comma-separated text of ``--losses``) on ``task``, every input checked in the order
    the CLI checks them, before any data, network or folder is touched.

    ``seeds``: a count (3 -> seeds 0, 1, 2), the text of ``--seeds``, or a list of seeds.
    ``sets``: budget overrides ``key=value`` (``--set``). ``dataset``: a catalog name or a
    dataset folder (None: the task's embedded one); ``catalog``/``trust_catalog``: a user
    catalog (:func:`use_catalog`). ``target_effect``: also compute the seeds needed to
    detect that difference in the primary metric. ``tuning``: a search per loss on val
    first. ``allow_mixed``: pool finished trials of other code; ``retrain_stale``: move
    them aside and retrain them. ``say``: where notes on the data go (default stderr)."""
    from cvloss.losses import load_plugins
    from cvloss.run.compare import canonical_specs, check_seed_list, parse_seeds, split_losses
    from cvloss.run.live_log import check_log

    load_plugins(list(options.plugins))  # once per process: a spec may name a plugin's loss
    seed_list = parse_seeds(str(seeds)) if isinstance(seeds, (int, str)) else check_seed_list([int(s) for s in seeds])
    base = _base_config(task, dataset, budget, options, data_dir, feature_weights, sets, catalog, trust_catalog, say)
    specs = canonical_specs(split_losses(losses if isinstance(losses, str) else ",".join(losses)), task)
    _require_feature_weights(task, specs, feature_weights)
    if target_effect is not None and not (math.isfinite(target_effect) and target_effect > 0):
        raise UsageError(f"--target-effect must be a positive difference in the primary metric's units; "
                         f"got {target_effect}")
    base = replace(base, fid_weights=_fid_weights(fid_weights), log=check_log(list(options.log) or None),
                   threads=options.threads, keep_checkpoints=keep_checkpoints)
    space = search_space(tuning, task, specs)
    return ComparisonPlan(base=base, losses=tuple(specs), seeds=tuple(seed_list), options=options, tuning=tuning,
                          space=space, target_effect=target_effect, allow_mixed=allow_mixed,
                          retrain_stale=retrain_stale)


def plan_trial(task: str, loss: str, *, seed: int = 0, dataset: str | None = None, budget: str = "smoke",
               sets: Sequence[str] = (), data_dir: str | None = None, feature_weights: str = "auto",
               catalog: str | None = None, trust_catalog: bool = False, fid_weights: str | None = None,
               keep_checkpoints: bool = False, options: RunOptions = RunOptions(),
               say: Say = _stderr) -> TrialPlan:
    """One trial of ``task`` under the loss spec ``loss`` at ``seed`` (``cvloss train``),
    checked as :func:`plan_comparison` checks a comparison."""
    from cvloss.losses import load_plugins
    from cvloss.run.compare import canonical_specs
    from cvloss.run.live_log import check_log

    load_plugins(list(options.plugins))
    if seed < 0:
        raise UsageError(f"--seed must be >= 0; got {seed}")
    base = _base_config(task, dataset, budget, options, data_dir, feature_weights, sets, catalog, trust_catalog, say)
    (spec,) = canonical_specs([loss], task)
    _require_feature_weights(task, [spec], feature_weights)
    cfg = replace(base, loss=spec, seed=seed, fid_weights=_fid_weights(fid_weights),
                  log=check_log(list(options.log) or None), threads=options.threads,
                  keep_checkpoints=keep_checkpoints)
    return TrialPlan(config=cfg, options=options)


def _base_config(task: str, dataset: str | None, budget: str, options: RunOptions, data_dir: str | None,
                 feature_weights: str, sets: Sequence[str], catalog: str | None, trust_catalog: bool,
                 say: Say) -> TrialConfig:
    """Every setting checked (and values made canonical) before any data, network or
    folder is touched: a bad setting costs nothing and writes nothing."""
    from cvloss.data.registry import default_dataset, ensure_present, get_dataset
    from cvloss.losses.features import check_feature_weights
    from cvloss.run.budgets import budget_params, parse_overrides, resolve_overrides
    from cvloss.run.config import TrialConfig, resolve_results_dir
    from cvloss.run.trainer import data_changed, resolve_device
    from cvloss.tasks import get_task_class

    get_task_class(task)  # an unknown task is refused first
    use_catalog(catalog, trust_catalog)
    out = resolve_results_dir(options.out)
    overrides = resolve_overrides(task, parse_overrides(list(sets or ())))  # canonical: lr=1 and lr=1.0 are one folder
    budget_params(task, budget, overrides)  # the budget name, and checks that tie settings together
    check_feature_weights(feature_weights)
    resolve_device(options.device)  # an unavailable device fails now, not after loading data
    info = get_dataset(default_dataset(task) if dataset is None else dataset, task=task)  # "" is refused
    # refuse before any training, naming what to fetch; an extracted copy in the data dir
    # that is not adopted (or changed since) is checked here, once, and used in place
    ensure_present(info, data_dir, say=say)
    fingerprint = None
    if info.root is not None:  # a dataset folder: every file checked now, its fingerprint in the identity
        from cvloss.data.folders import index_folder

        fingerprint = index_folder(info.root, task).fingerprint
    cfg = TrialConfig(task=task, loss="", dataset=info.name, budget=budget, device=options.device, out=out,
                      data_dir=data_dir, feature_weights=feature_weights, overrides=overrides,
                      data_fingerprint=fingerprint)
    changed = data_changed(cfg)  # results of other data in the same folder: refused, not resumed or skipped
    if changed is not None:
        raise UsageError(changed)
    return cfg


def _require_feature_weights(task: str, specs: list[str], feature_weights: str) -> None:
    """``imagenet``: the ImageNet weights of every VGG the run builds -- its loss terms'
    and its task's feature metrics' -- are in torch's cache (or downloaded now), before
    any trial folder exists; offline, one line naming what to fetch and where."""
    if feature_weights.lower() != "imagenet":  # auto falls back to random weights (warning) in the trial
        return
    from cvloss.losses.features import require_feature_weights
    from cvloss.losses.spec import default_feature_archs
    from cvloss.tasks import get_task_class

    archs = [arch for spec in specs for arch in default_feature_archs(spec, task)]
    metrics = getattr(get_task_class(task), "feature_metrics", None)  # sr, style: a VGG scores every loss
    if metrics is not None:
        archs += [net.arch for net, _ in metrics(feature_weights).values()]
    require_feature_weights(feature_weights, archs)


def _fid_weights(path: str | None) -> str | None:
    """``--fid-weights``: an existing file, as an absolute path; recorded, not in the folder name."""
    if path is not None and not Path(path).expanduser().is_file():
        raise UsageError(f"--fid-weights {path}: no such file")
    return None if path is None else str(Path(path).expanduser().resolve())


def search_space(tuning: Tuning | None, task: str, specs: list[str]) -> Space | None:
    """The search of ``tuning`` (None without one), checked whole before anything is
    written: its size, its names and weights, and every candidate applied to every spec
    (:func:`cvloss.run.tune.check_space`; the tuned comparison checks them once more
    against the budget and the overrides before its first folder)."""
    if tuning is None or not tuning.space:
        for option, given in (("--tune-trials", tuning and tuning.trials), ("--tune-seeds", tuning and tuning.seeds),
                              ("--tune-repeats", tuning and tuning.repeats),
                              ("--tune-halving", tuning and tuning.halving)):
            if given is not None:
                raise UsageError(f"{option} needs --tune (the space to search), e.g. --tune 'lr=log(1e-4,1e-2)'")
        return None
    if tuning.min_epochs is not None and tuning.halving is None:
        raise UsageError("--tune-min-epochs needs --tune-halving (it sets the first rung of successive halving)")
    from cvloss.run.tune import Halving, TuneProtocol, check_space, parse_space

    trials = DEFAULT_TUNE_TRIALS if tuning.trials is None else tuning.trials
    halving = None if tuning.halving is None else Halving(tuning.halving, 1 if tuning.min_epochs is None
                                                          else tuning.min_epochs)
    protocol = TuneProtocol(seeds=3 if tuning.seeds is None else tuning.seeds,
                            repeats=1 if tuning.repeats is None else tuning.repeats, halving=halving)
    space = parse_space(list(tuning.space), trials, tuning.sampler, tuning.seed, protocol)
    check_space(space, task, specs)
    if space.sampler == "tpe":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise UsageError("--tune-sampler tpe needs Optuna: pip install 'cvloss[tune]' (or pip install optuna)") \
                from None
    return space


# ---------------------------------------------------------------- running
def _metric_keys(task: str) -> list[str]:
    from cvloss.tasks import get_task_class

    return list(get_task_class(task).spec.metrics)


def run_plan(plan: ComparisonPlan, executor: Executor | None = None,
             reporter: Reporter | None = None) -> ComparisonResult:
    """Run the comparison of ``plan`` on ``executor`` (None: :func:`executor_for` its
    options, after :func:`prepare`): every (seed, loss) trial -- finished ones skipped,
    interrupted ones resumed, ones another process holds waited for -- or, with a search,
    the search on val and then its winners, and the comparison's files. ``reporter``
    (None: the executor's own view, silent with ``quiet``) shows the progress. Raises
    KeyboardInterrupt when interrupted (finished epochs are checkpointed)."""
    from cvloss.result import ComparisonResult
    from cvloss.run import compare as comparison  # looked up at the call: tests replace run_comparison

    if executor is None:
        executor = executor_for(plan.options)
        prepare(plan.options)
    reporter = reporter or executor.progress(plan.options.quiet, keys=_metric_keys(plan.base.task))
    how = dict(break_stale_locks=plan.options.break_stale_locks, target_effect=plan.target_effect,
               allow_mixed=plan.allow_mixed, executor=executor, retrain_stale=plan.retrain_stale)
    if plan.space is None:
        found = comparison.run_comparison(plan.base, list(plan.losses), list(plan.seeds), reporter, **how)
    else:
        from cvloss.run import tuning

        found = tuning.run_tuned_comparison(plan.base, list(plan.losses), list(plan.seeds), plan.space, reporter,
                                            **how)
    return ComparisonResult.from_dict(found)


def train(plan: TrialPlan, reporter: Reporter | None = None) -> dict[str, Any]:
    """Train the trial of ``plan`` in this process (resumed from its checkpoint, or
    skipped when finished) and return its summary (``summary.json``: status, metrics)."""
    from cvloss.run.progress import make_reporter
    from cvloss.run.trainer import run_trial

    reporter = reporter or make_reporter(plan.options.quiet, keys=_metric_keys(plan.config.task), jobs=1)
    return run_trial(plan.config, reporter, break_stale_locks=plan.options.break_stale_locks)


def compare(task: str, losses: str | Sequence[str], *, options: RunOptions = RunOptions(),
            **settings: Any) -> ComparisonResult:
    """Plan (:func:`plan_comparison`, with ``settings`` its keyword arguments) and run
    (:func:`run_plan`) a comparison on the executor of ``options``."""
    executor = executor_for(options)
    prepare(options)
    return run_plan(plan_comparison(task, losses, options=options, **settings), executor)


# ---------------------------------------------------------------- results folders
def _results_root(results_dir: str | None, verb: str) -> Path:
    from cvloss.run.config import resolve_results_dir

    root = Path(resolve_results_dir(results_dir))
    if not root.is_dir():
        raise UsageError(f"no results folder {root}: run `cvloss compare ...` first, or name the folder to {verb}")
    return root


def write_report(results_dir: str | None = None, html: bool = True, replot: bool = True) -> dict[str, Path]:
    """Gather every comparison under ``results_dir`` (None: ``$CVLOSS_RESULTS``, else
    ``./cvloss-results``) into ``REPORT.md``, ``tables.tex``, ``runs.csv`` and (``html``)
    ``report.html`` there (:func:`cvloss.report.html.write_reports`); ``replot`` redraws
    each comparison's standard plots from its trials. Returns the paths by kind."""
    from cvloss.report.html import write_reports

    root = _results_root(results_dir, "gather")
    if not any(root.glob("**/compare.json")):
        raise UsageError(f"no comparisons under {root}: run `cvloss compare ...` first")
    return write_reports(root, html=html, replot=replot)


def export_results(tracker: str, results_dir: str | None = None) -> dict[str, Any]:
    """Push the comparisons under ``results_dir`` into ``tracker`` (mlflow | wandb) from
    their files (:func:`cvloss.run.trackers_export.export_results`); returns its counts
    (``comparisons``, ``store``, ``created``, ``updated``, ``unchanged``)."""
    from cvloss.run.live_log import check_log
    from cvloss.run.trackers import TRACKERS
    from cvloss.run.trackers_export import export_results as export

    if tracker not in TRACKERS:
        raise UsageError(f"unknown tracker {tracker!r}; valid: {', '.join(TRACKERS)}")
    check_log(tracker, option="export")  # its package installed
    return export(tracker, _results_root(results_dir, "export"))
