"""scripts/reference_effects.py on a hand-made runs.csv: the paired difference, Holm over
the declared family's measurable contrasts, the verdicts (appears, reversed, not detected,
inconclusive, not measurable; cvloss.verdict's) and intent to treat."""
import csv
import math

from scipy import stats


A = [0.80, 0.82, 0.79, 0.85, 0.81]
B = [0.70, 0.71, 0.72, 0.70, 0.69]
C = [0.80, 0.70, 0.90, 0.60, 0.85]  # noisy: no effect against A


def _write(tmp_path, status_c=("done",) * 5):
    cmp_dir = tmp_path / "compare--a--b--c"
    cmp_dir.mkdir()
    with open(cmp_dir / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["loss", "seed", "status", "acc", "err", "lpips", "untrained_acc"])
        w.writeheader()
        for loss, vals, status in (("a", A, ("done",) * 5), ("b", B, ("done",) * 5), ("c", C, status_c)):
            for seed, v in enumerate(vals):
                w.writerow({"loss": loss, "seed": seed, "status": status[seed], "acc": v if status[seed] != "diverged"
                            else "", "err": 1 - v, "lpips": "", "untrained_acc": 0.5})
    return cmp_dir


def test_contrasts_holm_and_verdicts(tmp_path, effects):
    cmp_dir = _write(tmp_path)
    declared = [("a", "b", "acc", "a beats b"), ("b", "a", "acc", "b beats a"), ("c", "a", "acc", "c beats a"),
                ("a", "b", "lpips", "no values")]
    recs = effects.test_effects(cmp_dir, declared, {"acc": True, "lpips": False})
    raw = stats.ttest_rel(A, B).pvalue
    assert math.isclose(recs[0]["diff"], sum(A) / 5 - sum(B) / 5) and math.isclose(recs[0]["p"], raw)
    # Holm over the 3 finite p-values of the family (the lpips contrast has none)
    ps = sorted([raw, raw, stats.ttest_rel(C, A).pvalue])
    assert math.isclose(recs[0]["p_holm"], ps[0] * 3)
    assert [r["verdict"] for r in recs] == ["appears", "reversed", "not detected", "not measurable"]
    assert recs[2]["mde"] > abs(recs[2]["diff"])  # what could have been seen, beyond what was
    assert recs[0]["mde"] < recs[2]["mde"]  # a tighter contrast detects smaller differences
    # the MDE is at level alpha / m with m = 3 measurable contrasts (not 4: lpips has no values)
    from cvloss.verdict import min_detectable_effect
    import numpy as np
    sd = float(np.std([c - a for c, a in zip(C, A)], ddof=1))
    assert math.isclose(recs[2]["mde"], min_detectable_effect(sd, 5, 0.05 / 3), rel_tol=1e-9)
    # bounded at 1, a's 0.814 leaves c 0.186 of headroom: an MDE above it makes c's null inconclusive
    bounded = effects.test_effects(cmp_dir, declared, {"acc": True, "lpips": False}, bounds={"acc": (0.0, 1.0)})
    assert bounded[2]["verdict"] == "inconclusive" and bounded[2]["mde"] >= bounded[2]["headroom"]
    assert math.isclose(bounded[2]["headroom"], 1 - sum(A) / 5)
    lower = effects.test_effects(cmp_dir, [("a", "b", "err", "a errs less")], {"err": False})
    assert lower[0]["verdict"] == "appears" and lower[0]["diff"] < 0  # lower is better


def test_intent_to_treat_counts_a_diverged_trial_at_the_untrained_value(tmp_path, effects):
    cmp_dir = _write(tmp_path, status_c=("done", "diverged", "done", "done", "done"))
    completed = effects.test_effects(cmp_dir, [("c", "b", "acc", "")], {"acc": True})[0]
    itt = effects.test_effects(cmp_dir, [("c", "b", "acc", "")], {"acc": True}, itt=True)[0]
    assert completed["n"] == 4 and itt["n"] == 5 and completed["failed"] == 1
    vals = [C[0], 0.5, *C[2:]]
    assert math.isclose(itt["diff"], sum(v - b for v, b in zip(vals, B)) / 5)
    md = effects.markdown([itt], "effect")
    assert sum(line.startswith("| `") for line in md.splitlines()) == 1 and "`c` vs `b`" in md and "acc ↑" in md
    assert "m = 1 measurable contrast" in md
