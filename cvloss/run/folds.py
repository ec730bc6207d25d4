"""k-fold protocols: one trial per seed made of k resumable fold sub-trials.

LFW's View 2 (Huang et al. 2007, "unrestricted, labeled outside data") reports a model by
ten folds: for fold f, train on the people of the other nine folds and test on the 600
pairs of fold f; the published number is the mean over folds with its standard error
(the LFW results page's "mean ± SE"). A task declares such a protocol with
``TaskSpec.folds(dataset) -> k`` (0: none). Then the seed's trial ``<loss>/seed<k>/`` is
trained as k ordinary trials ``seed<k>/fold<f>/`` (each locked, checkpointed and resumed
alone), and its ``summary.json`` is written by :func:`write_fold_summary` after the last
fold: ``metrics`` = the mean over folds, ``fold_se`` = their standard error
sd / sqrt(k), ``folds`` = each fold's status and metrics. The comparison then treats the
seed's summary like any other trial's.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from cvloss.io import SUMMARY_SCHEMA, write_json
from cvloss.run.config import TrialConfig
from cvloss.tasks import get_task_class

SUMMARY = "summary.json"
#: How a seed's trial fares from its folds' statuses: the worst one wins.
_WORST = ("diverged", "collapsed", "degenerate", "done")
#: Fold statuses with final metrics of their own (averaged into the seed's).
_FINISHED = ("done", "collapsed", "degenerate")


def fold_count(cfg: TrialConfig) -> int:
    """Folds of the task's protocol on the trial's dataset (0: an ordinary trial). A tuning
    trial (``test=False``) is never split into folds: it trains on the development split
    and is scored on val (LFW: View 1, the view its authors set aside for model selection)."""
    if cfg.fold is not None or not cfg.test:
        return 0
    return int(get_task_class(cfg.task).spec.folds(cfg.dataset))


def expand(cfgs: list[TrialConfig]) -> tuple[list[TrialConfig], list[list[int]]]:
    """Replace each unfinished k-fold trial by its k fold sub-trials (in fold order, in
    place). Returns the flat list and, for each trial of ``cfgs``, its indices in it (one
    index for an ordinary or finished trial, k for an expanded one)."""
    flat: list[TrialConfig] = []
    where: list[list[int]] = []
    for cfg in cfgs:
        k = fold_count(cfg)
        if not k or (cfg.trial_dir / SUMMARY).exists():
            where.append([len(flat)])
            flat.append(cfg)
            continue
        where.append(list(range(len(flat), len(flat) + k)))
        flat += [replace(cfg, fold=f) for f in range(k)]
    return flat, where


def collect(cfgs: list[TrialConfig], where: list[list[int]], summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary of each trial of ``cfgs`` from the flat run's ``summaries``: its own
    (one index), or the seed summary made from its folds' (:func:`write_fold_summary`)."""
    return [summaries[idx[0]] if len(idx) == 1 else write_fold_summary(cfg, [summaries[j] for j in idx])
            for cfg, idx in zip(cfgs, where)]


def fold_dirs(trial_dir) -> list:
    """The fold sub-trial folders of a seed's trial folder, in fold order (none: [])."""
    return sorted((d for d in trial_dir.glob("fold*") if d.is_dir() and d.name[4:].isdigit()),
                  key=lambda d: int(d.name[4:]))


def _mean_block(blocks: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in blocks[0] if all(isinstance(b.get(k), (int, float)) for b in blocks)] if blocks else []
    return {k: float(np.mean([b[k] for b in blocks])) for k in keys}


def fold_summary(cfg: TrialConfig, folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's summary from its folds' summaries (see the module docstring); with a
    fold still interrupted, that fold's status ``interrupted`` (nothing is written)."""
    statuses = [str(s.get("status")) for s in folds]
    if any(st not in _WORST for st in statuses):
        return {"status": "interrupted", "folds": statuses}
    status = next(st for st in _WORST if st in statuses)
    finished = [s for s in folds if s.get("status") in _FINISHED]
    metrics = _mean_block([s["metrics"] for s in finished]) if status != "diverged" else {}
    k = len(finished)
    se = {m: float(np.std([s["metrics"][m] for s in finished], ddof=1) / math.sqrt(k)) if k > 1 else math.nan
          for m in metrics}
    return {
        "schema": SUMMARY_SCHEMA, "status": status, "task": cfg.task, "dataset": cfg.dataset, "budget": cfg.budget,
        "loss": cfg.loss, "seed": cfg.seed, "split": "test", "protocol": f"{len(folds)}-fold",
        "metrics": metrics, "fold_se": se,
        "untrained": _mean_block([s.get("untrained") or {} for s in folds]),
        "val_metrics": _mean_block([s.get("val_metrics") or {} for s in finished]) if finished else {},
        "folds": [{"fold": f, "status": s.get("status"), "metrics": s.get("metrics", {})} for f, s in enumerate(folds)],
        **({"collapse": "; ".join(f"fold {f}: {s['collapse']}" for f, s in enumerate(folds) if s.get("collapse"))}
           if status == "collapsed" else {}),
        # the degenerate rule's reasons of the folds it flagged, on val (the seed is
        # degenerate when one fold is and none failed worse) and on test (a note)
        "degenerate": _reasons(folds, "degenerate") if status == "degenerate" else None,
        "degenerate_on_test": _reasons(folds, "degenerate_on_test"),
        "reference": {},
        "epochs": folds[0].get("epochs"),
        **{key: float(sum(s.get(key) or 0.0 for s in folds)) for key in ("train_time_s",)},
        **{key: _mean_block([{key: s.get(key)} for s in folds]).get(key) for key in ("step_time_s",)},
        "peak_mem_mib": max((s.get("peak_mem_mib") or 0.0) for s in folds),
        "peak_mem_how": folds[0].get("peak_mem_how"),
        "feature_weights": folds[0].get("feature_weights"),
        "device": folds[0].get("device"),
    }


def _reasons(folds: list[dict[str, Any]], key: str) -> str | None:
    """``fold 3: <reason>; fold 7: <reason>`` of the folds whose ``key`` holds one; None."""
    return "; ".join(f"fold {f}: {s[key]}" for f, s in enumerate(folds) if s.get(key)) or None


def write_fold_summary(cfg: TrialConfig, folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the seed's summary.json once every fold has finished; return it."""
    summary = fold_summary(cfg, folds)
    if summary["status"] != "interrupted":
        write_json(cfg.trial_dir / SUMMARY, summary)
    return summary
