"""Per-loss hyper-parameter search with an equal budget, selected on val, reported on test.

The protocol (Musgrave, Belongie & Lim 2020, "A Metric Learning Reality Check", Sec. 3:
the same search budget for every loss, chosen on a validation split, the winner
retrained and tested on held-out data):

1. The search space (``--tune "lr=log(1e-4,1e-2)"``, repeatable) and the sampler give
   ``n`` candidate settings, drawn ONCE from ``sampler_seed`` -- every loss gets the same
   candidates (random and grid search), so no loss is luckier in its draws.
2. For each loss, candidate i is trained at tuning seed ``TUNE_SEED0 + i`` (disjoint from
   every reporting seed < ``TUNE_SEED0``) on ``train`` and scored on ``val`` (the task's
   primary metric at the final epoch); the test split is never read. Each tuning trial is
   an ordinary trial folder ``<budget>/tune--<h>/<loss-slug>/t<i>/`` (resumable, locked),
   and records its sampled values in trial.json, so a rerun resumes from the folder.
3. The best candidate per loss (ties: the earlier candidate; a failed trial ranks last)
   is retrained at every requested seed under ``<budget>+tuned-<h>/<loss-slug>/seed<k>/``
   and evaluated on test like any comparison, whose identity thereby includes the space,
   the trial count, the sampler and its seed (``h``).

Names a space may tune: any setting of the task's budget (``lr``, ``weight_decay``,
``d_lr``, ...: the optimiser's), a loss argument ``<term>.<arg>`` (``topo.mu``), a term's
weight ``<term>.weight`` (the 0.01 of ``0.01*perceptual``), and ``<term>#2.<arg>`` for the
second occurrence of a repeated term. A loss parameter applies to the specs that contain
the term and leaves the others as they are; it is an error only if no spec does.

Distributions: ``log(a,b)`` (log-uniform, 0 < a < b), ``uniform(a,b)`` (a < b),
``int(a,b)`` (integers a..b inclusive, a < b), ``choice(x,y,...)`` (two or more values).
Sampled floats are rounded to 4 significant digits (their text names the setting).
Grid search: each numeric range is cut into ``ceil(n^(1/d))`` points (log-spaced for
``log``), and ``n`` points of that grid are taken in a seeded order. ``tpe`` (Optuna's
TPE sampler, the optional ``cvloss[tune]`` extra) proposes each loss's candidate i from
that loss's scores of candidates 0..i-1 (seeded; trials run one after another, so a rerun
proposes the same ones; with parallel workers TPE would not be bit-reproducible).

A term's weight is never negative (the spec language has no negative weights: a negative
one would reward that term's error), so a ``<term>.weight`` range must stay >= 0.

Everything is checked before the first folder is created (:func:`check_space`): the names,
the weights, and every candidate the search will train (random and grid: all of them;
TPE: each range's ends and an inner point, every choice) applied to every spec -- its loss
spec must build and its settings pass the task's schema -- so a bad space is one line and
writes nothing. At most :data:`MAX_TRIALS` candidates per loss and, for grid search,
:data:`MAX_GRID_POINTS` grid points.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from cvloss.errors import UsageError
from cvloss.io import read_json, write_json
from cvloss.losses.registry import get_loss_info
from cvloss.losses.spec import build_loss, format_term, parse_spec
from cvloss.run.budgets import resolve_overrides
from cvloss.run.config import TrialConfig
from cvloss.settings import coerce
from cvloss.tasks import get_task_class

#: Tuning seeds are TUNE_SEED0 + i; reporting seeds must stay below it.
TUNE_SEED0 = 10_000
SAMPLERS = ("random", "grid", "tpe")
_DIST = re.compile(r"^\s*([A-Za-z_][\w#.]*)\s*=\s*(log|uniform|int|choice)\s*\((.*)\)\s*$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)(?:#(\d+))?\.([A-Za-z_]\w*)$")
EDGE = 0.1  # a winner in the outer 10% of its range is flagged
CANDIDATE = "candidate.json"  # a tuning trial's sampled values, in its folder
#: At most this many candidates per loss (``--tune-trials``). Each candidate is a training
#: run: 10,000 of them are weeks of GPU time at the full budget and days at smoke on two
#: CPU cores, so a larger count is a typo -- and the candidate list itself would fill the
#: memory (10**9 trials ended in a MemoryError after minutes).
MAX_TRIALS = 10_000
#: At most this many points in a grid search's whole grid (the product over dimensions of
#: each one's points), which is built, shuffled and cut to ``trials``: its size, not the
#: trial count, is what costs memory (100,000 points: tens of MB, on any machine). With
#: ceil(n^(1/d)) >= 2 points per dimension, 17 dimensions already exceed it.
MAX_GRID_POINTS = 100_000


@dataclass(frozen=True)
class Dimension:
    """One tuned name and its distribution: ``kind`` in log/uniform/int/choice, ``args``
    the bounds (low, high) or the choices."""

    name: str
    kind: str
    args: tuple

    def text(self) -> str:
        return f"{self.name}={self.kind}({','.join(map(str, self.args))})"

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.args)
        lo, hi = self.args
        if self.kind == "int":
            return rng.randint(int(lo), int(hi))
        if self.kind == "log":
            return _round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return _round(rng.uniform(lo, hi))

    def grid(self, k: int) -> list[Any]:
        if self.kind == "choice":
            return list(self.args)
        lo, hi = self.args
        if self.kind == "int":
            return sorted({int(round(lo + (hi - lo) * j / max(k - 1, 1))) for j in range(k)})
        if self.kind == "log":
            return [_round(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * j / max(k - 1, 1))) for j in range(k)]
        return [_round(lo + (hi - lo) * j / max(k - 1, 1)) for j in range(k)]

    def position(self, value: Any) -> float | None:
        """Where ``value`` lies in the range, 0..1 (log space for ``log``); None for choice."""
        if self.kind == "choice":
            return None
        lo, hi = (math.log(a) for a in self.args) if self.kind == "log" else self.args
        v = math.log(value) if self.kind == "log" else value
        return (v - lo) / (hi - lo)


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--tune {what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"--tune {what}: {text!r} is not a finite number")
    return v


def parse_dimension(text: str) -> Dimension:
    """``lr=log(1e-4,1e-2)`` -> :class:`Dimension`; a malformed item or an empty range is
    one :class:`UsageError` line."""
    m = _DIST.match(text)
    if not m:
        raise UsageError(f"--tune {text!r}: expected NAME=log(a,b) | uniform(a,b) | int(a,b) | choice(x,y,...), "
                         f"e.g. lr=log(1e-4,1e-2)")
    name, kind, inner = m.group(1), m.group(2), [a.strip() for a in m.group(3).split(",")]
    if kind == "choice":
        if len(inner) < 2 or not all(inner) or len(set(inner)) != len(inner):
            raise UsageError(f"--tune {text!r}: choice needs two or more distinct values")
        return Dimension(name, kind, tuple(_choice_value(v) for v in inner))
    if len(inner) != 2:
        raise UsageError(f"--tune {text!r}: {kind} takes exactly two bounds (low, high)")
    lo, hi = (_number(v, text) for v in inner)
    if not lo < hi:
        raise UsageError(f"--tune {text!r}: empty range (low must be below high)")
    if kind == "log" and lo <= 0:
        raise UsageError(f"--tune {text!r}: log needs positive bounds")
    if kind == "int" and (lo != int(lo) or hi != int(hi)):
        raise UsageError(f"--tune {text!r}: int needs integer bounds")
    return Dimension(name, kind, (int(lo), int(hi)) if kind == "int" else (lo, hi))


def _choice_value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class Space:
    """The dimensions of a search, the trial count, the sampler and its seed."""

    dims: tuple[Dimension, ...]
    trials: int
    sampler: str = "random"
    seed: int = 0

    def key(self) -> str:
        """8 hex of the space, trial count, sampler and seed: the folders' ``<h>``."""
        text = json.dumps({"space": [d.text() for d in self.dims], "trials": self.trials, "sampler": self.sampler,
                           "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def parse_space(items: list[str], trials: int, sampler: str = "random", seed: int = 0) -> Space:
    """The search of ``--tune`` items: ``trials`` (1..:data:`MAX_TRIALS`) candidates per
    loss from ``sampler``; a grid search's grid holds at least ``trials`` and at most
    :data:`MAX_GRID_POINTS` points. One :class:`UsageError` line otherwise."""
    if trials < 1:
        raise UsageError(f"--tune-trials must be >= 1; got {trials}")
    if trials > MAX_TRIALS:
        raise UsageError(f"--tune-trials {trials}: at most {MAX_TRIALS} candidates per loss (each one is a training "
                         f"run)")
    if sampler not in SAMPLERS:
        raise UsageError(f"--tune-sampler {sampler!r}: valid samplers: {', '.join(SAMPLERS)}")
    dims = tuple(parse_dimension(t) for t in items)
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise UsageError(f"--tune names {', '.join(sorted({n for n in names if names.count(n) > 1}))} twice")
    space = Space(dims, int(trials), sampler, int(seed))
    if sampler == "grid":
        size = grid_size(space)
        if size > MAX_GRID_POINTS:
            sizes = "x".join(str(len(d.grid(_grid_k(space)))) for d in dims)
            raise UsageError(f"--tune-sampler grid: the grid of this space has {size} points ({sizes}), more than "
                             f"{MAX_GRID_POINTS}; tune fewer dimensions or choices, or use --tune-sampler random")
        if size < trials:
            raise UsageError(f"--tune-sampler grid: the grid of this space has only {size} points, fewer "
                             f"than --tune-trials {trials}; ask for fewer trials or use --tune-sampler random")
    return space


# ---------------------------------------------------------------- applying a candidate
def _loss_param(name: str) -> tuple[str, int, str] | None:
    """``topo.mu`` -> ("topo", 1, "mu"); ``perceptual#2.weight`` -> ("perceptual", 2, "weight")."""
    m = _PARAM.match(name)
    return (m.group(1), int(m.group(2) or 1), m.group(3)) if m else None


def check_space(space: Space, task: str, specs: list[str], base: TrialConfig | None = None) -> None:
    """Refuse a space (one :class:`UsageError` line) before anything is created or trained:
    every name is a setting of the task (and every value it can take passes the setting's
    schema) or an argument or weight of a term that some spec contains; a weight range
    stays >= 0; and every candidate the search will train, applied to every spec, builds
    (its loss spec parses and each argument fits its loss) and -- given ``base``, the
    trials' budget and overrides -- yields settings the task accepts, for the tuning
    trials and the retrained winners alike."""
    schema = get_task_class(task).schema()
    for dim in space.dims:
        param = _loss_param(dim.name)
        if param is None:
            _check_setting_dim(dim, task, schema)
            continue
        term, nth, arg = param
        if not any(sum(t.name == term for t in parse_spec(s)) >= nth for s in specs):
            which = f"{term}#{nth}" if nth > 1 else term
            raise UsageError(f"--tune {dim.name!r}: no loss of --losses has a term {which!r}")
        if arg == "weight":
            _check_weight_dim(dim)
        elif get_loss_info(term).param(arg) is None:
            valid = ", ".join(p.name for p in get_loss_info(term).params) or "none"
            raise UsageError(f"--tune {dim.name!r}: loss {term!r} has no argument {arg!r} (valid: {valid}, or weight)")
    _check_candidates(space, task, specs, base)


def _probe_values(dim: Dimension) -> list[Any]:
    """Values that stand for what ``dim`` can yield: every choice; a range's ends and an
    inner point off the middle (a whole-number-only argument refuses it; the middle of
    ``uniform(1,3)`` would pass)."""
    if dim.kind == "choice":
        return list(dim.args)
    lo, hi = dim.args
    if dim.kind == "int":
        return [int(lo), int(hi), int(lo + (hi - lo) * 0.382)]
    if dim.kind == "log":
        return [lo, hi, _round(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * 0.382))]
    return [lo, hi, _round(lo + (hi - lo) * 0.382)]


def _check_setting_dim(dim: Dimension, task: str, schema: dict) -> None:
    """A tuned setting exists and every value ``dim`` can yield passes its schema: a
    whole-number setting takes ``int(a,b)`` or ``choice``, never a float range."""
    if dim.name not in schema:
        raise UsageError(f"--tune {dim.name!r}: not a setting of task {task} (valid: {', '.join(schema)}) nor "
                         f"a loss parameter <term>.<arg>")
    spec = schema[dim.name]
    if spec.kind == "int" and dim.kind in ("log", "uniform"):
        raise UsageError(f"--tune {dim.text()!r}: {dim.name} takes whole numbers: use int(a,b) or choice(...)")
    for value in _probe_values(dim):
        try:
            coerce(task, dim.name, value, spec)
        except UsageError as exc:
            raise UsageError(f"--tune {dim.text()!r}: {str(exc).removeprefix('--set ')}") from None


def _check_weight_dim(dim: Dimension) -> None:
    """A term's weight is a number >= 0: the spec language writes no negative weight, and
    one would reward the term's error rather than penalise it."""
    values = _probe_values(dim)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UsageError(f"--tune {dim.text()!r}: a loss weight is a number")
    if min(values) < 0:
        raise UsageError(f"--tune {dim.text()!r}: a loss weight must be >= 0 (a negative weight would reward that "
                         f"term's error); give a range from 0 up")


def _check_candidates(space: Space, task: str, specs: list[str], base: TrialConfig | None) -> None:
    """Apply every candidate of the search to every spec and build what a trial would:
    the loss spec (validated, random features: nothing is read or downloaded) and the
    settings (with ``base``: the whole params of a tuning trial and of a winner). Each
    distinct spec text and setting is checked once."""
    if space.sampler == "tpe":  # proposed while it runs: probe each dimension's values, the others at their first
        first = {d.name: _probe_values(d)[0] for d in space.dims}
        probes = [{**first, d.name: v} for d in space.dims for v in _probe_values(d)]
    else:
        probes = candidates(space)
    built: set[str] = set()
    settled: set[str] = set()
    for i, values in enumerate(probes):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        for spec in specs:
            try:
                loss, settings = apply_candidate(spec, values)
                if loss != spec and loss not in built:
                    build_loss(loss, task=task, feature_weights="random", require_scalar=True)
                    built.add(loss)
                key = json.dumps(settings, sort_keys=True, default=str)
                if key not in settled:
                    if base is None:
                        resolve_overrides(task, settings)
                    else:
                        _ = tuning_config(base, spec, values, i, space).params
                        _ = winner_config(base, spec, values, 0, space).params
                    settled.add(key)
            except UsageError as exc:
                raise UsageError(f"--tune: candidate {shown} for loss {spec!r} is refused: "
                                 f"{str(exc).removeprefix('--set ')}") from None


def apply_candidate(spec: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(spec with the candidate's loss parameters, the candidate's settings)``: loss
    parameters of terms the spec lacks are left out (they apply to other specs)."""
    terms = parse_spec(spec)
    settings = {}
    for name, value in values.items():
        param = _loss_param(name)
        if param is None:
            settings[name] = value
            continue
        term, nth, arg = param
        hits = [t for t in terms if t.name == term]
        if len(hits) < nth:
            continue
        if arg == "weight":
            hits[nth - 1].weight = float(value)
        else:
            hits[nth - 1].args[arg] = value
    if not any(_loss_param(n) for n in values):
        return spec, settings
    return "+".join(format_term(t.name, t.args, t.weight) for t in terms), settings


# ---------------------------------------------------------------- candidates
def _grid_k(space: Space) -> int:
    """Points per range of a grid search: ceil(trials^(1/d)), at least 2."""
    return max(2, math.ceil(space.trials ** (1 / max(len(space.dims), 1))))


def grid_size(space: Space) -> int:
    """How many points the whole grid of a grid search holds (a product: computed, not built)."""
    k = _grid_k(space)
    return math.prod(len(d.grid(k)) for d in space.dims)


def candidates(space: Space) -> list[dict[str, Any]]:
    """The ``trials`` candidate settings of a random or grid search, the same for every
    loss (a pure function of the space). TPE proposes its candidates while it runs."""
    rng = random.Random(space.seed)
    if space.sampler == "grid":
        k = _grid_k(space)
        grid = [dict(zip([d.name for d in space.dims], point))
                for point in itertools.product(*(d.grid(k) for d in space.dims))]
        rng.shuffle(grid)
        return grid[: space.trials]
    return [{d.name: d.sample(rng) for d in space.dims} for _ in range(space.trials)]


def tuning_config(base: TrialConfig, spec: str, values: dict[str, Any], i: int, space: Space) -> TrialConfig:
    """Tuning trial ``i`` of loss ``spec`` at candidate ``values``: seed TUNE_SEED0 + i,
    val only, in ``<budget>/tune--<h>/<loss-slug>/t<i>/``."""
    loss, settings = apply_candidate(spec, values)
    task_tune = dict(getattr(get_task_class(base.task), "tune_overrides", {}))
    return replace(base, loss=loss, name=spec, seed=TUNE_SEED0 + i, tuned={**task_tune, **settings},
                   place=f"tune--{space.key()}/t{i}", test=False)


def winner_config(base: TrialConfig, spec: str, values: dict[str, Any], seed: int, space: Space) -> TrialConfig:
    """The retrained winner of ``spec`` at reporting seed ``seed``."""
    loss, settings = apply_candidate(spec, values)
    return replace(base, loss=loss, name=spec, seed=seed, tuned=settings, place=f"+tuned-{space.key()}")


def select(scores: list[float | None], higher: bool) -> int:
    """Index of the best val score (a failed trial, None or NaN, ranks last; ties go to
    the earlier candidate)."""
    def rank(i: int) -> tuple[int, float, int]:
        s = scores[i]
        if s is None or not math.isfinite(s):
            return (1, 0.0, i)
        return (0, -s if higher else s, i)
    return min(range(len(scores)), key=rank)


def edge_flags(space: Space, values: dict[str, Any]) -> list[str]:
    """``lr at the upper edge: widen the range`` for each winning value in the outer 10%
    of its range (in log space for ``log``)."""
    flags = []
    for d in space.dims:
        pos = d.position(values[d.name]) if d.name in values else None
        if pos is None:
            continue
        if pos >= 1 - EDGE:
            flags.append(f"{d.name} at the upper edge: widen the range")
        elif pos <= EDGE:
            flags.append(f"{d.name} at the lower edge: widen the range")
    return flags


def val_score(summary: dict[str, Any] | None, metric: str) -> float | None:
    """A tuning trial's val score: the primary metric at the final epoch, for a trial that
    finished without failing (a diverged, collapsed or degenerate candidate ranks last)."""
    if not summary or summary.get("status") != "done":
        return None
    v = (summary.get("val_metrics") or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def record_candidate(cfg: TrialConfig, values: dict[str, Any]) -> None:
    """Write the candidate's sampled values into its tuning folder (``candidate.json``)
    before it trains; a folder that already records other values is refused (one line)."""
    path = cfg.trial_dir / CANDIDATE
    if path.exists():
        if read_json(path) != json.loads(json.dumps(values)):
            raise UsageError(f"{path} records another candidate than this search proposes; delete {cfg.trial_dir.parent} "
                             f"to restart the search of this loss")
        return
    cfg.trial_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, values)
