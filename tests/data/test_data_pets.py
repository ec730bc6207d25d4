"""The Oxford-IIIT Pet loader on a tiny fixture in the real layout (see tests/fixtures)."""
from __future__ import annotations

import hashlib
import os
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cvloss.data import pets
from cvloss.data.pets import CLASS_NAMES, breed_of, load_oxford_pets, read_split, split_trainval
from cvloss.data.types import DatasetError


def test_three_disjoint_splits_cover_the_official_lists(pets_root, oxford):
    train, val, test = (read_split(pets_root, s) for s in ("train", "val", "test"))
    assert test == list(oxford.TEST)  # comment lines skipped
    assert not set(train) & set(val) and not (set(train) | set(val)) & set(test)
    assert sorted(train + val) == sorted(oxford.TRAINVAL)  # train and val partition trainval.txt
    order = list(oxford.TRAINVAL)
    assert train == sorted(train, key=order.index) and val == sorted(val, key=order.index)  # file order
    # 10 % per breed, rounded half up, at least one from a breed of two or more, none from a single image.
    for breed, (n, k) in oxford.BREED_COUNTS.items():
        assert sum(breed_of(x) == breed for x in train + val) == n
        assert sum(breed_of(x) == breed for x in val) == k, breed
    assert "beagle_12" in train  # a breed's only image stays in train
    # Deterministic: the same lists twice, and the draw is that of the named seed.
    assert read_split(pets_root, "val") == val and read_split(pets_root, "train") == train
    assert split_trainval(order) == (train, val)
    with pytest.raises(DatasetError, match="unknown split 'valid' for oxford-pets; valid: train, val, test"):
        read_split(pets_root, "valid")


def test_val_draw_is_seeded_per_breed_and_ignores_the_file_order():
    names = [f"Bombay_{i}" for i in range(1, 41)] + [f"pug_{i}" for i in range(1, 21)]
    train, val = split_trainval(names)
    assert len(val) == 4 + 2 and len(train) == 54
    # Reversing the file, or dropping another breed, draws the same val images of a breed.
    assert sorted(split_trainval(names[::-1])[1]) == sorted(val)
    assert [x for x in val if x.startswith("Bombay")] == split_trainval(names[:40])[1]
    # The draw follows VAL_SEED: another seed picks other images (hand-made with numpy).
    rng = np.random.default_rng([pets.VAL_SEED, zlib.crc32(b"pug")])
    assert {sorted(names[40:])[i] for i in rng.choice(20, 2, replace=False)} == {x for x in val if x.startswith("pug")}
    assert breed_of("american_bulldog_100") == "american_bulldog" and breed_of("Bengal_7") == "Bengal"


def _where(root, oxford, name, size):
    """(data, index) of image ``name`` in whichever split holds it."""
    for split in ("train", "val", "test"):
        names = read_split(root, split)
        if name in names:
            return load_oxford_pets(root, split, size=size), names.index(name)
    raise AssertionError(name)


def test_loads_every_quirky_image_as_rgb(pets_root, oxford):
    data = load_oxford_pets(pets_root, "train", size=24)
    n = len(read_split(pets_root, "train"))
    assert data.images.shape == (n, 3, 24, 24) and data.images.dtype == torch.uint8
    assert data.masks.shape == (n, 24, 24) and data.masks.dtype == torch.int64
    assert data.class_names == CLASS_NAMES == ("background", "pet", "border")
    assert data.name == "oxford-pets" and data.real is None and len(data) == n == 21 - 4
    for name in ("Bengal_7", "Bengal_8"):  # one of them is in val
        d, i = _where(pets_root, oxford, name, 24)
        gray = d.images[i]
        assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # L -> RGB copies
    # The CMYK JPEG decodes to colours close to the RGB it was made from.
    w, h, _ = oxford.TRAINVAL["beagle_12"]
    ref = np.asarray(Image.fromarray(oxford.image_array(w, h, oxford.seed_of("beagle_12")))
                     .resize((24, 24), Image.Resampling.BILINEAR))
    d, i = _where(pets_root, oxford, "beagle_12", 24)
    cmyk = d.images[i].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(cmyk - ref).mean() < 4


def test_png_named_jpg_with_alpha_is_exact(pets_root, oxford):
    # Lossless PNG at native size: the loader must return exactly its RGB channels.
    data = load_oxford_pets(pets_root, "test", size=32)
    expected = oxford.image_array(32, 32, oxford.seed_of("Persian_3"))
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), expected)


def test_trimap_values_map_to_class_ids(pets_root, oxford):
    # Native size (32x32) and NEAREST: the mask is the trimap with 1->1, 2->0, 3->2.
    data = load_oxford_pets(pets_root, "test", size=32)
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
    assert pets._subset(list(oxford.TEST) + ["pug_6", "pug_7"], 2) == ["Persian_3", "pug_7"]


def test_corrupt_image_is_named(pets_root):
    (pets_root / "images" / "beagle_12.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match=r"beagle_12\.jpg"):
        load_oxford_pets(pets_root, "train", size=16)


def test_truncated_jpeg_is_named(pets_root):
    path = pets_root / "images" / "pug_5.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"pug_5\.jpg"):
        load_oxford_pets(pets_root, "test", size=16)


def test_missing_file_and_bad_trimap_are_named(pets_root):
    bad = np.full((32, 32), 7, np.uint8)
    Image.fromarray(bad, "L").save(pets_root / "annotations" / "trimaps" / "Persian_3.png")
    with pytest.raises(DatasetError, match=r"Persian_3\.png has values \[7\]"):
        load_oxford_pets(pets_root, "test", size=16)
    (pets_root / "images" / "beagle_12.jpg").unlink()  # always in train (its breed's only image)
    with pytest.raises(DatasetError, match=r"beagle_12\.jpg is listed in the split but missing"):
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

    # The split list changes -> rebuilt (drop beagle_12, which is in train).
    split = pets_root / "annotations" / "trainval.txt"
    split.write_text("".join(ln + "\n" for ln in split.read_text().splitlines() if not ln.startswith("beagle_12")))
    assert len(load_oxford_pets(pets_root, "train", size=16)) == len(first) - 1 and len(calls) == 1
    # A file changes on disk -> rebuilt.
    img = pets_root / "images" / "beagle_12.jpg"
    split.write_text(split.read_text() + "beagle_12 3 2 1\n")
    load_oxford_pets(pets_root, "train", size=16)
    assert len(calls) == 2
    calls.clear()
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_oxford_pets(pets_root, "train", size=16)
    assert len(calls) == 1
    # A corrupt cache file is rebuilt, not trusted.
    cache.write_bytes(b"garbage")
    load_oxford_pets(pets_root, "train", size=16)
    assert len(calls) == 2


def test_cache_of_the_old_train_split_is_not_reused(pets_root, oxford, monkeypatch):
    # Before the val split, train-16-None.pt held all of trainval.txt: a cache of those
    # names, valid in every other way, must not be served as the new train split.
    old_names = list(oxford.TRAINVAL)
    images, masks = pets._decode_all(pets_root, old_names, 16)
    old_key = hashlib.sha256(("\n".join(old_names) + "\n" + pets._fingerprint(pets_root, old_names)).encode()).hexdigest()
    cache = pets._cache_path(pets_root, "train", 16, None)
    pets._write_cache(cache, old_key, images, masks)
    data = load_oxford_pets(pets_root, "train", size=16)
    assert len(data) == len(read_split(pets_root, "train")) < len(old_names)
    # And the val and test caches are keyed apart although both are small.
    val, test = load_oxford_pets(pets_root, "val", size=16), load_oxford_pets(pets_root, "test", size=16)
    assert len(val) == 4 and len(test) == 2
