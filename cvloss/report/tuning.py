"""The search record of a tuned comparison in words, a table and a plot.

A tuned comparison (``cvloss compare --tune ...``, :mod:`cvloss.run.tune`) carries
``result["tuning"]``: the space, the trial count, the sampler, and per loss the chosen
setting, every candidate's val score and status, the search's training time and edge
flags. :func:`tuning_markdown` shows them under the test table;
:func:`cvloss.report.plots.tuning_plot` draws val score against each tuned numeric parameter, one panel per parameter and one
series per loss (log axis for ``log`` ranges), the chosen candidate ringed.
"""
from __future__ import annotations

from typing import Any

from cvloss.report.text import fmt, markdown_table, md_code, md_escape


def _value_text(v: Any) -> str:
    """A candidate's value as Markdown text (escaped: a results file is untrusted)."""
    return fmt(v, 4) if isinstance(v, float) else md_escape(v)


def tuning_markdown(result: dict[str, Any], heading_level: int = 3) -> str:
    """The search section: what was searched, the chosen setting per loss with its val
    score, cost and flags, then every candidate's val score per loss."""
    t = result.get("tuning")
    if not t:
        return ""
    h = "#" * heading_level
    losses = result["losses"]
    up = "↑" if t.get("higher_is_better", True) else "↓"
    lines = [f"\n{h} Tuning (selected on val, reported on test above)\n",
             f"Space: {md_code('; '.join(t['space']))}; {md_escape(t['trials'])} trials per loss, the same "
             f"candidates for every loss ({md_escape(t['sampler'])} search, sampler seed "
             f"{md_escape(t['sampler_seed'])}; folder hash {md_code(t['hash'])}), trained at seeds "
             f"{md_escape(t['tuning_seeds'])} and scored by "
             f"{md_code(t['metric'])} {up} on val at the final epoch; the test split was not read. Each winner was "
             f"retrained at the seeds of the table.\n"]
    rows = []
    for spec in losses:
        rec = t["losses"][spec]
        score = rec["val_scores"][rec["chosen_index"]]
        rows.append({"loss": md_code(spec),
                     "chosen": ", ".join(f"{md_escape(k)}={_value_text(v)}" for k, v in rec["chosen"].items()),
                     "trained as": md_code(rec["trained_spec"]), f"val {md_escape(t['metric'])}": fmt(score),
                     "search cost s": fmt(rec["cost_s"], 3), "flags": md_escape("; ".join(rec["flags"]) or "—")})
    lines.append(markdown_table(rows))
    names = list(t["losses"][losses[0]]["candidates"][0]) if t["losses"][losses[0]]["candidates"] else []
    cand_rows = []
    for i in range(t["trials"]):
        row = {"candidate": f"t{i}"}
        shared = all(t["losses"][s]["candidates"][i] == t["losses"][losses[0]]["candidates"][i] for s in losses)
        for name in names if shared else []:
            row[md_escape(name)] = _value_text(t["losses"][losses[0]]["candidates"][i][name])
        for spec in losses:
            rec = t["losses"][spec]
            score, status = rec["val_scores"][i], rec["status"][i]
            mark = " (chosen)" if i == rec["chosen_index"] else ""
            row[md_code(spec)] = (fmt(score) if score is not None else md_escape(status)) + mark
        cand_rows.append(row)
    lines += [f"\nVal {md_code(t['metric'])} of every candidate:\n", markdown_table(cand_rows)]
    return "\n".join(lines)
