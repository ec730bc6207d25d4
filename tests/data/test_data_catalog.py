"""datasets.toml parses, every field is there, every loader imports,
the data-dir precedence, and the registry's errors."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from cvloss.data import registry
from cvloss.data.registry import (DatasetError, dataset_dir, datasets_for, default_dataset, get_dataset,
                                  is_present, load_catalog, load_dataset, register_dataset, resolve_data_dir)
from cvloss.task_registry import task_names

DESIGN_DATASETS = {
    "seg": {"oxford-pets", "synth-pets", "synth-vessels"},
    "sr": {"div2k", "skimage-photos"},
    "style": {"div2k", "skimage-photos"},
    "embed": {"lfw", "synth-ids"},
    "translate": {"horse2zebra", "synth-stripes"},
    "gan": {"ring8", "grid25"},
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _resolves(loader: str) -> bool:
    module, _, func = loader.partition(":")
    try:
        return callable(getattr(importlib.import_module(module), func))
    except (ImportError, AttributeError):
        return False


def test_catalog_has_every_design_dataset(catalog):
    for task, names in DESIGN_DATASETS.items():
        assert {i.name for i in datasets_for(task, catalog)} == names, task


def test_every_field_is_filled(catalog):
    for info in catalog.values():
        assert info.description and info.license and info.citation and info.loader, info.name
        assert info.tasks and list(info.splits) == ["train", "val", "test"], info.name
        if info.embedded:
            assert info.files == () and info.layout == () and info.size_bytes == 0, info.name
        else:
            assert info.files and info.layout and info.urls and info.size_bytes > 0, info.name
            for f in info.files:
                assert f.url.startswith(("http://", "https://")) and f.filename, (info.name, f)
                assert f.algo in ("md5", "sha256", ""), (info.name, f)
                assert len(f.checksum) == {"md5": 32, "sha256": 64, "": 0}[f.algo], (info.name, f)
        if info.real is not None:
            assert info.embedded and info.real in catalog, info.name


def test_every_loader_imports(catalog):
    for info in catalog.values():
        assert _resolves(info.loader), f"{info.name}: loader {info.loader} does not import"


def test_checksums_are_the_ones_torchvision_publishes(catalog):
    from torchvision.datasets import OxfordIIITPet
    from torchvision.datasets.lfw import _LFW

    pets = {f.url: f.checksum for f in catalog["oxford-pets"].files}
    assert pets == dict(OxfordIIITPet._RESOURCES)
    published = {fn: md5 for _, fn, md5 in _LFW.file_dict.values()} | _LFW.checksums
    for f in catalog["lfw"].files:
        assert (f.algo, f.checksum) == ("md5", published[f.filename]), f.filename
    for name in ("div2k", "horse2zebra"):  # no published checksum
        assert all(f.algo == "" and f.checksum == "" for f in catalog[name].files)


def test_defaults_are_embedded(catalog):
    for task in task_names():
        info = catalog[default_dataset(task)]
        assert info.embedded and task in info.tasks


def _ramp(root, split, size=4, limit=None):
    """A loader of a registered dataset: ``size`` values of one split, ``limit`` at most."""
    return [f"{split}{i}" for i in range(size)][:limit]


@pytest.fixture
def registered_ramp(monkeypatch):
    """``ramp`` registered for seg (as a plugin's import would); gone after the test."""
    monkeypatch.setattr(registry.DATASETS, "_entries", dict(registry.DATASETS._entries))
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    return register_dataset("ramp", tasks="seg", loader=_ramp, description="a ramp of names")


def test_a_registered_dataset_joins_the_catalog_and_loads(registered_ramp, tmp_path):
    info = registered_ramp
    assert (info.tasks, info.embedded, info.files, info.loader) == (("seg",), True, (), f"{__name__}:_ramp")
    assert set(info.splits) == {"train", "val", "test"}
    assert load_catalog()["ramp"] == info and [i.name for i in datasets_for("seg")][-1] == "ramp"
    assert load_dataset("ramp", "val", data_dir=tmp_path, size=3, limit=2, task="seg") == ["val0", "val1"]
    assert register_dataset("ramp", tasks="seg", loader=_ramp, description="a ramp of names") == info  # again: no-op
    with pytest.raises(DatasetError, match="serves seg, not 'sr'"):
        get_dataset("ramp", task="sr")
    with pytest.raises(DatasetError, match="loader name 'ramp' is registered already"):
        register_dataset("ramp", tasks="seg", loader=lambda root, split: [], description="another")
    with pytest.raises(DatasetError, match="is cvloss's own"):
        register_dataset("div2k", tasks="sr", loader=_ramp, description="a clash")


def test_a_registered_dataset_of_a_task_not_installed_is_left_out(monkeypatch):
    monkeypatch.setattr(registry.DATASETS, "_entries", dict(registry.DATASETS._entries))
    monkeypatch.setattr(registry, "_REGISTERED", dict(registry._REGISTERED))
    register_dataset("orphan", tasks="no-such-task", loader=_ramp, description="its task's plugin is gone")
    assert "orphan" not in load_catalog()


def test_data_dir_precedence(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("CVLOSS_DATA", raising=False)
    assert resolve_data_dir(None) == Path(platformdirs.user_cache_dir("cvloss"))
    monkeypatch.setenv("CVLOSS_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_dir(str(tmp_path / "cli")) == tmp_path / "cli"
    monkeypatch.setenv("CVLOSS_DATA", "")
    assert resolve_data_dir(None) == Path(platformdirs.user_cache_dir("cvloss"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/d") == tmp_path / "d"
    assert dataset_dir("oxford-pets", tmp_path) == tmp_path / "oxford-pets"
    assert not (tmp_path / "env").exists()  # resolving creates nothing


def test_unknown_names_list_the_valid_ones(catalog):
    with pytest.raises(DatasetError, match=r"unknown dataset 'oxford-pet'.*did you mean 'oxford-pets'.*"
                                           r"valid: oxford-pets, synth-pets, synth-vessels"):
        get_dataset("oxford-pet", "seg", catalog)
    with pytest.raises(DatasetError, match=r"'lfw' serves embed, not 'seg'"):
        get_dataset("lfw", "seg", catalog)
    with pytest.raises(DatasetError, match="unknown task"):
        datasets_for("segmentation", catalog)
    with pytest.raises(DatasetError, match="unknown split 'valid' for dataset 'synth-pets'; valid: train, val, test"):
        load_dataset("synth-pets", "valid")
    assert issubclass(DatasetError, ValueError)


def test_missing_real_dataset_says_how_to_get_it(tmp_path, catalog):
    assert not is_present(catalog["oxford-pets"], tmp_path)
    assert is_present(catalog["synth-pets"], tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset("oxford-pets", "train", data_dir=tmp_path)
    msg = str(err.value)
    assert "cvloss datasets download oxford-pets" in msg and str(tmp_path / "oxford-pets") in msg
    assert "\n" not in msg
    with pytest.raises(DatasetError, match="cvloss datasets download div2k"):  # div2k's loader is ready now
        load_dataset("div2k", "train", data_dir=tmp_path)


def test_load_dataset_goes_through_the_loader(pets_root):
    data = load_dataset("oxford-pets", "test", data_dir=pets_root.parent, size=16, seed=3)
    assert data.images.shape == (2, 3, 16, 16) and data.name == "oxford-pets"
    assert len(load_dataset("oxford-pets", "val", data_dir=pets_root.parent, size=16, seed=3)) == 4
    data = get_dataset("synth-pets").load("train", size=32, limit=3, seed=1)
    assert data.images.shape == (3, 3, 32, 32) and data.real == "oxford-pets"
    with pytest.raises(DatasetError, match="does not take option"):
        load_dataset("synth-pets", "train", limit=2, scale=4)


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "datasets.toml"
    p.write_text(body)
    return p


GOOD = """
[datasets.x]
name = "x"
tasks = ["seg"]
description = "d"
urls = []
files = [{ url = "http://h/x.zip", filename = "x.zip", size = 0, md5 = "0123456789abcdef0123456789abcdef" }]
layout = ["x"]
size_bytes = 1
license = "l"
citation = "c"
loader = "seg-folder"
embedded = false
real = ""
splits = { train = "a", val = "b", test = "c" }
"""


def test_malformed_catalog_entries_are_named(tmp_path):
    assert load_catalog(_write(tmp_path, GOOD))["x"].files[0].algo == "md5"
    cases = {
        'license = "l"\n': "lacks license",
        'md5 = "0123456789abcdef0123456789abcdef"': "exactly one of md5",
        '"0123456789abcdef0123456789abcdef"': "bad md5",
        'tasks = ["seg"]': "tasks",
        'filename = "x.zip"': "plain file name",
        ', test = "c" }': "must describe each split train, val, test",
    }
    replacement = {
        'license = "l"\n': "",
        'md5 = "0123456789abcdef0123456789abcdef"': 'md5 = "0123456789abcdef0123456789abcdef", checksum = ""',
        '"0123456789abcdef0123456789abcdef"': '"zz"',
        'tasks = ["seg"]': 'tasks = ["segm"]',
        'filename = "x.zip"': 'filename = "../x.zip"',
        ', test = "c" }': " }",
    }
    for old, match in cases.items():
        with pytest.raises(DatasetError, match=match):
            load_catalog(_write(tmp_path, GOOD.replace(old, replacement[old])))
