"""Live curves for long runs, in the tools researchers already look at (``--log``, a list:
repeatable or comma-separated, e.g. ``--log tensorboard,mlflow``):

* ``tensorboard``: each epoch's metrics.csv row as TensorBoard scalars in
  ``<trial>/tensorboard/`` (``tensorboard --logdir cvloss-results``);
* ``mlflow``, ``wandb``: one MLflow / W&B run per trial, with its params, every epoch's
  metrics, the final metrics, tags and samples (:mod:`cvloss.run.trackers`; the stores
  default to ``<out>/mlruns`` and ``<out>/wandb``, W&B offline).

The report stays the source of truth; these are views, never read back (and git-ignored
under results/). Every value is checked before anything runs (:func:`check_log`): an
unknown one or a missing package is one line. A tracker that fails while the trial runs is
one warning line, and the trial goes on.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cvloss.errors import UsageError
from cvloss.run.trackers import TRACKERS, TrackerState, TrialRun

if TYPE_CHECKING:
    from cvloss.run.config import TrialConfig

LOG_KINDS = ("none", "tensorboard", *TRACKERS)


def _installed(kind: str) -> bool:
    if kind == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            return False
        return True
    return importlib.util.find_spec(kind) is not None  # mlflow, wandb: imported only by a trial that logs


def log_kinds(text: str) -> list[str]:
    """The kinds of a checked ``--log`` value (:func:`check_log`): ``none`` -> []."""
    return [k for k in str(text).split(",") if k and k != "none"]


def check_log(values: str | Iterable[str] | None, option: str = "--log") -> str:
    """The ``--log`` values (one string or a list of them, each comma-separated) as one
    canonical string -- ``none`` or the kinds in the order given, each once
    (``tensorboard,mlflow``) -- after refusing, before anything runs, an unknown kind,
    ``none`` together with another, or a kind whose package is missing (naming the extra
    that installs it). ``option`` names the command line's option in the messages."""
    items = [values] if values is None or isinstance(values, str) else list(values)
    kinds: list[str] = []
    for item in items:
        for kind in str(item if item is not None else "none").split(","):
            kind = kind.strip()
            if kind not in LOG_KINDS:
                raise UsageError(f"unknown {option} {kind!r}; valid: {', '.join(LOG_KINDS)} "
                                 f"(several: {option} tensorboard,mlflow)")
            if kind not in kinds:
                kinds.append(kind)
    if "none" in kinds and len(kinds) > 1:
        raise UsageError(f"{option} none cannot go with {', '.join(k for k in kinds if k != 'none')}")
    for kind in kinds:
        if kind != "none" and not _installed(kind):
            raise UsageError(f"{option} {kind} needs the {kind} package: pip install 'cvloss[{kind}]'")
    return ",".join(kinds) or "none"


class LiveLog:
    """The views of one trial as it trains: TensorBoard scalars and tracker runs.

    ``trial_dir`` holds the trial's ``trial.json`` already; ``cfg`` (needed for trackers)
    says where the results root and the budget folder are. A trial calls
    :meth:`history` once (the rows it has before its next epoch: the untrained model's,
    or a resumed trial's), :meth:`epoch` per epoch, :meth:`finish` with its summary, and
    :meth:`close` always."""

    def __init__(self, kind: str, trial_dir: Path, cfg: TrialConfig | None = None) -> None:
        kinds = log_kinds(check_log(kind))
        self.writer = None
        if "tensorboard" in kinds:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(trial_dir) / "tensorboard"))
        self.runs: list[TrialRun] = []
        trackers = [k for k in kinds if k in TRACKERS]
        if trackers:
            if cfg is None:
                raise ValueError("tracker runs need the trial's config")
            self.state = TrackerState(trial_dir)
            self.runs = [TrialRun(k, Path(cfg.out), cfg.group_dir, trial_dir, self.state) for k in trackers]

    def history(self, rows: list[dict[str, Any]], start_epoch: int) -> None:
        """The rows a trial has before its next epoch. TensorBoard gets them on a fresh
        start only (the untrained model's row); a tracker run gets those after the last
        step it holds -- a resumed trial's run continues where it stopped, one axis."""
        if self.writer is not None and start_epoch == 0:
            for row in rows:
                self._scalars(row)
        self._runs_rows(rows)

    def epoch(self, row: dict[str, Any]) -> None:
        if self.writer is not None:
            self._scalars(row)
        self._runs_rows([row])

    def _scalars(self, row: dict[str, Any]) -> None:
        step = int(row.get("epoch", 0))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def _runs_rows(self, rows: list[dict[str, Any]]) -> None:
        if any([run.rows(rows) for run in self.runs]):  # every run logs; then trackers.json once
            self._save()

    def _save(self) -> None:
        try:
            self.state.save()
        except OSError:  # the trial's own files are written next: a failure there speaks for itself
            pass

    def finish(self, summary: dict[str, Any]) -> None:
        """The trial's end: its runs get the final metrics, status and samples, and end.
        An interrupted trial's runs are left to :meth:`close` (ended as killed; the rerun
        resumes them)."""
        if summary.get("status") == "interrupted":
            return
        for run in self.runs:
            run.finish(summary)
        if self.runs:
            self._save()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for run in self.runs:
            run.close()
        self.runs = []
