"""A hand-made comparison on disk: compare.json with known marks, trial folders with
trial.json / summary.json / metrics.csv / samples.npz, and tiny plot files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

NAN = math.nan


def _row(loss, metric, mean, ci, n, p=NAN, diff=NAN, ref=False, **extra):
    row = {"loss": loss, "metric": metric, "higher_is_better": metric == "miou", "mean": mean, "ci95": ci, "n": n,
           "diverged": 0, "collapsed": 0, "missing": 0, "diff_vs_baseline": diff, "diff_ci95": 0.01, "p_value": p,
           "n_pairs": n}
    if ref:
        row["reference"] = True
    row.update(extra)
    return row


def make_result(root: Path, losses=("ce", "dice", "topo", "wce"), budget="quick", dataset="toy") -> dict:
    """Marks by construction, per metric:
    miou (higher better): ce .70 (baseline), dice .75 (p=.012 -> *), topo .72 (p=.004 -> **),
        wce .50 (n=1: one done, one diverged, one collapsed); reference .99 (never best)
        -> best dice.
    betti0_err (lower better): ce 5, dice 4 (p=.2), topo 2 (p=.03 -> *), wce n/a;
        reference 0.5 (never best) -> best topo."""
    group = root / "seg" / dataset / budget
    cmp_dir = group / ("compare--" + "--".join(losses))
    cmp_dir.mkdir(parents=True, exist_ok=True)
    seeds = [0, 1, 2]
    table = {
        "ce": {"miou": (0.70, 0.02, 3, NAN), "betti0_err": (5.0, 1.0, 3, NAN)},
        "dice": {"miou": (0.75, 0.03, 3, 0.012), "betti0_err": (4.0, 1.5, 3, 0.2)},
        "topo": {"miou": (0.72, 0.01, 3, 0.004), "betti0_err": (2.0, 0.5, 3, 0.03)},
        "wce": {"miou": (0.50, NAN, 1, NAN), "betti0_err": (NAN, NAN, 0, NAN)},
    }
    rows = []
    for loss in losses:
        for metric, (mean, ci, n, p) in table[loss].items():
            rows.append(_row(loss, metric, mean, ci, n, p=p, diff=mean - table[losses[0]][metric][0]))
    ref = "untrained (epoch 0)"
    rows += [_row(ref, "miou", 0.99, 0.001, 3, ref=True), _row(ref, "betti0_err", 0.5, 0.1, 3, ref=True)]
    status = {l: ["done"] * 3 for l in losses}
    if "wce" in losses:
        status["wce"] = ["done", "diverged", "collapsed"]
    trials = {l: [str(group / l / f"seed{s}") for s in seeds] for l in losses}
    for loss in losses:
        for k, d in enumerate(trials[loss]):
            d = Path(d)
            d.mkdir(parents=True, exist_ok=True)
            (d / "trial.json").write_text(json.dumps({
                "config": {"task": "seg", "loss": loss, "dataset": dataset, "budget": budget, "seed": k,
                           "feature_weights": "auto", "overrides": {"epochs": 3}, "params": {"epochs": 3, "lr": 0.01}},
                "versions": {"cvloss": "0.1.0", "torch": "2.14.1"}, "git_commit": "abc123def456",
                "device": "cpu:test (2 cores)", "data": f"{dataset}: 8 train / 4 val"}))
            st = status[loss][k]
            mets = {m: v[0] for m, v in table[loss].items()} if st == "done" else {}
            (d / "summary.json").write_text(json.dumps({"schema": 2, "status": st, "metrics": mets}))
            (d / "metrics.csv").write_text("epoch,train_loss,miou\n1,1.0,0.5\n2,0.8,0.6\n3,0.7,0.7\n")
            rng = np.random.default_rng(k)
            img = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
            np.savez(d / "samples.npz", input=img, truth=img, pred=img)
    result = {"task": "seg", "dataset": dataset, "budget": budget, "losses": list(losses), "seeds": seeds,
              "baseline": losses[0], "references": [ref], "metrics": ["miou", "betti0_err"],
              "directions": {"miou": True, "betti0_err": False}, "rows": rows, "feature_weights": ["imagenet"],
              "trials": trials, "status": status, "primary_metric": "miou", "dir": str(cmp_dir), "plots": {}}
    # compare.py writes NaN as null
    (cmp_dir / "compare.json").write_text(json.dumps(result).replace("NaN", "null"))
    return result


@pytest.fixture(scope="session")
def make_comparison():
    """The :func:`make_result` factory (tests import no helpers from conftest)."""
    return make_result


@pytest.fixture
def handmade(tmp_path):
    return make_result(tmp_path / "results")
