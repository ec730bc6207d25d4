"""The per-trial lock: one process trains a trial folder at a time.

``<trial>/trial.lock`` is created atomically (``O_CREAT | O_EXCL``) and holds JSON:
``pid``, ``host``, a random ``token``, ``started``, ``heartbeat`` (Unix times) and, when
``$CVLOSS_LOCK_OWNER`` is set, ``owner``. The holder refreshes the heartbeat every epoch
and at least every ``$CVLOSS_LOCK_HEARTBEAT`` seconds (default 30) and removes the file
when the trial ends, however it ends. A lock is *stale* -- taken over with one line
saying why -- when its pid on this host is gone, its heartbeat is older than
``$CVLOSS_LOCK_TIMEOUT`` seconds (default 600), it lies more than :data:`CLOCK_SKEW_S`
in the future, or with ``break_stale=True``; an owned lock is taken over at once by its
submission's retry (:func:`take_over_owned`). The file is read only as a regular file of
at most :data:`MAX_LOCK_BYTES` (else one :class:`LockError` line); takeover is serialised
by ``trial.lock.break`` and removes only the bytes it judged stale. See docs/running.md.
"""
from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cvloss.errors import LockError, ResultsFileError
from cvloss.io import read_bounded
from cvloss.settings import env_number

LOCK_NAME = "trial.lock"
TIMEOUT_ENV, HEARTBEAT_ENV, POLL_ENV = "CVLOSS_LOCK_TIMEOUT", "CVLOSS_LOCK_HEARTBEAT", "CVLOSS_LOCK_POLL"
OWNER_ENV = "CVLOSS_LOCK_OWNER"
DEFAULT_TIMEOUT_S, DEFAULT_HEARTBEAT_S, DEFAULT_POLL_S = 600.0, 30.0, 2.0
_BREAK_STALE_S = 60.0  # a takeover takes milliseconds: an older .break file is a crashed breaker's
#: How far in the future a heartbeat may lie and still be a live holder's: hosts that share
#: a results folder keep their clocks within a second or so (NTP); a minute of slack
#: covers a badly kept one. A live holder judged stale here only loses its lock, and its
#: next beat stops it (the trial is never trained twice).
CLOCK_SKEW_S = 60.0
#: A lock holds one line of JSON (~200 bytes); a bigger file is none of ours.
MAX_LOCK_BYTES = 64 * 1024


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``."""
    return env_number(name, default, float, positive=True, unit="seconds")


def _proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of ``pid`` from /proc, None where there is
    no /proc (macOS, Windows) or the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] in ("Z", "X"):  # zombie or dead: exited, not yet reaped
        return None
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C there: rely on the heartbeat alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return False
    if Path("/proc").is_dir() and Path(f"/proc/{pid}").exists():
        return _proc_start(pid) is not None
    return True


def _read(path: Path) -> bytes | None:
    """The lock's bytes, None when there is no lock; :class:`LockError` naming the file
    when something other than a small regular file sits in its place."""
    try:
        return read_bounded(path, limit=MAX_LOCK_BYTES, what="trial lock")
    except FileNotFoundError:
        return None
    except ResultsFileError as exc:
        raise LockError(f"{exc}: remove it (no cvloss process would have made it)") from None


def _time(value: Any) -> float | None:
    """A Unix time from a lock's JSON: a finite number (not a bool), else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def describe(info: dict[str, Any], now: float | None = None) -> str:
    """``pid 123 on host-a (heartbeat 4s ago)`` for a lock's content."""
    if not info:
        return "an unreadable lock file"
    beat, now = _time(info.get("heartbeat")), time.time() if now is None else now
    if beat is None:
        age = ""
    elif beat > now + 0.5:  # written by a clock ahead of ours: say so, not "0s ago"
        age = f", heartbeat {beat - now:.0f}s in the future"
    else:
        age = f", heartbeat {max(0.0, now - beat):.0f}s ago"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}{age}"


def stale_reason(info: dict[str, Any], mtime: float, timeout: float, now: float | None = None) -> str | None:
    """Why a lock with content ``info`` (file modified at ``mtime``) is stale, or None if
    it is live. Unreadable content counts as being written until it is ``timeout`` old.
    A heartbeat more than :data:`CLOCK_SKEW_S` ahead of ``now`` is stale too (it would
    otherwise look fresh for ever), and so is such an mtime of a lock without a heartbeat;
    next to a heartbeat, the mtime -- the file server's clock -- only delays staleness."""
    now = time.time() if now is None else now
    pid, host = info.get("pid"), info.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        if not pid_alive(pid):
            return f"its process (pid {pid}) is gone"
        start = info.get("pid_start")
        if start is not None and _proc_start(pid) not in (None, start):
            return f"pid {pid} now belongs to another process"
    beat = _time(info.get("heartbeat"))
    when, what = (beat, "its heartbeat") if beat is not None else (mtime, "its file's modification time")
    if when > now + CLOCK_SKEW_S:
        return f"{what} is {when - now:.0f}s in the future (a clock more than {CLOCK_SKEW_S:g}s ahead, or a forged lock)"
    last = max(mtime, beat) if beat is not None else mtime
    if now - last > timeout:
        return f"its heartbeat is {now - last:.0f}s old (more than ${TIMEOUT_ENV}={timeout:g}s)"
    return None


class TrialLock:
    """The lock of one trial folder. ``acquire()`` tries once; ``refresh()`` beats (and
    raises :class:`LockError` if another process has taken the lock); ``release()``."""

    def __init__(self, trial_dir: Path, break_stale: bool = False, say=None) -> None:
        self.dir = Path(trial_dir)
        self.path = self.dir / LOCK_NAME
        self.break_stale = break_stale
        self.say = say or (lambda text: None)
        self.timeout = env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
        self.beat_every = env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)
        self.token = uuid.uuid4().hex
        self.held = False
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io = threading.Lock()  # the epoch beat and the background beat never interleave
        self._made: list[Path] = []  # folders acquire() created: removed again if left empty

    # -------------------------------------------------------------- content
    def _content(self, started: float | None = None) -> bytes:
        now = time.time()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token,
                "started": started or now, "heartbeat": now, "pid_start": _proc_start(os.getpid())}
        if os.environ.get(OWNER_ENV):
            info["owner"] = os.environ[OWNER_ENV]
        return (json.dumps(info) + "\n").encode()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._content())
        self.started = time.time()
        self.held = True
        self._thread = threading.Thread(target=self._beat_loop, name=f"cvloss-lock-{self.dir.name}", daemon=True)
        self._thread.start()
        return True

    # -------------------------------------------------------------- acquire
    def acquire(self) -> dict[str, Any] | None:
        """Take the lock if it is free or stale (saying why, through ``say``); return
        None when held, else the live holder's info (``{}`` if being written)."""
        if not self._made:
            self._made = [d for d in (self.dir, *self.dir.parents) if not d.exists()]
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lock released or broken between our steps: look again
            if self._create():
                return None
            raw = _read(self.path)
            if raw is None:
                continue
            info = _parse(raw)
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                continue
            reason = "--break-stale-locks" if self.break_stale else stale_reason(info, mtime, self.timeout)
            if reason is None:
                return info
            if self._break(raw):
                self.say(f"took over the lock of {describe(info)} in {self.dir}: {reason}")
                return None
        raw = _read(self.path)
        return _parse(raw) if raw is not None else {}

    def _break(self, judged: bytes) -> bool:
        """Remove the lock if it still holds ``judged`` and create ours, serialised by the
        ``.break`` file; False if another process got there first (the caller looks again)."""
        return _remove_if_unchanged(self.path, judged, then=self._create)

    # -------------------------------------------------------------- hold
    def refresh(self) -> None:
        """Rewrite the heartbeat; raise :class:`LockError` if the lock is no longer ours."""
        with self._io:
            if self.lost is None and self.held:
                try:
                    raw = _read(self.path)
                except LockError as exc:  # something else was put in its place: not ours any more
                    self.lost = str(exc)
                else:
                    if raw is None or self.token.encode() not in raw:
                        holder = describe(_parse(raw)) if raw else "nobody"
                        self.lost = f"the lock of {self.dir} was taken over (now held by {holder})"
                    else:
                        tmp = self.path.with_name(f".{LOCK_NAME}.{self.token}.tmp")
                        tmp.write_bytes(self._content(self.started))
                        os.replace(tmp, self.path)
        if self.lost:
            raise LockError(f"{self.lost}; stopping so the trial is not trained twice")

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.beat_every):
            try:
                self.refresh()
            except (LockError, OSError):
                return  # the trainer's next refresh() raises

    def release(self) -> None:
        """Stop beating and remove the lock file if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._io:
            if self.held:
                try:
                    raw = _read(self.path)
                except LockError:  # not our lock any more: leave it for the user
                    raw = None
                if raw is not None and self.token.encode() in raw:
                    self.path.unlink(missing_ok=True)
                self.held = False
        for d in self._made:  # deepest first: a trial refused before writing leaves nothing
            try:
                d.rmdir()
            except OSError:
                break


def take_over_owned(trial_dir: Path, owner: str) -> bool:
    """Remove ``trial_dir``'s lock if it names ``owner`` -- left by an earlier attempt of
    the same submission, which its executor knows to be dead -- so the retry takes the
    trial at once. Serialised like any takeover; True when a lock was removed."""
    path = Path(trial_dir) / LOCK_NAME
    raw = _read(path)
    if raw is None or not owner or _parse(raw).get("owner") != owner:
        return False
    return _remove_if_unchanged(path, raw, then=lambda: True)


def _remove_if_unchanged(path: Path, judged: bytes, then) -> bool:
    """Under the ``.break`` file: remove the lock ``path`` if it still holds ``judged``,
    then return ``then()`` (still serialised); False if another process is breaking it
    (a ``.break`` file older than a takeover takes is a crashed breaker's: removed)."""
    breaker = path.with_name(LOCK_NAME + ".break")
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - breaker.stat().st_mtime > _BREAK_STALE_S:
                breaker.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    try:
        if _read(path) != judged:
            return False
        path.unlink(missing_ok=True)
        return then()
    finally:
        os.close(fd)
        breaker.unlink(missing_ok=True)
