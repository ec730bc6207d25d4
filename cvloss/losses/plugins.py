"""Plugin losses: losses of other packages in the registry, in specs and in ``losses list``.

Two routes, one decorator (:func:`~cvloss.losses.registry.register_loss`):

* entry points of the group :data:`ENTRY_POINT_GROUP` (``cvloss.losses``), each naming a
  module whose import registers losses, imported lazily once per process the first time
  the registry is read; a failure is a :class:`PluginWarning` and its losses are absent;
* :func:`load_plugins` (``--plugin MODULE``): dotted names or ``.py`` paths; a failure is
  a :class:`PluginError` (one line, exit 2).

A plugin that registers a taken name is refused whole; a module is imported at most once
per process. :func:`plugin_provenance` describes each plugin loaded (module, distribution,
version, sha256 of its sources, its losses) for the trial record.
The ``pyproject.toml`` declaration and the rules' reasons: ``docs/losses.md``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError
from cvloss.losses import registry

ENTRY_POINT_GROUP = "cvloss.losses"

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "PluginWarning", "load_entry_points", "load_plugins",
           "plugin_provenance"]


class PluginError(UsageError):
    """A ``--plugin`` module that cannot be imported or registers a taken name."""


class PluginWarning(UserWarning):
    """An installed (entry-point) plugin that was skipped; the message says why."""


@dataclass
class _Plugin:
    """One loaded plugin (see :func:`plugin_provenance` for the fields' meaning)."""

    module: str
    kind: str  # "entry-point", "module" or "file"
    label: str  # how ``losses list`` names it: "mypkg 0.1", "mylosses.py"
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    losses: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """sha256 over the sorted (relative name, file sha256) pairs: one hash of the code."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}\0{self.files[name]}\n".encode())
        return h.hexdigest()


_LOADED: dict[str, _Plugin] = {}  # key: module name, or the resolved path of a .py file
_STATE: dict[str, Any] = {"entry_points": False}  # the sys.path the entry points were read for


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_one_line(exc)}" if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------- importing one plugin
class _Refused(Exception):
    """Why a plugin was not loaded (one line); the caller makes it an error or a warning."""


def _import_registering(label: str, module_name: str, do_import) -> tuple[Any, tuple[str, ...]]:
    """Run ``do_import()`` with ``label`` as the registering plugin; return (module,
    names it registered). On any failure the registry and ``sys.modules[module_name]``
    are as before and :class:`_Refused` says why."""
    before = dict(registry._REGISTRY)
    had_module = module_name in sys.modules
    registry._PLUGIN_CONTEXT.append(label)
    try:
        module = do_import()
    except registry.DuplicateLossError as exc:
        reason = f"registers loss {exc.name!r}, which {exc.holder.origin} already registers; rename it"
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
        reason = f"cannot be imported: {_describe(exc)}"
    else:
        names = tuple(n for n in registry._REGISTRY if n not in before)
        if not names and not had_module:  # e.g. the package named instead of its module of losses
            warnings.warn(f"plugin {label} registered no loss: is it the module whose classes carry @register_loss?",
                          PluginWarning, stacklevel=4)
        return module, names
    finally:
        registry._PLUGIN_CONTEXT.pop()
    # Refused whole: none of its losses stays, and a later attempt imports it afresh.
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    if not had_module:
        sys.modules.pop(module_name, None)
    raise _Refused(reason)


def _module_files(module: Any, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 of the plugin's source: the module's file (every ``.py`` of it when it is a
    package) and the files that define the loss classes it registered, named relative to
    the folder the module was imported from (so the hash does not depend on where the
    package is installed)."""
    files: set[Path] = set()
    main = getattr(module, "__file__", None)
    root: Path | None = None
    if main:
        main_path = Path(main).resolve()
        depth = module.__name__.count(".") + (1 if main_path.name == "__init__.py" else 0)
        root = main_path.parents[depth] if depth < len(main_path.parents) else main_path.parent
        if main_path.name == "__init__.py":
            files.update(p.resolve() for p in main_path.parent.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.add(main_path)
    for name in names:
        try:
            src = inspect.getsourcefile(registry._REGISTRY[name].cls)
        except TypeError:  # a class built at run time has no file
            src = None
        if src:
            files.add(Path(src).resolve())
    out = {}
    for path in files:
        try:
            rel = path.relative_to(root).as_posix() if root is not None else path.name
        except ValueError:
            rel = path.as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    """(distribution name, version) of the installed distribution that provides the
    top-level package of ``module_name``, or (None, None) for a bare module."""
    top = module_name.split(".")[0]
    try:
        dists = importlib.metadata.packages_distributions().get(top, [])
    except Exception:  # pragma: no cover - broken metadata elsewhere must not block a plugin
        return None, None
    if len(set(dists)) != 1:
        return None, None  # none, or ambiguous: claim nothing
    name = dists[0]
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return name, None


# ---------------------------------------------------------------- entry points
def load_entry_points() -> None:
    """Import every ``cvloss.losses`` entry point not imported yet: on the first read, and
    again only when ``sys.path`` changed since (a folder added brings its ``*.dist-info``;
    later calls return at once). A plugin that fails to import, or registers a taken
    name, is skipped with one :class:`PluginWarning` line naming it and the reason."""
    path = tuple(sys.path)
    if _STATE["entry_points"] == path:
        return
    _STATE["entry_points"] = path  # first: a plugin that reads the registry must not recurse
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # pragma: no cover - unreadable metadata of some distribution
        warnings.warn(f"cannot read the {ENTRY_POINT_GROUP!r} entry points: {_describe(exc)}", PluginWarning, stacklevel=2)
        return
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        _load_entry_point(ep)


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    dist = getattr(ep, "dist", None)
    dist_name = dist.metadata["Name"] if dist is not None else None
    version = dist.version if dist is not None else None
    module_name = ep.module
    if module_name in _LOADED:
        return
    label = f"{dist_name} {version}" if dist_name else ep.name
    where = f"{ep.name} = {ep.value}"
    def do_import():
        ep.load()  # imports the module (and resolves an ``:attr`` if the value has one)
        return sys.modules[module_name]

    try:
        module, names = _import_registering(label, module_name, do_import)
    except _Refused as exc:
        owner = f" of {dist_name} {version}" if dist_name else ""
        warnings.warn(f"plugin {ep.name!r} (entry point '{where}'{owner}) {exc}; its losses are not available",
                      PluginWarning, stacklevel=3)
        return
    _LOADED[module_name] = _Plugin(module_name, "entry-point", label, dist_name, version, where,
                                   _module_files(module, names), names)


registry._ON_READ.append(load_entry_points)  # lazily: the first read of the registry loads them


# ---------------------------------------------------------------- --plugin modules
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _is_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or "\\" in text


def load_plugins(modules: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Import plugin modules (``--plugin``), in order, each at most once per process.

    Each item is a dotted module name importable from ``sys.path`` (``mylosses``,
    ``mypkg.losses``) or a path to a ``.py`` file (``./mylosses.py``; imported under a
    name derived from its resolved path, so classes defined there have the same
    ``__module__`` in every process). Call it with the same list in a worker process to
    get the same registry. Entry-point plugins are loaded first (lazily, as always).

    Returns :func:`plugin_provenance` of the plugins named. Raises :class:`PluginError`
    (one line) for a module that cannot be found or imported, or that registers a loss
    name already taken; nothing of that module stays registered.
    """
    registry._ensure_loaded()
    keys = []
    for item in modules:
        text = str(item).strip()
        if not text:
            raise PluginError("--plugin needs a module name (mypkg.losses) or a path to a .py file")
        keys.append(_load_file(text) if _is_path(text) else _load_module(text))
    return [_record(_LOADED[k]) for k in keys]


def _load_module(name: str) -> str:
    if name in _LOADED:
        return name
    if not _DOTTED.fullmatch(name):
        raise PluginError(f"--plugin {name}: not a module name (mypkg.losses) nor a path to a .py file")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that is missing or broken
        found = None
    if found is None:
        raise PluginError(f"--plugin {name}: no module named {name!r} on sys.path (add its folder to PYTHONPATH, "
                          f"or give the path of its .py file)")
    dist, version = _distribution_of(name)
    label = f"{dist} {version}" if dist else name
    try:
        module, names = _import_registering(label, name, lambda: importlib.import_module(name))
    except _Refused as exc:
        raise PluginError(f"--plugin {name}: the plugin {exc}") from None
    _LOADED[name] = _Plugin(name, "module", label, dist, version, None, _module_files(module, names), names)
    return name


def _load_file(text: str) -> str:
    path = Path(text).expanduser().resolve()
    key = str(path)
    if key in _LOADED:
        return key
    if path.suffix != ".py":
        raise PluginError(f"--plugin {text}: not a .py file (a plugin is Python source, or a module name)")
    if not path.is_file():
        raise PluginError(f"--plugin {text}: no such .py file")
    # A name no other module has, the same for the same file in every process.
    module_name = "cvloss_plugin_" + re.sub(r"\W", "_", path.stem) + "_" + hashlib.sha1(key.encode()).hexdigest()[:8]

    def do_import():
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before exec: dataclasses and pickling look it up
        spec.loader.exec_module(module)
        return module

    try:
        module, names = _import_registering(path.name, module_name, do_import)
    except _Refused as exc:
        raise PluginError(f"--plugin {text}: the plugin {exc}") from None
    _LOADED[key] = _Plugin(key, "file", path.name, None, None, None, _module_files(module, names), names)
    return key


# ---------------------------------------------------------------- provenance
def _record(p: _Plugin) -> dict[str, Any]:
    return {"module": p.module, "kind": p.kind, "entry_point": p.entry_point, "distribution": p.distribution,
            "version": p.version, "sha256": p.sha256, "files": dict(sorted(p.files.items())), "losses": list(p.losses)}


def plugin_provenance() -> list[dict[str, Any]]:
    """Every plugin loaded in this process, in load order, as JSON-ready dicts:

    * ``module``: the module name, or the resolved path of a ``.py`` file;
    * ``kind``: ``entry-point``, ``module`` or ``file``; ``entry_point``: ``"name = value"``
      for an entry point, else ``None``;
    * ``distribution``, ``version``: the installed distribution that provides it, or
      ``None`` for a bare module or file;
    * ``sha256``: one hash over its source files (``files``: relative name -> sha256 of
      the bytes); ``losses``: the names it registered.

    ``load_plugins([r["module"] for r in records if r["kind"] != "entry-point"])`` in
    another process loads the same ``--plugin`` modules (entry points load by themselves).
    """
    return [_record(p) for p in _LOADED.values()]
