"""The Oxford-IIIT Pet loader on a tiny fixture in the real layout (see tests/fixtures)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data import pets
from cvloss.data.pets import CLASS_NAMES, load_oxford_pets, read_split
from cvloss.data.types import DatasetError


def test_official_split_files_map_to_train_and_val(pets_root, oxford):
    assert read_split(pets_root, "train") == list(oxford.TRAIN)  # comment lines skipped
    assert read_split(pets_root, "val") == list(oxford.VAL)
    with pytest.raises(DatasetError, match="unknown split"):
        read_split(pets_root, "test")


def test_loads_every_quirky_image_as_rgb(pets_root, oxford):
    data = load_oxford_pets(pets_root, "train", size=24)
    assert data.images.shape == (3, 3, 24, 24) and data.images.dtype == torch.uint8
    assert data.masks.shape == (3, 24, 24) and data.masks.dtype == torch.int64
    assert data.class_names == CLASS_NAMES == ("background", "pet", "border")
    assert data.name == "oxford-pets" and data.real is None and len(data) == 3
    gray = data.images[list(oxford.TRAIN).index("Bengal_7")]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # L -> RGB copies
    # The CMYK JPEG decodes to colours close to the RGB it was made from.
    w, h, _ = oxford.TRAIN["beagle_12"]
    ref = np.asarray(Image.fromarray(oxford.image_array(w, h, 2)).resize((24, 24), Image.Resampling.BILINEAR))
    cmyk = data.images[2].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(cmyk - ref).mean() < 4


def test_png_named_jpg_with_alpha_is_exact(pets_root, oxford):
    # Lossless PNG at native size: the loader must return exactly its RGB channels.
    data = load_oxford_pets(pets_root, "val", size=32)
    expected = oxford.image_array(32, 32, 3)  # Persian_3 is the 4th image written (seed 3)
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), expected)


def test_trimap_values_map_to_class_ids(pets_root, oxford):
    # Native size (32x32) and NEAREST: the mask is the trimap with 1->1, 2->0, 3->2.
    data = load_oxford_pets(pets_root, "val", size=32)
    tri = oxford.trimap_array(32, 32)
    expected = np.select([tri == 1, tri == 2, tri == 3], [1, 0, 2], default=-1)
    assert np.array_equal(data.masks[0].numpy(), expected)
    assert set(np.unique(data.masks.numpy())) == {0, 1, 2}
    # Resizing keeps labels as labels (no interpolated values).
    small = load_oxford_pets(pets_root, "train", size=13)
    assert set(np.unique(small.masks.numpy())) <= {0, 1, 2}


def test_limit_spreads_over_the_list(pets_root, oxford):
    data = load_oxford_pets(pets_root, "train", size=16, limit=2)
    assert len(data) == 2
    # first and last of the breed-sorted list, not the first two
    assert pets._subset(list(oxford.TRAIN), 2) == ["Abyssinian_1", "beagle_12"]


def test_corrupt_image_is_named(pets_root):
    (pets_root / "images" / "Bengal_7.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match=r"Bengal_7\.jpg"):
        load_oxford_pets(pets_root, "train", size=16)


def test_truncated_jpeg_is_named(pets_root):
    path = pets_root / "images" / "pug_5.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"pug_5\.jpg"):
        load_oxford_pets(pets_root, "val", size=16)


def test_missing_file_and_bad_trimap_are_named(pets_root):
    bad = np.full((32, 32), 7, np.uint8)
    Image.fromarray(bad, "L").save(pets_root / "annotations" / "trimaps" / "Persian_3.png")
    with pytest.raises(DatasetError, match=r"Persian_3\.png has values \[7\]"):
        load_oxford_pets(pets_root, "val", size=16)
    (pets_root / "images" / "Abyssinian_1.jpg").unlink()
    with pytest.raises(DatasetError, match=r"Abyssinian_1\.jpg is listed in the split but missing"):
        load_oxford_pets(pets_root, "train", size=16)


def test_cache_hit_and_invalidation(pets_root, monkeypatch):
    first = load_oxford_pets(pets_root, "train", size=16)
    cache = pets_root / ".cvloss-cache" / "train-16-None.pt"
    assert cache.is_file() and not list(cache.parent.glob("*.tmp*"))

    calls = []
    real_decode = pets._decode_all
    monkeypatch.setattr(pets, "_decode_all", lambda *a: calls.append(a) or real_decode(*a))
    second = load_oxford_pets(pets_root, "train", size=16)
    assert calls == []  # served from the cache
    assert torch.equal(first.images, second.images) and torch.equal(first.masks, second.masks)
    assert second.masks.dtype == torch.int64

    # The split list changes -> rebuilt.
    split = pets_root / "annotations" / "trainval.txt"
    split.write_text("\n".join(split.read_text().splitlines()[:-1]) + "\n")
    assert len(load_oxford_pets(pets_root, "train", size=16)) == 2 and len(calls) == 1
    # A file changes on disk -> rebuilt.
    img = pets_root / "images" / "Abyssinian_1.jpg"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_oxford_pets(pets_root, "train", size=16)
    assert len(calls) == 2
    # A corrupt cache file is rebuilt, not trusted.
    cache.write_bytes(b"garbage")
    load_oxford_pets(pets_root, "train", size=16)
    assert len(calls) == 3
