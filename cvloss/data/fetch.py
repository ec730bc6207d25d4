"""Download, verify and safely extract the archives of a catalog dataset.

For every file of ``info.files`` (URL and checksum come only from ``datasets.toml``):

1. ``<data-dir>/<name>/<filename>`` already there (downloaded before or fetched by hand)?
   Verify it and go on -- no network.
2. Otherwise stream it with urllib into ``<filename>.part``. A ``.part`` left by an
   interrupted run is resumed with an HTTP ``Range: bytes=N-`` request; a server that
   ignores Range (answers 200) restarts the file from byte 0.
3. Verify md5/sha256 (as the source publishes it), then rename ``.part`` to the file.
4. Extract ``.tar``/``.tar.gz``/``.tgz``/``.zip`` into ``<data-dir>/<name>/`` after checking
   EVERY member first: absolute paths, ``..`` components, paths that resolve outside the
   folder, links that point outside it and device/fifo members are refused with a
   :class:`DatasetError` naming the member, before anything is written. Tar extraction
   also uses ``filter="data"`` where Python has it (belt and braces).
   A marker ``.extracted-<filename>`` records a finished extraction.

Unreachable URLs give one line: the URL, the reason, and the exact path where a manually
fetched file is picked up.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from cvloss import __version__
from cvloss.data.registry import DatasetInfo, FileInfo, dataset_dir
from cvloss.data.types import DatasetError

__all__ = ["FileCheck", "download", "verify", "file_digest", "safe_extract"]

CHUNK = 1 << 20
TIMEOUT_S = 30.0
_USER_AGENT = f"cvloss/{__version__} (+https://github.com/; dataset fetcher)"


@dataclass(frozen=True)
class FileCheck:
    """Result of verifying one file of a dataset.

    status: ``"ok"`` (checksum matches), ``"unverified"`` (present, but no checksum is
    published -- ``message`` says "no published checksum"), ``"missing"`` or ``"mismatch"``.
    """

    filename: str
    path: Path
    status: Literal["ok", "unverified", "missing", "mismatch"]
    message: str


def file_digest(path: Path, algo: str) -> str:
    """Hex digest (``md5``/``sha256``) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check(f: FileInfo, path: Path) -> FileCheck:
    if not path.is_file():
        return FileCheck(f.filename, path, "missing", f"{path} is missing")
    size = path.stat().st_size
    if f.size and size != f.size:
        return FileCheck(f.filename, path, "mismatch", f"{path}: {size} bytes, expected {f.size}")
    if not f.algo:
        return FileCheck(f.filename, path, "unverified", f"{path}: present, no published checksum")
    got = file_digest(path, f.algo)
    if got != f.checksum:
        return FileCheck(f.filename, path, "mismatch", f"{path}: {f.algo} {got}, expected {f.checksum}")
    return FileCheck(f.filename, path, "ok", f"{path}: {f.algo} ok")


def verify(info: DatasetInfo, data_dir: str | Path | None = None) -> list[FileCheck]:
    """Check every file of ``info`` in ``<data-dir>/<name>/`` against its size and published
    checksum. Embedded datasets have no files: the list is empty."""
    root = dataset_dir(info.name, data_dir)
    return [_check(f, root / f.filename) for f in info.files]


# ----------------------------------------------------------------------------- safe extraction
def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _check_member_name(archive: Path, name: str, root: Path) -> None:
    """Refuse absolute paths, drive letters, ``..`` parts and anything resolving outside."""
    norm = name.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in parts:
        raise DatasetError(f"refusing to extract {archive.name}: unsafe member path {name!r}")
    if not _inside(root, root / norm):
        raise DatasetError(f"refusing to extract {archive.name}: member {name!r} escapes {root}")


def _check_link(archive: Path, name: str, target: str, root: Path, hard: bool) -> None:
    """A symlink's target is relative to the member's folder, a hard link's to the archive
    root; either must stay inside ``root``."""
    norm = target.replace("\\", "/")
    base = root if hard else (root / posixpath.dirname(name.replace("\\", "/")))
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or not _inside(root, base / norm):
        kind = "hard link" if hard else "symlink"
        raise DatasetError(f"refusing to extract {archive.name}: {kind} {name!r} -> {target!r} points outside {root}")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar (any compression) or zip archive into ``dest`` after checking every
    member (see the module docstring). Nothing is written when a member is refused."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for zi in zf.infolist():
                _check_member_name(archive, zi.filename, root)
                if stat.S_ISLNK(zi.external_attr >> 16):
                    # zipfile writes a link as a file holding its target, but refuse
                    # escaping ones anyway: another tool might honour them.
                    _check_link(archive, zi.filename, zf.read(zi).decode("utf-8", "replace"), root, hard=False)
            zf.extractall(root)
        return
    try:
        tf = tarfile.open(archive)  # compression is detected from the content
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{archive} is neither a zip nor a tar archive ({exc})") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(archive, m.name, root)
            if m.issym():
                _check_link(archive, m.name, m.linkname, root, hard=False)
            elif m.islnk():
                _check_link(archive, m.name, m.linkname, root, hard=True)
            elif not (m.isfile() or m.isdir()):
                raise DatasetError(f"refusing to extract {archive.name}: special member {m.name!r} (device or fifo)")
        if hasattr(tarfile, "data_filter"):  # Python 3.12, 3.11.4+, 3.10.12+
            tf.extractall(root, members=members, filter="data")
        else:  # pragma: no cover - old Pythons: the explicit checks above are the guard
            tf.extractall(root, members=members)


# ----------------------------------------------------------------------------- download
def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def _content_range_start(header: str | None) -> int | None:
    """``bytes 100-999/1000`` -> 100."""
    if not header or not header.startswith("bytes "):
        return None
    try:
        return int(header[6:].split("-", 1)[0])
    except ValueError:
        return None


def _fetch(url: str, part: Path, label: str, progress, timeout: float) -> None:
    """Stream ``url`` into ``part``, resuming from its current length. Network errors
    propagate as ``OSError``/``urllib.error.URLError`` (the caller words them)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Range not satisfiable: the .part is already complete (or longer than the
            # file); the checksum decides, and a bad one deletes it.
            return
        raise
    with resp:
        status = resp.status
        start = _content_range_start(resp.headers.get("Content-Range")) if status == 206 else None
        if status == 206 and start == have:
            mode = "ab"
        elif status == 206 and start != 0:
            # A range we did not ask for: never splice mismatched bytes; restart next try.
            part.unlink(missing_ok=True)
            raise urllib.error.URLError(f"server answered bytes from {start}, asked from {have}")
        else:
            # 200: the server ignored Range -- start over from byte 0.
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        task = progress.add_task(label, total=total, completed=have) if progress is not None else None
        with open(part, mode) as out:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                if task is not None:
                    progress.advance(task, len(block))
    if total is not None and part.stat().st_size != total:
        raise urllib.error.URLError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _download_file(info: DatasetInfo, f: FileInfo, root: Path, progress, timeout: float) -> Path:
    final = root / f.filename
    if final.exists():
        check = _check(f, final)
        if check.status in ("ok", "unverified"):
            return final
        raise DatasetError(f"{check.message}; delete it and run `cvloss datasets download {info.name}` again")
    part = root / (f.filename + ".part")
    errors: list[str] = []
    for url in f.sources:
        try:
            _fetch(url, part, f.filename, progress, timeout)
            break
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = " ".join(str(getattr(exc, "reason", None) or exc).split())  # one line
            errors.append(f"{url} ({reason})")
    else:
        raise DatasetError(
            f"cannot download {f.filename} of '{info.name}' from {'; '.join(errors)}; fetch it by hand "
            f"and place it at {final} -- `cvloss datasets download {info.name}` then verifies and extracts it"
        )
    check = _check(f, part)
    if check.status == "mismatch":
        part.unlink()  # a corrupt file must not be resumed next time
        raise DatasetError(f"downloaded {f.filename} of '{info.name}' is corrupt: {check.message} (deleted; retry)")
    os.replace(part, final)
    return final


def download(info: DatasetInfo, data_dir: str | Path | None = None, progress: bool = False,
             *, timeout: float = TIMEOUT_S) -> Path:
    """Fetch, verify and extract every file of ``info`` into ``<data-dir>/<name>/``.

    Idempotent: verified files are not fetched again and extracted archives (marker
    ``.extracted-<filename>``) are not extracted again. ``progress=True`` draws a rich bar
    on stderr (the CLI passes ``sys.stderr.isatty()``). Embedded datasets: nothing to do.
    Returns the dataset folder. Raises :class:`DatasetError` (one line) on any failure.
    """
    root = dataset_dir(info.name, data_dir)
    if info.embedded or not info.files:
        return root
    root.mkdir(parents=True, exist_ok=True)
    bar = _progress_bar(progress)
    try:
        if bar is not None:
            bar.start()
        for f in info.files:
            path = _download_file(info, f, root, bar, timeout)
            marker = root / f".extracted-{f.filename}"
            if f.is_archive and not marker.exists():
                try:
                    safe_extract(path, root)
                except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
                    raise DatasetError(f"cannot extract {path}: {exc}") from None
                marker.write_text(f"{f.algo} {f.checksum}\n")
    finally:
        if bar is not None:
            bar.stop()
    return root
