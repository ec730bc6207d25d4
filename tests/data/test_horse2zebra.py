"""The CycleGAN-layout loader (horse2zebra and any dataset in that layout) on a tiny
fixture built here in the real on-disk layout: ``<data-dir>/horse2zebra/horse2zebra/
{trainA,trainB,testA,testB}/*.jpg`` as the official zip extracts, with a grayscale JPEG
(some real horse2zebra images are) and a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data.horse2zebra import (VAL_SEED, TranslateData, find_cyclegan_root, load_cyclegan_folder, load_horse2zebra,
                                     split_files)
from cvloss.data.registry import extraction_marker, load_dataset
from cvloss.data.types import DatasetError

# trainB's 15 images give a val of 2 (10 %, rounded half up); trainA's 3 give 1 (at least one).
COUNTS = {"trainA": 3, "trainB": 15, "testA": 2, "testB": 2}


def _image(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth content (JPEG keeps it close): a colour gradient plus a block.
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([xx, yy, 1 - xx], -1) * rng.uniform(0.5, 1, 3)
    img[size // 4 : size // 2, size // 4 : size // 2] = rng.uniform(0, 1, 3)
    return (img * 255).astype(np.uint8)


def _seed(folder: str, i: int) -> int:
    return 100 * list(COUNTS).index(folder) + i


def build_cyclegan(root: Path, name: str = "horse2zebra") -> Path:
    """Write the fixture; returns ``<root>`` (= ``<data-dir>/<name>``)."""
    base = root / name
    for folder, n in COUNTS.items():
        (base / folder).mkdir(parents=True)
        for i in range(n):
            arr = _image(_seed(folder, i))
            # ImageNet synset of the domain and a number unique across folders, as in the
            # real archive (trainA/n02381460_1001.jpg, testA/n02381460_1000.jpg, ...)
            stem = f"{'n02381460' if folder.endswith('A') else 'n02391049'}_{_seed(folder, i) + 1}"
            if folder == "trainA" and i == 1:  # grayscale JPEG, as in the real set
                Image.fromarray(arr).convert("L").save(base / folder / f"{stem}.jpg", quality=95)
            elif folder == "testB" and i == 0:
                Image.fromarray(arr).save(base / folder / f"{stem}.png")
            else:
                Image.fromarray(arr).save(base / folder / f"{stem}.jpg", quality=95)
    (base / "trainA" / "README.txt").write_text("not an image")  # ignored
    return root


@pytest.fixture
def h2z_root(tmp_path: Path) -> Path:
    return build_cyclegan(tmp_path / "horse2zebra")


def _names(files):
    return [f.name for f in files]


def test_three_splits_are_disjoint_by_file_and_cover_the_folders(h2z_root):
    base = h2z_root / "horse2zebra"
    split = {s: split_files(base, s) for s in ("train", "val", "test")}
    for d, (train_dir, test_dir) in enumerate((("trainA", "testA"), ("trainB", "testB"))):
        train, val, test = (set(_names(split[s][d])) for s in ("train", "val", "test"))
        assert not train & val and not train & test and not val & test
        assert train | val == {p.name for p in (base / train_dir).glob("*.jpg")}  # README.txt is no image
        assert test == {p.name for p in (base / test_dir).iterdir()}
        assert all(split[s][d] == sorted(split[s][d]) for s in ("train", "val"))  # name order
    assert [len(split["val"][d]) for d in (0, 1)] == [1, 2] and [len(split["train"][d]) for d in (0, 1)] == [2, 13]
    # Deterministic, and the draw is the seeded one (VAL_SEED, domain B = 1), by hand:
    assert split_files(base, "val") == split["val"]
    files_b = sorted(p.name for p in (base / "trainB").iterdir() if p.suffix == ".jpg")
    pick = np.random.default_rng([VAL_SEED, 1]).choice(15, size=2, replace=False)
    assert set(_names(split["val"][1])) == {files_b[i] for i in pick}


def test_loads_both_domains_of_each_split_as_rgb(h2z_root):
    train = load_horse2zebra(h2z_root, "train", size=32)
    assert isinstance(train, TranslateData) and not train.paired
    assert train.a.shape == (2, 3, 32, 32) and train.b.shape == (13, 3, 32, 32) and train.a.dtype == torch.uint8
    assert train.domains == ("horse", "zebra") and train.name == "horse2zebra"
    both = torch.cat([train.a, load_horse2zebra(h2z_root, "val", size=32).a])
    gray = [x for x in both if torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])]  # L -> RGB copies
    assert len(gray) == 1  # the one grayscale JPEG, whichever split it fell in; colour stays colour
    val = load_horse2zebra(h2z_root, "val", size=32)
    assert val.a.shape[0] == 1 and val.b.shape[0] == 2 and not val.paired
    test = load_horse2zebra(h2z_root, "test", size=32)
    assert test.a.shape[0] == 2 and test.b.shape[0] == 2


def test_native_size_png_is_exact_and_jpeg_close(h2z_root):
    val = load_horse2zebra(h2z_root, "test", size=40)  # no resize at native size
    expected = _image(_seed("testB", 0))
    assert np.array_equal(val.b[0].permute(1, 2, 0).numpy(), expected)  # sorted: .png of index 0 first
    jpg = val.a[0].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(jpg - _image(_seed("testA", 0))).mean() < 4


def test_root_with_or_without_the_archive_folder_and_registry(h2z_root, tmp_path):
    assert find_cyclegan_root(h2z_root) == h2z_root / "horse2zebra"
    assert find_cyclegan_root(h2z_root / "horse2zebra") == h2z_root / "horse2zebra"
    direct = load_cyclegan_folder(h2z_root / "horse2zebra", "train", size=16, limit=2)
    assert direct.a.shape[0] == 2 and direct.b.shape[0] == 2
    with pytest.raises(DatasetError, match="no completion marker for horse2zebra.zip"):
        load_dataset("horse2zebra", "train", data_dir=tmp_path, size=16, limit=2)
    extraction_marker(h2z_root, "horse2zebra.zip").touch()  # as `cvloss datasets download` leaves it
    via = load_dataset("horse2zebra", "train", data_dir=tmp_path, size=16, limit=2)
    assert torch.equal(via.a, direct.a) and torch.equal(via.b, direct.b)


def test_limit_spreads_over_the_folder(h2z_root):
    full = load_horse2zebra(h2z_root, "train", size=16)
    two = load_horse2zebra(h2z_root, "train", size=16, limit=2)
    assert torch.equal(two.b, full.b[[0, 12]])  # first and last, not the first two


def test_errors_are_one_line_dataset_errors(tmp_path, h2z_root):
    with pytest.raises(DatasetError, match="no CycleGAN layout"):
        load_cyclegan_folder(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="unknown split 'testA' for horse2zebra; valid: train, val, test"):
        load_horse2zebra(h2z_root, "testA")
    (h2z_root / "horse2zebra" / "testA" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.jpg"):
        load_horse2zebra(h2z_root, "test", size=16)
    missing = build_cyclegan(tmp_path / "other", "monet2photo")
    import shutil

    shutil.rmtree(missing / "monet2photo" / "testB")
    with pytest.raises(DatasetError, match="testB is missing"):
        load_cyclegan_folder(missing, "test", size=16)
    solo = missing / "monet2photo" / "trainA"
    for f in sorted(solo.glob("*.jpg"))[1:]:
        f.unlink()
    with pytest.raises(DatasetError, match="trainA has 1 image.*too few for a val split"):
        load_cyclegan_folder(missing, "val", size=16)
    assert load_cyclegan_folder(missing, "train", size=16).a.shape[0] == 1  # a single image stays in train
