"""Tidy per-trial data: ``runs.csv``, one row per trial (task, dataset, budget, split, loss,
seed, status, every metric, compute, commit), per comparison and for a whole report. It
loads with ``pandas.read_csv`` and pivots (``df.pivot_table(index="loss", columns="seed",
values="miou")``) without cleaning: every metric is a column of numbers, missing values
are empty."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Mapping

# What the final numbers are measured on: the held-out test split, read once per trial
# after its last epoch (learning curves and every choice use val).
FINAL_SPLIT = "test"
KEYS = ("task", "dataset", "budget", "split", "loss", "seed", "status")
COMPUTE = ("train_time_s", "epochs", "steps", "step_time_s", "peak_mem_mib", "peak_mem_how", "generator_updates",
           "discriminator_updates")


def run_rows(result: Mapping[str, Any], summaries: Mapping[str, list[dict[str, Any] | None]],
             commits: Mapping[str, list[str | None]]) -> list[dict[str, Any]]:
    """One row per (loss, seed) of a comparison: ``summaries[loss][i]`` and
    ``commits[loss][i]`` belong to seed ``result["seeds"][i]``; a trial without a summary
    is a row with status ``missing``."""
    rows = []
    for loss in result["losses"]:
        for i, seed in enumerate(result["seeds"]):
            s = summaries[loss][i] or {}
            row = {"task": result["task"], "dataset": result["dataset"], "budget": result["budget"],
                   "split": FINAL_SPLIT, "loss": loss, "seed": seed, "status": s.get("status", "missing")}
            metrics = s.get("metrics") or {}
            row.update({m: metrics.get(m) for m in result["metrics"]})
            row.update({k: s.get(k) for k in COMPUTE})
            untrained = s.get("untrained") or {}
            row.update({f"untrained_{m}": untrained.get(m) for m in result["metrics"]})
            row["commit"] = commits[loss][i]
            rows.append(row)
    return rows


def merge_run_files(paths: Iterable[Path], root: Path) -> list[dict[str, Any]]:
    """The rows of several comparisons' ``runs.csv``, each with its ``comparison`` folder
    (relative to ``root``); columns are the union, in order of first appearance."""
    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                rows.append({"comparison": path.parent.relative_to(root).as_posix(), **row})
    return rows
