"""The spec language, argument coercion, task fitness and their error messages."""
from __future__ import annotations

import pytest
import torch

from cvloss.losses import CombinedLoss, SpecError, build_loss, list_losses, parse_spec
from cvloss.losses.spec import format_term


def test_parse_weighted_sum_with_arguments():
    terms = parse_spec("ce + 0.1*topo(mu=0.5, layers=[relu1_2, relu2_2]) + tv*2e-4")
    assert [t.name for t in terms] == ["ce", "topo", "tv"]
    assert [t.weight for t in terms] == [1.0, 0.1, 2e-4]
    assert terms[1].args == {"mu": 0.5, "layers": ["relu1_2", "relu2_2"]}
    assert terms[1].column == 10


def test_parse_values():
    (t,) = parse_spec('x(a=1, b=-2.5, c=true, d=none, e="two words", f=/tmp/v.pth, g=1e-3)')
    assert t.args == {"a": 1, "b": -2.5, "c": True, "d": None, "e": "two words", "f": "/tmp/v.pth", "g": 1e-3}
    assert isinstance(t.args["a"], int)


@pytest.mark.parametrize(
    "spec, column",
    [("ce+*topo", 4), ("ce(", 4), ("ce)", 3), ("0.1*", 5), ("ce(mu 1)", 7), ("ce $ tv", 4)],
)
def test_syntax_errors_name_the_column(spec, column):
    with pytest.raises(SpecError, match=rf"syntax error at column {column} "):
        parse_spec(spec)


def test_empty_spec():
    with pytest.raises(SpecError, match="empty loss spec"):
        build_loss("  ")


def test_unknown_loss_lists_close_matches_and_all_valid():
    with pytest.raises(SpecError) as err:
        build_loss("mes")
    msg = str(err.value)
    assert "unknown loss 'mes'" in msg and "did you mean" in msg and "mse" in msg
    assert "valid losses:" in msg and "l1" in msg


def test_unknown_argument_lists_valid_ones():
    with pytest.raises(SpecError, match=r"loss 'l1' has no argument 'nope'; valid arguments: reduction="):
        build_loss("l1(nope=3)")


def test_ill_typed_argument():
    with pytest.raises(SpecError, match=r"argument reduction=3 must be one of 'mean'"):
        build_loss("l1(reduction=3)")


def test_loss_not_fit_for_task_lists_fitting_losses():
    with pytest.raises(SpecError) as err:
        build_loss("l1", task="embed")
    msg = str(err.value)
    assert "does not serve task 'embed'" in msg
    assert "losses for embed:" in msg and "triplet" in msg


def test_unknown_task():
    with pytest.raises(SpecError, match="unknown task 'nope'"):
        build_loss("l1", task="nope")
    with pytest.raises(ValueError, match="unknown task"):
        list_losses("nope")


def test_single_term_returns_the_loss_itself_and_sum_is_weighted():
    single = build_loss("l1")
    assert type(single).__name__ != "CombinedLoss" and single.name == "l1"
    combo = build_loss("l1+0.5*mse", task="sr")
    assert isinstance(combo, CombinedLoss)
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    expected = (x - y).abs().mean() + 0.5 * ((x - y) ** 2).mean()
    torch.testing.assert_close(combo(x, y), expected)
    assert combo.spec == "l1+0.5*mse"
    assert [(w, t.name) for w, t in combo.weighted_terms()] == [(1.0, "l1"), (0.5, "mse")]
    assert single.weighted_terms() == [(1.0, single)]  # one loss is one term


def test_weight_on_the_right_and_single_weighted_term():
    loss = build_loss("mse*3")
    assert isinstance(loss, CombinedLoss) and loss.weights == [3.0]


def test_mixed_input_kinds_are_refused():
    with pytest.raises(SpecError, match="mixes terms that take different inputs"):
        build_loss("l1+ce")


def test_format_term_round_trips():
    text = format_term("topo", {"mu": 0.5, "layers": ("relu1_2", "relu2_2")}, 0.1)
    assert text == "0.1*topo(mu=0.5,layers=[relu1_2,relu2_2])"
    (t,) = parse_spec(text)
    assert t.weight == 0.1 and t.args == {"mu": 0.5, "layers": ["relu1_2", "relu2_2"]}


def test_config_records_resolved_arguments():
    loss = build_loss("l1(reduction=sum)")
    assert loss.config() == {"name": "l1", "args": {"reduction": "sum"}}
