"""``study lock``: the hashes it writes; ``run`` and ``report`` refuse a study whose locked
entries changed or disappeared, naming the change; a lock after a test read is refused;
a hypothesis added after the lock is post hoc. No training: test reads are crafted
``untrained.json`` files where a trial would write them."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.config import TunedWinner
from cvloss.study.lock import digest, lock_path, post_hoc, read_lock, trials_that_read_test

runner = CliRunner()

STUDY = """
[[comparison]]
name = "seg-a"
task = "seg"
losses = ["ce", "dice"]
seeds = 3
set = { epochs = 1 }

[[comparison]]
name = "gan-b"
task = "gan"
dataset = "ring8"
losses = ["ns", "wgan_gp"]
seeds = 2

[[hypothesis]]
name = "h1"
comparison = "seg-a"
a = "dice"
b = "ce"
metric = "miou"

[[hypothesis]]
name = "h2"
comparison = "gan-b"
a = "wgan_gp"
b = "ns"
metric = "modes"
"""


def _invoke(*args):
    return runner.invoke(app, ["study", *map(str, args)])


def _one_error(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and result.stdout == ""
    return line


def _read_test(plan, name="seg-a", when="2020-01-01T00:00:00+00:00", loss=None, seed=0):
    """An untrained.json where the comparison's trial would write it when it reads test."""
    c = plan.comparison(name)
    d = replace(c.base, loss=loss or c.specs[0], seed=seed).trial_dir
    d.mkdir(parents=True)
    (d / "untrained.json").write_text(json.dumps({"miou": 0.3, "test_read_utc": when}))
    return d


@pytest.fixture
def locked(write_study, plan_of):
    path = write_study(STUDY)
    result = _invoke("lock", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"locked: {lock_path(path)} (2 comparison(s), 2 hypothesis(es))\n"
    return path


def test_the_lock_holds_each_entry_hash(locked, plan_of):
    plan = plan_of(locked)
    lock = read_lock(locked)
    assert set(lock["comparisons"]) == {"seg-a", "gan-b"} and set(lock["hypotheses"]) == {"h1", "h2"}
    for c in plan.comparisons:
        assert lock["comparisons"][c.name]["sha256"] == digest(c.canonical)
    assert lock["comparisons"]["seg-a"]["canonical"]["seeds"] == [0, 1, 2]
    assert lock["hypotheses"]["h1"]["canonical"] == {"comparison": "seg-a", "a": "dice", "b": "ce", "metric": "miou",
                                                     "claim": "better", "margin": None, "family": "study"}
    assert len(lock["source_sha256"]) == 64 and lock["locked_utc"].endswith("+00:00")
    assert post_hoc(plan, lock) == {}


@pytest.mark.parametrize("edit, said", [
    (lambda t: t.replace("seeds = 3", "seeds = 4"),
     "comparison 'seg-a' changed (seeds: locked [0, 1, 2], now [0, 1, 2, 3])"),
    (lambda t: t.replace('losses = ["ns", "wgan_gp"]', 'losses = ["ns", "wgan_gp", "lsgan"]'),
     "comparison 'gan-b' changed (losses: locked [\"ns\", \"wgan_gp\"], now [\"ns\", \"wgan_gp\", \"lsgan\"])"),
    (lambda t: STUDY.split('[[comparison]]\nname = "gan-b"')[0] + "[[hypothesis]]" + STUDY.split("[[hypothesis]]")[1],
     "comparison 'gan-b' was removed"),
    (lambda t: t.replace('metric = "miou"', 'metric = "dice"'),
     "hypothesis 'h1' changed (metric: locked \"miou\", now \"dice\")"),
    (lambda t: t.split('[[hypothesis]]\nname = "h2"')[0], "hypothesis 'h2' was removed"),
], ids=["seeds", "losses", "comparison-removed", "metric", "hypothesis-removed"])
def test_run_and_report_refuse_a_changed_study_naming_the_change(locked, edit, said, tmp_path):
    locked.write_text(edit(locked.read_text()))
    before = sorted(tmp_path.rglob("*"))
    for command in (("report", locked), ("run", locked, "--threads", "1")):
        line = _one_error(_invoke(*command))
        assert f"{locked}: differs from its lock study.toml.lock (" in line and said in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing trained or written


def test_executor_hints_are_not_locked(locked):
    locked.write_text(locked.read_text().replace("seeds = 3\n", "seeds = 3\njobs = 2\nthreads = 1\n", 1))
    result = _invoke("check", locked)
    assert result.exit_code == 0 and "; unchanged" in result.stdout, result.output


def test_a_hypothesis_added_after_the_lock_is_post_hoc(locked, plan_of):
    locked.write_text(locked.read_text() + '\n[[hypothesis]]\nname = "h3"\ncomparison = "seg-a"\na = "ce"\nb = "dice"\n'
                                           'metric = "pixel_acc"\n')
    plan = plan_of(locked)
    assert post_hoc(plan, read_lock(locked)) == {"h3": "added after the lock"}
    result = _invoke("report", locked)
    assert result.exit_code == 0, result.output
    md = (locked.parent / "study.md").read_text()
    registered, later = md.split("### Registered before the lock\n")[1].split("### Post hoc\n")
    assert "`h1`" in registered and "`h2`" in registered and "`h3`" not in registered
    assert "`h3`" in later and "post hoc: added after the lock" in later and "not run yet" in later


def test_locking_after_a_test_read_is_refused(write_study, plan_of, tmp_path):
    path = write_study(STUDY)
    plan = plan_of(path)
    trial = _read_test(plan, "gan-b", loss="wgan_gp", seed=1)
    line = _one_error(_invoke("lock", path))
    assert line == (f"error: {path}: cannot lock: comparison 'gan-b' has a trial that read test ({trial}, at "
                    f"2020-01-01T00:00:00+00:00); a lock registers the study before any test is read (its hypotheses "
                    f"can only be reported post hoc now)")
    assert not lock_path(path).exists()


def test_a_tuned_winner_that_read_test_counts_too(write_study, plan_of):
    path = write_study(STUDY)
    plan = plan_of(path)
    c = plan.comparison("seg-a")
    d = replace(c.base, loss="dice", seed=2, place=TunedWinner("0123abcd")).trial_dir  # any search's winner
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"split": "test"}))
    assert [(name, folder) for name, folder, _ in trials_that_read_test(plan.comparisons)] == [("seg-a", d)]


def test_a_locked_hypothesis_whose_comparison_read_test_before_the_lock_is_post_hoc(locked, plan_of):
    plan = plan_of(locked)
    lock = read_lock(locked)
    _read_test(plan, "seg-a", when="2000-01-01T00:00:00+00:00")  # long before the lock was written
    why = post_hoc(plan, lock)
    assert why == {"h1": "test read before the lock (seed0)"}


def test_an_unlocked_study_runs_only_with_unlocked(write_study, tmp_path):
    path = write_study(STUDY)
    line = _one_error(_invoke("run", path))
    assert line.startswith(f"error: {path} is not locked, and its comparisons' trials read test: lock it first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


def test_a_fold_that_read_test_counts_with_its_time(write_study, plan_of):
    plan = plan_of(write_study(STUDY))
    c = plan.comparison("seg-a")
    seed_dir = replace(c.base, loss="ce", seed=1).trial_dir
    for fold, when in ((0, "2021-05-01T00:00:00+00:00"), (1, "2021-04-01T00:00:00+00:00")):  # k-fold sub-trials
        (seed_dir / f"fold{fold}").mkdir(parents=True)
        (seed_dir / f"fold{fold}" / "untrained.json").write_text(json.dumps({"test_read_utc": when}))
    ((name, folder, when),) = trials_that_read_test(plan.comparisons)
    assert (name, folder, when.isoformat()) == ("seg-a", seed_dir, "2021-04-01T00:00:00+00:00")  # the first read
