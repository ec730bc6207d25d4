"""The search record of a tuned comparison in words, a table and a plot.

A tuned comparison (``cvloss compare --tune ...``, :mod:`cvloss.run.tune`) carries
``result.tuning``: the space, the trial count, the sampler, how each candidate was scored
(K tuning seeds, R repeats, halving rungs), and per loss the chosen setting, every
candidate's val score ± SE and status, the candidates within one SE of the chosen, the
repeats' choices, the search's cost and flags. :func:`tuning_markdown` shows them under the test table;
:func:`cvloss.report.plots.tuning_plot` draws val score against each tuned numeric parameter, one panel per parameter and one
series per loss (log axis for ``log`` ranges), the chosen candidate ringed.
"""
from __future__ import annotations

from typing import Any

from cvloss.report.text import fmt, markdown_table, md_code, md_escape
from cvloss.result import ComparisonResult, reads_result


def _value_text(v: Any) -> str:
    """A candidate's value as Markdown text (escaped: a results file is untrusted)."""
    return fmt(v, 4) if isinstance(v, float) else md_escape(v)


def _protocol_text(t: dict[str, Any]) -> str:
    """How each candidate was scored, in words; a record without ``tune_seeds`` is the
    first protocol's (one seed per candidate, K = 1)."""
    k, r = t.get("tune_seeds", 1), t.get("repeats", 1)
    text = (f"each trained at K = {md_escape(k)} tuning seed(s) {md_escape(t['tuning_seeds'])}"
            + (f", the whole search repeated R = {md_escape(r)} times with fresh seeds (the winner chosen by the "
               f"pooled R×K seeds)" if r != 1 else ""))
    halving = t.get("halving")
    if isinstance(halving, dict):
        text += (f", as successive halving (the best 1/{md_escape(halving.get('eta'))} continue at each rung; rungs "
                 f"at epochs {md_escape(', '.join(map(str, t.get('rungs') or [])))}; "
                 f"{md_escape(t.get('trial_epochs'))} trial-epochs per loss)")
    secondary = t.get("secondary_metric")
    ties = f"exact ties broken by {md_code(secondary)}, then by the candidate nearer the middle of the space" \
        if secondary else "exact ties broken by the candidate nearer the middle of the space"
    return text + f"; a seed that diverged or crashed counts at its untrained model's val score; {ties}"


def _score_text(score: Any, se: Any) -> str:
    return fmt(score) + (f" ± {fmt(se)}" if isinstance(se, (int, float)) else "")


def _picked(values: Any, i: int) -> Any:
    return values[i] if isinstance(values, list) and i < len(values) else None


def search_score_text(rec: dict[str, Any], i: int) -> str:
    """Candidate ``i``'s val score of one loss's search record: ``0.612 ± 0.004`` (mean ±
    SE over its tuning seeds; no SE with one seed)."""
    return _score_text(rec["val_scores"][i], _picked(rec.get("val_se"), i))


def stability_text(st: Any, markdown: bool = True) -> str:
    """``t2 ×2, t5 ×1; lr 0.0012–0.0048``: how often each candidate won a repeat of the
    search, and the spread of the chosen values (``—`` without repeats). ``markdown``:
    escaped for a Markdown table (the HTML template escapes on its own)."""
    if not isinstance(st, dict):
        return "—"
    esc = md_escape if markdown else str
    val = _value_text if markdown else (lambda v: fmt(v, 4) if isinstance(v, float) else str(v))
    wins = ", ".join(f"{esc(k)} ×{esc(v)}" for k, v in sorted((st.get("wins") or {}).items(), key=lambda kv: -kv[1]))
    spread = "; ".join(f"{esc(k)} {val(v[0])}–{val(v[-1])}" if v and not isinstance(v[0], str)
                       else f"{esc(k)} {esc(', '.join(map(str, v)))}" for k, v in (st.get("spread") or {}).items())
    return f"{wins}; {spread}" if spread else wins


@reads_result
def tuning_markdown(result: ComparisonResult, heading_level: int = 3) -> str:
    """The search section: what was searched and how each candidate was scored; per loss
    the chosen setting with its val score ± SE, the candidates within one SE of it (the
    set the search could not tell apart), how often each won a repeat, the cost and the
    flags; then every candidate's val score per loss (≈: within one SE of the chosen)."""
    t = result.tuning
    if not t:
        return ""
    h = "#" * heading_level
    losses = result.losses
    up = "↑" if t.get("higher_is_better", True) else "↓"
    lines = [f"\n{h} Tuning (selected on val, reported on test above)\n",
             f"Space: {md_code('; '.join(t['space']))}; {md_escape(t['trials'])} candidates per loss, the same "
             f"for every loss, each loss training its own dimensions ({md_escape(t['sampler'])} search, sampler seed "
             f"{md_escape(t['sampler_seed'])}; folder hash {md_code(t['hash'])}), {_protocol_text(t)}. Scored by the "
             f"mean {md_code(t['metric'])} {up} on val at the final epoch; the test split was not read. Each winner "
             f"was retrained at the seeds of the table.\n"]
    rows = []
    for spec in losses:
        rec = t["losses"][spec]
        best = rec["chosen_index"]
        same = rec.get("indistinguishable")
        row = {"loss": md_code(spec),
               "chosen": ", ".join(f"{md_escape(k)}={_value_text(v)}" for k, v in rec["chosen"].items()),
               "trained as": md_code(rec["trained_spec"]),
               f"val {md_escape(t['metric'])}": search_score_text(rec, best),
               "within 1 SE": (f"{len(same)} of {md_escape(t['trials'])}: " + ", ".join(f"t{i}" for i in same))
               if isinstance(same, list) else "—"}
        if t.get("repeats", 1) != 1:
            row["repeats won"] = stability_text(rec.get("stability"))
        epochs = rec.get("trained_epochs")
        spent = f"{md_escape(epochs)} epochs, " if epochs is not None else ""
        row["search cost"] = f"{spent}{fmt(rec['cost_s'], 3)} s"
        row["flags"] = md_escape("; ".join(rec["flags"]) or "—")
        rows.append(row)
    lines.append(markdown_table(rows))
    names = sorted({k for s in losses for c in t["losses"][s]["candidates"][:1] for k in c}, key=str)
    cand_rows = []
    for i in range(t["trials"]):
        row = {"candidate": f"t{i}"}
        for name in names:  # the design's value: the same in every loss that has the dimension (TPE's vary)
            values = [t["losses"][s]["candidates"][i][name] for s in losses if name in t["losses"][s]["candidates"][i]]
            row[md_escape(name)] = _value_text(values[0]) if len({repr(v) for v in values}) == 1 else "(varies)"
        for spec in losses:
            rec = t["losses"][spec]
            score, status = rec["val_scores"][i], rec["status"][i]
            same = rec.get("indistinguishable") or []
            mark = " (chosen)" if i == rec["chosen_index"] else " ≈" if i in same else ""
            row[md_code(spec)] = (search_score_text(rec, i) if score is not None
                                  else md_escape(status)) + mark
        cand_rows.append(row)
    lines += [f"\nVal {md_code(t['metric'])} of every candidate (mean ± SE over its tuning seeds; ≈: within 1 SE of "
              f"the chosen):\n", markdown_table(cand_rows)]
    return "\n".join(lines)
