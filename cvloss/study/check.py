"""``cvloss study check``: every entry of a study validated before anything runs, and
the plan it makes.

Each comparison goes through the checks ``cvloss compare`` makes before its first folder
(task, budget and ``set`` overrides, feature weights, dataset -- known and present: check
neither downloads nor adopts --, seeds, loss specs, search space), each error prefixed
with the key it checked, and is then planned as ``cvloss compare`` plans it
(:func:`cvloss.api.plan_comparison`). Each hypothesis names two of its comparison's
losses (as canonical specs) and a metric its task reports. Every error is one line
naming the file, the table and the key. The :class:`Plan` holds each comparison resolved
(the library's plan, canonical values, test-reading and search trials, the CPU-hour
estimate of :mod:`cvloss.study.costs`) and each hypothesis; its canonical forms are what
a lock hashes. Nothing is trained, downloaded or written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cvloss.errors import CvlossError, UsageError
from cvloss.study.costs import cpu_hours
from cvloss.study.schema import Comparison, Hypothesis, Study, where


@dataclass
class PlannedComparison:
    """One comparison, validated and resolved. ``plan`` is the library's
    :class:`cvloss.api.ComparisonPlan` (what ``cvloss compare`` runs; its trials under the
    study's results root); ``base`` its trial configuration but loss and seed; ``space``
    the search or None; ``canonical`` what the lock hashes (no executor hints: where a
    study runs does not change what it asks)."""

    entry: Comparison
    plan: Any  # cvloss.api.ComparisonPlan
    canonical: dict[str, Any]
    trials: int
    search_trials: int
    cpu_hours: float | None

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def base(self) -> Any:  # cvloss.run.config.TrialConfig
        return self.plan.base

    @property
    def specs(self) -> list[str]:
        return list(self.plan.losses)

    @property
    def seeds(self) -> list[int]:
        return list(self.plan.seeds)

    @property
    def space(self) -> Any:  # cvloss.run.tune.Space | None
        return self.plan.space


@dataclass
class PlannedHypothesis:
    """One hypothesis with ``a`` and ``b`` as the canonical specs of its comparison."""

    entry: Hypothesis
    a: str
    b: str
    canonical: dict[str, Any]

    @property
    def name(self) -> str:
        return self.entry.name


@dataclass
class Plan:
    study: Study
    out: Path
    comparisons: list[PlannedComparison]
    hypotheses: list[PlannedHypothesis]

    def comparison(self, name: str) -> PlannedComparison:
        return next(c for c in self.comparisons if c.name == name)


def _checked(at: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, its cvloss error (the library's own one line) prefixed with ``at``."""
    try:
        return fn()
    except CvlossError as exc:
        raise UsageError(f"{at}: {' '.join(str(exc).split())}") from None


# ---------------------------------------------------------------------------- a comparison
def _dataset(c: Comparison, task: str, data_dir: str | None) -> tuple[str, str | None]:
    """(catalog name, folder fingerprint or None) of the comparison's dataset, present."""
    from cvloss.data.registry import default_dataset, get_dataset, presence_problem

    info = get_dataset(default_dataset(task) if c.dataset is None else c.dataset, task=task)
    problem = presence_problem(info, data_dir)
    if problem is not None:
        raise UsageError(problem)
    if info.root is None:
        return info.name, None
    from cvloss.data.folders import index_folder  # a dataset folder: its fingerprint is in the identity

    return info.name, index_folder(info.root, task).fingerprint


def tune_extras(c: Comparison) -> dict[str, Any]:
    """The search options beyond the space, trial count, sampler and seed that the
    comparison gives (``tune_seeds``, ``tune_repeats``, ``halving``), as written."""
    return {k: getattr(c, k) for k in ("tune_seeds", "tune_repeats", "halving") if getattr(c, k) is not None}


def _halving(value: Any) -> tuple[int | None, int | None]:
    """The comparison's ``halving`` as (eta, min_epochs): absent or false -> off; true ->
    eta 3; an integer -> that eta; a table ``{eta, min_epochs}`` -> both."""
    if value is True:
        return 3, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, dict):
        return value.get("eta", 3), value.get("min_epochs")
    return None, None


def tuning_of(c: Comparison) -> Any:
    """The comparison's search as the library takes it (:class:`cvloss.api.Tuning`)."""
    from cvloss import api

    eta, min_epochs = _halving(c.halving)
    return api.Tuning(space=tuple(c.tune), trials=c.tune_trials, seed=c.tune_seed, seeds=c.tune_seeds,
                      repeats=c.tune_repeats, halving=eta, min_epochs=min_epochs,
                      **({} if c.tune_sampler is None else {"sampler": c.tune_sampler}))


def build_space(c: Comparison, task: str, specs: list[str], base: Any) -> Any:
    """The comparison's search (None without ``tune``), checked whole against its specs
    and budget; search options given without ``tune`` are refused."""
    from cvloss import api
    from cvloss.run.tune import check_space

    if not c.tune:
        given = [k for k in ("tune_trials", "tune_sampler", "tune_seed", *tune_extras(c))
                 if getattr(c, k) not in (None, 0)]
        if given:
            raise UsageError(f"{given[0]} needs tune (the space to search), e.g. tune = [\"lr=log(1e-4,1e-2)\"]")
        return None
    space = api.search_space(tuning_of(c), task, specs)
    check_space(space, task, specs, base)
    return space


def search_trials(space: Any, n_losses: int) -> int:
    """Search trials at most: every loss's candidates at each tuning seed of each repeat
    (successive halving trains fewer epochs of most: this is the count before it)."""
    if space is None:
        return 0
    return n_losses * space.trials * space.protocol.seeds * space.protocol.repeats


def search_epochs(space: Any, n_losses: int, epochs: int) -> int:
    """Trial-epochs the search trains: each candidate's epochs at every tuning seed of every
    repeat of every loss; under successive halving, rung r trains only its survivors, each
    from the previous rung's epoch to this rung's (a later rung resumes the checkpoint)."""
    if space is None:
        return 0
    halving = space.protocol.halving
    if halving is None:
        per_search = space.trials * epochs
    else:
        rungs = halving.rungs(epochs)
        per_search = sum(halving.survivors(space.trials, r) * (e - (rungs[r - 1] if r else 0))
                         for r, e in enumerate(rungs))
    return n_losses * space.protocol.seeds * space.protocol.repeats * per_search


def _set_items(c: Comparison) -> list[str]:
    """The comparison's ``set`` as ``--set`` items (``key=value``)."""
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in c.sets]


def _validate(c: Comparison, at: Callable[[str], str], data_dir: str | None, out: Path) -> dict[str, Any]:
    """Each key through the library's own check, so that an error names its key:
    canonical overrides, budget parameters, seeds, specs and the search."""
    from cvloss.losses.features import check_feature_weights
    from cvloss.run.budgets import budget_params, parse_overrides, resolve_overrides
    from cvloss.run.compare import canonical_specs, parse_seeds
    from cvloss.run.config import TrialConfig
    from cvloss.run.tune import TUNE_SEED0
    from cvloss.tasks import get_task_class

    task_cls = _checked(at("task"), lambda: get_task_class(c.task))
    overrides = _checked(at("set"), lambda: resolve_overrides(c.task, parse_overrides(_set_items(c))))
    params = _checked(at("set" if c.sets else "budget"), lambda: budget_params(c.task, c.budget, overrides))
    _checked(at("feature_weights"), lambda: check_feature_weights(c.feature_weights))
    dataset, fingerprint = _checked(at("dataset"), lambda: _dataset(c, c.task, data_dir))
    seeds = _checked(at("seeds"), lambda: parse_seeds(c.seeds))
    _checked(at("seeds"), lambda: task_cls.spec.check_seeds(params, seeds, dataset, data_dir))
    specs = _checked(at("losses"), lambda: canonical_specs(list(c.losses), c.task))
    base = TrialConfig(task=c.task, loss="", dataset=dataset, budget=c.budget, out=str(out), data_dir=data_dir,
                       feature_weights=c.feature_weights, overrides=overrides, data_fingerprint=fingerprint)
    space = _checked(at("tune"), lambda: build_space(c, c.task, specs, base))
    if space is not None and max(seeds) >= TUNE_SEED0:
        raise UsageError(f"{at('seeds')}: seeds must stay below {TUNE_SEED0} with tune (the tuning trials' seeds); "
                         f"got {max(seeds)}")
    return {"overrides": overrides, "params": params, "dataset": dataset, "fingerprint": fingerprint,
            "seeds": seeds, "specs": specs, "space": space}


def plan_comparison(c: Comparison, study: Study, out: Path, data_dir: str | None = None) -> PlannedComparison:
    """Validate ``c`` key by key (module docstring), then plan it as ``cvloss compare``
    does (:func:`cvloss.api.plan_comparison`, which checks it whole once more and makes
    the trials' configuration); one line naming the table (and the key) on error."""
    from cvloss import api

    at = lambda key: where(study.path, "comparison", c.index, c.name, key)  # noqa: E731
    v = _validate(c, at, data_dir, out)
    tuning = None if v["space"] is None else tuning_of(c)
    plan = _checked(where(study.path, "comparison", c.index, c.name), lambda: api.plan_comparison(
        c.task, v["specs"], dataset=c.dataset, budget=c.budget, seeds=v["seeds"], sets=_set_items(c),
        data_dir=data_dir, feature_weights=c.feature_weights, target_effect=c.target_effect, tuning=tuning,
        options=api.RunOptions(out=str(out), threads=c.threads), say=lambda line: None))
    space = v["space"]
    n_search = search_trials(space, len(v["specs"]))
    trials = len(v["specs"]) * len(v["seeds"])
    canonical = {
        "task": c.task, "dataset": v["dataset"], "data_fingerprint": v["fingerprint"], "budget": c.budget,
        "set": {k: v["overrides"][k] for k in sorted(v["overrides"])}, "losses": v["specs"], "seeds": v["seeds"],
        "target_effect": c.target_effect, "feature_weights": c.feature_weights,
        "tune": None if space is None else {"space": [d.text() for d in space.dims], "trials": space.trials,
                                            "sampler": space.sampler, "seed": space.seed,
                                            "protocol": space.protocol.fields()},
    }
    epochs = int(v["params"]["epochs"])
    hours = cpu_hours(c.task, c.budget, trials * epochs + search_epochs(space, len(v["specs"]), epochs))
    return PlannedComparison(c, plan, canonical, trials, n_search, hours)


# ---------------------------------------------------------------------------- a hypothesis
def metric_known(task_cls: Any, metric: str) -> bool:
    """Whether ``metric`` is one the task reports: declared, or of a data-dependent prefix
    (seg's ``iou_<class>``)."""
    spec = task_cls.spec
    return metric in spec.metrics or any(metric.startswith(p) and len(metric) > len(p) for p in spec.extra_metrics)


def plan_hypothesis(h: Hypothesis, study: Study, comparison: PlannedComparison) -> PlannedHypothesis:
    """Validate ``h`` against its (planned) comparison: both losses in it, the metric
    one its task reports."""
    from cvloss.run.compare import canonical_specs
    from cvloss.tasks import get_task_class

    task = comparison.base.task
    task_cls = get_task_class(task)
    specs = {}
    for key in ("a", "b"):
        at = where(study.path, "hypothesis", h.index, h.name, key)
        (spec,) = _checked(at, lambda: canonical_specs([getattr(h, key)], task))
        if spec not in comparison.specs:
            raise UsageError(f"{at}: {getattr(h, key)!r} is not a loss of comparison {comparison.name!r} "
                             f"({', '.join(comparison.specs)})")
        specs[key] = spec
    if specs["a"] == specs["b"]:
        raise UsageError(f"{where(study.path, 'hypothesis', h.index, h.name, 'b')}: the same loss as a "
                         f"({specs['a']!r})")
    if not metric_known(task_cls, h.metric):
        raise UsageError(f"{where(study.path, 'hypothesis', h.index, h.name, 'metric')}: task {task} has no metric "
                         f"{h.metric!r}; its metrics: {', '.join(task_cls.spec.metrics)}"
                         + "".join(f", {p}<name>" for p in task_cls.spec.extra_metrics))
    canonical = {"comparison": h.comparison, "a": specs["a"], "b": specs["b"], "metric": h.metric,
                 "claim": h.claim, "margin": h.margin, "family": h.family}
    return PlannedHypothesis(h, specs["a"], specs["b"], canonical)


def check_study(study: Study, out: str | Path | None = None, data_dir: str | None = None) -> Plan:
    """The plan of ``study`` (module docstring); its trials under ``out`` (default: the
    study file's folder). Raises one :class:`UsageError` line at the first problem."""
    from cvloss.run.config import resolve_results_dir

    root = Path(resolve_results_dir(str(out))) if out is not None else study.folder
    comparisons = [plan_comparison(c, study, root, data_dir) for c in study.comparisons]
    by_name = {c.name: c for c in comparisons}
    hypotheses = [plan_hypothesis(h, study, by_name[h.comparison]) for h in study.hypotheses]
    return Plan(study, root, comparisons, hypotheses)


# ---------------------------------------------------------------------------- the plan, shown
def _hours(h: float | None) -> str:
    if h is None or not math.isfinite(h):
        return "n/a"
    return f"{h:.2g}" if h < 10 else f"{h:.0f}"


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per comparison (and a total): what ``study check`` prints."""
    rows = []
    for c in plan.comparisons:
        b = c.base
        rows.append({"comparison": c.name, "task": b.task, "dataset": b.dataset, "budget": b.group_dir.name,
                     "losses": len(c.specs), "seeds": len(c.seeds), "trials": c.trials,
                     "search trials": c.search_trials, "CPU hours": _hours(c.cpu_hours)})
    known = [c.cpu_hours for c in plan.comparisons if c.cpu_hours is not None]
    rows.append({"comparison": "total", "task": "", "dataset": "", "budget": "", "losses": "", "seeds": "",
                 "trials": sum(c.trials for c in plan.comparisons),
                 "search trials": sum(c.search_trials for c in plan.comparisons),
                 "CPU hours": "n/a" if not known else _hours(sum(known))
                 + ("" if len(known) == len(plan.comparisons) else " + n/a")})
    return rows


def family_counts(plan: Plan) -> dict[str, int]:
    """Hypotheses per family (the m each is Holm-corrected over, before any is found not measurable)."""
    out: dict[str, int] = {}
    for h in plan.hypotheses:
        out[h.entry.family] = out.get(h.entry.family, 0) + 1
    return out
