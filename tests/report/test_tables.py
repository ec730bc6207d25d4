"""Table marks on a hand-made compare.json: best per direction, significance against the
baseline, diverged/collapsed flags, references never best."""
import json
from pathlib import Path

from cvloss.report.tables import comparison_markdown, comparison_rows, comparison_table, difference_rows


def _load(result):
    return json.loads((Path(result["dir"]) / "compare.json").read_text())  # as the report reads it (NaN -> null)


def test_best_follows_each_metrics_direction_and_skips_references(handmade):
    rows = {r["loss"]: r for r in comparison_table(_load(handmade))}
    best = {m: [l for l, r in rows.items() if r["cells"][m]["best"]] for m in ("miou", "betti0_err")}
    # the untrained reference has the highest miou (.99) and lowest betti0_err (.5): never best
    assert best == {"miou": ["dice"], "betti0_err": ["topo"]}
    assert rows["untrained (epoch 0)"]["reference"] and rows["untrained (epoch 0)"]["runs"] == "reference (n=3)"


def test_significance_against_the_baseline(handmade):
    rows = {r["loss"]: r for r in comparison_table(_load(handmade))}
    sig = {l: (r["cells"]["miou"]["sig"], r["cells"]["betti0_err"]["sig"]) for l, r in rows.items()}
    assert sig == {"ce": ("", ""), "dice": ("*", ""), "topo": ("**", "*"), "wce": ("", ""),
                   "untrained (epoch 0)": ("", "")}


def test_diverged_and_collapsed_trials_are_flagged_and_counted(handmade):
    rows = {r["loss"]: r for r in comparison_table(_load(handmade))}
    assert rows["wce"]["runs"] == "1/3 (1 diverged) (1 collapsed)"
    assert rows["wce"]["flags"] == ["1 diverged", "1 collapsed"]
    assert rows["wce"]["cells"]["betti0_err"]["text"] == "n/a" and not rows["wce"]["cells"]["betti0_err"]["best"]
    assert rows["wce"]["cells"]["miou"]["text"] == "0.5"  # n=1: no CI
    assert rows["ce"]["flags"] == [] and rows["ce"]["runs"] == "3/3"


def test_console_and_markdown_renderings_carry_the_marks(handmade):
    result = _load(handmade)
    plain = {r["loss"]: r for r in comparison_rows(result)}
    assert plain["dice"]["miou ↑"] == "0.75 ± 0.03* (best)"
    assert plain["topo"]["betti0_err ↓"] == "2 ± 0.5* (best)"
    assert plain["(untrained (epoch 0))"]["miou ↑"] == "0.99 ± 0.001"
    md = comparison_markdown(result)
    assert "| `dice` | 3/3 | **0.75 ± 0.03**\\* |" in md
    assert "| `topo` | 3/3 | 0.72 ± 0.01\\*\\* | **2 ± 0.5**\\* |" in md
    assert "1/3 (1 diverged) (1 collapsed) ⚠" in md
    assert "_untrained (epoch 0)_ (reference)" in md and "**0.99" not in md
    assert "feature-network weights: imagenet" in md and "budget `quick`" in md
    diffs = {r["loss"]: r for r in difference_rows(result)}
    assert diffs["`dice`"]["miou"].startswith("+0.05 ± 0.01 (p=0.012)")
