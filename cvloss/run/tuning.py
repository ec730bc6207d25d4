"""Run a tuned comparison: the search per loss on val, then the winners on test.

See :mod:`cvloss.run.tune` for the protocol, the space and the folder layout. This module
drives it through the ordinary trial runner (every tuning trial and every retrained
winner is a resumable, locked trial folder) and hands the winners to
:func:`cvloss.run.compare.summarize_comparison`, adding the search's record (chosen
setting, every candidate's val score, the tuning cost, edge flags) to the comparison.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from cvloss.errors import UsageError
from cvloss.run.compare import check_seed_set, check_stale, comparison_dir, comparison_trials, summarize_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.executor import Executor, resolve_executor
from cvloss.run.progress import Reporter
from cvloss.run.trackers_export import track_comparison
from cvloss.run.tune import (TUNE_SEED0, Space, apply_candidate, candidates, check_space, edge_flags, record_candidate,
                             select, tuning_config, val_score, winner_config)
from cvloss.tasks import get_task_class



def _search(base: TrialConfig, losses: list[str], space: Space, reporter: Reporter, break_stale_locks: bool,
            metric: str, higher: bool, executor: Executor) -> dict[str, dict[str, Any]]:
    """Train every loss's candidates (candidate-major: after k rounds every loss has had
    the same k, also when an interrupted search is looked at) on ``executor`` and return
    per loss its candidates, summaries and val scores. TPE proposes each candidate from the
    scores before it, so its trials run one at a time in this process whatever the executor."""
    if space.sampler == "tpe":
        from cvloss.run.tpe import tpe_search  # the optional extra, imported only when asked

        return tpe_search(base, losses, space, reporter, break_stale_locks, metric, higher)
    cands = candidates(space)
    cfgs = [tuning_config(base, spec, c, i, space) for i, c in enumerate(cands) for spec in losses]
    for cfg, (i, c) in zip(cfgs, [(i, c) for i, c in enumerate(cands) for _ in losses]):
        record_candidate(cfg, c)
    summaries = executor.run(cfgs, reporter)
    out = {}
    for k, spec in enumerate(losses):
        runs = summaries[k::len(losses)]
        out[spec] = {"candidates": cands, "summaries": runs, "scores": [val_score(s, metric) for s in runs]}
    return out


def _existing_trials(base: TrialConfig, tuned_base: TrialConfig, losses: list[str], seeds: list[int],
                     space: Space) -> dict[str, list]:
    """Loss spec -> its search trials' folders already there (``tune--<h>/<loss>/t<i>``,
    whatever the sampler proposed) and its winners' seed folders."""
    found = comparison_trials(tuned_base, losses, seeds)
    for spec in losses:
        search = tuning_config(base, spec, {}, 0, space).trial_dir.parent
        if search.is_dir():
            found[spec] += sorted(d for d in search.iterdir() if d.is_dir() and d.name[:1] == "t" and d.name[1:].isdigit())
    return found


def run_tuned_comparison(base: TrialConfig, losses: list[str], seeds: list[int], space: Space,
                         reporter: Reporter | None = None, break_stale_locks: bool = False,
                         target_effect: float | None = None, allow_mixed: bool = False,
                         executor: Executor | str | None = None, retrain_stale: bool = False) -> dict[str, Any]:
    """The tuned comparison of ``losses``: search (val), retrain the winners at ``seeds``
    (test), write the comparison under ``<budget>+tuned-<h>/`` with its search record.
    ``executor`` runs the search's trials and the winners' (default: this process). Search
    trials and winners of other code are refused before any training, or retrained with
    ``retrain_stale`` (:func:`cvloss.run.compare.check_stale`)."""
    reporter = reporter or Reporter()
    executor = resolve_executor(executor, break_stale_locks)  # an Executor, a registry name or None
    # the whole space, every candidate applied to every spec with this budget: before any folder exists
    check_space(space, base.task, losses, base)
    if max(seeds) >= TUNE_SEED0:
        raise UsageError(f"--seeds must stay below {TUNE_SEED0} with --tune (seeds from {TUNE_SEED0} on are the "
                         f"tuning trials'); got {max(seeds)}")
    get_task_class(base.task).check_seeds(base.params, seeds, base.dataset, base.data_dir)  # distinct replicates
    tuned_base = replace(base, place=f"+tuned-{space.key()}")
    check_seed_set(comparison_dir(tuned_base, losses), seeds)  # before any training
    check_stale(_existing_trials(base, tuned_base, losses, seeds, space), reporter, retrain_stale, allow_mixed)
    task_cls = get_task_class(base.task)
    metric = task_cls.primary_metric
    higher = task_cls.direction(metric)
    found = _search(base, losses, space, reporter, break_stale_locks, metric, higher, executor)
    best = {spec: select(found[spec]["scores"], higher) for spec in losses}
    chosen = {spec: found[spec]["candidates"][best[spec]] for spec in losses}
    for spec in losses:
        score = found[spec]["scores"][best[spec]]
        reporter.message(f"[tune] {spec}: chosen t{best[spec]} {chosen[spec]} "
                         f"(val {metric} {'n/a: every candidate failed' if score is None else f'{score:.4g}'})")
    executor.run([winner_config(base, spec, chosen[spec], seed, space) for seed in seeds for spec in losses], reporter)
    record = {
        "space": [d.text() for d in space.dims], "trials": space.trials, "sampler": space.sampler,
        "sampler_seed": space.seed, "hash": space.key(), "metric": metric, "higher_is_better": higher,
        "tuning_seeds": f"{TUNE_SEED0}..{TUNE_SEED0 + space.trials - 1}", "split": "val",
        "losses": {spec: {
            "chosen": chosen[spec],
            "chosen_index": best[spec],
            "trained_spec": apply_candidate(spec, chosen[spec])[0],
            "candidates": found[spec]["candidates"],
            "val_scores": found[spec]["scores"],
            "status": [(s or {}).get("status", "missing") for s in found[spec]["summaries"]],
            "cost_s": float(sum((s or {}).get("train_time_s") or 0.0 for s in found[spec]["summaries"])),
            "flags": edge_flags(space, chosen[spec]),
        } for spec in losses},
    }
    result = summarize_comparison(tuned_base, losses, seeds, target_effect, allow_mixed, extra={"tuning": record})
    track_comparison(base.log, base.out, result)  # --log mlflow/wandb: the comparison's tag on its runs
    return result
