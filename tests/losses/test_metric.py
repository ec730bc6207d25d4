"""Tests of the metric-learning losses against hand values and brute-force enumeration."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from cvloss.losses import build_loss
from cvloss.losses.base import value_checks
from cvloss.losses.metric import (
    ContrastiveLoss,
    OfflineTripletSampler,
    TripletLoss,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    contrastive_loss,
    pairwise_distances,
    semi_hard_triplet_loss,
    triplet_margin_loss,
)

SEEDS = (0, 1, 2, 3, 4)


def _batch(seed: int, n: int | None = None, classes: int | None = None, dim: int = 4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    n = n or int(torch.randint(8, 13, (1,), generator=g))
    classes = classes or int(torch.randint(3, 5, (1,), generator=g))
    # Every class at least twice, the rest random: K ≥ 2 for every label.
    labels = torch.cat([torch.arange(classes).repeat(2), torch.randint(classes, (n - 2 * classes,), generator=g)])
    labels = labels[torch.randperm(n, generator=g)]
    emb = torch.nn.functional.normalize(torch.randn(n, dim, generator=g, dtype=dtype), dim=1)
    return emb, labels


def _dist(x, i, j, squared):
    d2 = float(((x[i] - x[j]) ** 2).sum())
    return d2 if squared else math.sqrt(d2)


# ---------------------------------------------------------------- brute-force references
def _ref_all(x, y, margin, squared):
    losses = []
    n = len(y)
    for a, p, ng in itertools.product(range(n), repeat=3):
        if a != p and y[a] == y[p] and y[ng] != y[a]:
            losses.append(max(_dist(x, a, p, squared) - _dist(x, a, ng, squared) + margin, 0.0))
    active = [v for v in losses if v > 0]
    return (sum(active) / len(active) if active else 0.0), len(active) / len(losses)


def _ref_hard(x, y, margin, squared):
    n, out = len(y), []
    for a in range(n):
        dp = [_dist(x, a, p, squared) for p in range(n) if p != a and y[p] == y[a]]
        dn = [_dist(x, a, q, squared) for q in range(n) if y[q] != y[a]]
        if dp and dn:
            out.append(max(max(dp) - min(dn) + margin, 0.0))
    return sum(out) / len(out)


def _ref_semi(x, y, margin, squared, fallback):
    n, out = len(y), []
    for a, p in itertools.product(range(n), repeat=2):
        if a == p or y[a] != y[p]:
            continue
        dap = _dist(x, a, p, squared)
        dn = [_dist(x, a, q, squared) for q in range(n) if y[q] != y[a]]
        farther = [v for v in dn if v > dap]
        dan = min(farther) if farther else (max(dn) if fallback == "easiest" else min(dn))
        out.append(max(dap - dan + margin, 0.0))
    return sum(out) / len(out)


# ---------------------------------------------------------------- pairwise distances
@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_distances_matches_cdist(squared):
    x = torch.randn(10, 6, dtype=torch.float64)
    ref = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    ref = ref**2 if squared else ref
    d = pairwise_distances(x, squared=squared)
    torch.testing.assert_close(d, ref, atol=1e-10, rtol=1e-10)
    assert (d.diagonal() == 0).all() and (d >= 0).all()


def test_pairwise_distances_float32_diag_exact_zero():
    x = torch.randn(16, 32) * 100  # large norms: the Gram trick leaves rounding noise
    d = pairwise_distances(x)
    assert (d.diagonal() == 0).all() and (d >= 0).all()
    torch.testing.assert_close(d, torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist"), atol=0.05, rtol=1e-4)


def test_pairwise_distances_gradient_finite_at_duplicates():
    base = torch.randn(3, 4, dtype=torch.float64)
    x = torch.cat([base, base[:1]]).requires_grad_()  # rows 0 and 3 coincide
    d = pairwise_distances(x)
    assert d[0, 3] == 0 and d[3, 0] == 0
    d.sum().backward()
    assert torch.isfinite(x.grad).all()
    # Expected: ∂/∂x_i Σ_{j,k} d_jk = 2 Σ_{j: d_ij > 0} (x_i − x_j) / d_ij; the duplicate
    # pair contributes 0 (the subgradient at the kink), not NaN.
    xd = x.detach()
    expected = torch.zeros_like(xd)
    for i in range(4):
        for j in range(4):
            dij = (xd[i] - xd[j]).norm()
            if dij > 0:
                expected[i] += 2 * (xd[i] - xd[j]) / dij
    torch.testing.assert_close(x.grad, expected)


def test_non_squared_distance_gradient_finite_at_zero():
    # No clamp in front of the sqrt here: a naive sqrt gives inf · 0 = NaN.
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, dtype=torch.float64, generator=g).requires_grad_()
    n = torch.randn(3, 4, dtype=torch.float64, generator=g)
    # margin 100 ≫ any ‖a − n‖ here: every hinge is active.
    loss = triplet_margin_loss(a, a.detach().clone(), n, margin=100.0, squared=False)
    loss.backward()
    assert torch.isfinite(a.grad).all()
    # d(a,p) = 0 contributes no gradient; only −d(a,n) does: ∂/∂a = −(a − n)/‖a − n‖ / 3.
    expected = -(a.detach() - n) / (a.detach() - n).norm(dim=1, keepdim=True) / 3
    torch.testing.assert_close(a.grad, expected)


def test_pairwise_distances_gradcheck():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pairwise_distances(t), (x,))
    assert torch.autograd.gradcheck(lambda t: pairwise_distances(t, squared=True), (x,))


def test_pairwise_distances_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pairwise_distances(torch.randn(2, 3, 4))


# ---------------------------------------------------------------- contrastive
def test_contrastive_by_hand():
    # Three 2-D points: 0 and 1 share a label, 2 differs.
    x = torch.tensor([[0.0, 0.0], [0.6, 0.0], [0.0, 0.8]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    # pairs (0,1): same, d=0.6 → ½·0.36 = 0.18
    #       (0,2): diff, d=0.8 → ½·(1−0.8)² = 0.02
    #       (1,2): diff, d=1.0 → ½·max(0, 0)² = 0
    expected = (0.18 + 0.02 + 0.0) / 3
    assert contrastive_loss(x, y, margin=1.0).item() == pytest.approx(expected, abs=1e-12)
    assert ContrastiveLoss()(x, y).item() == pytest.approx(expected, abs=1e-12)
    # balance: ½(mean pos + mean neg) = ½(0.18 + 0.01)
    assert contrastive_loss(x, y, margin=1.0, balance=True).item() == pytest.approx(0.5 * (0.18 + 0.01), abs=1e-12)
    # margin 2: (0,2) → ½·1.2² = 0.72, (1,2) → ½·1² = 0.5
    assert contrastive_loss(x, y, margin=2.0).item() == pytest.approx((0.18 + 0.72 + 0.5) / 3, abs=1e-12)


def test_contrastive_single_kind_and_errors():
    x = torch.randn(4, 3, dtype=torch.float64)
    # Only negative pairs (K = 1) is fine for the contrastive loss; one embedding is not.
    assert torch.isfinite(contrastive_loss(x, torch.arange(4)))
    assert torch.isfinite(contrastive_loss(x, torch.arange(4), balance=True))
    with pytest.raises(ValueError, match="at least 2"):
        contrastive_loss(x[:1], torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=0.0)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        ContrastiveLoss()(x, torch.zeros(3, dtype=torch.long))


def test_contrastive_gradient_finite_at_duplicate_negatives():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = contrastive_loss(x, torch.tensor([0, 1, 1]))
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("balance", [False, True])
def test_contrastive_gradcheck(balance):
    x, y = _batch(0, n=8, classes=3)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: contrastive_loss(t, y, 1.0, balance), (x,))


# ---------------------------------------------------------------- miners vs brute force
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared", [True, False])
def test_batch_all_matches_brute_force(seed, squared):
    x, y = _batch(seed)
    margin = 0.5 if squared else 0.3
    loss, frac = batch_all_triplet_loss(x, y, margin, squared)
    ref, ref_frac = _ref_all(x, y.tolist(), margin, squared)
    assert loss.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert frac.item() == pytest.approx(ref_frac, rel=1e-9)
    assert 0 < frac.item() < 1  # a test where some triplets are active and some not


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared", [True, False])
def test_batch_hard_matches_brute_force(seed, squared):
    x, y = _batch(seed)
    ref = _ref_hard(x, y.tolist(), 0.2, squared)
    assert batch_hard_triplet_loss(x, y, 0.2, squared).item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("fallback", ["easiest", "hardest"])
def test_semi_hard_matches_brute_force(seed, squared, fallback):
    x, y = _batch(seed)
    margin = 0.5
    ref = _ref_semi(x, y.tolist(), margin, squared, fallback)
    got = semi_hard_triplet_loss(x, y, margin, squared, fallback)
    assert got.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_semi_hard_fallback_is_exercised():
    # Anchor 0 with a far positive (1) and two closer negatives (2, 3): no semi-hard
    # negative, so the fallback decides; the two conventions must differ.
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    easy = semi_hard_triplet_loss(x, y, 0.2, squared=False, fallback="easiest")
    hard = semi_hard_triplet_loss(x, y, 0.2, squared=False, fallback="hardest")
    assert easy.item() == pytest.approx(_ref_semi(x, y.tolist(), 0.2, False, "easiest"))
    assert hard.item() == pytest.approx(_ref_semi(x, y.tolist(), 0.2, False, "hardest"))
    assert hard > easy


def test_semi_hard_is_strictly_farther():
    # n1 ties with the positive (d = 1): not semi-hard; n2 (d = 1.5) is, loss = 1 − 1.5 + 0.6.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    full = semi_hard_triplet_loss(x, y, 0.6, squared=False)
    assert full.item() == pytest.approx(_ref_semi(x, y.tolist(), 0.6, False, "easiest"))
    # Pairs (0,1): n* = 3 (not the tie 2) → 1 − 1.5 + 0.6 = 0.1 (a ≥ test would give 0.6);
    #       (1,0): n* = 2 at √2 → 1 − √2 + 0.6.
    only = semi_hard_triplet_loss(x, torch.tensor([0, 0, 1, 2]), 0.6, squared=False)  # these two pairs only
    assert only.item() == pytest.approx((0.1 + 1 - math.sqrt(2) + 0.6) / 2)


def test_triplet_module_dispatches_to_miner():
    x, y = _batch(7, n=10, classes=3, dtype=torch.float32)
    assert TripletLoss("batch_hard", 0.3, False)(x, y) == batch_hard_triplet_loss(x, y, 0.3, False)
    assert TripletLoss("semi_hard")(x, y) == semi_hard_triplet_loss(x, y, 0.2, True)
    mod = TripletLoss("all")
    assert mod(x, y) == batch_all_triplet_loss(x, y)[0]
    assert mod.fraction_positive is not None and 0 <= mod.fraction_positive <= 1


@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
@pytest.mark.parametrize("squared", [True, False])
def test_triplet_gradcheck(mining, squared):
    x, y = _batch(11, n=8, classes=3)
    x.requires_grad_()
    loss = TripletLoss(mining, 0.5, squared)
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x,))


def test_triplet_margin_loss_by_hand_and_gradcheck():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[0.3, 0.0], [1.0, 0.0]], dtype=torch.float64)
    n = torch.tensor([[0.0, 0.5], [0.0, 0.1]], dtype=torch.float64)
    # squared: max(0.09 − 0.25 + 0.2, 0) = 0.04 ; max(1 − 0.01 + 0.2, 0) = 1.19
    assert triplet_margin_loss(a, p, n).item() == pytest.approx((0.04 + 1.19) / 2)
    # non-squared: max(0.3 − 0.5 + 0.2, 0) = 0 ; max(1 − 0.1 + 0.2, 0) = 1.1
    assert triplet_margin_loss(a, p, n, squared=False).item() == pytest.approx(1.1 / 2)
    t = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda *v: triplet_margin_loss(*v, margin=1.0, squared=False), tuple(t))
    with pytest.raises(ValueError, match="positive"):
        triplet_margin_loss(a, p[:1], n)


# ---------------------------------------------------------------- invalid batches
@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
def test_k1_batch_raises_with_value_checks(mining):
    x = torch.randn(6, 4)
    with value_checks():
        with pytest.raises(ValueError, match="no positive pair: use a P×K sampler with K ≥ 2"):
            TripletLoss(mining)(x, torch.arange(6))
        with pytest.raises(ValueError, match="no negative"):
            TripletLoss(mining)(x, torch.zeros(6, dtype=torch.long))


@pytest.mark.parametrize("mining", ["all", "batch_hard", "semi_hard"])
def test_k1_batch_gives_zero_without_value_checks(mining):
    # The check reads tensor values (a host sync), so it is opt-in; without it a batch
    # with no triplet has no term to average and the loss is 0, with a zero gradient.
    for labels in (torch.arange(6), torch.zeros(6, dtype=torch.long)):
        x = torch.randn(6, 4, requires_grad=True)
        value = TripletLoss(mining)(x, labels)
        value.backward()
        assert value.item() == 0.0 and torch.isfinite(x.grad).all() and not x.grad.any()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-0.1)
    with pytest.raises(ValueError, match="dtype int64"):
        TripletLoss()(torch.randn(4, 2), torch.tensor([0, 0, 1, 1], dtype=torch.int32))


# ---------------------------------------------------------------- offline sampler
def test_offline_sampler_deterministic_and_valid():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 3, 3, 1, 2, 0])
    s1 = OfflineTripletSampler(labels, triplets_per_epoch=500, seed=3)
    s2 = OfflineTripletSampler(labels.tolist(), triplets_per_epoch=500, seed=3)
    t1, t2 = list(s1), list(s2)
    assert t1 == t2 and len(t1) == len(s1) == 500
    assert t1 != list(OfflineTripletSampler(labels, 500, seed=4))
    s1.set_epoch(1)
    assert list(s1) != t1
    for a, p, n in t1:
        assert a != p and labels[a] == labels[p] and labels[n] != labels[a]
    trip = torch.tensor(t1)
    # Every sample shows up in every role (uniform draws, 500 ≫ 12).
    for col in range(3):
        assert set(trip[:, col].tolist()) == set(range(len(labels)))


def test_offline_sampler_errors():
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        OfflineTripletSampler([0, 0, 1], 10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        OfflineTripletSampler([0, 0, 0], 10)
    with pytest.raises(ValueError, match="triplets_per_epoch"):
        OfflineTripletSampler([0, 0, 1, 1], 0)


# ---------------------------------------------------------------- registry, autocast
def test_build_from_spec():
    loss = build_loss("triplet(mining=batch_hard, margin=0.3)", task="embed")
    assert isinstance(loss, TripletLoss) and loss.mining == "batch_hard" and loss.margin == 0.3
    c = build_loss("contrastive(margin=0.5,balance=true)", task="embed")
    assert isinstance(c, ContrastiveLoss) and c.margin == 0.5 and c.balance
    with pytest.raises(ValueError, match="mining"):
        build_loss("triplet(mining=offline)", task="embed")
    with pytest.raises(ValueError, match="embed"):
        build_loss("triplet", task="seg")


@pytest.mark.parametrize("spec", ["contrastive", "triplet", "triplet(mining=all)", "triplet(mining=batch_hard)"])
def test_bf16_autocast(spec):
    x, y = _batch(5, n=12, classes=4, dim=8, dtype=torch.float32)
    lin = torch.nn.Linear(8, 8)
    loss = build_loss(spec)
    ref = loss(lin(x), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = lin(x)
        assert emb.dtype == torch.bfloat16
        val = loss(emb, y)
    assert val.dtype == torch.float32 and torch.isfinite(val)
    val.backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()
    assert val.item() == pytest.approx(ref.item(), rel=0.1, abs=0.02)
