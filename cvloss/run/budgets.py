"""Training budgets per task. ``smoke`` proves every output is written in seconds on a
CPU (CI runs it); ``quick`` shows the known effects on the embedded data in minutes on a
CPU; ``full`` follows the papers' protocol on real data and is meant for a GPU.

Any value can be overridden per run with ``--set key=value``; an override becomes part
of the results path (``quick+epochs=5``) so it can never be mistaken for the budget."""
from __future__ import annotations

from typing import Any

from cvloss.errors import UsageError

BUDGET_NAMES = ("smoke", "quick", "full")

BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "seg": {
        "smoke": dict(epochs=2, batch_size=8, lr=2e-3, image_size=32, n_train=32, n_val=16, width=8, depth=2, augment=True),
        "quick": dict(epochs=12, batch_size=16, lr=2e-3, image_size=64, n_train=192, n_val=64, width=16, depth=3, augment=True),
        "full": dict(epochs=60, batch_size=16, lr=1e-3, image_size=128, n_train=None, n_val=None, width=32, depth=4, augment=True),
    },
}


def budget_params(task: str, budget: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The budget's parameters for ``task`` with ``overrides`` applied (keys must exist)."""
    if budget not in BUDGET_NAMES:
        raise UsageError(f"unknown budget {budget!r}; valid budgets: {', '.join(BUDGET_NAMES)}")
    if task not in BUDGETS:
        raise UsageError(f"task {task!r} has no runner yet; tasks with a runner: {', '.join(BUDGETS)}")
    params = dict(BUDGETS[task][budget])
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
