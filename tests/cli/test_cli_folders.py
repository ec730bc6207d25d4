"""`cvloss compare --dataset FOLDER` for seg, sr, embed and translate on tiny folders:
results under <basename>-<hash>, the data described in trial.json, and a changed folder
refused with one line instead of being resumed or skipped."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_folder_datasets_cli", Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py")
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)

runner = CliRunner()


def _sets(**kw) -> list[str]:
    return [x for k, v in kw.items() for x in ("--set", f"{k}={v}")]


TINY = {
    "seg": ("ce(ignore_index=255),dice(ignore_index=255)", _sets(n_train=8, n_val=2, image_size=16, batch_size=4,
                                                                 width=4, epochs=1)),
    "sr": ("l1,mse", _sets(hr_size=40, patch=16, repeat=1, batch_size=4, n_feats=4, epochs=1)),
    "embed": ("contrastive,triplet", _sets(P=2, K=2, image_size=16, width=4, dim=8, pairs_per_fold=2, epochs=1)),
    "translate": ("lsgan+cycle,hinge+cycle", _sets(image_size=16, n_train=4, n_val=2, g_width=4, d_width=4, epochs=1,
                                                    n_blocks=1)),
}


def _build(task: str, root: Path) -> Path:
    return fd.build_seg(root, n=12, ignore=255) if task == "seg" else fd.BUILDERS[task](root)


def _compare(task: str, root: Path, out: Path, *extra: str):
    losses, sets = TINY[task]
    return runner.invoke(app, ["compare", "--task", task, "--dataset", str(root), "--losses", losses, "--budget",
                               "smoke", "--seeds", "1", "--threads", "1", "--out", str(out), "--quiet",
                               "--feature-weights", "random", *sets, *extra])


def _check_results(task: str, root: Path, out: Path) -> None:
    label = f"my-{task}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]}"
    group = next((out / task / label).iterdir())
    trials = sorted(group.glob("*/seed0/summary.json"))
    assert len(trials) == 2
    info = json.loads((trials[0].parent / "trial.json").read_text())
    assert info["identity"]["dataset"] == str(root.resolve())
    assert info["identity"]["data_fingerprint"] == info["data_folder"]["fingerprint"] and \
        len(info["data_folder"]["fingerprint"]) == 64
    assert info["data_folder"]["splits"].startswith(f"{task} folder {root.resolve()}: ")
    assert label in info["data"]  # describe_data names the folder and its split
    assert list(group.glob("compare--*/compare.json"))


@pytest.mark.parametrize("task", ["sr", "embed", "translate"])
def test_compare_on_a_folder_names_results_by_basename_and_hash(tmp_path, task):
    root = _build(task, tmp_path / f"my-{task}")
    result = _compare(task, root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    _check_results(task, root, tmp_path / "out")


def test_seg_folder_with_ignore_index_then_changed_is_refused_not_skipped_or_resumed(tmp_path):
    """seg (classes.txt with ignore_index 255) as the others; then one mask touched: the
    rerun (same folder name: the path did not change, the data did) is one line, exit 2,
    and writes nothing."""
    root = _build("seg", tmp_path / "my-seg")
    out = tmp_path / "out"
    result = _compare("seg", root, out)
    assert result.exit_code == 0, result.output
    _check_results("seg", root, out)
    mask = root / "masks" / "img03.png"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    before = sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*"))
    changed = _compare("seg", root, out)
    lines = changed.stderr.strip().splitlines()
    assert changed.exit_code == 2 and len(lines) == 1, changed.output
    assert f"the dataset folder {root.resolve()} changed since" in lines[0] and "use another --out" in lines[0]
    assert sorted((p, p.stat().st_mtime_ns) for p in out.rglob("*")) == before  # nothing written


def test_a_loss_without_the_declared_ignore_index_is_refused(tmp_path):
    root = _build("seg", tmp_path / "d")
    result = runner.invoke(app, ["train", "--task", "seg", "--dataset", str(root), "--loss", "ce", "--out",
                                 str(tmp_path / "out"), "--quiet", *TINY["seg"][1]])
    assert result.exit_code == 2
    assert "the data declares ignore_index 255 (classes.txt) but loss term(s) ce do not" in result.stderr


def test_datasets_list_shows_a_user_catalog_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLOSS_CATALOG", "")  # --catalog exports it for the in-process run: restored after
    monkeypatch.setenv("CVLOSS_DATA", str(tmp_path / "data"))
    catalog = tmp_path / "mine.toml"
    catalog.write_text(fd.catalog_entry("my-masks"))
    result = runner.invoke(app, ["datasets", "list", "--task", "seg", "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("my-masks "))
    assert f"not placed in {tmp_path / 'data' / 'my-masks'}" in row
    fd.build_seg(tmp_path / "data" / "my-masks", n=4)
    result = runner.invoke(app, ["datasets", "list", "--task", "seg", "--catalog", str(catalog)])
    row = next(line for line in result.stdout.splitlines() if line.startswith("my-masks "))
    assert " yes " in row and str(tmp_path / "data" / "my-masks") in row

