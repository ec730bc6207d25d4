"""synth-ids: shapes, determinism, identity-disjoint splits and LFW-style pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cvloss.data.registry import load_dataset
from cvloss.data.synth_ids import IdentityData, synth_ids


@pytest.fixture(scope="module")
def val():
    return synth_ids("val", size=24, n_ids=30, per_id=3, pairs_per_fold=4, seed=0)


def test_shapes_and_labels():
    d = synth_ids("train", size=24, n_ids=12, per_id=5)
    assert d.images.shape == (60, 3, 24, 24) and d.images.dtype == torch.uint8
    assert torch.equal(d.labels, torch.arange(12).repeat_interleave(5))
    assert d.pairs is None and d.real == "lfw" and d.num_identities == 12


def test_deterministic_and_seed_dependent():
    a = synth_ids("train", size=16, n_ids=4, per_id=2, seed=3)
    b = synth_ids("train", size=16, n_ids=4, per_id=2, seed=3)
    c = synth_ids("train", size=16, n_ids=4, per_id=2, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_views_of_one_identity_differ_but_resemble_each_other():
    d = synth_ids("train", size=32, n_ids=20, per_id=4, seed=0)
    x = d.images.float().view(20, 4, -1)
    assert (x[:, 0] != x[:, 1]).any(dim=1).all()  # nuisances: no two views are equal
    # A crude check that identity survives the nuisances: the mean view of an identity is
    # closer (after per-image normalisation) to that identity's views than to others'.
    z = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    proto = z[:, :2].mean(1)  # prototypes from views 0-1, queries views 2-3
    q = z[:, 2:].reshape(40, -1)
    nearest = torch.cdist(q, proto).argmin(1)
    assert (nearest == torch.arange(20).repeat_interleave(2)).float().mean() >= 0.1  # chance = 0.05 (seed 0 gives 0.15)


def test_train_and_val_identities_differ():
    tr = synth_ids("train", size=16, n_ids=10, per_id=2)
    va = synth_ids("val", size=16, n_ids=20, per_id=2, pairs_per_fold=1)
    assert not set(tr.identities) & set(va.identities)
    assert not torch.equal(tr.images[:4], va.images[:4])


def test_pairs_are_balanced_ten_folds_with_disjoint_identities(val):
    assert val.pairs.shape == (80, 2)
    folds, same = val.folds.numpy(), val.same.numpy()
    assert np.array_equal(np.bincount(folds), np.full(10, 8))
    for k in range(10):
        assert same[folds == k].sum() == 4
    la, lb = val.labels[val.pairs[:, 0]].numpy(), val.labels[val.pairs[:, 1]].numpy()
    assert np.array_equal(la == lb, same)
    assert (val.pairs[:, 0] != val.pairs[:, 1]).all()
    ids_of_fold = [set(la[folds == k]) | set(lb[folds == k]) for k in range(10)]
    for i in range(10):
        for j in range(i + 1, 10):
            assert not ids_of_fold[i] & ids_of_fold[j]


def test_catalog_loader_and_limit():
    d = load_dataset("synth-ids", "train", size=16, limit=3, per_id=2)
    assert isinstance(d, IdentityData) and d.num_identities == 3 and len(d) == 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="10 folds"):
        synth_ids("val", n_ids=10, per_id=2)
    with pytest.raises(ValueError, match="per_id"):
        synth_ids("train", per_id=1)
    with pytest.raises(ValueError, match="unknown split 'holdout' for synth-ids"):
        synth_ids("holdout")
