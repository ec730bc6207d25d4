"""Comparison tables: one row per loss, one column per metric, ``mean ± 95% CI``.

Marks: **bold** = best mean of the column (by the metric's direction); ``*`` after a
value = its paired difference against the baseline (first loss) has p < 0.05 over seeds.
"""
from __future__ import annotations

import math
from typing import Any

ALPHA = 0.05


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


def _cell(row: dict[str, Any]) -> str:
    if row["n"] == 0:
        return "n/a"
    text = _fmt(row["mean"])
    if row["n"] >= 2 and not math.isnan(row["ci95"]):
        text += f" ± {_fmt(row['ci95'], 2)}"
    return text


def _by_loss(result: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        table.setdefault(row["loss"], {})[row["metric"]] = row
    return table


def _best(result: dict[str, Any], metric: str) -> str | None:
    rows = [r for r in result["rows"] if r["metric"] == metric and r["n"] > 0 and not math.isnan(r["mean"])
            and not r.get("reference")]
    if not rows:
        return None
    pick = max if result["directions"][metric] else min
    return pick(rows, key=lambda r: r["mean"])["loss"]


def _runs_cell(result: dict[str, Any], loss: str) -> str:
    status = result["status"][loss]
    done = sum(s == "done" for s in status)
    text = f"{done}/{len(status)}"
    for state in ("diverged", "collapsed"):
        count = sum(s == state for s in status)
        if count:
            text += f" ({count} {state})"
    miss = sum(s == "missing" for s in status)
    if miss:
        text += f" ({miss} missing)"
    return text


def comparison_rows(result: dict[str, Any], markdown: bool = False) -> list[dict[str, str]]:
    """Rows for printing: loss, runs, one ``mean ± CI`` cell per metric (marked)."""
    table = _by_loss(result)
    best = {m: _best(result, m) for m in result["metrics"]}
    out = []
    for loss in result["losses"]:
        row = {"loss": f"`{loss}`" if markdown else loss, "runs": _runs_cell(result, loss)}
        for metric in result["metrics"]:
            r = table.get(loss, {}).get(metric)
            cell = _cell(r) if r else "n/a"
            if r and loss != result["baseline"] and r.get("p_value") is not None and not math.isnan(r["p_value"]) and r["p_value"] < ALPHA:
                cell += "*"
            if best[metric] == loss and len(result["losses"]) > 1:
                cell = f"**{cell}**" if markdown else f"{cell} (best)"
            arrow = "↑" if result["directions"][metric] else "↓"
            row[f"{metric} {arrow}"] = cell
        out.append(row)
    for ref in result.get("references", []):
        row = {"loss": f"_{ref}_" if markdown else f"({ref})", "runs": "reference"}
        for metric in result["metrics"]:
            r = table.get(ref, {}).get(metric)
            arrow = "↑" if result["directions"][metric] else "↓"
            row[f"{metric} {arrow}"] = _cell(r) if r else "n/a"
        out.append(row)
    return out


def difference_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """Paired differences against the baseline: ``Δ ± CI (p=…)`` per metric."""
    table = _by_loss(result)
    out = []
    for loss in result["losses"][1:]:
        row = {"loss": f"`{loss}`"}
        for metric in result["metrics"]:
            r = table.get(loss, {}).get(metric)
            if not r or r.get("n_pairs", 0) == 0:
                row[metric] = "n/a"
                continue
            text = f"{r['diff_vs_baseline']:+.3g}"
            if r["n_pairs"] >= 2:
                text += f" ± {_fmt(r['diff_ci95'], 2)} (p={_fmt(r['p_value'], 2)})"
            row[metric] = text
        out.append(row)
    return out


def markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def comparison_markdown(result: dict[str, Any], heading_level: int = 2) -> str:
    """The comparison as Markdown: header facts, main table, paired differences."""
    h = "#" * heading_level
    seeds = result["seeds"]
    fw = ", ".join(result["feature_weights"]) if result.get("feature_weights") else "none used"
    parts = [
        f"{h} {result['task']} · {result['dataset']} · {result['budget']}\n",
        f"Losses: {', '.join(f'`{l}`' for l in result['losses'])}; seeds {', '.join(map(str, seeds))} "
        f"(n = {len(seeds)}); baseline `{result['baseline']}`; feature-network weights: {fw}.\n",
        "Cells: mean ± 95% CI (Student t over seeds) of the final-epoch validation metric; "
        "**bold** = best; `*` = paired t-test against the baseline p < 0.05; ↑/↓ = higher/lower is better. "
        "Diverged (NaN/Inf) and collapsed trials are counted in *runs* and left out of every mean; "
        "rows in italics are references (no loss trained), not contestants.\n",
        markdown_table(comparison_rows(result, markdown=True)),
    ]
    if len(result["losses"]) > 1:
        parts += [f"\nPaired difference against `{result['baseline']}` (Δ ± 95% CI, paired t-test p):\n",
                  markdown_table(difference_rows(result))]
    return "\n".join(parts)
