"""What every tracker store offers cvloss (:mod:`cvloss.run.trackers`): the names of a
run and the calls a store answers. Its own module so that the stores
(:mod:`cvloss.run.trackers_mlflow`, :mod:`cvloss.run.trackers_wandb`) and the code that
picks them import it without importing each other."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


class RunNames(NamedTuple):
    experiment: str  # <task>/<dataset>/<budget>: MLflow's experiment, W&B's group
    run: str  # the trial folder below the budget folder: ce/seed0, tune--<h>/ce/t3
    stage: str  # "search" (a tuning trial, scored on val) or "final"


class Backend:
    """One tracker store. ``start`` creates a run (or resumes ``run_id``, when the store
    still has it) and makes it the current one; the other calls act on the current run."""

    kind = ""
    store = ""  # where runs go, as trackers.json keys it and warnings name it

    def new_id(self) -> str | None:
        """A run id chosen before the run exists (None: the store assigns it)."""
        return None

    def start(self, names: RunNames, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        raise NotImplementedError

    def attach(self, names: RunNames, run_id: str, params: dict[str, Any], tags: dict[str, str]) -> bool:
        """Make ``run_id`` (a finished run, to tag) current; False when the store lacks it.
        ``params`` and ``tags`` are the run's (W&B's continued run restates them)."""
        raise NotImplementedError

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One metrics.csv row's numbers at ``step`` (its epoch)."""
        raise NotImplementedError

    def final(self, step: int, metrics: dict[str, float]) -> None:
        """The final metrics (``test_<metric>``); ``step``: the last epoch logged."""
        raise NotImplementedError

    def set_tags(self, tags: dict[str, str]) -> None:
        """Every tag of the run (:func:`cvloss.run.trackers.run_tags`), all at once."""
        raise NotImplementedError

    def files(self, files: list[tuple[Path, str]]) -> None:
        """Attach ``(file, folder in the run)`` pairs ("" : the run's top)."""
        raise NotImplementedError

    def end(self, outcome: str | None) -> None:
        """Release the current run: ``finished``, ``failed`` (crashed), ``killed`` (stopped
        before its end: a rerun resumes it) or None (leave its state as it was)."""
        raise NotImplementedError
