"""Tasks: what model, data, training step, evaluation and samples each task uses.

Each task lives in its own module; :data:`cvloss.task_registry.TASKS` maps task names
to ``module:Class`` (built-ins) or entry points (plugins), so the CLI lists them without
importing every model."""
from __future__ import annotations

from cvloss.task_registry import TASKS


def get_task_class(name: str):
    """The Task class for ``name`` (a built-in or an installed plugin's); an unknown name
    is one ``UsageError`` line listing the valid ones."""
    return TASKS.get(name)
