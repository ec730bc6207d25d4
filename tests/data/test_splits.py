"""The three splits of every embedded dataset: pairwise disjoint (by the samples
themselves), deterministic, reachable through ``load_dataset`` with the call shape the
tasks use, and ``train`` / ``val`` unchanged by the test split's arrival (their digests
were taken with the code before it). The real datasets' splits are tested on their
real-layout fixtures (test_data_pets, test_div2k, test_horse2zebra, test_lfw)."""
from __future__ import annotations

import hashlib

import pytest
import torch

from cvloss.data.registry import SPLITS, get_dataset, load_catalog, load_dataset
from cvloss.data.skimage_photos import GRAY_PHOTOS, PHOTOS, SR_SPLIT
from cvloss.data.style_pairs import CONTENT_PHOTOS, CONTENT_SPLIT, load_style_pairs
from cvloss.data.synth_ids import synth_ids
from cvloss.data.synth_stripes import synth_stripes
from cvloss.data.synthetic import synth_pets, synth_vessels
from cvloss.data.toy2d import REFERENCE_SEEDS, grid25, ring8
from cvloss.data.types import DatasetError


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _rows(t: torch.Tensor) -> set[bytes]:
    return {bytes(x.contiguous().numpy()) for x in t}


# (generator call, tensors of its result) -> digests of train and val before test existed,
# taken at seed 1 with the code of main at 8e2b026.
GENERATED = {
    "synth-pets": (lambda s: synth_pets(s, size=16, n=3, seed=1), lambda d: (d.images, d.masks),
                   ("0c91bc35ad379717", "6c1de9ada1012cfa")),
    "synth-vessels": (lambda s: synth_vessels(s, size=16, n=3, seed=1), lambda d: (d.images, d.masks),
                      ("76ae304d0cfb25fd", "2c4aef21c80b080f")),
    "synth-ids": (lambda s: synth_ids(s, size=16, n_ids=20, per_id=2, pairs_per_fold=1, seed=1),
                  lambda d: (d.images, d.labels) + ((d.pairs, d.same, d.folds) if d.pairs is not None else ()),
                  ("c86abdeed0d7233b", "7874452a88cf606c")),
    "synth-stripes": (lambda s: synth_stripes(s, size=16, n=3, seed=1), lambda d: (d.a, d.b),
                      ("098958b869c11c67", "313a5a30116d5f2e")),
}


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_splits_keep_train_val_and_add_a_disjoint_test(name):
    make, parts, (train_digest, val_digest) = GENERATED[name]
    data = {s: make(s) for s in SPLITS}
    assert _digest(*parts(data["train"])) == train_digest  # unchanged streams
    assert _digest(*parts(data["val"])) == val_digest
    assert _digest(*parts(make("test"))) == _digest(*parts(data["test"]))  # deterministic
    images = {s: _rows(parts(d)[0]) | (_rows(d.b) if name == "synth-stripes" else set()) for s, d in data.items()}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not images[a] & images[b], (name, a, b)  # no sample in two splits


def test_test_streams_are_shaped_like_val():
    assert synth_stripes("test", size=16, n=4).paired and not synth_stripes("train", size=16, n=4).paired
    ids = synth_ids("test", size=16, n_ids=20, per_id=2, pairs_per_fold=1)
    assert ids.pairs.shape == (20, 2) and ids.identities[0] == "test_0000" and ids.real == "lfw"
    assert len(synth_pets("val", size=16)) == 48 and len(synth_pets("test", size=16)) == 256  # test: enlarged to carry a claim


@pytest.mark.parametrize("name", ["synth-pets", "synth-vessels", "synth-ids", "synth-stripes"])
def test_catalog_loads_test_with_the_val_call(name):
    # The tasks' call shape: test gets exactly the keyword arguments of val.
    info = get_dataset(name)
    kw = dict(size=16, limit=20, seed=3, task=info.task,
              optional=dict(n_ids=20, per_id=2, pairs_per_fold=1))
    val, test = load_dataset(name, "val", **kw), load_dataset(name, "test", **kw)
    first = (lambda d: d.a) if name == "synth-stripes" else (lambda d: d.images)
    assert first(val).shape == first(test).shape and not _rows(first(val)) & _rows(first(test))
    assert torch.equal(first(load_dataset(name, "test", **kw)), first(test))


@pytest.mark.parametrize("name, make", [("ring8", ring8), ("grid25", grid25)])
def test_toy_mixtures_have_one_reference_stream_per_split(name, make):
    refs = {s: load_dataset(name, s, task="gan").reference(64) for s in SPLITS}
    # val is the fixed real sample the gan task drew before the test split (seed 12345).
    assert torch.equal(refs["val"], make().sample(64, torch.Generator().manual_seed(12345)))
    assert REFERENCE_SEEDS["val"] == 12345 and len(set(REFERENCE_SEEDS.values())) == 3
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not _rows(refs[a]) & _rows(refs[b])
    assert torch.equal(load_dataset(name, "test", task="gan").reference(64), refs["test"])
    assert all(load_dataset(name, s, task="gan").split == s for s in SPLITS)


def test_skimage_photos_splits_are_fixed_disjoint_photo_lists():
    assert SR_SPLIT == {"train": ("retina", "camera", "coins", "moon"), "val": ("chelsea", "coffee"),
                        "test": ("rocket", "motorcycle", "astronaut", "grace_hopper", "immunohistochemistry", "hubble")}
    used = set().union(*SR_SPLIT.values())
    assert used == set(PHOTOS) | set(GRAY_PHOTOS) and sum(map(len, SR_SPLIT.values())) == len(used)
    test = load_dataset("skimage-photos", "test", size=24, task="sr", optional={"scale": 2})
    assert test.names == SR_SPLIT["test"]
    hr = {s: _rows(torch.stack([t[:, :24, :24] for t in load_dataset("skimage-photos", s, size=24).hr]))
          for s in SPLITS}
    assert not hr["train"] & hr["val"] and not hr["train"] & hr["test"] and not hr["val"] & hr["test"]


def test_style_pairs_val_and_test_are_disjoint_by_content():
    assert set(CONTENT_SPLIT["val"]).isdisjoint(CONTENT_SPLIT["test"])
    assert set(CONTENT_SPLIT["val"]) | set(CONTENT_SPLIT["test"]) == set(CONTENT_PHOTOS)
    assert CONTENT_SPLIT["train"] == CONTENT_SPLIT["val"]  # nothing is trained: train is the tuning pool
    val, test = load_style_pairs(None, "val", size=16), load_style_pairs(None, "test", size=16)
    assert (val.split, test.split) == ("val", "test")
    assert val.content_names == ("chelsea", "coffee") and test.content_names[:3] == ("rocket", "motorcycle", "astronaut")
    assert not _rows(val.contents) & _rows(test.contents)
    assert len(test.pairs) == 10 * len(test.style_names) and val.style_names == test.style_names
    assert torch.equal(load_style_pairs(None, "test", size=16).contents, test.contents)
    # Pairs named by the user are used as given, whatever the split, which is recorded.
    named = load_style_pairs(None, "test", size=16, pairs="chelsea:waves")
    assert named.explicit and named.split == "test" and named.content_names == ("chelsea",)
    with pytest.raises(DatasetError, match="unknown split 'dev' for style pairs; valid: train, val, test"):
        load_style_pairs(None, "dev")


def test_every_catalog_entry_documents_three_splits_and_loaders_refuse_others():
    for info in load_catalog().values():
        assert list(info.splits) == list(SPLITS) and all(info.splits.values()), info.name
    for info in load_catalog().values():
        if info.embedded:
            with pytest.raises(DatasetError, match=f"unknown split 'holdout' for dataset '{info.name}'") as err:
                load_dataset(info.name, "holdout")
            assert "valid: train, val, test" in str(err.value) and "\n" not in str(err.value)
