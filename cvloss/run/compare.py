"""A comparison: several losses x several seeds on one task, dataset and budget.

Every spec is built (and fitted to the task) before any training, so a typo costs no
compute. Trials run seed-major (all losses at seed 0, then seed 1, ...) so an interrupted
comparison already holds complete paired sets. Outputs go to
``<out>/<task>/<dataset>/<budget>/compare--<loss>--<loss>/``: ``compare.csv``,
``compare.md``, ``compare.json`` and the plots.

A comparison's identity is its folder (task, dataset, budget, losses) *and* its seed set,
checked against the ``compare.json`` already there: the same seeds redo it, a superset
extends it (and says so), a subset or another set is refused before any training, so a
comparison is never replaced by a smaller one without a word. Every file is written
atomically under a unique temporary name, so two commands finishing the same comparison
at once both leave whole, identical files.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from cvloss.errors import UsageError
from cvloss.result import ComparisonResult
from cvloss.report.plots import comparison_plots
from cvloss.report.tables import comparison_markdown
from cvloss.report.views import task_plots
from cvloss.report.trial_notes import trial_notes
from cvloss.run.config import TrialConfig, loss_slug
from cvloss.io import plain_file_name, read_json, read_summary, write_text, write_csv
from cvloss.report.latex import comparison_latex
from cvloss.report.figures import VECTOR_FORMATS
from cvloss.report.runs import FINAL_SPLIT, run_rows
from cvloss.run.progress import Reporter
from cvloss.run.stats import annotate_comparison, mean_ci
from cvloss.run.analysis import (FINISHED, ComparisonError, where, check_provenance, compute_summary, itt_value,
                                 loss_rows, stale_trials, trial_status, untrained_by_seed, value)
from cvloss.run.item_analysis import item_analysis_of
from cvloss.run.lock import LOCK_NAME, TrialLock, describe
from cvloss.run.executor import Executor, resolve_executor
from cvloss.run.trainer import SUMMARY, TRIAL, identity_mismatch
from cvloss.run.trackers_export import track_comparison
from cvloss.tasks import get_task_class
from cvloss.losses import build_loss


# A comparison's seeds are its replicates: 10,000 is far past any study's power needs, and
# a typo such as --seeds 1000000000 is refused before the list is even built.
MAX_SEEDS = 10_000


def parse_seeds(text: str) -> list[int]:
    """``3`` -> [0, 1, 2]; ``0,1,2`` or ``5`` given as a list -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",")]  # an empty item ("0,,1") is refused
        else:
            n = int(text)
            if n > MAX_SEEDS:
                n = MAX_SEEDS + 1  # refused below with the other limits, before a list is built
            if n < 1:
                raise UsageError(f"--seeds must be a count >= 1 or a list such as 0,1,2; got {text!r}")
            seeds = list(range(n))
    except ValueError:
        raise UsageError(f"--seeds must be a count >= 1 or a list such as 0,1,2; got {text!r}") from None
    return check_seed_list(seeds, text)


def check_seed_list(seeds: list[int], text: str | None = None) -> list[int]:
    """``seeds`` when they are distinct, non-negative, below 2**32 and at most
    :data:`MAX_SEEDS`; else one UsageError line quoting ``text`` (what the user wrote,
    default: the list)."""
    text = ",".join(map(str, seeds)) if text is None else text
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UsageError(f"--seeds must list distinct non-negative seeds; got {text!r}")
    if len(seeds) > MAX_SEEDS or max(seeds) >= 2**32:
        raise UsageError(f"--seeds allows at most {MAX_SEEDS} seeds below 2**32; got {text!r}")
    return seeds


def split_losses(text: str) -> list[str]:
    """Split ``ce,topo(mu=0.5,layers=[a,b])`` on top-level commas only."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    if not any(parts):
        raise UsageError("--losses needs at least one loss spec, e.g. --losses ce,topo")
    if not all(parts):  # "ce,,dice" or "ce,": a slip, not a request for fewer losses
        raise UsageError(f"--losses {text!r} has an empty item; separate specs by single commas")
    return parts


def canonical_specs(specs: list[str], task: str) -> list[str]:
    """Build every spec for ``task`` (raising on the first bad one) and return canonical
    texts. Random feature weights here: this only validates, it must not download.
    Training minimises a scalar, so a ``reduction=none`` term is refused here too."""
    out = [build_loss(spec, task=task, feature_weights="random", require_scalar=True).spec for spec in specs]
    if len(set(out)) != len(out):
        raise UsageError(f"--losses lists the same loss twice: {', '.join(out)}")
    return out


def comparison_dir(base: TrialConfig, losses: list[str]) -> Path:
    name = "compare--" + "--".join(loss_slug(l) for l in losses)
    if len(name) > 120:
        import hashlib

        name = name[:100] + "-" + hashlib.sha1("|".join(losses).encode()).hexdigest()[:8]
    return base.group_dir / name


def check_seed_set(out_dir: Path, seeds: list[int]) -> list[int] | None:
    """The seeds of the comparison already in ``out_dir`` (None if there is none); raise
    :class:`ComparisonError` unless ``seeds`` is the same set or a superset of them."""
    path = Path(out_dir) / "compare.json"
    if not path.exists():
        return None
    old = ComparisonResult.from_json(path).seeds
    if not set(old) <= set(seeds):
        raise ComparisonError(
            f"{out_dir} holds a comparison over seeds {sorted(old)}; --seeds {sorted(seeds)} would replace it "
            f"(give a superset of {sorted(old)} to extend it, or another --out)")
    return old


def check_stale(trials: dict[str, list[Path]], reporter: Reporter, retrain_stale: bool = False,
                allow_mixed: bool = False) -> None:
    """Before any training: refuse (one line) to reuse trial folders of ``trials`` (loss
    spec -> folders) that other code started (:func:`cvloss.run.analysis.stale_trials`),
    naming them; with ``retrain_stale`` move each aside as ``<folder>.stale-<n>`` (kept for
    a look, never read again) so it is trained afresh; with ``allow_mixed`` reuse the
    finished ones and pool them (the tables say so)."""
    stale = stale_trials(trials)
    if not stale or (allow_mixed and not retrain_stale):
        return
    if not retrain_stale:
        shown = ", ".join(str(d) for d, _, _ in stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        _, then, now = stale[0]
        raise ComparisonError(
            f"{len(stale)} trial folder(s) this comparison would reuse were made by other code ({then}; now {now}): "
            f"{shown}; use a new --out, or pass --retrain-stale to move them aside as <trial>.stale-<n> and retrain them")
    for d, then, _ in stale:
        reporter.message(f"moved aside {move_aside(d)} ({then}): retraining it")


def check_identities(cfgs: list[TrialConfig]) -> None:
    """Before any training: refuse (one line naming the folder and both identities) when
    a trial folder of ``cfgs`` holds a trial -- finished or not -- of another
    configuration (:func:`cvloss.run.trainer.identity_mismatch`): its numbers would pass
    for this one's, or a rerun would stop half-way. Run after :func:`check_stale`, so
    folders that ``--retrain-stale`` moves aside are no longer there to compare."""
    for cfg in cfgs:
        mismatch = identity_mismatch(cfg)
        if mismatch is not None:
            raise ComparisonError(mismatch)


def move_aside(trial_dir: Path) -> Path:
    """Rename ``trial_dir`` to the first free ``<name>.stale-<n>`` under its lock (a trial
    another live process is training is refused) and return the new path."""
    lock = TrialLock(trial_dir)
    holder = lock.acquire()
    try:
        if holder is not None:
            raise ComparisonError(f"{trial_dir} is being trained by {describe(holder)}; wait for it, then rerun")
        n = 1
        while trial_dir.with_name(f"{trial_dir.name}.stale-{n}").exists():
            n += 1
        dest = trial_dir.with_name(f"{trial_dir.name}.stale-{n}")
        os.rename(trial_dir, dest)
        (dest / LOCK_NAME).unlink(missing_ok=True)  # our lock moved with the folder
        return dest
    finally:
        lock.release()


def comparison_trials(base: TrialConfig, losses: list[str], seeds: list[int]) -> dict[str, list[Path]]:
    """Loss spec -> the trial folder of each seed."""
    return {spec: [replace(base, loss=spec, seed=seed).trial_dir for seed in seeds] for spec in losses}


def run_comparison(base: TrialConfig, losses: list[str], seeds: list[int], reporter: Reporter | None = None,
                   break_stale_locks: bool = False, target_effect: float | None = None,
                   allow_mixed: bool = False, executor: Executor | str | None = None,
                   retrain_stale: bool = False) -> dict[str, Any]:
    """Run every (seed, loss) trial of the comparison (resuming/skipping finished ones,
    waiting for ones another process holds) and write the comparison's tables and plots.
    ``base`` gives everything but loss/seed. Trials go to ``executor`` (an Executor, or a
    name of :data:`cvloss.run.executor.EXECUTORS`; default: one after another here)
    seed-major, so an interrupted run holds complete paired sets; a trial whose worker
    died twice is ``crashed`` in the table. Trials of other code are
    refused before any training, or retrained with ``retrain_stale`` (:func:`check_stale`).
    Returns the comparison's ``compare.json`` object; :func:`cvloss.api.run_plan` returns
    it typed (:class:`cvloss.result.ComparisonResult`)."""
    reporter = reporter or Reporter()
    executor = resolve_executor(executor, break_stale_locks)  # an Executor, a registry name or None
    out_dir = comparison_dir(base, losses)
    get_task_class(base.task).spec.check_seeds(base.params, seeds, base.dataset, base.data_dir)  # distinct replicates
    old = check_seed_set(out_dir, seeds)
    check_stale(comparison_trials(base, losses, seeds), reporter, retrain_stale, allow_mixed)
    check_identities([replace(base, loss=spec, seed=seed) for seed in seeds for spec in losses])
    if old is not None and set(old) != set(seeds):
        reporter.message(f"extending the comparison in {out_dir} from seeds {sorted(old)} to {sorted(seeds)}")
    summaries = executor.run([replace(base, loss=spec, seed=seed) for seed in seeds for spec in losses], reporter)
    crashed = {(s["loss"], s["seed"]): s for s in summaries if s.get("status") == "crashed"}
    result = summarize_comparison(base, losses, seeds, target_effect, allow_mixed, crashed=crashed)
    track_comparison(base.log, base.out, result)  # --log mlflow/wandb: the comparison's tag on its runs
    return result


def _task_plots(task: str, result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """The task's own plots, drawn in a private folder and then renamed into ``out_dir``:
    a task may save through fixed names, and two commands finishing the same comparison
    must never write one file at once."""
    stage = Path(tempfile.mkdtemp(prefix=".plots.", dir=out_dir))
    try:
        made = task_plots(task, result, stage)
        for name in made.values():
            if not plain_file_name(name) or not (stage / name).is_file():
                raise ValueError(f"task {task!r} plot {name!r} is not a file it wrote")
            os.replace(stage / name, out_dir / name)
            for ext in VECTOR_FORMATS:  # the plot's PDF and SVG, written beside it
                vector = (stage / name).with_suffix(ext)
                if vector.is_file():
                    os.replace(vector, (out_dir / name).with_suffix(ext))
        return made
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _commit(trial_dir: Path) -> str | None:
    """The git commit a trial's trial.json records (None without one)."""
    path = trial_dir / TRIAL
    if not path.exists():
        return None
    info = read_json(path)
    return info.get("git_commit") if isinstance(info, dict) else None


def read_summaries(base: TrialConfig, losses: list[str], seeds: list[int],
                   crashed: dict[tuple[str, int], dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any] | None]]:
    """Loss spec -> the summary of its trial at each seed (None: no summary.json yet);
    ``crashed`` holds the in-memory summaries of trials without one because their worker
    died twice (keyed by (loss, seed))."""
    summaries: dict[str, list[dict[str, Any] | None]] = {}
    for spec in losses:
        summaries[spec] = []
        for seed in seeds:
            path = replace(base, loss=spec, seed=seed).trial_dir / SUMMARY
            summaries[spec].append(read_summary(path) if path.exists() else (crashed or {}).get((spec, seed)))
    return summaries


def aggregate_comparison(base: TrialConfig, losses: list[str], seeds: list[int],
                         summaries: dict[str, list[dict[str, Any] | None]], target_effect: float | None = None,
                         allow_mixed: bool = False, extra: dict[str, Any] | None = None) -> ComparisonResult:
    """The comparison of the trials' ``summaries`` (:func:`read_summaries`), written
    nowhere: the table's rows, statistics, statuses, compute, trial notes and provenance
    (the last three read from the trial folders). ``target_effect`` (a difference in the
    primary metric's units) adds the seeds needed to detect it. Rows come twice:
    ``analysis = completed`` (the trials that finished without failing) and ``itt``
    (intent to treat, see :func:`cvloss.run.analysis.itt_value`). Trials of different
    code or torch versions are refused unless ``allow_mixed``. ``extra`` joins the result
    (a tuned comparison's ``tuning`` record)."""
    task_cls = get_task_class(base.task)
    metric_names: list[str] = []
    for runs in summaries.values():
        for s in runs:
            if s and s.get("status") in FINISHED:  # a degenerate trial has every metric too
                metric_names += [m for m in s["metrics"] if m not in metric_names]
    directions = {m: task_cls.spec.direction(m) for m in metric_names}
    bounds = {m: list(task_cls.spec.bounds(m, base.dataset)) for m in metric_names}

    baseline = losses[0]
    untrained = untrained_by_seed(base, losses, seeds, summaries)
    status = {spec: [trial_status(replace(base, loss=spec, seed=seed).trial_dir, s)
                     for seed, s in zip(seeds, summaries[spec])] for spec in losses}
    analyses = {
        # per protocol: the trials that finished without failing
        "completed": {spec: {m: [value(s, m) if st == "done" else math.nan
                                 for s, st in zip(summaries[spec], status[spec])] for m in metric_names}
                      for spec in losses},
        # intent to treat: every trial that ran counts; a collapsed or degenerate one at its
        # own final metrics, a diverged or crashed one at the untrained model's value at its seed
        "itt": {spec: {m: [itt_value(s, st, m, untrained.get(seed, {}))
                           for seed, s, st in zip(seeds, summaries[spec], status[spec])] for m in metric_names}
                for spec in losses},
    }
    rows, stats = [], {}
    for analysis, vals in analyses.items():
        stats[analysis] = annotate_comparison(vals, baseline, task_cls.spec.primary, directions,
                                              target_effect=target_effect, bounds=bounds)
        rows += loss_rows(base, losses, vals, status, directions, stats[analysis], analysis)
    references = _reference_values(summaries, seeds)
    rows += _reference_rows(base, references, metric_names, directions)

    result_trials = comparison_trials(base, losses, seeds)
    feature_weights = sorted({s.get("feature_weights") for runs in summaries.values() for s in runs
                              if s and s.get("feature_weights")})
    completed = stats["completed"]
    result = ComparisonResult(
        task=base.task, dataset=base.dataset, budget=base.group_dir.name, losses=list(losses), seeds=list(seeds),
        baseline=baseline, references=list(references), metrics=metric_names, directions=directions, bounds=bounds,
        rows=rows, feature_weights=feature_weights or None,
        trials={spec: [str(d) for d in dirs] for spec, dirs in result_trials.items()},
        status=status, split=FINAL_SPLIT, primary_metric=task_cls.spec.primary,
        compute={spec: compute_summary(summaries[spec]) for spec in losses},
        success={spec: sum(st == "done" for st in status[spec]) / len(seeds) for spec in losses},
        best=completed["best"], mde=completed["mde"], seeds_needed=completed["seeds_needed"],
        alpha=completed["alpha"], power=completed["power"], mde_level=completed["mde_level"],
        mde_how=completed["mde_how"],
        # degenerate reasons (val: the status; test: a note), identical replicates, and what
        # one seed varies: read from the trial folders as the report reads them
        **trial_notes(task_cls, result_trials, seeds, summaries),
        degenerate_rule=task_cls.spec.degenerate_rule, replicate_unit=task_cls.spec.replicate_unit,
        itt={"best": stats["itt"]["best"], "mde": stats["itt"]["mde"]},
        folds=_folds(task_cls.spec.primary, losses, seeds, summaries),
        provenance=check_provenance(result_trials, allow_mixed),
        target_effect=target_effect, dir=str(comparison_dir(base, losses)))
    for key, record in (extra or {}).items():  # a tuned comparison's search record (cvloss.run.tuning)
        if key in {f.name for f in fields(ComparisonResult)} - {"extra"}:
            setattr(result, key, record)
        else:
            result.extra[key] = record
    # "item_analysis": image by image, for a test split of few items
    result.item_analysis = item_analysis_of(result.to_dict()).get("item_analysis")
    return result


def _reference_values(summaries: dict[str, list[dict[str, Any] | None]],
                      seeds: list[int]) -> dict[str, dict[str, dict[int, list[float]]]]:
    """Reference name -> metric -> seed -> the values its trials report (model-free
    baselines such as bicubic, and the untrained network at that seed's initial weights)."""
    references: dict[str, dict[str, dict[int, list[float]]]] = {}
    for runs in summaries.values():
        for seed, s in zip(seeds, runs):
            if not s:
                continue
            refs = dict(s.get("reference") or {})
            if s.get("untrained"):  # the initial weights of this seed, on test like every row
                refs["untrained model"] = s["untrained"]
            for name, vals in refs.items():
                for metric, v in vals.items():
                    if v is not None:
                        references.setdefault(name, {}).setdefault(metric, {}).setdefault(seed, []).append(v)
    return references


def _reference_rows(base: TrialConfig, references: dict[str, dict[str, dict[int, list[float]]]],
                    metric_names: list[str], directions: dict[str, bool]) -> list[dict[str, Any]]:
    """Reference rows: the same statistics over the trials that report them, never marked
    best or significant. Every loss's trial at one seed reports the same reference (same
    data, same initial weights), so a seed contributes one value -- the mean of its
    copies -- and n counts seeds, not trials."""
    rows = []
    for name, per_metric in references.items():
        for metric in metric_names:
            per_seed = per_metric.get(metric, {})
            mean, ci, n = mean_ci([float(np.mean(v)) for v in per_seed.values()])
            rows.append({**where(base), "analysis": "reference", "loss": name, "metric": metric,
                         "higher_is_better": directions[metric], "mean": mean,
                         "ci95": ci, "n": n, "diverged": 0, "missing": 0, "reference": True,
                         "diff_vs_baseline": math.nan, "diff_ci95": math.nan, "p_value": math.nan, "n_pairs": 0,
                         "p_adj": math.nan, "correction": "", "dz": math.nan, "p_improve": math.nan, "mde": math.nan,
                         "sd_diff": math.nan, "family_m": 0, "headroom": math.nan, "verdict": ""})
    return rows


def _folds(primary: str, losses: list[str], seeds: list[int],
           summaries: dict[str, list[dict[str, Any] | None]]) -> dict[str, list[dict[str, Any]]] | None:
    """k-fold trials (LFW View 2): per loss, each seed's primary metric as mean ± SE over
    its folds; None when no trial ran folds."""
    if not any(s and s.get("fold_se") for runs in summaries.values() for s in runs):
        return None
    return {spec: [{"seed": seed, "mean": value(s, primary), "se": (s or {}).get("fold_se", {}).get(primary),
                    "protocol": s.get("protocol")}
                   for seed, s in zip(seeds, summaries[spec]) if s and s.get("fold_se")] for spec in losses}


def write_comparison_files(result: ComparisonResult, base: TrialConfig,
                           summaries: dict[str, list[dict[str, Any] | None]]) -> None:
    """``compare.csv`` (the rows), ``runs.csv`` (one row per trial), ``compare.md`` and
    ``compare.tex`` into the comparison's folder, each atomically."""
    out_dir = Path(result.dir)
    write_csv(out_dir / "compare.csv", result.rows)
    commits = {spec: [_commit(replace(base, loss=spec, seed=seed).trial_dir) for seed in result.seeds]
               for spec in result.losses}
    write_csv(out_dir / "runs.csv", run_rows(result, summaries, commits))
    write_text(out_dir / "compare.md", comparison_markdown(result))
    write_text(out_dir / "compare.tex", comparison_latex(result))


def draw_comparison_plots(result: ComparisonResult) -> dict[str, str]:
    """The standard plots and the task's own into the comparison's folder; returns
    {key: PNG file name} of the plots made."""
    out_dir = Path(result.dir)
    plots = comparison_plots(result, out_dir)
    plots.update(_task_plots(result.task, result, out_dir))
    return plots


def summarize_comparison(base: TrialConfig, losses: list[str], seeds: list[int],
                         target_effect: float | None = None, allow_mixed: bool = False,
                         extra: dict[str, Any] | None = None,
                         crashed: dict[tuple[str, int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Aggregate the trials' summaries (:func:`aggregate_comparison`), write the
    comparison's files (:func:`write_comparison_files`), draw its plots
    (:func:`draw_comparison_plots`) and then write ``compare.json``, once; returns its
    object (:meth:`cvloss.result.ComparisonResult.to_dict`). ``crashed``: see
    :func:`read_summaries`; the other arguments: :func:`aggregate_comparison`."""
    summaries = read_summaries(base, losses, seeds, crashed)
    result = aggregate_comparison(base, losses, seeds, summaries, target_effect, allow_mixed, extra)
    check_seed_set(Path(result.dir), seeds)  # again: another command may have written it meanwhile
    write_comparison_files(result, base, summaries)
    result.plots = draw_comparison_plots(result)
    result.write(Path(result.dir) / "compare.json")
    return result.to_dict()
