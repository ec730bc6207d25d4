"""cvloss.api and its typed result: the README's "From Python" example runs as written; a
comparison through the API is the CLI's on the same options (same folders, same
compare.json); ComparisonResult round-trips compare.json, older files included; bad input
is refused by the API with the CLI's line before anything is written."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss import api
from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.report.tables import comparison_markdown, note_lines
from cvloss.result import ComparisonResult

ROOT = Path(__file__).resolve().parents[1]
# the README example's options, as the command line gives them
SAME_AS_README = ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "2", "--set", "epochs=1",
                  "--set", "n_train=8", "--threads", "1", "--quiet"]


def _from_python_example() -> str:
    section = (ROOT / "README.md").read_text().split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's example run as written, in an empty folder (results: ./cvloss-results);
    yields that folder and the example's ``result``."""
    cwd = tmp_path_factory.mktemp("from-python")
    patch = pytest.MonkeyPatch()
    patch.chdir(cwd)
    patch.delenv("CVLOSS_RESULTS", raising=False)
    scope: dict = {}
    try:
        exec(compile(_from_python_example(), "README.md", "exec"), scope)
        yield cwd, scope["result"]
    finally:
        patch.undo()


def test_the_readme_example_runs_and_its_result_is_the_file_written(readme_run, tmp_path):
    cwd, result = readme_run
    assert len([line for line in _from_python_example().splitlines() if line.strip()]) <= 10
    folder = cwd / "cvloss-results" / "seg" / "synth-pets" / "smoke+epochs=1+n_train=8" / "compare--ce--dice"
    assert isinstance(result, ComparisonResult) and cwd / result.dir == folder
    assert (result.task, result.losses, result.seeds, result.primary_metric) == ("seg", ["ce", "dice"], [0, 1], "miou")
    assert {"compare.json", "compare.csv", "compare.md", "compare.tex", "runs.csv", "bars.png"} <= {
        p.name for p in folder.iterdir()}
    # compare.json is written once, from this very object: writing it again gives the same bytes
    result.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (folder / "compare.json").read_bytes()
    assert result.plots == {"bars": "bars.png", "forest": "forest.png", "curves": "curves.png",
                            "samples": "samples.png"}


def test_the_cli_on_the_same_options_is_the_same_comparison(readme_run, monkeypatch):
    """Run after the API, on its folder: the CLI plans the same trial folders with the same
    identities (none is trained again, no other folder appears: a trial of another
    configuration there would be refused) and writes the same compare.json."""
    cwd, result = readme_run
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("CVLOSS_RESULTS", raising=False)
    out = cwd / "cvloss-results"
    files = sorted(p.relative_to(out) for p in out.rglob("*"))
    trained = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    before = json.loads((cwd / result.dir / "compare.json").read_text())
    done = CliRunner().invoke(app, SAME_AS_README)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().splitlines()[-1] == f"results: {result.dir}"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == trained and len(trained) == 4
    assert json.loads((cwd / result.dir / "compare.json").read_text()) == before


def test_the_typed_result_round_trips_compare_json(readme_run, tmp_path):
    cwd, _ = readme_run
    path = next((cwd / "cvloss-results").rglob("compare.json"))
    text = json.loads(path.read_text())
    read = ComparisonResult.from_json(path)
    assert read.to_dict() == text and list(read.to_dict()) == list(text)  # every key, in the file's order
    assert read.extra == {} and read.item_analysis is None and "item_analysis" not in text
    # keys this version does not know, and an item analysis, are kept as read
    newer = {**text, "item_analysis": {"schema": 1, "contrasts": []}, "from_a_newer_cvloss": [1, 2]}
    (tmp_path / "compare.json").write_text(json.dumps(newer))
    again = ComparisonResult.from_json(tmp_path / "compare.json")
    assert again.extra == {"from_a_newer_cvloss": [1, 2]} and again.item_analysis == {"schema": 1, "contrasts": []}
    again.write(tmp_path / "written.json")
    assert json.loads((tmp_path / "written.json").read_text()) == newer
    # read back, the result renders the tables its comparison wrote (NaN there, null in the file)
    assert comparison_markdown(read) == (path.parent / "compare.md").read_text()
    assert read.row("dice", "miou")["loss"] == "dice" and read.row("dice", "no such metric") is None


def test_an_older_compare_json_still_reads():
    """The first reference study's untuned comparison (tests/fixtures/study1) predates the trial notes (degenerate
    reasons, identical replicates, the unit of replication) and ``mde_how``."""
    (path,) = (ROOT / "tests" / "fixtures" / "study1" / "embed" / "synth-ids" / "quick").glob("compare--*/compare.json")
    text = json.loads(path.read_text())
    old = ComparisonResult.from_json(path)
    assert "replicate_unit" not in text and old.replicate_unit is None and old.degenerate is None
    assert old.losses == text["losses"] and old.rows == text["rows"] and old.best == text["best"]
    assert {k: v for k, v in old.to_dict().items() if k in text} == text
    assert [k for k in old.to_dict() if k not in text] == [  # written today, these keys would be there too
        "mde_how", "degenerate", "degenerate_on_test", "degenerate_predates", "identical_replicates",
        "degenerate_rule", "replicate_unit"]
    lines = note_lines(old)  # an older comparison's unit of replication is today's, and says so
    assert lines[-1].startswith("Unit of replication as this version of cvloss draws it (the comparison predates")


def test_a_plan_is_checked_and_resolved_before_anything_is_written(tmp_path):
    options = api.RunOptions(out=str(tmp_path / "out"), threads=1)
    plan = api.plan_comparison("seg", "ce, dice", seeds=[3, 5], sets=["epochs=1"], options=options)
    assert plan.losses == ("ce", "dice") and plan.seeds == (3, 5) and plan.space is None
    assert plan.out_dir == tmp_path / "out" / "seg" / "synth-pets" / "smoke+epochs=1" / "compare--ce--dice"
    assert [(c.seed, c.loss) for c in plan.trial_configs()] == [(3, "ce"), (3, "dice"), (5, "ce"), (5, "dice")]
    assert {c.threads for c in plan.trial_configs()} == {1} and plan.dataset_label.startswith("synth-pets")
    tuned = api.plan_comparison("seg", ["ce", "dice"], seeds=2, options=options,
                                tuning=api.Tuning(space=["lr=log(1e-4,1e-2)"], trials=3))
    assert tuned.space.trials == 3 and tuned.out_dir.parent.name == f"smoke+tuned-{tuned.space.tuned_key()}"
    assert tuned.trial_configs() == [] and tuned.seeds == (0, 1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("call, line", [
    (lambda o: api.RunOptions(threads=0), "--threads must be >= 1; got 0"),
    (lambda o: api.executor_for(api.RunOptions(executor="pbs")), "unknown --executor 'pbs'; valid: local, ray, slurm"),
    (lambda o: api.executor_for(api.RunOptions(executor_options={"address": "auto"})),
     "--address is an option of --executor ray: it needs --executor ray"),
    (lambda o: api.executor_for(api.RunOptions(executor_options={"adress": "auto"})),
     "unknown executor option 'adress'; valid: address, slurm_account"),
    (lambda o: api.executor_for(api.RunOptions(jobs=0)), "--jobs must be >= 1; got 0"),
    (lambda o: api.plan_comparison("seg", "ce,,dice", options=o), "--losses 'ce,,dice' has an empty item"),
    (lambda o: api.plan_comparison("seg", ["ce", "ce"], options=o), "--losses lists the same loss twice"),
    (lambda o: api.plan_comparison("seg", "ce", seeds=[0, 0], options=o), "--seeds must list distinct non-negative"),
    (lambda o: api.plan_comparison("seg", "ce", seeds="0", options=o), "--seeds must be a count >= 1"),
    (lambda o: api.plan_comparison("seg", "ce", sets=["epochs=0"], options=o), "--set epochs=0: expected int >= 1"),
    (lambda o: api.plan_comparison("nope", "ce", options=o), "unknown task 'nope'"),
    (lambda o: api.plan_comparison("seg", "ce", target_effect=0.0, options=o), "--target-effect must be a positive"),
    (lambda o: api.plan_comparison("seg", "ce", tuning=api.Tuning(trials=4), options=o), "--tune-trials needs --tune"),
    (lambda o: api.plan_comparison("seg", "ce", options=api.RunOptions(out=" ")), "--out is empty"),
    (lambda o: api.plan_trial("seg", "ce", seed=-1, options=o), "--seed must be >= 0; got -1"),
    (lambda o: api.plan_trial("seg", "ce(reduction=none)", options=o), "need a scalar"),
])
def test_bad_input_is_the_clis_line_and_writes_nothing(tmp_path, call, line):
    with pytest.raises(UsageError) as err:
        call(api.RunOptions(out=str(tmp_path / "out")))
    assert line in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
