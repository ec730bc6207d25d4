"""``cvloss study check``: every problem of a study file is one ``error:`` line naming the
file, the table and the key (exit 2, nothing written); a good file prints the plan with
its trials, search trials and CPU-hour estimate; README's example is accepted as written."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.study.costs import seconds_per_epoch

runner = CliRunner()

GOOD_COMPARISON = """
[[comparison]]
name = "a"
task = "seg"
losses = ["ce", "dice"]
seeds = 2
"""
GOOD_HYPOTHESIS = """
[[hypothesis]]
name = "h"
comparison = "a"
a = "dice"
b = "ce"
metric = "miou"
"""

# (study text, the line after "error: <file>: ")
CASES = [
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\nlossess = ['dice']\n",
     "[[comparison]] 1 (\"a\"), key 'lossess': unknown key; valid keys: name, task, dataset, losses,"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\n", "[[comparison]] 1 (\"a\"), key 'losses': is required"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\nseeds = '3'\n",
     "[[comparison]] 1 (\"a\"), key 'seeds': expected a count or an array of integers, got a string"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\nseeds = [0, 0]\n",
     "[[comparison]] 1 (\"a\"), key 'seeds': --seeds must list distinct non-negative seeds"),
    ("[[comparison]]\nname = 'a'\ntask = 'nope'\nlosses = ['ce']\n", "[[comparison]] 1 (\"a\"), key 'task': unknown task 'nope'"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce', 'mes']\n",
     "[[comparison]] 1 (\"a\"), key 'losses': unknown loss 'mes'"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\nset = { epochz = 1 }\n",
     "[[comparison]] 1 (\"a\"), key 'set': unknown setting 'epochz' for task seg"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\ndataset = 'ring8'\n",
     "[[comparison]] 1 (\"a\"), key 'dataset': "),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\ntune = ['lr=log(1,0.1)']\n",
     "[[comparison]] 1 (\"a\"), key 'tune': "),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\ntune_trials = 4\n",
     "[[comparison]] 1 (\"a\"), key 'tune': tune_trials needs tune (the space to search)"),
    ("[[comparison]]\nname = 'a b'\ntask = 'seg'\nlosses = ['ce']\n",
     "[[comparison]] 1 (\"a b\"), key 'name': 'a b' is not a plain name"),
    ("[[comparison]]\nname = 'a'\ntask = 'seg'\nlosses = ['ce']\nslurm = { cpus = 0 }\n",
     "[[comparison]] 1 (\"a\"), key 'slurm.cpus': must be >= 1; got 0"),
    (GOOD_COMPARISON + GOOD_COMPARISON, "[[comparison]] 2 (\"a\"), key 'name': the name is already used by [[comparison]] 1"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS.replace('metric = "miou"', 'metric = "psnr_y"'),
     "[[hypothesis]] 1 (\"h\"), key 'metric': task seg has no metric 'psnr_y'; its metrics: miou, dice,"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS.replace('a = "dice"', 'a = "focal"'),
     "[[hypothesis]] 1 (\"h\"), key 'a': 'focal' is not a loss of comparison 'a' (ce, dice)"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS.replace('comparison = "a"', 'comparison = "b"'),
     "[[hypothesis]] 1 (\"h\"), key 'comparison': no [[comparison]] named 'b'; the study has: a"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS + 'claim = "worse"\n',
     "[[hypothesis]] 1 (\"h\"), key 'claim': 'worse' is not a claim; valid: better, differs"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS + "margin = -1\n",
     "[[hypothesis]] 1 (\"h\"), key 'margin': must be a positive finite number; got -1"),
    (GOOD_COMPARISON + GOOD_HYPOTHESIS.replace('b = "ce"', 'b = "dice()"'),
     "[[hypothesis]] 1 (\"h\"), key 'b': the same loss as a ('dice')"),
    ("colour = 1\n" + GOOD_COMPARISON, "unknown top-level key 'colour'"),
    ("[[hypothesis]]\nname = 'h'\n", "no [[comparison]] table"),
    ("[[comparison]\n", "not valid TOML"),
]


@pytest.mark.parametrize("text, line", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_each_problem_is_one_line_naming_file_table_and_key(tmp_path, write_study, text, line):
    path = write_study(text)
    before = sorted(tmp_path.rglob("*"))
    result = runner.invoke(app, ["study", "check", str(path)])
    assert result.exit_code == 2, result.output
    err = result.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {line}"), err
    assert result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_a_missing_or_oversized_file_is_one_line(tmp_path):
    result = runner.invoke(app, ["study", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and result.stderr == f"error: {tmp_path / 'none.toml'}: no such study file\n"
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2**20 + "\n")
    result = runner.invoke(app, ["study", "check", str(big)])
    assert result.exit_code == 2 and "more than a study file may (1048576)" in result.stderr


def test_check_prints_the_plan_and_trains_nothing(tmp_path, write_study):
    path = write_study("""
        [[comparison]]
        name = "plain"
        task = "seg"
        losses = ["ce", "dice", "focal"]
        seeds = 3
        jobs = 2

        [[comparison]]
        name = "tuned"
        task = "gan"
        dataset = "ring8"
        losses = ["ns", "wgan_gp"]
        budget = "quick"
        set = { epochs = 4 }
        seeds = [0, 1]
        tune = ["lr=log(1e-4,1e-2)"]
        tune_trials = 4
        tune_seeds = 2

        [[hypothesis]]
        name = "h1"
        comparison = "plain"
        a = "dice"
        b = "ce"
        metric = "miou"

        [[hypothesis]]
        name = "h2"
        comparison = "tuned"
        a = "wgan_gp"
        b = "ns"
        metric = "modes"
        family = "gan"
        """)
    result = runner.invoke(app, ["study", "check", str(path)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()[:1]
            and line.split()[0] in ("plain", "tuned", "total")}
    costs = seconds_per_epoch()
    # plain: 3 losses x 3 seeds at smoke's 2 epochs; tuned: 2 x 2 test trials + 2 losses x 4 candidates x 2 seeds
    plain_h = 9 * 2 * costs["seg"]["smoke"] / 3600
    tuned_h = (4 + 16) * 4 * costs["gan"]["quick"] / 3600
    assert rows["plain"][1:] == ["seg", "synth-pets", "smoke", "3", "3", "9", "0", f"{plain_h:.2g}"]
    assert rows["tuned"][1:] == ["gan", "ring8", "quick+epochs=4", "2", "2", "4", "16", f"{tuned_h:.2g}"]
    assert rows["total"][1:] == ["13", "16", f"{plain_h + tuned_h:.2g}"]
    assert "hypotheses: 2 in study (m = 1), gan (m = 1)" in result.stdout
    assert "lock: none" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]  # nothing trained or written


def test_a_budget_without_a_cost_figure_has_no_estimate(write_study):
    path = write_study(GOOD_COMPARISON.replace("seeds = 2", 'seeds = 2\nbudget = "full"'))
    result = runner.invoke(app, ["study", "check", str(path)])
    assert result.exit_code == 0, result.output
    rows = [l.split() for l in result.stdout.splitlines() if l.split()[:1] in (["a"], ["total"])]
    assert [r[-1] for r in rows] == ["n/a", "n/a"]  # full is a GPU budget: no CPU figure, no guess


def _readme_study() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S) if "[[hypothesis]]" in b]
    assert len(blocks) == 1, "README has one study example (a toml block with [[hypothesis]])"
    return blocks[0]


def test_the_readme_example_is_accepted_as_written(write_study):
    path = write_study(_readme_study())
    result = runner.invoke(app, ["study", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "hypotheses: " in result.stdout
