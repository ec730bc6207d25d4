"""A reporter that records what a run says (messages, trial starts and ends) as lines."""
import pytest

from cvloss.run.progress import Reporter


class Capture(Reporter):
    def __init__(self):
        self.lines: list[str] = []

    def message(self, text):
        self.lines.append(text)

    def trial_start(self, label, epochs, batches, start_epoch):
        self.lines.append(f"START {label} at {start_epoch}")

    def trial_end(self, label, status, detail=""):
        self.lines.append(f"END {label} {status}")


@pytest.fixture
def capture():
    """A fresh :class:`Capture` reporter."""
    return Capture()
