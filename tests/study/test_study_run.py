"""A study run end to end through the library (no subprocess): two smoke comparisons of
2 losses x 2 seeds at one epoch and three hypotheses -- lock, run, report; a killed run
resumes; ``--jobs 2`` gives the numbers ``--jobs 1`` gives (one thread per trial)."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from cvloss.errors import UsageError
from cvloss.study import run as study_run
from cvloss.study.check import check_study
from cvloss.study.hypotheses import comparison_folder, read_runs
from cvloss.study.lock import read_lock, write_lock
from cvloss.study.run import StudyRunOptions, run_study
from cvloss.study.schema import read_study
from cvloss.tasks import get_task_class

def _plan(path: Path):
    return check_study(read_study(path))


def _study(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.toml"
    path.write_text(text)
    return path


def _numbers(c) -> dict[tuple[str, int], dict[str, float]]:
    """(loss, seed) -> the trial's final metrics from its comparison's runs.csv, timing metrics left out."""
    runs = read_runs(comparison_folder(c))
    timing = set(get_task_class(c.base.task).spec.timing_metrics)
    metrics = [m for m in get_task_class(c.base.task).spec.metrics if m not in timing]
    return {(loss, seed): {m: row.get(m) for m in metrics} for loss, per in runs.items() for seed, row in per.items()}


@pytest.fixture(scope="module")
def ran(tmp_path_factory, smoke_text):
    """The smoke study locked, run (one job, one thread) and reported, in its own folder."""
    path = _study(tmp_path_factory.mktemp("study"), smoke_text)
    plan = _plan(path)
    write_lock(plan)
    lock = read_lock(path)
    run_study(plan, lock, StudyRunOptions(threads=1, quiet=True))
    from cvloss.study.hypotheses import evaluate_all
    from cvloss.study.lock import post_hoc
    from cvloss.study.report import write_study_report

    evaluated = evaluate_all(plan, post_hoc(plan, lock))
    return plan, lock, evaluated, write_study_report(plan, lock, evaluated)


def test_a_locked_study_runs_end_to_end(ran):
    plan, lock, evaluated, paths = ran
    locked_at = datetime.fromisoformat(lock["locked_utc"])
    for c in plan.comparisons:
        info = json.loads((comparison_folder(c) / "compare.json").read_text())
        assert info["losses"] == c.specs and info["seeds"] == [0, 1]
        assert all(s == "done" for states in info["status"].values() for s in states)
        for dirs in info["trials"].values():  # every trial recorded when it first read test: after the lock
            for d in dirs:
                read = json.loads((Path(d) / "untrained.json").read_text())["test_read_utc"]
                assert datetime.fromisoformat(read) >= locked_at
    records = {r["hypothesis"]: r for r in evaluated["completed"]}
    assert set(records) == {"l1-psnr", "l1-ssim-differs", "texture-style"}
    assert all(r["registered"] and r["n"] == 2 for r in records.values())
    # Δ by hand from the comparison's per-seed rows
    runs = read_runs(comparison_folder(plan.comparison("sr-pixel")))
    by_hand = sum(float(runs["l1"][s]["psnr_y"]) - float(runs["mse"][s]["psnr_y"]) for s in (0, 1)) / 2
    assert records["l1-psnr"]["diff"] == pytest.approx(by_hand)
    assert records["l1-psnr"]["m"] == 2 and records["l1-ssim-differs"]["m"] == 1  # families: study, secondary
    md = paths["md"].read_text()
    assert md.count("`l1-psnr`") == 1 and "### Post hoc" not in md and "## Comparisons" in md
    rows = list(csv.DictReader(paths["csv"].open()))
    assert {r["hypothesis"] for r in rows} == set(records)


def test_after_the_run_the_study_can_no_longer_be_locked(ran):
    plan, *_ = ran
    with pytest.raises(UsageError, match="cannot lock: comparison 'sr-pixel' has a trial that read test"):
        write_lock(plan)


def test_a_killed_study_run_resumes(ran, tmp_path, monkeypatch, smoke_text):
    plan_done, *_ = ran
    plan = _plan(_study(tmp_path, smoke_text))
    opts = StudyRunOptions(threads=1, quiet=True, unlocked=True, only=["style-gram"])
    real_epoch_end = study_run.StudyProgress.epoch_end

    def kill_third(self, epoch, epochs, row):  # Ctrl-C in the third trial, before its summary
        if self.counter[0] == 2:
            raise KeyboardInterrupt
        real_epoch_end(self, epoch, epochs, row)

    monkeypatch.setattr(study_run.StudyProgress, "epoch_end", kill_third)
    with pytest.raises(KeyboardInterrupt):
        run_study(plan, None, opts)
    c = plan.comparison("style-gram")
    order = [(spec, seed) for seed in c.seeds for spec in c.specs]  # seed-major
    dirs = [replace(c.base, loss=spec, seed=seed).trial_dir for spec, seed in order]
    assert [(d / "summary.json").exists() for d in dirs] == [True, True, False, False]
    assert (dirs[2] / "trial.json").exists()  # the third had started
    kept = {d: (d / "summary.json").stat().st_mtime_ns for d in dirs[:2]}
    monkeypatch.setattr(study_run.StudyProgress, "epoch_end", real_epoch_end)
    run_study(plan, None, opts)
    assert all((d / "summary.json").exists() for d in dirs)
    assert {d: (d / "summary.json").stat().st_mtime_ns for d in dirs[:2]} == kept  # not trained again
    assert _numbers(c) == _numbers(plan_done.comparison("style-gram"))  # as if never interrupted


def test_two_jobs_give_the_numbers_of_one(ran, tmp_path, smoke_text):
    plan_done, *_ = ran
    plan = _plan(_study(tmp_path, smoke_text))
    run_study(plan, None, StudyRunOptions(jobs=2, threads=1, quiet=True, unlocked=True, only=["sr-pixel"]))
    got, want = _numbers(plan.comparison("sr-pixel")), _numbers(plan_done.comparison("sr-pixel"))
    assert set(got) == set(want) and len(got) == 4
    assert all(math.isfinite(float(row["psnr_y"])) for row in got.values())  # numbers, not all n/a
    assert got == want
