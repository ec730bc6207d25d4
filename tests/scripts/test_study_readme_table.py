"""scripts/study_readme_table.py: the README's hypothesis table from hand-made records (the
verdict words with their MDE, the ITT column only when a trial failed) and the block it
replaces between its markers."""
from __future__ import annotations

import math

import pytest


def _rec(name, verdict="not detected", failed=0, ran=True, **kw):
    rec = {"hypothesis": name, "comparison": "c", "a": "l1", "b": "mse", "claim": "better", "metric": "psnr_y",
           "higher_is_better": True, "margin": None, "within_margin": False, "registered": True, "post_hoc": "",
           "why": "Johnson et al. 2016", "diff": 0.25, "ci95": 0.125, "ci_family": 0.2, "level": 0.01, "p": 0.02,
           "p_adj": 0.04, "m": 5, "mde": 0.5, "headroom": math.inf, "n": 10, "verdict": verdict, "failed": failed,
           "ran": ran}
    rec.update(kw)
    return rec


def test_rows_give_each_hypothesis_its_numbers_and_verdict(readme_table):
    evaluated = {"completed": [_rec("h-null"), _rec("h-up", verdict="appears", p_adj=0.001),
                               _rec("h-later", ran=False, verdict="not measurable", n=0)],
                 "itt": [_rec("h-null"), _rec("h-up", verdict="appears"), _rec("h-later", ran=False, n=0)]}
    lines = readme_table.table(evaluated).splitlines()
    assert lines[0] == ("| hypothesis | claim | source | Δ ± 95% CI | p (Holm, m) | MDE | headroom | n | verdict |")
    assert lines[2] == ("| `h-null` | `l1` better than `mse` on psnr_y ↑ | Johnson et al. 2016 | 0.25 ± 0.12 "
                        "| 0.04 (5) | 0.5 | ∞ | 10 | **not detected (MDE 0.5)** |")
    assert lines[3].endswith("| 0.001 (5) | 0.5 | ∞ | 10 | **appears** |")
    assert lines[4] == ("| `h-later` | `l1` better than `mse` on psnr_y ↑ | Johnson et al. 2016 | — | — | — | — | — "
                        "| **not run yet** |")


def test_the_itt_column_appears_only_when_a_trial_failed(readme_table):
    evaluated = {"completed": [_rec("h-a"), _rec("h-b")],
                 "itt": [_rec("h-a"), _rec("h-b", verdict="reversed", failed=2, diff=-0.5)]}
    lines = readme_table.table(evaluated).splitlines()
    assert lines[0].endswith("| verdict | intent to treat |")
    assert lines[2].endswith("| same (no trial failed) |")
    assert lines[3].endswith("| reversed (Δ -0.5 ± 0.12) |")


def test_replace_block_swaps_only_what_lies_between_the_markers(readme_table):
    text = f"intro\n{readme_table.BEGIN}\nold | table\n{readme_table.END}\noutro\n"
    out = readme_table.replace_block(text, "| new |\n")
    assert out == f"intro\n{readme_table.BEGIN}\n| new |\n{readme_table.END}\noutro\n"
    with pytest.raises(ValueError):
        readme_table.replace_block("no markers", "| new |")
