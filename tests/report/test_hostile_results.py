"""Results files are untrusted input: a compare.json that names files outside its folder
or trial folders elsewhere embeds nothing from there, and a file of the wrong shape is one
error line naming it."""
import base64
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.report.html import write_reports

SECRET = b"\x89PNG\r\n\x1a\nSECRET-OUTSIDE-BYTES"


def _cmp_json(result) -> Path:
    return Path(result["dir"]) / "compare.json"


def _edit(result, **changes) -> None:
    path = _cmp_json(result)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("replot", [False, True])
def test_hostile_plot_names_and_trial_paths_embed_nothing_outside(tmp_path, make_comparison, replot):
    root = tmp_path / "results"
    result = make_comparison(root, losses=("ce", "dice"))
    cmp_dir = Path(result["dir"])
    outside = tmp_path / "outside"
    (outside / "ce" / "seed0").mkdir(parents=True)
    (outside / "x").write_bytes(SECRET)
    (outside / "secret.png").write_bytes(SECRET)
    (outside / "ce" / "seed0" / "trial.json").write_text(json.dumps({"git_commit": "EVIL-COMMIT", "versions": {}}))
    (cmp_dir / "link.png").symlink_to(outside / "secret.png")
    (cmp_dir / "ok.png").write_bytes(b"\x89PNG\r\n\x1a\nINSIDE")
    depth = len(cmp_dir.relative_to(tmp_path).parts)
    hostile = {"etc": "/etc/hostname", "up": "../../../x", "deep": "../" * depth + "outside/secret.png",
               "link": "link.png", "dotdot": "..", "sub": "sub/../ok.png", "abs": str(outside / "secret.png"),
               "ok": "ok.png"}
    _edit(result, plots=hostile, trials={"ce": [str(outside / "ce" / "seed0")] * 3, "dice": ["/etc"] * 3},
          dir="/etc")
    paths = write_reports(root, replot=replot)
    html = paths["html"].read_text()
    md = paths["md"].read_text()
    payloads = [SECRET, Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else SECRET]
    for payload in payloads:
        assert base64.b64encode(payload).decode() not in html
    assert "EVIL-COMMIT" not in html and "EVIL-COMMIT" not in md
    assert base64.b64encode(b"\x89PNG\r\n\x1a\nINSIDE").decode() in html  # a plain name inside is embedded
    for name in ("/etc/hostname", "../../../x", "link.png", "outside/secret.png", "sub/../ok.png"):
        assert f"/{name})" not in md and f"({name})" not in md
    assert (outside / "secret.png").read_bytes() == SECRET  # nothing written through the link either


def test_trial_folders_are_siblings_from_loss_and_seed(tmp_path, make_comparison):
    """Absolute trial paths from another machine are not needed (nor followed): the
    provenance comes from <group>/<loss-slug>/seed<k>."""
    root = tmp_path / "results"
    result = make_comparison(root, losses=("ce", "dice"))
    _edit(result, trials={"ce": ["/nonexistent/a"] * 3, "dice": ["/nonexistent/b"] * 3})
    html = write_reports(root, replot=False)["html"].read_text()
    assert "abc123def456" in html and "6 with a trial.json of 6" in html


BAD_COMPARES = [
    ("[1, 2, 3]", "holds a JSON list, not an object"),
    ('{"task": "seg"}', "missing dataset, budget, losses, seeds, baseline, metrics, rows"),
    ('"just text"', "holds a JSON str"),
    ("{not json", "corrupt results file"),
]


@pytest.mark.parametrize("text, reason", BAD_COMPARES)
def test_wrong_shape_compare_json_is_one_line_naming_it(tmp_path, make_comparison, text, reason):
    root = tmp_path / "results"
    result = make_comparison(root, losses=("ce", "dice"))
    _cmp_json(result).write_text(text)
    _one_line_error(root, str(_cmp_json(result)), reason)


@pytest.mark.parametrize("change, reason", [
    ({"seeds": ["a", "b"]}, "'seeds' must be a list of distinct non-negative integers"),
    ({"losses": "ce"}, "'losses' must be a non-empty list"),
    ({"plots": ["bars.png"]}, "'plots' must map names to file names"),
    ({"rows": [{"loss": "ce", "metric": "miou", "n": 3, "mean": "high"}]}, "rows[0] has non-numeric mean"),
    ({"rows": [{"loss": "ce", "metric": "miou", "n": "3"}]}, "rows[0] has non-numeric n"),
    ({"directions": {"miou": "up"}}, "'directions' must map metrics to true/false"),
])
def test_wrong_field_types_in_compare_json(tmp_path, make_comparison, change, reason):
    root = tmp_path / "results"
    result = make_comparison(root, losses=("ce", "dice"))
    _edit(result, **change)
    _one_line_error(root, str(_cmp_json(result)), reason)


@pytest.mark.parametrize("text, reason", [
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"schema": 2, "status": "done", "metrics": {"miou": "high"}}', "metrics['miou'] = 'high' is not a number"),
    ('{"schema": 2, "status": "done", "metrics": [0.5]}', "'metrics' must be an object"),
    ('{"metrics": {}}', "no 'status' string"),
])
def test_wrong_shape_summary_json_is_one_line_naming_it(tmp_path, make_comparison, text, reason):
    root = tmp_path / "results"
    result = make_comparison(root, losses=("ce", "dice"))
    summary = Path(result["trials"]["dice"][1]) / "summary.json"
    summary.write_text(text)
    _one_line_error(root, str(summary), reason)


def _one_line_error(root: Path, names: str, reason: str) -> None:
    out = CliRunner().invoke(app, ["report", str(root)])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert lines[0].startswith("error: ") and names in lines[0] and reason in lines[0], lines[0]
    assert "Traceback" not in out.output and not (root / "report.html").exists()


def test_summary_of_wrong_shape_stops_a_comparison_with_one_line(tmp_path):
    from dataclasses import replace

    from cvloss.errors import ResultsFileError
    from cvloss.run.compare import summarize_comparison
    from cvloss.run.config import TrialConfig

    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path))
    d = replace(base, loss="ce", seed=0).trial_dir
    d.mkdir(parents=True)
    (d / "summary.json").write_text("[1, 2]")
    with pytest.raises(ResultsFileError, match=rf"^{d / 'summary.json'} is not a valid trial summary"):
        summarize_comparison(base, ["ce"], [0])
    assert os.listdir(base.group_dir) == ["ce"]  # nothing written
