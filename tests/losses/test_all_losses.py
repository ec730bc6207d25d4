"""Every registered loss, automatically: builds from its bare name, gives a finite value,
sends a gradient to its input, and survives CPU bf16 autocast. A loss registered later is
exercised here without anyone editing this file."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cvloss.losses import build_loss, list_losses

EXPECTED = {
    "mse", "l1", "charbonnier", "ce", "bce", "wce", "dice", "focal", "ssim",
    "perceptual", "content", "style", "texture", "tv", "topo", "cldice",
    "contrastive", "triplet", "triplet_offline", "softmax",
    "minimax", "ns", "lsgan", "wgan", "wgan_gp", "hinge",
    "cycle", "identity",
}  # fmt: skip

ALL = [info.name for info in list_losses()]


def test_every_loss_of_the_design_is_registered():
    missing = EXPECTED - set(ALL)
    assert not missing, f"not registered: {sorted(missing)}"


@pytest.mark.parametrize("name", ALL)
def test_metadata_is_complete(name):
    info = next(i for i in list_losses() if i.name == name)
    assert info.tasks and info.paper and info.family
    assert len(info.doc) > 80, "docstring must give the formula, constants, shapes and ranges"


def _seg_inputs(channels: int, gen: torch.Generator):
    logits = torch.randn(2, channels, 16, 16, generator=gen, requires_grad=True)
    target = torch.randint(0, max(channels, 2), (2, 16, 16), generator=gen)
    return logits, target


def _forward_value(loss: nn.Module, kind: str, gen: torch.Generator, autocast: bool):
    """Return (value, input tensors that should receive a gradient)."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    if kind == "seg":
        # Multi-class first; binary-only losses (bce) refuse C=3 with a ValueError.
        try:
            logits, target = _seg_inputs(3, gen)
            with ctx:
                return loss(logits, target), [logits]
        except ValueError:
            logits, target = _seg_inputs(1, gen)
            with ctx:
                return loss(logits, target), [logits]
    if kind in ("image", "cycle"):
        pred = torch.rand(2, 3, 32, 32, generator=gen).requires_grad_()
        target = torch.rand(2, 3, 32, 32, generator=gen)
        with ctx:
            return loss(pred, target), [pred]
    if kind == "metric":
        emb = torch.randn(12, 8, generator=gen)
        emb = (emb / emb.norm(dim=1, keepdim=True)).requires_grad_()
        labels = torch.arange(4).repeat_interleave(3)
        with ctx:
            return loss(emb, labels), [emb]
    if kind == "logits":
        logits = torch.randn(6, 4, generator=gen, requires_grad=True)
        labels = torch.tensor([0, 1, 2, 3, 0, 1])
        with ctx:
            return loss(logits, labels), [logits]
    if kind == "triplets":
        a, p, n = (torch.nn.functional.normalize(torch.randn(5, 8, generator=gen), dim=1).requires_grad_() for _ in range(3))
        with ctx:
            return loss(a, p, n), [a, p, n]
    if kind == "adversarial":
        real_out = torch.randn(4, 1, generator=gen, requires_grad=True)
        fake_out = torch.randn(4, 1, generator=gen, requires_grad=True)
        critic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.LazyLinear(1))
        real, fake = torch.rand(4, 3, 8, 8, generator=gen), torch.rand(4, 3, 8, 8, generator=gen)
        critic(real)  # materialise the lazy layer
        with ctx:
            total = loss.d_loss(real_out, fake_out) + loss.g_loss(fake_out) + loss.penalty(critic, real, fake)
        return total, [real_out, fake_out]
    raise AssertionError(f"unknown kind {kind}")


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("name", ALL)
def test_value_is_finite_and_gradient_reaches_input(name, autocast):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    loss = build_loss(name, feature_weights="random")
    value, inputs = _forward_value(loss, loss.kind, gen, autocast)
    assert value.dim() == 0, "default reduction must give a scalar"
    assert torch.isfinite(value), f"{name}: non-finite value {value}"
    value.float().backward()
    for x in inputs:
        assert x.grad is not None, f"{name}: no gradient reached the input"
        assert torch.isfinite(x.grad).all(), f"{name}: non-finite gradient"
    assert any(x.grad.abs().sum() > 0 for x in inputs), f"{name}: zero gradient everywhere"


@pytest.mark.parametrize("name", ALL)
def test_loss_serves_its_tasks(name):
    info = next(i for i in list_losses() if i.name == name)
    for task in info.tasks:
        assert build_loss(name, task=task, feature_weights="random").name == name


def test_feature_weights_are_reported():
    loss = build_loss("l1+0.01*perceptual", feature_weights="random")
    assert "random" in loss.feature_weights
    assert loss.config()["feature_weights"] == loss.feature_weights
    assert build_loss("l1").feature_weights is None
