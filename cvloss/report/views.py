"""How the report presents a task: sample-grid titles and note, and the task's own plots.

A :class:`TaskView` is found through :data:`cvloss.task_registry.VIEWS`: a task's module
registers its view there (a lazy ``"module:attr"`` reference, so the tasks layer never
imports the report), and :func:`view_for` imports the task first so that registration has
run. A task without a view gets the default one (plain titles, no plots). A view's
``plots`` draw from the files the trials wrote (``samples.npz``, ``report_data.npz``),
never from a rebuilt task or a reloaded checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from cvloss.errors import UsageError
from cvloss.report.task_plots import embed_plots, gan_plots, style_plots
from cvloss.result import ComparisonResult
from cvloss.task_registry import VIEWS
from cvloss.tasks import get_task_class

#: A view's plots: (comparison, folder to draw in) -> {key: file name written there}.
Plots = Callable[[ComparisonResult, Path], dict[str, str]]


@dataclass(frozen=True)
class TaskView:
    """One task's presentation. ``sample_titles``: column key of ``samples.npz`` -> its
    title in the sample grids (``pred`` columns are titled by the loss); ``sample_note``:
    what the cells show, when not plain images (under the grid); ``plots``: the task's
    own comparison plots, or None."""

    sample_titles: Mapping[str, str] = field(default_factory=lambda: {"input": "input", "truth": "truth"})
    sample_note: str = ""
    plots: Plots | None = None


DEFAULT_VIEW = TaskView()


def view_for(task: str) -> TaskView:
    """The view registered for ``task``, else :data:`DEFAULT_VIEW`. The task's class is
    imported first (its module registers the view); a task this installation does not
    know (a report of a plugin's results without the plugin) gets the default view."""
    try:
        get_task_class(task)
    except UsageError:
        return DEFAULT_VIEW
    if task not in VIEWS:
        return DEFAULT_VIEW
    view = VIEWS.get(task)
    if not isinstance(view, TaskView):
        raise UsageError(f"the view registered for task {task!r} is a {type(view).__name__}, not a "
                         f"cvloss.report.views.TaskView")
    return view


def task_plots(task: str, result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """Draw ``task``'s own plots of ``result`` into ``out_dir``; {key: file name}, empty
    for a task whose view has none."""
    plots = view_for(task).plots
    return plots(result, Path(out_dir)) if plots else {}


SEG_VIEW = TaskView({"input": "image", "truth": "true mask"},
                    "Masks: one colour per class; loss columns: the predicted mask.")
SR_VIEW = TaskView({"input": "LR (nearest, enlarged)", "bicubic": "bicubic", "truth": "HR (truth)"})
STYLE_VIEW = TaskView({"input": "content", "truth": "style"},
                      "Loss columns: the image optimised from the content under that loss.", style_plots)
EMBED_VIEW = TaskView({"input": "image A of the pair", "truth": "image B of the pair"},
                      "Pairs: the first half share an identity, the second half do not. Loss columns: the decision "
                      "at the best threshold (green = same, red = different); white bar = similarity (-1..1), "
                      "yellow line = threshold.", embed_plots)
TRANSLATE_VIEW = TaskView({"input": "A (input)", "truth": "B (hidden pair)", "recon": "F(G(A))"},
                          "Loss columns: G(A), the translation; a B column of unpaired data is a domain reference, "
                          "not a pair.")
GAN_VIEW = TaskView({"input": "real data", "truth": "real data"},
                    "Scatter of samples over the mode centres (red crosses, 3 sigma circles); loss columns: "
                    "generated samples.", gan_plots)
