"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class CvlossError(Exception):
    """Base of cvloss's user-facing errors: the message is the whole explanation."""


class UsageError(CvlossError, ValueError):
    """Bad input from the user (unknown name, bad option value, unfit loss)."""
