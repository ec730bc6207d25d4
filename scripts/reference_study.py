"""The reference study: the comparisons committed under results/, as library calls.

The study's plan is a study file, ``results/study.toml``: each comparison's specs
(each registered loss of its task at least once as a term) and its search space; ``cvloss
study check|lock|run|report results/study.toml`` runs it as a whole. This script reads the
specs and space of each task from that file, and runs one comparison, or prints each as a
command: the same 6 seeded candidates per loss (scored on val), every winner retrained at 10
seeds and measured once on test (:mod:`cvloss.run.tuning`). One thread per trial, two trials
at once. Run it from a clean checkout of the study's tag so that every trial records one commit:

    python scripts/reference_study.py commands          # the table of results/README.md
    python scripts/reference_study.py run embed-synth-ids [--seeds 5] [--untuned]

``run`` refuses a tree with changes under cvloss/ or pyproject.toml (the code a trial
records) and runs the comparison in this process through :mod:`cvloss.api` (the same call
``cvloss compare`` makes), from the repository's root: the committed folders name their
paths relative to it. ``commands`` prints each comparison as the equivalent command line.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS, TUNE_TRIALS, JOBS = 10, 6, 2
STUDY_FILE = ROOT / "results" / "study.toml"  # the plan


def _comparisons() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    from cvloss.study.schema import read_study

    return {c.name: (c.task, c.dataset, tuple(f"{k}={v}" for k, v in c.sets))
            for c in read_study(STUDY_FILE).comparisons}


# name -> (task, dataset, extra --set items), from the study file (grid25: epochs=40)
COMPARISONS = _comparisons()


def reference(task: str) -> Any:
    """The first comparison of ``task`` in the study file (its specs and search space:
    every comparison of a task shares them)."""
    from cvloss.study.schema import read_study

    return next(c for c in read_study(STUDY_FILE).comparisons if c.task == task)


def settings(name: str, seeds: int = SEEDS, tuned: bool = True, out: str = "results") -> dict[str, Any]:
    """The comparison ``name`` as the keyword arguments of :func:`cvloss.api.compare`
    (those of :func:`cvloss.api.plan_comparison`, and ``options``): its task's reference
    specs (:func:`reference`), the quick budget, and -- ``tuned`` -- a search over its
    reference space with :data:`TUNE_TRIALS` candidates per loss."""
    from cvloss.api import RunOptions, Tuning

    task, dataset, sets = COMPARISONS[name]
    ref = reference(task)
    return {"task": task, "losses": list(ref.losses), "dataset": dataset, "budget": "quick",
            "sets": list(sets), "seeds": seeds,
            "tuning": Tuning(space=tuple(ref.tune), trials=TUNE_TRIALS) if tuned else None,
            "options": RunOptions(jobs=JOBS, threads=1, out=out)}


def command(name: str, seeds: int = SEEDS, tuned: bool = True, out: str = "results") -> list[str]:
    """:func:`settings` as the ``cvloss compare`` command line that does the same."""
    s = settings(name, seeds, tuned, out)
    argv = ["cvloss", "compare", "--task", s["task"], "--dataset", s["dataset"], "--losses", ",".join(s["losses"]),
            "--budget", s["budget"]]
    for item in s["sets"]:
        argv += ["--set", item]
    if s["tuning"] is not None:
        for item in s["tuning"].space:
            argv += ["--tune", item]
        argv += ["--tune-trials", str(s["tuning"].trials)]
    opts = s["options"]
    return argv + ["--seeds", str(s["seeds"]), "--jobs", str(opts.jobs), "--threads", str(opts.threads),
                   "--out", opts.out]


def run_comparison(name: str, seeds: int = SEEDS, tuned: bool = True, out: str = "results") -> int:
    """Run the comparison ``name`` through the library, from the repository's root; 2
    (one line) for bad input."""
    from cvloss import api
    from cvloss.errors import CvlossError

    os.chdir(ROOT)
    try:
        result = api.compare(**settings(name, seeds, tuned, out))
    except CvlossError as exc:
        print(f"reference_study: {exc}", file=sys.stderr)
        return 2
    failed = sum(s != "done" for states in result.status.values() for s in states)
    print(f"results: {result.dir} ({failed} of {len(result.losses) * len(result.seeds)} trials failed; "
          f"the tables count them)")
    return 0


def _dirty() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", "cvloss", "pyproject.toml"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("commands", help="print every comparison's command as a markdown table")
    run = sub.add_parser("run", help="run one comparison")
    run.add_argument("name", choices=sorted(COMPARISONS))
    run.add_argument("--seeds", type=int, default=SEEDS)
    run.add_argument("--untuned", action="store_true", help="every loss at the budget's lr (no search)")
    run.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    if args.what == "commands":
        print("| comparison | command |\n|---|---|")
        for name in COMPARISONS:
            print(f"| {name} | `{shlex.join(command(name))}` |")
        return 0
    if _dirty():
        print(f"reference_study: the tree has changes under cvloss/ or pyproject.toml; run the study from a clean "
              f"checkout of its tag:\n{_dirty()}", file=sys.stderr)
        return 2
    print("+ " + shlex.join(command(args.name, args.seeds, not args.untuned, args.out)), flush=True)
    return run_comparison(args.name, args.seeds, not args.untuned, args.out)


if __name__ == "__main__":
    sys.exit(main())
