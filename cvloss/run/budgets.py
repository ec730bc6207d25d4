"""Training budgets per task. ``smoke`` proves every output is written in seconds on a
CPU (CI runs it); ``quick`` shows the known effects on the embedded data in minutes on a
CPU; ``full`` follows the papers' protocol on real data and is meant for a GPU.

Any value can be overridden per run with ``--set key=value``; an override becomes part
of the results path (``quick+epochs=5``) so it can never be mistaken for the budget."""
from __future__ import annotations

from typing import Any

from cvloss.errors import UsageError

BUDGET_NAMES = ("smoke", "quick", "full")

def budget_params(task: str, budget: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The budget's parameters for ``task`` (its Task class's ``budgets``) with ``overrides``
    applied (keys must exist)."""
    from cvloss.tasks import get_task_class

    if budget not in BUDGET_NAMES:
        raise UsageError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGET_NAMES)}")
    params = dict(get_task_class(task).budgets[budget])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise UsageError(f"unknown setting {key!r} for task {task}; valid settings: {', '.join(params)}")
        params[key] = value
    return params


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are JSON-ish (int, float, bool, none, str)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--set expects key=value; got {item!r}")
        key, raw = item.split("=", 1)
        key, raw = key.strip(), raw.strip()
        low = raw.lower()
        value: Any
        if low in ("true", "false"):
            value = low == "true"
        elif low in ("none", "null"):
            value = None
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out
