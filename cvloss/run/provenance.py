"""Which code made a trial: the commit, whether that code was edited, and a hash of it.

``trial.json`` records :func:`code_provenance` so a number can be traced to the code that
made it, a trial is never resumed by other code, and a comparison never pools trials of
different code, torch versions or thread counts without saying so (:func:`pool_key`,
``--allow-mixed``).

* ``commit``: ``git rev-parse HEAD`` of the checkout the package was imported from, or
  None for an installed wheel (then the source hash alone identifies the code);
* ``dirty``: ``git status --porcelain`` of the package (``cvloss/``, which holds
  ``datasets.toml``) and ``pyproject.toml`` only -- not of the whole tree, since
  ``results/`` is tracked and changes while a study runs;
* ``source_sha256``: sha256 over the sorted relative paths and bytes of every ``.py`` and
  ``.toml`` file of the package: the same for a checkout and the wheel built from it, and
  different as soon as one line of the code that trains or scores changes.
"""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../cvloss
SOURCE_SUFFIXES = (".py", ".toml")


def source_sha256(root: Path = PACKAGE_DIR) -> str:
    """sha256 of the package's source files (relative path, NUL, bytes, NUL; sorted)."""
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()
                   and "__pycache__" not in p.parts)
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _git(*args: str, cwd: Path = PACKAGE_DIR) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str | None, bool | None]:
    top = _git("rev-parse", "--show-toplevel")
    if top is None or PACKAGE_DIR.parent != Path(top.strip()).resolve():
        return None, None  # not a checkout of this project (an installed wheel)
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    status = _git("status", "--porcelain", "--", "cvloss", "pyproject.toml", cwd=PACKAGE_DIR.parent)
    return commit, None if status is None else bool(status.strip())


def code_provenance() -> dict[str, Any]:
    """``{"commit", "dirty", "source_sha256", "plugins_sha256"}`` of the running code (see
    the module doc); ``plugins_sha256`` hashes the loaded plugin losses' sources (None
    without plugins), so a trial of an edited plugin is not resumed or pooled either. The
    hashes are recomputed on every call (a long-lived process may see edits)."""
    from cvloss.losses import plugin_provenance

    commit, dirty = _git_state()
    plugins = plugin_provenance()
    joined = hashlib.sha256("".join(p["sha256"] for p in plugins).encode()).hexdigest() if plugins else None
    return {"commit": commit, "dirty": dirty, "source_sha256": source_sha256(), "plugins_sha256": joined}


def pool_key(info: dict[str, Any]) -> tuple[str, str, str]:
    """What trials pooled in one table must share, from a ``trial.json``: the source hash,
    the torch version and the CPU thread count (a thread count changes float reduction
    order, and with it the numbers)."""
    code = info.get("code") if isinstance(info.get("code"), dict) else {}
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    source = str(code.get("source_sha256", "unrecorded"))[:12]
    if code.get("plugins_sha256"):
        source += "+plugins " + str(code["plugins_sha256"])[:8]
    return (source, str(versions.get("torch", "unrecorded")), str(info.get("threads", "unrecorded")))
