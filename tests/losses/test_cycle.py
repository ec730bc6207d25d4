"""Tests of CycleGAN's cycle-consistency and identity terms."""
from __future__ import annotations

import pytest
import torch

from cvloss.losses import CombinedLoss, SpecError, build_loss, get_loss_info
from cvloss.losses.cycle import CycleConsistencyLoss, IdentityLoss, l1_mean

REC = [[[[0.1, 0.2], [0.3, 0.4]]]]  # (1, 1, 2, 2), mean |REC - 0| = 0.25


def test_registration():
    for name in ("cycle", "identity"):
        info = get_loss_info(name)
        assert info.family == "cycle" and info.tasks == ("translate",) and info.kind == "cycle"
        assert info.summary
    assert get_loss_info("cycle").defaults() == {"lam": 10.0}
    assert get_loss_info("identity").defaults() == {"lam": 10.0, "ratio": 0.5}


def test_cycle_by_hand():
    rec, x = torch.tensor(REC), torch.zeros(1, 1, 2, 2)
    assert CycleConsistencyLoss()(rec, x).item() == pytest.approx(2.5, rel=1e-6)  # 10 · 0.25
    assert CycleConsistencyLoss(lam=1.0)(x, rec).item() == pytest.approx(0.25, rel=1e-6)  # symmetric
    # per-pixel mean over N·C·H·W, not a per-image sum: a 2-image RGB batch, one pixel off by 0.6
    a = torch.zeros(2, 3, 2, 2)
    b = a.clone()
    b[1, 2, 0, 1] = 0.6
    assert CycleConsistencyLoss()(b, a).item() == pytest.approx(10 * 0.6 / 24, rel=1e-6)


def test_identity_by_hand():
    rec, x = torch.tensor(REC), torch.zeros(1, 1, 2, 2)
    loss = IdentityLoss()
    assert loss.effective_lam == 5.0
    assert loss(rec, x).item() == pytest.approx(1.25, rel=1e-6)  # 0.5 · 10 · 0.25
    assert IdentityLoss(lam=10.0, ratio=0.2)(rec, x).item() == pytest.approx(0.5, rel=1e-6)
    assert IdentityLoss(ratio=0.0)(rec, x).item() == 0.0


def test_range_agnostic_l1():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    loss = CycleConsistencyLoss()
    # [0, 1] -> [-1, 1] is x ↦ 2x - 1: the L1 value doubles, nothing else changes
    assert loss(2 * a - 1, 2 * b - 1).item() == pytest.approx(2 * loss(a, b).item(), rel=1e-5)


@pytest.mark.parametrize("cls", [CycleConsistencyLoss, IdentityLoss])
def test_gradcheck_float64(cls):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 3, 3, generator=g, dtype=torch.float64)
    b = a + 0.1 + 0.5 * torch.rand(2, 3, 3, 3, generator=g, dtype=torch.float64)  # no zero residuals (|·| kink)
    b[0] -= 1.0
    a.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(cls(), (a, b))


@pytest.mark.parametrize("cls", [CycleConsistencyLoss, IdentityLoss])
def test_shape_errors(cls):
    loss = cls()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(torch.rand(3, 4, 4), torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        loss(torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4))


@pytest.mark.parametrize("spec", ["cycle(lam=-1)", "identity(ratio=-0.5)", "identity(lam=-1)"])
def test_bad_arguments(spec):
    with pytest.raises(SpecError):
        build_loss(spec)


@pytest.mark.parametrize("cls", [CycleConsistencyLoss, IdentityLoss])
def test_bf16_autocast(cls):
    torch.manual_seed(0)
    gen = torch.nn.Conv2d(3, 3, 3, padding=1)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = gen(x)
        assert y.dtype == torch.bfloat16
        value = cls()(y, x)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    ref = cls()(y.float(), x)
    assert value.item() == pytest.approx(ref.item(), rel=1e-6)
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert gen.weight.grad is not None


def test_l1_mean_upcasts_low_precision():
    a = torch.full((1, 1, 64, 64), 0.5, dtype=torch.bfloat16)
    b = torch.zeros(1, 1, 64, 64, dtype=torch.bfloat16)
    out = l1_mean(a, b)
    assert out.dtype == torch.float32 and out.item() == 0.5


def test_spec_weights_and_routing():
    loss = build_loss("lsgan+2*cycle(lam=5)+identity(ratio=0.1)", task="translate")
    assert isinstance(loss, CombinedLoss)
    _, (w1, cyc), (w2, ident) = loss.weighted_terms()
    assert (w1, cyc.name, cyc.lam) == (2.0, "cycle", 5.0)
    assert (w2, ident.name) == (1.0, "identity") and ident.effective_lam == pytest.approx(1.0)
    with pytest.raises(SpecError, match="does not serve task"):
        build_loss("cycle", task="sr")
