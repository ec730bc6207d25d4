"""`cvloss datasets list/verify/download` through the CLI (offline)."""
from __future__ import annotations

from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.data.registry import load_catalog

runner = CliRunner()


def _tables(output: str) -> tuple[list[str], list[str]]:
    """The rows of the datasets table and of the splits table after it (headers dropped)."""
    datasets, _, splits = output.partition("\nsplits\n")
    return [ln for ln in datasets.splitlines()[2:] if ln.strip()], [ln for ln in splits.splitlines()[2:] if ln.strip()]


def test_list_shows_every_dataset_and_where(tmp_path):
    result = runner.invoke(app, ["datasets", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows, _ = _tables(result.output)
    names = {line.split()[0] for line in rows}
    assert names == set(load_catalog()) and len(rows) == len(names)
    pets = next(line for line in result.output.splitlines() if line.startswith("oxford-pets "))
    assert "not downloaded" in pets
    synth = next(line for line in result.output.splitlines() if line.startswith("synth-pets "))
    assert "stands in for oxford-pets" in synth


def test_list_prints_the_three_splits_of_every_dataset(tmp_path):
    result = runner.invoke(app, ["datasets", "list", "--data-dir", str(tmp_path)])
    _, splits = _tables(result.output)
    catalog = load_catalog()
    assert [ln.split()[:2] for ln in splits] == [[n, s] for n in catalog for s in ("train", "val", "test")]
    for line in splits:  # each row holds the catalog's description of that split
        name, split = line.split()[:2]
        assert line.split(None, 2)[2] == catalog[name].splits[split]
    pets_test = next(ln for ln in splits if ln.split()[:2] == ["oxford-pets", "test"])
    assert "annotations/test.txt (3669 images)" in pets_test
    lfw_test = next(ln for ln in splits if ln.split()[:2] == ["lfw", "test"])
    assert "View 2" in lfw_test and "fold=0..9" in lfw_test
    only_seg = runner.invoke(app, ["datasets", "list", "--task", "seg", "--data-dir", str(tmp_path)]).output
    assert {ln.split()[0] for ln in _tables(only_seg)[1]} == {"oxford-pets", "synth-pets", "synth-vessels"}


def test_list_marks_a_present_dataset_with_its_folder(tmp_path):
    info = load_catalog()["oxford-pets"]
    for rel in info.layout:
        (tmp_path / "oxford-pets" / rel).mkdir(parents=True, exist_ok=True)
    for f in info.files:  # the extraction markers `cvloss datasets download` writes last
        (tmp_path / "oxford-pets" / f".extracted-{f.filename}").touch()
    result = runner.invoke(app, ["datasets", "list", "--task", "seg", "--data-dir", str(tmp_path)])
    pets = next(line for line in result.output.splitlines() if line.startswith("oxford-pets "))
    assert " yes " in pets and str(tmp_path / "oxford-pets") in pets


def test_list_calls_a_half_extracted_dataset_incomplete(tmp_path):
    # LFW's two text lists without its images (or without the archive's marker): not present.
    root = tmp_path / "lfw"
    root.mkdir()
    for name in ("peopleDevTrain.txt", "pairs.txt"):
        (root / name).write_text("1\n")
    result = runner.invoke(app, ["datasets", "list", "--task", "embed", "--data-dir", str(tmp_path)])
    lfw = next(line for line in result.output.splitlines() if line.startswith("lfw "))
    assert " no " in lfw and "incomplete" in lfw and "cvloss datasets download lfw" in lfw


def test_verify_names_missing_and_corrupt_files(tmp_path):
    root = tmp_path / "oxford-pets"
    root.mkdir()
    (root / "images.tar.gz").write_bytes(b"not the real archive")
    result = runner.invoke(app, ["datasets", "verify", "oxford-pets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "mismatch" in result.output and "missing" in result.output
    assert "error: oxford-pets: 2 file(s) missing or corrupt: images.tar.gz, annotations.tar.gz" in result.output


def test_download_offline_names_url_and_path(tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    result = runner.invoke(app, ["datasets", "download", "oxford-pets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert "https://" in line and str(tmp_path / "oxford-pets" / "images.tar.gz") in line


def test_unknown_dataset():
    result = runner.invoke(app, ["datasets", "verify", "petz"])
    assert result.exit_code == 2 and "unknown dataset 'petz'" in result.output and "oxford-pets" in result.output
