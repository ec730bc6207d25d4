"""``FILE.lock``: a study's pre-registration, and what changed since.

``cvloss study lock FILE`` writes ``FILE.lock`` (JSON): the sha256 of each comparison
and hypothesis in canonical form (:mod:`cvloss.study.check`; executor hints left out),
the canonical form itself (so a change is named key by key), the time, and the code's
commit and source hash (:func:`cvloss.run.provenance.code_provenance`). A lock is
refused once any trial of the study has read ``test`` (an ``untrained.json`` with
``test_read_utc``, or a ``summary.json`` measured on test); before that, locking again
is an amendment and says what changed. ``study run`` and ``study report`` refuse a study
whose locked entries changed or disappeared (:func:`check_unchanged`); what was added
after the lock, or whose comparison read test before the lock time, is *post hoc*
(:func:`post_hoc`). See docs/protocol.md.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from cvloss.errors import ResultsFileError, UsageError
from cvloss.io import read_json, write_json
from cvloss.study.check import Plan, PlannedComparison

LOCK_SCHEMA = 1
MAX_SHOWN = 3  # changes named in one refusal line before "and N more"


def lock_path(study_path: Path) -> Path:
    """``study.toml`` -> ``study.toml.lock``."""
    return Path(study_path).with_name(Path(study_path).name + ".lock")


def digest(canonical: Any) -> str:
    """sha256 of the canonical JSON of ``canonical`` (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _when(text: Any) -> datetime | None:
    """An ISO time (naive times read as UTC), or None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------- test reads
def test_reading_dirs(c: PlannedComparison) -> list[Path]:
    """The folders of the comparison's test-reading trials that exist: each loss at each
    seed, untuned (``<budget>/<loss>/seed<k>``) and as the winner of any search
    (``<budget>+tuned-*/<loss>/seed<k>``: whatever space found it, it read test)."""
    from dataclasses import replace

    from cvloss.run.config import tuned_glob

    found = []
    for spec in c.specs:
        for seed in c.seeds:
            trial = replace(c.base, loss=spec, seed=seed).trial_dir
            group = c.base.group_dir
            rel = trial.relative_to(group)
            found += [d for d in [trial, *sorted(group.parent.glob(f"{tuned_glob(group.name)}/{rel.as_posix()}"))]
                      if d.is_dir()]
    return found


def _untrained_read(path: Path, folder: Path) -> tuple[bool, datetime | None]:
    """An ``untrained.json`` exists: test was read; when, if it says (an unreadable file
    still marks a read, at an unknown time)."""
    from cvloss.run.trainer import TEST_READ

    try:
        info = read_json(path, folder)
    except ResultsFileError:
        return True, None
    return True, _when(info.get(TEST_READ)) if isinstance(info, dict) else None


def read_test_when(trial_dir: Path) -> tuple[bool, datetime | None]:
    """(whether the trial has read test, when it first did if recorded): its
    ``untrained.json`` -- or the first of its folds' (k-fold protocols) -- else a
    ``summary.json`` measured on test (a trial that predates the record)."""
    from cvloss.run.trainer import SUMMARY, UNTRAINED

    found = [(trial_dir / UNTRAINED, trial_dir)] if (trial_dir / UNTRAINED).is_file() else []
    found += [(p, p.parent) for p in sorted(trial_dir.glob(f"fold*/{UNTRAINED}")) if p.is_file()]
    if found:
        reads = [_untrained_read(path, folder) for path, folder in found]
        times = [when for _, when in reads]
        return True, None if None in times else min(times)
    summary = trial_dir / SUMMARY
    if summary.is_file():
        try:
            return read_json(summary, trial_dir).get("split") == "test", None
        except (ResultsFileError, AttributeError):
            return True, None
    return False, None


def trials_that_read_test(comparisons: Iterable[PlannedComparison]) -> list[tuple[str, Path, datetime | None]]:
    """(comparison, trial folder, first test read or None) of every trial that read test."""
    out = []
    for c in comparisons:
        for d in test_reading_dirs(c):
            read, when = read_test_when(d)
            if read:
                out.append((c.name, d, when))
    return out


# ---------------------------------------------------------------------------- the lock file
def lock_record(plan: Plan) -> dict[str, Any]:
    """What ``FILE.lock`` holds for ``plan`` (module docstring)."""
    from cvloss.run.provenance import code_provenance

    code = code_provenance()
    return {
        "schema": LOCK_SCHEMA, "study": plan.study.path.name, "locked_utc": utc_now(),
        "commit": code["commit"], "dirty": code["dirty"], "source_sha256": code["source_sha256"],
        "comparisons": {c.name: {"sha256": digest(c.canonical), "canonical": c.canonical} for c in plan.comparisons},
        "hypotheses": {h.name: {"sha256": digest(h.canonical), "canonical": h.canonical} for h in plan.hypotheses},
    }


def read_lock(study_path: Path) -> dict[str, Any] | None:
    """The study's lock (None when it has none), shape checked: one line naming the file
    otherwise."""
    path = lock_path(study_path)
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        info = read_json(path)
    except ResultsFileError as exc:
        raise UsageError(str(exc)) from None
    ok = (isinstance(info, dict) and info.get("schema") == LOCK_SCHEMA and isinstance(info.get("locked_utc"), str)
          and all(isinstance(info.get(k), dict) and all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                                        for v in info[k].values())
                  for k in ("comparisons", "hypotheses")))
    if not ok:
        raise UsageError(f"{path}: not a study lock of this cvloss (schema {LOCK_SCHEMA}); delete it and lock again "
                         f"only if no trial has read test")
    return info


def write_lock(plan: Plan) -> tuple[Path, list[str]]:
    """Write the lock of ``plan``; returns its path and what changed since a lock before
    it (empty for a first lock). Refused (one line) once a trial of the study has read
    test."""
    reads = trials_that_read_test(plan.comparisons)
    if reads:
        name, folder, when = reads[0]
        more = f" and {len(reads) - 1} more trial(s)" if len(reads) > 1 else ""
        raise UsageError(f"{plan.study.path}: cannot lock: comparison {name!r} has a trial that read test "
                         f"({folder}{', at ' + when.isoformat() if when else ''}){more}; a lock registers the study "
                         f"before any test is read (its hypotheses can only be reported post hoc now)")
    before = read_lock(plan.study.path)
    changed = changes(before, plan) if before is not None else []
    path = lock_path(plan.study.path)
    write_json(path, lock_record(plan))
    return path, changed


# ---------------------------------------------------------------------------- what changed
def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 50 else text[:47] + "..."


def _difference(locked: Any, now: dict[str, Any]) -> str:
    """``seeds: locked [0,1], now [0,1,2]`` for the first key that differs."""
    then, cur = _flat(locked if isinstance(locked, dict) else {}), _flat(json.loads(json.dumps(now)))
    for key in dict.fromkeys([*cur, *then]):
        if then.get(key, "(none)") != cur.get(key, "(none)"):
            return f"{key}: locked {_short(then.get(key, '(none)'))}, now {_short(cur.get(key, '(none)'))}"
    return "its canonical form"


def changes(lock: dict[str, Any], plan: Plan) -> list[str]:
    """Each locked comparison or hypothesis that changed or disappeared, in words."""
    out = []
    for kind, key, items in (("comparison", "comparisons", plan.comparisons),
                             ("hypothesis", "hypotheses", plan.hypotheses)):
        now = {x.name: x for x in items}
        for name, locked in lock[key].items():
            if name not in now:
                out.append(f"{kind} {name!r} was removed")
            elif digest(now[name].canonical) != locked["sha256"]:
                out.append(f"{kind} {name!r} changed ({_difference(locked.get('canonical'), now[name].canonical)})")
    return out


def check_unchanged(plan: Plan, lock: dict[str, Any] | None) -> None:
    """Refuse (one line naming each change, a few at most) a study whose locked
    comparisons or hypotheses changed or disappeared since ``lock``."""
    if lock is None:
        return
    found = changes(lock, plan)
    if found:
        shown = "; ".join(found[:MAX_SHOWN]) + (f"; and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else "")
        raise UsageError(f"{plan.study.path}: differs from its lock {lock_path(plan.study.path).name} "
                         f"({lock['locked_utc']}): {shown}; restore the locked entries, or add new ones under new "
                         f"names (reported post hoc)")


def post_hoc(plan: Plan, lock: dict[str, Any] | None) -> dict[str, str]:
    """Hypothesis name -> why it is post hoc, for every hypothesis that is: all of them
    without a lock; one added after the lock; one whose comparison has a trial that read
    test before the lock time (or at a time not recorded). The others are registered."""
    if lock is None:
        return {h.name: "no lock" for h in plan.hypotheses}
    locked_at = _when(lock["locked_utc"])
    early: dict[str, str] = {}
    for name, folder, when in trials_that_read_test(plan.comparisons):
        if name not in early and (when is None or locked_at is None or when < locked_at):
            early[name] = f"test read before the lock ({folder.name})" if when else "test read at an unrecorded time"
    out = {}
    for h in plan.hypotheses:
        if h.name not in lock["hypotheses"]:
            out[h.name] = "added after the lock"
        elif h.entry.comparison in early:
            out[h.name] = early[h.entry.comparison]
    return out
