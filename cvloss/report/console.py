"""Printing tables on stdout: a rich table on a terminal, plain aligned text otherwise
(so pipes and CI logs stay readable and greppable).

A fitted table (``fit=True``) never breaks a word: its columns are packed, in order, into
as many tables as the width needs, each one starting again with the first ``repeat``
columns (the row names); a column too wide to sit beside those even alone is left out,
and a note says where every column is. The width is the terminal's on a terminal (rich's
``Console``: ``$COLUMNS``, else the terminal, else 80) and :data:`PIPE_WIDTH` in a pipe;
``wide`` prints every column in one table whatever the width.
"""
from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # cvloss.result loads torch (cvloss.io): `cvloss losses list` prints tables without it
    from cvloss.result import ComparisonResult

#: Longest line of a fitted table (and of wrapped text) when stdout is not a terminal.
PIPE_WIDTH = 120


def _is_tty(file) -> bool:
    return hasattr(file, "isatty") and file.isatty()


def output_width(file=None, width: int | None = None) -> int:
    """Characters a line may take on ``file``: ``width`` when given, else the terminal's
    width (rich) on a terminal, else :data:`PIPE_WIDTH`."""
    file = file or sys.stdout
    if width:
        return width
    return Console(file=file).width if _is_tty(file) else PIPE_WIDTH


def print_lines(lines: Sequence[str], file=None, width: int | None = None, wide: bool = False) -> None:
    """Print each line wrapped at word boundaries to the output width (continuation lines
    indented two spaces); ``wide``: unwrapped. A word longer than the width (a path) stays
    whole: a broken path cannot be copied."""
    file = file or sys.stdout
    limit = output_width(file, width)
    for line in lines:
        if wide or len(line) <= limit:
            print(line, file=file)
            continue
        print(textwrap.fill(line, limit, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False),
              file=file)


def _widths(cells: list[list[str]], columns: Sequence[str]) -> dict[str, int]:
    """Display width of each column: its longest cell or header (wide characters count 2)."""
    return {c: max(cell_len(row[i]) for row in cells) for i, c in enumerate(columns)}


def _plain_width(widths: Sequence[int]) -> int:
    return sum(widths) + 2 * (len(widths) - 1)  # two spaces between columns


def _rich_width(widths: Sequence[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # a space either side of each cell, a rule between and at the edges


def pack_columns(columns: Sequence[str], widths: Mapping[str, int], limit: int, repeat: int = 1,
                 table_width=_plain_width) -> tuple[list[list[str]], list[str]]:
    """Split ``columns`` into tables no wider than ``limit``, in order: each table is the
    first ``repeat`` columns followed by as many of the next ones as fit. Returns
    ``(tables, left_out)``: the columns that do not fit beside the repeated ones even alone
    are left out (their order kept). The repeated columns alone may exceed ``limit``:
    then they are the only table."""
    head, tables, current, left_out = list(columns[:repeat]), [], [], []
    for col in columns[repeat:]:
        if table_width([widths[c] for c in head + current + [col]]) <= limit:
            current.append(col)
        elif table_width([widths[c] for c in head + [col]]) > limit:
            left_out.append(col)
        else:
            tables.append(head + current)
            current = [col]
    if current or not tables:
        tables.append(head + current)
    return tables, left_out


def print_table(rows: Sequence[Mapping[str, Any]], title: str | None = None, file=None, *, fit: bool = False,
                wide: bool = False, width: int | None = None, repeat: int = 1,
                all_columns_in: str | None = None) -> list[str]:
    """Print ``rows`` (dicts sharing keys) as a table; columns in first-row order.

    ``fit``: pack the columns into tables that fit the output width (see the module
    docstring); a note names ``all_columns_in`` (where every column can be read) when some
    are left out. ``wide``: one table with every column, nothing wrapped. Without either
    (the listings), one table whose cells rich folds on a terminal. Returns the columns
    printed, so that a legend can speak of those only."""
    file = file or sys.stdout
    if not rows:
        print(f"{title}: (none)" if title else "(none)", file=file)
        return []
    columns = list(rows[0].keys())
    cells = [[str(c) for c in columns]] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = _widths(cells, columns)
    is_tty = _is_tty(file)
    limit = output_width(file, width)
    if fit and not wide:
        tables, left_out = pack_columns(columns, widths, limit, repeat, _rich_width if is_tty else _plain_width)
    else:
        tables, left_out = [columns], []
    for k, cols in enumerate(tables):
        if k:
            print(file=file)
        if is_tty:
            _print_rich(rows, cols, title if k == 0 else None, file, limit, nowrap=fit or wide, widths=widths)
        else:
            _print_plain(cells, columns, cols, title if k == 0 else None, file, limit if fit and not wide else None)
    if left_out:
        print_lines([f"Left out to fit {limit} characters: {', '.join(left_out)}; every column is in "
                     f"{all_columns_in or 'the full output'}."], file, limit)
    return [c for c in columns if c not in left_out]


def print_comparison(result: ComparisonResult | Mapping[str, Any], title: str, file=None, *, wide: bool = False,
                     width: int | None = None) -> None:
    """A comparison on the console: the table (loss, runs, success, compute, the primary
    metric first, the other metrics in further tables; see :func:`print_table`), the
    legend of the marks printed, the MIXED CODE line of a comparison that pooled trials of
    different code, the trials' notes (degenerate reasons, identical replicates, the unit
    of replication), then the verdict, each line wrapped to the width."""
    from pathlib import Path

    from cvloss.report.items import item_verdict_lines
    from cvloss.report.tables import comparison_rows, console_legend, mixed_line, note_lines, verdict_lines
    from cvloss.report.text import PLAIN
    from cvloss.result import ComparisonResult

    result = ComparisonResult.of(result)
    file = file or sys.stdout
    rows = comparison_rows(result, primary_first=not wide)  # what the verdict is about beside the loss
    where = f"{Path(result.dir) / 'compare.md'} (or rerun with --wide)" if result.dir else None
    shown = print_table(rows, title, file, fit=True, wide=wide, width=width, all_columns_in=where)
    legend = console_legend(result, [{c: r[c] for c in shown} for r in rows])
    mixed = mixed_line(result)  # a comparison pooled with --allow-mixed says so here too
    said = verdict_lines(result) + item_verdict_lines(result.item_analysis, PLAIN) + note_lines(result)
    print_lines(([legend] if legend else []) + ([mixed] if mixed else []) + [line.replace("`", "") for line in said],
                file, width, wide=wide)


def _print_rich(rows, cols, title, file, limit: int, nowrap: bool, widths: Mapping[str, int]) -> None:
    """A rich table of ``cols``; ``nowrap``: cells and headers whole (the columns were
    chosen to fit; a table wider than the terminal gets a console as wide as itself)."""
    # Text, not str: a value from a results file (a loss spec such as
    # perceptual(layers=[relu1_2]), or a hostile one) is never read as rich markup.
    table = Table(title=Text(title) if title else None, show_lines=False)
    for col in cols:
        table.add_column(Text(str(col)), overflow="ellipsis" if nowrap else "fold", no_wrap=nowrap)
    for row in rows:
        table.add_row(*(Text(str(row.get(c, ""))) for c in cols))
    width = max(limit, _rich_width([widths[c] for c in cols])) if nowrap else None
    Console(file=file, width=width).print(table)


def _print_plain(cells, columns, cols, title, file, limit: int | None) -> None:
    """Aligned text of ``cols``: header, dashes, rows; the title wrapped to ``limit``."""
    index = [columns.index(c) for c in cols]
    widths = [max(cell_len(row[i]) for row in cells) for i in index]
    if title:
        print_lines([title], file, limit, wide=limit is None)
    for k, row in enumerate(cells):
        print("  ".join(row[i] + " " * (w - cell_len(row[i])) for i, w in zip(index, widths)).rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)
