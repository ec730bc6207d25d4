"""The comparison on the console fits its width without breaking a word, names every mark
it prints (and only those) in a legend, and says that one seed allows no test.

The comparison is hand-made: a 9-metric seg comparison of 8 losses over 10 seeds (no
training), with marks placed by construction:
  miou (primary, Holm): dice p_adj .004 -> ``**``, focal .03 -> ``*``;
  betti0_err (BH): cldice best with p_adj .085 against the baseline -> ``(best)``, no star
  (the case a user met: best and the stars are different test families);
  iou_border (BH): wce .02 -> ``*``.
"""
from __future__ import annotations

import io
import math
import re

from cvloss.report.console import PIPE_WIDTH, print_comparison, print_table
from cvloss.report.tables import comparison_markdown, comparison_rows, console_legend, verdict_lines

NAN = math.nan
METRICS = ["miou", "dice", "pixel_acc", "betti0_err", "betti1_err", "cldice_score", "iou_background", "iou_pet",
           "iou_border"]
LOSSES = ["ce", "bce", "focal", "wce", "dice", "cldice", "topo", "ce+dice"]
MARKED = {("dice", "miou"): 0.004, ("focal", "miou"): 0.03, ("cldice", "betti0_err"): 0.085,
          ("wce", "iou_border"): 0.02}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    """A file that says it is a terminal, so the rich (boxed) table is drawn."""

    def isatty(self) -> bool:
        return True


def seg_result(n_seeds: int = 10, dir: str = "/results/seg/synth-pets/quick/compare--ce--etc") -> dict:
    """The comparison of the module docstring (``n_seeds == 1``: no CI, no test)."""
    up = {m: not m.startswith("betti") for m in METRICS}
    rows = []
    for i, loss in enumerate(LOSSES):
        for j, metric in enumerate(METRICS):
            mean = 0.8 + 0.01 * i + 0.001 * j if up[metric] else 3.0 - 0.1 * i
            tested = loss != "ce" and n_seeds > 1
            rows.append({"loss": loss, "metric": metric, "analysis": "completed", "mean": mean,
                         "ci95": 0.0123 if n_seeds > 1 else NAN, "n": n_seeds, "n_pairs": n_seeds,
                         "diff_vs_baseline": NAN if loss == "ce" else mean - (0.8 + 0.001 * j if up[metric] else 3.0),
                         "p_adj": MARKED.get((loss, metric), 0.5) if tested else NAN,
                         "correction": "holm" if metric == "miou" else "bh"})
    rows += [{"loss": "untrained model", "metric": m, "analysis": "reference", "reference": True, "mean": 0.2,
              "ci95": 0.05, "n": n_seeds} for m in METRICS]
    seeds = list(range(n_seeds))
    return {"task": "seg", "dataset": "synth-pets", "budget": "quick", "losses": LOSSES, "seeds": seeds,
            "baseline": "ce", "references": ["untrained model"], "metrics": METRICS, "directions": up,
            "rows": rows, "status": {loss: ["done"] * n_seeds for loss in LOSSES},
            "success": {loss: 1.0 for loss in LOSSES}, "primary_metric": "miou", "alpha": 0.05,
            "compute": {loss: {"train_time_s": 32.7, "train_time_ci95": 5.5, "step_time_s": 0.299,
                               "step_time_ci95": 0.049, "peak_mem_mib": 1130.6, "peak_mem_mib_ci95": 75.0}
                        for loss in LOSSES},
            "best": {m: ("cldice" if m == "betti0_err" and n_seeds > 1 else None) for m in METRICS},
            "mde": {m: (0.05 if n_seeds > 1 else NAN) for m in METRICS}, "mde_level": 0.05 / 7, "dir": dir}


def _render(result, width=None, wide=False, tty=True) -> list[str]:
    out = Terminal() if tty else io.StringIO()
    print_comparison(result, "seg / synth-pets / quick: mean ± 95% CI over seeds", out, width=width, wide=wide)
    return ANSI.sub("", out.getvalue()).splitlines()


def _every_cell(result) -> tuple[list[str], list[str]]:
    rows = comparison_rows(result)
    return list(rows[0]), sorted({v for r in rows for v in r.values() if v}, key=len, reverse=True)


def test_terminal_table_fits_100_columns_with_every_header_and_cell_whole():
    result = seg_result()
    lines = _render(result, width=100)
    assert max(len(line) for line in lines) <= 100
    headers, cells = _every_cell(result)
    for text in headers + cells:  # whole on one line: nothing folded mid-word ("time/tria l s")
        assert any(text in line for line in lines), text
    header_lines = [line for line in lines if line.startswith("┃ loss ")]
    assert len(header_lines) >= 2  # the metrics fold into further tables, each repeating the loss
    first = header_lines[0]
    order = [first.index(h) for h in ("loss", "runs", "success", "time/trial s", "miou ↑")]
    assert order == sorted(order)  # loss, runs, success, time and the primary metric first
    assert not any(line.startswith("Left out") for line in lines)


def test_pipe_stays_within_120_characters_and_wide_prints_one_table():
    result = seg_result()
    lines = _render(result, tty=False)
    assert max(len(line) for line in lines) <= PIPE_WIDTH
    headers, cells = _every_cell(result)
    assert all(any(c in line for line in lines) for c in cells)  # every column printed, whole
    assert sum(line.startswith("loss ") for line in lines) >= 2
    wide = _render(result, tty=False, wide=True)
    (header,) = [line for line in wide if line.startswith("loss ")]
    assert len(header) > PIPE_WIDTH and all(h in header for h in headers)
    assert any(len(line) > PIPE_WIDTH for line in wide if line.startswith("Smallest difference"))  # not wrapped


def test_columns_that_cannot_fit_are_left_out_with_a_note_naming_compare_md():
    result = seg_result()
    lines = _render(result, width=35)
    text = "\n".join(lines)
    table = "\n".join(line for line in lines if line[:1] in "┏┃┡│└")
    assert "┃ loss " in table and "miou" not in table and "0.81" not in table  # no metric fits beside the loss
    assert "Left out to fit 35 characters:" in text and "/compare--ce--etc/compare.md" in text
    legend = " ".join(text.split("Legend: ", 1)[1].split("Primary metric")[0].split())
    assert legend == "(name) = reference, no loss trained: not a contestant."  # no arrow, star or best printed


def test_legend_names_the_marks_printed_and_their_test_families():
    result = seg_result()
    rows = comparison_rows(result, primary_first=True)
    legend = console_legend(result, rows)
    assert "↑/↓ = higher/lower is better" in legend
    assert ("* / ** = paired t-test against the baseline ce, p_adj < 0.05 / < 0.01 (Holm on miou, "
            "Benjamini-Hochberg on the other metrics, over the 7 tests against ce)") in legend
    assert "(best) = beats each of the 7 other losses in paired t-tests, p_adj < 0.05 (Benjamini-Hochberg" in legend
    assert "the two marks test different families" in legend and "(name) = reference" in legend

    def cut(*headers):
        return [{h: r[h] for h in ("loss",) + headers} for r in rows]

    only_best = console_legend(result, cut("betti0_err ↓"))  # cldice: (best), no star
    assert "(best)" in only_best and "*" not in only_best and "different families" not in only_best
    only_primary = console_legend(result, cut("miou ↑"))
    assert "* / ** = " in only_primary and "(Holm on miou, over the 7 tests" in only_primary
    assert "(best)" not in only_primary
    only_border = console_legend(result, cut("iou_border ↑"))  # wce: one star, BH
    assert "* = paired t-test" in only_border and "**" not in only_border and "(Benjamini-Hochberg, over" in only_border
    no_refs = [r for r in cut() if not r["loss"].startswith("(")]
    assert console_legend(result, no_refs) == ""  # nothing marked, nothing said


def test_one_seed_allows_no_test_and_no_mde():
    result = seg_result(n_seeds=1)
    lines = verdict_lines(result)
    assert lines == [
        "Primary metric `miou`: no paired test is possible with one seed (a paired t-test needs n >= 2), so no "
        "loss can be called better or worse; rerun with 3 or more seeds.",
        "Smallest difference detectable with one seed: undefined (no spread of the paired differences to estimate "
        "it from)."]
    assert "none differs" not in comparison_markdown(result) and lines[0] in comparison_markdown(result)
    result["target_effect"] = 0.02
    assert verdict_lines(result)[2].endswith("cannot be estimated (no spread estimate yet).")
    printed = _render(result, tty=False)
    assert not any("none differs" in line for line in printed)
    assert any(line.startswith("Primary metric miou: no paired test is possible with one seed") for line in printed)


def test_failed_seeds_leaving_one_pair_allow_no_test_either():
    result = seg_result()
    for row in result["rows"]:
        row["n_pairs"] = 1 if row["loss"] != "ce" else 10
    assert verdict_lines(result)[0].startswith("Primary metric `miou`: no paired test is possible with 1 seed where a "
                                               "loss and the baseline both finished")
    result = seg_result()
    assert verdict_lines(result)[0].startswith("Primary metric `miou`: no loss beats every other; against the baseline")


def test_markdown_table_keeps_every_metric_in_one_table():
    md = comparison_markdown(seg_result())
    header = next(line for line in md.splitlines() if line.startswith("| loss |"))  # the main table's
    assert all(f"{m} " in header for m in METRICS) and "s/step" in header


def test_a_one_row_train_table_folds_in_a_pipe_and_not_with_wide():
    row = {"loss": "ce+0.1*topo(mu=0.5)", "seed": 0, "status": "done"}
    row.update({m: "0.1234" for m in METRICS})
    out = io.StringIO()
    shown = print_table([row], file=out, fit=True)
    lines = out.getvalue().splitlines()
    assert shown == list(row) and max(map(len, lines)) <= PIPE_WIDTH and len(lines) == 7  # two tables, a blank
    out = io.StringIO()
    print_table([row], file=out, fit=True, wide=True)
    assert len(out.getvalue().splitlines()) == 3 and len(out.getvalue().splitlines()[0]) > PIPE_WIDTH


def test_values_are_never_read_as_rich_markup():
    """A loss spec with brackets (or a hostile results file) prints as written on a terminal."""
    out = Terminal()
    print_table([{"loss": "perceptual(layers=[relu1_2,relu2_2])", "note": "[bold]x[/bold]"}], "[red]t", out, fit=True)
    text = out.getvalue()
    assert "perceptual(layers=[relu1_2,relu2_2])" in text and "[bold]x[/bold]" in text and "[red]t" in text
