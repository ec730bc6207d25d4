"""Tasks: what model, data, training step, evaluation and samples each task uses."""
from __future__ import annotations

from cvloss.errors import UsageError
from cvloss.losses.registry import TASKS


def get_task_class(name: str):
    """The Task class for ``name``; ``UsageError`` for an unknown or not-yet-built task."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    if name == "seg":
        from cvloss.tasks.seg import SegTask

        return SegTask
    raise UsageError(f"task {name!r} is not built yet; tasks that run today: seg")
