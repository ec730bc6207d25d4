"""Printing tables on stdout: a rich table on a terminal, plain aligned text otherwise
(so pipes and CI logs stay readable and greppable)."""
from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table


def print_table(rows: Sequence[Mapping[str, Any]], title: str | None = None, file=None) -> None:
    """Print ``rows`` (dicts sharing keys) as a table; columns in first-row order."""
    file = file or sys.stdout
    if not rows:
        print(f"{title}: (none)" if title else "(none)", file=file)
        return
    columns = list(rows[0].keys())
    is_tty = hasattr(file, "isatty") and file.isatty()
    if is_tty:
        table = Table(title=title, show_lines=False)
        for col in columns:
            table.add_column(str(col), overflow="fold")
        for row in rows:
            table.add_row(*(str(row.get(c, "")) for c in columns))
        Console(file=file).print(table)
        return
    cells = [[str(c) for c in columns]] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    if title:
        print(title, file=file)
    for k, row in enumerate(cells):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), file=file)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)
