"""The task registry: every task's name and the ``module:Class`` that implements it.

The one source of truth that loss validation (:mod:`cvloss.losses.registry`), data
validation (:mod:`cvloss.data.registry`), the CLI's help and
:func:`cvloss.tasks.get_task_class` read. It lives in the ground layer, below losses and
data, and names modules rather than importing them, so listing tasks imports no model.
A task's default dataset is in the catalog (``[defaults]`` of ``cvloss/data/datasets.toml``).
"""
from __future__ import annotations

TASK_CLASSES = {
    "seg": "cvloss.tasks.seg:SegTask",
    "sr": "cvloss.tasks.sr:SRTask",
    "style": "cvloss.tasks.style:StyleTask",
    "embed": "cvloss.tasks.embed:EmbedTask",
    "translate": "cvloss.tasks.translate:TranslateTask",
    "gan": "cvloss.tasks.gan:GANTask",
}
TASKS = tuple(TASK_CLASSES)
TASK_HELP = ", ".join(TASKS[:-1]) + f" or {TASKS[-1]}."
