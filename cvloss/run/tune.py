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
from cvloss.losses.spec import format_term, parse_spec
from cvloss.run.config import TrialConfig
from cvloss.tasks import get_task_class

#: Tuning seeds are TUNE_SEED0 + i; reporting seeds must stay below it.
TUNE_SEED0 = 10_000
SAMPLERS = ("random", "grid", "tpe")
_DIST = re.compile(r"^\s*([A-Za-z_][\w#.]*)\s*=\s*(log|uniform|int|choice)\s*\((.*)\)\s*$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)(?:#(\d+))?\.([A-Za-z_]\w*)$")
EDGE = 0.1  # a winner in the outer 10% of its range is flagged
CANDIDATE = "candidate.json"  # a tuning trial's sampled values, in its folder


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
    if trials < 1:
        raise UsageError(f"--tune-trials must be >= 1; got {trials}")
    if sampler not in SAMPLERS:
        raise UsageError(f"--tune-sampler {sampler!r}: valid samplers: {', '.join(SAMPLERS)}")
    dims = tuple(parse_dimension(t) for t in items)
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise UsageError(f"--tune names {', '.join(sorted({n for n in names if names.count(n) > 1}))} twice")
    space = Space(dims, int(trials), sampler, int(seed))
    if sampler == "grid" and len(candidates(space)) < trials:
        raise UsageError(f"--tune-sampler grid: the grid of this space has only {len(candidates(space))} points, fewer "
                         f"than --tune-trials {trials}; ask for fewer trials or use --tune-sampler random")
    return space


# ---------------------------------------------------------------- applying a candidate
def _loss_param(name: str) -> tuple[str, int, str] | None:
    """``topo.mu`` -> ("topo", 1, "mu"); ``perceptual#2.weight`` -> ("perceptual", 2, "weight")."""
    m = _PARAM.match(name)
    return (m.group(1), int(m.group(2) or 1), m.group(3)) if m else None


def check_space(space: Space, task: str, specs: list[str]) -> None:
    """Every name is a budget setting of the task or a parameter of a term that some spec
    contains (one line otherwise), before anything is trained."""
    schema = get_task_class(task).schema()
    for dim in space.dims:
        param = _loss_param(dim.name)
        if param is None:
            if dim.name not in schema:
                raise UsageError(f"--tune {dim.name!r}: not a setting of task {task} (valid: {', '.join(schema)}) nor "
                                 f"a loss parameter <term>.<arg>")
            continue
        term, nth, _ = param
        if not any(sum(t.name == term for t in parse_spec(s)) >= nth for s in specs):
            which = f"{term}#{nth}" if nth > 1 else term
            raise UsageError(f"--tune {dim.name!r}: no loss of --losses has a term {which!r}")


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
def candidates(space: Space) -> list[dict[str, Any]]:
    """The ``trials`` candidate settings of a random or grid search, the same for every
    loss (a pure function of the space). TPE proposes its candidates while it runs."""
    rng = random.Random(space.seed)
    if space.sampler == "grid":
        k = max(2, math.ceil(space.trials ** (1 / max(len(space.dims), 1))))
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
    finished without failing (a diverged or collapsed candidate ranks last)."""
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
