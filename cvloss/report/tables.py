"""Comparison tables: one row per loss, one column per metric, ``mean ± 95% CI``.

Marks, the same in the console, Markdown and HTML: *best* (``result.best``: the loss that
beats every other one after correction, Holm for the primary metric, BH for the others;
references are never best); ``*`` / ``**`` (the paired difference against the baseline
has ``p_adj`` < 0.05 / < 0.01, a family other than best's: :func:`console_legend` says
so); *runs* (``done/seeds`` and the trials left out: diverged, collapsed, degenerate,
missing, identical replicates; ⚠ and :func:`note_lines` give the reasons); and one
verdict per contrast against the baseline from :func:`cvloss.verdict.contrast_verdict`
(:func:`contrast_verdicts`). :func:`comparison_table` computes these once; the renderers
only format. See docs/report.md.
"""
from __future__ import annotations

import math
import re
import statistics
from typing import Any

from cvloss import verdict as vd
from cvloss.result import ComparisonResult, reads_result
from cvloss.report.text import CONSOLE, MARKDOWN, Form, fmt, markdown_table, md_code, md_escape
from cvloss.report.tuning import tuning_markdown
from cvloss.report.items import item_lines

ALPHA = 0.05
ALPHA_STRONG = 0.01


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _alpha(result: ComparisonResult) -> float:
    """The comparison's family-wise level (comparisons that predate it: :data:`ALPHA`)."""
    return ALPHA if result.alpha is None else result.alpha


_fmt = fmt  # old private name


def _by_loss(result: ComparisonResult, analysis: str = "completed") -> dict[str, dict[str, dict[str, Any]]]:
    """``{loss: {metric: row}}`` of one analysis (``completed`` or ``itt``; reference rows
    and the rows of comparisons written before analyses existed go with either)."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result.rows:
        if row.get("analysis", analysis) in (analysis, "reference"):
            table.setdefault(row["loss"], {})[row["metric"]] = row
    return table


FAILURES = ("diverged", "collapsed", "degenerate", "crashed", "missing")


@reads_result
def has_failures(result: ComparisonResult) -> bool:
    """Whether any trial of the comparison failed (diverged, collapsed, degenerate,
    crashed): then the intent-to-treat table differs from the completed-trials one."""
    return any(s in ("diverged", "collapsed", "degenerate", "crashed") for runs in result.status.values()
               for s in runs)


@reads_result
def best_losses(result: ComparisonResult, metric: str, analysis: str = "completed") -> set[str]:
    """The loss(es) with the best mean of ``metric``; references never count. Empty when
    there is a single loss (nothing to compare) or no finite mean."""
    if result.best is not None:  # corrected: a winner only when it beats every other loss
        best = result.best if analysis == "completed" else (result.itt or {}).get("best")
        winner = (best or {}).get(metric)
        return {winner} if winner else set()
    refs = set(result.references or [])
    rows = [r for r in result.rows if r["metric"] == metric and r["loss"] in result.losses
            and r["loss"] not in refs and not r.get("reference") and r["n"] > 0 and _finite(r["mean"])]
    if len(result.losses) < 2 or not rows:
        return set()
    pick = max if result.directions.get(metric, True) else min
    target = pick(r["mean"] for r in rows)
    return {r["loss"] for r in rows if r["mean"] == target}


def _best(result: ComparisonResult, metric: str) -> str | None:
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


@reads_result
def runs_text(result: ComparisonResult, loss: str) -> str:
    """``2/3 (1 diverged)``: finished trials of the seeds, then the excluded ones, then
    ``(2 identical)``: seeds that repeat another seed's trial exactly."""
    status = result.status.get(loss, [])
    done = sum(s == "done" for s in status)
    text = f"{done}/{len(status)}"
    for state in FAILURES:
        count = sum(s == state for s in status)
        if count:
            text += f" ({count} {state})"
    repeats = identical_repeats(result, loss)
    if repeats:
        text += f" ({repeats} identical)"
    return text


_runs_cell = runs_text


@reads_result
def identical_repeats(result: ComparisonResult, loss: str) -> int:
    """How many of ``loss``'s seeds repeat an earlier seed's trial exactly (a group of
    three identical seeds repeats twice): the seeds the statistics count too often."""
    groups = (result.identical_replicates or {}).get(loss) or []
    return sum(len(g) - 1 for g in groups)


@reads_result
def flags(result: ComparisonResult, loss: str) -> list[str]:
    """What makes a row ⚠: states that left trials out of the means (``"1 diverged"``),
    identical replicates (``"2 identical"``) and trials that today's degenerate rule flags
    on stored test numbers though their status predates it."""
    status = result.status.get(loss, [])
    out = [f"{sum(s == k for s in status)} {k}" for k in FAILURES if k in status]
    if identical_repeats(result, loss):
        out.append(f"{identical_repeats(result, loss)} identical")
    late = _predating(result, loss)
    if late:
        out.append(f"{len(late)} degenerate on test by today's rule")
    return out


def _predating(result: ComparisonResult, loss: str) -> list[tuple[int, str]]:
    """(seed, reason) of ``loss``'s trials written before the degenerate rule that its
    numbers part flags on their stored test metrics."""
    old = (result.degenerate_predates or {}).get(loss) or []
    why = (result.degenerate_on_test or {}).get(loss) or []
    return [(seed, r) for seed, o, r in zip(result.seeds, old, why) if o and r]


@reads_result
def comparison_table(result: ComparisonResult, analysis: str = "completed") -> list[dict[str, Any]]:
    """Structured rows: ``{"loss", "reference", "runs", "flags", "cells": {metric: cell},
    "compute": {column: text}}`` with ``cell = {"mean", "ci95", "n", "text", "best", "sig",
    "p_value", "diff"}``; losses first (in comparison order, baseline first), then
    references. ``analysis``: ``completed`` (finished trials) or ``itt`` (intent to treat)."""
    table = _by_loss(result, analysis)
    best = {m: best_losses(result, m, analysis) for m in result.metrics}
    out = []
    refs = [r for r in (result.references or []) if r not in result.losses]
    for loss in list(result.losses) + refs:
        is_ref = loss in refs
        cells = {}
        for metric in result.metrics:
            r = table.get(loss, {}).get(metric)
            n = r["n"] if r else 0
            mean = r["mean"] if r and n else None
            ci = r["ci95"] if r and n >= 2 and _finite(r.get("ci95")) else None
            text = "n/a" if mean is None or not _finite(mean) else interval_text(mean, ci, *bound(result, metric))
            cells[metric] = {
                "mean": mean, "ci95": ci, "n": n, "text": text,
                "best": (not is_ref) and loss in best[metric],
                "sig": "" if is_ref else significance(r, result.baseline),
                "p_value": r.get("p_adj", r.get("p_value")) if r else None,
                "diff": r.get("diff_vs_baseline") if r else None,
            }
        if is_ref:
            ns = {c["n"] for c in cells.values()}
            runs = "reference" + (f" (n={max(ns)})" if ns and max(ns) else "")
        else:
            runs = runs_text(result, loss)
        out.append({"loss": loss, "reference": is_ref, "runs": runs, "flags": [] if is_ref else flags(result, loss),
                    "cells": cells, "time": "" if is_ref else time_text(result, loss),
                    "compute": {} if is_ref else compute_cells(result, loss)})
    return out


@reads_result
def bound(result: ComparisonResult, metric: str) -> tuple[float | None, float | None]:
    """The (low, high) range of ``metric`` the comparison recorded (none: unbounded)."""
    b = (result.bounds or {}).get(metric)
    return (b[0], b[1]) if isinstance(b, (list, tuple)) and len(b) == 2 else (None, None)


def clipped_interval(mean: float, ci: float, low: float | None = None,
                     high: float | None = None) -> tuple[float, float, bool]:
    """``(lo, hi, cut)``: the interval ``mean ± ci`` cut at the quantity's bounds (``low``,
    ``high``; None: unbounded), and whether it was cut. The tables and the plots' whiskers
    both use it, so a plot never shows a CI the table does not."""
    lo, hi = mean - ci, mean + ci
    cut = (low is not None and lo < low) or (high is not None and hi > high)
    return (lo if low is None else max(low, lo)), (hi if high is None else min(high, hi)), bool(cut)


def interval_text(mean: float, ci: float | None, low: float | None = None, high: float | None = None,
                  digits: int = 4) -> str:
    """``mean ± ci``, or ``mean [a, b]`` when the interval would cross a bound of the
    quantity (a rate below 0 or above 1, a time below 0): it is cut at the bound."""
    if ci is None or not _finite(ci):
        return fmt(mean, digits)
    lo, hi, cut = clipped_interval(mean, ci, low, high)
    if cut:
        return f"{fmt(mean, digits)} [{fmt(lo, 3)}, {fmt(hi, 3)}]"
    return f"{fmt(mean, digits)} ± {fmt(ci, 2)}"


@reads_result
def success_text(result: ComparisonResult, loss: str) -> str:
    """Share of the seeds whose trial finished without diverging, collapsing, ending
    degenerate or crashing."""
    status = result.status.get(loss, [])
    return f"{100 * sum(s == 'done' for s in status) / len(status):.0f}%" if status else "n/a"


def _bounded(mean: Any, ci: Any, digits: int = 3) -> str:
    """A quantity that cannot be negative (a time, a size, a count): its interval stops at 0."""
    return interval_text(mean, ci, 0.0, None, digits) if _finite(mean) else "n/a"


#: compute column -> (compute key, its CI key); shown when any loss of the comparison has it.
COMPUTE_COLUMNS = {"s/step": ("step_time_s", "step_time_ci95"), "peak MiB": ("peak_mem_mib", "peak_mem_mib_ci95"),
                   "G updates": ("generator_updates", "generator_updates_ci95")}


@reads_result
def compute_columns(result: ComparisonResult) -> list[str]:
    """The compute columns this comparison's trials recorded (older ones: none)."""
    compute = result.compute or {}
    return [col for col, (key, _) in COMPUTE_COLUMNS.items() if any(key in (c or {}) for c in compute.values())]


@reads_result
def compute_cells(result: ComparisonResult, loss: str) -> dict[str, str]:
    """Per-step time, peak memory and generator updates of one loss (mean over its
    finished trials, bounded intervals); only the columns :func:`compute_columns` names."""
    c = (result.compute or {}).get(loss) or {}
    return {col: _bounded(c.get(key), c.get(ci)) for col, (key, ci) in COMPUTE_COLUMNS.items()
            if col in compute_columns(result)}


@reads_result
def time_text(result: ComparisonResult, loss: str) -> str:
    """Wall time per trial, ``mean ± CI`` in seconds, the interval never below 0 (a time is
    bounded); empty for comparisons written before compute was recorded."""
    c = (result.compute or {}).get(loss)
    if not c:
        return ""
    return _bounded(c.get("train_time_s"), c.get("train_time_ci95"))


def _header(result: ComparisonResult, metric: str, markdown: bool = False) -> str:
    name = md_escape(metric) if markdown else metric
    return f"{name} {'↑' if result.directions.get(metric, True) else '↓'}"


@reads_result
def comparison_rows(result: ComparisonResult, markdown: bool = False, analysis: str = "completed",
                    primary_first: bool = False) -> list[dict[str, str]]:
    """Rows for printing: loss, runs, success, compute, one ``mean ± CI`` cell per metric
    (marked). Plain text (``(best)``, ``*``) or Markdown (``**bold**``, escaped ``\\*``).
    ``primary_first`` (the console) moves the primary metric right after the wall time, so
    a table cut to a terminal's width keeps what the verdict is about beside the loss."""
    out = []
    for row in comparison_table(result, analysis):
        name = row["loss"]
        if markdown:
            name = f"_{md_escape(name)}_ (reference)" if row["reference"] else md_code(name)
            runs = row["runs"] + (" ⚠" if row["flags"] else "")
        else:
            name = f"({name})" if row["reference"] else name
            runs = row["runs"]
        line = {"loss": name, "runs": runs}
        if result.success is not None:
            line["success"] = "" if row["reference"] else success_text(result, row["loss"])
        if result.compute is not None:
            line["time/trial s"] = row["time"]
            for col in compute_columns(result):
                line[col] = row["compute"].get(col, "")
        for metric, c in row["cells"].items():
            text = c["text"]
            if markdown:
                text = (f"**{text}**" if c["best"] else text) + c["sig"].replace("*", "\\*")
            else:
                text += c["sig"] + (" (best)" if c["best"] else "")
            line[_header(result, metric, markdown)] = text
        out.append(_primary_moved(result, line) if primary_first else line)
    return out


def _primary_moved(result: ComparisonResult, line: dict[str, str]) -> dict[str, str]:
    """``line`` with the primary metric's column right after loss, runs, success and time."""
    primary = _header(result, result.primary_metric or result.metrics[0])
    if primary not in line:
        return line
    keys = [k for k in line if k != primary]
    at = max(keys.index(k) for k in ("loss", "runs", "success", "time/trial s") if k in keys) + 1
    return {k: line[k] for k in keys[:at] + [primary] + keys[at:]}


_ONE_STAR = re.compile(r"(?<!\*)\*(?!\*)")
_CUT = re.compile(r"\[[^\]]*, [^\]]*\]")


def _family(result: ComparisonResult, metrics: set[str]) -> str:
    """The correction applied to the tests of ``metrics``: Holm on the primary metric,
    Benjamini-Hochberg on the exploratory others (as :func:`cvloss.run.stats.annotate_comparison`)."""
    primary = result.primary_metric or result.metrics[0]
    if metrics == {primary}:
        return f"Holm on {primary}"
    if primary not in metrics:
        return "Benjamini-Hochberg"
    return f"Holm on {primary}, Benjamini-Hochberg on the other metrics"


@reads_result
def console_legend(result: ComparisonResult, rows: list[dict[str, str]]) -> str:
    """One legend, in words, for the marks that ``rows`` carry and only those: ``rows`` are
    :func:`comparison_rows` (plain) cut to the columns actually printed. Names the test
    family of each mark: ``*``/``**`` are each loss against the baseline, ``(best)`` the
    leader against each other loss, each corrected over its own k - 1 tests, so the two can
    disagree (a ``(best)`` loss without a star); the legend says so when both are printed.
    Empty when nothing is marked."""
    if not rows:
        return ""
    by_header = {_header(result, m): m for m in result.metrics}
    shown = [h for h in rows[0] if h in by_header]
    cells = [(by_header[h], str(r.get(h, ""))) for r in rows for h in shown]
    one = {m for m, t in cells if _ONE_STAR.search(t)}
    two = {m for m, t in cells if "**" in t}
    best = {m for m, t in cells if "(best)" in t}
    corrected, k, base = result.best is not None, len(result.losses) - 1, result.baseline
    alpha = _alpha(result)
    items = ["↑/↓ = higher/lower is better"] if shown else []
    if one or two:
        marks = " / ".join(m for m, on in (("*", one), ("**", two)) if on)
        levels = " / ".join(f"< {a:g}" for a, on in ((ALPHA, one), (ALPHA_STRONG, two)) if on)
        items.append(f"{marks} = paired t-test against the baseline {base}, "
                     + (f"p_adj {levels} ({_family(result, one | two)}, over the {k} tests against {base})" if corrected
                        else f"raw (uncorrected) p {levels}"))
    if best:
        items.append(f"(best) = beats each of the {k} other losses in paired t-tests, p_adj < {alpha:g} "
                     f"({_family(result, best)}, over those {k} tests)" if corrected
                     else "(best) = best mean (no test)")
    if corrected and best and (one or two):
        items.append(f"the two marks test different families (the best against each other loss; each loss against "
                     f"{base}), so a (best) loss can lack a star")
    refs = {f"({r})" for r in result.references or [] if r not in result.losses}
    if any(r.get("loss") in refs for r in rows):
        items.append("(name) = reference, no loss trained: not a contestant")
    if any(_CUT.search(str(v)) for r in rows for h, v in r.items() if h not in ("loss", "runs")):
        items.append("[a, b] = 95% CI cut at the bound of the quantity")
    return ("Legend: " + "; ".join(items) + ".") if items else ""


@reads_result
def difference_rows(result: ComparisonResult, markdown: bool = True, analysis: str = "completed") -> list[dict[str, str]]:
    """Paired differences against the baseline: ``Δ ± CI (p=…; d_z=…, P(better)=…)`` per
    metric, p adjusted (Holm / BH) where the comparison has corrected statistics."""
    table = _by_loss(result, analysis)
    out = []
    for loss in result.losses[1:]:
        row = {"loss": md_code(loss) if markdown else loss}
        for metric in result.metrics:
            r = table.get(loss, {}).get(metric)
            key = md_escape(metric) if markdown else metric  # a column header in Markdown
            if not r or not r.get("n_pairs") or not _finite(r.get("diff_vs_baseline")):
                row[key] = "n/a"
                continue
            text = f"{r['diff_vs_baseline']:+.3g}"
            if r["n_pairs"] >= 2 and _finite(r.get("diff_ci95")):
                if "p_adj" in r:
                    name = "p_holm" if r.get("correction") == "holm" else "p_bh"
                    text += (f" ± {fmt(r['diff_ci95'], 2)} ({name}={fmt(r['p_adj'], 2)}; d_z={fmt(r.get('dz'), 2)}, "
                             f"P(better)={fmt(r.get('p_improve'), 2)})")
                else:
                    text += f" ± {fmt(r['diff_ci95'], 2)} (p={fmt(r['p_value'], 2)})"
            row[key] = text
        out.append(row)
    return out


LEGEND = ("Cells: mean ± 95% CI (Student t over seeds) of the metric on the held-out test split, measured once "
          "after the final epoch (learning curves and every choice use val); "
          "↑/↓ = higher/lower is better; **bold** = the loss that beats every other on that metric in paired "
          "tests after correction (Holm on the primary metric, Benjamini-Hochberg on the exploratory others; "
          "references never count); `*` / `**` = paired t-test against the baseline, adjusted p < 0.05 / < 0.01 "
          "(over the k - 1 tests against the baseline: a different family from bold's tests of the leader against "
          "each other loss, so a bold loss can lack a star). "
          "*runs* = finished trials / seeds "
          "(the n of every statistic); diverged (NaN/Inf), collapsed, degenerate (worse than the trivial answer, "
          "the task's rule on val), crashed and missing trials are named there (⚠) "
          "and left out of this table's means; identical replicates (seeds that repeat another exactly) are marked "
          "there too but stay in the means; the reasons are listed under the table; *success* = the share of seeds "
          "that finished without failing; "
          "the intent-to-treat table below (when a trial failed) counts them. Compute: wall time per trial "
          "(training + val evaluation), training time per step, peak memory, generator updates (adversarial "
          "tasks), each a mean over the finished trials. Rows in italics are references (no loss trained), "
          "not contestants.")
# Comparisons written before corrected statistics existed: what their marks mean.
LEGEND_UNCORRECTED = LEGEND.split("**bold**")[0] + (
    "**bold** = best mean of the column (no test); `*` / `**` = paired t-test against the baseline, raw "
    "(uncorrected) p < 0.05 / < 0.01. *runs*") + LEGEND.split("*runs*", 1)[1]


@reads_result
def comparison_markdown(result: ComparisonResult, heading_level: int = 2, heading: str | None = None) -> str:
    """The comparison as Markdown: header facts, main table, paired differences. Every
    value from the results file is escaped (:func:`cvloss.report.text.md_escape`,
    ``md_code``), ``heading`` (plain text) too."""
    h = "#" * heading_level
    seeds = result.seeds
    fw = ", ".join(result.feature_weights) if result.feature_weights else "none used"
    parts = [
        f"{h} {md_escape(heading or ' · '.join([result.task, result.dataset, result.budget]))}\n",
        f"Losses: {', '.join(md_code(l) for l in result.losses)}; seeds {', '.join(map(str, seeds))} "
        f"(n = {len(seeds)}); baseline {md_code(result.baseline)}; budget {md_code(result.budget)}; "
        f"feature-network weights: {md_escape(fw)}.\n",
        (LEGEND if result.best is not None else LEGEND_UNCORRECTED) + "\n",
        markdown_table(comparison_rows(result, markdown=True)),
    ]
    trials = note_lines(result, MARKDOWN)
    if trials:
        parts.append("\n".join(f"- {line}" for line in trials) + "\n")
    notes = provenance_lines(result, MARKDOWN)
    if notes:
        parts.append("\n".join(f"- {line}" for line in notes) + "\n")
    verdict = verdict_lines(result, form=MARKDOWN)
    if verdict:
        parts.append("\n".join(f"- {line}" for line in verdict) + "\n")
    if len(result.losses) > 1:
        how = ("adjusted p; d_z; P(better) = fraction of seeds where the loss beats the baseline"
               if result.best is not None else "paired t-test p, uncorrected")
        parts += [f"\nPaired difference against {md_code(result.baseline)} (Δ ± 95% CI, {how}):\n",
                  markdown_table(difference_rows(result))]
    parts += item_lines(result.item_analysis, heading_level)  # "Image by image"
    if has_failures(result) and result.itt is not None:
        parts += [f"\n{h}# Intent to treat\n",
                  ITT_LEGEND + "\n", markdown_table(comparison_rows(result, markdown=True, analysis="itt"))]
        itt = verdict_lines(result, analysis="itt", form=MARKDOWN)
        if itt:
            parts.append("\n".join(f"- {line}" for line in itt) + "\n")
        if len(result.losses) > 1:
            parts += [f"\nPaired difference against {md_code(result.baseline)}, intent to treat:\n",
                      markdown_table(difference_rows(result, analysis="itt"))]
    if result.tuning:
        parts.append(tuning_markdown(result, heading_level + 1))
    return "\n".join(parts)


ITT_LEGEND = ("Every trial that ran counts here: a collapsed or degenerate trial at its own final metrics, a "
              "diverged or crashed "
              "one at the untrained model's test metrics at its seed (it bought nothing over the initial weights); "
              "only trials that never ran are left out. A loss that fails on some seeds therefore looks worse "
              "here, not better.")


def _ran_on(c: dict[str, Any]) -> str:
    """``"1 thread(s) on cpu:x86_64 (...) (6 trials)"`` for one provenance combination;
    comparisons written before devices were recorded give the thread count alone."""
    where = f" on {c['device']}" if c.get("device") not in (None, "unrecorded") else ""
    return f"{c.get('threads', 'unrecorded')} thread(s){where} ({c.get('trials', '?')} trials)"


@reads_result
def is_mixed(result: ComparisonResult) -> bool:
    """Whether a comparison pooled trials of different code (only with ``--allow-mixed``)."""
    prov = result.provenance
    return isinstance(prov, dict) and bool(prov.get("mixed"))


@reads_result
def mixed_line(result: ComparisonResult) -> str | None:
    """The one line every output (stdout, Markdown, LaTeX, HTML) prints for a comparison
    that pooled trials of different code; None for one code."""
    if not is_mixed(result):
        return None
    combos = [c for c in result.provenance.get("combinations") or [] if isinstance(c, dict)]
    codes: dict[tuple[str, str], int] = {}
    for c in combos:
        key = (str(c.get("source")), str(c.get("torch")))
        codes[key] = codes.get(key, 0) + int(c.get("trials") or 0)
    return ("⚠ MIXED CODE: pooled with --allow-mixed from trials of different code: "
            + "; ".join(f"source {src}, torch {tv} ({n} trials)" for (src, tv), n in codes.items())
            + ". Differences between losses may come from the code, not the loss.")


@reads_result
def provenance_lines(result: ComparisonResult, form: Form = CONSOLE) -> list[str]:
    """Where the numbers come from: the split, the code, mixed trials, how memory was
    measured; each value from data written by ``form`` (:class:`cvloss.report.text.Form`)."""
    lines = []
    if result.split:
        lines.append(f"Measured on the {form.code(result.split)} split.")
    prov = result.provenance or {}
    if prov:
        combos = prov.get("combinations") or []
        commits = ", ".join(c[:10] for c in prov.get("commits") or []) or "no git commit recorded"
        line = mixed_line(result)
        if line:
            lines.append(form.text(line))
        elif combos:
            sources = ", ".join(dict.fromkeys(str(c.get("source")) for c in combos if isinstance(c, dict)))
            dirty = " (with uncommitted changes)" if prov.get("dirty") else ""
            lines.append(form.text(f"Code: commit {commits}{dirty}, source {sources}, torch {combos[0].get('torch')}."))
        ran = sorted({_ran_on(c) for c in combos if isinstance(c, dict)})
        if ran:
            lines.append(form.text("Ran with " + "; ".join(ran) + " (recorded, not pooled on: threads and devices "
                                   "change float reduction order, not the method)."))
    folds = result.folds or {}
    primary = result.primary_metric or ""
    for loss, per_seed in folds.items():
        if per_seed:
            lines.append(f"{form.code(loss)}, {form.text(per_seed[0].get('protocol') or 'k-fold')} protocol, "
                         f"{form.code(primary)} mean ± SE over folds: "
                         + "; ".join(f"seed {form.text(f['seed'])}: {fmt(f['mean'])} ± {fmt(f['se'], 2)}"
                                     for f in per_seed) + ".")
    policies = {loss: c.get("optimizer") for loss, c in (result.compute or {}).items() if c and c.get("optimizer")}
    if policies:
        same = len(set(policies.values())) == 1
        lines.append("Optimiser policy of the adversarial objectives: " + (
            f"{form.code(next(iter(policies.values())))} for every loss" if same else
            ", ".join(f"{form.code(l)} {form.text(p)}" for l, p in policies.items()))
            + " (equal: one Adam and equal generator updates for every objective; paper: each objective's published "
            "optimiser).")
    hows = sorted({c.get("peak_mem_how") for c in (result.compute or {}).values() if c and c.get("peak_mem_how")})
    if hows:
        lines.append(f"Peak memory: {form.text('; '.join(hows))}.")
    return lines


@reads_result
def verdict_bounds(result: ComparisonResult, metric: str) -> tuple[float | None, float | None]:
    """The (low, high) range the headroom of ``metric``'s contrasts is measured to: the
    task's own bound for the comparison's dataset when the task is known (gan's ``modes``
    stops at the mixture's mode count, which comparisons written before recorded as
    unbounded), else the recorded one (:func:`bound`)."""
    low, high = bound(result, metric)
    try:
        from cvloss.tasks import get_task_class

        t_low, t_high = get_task_class(result.task).spec.bounds(metric, result.dataset or None)
    except Exception:  # an unknown task (a results file from elsewhere): the recorded bound
        return low, high
    return (t_low if t_low is not None else low), (t_high if t_high is not None else high)


@reads_result
def contrast_verdicts(result: ComparisonResult, metric: str, analysis: str = "completed") -> list[dict[str, Any]]:
    """One record per loss other than the baseline: ``loss``, ``diff``, ``p_adj``,
    ``n_pairs``, ``mde``, ``headroom``, ``family_m``, ``verdict`` -- the contrast's
    verdict (:func:`cvloss.verdict.contrast_verdict`). Rows written with it keep theirs;
    for a comparison written before it, the MDE is computed again from the stored row: the
    SD of its paired differences from their CI half-width and n, at its family's level
    alpha/m (m = the metric's contrasts with a p-value), and the headroom from the
    baseline's mean and :func:`verdict_bounds` -- the same function, the same answer."""
    alpha = _alpha(result)
    up = result.directions.get(metric, True)
    rows = [r for r in result.rows if r.get("metric") == metric and r.get("analysis", "completed") == analysis
            and not r.get("reference") and r.get("loss") in result.losses]
    by_loss = {r["loss"]: r for r in rows}
    base_row = by_loss.get(result.baseline) or {}
    contrasts = [by_loss.get(loss) or {"loss": loss} for loss in result.losses[1:]]
    m = sum(1 for r in contrasts if _finite(r.get("p_value", r.get("p_adj"))))
    low, high = verdict_bounds(result, metric)
    room = vd.headroom(base_row.get("mean") if _finite(base_row.get("mean")) else math.nan, up, low, high)
    primary = result.primary_metric or result.metrics[0]
    out = []
    for r in contrasts:
        diff, p_adj = r.get("diff_vs_baseline"), r.get("p_adj", r.get("p_value"))
        # rows without n_pairs (older comparisons) paired every seed
        n = int(r["n_pairs"]) if _finite(r.get("n_pairs")) else len(result.seeds) if _finite(diff) else 0
        if r.get("verdict") in vd.VERDICTS:  # written by the comparison with this function
            rec = {"mde": r.get("mde"), "headroom": r.get("headroom"), "family_m": r.get("family_m"),
                   "verdict": r["verdict"]}
        else:
            sd = r.get("sd_diff") if _finite(r.get("sd_diff")) else vd.sd_from_ci(r.get("diff_ci95"), n)
            mde = vd.contrast_mde(sd, n, m, alpha)
            rec = {"mde": mde, "headroom": room, "family_m": m,
                   "verdict": vd.contrast_verdict(diff if _finite(diff) else math.nan,
                                                  p_adj if _finite(p_adj) else math.nan, n, mde, room, up, alpha)}
        correction = r.get("correction") or (("holm" if metric == primary else "bh") if "p_adj" in r else "")
        out.append({"loss": r["loss"], "diff": diff, "p_adj": p_adj, "n_pairs": n, "correction": correction, **rec})
    return out


def _contrast_words(c: dict[str, Any], form: Form) -> str:
    """``dice`` (Δ 0.03, p_holm = 0.004) / ``bce`` (MDE 0.021) / ``x`` (MDE 3.1 ≥ headroom
    3.03): one contrast as its verdict group lists it."""
    name = form.code(c["loss"])
    p = "p_holm" if c.get("correction") == "holm" else "p_bh" if c.get("correction") == "bh" else "p"
    if c["verdict"] in (vd.APPEARS, vd.REVERSED):
        return f"{name} (Δ {fmt(c['diff'], 3)}, {p} = {fmt(c['p_adj'], 3)})"
    if c["verdict"] == vd.NOT_DETECTED:
        return f"{name} (Δ {fmt(c['diff'], 3)}, MDE {fmt(c['mde'], 3)})"
    if c["verdict"] == vd.INCONCLUSIVE:
        if not _finite(c.get("mde")):
            return f"{name} (no MDE: no spread of its paired differences recorded)"
        room = "∞" if c.get("headroom") == math.inf else fmt(c.get("headroom"), 3)
        return f"{name} (MDE {fmt(c['mde'], 3)} ≥ headroom {room})"
    return name


#: How each verdict group is introduced under a table (the contrast favours the loss).
_GROUPS = ((vd.APPEARS, "appears (better than the baseline)"), (vd.REVERSED, "reversed (worse)"),
           (vd.NOT_DETECTED, "not detected"),
           (vd.INCONCLUSIVE, "inconclusive (MDE ≥ headroom: this study could not have detected it)"),
           (vd.NOT_MEASURABLE, "not measurable"))


def _against_baseline(result: ComparisonResult, metric: str, analysis: str, form: Form = CONSOLE) -> str:
    """Every contrast of ``metric`` against the baseline, grouped by its verdict
    (:func:`contrast_verdicts`): which losses differ significantly after correction and
    how, which nulls rule out a difference of their MDE, and which could not have
    detected one. (Without a winner, a loss can still differ from the baseline: "no
    difference" must not be said then.)"""
    found = contrast_verdicts(result, metric, analysis)
    base = form.code(result.baseline)
    m = max((int(c["family_m"]) for c in found if _finite(c.get("family_m"))), default=0)
    level = fmt(vd.family_level(m, _alpha(result)), 2)
    head = (f"against the baseline {base} (Holm over its m = {m} contrasts; each MDE at level α/m = {level}, "
            f"from the SD of that contrast's own paired differences): ")
    parts = []
    for kind, words in _GROUPS:
        group = [c for c in found if c["verdict"] == kind]
        if group:
            parts.append(f"{words}: " + ", ".join(_contrast_words(c, form) for c in group))
    return head + ("; ".join(parts) if parts else "no contrast")


@reads_result
def verdict_lines(result: ComparisonResult, analysis: str = "completed", form: Form = CONSOLE) -> list[str]:
    """What the table lets one conclude, in words: the winner on the primary metric after
    correction (or that none beats every other), every contrast against the baseline with
    its verdict (:func:`contrast_verdicts`: appears / reversed / not detected with its MDE
    / inconclusive / not measurable), the other metrics' inconclusive contrasts, the
    minimum detectable effect of every metric (per contrast, summarised as the median and
    range, saying so), and the seeds needed for ``--target-effect``. With fewer than two
    paired seeds (``--seeds 1``) no test ran: it says so, and that the MDE is undefined.
    Values from data are written by ``form`` (:class:`cvloss.report.text.Form`)."""
    if result.best is None or len(result.losses) < 2:
        if result.best is not None:
            return []
        return [f"Older comparison: best = best mean and {form.code('*')} = uncorrected p; rerun "
                f"{form.code('cvloss compare')} for corrected statistics."]
    primary = result.primary_metric or result.metrics[0]
    n = _paired_seeds(result, primary, analysis)
    if n < 2:
        return _untestable(result, primary, n, form)
    stats = {"best": result.best, "mde": result.mde} if analysis == "completed" else (result.itt or {})
    winner = (stats.get("best") or {}).get(primary)
    if winner:
        said = f"{form.code(winner)} beats every other loss (Holm-corrected paired tests); "
    else:
        said = "no loss beats every other; "
    lines = [f"Primary metric {form.code(primary)}: {said}{_against_baseline(result, primary, analysis, form)}."]
    others = []
    for metric in result.metrics:
        if metric == primary:
            continue
        stuck = [c for c in contrast_verdicts(result, metric, analysis) if c["verdict"] == vd.INCONCLUSIVE]
        if stuck:
            others.append(f"{form.text(metric)}: " + ", ".join(form.code(c["loss"]) for c in stuck))
    if others:
        lines.append("Inconclusive on the other metrics (MDE ≥ headroom: no difference could have been detected): "
                     + "; ".join(others) + ".")
    summary, pooled = [], []
    stored = stats.get("mde") or {}
    for metric in result.metrics:
        mdes = [c["mde"] for c in contrast_verdicts(result, metric, analysis) if _finite(c.get("mde"))]
        if mdes:
            lo, mid, hi = min(mdes), statistics.median(mdes), max(mdes)
            spread = f" [{fmt(lo, 2)}–{fmt(hi, 2)}]" if hi > lo else ""
            summary.append(f"{form.text(metric)} {fmt(mid, 3)}{spread}")
        elif _finite(stored.get(metric)):  # an older comparison's rows hold no spread: its own pooled MDE
            pooled.append(f"{form.text(metric)} {fmt(stored[metric], 3)}")
    n = len(result.seeds)
    seeds_text = f"{n} seed{'' if n == 1 else 's'}"
    if summary:
        lines.append(f"Smallest difference detectable with {seeds_text} (MDE, 80% power; per contrast at its "
                     "family's level α/m from the SD of its own paired differences; shown: the median over the "
                     "contrasts against the baseline [min–max]): " + ", ".join(summary) + ".")
    if pooled:
        lines.append(f"Smallest difference detectable with {seeds_text}, as this older comparison recorded it (80% "
                     f"power, two-sided level {fmt(result.mde_level, 2)} = α/(k-1), SD of the paired "
                     "differences pooled over the losses): " + ", ".join(pooled) + ".")
    if result.target_effect is not None:
        need = result.seeds_needed or {}
        n_primary = need.get(primary, -1)
        lines.append(f"Seeds needed to detect a difference of {result.target_effect:g} in {form.code(primary)}: "
                     + (str(n_primary) if n_primary > 0 else "cannot be estimated (no spread estimate yet)") + ".")
    return lines


@reads_result
def note_lines(result: ComparisonResult, form: Form = CONSOLE) -> list[str]:
    """What the trial folders say beyond the statuses (:mod:`cvloss.report.trial_notes`),
    one ⚠ line each: the degenerate trials and why (counted as failures), the test-split
    notes of the degenerate rule, the trials written before the rule that its numbers part
    flags now (not counted: the rule decides on val), identical replicates, the rule's
    words; then the unit of replication, always."""
    lines = []
    seeds = result.seeds
    rule = result.degenerate_rule or _task_attr(result, "degenerate_rule")

    def listed(per_loss: dict[str, list[Any]], skip: dict[str, list[Any]] | None = None) -> str:
        items = []
        for loss in result.losses:
            reasons = (per_loss or {}).get(loss) or []
            hide = ((skip or {}).get(loss) or [None] * len(reasons))
            shown = [(seed, r) for seed, r, h in zip(seeds, reasons, hide) if r and not h]
            if shown:
                first = shown[0][1]
                items.append(f"{form.code(loss)} seed{'s' if len(shown) > 1 else ''} "
                             + ", ".join(str(seed) for seed, _ in shown) + f" ({form.text(first)}"
                             + (", ..." if len(shown) > 1 else "") + ")")
        return "; ".join(items)

    val = listed(result.degenerate or {})
    if val:
        lines.append(f"⚠ Degenerate, decided on val and counted as failures (success rate, intent to treat): {val}.")
    predates = result.degenerate_predates or {}
    on_test = {loss: [None if (predates.get(loss) or [False] * len(seeds))[i] else r for i, r in enumerate(rs)]
               for loss, rs in (result.degenerate_on_test or {}).items()}
    test = listed(on_test, result.degenerate)
    if test:
        lines.append(f"Note: on the test split the degenerate rule also flags {test} (the rule decides on val; "
                     "not counted).")
    late = {loss: [r if (predates.get(loss) or [False] * len(seeds))[i] else None for i, r in enumerate(rs)]
            for loss, rs in (result.degenerate_on_test or {}).items()}
    old = listed(late)
    if old:
        lines.append(f"⚠ Degenerate by today's rule, applied to the stored test metrics of trials written before it "
                     f"(rules on model outputs cannot be; the statuses, success rates and intent-to-treat values "
                     f"above are as written; rerun to decide them on val): {old}.")
    if rule and (val or test or old):
        lines.append(f"Degenerate rule ({form.text(result.task)}): {form.text(rule)}.")
    groups = result.identical_replicates or {}
    same = [f"{form.code(loss)} seeds " + ", ".join("{" + ", ".join(map(str, g)) + "}" for g in groups[loss])
            for loss in result.losses if groups.get(loss)]
    if same:
        lines.append("⚠ Identical replicates (the same metrics and training curves): " + "; ".join(same)
                     + ". Each counts as a seed in the statistics, so n overstates the distinct replicates.")
    unit = result.replicate_unit
    if unit:
        lines.append(f"Unit of replication: {form.text(unit)}.")
    elif _task_attr(result, "replicate_unit"):  # a comparison written before the record: today's definition
        lines.append(f"Unit of replication as this version of cvloss draws it (the comparison predates the record; "
                     f"its seeds may have drawn otherwise): {form.text(_task_attr(result, 'replicate_unit'))}.")
    return lines


def _task_attr(result: ComparisonResult, name: str) -> str:
    """A field of a task's spec (its degenerate rule, its unit of replication) for a
    comparison written before compare.json carried it; empty for an unknown task."""
    try:
        from cvloss.tasks import get_task_class

        return str(getattr(get_task_class(result.task).spec, name, "") or "")
    except Exception:  # a results file of an unknown task
        return ""


def _paired_seeds(result: ComparisonResult, metric: str, analysis: str) -> int:
    """The most seeds at which a loss and the baseline both have ``metric``: the n of the
    paired tests (rows without ``n_pairs``, from older comparisons: the seed count)."""
    ns = [r["n_pairs"] for r in result.rows
          if r.get("metric") == metric and r.get("analysis", "completed") == analysis and not r.get("reference")
          and r.get("loss") != result.baseline and _finite(r.get("n_pairs"))]
    return int(max(ns)) if ns else len(result.seeds)


def _untestable(result: ComparisonResult, primary: str, n: int, form: Form = CONSOLE) -> list[str]:
    """The verdict when no paired test could run (fewer than two paired seeds): saying
    "none differs significantly" there would report a test that never ran."""
    why = ("one seed" if len(result.seeds) == 1
           else f"{n} seed{'' if n == 1 else 's'} where a loss and the baseline both finished")
    lines = [f"Primary metric {form.code(primary)}: no paired test is possible with {why} "
             "(a paired t-test needs n >= 2), "
             "so no loss can be called better or worse; rerun with 3 or more seeds.",
             f"Smallest difference detectable with {why}: undefined (no spread of the paired differences "
             "to estimate it from)."]
    if result.target_effect is not None:
        lines.append(f"Seeds needed to detect a difference of {result.target_effect:g} in {form.code(primary)}: "
                     "cannot be estimated (no spread estimate yet).")
    return lines
