"""The embedded skimage-photos set: fixed disjoint split, sizes, the float-image API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cvloss.data.registry import load_dataset
from cvloss.data.skimage_photos import (GRAY_PHOTOS, PHOTOS, SR_SPLIT, TEXTURES, load_skimage_photos, skimage_image,
                                         skimage_images)
from cvloss.data.types import DatasetError


def test_split_is_fixed_disjoint_and_covers_the_photos():
    tr, va, te = (set(SR_SPLIT[s]) for s in ("train", "val", "test"))
    assert tr.isdisjoint(va) and tr.isdisjoint(te) and va.isdisjoint(te)
    assert tr | va | te == set(PHOTOS) | set(GRAY_PHOTOS)  # every photo but textures
    a, b = load_skimage_photos(None, "val", size=48), load_skimage_photos(None, "val", size=48)
    assert a.names == ("chelsea", "coffee") and all(torch.equal(x, y) for x, y in zip(a.hr, b.hr))
    assert load_skimage_photos(None, "test", size=48).names[:2] == ("rocket", "motorcycle")  # the two of before


def test_photos_are_shrunk_to_the_short_side_as_uint8():
    data = load_dataset("skimage-photos", "test", size=40, limit=1, task="sr")
    assert data.names == ("rocket",) and data.real == "div2k" and data.lr == {}
    assert [tuple(t.shape) for t in data.hr] == [(3, 40, 60)]  # 427x640
    data = load_dataset("skimage-photos", "test", size=40, limit=6, task="sr")
    assert data.names[2:4] == ("astronaut", "grace_hopper")
    assert [tuple(t.shape) for t in data.hr[2:4]] == [(3, 40, 40), (3, 47, 40)]  # 512x512, 600x512
    assert all(t.dtype == torch.uint8 for t in data.hr)
    # a grayscale training photo comes as RGB, its one channel repeated
    coins = load_dataset("skimage-photos", "train", size=40, limit=3, task="sr").hr[2]
    assert coins.shape == (3, 40, 51) and torch.equal(coins[0], coins[1]) and torch.equal(coins[0], coins[2])
    # antialiased shrink keeps the mean colour of the photo
    full = torch.from_numpy(skimage_image("astronaut")).mean(dim=(0, 1))
    assert torch.allclose(data.hr[2].float().mean(dim=(1, 2)) / 255, full, atol=0.01)


def test_float_image_api_for_both_tasks():
    imgs = skimage_images(["coffee", "brick", "motorcycle"])
    assert imgs["coffee"].shape == (400, 600, 3) and imgs["coffee"].dtype == np.float32
    assert imgs["brick"].shape == (512, 512) and 0 <= imgs["brick"].min() and imgs["brick"].max() <= 1
    assert imgs["motorcycle"].shape == (500, 741, 3)  # left view of stereo_motorcycle
    assert skimage_image("grass", rgb=True).shape == (512, 512, 3)
    assert set(TEXTURES) == {"brick", "grass", "gravel"} and len(skimage_images()) == len(PHOTOS)
    with pytest.raises(DatasetError, match="unknown scikit-image picture 'lena'"):
        skimage_image("lena")
    with pytest.raises(DatasetError, match="unknown split 'holdout' for skimage-photos"):
        load_skimage_photos(None, "holdout")
