"""``report.html``: the whole report as ONE self-contained file -- inline CSS, every image
a base64 ``data:`` URI, no script, no external resource -- so it can be mailed, attached to
a paper's supplement or opened offline and still show everything.

Same content as ``REPORT.md`` (see :mod:`cvloss.report.markdown`), plus a colour key whose
swatches are the plots' colours and hatches (:mod:`cvloss.report.style`) and table
cells styled by their marks (best, significant, flagged trials). :func:`write_reports`
writes both files."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from cvloss.report.style import HATCHES, MARKER_GLYPHS, loss_style, metric_unit, report_key, result_key
from cvloss.report.tables import (ITT_LEGEND, LEGEND, comparison_table, compute_columns, difference_rows, fmt,
                                  has_failures, mixed_line, provenance_lines, success_text, verdict_lines)
from cvloss.io import file_inside, write_csv, write_text
from cvloss.report.latex import report_latex
from cvloss.report.runs import merge_run_files
from cvloss.report.markdown import _budget_line, comparison_title, group_by_task_dataset, load_comparisons, \
    markdown_report, plot_title, provenance_rows

CSS = """
:root { --fg:#1b1b1b; --muted:#5a5a5a; --line:#d0d0d0; --best:#e3f1e3; --bad:#b00000; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       max-width: 1240px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 21px; margin-top: 40px; border-bottom: 2px solid var(--fg); }
h3 { font-size: 17px; margin-top: 30px; border-bottom: 1px solid var(--line); }
.muted, .facts { color: var(--muted); } .facts { margin: 4px 0 10px; } .facts b { color: var(--fg); font-weight: 600; }
nav.toc { background: #f6f6f6; border: 1px solid var(--line); padding: 8px 18px; margin: 14px 0; }
nav.toc ul { margin: 4px 0; padding-left: 20px; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f6f6; border: 1px solid var(--line); padding: 8px 10px; white-space: pre-wrap; word-break: break-all; }
/* Tables fit the page: cells wrap (at spaces, then anywhere) instead of a horizontal
   scroll box, which print would cut off. */
.tablewrap { margin: 8px 0 14px; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
table.wide { font-size: 11.5px; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: right; white-space: normal;
         overflow-wrap: anywhere; }
td.name { min-width: 7em; }
th { background: #efefef; font-weight: 600; } td.name, th.name { text-align: left; }
tbody tr:nth-child(even) td { background: #fafafa; }
td.best { font-weight: 700; background: var(--best) !important; }
td.best::after { content: " \\2605"; font-weight: 400; }
sup.sig { color: #003e8a; font-weight: 700; }
tr.ref td { font-style: italic; color: var(--muted); }
td.flag, span.flag { color: var(--bad); font-weight: 700; }
.swatch { display: inline-block; width: 22px; height: 13px; border: 1px solid #000; vertical-align: -2px; margin-right: 6px; }
.legend { font-size: 12.5px; color: var(--muted); max-width: 980px; }
figure { margin: 14px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 12.5px; color: var(--muted); }
.key { display: flex; flex-wrap: wrap; gap: 6px 18px; } .key span { white-space: nowrap; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 18px; }
dl.prov dt { font-weight: 600; } dl.prov dd { margin: 0; word-break: break-word; }
@page { size: A4; margin: 12mm; }
@media print { body { max-width: none; padding: 0; font-size: 10px; } nav.toc { display: none; }
  table, table.wide { font-size: 8px; } th, td { padding: 1px 3px; } td.name { min-width: 0; }
  pre { font-size: 8.5px; } figure img { max-width: 100%; }
  h2, h3 { break-after: avoid; } figure, table { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
"""


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


def swatch(loss: str, key: dict[str, dict[str, Any]] | None = None) -> str:
    """A loss's colour and hatch as an inline box: its look in ``key`` (the report's, see
    :func:`cvloss.report.style.result_key`), else its look on its own."""
    st = key[loss] if key is not None else loss_style(loss)
    return (f'<span class="swatch" style="background:{_hatch_css(st["hatch"])}, {st["color"]};'
            f'background-color:{st["color"]}" title="{escape(loss)}"></span>')


def data_uri(path: Path) -> str:
    """A file as a base64 ``data:`` URI (PNG/JPEG/SVG by suffix)."""
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(
        path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def shown_metrics(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(metrics with a value somewhere, metrics n/a for every row)``: a column that says
    n/a everywhere (FID offline) is folded into a note instead of taking a column."""
    table = comparison_table(result)
    empty = [m for m in result["metrics"] if all(row["cells"][m]["text"] == "n/a" for row in table)]
    return [m for m in result["metrics"] if m not in empty], empty


def _table_open(n_columns: int) -> str:
    return f'<div class="tablewrap"><table{" class=wide" if n_columns > 8 else ""}>'


def comparison_table_html(result: dict[str, Any], analysis: str = "completed") -> str:
    """The marked comparison table as an HTML ``<table>`` (all-n/a columns left out; see
    :func:`shown_metrics`): completed trials, or ``analysis="itt"`` (intent to treat)."""
    metrics, _ = shown_metrics(result)
    heads = "".join(f'<th title="{escape(metric_unit(m) or m)}">{escape(m)} '
                    f'{"↑" if result["directions"].get(m, True) else "↓"}</th>' for m in metrics)
    timed = "compute" in result
    extra_cols = compute_columns(result)
    time_head = ('<th title="wall time of a trial, seconds (mean ± 95% CI)">time/trial s</th>'
                 + "".join(f"<th>{escape(c)}</th>" for c in extra_cols)) if timed else ""
    success = "success" in result
    success_head = '<th title="share of seeds that finished without failing">success</th>' if success else ""
    out = [f'{_table_open(len(metrics))}<thead><tr><th class="name">loss</th><th>runs</th>{success_head}{time_head}'
           f'{heads}</tr></thead><tbody>']
    for row in comparison_table(result, analysis):
        time_cell = (f"<td>{escape(row['time'])}</td>" + "".join(f"<td>{escape(row['compute'].get(c, ''))}</td>"
                                                                for c in extra_cols)) if timed else ""
        if success:
            time_cell = f"<td>{'' if row['reference'] else escape(success_text(result, row['loss']))}</td>" + time_cell
        if row["reference"]:
            name = f"{escape(row['loss'])} (reference)"
            out.append(f'<tr class="ref"><td class="name">{name}</td><td>{escape(row["runs"])}</td>{time_cell}')
        else:
            base = " (baseline)" if row["loss"] == result["baseline"] else ""
            name = f"{swatch(row['loss'], result_key(result))}<code>{escape(row['loss'])}</code>{base}"
            flag = ' class="flag"' if row["flags"] else ""
            warn = " ⚠" if row["flags"] else ""
            out.append(f'<tr><td class="name">{name}</td><td{flag}>{escape(row["runs"])}{warn}</td>{time_cell}')
        for m in metrics:
            c = row["cells"][m]
            cls = ' class="best"' if c["best"] else ""
            sig = f'<sup class="sig">{c["sig"]}</sup>' if c["sig"] else ""
            p = f' title="p = {c["p_value"]:.3g} vs baseline"' if c["sig"] else ""
            out.append(f"<td{cls}{p}>{escape(c['text'])}{sig}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def difference_table_html(result: dict[str, Any], analysis: str = "completed") -> str:
    rows = difference_rows(result, markdown=False, analysis=analysis)
    if not rows:
        return ""
    metrics, _ = shown_metrics(result)
    heads = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    out = [f'{_table_open(len(metrics))}<thead><tr><th class="name">loss − {escape(result["baseline"])}</th>{heads}'
           "</tr></thead><tbody>"]
    for r in rows:
        out.append(f'<tr><td class="name">{swatch(r["loss"], result_key(result))}<code>{escape(r["loss"])}</code></td>'
                   + "".join(f"<td>{escape(r[m])}</td>" for m in metrics) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _comparison_section(r: dict[str, Any]) -> str:

    fw = ", ".join(r["feature_weights"]) if r.get("feature_weights") else "none used"
    cmp_dir = Path(r["_path"]).parent
    bad = [f"{escape(l)}: {escape(', '.join(f))}" for l in r["losses"] for f in [
        [f"{r['status'][l].count(k)} {k}" for k in ("diverged", "collapsed", "missing") if k in r["status"].get(l, [])]] if f]
    parts = [
        f'<section id="{r["_anchor"]}"><h3>{escape(comparison_title(r))}</h3>',
        '<p class="facts">'
        f"<b>Losses</b> {', '.join(swatch(l, result_key(r)) + '<code>' + escape(l) + '</code>' for l in r['losses'])} · "
        f"<b>baseline</b> <code>{escape(r['baseline'])}</code> · <b>seeds</b> {', '.join(map(str, r['seeds']))} "
        f"(n = {len(r['seeds'])}) · <b>budget</b> <code>{escape(r['budget'])}</code> · "
        f"<b>feature-network weights</b> {escape(fw)}</p>",
    ]
    if r["_prov"]["data"]:
        parts.append(f'<p class="facts"><b>Data</b> {escape("; ".join(r["_prov"]["data"]))}</p>')
    if _budget_line(r):
        parts.append(f'<p class="facts">{escape(_budget_line(r))}</p>')
    if bad:
        parts.append(f'<p><span class="flag">⚠ left out of the means:</span> {"; ".join(bad)}</p>')
    if mixed_line(r):
        parts.append(f'<p><span class="flag">{escape(mixed_line(r))}</span></p>')
    parts.append(comparison_table_html(r))
    _, folded = shown_metrics(r)
    if folded:
        parts.append(f'<p class="muted">n/a for every loss and reference, so not shown as columns: '
                     f'{escape(", ".join(folded))} (the data line above says why, e.g. missing weights offline).</p>')
    verdict = verdict_lines(r)
    if verdict:
        parts.append("<ul>" + "".join(f"<li>{escape(line.replace('`', ''))}</li>" for line in verdict) + "</ul>")
    if len(r["losses"]) > 1:
        parts.append(f"<p class=\"muted\">Paired difference against <code>{escape(r['baseline'])}</code> "
                     "(Δ ± 95% CI over seeds; p adjusted for the many tests where the comparison has it; d_z; "
                     "P(better)):</p>")
        parts.append(difference_table_html(r))
    notes = provenance_lines(r)
    if notes:
        parts.append("<ul class=\"muted\">" + "".join(f"<li>{escape(line.replace('`', ''))}</li>" for line in notes)
                     + "</ul>")
    if has_failures(r) and "itt" in r:
        parts += [f"<h4>Intent to treat</h4><p class=\"muted\">{escape(ITT_LEGEND)}</p>",
                  comparison_table_html(r, "itt")]
        parts.append("<ul>" + "".join(f"<li>{escape(line.replace('`', ''))}</li>" for line in verdict_lines(r, "itt"))
                     + "</ul>")
        if len(r["losses"]) > 1:
            parts.append(difference_table_html(r, "itt"))
    if r.get("tuning"):
        parts.append(_tuning_html(r))
    for key, name in r["plots"].items():
        path = file_inside(cmp_dir, name)  # checked again where the bytes are read
        if path is None:
            continue
        title = escape(plot_title(key, r.get("split")))
        parts.append(f'<figure><img src="{data_uri(path)}" alt="{title}">'
                     f"<figcaption>{title} (<code>{escape(r['_rel'])}/{escape(name)}</code>)"
                     "</figcaption></figure>")
    parts.append(f'<p class="muted">Reproduce:</p><pre>{escape(r["_command"])}</pre></section>')
    return "\n".join(parts)


def _tuning_html(r: dict[str, Any]) -> str:
    """The search record of a tuned comparison: what was searched and what won per loss."""
    t = r["tuning"]
    rows = "".join(
        f"<tr><td class=\"name\">{swatch(spec, result_key(r))}<code>{escape(spec)}</code></td>"
        f"<td>{escape(', '.join(f'{k}={v}' for k, v in rec['chosen'].items()))}</td>"
        f"<td>{escape(fmt(rec['val_scores'][rec['chosen_index']]))}</td><td>{escape(fmt(rec['cost_s'], 3))}</td>"
        f"<td>{escape('; '.join(rec['flags']) or '—')}</td></tr>"
        for spec, rec in ((s, t["losses"][s]) for s in r["losses"]))
    return (f"<h4>Tuning (selected on val, reported on test above)</h4><p class=\"muted\">Space "
            f"<code>{escape('; '.join(t['space']))}</code>; {t['trials']} trials per loss, the same candidates for "
            f"every loss ({escape(t['sampler'])} search, sampler seed {t['sampler_seed']}), tuning seeds "
            f"{escape(t['tuning_seeds'])}, scored by {escape(t['metric'])} on val; the test split was not read.</p>"
            f'{_table_open(5)}<thead><tr><th class="name">loss</th><th>chosen</th><th>val {escape(t["metric"])}</th>'
            f"<th>search cost s</th><th>flags</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _legend_html() -> str:
    text = escape(LEGEND).replace("**bold**", "<b>bold ★</b>").replace("`*`", "<sup class=sig>*</sup>")
    text = text.replace("`**`", "<sup class=sig>**</sup>").replace("*runs*", "<i>runs</i>")
    return f'<p class="legend">{text}</p>'


def html_report(results: list[dict[str, Any]], root: Path) -> str:
    """The report page (see the module docstring) for comparisons loaded by
    :func:`cvloss.report.markdown.load_comparisons`."""

    groups = group_by_task_dataset(results)
    toc = ['<nav class="toc"><b>Contents</b><ul>']
    body = []
    for task, dataset, rs in groups:
        gid = f"{task}-{dataset}".lower()
        toc.append(f'<li><a href="#{escape(gid)}">{escape(task)} · {escape(dataset)}</a><ul>')
        toc += [f'<li><a href="#{r["_anchor"]}">{escape(comparison_title(r))}</a></li>' for r in rs]
        toc.append("</ul></li>")
        body.append(f'<h2 id="{escape(gid)}">{escape(task)} · {escape(dataset)}</h2>')
        body += [_comparison_section(r) for r in rs]
    toc.append('<li><a href="#colour-key">Colour key</a></li><li><a href="#provenance">Provenance</a></li></ul></nav>')

    looks = report_key(results)  # every loss of every comparison, no two alike
    key = ['<h2 id="colour-key">Colour key</h2><p class="muted">One colour and hatch per loss, the same in every '
           "plot and table of this report, no two alike; the glyph is the loss's marker in the final-metrics plots "
           "(reference rows are grey dashed lines).</p><div class=\"key\">"]
    key += [f"<span>{swatch(l, looks)}<span style=\"color:{looks[l]['color']}\">{MARKER_GLYPHS[looks[l]['pattern']]}"
            f"</span> <code>{escape(l)}</code></span>" for l in sorted(looks)]
    key.append("</div>")

    table = provenance_rows(results, markdown=False)
    prov = ['<h2 id="provenance">Provenance</h2>',
            f'<p class="muted">Made with <code>cvloss report {escape(str(root))}</code> from the trials\' '
            "<code>trial.json</code>. Each command remakes its comparison (finished trials are skipped). "
            "Comparisons made by different code, torch versions or thread counts sit side by side; the table says "
            "which made each.</p>",
            f"{_table_open(len(table[0]) - 1)}<thead><tr>"
            + "".join(f'<th{" class=name" if k == "comparison" else ""}>{escape(k)}</th>' for k in table[0])
            + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f'<td{" class=name" if k == "comparison" else ""}>'
                                       f'{"<span class=flag>" + escape(v) + "</span>" if v.startswith("⚠") else escape(v)}'
                                       "</td>" for k, v in row.items()) + "</tr>" for row in table)
            + "</tbody></table></div>"]
    for r in results:
        p = r["_prov"]
        versions = ", ".join(f"{escape(k)} {escape(' / '.join(v))}" for k, v in p["versions"].items()) or "unknown"
        prov.append(f"<h3>{escape(r['task'])} · {escape(r['dataset'])} · {escape(comparison_title(r))}</h3>"
                    f"<pre>{escape(r['_command'])}</pre><dl class=\"prov\">"
                    f"<dt>folder</dt><dd><code>{escape(r['_rel'])}</code></dd>"
                    f"<dt>git commit</dt><dd><code>{escape(', '.join(p['git_commits']) or 'unknown')}</code></dd>"
                    f"<dt>device</dt><dd>{escape('; '.join(p['devices']) or 'unknown')}</dd>"
                    f"<dt>versions</dt><dd>{versions}</dd>"
                    f"<dt>trials</dt><dd>{p['n_trials']} with a trial.json of "
                    f"{sum(len(d) for d in r['trials'].values())}</dd></dl>")

    n_trials = sum(len(d) for r in results for d in r["trials"].values())
    head = (f"<h1>cvloss report</h1><p class=\"muted\">{len(results)} comparison(s), {n_trials} trials, "
            f"{len(groups)} task/dataset pair(s) under <code>{escape(str(root))}</code>. Every number is "
            "measured once, after the final epoch, on the split its table names, of a model trained from the same "
            "initial weights on the same batches for every loss at a given seed.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>cvloss report</title><style>{CSS}</style></head><body>\n"
            + head + "\n" + "".join(toc) + "\n" + _legend_html() + "\n" + "\n".join(body) + "\n"
            + "\n".join(key) + "\n" + "\n".join(prov) + "\n</body></html>\n")


__all__ = ["html_report", "comparison_table_html", "data_uri", "swatch", "HATCHES"]


def write_reports(root: Path, html: bool = True, replot: bool = True) -> dict[str, Path]:
    """Write ``<root>/REPORT.md``, ``tables.tex``, ``runs.csv`` and (``html``)
    ``<root>/report.html``; returns their paths by kind (``md``, ``tex``, ``runs``, ``html``).
    Comparisons of different code, torch versions or thread counts are reported side by
    side, each with its own provenance line and a row in the provenance table; one that
    pooled mixed code (``compare --allow-mixed``) is marked in every output."""
    root = Path(root)
    results = load_comparisons(root, replot=replot)
    out = {"md": root / "REPORT.md", "tex": root / "tables.tex", "runs": root / "runs.csv"}
    write_text(out["md"], markdown_report(results, root))
    write_text(out["tex"], report_latex(results))
    run_files = [Path(r["_path"]).parent / "runs.csv" for r in results]
    write_csv(out["runs"], merge_run_files([p for p in run_files if p.is_file()], root))
    if html:
        out["html"] = root / "report.html"
        write_text(out["html"], html_report(results, root))
    return out
