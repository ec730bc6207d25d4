"""Tidy per-trial data: ``runs.csv``, one row per trial (task, dataset, budget, split, loss,
seed, status, every metric, compute, commit), per comparison and for a whole report. It
loads with ``pandas.read_csv`` and pivots (``df.pivot_table(index="loss", columns="seed",
values="miou")``) without cleaning: every metric is a column of numbers, missing values
are empty."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterable, Mapping

from cvloss.io import read_csv
from cvloss.result import ComparisonResult, reads_result

# What the final numbers are measured on: the held-out test split, read once per trial
# after its last epoch (learning curves and every choice use val).
FINAL_SPLIT = "test"
KEYS = ("task", "dataset", "budget", "split", "loss", "seed", "status")
COMPUTE = ("train_time_s", "epochs", "steps", "step_time_s", "peak_mem_mib", "peak_mem_how", "generator_updates",
           "discriminator_updates")


@reads_result
def run_rows(result: ComparisonResult, summaries: Mapping[str, list[dict[str, Any] | None]],
             commits: Mapping[str, list[str | None]]) -> list[dict[str, Any]]:
    """One row per (loss, seed) of a comparison: ``summaries[loss][i]`` and
    ``commits[loss][i]`` belong to seed ``result.seeds[i]``; a trial without a summary
    is a row with status ``missing``."""
    rows = []
    for loss in result.losses:
        for i, seed in enumerate(result.seeds):
            s = summaries[loss][i] or {}
            row = {"task": result.task, "dataset": result.dataset, "budget": result.budget,
                   "split": FINAL_SPLIT, "loss": loss, "seed": seed, "status": s.get("status", "missing")}
            metrics = s.get("metrics") or {}
            row.update({m: metrics.get(m) for m in result.metrics})
            row.update({k: s.get(k) for k in COMPUTE})
            untrained = s.get("untrained") or {}
            row.update({f"untrained_{m}": untrained.get(m) for m in result.metrics})
            row["commit"] = commits[loss][i]
            rows.append(row)
    return rows


def is_own_file(path: Path) -> bool:
    """Whether ``path`` itself (a link not followed) is a regular file with one link: a
    symbolic link may lead anywhere, and a hard link may be a file of another folder."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def merge_run_files(paths: Iterable[Path], root: Path) -> list[dict[str, Any]]:
    """The rows of several comparisons' ``runs.csv``, each with its ``comparison`` folder
    (relative to ``root``); columns are the union, in order of first appearance. The
    report reads only inside its folder: a file that is missing, a link (symbolic or
    hard, :func:`is_own_file`), or in a folder whose real path leaves ``root`` is left
    out; the others are read bounded (:func:`cvloss.io.read_csv`)."""
    root = Path(root)
    real_root = root.resolve()
    rows = []
    for path in map(Path, paths):
        if not is_own_file(path) or not path.parent.resolve().is_relative_to(real_root):
            continue
        for row in read_csv(path, root):
            rows.append({"comparison": path.parent.relative_to(root).as_posix(), **row})
    return rows
