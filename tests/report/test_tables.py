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


def test_verdict_without_a_winner_names_the_losses_that_differ_from_the_baseline():
    """No loss beats every other, yet two differ from the baseline after Holm: the verdict
    must say which and how (it once said "no significant difference" here)."""
    from cvloss.report.tables import verdict_lines

    def row(loss, diff, p_adj, analysis="completed"):
        return {"loss": loss, "metric": "acc", "analysis": analysis, "diff_vs_baseline": diff, "p_adj": p_adj}

    result = {"losses": ["a", "b", "c", "d"], "seeds": [0, 1, 2], "baseline": "a", "primary_metric": "acc",
              "metrics": ["acc"], "directions": {"acc": True}, "best": {"acc": None}, "alpha": 0.05,
              "rows": [row("a", None, None), row("b", -0.179, 0.00063), row("c", 0.02, 0.41), row("d", 0.1, 0.03),
                       row("d", 0.1, 0.2, analysis="itt"), {"loss": "(untrained)", "metric": "acc",
                                                            "analysis": "reference", "diff_vs_baseline": -0.3,
                                                            "p_adj": 0.0}]}
    head = ("Primary metric `acc`: no loss beats every other; against the baseline `a` (Holm over its m = 3 "
            "contrasts; each MDE at level α/m = 0.017, from the SD of that contrast's own paired differences): ")
    assert verdict_lines(result)[0] == head + (
        "appears (better than the baseline): `d` (Δ 0.1, p_holm = 0.03); reversed (worse): `b` (Δ -0.179, "
        "p_holm = 0.00063); inconclusive (MDE ≥ headroom: this study could not have detected it): `c` (no MDE: no "
        "spread of its paired differences recorded).")
    result["rows"] = [row("b", -0.01, 0.5), row("c", 0.02, 0.41)]
    result["rows"][0]["diff_ci95"] = 0.02  # a spread recorded: b's null has an MDE (its SD from the CI)
    said = verdict_lines(result)[0]
    assert "`b` (Δ -0.01, MDE " in said and "not detected: " in said and "appears" not in said
    assert "none differs" not in said and "not measurable: `d`" in said  # d has no row: no test ran
    result["best"] = {"acc": "d"}
    assert verdict_lines(result)[0].startswith("Primary metric `acc`: `d` beats every other loss (Holm-corrected "
                                               "paired tests); against the baseline `a`")
