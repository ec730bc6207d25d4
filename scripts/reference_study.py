"""The reference study (issue 21): the comparisons committed under results/, as commands.

Every comparison compares its task's ``reference_specs`` (each registered loss at least once
as a term), tunes each loss's learning rate over the task's ``reference_space`` with the
same 6 seeded random candidates per loss (scored on val), retrains every winner at 10 seeds
and measures it once on test (:mod:`cvloss.run.tuning`). One thread per trial, two trials at
once. Run it from a clean checkout of the study's tag so that every trial records one commit:

    python scripts/reference_study.py commands          # the table of results/README.md
    python scripts/reference_study.py run embed-synth-ids [--seeds 5] [--untuned]

``run`` refuses a tree with changes under cvloss/ or pyproject.toml (the code a trial
records) and runs the command in this process's environment.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS, TUNE_TRIALS, JOBS = 10, 6, 2
# name -> (task, dataset, extra --set items). grid25 needs far more generator steps than
# the quick budget's 2,000 to reach its 25 modes: 40 epochs x 250 = 10,000.
COMPARISONS = {
    "embed-synth-ids": ("embed", "synth-ids", ()),
    "gan-ring8": ("gan", "ring8", ()),
    "gan-grid25": ("gan", "grid25", ("epochs=40",)),
    "seg-synth-vessels": ("seg", "synth-vessels", ()),
    "sr-skimage-photos": ("sr", "skimage-photos", ()),
    "style-skimage-photos": ("style", "skimage-photos", ()),
    "translate-synth-stripes": ("translate", "synth-stripes", ()),
}


def command(name: str, seeds: int = SEEDS, tuned: bool = True, out: str = "results") -> list[str]:
    from cvloss.tasks import get_task_class

    task, dataset, sets = COMPARISONS[name]
    cls = get_task_class(task)
    argv = ["cvloss", "compare", "--task", task, "--dataset", dataset, "--losses", ",".join(cls.reference_specs),
            "--budget", "quick"]
    for item in sets:
        argv += ["--set", item]
    if tuned:
        for item in cls.reference_space:
            argv += ["--tune", item]
        argv += ["--tune-trials", str(TUNE_TRIALS)]
    return argv + ["--seeds", str(seeds), "--jobs", str(JOBS), "--threads", "1", "--out", out]


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
    argv = command(args.name, args.seeds, not args.untuned, args.out)
    print("+ " + shlex.join(argv), flush=True)
    return subprocess.call([sys.executable, "-m", "cvloss.cli", *argv[1:]], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
