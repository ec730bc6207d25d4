"""CombinedLoss shares the frozen VGG between its feature terms: one pass over the
prediction and one graph-free pass over the target per extractor, to the deepest layer
any term needs -- with the same value and gradient as the terms computed one by one."""
from __future__ import annotations

import pytest
import torch

from cvloss.losses import build_loss
from cvloss.losses.features import VGGFeatures

SPEC = "l1+0.5*perceptual(arch=vgg19,layers=[relu2_2])+100*texture+content(layer=relu1_2)"


@pytest.fixture
def calls(monkeypatch):
    """Record (batch id, layers, grad enabled) of every VGGFeatures.extract call."""
    log: list[tuple[int, tuple[str, ...], bool, str]] = []
    original = VGGFeatures.extract

    def counting(self, x, layers):
        layers = tuple(layers)
        log.append((id(x), layers, torch.is_grad_enabled(), self.arch))
        return original(self, x, layers)

    monkeypatch.setattr(VGGFeatures, "extract", counting)
    return log


def _inputs():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 24, 24, generator=g).requires_grad_(True)
    return pred, torch.rand(2, 3, 24, 24, generator=g)


def test_one_pass_on_pred_and_one_graph_free_pass_on_target(calls):
    loss = build_loss(SPEC, feature_weights="random")
    pred, target = _inputs()
    loss(pred, target).backward()
    assert len(calls) == 2, calls  # three feature terms, one network: 2 passes, not 6
    (p_id, p_layers, p_grad, _), (t_id, t_layers, t_grad, _) = calls
    assert p_id == id(pred) and t_id == id(target)
    assert p_grad and not t_grad  # the target's pass keeps no graph
    # the union of the terms' layers, so the pass stops at the deepest (texture's relu3_1)
    assert set(p_layers) == {"relu2_2", "relu1_1", "relu2_1", "relu3_1", "relu1_2"} and p_layers == t_layers


def test_shared_value_and_gradient_equal_the_terms_one_by_one(calls):
    loss = build_loss(SPEC, feature_weights="random")
    pred, target = _inputs()
    shared = loss(pred, target)
    (g_shared,) = torch.autograd.grad(shared, pred)
    n_shared = len(calls)
    separate = sum(w * t(pred, target) for w, t in loss.weighted_terms())
    (g_separate,) = torch.autograd.grad(separate, pred)
    assert len(calls) - n_shared == 6  # each feature term alone: 2 passes
    torch.testing.assert_close(shared, separate, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_shared, g_separate, rtol=1e-4, atol=1e-8)


def test_terms_on_different_networks_each_run_once(calls):
    # perceptual defaults to VGG16, texture to VGG19: they cannot share, but each runs once.
    loss = build_loss("perceptual+texture+perceptual(layers=[relu1_2])", feature_weights="random")
    pred, target = _inputs()
    loss(pred, target).backward()
    assert sorted((arch, grad) for _, _, grad, arch in calls) == [
        ("vgg16", False), ("vgg16", True), ("vgg19", False), ("vgg19", True)]


def test_input_errors_still_come_from_the_term():
    loss = build_loss("l1+perceptual", feature_weights="random")
    with pytest.raises(ValueError, match="same shape as the prediction"):
        loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 8))
