"""Pixel-wise image losses: hand-computed values, weight maps, gradcheck, shape errors."""
import math

import pytest
import torch

from cvloss.losses import build_loss, get_loss_info
from cvloss.losses.pixel import CharbonnierLoss, L1Loss, MSELoss

# pred − target = [[-0.5, 0], [1, -0.75]] on a (1, 1, 2, 2) image
PRED = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
TARGET = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])
DIFFS = [-0.5, 0.0, 1.0, -0.75]


def test_mse_hand_value():
    assert MSELoss()(PRED, TARGET).item() == pytest.approx((0.25 + 0 + 1 + 0.5625) / 4)
    assert MSELoss(reduction="sum")(PRED, TARGET).item() == pytest.approx(1.8125)


def test_l1_hand_value():
    assert L1Loss()(PRED, TARGET).item() == pytest.approx((0.5 + 0 + 1 + 0.75) / 4)
    assert L1Loss(reduction="sum")(PRED, TARGET).item() == pytest.approx(2.25)


def test_charbonnier_hand_value_and_eps():
    expected = sum(math.sqrt(d * d + 1e-6) for d in DIFFS) / 4
    assert CharbonnierLoss()(PRED, TARGET).item() == pytest.approx(expected, rel=1e-6)
    # Nothing subtracted (as in LapSRN): identical images give eps, not 0.
    assert CharbonnierLoss()(PRED, PRED).item() == pytest.approx(1e-3, rel=1e-4)
    assert CharbonnierLoss(eps=0.5)(PRED, PRED).item() == pytest.approx(0.5)


@pytest.mark.parametrize("cls", [MSELoss, L1Loss, CharbonnierLoss])
def test_weight_maps(cls):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 4, 6), torch.rand(2, 3, 4, 6)
    loss = cls()
    plain = loss(pred, target)
    for shape in [(2, 4, 6), (2, 1, 4, 6), (2, 3, 4, 6)]:
        assert torch.allclose(loss(pred, target, torch.ones(shape)), plain)
    # Zeroing the right half equals the loss on the left half alone.
    half = torch.zeros(2, 4, 6)
    half[..., :3] = 1.0
    assert torch.allclose(loss(pred, target, half), loss(pred[..., :3], target[..., :3]))
    # A constant scale of the map cancels in the weighted mean.
    w = torch.rand(2, 4, 6)
    assert torch.allclose(loss(pred, target, w), loss(pred, target, 7.0 * w))
    # Weighted mean by hand.
    rho = {MSELoss: lambda d: d**2, L1Loss: torch.abs, CharbonnierLoss: lambda d: (d**2 + 1e-6).sqrt()}[cls]
    wb = w.unsqueeze(1).expand_as(pred)
    assert torch.allclose(loss(pred, target, w), (wb * rho(pred - target)).sum() / wb.sum())


@pytest.mark.parametrize("cls", [MSELoss, L1Loss, CharbonnierLoss])
def test_gradcheck(cls):
    torch.manual_seed(0)
    pred = torch.rand(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 3, 3, dtype=torch.float64)
    weight = torch.rand(1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: cls()(p, target, weight), (pred,))


@pytest.mark.parametrize("name", ["mse", "l1", "charbonnier"])
def test_shapes_one_channel_and_errors(name):
    loss = build_loss(name, task="sr")
    assert loss.kind == "image" and get_loss_info(name).tasks == ("sr", "translate")
    x = torch.rand(2, 1, 5, 5)
    assert loss(x, x.flip(-1)).item() > 0  # 1-channel images accepted
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(torch.rand(5, 5), torch.rand(5, 5))
    with pytest.raises(ValueError, match=r"1 or 3 channels.*\(2, 2, 5, 5\)"):
        loss(torch.rand(2, 2, 5, 5), torch.rand(2, 2, 5, 5))
    with pytest.raises(ValueError, match=r"same shape.*\(2, 1, 5, 5\).*\(2, 1, 5, 4\)"):
        loss(x, torch.rand(2, 1, 5, 4))
    with pytest.raises(ValueError, match=r"weight map of shape \(N, H, W\) = \(2, 5, 5\)"):
        loss(x, x, torch.ones(2, 4, 5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        MSELoss(reduction="max")
    with pytest.raises(ValueError, match="eps"):
        CharbonnierLoss(eps=0.0)


@pytest.mark.parametrize("name", ["mse", "l1", "charbonnier"])
def test_autocast_bfloat16(name):
    loss = build_loss(name)
    pred = torch.rand(2, 3, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(pred.to(torch.bfloat16), torch.rand(2, 3, 8, 8))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
