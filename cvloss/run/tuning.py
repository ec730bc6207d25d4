"""Run a tuned comparison: the search per loss on val, then the winners on test.

The protocol, the space and the folders are :mod:`cvloss.run.tune`'s; scoring is
:mod:`cvloss.run.tune_score`'s. This module drives the search through the ordinary trial
runner (every tuning trial and retrained winner is a resumable, locked trial folder) and
hands the winners to :func:`cvloss.run.compare.summarize_comparison` with the search's
record. The search runs as *selections* over the same candidates (the pooled one and,
with R repeats, one per repeat), each successive halving over the rungs; a rung's trials
of every selection go to the executor in one candidate-major batch, and a trial two
selections need is trained once. Every step reads what is on disk, so a killed search
resumes where it stopped. See docs/protocol.md.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from cvloss.errors import UsageError
from cvloss.run.compare import (check_identities, check_seed_set, check_stale, comparison_dir, comparison_trials,
                                summarize_comparison)
from cvloss.run.config import TrialConfig
from cvloss.run.executor import Executor, resolve_executor
from cvloss.run.progress import Reporter
from cvloss.run.trackers_export import track_comparison
from cvloss.run.tune import (TUNE_SEED0, Space, TuneProtocol, apply_candidate, candidate_dir, candidates,
                             check_protocol, check_space, edge_flags, project, own_dims,
                             record_candidate, tuning_config, winner_config)
from cvloss.run.tune_score import indistinguishable, reached, seed_result, span_flags, stability
from cvloss.run.tune_select import Scoring, Selection, score_members, scoring_of, trial_seeds
from cvloss.tasks import get_task_class


def rungs_of(space: Space, epochs: int) -> list[int]:
    """The rungs' epochs: ``[epochs]`` without halving. Halving whose rungs collapse to one
    (too few epochs for its eta and min epochs) is refused in one line."""
    halving = space.protocol.halving
    if halving is None:
        return [epochs]
    rungs = halving.rungs(epochs)
    if len(rungs) < 2:
        raise UsageError(f"--tune-halving {halving.eta} with --tune-min-epochs {halving.min_epochs}: the budget's "
                         f"{epochs} epochs leave one rung (no halving); lower them or train more epochs")
    return rungs


def _order(space: Space, losses: list[str], keys: set[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Trials (loss, candidate, seed) in the order the executor gets them: repeat by
    repeat, candidate-major, every loss of a candidate and seed together."""
    k = space.protocol.seeds
    return sorted(keys, key=lambda t: ((t[2] - TUNE_SEED0) // k if not space.legacy() else 0, t[1], t[2],
                                       losses.index(t[0])))


def _survivors(space: Space, n: int, rung: int) -> int:
    halving = space.protocol.halving
    return n if halving is None else halving.survivors(n, rung)


def _search(base: TrialConfig, losses: list[str], space: Space, reporter: Reporter, sc: Scoring,
            executor: Executor) -> tuple[dict[str, list[dict[str, Any]]], list[Selection], dict[str, dict]]:
    """Train and select (module docstring). Returns per loss its candidates (projected),
    the selections (the pooled one last), and per loss each trial's latest reading."""
    cands = candidates(space)
    own = {spec: [c if space.legacy() else project(space, spec, c) for c in cands] for spec in losses}
    for spec in losses:  # what each folder trains, recorded before any of it does
        names = {d.name for d in own_dims(space, spec)}
        for i, values in enumerate(own[spec]):
            record_candidate(candidate_dir(base, spec, i, space), values, names)
    repeats = space.protocol.repeats
    selections = [Selection(r, {s: list(range(space.trials)) for s in losses}) for r in range(repeats)] if repeats > 1 \
        else []
    selections.append(Selection(None, {s: list(range(space.trials)) for s in losses}))
    rungs = rungs_of(space, sc.epochs)
    seen: dict[str, dict] = {spec: {} for spec in losses}
    for j, epoch in enumerate(rungs):
        final = epoch == sc.epochs
        keys = {(spec, i, s) for sel in selections for spec in losses for i in sel.alive[spec]
                for s in trial_seeds(space, i, sel.repeat)}
        todo = [t for t in _order(space, losses, keys)
                if not reached(_cfg(base, space, own, t).trial_dir, epoch, sc.epochs)]
        if todo:
            executor.run([_cfg(base, space, own, t, None if final else epoch) for t in todo], reporter)
        readings = {t: seed_result(_cfg(base, space, own, t).trial_dir, epoch, sc.epochs, sc.metrics) for t in keys}
        for t, r in readings.items():
            seen[t[0]][(t[1], t[2])] = r
        for sel in selections:
            for spec in losses:
                rung = score_members(space, spec, own[spec], sel.alive[spec], sel.repeat,
                              lambda sp, i, s: readings[(sp, i, s)], sc)
                sel.rungs.setdefault(spec, []).append({"epochs": epoch, **rung})
                if final:
                    sel.winner[spec] = rung["ranking"][0]
                else:
                    sel.alive[spec] = sorted(rung["ranking"][:_survivors(space, space.trials, j + 1)])
    return own, selections, seen


def _cfg(base: TrialConfig, space: Space, own: dict[str, list[dict[str, Any]]], t: tuple[str, int, int],
         stop: int | None = None) -> TrialConfig:
    spec, i, seed = t
    return tuning_config(base, spec, own[spec][i], i, space, seed, stop)


def search_configs(base: TrialConfig, losses: list[str], space: Space) -> list[TrialConfig]:
    """Every trial an lhs, random or grid search may train: each loss's projection of each
    candidate at each of its tuning seeds."""
    cands = candidates(space)
    return [tuning_config(base, spec, c if space.legacy() else project(space, spec, c), i, space, s)
            for i, c in enumerate(cands) for s in trial_seeds(space, i, None) for spec in losses]


def _existing_trials(base: TrialConfig, tuned_base: TrialConfig, losses: list[str], seeds: list[int],
                     space: Space) -> dict[str, list]:
    """Loss spec -> its search trials' folders already there (``t<i>`` of the legacy
    layout, ``t<i>/seed<s>`` otherwise; whatever the sampler proposed) and its winners'
    seed folders."""
    found = comparison_trials(tuned_base, losses, seeds)
    for spec in losses:
        search = candidate_dir(base, spec, 0, space).parent
        if not search.is_dir():
            continue
        for d in sorted(d for d in search.iterdir() if d.is_dir() and d.name[:1] == "t" and d.name[1:].isdigit()):
            found[spec] += [d] if space.legacy() else sorted(
                s for s in d.iterdir() if s.is_dir() and s.name.startswith("seed") and s.name[4:].isdigit())
    return found


def planned_trial_epochs(space: Space, rungs: list[int]) -> int:
    """Epochs one loss's pooled selection trains (every loss the same): at rung j its
    survivors at all its seeds, each from the previous rung's epoch on (a promoted
    candidate resumes its checkpoint)."""
    k = len(trial_seeds(space, 0, None))
    total, before = 0, 0
    for j, epoch in enumerate(rungs):
        total += _survivors(space, space.trials, j) * k * (epoch - before)
        before = epoch
    return total


def search_record(space: Space, losses: list[str], sc: Scoring, own: dict[str, list[dict[str, Any]]],
                  selections: list[Selection], seen: dict[str, dict]) -> dict[str, Any]:
    """The ``tuning`` record of the comparison (module docstring of :mod:`cvloss.run.tune`)."""
    pooled = selections[-1]
    rungs = [r["epochs"] for r in pooled.rungs[losses[0]]]
    p = space.protocol
    record = {
        "space": [d.text() for d in space.dims], "trials": space.trials, "sampler": space.sampler,
        "sampler_seed": space.seed, "hash": space.tuned_key(), "search_hash": space.key(),
        "tune_seeds": p.seeds, "repeats": p.repeats, "halving": p.halving.fields() if p.halving else None,
        "rungs": rungs, "metric": sc.metric, "higher_is_better": sc.higher, "secondary_metric": sc.secondary,
        "tuning_seeds": space.seeds_text(), "split": "val",
        "trial_epochs": planned_trial_epochs(space, rungs), "losses": {},
    }
    for spec in losses:
        record["losses"][spec] = _loss_record(space, spec, own[spec], selections, seen[spec])
    return record


def _loss_record(space: Space, spec: str, own: list[dict[str, Any]], selections: list[Selection],
                 seen: dict) -> dict[str, Any]:
    """One loss's part of the record: every candidate's final pooled score (None: stopped
    at an earlier rung), SE, secondary score, statuses, the chosen one, the set within one
    SE of it, the repeats' choices, each rung, the cost."""
    pooled = selections[-1]
    final = pooled.rungs[spec][-1]
    n = space.trials
    at = {i: j for j, i in enumerate(final["candidates"])}
    pick = lambda key: [final[key][at[i]] if i in at else None for i in range(n)]  # noqa: E731
    scores, ses = pick("scores"), pick("se")
    status = [final["status"][at[i]] if i in at else _stopped(pooled.rungs[spec], i) for i in range(n)]
    best = pooled.winner[spec]
    same = indistinguishable(scores, ses, best)
    dims = own_dims(space, spec)
    rec = {
        "chosen": own[best], "chosen_index": best, "trained_spec": apply_candidate(spec, own[best])[0],
        "candidates": own, "val_scores": scores, "val_se": ses, "secondary_scores": pick("secondary"),
        "seed_scores": pick("seed_scores"), "status": status, "indistinguishable": same,
        "cost_s": float(sum(r.time_s for r in seen.values())),
        "trained_epochs": int(sum(r.epochs for r in seen.values())),
        "flags": edge_flags(space, own[best]) + span_flags(dims, own, same),
    }
    if len(pooled.rungs[spec]) > 1:
        rec["rungs"] = [{"epochs": r["epochs"], "candidates": r["candidates"], "scores": r["scores"]}
                        for r in pooled.rungs[spec]]
    if len(selections) > 1:
        rec["stability"] = stability([sel.winner[spec] for sel in selections[:-1]], own)
    return rec


def _stopped(rungs: list[dict[str, Any]], i: int) -> str:
    """A candidate halving dropped: ``stopped at epoch 3 (0.6123)``, its last rung and score there."""
    last = [r for r in rungs if i in r["candidates"]][-1]
    score = last["scores"][last["candidates"].index(i)]
    return f"stopped at epoch {last['epochs']}" + (f" ({score:.4g})" if score is not None else "")


def run_tuned_comparison(base: TrialConfig, losses: list[str], seeds: list[int], space: Space,
                         reporter: Reporter | None = None, break_stale_locks: bool = False,
                         target_effect: float | None = None, allow_mixed: bool = False,
                         executor: Executor | str | None = None, retrain_stale: bool = False,
                         protocol: TuneProtocol | None = None) -> dict[str, Any]:
    """The tuned comparison of ``losses``: search (val), retrain the winners at ``seeds``
    (test), write the comparison under ``<budget>+tuned-<H>/`` with its search record.
    ``protocol`` replaces the space's (:class:`cvloss.run.tune.TuneProtocol`: tuning seeds,
    repeats, halving). ``executor`` runs the search's trials and the winners' (default:
    this process). Search trials and winners of other code are refused before any
    training, or retrained with ``retrain_stale`` (:func:`cvloss.run.compare.check_stale`)."""
    if protocol is not None:
        check_protocol(space.trials, space.sampler, protocol)
        space = replace(space, protocol=protocol)
    reporter = reporter or Reporter()
    executor = resolve_executor(executor, break_stale_locks)  # an Executor, a registry name or None
    # the whole space, every candidate applied to every spec with this budget: before any folder exists
    check_space(space, base.task, losses, base)
    if max(seeds) >= TUNE_SEED0:
        raise UsageError(f"--seeds must stay below {TUNE_SEED0} with --tune (seeds from {TUNE_SEED0} on are the "
                         f"tuning trials'); got {max(seeds)}")
    sc = scoring_of(base)
    rungs_of(space, sc.epochs)  # halving that cannot halve: refused before any folder
    get_task_class(base.task).spec.check_seeds(base.params, seeds, base.dataset, base.data_dir)  # distinct replicates
    tuned_base = replace(base, place=space.winners())
    check_seed_set(comparison_dir(tuned_base, losses), seeds)  # before any training
    check_stale(_existing_trials(base, tuned_base, losses, seeds, space), reporter, retrain_stale, allow_mixed)
    if space.sampler != "tpe":  # a folder of another configuration is refused, never read (TPE: by the trainer)
        check_identities(search_configs(base, losses, space))
    if space.sampler == "tpe":
        from cvloss.run.tpe import tpe_search  # the optional extra, imported only when asked

        own, selections, seen = tpe_search(base, losses, space, reporter, break_stale_locks, sc)
    else:
        own, selections, seen = _search(base, losses, space, reporter, sc, executor)
    record = search_record(space, losses, sc, own, selections, seen)
    for spec in losses:
        rec = record["losses"][spec]
        score = rec["val_scores"][rec["chosen_index"]]
        reporter.message(f"[tune] {spec}: chosen t{rec['chosen_index']} {rec['chosen']} (val {sc.metric} "
                         f"{'n/a: every candidate failed' if score is None else f'{score:.4g}'}; "
                         f"{len(rec['indistinguishable'])} of {space.trials} within 1 SE)")
    executor.run([winner_config(base, spec, record["losses"][spec]["chosen"], seed, space)
                  for seed in seeds for spec in losses], reporter)
    result = summarize_comparison(tuned_base, losses, seeds, target_effect, allow_mixed, extra={"tuning": record})
    track_comparison(base.log, base.out, result)  # --log mlflow/wandb: the comparison's tag on its runs
    return result
