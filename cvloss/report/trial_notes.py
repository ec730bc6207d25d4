"""What a comparison's trial folders say beyond their statuses: which trials are
degenerate and why, and which seeds are identical replicates.

Both are read from the trials' own files, so ``cvloss compare`` and ``cvloss report``
get the same answer from :func:`trial_notes`: ``degenerate`` (per loss and seed, the
task's rule on val, the reason for the status); ``degenerate_on_test`` (the same rule on
test, a note that decides nothing; for a trial written before the rule, the rule's
numbers part on its stored test metrics, :func:`cvloss.tasks.base.stored_degenerate`,
with ``degenerate_predates`` marking it and its status left as written); and
``identical_replicates`` (per loss, the seed groups with the same metric vector, timings
aside, and the same training curves: one replicate counted several times). See
docs/protocol.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from cvloss.errors import ResultsFileError
from cvloss.io import read_csv, read_summary

SUMMARY, METRICS = "summary.json", "metrics.csv"
FINISHED = ("done", "collapsed", "degenerate")


def _summary(trial_dir: Path) -> dict[str, Any] | None:
    """A trial's summary, None when it has none or one this cvloss cannot read."""
    path = Path(trial_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        return read_summary(path)
    except (ResultsFileError, OSError):
        return None


def replicate_key(trial_dir: Path, summary: dict[str, Any] | None, timing: Sequence[str] = ()) -> tuple | None:
    """What two identical replicates share: the final metrics (every one but ``timing``)
    and each epoch's ``train_*`` values (times left out), as exact text; None for a
    trial that did not finish or has no training curve to compare."""
    if not summary or summary.get("status") not in FINISHED:
        return None
    metrics = tuple(sorted((k, repr(v)) for k, v in (summary.get("metrics") or {}).items() if k not in timing))
    path = Path(trial_dir) / METRICS
    try:
        rows = read_csv(path) if path.is_file() else []
    except (ResultsFileError, OSError):
        rows = []
    curves = tuple(tuple((k, v) for k, v in sorted(row.items())
                         if k and k.startswith("train_") and not k.endswith("_s")) for row in rows)
    if not rows:
        return None
    return metrics, curves


def identical_groups(keys: Sequence[tuple[int, tuple | None]]) -> list[list[int]]:
    """Groups (two seeds or more, in seed order) of the ``(seed, key)`` pairs whose keys
    are equal; a None key never matches."""
    groups: dict[tuple, list[int]] = {}
    for seed, key in keys:
        if key is not None:
            groups.setdefault(key, []).append(seed)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def trial_notes(task_cls: Any, trials: dict[str, Sequence[str | Path]], seeds: Sequence[int],
                summaries: dict[str, Sequence[dict[str, Any] | None]] | None = None) -> dict[str, Any]:
    """The notes of the module docstring for a comparison whose ``trials[loss][i]`` is the
    folder of seed ``seeds[i]``; ``summaries`` (same shape) saves reading them again.
    ``task_cls`` gives the rule (:meth:`cvloss.tasks.spec.TaskSpec.degenerate_by_numbers`)
    and the timing metrics; None (an unknown task) applies no rule to older trials."""
    from cvloss.tasks.base import stored_degenerate

    timing = tuple(task_cls.spec.timing_metrics) if task_cls is not None else ()
    notes: dict[str, Any] = {"degenerate": {}, "degenerate_on_test": {}, "degenerate_predates": {},
                             "identical_replicates": {}}
    for loss, dirs in trials.items():
        sums = list(summaries[loss]) if summaries is not None else [_summary(Path(d)) for d in dirs]
        val, test, predates, keys = [], [], [], []
        for seed, d, s in zip(seeds, dirs, sums):
            old = bool(s) and s.get("status") in FINISHED and "degenerate" not in s
            val.append((s or {}).get("degenerate") if not old else None)
            if old:
                test.append(stored_degenerate(task_cls.spec, s) if task_cls is not None else None)
            else:
                test.append((s or {}).get("degenerate_on_test"))
            predates.append(old)
            keys.append((seed, replicate_key(Path(d), s, timing)))
        notes["degenerate"][loss] = val
        notes["degenerate_on_test"][loss] = test
        notes["degenerate_predates"][loss] = predates
        groups = identical_groups(keys)
        if groups:
            notes["identical_replicates"][loss] = groups
    return notes
