"""The Task contract the trainer drives, and the routing of a loss's terms to a task.

A task owns its model, data, batches, one training step, evaluation and sample images.
The trainer owns everything every task would otherwise repeat: the loop, seeding,
checkpoints and resume, eval mode and ``no_grad`` around evaluation and samples, autocast
and channels_last (budget flags ``amp`` / ``channels_last``, CUDA only), the learning-rate
schedule (:meth:`Task.lr_factor`, a pure function of the step), CPU threads (budget
setting ``cpu_threads``), divergence checks on every scalar a step returns, and
results files.

A loss is bound once per trial: the trainer asks the task for its :class:`Plan`
(:meth:`Task.plan`): which terms feed which input slot (:func:`route`) and which
optimisers to build (:class:`Optim`). ``train_step`` then receives the plan, never the
raw loss, so no task re-routes a loss at every step.
"""
from __future__ import annotations

import contextlib
import os
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from cvloss.data.folders import dataset_label
from cvloss.errors import UsageError
from cvloss.losses.base import AdversarialLoss, Loss
from cvloss.losses.spec import CombinedLoss
from cvloss.tasks.spec import TaskSpec

#: The evaluation splits every task loads: ``val`` for every choice (learning curves,
#: tuning, thresholds, collapse checks, sample grids) and ``test`` for the reported number,
#: read twice per trial: the untrained model's evaluation and the final one.
EVAL_SPLITS = ("val", "test")

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
              "sgd": torch.optim.SGD, "lbfgs": torch.optim.LBFGS}


class Slot:
    """The weighted terms of a loss that one input slot of a task takes; calling it
    returns Σ w·term(*args) in fp32 (autocast off: a loss is never computed in bf16).
    Several forward terms go through :class:`~cvloss.losses.spec.CombinedLoss`, so
    feature terms share one pass of their frozen network."""

    def __init__(self, terms: list[tuple[float, Loss]], spec: str) -> None:
        self.terms = terms
        self.spec = spec  # the loss's spec text, for refusal lines
        self._combined = CombinedLoss(terms, spec) if len(terms) > 1 else None

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __iter__(self):
        return iter(self.terms)

    def __call__(self, *args: Any) -> torch.Tensor:
        device = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
        with torch.autocast(device, enabled=False):
            if self._combined is not None:
                return self._combined(*args)
            w, term = self.terms[0]
            return w * term(*args)


def route(loss: Loss, slots: Mapping[str, tuple[str, ...]], task: str) -> dict[str, Slot]:
    """Map every weighted term of ``loss`` to the task's input slot that names it: first
    a slot listing the term's name (``identity``, ``tv``), else one listing its kind
    (``image``, ``adversarial``). A term no slot takes is refused with a UsageError."""
    spec = getattr(loss, "spec", loss.name)
    taken: dict[str, list[tuple[float, Loss]]] = {s: [] for s in slots}
    refused = []
    for w, term in loss.weighted_terms():
        slot = next((s for s, keys in slots.items() if term.name in keys), None)
        slot = slot or next((s for s, keys in slots.items() if term.kind in keys), None)
        if slot is None:
            refused.append(f"{term.name} (kind {term.kind})")
        else:
            taken[slot].append((w, term))
    if refused:
        accepted = "; ".join(f"{s}: {', '.join(keys)}" for s, keys in slots.items())
        raise UsageError(f"loss {spec!r}: task {task} cannot route term(s) {', '.join(refused)}; it takes {accepted}")
    return {s: Slot(terms, spec) for s, terms in taken.items()}


@dataclass(frozen=True)
class Optim:
    """One optimiser of a plan: which parameters (a function of the model) and the
    ``torch.optim`` class (a key of :data:`OPTIMIZERS`) with its arguments."""

    params: Callable[[nn.Module], Iterable[nn.Parameter]]
    name: str = "adam"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.name](self.params(model), **self.kwargs)


@dataclass
class Plan:
    """What one loss asks of a task, decided once per trial: the routed terms (slot name
    -> :class:`Slot`) and the optimisers the trainer builds."""

    slots: dict[str, Slot]
    optimizers: dict[str, Optim]

    def __getitem__(self, slot: str) -> Slot:
        return self.slots[slot]

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {k: o.build(model) for k, o in self.optimizers.items()}

    @property
    def adversarial(self) -> tuple[float, AdversarialLoss] | None:
        """The (weight, objective) of the adversarial slot, when it has a term."""
        slot = self.slots.get("adversarial")
        return slot.terms[0] if slot else None


class Task(ABC):
    """Base class of the training contract: a subclass sets :attr:`spec` (what the task
    is, as data: :class:`~cvloss.tasks.spec.TaskSpec`) and implements the abstract
    methods; the hooks have defaults that fit most tasks."""

    #: What the task is, as data; every task sets its own.
    spec: ClassVar[TaskSpec | None] = None

    def __init__(self, dataset: str, params: dict[str, Any], device: torch.device, data_dir: str | None = None,
                 feature_weights: str | None = None, fid_weights: str | None = None) -> None:
        if not isinstance(self.spec, TaskSpec):
            raise TypeError(f"{type(self).__name__} sets no spec (a cvloss.tasks.spec.TaskSpec)")
        self.dataset = dataset
        self.params = params
        self.device = device
        self.data_dir = data_dir
        # ``--feature-weights`` of the run: metrics that use a feature network (SR feature
        # distance, style Gram distances) use the same weights as the losses.
        self.feature_weights = feature_weights
        # ``--fid-weights``: the FID Inception file (else $CVLOSS_FID_WEIGHTS or the hub cache).
        self.fid_weights = fid_weights

    def _metric_names(self) -> list[str]:
        """This trial's metrics, what ``evaluate`` reports: the spec's (a task whose data
        supports fewer, or names more, overrides it). Read through :func:`metric_names`."""
        return list(self.spec.metrics)

    def plan(self, loss: Loss) -> Plan:
        """Bind ``loss`` to this task (once per trial): route its terms, choose optimisers
        (which refuse combinations the task cannot train)."""
        slots = route(loss, self.spec.slots, self.spec.name)
        return Plan(slots, self.optimizers(slots))

    @abstractmethod
    def optimizers(self, slots: dict[str, Slot]) -> dict[str, Optim]:
        """The optimisers the trainer builds for this plan; ``UsageError`` for a
        combination of terms the task cannot train (each slot's ``spec`` names the loss)."""

    def lr_factor(self, step: int) -> float | None:
        """Multiplier of every optimiser's base learning rate before (0-based) training
        step ``step``, or None for a constant rate. A pure function of the step."""
        return None

    @abstractmethod
    def load_data(self) -> None:
        """Load (decode once) the train and validation data into memory."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build the model; the trainer seeds torch right before, so init is per seed."""

    @abstractmethod
    def num_batches(self) -> int:
        """Training batches per epoch."""

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """Yield the epoch's batches in an order (and augmentation) drawn from ``generator``."""

    @abstractmethod
    def train_step(self, model: nn.Module, plan: Plan, optimizers: dict, batch: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns ``{"loss": scalar tensor, ...}`` (not reduced
        by ``.item()``, so the trainer decides when to synchronise). Every scalar goes to
        metrics.csv (``train_<key>``) and is checked for NaN/Inf."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        """Metrics on evaluation split ``split`` (``val`` or ``test``, see
        :data:`EVAL_SPLITS`); called in eval mode under ``no_grad``. The trainer asks for
        ``val`` after every epoch and for ``test`` exactly twice: on the untrained model
        and after the last epoch."""

    @abstractmethod
    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """Images for sample grids, uint8 (K, H, W, 3): ``input``, ``truth``, ``pred``,
        always the same K validation images so grids line up across losses (eval mode,
        ``no_grad``)."""

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Model-free reference rows for the comparison table, e.g. ``{"bicubic": {...}}``
        for super-resolution, on ``split`` (the table's: test); computed once per trial,
        shown as extra rows."""
        return {}

    def test_items(self, split: str = "test") -> dict[str, Any] | None:
        """Per-item metrics of the last ``evaluate(model, split)`` call, for a test split of
        few items (an effect on 10 seeds may be an effect on 2 photographs):
        ``{"ids": [item id, ...], "metrics": {metric: [one value per id, NaN/None when not
        measured]}}``, the same ids in the same order for every loss at a seed, so items pair
        across losses (:mod:`cvloss.run.item_analysis`). The trainer asks once, after the
        final test evaluation, and writes ``test_items.json``. Default: None (none recorded)."""
        return None

    def report_arrays(self, model: nn.Module) -> dict[str, np.ndarray]:
        """Arrays the report's task plots draw (embed: val pair scores and embeddings), asked
        of the untrained model and after the final test evaluation (eval mode, ``no_grad``)
        and written by the trainer to ``report_data.npz`` (the untrained ones' keys prefixed
        ``untrained.``), so a report never rebuilds the task. Default: none."""
        return {}

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        """A one-line reason when the trained model has collapsed (all embeddings alike, a
        GAN stuck on one mode); the trial is then reported as collapsed, not as a low score."""
        return None

    def degenerate_reason(self, model: nn.Module, metrics: dict[str, float], split: str,
                          untrained: dict[str, float] | None) -> str | None:
        """A one-line reason when the trained ``model`` is degenerate on ``split`` -- worse
        than the trivial answer (the majority class, bicubic, the untrained model, chance,
        its initial image) -- else None. ``metrics`` are the model's on ``split``,
        ``untrained`` the untrained model's on ``split`` (empty when not measured).

        The trainer asks once on ``val`` (the decision: status ``degenerate``, checked only
        when the trial neither diverged nor collapsed) and once on ``test`` (recorded as
        ``degenerate_on_test``, a note). This default applies the rule on numbers alone,
        :meth:`TaskSpec.degenerate_by_numbers <cvloss.tasks.spec.TaskSpec.degenerate_by_numbers>`,
        with the split's reference rows; a task whose rule also needs the model's outputs
        overrides it. Called in eval mode under no_grad."""
        return self.spec.degenerate_by_numbers(metrics, self.reference_metrics(split), untrained or {}, self.dataset)

    def state_dict(self) -> dict:
        """Task state beyond model/optimisers that a resume needs (a GAN image pool, the
        adversarial stepper's); none by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` gave."""

    def summary_extras(self) -> dict[str, Any]:
        """Keys the trainer adds to summary.json (none by default)."""
        return {}

    def describe_data(self) -> str:
        """One line naming the data, and the real dataset an embedded one stands in for."""
        return self.dataset


def metric_names(task: Task) -> list[str]:
    """The metrics ``task``'s ``evaluate`` reports in this trial (its data loaded): the
    spec's, less those the data cannot support, plus those the data names (seg's per-class
    IoU). What the trainer keeps of an evaluation and checks a kept file against."""
    return task._metric_names()


def named(task: Task, real: str | None) -> str:
    """``task``'s dataset by name, with the real one an embedded stand-in imitates, or for
    a dataset folder its description (path, split sizes, how the split was made)."""
    if os.path.isabs(task.dataset):
        from cvloss.data.folders import describe_folder  # cached: indexed once per run

        return f"{dataset_label(task.dataset)} ({describe_folder(task.dataset, task.spec.name)})"
    return f"{task.dataset} (embedded stand-in for {real})" if real else task.dataset


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(K, 3, H, W) float in [0, 1] -> (K, H, W, 3) uint8 (clamped, rounded)."""
    return (x.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): the trainer calls it right before
    :meth:`Task.build_model`, so every loss starts from the same weights at a seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def evaluating(model: nn.Module, *contexts: Any) -> Iterator[nn.Module]:
    """Eval mode and ``no_grad`` (and ``contexts``, e.g. autocast) around evaluation and
    samples; the model's mode is restored afterwards. The trainer wraps every
    ``evaluate``, ``sample_rows``, ``collapse_reason`` and ``reference_metrics`` in it."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), contextlib.ExitStack() as stack:
            for c in contexts:
                stack.enter_context(c)
            yield model
    finally:
        model.train(was)


def stored_degenerate(spec: TaskSpec, summary: dict[str, Any] | None) -> str | None:
    """Today's degenerate rule on a finished trial's stored *test* numbers (its metrics,
    reference rows and untrained model), as far as numbers decide it
    (:meth:`TaskSpec.degenerate_by_numbers <cvloss.tasks.spec.TaskSpec.degenerate_by_numbers>`);
    None for a trial that did not finish or that the numbers do not flag. What a report
    shows for a summary written before the rule (no ``degenerate`` field): a note, never a
    changed status -- the rule decides on val."""
    if not summary or summary.get("status") not in ("done", "degenerate"):
        return None
    return spec.degenerate_by_numbers(summary.get("metrics") or {}, summary.get("reference") or {},
                                      summary.get("untrained") or {}, str(summary.get("dataset") or ""))
