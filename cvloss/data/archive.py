"""Safe extraction of untrusted tar and zip archives: no escapes, no links, no bombs.

:func:`safe_extract` (1) opens an archive by its real format (magic bytes) and refuses one
whose content does not match its name; (2) reads the whole member list before writing
and refuses symlinks, hard links, devices, FIFOs and other special members, absolute
names, ``..`` components, NUL bytes and top-level names the caller reserves; (3) enforces
the caps on declared sizes and again on the bytes written; (4) writes regular files and
folders only, into a fresh staging folder ``<dest>/.<archive>.extracting/``, moves its
entries into ``dest`` and writes the caller's marker last.

Caps (:class:`Caps`): ``CVLOSS_MAX_EXTRACT_RATIO`` (default 4) × archive size +
``CVLOSS_EXTRACT_SLACK_BYTES`` (64 MiB) uncompressed; ``CVLOSS_MAX_MEMBERS`` (100,000).
Every refusal is a :class:`~cvloss.data.types.DatasetError`, one line naming the archive.
Why no link is ever created, and how the caps were sized: ``docs/data.md``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from cvloss.data.types import DatasetError
from cvloss.settings import env_number

__all__ = ["Caps", "file_digest", "safe_extract", "sniff_format", "expected_format", "staging_dir", "write_atomic"]

CHUNK = 1 << 20


def file_digest(path: Path, algo: str) -> str:
    """Hex digest (``md5``/``sha256``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()
RATIO_ENV = "CVLOSS_MAX_EXTRACT_RATIO"
SLACK_ENV = "CVLOSS_EXTRACT_SLACK_BYTES"
MEMBERS_ENV = "CVLOSS_MAX_MEMBERS"

# File-name endings and the format each promises (the first match wins: .tar.gz before .tar).
_NAME_FORMATS = (
    (".tar.gz", "gzip"), (".tgz", "gzip"), (".tar.bz2", "bzip2"), (".tbz2", "bzip2"),
    (".tar.xz", "xz"), (".txz", "xz"), (".tar", "tar"), (".zip", "zip"),
)
_TAR_MODES = {"gzip": "r:gz", "bzip2": "r:bz2", "xz": "r:xz", "tar": "r:"}


@dataclass(frozen=True)
class Caps:
    """Extraction limits; :meth:`from_env` reads the environment (the variables in the module docstring)."""

    ratio: float = 4.0
    slack: int = 64 << 20
    members: int = 100_000

    @classmethod
    def from_env(cls) -> "Caps":
        d = cls()
        return cls(ratio=env_number(RATIO_ENV, d.ratio, float), slack=env_number(SLACK_ENV, d.slack, int),
                   members=env_number(MEMBERS_ENV, d.members, int))

    def max_bytes(self, archive_size: int) -> int:
        return int(self.ratio * archive_size) + self.slack


def expected_format(name: str) -> str | None:
    """The format a file name promises (``"zip"``, ``"gzip"``, ...), ``None`` for other names."""
    lower = name.lower()
    return next((fmt for suffix, fmt in _NAME_FORMATS if lower.endswith(suffix)), None)


def sniff_format(path: Path) -> str | None:
    """The format the first bytes of ``path`` show, ``None`` when none of ours."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def staging_dir(dest: Path, archive_name: str) -> Path:
    """Where :func:`safe_extract` writes ``archive_name`` before moving it into ``dest``."""
    return dest / f".{archive_name}.extracting"


# ----------------------------------------------------------------------------- member list
@dataclass(frozen=True)
class _Member:
    parts: tuple[str, ...]  # normalised path, never empty, no "." / ".." / ""
    is_dir: bool
    size: int  # as declared by the archive
    ref: object  # the TarInfo / ZipInfo to read it by


def _refuse(archive: Path, reason: str) -> DatasetError:
    return DatasetError(f"refusing to extract {archive}: {reason}")


def _parts(archive: Path, name: str) -> tuple[str, ...]:
    norm = name.replace("\\", "/")
    if "\x00" in norm:
        raise _refuse(archive, f"member name {name!r} holds a NUL byte")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise _refuse(archive, f"absolute member path {name!r}")
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _refuse(archive, f"unsafe member path {name!r} (a '..' component)")
    return parts


def _tar_kind(ti: tarfile.TarInfo) -> str | None:
    """``None`` for a regular file or folder, else what the member is."""
    if ti.isfile() or ti.isdir():
        return None
    if ti.issym():
        return f"symlink -> {ti.linkname!r}"
    if ti.islnk():
        return f"hard link -> {ti.linkname!r}"
    if ti.ischr() or ti.isblk():
        return "device"
    if ti.isfifo():
        return "FIFO"
    return f"special member (tar type {ti.type!r})"


def _zip_kind(zi: zipfile.ZipInfo) -> str | None:
    mode = zi.external_attr >> 16
    if not stat.S_IFMT(mode) or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None  # no type bits (DOS/Windows creators) or a plain file / folder
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    return f"special member (mode {oct(mode)})"


def _tar_entries(tf: tarfile.TarFile) -> Iterator[tuple[str, str | None, bool, int, object]]:
    while True:  # one header at a time, so that a cap stops the listing early
        ti = tf.next()
        if ti is None:
            return
        yield ti.name, _tar_kind(ti), ti.isdir(), ti.size if ti.isfile() else 0, ti


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[tuple[str, str | None, bool, int, object]]:
    for zi in zf.infolist():
        kind = "encrypted member" if zi.flag_bits & 0x1 else _zip_kind(zi)
        yield zi.filename, kind, zi.is_dir(), 0 if zi.is_dir() else zi.file_size, zi


def _plan(archive: Path, entries, caps: Caps, max_bytes: int,
          reserved: Callable[[str], bool]) -> list[_Member]:
    """Check every member (nothing is written here); return the ones to write."""
    members: list[_Member] = []
    declared = 0
    for count, (name, kind, is_dir, size, ref) in enumerate(entries, start=1):
        if count > caps.members:
            raise _refuse(archive, f"more than {caps.members:,} members; if it is genuine, raise {MEMBERS_ENV}")
        parts = _parts(archive, name)
        if kind is not None:
            raise _refuse(archive, f"member {name!r} is a {kind} (links and special files are never extracted)")
        if parts and reserved(parts[0]):
            raise _refuse(archive, f"member {name!r} would replace cvloss's own file {parts[0]!r}")
        declared += size
        if declared > max_bytes:
            raise _refuse(archive, _bytes_reason(max_bytes, caps, "declares"))
        if parts:
            members.append(_Member(parts, is_dir, size, ref))
    return members


def _bytes_reason(max_bytes: int, caps: Caps, verb: str) -> str:
    return (f"it {verb} more than {max_bytes:,} uncompressed bytes ({caps.ratio:g} x its size + "
            f"{caps.slack:,} bytes); if it is genuine, raise {RATIO_ENV}")


# ----------------------------------------------------------------------------- writing
def _copy(src: IO[bytes], out: IO[bytes], written: int, max_bytes: int, archive: Path, caps: Caps) -> int:
    """Stream one member, counting the bytes really written against the archive's cap."""
    while True:
        block = src.read(CHUNK)
        if not block:
            return written
        written += len(block)
        if written > max_bytes:
            raise _refuse(archive, _bytes_reason(max_bytes, caps, "expands to"))
        out.write(block)


def _write(archive: Path, staging: Path, members: list[_Member], open_member, max_bytes: int, caps: Caps) -> None:
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for m in members:
        target = staging.joinpath(*m.parts)
        if m.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member(m.ref) as src, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
            written = _copy(src, out, written, max_bytes, archive, caps)


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; folders present on both sides are merged, anything else at
    ``dst`` (a stale file of an older or interrupted extraction) is replaced."""
    if src.is_dir() and dst.is_dir():
        for child in list(src.iterdir()):
            _merge(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)


def _open(archive: Path):
    """``(entries, open_member, close)`` for the archive's real format, after checking it
    against its name."""
    real, promised = sniff_format(archive), expected_format(archive.name)
    if real is None:
        raise _refuse(archive, "it is not a zip, tar, tar.gz, tar.bz2 or tar.xz archive (unknown magic bytes)")
    if promised is not None and real != promised:
        raise _refuse(archive, f"its content is a {real} archive, but its name says {promised}")
    if real == "zip":
        zf = zipfile.ZipFile(archive)
        return _zip_entries(zf), zf.open, zf.close
    tf = tarfile.open(archive, mode=_TAR_MODES[real])
    return _tar_entries(tf), tf.extractfile, tf.close


def safe_extract(archive: Path, dest: Path, *, marker: Path | None = None,
                 reserved: Callable[[str], bool] = lambda top: False, caps: Caps | None = None) -> None:
    """Extract ``archive`` into ``dest`` as the module docstring says, then write
    ``marker`` (if given) last. Nothing is written when a member is refused; a refusal or
    a corrupt archive raises :class:`DatasetError` (one line naming the archive)."""
    archive, dest = Path(archive), Path(dest)
    caps = Caps.from_env() if caps is None else caps
    max_bytes = caps.max_bytes(archive.stat().st_size)
    staging = staging_dir(dest, archive.name)
    if staging.exists():  # left by an interrupted run
        shutil.rmtree(staging)
    try:
        entries, open_member, close = _open(archive)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _refuse(archive, f"it is corrupt ({_one_line(exc)})") from None
    try:
        members = _plan(archive, entries, caps, max_bytes, reserved)
        dest.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        _write(archive, staging, members, open_member, max_bytes, caps)
        for entry in sorted(staging.iterdir()):
            _merge(entry, dest / entry.name)
        staging.rmdir()
    except (DatasetError, tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, RuntimeError, ValueError) as exc:
        # An ordinary failure tidies up; an interrupt leaves the staging folder to the next run.
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, DatasetError):
            raise
        raise _refuse(archive, f"it is corrupt or unwritable ({_one_line(exc)})") from None
    finally:
        close()
    if marker is not None:
        write_atomic(marker, f"extracted {archive.name}\n")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temp file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
