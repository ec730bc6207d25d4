"""``report.html``: the whole report as ONE self-contained file -- inline CSS, every image
a base64 ``data:`` URI, no script, no external resource -- so it can be mailed, attached to
a paper's supplement or opened offline and still show everything.

Same content as ``REPORT.md`` (see :mod:`cvloss.report.markdown`), plus a colour key whose
swatches are the plots' colours and hatches (:mod:`cvloss.report.style`) and table
cells styled by their marks (best, significant, flagged trials). :func:`write_reports`
writes both files.

The page is rendered by Jinja2 templates with autoescaping (:mod:`cvloss.report.templates`):
the functions here only gather plain data (the ``*_view`` functions: strings, numbers,
lists), so no value of a results file can reach the page as markup, whatever it holds.
Images are embedded only from regular files inside their comparison folder
(:func:`cvloss.io.file_inside`), read through the same check (:func:`data_uri`)."""
from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path
from typing import Any

from cvloss.report.items import item_verdict_lines
from cvloss.report.style import MARKER_GLYPHS, loss_style, metric_unit, report_key, result_key
from cvloss.report.tables import (FAILURES, ITT_LEGEND, LEGEND, comparison_table, compute_columns, difference_rows,
                                  fmt, has_failures, mixed_line, note_lines, provenance_lines, success_text,
                                  verdict_lines)
from cvloss.report.templates import render_page
from cvloss.report.tuning import search_score_text, stability_text
from cvloss.report.text import PLAIN
from cvloss.io import file_inside, write_csv, write_text
from cvloss.report.latex import report_latex
from cvloss.report.runs import merge_run_files
from cvloss.report.markdown import ReportedComparison, _budget_line, comparison_title, group_by_task_dataset, \
    load_comparisons, markdown_report, plot_title, provenance_rows
from cvloss.result import ComparisonResult, reads_result

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _hatch_css(hatch: str) -> str:
    """A CSS background that imitates a matplotlib hatch on a swatch (so the key still
    tells losses apart in grey print)."""
    ink = "rgba(0,0,0,.55)"
    if hatch in ("//", "\\\\"):
        angle = 45 if hatch == "//" else -45
        return f"repeating-linear-gradient({angle}deg, {ink} 0 1px, transparent 1px 4px)"
    if hatch in ("--", "||"):
        angle = 0 if hatch == "--" else 90
        return f"repeating-linear-gradient({angle}deg, {ink} 0 1px, transparent 1px 4px)"
    if hatch in ("xx", "++"):
        a, b = (45, -45) if hatch == "xx" else (0, 90)
        return (f"repeating-linear-gradient({a}deg, {ink} 0 1px, transparent 1px 4px), "
                f"repeating-linear-gradient({b}deg, {ink} 0 1px, transparent 1px 4px)")
    if hatch in ("..", "oo", "**"):
        return f"radial-gradient({ink} 0.8px, transparent 1.2px) 0 0 / 4px 4px"
    return "none"


def look_of(loss: str, key: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """A loss's swatch as the templates draw it: ``color`` and ``hatch_css``, its look in
    ``key`` (the report's, see :func:`cvloss.report.style.result_key`), else on its own."""
    st = key[loss] if key is not None else loss_style(loss)
    return {"color": st["color"], "hatch_css": _hatch_css(st["hatch"])}


def _looks(losses: list[str], key: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {loss: look_of(loss, key) for loss in losses}


def data_uri(folder: Path, name: str) -> str | None:
    """The plot ``name`` of comparison folder ``folder`` as a base64 ``data:`` URI
    (PNG/JPEG/SVG by suffix); None unless it is a regular file of ``folder`` with one
    link (:func:`cvloss.io.file_inside`): a symbolic or hard link to a file elsewhere is
    never read. Checked again on the open file (opened without following a link), so a
    file swapped in after the first check is not read either."""
    path = file_inside(folder, name)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_nlink == 1):
            return None
        data = fh.read()
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@reads_result
def shown_metrics(result: ComparisonResult) -> tuple[list[str], list[str]]:
    """``(metrics with a value somewhere, metrics n/a for every row)``: a column that says
    n/a everywhere (FID offline) is folded into a note instead of taking a column."""
    table = comparison_table(result)
    empty = [m for m in result.metrics if all(row["cells"][m]["text"] == "n/a" for row in table)]
    return [m for m in result.metrics if m not in empty], empty


@reads_result
def table_view(result: ComparisonResult, analysis: str = "completed") -> dict[str, Any]:
    """The marked comparison table (all-n/a columns left out, see :func:`shown_metrics`)
    as the ``comparison_table`` template draws it: completed trials, or ``analysis="itt"``
    (intent to treat)."""
    metrics, _ = shown_metrics(result)
    extra = compute_columns(result)
    rows = []
    for row in comparison_table(result, analysis):
        cells = [{"text": c["text"], "best": c["best"], "sig": c["sig"],
                  "p": f"{c['p_value']:.3g}" if c["sig"] else ""} for c in (row["cells"][m] for m in metrics)]
        rows.append({"loss": row["loss"], "reference": row["reference"], "runs": row["runs"],
                     "baseline": row["loss"] == result.baseline, "flagged": bool(row["flags"]),
                     "success": "" if row["reference"] else success_text(result, row["loss"]),
                     "time": row["time"], "compute": [row["compute"].get(c, "") for c in extra], "cells": cells})
    return {"metrics": [{"name": m, "unit": metric_unit(result.task, m) or m,
                         "arrow": "↑" if result.directions.get(m, True) else "↓"} for m in metrics],
            "success": result.success is not None, "timed": result.compute is not None, "compute_columns": extra,
            "rows": rows,
            "looks": _looks(result.losses, result_key(result))}


@reads_result
def difference_view(result: ComparisonResult, analysis: str = "completed") -> dict[str, Any] | None:
    """Paired differences against the baseline for the ``difference_table`` template;
    None for a comparison of one loss."""
    if len(result.losses) < 2:
        return None
    metrics, _ = shown_metrics(result)
    rows = difference_rows(result, markdown=False, analysis=analysis)
    return {"baseline": result.baseline, "metrics": metrics, "looks": _looks(result.losses, result_key(result)),
            "rows": [{"loss": r["loss"], "cells": [r[m] for m in metrics]} for r in rows]}


@reads_result
def tuning_view(r: ComparisonResult) -> dict[str, Any] | None:
    """The search record of a tuned comparison: what was searched and what won per loss."""
    t = r.tuning
    if not t:
        return None
    rows = [{"loss": spec, "chosen": ", ".join(f"{k}={v}" for k, v in rec["chosen"].items()),
             "score": search_score_text(rec, rec["chosen_index"]), "cost": fmt(rec["cost_s"], 3),
             "same": ", ".join(f"t{i}" for i in rec.get("indistinguishable") or []) or "—",
             "repeats": stability_text(rec.get("stability"), markdown=False),
             "flags": "; ".join(rec["flags"]) or "—"}
            for spec, rec in ((s, t["losses"][s]) for s in r.losses)]
    return {"space": "; ".join(t["space"]), "trials": t["trials"], "sampler": t["sampler"],
            "sampler_seed": t["sampler_seed"], "tuning_seeds": t["tuning_seeds"], "metric": t["metric"],
            "k": t.get("tune_seeds", 1), "r": t.get("repeats", 1), "rows": rows,
            "looks": _looks(r.losses, result_key(r))}


def _left_out(r: ComparisonResult) -> list[tuple[str, str]]:
    """``[(loss, "1 diverged, 1 missing")]``: the losses with trials left out of the means."""
    out = []
    for loss in r.losses:
        states = r.status.get(loss, [])
        counts = [f"{states.count(k)} {k}" for k in FAILURES if k in states]
        if counts:
            out.append((loss, ", ".join(counts)))
    return out


def _figures(r: ReportedComparison) -> list[dict[str, str]]:
    """The comparison's plots that are regular files inside its folder, as data URIs."""
    cmp_dir = Path(r.path).parent
    figures = []
    for key, name in r.plots.items():
        src = data_uri(cmp_dir, name)
        if src is not None:
            figures.append({"src": src, "title": plot_title(key, r.split), "path": f"{r.rel}/{name}"})
    return figures


def section_view(r: ReportedComparison) -> dict[str, Any]:
    """One comparison's section: facts, tables, verdict, tuning, plots, command."""
    _, folded = shown_metrics(r)
    itt = None
    if has_failures(r) and r.itt is not None:
        itt = {"legend": ITT_LEGEND, "table": table_view(r, "itt"), "verdict": verdict_lines(r, "itt", PLAIN),
               "differences": difference_view(r, "itt")}
    return {
        "anchor": r.anchor, "title": comparison_title(r), "losses": r.losses,
        "looks": _looks(r.losses, result_key(r)), "baseline": r.baseline, "seeds": r.seeds,
        "budget": r.budget,
        "feature_weights": ", ".join(r.feature_weights) if r.feature_weights else "none used",
        "data": "; ".join(r.prov["data"]), "budget_line": _budget_line(r), "left_out": _left_out(r),
        "mixed": mixed_line(r) or "", "table": table_view(r), "folded": ", ".join(folded),
        "trial_notes": note_lines(r, PLAIN),
        "verdict": verdict_lines(r, form=PLAIN) + item_verdict_lines(r.item_analysis, PLAIN),
        "differences": difference_view(r),
        "notes": provenance_lines(r, PLAIN), "itt": itt, "tuning": tuning_view(r), "figures": _figures(r),
        "command": r.command,
    }


def _legend() -> list[tuple[str, str]]:
    """The table legend as ``(kind, text)`` runs: ``text`` plain, or ``bold`` / ``sig`` /
    ``italic`` for the marks it shows (drawn as the tables draw them)."""
    kinds = {"**bold**": ("bold", "bold"), "`*`": ("sig", "*"), "`**`": ("sig", "**"), "*runs*": ("italic", "runs")}
    parts = re.split(r"(\*\*bold\*\*|`\*\*`|`\*`|\*runs\*)", LEGEND)
    return [kinds.get(p, ("text", p)) for p in parts if p]


def _provenance_view(results: list[ReportedComparison]) -> dict[str, Any]:
    rows = provenance_rows(results, markdown=False)
    comparisons = []
    for r in results:
        p = r.prov
        comparisons.append({
            "task": r.task, "dataset": r.dataset, "title": comparison_title(r), "command": r.command,
            "folder": r.rel, "commits": ", ".join(p["git_commits"]) or "unknown",
            "devices": "; ".join(p["devices"]) or "unknown",
            "versions": ", ".join(f"{k} {' / '.join(v)}" for k, v in p["versions"].items()) or "unknown",
            "n_trials": p["n_trials"], "n_folders": sum(len(d) for d in r.trials.values())})
    return {"columns": list(rows[0]), "rows": rows, "comparisons": comparisons}


def page_view(results: list[ReportedComparison], root: Path) -> dict[str, Any]:
    """Everything the page template prints, as plain data."""
    groups = [{"id": f"{task}-{dataset}".lower(), "task": task, "dataset": dataset,
               "sections": [section_view(r) for r in rs]} for task, dataset, rs in group_by_task_dataset(results)]
    looks = report_key(results)  # every loss of every comparison, no two alike
    key = [{"loss": l, "look": look_of(l, looks), "glyph": MARKER_GLYPHS[looks[l]["pattern"]]} for l in sorted(looks)]
    return {"n_comparisons": len(results), "n_trials": sum(len(d) for r in results for d in r.trials.values()),
            "root": str(root), "groups": groups, "legend": _legend(), "key": key,
            "provenance": _provenance_view(results)}


def html_report(results: list[ReportedComparison], root: Path) -> str:
    """The report page (see the module docstring) for comparisons loaded by
    :func:`cvloss.report.markdown.load_comparisons`."""
    return render_page(page_view(results, root))


__all__ = ["html_report", "data_uri", "look_of", "page_view", "write_reports"]


def write_reports(root: Path, html: bool = True, replot: bool = True) -> dict[str, Path]:
    """Write ``<root>/REPORT.md``, ``tables.tex``, ``runs.csv`` and (``html``)
    ``<root>/report.html``; returns their paths by kind (``md``, ``tex``, ``runs``, ``html``).
    Comparisons of different code, torch versions or thread counts are reported side by
    side, each with its own provenance line and a row in the provenance table; one that
    pooled mixed code (``compare --allow-mixed``) is marked in every output. A
    comparison's ``runs.csv`` is merged only when it is a regular file of its folder (not
    a link to a file elsewhere, see :func:`cvloss.report.runs.merge_run_files`)."""
    root = Path(root)
    results = load_comparisons(root, replot=replot)
    out = {"md": root / "REPORT.md", "tex": root / "tables.tex", "runs": root / "runs.csv"}
    # every input read before the first output is written: a refused file leaves no half report
    runs = merge_run_files([Path(r.path).parent / "runs.csv" for r in results], root)
    write_text(out["md"], markdown_report(results, root))
    write_text(out["tex"], report_latex(results))
    write_csv(out["runs"], runs)
    if html:
        out["html"] = root / "report.html"
        write_text(out["html"], html_report(results, root))
    return out
