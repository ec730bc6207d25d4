"""perceptual (Johnson et al. 2016) and content (Gatys et al. 2016) against manual values."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import vgg as tv_vgg

from cvloss.losses import build_loss
from cvloss.losses.features import LAYER_INDEX, VGGFeatures
from cvloss.losses.perceptual import ContentLoss, PerceptualLoss

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _images(seed: int = 0, n: int = 2, c: int = 3, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g), torch.rand(n, c, size, size, generator=g)


def test_default_perceptual_equals_johnson_formula_on_torchvision_vgg16():
    loss = PerceptualLoss(weights="random")
    assert loss.layers == ("relu2_2",) and loss.arch == "vgg16"
    ref = tv_vgg.make_layers(tv_vgg.cfgs["D"])[: LAYER_INDEX["vgg16"]["relu2_2"] + 1]
    ref.load_state_dict(loss.extractor.features[:9].state_dict())
    pred, target = _images()
    phi_p, phi_t = ref((pred - MEAN) / STD), ref((target - MEAN) / STD)
    c, h, w = phi_p.shape[1:]
    # ‖φ(ŷ) − φ(y)‖²₂ / (C·H·W) per image, then the batch mean.
    per_image = ((phi_p - phi_t) ** 2).flatten(1).sum(1) / (c * h * w)
    torch.testing.assert_close(loss(pred, target), per_image.mean())


def test_layer_weights_sum_the_layer_terms():
    loss = PerceptualLoss(layers=("relu1_2", "relu2_2"), layer_weights=(0.5, 2.0), weights="random")
    pred, target = _images(1)
    fp = loss.extractor.extract(pred, loss.layers)
    ft = loss.extractor.extract(target, loss.layers)
    manual = sum(w * ((fp[l] - ft[l]) ** 2).sum() / fp[l].numel() for l, w in zip(loss.layers, (0.5, 2.0)))
    torch.testing.assert_close(loss(pred, target), manual)
    assert loss(target, target).item() == 0.0
    with pytest.raises(ValueError, match="one layer weight per layer"):
        PerceptualLoss(layers=("relu1_2", "relu2_2"), layer_weights=(1.0,), weights="random")


def test_target_gets_no_graph_and_pred_gets_a_gradient():
    loss = PerceptualLoss(weights="random")
    pred, target = _images(2)
    pred.requires_grad_()
    target.requires_grad_()
    loss(pred, target).backward()
    assert pred.grad.abs().sum() > 0
    assert target.grad is None


def test_weight_map_is_a_weighted_mean_over_the_feature_map():
    loss = PerceptualLoss(weights="random")
    pred, target = _images(3)
    ones = torch.ones(2, 16, 16)
    torch.testing.assert_close(loss(pred, target, weight=3 * ones), loss(pred, target))
    only_first = ones.clone()
    only_first[1] = 0
    torch.testing.assert_close(loss(pred, target, weight=only_first), loss(pred[:1], target[:1]))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        loss(pred, target, weight=torch.ones(2, 8, 8))


def test_grayscale_and_shape_errors():
    loss = PerceptualLoss(weights="random")
    pred, target = _images(4, c=1)
    torch.testing.assert_close(loss(pred, target), loss(pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"same shape"):
        loss(pred, target[:, :, :8])
    with pytest.raises(ValueError, match=r"1 or 3 channels"):
        loss(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8))


def test_content_is_half_the_sum_of_squares_and_mean_variant():
    summed = ContentLoss(reduction="sum", weights="random")
    assert summed.layer == "relu4_2" and summed.arch == "vgg19"
    pred, target = _images(5)
    f = summed.extractor.extract(pred, ["relu4_2"])["relu4_2"]
    p = summed.extractor.extract(target, ["relu4_2"])["relu4_2"]
    half_sum = 0.5 * ((f - p) ** 2).sum()
    torch.testing.assert_close(summed(pred, target), half_sum)
    mean = ContentLoss(weights="random")
    torch.testing.assert_close(mean(pred, target), half_sum / f.numel())
    pre = ContentLoss(layer="conv4_2", weights="random")
    assert not torch.allclose(pre(pred, target), mean(pred, target))


def test_spec_building_and_reporting():
    loss = build_loss("l1+0.01*perceptual(layers=[relu1_2,relu2_2])", task="sr", feature_weights="random")
    assert loss.feature_weights == "random(seed=0)"
    term = loss.weighted_terms()[1][1]
    assert term.layers == ("relu1_2", "relu2_2") and term.config()["feature_weights"] == "random(seed=0)"
    with pytest.raises(ValueError, match="vgg16, vgg19|'vgg16', 'vgg19'"):
        build_loss("perceptual(arch=vgg11, weights=random)")
    loss.train()
    assert not term.extractor.training


def test_autocast_bf16_close_to_fp32():
    loss = PerceptualLoss(weights="random")
    pred, target = _images(6)
    ref = loss(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        val = loss(pred, target)
    assert val.dtype == torch.float32
    assert torch.isfinite(val) and abs(val.item() - ref.item()) < 0.05 * ref.item()


def test_gradcheck_float64():
    loss = PerceptualLoss(layers=("relu1_2", "relu2_2"), weights="random")
    loss.extractor = VGGFeatures("vgg16", "random").double()  # private copy: the cached one stays float32
    g = torch.Generator().manual_seed(7)
    pred = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (pred,), eps=1e-6, atol=1e-5)
