"""Each verdict a study reports, from crafted comparison results (a runs.csv written by
hand, no training): appears, reversed, not detected, inconclusive, not measurable,
equivalent; Holm over a family; intent to treat; the report's four files."""
from __future__ import annotations

import csv
import math

import pytest
from scipy import stats

from cvloss.io import write_csv
from cvloss.study.hypotheses import comparison_folder, evaluate, evaluate_all
from cvloss.study.report import write_study_report

CE = {"miou": [0.50, 0.52, 0.48, 0.50], "betti0_err": [0.5, 0.4, 0.6, 0.5], "pixel_acc": [0.80, 0.81, 0.79, 0.80]}


def _plus(base, deltas):
    return [b + d for b, d in zip(base, deltas)]


# loss -> metric -> one value per seed 0..3 (None: the metric has no value, as LPIPS offline)
VALUES = {
    "ce": {**CE, "dice": [None] * 4},
    "dice": {"miou": _plus(CE["miou"], [0.10, 0.11, 0.09, 0.10])},  # clearly better
    "focal": {"miou": _plus(CE["miou"], [0.01, -0.01, 0.02, -0.02])},  # no difference, little noise
    "wce": {"betti0_err": _plus(CE["betti0_err"], [3.0, 0.0, 2.0, 0.0])},  # much noise, 0.5 of room
    "ce+dice": {"pixel_acc": _plus(CE["pixel_acc"], [0.001, -0.001, 0.0005, -0.0005]), "dice": [None] * 4},
}

STUDY = """
[[comparison]]
name = "c"
task = "seg"
losses = ["ce", "dice", "focal", "wce", "ce+dice"]
seeds = 4
"""


def _hypothesis(name, a, b, metric, family, extra=""):
    return (f'\n[[hypothesis]]\nname = "{name}"\ncomparison = "c"\na = "{a}"\nb = "{b}"\nmetric = "{metric}"\n'
            f'family = "{family}"\n{extra}')


def _runs(plan, values=VALUES, status=None):
    """Write the comparison's runs.csv: one row per loss and seed."""
    rows = []
    for loss, metrics in values.items():
        for seed in range(4):
            row = {"loss": loss, "seed": seed, "status": (status or {}).get((loss, seed), "done")}
            row.update({m: v[seed] for m, v in metrics.items()})
            row.update({f"untrained_{m}": 0.2 for m in metrics})
            rows.append(row)
    folder = comparison_folder(plan.comparison("c"))
    folder.mkdir(parents=True)
    write_csv(folder / "runs.csv", rows)
    return folder


@pytest.fixture
def verdicts(write_study, plan_of):
    text = STUDY + "".join([
        _hypothesis("appears", "dice", "ce", "miou", "f1"),
        _hypothesis("reversed", "ce", "dice", "miou", "f2"),
        _hypothesis("not-detected", "focal", "ce", "miou", "f3"),
        _hypothesis("inconclusive", "wce", "ce", "betti0_err", "f4"),
        _hypothesis("not-measurable", "ce+dice", "ce", "dice", "f5"),
        _hypothesis("equivalent", "ce+dice", "ce", "pixel_acc", "f6", 'claim = "differs"\nmargin = 0.05\n'),
    ])
    plan = plan_of(write_study(text))
    _runs(plan)
    return plan, {r["hypothesis"]: r for r in evaluate(plan, post_hoc={})}


def test_each_verdict_kind(verdicts):
    _, found = verdicts
    assert {name: r["verdict"] for name, r in found.items()} == {
        "appears": "appears", "reversed": "reversed", "not-detected": "not detected", "inconclusive": "inconclusive",
        "not-measurable": "not measurable", "equivalent": "equivalent"}


def test_the_numbers_of_a_contrast_by_hand(verdicts):
    _, found = verdicts
    r = found["appears"]
    sd = math.sqrt((0.0 ** 2 + 0.01 ** 2 + 0.01 ** 2 + 0.0 ** 2) / 3)  # diffs 0.10, 0.11, 0.09, 0.10
    t975 = 3.182446305284263  # t_{0.975, 3}
    assert r["n"] == 4 and r["diff"] == pytest.approx(0.1)
    assert r["ci95"] == pytest.approx(t975 * sd / 2)
    assert r["p"] == pytest.approx(2 * stats.t.sf(0.1 / (sd / 2), 3)) and r["p"] < 0.001
    assert r["m"] == 1 and r["p_adj"] == r["p"]  # a family of one: Holm changes nothing
    # inconclusive: the errors' bound 0 leaves 0.5 (ce's mean) of room, the MDE is far above it
    inc = found["inconclusive"]
    assert inc["headroom"] == pytest.approx(0.5) and inc["mde"] > 2 and inc["p_adj"] > 0.05
    # not detected: an MDE below the room mIoU leaves (1 - 0.5)
    nd = found["not-detected"]
    assert nd["diff"] == pytest.approx(0.0) and nd["mde"] < nd["headroom"] == pytest.approx(0.5)
    # equivalent: the CI at the family's level (m = 1: 95%) is inside ±0.05
    eq = found["equivalent"]
    sd_eq = math.sqrt((0.001 ** 2 * 2 + 0.0005 ** 2 * 2) / 3)
    assert eq["ci_family"] == pytest.approx(t975 * sd_eq / 2) and abs(eq["diff"]) + eq["ci_family"] < 0.05
    assert found["not-measurable"]["n"] == 0 and found["not-measurable"]["m"] == 0


def test_a_significant_contrast_within_the_margin_keeps_its_verdict(write_study, plan_of):
    plan = plan_of(write_study(STUDY + _hypothesis("small", "dice", "ce", "miou", "f", "margin = 1.0\n")))
    _runs(plan)
    (r,) = evaluate(plan, post_hoc={})
    assert r["verdict"] == "appears" and r["within_margin"]  # real, and smaller than what matters


def test_holm_over_a_family_and_the_mde_at_its_level(write_study, plan_of):
    text = STUDY + _hypothesis("a", "dice", "ce", "miou", "main") + _hypothesis("b", "focal", "ce", "miou", "main")
    plan = plan_of(write_study(text))
    _runs(plan)
    a, b = evaluate(plan, post_hoc={})
    assert a["m"] == b["m"] == 2 and a["level"] == 0.025
    assert a["p_adj"] == pytest.approx(min(1.0, 2 * a["p"]))  # the smaller p, times m
    assert b["p_adj"] == pytest.approx(max(a["p_adj"], b["p"]))  # step-down: at least the one before
    # the same contrast alone in its family: a smaller MDE (level 0.05 instead of 0.025)
    alone = plan_of(write_study(STUDY + _hypothesis("b", "focal", "ce", "miou", "main"), name="alone.toml"))
    (single,) = evaluate(alone, post_hoc={})
    assert single["mde"] < b["mde"]


def test_a_post_hoc_hypothesis_is_corrected_apart(write_study, plan_of):
    text = STUDY + _hypothesis("a", "dice", "ce", "miou", "main") + _hypothesis("b", "focal", "ce", "miou", "main")
    plan = plan_of(write_study(text))
    _runs(plan)
    a, b = evaluate(plan, post_hoc={"b": "added after the lock"})
    assert (a["registered"], b["registered"], b["post_hoc"]) == (True, False, "added after the lock")
    assert a["m"] == b["m"] == 1 and a["p_adj"] == a["p"]  # b does not weaken the registered family


def test_intent_to_treat_counts_a_diverged_trial_at_the_untrained_value(write_study, plan_of):
    plan = plan_of(write_study(STUDY + _hypothesis("a", "dice", "ce", "miou", "main")))
    _runs(plan, status={("dice", 3): "diverged"})
    both = evaluate_all(plan, post_hoc={})
    done, itt = both["completed"][0], both["itt"][0]
    assert done["n"] == 3 and done["diff"] == pytest.approx(0.1)
    assert itt["n"] == 4 and itt["diff"] == pytest.approx((0.10 + 0.11 + 0.09 + (0.2 - 0.50)) / 4)
    assert done["failed"] == itt["failed"] == 1


def test_the_report_files(verdicts, tmp_path):
    plan, _ = verdicts
    evaluated = evaluate_all(plan, post_hoc={"equivalent": "added after the lock"})
    paths = write_study_report(plan, None, evaluated)
    assert {k: p.name for k, p in paths.items()} == {"md": "study.md", "html": "study.html", "tex": "study.tex",
                                                      "csv": "study.csv"}
    md = paths["md"].read_text()
    registered, post = md.split("### Registered before the lock\n")[1].split("### Post hoc\n")
    assert "**appears**" in registered and "**not detected (MDE " in registered and "`equivalent`" not in registered
    assert "`equivalent`" in post and "post hoc: added after the lock" in post
    assert "is not locked: every hypothesis is post hoc" in md
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 12 and {r["analysis"] for r in rows} == {"completed", "itt"}
    assert {r["hypothesis"]: r["verdict"] for r in rows if r["analysis"] == "completed"}["inconclusive"] == "inconclusive"
    assert "<td><b>equivalent (CI within ±0.05)</b> — post hoc: added after the lock</td>" in paths["html"].read_text()
    assert r"\begin{tabular}" in paths["tex"].read_text()
