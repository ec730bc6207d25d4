"""Per-loss hyper-parameter search with an equal budget, selected on val, reported on test.

The protocol of Musgrave, Belongie & Lim 2020 (Sec. 3), made to decide by signal: the
space (``--tune "lr=log(1e-4,1e-2)"``) and the sampler (:data:`SAMPLERS`: ``lhs`` default,
``random``, ``grid``, ``tpe``) give ``n`` candidates drawn once over the union of the
comparison's dimensions, each loss training their projection on its own (:func:`own_dims`);
every candidate trains at the same K tuning seeds ``TUNE_SEED0 + r*K + k`` (disjoint from
reporting seeds) and is scored on val by its intent-to-treat mean; the best per loss is
retrained at every seed under ``<budget>+tuned-<H>/`` and tested. Repeats and successive
halving (:class:`Halving`) are options. Search trials live in
``<budget>/tune--<h>/<loss-slug>/t<i>/seed<s>/``: ``<h>`` (:meth:`Space.key`) leaves out
K, R and halving, ``<H>`` (:meth:`Space.tuned_key`) adds them. :func:`check_space` checks
names, weights and every candidate before the first folder; limits :data:`MAX_TRIALS`,
:data:`MAX_TRIAL_RUNS`, :data:`MAX_GRID_POINTS`. The full protocol: docs/protocol.md.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError
from cvloss.io import read_json, write_json
from cvloss.losses.registry import get_loss_info
from cvloss.losses.spec import build_loss, format_term, parse_spec
from cvloss.run.budgets import resolve_overrides
from cvloss.run.config import SearchCandidate, TrialConfig, TunedWinner
from cvloss.settings import coerce
from cvloss.tasks import get_task_class

#: Tuning seeds are TUNE_SEED0 + r*K + k (legacy: TUNE_SEED0 + i); reporting seeds stay below it.
TUNE_SEED0 = 10_000
SAMPLERS = ("lhs", "random", "grid", "tpe")
#: The samplers of the first protocol: with K = R = 1 and no halving they keep its layout.
LEGACY_SAMPLERS = ("random", "grid", "tpe")
_DIST = re.compile(r"^\s*([A-Za-z_][\w#.]*)\s*=\s*(log|uniform|int|choice)\s*\((.*)\)\s*$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)(?:#(\d+))?\.([A-Za-z_]\w*)$")
EDGE = 0.1  # a winner in the outer 10% of its range is flagged
CANDIDATE = "candidate.json"  # a search candidate's values, in its t<i>/ folder
#: At most this many candidates per loss (``--tune-trials``). Each candidate is a training
#: run: 10,000 of them are weeks of GPU time at the full budget and days at smoke on two
#: CPU cores, so a larger count is a typo -- and the candidate list itself would fill the
#: memory (10**9 trials ended in a MemoryError after minutes).
MAX_TRIALS = 10_000
#: At most this many tuning seeds per candidate (``--tune-seeds``) and repeats of the
#: search (``--tune-repeats``), and this many tuning trials per loss in all.
MAX_SEEDS = 100
MAX_REPEATS = 100
MAX_TRIAL_RUNS = 100_000
#: At most this many points in a grid search's whole grid (the product over dimensions of
#: each one's points), which is built, shuffled and cut to ``trials``: its size, not the
#: trial count, is what costs memory (100,000 points: tens of MB, on any machine). With
#: ceil(n^(1/d)) >= 2 points per dimension, 17 dimensions already exceed it.
MAX_GRID_POINTS = 100_000


def _whole(value: Any, what: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], else one :class:`UsageError` line naming ``what``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        span = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise UsageError(f"{what} must be {span}; got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Halving:
    """Successive halving (Jamieson & Talwalkar 2016; the rungs of ASHA, Li et al. 2020):
    rung epochs ``E / eta^j`` (rounded up, at least ``min_epochs``, the last one ``E``, the
    budget's epochs); after each rung the best ``1/eta`` of the candidates continue."""

    eta: int = 3
    min_epochs: int = 1

    def __post_init__(self) -> None:
        _whole(self.eta, "--tune-halving (eta, the 1/eta that continue)", 2, 100)
        _whole(self.min_epochs, "--tune-min-epochs (the first rung's epochs)", 1)

    def rungs(self, epochs: int) -> list[int]:
        """Epochs of each rung, increasing, the last ``epochs``: 9 epochs, eta 3 -> [1, 3, 9]."""
        out, e = [int(epochs)], int(epochs)
        while True:
            e = math.ceil(e / self.eta)
            if e < self.min_epochs or e >= out[0]:
                return out
            out.insert(0, e)

    def survivors(self, n: int, rung: int) -> int:
        """Candidates trained at rung ``rung`` (0 first) of a search of ``n``: n // eta^rung, >= 1."""
        return max(1, n // self.eta ** rung)

    def fields(self) -> dict[str, int]:
        return {"eta": self.eta, "min_epochs": self.min_epochs}


@dataclass(frozen=True)
class TuneProtocol:
    """How each candidate is scored: at ``seeds`` tuning seeds (K), the whole search
    ``repeats`` times (R) with fresh seeds, optionally as successive halving. Invalid
    values are one :class:`UsageError` line when it is built."""

    seeds: int = 3
    repeats: int = 1
    halving: Halving | None = None

    def __post_init__(self) -> None:
        _whole(self.seeds, "--tune-seeds", 1, MAX_SEEDS)
        _whole(self.repeats, "--tune-repeats", 1, MAX_REPEATS)
        if self.halving is not None and not isinstance(self.halving, Halving):
            raise UsageError(f"--tune-halving: expected a Halving(eta, min_epochs); got {self.halving!r}")

    def fields(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "repeats": self.repeats,
                "halving": self.halving.fields() if self.halving else None}


LEGACY_PROTOCOL = TuneProtocol(seeds=1, repeats=1, halving=None)


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

    def from_unit(self, u: float) -> Any:
        """The value at ``u`` in [0, 1) of the transformed range: linear for ``uniform``, in
        log space for ``log``; ``int`` and ``choice`` cut [0, 1) into equal cells, one per
        value (the inverse of :meth:`unit`)."""
        if self.kind == "choice":
            return self.args[min(int(u * len(self.args)), len(self.args) - 1)]
        lo, hi = self.args
        if self.kind == "int":
            return int(lo) + min(int(u * (hi - lo + 1)), int(hi - lo))
        if self.kind == "log":
            return _round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return _round(lo + u * (hi - lo))

    def unit(self, value: Any) -> float:
        """Where ``value`` lies in the unit interval of the transformed range: a number's
        :meth:`position`; an integer's or a choice's cell midpoint (what the centre
        tie-break measures)."""
        if self.kind == "choice":
            return (self.args.index(value) + 0.5) / len(self.args) if value in self.args else 0.5
        if self.kind == "int":
            lo, hi = self.args
            return (value - lo + 0.5) / (hi - lo + 1)
        return self.position(value)

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
    """The dimensions of a search, the trial count, the sampler and its seed, and how
    each candidate is scored (:class:`TuneProtocol`)."""

    dims: tuple[Dimension, ...]
    trials: int
    sampler: str = "lhs"
    seed: int = 0
    protocol: TuneProtocol = TuneProtocol()

    def key(self) -> str:
        """8 hex of the space, trial count, sampler and seed: the search folder's ``<h>``
        (``tune--<h>``). Not K, R or halving: raising them reuses the finished trials."""
        text = json.dumps({"space": [d.text() for d in self.dims], "trials": self.trials, "sampler": self.sampler,
                           "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def legacy(self) -> bool:
        """The first protocol's layout: a legacy sampler, one seed, one repeat, no halving."""
        return self.sampler in LEGACY_SAMPLERS and self.protocol == LEGACY_PROTOCOL

    def tuned_key(self) -> str:
        """8 hex naming the winners' folder ``<budget>+tuned-<H>``: :meth:`key` plus K, R
        and the halving settings (two protocols choose differently); the legacy layout's
        is :meth:`key` itself, the name its committed folders have."""
        if self.legacy():
            return self.key()
        text = json.dumps({"search": self.key(), **self.protocol.fields()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def winners(self) -> TunedWinner:
        """Where this search's retrained winners lie: ``<budget>+tuned-<H>`` (:meth:`tuned_key`)."""
        return TunedWinner(self.tuned_key())

    def seeds(self, repeat: int | None = None) -> list[int]:
        """Tuning seeds of repeat ``repeat`` (all R*K of them with None):
        ``TUNE_SEED0 + r*K + k``. The legacy layout has none shared (candidate i: TUNE_SEED0 + i)."""
        k = self.protocol.seeds
        reps = range(self.protocol.repeats) if repeat is None else [repeat]
        return [TUNE_SEED0 + r * k + j for r in reps for j in range(k)]

    def seeds_text(self) -> str:
        """The tuning seeds in words, for the record and the tables."""
        if self.legacy():
            return f"{TUNE_SEED0}..{TUNE_SEED0 + self.trials - 1} (candidate i at {TUNE_SEED0} + i)"
        last = TUNE_SEED0 + self.protocol.seeds * self.protocol.repeats - 1
        return f"{TUNE_SEED0}..{last} (every candidate at each)"


def parse_space(items: list[str], trials: int, sampler: str = "lhs", seed: int = 0,
                protocol: TuneProtocol | None = None) -> Space:
    """The search of ``--tune`` items: ``trials`` (1..:data:`MAX_TRIALS`) candidates per
    loss from ``sampler``, scored by ``protocol`` (default :class:`TuneProtocol`: 3 seeds,
    one repeat, no halving); a grid search's grid holds at least ``trials`` and at most
    :data:`MAX_GRID_POINTS` points. One :class:`UsageError` line otherwise."""
    if trials < 1:
        raise UsageError(f"--tune-trials must be >= 1; got {trials}")
    if trials > MAX_TRIALS:
        raise UsageError(f"--tune-trials {trials}: at most {MAX_TRIALS} candidates per loss (each one is a training "
                         f"run)")
    if sampler not in SAMPLERS:
        raise UsageError(f"--tune-sampler {sampler!r}: valid samplers: {', '.join(SAMPLERS)}")
    protocol = TuneProtocol() if protocol is None else protocol
    check_protocol(int(trials), sampler, protocol)
    dims = tuple(parse_dimension(t) for t in items)
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise UsageError(f"--tune names {', '.join(sorted({n for n in names if names.count(n) > 1}))} twice")
    space = Space(dims, int(trials), sampler, int(seed), protocol)
    if sampler == "grid":
        size = grid_size(space)
        if size > MAX_GRID_POINTS:
            sizes = "x".join(str(len(d.grid(_grid_k(space)))) for d in dims)
            raise UsageError(f"--tune-sampler grid: the grid of this space has {size} points ({sizes}), more than "
                             f"{MAX_GRID_POINTS}; tune fewer dimensions or choices, or use --tune-sampler lhs")
        if size < trials:
            raise UsageError(f"--tune-sampler grid: the grid of this space has only {size} points, fewer "
                             f"than --tune-trials {trials}; ask for fewer trials or use --tune-sampler lhs")
    return space


def check_protocol(trials: int, sampler: str, protocol: TuneProtocol) -> None:
    """Refuse, in one line, what the sampler cannot do with the protocol (TPE proposes
    from the scores: no shared candidates across repeats, no rungs) and a search whose
    tuning trials per loss (candidates x seeds x repeats) exceed :data:`MAX_TRIAL_RUNS`."""
    if not isinstance(protocol, TuneProtocol):
        raise UsageError(f"the tuning protocol must be a TuneProtocol; got {protocol!r}")
    if sampler == "tpe" and protocol.halving is not None:
        raise UsageError("--tune-sampler tpe cannot run as successive halving (--tune-halving): TPE proposes each "
                         "candidate from finished scores; use --tune-sampler lhs, random or grid")
    if sampler == "tpe" and protocol.repeats > 1:
        raise UsageError("--tune-sampler tpe cannot repeat the search (--tune-repeats): its candidates depend on the "
                         "scores, so no two repeats would share them; use --tune-sampler lhs, random or grid")
    runs = trials * protocol.seeds * protocol.repeats
    if runs > MAX_TRIAL_RUNS:
        raise UsageError(f"--tune-trials {trials} x --tune-seeds {protocol.seeds} x --tune-repeats "
                         f"{protocol.repeats} = {runs} tuning trials per loss, more than {MAX_TRIAL_RUNS}")


# ---------------------------------------------------------------- applying a candidate
def _loss_param(name: str) -> tuple[str, int, str] | None:
    """``topo.mu`` -> ("topo", 1, "mu"); ``perceptual#2.weight`` -> ("perceptual", 2, "weight")."""
    m = _PARAM.match(name)
    return (m.group(1), int(m.group(2) or 1), m.group(3)) if m else None


def _applies(name: str, terms: list) -> bool:
    """Whether the tuned ``name`` changes a spec of parsed ``terms``: a setting always; a
    loss argument when the spec has that (nth) term; a term's weight only in a spec of two
    or more terms (a one-term loss's weight only rescales its gradient: the lr's job)."""
    param = _loss_param(name)
    if param is None:
        return True
    term, nth, arg = param
    if sum(t.name == term for t in terms) < nth:
        return False
    return arg != "weight" or len(terms) >= 2


def own_dims(space: Space, spec: str) -> tuple[Dimension, ...]:
    """The dimensions of ``space`` that change loss ``spec`` (:func:`_applies`)."""
    terms = parse_spec(spec)
    return tuple(d for d in space.dims if _applies(d.name, terms))


def project(space: Space, spec: str, values: dict[str, Any]) -> dict[str, Any]:
    """A candidate of the whole design restricted to the dimensions ``spec`` has: what that
    loss trains (its settings and the arguments and weights of its own terms)."""
    names = {d.name for d in own_dims(space, spec)}
    return {k: v for k, v in values.items() if k in names}


def check_space(space: Space, task: str, specs: list[str], base: TrialConfig | None = None) -> None:
    """Refuse a space (one :class:`UsageError` line) before anything is created or trained:
    every name is a setting of the task (and every value it can take passes the setting's
    schema) or an argument or weight of a term that some spec contains; a weight range
    stays >= 0; and every candidate the search will train, applied to every spec, builds
    (its loss spec parses and each argument fits its loss) and -- given ``base``, the
    trials' budget and overrides -- yields settings the task accepts, for the tuning
    trials and the retrained winners alike."""
    schema = get_task_class(task).spec.schema()
    for dim in space.dims:
        param = _loss_param(dim.name)
        if param is None:
            _check_setting_dim(dim, task, schema)
            continue
        term, nth, arg = param
        which = f"{term}#{nth}" if nth > 1 else term
        if not any(sum(t.name == term for t in parse_spec(s)) >= nth for s in specs):
            raise UsageError(f"--tune {dim.name!r}: no loss of --losses has a term {which!r}")
        if not any(_applies(dim.name, parse_spec(s)) for s in specs):
            raise UsageError(f"--tune {dim.name!r}: no loss of --losses has a term {which!r} beside another term "
                             f"(a one-term loss's weight only rescales its gradient: tune lr instead)")
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
                _, settings = apply_candidate(spec, values)  # a bad weight is refused here
                # a term weight >= 0 changes no loss's validity: build each spec once per
                # distinct set of arguments (a VGG-based loss takes a second to build)
                loss = apply_candidate(spec, {k: v for k, v in values.items() if not k.endswith(".weight")})[0]
                if loss != spec and loss not in built:
                    build_loss(loss, task=task, feature_weights="random", require_scalar=True)
                    built.add(loss)
                key = json.dumps(settings, sort_keys=True, default=str)
                if key not in settled:
                    if base is None:
                        resolve_overrides(task, settings)
                    else:
                        _ = tuning_config(base, spec, values, i, space, space.seeds()[0]).params
                        _ = winner_config(base, spec, values, 0, space).params
                    settled.add(key)
            except UsageError as exc:
                raise UsageError(f"--tune: candidate {shown} for loss {spec!r} is refused: "
                                 f"{str(exc).removeprefix('--set ')}") from None


def apply_candidate(spec: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(spec with the candidate's loss parameters, the candidate's settings)``: loss
    parameters of terms the spec lacks, and term weights of a one-term spec, are left out
    (:func:`_applies`)."""
    terms = parse_spec(spec)
    settings = {}
    for name, value in values.items():
        param = _loss_param(name)
        if param is None:
            settings[name] = value
            continue
        if not _applies(name, terms):
            continue
        term, nth, arg = param
        hits = [t for t in terms if t.name == term]
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


def lhs_design(n: int, d: int, seed: int) -> list[list[float]]:
    """``n`` points of a centred Latin hypercube in [0, 1)^d (``scipy.stats.qmc``,
    ``scramble=False``): each dimension cut into n equal cells, one point at the middle of
    each, the cells paired across dimensions by a seeded permutation. In 1-D the points
    are (i + 1/2)/n in a seeded order: the lowest and highest lie within 1/(2n) of the
    ends (the outer 15% once n >= 4)."""
    from scipy.stats import qmc

    if d == 0:
        return [[] for _ in range(n)]
    try:
        engine = qmc.LatinHypercube(d, scramble=False, rng=seed)
    except TypeError:  # scipy < 1.15 names it seed
        engine = qmc.LatinHypercube(d, scramble=False, seed=seed)
    return [[float(u) for u in row] for row in engine.random(n)]


def candidates(space: Space) -> list[dict[str, Any]]:
    """The ``trials`` candidate settings of an lhs, random or grid search over the whole
    space, the same for every loss (a pure function of the space; each loss trains its
    :func:`project`). TPE proposes its candidates while it runs."""
    if space.sampler == "lhs":
        design = lhs_design(space.trials, len(space.dims), space.seed)
        return [{d.name: d.from_unit(u) for d, u in zip(space.dims, row)} for row in design]
    rng = random.Random(space.seed)
    if space.sampler == "grid":
        k = _grid_k(space)
        grid = [dict(zip([d.name for d in space.dims], point))
                for point in itertools.product(*(d.grid(k) for d in space.dims))]
        rng.shuffle(grid)
        return grid[: space.trials]
    return [{d.name: d.sample(rng) for d in space.dims} for _ in range(space.trials)]


def centre_distance(space: Space, values: dict[str, Any]) -> float:
    """Euclidean distance of a candidate from the centre of the unit cube of the
    transformed space, over the dimensions it has (the last tie-break: a value nearer the
    middle of its range is the safer pick)."""
    dims = {d.name: d for d in space.dims}
    return math.sqrt(sum((dims[k].unit(v) - 0.5) ** 2 for k, v in values.items() if k in dims))


def candidate_dir(base: TrialConfig, spec: str, i: int, space: Space) -> Path:
    """``<budget>/tune--<h>/<loss-slug>/t<i>``: candidate i's folder (its ``candidate.json``,
    and its trials' ``seed<s>/`` -- the trial itself in the legacy layout)."""
    return replace(base, name=spec, place=SearchCandidate(space.key(), i)).trial_dir


def tuning_config(base: TrialConfig, spec: str, values: dict[str, Any], i: int, space: Space,
                  seed: int | None = None, stop_at_epoch: int | None = None) -> TrialConfig:
    """Tuning trial of loss ``spec`` at candidate ``i`` (``values``) and tuning seed
    ``seed``, val only, in ``<budget>/tune--<h>/<loss-slug>/t<i>/seed<s>/``; the legacy
    layout (:meth:`Space.legacy`): seed TUNE_SEED0 + i in ``t<i>/``. ``stop_at_epoch``: a
    rung of successive halving, trained under the full budget's schedule up to that epoch."""
    loss, settings = apply_candidate(spec, values)
    task_tune = dict(get_task_class(base.task).spec.tune_overrides)
    if space.legacy():
        seed, place = TUNE_SEED0 + i, SearchCandidate(space.key(), i)
    else:
        if seed is None or seed < TUNE_SEED0:
            raise ValueError(f"a tuning trial's seed is TUNE_SEED0 + r*K + k; got {seed}")
        place = SearchCandidate(space.key(), i, seed)
    return replace(base, loss=loss, name=spec, seed=seed, tuned={**task_tune, **settings}, place=place, test=False,
                   stop_at_epoch=stop_at_epoch)


def winner_config(base: TrialConfig, spec: str, values: dict[str, Any], seed: int, space: Space) -> TrialConfig:
    """The retrained winner of ``spec`` at reporting seed ``seed``, in ``<budget>+tuned-<H>``."""
    loss, settings = apply_candidate(spec, values)
    return replace(base, loss=loss, name=spec, seed=seed, tuned=settings, place=space.winners())


def select(scores: list[float | None], higher: bool, secondary: list[float | None] | None = None,
           secondary_higher: bool = True, centre: list[float] | None = None) -> int:
    """Index of the best candidate: the best score (a failed candidate, None or NaN, ranks
    last); exact ties broken by the ``secondary`` metric's score, then by the smaller
    ``centre`` distance, then the earlier candidate (:func:`ranking`)."""
    return ranking(scores, higher, secondary, secondary_higher, centre)[0]


def ranking(scores: list[float | None], higher: bool, secondary: list[float | None] | None = None,
            secondary_higher: bool = True, centre: list[float] | None = None) -> list[int]:
    """Candidate indices, best first (see :func:`select`); a missing secondary score ranks
    after a present one among exact ties."""
    def signed(v: float | None, up: bool) -> tuple[int, float]:
        if v is None or not math.isfinite(v):
            return (1, 0.0)
        return (0, -v if up else v)

    def key(i: int) -> tuple:
        return (signed(scores[i], higher), signed(secondary[i] if secondary else None, secondary_higher),
                centre[i] if centre else 0.0, i)
    return sorted(range(len(scores)), key=key)


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


def record_candidate(cand_dir: Path, values: dict[str, Any], names: set[str] | None = None) -> None:
    """Write the candidate's values into its folder ``t<i>/`` (``candidate.json``) before
    any of its trials trains; a folder that already records other values -- on ``names``,
    the dimensions the loss trains, when given: a one-seed search of the first protocol
    recorded every dimension -- is refused (one line)."""
    path = cand_dir / CANDIDATE
    if path.exists():
        recorded, wanted = read_json(path), json.loads(json.dumps(values))
        if names is not None and isinstance(recorded, dict):
            recorded = {k: v for k, v in recorded.items() if k in names}
            wanted = {k: v for k, v in wanted.items() if k in names}
        if recorded != wanted:
            raise UsageError(f"{path} records another candidate than this search proposes; delete {cand_dir.parent} "
                             f"to restart the search of this loss")
        return
    cand_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, values)
