"""`cvloss --help/--version` and `cvloss losses list/show`, through Typer's CliRunner."""
from __future__ import annotations

from typer.testing import CliRunner

from cvloss import __version__
from cvloss.cli import app
from cvloss.losses import list_losses

runner = CliRunner()


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "losses" in result.output
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cvloss {__version__}"


def test_losses_list_shows_every_registered_loss():
    result = runner.invoke(app, ["losses", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = {line.split()[0] for line in lines[3:] if line.strip()}
    assert names == {i.name for i in list_losses()}


def test_losses_list_filters_by_task():
    result = runner.invoke(app, ["losses", "list", "--task", "sr"])
    assert result.exit_code == 0
    names = {line.split()[0] for line in result.output.splitlines()[3:] if line.strip()}
    assert names == {i.name for i in list_losses("sr")} and "l1" in names and "ce" not in names


def test_losses_list_unknown_task_is_one_line_exit_2():
    result = runner.invoke(app, ["losses", "list", "--task", "nope"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: unknown task 'nope'; valid: seg, sr, style, embed, translate, gan"]


def test_losses_show_prints_formula_and_arguments():
    result = runner.invoke(app, ["losses", "show", "l1"])
    assert result.exit_code == 0
    assert "arguments: reduction" in result.output and "tasks:" in result.output


def test_losses_show_unknown_suggests():
    result = runner.invoke(app, ["losses", "show", "mes"])
    assert result.exit_code == 2
    out = result.output.strip().splitlines()
    assert len(out) == 1 and "did you mean" in out[0] and "mse" in out[0]


def test_losses_show_unknown_name_points_at_plugins_and_keeps_the_suggestions():
    result = runner.invoke(app, ["losses", "show", "softiou"])
    (line,) = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and result.stdout == ""
    assert line.startswith("error: unknown loss 'softiou' (did you mean softmax?): not a built-in loss; if it comes "
                           "from a plugin, pass --plugin MODULE")


def test_losses_show_lists_the_choices_of_a_literal_argument():
    result = runner.invoke(app, ["losses", "show", "perceptual"])
    assert result.exit_code == 0, result.output
    arguments = next(line for line in result.stdout.splitlines() if line.startswith("arguments: "))
    assert "arch: 'vgg16' | 'vgg19' = 'vgg16'" in arguments
    assert "layers: tuple[str, ...] = ('relu2_2',)" in arguments
    assert "layer_weights: tuple[float, ...] | None = None" in arguments and "Literal" not in result.stdout
    result = runner.invoke(app, ["losses", "show", "triplet"])
    assert "mining: 'all' | 'batch_hard' | 'semi_hard' = " in result.stdout
