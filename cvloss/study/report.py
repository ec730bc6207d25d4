"""``cvloss study report``: the study's report, hypotheses first, then its comparisons.

Four files in the study's results root, named after the study file (``study.toml`` ->
``study.md``, ``study.html``, ``study.tex``, ``study.csv``): one table of the hypotheses
registered before the lock and one of the post-hoc ones (contrast, Δ with its 95% CI and
its CI at the family's level, raw and Holm p, m, MDE, headroom, paired seeds, verdict:
:mod:`cvloss.study.hypotheses`), an intent-to-treat table when a trial failed; then each
comparison as ``cvloss report`` writes it; ``study.csv`` one row per hypothesis and
analysis, unformatted. Every value from the study file or a results file is escaped for
its format (:func:`cvloss.report.text.md_escape`, :func:`html.escape`,
:func:`cvloss.report.latex.latex_escape`). See docs/report.md.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from cvloss.io import csv_text, write_text
from cvloss.report.latex import latex_escape
from cvloss.report.text import md_code, md_escape, markdown_table
from cvloss.study.check import Plan
from cvloss.study.hypotheses import comparison_folder, verdict_words

ALPHA_NOTE = ("Δ = A − B over paired seeds (↑: higher is better, ↓: lower). p: two-sided paired t-test; p (Holm): "
              "corrected over the measurable hypotheses of its family (m; registered and post-hoc hypotheses are "
              "corrected apart); MDE: the smallest true Δ detected with 80% power at the family's level 0.05/m; "
              "inconclusive: MDE ≥ headroom (the distance from B's mean to the metric's bound the contrast moves "
              "towards); equivalent: not significant and the CI at the family's level within ±margin.")


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "∞" if x == math.inf else "n/a"
    return f"{x:.{digits}g}"


def _claim(rec: dict[str, Any], code=md_code) -> str:
    word = "better than" if rec["claim"] == "better" else "differs from"
    return f"{code(rec['a'])} {word} {code(rec['b'])}"


def cells(rec: dict[str, Any]) -> dict[str, str]:
    """The formatted cells of one hypothesis (plain text; callers escape)."""
    arrow = "↑" if rec["higher_is_better"] else "↓"
    return {"metric": f"{rec['metric']} {arrow}", "delta": f"{_num(rec['diff'])} ± {_num(rec['ci95'], 2)}",
            "family_ci": f"± {_num(rec['ci_family'], 2)} (level {_num(1 - rec['level'], 3)})",
            "p": _num(rec["p"], 2), "p_adj": _num(rec["p_adj"], 2), "m": str(rec["m"]), "mde": _num(rec["mde"], 2),
            "headroom": _num(rec["headroom"], 2), "n": str(rec["n"]), "verdict": verdict_words(rec)}


def _md_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for r in records:
        c = cells(r)
        rows.append({"hypothesis": md_code(r["hypothesis"]), "comparison": md_code(r["comparison"]),
                     "claim": _claim(r), "metric": md_escape(c["metric"]), "Δ (A − B) ± 95% CI": c["delta"],
                     "CI at family level": c["family_ci"], "p": c["p"], "p (Holm)": c["p_adj"],
                     "family (m)": f"{md_escape(r['family'])} ({c['m']})", "MDE": c["mde"],
                     "headroom": c["headroom"], "n": c["n"], "verdict": f"**{md_escape(c['verdict'])}**"
                     + (f" — post hoc: {md_escape(r['post_hoc'])}" if r["post_hoc"] else "")})
    return rows


def _groups(evaluated: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(title, analysis, records): registered, then post hoc; ITT tables only where a
    trial of a hypothesis's losses failed."""
    out = []
    for analysis, title in (("completed", ""), ("itt", ", intent to treat")):
        recs = evaluated[analysis]
        if analysis == "itt" and not any(r["failed"] for r in recs):
            continue
        for registered, label in ((True, "Registered before the lock"), (False, "Post hoc")):
            chosen = [r for r in recs if r["registered"] == registered]
            if chosen:
                out.append((label + title, analysis, chosen))
    return out


def lock_line(lock: dict[str, Any] | None, plan: Plan) -> str:
    """One sentence on the lock (plain text)."""
    if lock is None:
        return (f"{plan.study.path.name} is not locked: every hypothesis is post hoc "
                f"(lock it with `cvloss study lock` before any trial reads test).")
    commit = (lock.get("commit") or "no commit")[:12] + (" (dirty)" if lock.get("dirty") else "")
    return (f"Locked {lock['locked_utc']} at {commit}, source {str(lock.get('source_sha256'))[:12]}: "
            f"{len(lock['comparisons'])} comparison(s) and {len(lock['hypotheses'])} hypothesis(es) registered "
            f"before any trial read test.")


# ---------------------------------------------------------------------------- the comparisons
def study_comparisons(plan: Plan, replot: bool) -> list[Any]:
    """The study's comparisons as the report layer loads them (those that have run)."""
    from cvloss.report.markdown import load_comparisons

    wanted = {comparison_folder(c).resolve() for c in plan.comparisons}
    if not any((d / "compare.json").is_file() for d in wanted):
        return []
    loaded = load_comparisons(plan.out, replot=replot)
    return [r for r in loaded if Path(_path(r)).parent.resolve() in wanted]


def _path(r: Any) -> Path:
    return getattr(r, "path", None) or r["_path"]


# ---------------------------------------------------------------------------- Markdown
def study_markdown(plan: Plan, lock: dict[str, Any] | None, evaluated: dict[str, list[dict[str, Any]]],
                   results: list[Any]) -> str:
    from cvloss.report.markdown import markdown_report

    title = plan.study.title or plan.study.path.name
    parts = [f"# Study: {md_escape(title)}\n", md_escape(lock_line(lock, plan)) + "\n", "## Hypotheses\n"]
    if not plan.hypotheses:
        parts.append("The study declares no hypothesis.\n")
    for heading, _, recs in _groups(evaluated):
        parts.append(f"### {heading}\n")
        parts.append(markdown_table(_md_rows(recs)))
    parts.append(md_escape(ALPHA_NOTE) + "\n")
    parts.append("## Comparisons\n")
    for c in plan.comparisons:
        done = (comparison_folder(c) / "compare.json").is_file()
        parts.append(f"- {md_code(c.name)}: {md_code(str(comparison_folder(c)))}" + ("" if done else " (not run yet)"))
    parts.append("")
    if results:
        body = markdown_report(results, plan.out)
        page = f"{plan.study.path.stem}.html"  # this report's page, not `cvloss report`'s report.html
        parts.append(body.replace("# cvloss report\n", "", 1).replace("[report.html](report.html)",
                                                                     f"[{page}]({page})", 1))
    return "\n".join(parts)


# ---------------------------------------------------------------------------- HTML
def _html_table(recs: list[dict[str, Any]]) -> str:
    head = ["hypothesis", "comparison", "claim", "metric", "Δ (A − B) ± 95% CI", "CI at family level", "p",
            "p (Holm)", "family (m)", "MDE", "headroom", "n", "verdict"]
    rows = []
    for r in recs:
        c = cells(r)
        claim = _claim(r, code=lambda v: f"<code>{html.escape(str(v))}</code>")
        vals = [f"<code>{html.escape(r['hypothesis'])}</code>", html.escape(r["comparison"]), claim,
                html.escape(c["metric"]), html.escape(c["delta"]), html.escape(c["family_ci"]), c["p"], c["p_adj"],
                f"{html.escape(r['family'])} ({c['m']})", c["mde"], c["headroom"], c["n"],
                f"<b>{html.escape(c['verdict'])}</b>" + (f" — post hoc: {html.escape(r['post_hoc'])}"
                                                          if r["post_hoc"] else "")]
        rows.append("<tr>" + "".join(f'<td class="name">{v}</td>' if i < 4 else f"<td>{v}</td>"
                                     for i, v in enumerate(vals)) + "</tr>")
    return ('<div class="tablewrap"><table class="wide"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr>" + "".join(rows) + "</table></div>")


def hypotheses_html(plan: Plan, lock: dict[str, Any] | None, evaluated: dict[str, list[dict[str, Any]]]) -> str:
    title = plan.study.title or plan.study.path.name
    parts = [f'<section id="study-hypotheses"><h2>Study: {html.escape(title)}</h2>',
             f"<p>{html.escape(lock_line(lock, plan))}</p>"]
    for heading, _, recs in _groups(evaluated):
        parts.append(f"<h3>{html.escape(heading)}</h3>{_html_table(recs)}")
    parts.append(f'<p class="muted">{html.escape(ALPHA_NOTE)}</p></section>')
    return "\n".join(parts)


def study_html(plan: Plan, lock: dict[str, Any] | None, evaluated: dict[str, list[dict[str, Any]]],
               results: list[Any]) -> str:
    """The comparisons' page (:func:`cvloss.report.html.html_report`) with the hypotheses
    section first; a page of its own when no comparison has run."""
    section = hypotheses_html(plan, lock, evaluated)
    if not results:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>cvloss study</title></head>'
                f"<body>{section}</body></html>\n")
    from cvloss.report.html import html_report

    page = html_report(results, plan.out)
    mark = '<nav class="toc">'
    at = page.find(mark)
    return page[:at] + section + page[at:] if at >= 0 else page.replace("</body>", section + "</body>", 1)


# ---------------------------------------------------------------------------- LaTeX
def hypotheses_latex(evaluated: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for heading, _, recs in _groups(evaluated):
        lines += [r"\begin{table}[ht]\centering\small", f"\\caption{{Hypotheses: {latex_escape(heading)}}}",
                  r"\begin{tabular}{lllrrrrl}", r"\toprule",
                  r"hypothesis & claim & metric & $\Delta$ (A$-$B) $\pm$ 95\% CI & $p$ (Holm) & $m$ & MDE & verdict \\",
                  r"\midrule"]
        for r in recs:
            c = cells(r)
            claim = _claim(r, code=lambda v: f"\\texttt{{{latex_escape(v)}}}")
            lines.append(" & ".join([f"\\texttt{{{latex_escape(r['hypothesis'])}}}", claim,
                                     latex_escape(c["metric"].replace("↑", "(higher)").replace("↓", "(lower)")),
                                     latex_escape(c["delta"].replace("±", "+/-")), c["p_adj"], c["m"], c["mde"],
                                     latex_escape(c["verdict"].replace("≥", ">=").replace("±", "+/-"))
                                     + (" (post hoc)" if r["post_hoc"] else "")]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CSV and all
def csv_rows(evaluated: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    keys = ("hypothesis", "comparison", "a", "b", "claim", "metric", "higher_is_better", "family", "margin",
            "analysis", "registered", "post_hoc", "ran", "n", "diff", "ci95", "ci_family", "level", "p", "p_adj", "m",
            "mde", "headroom", "within_margin", "verdict", "failed", "why")
    return [{k: r.get(k) for k in keys} for recs in evaluated.values() for r in recs]


def render_study_report(plan: Plan, lock: dict[str, Any] | None, evaluated: dict[str, list[dict[str, Any]]],
                        replot: bool = False) -> dict[str, str]:
    """The four files' texts by kind (``md``, ``html``, ``tex``, ``csv``); nothing is
    written but, with ``replot``, each comparison's standard plots."""
    from cvloss.report.latex import report_latex

    results = study_comparisons(plan, replot)
    return {"md": study_markdown(plan, lock, evaluated, results),
            "html": study_html(plan, lock, evaluated, results),
            "tex": hypotheses_latex(evaluated) + (report_latex(results) if results else ""),
            "csv": csv_text(csv_rows(evaluated))}


def report_paths(plan: Plan) -> dict[str, Path]:
    """Where the four files go: the study's results root, named after the study file."""
    return {kind: plan.out / f"{plan.study.path.stem}.{kind}" for kind in ("md", "html", "tex", "csv")}


def write_study_report(plan: Plan, lock: dict[str, Any] | None, evaluated: dict[str, list[dict[str, Any]]],
                       replot: bool = False) -> dict[str, Path]:
    """Write the four files (module docstring) into the study's results root; returns
    their paths by kind. Everything is read before the first file is written."""
    texts = render_study_report(plan, lock, evaluated, replot)
    out = report_paths(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    for kind, text in texts.items():
        write_text(out[kind], text)
    return out
