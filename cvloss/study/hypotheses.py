"""Each hypothesis of a study, tested: the contrast, Δ with its CI, the family-corrected
p, the MDE at the family's level, and the verdict.

A hypothesis is a paired contrast ``A - B`` over its comparison's seeds on one metric,
read from the comparison's ``runs.csv``, in both analyses (``completed`` and ``itt``).
Δ, its 95% CI and p come from :func:`cvloss.run.stats.paired_difference`; p is
Holm-corrected (:func:`cvloss.run.stats.holm`) over the measurable contrasts of its
*family* (same ``family`` name, registered alike: a post-hoc hypothesis never changes the
registered ones' correction); the MDE at alpha/m, the headroom and the verdict come from
:func:`cvloss.verdict.assess` (``claim = "differs"``: either way, the larger headroom).
With a ``margin``, a non-significant contrast whose CI at level 1 - alpha/m lies inside
±margin is ``equivalent``; a significant one keeps its verdict, noted ``within margin``.
See docs/protocol.md.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from scipy import stats as sps

from cvloss import verdict as vd
from cvloss.study.check import Plan, PlannedComparison, PlannedHypothesis

EQUIVALENT = "equivalent"
FAILED = ("diverged", "crashed")  # under ITT: the untrained model's value at their seed
OWN_VALUE = ("collapsed", "degenerate")  # under ITT: their own final value
ANALYSES = ("completed", "itt")


def comparison_folder(c: PlannedComparison) -> Path:
    """Where the comparison writes ``compare.json`` and ``runs.csv`` (a tuned one: under
    its winners' ``<budget>+tuned-<H>``)."""
    from cvloss.run.compare import comparison_dir

    base = c.base if c.space is None else replace(c.base, place=c.space.winners())
    return comparison_dir(base, c.specs)


def read_runs(folder: Path) -> dict[str, dict[int, dict[str, str]]] | None:
    """``runs.csv`` of a comparison folder as {loss: {seed: row}}; None before it exists."""
    from cvloss.io import read_csv

    path = folder / "runs.csv"
    if not path.is_file():
        return None
    out: dict[str, dict[int, dict[str, str]]] = {}
    for row in read_csv(path, folder):
        try:
            out.setdefault(str(row["loss"]), {})[int(row["seed"])] = row
        except (KeyError, TypeError, ValueError):
            continue  # a row without a loss or an integer seed names no pair
    return out


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def seed_value(row: dict[str, str] | None, metric: str, analysis: str) -> float:
    """One trial's value of ``metric`` under ``analysis`` (module docstring); NaN when it has none."""
    if row is None:
        return math.nan
    status = row.get("status")
    if status == "done" or (analysis == "itt" and status in OWN_VALUE):
        return _float(row.get(metric))
    if analysis == "itt" and status in FAILED:
        return _float(row.get(f"untrained_{metric}"))
    return math.nan


def failures(runs: dict[str, dict[int, dict[str, str]]], losses: list[str], seeds: list[int]) -> int:
    """Trials of ``losses`` at ``seeds`` that failed (diverged, crashed, collapsed, degenerate)."""
    return sum((runs.get(l, {}).get(s) or {}).get("status") in FAILED + OWN_VALUE for l in losses for s in seeds)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def family_half_width(sd: float, n: int, m: int, alpha: float = vd.ALPHA) -> float:
    """Half-width of the two-sided CI at the family's level 1 - alpha/m from ``n`` paired
    differences of SD ``sd``: ``t_{1 - alpha/(2m), n-1} · sd / √n``; NaN with n < 2."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float(sps.t.ppf(1 - vd.family_level(m, alpha) / 2, n - 1) * sd / math.sqrt(n))


def _contrast(h: PlannedHypothesis, c: PlannedComparison, runs: dict | None, analysis: str) -> dict[str, Any]:
    """The raw contrast of one hypothesis (before its family is known)."""
    from cvloss.run.stats import paired_difference
    from cvloss.tasks import get_task_class

    task_cls = get_task_class(c.base.task)
    metric = h.entry.metric
    rec = {"hypothesis": h.name, "comparison": c.name, "a": h.a, "b": h.b, "metric": metric, "claim": h.entry.claim,
           "family": h.entry.family, "margin": h.entry.margin, "why": h.entry.why, "analysis": analysis,
           "higher_is_better": task_cls.spec.direction(metric), "ran": runs is not None, "failed": 0}
    if runs is None:
        return {**rec, "diffs": [], "b_mean": math.nan, "diff": math.nan, "ci95": math.nan, "p": math.nan, "n": 0}
    va = [seed_value(runs.get(h.a, {}).get(s), metric, analysis) for s in c.seeds]
    vb = [seed_value(runs.get(h.b, {}).get(s), metric, analysis) for s in c.seeds]
    diff, half, p, n = paired_difference(va, vb)
    return {**rec, "diffs": [x - y for x, y in zip(va, vb)], "b_mean": _mean(vb), "diff": diff, "ci95": half,
            "p": p, "n": n, "failed": failures(runs, [h.a, h.b], c.seeds),
            "bounds": task_cls.spec.bounds(metric, c.base.dataset)}


def _judge(rec: dict[str, Any], p_adj: float, m: int) -> dict[str, Any]:
    """Family-corrected p, MDE, headroom, family CI and verdict of one contrast."""
    low, high = rec.pop("bounds", (None, None))
    up = rec["higher_is_better"]
    diffs = rec.pop("diffs")
    judged = vd.assess(diffs, p_adj, m, rec["b_mean"], up, low, high)
    room, verdict = judged["headroom"], judged["verdict"]
    if rec["claim"] == "differs":  # either way: the larger room, significant either way appears
        room = max((vd.headroom(rec["b_mean"], way, low, high) for way in (True, False)),
                   key=lambda r: -math.inf if math.isnan(r) else r)
        verdict = vd.contrast_verdict(abs(rec["diff"]) if math.isfinite(rec["diff"]) else rec["diff"], p_adj,
                                      judged["n_pairs"], judged["mde"], room, True)
    half_family = family_half_width(judged["sd_diff"], judged["n_pairs"], m)
    inside = (rec["margin"] is not None and math.isfinite(rec["diff"]) and math.isfinite(half_family)
              and abs(rec["diff"]) + half_family < rec["margin"])
    if inside and verdict not in (vd.APPEARS, vd.REVERSED, vd.NOT_MEASURABLE):
        verdict = EQUIVALENT
    return {**rec, "p_adj": p_adj, "m": m, "level": vd.family_level(m), "ci_family": half_family,
            "mde": judged["mde"], "headroom": room, "within_margin": inside, "verdict": verdict}


def evaluate(plan: Plan, post_hoc: dict[str, str], analysis: str = "completed") -> list[dict[str, Any]]:
    """One record per hypothesis of ``plan`` (file order) under ``analysis``: the keys of
    :func:`_contrast` and :func:`_judge`, plus ``registered`` (False for the names in
    ``post_hoc``) and ``post_hoc`` (why, or "")."""
    from cvloss.run.stats import holm

    runs = {c.name: read_runs(comparison_folder(c)) for c in plan.comparisons}
    records = []
    for h in plan.hypotheses:
        rec = _contrast(h, plan.comparison(h.entry.comparison), runs[h.entry.comparison], analysis)
        rec.update(registered=h.name not in post_hoc, post_hoc=post_hoc.get(h.name, ""))
        records.append(rec)
    families: dict[tuple[str, bool], list[int]] = {}
    for i, rec in enumerate(records):
        families.setdefault((rec["family"], rec["registered"]), []).append(i)
    for members in families.values():
        ps = [records[i]["p"] for i in members]
        m = sum(1 for p in ps if math.isfinite(p))  # the family: its measurable contrasts
        for i, p_adj in zip(members, holm(ps)):
            records[i] = _judge(records[i], p_adj, m)
    return records


def evaluate_all(plan: Plan, post_hoc: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Both analyses: ``{"completed": [...], "itt": [...]}``."""
    return {analysis: evaluate(plan, post_hoc, analysis) for analysis in ANALYSES}


def verdict_words(rec: dict[str, Any]) -> str:
    """The verdict with what a null could have detected (:func:`cvloss.verdict.verdict_text`);
    ``not run`` before the comparison's runs.csv exists."""
    if not rec["ran"]:
        return "not run yet"
    if rec["verdict"] == EQUIVALENT:
        return f"equivalent (CI within ±{rec['margin']:g})"
    text = vd.verdict_text(rec["verdict"], rec["mde"], rec["headroom"])
    return text + (f" (within ±{rec['margin']:g})" if rec["within_margin"] else "")
