"""The task registry: every task's name and the ``module:Class`` that implements it.

:data:`TASKS` holds the built-in tasks as lazy references (listing them imports no
model); an installed package adds a task through the entry-point group ``cvloss.tasks``
(``mytask = "mypkg.tasks:MyTask"``). Loss serving, data validation, the CLI's help and
:func:`cvloss.tasks.get_task_class` read it. :data:`VIEWS` holds the report's view of
each task (a task module registers its own). A built-in task's default dataset is in
the catalog (``[defaults]`` of ``cvloss/data/datasets.toml``), a plugin's in its spec.
"""
from __future__ import annotations

from collections import UserString
from typing import Any, Callable

from cvloss.registry import Registry

TASKS: Registry[Any] = Registry("task", group="cvloss.tasks", option="task")
for _name, _ref in {
    "seg": "cvloss.tasks.seg:SegTask",
    "sr": "cvloss.tasks.sr:SRTask",
    "style": "cvloss.tasks.style:StyleTask",
    "embed": "cvloss.tasks.embed:EmbedTask",
    "translate": "cvloss.tasks.translate:TranslateTask",
    "gan": "cvloss.tasks.gan:GANTask",
}.items():
    TASKS.register(_name, _ref)

VIEWS: Registry[Any] = Registry("view", group="cvloss.views")


def task_names() -> list[str]:
    """Every task name: the built-ins in their order, then the installed plugins' (sorted)."""
    return TASKS.names()


def task_spec(name: str) -> Any:
    """The :class:`~cvloss.tasks.spec.TaskSpec` of task ``name`` (its class imported now,
    through the registry); an unknown name is :meth:`Registry.unknown`'s one line."""
    return TASKS.get(name).spec


class LazyText(UserString):
    """A string computed each time it is read: a help text that lists the tasks installed
    when the command line is built, not when this module was imported."""

    def __init__(self, text: str | Callable[[], str]) -> None:  # UserString's methods pass a str back in
        self._text = text

    @property
    def data(self) -> str:  # type: ignore[override]
        return self._text() if callable(self._text) else self._text


def _task_help() -> str:
    *head, last = task_names()
    return f"{', '.join(head)} or {last}." if head else f"{last}."


TASK_HELP = LazyText(_task_help)
