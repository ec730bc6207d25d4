"""Comparisons in MLflow and W&B: a comparison's tag on its trials' runs, live or after
the fact, from the results files alone.

* :func:`track_comparison` -- called once a comparison is summarised, for the trackers of
  ``--log``: every member run gets the tag ``comparison=<slug>`` and the comparison's
  plots; a member with no run in the store yet is pushed from its files first.
* :func:`export_results` -- ``cvloss export mlflow|wandb RESULTS_DIR``: the same for every
  comparison below a results folder.

Both read a trial through :mod:`cvloss.run.trackers`, so an exported run equals the live
one, ids and timestamps aside. Trial folders are derived from ``compare.json``'s losses
and seeds (never from the paths it stores); ``trackers.json`` keeps an export from pushing
a run twice.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from cvloss.errors import CvlossError, UsageError
from cvloss.io import file_inside, loss_slug, read_comparison
from cvloss.run.config import search_folder, tuned_suffix
from cvloss.run.trackers import (TRACKERS, Backend, Guard, TrackerState, backend, chosen_id, comparison_slug,
                                 comparisons_of, epoch_metrics, final_metrics, history_rows, outcome_of,
                                 read_summary_file, read_trial, run_names, run_tags, samples_file, trial_params,
                                 unopenable)

_TRIAL = "trial.json"
_TABLE = "compare.md"  # with the plots: the comparison's table, as the report shows it


class Trained(NamedTuple):
    folder: Path  # a folder that holds a trial.json: a seed's trial, a fold of one, a search trial
    group: Path  # its budget folder (the experiment)
    status: str | None  # its member's status in compare.json; None for a search trial
    member: bool  # a member of the comparison (tagged with it), not one of its search trials


def _inside(path: Path, root: Path) -> bool:
    """``path`` resolves within ``root``: a link that leads elsewhere is no trial of it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _trained(seed_dir: Path, group: Path) -> list[Path]:
    """The folders of a member that hold a trial: itself, else its ``fold<f>`` folds."""
    if not seed_dir.is_dir() or not _inside(seed_dir, group):
        return []
    if (seed_dir / _TRIAL).is_file():
        return [seed_dir]
    folds = sorted((d for d in seed_dir.glob("fold*") if d.name[4:].isdigit() and (d / _TRIAL).is_file()),
                   key=lambda d: int(d.name[4:]))
    return [d for d in folds if _inside(d, group)]


def comparison_trials(cmp_dir: Path, result: dict[str, Any]) -> list[Trained]:
    """Every trained folder of a comparison: its members ``<group>/<loss-slug>/seed<k>``
    (or their folds) in loss-major order, then a tuned comparison's search trials
    ``<budget>/tune--<h>/<loss-slug>/t<i>[/seed<s>]``."""
    group = Path(cmp_dir).parent
    found = []
    status = result.get("status") if isinstance(result.get("status"), dict) else {}
    for spec in result["losses"]:
        states = status.get(spec) if isinstance(status.get(spec), list) else []
        for i, seed in enumerate(result["seeds"]):
            state = states[i] if i < len(states) and isinstance(states[i], str) else None
            found += [Trained(d, group, state, True) for d in _trained(group / loss_slug(spec) / f"seed{seed}", group)]
    tuning = result.get("tuning")
    if isinstance(tuning, dict) and isinstance(tuning.get("hash"), str):
        suffix = tuned_suffix(tuning["hash"])
        if group.name.endswith(suffix):
            base = group.parent / group.name[:-len(suffix)]
            h = tuning.get("search_hash") if isinstance(tuning.get("search_hash"), str) else tuning["hash"]
            for spec in result["losses"]:
                search = base / search_folder(h) / loss_slug(spec)
                cands = sorted((d for d in search.glob("t*") if d.name[1:].isdigit()), key=lambda d: int(d.name[1:])) \
                    if search.is_dir() and _inside(search, base) else []
                for d in cands:  # t<i> itself (the legacy layout) or its tuning seeds t<i>/seed<s>
                    seeds = sorted((s for s in d.glob("seed*") if s.name[4:].isdigit()), key=lambda s: int(s.name[4:]))
                    found += [Trained(s, base, None, False) for s in [d, *seeds] if (s / _TRIAL).is_file()]
    return found


def comparison_files(cmp_dir: Path) -> list[Path]:
    """The comparison's plots (its PNGs: the PDF and SVG twins hold the same) and table;
    plain files of the folder only (a link could lead anywhere)."""
    names = sorted(p.name for p in Path(cmp_dir).glob("*.png"))
    files = [file_inside(Path(cmp_dir), name) for name in names]
    table = Path(cmp_dir) / _TABLE
    if table.is_file() and not table.is_symlink():
        files.append(table)
    return [f for f in files if f is not None]


def _save(state: TrackerState) -> None:
    try:
        state.save()
    except OSError as exc:
        warnings.warn(f"cannot record tracker run ids in the results folders ({exc.strerror or exc}): pushing them "
                      "again would make their runs twice", stacklevel=2)


def _rows_after(store: Backend, guard: Guard, folder: Path, last: int) -> int:
    """Log the folder's metrics.csv rows after step ``last``; the last step logged."""
    for row in history_rows(folder):
        parsed = epoch_metrics(row)
        if parsed is not None and parsed[0] > last and guard.on:
            guard(store.log, *parsed)
            last = parsed[0]
    return last


def _push(store: Backend, guard: Guard, trial: Trained, state: TrackerState, info: dict[str, Any],
          summary: dict[str, Any] | None, status: str | None, comparisons: list[str],
          files: list[tuple[Path, str]]) -> bool:
    """A trial that has no run in the store: a run made from its files, as it would have
    been logged live -- params, every metrics.csv row, final metrics, tags, samples."""
    names = run_names(trial.group, trial.folder)
    entry = state.entry(store.kind, store.store)
    entry.pop("run_id", None)  # a run the store does not have (deleted, or never made)
    try:
        run_id = chosen_id(store, state, entry)
    except OSError:  # a read-only results folder: pushed all the same, remembered nowhere
        run_id = entry.get("pending_id")
        _save(state)
    started = guard(store.start, names, run_id, trial_params(info), run_tags(info, names, status, comparisons))
    if not guard.on:
        return False
    last = _rows_after(store, guard, trial.folder, -1)
    if summary is not None:
        guard(store.final, max(last, 0), final_metrics(summary))
    guard(store.files, samples_file(trial.folder) + files)
    guard(store.end, outcome_of(status, summary is not None))
    entry.update(run_id=started, last_step=last, comparisons=comparisons, status=status)
    entry.pop("pending_id", None)
    _save(state)
    return guard.on


def sync_trial(store: Backend, guard: Guard, trial: Trained, slug: str | None,
               files: list[tuple[Path, str]]) -> str:
    """Bring one trial's run in ``store`` up to date: ``created`` (pushed from its files),
    ``updated`` (a comparison tag, its plots, a new status -- or the rows, final metrics
    and samples that a tracker failing mid-trial left out -- added to its run),
    ``unchanged``, or ``failed`` (the store failed: :class:`Guard` said so)."""
    state = TrackerState(trial.folder)
    entry = state.entry(store.kind, store.store)
    info = read_trial(trial.folder)
    summary = read_summary_file(trial.folder)
    status = str(summary.get("status")) if summary is not None else trial.status
    known = comparisons_of(entry)
    new = slug is not None and slug not in known
    comparisons = known + [slug] if new else known
    names = run_names(trial.group, trial.folder)
    run_id = entry.get("run_id")
    if isinstance(run_id, str):
        if not new and entry.get("status") == status:
            return "unchanged"
        tags = run_tags(info, names, status, comparisons)
        if guard(store.attach, names, run_id, trial_params(info), tags):
            guard(store.set_tags, tags)
            # a run its tracker left half-way (a failure mid-trial) gets the rest from the files
            last = entry.get("last_step") if isinstance(entry.get("last_step"), int) else -1
            last = _rows_after(store, guard, trial.folder, last)
            if summary is not None and entry.get("status") is None:  # its end never reached the run
                guard(store.final, max(last, 0), final_metrics(summary))
                guard(store.files, samples_file(trial.folder))
            if new and files:
                guard(store.files, files)
            guard(store.end, outcome_of(status, summary is not None))
            entry.update(last_step=last, comparisons=comparisons, status=status)
            _save(state)
            return "updated" if guard.on else "failed"
        if not guard.on:
            return "failed"
    return "created" if _push(store, guard, trial, state, info, summary, status, comparisons, files) else "failed"


def sync_comparison(store: Backend, guard: Guard, cmp_dir: Path, result: dict[str, Any],
                    strict: bool = False) -> Counter:
    """Every trial of one comparison into ``store`` (:func:`sync_trial`); how many runs
    were created, updated or left unchanged. A trial folder whose files cannot be read is
    skipped with one warning (``strict``: the error is raised)."""
    slug = comparison_slug(cmp_dir)
    files = [(path, f"comparisons/{slug}") for path in comparison_files(cmp_dir)]
    counts: Counter = Counter()
    for trial in comparison_trials(cmp_dir, result):
        if not guard.on:
            break
        try:
            counts[sync_trial(store, guard, trial, slug if trial.member else None, files if trial.member else [])] += 1
        except CvlossError as exc:  # a corrupt trial.json, summary.json or metrics.csv
            if strict:
                raise
            warnings.warn(f"--log {store.kind}: {exc}; that trial's run left as it was", stacklevel=2)
    return counts


def track_comparison(log: str, out: str | Path, result: dict[str, Any]) -> None:
    """The hook of a summarised comparison: its tag on its trials' runs in every tracker
    of ``log`` (``--log``'s checked value); nothing without one. Never raises for a
    tracker's failure: one warning line, and the comparison's results stand."""
    kinds = [k for k in str(log).split(",") if k in TRACKERS]
    for kind in kinds:
        store = backend(kind, Path(out))
        if not unopenable(kind, store.store):  # its trials met a store that cannot be opened: said once
            sync_comparison(store, Guard(kind, store.store), Path(result["dir"]), result)


def find_comparisons(root: Path) -> list[Path]:
    """Every ``compare.json`` below ``root``, in a stable order."""
    return sorted(Path(root).rglob("compare.json"))


def export_results(kind: str, root: Path) -> dict[str, Any]:
    """Push every comparison below ``root`` -- its trials' runs with their comparison
    tags, plots and search trials -- into ``kind``'s store (the tool's environment
    variables, else ``<root>/mlruns`` / ``<root>/wandb``). Returns the store and the
    counts of runs ``created``, ``updated`` and ``unchanged``. A store that fails is one
    :class:`cvloss.run.trackers.TrackerError` line."""
    if kind not in TRACKERS:
        raise UsageError(f"unknown tracker {kind!r}; valid: {', '.join(TRACKERS)}")
    root = Path(root)
    found = find_comparisons(root)
    if not found:
        raise UsageError(f"no comparisons under {root}: run `cvloss compare ...` first, or name the results folder")
    comparisons = [(path.parent, read_comparison(path, root)) for path in found]  # every file checked first
    store = backend(kind, root)
    guard = Guard(kind, store.store, strict=True)
    counts: Counter = Counter()
    for cmp_dir, result in comparisons:
        counts.update(sync_comparison(store, guard, cmp_dir, result, strict=True))
    return {"store": store.store, "comparisons": len(comparisons),
            **{k: counts.get(k, 0) for k in ("created", "updated", "unchanged")}}
