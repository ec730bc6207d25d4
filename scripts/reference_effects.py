"""The literature's effects, tested on the reference study's comparisons (issue 21).

Each comparison of :mod:`reference_study` declares, before its numbers are seen, the effects
the papers report as paired contrasts "A better than B on metric M". For each contrast
this reads the per-seed test values of both losses from the comparison's ``runs.csv`` and
gives the paired difference A - B with its 95% CI, the paired t-test's p, Holm-corrected
over the comparison's declared contrasts (the family), and the smallest difference the
study could have detected (80% power, two-sided level alpha / m for m contrasts, SD of this
contrast's paired differences). An effect "appears" only when its corrected p < 0.05 in
the expected direction; the opposite direction is "reversed"; otherwise it "does not
appear" and its MDE says what could have been seen. A metric without values (LPIPS
without its weights) is "not measurable here".

Two analyses: completed trials only (the tables' main one), and intent to treat (a
diverged or crashed trial at the untrained model's value at its seed, a collapsed one at
its own), shown when any trial of the two losses failed.

    python scripts/reference_effects.py results            # the markdown of results/README.md
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cvloss.run.stats import holm, min_detectable_effect, paired_difference  # noqa: E402

ALPHA, POWER = 0.05, 0.8
# comparison (as in reference_study.COMPARISONS) -> [(A, B, metric, why)]: A better than B.
EFFECTS = {
    "sr-skimage-photos": [
        ("l1", "perceptual", "psnr_y", "a pixel loss leads PSNR (Johnson et al. 2016; Ledig et al. 2017)"),
        ("mse", "perceptual", "psnr_y", "a pixel loss leads PSNR"),
        ("perceptual", "l1", "lpips", "a perceptual loss leads an independent feature metric"),
        ("l1+0.01*perceptual+0.0001*tv", "l1", "lpips", "adding the perceptual term improves LPIPS"),
    ],
    "seg-synth-vessels": [
        ("cldice", "ce", "betti0_err", "clDice cuts Betti-0 errors (Shit et al. 2021)"),
        ("cldice", "ce", "betti1_err", "clDice cuts Betti-1 errors"),
        ("topo", "ce", "betti0_err", "the topology loss cuts Betti-0 errors (Mosinska et al. 2018)"),
        ("topo", "ce", "betti1_err", "the topology loss cuts Betti-1 errors"),
    ],
    "embed-synth-ids": [
        ("triplet(mining=batch_hard)", "triplet_offline", "verif_acc", "online mining beats random triplets "
                                                                         "(Schroff et al. 2015; Hermans et al. 2017)"),
        ("triplet(mining=semi_hard)", "triplet_offline", "verif_acc", "semi-hard mining beats random triplets "
                                                                        "(Schroff et al. 2015)"),
        ("triplet(mining=batch_hard)", "triplet(mining=all)", "verif_acc", "batch-hard beats batch-all "
                                                                             "(Hermans et al. 2017)"),
    ],
    "translate-synth-stripes": [
        ("2*lsgan+cycle+identity", "2*lsgan", "paired_psnr", "a cycle term is needed (Zhu et al. 2017)"),
        ("2*lsgan+cycle+identity", "2*lsgan", "paired_ssim", "a cycle term is needed"),
    ],
    "gan-ring8": [("wgan_gp", "minimax", "modes", "WGAN-GP covers more modes (Gulrajani et al. 2017)")],
    "gan-grid25": [("wgan_gp", "minimax", "modes", "WGAN-GP covers more modes")],
}
FAILED = ("diverged", "crashed")


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
    if row["status"] == "done" or (itt and row["status"] == "collapsed"):
        return _float(row.get(metric))
    if itt and row["status"] in FAILED:
        return _float(row.get(f"untrained_{metric}"))
    return math.nan


def test_effects(cmp_dir: Path, effects: list[tuple[str, str, str, str]], higher: dict[str, bool],
                 itt: bool = False) -> list[dict]:
    """One record per declared effect: Δ (A - B), CI, p, Holm p over ``effects``, MDE, verdict."""
    runs = read_runs(cmp_dir)
    seeds = sorted({s for per in runs.values() for s in per})
    m = len(effects)
    found = []
    for a, b, metric, why in effects:
        va = [_value(runs.get(a, {}).get(s), metric, itt) for s in seeds]
        vb = [_value(runs.get(b, {}).get(s), metric, itt) for s in seeds]
        diff, half, p, n = paired_difference(va, vb)
        d = [x - y for x, y in zip(va, vb) if math.isfinite(x) and math.isfinite(y)]
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
        failed = sum(runs.get(loss, {}).get(s, {}).get("status") in FAILED + ("collapsed",)
                     for loss in (a, b) for s in seeds)
        found.append({"a": a, "b": b, "metric": metric, "why": why, "diff": diff, "ci": half, "p": p, "n": n,
                      "mde": min_detectable_effect(sd, n, ALPHA / m, POWER), "failed": failed,
                      "higher": higher.get(metric, True)})
    adjusted = holm([r["p"] for r in found])
    for r, p_adj in zip(found, adjusted):
        r["p_holm"] = p_adj
        if r["n"] < 2:
            r["verdict"] = "not measurable here"
            continue
        better = r["diff"] > 0 if r["higher"] else r["diff"] < 0
        significant = math.isfinite(p_adj) and p_adj < ALPHA
        r["verdict"] = ("appears" if better else "reversed") if significant else "does not appear"
    return found


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def markdown(records: list[dict], title: str) -> str:
    lines = [f"| {title} | metric | Δ (A − B) ± 95% CI | p | p_holm | MDE | n | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        arrow = "↑" if r["higher"] else "↓"
        lines.append(f"| `{r['a']}` vs `{r['b']}` ({r['why']}) | {r['metric']} {arrow} | "
                     f"{_fmt(r['diff'])} ± {_fmt(r['ci'], 2)} | {_fmt(r['p'], 2)} | {_fmt(r['p_holm'], 2)} | "
                     f"{_fmt(r['mde'], 2)} | {r['n']} | **{r['verdict']}** |")
    return "\n".join(lines)


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
        higher = json.loads((cmp_dir / "compare.json").read_text())["directions"]
        print(f"### {name}\n\n`{cmp_dir.relative_to(args.out.parent) if args.out.is_absolute() else cmp_dir}`\n")
        records = test_effects(cmp_dir, effects, higher)
        print(markdown(records, "effect (A better than B)") + "\n")
        if any(r["failed"] for r in records):
            print("Intent to treat (failed trials at the untrained model's value):\n")
            print(markdown(test_effects(cmp_dir, effects, higher, itt=True), "effect (A better than B)") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
