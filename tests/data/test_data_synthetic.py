"""Embedded segmentation data: determinism, splits, class coverage, topology (speed: benchmarks/synthetic_data.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from cvloss.data.synthetic import DEFAULT_N, synth_pets, synth_vessels
from cvloss.data.types import DatasetError, SegData

GENERATORS = [synth_pets, synth_vessels]


@pytest.mark.parametrize("gen", GENERATORS)
def test_same_seed_same_tensors_other_seed_other_tensors(gen):
    a, b, c = gen("train", n=6, seed=0), gen("train", n=6, seed=0), gen("train", n=6, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.masks, c.masks)
    # Image i depends only on (seed, split, i): a shorter run is a prefix of a longer one.
    assert torch.equal(gen("train", n=3, seed=0).images, a.images[:3])


@pytest.mark.parametrize("gen", GENERATORS)
def test_train_val_and_test_are_disjoint(gen):
    tr, va, te = gen("train", n=40), gen("val"), gen("test")
    assert len(va) == DEFAULT_N["val"] and len(gen("train", n=None, size=16)) == DEFAULT_N["train"]
    assert len(te) == DEFAULT_N["test"] == 256  # 48 before the test splits grew (tests/data/test_test_splits.py)
    hashes = [{bytes(x.numpy()) for x in d.images} for d in (tr, va, te)]
    assert not hashes[0] & hashes[1] and not hashes[0] & hashes[2] and not hashes[1] & hashes[2]
    with pytest.raises(DatasetError, match="unknown split 'tst'"):
        gen("tst", n=2)


@pytest.mark.parametrize("gen", GENERATORS)
def test_shapes_dtypes_and_size(gen):
    d = gen("val", size=48, n=5)
    assert isinstance(d, SegData)
    assert d.images.shape == (5, 3, 48, 48) and d.images.dtype == torch.uint8
    assert d.masks.shape == (5, 48, 48) and d.masks.dtype == torch.int64
    assert d.images.float().std() > 10  # not blank


def test_synth_pets_classes_and_border_band():
    d = synth_pets("train", n=16)
    assert d.class_names == ("background", "pet", "border") and d.real == "oxford-pets"
    m = d.masks.numpy()
    for k in range(3):
        assert (m == k).any(axis=(1, 2)).all(), f"class {k} missing in some image"
    frac = np.array([(m == k).mean() for k in range(3)])
    assert 0.05 < frac[1] < 0.5 and 0.01 < frac[2] < 0.12
    # The border is a thin band between pet and background: every border pixel touches
    # (8-neighbourhood) the pet or the background within 1 px, and the pet never touches
    # the background directly.
    for mask in m:
        pet = ndimage.binary_dilation(mask == 1, np.ones((3, 3)))
        assert not (pet & (mask == 0)).any()
        near = ndimage.binary_dilation((mask == 1) | (mask == 0), np.ones((3, 3)))
        assert near[mask == 2].all()


def test_synth_pets_pet_differs_from_background():
    d = synth_pets("val", n=12)
    img = d.images.float()
    for x, m in zip(img, d.masks):
        inside = x[:, m == 1].mean(1)
        outside = x[:, m == 0].mean(1)
        assert torch.linalg.vector_norm(inside - outside) > 25  # of 255


def test_synth_vessels_fraction_thinness_and_loops():
    d = synth_vessels("train", n=24)
    assert d.class_names == ("background", "vessel") and d.real is None
    m = d.masks.numpy().astype(bool)
    frac = m.mean(axis=(1, 2))
    assert (frac > 0.02).all() and (frac < 0.3).all() and 0.05 < frac.mean() < 0.2
    # Thin: a 5x5 opening (removes structures narrower than 5 px) deletes >= 90% (what
    # survives sits at junctions and crossings; a blob dataset would keep most of it).
    opened = ndimage.binary_opening(m, np.ones((1, 5, 5)))
    assert opened.sum() < 0.10 * m.sum()
    # Loops: Betti-1 = background components not touching the border (8-connected vessels,
    # 4-connected background). Most images must have at least one hole.
    holes = []
    for v in m:
        lab, n = ndimage.label(~v)
        edge = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
        holes.append(n - len(edge))
    assert np.mean(np.array(holes) > 0) >= 0.5, holes
    # Vessel pixels are darker than the background on average (the cue to learn).
    img = d.images.float().mean(1).numpy()
    # low contrast by design (thin branches near the noise level), but darker on average
    assert all(img[i][m[i]].mean() < img[i][~m[i]].mean() - 5 for i in range(len(d)))


def test_segdata_checks_shapes():
    imgs = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        SegData(imgs, torch.zeros(2, 4, 5, dtype=torch.int64), ("a", "b"), "x")
    with pytest.raises(ValueError, match="uint8"):
        SegData(imgs.float(), torch.zeros(2, 4, 4, dtype=torch.int64), ("a", "b"), "x")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        SegData(imgs, torch.full((2, 4, 4), 2, dtype=torch.int64), ("a", "b"), "x")
    assert len(SegData(imgs, torch.ones(2, 4, 4, dtype=torch.int64), ("a", "b"), "x")) == 2
