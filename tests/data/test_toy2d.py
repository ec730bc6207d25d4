"""The 2-D toy mixtures: exact centres and σ, loaders through the catalog, sampling that
is reproducible from a generator and has the stated per-mode spread and weights."""
from __future__ import annotations

import math

import pytest
import torch

from cvloss.data.registry import get_dataset, load_dataset
from cvloss.data.toy2d import Mixture2D, grid25, load_grid25, load_ring8, ring8
from cvloss.data.types import DatasetError


def test_ring8_centres_radius_and_sigma():
    m = ring8()
    assert m.n_modes == 8 and m.sigma == 0.02 and m.centers.dtype == torch.float32
    assert torch.allclose(m.centers.norm(dim=1), torch.full((8,), 2.0), atol=1e-6)
    angles = torch.atan2(m.centers[:, 1], m.centers[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles.sort().values, torch.arange(8) * (math.pi / 4), atol=1e-6)
    assert torch.allclose(m.centers[0], torch.tensor([2.0, 0.0]))


def test_grid25_centres_are_the_5x5_grid_step_2():
    m = grid25()
    assert m.n_modes == 25 and m.sigma == 0.05
    got = {tuple(c) for c in m.centers.round().int().tolist()}
    assert got == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert torch.equal(m.centers, m.centers.round())  # exact, not approximately on the grid
    assert "-4..4 step 2" in m.description


def test_loaders_through_the_catalog():
    for name, fn in (("ring8", load_ring8), ("grid25", load_grid25)):
        info = get_dataset(name, "gan")
        assert info.embedded
        for split in ("train", "val", "test"):
            data = load_dataset(name, split, task="gan")
            assert isinstance(data, Mixture2D) and data.name == name and data.split == split
            assert torch.equal(data.centers, fn(None, split).centers)
    with pytest.raises(DatasetError, match="unknown split 'holdout' for ring8"):
        load_ring8(None, "holdout")


def test_sampling_is_reproducible_and_has_the_stated_spread():
    m = ring8()
    a = m.sample(4000, torch.Generator().manual_seed(7))
    b = m.sample(4000, torch.Generator().manual_seed(7))
    c = m.sample(4000, torch.Generator().manual_seed(8))
    assert a.shape == (4000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = torch.cdist(a, m.centers)
    nearest = d.argmin(1)
    resid = a - m.centers[nearest]
    # per-coordinate std ≈ σ (4000 samples: the estimate is within a few %)
    assert resid.std().item() == pytest.approx(0.02, rel=0.06)
    counts = torch.bincount(nearest, minlength=8).float()
    # equal weights: each count 500 ± ~22 (binomial sd); allow 5 sd
    assert (counts - 500).abs().max() < 110


def test_bad_mixtures_are_refused():
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        Mixture2D(torch.zeros(3, 3), 0.1, "x")
    with pytest.raises(ValueError, match="sigma"):
        Mixture2D(torch.zeros(3, 2), 0.0, "x")
