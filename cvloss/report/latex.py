"""Comparison tables as LaTeX fragments to paste into a paper: ``compare.tex`` per
comparison and ``tables.tex`` for a whole report.

Each comparison is one ``table`` float (caption, label, a booktabs ``tabular`` scaled to
the line width, the legend as a footnote-size note) with the same marks as the Markdown
and HTML tables (:func:`cvloss.report.tables.comparison_table`): best in bold,
significance as superscript ``*`` / ``**``, references in italics. The fragment needs
``\\usepackage{booktabs,graphicx}`` in the preamble; nothing else.
"""
from __future__ import annotations

import re
from typing import Any

from cvloss.report.tables import comparison_table, fmt, mixed_line, note_lines
from cvloss.result import ComparisonResult, reads_result

PREAMBLE_NEEDS = ("booktabs", "graphicx")

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    # not special in text mode, but written as their own commands so a loss spec reads the
    # same in any font (and `*` never meets a starred-command parser)
    "*": r"\textasteriskcentered{}", "+": r"\texttt{+}", "|": r"\textbar{}",
    # a line break would end a comment line early, and a blank line is a paragraph break,
    # which a table cell or a caption does not allow
    "\n": " ", "\r": " ",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))


def latex_escape(text: Any) -> str:
    """``text`` with every LaTeX special character written as a command, so any loss spec
    (``l1+0.01*perceptual(layers=[relu2_2])``, ``x^2``) typesets as it reads, and no value
    from a results file can be a command (``\\input{...}`` becomes text): every value the
    tables print goes through here."""
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))


def _label(result: ComparisonResult) -> str:
    key = "-".join(str(v) for v in (result.task, result.dataset, result.budget))
    return "tab:cvloss-" + re.sub(r"[^A-Za-z0-9-]+", "-", key).strip("-").lower()


def _cell(c: dict[str, Any]) -> str:
    if c["mean"] is None or c["text"] == "n/a":
        return "n/a"
    # numbers (digits, '.', 'e', signs) need no escaping
    text = fmt(c["mean"]) + (f" $\\pm$ {fmt(c['ci95'], 2)}" if c["ci95"] is not None else "")
    if c["best"]:
        text = f"\\textbf{{{text}}}"
    if c["sig"]:
        text += f"$^{{{c['sig']}}}$"
    return text


@reads_result
def comparison_latex(result: ComparisonResult) -> str:
    """One comparison as a ``table`` float (see the module docstring)."""
    rows = comparison_table(result)
    metrics = list(result.metrics)
    arrows = {m: r"$\uparrow$" if result.directions.get(m, True) else r"$\downarrow$" for m in metrics}
    timed = result.compute is not None
    head = " & ".join(["loss", "runs"] + (["time/trial (s)"] if timed else [])
                      + [f"{latex_escape(m)} {arrows[m]}" for m in metrics]) + r" \\"
    body = []
    for i, row in enumerate(rows):
        if row["reference"] and (i == 0 or not rows[i - 1]["reference"]):
            body.append(r"\midrule")
        name = latex_escape(row["loss"])
        name = f"\\textit{{{name}}}" if row["reference"] else f"\\texttt{{{name}}}"
        cells = ([name, latex_escape(row["runs"])] + ([latex_escape(row["time"]).replace("±", "$\\pm$")] if timed else [])
                 + [_cell(row["cells"][m]) for m in metrics])
        body.append(" & ".join(cells) + r" \\")
    corrected = result.best is not None
    legend = ("mean $\\pm$ 95\\% CI over seeds; bold: the loss that beats every other after correction (Holm on the "
              "primary metric, Benjamini--Hochberg on the others); $^{*}$/$^{**}$: adjusted paired-test p $<$ 0.05 / "
              "$<$ 0.01 against the baseline" if corrected else
              "mean $\\pm$ 95\\% CI over seeds; bold: best mean; $^{*}$/$^{**}$: uncorrected paired-test p $<$ 0.05 / "
              "$<$ 0.01 against the baseline")
    fw = ", ".join(result.feature_weights or []) or "none"
    caption = (f"{latex_escape(result.task)} on {latex_escape(result.dataset)}, budget "
               f"\\texttt{{{latex_escape(result.budget)}}}: seeds {latex_escape(', '.join(map(str, result.seeds)))}; "
               f"baseline \\texttt{{{latex_escape(result.baseline)}}}; feature weights {latex_escape(fw)}.")
    lines = [
        f"% cvloss comparison {latex_escape(result.task)}/{latex_escape(result.dataset)}/"
        f"{latex_escape(result.budget)}; needs \\usepackage{{{','.join(PREAMBLE_NEEDS)}}}",
        r"\begin{table}[htbp]",
        r"\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{{_label(result)}}}",
        r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{l l " + "r " * (len(metrics) + timed) + "}",
        r"\toprule",
        head,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        f"\\par\\smallskip\\footnotesize {legend}; runs: finished trials / seeds. Rows in italics are references.",
        # the warning sign is left out: pdflatex's default fonts have no glyph for it
        *([f"\\par\\textbf{{{latex_escape(mixed_line(result).replace('⚠ ', ''))}}}"] if mixed_line(result) else []),
        *(f"\\par {latex_escape(line.replace('⚠ ', '').replace('`', ''))}" for line in note_lines(result)),
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def report_latex(results: list[ComparisonResult]) -> str:
    """Every comparison of a report, one float each, in report order."""
    head = (f"% cvloss report: {len(results)} comparison table(s); needs \\usepackage{{{','.join(PREAMBLE_NEEDS)}}}\n")
    return head + "\n".join(comparison_latex(r) for r in results)
