"""Datasets a lab already has (cvloss.data.adopt, `cvloss datasets adopt`): the four real
datasets extracted in their real layouts (torchvision's folders for Pet and LFW) on
read-only storage are adopted and trained on by a smoke comparison, and stay identical
(paths, sizes, mtimes, sha256); a copy with a file removed, one with a corrupt
checksummed file and one changed after adoption are refused or re-checked with one line;
caches of data cvloss must not write go under $CVLOSS_CACHE.

Tests run as root here, and root writes through ``chmod a-w``: cvloss's rule does not rest
on the kernel refusing. It never writes into a folder it did not make (an adopted copy, a
dataset folder of the user's), and treats a folder with no write bit as read-only for
root too (:func:`cvloss.data.cache.can_write`); the snapshots prove nothing was written."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.data import adopt, cache, registry

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_extracted_copies", Path(__file__).resolve().parents[1] / "fixtures" / "extracted_copies.py")
xc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(xc)

runner = CliRunner()
#: task, loss and cheap settings of the smoke comparison on each dataset
SMOKE = {
    "oxford-pets": ("seg", "ce", ["epochs=1", "n_train=8", "n_val=2", "image_size=16"]),
    "div2k": ("sr", "l1", ["epochs=1", "repeat=1", "patch=16", "batch_size=2"]),
    "lfw": ("embed", "contrastive", ["epochs=1", "image_size=16", "P=2", "K=2"]),
    "horse2zebra": ("translate", "cycle", ["epochs=1", "image_size=16", "n_train=4", "n_val=2"]),
}


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (``root`` too): (kind, size, mtime_ns, sha256 of a file)."""
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def _chmod_tree(root: Path, write: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        os.chmod(p, (mode | stat.S_IWUSR) if write else (mode & ~0o222))


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """``shared/`` with the copies a test builds (read-only unless asked), the catalog
    expecting them, ``$CVLOSS_CACHE`` and an empty ``$CVLOSS_DATA`` in ``tmp_path``."""
    monkeypatch.setenv("CVLOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CVLOSS_DATA", str(tmp_path / "data"))  # nothing downloaded anywhere
    shared = tmp_path / "shared"
    shared.mkdir()
    copies: dict[str, Path] = {}

    def build(name: str, readonly: bool = True) -> Path:
        copies[name] = xc.BUILDERS[name](shared)
        catalog = xc.fixture_catalog(tmp_path / "datasets.toml", copies)
        monkeypatch.setattr(registry, "catalog_path", lambda: catalog)
        if readonly:
            _chmod_tree(copies[name], write=False)
        return copies[name]

    yield SimpleNamespace(build=build, shared=shared, cache=tmp_path / "cache", out=tmp_path / "out", tmp=tmp_path)
    for root in copies.values():  # pytest must be able to remove tmp_path
        _chmod_tree(root, write=True)


def _compare(lab, name: str, *extra: str):
    task, loss, sets = SMOKE[name]
    args = ["compare", "--task", task, "--dataset", name, "--losses", loss, "--seeds", "1", "--threads", "1",
            "--quiet", "--out", str(lab.out), *extra]
    for s in sets:
        args += ["--set", s]
    return runner.invoke(app, args)


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# oxford-pets: adopt the folder holding torchvision's oxford-iiit-pet/, run with --data-dir there;
# lfw: adopt lfw-py/ itself, run on the record alone (another data dir); div2k: no adopt, the
# run's --data-dir is the extracted DIV2K/ (checked once by the run); horse2zebra: adopt, run
# with --data-dir holding horse2zebra/.
@pytest.mark.parametrize("name", ["oxford-pets", "lfw", "div2k", "horse2zebra"])
def test_a_read_only_copy_is_adopted_and_trained_on_unchanged(lab, name):
    root = lab.build(name)
    assert not cache.can_write(root) and all(not p.stat().st_mode & 0o222 for p in [root, *root.rglob("*")])
    assert os.geteuid() == 0 or not os.access(root, os.W_OK)
    before = snapshot(root)
    note: list[str] = []
    if name == "div2k":
        result = _compare(lab, name, "--data-dir", str(root))
        note = _errors(result)  # the check the run made: one line, on stderr
        assert len(note) == 1 and note[0].startswith("note: checked the extracted copy of div2k in " + str(root)), note
        assert "train 3, val 1, test 1" in note[0] and "adopted" in note[0]
    else:
        adopted = runner.invoke(app, ["datasets", "adopt", name, str(root if name == "lfw" else lab.shared)])
        assert adopted.exit_code == 0 and adopted.stderr == "", adopted.output
        assert adopted.stdout.startswith(f"{name}: adopted {root} (")
        data_dir = ["--data-dir", str(lab.tmp / "elsewhere")] if name == "lfw" else ["--data-dir", str(lab.shared)]
        result = _compare(lab, name, *data_dir)
        assert _errors(result) == [], result.stderr  # the record is trusted: nothing to say
    assert result.exit_code == 0, result.output
    record = json.loads((lab.cache / "adopted" / f"{name}.json").read_text())
    assert record["path"] == str(root) and record["counts"] == xc.COUNTS[name] and record["dataset"] == name
    task = SMOKE[name][0]
    summaries = list((lab.out / task / name).rglob("seed0/summary.json"))  # lfw: and one per View 2 fold below
    assert len(summaries) == 1 and json.loads(summaries[0].read_text())["status"] in ("done", "collapsed")
    assert snapshot(root) == before  # not a byte, name or mtime changed: nothing written into the copy
    decoded = list((lab.cache / "decoded").rglob("*.pt"))  # the decoded splits went to $CVLOSS_CACHE
    assert decoded and all(p.stat().st_size > 0 for p in decoded)
    if name == "oxford-pets":  # torchvision keeps the archives beside the folders: they were checked
        assert record["verified"] == {"images.tar.gz": "md5", "annotations.tar.gz": "md5"}
    if name == "lfw":
        assert set(record["verified"]) == {"pairs.txt", "people.txt", "peopleDevTrain.txt", "pairsDevTest.txt"}


def test_a_copy_with_a_listed_image_removed_is_refused_naming_it(lab):
    root = lab.build("oxford-pets", readonly=False)
    (root / "images" / "Abyssinian_2.jpg").unlink()
    _chmod_tree(root, write=False)
    result = runner.invoke(app, ["datasets", "adopt", "oxford-pets", str(root)])
    assert result.exit_code == 2 and result.stdout == ""
    lines = _errors(result)
    assert lines == [f"error: missing file {root / 'images' / 'Abyssinian_2.jpg'} (listed in annotations/trainval.txt)"]
    assert not lab.cache.exists()  # nothing recorded (nor made)


def test_a_copy_with_a_corrupt_checksummed_file_is_refused_naming_it(lab):
    root = lab.build("lfw", readonly=False)
    pairs = root / "pairs.txt"
    data = bytearray(pairs.read_bytes())
    data[-3] ^= 1  # one bit of one digit: same size, another md5 (and a list that still parses)
    pairs.write_bytes(bytes(data))
    _chmod_tree(root, write=False)
    result = runner.invoke(app, ["datasets", "adopt", "lfw", str(lab.shared)])
    lines = _errors(result)
    assert result.exit_code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {pairs}: md5 {hashlib.md5(bytes(data)).hexdigest()} differs from the "
                               f"catalog's ")
    assert not (lab.cache / "adopted").exists()


def test_counts_off_and_missing_folders_are_one_line_each(lab):
    root = lab.build("horse2zebra", readonly=False)
    (root / "testB").rename(lab.tmp / "testB-elsewhere")
    next(p for p in sorted((root / "trainB").iterdir())).unlink()
    result = runner.invoke(app, ["datasets", "adopt", "horse2zebra", str(root)])
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: missing folder {root / 'testB'}",
        f"error: {root / 'trainB'}: 14 images; the catalog expects 15 (horse2zebra counts.trainB)",
    ]
    assert adopt.check_copy(registry.get_dataset("horse2zebra"), root).counts == {"trainA": 3, "trainB": 14, "testA": 2}


def test_a_copy_changed_after_adoption_is_checked_again(lab):
    root = lab.build("horse2zebra")
    assert runner.invoke(app, ["datasets", "adopt", "horse2zebra", str(root)]).exit_code == 0
    info = registry.get_dataset("horse2zebra")
    record = json.loads(adopt.record_path("horse2zebra").read_text())
    # Touched (same names and bytes, a newer mtime): the next run says so in one line,
    # checks again, and goes on with an updated record.
    _chmod_tree(root, write=True)
    victim = sorted((root / "trainA").glob("*.jpg"))[0]
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    said: list[str] = []
    registry.ensure_present(info, lab.shared, say=said.append)
    assert len(said) == 1 and said[0].startswith(f"note: the adopted copy of horse2zebra in {root} changed since it "
                                                 f"was adopted (23 files, some with another size or modification time)")
    again = json.loads(adopt.record_path("horse2zebra").read_text())
    assert again["fingerprint"] != record["fingerprint"] and again["files"] == record["files"]
    registry.ensure_present(info, lab.shared, say=said.append)
    assert len(said) == 1  # trusted again: nothing more to say
    # An image removed: the run refuses in one line (the change, then what the check found).
    victim.unlink()
    _chmod_tree(root, write=False)
    result = _compare(lab, "horse2zebra", "--data-dir", str(lab.shared))
    assert result.exit_code == 2
    assert _errors(result) == [
        f"error: the adopted copy of horse2zebra in {root} changed since it was adopted (23 files then, 22 now), and "
        f"checking it again found: {root / 'trainA'}: 2 images; the catalog expects 3 (horse2zebra counts.trainA)"]
    assert not lab.out.exists()  # refused before any training
    assert registry.presence_problem(info, lab.shared) is not None  # a worker would refuse it too


def test_a_run_on_an_unadopted_copy_with_a_problem_refuses_in_one_line(lab):
    root = lab.build("div2k", readonly=False)
    (root / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png").unlink()
    result = _compare(lab, "div2k", "--data-dir", str(lab.shared))
    assert result.exit_code == 2 and not lab.out.exists()
    assert _errors(result) == [
        f"error: checking the extracted copy of div2k in {root} (not adopted yet) found: missing file "
        f"{root / 'DIV2K_train_LR_bicubic' / 'X2' / '0002x2.png'} (x2 LR files of the train split)"]
    assert not (lab.cache / "adopted").exists()


@pytest.mark.parametrize("args, line", [
    (["nope", "{shared}"], "error: unknown dataset 'nope'"),
    (["synth-pets", "{shared}"], "error: dataset 'synth-pets' is embedded (generated on the fly): there is nothing "
                                 "to adopt"),
    (["oxford-pets", "{shared}/missing"], "error: {shared}/missing: no such folder"),
    (["oxford-pets", "{shared}/file.txt"], "error: {shared}/file.txt is not a folder"),
    (["oxford-pets"], "error: missing argument 'path'."),
])
def test_adopt_arguments_are_checked_before_anything_is_touched(lab, args, line):
    (lab.shared / "file.txt").write_text("x")
    before = snapshot(lab.tmp)
    result = runner.invoke(app, ["datasets", "adopt", *(a.format(shared=lab.shared) for a in args)])
    assert result.exit_code == 2
    lines = _errors(result)
    assert len(lines) == 1 and lines[0].lower().startswith(line.format(shared=lab.shared).lower()), lines
    assert snapshot(lab.tmp) == before


def test_list_reports_adopted_copies_and_where_caches_go(lab):
    root = lab.build("oxford-pets")
    args = ["datasets", "list", "--task", "seg", "--data-dir", str(lab.shared)]
    row = next(ln for ln in runner.invoke(app, args).stdout.splitlines() if ln.startswith("oxford-pets "))
    assert f"extracted copy {root}, not adopted: cvloss datasets adopt oxford-pets {root}" in row
    assert runner.invoke(app, ["datasets", "adopt", "oxford-pets", str(root)]).exit_code == 0
    rows = runner.invoke(app, args).stdout.splitlines()
    pets = next(ln for ln in rows if ln.startswith("oxford-pets "))
    assert " yes " in pets and f"adopted: {root}" in pets
    assert str(lab.cache / "decoded" / "oxford-iiit-pet-") in pets  # its caches: under $CVLOSS_CACHE
    synth = next(ln for ln in rows if ln.startswith("synth-pets "))
    assert str(lab.shared / "synth-pets" / ".cvloss-cache") in synth  # a folder cvloss makes and may write


def test_cache_home_and_the_one_place_that_chooses_a_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CVLOSS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_home() == tmp_path / "xdg" / "cvloss"
    monkeypatch.setenv("CVLOSS_CACHE", str(tmp_path / "mine"))
    assert cache.cache_home() == tmp_path / "mine"
    data = tmp_path / "data" / "div2k"
    data.mkdir(parents=True)
    assert cache.can_write(data) and cache.can_write(data / "not-yet")  # made under a writable parent
    assert cache.cache_dir(data) == data / ".cvloss-cache"
    other = cache.cache_dir(data, owned=False)  # a folder cvloss did not make: never written into
    assert other.parent == tmp_path / "mine" / "decoded" and other.name.startswith("div2k-")
    os.chmod(data, 0o555)
    try:
        assert not cache.can_write(data) and cache.cache_dir(data) == other  # chmod a-w: honoured, root or not
    finally:
        os.chmod(data, 0o755)


def test_a_dataset_folder_of_the_users_is_never_written_into(tmp_path, monkeypatch):
    """The U-Net border maps of wce (and every other cache) of a user's seg folder go to
    $CVLOSS_CACHE, even when the folder can be written."""
    where = Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py"
    spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_folder_datasets_a", where)
    fd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fd)
    monkeypatch.setenv("CVLOSS_CACHE", str(tmp_path / "cache"))
    root = fd.build_seg(tmp_path / "mine")
    before = snapshot(root)
    result = runner.invoke(app, ["train", "--task", "seg", "--dataset", str(root), "--loss", "wce", "--threads", "1",
                                 "--quiet", "--out", str(tmp_path / "out"), "--set", "epochs=1", "--set", "n_train=4",
                                 "--set", "n_val=2", "--set", "image_size=16"])
    assert result.exit_code == 0, result.output
    assert snapshot(root) == before
    assert list((tmp_path / "cache" / "decoded").glob("mine-*/wce-border-*.pt"))


def _user_entry(name: str, extra: str = "", md5: str = "0" * 32) -> str:
    """A user catalog's seg dataset with an archive (so it is downloaded, or adopted)."""
    return f'''
[datasets.{name}]
name = "{name}"
tasks = ["seg"]
description = "masks of a lab"
urls = []
files = [{{ url = "https://example.org/masks.zip", filename = "masks.zip", md5 = "{md5}", size = 0 }}]
layout = ["images", "masks"]
size_bytes = 0
license = "theirs"
citation = ""
loader = "seg-folder"
embedded = false
real = ""
splits = {{ train = "seeded", val = "seeded", test = "seeded" }}
{extra}'''


@pytest.mark.parametrize("extra, words", [
    ("counts = { images = -1 }", "counts must map names to integers >= 0"),
    ('aliases = ["../up"]', "alias '../up' must be a plain folder name"),
    ("", "the name 'adopted' is a folder cvloss keeps in its cache"),
])
def test_catalog_counts_aliases_and_reserved_names_are_checked(tmp_path, monkeypatch, extra, words):
    cat = tmp_path / "cat.toml"
    cat.write_text(_user_entry("adopted" if not extra else "lab-masks", extra))
    monkeypatch.setenv("CVLOSS_CATALOG", str(cat))
    with pytest.raises(registry.DatasetError, match=words):
        registry.load_catalog()


def test_another_loaders_dataset_is_adopted_by_its_layout_and_checksums(tmp_path, monkeypatch):
    """A user catalog's dataset with an archive and a loader cvloss has no checker for:
    its layout entries, the catalogued files the copy holds, an alias."""
    monkeypatch.setenv("CVLOSS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "shared" / "LabMasks"
    for sub in ("images", "masks"):
        (copy / sub).mkdir(parents=True)
    (copy / "masks.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    cat = tmp_path / "cat.toml"
    digest = hashlib.md5((copy / "masks.zip").read_bytes()).hexdigest()
    cat.write_text(_user_entry("lab-masks", 'aliases = ["LabMasks"]', md5=digest))
    monkeypatch.setenv("CVLOSS_CATALOG", str(cat))
    done = adopt.adopt_dataset(registry.get_dataset("lab-masks"), tmp_path / "shared")  # found by its alias
    assert done.root == copy and done.verified == {"masks.zip": "md5"} and done.counts == {}
    (copy / "masks").rmdir()
    with pytest.raises(adopt.AdoptionError) as err:
        adopt.adopt_dataset(registry.get_dataset("lab-masks"), copy)
    assert err.value.problems == [f"missing {copy / 'masks'}"]
