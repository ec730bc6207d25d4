"""Effects checked image by image: per-item test metrics and their paired analysis over
items, beside the seed-level analysis.

Every seed of sr scores the same few test photographs, so an effect "on 10 seeds" may be
an effect on one photograph. For a task whose test split has fewer than :data:`MAX_ITEMS`
items, each trial records its per-item test metrics in ``test_items.json``
(``{"schema": 1, "split", "unit", "ids": [...], "metrics": {name: [value or null per
id]}}``), and :func:`analyse_items` asks of each contrast A - B: per item the paired
difference averaged over the seeds that scored it; wins, losses and ties; a two-sided
exact sign test over the untied items (it decides) and a Wilcoxon signed-rank test beside
it, corrected as the seed-level table is (Holm primary, BH others). Only ``done`` trials
count. ``compare.json`` gains ``item_analysis`` (schema :data:`ITEM_ANALYSIS_SCHEMA`),
rendered by :mod:`cvloss.report.items`. The protocol: docs/protocol.md.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from cvloss import verdict as vd
from cvloss.errors import ResultsFileError
from cvloss.io import read_json, write_json
from cvloss.run.stats import benjamini_hochberg, holm, min_sign_p, sign_test_p, signed_rank_p

TEST_ITEMS = "test_items.json"
TEST_ITEMS_SCHEMA = 1
ITEM_ANALYSIS_SCHEMA = 1
#: A test split of fewer items than this gets the image-level analysis (a few images can carry a seed-level effect).
MAX_ITEMS = 30
#: Bounds of a test_items.json read back (untrusted): no trial of ours records more.
MAX_READ_ITEMS = 10_000
MAX_ID_CHARS = 200
MAX_METRICS = 100
#: How many unreadable files a comparison names (the rest are counted).
MAX_NAMED = 5

# The verdict of a contrast over items.
HOLDS, REVERSED, NOT_ACROSS, TOO_FEW, ALL_TIES, NOT_MEASURABLE = (
    "holds", "reversed", "does not hold", "too few items", "all ties", "not measurable")
# How the seed-level and the item-level verdicts of one contrast agree.
BOTH, SEEDS_ONLY, ITEMS_ONLY, NEITHER, OPPOSITE = ("seeds and items", "seeds only", "items only", "neither",
                                                   "opposite")


# ---------------------------------------------------------------------------- the file
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _problem(obj: Any, max_items: int = MAX_READ_ITEMS) -> str | None:
    """What is wrong with a test-items object (None: nothing). Values may be a finite
    number or null (a NaN is written as null); the write side also lets a NaN through."""
    if not isinstance(obj, dict):
        return f"it holds a JSON {type(obj).__name__}, not an object"
    ids, metrics = obj.get("ids"), obj.get("metrics")
    if not isinstance(ids, list) or not ids or len(ids) > max_items:
        return f"'ids' must be a list of 1 to {max_items} item names"
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in ids):
        return f"every id must be a non-empty string of at most {MAX_ID_CHARS} characters"
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        return f"'metrics' must be an object of at most {MAX_METRICS} metrics"
    for name, values in metrics.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_ID_CHARS:
            return "every metric name must be a non-empty string"
        if not isinstance(values, list) or len(values) != len(ids):
            return f"metrics[{name[:40]!r}] must list one value per id ({len(ids)})"
        if not all(v is None or isinstance(v, float) and math.isnan(v) or _finite(v) for v in values):
            return f"metrics[{name[:40]!r}] holds a value that is not a finite number or null"
    if not isinstance(obj.get("unit", ""), str) or len(obj.get("unit", "")) > MAX_ID_CHARS:
        return "'unit' must be a short string"
    return None


def items_record(items: dict[str, Any] | None, unit: str, split: str = "test") -> dict[str, Any] | None:
    """The ``test_items.json`` object of a task's :meth:`~cvloss.tasks.base.Task.test_items`
    answer; None when there is none or it has :data:`MAX_ITEMS` items or more (a split
    that large carries its own claim). A malformed answer is a task's bug: ValueError."""
    if items is None or len(items.get("ids") or ()) >= MAX_ITEMS:
        return None
    record = {"schema": TEST_ITEMS_SCHEMA, "split": split, "unit": unit,
              "ids": list(items["ids"]), "metrics": {k: list(v) for k, v in items["metrics"].items()}}
    why = _problem(record)
    if why:
        raise ValueError(f"test_items of the task: {why}")
    return record


def write_test_items(out_dir: Path, items: dict[str, Any] | None, unit: str) -> Path | None:
    """Write ``test_items.json`` atomically in ``out_dir`` (:func:`items_record`); nothing
    (None) for a task that records no items or a split of :data:`MAX_ITEMS` or more."""
    record = items_record(items, unit)
    if record is None:
        return None
    path = Path(out_dir) / TEST_ITEMS
    write_json(path, record)
    return path


def check_test_items(obj: Any, path: Path) -> dict[str, Any]:
    """A ``test_items.json`` read back (untrusted): schema 1, ids and one value per id per
    metric (:func:`_problem`); else :class:`ResultsFileError`, one line naming the file."""
    why = _problem(obj)
    if why is None and (obj.get("schema") != TEST_ITEMS_SCHEMA or isinstance(obj.get("schema"), bool)):
        why = f"schema {str(obj.get('schema'))[:20]!r}, this cvloss reads schema {TEST_ITEMS_SCHEMA}"
    if why:
        raise ResultsFileError(f"{path} is not a valid test-items file: {why}")
    return obj


def read_test_items(path: Path) -> dict[str, Any]:
    """``test_items.json`` through the bounded reader (:func:`cvloss.io.read_json`)."""
    return check_test_items(read_json(path), path)


# ---------------------------------------------------------------------------- one contrast
def paired_item_diffs(a: Sequence[dict[str, Any] | None], b: Sequence[dict[str, Any] | None],
                      metric: str) -> tuple[dict[str, list[float]], int, int]:
    """Per item id, the paired differences A − B of ``metric``, one per seed that scored
    the item under both losses. ``a`` and ``b`` list one test-items record per seed (None:
    no record), in the same seed order. A seed pairs only when both records list the same
    ids in the same order (the same data); returns (diffs by id in first-seen order,
    seeds paired, seeds with both records but other ids)."""
    diffs: dict[str, list[float]] = {}
    paired = unpaired = 0
    for ra, rb in zip(a, b):
        if ra is None or rb is None:
            continue
        if ra["ids"] != rb["ids"]:
            unpaired += 1
            continue
        va, vb = ra["metrics"].get(metric), rb["metrics"].get(metric)
        if va is None or vb is None:
            continue
        paired += 1
        for item, x, y in zip(ra["ids"], va, vb):
            if _finite(x) and _finite(y):
                diffs.setdefault(item, []).append(float(x) - float(y))
    return diffs, paired, unpaired


def item_contrast(diffs: dict[str, list[float]], higher_is_better: bool) -> dict[str, Any]:
    """The item-level test of one contrast from its paired differences by item
    (:func:`paired_item_diffs`): ``per_item`` (id, mean difference A − B, seeds), ``wins``
    / ``losses`` / ``ties`` (mean better for A / worse / exactly 0), ``sign_p`` (exact,
    two-sided, over the untied items), ``wilcoxon_p`` (signed-rank over the item means),
    and ``min_p``: the smallest sign p its untied items allow (:func:`min_sign_p`).
    Without an item both p are NaN; every item a tie gives p = 1."""
    per_item = [{"item": item, "diff": sum(d) / len(d), "n_seeds": len(d)} for item, d in diffs.items() if d]
    means = [r["diff"] for r in per_item]
    better = [d > 0 if higher_is_better else d < 0 for d in means]
    ties = sum(d == 0 for d in means)
    wins = sum(better)
    losses = len(means) - wins - ties
    empty = not means
    return {"per_item": per_item, "n_items": len(means), "wins": wins, "losses": losses, "ties": ties,
            "sign_p": math.nan if empty else sign_test_p(wins, losses),
            "wilcoxon_p": math.nan if empty else signed_rank_p(means),
            "min_p": min_sign_p(wins + losses)}


def items_verdict(c: dict[str, Any], level: float, alpha: float = vd.ALPHA) -> str:
    """The item-level verdict of contrast ``c`` (:func:`item_contrast` with ``sign_p_adj``):
    ``holds`` / ``reversed`` (corrected sign p < ``alpha``, A winning / losing more items),
    ``all ties``, ``too few items`` (not significant, and even every untied item going one
    way could not reach ``level`` = alpha/m, Holm's first step), ``does not hold``, or
    ``not measurable`` (no item paired)."""
    if not c["n_items"]:
        return NOT_MEASURABLE
    if c["wins"] + c["losses"] == 0:
        return ALL_TIES
    p = c.get("sign_p_adj")
    if _finite(p) and p < alpha and c["wins"] != c["losses"]:
        return HOLDS if c["wins"] > c["losses"] else REVERSED
    if c["min_p"] >= level:
        return TOO_FEW
    return NOT_ACROSS


def agreement(seed_verdict: str | None, item_verdict: str) -> str | None:
    """How the seed-level verdict (:mod:`cvloss.verdict`) and the item-level one agree:
    significant on both in the same direction, on seeds only, on items only, on neither,
    or in opposite directions; None when either is not measurable."""
    if seed_verdict in (None, vd.NOT_MEASURABLE) or item_verdict == NOT_MEASURABLE:
        return None
    on_seeds = {vd.APPEARS: 1, vd.REVERSED: -1}.get(seed_verdict, 0)
    on_items = {HOLDS: 1, REVERSED: -1}.get(item_verdict, 0)
    if on_seeds and on_items:
        return BOTH if on_seeds == on_items else OPPOSITE
    return SEEDS_ONLY if on_seeds else ITEMS_ONLY if on_items else NEITHER


# ---------------------------------------------------------------------------- a comparison
def _seed_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The seed-level (completed-analysis) contrast of each (loss, metric) row."""
    return {(r.get("loss"), r.get("metric")): r for r in rows
            if r.get("analysis", "completed") == "completed" and not r.get("reference")}


def analyse_items(records: dict[str, Sequence[dict[str, Any] | None]], losses: Sequence[str],
                  directions: dict[str, bool], primary: str, rows: Sequence[dict[str, Any]] = (),
                  alpha: float = vd.ALPHA, unit: str = "test image") -> dict[str, Any] | None:
    """The ``item_analysis`` of a comparison (module docstring). ``records[loss]`` lists
    one test-items record per seed (None: the trial did not finish, or recorded none), in
    one seed order for every loss; ``losses[0]`` is the baseline; ``directions`` the
    metrics (True: higher is better) in table order; ``rows`` the comparison's rows, whose
    completed-analysis contrasts give each contrast's seed-level verdict. None when there
    is nothing to analyse: one loss, no record, or :data:`MAX_ITEMS` items or more."""
    baseline, others = losses[0], list(losses[1:])
    seen = [r for loss in losses for r in records.get(loss, ()) if r is not None]
    items = list(dict.fromkeys(i for r in seen for i in r["ids"]))
    if not others or not items or len(items) >= MAX_ITEMS:
        return None
    recorded = [m for m in directions if any(m in r["metrics"] for r in seen)]
    metrics = sorted(recorded, key=lambda m: m != primary)  # the primary first, then table order
    seed_rows = _seed_rows(rows)
    contrasts = []
    for metric in metrics:
        up = directions[metric]
        found = []
        for loss in others:
            diffs, paired, unpaired = paired_item_diffs(records.get(loss, ()), records.get(baseline, ()), metric)
            found.append({"loss": loss, "metric": metric, "higher_is_better": up, "n_seeds": paired,
                          "n_unpaired_seeds": unpaired, **item_contrast(diffs, up)})
        correct, name = (holm, "holm") if metric == primary else (benjamini_hochberg, "bh")
        m = sum(1 for c in found if _finite(c["sign_p"]))
        for c, sign_adj, wil_adj in zip(found, correct([c["sign_p"] for c in found]),
                                        correct([c["wilcoxon_p"] for c in found])):
            row = seed_rows.get((c["loss"], metric)) or {}
            seeds = {"verdict": row.get("verdict"), "p_adj": row.get("p_adj"), "diff": row.get("diff_vs_baseline"),
                     "n_pairs": row.get("n_pairs")}
            c.update(sign_p_adj=sign_adj, wilcoxon_p_adj=wil_adj, correction=name, family_m=m,
                     level=vd.family_level(m, alpha), seeds=seeds)
            c["verdict"] = items_verdict(c, c["level"], alpha)
            c["agreement"] = agreement(seeds["verdict"], c["verdict"])
            contrasts.append(c)
    return {"schema": ITEM_ANALYSIS_SCHEMA, "unit": unit, "n_items": len(items), "items": items,
            "max_items": MAX_ITEMS, "alpha": alpha, "decides": "sign", "baseline": baseline,
            "primary_metric": primary, "analysis": "completed", "contrasts": contrasts}


def comparison_records(trials: dict[str, Sequence[str]], status: dict[str, Sequence[str]]
                       ) -> tuple[dict[str, list[dict[str, Any] | None]], list[str], int]:
    """Each loss's test-items records per seed, read from its ``done`` trial folders
    (None for any other trial, or one without the file). Returns (records, the first
    :data:`MAX_NAMED` unreadable files' one-line reasons, how many were unreadable): a
    malformed file leaves its trial out of the item analysis, never the comparison."""
    records: dict[str, list[dict[str, Any] | None]] = {}
    bad: list[str] = []
    for loss, dirs in trials.items():
        records[loss] = []
        for d, st in zip(dirs, status.get(loss, ())):
            path = Path(d) / TEST_ITEMS
            rec = None
            if st == "done" and path.exists():
                try:
                    rec = read_test_items(path)
                except (ResultsFileError, OSError) as exc:
                    bad.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            records[loss].append(rec)
    return records, bad[:MAX_NAMED], len(bad)


def item_analysis_of(result: dict[str, Any]) -> dict[str, Any]:
    """The comparison hook: ``{"item_analysis": {...}}`` for a comparison ``result`` (its
    ``trials``, ``status``, ``losses``, ``directions``, ``primary_metric``, ``rows``, ``alpha``)
    whose trials recorded test items of fewer than :data:`MAX_ITEMS` items; else ``{}``."""
    records, bad, n_bad = comparison_records(result.get("trials") or {}, result.get("status") or {})
    seen = next((r for rs in records.values() for r in rs if r is not None), None)
    unit = str(seen.get("unit") or "test image") if seen else "test image"
    found = analyse_items(records, result["losses"], result.get("directions") or {}, result.get("primary_metric") or "",
                          result.get("rows") or (), result.get("alpha", vd.ALPHA), unit)
    if found is None:
        return {}
    found["seeds_recorded"] = {loss: sum(r is not None for r in rs) for loss, rs in records.items()}
    found["unreadable"] = bad
    found["n_unreadable"] = n_bad
    return {"item_analysis": found}
