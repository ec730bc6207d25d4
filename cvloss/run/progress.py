"""Progress reporting on stderr: rich bars on a terminal, one plain line per epoch
otherwise (CI logs, pipes), nothing with ``--quiet``. Tables and paths go to stdout.
With several trials at once (``--jobs``), :class:`ComparisonView` shows the comparison
as a whole; only the parent process prints (workers send it events). A trial is named
as its results folders are (``[seg/myseg-1a2b3c4d/ce/seed0]``); what every trial of a
comparison says about its data (:func:`data_line`) is printed once."""
from __future__ import annotations

import re
import sys
import time
from typing import Any

# Lines about a comparison's data rather than one trial: every trial says them (a worker
# process cannot know what the others said), the printing reporter shows each once.
ONCE_KEYS = ("data", "feature weights")
_ONCE = re.compile(r"\[[^\]\n]*\] (?:" + "|".join(ONCE_KEYS) + r"): ")


#: A search trial's status when it stopped at a rung of successive halving: it has done
#: what its batch asked, and the search decides whether a later batch continues it.
RUNG_STOP = "stopped at its rung"


def data_line(scope: str, text: str, key: str = "data") -> str:
    """``[<scope>] <key>: <text>``, a line a reporter prints once however many trials
    send it (``scope``: ``<task>/<dataset folder>``; ``key``: one of :data:`ONCE_KEYS`)."""
    if key not in ONCE_KEYS:
        raise ValueError(f"data_line key must be one of {ONCE_KEYS}; got {key!r}")
    return f"[{scope}] {key}: {text}"


class Reporter:
    """Silent reporter; the base of the others (also what ``--quiet`` uses)."""

    def trial_start(self, label: str, epochs: int, batches: int, start_epoch: int) -> None: ...

    def batch(self, loss: float) -> None: ...

    def epoch_end(self, epoch: int, epochs: int, row: dict[str, Any]) -> None: ...

    def trial_end(self, label: str, status: str, detail: str = "") -> None: ...

    def message(self, text: str) -> None: ...

    # Several trials at once (cvloss.run.executor): events carry the trial's label.
    def begin(self, total: int, jobs: int) -> None: ...

    def trial_progress(self, label: str, batches_done: int, loss: float) -> None: ...

    def trial_epoch(self, label: str, epoch: int, epochs: int, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class ForwardingReporter(Reporter):
    """Passes every event on to ``inner``: the base of a wrapper that adds to a few of
    them (a cancel check, a study's count) and forwards the rest unchanged."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner

    def trial_start(self, label, epochs, batches, start_epoch):
        self.inner.trial_start(label, epochs, batches, start_epoch)

    def batch(self, loss):
        self.inner.batch(loss)

    def epoch_end(self, epoch, epochs, row):
        self.inner.epoch_end(epoch, epochs, row)

    def trial_end(self, label, status, detail=""):
        self.inner.trial_end(label, status, detail)

    def message(self, text):
        self.inner.message(text)

    def begin(self, total, jobs):
        self.inner.begin(total, jobs)

    def trial_progress(self, label, batches_done, loss):
        self.inner.trial_progress(label, batches_done, loss)

    def trial_epoch(self, label, epoch, epochs, row):
        self.inner.trial_epoch(label, epoch, epochs, row)

    def close(self):
        self.inner.close()


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
        self.said: set[str] = set()  # the data lines shown (data_line)

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
        if _ONCE.match(text):
            if text in self.said:  # every trial of a comparison sends it: shown once
                return
            self.said.add(text)
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


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"


class ComparisonView(LineReporter):
    """The whole comparison while several trials run at once: trials done / running /
    failed, and an ETA from the trials finished so far. Plain lines, one per event: a
    trial's start, each epoch, its end, then the tally (``[trials] 3/8 done, 2 running,
    1 failed; ETA 4m10s``). Events come from the executor, labelled by trial."""

    def __init__(self, stream=None, keys: list[str] | None = None) -> None:
        super().__init__(stream, keys)
        self.total, self.jobs = 0, 1
        self.running: dict[str, dict[str, Any]] = {}  # label -> start time, batches, epochs
        self.durations: list[float] = []  # of trials trained (not skipped) here
        self.done = self.failed = 0

    def begin(self, total, jobs):
        """A new batch of ``total`` trials (a tuned comparison runs two: the search, then
        the winners): the tally restarts; the trial times so far still feed the ETA."""
        self.total, self.jobs, self.t_begin = total, jobs, time.perf_counter()
        self.done = self.failed = 0

    def eta(self) -> float | None:
        """Seconds left: the mean trial time of the trials finished so far, times the
        trials not finished, less what the running ones have done, over the workers."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        now = time.perf_counter()
        queued = self.total - self.done - self.failed - len(self.running)
        left = queued * mean + sum(max(0.0, mean - (now - r["t0"])) for r in self.running.values())
        return left / max(1, self.jobs)

    def tally(self) -> str:
        eta = self.eta()
        return (f"[trials] {self.done}/{self.total} done, {len(self.running)} running, {self.failed} failed"
                + (f"; ETA {_duration(eta)}" if eta is not None else ""))

    def trial_start(self, label, epochs, batches, start_epoch):
        self.running[label] = {"t0": time.perf_counter(), "epochs": epochs, "batches": batches,
                               "done": start_epoch * batches, "epoch": start_epoch}
        resumed = f" (resuming at epoch {start_epoch + 1})" if start_epoch else ""
        self._print(f"[{label}] {epochs} epochs x {batches} batches{resumed}")

    def trial_progress(self, label, batches_done, loss):
        if label in self.running:
            self.running[label].update(done=batches_done, loss=loss)

    def trial_epoch(self, label, epoch, epochs, row):
        run = self.running.get(label, {})
        t = time.perf_counter() - run.get("t0", time.perf_counter())
        run["epoch"] = epoch
        self._print(f"[{label}] epoch {epoch}/{epochs} train_loss={row.get('train_loss', float('nan')):.4g} "
                    f"{_fmt_row(row, self.keys)} ({t:.1f}s)")

    def trial_end(self, label, status, detail=""):
        run = self.running.pop(label, None)
        if status.startswith(("DIVERGED", "CRASHED")):
            self.failed += 1
        else:
            self.done += 1
            if run is not None:
                self.durations.append(time.perf_counter() - run["t0"])
        self._print(f"[{label}] {status}{': ' + detail if detail else ''}")
        self._print(self.tally())


class RichComparisonView(ComparisonView):
    """:class:`ComparisonView` on a terminal: one bar for the comparison (trials, ETA)
    and one per running trial (batches, epoch, loss); event lines print above them."""

    def __init__(self, keys: list[str] | None = None) -> None:
        from rich.console import Console

        super().__init__(sys.stderr, keys)
        self.console = Console(stderr=True)
        self.progress = None
        self.bars: dict[str, Any] = {}

    def _print(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text, highlight=False, markup=False)

    def begin(self, total, jobs):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.close()  # the previous batch's bars
        super().begin(total, jobs)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console,
                                 transient=True)
        self.progress.start()
        self.overall = self.progress.add_task("trials", total=total, info="")

    def _refresh(self) -> None:
        if self.progress is not None:
            eta = self.eta()
            self.progress.update(self.overall, completed=self.done + self.failed,
                                 info=f"{len(self.running)} running, {self.failed} failed"
                                      + (f", ETA {_duration(eta)}" if eta is not None else ""))

    def trial_start(self, label, epochs, batches, start_epoch):
        super().trial_start(label, epochs, batches, start_epoch)
        if self.progress is not None:
            self.bars[label] = self.progress.add_task(label, total=epochs * batches, completed=start_epoch * batches,
                                                      info="")
        self._refresh()

    def trial_progress(self, label, batches_done, loss):
        super().trial_progress(label, batches_done, loss)
        if label in self.bars:
            run = self.running[label]
            self.progress.update(self.bars[label], completed=batches_done,
                                 info=f"epoch {min(run['epoch'] + 1, run['epochs'])}/{run['epochs']} loss={loss:.4g}")
        self._refresh()

    def trial_end(self, label, status, detail=""):
        if label in self.bars:
            self.progress.remove_task(self.bars.pop(label))
        super().trial_end(label, status, detail)
        self._refresh()

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_reporter(quiet: bool = False, keys: list[str] | None = None, jobs: int = 1) -> Reporter:
    """Silent with ``quiet``; else one trial at a time (``jobs == 1``) or the whole
    comparison's view; rich bars on a terminal, plain lines otherwise."""
    if quiet:
        return Reporter()
    if jobs > 1:
        return RichComparisonView(keys) if sys.stderr.isatty() else ComparisonView(sys.stderr, keys)
    if sys.stderr.isatty():
        return RichReporter(keys)
    return LineReporter(sys.stderr, keys)
