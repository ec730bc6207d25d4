"""scripts/reference_study.py: every comparison is one the library accepts (specs that fit
the task, a valid search, valid settings) at the protocol's sizes, its command line says
the same, and ``run`` makes it through cvloss.api in this process, never the CLI."""
import subprocess
from pathlib import Path

import pytest

from cvloss import api
from cvloss.result import ComparisonResult


def _opts(argv, name):
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_every_comparison_plans_at_the_protocols_sizes_and_writes_nothing(study, tmp_path):
    for name in study.COMPARISONS:
        settings = study.settings(name, out=str(tmp_path / "out"))
        plan = api.plan_comparison(**settings)  # every spec, setting and search candidate checked
        assert plan.space.trials >= 6 and len(plan.seeds) >= 10  # the reference protocol
        assert plan.options.threads == 1 and plan.options.jobs == study.JOBS
        argv = study.command(name)  # the same comparison as a command line
        assert _opts(argv, "--losses") == [",".join(settings["losses"])] and _opts(argv, "--seeds") == ["10"]
        assert _opts(argv, "--tune") == list(settings["tuning"].space) and _opts(argv, "--out") == ["results"]
        assert _opts(argv, "--threads") == ["1"]
    assert not (tmp_path / "out").exists()
    untuned = study.command("embed-synth-ids", seeds=5, tuned=False, out="/tmp/x")
    assert "--tune" not in untuned and _opts(untuned, "--seeds") == ["5"] and _opts(untuned, "--out") == ["/tmp/x"]


def test_commands_prints_one_row_per_comparison(study, capsys):
    assert study.main(["commands"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "`cvloss" in line]
    assert [r.split(" | ")[0][2:] for r in rows] == list(study.COMPARISONS)


def test_run_calls_the_library_from_the_repository_root(study, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # restored after: run() moves to the repository's root
    monkeypatch.setattr(study, "_dirty", lambda: "")
    calls = []

    def compare(task, losses, *, options, **settings):
        calls.append((Path.cwd(), task, losses, options, settings))
        return ComparisonResult(losses=losses, seeds=[0, 1], status={s: ["done", "diverged"] for s in losses},
                                dir="results/embed/x")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(api, "compare", compare)
    for name in ("call", "run", "Popen", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, no_subprocess)
    assert study.main(["run", "embed-synth-ids", "--seeds", "5", "--untuned"]) == 0
    ((cwd, task, losses, options, settings),) = calls
    assert cwd == study.ROOT and task == "embed" and settings["seeds"] == 5 and settings["tuning"] is None
    assert options.out == "results" and options.jobs == 2 and options.threads == 1
    out = capsys.readouterr().out
    n = len(losses)  # each loss: one seed done, one diverged
    assert out.startswith("+ cvloss compare --task embed") and f"results: results/embed/x ({n} of {2 * n} trials" in out


def test_bad_input_is_one_line_and_exit_2(study, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "_dirty", lambda: "")
    with pytest.raises(SystemExit):  # argparse refuses an unknown comparison
        study.main(["run", "nope"])
    capsys.readouterr()
    monkeypatch.setitem(study.COMPARISONS, "bad", ("seg", "synth-vessels", ("epochs=0",)))
    assert study.main(["run", "bad", "--untuned", "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("reference_study: --set epochs=0") and not (tmp_path / "out").exists()
