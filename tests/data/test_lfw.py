"""LFW loader on a tiny fixture built at test time in the real on-disk layout:
``lfw-deepfunneled/Name/Name_0001.jpg`` (or ``lfw/``), ``pairs.txt`` ("10\\tN" header, 10
folds of N same then N different pairs), ``peopleDevTrain.txt``, ``pairsDevTest.txt``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data.lfw import load_lfw, read_pairs
from cvloss.data.registry import extraction_marker, get_dataset, is_present, load_dataset, presence_problem
from cvloss.data.types import DatasetError

# Person -> number of images. Each image is a flat colour that encodes (person, number).
PEOPLE = {f"Person_{chr(65 + i)}": 2 + i % 2 for i in range(20)}  # Person_A .. Person_T
NAMES = sorted(PEOPLE)
TRAIN_ONLY = {"Train_One": 3, "Train_Two": 2, "Train_Solo": 1}


def colour(name: str, n: int) -> tuple[int, int, int]:
    k = (NAMES + sorted(TRAIN_ONLY)).index(name)
    return (10 * k % 256, 40 * n, 200)


def build_lfw(root: Path, folder: str = "lfw-deepfunneled") -> Path:
    for name, count in {**PEOPLE, **TRAIN_ONLY}.items():
        (root / folder / name).mkdir(parents=True)
        for n in range(1, count + 1):
            # 250×250 like the real images; the centre holds the colour, the border is grey
            # (the loader's centre crop must cut it away).
            a = np.full((250, 250, 3), 128, np.uint8)
            a[60:190, 60:190] = colour(name, n)
            Image.fromarray(a).save(root / folder / name / f"{name}_{n:04d}.jpg", quality=95)
    # pairs.txt: 10 folds x (1 same + 1 different); fold k uses persons 2k and 2k+1.
    lines = ["10\t1"]
    for k in range(10):
        a, b = NAMES[2 * k], NAMES[2 * k + 1]
        lines += [f"{a}\t1\t2", f"{a}\t2\t{b}\t1"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    # View 1: peopleDevTrain lists two pairs.txt people (to be excluded) and the train-only ones.
    dev = [NAMES[0], NAMES[5], *TRAIN_ONLY]
    counts = {**PEOPLE, **TRAIN_ONLY}
    (root / "peopleDevTrain.txt").write_text(f"{len(dev)}\n" + "".join(f"{n}\t{counts[n]}\n" for n in dev))
    (root / "pairsDevTest.txt").write_text(f"1\n{NAMES[3]}\t1\t2\n{NAMES[3]}\t1\t{NAMES[4]}\t2\n")
    return root


@pytest.fixture
def lfw_root(tmp_path: Path) -> Path:
    return build_lfw(tmp_path / "lfw")


def test_read_pairs_parses_folds(lfw_root):
    pairs, same, folds = read_pairs(lfw_root / "pairs.txt")
    assert len(pairs) == 20 and same.tolist() == [True, False] * 10
    assert folds.tolist() == list(np.repeat(np.arange(10), 2))
    assert pairs[1] == (NAMES[0], 2, NAMES[1], 1)


def test_train_excludes_every_identity_of_the_evaluation_pairs(lfw_root):
    d = load_lfw(lfw_root, "train", size=16)
    assert set(d.identities) == set(TRAIN_ONLY)  # Person_A / Person_F are in pairs.txt
    assert len(d) == 6 and d.images.shape == (6, 3, 16, 16)
    assert np.bincount(d.labels.numpy()).tolist() == [TRAIN_ONLY[n] for n in d.identities]
    # Decoding, centre crop (no grey border left) and labels line up.
    first = d.images[0].float().mean(dim=(1, 2))
    assert torch.allclose(first, torch.tensor(colour(d.identities[0], 1), dtype=torch.float), atol=4)
    assert load_lfw(lfw_root, "train", size=16, limit=1).num_identities == 1


def test_val_pairs_index_the_right_images(lfw_root):
    v = load_lfw(lfw_root, "val", size=16)
    assert v.pairs.shape == (20, 2) and v.same.tolist() == [True, False] * 10
    assert v.folds.tolist() == list(np.repeat(np.arange(10), 2))
    pairs, _, _ = read_pairs(lfw_root / "pairs.txt")
    for (a, i, b, j), (p, q) in zip(pairs, v.pairs.tolist()):
        for name, n, idx in ((a, i, p), (b, j, q)):
            got = v.images[idx].float().mean(dim=(1, 2))
            assert torch.allclose(got, torch.tensor(colour(name, n), dtype=torch.float), atol=4)
            assert v.identities[int(v.labels[idx])] == name
    assert not set(v.identities) & set(load_lfw(lfw_root, "train", size=16).identities)


def test_dev_pairs_option_and_plain_lfw_folder(tmp_path):
    root = build_lfw(tmp_path / "lfw", folder="lfw")  # only the plain (not funneled) images
    v = load_lfw(root, "val", size=8, pairs="pairsDevTest.txt")
    assert v.same.tolist() == [True, False] and v.folds.tolist() == [0, 1]
    assert set(v.identities) == {NAMES[3], NAMES[4]}


def test_catalog_entry_reads_the_layout(tmp_path):
    root = build_lfw(tmp_path / "lfw")
    info = get_dataset("lfw")
    assert "no completion marker for lfw.tgz, lfw-deepfunneled.tgz" in presence_problem(info, tmp_path)
    for f in info.files:  # as `cvloss datasets download` leaves it
        extraction_marker(root, f.filename).touch()
    assert is_present(info, tmp_path)
    d = load_dataset("lfw", "train", data_dir=tmp_path, size=8)
    assert d.name == "lfw" and len(d) == 6


def test_errors_name_the_problem(lfw_root, tmp_path):
    (lfw_root / "pairs.txt").write_text("10\t300\nPerson_A\t1\t2\n")
    with pytest.raises(DatasetError, match="expected 6000 pair lines"):
        load_lfw(lfw_root, "val")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no LFW image folder"):
        load_lfw(empty, "train")
