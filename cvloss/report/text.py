"""Plain-text formatting shared by the tables and the report sections: numbers,
GitHub-flavoured Markdown tables, and the escapes that keep a value from a results file
(a loss spec, a dataset, a device string: untrusted) from being read as markup.

:func:`md_escape` escapes every value written into Markdown as text; :func:`md_code`
shows a value as code (a code span when that is safe, else escaped text); :func:`mpl_text`
escapes every value matplotlib draws (a ``$`` would start mathtext). LaTeX has
:func:`cvloss.report.latex.latex_escape`; HTML is escaped by its templates. Lines the
report and the console share take a :class:`Form`: :data:`CONSOLE` (backticked, raw),
:data:`PLAIN` (raw, no marks: the HTML templates escape the whole line) or
:data:`MARKDOWN` (escaped)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable


def fmt(x: float | None, digits: int = 4) -> str:
    """4 significant digits, scientific for large magnitudes; ``n/a`` for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


# Markdown (CommonMark + GitHub's tables and strikethrough). Inline syntax starts with one
# of these characters: backslash escapes, code spans, emphasis (``*``; ``_`` only at a
# word's edge: inside a word it never opens emphasis), links and images (``[``, ``![``),
# headings' closing ``#``, strikethrough. ``<``, ``>`` and ``&`` become entities, which
# no renderer reads as a tag, an autolink (``<javascript:...>``) or another entity.
_MD_BACKSLASHED = re.compile(r"[\\`*\[\]#~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# What a code span cannot hold safely: its own delimiter, a line break (it would end a
# table row or start a block); and, though verbatim in a code span, what a reader or a
# lesser renderer would take for a tag or a link.
_NOT_IN_CODE = re.compile(r"[`<>&\r\n]|\]\(")


def md_escape(text: Any) -> str:
    """``text`` as Markdown text that renders as itself and nothing more: no tag, no link
    or image, no emphasis, code span or table break. Line breaks become spaces (a value
    stays on its line: in a table row, a list item, a heading). The table pipe ``|`` is
    left to :func:`markdown_table`, which escapes every cell's."""
    text = re.sub(r"[\r\n]+", " ", str(text))
    text = _MD_BACKSLASHED.sub(lambda m: "\\" + m.group(0), text)
    return re.sub(r"[&<>]", lambda m: _MD_ENTITIES[m.group(0)], text)


def md_code(text: Any) -> str:
    """``text`` as a Markdown code span (shown verbatim: nothing inside is markup); when
    it holds a backtick, a line break, ``<``, ``>``, ``&`` or link syntax ``](``, as
    escaped text (:func:`md_escape`) instead, which renders the same characters."""
    text = str(text)
    return md_escape(text) if _NOT_IN_CODE.search(text) else f"`{text}`"


def markdown_table(rows: list[dict[str, str]]) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (dicts sharing keys). Keys and cells
    are Markdown already: every value from data in them written by :func:`md_escape` or
    :func:`md_code`; here only the pipes are escaped, so a value cannot split a cell."""
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(_pipes(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_pipes(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _pipes(text: Any) -> str:
    return str(text).replace("|", "\\|")



def mpl_text(text: Any) -> str:
    """``text`` as matplotlib draws it literally: every ``$`` escaped, so a ``$x$`` from
    data is not parsed as mathtext (a bad expression failed the whole plot); matplotlib
    shows ``\\$`` as ``$`` in text without math. Used for every title, label, legend
    entry, tick label and annotation that carries a value from data."""
    return str(text).replace("$", r"\$")


@dataclass(frozen=True)
class Form:
    """How a shared line writes a value: ``code`` for names (loss specs, metrics, the
    split), ``text`` for any other value from data."""
    code: Callable[[Any], str]
    text: Callable[[Any], str]


CONSOLE = Form(code=lambda v: f"`{v}`", text=str)
PLAIN = Form(code=str, text=str)
MARKDOWN = Form(code=md_code, text=md_escape)
