"""One small registry class for every kind of named, pluggable thing (executors, tasks,
report views, plugin datasets, folder layouts).

A :class:`Registry` maps names to objects. An entry is either the object itself or a
lazy reference ``"package.module:attribute"``, imported the first time it is asked for,
so listing names (``--help``, an error message) imports nothing heavy. Installed
packages add entries through an entry-point group (``[project.entry-points."<group>"]``
in their ``pyproject.toml``), also loaded only when asked for, and read again when
``sys.path`` changes. An unknown name is one :class:`~cvloss.errors.UsageError` line
listing the valid ones, the refusal every registry gives the same way.

This module is in the ground layer: it imports nothing of cvloss but its errors.
"""
from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from typing import Any, Generic, Iterator, TypeVar

from cvloss.errors import UsageError

T = TypeVar("T")


def resolve_reference(ref: str) -> Any:
    """``"package.module:attr.sub"`` -> that object (imported now)."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names -> objects of one kind.

    ``kind`` names the kind in messages (``executor``); ``option`` is how the user
    gives a name (``--executor``), used in the unknown-name line; ``group`` is the
    entry-point group installed packages register in (None: built-ins only).
    """

    def __init__(self, kind: str, group: str | None = None, option: str | None = None) -> None:
        self.kind, self.group, self.option = kind, group, option or kind
        self._entries: dict[str, T | str] = {}
        self._plugins: dict[str, Any] = {}  # name -> EntryPoint, as read for ``_path``
        self._path: tuple[str, ...] | None = None  # the sys.path the entry points were read for
        self._loaded: dict[str, tuple[str, T]] = {}  # name -> (entry point value, object) loaded so far

    # ------------------------------------------------------------------ filling
    def register(self, name: str, obj: T | str | None = None) -> Any:
        """Add ``obj`` (or a ``"module:attr"`` reference) under ``name``; without
        ``obj``, a decorator. Registering an equal object again is a no-op (a module
        imported twice); another object under a taken name is a programming error."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")

        def add(value: T | str) -> T | str:
            if name in self._entries and self._entries[name] == value:
                return value
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def _entry_points(self) -> dict[str, Any]:
        """The group's entry points by name (a name that clashes with a built-in is the
        built-in's). Read again whenever ``sys.path`` changed since the last read: a
        folder added to it (a test's, a notebook's) brings its ``*.dist-info`` along."""
        path = tuple(sys.path)
        if self._path != path:
            self._path, self._plugins = path, {}
            if self.group is not None:
                for ep in entry_points(group=self.group):
                    self._plugins.setdefault(ep.name, ep)
        return self._plugins

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Built-in names in registration order, then the installed plugins' (sorted)."""
        extra = sorted(n for n in self._entry_points() if n not in self._entries)
        return [*self._entries, *extra]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown(self, name: str) -> UsageError:
        """The one line an unknown name gets."""
        return UsageError(f"unknown {self.option} {name!r}; valid: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        """The object registered under ``name`` (a reference or an entry point imported
        now); an unknown name raises :meth:`unknown`'s UsageError."""
        if name in self._entries:
            value = self._entries[name]
            if isinstance(value, str):
                value = self._entries[name] = resolve_reference(value)
            return value  # type: ignore[return-value]
        ep = self._entry_points().get(name)
        if ep is None:
            raise self.unknown(name)
        if name in self._loaded and self._loaded[name][0] == ep.value:
            return self._loaded[name][1]
        try:
            value = ep.load()
        except Exception as exc:  # a broken plugin is the user's environment, said in one line
            raise UsageError(f"{self.kind} {name!r} from the installed package entry point {ep.value!r} "
                             f"cannot be loaded: {type(exc).__name__}: {exc}") from None
        self._loaded[name] = (ep.value, value)
        return value
