"""Live curves for long runs: ``--log tensorboard`` writes each epoch's metrics.csv row as
TensorBoard scalars to ``<trial>/tensorboard/`` so a GPU user can watch a sweep
(``tensorboard --logdir cvloss-results``). The report stays the source of truth; the
event files are a view, never read back (and git-ignored under results/)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError

LOG_KINDS = ("none", "tensorboard")
_INSTALL = "pip install 'cvloss[tensorboard]'"


def check_log(kind: str) -> str:
    """Refuse an unknown ``--log`` value, or ``tensorboard`` without its package, before
    anything runs."""
    if kind not in LOG_KINDS:
        raise UsageError(f"unknown --log {kind!r}; valid: {', '.join(LOG_KINDS)}")
    if kind == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise UsageError(f"--log tensorboard needs the tensorboard package: {_INSTALL}") from None
    return kind


class LiveLog:
    """Writes epoch rows as scalars (``kind == "tensorboard"``) or nothing (``"none"``)."""

    def __init__(self, kind: str, trial_dir: Path) -> None:
        self.writer = None
        if check_log(kind) == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(trial_dir) / "tensorboard"))

    def epoch(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = int(row.get("epoch", 0))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
