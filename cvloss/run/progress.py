"""Progress reporting on stderr: rich bars on a terminal, one plain line per epoch
otherwise (CI logs, pipes), nothing with ``--quiet``. Tables and paths go to stdout."""
from __future__ import annotations

import sys
import time
from typing import Any


class Reporter:
    """Silent reporter; the base of the others (also what ``--quiet`` uses)."""

    def trial_start(self, label: str, epochs: int, batches: int, start_epoch: int) -> None: ...

    def batch(self, loss: float) -> None: ...

    def epoch_end(self, epoch: int, epochs: int, row: dict[str, Any]) -> None: ...

    def trial_end(self, label: str, status: str, detail: str = "") -> None: ...

    def message(self, text: str) -> None: ...


def _fmt_row(row: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for k in keys:
        v = row.get(k)
        if isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
    return " ".join(parts)


class LineReporter(Reporter):
    """One line per epoch and per trial on ``stream`` (stderr by default)."""

    def __init__(self, stream=None, keys: list[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.keys = keys or []
        self.label = ""

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def trial_start(self, label, epochs, batches, start_epoch):
        self.label = label
        self.t0 = time.perf_counter()
        resumed = f" (resuming at epoch {start_epoch + 1})" if start_epoch else ""
        self._print(f"[{label}] {epochs} epochs x {batches} batches{resumed}")

    def epoch_end(self, epoch, epochs, row):
        self._print(f"[{self.label}] epoch {epoch}/{epochs} train_loss={row.get('train_loss', float('nan')):.4g} "
                    f"{_fmt_row(row, self.keys)} ({time.perf_counter() - self.t0:.1f}s)")

    def trial_end(self, label, status, detail=""):
        self._print(f"[{label}] {status}{': ' + detail if detail else ''}")

    def message(self, text):
        self._print(text)


class RichReporter(LineReporter):
    """A rich progress bar per trial (epoch, batch, loss, ETA) on a terminal's stderr."""

    def __init__(self, keys: list[str] | None = None) -> None:
        from rich.console import Console

        super().__init__(sys.stderr, keys)
        self.console = Console(stderr=True)
        self.progress = None

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def trial_start(self, label, epochs, batches, start_epoch):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.label = label
        self.t0 = time.perf_counter()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True,
        )
        self.progress.start()
        total = epochs * batches
        self.bar = self.progress.add_task(label, total=total, completed=start_epoch * batches, info="")
        self.epoch_text = f"epoch {start_epoch + 1}/{epochs}"

    def batch(self, loss):
        self.progress.update(self.bar, advance=1, info=f"{self.epoch_text} loss={loss:.4g}")

    def epoch_end(self, epoch, epochs, row):
        self.epoch_text = f"epoch {min(epoch + 1, epochs)}/{epochs}"
        self.progress.console.print(f"[{self.label}] epoch {epoch}/{epochs} train_loss={row.get('train_loss', float('nan')):.4g} {_fmt_row(row, self.keys)}",
                                    highlight=False, markup=False)

    def trial_end(self, label, status, detail=""):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        super().trial_end(label, status, detail)


def make_reporter(quiet: bool = False, keys: list[str] | None = None) -> Reporter:
    if quiet:
        return Reporter()
    if sys.stderr.isatty():
        return RichReporter(keys)
    return LineReporter(sys.stderr, keys)
