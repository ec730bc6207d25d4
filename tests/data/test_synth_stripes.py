"""The embedded ``synth-stripes`` set: deterministic, unpaired train, paired val in which
B is A with stripes inside the shapes only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cvloss.data.registry import load_dataset
from cvloss.data.synth_stripes import render_scene, synth_stripes
from cvloss.data.types import DatasetError


def test_shapes_determinism_and_prefix():
    a = synth_stripes("train", size=32, n=12, seed=3)
    assert a.a.shape == (12, 3, 32, 32) == a.b.shape and a.a.dtype == torch.uint8 and not a.paired
    assert a.name == "synth-stripes" and a.real == "horse2zebra"
    b = synth_stripes("train", size=32, n=6, seed=3)
    assert torch.equal(a.a[:6], b.a) and torch.equal(a.b[:6], b.b)  # image i depends on (seed, split, i) only
    assert not torch.equal(synth_stripes("train", size=32, n=6, seed=4).a, b.a)
    via = load_dataset("synth-stripes", "train", size=32, limit=6, seed=3)
    assert torch.equal(via.a, b.a)


def test_val_pairs_differ_only_inside_shapes_and_train_is_unpaired():
    val = synth_stripes("val", size=32, n=16)
    assert val.paired
    diff = (val.a.int() - val.b.int()).abs().sum(1)  # (n, H, W)
    # Corners are background in every scene (shapes stay within the centre region):
    # identical there, and stripes darken many pixels inside the shapes.
    assert diff[:, 0, 0].max() == 0 and diff[:, -1, -1].max() == 0
    assert ((diff > 60).float().mean((1, 2)) > 0.03).all()
    # B is darker on average (dark stripes), never lighter by more than edge rounding.
    assert (val.b.float().mean((1, 2, 3)) < val.a.float().mean((1, 2, 3))).all()
    train = synth_stripes("train", size=32, n=16)
    # Train A and B scenes come from independent streams: the background pixel differs.
    assert (train.a[:, :, 0, 0] != train.b[:, :, 0, 0]).any(1).float().mean() > 0.9
    # ... while val A and train A are different scenes too (disjoint streams).
    assert not torch.equal(train.a, val.a)


def test_stripes_follow_angle_and_period():
    """A hand-made scene: one axis-aligned square at the centre, horizontal stripes
    (angle = pi/2) of period 8 px at 64 px. Inside the square, pixel row y is dark exactly
    where cos(2 pi (y + 0.5 - 32) / 8) < 0 (phase anchored at the shape's centre)."""
    scene = {"bg": np.full((2, 3), 0.9), "bg_dir": 0.0, "shapes": [{
        "kind": "rect", "centre": np.array([0.5, 0.5]), "radii": np.array([0.3, 0.3]), "angle": 0.0,
        "colour": np.array([0.2, 0.8, 0.3]), "shade": np.zeros(2)}]}
    plain = render_scene(scene, 64, striped=False, period=8, angle=np.pi / 2)
    striped = render_scene(scene, 64, striped=True, period=8, angle=np.pi / 2)
    assert not np.allclose(plain[2:-2, 2:-2], striped[2:-2, 2:-2])
    rows = np.arange(16, 48)  # well inside the square (it spans 12.8 .. 51.2)
    dark = striped[rows, 32].mean(1) < 0.5 * plain[rows, 32].mean(1)
    expected = np.cos(2 * np.pi * (rows + 0.5 - 32) / 8) < 0
    assert np.array_equal(dark, expected)
    # Every column of the square shows the same rows dark (stripes are horizontal) ...
    cols = striped[16:48, 16:48].mean(2)
    assert np.allclose(cols, cols[:, :1], atol=1e-6)
    # ... and outside the shape nothing changes.
    assert np.allclose(plain[:8], striped[:8]) and np.allclose(plain[:, :8], striped[:, :8])


def test_errors():
    with pytest.raises(DatasetError, match="unknown split 'holdout' for synth-stripes"):
        synth_stripes("holdout")
    with pytest.raises(DatasetError, match="size"):
        synth_stripes("train", size=8)
    with pytest.raises(DatasetError, match="period"):
        synth_stripes("train", period=1)
