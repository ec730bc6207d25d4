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

from cvloss.data.horse2zebra import TranslateData, find_cyclegan_root, load_cyclegan_folder, load_horse2zebra
from cvloss.data.registry import extraction_marker, load_dataset
from cvloss.data.types import DatasetError

COUNTS = {"trainA": 3, "trainB": 4, "testA": 2, "testB": 2}


def _image(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth content (JPEG keeps it close): a colour gradient plus a block.
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([xx, yy, 1 - xx], -1) * rng.uniform(0.5, 1, 3)
    img[size // 4 : size // 2, size // 4 : size // 2] = rng.uniform(0, 1, 3)
    return (img * 255).astype(np.uint8)


def _seed(folder: str, i: int) -> int:
    return 10 * list(COUNTS).index(folder) + i


def build_cyclegan(root: Path, name: str = "horse2zebra") -> Path:
    """Write the fixture; returns ``<root>`` (= ``<data-dir>/<name>``)."""
    base = root / name
    for folder, n in COUNTS.items():
        (base / folder).mkdir(parents=True)
        for i in range(n):
            arr = _image(_seed(folder, i))
            stem = f"n0{i:07d}_{i}"
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


def test_loads_both_domains_of_each_split_as_rgb(h2z_root):
    train = load_horse2zebra(h2z_root, "train", size=32)
    assert isinstance(train, TranslateData) and not train.paired
    assert train.a.shape == (3, 3, 32, 32) and train.b.shape == (4, 3, 32, 32) and train.a.dtype == torch.uint8
    assert train.domains == ("horse", "zebra") and train.name == "horse2zebra"
    gray = train.a[1]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # L -> RGB copies
    assert not torch.equal(train.a[0][0], train.a[0][2])  # colour images stay colour
    val = load_horse2zebra(h2z_root, "val", size=32)
    assert val.a.shape[0] == 2 and val.b.shape[0] == 2


def test_native_size_png_is_exact_and_jpeg_close(h2z_root):
    val = load_horse2zebra(h2z_root, "val", size=40)  # no resize at native size
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
    assert torch.equal(two.b, full.b[[0, 3]])  # first and last, not the first two


def test_errors_are_one_line_dataset_errors(tmp_path, h2z_root):
    with pytest.raises(DatasetError, match="no CycleGAN layout"):
        load_cyclegan_folder(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="unknown split"):
        load_horse2zebra(h2z_root, "test")
    (h2z_root / "horse2zebra" / "testA" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.jpg"):
        load_horse2zebra(h2z_root, "val", size=16)
    missing = build_cyclegan(tmp_path / "other", "monet2photo")
    import shutil

    shutil.rmtree(missing / "monet2photo" / "testB")
    with pytest.raises(DatasetError, match="testB is missing"):
        load_cyclegan_folder(missing, "val", size=16)
