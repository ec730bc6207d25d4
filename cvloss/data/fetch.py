"""Download, verify and safely extract the archives of a catalog dataset. For every file
of ``info.files`` (URL and checksum only from ``datasets.toml``; http(s) only, no redirect
elsewhere; into :func:`cvloss.data.registry.dataset_dir`):

1. a file already in ``<data-dir>/<name>/`` is verified, with no network;
2. else it is streamed into ``<filename>.part`` (resumed with HTTP ``Range``), stopped and
   deleted past a cap: its recorded ``size``, else 2 × the dataset's ``size_bytes``
   (``CVLOSS_MAX_DOWNLOAD_BYTES`` replaces it);
3. md5/sha256 verified as published, or trusted on first use (``.tofu.json``);
4. archives extracted by :func:`cvloss.data.archive.safe_extract` through a staging folder;
   the marker ``.extracted-<filename>`` is written last.

An unreachable URL is one line: the URL, the reason, and the path where a manually
fetched file is picked up. Details: ``docs/data.md``, "Download and verification".
"""
from __future__ import annotations

import datetime
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cvloss import __version__
from cvloss.data.archive import file_digest, safe_extract, write_atomic
from cvloss.data.registry import (URL_SCHEMES, DatasetInfo, FileInfo, dataset_dir, extraction_marker,
                                  missing_layout, presence_problem)
from cvloss.data.types import DatasetError
from cvloss.settings import env_number

__all__ = ["FileCheck", "download", "verify", "file_digest", "safe_extract", "TOFU_FILE", "DOWNLOAD_ENV"]

CHUNK = 1 << 20
TIMEOUT_S = 30.0
TOFU_FILE = ".tofu.json"
DOWNLOAD_ENV = "CVLOSS_MAX_DOWNLOAD_BYTES"
_USER_AGENT = f"cvloss/{__version__} (+https://github.com/; dataset fetcher)"


@dataclass(frozen=True)
class FileCheck:
    """Result of verifying one file of a dataset.

    status: ``"ok"`` (published checksum matches), ``"trusted-on-first-use"`` (no checksum
    is published; the sha256 matches the first download's, recorded in ``.tofu.json``),
    ``"unverified"`` (present, no published checksum and no record yet: the next
    ``download`` records one), ``"missing"`` or ``"mismatch"``.
    """

    filename: str
    path: Path
    status: Literal["ok", "trusted-on-first-use", "unverified", "missing", "mismatch"]
    message: str


# ----------------------------------------------------------------------------- trust on first use
def _tofu_read(root: Path) -> dict[str, dict]:
    """``{filename: {"sha256", "size", "url", "recorded"}}`` from ``<root>/.tofu.json``."""
    path = root / TOFU_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is unreadable ({exc}); delete it to trust the next download") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                             for v in data.values()):
        raise DatasetError(f"{path} is not a trust-on-first-use record; delete it to trust the next download")
    return data


def _tofu_record(root: Path, f: FileInfo, path: Path, url: str) -> None:
    records = _tofu_read(root)
    records[f.filename] = {
        "sha256": file_digest(path, "sha256"), "size": path.stat().st_size, "url": url,
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(root / TOFU_FILE, json.dumps(records, indent=1, sort_keys=True) + "\n")


def _check(f: FileInfo, path: Path, tofu: dict[str, dict]) -> FileCheck:
    if not path.is_file():
        return FileCheck(f.filename, path, "missing", f"{path} is missing")
    size = path.stat().st_size
    if f.size and size != f.size:
        return FileCheck(f.filename, path, "mismatch", f"{path}: {size} bytes, expected {f.size}")
    if f.algo:
        got = file_digest(path, f.algo)
        if got != f.checksum:
            return FileCheck(f.filename, path, "mismatch", f"{path}: {f.algo} {got}, expected {f.checksum}")
        return FileCheck(f.filename, path, "ok", f"{path}: {f.algo} ok")
    record = tofu.get(f.filename)
    if record is None:
        return FileCheck(f.filename, path, "unverified",
                         f"{path}: present, no published checksum and no first-download record yet")
    got = file_digest(path, "sha256")
    where = f"{path.parent / TOFU_FILE} ({record.get('recorded', '?')})"
    if got != record["sha256"]:
        return FileCheck(f.filename, path, "mismatch",
                         f"{path}: sha256 {got} differs from the first download's {record['sha256']}, recorded in {where}")
    return FileCheck(f.filename, path, "trusted-on-first-use",
                     f"{path}: sha256 matches the first download, recorded in {where}; no published checksum")


def verify(info: DatasetInfo, data_dir: str | Path | None = None) -> list[FileCheck]:
    """Check every file of ``info`` in ``<data-dir>/<name>/`` against its size and published
    checksum, or its first-download record. Embedded datasets have no files: the list is
    empty. Whether the dataset is completely extracted is
    :func:`cvloss.data.registry.presence_problem`'s answer.

    No dataset folder at all (never downloaded, or a mistyped ``--data-dir``) is not a
    verification finding but a wrong place: :class:`DatasetError`, one line saying where
    it looked and what to run; nothing is created."""
    root = dataset_dir(info.name, data_dir)
    if not (info.embedded or info.root is not None or root.is_dir()):
        todo = f"run `cvloss datasets download {info.name}`" if info.files else "place its files there"
        raise DatasetError(f"nothing to verify: dataset '{info.name}' has no folder {root}; {todo} "
                           f"(add --data-dir if you keep datasets elsewhere)")
    tofu = _tofu_read(root)
    return [_check(f, root / f.filename, tofu) for f in info.files]


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


class _TooLarge(Exception):
    """The server sent (or announced) more than the download cap."""


def download_cap(info: DatasetInfo, f: FileInfo) -> tuple[int, str]:
    """``(bytes, why)``: a download of ``f`` stops after that many bytes --
    ``$CVLOSS_MAX_DOWNLOAD_BYTES`` if set, else the file's recorded size, else 2 x the
    dataset's ``size_bytes``."""
    cap = env_number(DOWNLOAD_ENV, None, int, unit="bytes")
    if cap is not None:
        return cap, f"{DOWNLOAD_ENV}"
    if f.size:
        return f.size, "its recorded size"
    return 2 * info.size_bytes, "2 x the dataset's size_bytes; its own size is not recorded"


def _fetch(url: str, part: Path, label: str, progress, timeout: float, cap: int) -> None:
    """Stream ``url`` into ``part``, resuming from its current length, never past ``cap``
    bytes (:class:`_TooLarge`). Network errors propagate as ``OSError``/
    ``urllib.error.URLError`` (the caller words them)."""
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
        # The catalog's URLs are http(s) (checked when it is read); a redirect must not
        # take the download elsewhere (urllib follows http -> ftp): nothing is read then.
        landed = urllib.parse.urlsplit(resp.geturl() or url).scheme.lower()
        if landed not in URL_SCHEMES:
            raise urllib.error.URLError(f"redirected to a {landed}:// URL; cvloss downloads over http(s) only")
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
        if total is not None and total > cap:
            raise _TooLarge(f"announced {total:,} bytes, more than the cap of {cap:,} bytes")
        task = progress.add_task(label, total=total, completed=have) if progress is not None else None
        with open(part, mode) as out:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                have += len(block)
                if have > cap:
                    raise _TooLarge(f"sent more than the cap of {cap:,} bytes")
                out.write(block)
                if task is not None:
                    progress.advance(task, len(block))
    if total is not None and part.stat().st_size != total:
        raise urllib.error.URLError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _download_file(info: DatasetInfo, f: FileInfo, root: Path, progress, timeout: float) -> tuple[Path, str | None]:
    """``(path, source)``: the verified file, and where it came from when it is to be
    trusted on first use (recorded by the caller once the file proved usable), else None."""
    final = root / f.filename
    tofu = _tofu_read(root)
    if final.exists():
        check = _check(f, final, tofu)
        if check.status in ("ok", "unverified", "trusted-on-first-use"):
            # unverified: placed by hand, or downloaded by an older cvloss
            return final, "(found on disk)" if check.status == "unverified" else None
        raise DatasetError(f"{check.message}; delete it and run `cvloss datasets download {info.name}` again")
    part = root / (f.filename + ".part")
    cap, why = download_cap(info, f)
    errors: list[str] = []
    for url in f.sources:
        try:
            _fetch(url, part, f.filename, progress, timeout, cap)
            break
        except _TooLarge as exc:
            part.unlink(missing_ok=True)
            raise DatasetError(
                f"refusing {f.filename} of '{info.name}' from {url}: the server {exc} ({why}); "
                f"deleted the partial file; if the file is genuine, raise {DOWNLOAD_ENV}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = " ".join(str(getattr(exc, "reason", None) or exc).split())  # one line
            errors.append(f"{url} ({reason})")
    else:
        raise DatasetError(
            f"cannot download {f.filename} of '{info.name}' from {'; '.join(errors)}; fetch it by hand "
            f"and place it at {final} -- `cvloss datasets download {info.name}` then verifies and extracts it"
        )
    check = _check(f, part, tofu)
    if check.status == "mismatch":
        part.unlink()  # a corrupt file must not be resumed next time
        hint = "; if the source really changed it, delete that record" if not f.algo else ""
        raise DatasetError(f"downloaded {f.filename} of '{info.name}' is corrupt: {check.message} (deleted; retry{hint})")
    os.replace(part, final)
    return final, url if check.status == "unverified" else None


def _own_name(info: DatasetInfo, top: str) -> bool:
    """Top-level names an archive may not write: cvloss's markers, records, staging
    folders and the dataset's downloads."""
    own = {TOFU_FILE, *(f.filename for f in info.files), *(f.filename + ".part" for f in info.files)}
    return top in own or top.startswith(".extracted-") or top.endswith(".extracting")


def download(info: DatasetInfo, data_dir: str | Path | None = None, progress: bool = False,
             *, timeout: float = TIMEOUT_S) -> Path:
    """Fetch, verify and extract every file of ``info`` into ``<data-dir>/<name>/``.

    Idempotent: verified files are not fetched again and extracted archives (marker
    ``.extracted-<filename>``) are not extracted again -- unless the layout is still
    missing after that, then every archive is extracted again (once). ``progress=True``
    draws a rich bar on stderr (the CLI passes ``sys.stderr.isatty()``). Embedded
    datasets: nothing to do. Returns the dataset folder. Raises :class:`DatasetError`
    (one line) on any failure, and when the extracted files still lack the layout.
    """
    root = dataset_dir(info.name, data_dir)
    if info.embedded or not info.files:
        return root
    root.mkdir(parents=True, exist_ok=True)
    bar = _progress_bar(progress)
    extracted: set[str] = set()
    try:
        if bar is not None:
            bar.start()
        for f in info.files:
            path, source = _download_file(info, f, root, bar, timeout)
            if f.is_archive and not extraction_marker(root, f.filename).exists():
                _extract(info, f, path, root)
                extracted.add(f.filename)
            if source is not None:  # only an archive that extracted safely is worth trusting
                _tofu_record(root, f, path, source)
    finally:
        if bar is not None:
            bar.stop()
    if missing_layout(info, root):  # marked archives whose files were moved or deleted since
        for f in info.files:
            if f.is_archive and f.filename not in extracted:
                _extract(info, f, root / f.filename, root)
    if presence_problem(info, data_dir) is not None:
        raise DatasetError(f"downloaded and extracted every file of '{info.name}', but {root} still lacks "
                           f"{', '.join(missing_layout(info, root))}: the archives do not hold the catalog's layout")
    return root


def _extract(info: DatasetInfo, f: FileInfo, path: Path, root: Path) -> None:
    marker = extraction_marker(root, f.filename)
    marker.unlink(missing_ok=True)
    safe_extract(path, root, marker=marker, reserved=lambda top: _own_name(info, top))
