"""The settings schemas (cvloss.settings): every budget value of every task passes its
task's schema and is canonical; coercion and refusals; limits read from the environment."""
from __future__ import annotations

import pytest

from cvloss.errors import UsageError
from cvloss.settings import Choice, Float, Int, Positive, check_schema, coerce, env_number
from cvloss.task_registry import task_names
from cvloss.tasks import get_task_class


@pytest.mark.parametrize("task", task_names())
def test_every_budget_value_has_a_schema_and_passes_it(task):
    cls = get_task_class(task)
    check_schema(task, cls.spec.schema(), cls.spec.budgets)
    for params in cls.spec.budgets.values():
        cls.spec.check_params(dict(params))  # the budgets themselves tie together


def test_a_schema_without_a_budget_key_or_with_a_bad_value_is_caught():
    with pytest.raises(AssertionError, match="without a schema"):
        check_schema("x", {}, {"smoke": {"epochs": 1}})
    with pytest.raises(AssertionError, match="not nullable"):
        check_schema("x", {"epochs": Int(1)}, {"smoke": {"epochs": None}})


def test_coercion_is_canonical_and_refuses_what_does_not_fit():
    assert coerce("t", "lr", "1", Positive()) == 1.0 and isinstance(coerce("t", "lr", "1", Positive()), float)
    assert coerce("t", "epochs", "3", Int(1)) == 3 and coerce("t", "epochs", 3.0, Int(1)) == 3
    assert coerce("t", "x", "none", Choice("bicubic", "none")) == "none"  # a choice may be the word none
    assert coerce("t", "n", "none", Int(1, nullable=True)) is None
    for raw, spec in [("1.5", Int(1)), ("0", Int(1)), ("nan", Positive()), ("-1", Float(0.0)), ("1,2", Positive()),
                      ("maybe", Choice("a", "b")), ("", Int(1)), ("none", Int(1))]:
        with pytest.raises(UsageError):
            coerce("t", "k", raw, spec)


def test_env_number(monkeypatch):
    monkeypatch.delenv("CVLOSS_TEST_N", raising=False)
    assert env_number("CVLOSS_TEST_N", 7, int) == 7
    monkeypatch.setenv("CVLOSS_TEST_N", "12")
    assert env_number("CVLOSS_TEST_N", 7, int) == 12
    for raw in ("-1", "1.5", "nan", "inf", "lots"):
        monkeypatch.setenv("CVLOSS_TEST_N", raw)
        with pytest.raises(UsageError, match=r"\$CVLOSS_TEST_N must be a whole number >= 0"):
            env_number("CVLOSS_TEST_N", 7, int)
    monkeypatch.setenv("CVLOSS_TEST_N", "0")
    with pytest.raises(UsageError, match="must be a positive number of seconds; got '0'"):
        env_number("CVLOSS_TEST_N", 1.0, positive=True, unit="seconds")
