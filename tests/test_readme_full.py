"""README's "Full budgets and the published protocols" table stays true: every task has a
row, each row's settings column equals that task's ``full`` budget with the row's
``--set`` overrides applied, and each row's command is a valid ``--budget full`` command
(task, a catalog dataset of the task, valid loss specs and settings)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cvloss.data.registry import get_dataset
from cvloss.run.budgets import budget_params, parse_overrides, resolve_overrides
from cvloss.run.compare import canonical_specs, split_losses
from cvloss.tasks import get_task_class

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
TITLE = "## Full budgets and the published protocols"
TASKS = ("seg", "sr", "style", "embed", "translate", "gan")


def _rows() -> list[dict[str, str]]:
    section = README.split(f"\n{TITLE}\n", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[2:]]


ROWS = _rows()


def _argv(row: dict[str, str]) -> list[str]:
    (cmd,) = re.findall(r"`([^`]+)`", row["command"])
    return shlex.split(cmd)


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _params(argv: list[str]) -> dict:
    """The ``full`` budget of the command's task with its ``--set`` overrides applied."""
    task = _opt(argv, "--task")
    sets = parse_overrides([argv[i + 1] for i, a in enumerate(argv) if a == "--set"])
    return budget_params(task, "full", resolve_overrides(task, sets))


def test_section_sits_before_the_gpu_section_and_covers_every_task():
    assert README.index(TITLE) < README.index("## Real datasets on a GPU machine")
    assert README.split(TITLE, 1)[1].split("\n## ", 1)[1].startswith("Real datasets on a GPU machine")
    assert {r["task"] for r in ROWS} == set(TASKS)
    for name in ("ring8", "grid25", "div2k", "lfw", "horse2zebra", "oxford-pets"):
        assert any(_opt(_argv(r), "--dataset") == name for r in ROWS), name
    assert {_params(_argv(r))["scale"] for r in ROWS if r["task"] == "sr"} == {2, 4}  # DIV2K x2 and x4


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['task']}-{r['dataset'].split()[0]}")
def test_row_settings_equal_the_full_budget_and_the_command_is_valid(row):
    argv = _argv(row)
    assert argv[:2] == ["cvloss", "compare"] and _opt(argv, "--budget") == "full"
    task = _opt(argv, "--task")
    assert task == row["task"]
    params = _params(argv)
    listed = dict(re.findall(r"`([A-Za-z_0-9]+)=([^`]*)`", row["our `full` settings"]))
    assert resolve_overrides(task, listed) == params  # every setting, and only those, with the same values
    assert get_dataset(_opt(argv, "--dataset"), task=task).name == _opt(argv, "--dataset")
    assert canonical_specs(split_losses(_opt(argv, "--losses")), task)
    assert row["published number"] and row["protocol"] and row["deviations"]
    assert get_task_class(task).spec.budgets["full"]
