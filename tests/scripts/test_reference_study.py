"""scripts/reference_study.py: every comparison's command is one the CLI accepts (specs
that fit the task, a valid search, valid settings), at the protocol's sizes."""


from cvloss.run.budgets import resolve_overrides
from cvloss.run.compare import canonical_specs, split_losses
from cvloss.run.tune import check_space, parse_space


def _opts(argv, name):
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def test_every_command_is_valid_at_the_protocols_sizes(study):
    for name in study.COMPARISONS:
        argv = study.command(name)
        task = _opts(argv, "--task")[0]
        specs = canonical_specs(split_losses(_opts(argv, "--losses")[0]), task)
        space = parse_space(_opts(argv, "--tune"), int(_opts(argv, "--tune-trials")[0]))
        check_space(space, task, specs)
        resolve_overrides(task, dict(s.split("=", 1) for s in _opts(argv, "--set")))
        assert space.trials >= 6 and int(_opts(argv, "--seeds")[0]) >= 10  # issue 21's protocol
        assert _opts(argv, "--threads") == ["1"] and _opts(argv, "--out") == ["results"]
    untuned = study.command("embed-synth-ids", seeds=5, tuned=False, out="/tmp/x")
    assert "--tune" not in untuned and _opts(untuned, "--seeds") == ["5"] and _opts(untuned, "--out") == ["/tmp/x"]


def test_commands_prints_one_row_per_comparison(study, capsys):
    assert study.main(["commands"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "`cvloss" in line]
    assert [r.split(" | ")[0][2:] for r in rows] == list(study.COMPARISONS)
