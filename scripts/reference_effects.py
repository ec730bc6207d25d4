"""The literature's effects, tested on the reference study's comparisons.

Each comparison of :mod:`reference_study` declares, before its numbers are seen, the effects
the papers report as paired contrasts "A better than B on metric M". For each contrast
this reads the per-seed test values of both losses from the comparison's ``runs.csv`` and
gives the paired difference A - B with its 95% CI, the paired t-test's p, Holm-corrected
over the comparison's measurable declared contrasts (the family: m contrasts with a
p-value), and its verdict from :func:`cvloss.verdict.contrast_verdict` -- the function
every table of cvloss uses: "appears" when its corrected p < 0.05 in the expected
direction, "reversed" the other way, otherwise "not detected" with its MDE (80% power,
level alpha / m, SD of this contrast's own paired differences) or "inconclusive" when that
MDE reaches the headroom B leaves (B's mean to the metric's bound in A's favour: ring8's
8 modes, an error's 0), so the study could not have detected it. A metric without values
(LPIPS without its weights) is "not measurable" and does not count in m.

Two analyses: completed trials only (the tables' main one), and intent to treat (a
diverged or crashed trial at the untrained model's value at its seed, a collapsed or
degenerate one at its own), shown when any trial of the two losses failed.

    python scripts/reference_effects.py results            # the markdown of results/README.md
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cvloss import verdict as vd  # noqa: E402
from cvloss.result import ComparisonResult  # noqa: E402
from cvloss.run.stats import holm, paired_difference  # noqa: E402

ALPHA, POWER = 0.05, 0.8
STUDY_FILE = ROOT / "results" / "study.toml"  # the reference study: its comparisons and hypotheses


def declared_effects(path: Path = STUDY_FILE) -> dict[str, list[tuple[str, str, str, str]]]:
    """comparison -> [(A, B, metric, why)]: the study file's hypotheses, each "A better
    than B on metric" (one family per comparison, as the file declares them)."""
    from cvloss.study.schema import read_study

    out: dict[str, list[tuple[str, str, str, str]]] = {}
    for h in read_study(path).hypotheses:
        out.setdefault(h.comparison, []).append((h.a, h.b, h.metric, h.why))
    return out


EFFECTS = declared_effects()
FAILED = ("diverged", "crashed")
OWN_VALUE = ("collapsed", "degenerate")  # failures that count at their own value under ITT


def _float(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_runs(cmp_dir: Path) -> dict[str, dict[int, dict[str, str]]]:
    """``runs.csv`` of a comparison as {loss: {seed: row}}."""
    out: dict[str, dict[int, dict[str, str]]] = {}
    with open(cmp_dir / "runs.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["loss"], {})[int(row["seed"])] = row
    return out


def _value(row: dict[str, str] | None, metric: str, itt: bool) -> float:
    if row is None:
        return math.nan
    if row["status"] == "done" or (itt and row["status"] in OWN_VALUE):
        return _float(row.get(metric))
    if itt and row["status"] in FAILED:
        return _float(row.get(f"untrained_{metric}"))
    return math.nan


def test_effects(cmp_dir: Path, effects: list[tuple[str, str, str, str]], higher: dict[str, bool],
                 itt: bool = False, bounds: dict[str, tuple[float | None, float | None]] | None = None) -> list[dict]:
    """One record per declared effect: Δ (A - B), CI, p, Holm p over the measurable
    ``effects`` (m), MDE at level alpha/m from this contrast's SD, headroom (B's mean to
    ``bounds[metric]`` in A's favour; unbounded without one) and verdict."""
    runs = read_runs(cmp_dir)
    seeds = sorted({s for per in runs.values() for s in per})
    found = []
    for a, b, metric, why in effects:
        va = [_value(runs.get(a, {}).get(s), metric, itt) for s in seeds]
        vb = [_value(runs.get(b, {}).get(s), metric, itt) for s in seeds]
        diff, half, p, n = paired_difference(va, vb)
        failed = sum(runs.get(loss, {}).get(s, {}).get("status") in FAILED + OWN_VALUE
                     for loss in (a, b) for s in seeds)
        finite_b = [v for v in vb if math.isfinite(v)]
        found.append({"a": a, "b": b, "metric": metric, "why": why, "diff": diff, "ci": half, "p": p, "n": n,
                      "diffs": [x - y for x, y in zip(va, vb)], "b_mean": float(np.mean(finite_b)) if finite_b
                      else math.nan, "failed": failed, "higher": higher.get(metric, True)})
    m = sum(1 for r in found if math.isfinite(r["p"]))  # the family: its measurable contrasts
    adjusted = holm([r["p"] for r in found])
    for r, p_adj in zip(found, adjusted):
        low, high = (bounds or {}).get(r["metric"], (None, None))
        judged = vd.assess(r.pop("diffs"), p_adj, m, r["b_mean"], r["higher"], low, high, ALPHA, POWER)
        r.update({"p_holm": p_adj, "m": m, "mde": judged["mde"], "headroom": judged["headroom"],
                  "verdict": judged["verdict"]})
    return found


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def markdown(records: list[dict], title: str) -> str:
    lines = [f"| {title} | metric | Δ (A − B) ± 95% CI | p | p_holm | MDE | headroom | n | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        arrow = "↑" if r["higher"] else "↓"
        room = "∞" if r.get("headroom") == math.inf else _fmt(r.get("headroom", math.nan), 2)
        lines.append(f"| `{r['a']}` vs `{r['b']}` ({r['why']}) | {r['metric']} {arrow} | "
                     f"{_fmt(r['diff'])} ± {_fmt(r['ci'], 2)} | {_fmt(r['p'], 2)} | {_fmt(r['p_holm'], 2)} | "
                     f"{_fmt(r['mde'], 2)} | {room} | {r['n']} | **{r['verdict']}** |")
    m = max((r.get("m", 0) for r in records), default=0)
    lines.append(f"\nHolm and each MDE over the m = {m} measurable contrast(s) (level {ALPHA:g}/{max(1, m)}); "
                 "inconclusive = MDE ≥ headroom, the distance from B's mean to the metric's bound in A's favour.")
    return "\n".join(lines)


def metric_bounds(info: ComparisonResult, metrics: set[str]) -> dict[str, tuple[float | None, float | None]]:
    """Each metric's (low, high) for the headroom: the task's own bound for the dataset
    (gan's ``modes``: the mixture's mode count, which older compare.json recorded as
    unbounded), else the recorded one."""
    from cvloss.tasks import get_task_class

    task_cls = get_task_class(info.task)
    recorded = info.bounds or {}
    out = {}
    for metric in metrics:
        low, high = (list(recorded.get(metric) or (None, None)) + [None, None])[:2]
        t_low, t_high = task_cls.bounds(metric, info.dataset)
        out[metric] = (t_low if t_low is not None else low, t_high if t_high is not None else high)
    return out


def find_comparison(out: Path, name: str) -> Path | None:
    """The tuned comparison folder of ``name`` under ``out`` (the one reference_study ran)."""
    from reference_study import COMPARISONS  # noqa: E402 (same folder)

    task, dataset, sets = COMPARISONS[name]
    budget = "quick" + "".join(f"+{s}" for s in sorted(sets))
    hits = sorted((out / task / dataset).glob(f"{budget}+tuned-*/compare--*/runs.csv"))
    return hits[0].parent if hits else None


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the study's results folder")
    args = parser.parse_args(argv)
    for name, effects in EFFECTS.items():
        cmp_dir = find_comparison(args.out, name)
        if cmp_dir is None:
            print(f"### {name}\n\nNot run yet.\n")
            continue
        info = ComparisonResult.from_json(cmp_dir / "compare.json")
        higher = info.directions
        bounds = metric_bounds(info, {metric for _, _, metric, _ in effects})
        print(f"### {name}\n\n`{cmp_dir.relative_to(args.out.parent) if args.out.is_absolute() else cmp_dir}`\n")
        records = test_effects(cmp_dir, effects, higher, bounds=bounds)
        print(markdown(records, "effect (A better than B)") + "\n")
        if any(r["failed"] for r in records):
            print("Intent to treat (failed trials at the untrained model's value, collapsed and degenerate ones at "
                  "their own):\n")
            print(markdown(test_effects(cmp_dir, effects, higher, itt=True, bounds=bounds),
                           "effect (A better than B)") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
