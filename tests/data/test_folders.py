"""Dataset folders (cvloss.data.folders): layouts of every task, splits.txt and the seeded
split (disjoint, fixed), the results label and the fingerprint, ignore_index, the user
catalog, and every bad input as one line naming the file."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data import folders
from cvloss.data.folders import dataset_label, fingerprint, index_folder, load_embed_folder, load_seg_folder
from cvloss.data.registry import get_dataset, load_catalog, load_dataset
from cvloss.data.types import DatasetError, SegData

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_folder_datasets", Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py")
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)


def _keys(data) -> set[str]:
    return set(data)


@pytest.mark.parametrize("task", ["seg", "sr", "embed", "translate"])
def test_each_layout_loads_three_disjoint_splits_through_load_dataset(tmp_path, task):
    root = fd.BUILDERS[task](tmp_path / task)
    idx = index_folder(root)
    assert idx.task == task
    splits = idx.splits
    assert all(splits[s] for s in ("train", "val", "test"))
    seen = [set(splits[s]) for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    size = 16 if task != "sr" else None
    for split in ("train", "val", "test"):
        data = load_dataset(str(root), split, size=size, task=task)
        assert data.name == dataset_label(str(root.resolve()))
    if task == "seg":
        assert len(splits["val"]) == len(splits["test"]) == 1 and len(splits["train"]) == 10  # 12 files: 80/10/10
    if task == "translate":  # horse2zebra's rule: 1 of 10 per domain as val, testA/B as test
        assert sorted(splits["val"]) == sorted(set(splits["val"])) and len(splits["val"]) == 2
        assert all(k.startswith(("testA/", "testB/")) for k in splits["test"]) and len(splits["test"]) == 6


def test_seeded_split_is_fixed_and_independent_of_the_trial_seed(tmp_path):
    a = index_folder(fd.build_seg(tmp_path / "a", n=30)).splits
    b = index_folder(fd.build_seg(tmp_path / "b", n=30)).splits
    assert a == b  # same stems -> the same split, whatever folder or run
    assert [len(a[s]) for s in ("train", "val", "test")] == [24, 3, 3]
    order = np.random.default_rng([folders.SPLIT_SEED, 0]).permutation(30)
    assert a["val"] == sorted(f"img{i:02d}" for i in order[:3])


def test_splits_txt_is_honoured_and_must_be_disjoint(tmp_path):
    root = fd.build_seg(tmp_path / "d", n=6)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("img00\nimages/img01.png\n# a comment\n\nimg02.png\n")
    (root / "splits" / "val.txt").write_text("img03\n")
    (root / "splits" / "test.txt").write_text("img04\n")
    idx = index_folder(root)
    assert idx.splits == {"train": ["img00", "img01", "img02"], "val": ["img03"], "test": ["img04"]}
    assert "split by splits/*.txt" in idx.description and "1 images in no split" in idx.description
    assert len(load_seg_folder(root, "train", size=16)) == 3
    (root / "splits" / "test.txt").write_text("img04\nimg00\n")
    with pytest.raises(DatasetError, match=r"test.txt line 2: 'img00' is already listed in splits/train.txt"):
        index_folder(root)
    (root / "splits" / "test.txt").write_text("nope\n")
    with pytest.raises(DatasetError, match=r"test.txt line 1: 'nope' is not in the dataset folder"):
        index_folder(root)
    (root / "splits" / "test.txt").unlink()
    with pytest.raises(DatasetError, match=r"lacks splits/test.txt"):
        index_folder(root)


def test_embed_splits_by_identity_with_ten_folds_of_distinct_pairs(tmp_path):
    root = fd.build_embed(tmp_path / "ids", n_ids=46, per_id=3)
    idx = index_folder(root)
    assert [len(idx.splits[s]) for s in ("train", "val", "test")] == [6, 20, 20]
    train, val = load_embed_folder(root, "train", size=16), load_embed_folder(root, "val", size=16, pairs_per_fold=3)
    assert set(train.identities).isdisjoint(val.identities) and train.pairs is None
    assert set(val.folds.tolist()) == set(range(10))
    pairs = [tuple(p) for p in val.pairs.tolist()]
    assert len(pairs) == len(set(pairs))  # distinct
    same = val.same.numpy()
    lab = val.labels.numpy()
    assert all((lab[a] == lab[b]) == s for (a, b), s in zip(pairs, same))
    for f in range(10):  # balanced per fold, identities of one fold only
        in_fold = val.folds.numpy() == f
        assert same[in_fold].sum() == (~same[in_fold]).sum() > 0
    fold_ids = {}
    for (a, b), f in zip(pairs, val.folds.tolist()):
        for i in (lab[a], lab[b]):
            assert fold_ids.setdefault(i, f) == f


def test_embed_splits_txt_names_identity_folders(tmp_path):
    root = fd.build_embed(tmp_path / "ids", n_ids=23)
    (root / "splits").mkdir()
    names = sorted(p.name for p in root.iterdir() if p.name.startswith("person"))
    (root / "splits" / "train.txt").write_text("\n".join(names[:3]) + "\n")
    (root / "splits" / "val.txt").write_text("\n".join(names[3:23]) + "\n")
    (root / "splits" / "test.txt").write_text("\n".join(names[3:23]) + "\n")
    with pytest.raises(DatasetError, match="already listed in splits/val.txt"):
        index_folder(root)
    (root / "splits" / "test.txt").write_text(names[0] + "/\n")
    with pytest.raises(DatasetError, match="already listed in splits/train.txt"):
        index_folder(root)


def test_label_is_basename_and_path_hash(tmp_path):
    root = fd.build_sr(tmp_path / "my photos")
    path = str(root.resolve())
    assert dataset_label(path) == f"my_photos-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    assert dataset_label("synth-pets") == "synth-pets"


def test_fingerprint_changes_with_any_file_and_only_then(tmp_path):
    root = fd.build_seg(tmp_path / "d", n=4)
    first = fingerprint(root)
    assert fingerprint(root) == first
    mask = root / "masks" / "img01.png"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))  # touched
    assert fingerprint(root) != first
    touched = fingerprint(root)
    (root / ".DS_Store").write_text("hidden files are no data")
    assert fingerprint(root) == touched
    (root / "images" / "img01.png").rename(root / "images" / "img09.png")
    assert fingerprint(root) != touched


def test_ignore_index_is_carried_and_checked(tmp_path):
    root = fd.build_seg(tmp_path / "d", n=4, ignore=255)
    data = load_seg_folder(root, "train", size=16)
    assert data.ignore_index == 255 and data.class_names == ("c0", "c1", "c2")
    assert (data.masks == 255).sum() == 4 * len(data) and int(data.masks[data.masks != 255].max()) <= 2
    with pytest.raises(DatasetError, match="is a class id"):
        SegData(images=data.images, masks=data.masks, class_names=data.class_names, name="x", ignore_index=1)
    with pytest.raises(DatasetError, match=r"values must lie in \[0, 3\)"):
        SegData(images=data.images, masks=data.masks, class_names=data.class_names, name="x")


def test_seg_task_refuses_a_loss_without_the_data_ignore_index():
    from cvloss.errors import UsageError
    from cvloss.losses import build_loss
    from cvloss.tasks.seg import check_ignore_index

    check_ignore_index(build_loss("ce(ignore_index=255)+dice(ignore_index=255)", task="seg"), 255)
    with pytest.raises(UsageError, match=r"loss term\(s\) dice do not: write each as e.g. 'dice\(ignore_index=255\)'"):
        check_ignore_index(build_loss("ce(ignore_index=255)+dice", task="seg"), 255)


def _png(path: Path, size=(16, 16), mode="RGB", value=0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _bad(tmp_path: Path, case: str) -> tuple[Path, str, str]:
    """(folder, task, file the message must name) of one bad-input case."""
    root = tmp_path / case
    if case == "no-images":
        (root / "images").mkdir(parents=True), (root / "masks").mkdir()
        return root, "seg", str(root / "images")
    if case in ("mask-size", "class-id", "rgb-mask", "no-mask", "unreadable"):
        fd.build_seg(root, n=4)
        target = root / "masks" / "img02.png"
        if case == "mask-size":
            _png(target, (8, 8), "L")
        elif case == "class-id":
            _png(target, (16, 16), "L", 7)
        elif case == "rgb-mask":
            _png(target, (16, 16), "RGB")
        elif case == "no-mask":
            target.unlink()
            target = root / "images" / "img02.png"
        else:
            target = root / "images" / "img02.png"
            target.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        return root, "seg", str(target)
    if case == "few-ids":
        fd.build_embed(root, n_ids=30)
        return root, "embed", str(root)
    if case == "empty-trainB":
        fd.build_translate(root)
        for p in (root / "trainB").iterdir():
            p.unlink()
        return root, "translate", str(root / "trainB")
    if case == "symlink-out":
        fd.build_sr(root)
        outside = tmp_path / "secret.png"
        _png(outside)
        (root / "link.png").symlink_to(outside)
        return root, "sr", str(root / "link.png")
    raise AssertionError(case)


@pytest.mark.parametrize("case, fragment", [
    ("no-images", "no images in"), ("mask-size", "is 8x8 px but its image"), ("class-id", "has class id 7, but"),
    ("rgb-mask", "masks are single-channel PNGs"), ("no-mask", "has no mask"), ("unreadable", "cannot read image"),
    ("few-ids", "identities with 2+ images"), ("empty-trainB", "holds no images"),
    ("symlink-out", "symbolic link out of the dataset folder"),
])
def test_every_problem_is_one_line_naming_the_file(tmp_path, case, fragment):
    root, task, names = _bad(tmp_path, case)
    with pytest.raises(DatasetError) as err:
        index_folder(root, task)
    text = str(err.value)
    assert "\n" not in text and fragment in text and str(Path(names).resolve().parent) in text, text


def test_a_symlink_inside_the_folder_is_followed(tmp_path):
    root = fd.build_sr(tmp_path / "d")
    (root / "again.png").symlink_to(root / "photo0.png")
    assert "again" in {k for s in index_folder(root).splits.values() for k in s}


def test_an_image_above_the_pixel_cap_is_refused_before_decoding(tmp_path, monkeypatch):
    root = fd.build_sr(tmp_path / "d")
    monkeypatch.setattr(folders, "MAX_IMAGE_PIXELS", 48 * 56 - 1)
    with pytest.raises(DatasetError, match=r"photo0.png is 48x56 px, more than the 2687 pixels"):
        index_folder(root)


def test_the_file_count_is_capped(tmp_path, monkeypatch):
    root = fd.build_sr(tmp_path / "d")
    monkeypatch.setenv("CVLOSS_MAX_FOLDER_FILES", "3")
    with pytest.raises(DatasetError, match="holds more than 3 files"):
        index_folder(root)


def test_a_folder_that_does_not_fit_the_task_says_so(tmp_path):
    root = fd.build_sr(tmp_path / "photos")
    with pytest.raises(DatasetError, match="a seg folder needs images/ and masks/; this one lacks images/, masks/"):
        get_dataset(str(root), task="seg")
    with pytest.raises(DatasetError, match="task 'style' takes no dataset folder"):
        get_dataset(str(root), task="style")
    with pytest.raises(DatasetError, match="no such folder"):
        get_dataset("./no-such-folder", task="seg")
    info = get_dataset(str(root), task="sr")
    assert info.root == str(root.resolve()) and info.name == str(root.resolve()) and not info.embedded


def test_a_layout_registered_from_outside_is_detected_indexed_and_loaded(tmp_path, monkeypatch):
    """A plugin's :class:`FolderLayout`: tried before the broad built-in rules (embed would
    otherwise take any folder of sub-folders), indexed and split by its own functions."""
    root = tmp_path / "stereo"
    for i in range(10):
        _png(root / "left" / f"v{i}.png", value=i)

    def index(root, entries):
        return folders.Indexed({Path(e.rel).stem: (e,) for e in entries if e.rel.startswith("left/")},
                               lambda item: item, unit="views")

    layout = folders.FolderLayout(
        "left/", detect=lambda root, dirs: "left" in dirs, lacks=lambda root, dirs: None if "left" in dirs else "left/",
        index=index, seeded_split=folders._split_by_file("stereo", 9),
        loader=lambda root, split, **kw: folders.index_folder(root, "stereo").splits[split])
    monkeypatch.setitem(folders.LOADERS._entries, "stereo", layout)
    idx = index_folder(root)
    assert idx.task == "stereo" and [len(idx.splits[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert idx.description == (f"stereo folder {root}: 8 train / 1 val / 1 test views, split by seed 0x17f01d "
                               f"(80/10/10 by file)")
    order = np.random.default_rng([folders.SPLIT_SEED, 9]).permutation(10)
    assert idx.splits["val"] == [f"v{order[0]}"]  # its own seed stream
    assert folders.load_folder(root, "val") == idx.splits["val"]
    with pytest.raises(DatasetError, match="a stereo folder needs left/; this one lacks left/"):
        folders.detect_task(fd.build_sr(tmp_path / "photos"), "stereo")




def test_user_catalog_adds_entries_and_refuses_a_clash(tmp_path, monkeypatch):
    catalog = tmp_path / "mine.toml"
    catalog.write_text(fd.catalog_entry("my-masks"))
    monkeypatch.setenv("CVLOSS_CATALOG", str(catalog))
    monkeypatch.setenv("CVLOSS_DATA", str(tmp_path / "data"))
    assert "my-masks" in load_catalog() and "synth-pets" in load_catalog()
    with pytest.raises(DatasetError, match=r"dataset 'my-masks' is not in .*place its files there"):
        load_dataset("my-masks", "train", size=16)
    fd.build_seg(tmp_path / "data" / "my-masks", n=5)
    data = load_dataset("my-masks", "val", size=16)
    assert isinstance(data, SegData) and len(data) == 1
    catalog.write_text(fd.catalog_entry("synth-pets"))
    with pytest.raises(DatasetError, match=r"user catalog .*mine.toml: dataset 'synth-pets' is a built-in dataset"):
        load_catalog()
    catalog.write_text("[defaults]\nseg = 'x'\n")
    with pytest.raises(DatasetError, match=r"\[defaults\] table is not allowed"):
        load_catalog()


def test_seg_masks_resize_nearest_and_images_bilinear(tmp_path):
    root = fd.build_seg(tmp_path / "d", n=3, size=32)
    data = load_seg_folder(root, "train", size=16)
    assert data.images.shape[1:] == (3, 16, 16) and data.masks.dtype == torch.int64
    assert set(np.unique(data.masks.numpy())) <= {0, 1, 2}  # nearest: no interpolated ids


def test_the_readme_catalog_example_is_a_valid_user_catalog(tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S) if "[datasets." in b]
    (tmp_path / "mine.toml").write_text(example)
    monkeypatch.setenv("CVLOSS_CATALOG", str(tmp_path / "mine.toml"))
    info = load_catalog()["my-masks"]
    assert info.loader == "cvloss.data.folders:load_seg_folder" and info.files == ()


def test_every_fold_gets_pairs_when_only_ten_identities_have_two_images():
    # 20 identities, ids 0-9 with two images, 10-19 with one: the fewest the index allows
    labels = np.array([i for i in range(10) for _ in range(2)] + list(range(10, 20)))
    pairs, same, folds = folders._pairs(labels, 20, per_fold=3, code=1)
    for f in range(10):
        kinds = same[folds == f]
        assert kinds.sum() >= 1 and (~kinds).sum() == kinds.sum()
    assert all((labels[a] == labels[b]) == s for (a, b), s in zip(pairs, same))
