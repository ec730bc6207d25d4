"""The embedded stand-ins' test splits are large enough to carry a claim.

Each test split has the size the catalog states (seg and translate 256 images, embed
1,000 distinct pairs, sr 6 photographs, style 10 contents), holds no image of train or
val (compared by content hash, not by index), and is pinned by digest: the generated
ones at 16 px and seed 0, the photos by the sha256 of the files their packages ship.
The synthetic test splits grew by appending to the same streams, so their first images
are those of before (digests taken with the code of main at 8f3e021). The budgets cap
test apart from val: smoke keeps a few test images (CI time), quick scores them all."""
from __future__ import annotations

import hashlib

import pytest
import torch

from cvloss.data.registry import load_catalog
from cvloss.data.skimage_photos import SR_SPLIT, LICENSES, load_skimage_photos, skimage_image, source_file
from cvloss.data.style_pairs import CONTENT_SPLIT, STYLE_TEXTURES, load_style_pairs, pool_size, seed_pair_indices
from cvloss.data.synth_ids import synth_ids
from cvloss.data.synth_stripes import synth_stripes
from cvloss.data.synthetic import synth_pets, synth_vessels
from cvloss.errors import UsageError
from cvloss.run.budgets import budget_params, resolve_overrides
from cvloss.tasks.embed import EmbedTask
from cvloss.tasks.seg import SegTask
from cvloss.tasks.sr import SRTask
from cvloss.tasks.translate import TranslateTask


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _hashes(images: torch.Tensor) -> set[str]:
    """One sha256 per image: splits are compared by what the images hold."""
    return {hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest() for x in images}


# name -> (the split at 16 px, seed 0; its tensors (digested); its images (hashed); the
# test split's size; digest of the whole test split; (its size before it grew, the
# digest it had then))
SYNTHETIC = {
    "synth-pets": (lambda s: synth_pets(s, size=16), lambda d: (d.images, d.masks), lambda d: (d.images,), 256,
                   "3e0583bf989be440", (48, "d89d95d77b2ca149")),
    "synth-vessels": (lambda s: synth_vessels(s, size=16), lambda d: (d.images, d.masks), lambda d: (d.images,), 256,
                      "ff07b93546bd358c", (48, "551b70b394193be3")),
    "synth-stripes": (lambda s: synth_stripes(s, size=16), lambda d: (d.a, d.b), lambda d: (d.a, d.b), 256,
                      "46b227751b1847b5", (64, "0b551a370a04b13f")),
}


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_test_split_is_256_images_disjoint_pinned_and_extends_the_old_one(name):
    make, parts, images, n, digest, (old_n, old_digest) = SYNTHETIC[name]
    test = make("test")
    assert len(parts(test)[0]) == n and _digest(*parts(test)) == digest
    assert _digest(*(t[:old_n] for t in parts(test))) == old_digest  # the images it had before
    test_images = set().union(*map(_hashes, images(test)))
    assert len(test_images) == n * len(images(test))  # no image twice, within test either
    seen = set().union(*(_hashes(t) for s in ("train", "val") for t in images(make(s))))
    assert not test_images & seen


def test_synth_ids_test_has_1000_distinct_pairs_of_unseen_images_and_is_pinned():
    test = synth_ids("test", size=16)
    assert _digest(test.images, test.labels, test.pairs, test.same, test.folds) == "a7bdc861014590c7"
    pairs = {tuple(sorted(p)) for p in test.pairs.tolist()}
    assert len(test.pairs) == len(pairs) == 1000  # 10 folds x (50 same + 50 different), none repeated
    assert int(test.same.sum()) == 500 and sorted(set(test.folds.tolist())) == list(range(10))
    labels = test.labels[test.pairs]
    assert torch.equal(labels[:, 0] == labels[:, 1], test.same)  # "same" means one identity
    seen = _hashes(synth_ids("train", size=16).images) | _hashes(synth_ids("val", size=16).images)
    assert not _hashes(test.images) & seen


def test_synth_ids_test_folds_too_small_for_distinct_pairs_hold_as_many_as_there_are():
    # 2 identities x 2 images per fold: 2 distinct same pairs, so 3 asked give 2 of each kind
    test = synth_ids("test", size=16, n_ids=20, per_id=2, pairs_per_fold=3)
    assert len(test.pairs) == len({tuple(sorted(p)) for p in test.pairs.tolist()}) == 10 * 2 * 2
    assert int(test.same.sum()) == 20  # still half same, half different
    assert len(synth_ids("val", size=16, n_ids=20, per_id=2, pairs_per_fold=3).pairs) == 60  # val: as asked


# sha256 (first 16 hex) of each photo's file as scikit-image 0.26 / matplotlib ship it
PHOTO_FILES = {
    "rocket": "c2dd0de7c538df8d", "motorcycle": "db18e9c415761740", "astronaut": "88431cd9653ccd53",
    "grace_hopper": "a8ca6d734765703b", "immunohistochemistry": "f8dd1aa387ddd1f4", "hubble": "3a19c5dd8a927a93",
    "retina": "38a07f36f27f095e", "camera": "b0793d2adda0fa6a", "coins": "f8d773fc9cfa6f4d",
    "moon": "78739619d11f7eb9", "chelsea": "596aa1e7cb875eb7", "coffee": "cc02f8ca188b167c",
}


def _photo_hash(name: str) -> str:
    return hashlib.sha256(skimage_image(name, rgb=True).tobytes()).hexdigest()


def test_sr_test_is_six_photographs_disjoint_from_train_and_val_and_pinned():
    test = load_skimage_photos(None, "test", size=32)
    assert len(test.names) == 6 and test.names[:2] == ("rocket", "motorcycle")  # smoke's n_test=2: as before
    for name in (n for split in SR_SPLIT.values() for n in split):
        assert hashlib.sha256(source_file(name).read_bytes()).hexdigest()[:16] == PHOTO_FILES[name], name
        assert LICENSES[name], name  # every image's licence is on record
    by_split = {s: {_photo_hash(n) for n in names} for s, names in SR_SPLIT.items()}
    assert len(by_split["test"]) == 6
    assert not by_split["test"] & (by_split["train"] | by_split["val"]) and not by_split["train"] & by_split["val"]
    assert len(load_skimage_photos(None, "train", size=32).hr) == 4  # train kept as many images as before


def test_style_test_pool_has_ten_contents_and_ten_seeds_take_ten_of_them():
    assert len(CONTENT_SPLIT["test"]) == 10 and pool_size(None, "test") == 10 * len(STYLE_TEXTURES)
    assert set(SR_SPLIT["test"]) <= set(CONTENT_SPLIT["test"])  # one set of held-out photos for both tasks
    val, test = ({_photo_hash(n) for n in CONTENT_SPLIT[s]} for s in ("val", "test"))
    assert len(test) == 10 and not val & test
    assert all(hashlib.sha256(source_file(n).read_bytes()).hexdigest()[:16] == PHOTO_FILES[n]
               for n in CONTENT_SPLIT["test"])
    names = CONTENT_SPLIT["test"]
    picks = [seed_pair_indices(50, k, 1, "test", n_contents=10)[0] for k in range(10)]
    drawn = [f"{names[i // 5]}:{STYLE_TEXTURES[i % 5]}" for i in picks]
    assert drawn == ["motorcycle:brick", "astronaut:grass", "immunohistochemistry:waves", "coins:gravel",
                     "hubble:mosaic", "retina:brick", "moon:grass", "camera:waves", "rocket:gravel",
                     "grace_hopper:mosaic"]  # pinned: 10 seeds, 10 photos, each style twice
    later = [seed_pair_indices(50, k, 1, "test", n_contents=10)[0] for k in range(50)]
    assert sorted(later) == list(range(50))  # the order still holds every pair once
    pairs = load_style_pairs(None, "test", size=16)
    assert pairs.content_names == names and len(pairs.pairs) == 50


def test_catalog_states_the_new_sizes():
    splits = {name: info.splits["test"] for name, info in load_catalog().items()}
    assert splits["synth-pets"].startswith("256 images") and splits["synth-vessels"].startswith("256 images")
    assert splits["synth-stripes"].startswith("256 hidden pairs") and "1,000 distinct pairs" in splits["synth-ids"]
    assert "(6 photos" in splits["skimage-photos"] and "10 contents" in splits["skimage-photos"]


# task -> (the budget setting that caps test, its smoke value at most, its quick value)
TEST_CAPS = {SegTask: ("n_test", 16, 256), TranslateTask: ("n_test", 16, 256), SRTask: ("n_test", 2, None),
             EmbedTask: ("test_pairs_per_fold", 6, 50)}


@pytest.mark.parametrize("task", list(TEST_CAPS), ids=lambda t: t.spec.name)
def test_smoke_keeps_a_small_test_cap_and_quick_scores_the_whole_split(task):
    key, smoke_max, quick = TEST_CAPS[task]
    smoke = budget_params(task.spec.name, "smoke")
    assert smoke[key] <= smoke_max  # CI time does not grow
    assert budget_params(task.spec.name, "quick")[key] == quick and key in task.spec.budgets["full"]
    assert resolve_overrides(task.spec.name, {key: "none"} if key == "n_test" else {key: "7"})  # a valid setting
    with pytest.raises(UsageError, match=f"--set {key}=0"):
        resolve_overrides(task.spec.name, {key: "0"})
    assert budget_params("style", "smoke")["n_pairs"] == 1  # style's test: one pair per seed, as before


def test_seg_loads_test_with_n_test_and_val_with_n_val():
    params = budget_params("seg", "smoke", {"n_test": "5", "n_val": "3", "n_train": "4", "image_size": "16"})
    task = SegTask("synth-pets", params, torch.device("cpu"))
    task.load_data()
    assert len(task.val_x) == 3 and len(task.eval_sets["test"][0]) == 5
    assert "3 val / 5 test images" in task.describe_data()  # what trial.json records as "data"
    old = {k: v for k, v in params.items() if k != "n_test"}  # params recorded before n_test: n_val capped both
    task = SegTask("synth-pets", old, torch.device("cpu"))
    task.load_data()
    assert len(task.eval_sets["test"][0]) == 3


def test_embed_loads_test_with_its_own_sizes():
    params = budget_params("embed", "smoke", {"n_test_ids": "30", "test_pairs_per_fold": "4", "n_train_ids": "8"})
    task = EmbedTask("synth-ids", params, torch.device("cpu"))
    task.load_data()
    test, val = task.eval_sets["test"], task.eval_sets["val"]
    assert len(test.x) == 30 * params["val_per_id"] and len(test.same) == 10 * 2 * 4
    assert len(val.x) == params["n_val_ids"] * params["val_per_id"] and len(val.same) == 10 * 2 * params["pairs_per_fold"]
