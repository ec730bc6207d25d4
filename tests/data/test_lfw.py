"""LFW loader on a tiny fixture built at test time in the real on-disk layout:
``lfw-deepfunneled/Name/Name_0001.jpg`` (or ``lfw/``); View 2: ``people.txt`` ("10", then
10 sets of a count line and "name\\tn" lines) and ``pairs.txt`` ("10\\tN" header, 10 folds
of N same then N different pairs, fold k drawn from set k); View 1: ``peopleDevTrain.txt``
and ``pairsDevTest.txt`` (a count line, N same then N different pairs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data.lfw import (load_lfw, read_pairs, read_people_sets, train_people, usable_train_identities)
from cvloss.data.registry import extraction_marker, get_dataset, is_present, load_dataset, presence_problem
from cvloss.data.types import DatasetError

# View 2 people -> number of images: Person_A .. Person_T, 2 or 3 images, Person_T only 1.
NAMES = [f"Person_{chr(65 + i)}" for i in range(20)]
PEOPLE = {n: (1 if n == "Person_T" else 2 + i % 2) for i, n in enumerate(NAMES)}
SETS = [NAMES[2 * k: 2 * k + 2] for k in range(10)]  # set k of people.txt: persons 2k and 2k+1
# View 1: training people (two View 2 people, as the real lists share people across views,
# one pairsDevTest person that must be dropped, and people of View 1 only).
TRAIN_ONLY = {"Train_One": 3, "Train_Two": 2, "Train_Solo": 1}
DEV_TRAIN = [NAMES[0], NAMES[5], NAMES[3], *TRAIN_ONLY]
C, D, E = NAMES[2], NAMES[3], NAMES[4]  # C, D: set 1; E: set 2
DEV_TEST = [f"{D}\t1\t2", f"{C}\t1\t2", f"{D}\t1\t{E}\t2", f"{C}\t2\t{D}\t2"]  # 2 same, 2 different
COUNTS = {**PEOPLE, **TRAIN_ONLY}


def colour(name: str, n: int) -> tuple[int, int, int]:
    k = (NAMES + sorted(TRAIN_ONLY)).index(name)
    return (10 * k % 256, 40 * n, 200)


def build_lfw(root: Path, folder: str = "lfw-deepfunneled") -> Path:
    for name, count in COUNTS.items():
        (root / folder / name).mkdir(parents=True)
        for n in range(1, count + 1):
            # 250×250 like the real images; the centre holds the colour, the border is grey
            # (the loader's centre crop must cut it away).
            a = np.full((250, 250, 3), 128, np.uint8)
            a[60:190, 60:190] = colour(name, n)
            Image.fromarray(a).save(root / folder / name / f"{name}_{n:04d}.jpg", quality=95)
    people = ["10"]
    for members in SETS:
        people += [str(len(members))] + [f"{n}\t{PEOPLE[n]}" for n in members]
    (root / "people.txt").write_text("\n".join(people) + "\n")
    # pairs.txt: 10 folds x (1 same + 1 different); fold k uses the people of set k.
    lines = ["10\t1"]
    for a, b in SETS:
        lines += [f"{a}\t1\t2", f"{a}\t2\t{b}\t1"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    (root / "peopleDevTrain.txt").write_text(f"{len(DEV_TRAIN)}\n" + "".join(f"{n}\t{COUNTS[n]}\n" for n in DEV_TRAIN))
    (root / "pairsDevTest.txt").write_text("2\n" + "\n".join(DEV_TEST) + "\n")
    return root


@pytest.fixture
def lfw_root(tmp_path: Path) -> Path:
    return build_lfw(tmp_path / "lfw")


def _check_pairs(data, plist) -> None:
    """Every pair of ``data`` indexes the images of ``plist`` (colour = (person, number))."""
    assert data.pairs.shape == (len(plist), 2)
    for (a, i, b, j), (p, q) in zip(plist, data.pairs.tolist()):
        for name, n, idx in ((a, i, p), (b, j, q)):
            got = data.images[idx].float().mean(dim=(1, 2))
            assert torch.allclose(got, torch.tensor(colour(name, n), dtype=torch.float), atol=4)
            assert data.identities[int(data.labels[idx])] == name


def _people_of_pairs(data) -> set[str]:
    return {data.identities[int(data.labels[i])] for i in data.pairs.flatten().tolist()}


def test_read_pairs_and_people_sets(lfw_root):
    pairs, same, folds = read_pairs(lfw_root / "pairs.txt")
    assert len(pairs) == 20 and same.tolist() == [True, False] * 10
    assert folds.tolist() == list(np.repeat(np.arange(10), 2))
    assert pairs[1] == (NAMES[0], 2, NAMES[1], 1)
    sets = read_people_sets(lfw_root / "people.txt")
    assert [[n for n, _ in s] for s in sets] == SETS and sets[9] == [("Person_S", 2), ("Person_T", 1)]


def test_people_txt_errors_are_one_line(lfw_root):
    path = lfw_root / "people.txt"
    text = path.read_text()
    path.write_text(text.replace("Person_D\t3", "Person_A\t2"))  # Person_A in sets 0 and 1
    with pytest.raises(DatasetError, match="Person_A is in set 0 and set 1"):
        read_people_sets(path)
    path.write_text(text.rsplit("\n", 2)[0] + "\n")  # the last person's line is missing
    with pytest.raises(DatasetError, match="set 9 announces 2 people, the file ends after 1"):
        read_people_sets(path)


def test_view1_train_is_dev_train_minus_the_dev_test_people(lfw_root):
    d = load_lfw(lfw_root, "train", size=16)
    assert d.identities == (NAMES[0], NAMES[5], *TRAIN_ONLY)  # Person_D is in pairsDevTest.txt
    assert len(d) == sum(COUNTS[n] for n in d.identities) == 2 + 3 + 6
    assert np.bincount(d.labels.numpy()).tolist() == [COUNTS[n] for n in d.identities]
    # Decoding, centre crop (no grey border left) and labels line up.
    first = d.images[0].float().mean(dim=(1, 2))
    assert torch.allclose(first, torch.tensor(colour(d.identities[0], 1), dtype=torch.float), atol=4)
    assert load_lfw(lfw_root, "train", size=16, limit=1).num_identities == 1


def test_view1_val_is_dev_test_and_identity_disjoint_from_train(lfw_root):
    v = load_lfw(lfw_root, "val", size=16)
    plist, same, _ = read_pairs(lfw_root / "pairsDevTest.txt")
    assert v.same.tolist() == [True, True, False, False] and v.folds.tolist() == [0, 1, 2, 3]  # i mod 10
    _check_pairs(v, plist)
    assert not set(v.identities) & set(load_lfw(lfw_root, "train", size=16).identities)
    again = load_lfw(lfw_root, "val", size=16)  # deterministic
    assert torch.equal(again.images, v.images) and torch.equal(again.pairs, v.pairs)


def test_test_split_is_view2_and_needs_a_fold(lfw_root):
    with pytest.raises(DatasetError, match=r"test split is View 2 .* needs fold=0\.\.9") as err:
        load_lfw(lfw_root, "test", size=8)
    assert "\n" not in str(err.value)
    for bad in (10, -1, True, "1", 1.0):
        with pytest.raises(DatasetError, match=r"fold must be one of 0\.\.9"):
            load_lfw(lfw_root, "train", size=8, fold=bad)
    with pytest.raises(DatasetError, match="unknown split 'dev' for lfw"):
        load_lfw(lfw_root, "dev")


@pytest.mark.parametrize("fold", range(10))
def test_fold_protocol_trains_on_nine_sets_and_tests_on_the_tenth(lfw_root, fold):
    train = load_lfw(lfw_root, "train", size=8, fold=fold)
    test = load_lfw(lfw_root, "test", size=8, fold=fold)
    others = [n for k, s in enumerate(SETS) if k != fold for n in s]
    assert train.identities == tuple(others) and len(train) == sum(PEOPLE[n] for n in others)
    a, b = SETS[fold]
    plist = [(a, 1, a, 2), (a, 2, b, 1)]
    _check_pairs(test, plist)
    assert test.same.tolist() == [True, False] and test.folds.tolist() == [fold, fold]
    # Disjoint by person: no test pair uses anyone of the fold's training people ...
    assert not _people_of_pairs(test) & set(train.identities)
    # ... and together they cover View 2's people.
    assert set(train.identities) | set(test.identities) == set(NAMES)
    assert usable_train_identities(lfw_root, fold=fold) == sum(PEOPLE[n] >= 2 for n in others) == \
        int((torch.bincount(train.labels) >= 2).sum())


def test_fold_val_is_the_nine_training_folds_pairs(lfw_root):
    """LFW chooses fold f's threshold on the pairs of the nine other folds: val in a fold."""
    for fold in (0, 1):
        v = load_lfw(lfw_root, "val", size=8, fold=fold)
        plist, _, folds = read_pairs(lfw_root / "pairs.txt")
        _check_pairs(v, [p for p, k in zip(plist, folds) if k != fold])
        assert fold not in v.folds.tolist() and len(set(v.folds.tolist())) == 9
        assert not _people_of_pairs(v) & _people_of_pairs(load_lfw(lfw_root, "test", size=8, fold=fold))


def test_a_test_fold_that_uses_training_people_is_refused(lfw_root):
    path = lfw_root / "pairs.txt"
    path.write_text(path.read_text().replace(f"{NAMES[0]}\t2\t{NAMES[1]}\t1", f"{NAMES[0]}\t2\t{C}\t1"))
    with pytest.raises(DatasetError, match=r"fold 0 of pairs.txt uses 1 training person\(s\) .*Person_C"):
        load_lfw(lfw_root, "test", size=8, fold=0)
    assert len(load_lfw(lfw_root, "test", size=8, fold=1).same) == 2  # the other folds still load


def test_usable_identities_are_counted_from_the_lists(lfw_root):
    # View 1: Person_A (2), Person_F (3), Train_One (3), Train_Two (2); Train_Solo has one image.
    assert usable_train_identities(lfw_root) == 4
    assert usable_train_identities(lfw_root, limit=2) == 2
    assert usable_train_identities(lfw_root, fold=9) == 18 and usable_train_identities(lfw_root, fold=0) == 17


def test_plain_lfw_folder(tmp_path):
    root = build_lfw(tmp_path / "lfw", folder="lfw")  # only the plain (not funneled) images
    v = load_lfw(root, "val", size=8)
    assert set(v.identities) == {C, D, E}


def test_catalog_entry_reads_the_layout(tmp_path):
    root = build_lfw(tmp_path / "lfw")
    info = get_dataset("lfw")
    assert "people.txt" in [f.filename for f in info.files] and "people.txt" in info.layout
    assert "no completion marker for lfw.tgz, lfw-deepfunneled.tgz" in presence_problem(info, tmp_path)
    for f in info.files:  # as `cvloss datasets download` leaves it
        extraction_marker(root, f.filename).touch()
    assert is_present(info, tmp_path)
    d = load_dataset("lfw", "train", data_dir=tmp_path, size=8)
    assert d.name == "lfw" and len(d) == 11
    # The task's call shape: test with the same keyword arguments as val, plus the fold.
    kw = dict(data_dir=tmp_path, size=8, task="embed", optional=dict(n_ids=5, per_id=2, pairs_per_fold=3))
    assert len(load_dataset("lfw", "val", **kw).same) == 4
    assert load_dataset("lfw", "test", fold=4, **kw).folds.tolist() == [4, 4]


def test_errors_name_the_problem(lfw_root, tmp_path):
    (lfw_root / "pairs.txt").write_text("10\t300\nPerson_A\t1\t2\n")
    with pytest.raises(DatasetError, match="expected 6000 pair lines"):
        load_lfw(lfw_root, "test", fold=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no LFW image folder"):
        load_lfw(empty, "train")
