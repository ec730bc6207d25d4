"""Comparison tables: one row per loss, one column per metric, ``mean ± 95% CI``.

Marks (the same in the console, Markdown and HTML):

* best -- the loss that beats every other one on that metric in paired tests over seeds
  after correction (Holm over its k - 1 tests for the primary metric, Benjamini-Hochberg
  for the exploratory others): ``result["best"]``. When no loss does, nothing is marked
  and the table says "no significant difference". Reference rows (bicubic, the untrained
  network) are never best. Console ``(best)``, Markdown **bold**, HTML bold + shaded.
  (Comparisons written before corrected statistics existed mark the best mean instead,
  and say so.)
* ``*`` / ``**`` -- the paired difference against the baseline (first loss) has an
  adjusted p (``p_adj``: Holm for the primary metric, BH for the others) < 0.05 / < 0.01;
  the baseline and references are never marked.
* *runs* -- ``done/seeds``, i.e. ``n`` of the statistics, followed by the trials left out
  of every mean: ``(1 diverged)`` (NaN/Inf), ``(1 collapsed)``, ``(1 missing)``.

:func:`comparison_table` computes these once; the renderers only format.
"""
from __future__ import annotations

import math
from typing import Any

ALPHA = 0.05
ALPHA_STRONG = 0.01


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def fmt(x: float | None, digits: int = 4) -> str:
    """4 significant digits, scientific for large magnitudes; ``n/a`` for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


_fmt = fmt  # old private name


def _by_loss(result: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        table.setdefault(row["loss"], {})[row["metric"]] = row
    return table


def best_losses(result: dict[str, Any], metric: str) -> set[str]:
    """The loss(es) with the best mean of ``metric``; references never count. Empty when
    there is a single loss (nothing to compare) or no finite mean."""
    if "best" in result:  # corrected: a winner only when it beats every other loss
        winner = (result["best"] or {}).get(metric)
        return {winner} if winner else set()
    refs = set(result.get("references") or [])
    rows = [r for r in result["rows"] if r["metric"] == metric and r["loss"] in result["losses"]
            and r["loss"] not in refs and not r.get("reference") and r["n"] > 0 and _finite(r["mean"])]
    if len(result["losses"]) < 2 or not rows:
        return set()
    pick = max if result["directions"].get(metric, True) else min
    target = pick(r["mean"] for r in rows)
    return {r["loss"] for r in rows if r["mean"] == target}


def _best(result: dict[str, Any], metric: str) -> str | None:
    best = best_losses(result, metric)
    return next(iter(best)) if len(best) == 1 else (sorted(best)[0] if best else None)


def significance(row: dict[str, Any] | None, baseline: str) -> str:
    """``**`` (p < 0.01), ``*`` (p < 0.05) or ``""`` for a loss's paired test: the adjusted
    p where the comparison has one, else (older comparisons) the raw p."""
    if not row or row["loss"] == baseline or row.get("reference"):
        return ""
    p = row.get("p_adj", row.get("p_value"))
    if not _finite(p):
        return ""
    return "**" if p < ALPHA_STRONG else "*" if p < ALPHA else ""


def runs_text(result: dict[str, Any], loss: str) -> str:
    """``2/3 (1 diverged)``: finished trials of the seeds, then the excluded ones."""
    status = result["status"].get(loss, [])
    done = sum(s == "done" for s in status)
    text = f"{done}/{len(status)}"
    for state in ("diverged", "collapsed", "crashed", "missing"):
        count = sum(s == state for s in status)
        if count:
            text += f" ({count} {state})"
    return text


_runs_cell = runs_text


def flags(result: dict[str, Any], loss: str) -> list[str]:
    """States that left trials out of the means: ``["1 diverged", ...]``."""
    status = result["status"].get(loss, [])
    return [f"{sum(s == k for s in status)} {k}" for k in ("diverged", "collapsed", "crashed", "missing") if k in status]


def comparison_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Structured rows: ``{"loss", "reference", "runs", "flags", "cells": {metric: cell}}``
    with ``cell = {"mean", "ci95", "n", "text", "best", "sig", "p_value", "diff"}``;
    losses first (in comparison order, baseline first), then references."""
    table = _by_loss(result)
    best = {m: best_losses(result, m) for m in result["metrics"]}
    out = []
    refs = [r for r in (result.get("references") or []) if r not in result["losses"]]
    for loss in list(result["losses"]) + refs:
        is_ref = loss in refs
        cells = {}
        for metric in result["metrics"]:
            r = table.get(loss, {}).get(metric)
            n = r["n"] if r else 0
            mean = r["mean"] if r and n else None
            ci = r["ci95"] if r and n >= 2 and _finite(r.get("ci95")) else None
            text = "n/a" if mean is None or not _finite(mean) else fmt(mean) + (f" ± {fmt(ci, 2)}" if ci is not None else "")
            cells[metric] = {
                "mean": mean, "ci95": ci, "n": n, "text": text,
                "best": (not is_ref) and loss in best[metric],
                "sig": "" if is_ref else significance(r, result["baseline"]),
                "p_value": r.get("p_adj", r.get("p_value")) if r else None,
                "diff": r.get("diff_vs_baseline") if r else None,
            }
        if is_ref:
            ns = {c["n"] for c in cells.values()}
            runs = "reference" + (f" (n={max(ns)})" if ns and max(ns) else "")
        else:
            runs = runs_text(result, loss)
        out.append({"loss": loss, "reference": is_ref, "runs": runs, "flags": [] if is_ref else flags(result, loss),
                    "cells": cells, "time": "" if is_ref else time_text(result, loss)})
    return out


def time_text(result: dict[str, Any], loss: str) -> str:
    """Wall time per trial, ``mean ± CI`` in seconds, the interval never below 0 (a time is
    bounded); empty for comparisons written before compute was recorded."""
    c = (result.get("compute") or {}).get(loss)
    if not c or not _finite(c.get("train_time_s")):
        return "" if not c else "n/a"
    mean, ci = c["train_time_s"], c.get("train_time_ci95")
    if _finite(ci) and ci > 0:
        low = max(0.0, mean - ci)  # a time is never negative: the interval stops at 0
        return f"{fmt(mean, 3)} [{fmt(low, 2)}, {fmt(mean + ci, 2)}]" if low == 0.0 else f"{fmt(mean, 3)} ± {fmt(ci, 2)}"
    return fmt(mean, 3)


def _header(result: dict[str, Any], metric: str) -> str:
    return f"{metric} {'↑' if result['directions'].get(metric, True) else '↓'}"


def comparison_rows(result: dict[str, Any], markdown: bool = False) -> list[dict[str, str]]:
    """Rows for printing: loss, runs, one ``mean ± CI`` cell per metric (marked). Plain
    text (``(best)``, ``*``) or Markdown (``**bold**``, escaped ``\\*``)."""
    out = []
    for row in comparison_table(result):
        name = row["loss"]
        if markdown:
            name = f"_{name}_ (reference)" if row["reference"] else f"`{name}`"
            runs = row["runs"] + (" ⚠" if row["flags"] else "")
        else:
            name = f"({name})" if row["reference"] else name
            runs = row["runs"]
        line = {"loss": name, "runs": runs}
        if "compute" in result:
            line["time/trial s"] = row["time"]
        for metric, c in row["cells"].items():
            text = c["text"]
            if markdown:
                text = (f"**{text}**" if c["best"] else text) + c["sig"].replace("*", "\\*")
            else:
                text += c["sig"] + (" (best)" if c["best"] else "")
            line[_header(result, metric)] = text
        out.append(line)
    return out


def difference_rows(result: dict[str, Any], markdown: bool = True) -> list[dict[str, str]]:
    """Paired differences against the baseline: ``Δ ± CI (p=…; d_z=…, P(better)=…)`` per
    metric, p adjusted (Holm / BH) where the comparison has corrected statistics."""
    table = _by_loss(result)
    out = []
    for loss in result["losses"][1:]:
        row = {"loss": f"`{loss}`" if markdown else loss}
        for metric in result["metrics"]:
            r = table.get(loss, {}).get(metric)
            if not r or not r.get("n_pairs") or not _finite(r.get("diff_vs_baseline")):
                row[metric] = "n/a"
                continue
            text = f"{r['diff_vs_baseline']:+.3g}"
            if r["n_pairs"] >= 2 and _finite(r.get("diff_ci95")):
                if "p_adj" in r:
                    name = "p_holm" if r.get("correction") == "holm" else "p_bh"
                    text += (f" ± {fmt(r['diff_ci95'], 2)} ({name}={fmt(r['p_adj'], 2)}; d_z={fmt(r.get('dz'), 2)}, "
                             f"P(better)={fmt(r.get('p_improve'), 2)})")
                else:
                    text += f" ± {fmt(r['diff_ci95'], 2)} (p={fmt(r['p_value'], 2)})"
            row[metric] = text
        out.append(row)
    return out


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(rows: list[dict[str, str]]) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (dicts sharing keys)."""
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_md_escape(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


LEGEND = ("Cells: mean ± 95% CI (Student t over seeds) of the final-epoch validation metric; "
          "↑/↓ = higher/lower is better; **bold** = the loss that beats every other on that metric in paired "
          "tests after correction (Holm on the primary metric, Benjamini-Hochberg on the exploratory others; "
          "references never count); `*` / `**` = paired t-test against the baseline, adjusted p < 0.05 / < 0.01. "
          "*runs* = finished trials / seeds "
          "(the n of every statistic); diverged (NaN/Inf), collapsed and missing trials are named there (⚠) "
          "and left out of every mean. Rows in italics are references (no loss trained), not contestants.")
# Comparisons written before corrected statistics existed: what their marks mean.
LEGEND_UNCORRECTED = LEGEND.split("**bold**")[0] + (
    "**bold** = best mean of the column (no test); `*` / `**` = paired t-test against the baseline, raw "
    "(uncorrected) p < 0.05 / < 0.01. *runs*") + LEGEND.split("*runs*", 1)[1]


def comparison_markdown(result: dict[str, Any], heading_level: int = 2, heading: str | None = None) -> str:
    """The comparison as Markdown: header facts, main table, paired differences."""
    h = "#" * heading_level
    seeds = result["seeds"]
    fw = ", ".join(result["feature_weights"]) if result.get("feature_weights") else "none used"
    parts = [
        f"{h} {heading or ' · '.join([result['task'], result['dataset'], result['budget']])}\n",
        f"Losses: {', '.join(f'`{l}`' for l in result['losses'])}; seeds {', '.join(map(str, seeds))} "
        f"(n = {len(seeds)}); baseline `{result['baseline']}`; budget `{result['budget']}`; "
        f"feature-network weights: {fw}.\n",
        (LEGEND if "best" in result else LEGEND_UNCORRECTED) + "\n",
        markdown_table(comparison_rows(result, markdown=True)),
    ]
    verdict = verdict_lines(result)
    if verdict:
        parts.append("\n".join(f"- {line}" for line in verdict) + "\n")
    if len(result["losses"]) > 1:
        how = ("adjusted p; d_z; P(better) = fraction of seeds where the loss beats the baseline" if "best" in result
               else "paired t-test p, uncorrected")
        parts += [f"\nPaired difference against `{result['baseline']}` (Δ ± 95% CI, {how}):\n",
                  markdown_table(difference_rows(result))]
    return "\n".join(parts)


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """What the table lets one conclude, in words: the winner on the primary metric after
    correction or "no significant difference", the minimum detectable effect of every
    metric, and the seeds needed for ``--target-effect``. Empty for older comparisons."""
    if "best" not in result or len(result["losses"]) < 2:
        return [] if "best" in result else ["Older comparison: best = best mean and `*` = uncorrected p; "
                                               "rerun `cvloss compare` for corrected statistics."]
    primary = result.get("primary_metric") or result["metrics"][0]
    winner = (result["best"] or {}).get(primary)
    lines = [f"Primary metric `{primary}`: " + (f"`{winner}` beats every other loss (Holm-corrected paired tests)"
                                                if winner else "no significant difference between the losses "
                                                "(Holm-corrected paired tests)") + "."]
    mde = result.get("mde") or {}
    level = result.get("mde_level")
    if mde:
        n = len(result["seeds"])
        lines.append(f"Smallest difference detectable with {n} seed{'' if n == 1 else 's'} (80% power, two-sided level "
                     f"{fmt(level, 2)} = α/(k-1), SD of the paired differences pooled over the losses): "
                     + ", ".join(f"{m} {fmt(v, 3)}" for m, v in mde.items()) + ".")
    if result.get("target_effect") is not None:
        need = result.get("seeds_needed") or {}
        n_primary = need.get(primary, -1)
        lines.append(f"Seeds needed to detect a difference of {result['target_effect']:g} in `{primary}`: "
                     + (str(n_primary) if n_primary > 0 else "cannot be estimated (no spread estimate yet)") + ".")
    return lines
