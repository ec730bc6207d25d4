"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class CvlossError(Exception):
    """Base of cvloss's user-facing errors: the message is the whole explanation."""


class UsageError(CvlossError, ValueError):
    """Bad input from the user (unknown name, bad option value, unfit loss)."""


class ResultsFileError(CvlossError, ValueError):
    """A results file (compare.json, summary.json, trial.json, a checkpoint) that is
    corrupt, of the wrong shape, or refused because it holds code; the message names it."""


class CheckpointError(ResultsFileError):
    """A checkpoint that cannot be used. ``holds_code`` is True when it was refused because
    it would run code on loading (never loaded), False when it is corrupt or truncated."""

    def __init__(self, message: str, holds_code: bool = False) -> None:
        super().__init__(message)
        self.holds_code = holds_code


class LockError(CvlossError):
    """A trial lock that was lost to another process or cannot be created."""
