"""Optuna's TPE sampler as the search of a tuned comparison (the optional ``cvloss[tune]``).

One study per loss, over the dimensions that loss has (:func:`cvloss.run.tune.own_dims`;
all of them in the legacy layout, as the first protocol asked), seeded with the sampler
seed, asked for candidate i after the scores of candidates 0..i-1 were told, trained one
after another: a rerun proposes the same candidates. A candidate is trained at the
protocol's K tuning seeds and told the mean of their intent-to-treat val scores
(:mod:`cvloss.run.tune_score`). Each candidate is recorded in its folder
(``candidate.json``) before it trains, and a rerun re-enqueues the recorded ones, so a
resumed search never repeats or changes a finished trial. TPE with parallel workers would
not be bit-reproducible (its proposals depend on which results have arrived); this search
is sequential by design, and it neither repeats (no two repeats would share candidates)
nor halves (:func:`cvloss.run.tune.check_protocol` refuses both).
"""
from __future__ import annotations

from typing import Any

from cvloss.io import read_json
from cvloss.run.config import TrialConfig
from cvloss.run.progress import Reporter
from cvloss.run.trainer import run_trials
from cvloss.run.tune import (CANDIDATE, Dimension, Space, _round, candidate_dir, own_dims, record_candidate,
                             tuning_config)
from cvloss.run.tune_score import seed_result
from cvloss.run.tune_select import Scoring, Selection, score_members, trial_seeds


def _distribution(d: Dimension):
    import optuna

    if d.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(d.args))
    if d.kind == "int":
        return optuna.distributions.IntDistribution(int(d.args[0]), int(d.args[1]))
    return optuna.distributions.FloatDistribution(float(d.args[0]), float(d.args[1]), log=d.kind == "log")


def tpe_search(base: TrialConfig, losses: list[str], space: Space, reporter: Reporter, break_stale_locks: bool,
               sc: Scoring) -> tuple[dict[str, list[dict[str, Any]]], list[Selection], dict[str, dict]]:
    """Per loss its proposed candidates, the one (pooled) selection over them, and each
    trial's reading (as :func:`cvloss.run.tuning._search` returns them)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    own: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, dict] = {}
    selection = Selection(None, {spec: list(range(space.trials)) for spec in losses})
    for spec in losses:
        dims = space.dims if space.legacy() else own_dims(space, spec)
        dists = {d.name: _distribution(d) for d in dims}
        study = optuna.create_study(direction="maximize" if sc.higher else "minimize",
                                    sampler=optuna.samplers.TPESampler(seed=space.seed))
        own[spec], seen[spec] = [], {}
        for i in range(space.trials):
            folder = candidate_dir(base, spec, i, space)
            if (folder / CANDIDATE).exists():  # of this loss's dimensions (a one-seed search recorded them all)
                study.enqueue_trial({k: v for k, v in read_json(folder / CANDIDATE).items() if k in dists})
            trial = study.ask(dists)
            values = {k: _round(v) if isinstance(v, float) else v for k, v in trial.params.items()}
            record_candidate(folder, values, set(dists))
            own[spec].append(values)
            cfgs = [tuning_config(base, spec, values, i, space, s) for s in trial_seeds(space, i, None)]
            run_trials(cfgs, reporter, break_stale_locks=break_stale_locks)
            readings = [seed_result(c.trial_dir, sc.epochs, sc.epochs, sc.metrics) for c in cfgs]
            seen[spec].update({(i, c.seed): r for c, r in zip(cfgs, readings)})
            mine = score_members(space, spec, own[spec], [i], None, lambda _s, _i, seed: seen[spec][(i, seed)], sc)
            score = mine["scores"][0]
            if score is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, score)
        rung = score_members(space, spec, own[spec], list(range(space.trials)), None,
                      lambda _s, i, seed: seen[spec][(i, seed)], sc)
        selection.rungs[spec] = [{"epochs": sc.epochs, **rung}]
        selection.winner[spec] = rung["ranking"][0]
    return own, [selection], seen
