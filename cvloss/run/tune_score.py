"""Scoring a search candidate by signal: its seeds' values, their mean and SE, the ties.

A search trial (:mod:`cvloss.run.tune`) is read from its folder at an epoch: the final
one (its ``summary.json``) or a rung of successive halving (that epoch's row of
``metrics.csv``, the val scores the trainer logged). Its value is intent to treat, as on
test (:func:`cvloss.run.analysis.itt_value`): a trial that finished -- done, collapsed or
degenerate -- counts at its own val scores however bad; one that diverged or crashed counts
at its untrained model's val scores (``untrained.json``, measured before training), so a
candidate that diverges on one seed in three is not chosen for its two lucky ones. A
candidate's score is the mean over its seeds, with the standard error sd/sqrt(K).

Pure functions of folders and numbers: the search driver (:mod:`cvloss.run.tuning`)
decides what to train, these say what it measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvloss.errors import ResultsFileError
from cvloss.io import read_csv, read_json
from cvloss.run.analysis import CRASHED, FINISHED
from cvloss.run.trainer import METRICS, SUMMARY, UNTRAINED

#: A flag when the candidates a search could not tell apart span more than this share of
#: a dimension's range: the choice there is the seeds', not the data's.
WIDE_SET = 1 / 3


@dataclass
class SeedResult:
    """One tuning trial read at one epoch: ``values`` (metric -> its intent-to-treat value,
    None when unknown), ``status`` (done / collapsed / degenerate / diverged / crashed; ``rung``:
    reached the epoch, not finished; ``missing``: not there yet), the epochs it has
    trained and their wall time."""

    values: dict[str, float | None] = field(default_factory=dict)
    status: str = "missing"
    epochs: int = 0
    time_s: float = 0.0


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _read(path: Path, root: Path) -> Any:
    try:
        return read_json(path, root) if path.is_file() else None
    except ResultsFileError:
        return None


def _rows(trial_dir: Path) -> list[dict[str, str]]:
    path = trial_dir / METRICS
    try:
        return read_csv(path, trial_dir) if path.is_file() else []
    except ResultsFileError:
        return []


def seed_result(trial_dir: Path, epoch: int, final_epoch: int, metrics: list[str]) -> SeedResult:
    """The trial in ``trial_dir`` read at ``epoch`` (``final_epoch``: its end) for
    ``metrics``: intent-to-treat values (module docstring) and what it cost so far."""
    summary = _read(trial_dir / SUMMARY, trial_dir)
    summary = summary if isinstance(summary, dict) else None
    status = str(summary.get("status", "missing")) if summary else (
        "crashed" if (trial_dir / CRASHED).exists() else "missing")
    rows = [r for r in _rows(trial_dir) if _number(r.get("epoch")) not in (None, 0.0)]
    out = SeedResult(status=status, epochs=len(rows), time_s=sum(_number(r.get("epoch_time_s")) or 0.0 for r in rows))
    untrained = (summary or {}).get("untrained") or _read(trial_dir / UNTRAINED, trial_dir) or {}
    if epoch >= final_epoch and status in FINISHED:
        own = summary.get("val_metrics") or summary.get("metrics") or {}
        out.values = {m: _number(own.get(m)) for m in metrics}
        return out
    row = next((r for r in rows if _number(r.get("epoch")) == epoch), None)
    if epoch < final_epoch and row is not None:  # a rung: the val scores logged at its epoch
        out.values = {m: _number(row.get(m)) for m in metrics}
        out.status = status if summary else "rung"
    elif status in ("diverged", "crashed"):  # it bought nothing over the initial weights
        out.values = {m: _number(untrained.get(m)) if isinstance(untrained, dict) else None for m in metrics}
    else:
        out.values = {m: None for m in metrics}
    return out


def reached(trial_dir: Path, epoch: int, final_epoch: int) -> bool:
    """Whether the trial needs no more training to be read at ``epoch``: finished (any
    status), or at a rung with that epoch's row in ``metrics.csv``."""
    if (trial_dir / SUMMARY).is_file():
        return True
    return epoch < final_epoch and any(_number(r.get("epoch")) == epoch for r in _rows(trial_dir))


def mean_se(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, standard error sd/sqrt(K)) of one candidate's seed values; (None, None) when
    a seed has no value (not run yet, or crashed before its untrained score), SE None for
    a single seed."""
    if not values or any(v is None for v in values):
        return None, None
    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1))
    return mean, sd / math.sqrt(k)


def status_text(statuses: list[str]) -> str:
    """``done`` when every seed finished cleanly, else the counts: ``2 done, 1 diverged``."""
    if statuses and all(s == "done" for s in statuses):
        return "done"
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "missing"


def indistinguishable(scores: list[float | None], ses: list[float | None], best: int) -> list[int]:
    """The candidates whose score lies within one SE of the best candidate's (its SE; with
    one seed, no SE: its exact ties): the set the search could not tell apart."""
    top = scores[best]
    if top is None:
        return [best]
    tol = ses[best] or 0.0
    return [i for i, s in enumerate(scores) if s is not None and abs(s - top) <= tol]


def span_flags(dims: tuple, cands: list[dict[str, Any]], members: list[int]) -> list[str]:
    """For each numeric dimension, a flag when the candidates of ``members`` span more
    than :data:`WIDE_SET` of its range (in its unit interval: log scale for ``log``)."""
    flags = []
    for d in dims:
        if d.kind == "choice":
            continue
        units = [d.unit(cands[i][d.name]) for i in members if d.name in cands[i]]
        if len(units) > 1 and max(units) - min(units) > WIDE_SET:
            flags.append(f"{d.name}: candidates within 1 SE of the best span {max(units) - min(units):.0%} of "
                         f"its range (the search could not tell them apart)")
    return flags


def stability(winners: list[int], cands: list[dict[str, Any]]) -> dict[str, Any]:
    """What R repeats of a search chose: ``wins`` (candidate index -> how many repeats it
    won, as ``t<i>``), and per tuned numeric name the ``spread`` [lowest, highest] of the
    chosen values (a categorical name: the values chosen)."""
    wins: dict[str, int] = {}
    for i in winners:
        wins[f"t{i}"] = wins.get(f"t{i}", 0) + 1
    spread: dict[str, Any] = {}
    for name in (cands[winners[0]] if winners else {}):
        chosen = [cands[i][name] for i in winners]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in chosen)
        spread[name] = [min(chosen), max(chosen)] if numeric else sorted(set(map(str, chosen)))
    return {"winners": list(winners), "wins": wins, "spread": spread}
