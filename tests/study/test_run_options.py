"""A comparison's executor hints apply where ``study run``'s options are not given; the
command line overrides them; Slurm's hints reach only the Slurm executor."""
from __future__ import annotations

import pytest

from cvloss.errors import UsageError
from cvloss.study.run import StudyRunOptions, run_options

STUDY = """
[[comparison]]
name = "hinted"
task = "seg"
losses = ["ce", "dice"]
seeds = 2
jobs = 2
threads = 1
slurm = { cpus = 4, gpus = 1, time = "1:30:00" }

[[comparison]]
name = "plain"
task = "seg"
losses = ["ce"]
seeds = 2
"""


@pytest.fixture
def plan(write_study, plan_of):
    return plan_of(write_study(STUDY))


def test_hints_fill_what_the_command_line_leaves_unset(plan):
    hinted, plain = plan.comparison("hinted"), plan.comparison("plain")
    o = run_options(hinted, StudyRunOptions(), "out")
    assert (o.jobs, o.threads, o.executor_options) == (2, 1, {})  # no Slurm hint off Slurm
    o = run_options(hinted, StudyRunOptions(jobs=1, threads=2), "out")
    assert (o.jobs, o.threads) == (1, 2)
    o = run_options(plain, StudyRunOptions(), "out")
    assert (o.jobs, o.threads) == (1, None)  # compare's defaults


def test_slurm_hints_reach_the_slurm_executor(plan):
    o = run_options(plan.comparison("hinted"), StudyRunOptions(executor="slurm"), "out")
    assert o.threads == 4 and o.executor_options == {"slurm_time": "1:30:00", "slurm_gpus_per_trial": 1}
    o = run_options(plan.comparison("hinted"), StudyRunOptions(executor="slurm", slurm_time="0:10:00", threads=2), "out")
    assert o.threads == 2 and o.executor_options["slurm_time"] == "0:10:00"


def test_an_unknown_comparison_to_run_is_refused(plan):
    from cvloss.study.run import selected

    assert [c.name for c in selected(plan, ["plain"])] == ["plain"]
    with pytest.raises(UsageError, match="--only 'nope': no such comparison in .*; it has: hinted, plain"):
        selected(plan, ["nope"])
