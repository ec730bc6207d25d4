"""Which code made a trial: the commit, whether that code was edited, and a hash of it.

``trial.json`` records :func:`code_provenance` so a number can be traced to the code that
made it, a trial is never resumed by other code, and a comparison never pools trials of
different code without saying so (:func:`code_key`, ``--allow-mixed``). *Code* is the
package's source, the plugins the trial's loss spec uses (only those) and the torch
version; threads and devices are where a trial ran, recorded but never a reason to refuse
(:func:`run_key`). ``commit`` is ``git rev-parse HEAD`` (None for a wheel); ``dirty`` is
``git status --porcelain`` of ``cvloss/`` and ``pyproject.toml`` only (``results/``
changes while a study runs); ``source_sha256`` hashes the sorted relative paths and bytes
of every ``.py`` and ``.toml`` file of the package. See docs/running.md.
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


def spec_terms(spec: str) -> set[str]:
    """The loss names a spec uses (``"ce+0.1*softiou(k=2)"`` -> ``{"ce", "softiou"}``);
    empty for a spec that does not parse (an old or hand-edited record)."""
    from cvloss.losses.spec import parse_spec

    try:
        return {t.name for t in parse_spec(str(spec))}
    except Exception:  # noqa: BLE001 -- a record's spec is data; no terms is the safe reading
        return set()


def plugins_used(records: list[dict[str, Any]], spec: str | None) -> list[dict[str, Any]]:
    """The plugin records (:func:`cvloss.losses.plugin_provenance`) that registered a loss
    ``spec`` uses; every record when ``spec`` is None."""
    if spec is None:
        return list(records)
    names = spec_terms(spec)
    return [r for r in records if isinstance(r, dict) and names & set(r.get("losses") or ())]


def plugins_hash(records: list[dict[str, Any]]) -> str | None:
    """One hash over the plugins' source hashes, in the order given; None without plugins."""
    if not records:
        return None
    return hashlib.sha256("".join(str(r.get("sha256")) for r in records).encode()).hexdigest()


def code_provenance(spec: str | None = None) -> dict[str, Any]:
    """``{"commit", "dirty", "source_sha256", "plugins_sha256"}`` of the running code (see
    the module doc); ``plugins_sha256`` hashes the sources of the plugins whose losses
    ``spec`` uses (None when it uses none; every loaded plugin when ``spec`` is None), so a
    trial of an edited plugin is not resumed or pooled either. The hashes are recomputed on
    every call (a long-lived process may see edits)."""
    from cvloss.losses import plugin_provenance

    commit, dirty = _git_state()
    joined = plugins_hash(plugins_used(plugin_provenance(), spec))
    return {"commit": commit, "dirty": dirty, "source_sha256": source_sha256(), "plugins_sha256": joined}


def _short_code(source: Any, plugins: Any) -> str:
    text = str(source or "unrecorded")[:12]
    return text + (f"+plugins {str(plugins)[:8]}" if plugins else "")


def current_code_key(spec: str) -> tuple[str, str]:
    """:func:`code_key` of a trial of ``spec`` that this process would start now."""
    import torch

    code = code_provenance(spec)
    return (_short_code(code["source_sha256"], code["plugins_sha256"]), torch.__version__)


def code_key(info: dict[str, Any]) -> tuple[str, str]:
    """The code that made a trial, from its ``trial.json``: (source hash + the hash of the
    plugins its spec uses, torch version). Trials of one comparison must share it. For a
    trial.json written before only the used plugins were hashed, the used ones are picked
    from its ``plugins`` records by the recorded spec, so such a built-in trial reads as
    made without plugins."""
    code = info.get("code") if isinstance(info.get("code"), dict) else {}
    versions = info.get("versions") if isinstance(info.get("versions"), dict) else {}
    plugins = code.get("plugins_sha256")
    records = info.get("plugins")
    cfg = info.get("config") if isinstance(info.get("config"), dict) else {}
    if plugins and isinstance(records, list) and records and isinstance(cfg.get("loss"), str):
        plugins = plugins_hash(plugins_used(records, cfg["loss"]))
    return (_short_code(code.get("source_sha256"), plugins), str(versions.get("torch", "unrecorded")))


def run_key(info: dict[str, Any]) -> tuple[str, str]:
    """Where a trial ran, from its ``trial.json``: (CPU thread count, device); shown, not
    a reason to refuse."""
    return (str(info.get("threads", "unrecorded")), str(info.get("device", "unrecorded")))
