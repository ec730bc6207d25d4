"""The generic Registry of the ground layer: names in order, lazy references imported
only when asked for, installed entry points, and one refusal line for an unknown name."""
from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from cvloss.errors import UsageError
from cvloss.registry import Registry


def test_names_objects_and_the_refusal_of_an_unknown_name():
    reg = Registry("widget", option="--widget")
    reg.register("b", 2)

    @reg.register("a")
    def make_a():
        return "a"

    assert reg.names() == ["b", "a"] and "a" in reg and "c" not in reg and list(reg) == ["b", "a"]
    assert reg.get("b") == 2 and reg.get("a") is make_a
    with pytest.raises(UsageError) as err:
        reg.get("c")
    assert str(err.value) == "unknown --widget 'c'; valid: b, a"
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 3)
    assert reg.register("b", 2) == 2 and reg.names() == ["b", "a"]  # the same again (a module imported twice): no-op


def test_a_reference_is_imported_when_first_asked_for(tmp_path, monkeypatch):
    (tmp_path / "lazy_widgets.py").write_text("import sys\nsys.lazy_widgets_imported = True\nWIDGET = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_widgets", raising=False)
    reg = Registry("widget")
    reg.register("lazy", "lazy_widgets:WIDGET")
    assert reg.names() == ["lazy"] and not getattr(sys, "lazy_widgets_imported", False)  # listing imports nothing
    assert reg.get("lazy") == 42 and sys.lazy_widgets_imported
    monkeypatch.delattr(sys, "lazy_widgets_imported")


def test_installed_entry_points_join_the_names(monkeypatch):
    import cvloss.registry as registry

    group = "cvloss.test-widgets"
    points = [EntryPoint("json-dumps", "json:dumps", group), EntryPoint("broken", "no_such_module_xyz:thing", group),
              EntryPoint("b", "json:loads", group)]  # "b" is a built-in's name: the built-in wins
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    reg = Registry("widget", group=group, option="--widget")
    reg.register("b", 2)
    assert reg.names() == ["b", "broken", "json-dumps"] and "json-dumps" in reg
    import json

    assert reg.get("json-dumps") is json.dumps and reg.get("b") == 2
    with pytest.raises(UsageError, match=r"^widget 'broken' from the installed package entry point "
                                         r"'no_such_module_xyz:thing' cannot be loaded: ModuleNotFoundError"):
        reg.get("broken")
    with pytest.raises(UsageError, match=r"valid: b, broken, json-dumps$"):
        reg.get("nope")


def _distribution(root, name: str, group: str, points: dict[str, str]) -> None:
    """A minimal installed distribution under ``root``: ``<name>-0.1.dist-info`` with its
    METADATA and an ``entry_points.txt`` declaring ``points`` in ``group``."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in points.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")


def test_entry_points_are_read_again_when_sys_path_changes(tmp_path, monkeypatch):
    group = "cvloss.test-gadgets"
    _distribution(tmp_path, "gadgetpkg", group, {"spinner": "gadget_mod:SPINNER"})
    (tmp_path / "gadget_mod.py").write_text("SPINNER = 'spins'\n")
    monkeypatch.delitem(sys.modules, "gadget_mod", raising=False)
    reg = Registry("gadget", group=group, option="--gadget")
    reg.register("hammer", 1)
    assert reg.names() == ["hammer"] and "spinner" not in reg  # read once, before the folder is on sys.path
    monkeypatch.syspath_prepend(str(tmp_path))
    assert reg.names() == ["hammer", "spinner"] and reg.get("spinner") == "spins"
    monkeypatch.undo()  # the folder leaves sys.path again: so does its entry point, loaded or not
    assert reg.names() == ["hammer"]
    with pytest.raises(UsageError, match=r"^unknown --gadget 'spinner'; valid: hammer$"):
        reg.get("spinner")
    sys.modules.pop("gadget_mod", None)
