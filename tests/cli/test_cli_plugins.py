"""Plugin losses: a tiny package found through a ``*.dist-info/entry_points.txt`` on
``sys.path`` (never installed into the environment), ``--plugin`` with a module file or a
module name, refusals, and ``plugin_provenance``."""
from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.losses import build_loss, list_losses, load_plugins, plugin_provenance
from cvloss.losses import plugins, registry
from cvloss.losses.plugins import PluginError, PluginWarning

runner = CliRunner()
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

# The plugin loss: mean squared error of the softmax probabilities and the one-hot target.
LOSS_MODULE = '''
import torch.nn.functional as F

from cvloss.losses import Loss, register_loss
from cvloss.losses.base import check_seg


@register_loss("{name}", family="pixel-wise", paper="a test plugin")
class ProbSquaredError(Loss):
    """Mean of (softmax(z) - onehot(t))**2 times scale, over pixels and classes."""

    kind = "seg"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, logits, target, weight=None):
        check_seg(logits, target)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        return self.scale * (logits.softmax(1) - onehot).square().mean()
'''


def _write_dist(root: Path, dist: str, version: str, package: str, entry: str, module_text: str) -> Path:
    """``root/<package>/__init__.py`` + ``losses.py`` and ``root/<dist>-<version>.dist-info``
    with METADATA and an entry point ``entry`` in the cvloss.losses group."""
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "losses.py").write_text(module_text)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"  # as installers name it: the name has no '-'
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[cvloss.losses]\n{entry}\n")
    return pkg / "losses.py"


@pytest.fixture
def clean_plugins(monkeypatch):
    """A registry, plugin table and entry-point state of cvloss alone, restored after
    the test (and the test's plugin modules forgotten), so no plugin leaks into others."""
    list_losses()  # cvloss's own losses (and the environment's entry points) loaded first
    before = dict(registry._REGISTRY)
    modules = set(sys.modules)
    monkeypatch.setattr(plugins, "_LOADED", {})
    monkeypatch.setitem(plugins._STATE, "entry_points", False)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    for name in set(sys.modules) - modules:
        if name.startswith(("tplug", "cvloss_plugin_", "bare_losses")):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def dist_plugin(tmp_path, monkeypatch, clean_plugins):
    """The package ``tplug`` 0.3 with entry point ``tplug = tplug.losses`` (loss ``probsq``)."""
    root = tmp_path / "site"
    path = _write_dist(root, "tplug", "0.3", "tplug", "tplug = tplug.losses", LOSS_MODULE.format(name="probsq"))
    monkeypatch.syspath_prepend(str(root))  # also clears importlib's (and metadata's) path caches
    return path


def _listed(output: str) -> dict[str, str]:
    """``name -> whole row`` of a ``losses list`` table."""
    return {line.split()[0]: line for line in output.splitlines()[3:] if line.strip()}


def test_entry_point_plugin_is_listed_built_and_recorded(dist_plugin):
    result = runner.invoke(app, ["losses", "list", "--task", "seg"])
    assert result.exit_code == 0, result.output
    rows = _listed(result.stdout)
    assert "probsq" in rows and rows["probsq"].rstrip().endswith("plugin tplug 0.3")
    assert rows["ce"].rstrip().endswith("cvloss")
    shown = runner.invoke(app, ["losses", "show", "probsq"])
    assert shown.exit_code == 0 and "from: plugin tplug 0.3" in shown.stdout and "scale: float = 1.0" in shown.stdout

    loss = build_loss("ce+0.5*probsq(scale=2)", task="seg")
    logits = torch.tensor([[[[0.0]], [[0.0]]]])  # (1, 2, 1, 1): p = (1/2, 1/2)
    target = torch.tensor([[[1]]])
    # ce = ln 2; probsq = 2 · mean((1/2)², (1/2)²) = 1/2
    assert loss(logits, target).item() == pytest.approx(0.6931472 + 0.5 * 0.5, rel=1e-6)

    (record,) = plugin_provenance()
    digest = hashlib.sha256(dist_plugin.read_bytes()).hexdigest()
    assert record["module"] == "tplug.losses" and record["kind"] == "entry-point"
    assert (record["distribution"], record["version"]) == ("tplug", "0.3")
    assert record["entry_point"] == "tplug = tplug.losses" and record["losses"] == ["probsq"]
    assert record["files"] == {"tplug/losses.py": digest}
    combined = hashlib.sha256(f"tplug/losses.py\0{digest}\n".encode()).hexdigest()
    assert record["sha256"] == combined
    json.dumps(record)  # JSON-ready, for trial.json


def test_entry_points_load_once(dist_plugin):
    list_losses()
    dist_plugin.write_text("raise RuntimeError('imported twice')\n")
    assert "probsq" in {i.name for i in list_losses("seg")}  # not imported again
    assert len(plugin_provenance()) == 1


def test_compare_runs_with_a_plugin_loss(dist_plugin, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", "--task", "seg", "--losses", "ce,probsq", "--budget", "smoke", "--seeds", "1",
                                 "--threads", "1", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    (path,) = out.glob("seg/*/smoke/compare--ce--probsq/compare.json")
    comparison = json.loads(path.read_text())
    assert comparison["losses"] == ["ce", "probsq"] and comparison["seeds"] == [0]
    assert (path.parents[1] / "probsq" / "seed0" / "summary.json").is_file()
    assert f"results: {path.parent}" in result.stdout
    # Only a trial whose spec uses the plugin carries its hash: ce's provenance is as without it,
    # so ce trials made before the plugin was installed are reused, not stale, and nothing is mixed.
    ce = json.loads((path.parents[1] / "ce" / "seed0" / "trial.json").read_text())
    probsq = json.loads((path.parents[1] / "probsq" / "seed0" / "trial.json").read_text())
    assert ce["code"]["plugins_sha256"] is None and ce["plugins"] == []
    assert probsq["code"]["plugins_sha256"] and [r["losses"] for r in probsq["plugins"]] == [["probsq"]]
    assert ce["code"]["source_sha256"] == probsq["code"]["source_sha256"] and not comparison["provenance"]["mixed"]


def test_plugin_module_file(tmp_path, clean_plugins):
    """--plugin PATH.py: the README's own example module, listed and built."""
    (example,) = re.findall(r"```py\n(.*?)```", README.split("\n## Your own losses\n", 1)[1].split("\n## ", 1)[0], re.S)
    path = tmp_path / "mylosses.py"
    path.write_text(example)
    result = runner.invoke(app, ["losses", "list", "--task", "seg", "--plugin", str(path)])
    assert result.exit_code == 0, result.output
    assert _listed(result.stdout)["softiou"].rstrip().endswith("plugin mylosses.py")
    loss = build_loss("softiou", task="seg")
    logits = torch.tensor([[[[9.0, -9.0]], [[-9.0, 9.0]]]], dtype=torch.float64)  # confident, and right
    assert loss(logits, torch.tensor([[[0, 1]]])).item() == pytest.approx(0.0, abs=1e-6)
    (record,) = plugin_provenance()
    assert record["module"] == str(path.resolve()) and record["kind"] == "file"
    assert record["distribution"] is None and record["version"] is None and record["losses"] == ["softiou"]
    assert record["files"] == {"mylosses.py": hashlib.sha256(path.read_bytes()).hexdigest()}
    # A worker process calls load_plugins with the same list: nothing changes, nothing fails.
    assert load_plugins([str(path)]) == [record]


def test_plugin_module_name_on_sys_path(tmp_path, monkeypatch, clean_plugins):
    (tmp_path / "bare_losses.py").write_text(LOSS_MODULE.format(name="bare_probsq"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (record,) = load_plugins(["bare_losses"])
    assert record["kind"] == "module" and record["module"] == "bare_losses" and record["distribution"] is None
    assert registry._REGISTRY["bare_probsq"].plugin == "bare_losses"


def test_a_plugin_taking_a_name_is_refused_whole(tmp_path, clean_plugins):
    path = tmp_path / "clash.py"
    path.write_text(LOSS_MODULE.format(name="fresh_name") + LOSS_MODULE.format(name="ce").split("\n\n\n", 1)[1])
    result = runner.invoke(app, ["compare", "--task", "seg", "--losses", "ce", "--plugin", str(path),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"error: --plugin {path}: the plugin registers loss 'ce', which cvloss already registers; "
                    f"rename it")
    assert "fresh_name" not in registry._REGISTRY and registry._REGISTRY["ce"].plugin is None
    assert not (tmp_path / "out").exists() and plugin_provenance() == []


def test_a_broken_entry_point_is_one_warning(tmp_path, monkeypatch, clean_plugins):
    root = tmp_path / "site"
    _write_dist(root, "tplug-broken", "1.0", "tplug_broken", "broken = tplug_broken.losses",
                "import numpy\nimport no_such_dependency_xyz\n")
    _write_dist(root, "tplug-clash", "2.0", "tplug_clash", "clash = tplug_clash.losses", LOSS_MODULE.format(name="dice"))
    monkeypatch.syspath_prepend(str(root))
    result = runner.invoke(app, ["losses", "list", "--task", "seg"])
    assert result.exit_code == 0
    assert result.stderr.strip().splitlines() == [
        "warning: plugin 'broken' (entry point 'broken = tplug_broken.losses' of tplug-broken 1.0) cannot be imported: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'; its losses are not available",
        "warning: plugin 'clash' (entry point 'clash = tplug_clash.losses' of tplug-clash 2.0) registers loss 'dice', "
        "which cvloss already registers; rename it; its losses are not available",
    ]
    assert set(_listed(result.stdout)) == {i.name for i in list_losses("seg")} and "Traceback" not in result.output
    assert registry._REGISTRY["dice"].plugin is None and plugin_provenance() == []


def test_library_callers_get_a_plugin_warning_and_a_plugin_error(tmp_path, monkeypatch, clean_plugins):
    root = tmp_path / "site"
    _write_dist(root, "tplug-bad", "1.0", "tplug_bad", "bad = tplug_bad.losses", "raise RuntimeError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(root))
    with pytest.warns(PluginWarning, match="cannot be imported: RuntimeError: boom second line;"):
        list_losses()
    (tmp_path / "syntax_bad.py").write_text("def (:\n")
    with pytest.raises(PluginError, match=r"--plugin .*syntax_bad.py: the plugin cannot be imported: SyntaxError"):
        load_plugins([str(tmp_path / "syntax_bad.py")])
    with pytest.raises(PluginError, match="--plugin needs a module name"):
        load_plugins([" "])
    (tmp_path / "empty_plugin.py").write_text("X = 1\n")
    with pytest.warns(PluginWarning, match="plugin empty_plugin.py registered no loss"):
        assert load_plugins([str(tmp_path / "empty_plugin.py")])[0]["losses"] == []


def test_readme_documents_both_routes():
    section = README.split("\n## Your own losses\n", 1)[1].split("\n## ", 1)[0]
    assert '[project.entry-points."cvloss.losses"]' in section and "--plugin ./mylosses.py" in section
    assert "plugin_provenance()" in section and "load_plugins" in section
