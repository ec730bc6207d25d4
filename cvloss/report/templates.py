"""The templates of ``report.html`` (Jinja2, every value autoescaped).

Every value a template prints is escaped by the environment (``autoescape=True``): a
loss name, a dataset, a device string or a tuning field from a hostile ``compare.json``
reaches the page as text, never as markup. The page's own markup (tags, the swatch's
inline style, the legend's bold and superscripts, the CSS) is template text, so nothing
is ever marked safe by hand: :mod:`cvloss.report.html` hands the templates plain data
(strings, numbers, lists, dicts), nothing pre-rendered.

The sources are kept here as strings, each written as adjacent Python literals so that
the page comes out exactly as written (no whitespace from template indentation: cell
contents and inline runs such as a swatch followed by its glyph stay glued together).
"""
from __future__ import annotations

from typing import Any

import jinja2

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

# Small pieces shared by the page: a loss's swatch (``look``: ``color`` and ``hatch_css``,
# see cvloss.report.html.look_of), a table's opening, a loss's name cell.
MACROS = (
    '{% macro swatch(name, look) %}'
    '<span class="swatch" style="background:{{ look.hatch_css }}, {{ look.color }};'
    'background-color:{{ look.color }}" title="{{ name }}"></span>'
    '{% endmacro %}'
    '{% macro table_open(n_columns) %}'
    '<div class="tablewrap"><table{% if n_columns > 8 %} class=wide{% endif %}>'
    '{% endmacro %}'
    '{% macro loss_name(name, look) %}{{ swatch(name, look) }}<code>{{ name }}</code>{% endmacro %}'
)

# The comparison table (t: cvloss.report.html.table_view) and the paired differences
# (d: cvloss.report.html.difference_view).
TABLES = (
    '{% from "macros" import swatch, table_open, loss_name %}'
    '{% macro comparison_table(t) %}'
    '{{ table_open(t.metrics | length) }}<thead><tr><th class="name">loss</th><th>runs</th>'
    '{% if t.success %}<th title="share of seeds that finished without failing">success</th>{% endif %}'
    '{% if t.timed %}<th title="wall time of a trial, seconds (mean ± 95% CI)">time/trial s</th>'
    '{% for c in t.compute_columns %}<th>{{ c }}</th>{% endfor %}{% endif %}'
    '{% for m in t.metrics %}<th title="{{ m.unit }}">{{ m.name }} {{ m.arrow }}</th>{% endfor %}'
    '</tr></thead><tbody>'
    '{% for row in t.rows %}'
    '{% if row.reference %}<tr class="ref"><td class="name">{{ row.loss }} (reference)</td>'
    '<td>{{ row.runs }}</td>'
    '{% else %}<tr><td class="name">{{ loss_name(row.loss, t.looks[row.loss]) }}'
    '{% if row.baseline %} (baseline){% endif %}</td>'
    '<td{% if row.flagged %} class="flag"{% endif %}>{{ row.runs }}{% if row.flagged %} ⚠{% endif %}</td>'
    '{% endif %}'
    '{% if t.success %}<td>{{ row.success }}</td>{% endif %}'
    '{% if t.timed %}<td>{{ row.time }}</td>{% for c in row.compute %}<td>{{ c }}</td>{% endfor %}{% endif %}'
    '{% for c in row.cells %}<td{% if c.best %} class="best"{% endif %}'
    '{% if c.sig %} title="p = {{ c.p }} vs baseline"{% endif %}>{{ c.text }}'
    '{% if c.sig %}<sup class="sig">{{ c.sig }}</sup>{% endif %}</td>{% endfor %}'
    '</tr>'
    '{% endfor %}'
    '</tbody></table></div>'
    '{% endmacro %}'
    '{% macro difference_table(d) %}'
    '{% if d.rows %}'
    '{{ table_open(d.metrics | length) }}<thead><tr><th class="name">loss − {{ d.baseline }}</th>'
    '{% for m in d.metrics %}<th>{{ m }}</th>{% endfor %}</tr></thead><tbody>'
    '{% for r in d.rows %}<tr><td class="name">{{ loss_name(r.loss, d.looks[r.loss]) }}</td>'
    '{% for text in r.cells %}<td>{{ text }}</td>{% endfor %}</tr>{% endfor %}'
    '</tbody></table></div>'
    '{% endif %}'
    '{% endmacro %}'
)

# The search record of a tuned comparison (t: cvloss.report.html.tuning_view).
TUNING = (
    '{% from "macros" import table_open, loss_name %}'
    '{% macro tuning(t) %}'
    '<h4>Tuning (selected on val, reported on test above)</h4><p class="muted">Space '
    '<code>{{ t.space }}</code>; {{ t.trials }} trials per loss, the same candidates for every loss '
    '({{ t.sampler }} search, sampler seed {{ t.sampler_seed }}), K = {{ t.k }} tuning seed(s) per candidate '
    '{{ t.tuning_seeds }}, R = {{ t.r }} repeat(s), scored by the mean {{ t.metric }} on val; the test split was '
    'not read.</p>'
    '{{ table_open(7) }}<thead><tr><th class="name">loss</th><th>chosen</th><th>val {{ t.metric }}</th>'
    '<th>within 1 SE</th><th>repeats won</th><th>search cost s</th><th>flags</th></tr></thead><tbody>'
    '{% for r in t.rows %}<tr><td class="name">{{ loss_name(r.loss, t.looks[r.loss]) }}</td>'
    '<td>{{ r.chosen }}</td><td>{{ r.score }}</td><td>{{ r.same }}</td><td>{{ r.repeats }}</td>'
    '<td>{{ r.cost }}</td><td>{{ r.flags }}</td></tr>{% endfor %}'
    '</tbody></table></div>'
    '{% endmacro %}'
)

# One comparison's section (s: cvloss.report.html.section_view); its parts one per line.
SECTION = (
    '{% from "macros" import loss_name %}'
    '{% from "tables" import comparison_table, difference_table %}'
    '{% from "tuning" import tuning %}'
    '{% macro items(lines, cls="") %}<ul{% if cls %} class="{{ cls }}"{% endif %}>'
    '{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>{% endmacro %}'
    '{% macro section(s) %}'
    '<section id="{{ s.anchor }}"><h3>{{ s.title }}</h3>\n'
    '<p class="facts"><b>Losses</b> '
    '{% for l in s.losses %}{{ loss_name(l, s.looks[l]) }}{% if not loop.last %}, {% endif %}{% endfor %} · '
    '<b>baseline</b> <code>{{ s.baseline }}</code> · <b>seeds</b> {{ s.seeds | join(", ") }} '
    '(n = {{ s.seeds | length }}) · <b>budget</b> <code>{{ s.budget }}</code> · '
    '<b>feature-network weights</b> {{ s.feature_weights }}</p>\n'
    '{% if s.data %}<p class="facts"><b>Data</b> {{ s.data }}</p>\n{% endif %}'
    '{% if s.budget_line %}<p class="facts">{{ s.budget_line }}</p>\n{% endif %}'
    '{% if s.left_out %}<p><span class="flag">⚠ left out of the means:</span> '
    '{% for loss, states in s.left_out %}{{ loss }}: {{ states }}{% if not loop.last %}; {% endif %}{% endfor %}'
    '</p>\n{% endif %}'
    '{% if s.mixed %}<p><span class="flag">{{ s.mixed }}</span></p>\n{% endif %}'
    '{{ comparison_table(s.table) }}\n'
    '{% if s.folded %}<p class="muted">n/a for every loss and reference, so not shown as columns: '
    '{{ s.folded }} (the data line above says why, e.g. missing weights offline).</p>\n{% endif %}'
    '{% if s.trial_notes %}{{ items(s.trial_notes) }}\n{% endif %}'
    '{% if s.verdict %}{{ items(s.verdict) }}\n{% endif %}'
    '{% if s.differences %}<p class="muted">Paired difference against <code>{{ s.baseline }}</code> '
    '(Δ ± 95% CI over seeds; p adjusted for the many tests where the comparison has it; d_z; '
    'P(better)):</p>\n{{ difference_table(s.differences) }}\n{% endif %}'
    '{% if s.notes %}{{ items(s.notes, "muted") }}\n{% endif %}'
    '{% if s.itt %}<h4>Intent to treat</h4><p class="muted">{{ s.itt.legend }}</p>\n'
    '{{ comparison_table(s.itt.table) }}\n{{ items(s.itt.verdict) }}\n'
    '{% if s.itt.differences %}{{ difference_table(s.itt.differences) }}\n{% endif %}{% endif %}'
    '{% if s.tuning %}{{ tuning(s.tuning) }}\n{% endif %}'
    '{% for f in s.figures %}<figure><img src="{{ f.src }}" alt="{{ f.title }}">'
    '<figcaption>{{ f.title }} (<code>{{ f.path }}</code>)</figcaption></figure>\n{% endfor %}'
    '<p class="muted">Reproduce:</p><pre>{{ s.command }}</pre></section>'
    '{% endmacro %}'
)

# The whole page (p: cvloss.report.html.page_view). The report has no script and loads
# nothing: images are data URIs, the CSS is inline.
PAGE = (
    '{% from "macros" import swatch, table_open %}'
    '{% from "section" import section %}'
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>cvloss report</title><style>{% include "css" %}</style></head><body>\n'
    '<h1>cvloss report</h1><p class="muted">{{ p.n_comparisons }} comparison(s), {{ p.n_trials }} trials, '
    '{{ p.groups | length }} task/dataset pair(s) under <code>{{ p.root }}</code>. Every number is '
    'measured once, after the final epoch, on the split its table names, of a model trained from the same '
    'initial weights on the same batches for every loss at a given seed.</p>\n'
    '<nav class="toc"><b>Contents</b><ul>'
    '{% for g in p.groups %}<li><a href="#{{ g.id }}">{{ g.task }} · {{ g.dataset }}</a><ul>'
    '{% for s in g.sections %}<li><a href="#{{ s.anchor }}">{{ s.title }}</a></li>{% endfor %}'
    '</ul></li>{% endfor %}'
    '<li><a href="#colour-key">Colour key</a></li><li><a href="#provenance">Provenance</a></li></ul></nav>\n'
    '<p class="legend">'
    '{% for kind, text in p.legend %}'
    '{% if kind == "bold" %}<b>{{ text }} ★</b>'
    '{% elif kind == "sig" %}<sup class=sig>{{ text }}</sup>'
    '{% elif kind == "italic" %}<i>{{ text }}</i>'
    '{% else %}{{ text }}{% endif %}'
    '{% endfor %}</p>\n'
    '{% for g in p.groups %}<h2 id="{{ g.id }}">{{ g.task }} · {{ g.dataset }}</h2>\n'
    '{% for s in g.sections %}{{ section(s) }}\n{% endfor %}{% endfor %}'
    '<h2 id="colour-key">Colour key</h2><p class="muted">One colour and hatch per loss, the same in every '
    'plot and table of this report, no two alike; the glyph is the loss\'s marker in the final-metrics plots '
    '(reference rows are grey dashed lines).</p><div class="key">\n'
    '{% for k in p.key %}<span>{{ swatch(k.loss, k.look) }}<span style="color:{{ k.look.color }}">{{ k.glyph }}'
    '</span> <code>{{ k.loss }}</code></span>\n{% endfor %}'
    '</div>\n'
    '<h2 id="provenance">Provenance</h2>\n'
    '<p class="muted">Made with <code>cvloss report {{ p.root }}</code> from the trials\' '
    '<code>trial.json</code>. Each command remakes its comparison (finished trials are skipped). '
    'Comparisons made by different code, torch versions or thread counts sit side by side; the table says '
    'which made each.</p>\n'
    '{{ table_open(p.provenance.columns | length - 1) }}<thead><tr>'
    '{% for k in p.provenance.columns %}<th{% if k == "comparison" %} class=name{% endif %}>{{ k }}</th>{% endfor %}'
    '</tr></thead><tbody>'
    '{% for row in p.provenance.rows %}<tr>'
    '{% for k, v in row.items() %}<td{% if k == "comparison" %} class=name{% endif %}>'
    '{% if v.startswith("⚠") %}<span class=flag>{{ v }}</span>{% else %}{{ v }}{% endif %}</td>{% endfor %}'
    '</tr>{% endfor %}'
    '</tbody></table></div>'
    '{% for c in p.provenance.comparisons %}\n'
    '<h3>{{ c.task }} · {{ c.dataset }} · {{ c.title }}</h3><pre>{{ c.command }}</pre><dl class="prov">'
    '<dt>folder</dt><dd><code>{{ c.folder }}</code></dd>'
    '<dt>git commit</dt><dd><code>{{ c.commits }}</code></dd>'
    '<dt>device</dt><dd>{{ c.devices }}</dd>'
    '<dt>versions</dt><dd>{{ c.versions }}</dd>'
    '<dt>trials</dt><dd>{{ c.n_trials }} with a trial.json of {{ c.n_folders }}</dd></dl>'
    '{% endfor %}'
    '\n</body></html>\n'
)

TEMPLATES = {"css": "{% raw %}" + CSS + "{% endraw %}", "macros": MACROS, "tables": TABLES, "tuning": TUNING,
             "section": SECTION, "page": PAGE}

# One environment: every ``{{ value }}`` escaped, an unknown name an error (a typo in a
# view must not print an empty string), the page's final newline kept.
ENV = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                         keep_trailing_newline=True)


def render_page(page: dict[str, Any]) -> str:
    """The report page for ``page`` (a :func:`cvloss.report.html.page_view`)."""
    return ENV.get_template("page").render(p=page)


__all__ = ["ENV", "TEMPLATES", "CSS", "render_page"]
