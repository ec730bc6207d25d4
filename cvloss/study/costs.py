"""The CPU-hour estimate of ``study check``, from a committed table of seconds per
trial-epoch (``costs.toml`` beside this module).

A trial's cost grows with its epochs (``set = { epochs = 40 }`` costs five times the
quick budget's 8), so the table holds, per task and budget, the CPU seconds one epoch of
one trial takes -- a whole trial's wall time (data, training, every evaluation) divided
by its epochs, averaged over the task's reference specs -- measured at one thread per
trial on a 2-core CPU. An estimate is ``trials x epochs x seconds / 3600``: CPU hours at
one thread per trial. It is a scale (minutes or days?), not a promise: a spec with a VGG
term costs about 4x a pixel loss per step, and a GPU changes everything. A task or
budget the table lacks (``full``: a GPU budget) gives no estimate.
"""
from __future__ import annotations

import functools
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the backport
    import tomli as tomllib  # type: ignore[no-redef]

COSTS = Path(__file__).with_name("costs.toml")


@functools.lru_cache(maxsize=1)
def seconds_per_epoch() -> dict[str, dict[str, float]]:
    """``{task: {budget: CPU seconds per trial-epoch}}`` from :data:`COSTS`."""
    raw = tomllib.loads(COSTS.read_text(encoding="utf-8"))
    return {task: {b: float(s) for b, s in row.items() if isinstance(s, (int, float))}
            for task, row in raw.items() if isinstance(row, dict)}


def cpu_hours(task: str, budget: str, trial_epochs: int) -> float | None:
    """CPU hours of ``trial_epochs`` epochs of trials in all (None when the table has no
    figure for the task and budget)."""
    per = seconds_per_epoch().get(task, {}).get(budget)
    return None if per is None else trial_epochs * per / 3600.0
