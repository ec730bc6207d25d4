"""Tasks: what model, data, training step, evaluation and samples each task uses.

Each task lives in its own module; this table maps task names to ``module:Class`` so the
CLI can list them without importing every model."""
from __future__ import annotations

import importlib

from cvloss.errors import UsageError
from cvloss.losses.registry import TASKS

TASK_CLASSES = {
    "seg": "cvloss.tasks.seg:SegTask",
    "sr": "cvloss.tasks.sr:SRTask",
    "style": "cvloss.tasks.style:StyleTask",
    "embed": "cvloss.tasks.embed:EmbedTask",
    "translate": "cvloss.tasks.translate:TranslateTask",
    "gan": "cvloss.tasks.gan:GANTask",
}


def available_tasks() -> list[str]:
    """Tasks whose module exists in this installation."""
    return [name for name in TASKS if _module_exists(TASK_CLASSES[name].split(":")[0])]


def _module_exists(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def get_task_class(name: str):
    """The Task class for ``name``; ``UsageError`` for an unknown or not-yet-built task."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    module, cls = TASK_CLASSES[name].split(":")
    if not _module_exists(module):
        raise UsageError(f"task {name!r} is not built yet; tasks that run today: {', '.join(available_tasks())}")
    return getattr(importlib.import_module(module), cls)
