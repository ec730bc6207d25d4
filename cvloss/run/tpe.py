"""Optuna's TPE sampler as the search of a tuned comparison (the optional ``cvloss[tune]``).

One study per loss, seeded with the sampler seed, asked for candidate i after the val
scores of candidates 0..i-1 were told, trained one after another: a rerun proposes the
same candidates. Each candidate is recorded in its folder (``candidate.json``) before it
trains, and a rerun re-enqueues the recorded ones, so a resumed search never repeats or
changes a finished trial. TPE with parallel workers would not be bit-reproducible (its
proposals depend on which results have arrived); this search is sequential by design.
"""
from __future__ import annotations

from typing import Any

from cvloss.io import read_json
from cvloss.run.config import TrialConfig
from cvloss.run.progress import Reporter
from cvloss.run.trainer import run_trials
from cvloss.run.tune import CANDIDATE, Dimension, Space, _round, record_candidate, tuning_config, val_score


def _distribution(d: Dimension):
    import optuna

    if d.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(d.args))
    if d.kind == "int":
        return optuna.distributions.IntDistribution(int(d.args[0]), int(d.args[1]))
    return optuna.distributions.FloatDistribution(float(d.args[0]), float(d.args[1]), log=d.kind == "log")


def tpe_search(base: TrialConfig, losses: list[str], space: Space, reporter: Reporter, break_stale_locks: bool,
               metric: str, higher: bool) -> dict[str, dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {d.name: _distribution(d) for d in space.dims}
    out = {}
    for spec in losses:
        study = optuna.create_study(direction="maximize" if higher else "minimize",
                                    sampler=optuna.samplers.TPESampler(seed=space.seed))
        cands, sums, scores = [], [], []
        for i in range(space.trials):
            recorded = tuning_config(base, spec, {}, i, space).trial_dir / CANDIDATE
            if recorded.exists():
                study.enqueue_trial(read_json(recorded))
            trial = study.ask(dists)
            values = {k: _round(v) if isinstance(v, float) else v for k, v in trial.params.items()}
            cfg = tuning_config(base, spec, values, i, space)
            record_candidate(cfg, values)
            summary = run_trials([cfg], reporter, break_stale_locks=break_stale_locks)[0]
            score = val_score(summary, metric)
            if score is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, score)
            cands.append(values)
            sums.append(summary)
            scores.append(score)
        out[spec] = {"candidates": cands, "summaries": sums, "scores": scores}
    return out
