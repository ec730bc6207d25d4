"""Extraction through a staging folder, the marker written last, and what "present" means.

An interrupted extraction is simulated by an injected exit (KeyboardInterrupt, as Ctrl-C
or ``kill -9`` would stop it: no clean-up runs) after member k; an ordinary error in the
same place. Then: nothing present, and the next ``download`` completes.
"""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

from cvloss.data import archive
from cvloss.data.fetch import download, verify
from cvloss.data.registry import (DatasetError, extraction_marker, get_dataset, is_present, presence_problem,
                                  require_present)

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_malicious", Path(__file__).resolve().parents[1] / "fixtures" / "malicious_archives.py")
evil = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evil)

N = 12
FILES = {f"good/{i:02d}.bin": bytes([i]) * (100 + i) for i in range(N)}


@pytest.fixture
def toy(tmp_path):
    """A dataset ``toy`` whose one archive (placed on disk, as if fetched) holds ``FILES``."""
    info = evil.toy_dataset("toy.tar.gz", layout=("good",))
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "toy.tar.gz").write_bytes(evil.tar_bytes(list(FILES.items())))
    return info, tmp_path / "data", root


def _fail_at(monkeypatch, k: int, exc: BaseException) -> None:
    """Make the k-th member's copy write 3 bytes and then raise ``exc``."""
    calls = {"n": 0}
    real = archive._copy

    def copy(src, out, *args):
        calls["n"] += 1
        if calls["n"] == k:
            out.write(src.read(3))
            out.flush()
            raise exc
        return real(src, out, *args)

    monkeypatch.setattr(archive, "_copy", copy)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in (root / "good").rglob("*")} if (root / "good").exists() else {}


@pytest.mark.parametrize("k", [1, 7, N])
def test_exit_after_member_k_leaves_nothing_present_and_the_next_run_completes(toy, monkeypatch, k):
    info, data_dir, root = toy
    _fail_at(monkeypatch, k, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        download(info, data_dir)
    staging = root / ".toy.tar.gz.extracting"
    assert len(list(staging.rglob("*.bin"))) == k  # k-1 whole members and a 3-byte partial one
    assert not (root / "good").exists() and not extraction_marker(root, "toy.tar.gz").exists()
    assert not is_present(info, data_dir)
    with pytest.raises(DatasetError, match="no completion marker for toy.tar.gz.*cvloss datasets download toy"):
        require_present(info, data_dir)
    monkeypatch.undo()
    download(info, data_dir)  # removes the leftover staging folder, extracts again
    assert is_present(info, data_dir) and not staging.exists()
    assert _files(root) == FILES


def test_ordinary_error_mid_extraction_cleans_up(toy, monkeypatch):
    info, data_dir, root = toy
    _fail_at(monkeypatch, 5, OSError(28, "No space left on device"))
    with pytest.raises(DatasetError) as err:
        download(info, data_dir)
    assert "toy.tar.gz: it is corrupt or unwritable" in str(err.value) and "No space left" in str(err.value)
    assert sorted(p.name for p in root.iterdir()) == ["toy.tar.gz"]  # no staging, no marker, no .tofu.json
    assert not is_present(info, data_dir)


def test_exit_while_moving_into_place(tmp_path, monkeypatch):
    # Two top-level entries; the process dies after the first was moved: not present, and
    # the next run merges over what the first attempt left.
    info = evil.toy_dataset("two.zip", layout=("a", "b"))
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "two.zip").write_bytes(evil.zip_bytes([("a/1.txt", b"one"), ("b/2.txt", b"two")]))
    real, calls = archive._merge, []

    def merge(src, dst):
        calls.append(src.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(archive, "_merge", merge)
    with pytest.raises(KeyboardInterrupt):
        download(info, tmp_path / "data")
    assert (root / "a" / "1.txt").exists() and not (root / "b").exists()
    assert not is_present(info, tmp_path / "data")
    monkeypatch.undo()
    download(info, tmp_path / "data")
    assert is_present(info, tmp_path / "data") and (root / "b" / "2.txt").read_bytes() == b"two"


def test_folder_extracted_by_an_older_cvloss_is_re_extracted_from_the_archive(toy):
    info, data_dir, root = toy
    # What the old code left after kill -9: some files, one of them cut to 0 bytes, no marker.
    (root / "good").mkdir()
    (root / "good" / "00.bin").write_bytes(FILES["good/00.bin"])
    (root / "good" / "01.bin").write_bytes(b"")
    problem = presence_problem(info, data_dir)
    assert "no completion marker for toy.tar.gz (extracted by an older cvloss, or interrupted)" in problem
    assert "run `cvloss datasets download toy`" in problem and "re-extracts from the archives already there" in problem
    assert "\n" not in problem
    download(info, data_dir)  # offline: the archive is on disk
    assert is_present(info, data_dir) and _files(root) == FILES
    assert verify(info, data_dir)[0].status == "trusted-on-first-use"


def test_layout_removed_after_extraction_is_extracted_again(toy):
    info, data_dir, root = toy
    download(info, data_dir)
    (root / "good" / "03.bin").unlink()
    (root / "good").rename(root / "moved")
    assert "lacks good" in presence_problem(info, data_dir)
    download(info, data_dir)
    assert is_present(info, data_dir) and _files(root) == FILES


def test_archives_sharing_a_top_level_folder_are_merged(tmp_path):
    # DIV2K's LR zips all extract into DIV2K_train_LR_bicubic/ (X2/, X3/, ...).
    info = evil.toy_dataset("X2.zip", "X3.zip", layout=("LR/X2", "LR/X3"))
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "X2.zip").write_bytes(evil.zip_bytes([("LR/X2/0001x2.png", b"2")]))
    (root / "X3.zip").write_bytes(evil.zip_bytes([("LR/X3/0001x3.png", b"3")]))
    download(info, tmp_path / "data")
    assert (root / "LR" / "X2" / "0001x2.png").read_bytes() == b"2"
    assert (root / "LR" / "X3" / "0001x3.png").read_bytes() == b"3"
    assert is_present(info, tmp_path / "data")


def test_layout_alternatives_and_lfw_text_files_alone(tmp_path):
    info = get_dataset("lfw")
    root = tmp_path / "lfw"
    root.mkdir()
    for name in ("pairs.txt", "peopleDevTrain.txt"):
        (root / name).write_text("10\t300\n")
    assert "lacks pairsDevTest.txt, people.txt, lfw-deepfunneled|lfw" in presence_problem(info, tmp_path)
    for name in ("pairsDevTest.txt", "people.txt"):
        (root / name).write_text("10\n")
    problem = presence_problem(info, tmp_path)
    assert not is_present(info, tmp_path) and "lacks lfw-deepfunneled|lfw" in problem
    assert "no completion marker for lfw.tgz, lfw-deepfunneled.tgz" in problem
    for f in info.files:
        extraction_marker(root, f.filename).touch()
    assert "lacks lfw-deepfunneled|lfw" in presence_problem(info, tmp_path)
    (root / "lfw").mkdir()  # either image folder will do
    assert is_present(info, tmp_path)


def test_format_is_read_from_the_bytes_not_the_name(tmp_path):
    assert archive.sniff_format(_write(tmp_path / "a.bin", evil.zip_bytes([]))) == "zip"  # empty zip: PK\x05\x06
    assert archive.sniff_format(_write(tmp_path / "b.bin", evil.tar_bytes([("x", b"1")], mode="w"))) == "tar"
    assert archive.sniff_format(_write(tmp_path / "c.bin", evil.tar_bytes([("x", b"1")], mode="w:bz2"))) == "bzip2"
    assert archive.sniff_format(_write(tmp_path / "d.bin", evil.tar_bytes([("x", b"1")], mode="w:xz"))) == "xz"
    xz = _write(tmp_path / "d.tar.xz", (tmp_path / "d.bin").read_bytes())
    archive.safe_extract(xz, tmp_path / "t")
    assert (tmp_path / "t" / "x").read_bytes() == b"1"
    from cvloss.data.registry import ARCHIVE_SUFFIXES  # what the catalog extracts, archive reads

    assert all(archive.expected_format("x" + suffix) for suffix in ARCHIVE_SUFFIXES)
    empty = _write(tmp_path / "empty.zip", evil.zip_bytes([]))
    archive.safe_extract(empty, tmp_path / "e")
    assert list((tmp_path / "e").iterdir()) == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_copy_streams_in_chunks(monkeypatch):
    monkeypatch.setattr(archive, "CHUNK", 7)
    out = io.BytesIO()
    assert archive._copy(io.BytesIO(b"x" * 20), out, 5, 25, Path("a.zip"), archive.Caps()) == 25
    assert out.getvalue() == b"x" * 20


def test_cli_verify_reports_trust_on_first_use_and_incomplete_extraction(tmp_path):
    from typer.testing import CliRunner

    from cvloss.cli import app

    runner = CliRunner()
    root = tmp_path / "horse2zebra"
    root.mkdir()
    layout = [f"horse2zebra/{d}/1.jpg" for d in ("trainA", "trainB", "testA", "testB")]
    (root / "horse2zebra.zip").write_bytes(evil.zip_bytes([(name, b"jpeg") for name in layout]))
    args = ["horse2zebra", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, ["datasets", "download", *args])  # offline: the archive is on disk
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["datasets", "verify", *args])
    assert result.exit_code == 0 and "trusted-on-first-use" in result.output, result.output
    extraction_marker(root, "horse2zebra.zip").unlink()
    result = runner.invoke(app, ["datasets", "verify", *args])
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and "no completion marker for horse2zebra.zip" in errors[0]
    (root / "horse2zebra.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # another file: refused by its record
    result = runner.invoke(app, ["datasets", "verify", *args])
    assert result.exit_code == 1 and "mismatch" in result.output and "differs from the first download" in result.output
