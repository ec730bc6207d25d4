"""Training budgets per task. ``smoke`` proves every output is written in seconds on a
CPU (under 15 s per trial on one core) and that training moves the model: its rows differ
from the untrained model's (sr's from bicubic too) at the tables' 4 digits; CI runs it.
``quick`` shows the known effects on the embedded data in minutes on a
CPU; ``full`` follows the papers' protocol on real data and is meant for a GPU.

Any value can be overridden per run with ``--set key=value``; an override becomes part
of the results path (``quick+epochs=5``) so it can never be mistaken for the budget."""
from __future__ import annotations

from typing import Any

from cvloss.errors import UsageError
from cvloss.settings import coerce
from cvloss.tasks import get_task_class

BUDGET_NAMES = ("smoke", "quick", "full")

def budget_params(task: str, budget: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The budget's parameters for ``task`` (its spec's ``budgets``) with ``overrides``
    applied: every key must be a setting of the task and every value must pass its schema
    (:mod:`cvloss.settings`); values come back canonical."""
    if budget not in BUDGET_NAMES:
        raise UsageError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGET_NAMES)}")
    spec = get_task_class(task).spec
    params = dict(spec.budgets[budget])
    params.update(resolve_overrides(task, overrides or {}))
    spec.check_params(params)
    return params


def resolve_overrides(task: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``{key: text or value}`` -> ``{key: canonical value}``, checked against the task's
    schema: unknown keys and bad values raise :class:`UsageError` naming the valid ones."""
    schema = get_task_class(task).spec.schema()
    out: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in schema:
            raise UsageError(f"unknown setting {key!r} for task {task}; valid settings: {', '.join(schema)}")
        out[key] = coerce(task, key, raw, schema[key])
    return out


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """Split ``--set key=value`` items into ``{key: value text}``; the task's schema types
    them (:func:`resolve_overrides`). A key given twice is refused, not overwritten."""
    out: dict[str, str] = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"--set expects key=value; got {item!r}")
        if key in out:
            raise UsageError(f"--set {key} is given twice ({out[key]!r} and {raw.strip()!r}); give one value")
        out[key] = raw.strip()
    return out
