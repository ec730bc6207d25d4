"""Tasks: what model, data, training step, evaluation and samples each task uses.

Each task lives in its own module; :mod:`cvloss.task_registry` maps task names to
``module:Class`` so the CLI can list them without importing every model."""
from __future__ import annotations

import importlib

from cvloss.errors import UsageError
from cvloss.task_registry import TASK_CLASSES, TASKS


def get_task_class(name: str):
    """The Task class for ``name``; ``UsageError`` for an unknown task."""
    if name not in TASK_CLASSES:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    module, cls = TASK_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)
