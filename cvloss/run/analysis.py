"""How a comparison's trials become its numbers: each trial's status and values, the
two analyses (completed trials; intent to treat), the rows of compare.csv, compute, and
whether the trials may be pooled at all (same code, torch and threads).

Statuses: ``done``, and the failures ``diverged`` (a NaN/Inf), ``collapsed`` (the task's
collapse check), ``degenerate`` (the trained model is worse than the trivial answer, the
task's rule decided on val; checked only when it neither diverged nor collapsed),
``crashed`` (its worker died twice) and ``missing`` (never ran).

Intent to treat (ITT): every trial that ran counts -- a collapsed or degenerate one at its
own final metrics, a diverged or crashed one at the untrained model's test metrics at its
seed (it bought nothing over the initial weights) -- so a loss that fails on some seeds
looks worse, not better, than one that does not. The completed analysis keeps only the
trials that finished without failing (``done``), as tables always did.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError
from cvloss.io import read_json
from cvloss.report.runs import FINAL_SPLIT
from cvloss.run.config import TrialConfig
from cvloss.run.folds import fold_dirs
from cvloss.run.provenance import code_key, current_code_key, run_key
from cvloss.run.stats import mean_ci, paired_difference
from cvloss.run.trainer import CRASHED, SUMMARY, TRIAL, UNTRAINED

#: The marker an executor leaves in a trial folder whose worker died on every attempt.
#: Statuses of a trial that finished training and has final metrics of its own.
FINISHED = ("done", "collapsed", "degenerate")
#: The failure counts every row of compare.csv carries.
FAILURE_COUNTS = ("diverged", "collapsed", "degenerate", "crashed", "missing")


class ComparisonError(UsageError):
    """A comparison that would replace another one (a different seed set), or pool or
    reuse trials of different code or torch versions."""


def where(base: TrialConfig) -> dict[str, Any]:
    """The columns that make compare.csv rows of several comparisons poolable."""
    return {"task": base.task, "dataset": base.dataset, "budget": base.group_dir.name, "split": FINAL_SPLIT}


def value(summary: dict[str, Any] | None, metric: str) -> float:
    v = (summary or {}).get("metrics", {}).get(metric)
    return float(v) if isinstance(v, (int, float)) else math.nan


def trial_status(trial_dir: Path, summary: dict[str, Any] | None) -> str:
    """done / collapsed / degenerate / diverged from the summary; without one ``crashed``
    when the executor left its marker (the worker died twice), else ``missing``."""
    if summary is not None:
        return str(summary.get("status", "missing"))
    return "crashed" if (trial_dir / CRASHED).exists() else "missing"


def untrained_by_seed(base: TrialConfig, losses: list[str], seeds: list[int],
                       summaries: dict[str, list[dict[str, Any] | None]]) -> dict[int, dict[str, float]]:
    """The untrained model's test metrics per seed, from any trial at that seed (its
    summary, or the untrained.json a crashed trial left): every loss starts from the same
    weights at a seed, so they agree."""
    out: dict[int, dict[str, float]] = {}
    for i, seed in enumerate(seeds):
        for spec in losses:
            s = summaries[spec][i]
            found = (s or {}).get("untrained")
            path = replace(base, loss=spec, seed=seed).trial_dir / UNTRAINED
            if not found and path.exists():
                found = read_json(path)
            if isinstance(found, dict) and found:
                out[seed] = found
                break
    return out


def itt_value(summary: dict[str, Any] | None, status: str, metric: str, untrained: dict[str, float]) -> float:
    """The intent-to-treat value of one trial: its final metric when it finished (done,
    collapsed or degenerate: its own value, however bad), the untrained model's at its
    seed when it diverged or crashed (it bought nothing over the initial weights), NaN
    when it has not run."""
    if status in FINISHED:
        return value(summary, metric)
    if status in ("diverged", "crashed"):
        v = untrained.get(metric)
        return float(v) if isinstance(v, (int, float)) else math.nan
    return math.nan


def loss_rows(base: TrialConfig, losses: list[str], vals: dict[str, dict[str, list[float]]],
               status: dict[str, list[str]], directions: dict[str, bool], stats: dict[str, Any],
               analysis: str) -> list[dict[str, Any]]:
    """One compare.csv row per (loss, metric) of one analysis: mean ± CI, the paired
    difference against the baseline with its corrected p, d_z and P(A > B), and the
    contrast's verdict (:func:`cvloss.verdict.assess`: ``sd_diff``, ``family_m``,
    ``mde``, ``headroom``, ``verdict``; NaN / empty on the baseline's own rows)."""
    baseline, rows = losses[0], []
    for spec in losses:
        counts = {k: sum(st == k for st in status[spec]) for k in FAILURE_COUNTS}
        for metric, v in vals[spec].items():
            mean, ci, n = mean_ci(v)
            row = {**where(base), "analysis": analysis, "loss": spec, "metric": metric,
                   "higher_is_better": directions[metric], "mean": mean, "ci95": ci, "n": n, **counts,
                   "success_rate": sum(st == "done" for st in status[spec]) / len(status[spec])}
            if spec != baseline:
                d, d_ci, p, n_pairs = paired_difference(v, vals[baseline][metric])
                row.update({"diff_vs_baseline": d, "diff_ci95": d_ci, "p_value": p, "n_pairs": n_pairs})
            else:
                row.update({"diff_vs_baseline": math.nan, "diff_ci95": math.nan, "p_value": math.nan, "n_pairs": n})
            row.update(stats["cells"].get((spec, metric), {
                "p_adj": math.nan, "correction": "", "dz": math.nan, "p_improve": math.nan, "sd_diff": math.nan,
                "family_m": 0, "mde": math.nan, "headroom": math.nan, "verdict": ""}))
            rows.append(row)
    return rows


def compute_summary(runs: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Compute of one loss over its finished trials (a diverged trial's partial time says
    little): wall time per trial and per step, peak memory (and how it was measured),
    generator updates of adversarial tasks -- each ``mean`` with its CI where it varies."""
    finished = [s for s in runs if s and s.get("status") in FINISHED]
    out: dict[str, Any] = {"n": len(finished)}
    for key in ("train_time_s", "step_time_s", "peak_mem_mib", "generator_updates", "discriminator_updates"):
        vals = [s[key] for s in finished if isinstance(s.get(key), (int, float)) and not isinstance(s.get(key), bool)]
        if vals:  # train_time_s -> train_time_ci95, peak_mem_mib -> peak_mem_mib_ci95
            mean, ci, _ = mean_ci(vals)
            out[key], out[key.removesuffix("_s") + "_ci95"] = mean, ci
    for key in ("peak_mem_how", "optimizer"):  # how memory was measured; adversarial optimiser policy
        found = sorted({s[key] for s in finished if isinstance(s.get(key), str)})
        if found:
            out[key] = "; ".join(found)
    return out


def _trial_infos(seed_dirs: list[Path], finished_only: bool = True) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, trial.json) of each trial under ``seed_dirs`` -- a k-fold trial's records
    are its folds' (:mod:`cvloss.run.folds`); ``finished_only``: seeds with a summary."""
    out = []
    for d in seed_dirs:
        if finished_only and not (d / SUMMARY).exists():
            continue
        for f in ([d] if (d / TRIAL).exists() else fold_dirs(d)):
            if (f / TRIAL).is_file():
                info = read_json(f / TRIAL)
                out.append((f, info if isinstance(info, dict) else {}))
    return out


def check_provenance(trials: dict[str, list[Path]], allow_mixed: bool) -> dict[str, Any]:
    """The code (source, plugins used, torch; :func:`cvloss.run.provenance.code_key`) of a
    comparison's finished trials, and where they ran (threads, device). Trials of more than
    one code are refused with one line (:class:`ComparisonError`) unless ``allow_mixed``
    (the tables then say ``mixed``). Different plugin hashes for *different* losses are one
    code (each loss hashes only the plugins it uses); two sources or torch versions, or one
    loss's trials at two plugin hashes, are mixed. Threads and devices are listed, never
    refused."""
    combos: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    by_loss: dict[str, set[tuple[str, str]]] = {}
    commits, dirty = set(), False
    for spec, seed_dirs in trials.items():
        for d, info in _trial_infos(seed_dirs):
            (source, torch_version), (threads, device) = code_key(info), run_key(info)
            combo = combos.setdefault((source, torch_version, threads, device),
                                      {"source": source, "torch": torch_version, "threads": threads, "device": device,
                                       "trials": 0, "example": f"{spec}/{d.name}"})
            combo["trials"] += 1
            by_loss.setdefault(spec, set()).add((source, torch_version))
            code = info.get("code") if isinstance(info.get("code"), dict) else {}
            commits.add(code.get("commit") or info.get("git_commit"))
            dirty = dirty or bool(code.get("dirty"))
    bases = {(src.split("+plugins")[0], tv) for keys in by_loss.values() for src, tv in keys}
    mixed = len(bases) > 1 or any(len(keys) > 1 for keys in by_loss.values())
    if mixed and not allow_mixed:
        parts = "; ".join(f"source {c['source']}, torch {c['torch']}: {c['trials']} trial(s), e.g. {c['example']}"
                          for c in combos.values())
        raise ComparisonError(f"the comparison's trials were made by different code or torch versions ({parts}); "
                              "rerun with --retrain-stale to retrain the odd ones, use another --out, or pass "
                              "--allow-mixed to pool them anyway (the tables then say so)")
    return {"mixed": mixed, "combinations": [{k: v for k, v in c.items() if k != "example"} for c in combos.values()],
            "commits": sorted(c for c in commits if c), "dirty": dirty}


def stale_trials(trials: dict[str, list[Path]]) -> list[tuple[Path, str, str]]:
    """The trial folders of ``trials`` (loss spec -> seed or search-trial folders; finished
    or not) that were started by other code than this process would use for their loss
    (:func:`cvloss.run.provenance.current_code_key`): (folder, its code, the code now).
    A comparison refuses to reuse them before training anything."""
    out = []
    for spec, dirs in trials.items():
        now = None
        for d in dirs:
            infos = _trial_infos([d], finished_only=False)
            if not infos:
                continue
            now = now or current_code_key(spec)
            then = next((code_key(info) for _, info in infos if code_key(info) != now), None)
            if then is not None:
                out.append((d, f"source {then[0]}, torch {then[1]}", f"source {now[0]}, torch {now[1]}"))
    return out


