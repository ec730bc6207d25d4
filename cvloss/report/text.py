"""Plain-text formatting shared by the tables and the report sections: numbers and
GitHub-flavoured Markdown tables."""
from __future__ import annotations

import math


def fmt(x: float | None, digits: int = 4) -> str:
    """4 significant digits, scientific for large magnitudes; ``n/a`` for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"


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
