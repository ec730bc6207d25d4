"""What a task is, as data: its metrics, slots, budgets and rules (:class:`TaskSpec`).

A :class:`~cvloss.tasks.base.Task` trains and evaluates; its ``spec`` says everything a
run, a search or a report needs to know without building it: each metric's direction,
range and unit, the primary and secondary metric, which loss kinds each input slot
takes, the budgets and the schema of their settings, and the rules on stored numbers
(folds, parameter and seed checks, the degenerate rule). A spec is frozen; a task whose
rules depend on the data subclasses :class:`TaskSpec` and overrides the methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from cvloss.settings import COMMON, Setting


@dataclass(frozen=True)
class Metric:
    """One reported metric: higher or lower is better, the range ``[low, high]`` it
    cannot leave (None: unbounded; a confidence interval is clipped to it) and its unit
    as axis labels and table headers show it (``dB``, ``IoU, 0-1``; ``""``: none)."""

    higher_is_better: bool = True
    low: float | None = None
    high: float | None = None
    unit: str = ""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of a copy of ``mapping`` (nested mappings too: budgets)."""
    return MappingProxyType({k: _frozen(v) if isinstance(v, Mapping) else v for k, v in mapping.items()})


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """A task as data. ``metrics``: reported metrics in table column order;
    ``extra_metrics``: a name PREFIX -> :class:`Metric` for metrics named by the data
    (seg's ``iou_<class>``); ``slots``: input slot -> the loss kinds or names it takes;
    ``budgets``: ``smoke`` / ``quick`` / ``full`` -> every setting a run may override;
    ``settings``: the schema of the task's own settings (shared names come from
    :data:`cvloss.settings.COMMON`). Mappings are stored as read-only copies."""

    name: str
    metrics: Mapping[str, Metric]
    # the metric plots, verdicts and the search lead with
    primary: str
    slots: Mapping[str, tuple[str, ...]]
    budgets: Mapping[str, Mapping[str, Any]]
    # breaks an exact tie of the primary between search candidates: another view of the
    # same quality, never a cost
    secondary: str = ""
    extra_metrics: Mapping[str, Metric] = field(default_factory=dict)
    settings: Mapping[str, Setting] = field(default_factory=dict)
    # losses whose kind a slot takes but that make no sense on this task
    excluded_losses: tuple[str, ...] = ()
    # the degenerate rule in one line, listed under tables
    degenerate_rule: str = ""
    # what one seed of a comparison varies (named under every table): two seeds are two
    # distinct replicates of this
    replicate_unit: str = "seed: initial weights + batch order + augmentation"
    # metrics that measure the run, not its result (left out of the identical-replicate check)
    timing_metrics: tuple[str, ...] = ()
    # what one item of Task.test_items is, in words ("6 test images")
    item_unit: str = "test image"
    # also evaluate the untrained model on val (metrics.csv row ``epoch 0``, a learning
    # curve's start); every task scores its untrained model on test
    evaluate_at_init: bool = False
    # settings every tuning trial runs with: what makes a trial read val where the test
    # data is what it trains on (style's pairs)
    tune_overrides: Mapping[str, Any] = field(default_factory=dict)
    # a plugin task's default dataset; built-in tasks keep datasets.toml's [defaults]
    default_dataset: str | None = None

    def __post_init__(self) -> None:
        for name in ("metrics", "slots", "budgets", "extra_metrics", "settings", "tune_overrides"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "slots", MappingProxyType({k: tuple(v) for k, v in self.slots.items()}))
        for key in (self.primary, self.secondary):
            if key and key not in self.metrics:
                raise ValueError(f"task {self.name}: {key!r} is not one of its metrics {list(self.metrics)}")

    # ------------------------------------------------------------------ metrics
    def metric(self, name: str) -> Metric:
        """``name``'s declaration: a declared metric, else the first extra prefix it
        starts with, else ``Metric()`` (higher is better, unbounded, no unit)."""
        if name in self.metrics:
            return self.metrics[name]
        return next((m for prefix, m in self.extra_metrics.items() if name.startswith(prefix)), Metric())

    def direction(self, name: str) -> bool:
        """True when higher is better for ``name``."""
        return self.metric(name).higher_is_better

    def bounds(self, name: str, dataset: str | None = None) -> tuple[float | None, float | None]:
        """``(low, high)`` of ``name``; a spec whose bound depends on the data (gan's
        ``modes``: the mixture's mode count) narrows it for ``dataset``."""
        m = self.metric(name)
        return m.low, m.high

    def unit(self, name: str) -> str:
        """The unit or range of ``name`` (``dB``, ``mean IoU, 0-1``); ``""`` when none."""
        return self.metric(name).unit

    # ------------------------------------------------------------------ settings
    def schema(self) -> dict[str, Setting]:
        """Every setting a run may override (the budgets' keys, in first-seen order), with
        its type and range: the task's own declaration, else :data:`COMMON`'s."""
        keys = dict.fromkeys(k for params in self.budgets.values() for k in params)
        return {k: self.settings.get(k) or COMMON[k] for k in keys}

    def folds(self, dataset: str) -> int:
        """Folds of the dataset's reporting protocol (LFW View 2: 10): a trial then runs
        as that many fold sub-trials (:mod:`cvloss.run.folds`); 0: none."""
        return 0

    def check_params(self, params: dict[str, Any]) -> None:
        """Refuse (``UsageError``) settings that contradict each other; each value alone
        already passed its schema. Called before anything is built or written."""

    def check_seeds(self, params: dict[str, Any], seeds: list[int], dataset: str,
                    data_dir: str | None = None) -> None:
        """Refuse (``UsageError``, one line) seeds that cannot all be distinct replicates
        (style: more seeds than distinct pairs); most tasks accept any seeds."""

    def degenerate_by_numbers(self, metrics: dict[str, Any], reference: dict[str, dict[str, Any]],
                              untrained: dict[str, Any], dataset: str) -> str | None:
        """The part of the degenerate rule that stored numbers decide: a trial's metrics on
        one split, that split's reference rows and the untrained model's metrics there.
        Pure, so a report applies it to old summaries. None: not degenerate, or the
        numbers lack what the rule needs."""
        return None

    # ------------------------------------------------------------------ losses
    def accepts(self, loss_name: str, loss_kind: str) -> bool:
        """Whether a registered loss serves this task: some slot takes its name or its
        kind, and the task does not exclude it (sr excludes ``style``)."""
        if loss_name in self.excluded_losses:
            return False
        return any(loss_name in keys or loss_kind in keys for keys in self.slots.values())
