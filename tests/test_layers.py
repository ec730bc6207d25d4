"""The layer graph, read from every module's imports (ast, imports inside functions too):
an import outside the allowed graph, or a cycle between modules, fails with the edge."""
from __future__ import annotations

import ast
from pathlib import Path

import cvloss

ROOT = Path(cvloss.__file__).parent

# layer -> the layers it may import (itself included). Ground: errors, settings, results
# I/O (the comparison result included) and the task registry; run and report sit side by
# side above tasks, and report never imports run; the library API (cvloss.api) sits on run;
# the CLI sits on top and reaches run only through the API (it parses, calls and prints).
# Studies (cvloss.study) sit on the API and run, below the CLI (cvloss.cli_study is CLI).
GROUND = ("ground",)
ALLOWED = {
    "ground": GROUND,
    "losses": ("losses", *GROUND),
    "data": ("data", *GROUND),
    "models": ("models", "losses", "data", *GROUND),
    "metrics": ("metrics", "losses", "data", *GROUND),
    "tasks": ("tasks", "models", "metrics", "losses", "data", *GROUND),
    "report": ("report", "tasks", "models", "metrics", "losses", "data", *GROUND),
    "run": ("run", "report", "tasks", "models", "metrics", "losses", "data", *GROUND),
    "api": ("api", "run", "report", "tasks", "models", "metrics", "losses", "data", *GROUND),
    "study": ("study", "api", "run", "report", "tasks", "models", "metrics", "losses", "data", *GROUND),
    "cli": ("cli", "study", "api", "report", "tasks", "models", "metrics", "losses", "data", *GROUND),
}
PACKAGES = {"losses", "data", "models", "metrics", "tasks", "report", "run", "study"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    return {"cvloss.cli": "cli", "cvloss.cli_study": "cli", "cvloss.api": "api"}.get(module, "ground")


def imports(path: Path, modules: set[str]) -> set[str]:
    """The cvloss modules ``path`` imports, at any depth (``from a import b`` names module
    ``a.b`` when that is a module, else ``a``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("cvloss")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cvloss"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs or {node.module}
    return {m for m in out if m in modules}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {m: imports(p, modules) - {m} for m, p in paths.items()}


def test_every_import_goes_down_the_allowed_graph():
    bad = sorted(f"{m} ({layer(m)}) imports {i} ({layer(i)})" for m, deps in graph().items() for i in deps
                 if layer(i) not in ALLOWED[layer(m)])
    assert not bad, "imports outside the layer graph:\n" + "\n".join(bad)


def _ancestors(module: str) -> set[str]:
    """Packages whose ``__init__`` runs when ``module`` is imported (edges to them are not cycles of logic)."""
    parts = module.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def test_no_import_cycles():
    g = {m: {d for d in deps if d not in _ancestors(m)} for m, deps in graph().items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [m, d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from cvloss.run import trainer\n    import cvloss.report.plots\n")
    assert imports(f, {"cvloss.run", "cvloss.run.trainer", "cvloss.report.plots"}) == {
        "cvloss.run.trainer", "cvloss.report.plots"}
