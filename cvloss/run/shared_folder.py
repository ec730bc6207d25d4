"""Is the results folder one that the cluster's nodes see? A probe, for Ray and Slurm alike.

A cluster executor writes each trial's folder on whichever node runs it and reads the
summaries on the driver, so ``--out`` must be shared storage. A folder of the same name
on each node's local disk would let every trial run and then leave the driver with
nothing. :func:`check_shared_folder` proves the folder is shared before the first trial:
the driver writes a probe file with a random token, one worker (a Ray task, a Slurm job)
must read that token in the folder and write an answer beside it, which the driver must
then see. Otherwise one :class:`~cvloss.errors.UsageError` line, and nothing left behind.

This module imports no torch: a Slurm probe job runs it as
``python -m cvloss.run.shared_folder FOLDER TOKEN VERSION`` and answers by exit code
(:data:`PROBE_EXIT`), the only thing a driver learns from a node that does not share
the folder.
"""
from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path
from typing import Callable

from cvloss.errors import UsageError

PROBE_PREFIX = ".cvloss-probe-"
# Exit codes of the probe command, and what the driver says for each.
PROBE_EXIT = {
    3: "the folder there does not hold the driver's probe file",
    4: "the folder there holds another probe file",
    5: "the node runs another cvloss version than this driver",
    6: "the node cannot write its answer in the folder",
}


def probe_task(folder: str, token: str, node: str | None = None) -> dict[str, str]:
    """Read the driver's probe file in ``folder`` and answer beside it: proof that this
    node sees the same storage, not a same-named local folder. Returns the node's name
    (``node``, default the host name) and its cvloss version, or raises with why not."""
    from cvloss import __version__

    node = node or socket.gethostname()
    probe = Path(folder) / f"{PROBE_PREFIX}{token}"
    if not probe.is_file():
        raise FileNotFoundError(f"{folder} on {node} does not hold the driver's probe file")
    if probe.read_text() != token:
        raise ValueError(f"{folder} on {node} holds another probe file")
    probe.with_name(probe.name + ".answer").write_text(node)
    return {"node": node, "cvloss": __version__}


def check_shared_folder(folder: Path, run_probe: Callable[[str, str], dict[str, str]],
                        nodes: str = "Ray node") -> dict[str, str]:
    """Refuse (one UsageError line, nothing left behind) unless the worker that
    ``run_probe(folder, token)`` reaches reads the driver's probe file in ``folder`` and
    writes its answer where the driver sees it; return what the worker said (``node``,
    ``cvloss`` version). ``nodes`` names the workers in the line (``Slurm node``). A
    UsageError of ``run_probe`` passes through, after the cleanup."""
    folder = Path(folder)
    made = [d for d in (folder, *folder.parents) if not d.exists()]
    token = uuid.uuid4().hex
    probe = folder / f"{PROBE_PREFIX}{token}"
    answer = probe.with_name(probe.name + ".answer")
    problem, info = None, {}
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_text(token)
        except OSError as exc:
            problem = f"the driver cannot write it ({(exc.strerror or type(exc).__name__).lower()})"
        if problem is None:
            try:
                info = run_probe(str(folder), token)
            except UsageError:
                raise
            except Exception as exc:  # the worker's error, re-raised by the executor (its last line says what)
                problem = last_line(exc)
        if problem is None and (not answer.is_file() or answer.read_text() != info["node"]):
            problem = f"a worker on {info['node']} wrote its answer where this driver does not see it"
    finally:
        for path in (answer, probe):
            path.unlink(missing_ok=True)
        for d in made:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break
    if problem is not None:
        raise UsageError(f"--out {folder} must be a folder every {nodes} sees (a shared filesystem): {problem}")
    return info


def last_line(exc: BaseException) -> str:
    """The last line of an exception's text (a remote traceback's is the error itself)."""
    text = str(getattr(exc, "cause", None) or exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def main(argv: list[str]) -> int:
    """``FOLDER TOKEN VERSION``: answer the probe; the exit code says why not
    (:data:`PROBE_EXIT`)."""
    from cvloss import __version__

    folder, token, version = argv
    if version != __version__:
        return 5
    try:
        probe_task(folder, token)
    except FileNotFoundError:
        return 3
    except ValueError:
        return 4
    except OSError:
        return 6
    return 0


if __name__ == "__main__":  # pragma: no cover - run on a Slurm node by the probe job
    sys.exit(main(sys.argv[1:]))
