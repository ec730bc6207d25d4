"""Decoded datasets and per-image derived maps, cached on disk and shared by every trial.

:func:`cached_load` keeps each loader's result as ``<cache dir>/<split>-<key>.pt``, where
:func:`cache_dir` is ``<dataset root>/.cvloss-cache/`` for a folder cvloss made and may
write (:func:`can_write`), else ``<cache home>/decoded/<folder>-<12 hex>/`` under
:func:`cache_home` (``$CVLOSS_CACHE``, ``$XDG_CACHE_HOME/cvloss``, the user cache dir): a
folder cvloss did not make is never written into. ``key`` hashes the dataset, the loader
and its module's source, :mod:`cvloss.data.types`, the split, the loader's arguments and a
download's mtime; :func:`cached_tensor` does the same for a tensor derived from data.

Files are written atomically under an exclusive ``flock`` (one process builds, the
others wait and read) and read with ``torch.load(weights_only=True)``; an unreadable file
is rebuilt, an unwritable cache dir means no cache. ``CVLOSS_DATA_CACHE=0`` turns caching
off. The key's parts and the reasons: ``docs/data.md``, "Caches".
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from cvloss.data import types

CACHE_ENV = "CVLOSS_DATA_CACHE"
CACHE_DIR = ".cvloss-cache"
#: the folder of what belongs to no data folder: adoption records, caches of read-only data
HOME_ENV = "CVLOSS_CACHE"
#: ``<cache home>/DATA_SUBDIR/<folder>-<hash>/``: the caches of data folders cvloss does not write
DATA_SUBDIR = "decoded"
_OWN_CACHE = ("oxford-pets",)  # cached by its loader already
_TYPES = ("SegData", "SRData", "TranslateData", "IdentityData", "StylePairs")


def enabled() -> bool:
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_home() -> Path:
    """cvloss's own cache folder (nothing is created here): ``$CVLOSS_CACHE`` if set and
    non-empty, else ``$XDG_CACHE_HOME/cvloss``, else ``platformdirs.user_cache_dir("cvloss")``
    (``~/.cache/cvloss`` on Linux, also the default data dir). It holds the adoption
    records (``adopted/<name>.json``) and the caches of data folders cvloss does not write
    (``decoded/``). Put it on shared storage for a cluster whose nodes must see the records."""
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    xdg = os.path.expanduser(os.environ.get("XDG_CACHE_HOME", "").strip())
    if xdg and os.path.isabs(xdg):  # the XDG spec ignores a relative value
        return Path(xdg) / "cvloss"
    import platformdirs

    return Path(platformdirs.user_cache_dir("cvloss"))


def can_write(folder: str | Path) -> bool:
    """Whether cvloss may write into ``folder`` (or, when it does not exist yet, into its
    nearest existing parent, where it would be made). Read-only when any of: no write bit
    at all in its mode (``chmod a-w``: honoured for root too, whom the kernel lets write
    anyway), ``os.access`` denies writing (owner, group, ACLs), or a read-only mount.
    Nothing is written to find out (a probe file would change the folder's mtime, which
    keys the caches)."""
    p = Path(folder)
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    try:
        st = os.stat(p)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    if not os.access(p, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(p).f_flag & getattr(os, "ST_RDONLY", 1)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return True


def cache_dir(root: str | Path, owned: bool = True) -> Path:
    """Where the caches of the data folder ``root`` go (the one place this is chosen):
    ``<root>/.cvloss-cache`` when ``owned`` (cvloss made the folder: a download, an embedded
    dataset's) and :func:`can_write`, else ``<cache home>/decoded/<name>-<hash>`` with ``hash``
    the first 12 hex of the sha256 of ``root``'s absolute path (two copies of one dataset
    never share a cache; their keys differ anyway)."""
    root = Path(root)
    if owned and can_write(root):
        return root / CACHE_DIR
    where = os.path.abspath(root)
    label = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(where).name)[:60] or "root"
    return cache_home() / DATA_SUBDIR / f"{label}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def source_hash(*objects: Any) -> str:
    """sha256 over the source files of the modules defining ``objects``."""
    h = hashlib.sha256()
    for obj in objects:
        module = sys.modules[obj.__module__] if not inspect.ismodule(obj) else obj
        h.update(Path(inspect.getsourcefile(module)).read_bytes())
    return h.hexdigest()


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:24]


@contextlib.contextmanager
def _exclusive(path: Path):
    """An exclusive lock on ``<path>.lock`` (none where fcntl is missing: Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(path: Path) -> Any | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, another torch's format, refused: rebuild
        return None


def _write(path: Path, payload: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _cached(path: Path, build: Callable[[], Any], encode, decode) -> Any:
    """``decode(file)`` if readable, else ``build()``, written under the lock."""
    if not enabled():
        return build()
    hit = _read(path)
    if hit is not None and (value := decode(hit)) is not None:
        return value
    made = [d for d in (path.parent, path.parent.parent) if not d.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path):
            hit = _read(path)  # another process built it while we waited
            if hit is not None and (value := decode(hit)) is not None:
                return value
            try:
                value = build()
            except BaseException:  # bad data (a DatasetError) or Ctrl-C: leave no trace of us
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
                for d in made:
                    with contextlib.suppress(OSError):
                        d.rmdir()
                raise
            _write(path, encode(value))
            return value
    except OSError:  # read-only or full data folder: work without a cache
        return build()


def _encode_data(value: Any) -> dict[str, Any]:
    return {"type": type(value).__name__, "fields": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}


def _decode_data(payload: Any) -> Any | None:
    if not isinstance(payload, dict) or payload.get("type") not in _TYPES:
        return None
    try:
        return getattr(types, payload["type"])(**payload["fields"])
    except TypeError:  # the fields changed (types.py's hash is in the key; belt and braces)
        return None


def cached_load(name: str, loader: str, fn: Callable[..., Any], root: Path, split: str, kwargs: dict[str, Any],
                real: bool, folder: Path | None = None) -> Any:
    """``fn(root, split, **kwargs)``, through the cache when its result is a dataset type;
    the cache file goes in ``folder`` (default :func:`cache_dir` of ``root``)."""
    if name in _OWN_CACHE or loader.startswith("cvloss.data.folders:"):
        # a user's own folder is theirs: nothing is written into it (it has its fingerprint)
        return fn(root, split, **kwargs)
    parts = {"dataset": name, "loader": loader, "source": source_hash(fn, types), "split": split, "kwargs": kwargs}
    if real:
        parts["root"] = [str(Path(root).resolve()), Path(root).stat().st_mtime_ns]
    path = Path(folder if folder is not None else cache_dir(root)) / f"{split}-{_key(parts)}.pt"
    kind: list[str] = []

    def build():
        value = fn(root, split, **kwargs)
        kind.append(type(value).__name__)
        return value

    def encode(value):
        if type(value).__name__ not in _TYPES:  # e.g. a 2-D mixture: nothing worth caching
            raise _NotCached(value)
        return _encode_data(value)

    try:
        return _cached(path, build, encode, _decode_data)
    except _NotCached as skip:
        return skip.value


class _NotCached(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def cached_tensor(root: Path, name: str, parts: dict[str, Any], data: torch.Tensor,
                  build: Callable[[], torch.Tensor], folder: Path | None = None) -> torch.Tensor:
    """A tensor derived from ``data`` (e.g. one border map per training mask), cached as
    ``<folder>/<name>-<key>.pt`` (``folder``: default :func:`cache_dir` of the data folder
    ``root``); ``key`` covers ``parts`` and the bytes of ``data``, so other images or other
    settings are another file."""
    digest = hashlib.sha256(data.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    key = _key({**parts, "name": name, "data": [digest, list(data.shape), str(data.dtype)]})
    path = Path(folder if folder is not None else cache_dir(root)) / f"{name}-{key}.pt"
    return _cached(path, lambda: build().cpu(), lambda t: t,
                   lambda t: t if isinstance(t, torch.Tensor) else None)
