"""gram_matrix, style, texture and total variation against hand-computed values."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cvloss.losses import build_loss
from cvloss.losses.features import VGGFeatures
from cvloss.losses.style import StyleLoss, TextureLoss, TVLoss, gram_matrix, total_variation


class IdentityFeatures(nn.Module):
    """Stub extractor whose every 'layer' is the input itself: isolates the formula."""

    weights_used = "identity"

    def extract(self, x, layers):
        return {l: x for l in layers}


# Channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [1, 0]]  ->  f0 = (1,2,3,4), f1 = (0,1,1,0)
FEAT = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
G_HAND = torch.tensor([[[30.0, 5.0], [5.0, 2.0]]])  # f0·f0 = 30, f0·f1 = 5, f1·f1 = 2


def test_gram_by_hand_on_a_2x2_map():
    torch.testing.assert_close(gram_matrix(FEAT), G_HAND)
    torch.testing.assert_close(gram_matrix(FEAT, normalize="hw"), G_HAND / 4)  # M = 4
    torch.testing.assert_close(gram_matrix(FEAT, normalize="chw"), G_HAND / 8)  # C·M = 8
    with pytest.raises(ValueError, match="none, hw, chw"):
        gram_matrix(FEAT, normalize="c")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gram_matrix(FEAT[0])


def test_gram_is_float32_under_bf16_autocast():
    f = torch.rand(2, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f.bfloat16())
        g32 = gram_matrix(f)
    assert g.dtype == torch.float32 and g32.dtype == torch.float32
    torch.testing.assert_close(g32, gram_matrix(f))  # autocast did not lower the product
    assert gram_matrix(f.double()).dtype == torch.float64


def test_style_by_hand_is_divided_once():
    loss = StyleLoss(layers=("relu1_1",), weights="random")
    loss.extractor = IdentityFeatures()
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # G = 30
    target = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # A = 2
    # E = (G − A)² / (4 N² M²) = 28² / (4 · 1 · 16) = 12.25 (w = 1/1).
    assert loss(pred, target).item() == pytest.approx(12.25)
    two = StyleLoss(layers=("relu1_1", "relu2_1"), layer_weights=(0.5, 2.0), weights="random")
    two.extractor = IdentityFeatures()
    assert two(pred, target).item() == pytest.approx(2.5 * 12.25)


def _gatys_e(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Per-image Gatys E_l from the unnormalised Gram, in float64, batch-averaged."""
    n, c, h, w = fp.shape
    fp, ft = fp.double().reshape(n, c, h * w), ft.double().reshape(ft.shape[0], c, h * w)
    g, a = fp @ fp.transpose(1, 2), ft @ ft.transpose(1, 2)
    return (((g - a) ** 2).sum(dim=(1, 2)) / (4 * c**2 * (h * w) ** 2)).mean()


def test_style_on_vgg19_matches_the_formula():
    loss = StyleLoss(weights="random")
    assert loss.layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert loss.layer_weights == pytest.approx((0.2,) * 5)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    fp = loss.extractor.extract(pred, loss.layers)
    ft = loss.extractor.extract(target, loss.layers)
    manual = sum(0.2 * _gatys_e(fp[l], ft[l]) for l in loss.layers)
    assert loss(pred, target).item() == pytest.approx(manual.item(), rel=1e-4)
    # A style image of another size and batch 1 is fine; batch 1 broadcasts.
    style_img = torch.rand(1, 3, 48, 48, generator=g)
    torch.testing.assert_close(loss(pred, style_img), loss(pred, style_img.expand(2, -1, -1, -1)))
    with pytest.raises(ValueError, match="no per-pixel weight"):
        loss(pred, target, weight=torch.ones(2, 32, 32))
    with pytest.raises(ValueError, match="batch of 1 or N=2"):
        loss(pred, torch.rand(3, 3, 32, 32))


def test_style_gradient_and_bf16():
    loss = StyleLoss(layers=("relu1_1", "relu2_1"), weights="random")
    pred, target = torch.rand(1, 3, 16, 16, requires_grad=True), torch.rand(1, 3, 16, 16, requires_grad=True)
    ref = loss(pred, target)
    ref.backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        val = loss(pred, target)
    assert val.dtype == torch.float32 and val.item() == pytest.approx(ref.item(), rel=0.1)


def test_texture_whole_image_and_patchwise_by_hand():
    loss = TextureLoss(weights="random")
    assert loss.layers == ("relu1_1", "relu2_1", "relu3_1") and loss.arch == "vgg19"
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    fp, ft = loss.extractor.extract(pred, loss.layers), loss.extractor.extract(target, loss.layers)
    manual = sum(_gatys_e(fp[l], ft[l]) / 3 for l in loss.layers)
    assert loss(pred, target).item() == pytest.approx(manual.item(), rel=1e-4)

    patch = TextureLoss(layers=("relu1_1",), patch_size=2, weights="random")
    patch.extractor = IdentityFeatures()
    x, y = torch.rand(1, 1, 4, 5, generator=g), torch.rand(1, 1, 4, 5, generator=g)
    # Four 2×2 windows (the fifth column is dropped), Gatys' E per window, averaged.
    windows = [(i, j) for i in (0, 2) for j in (0, 2)]
    per = [_gatys_e(x[..., i : i + 2, j : j + 2], y[..., i : i + 2, j : j + 2]) for i, j in windows]
    assert patch(x, y).item() == pytest.approx(torch.stack(per).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="multiple of the stride 2"):
        TextureLoss(layers=("relu2_1",), patch_size=3, weights="random")
    with pytest.raises(ValueError, match="prediction's size"):
        patch(x, torch.rand(1, 1, 6, 6))


def test_total_variation_by_hand_on_a_3x3_image():
    x = torch.tensor([[[[0.0, 1.0, 3.0], [1.0, 1.0, 1.0], [2.0, 0.0, 5.0]]]])
    # vertical |Δ|: 1,0,2 + 1,1,4 = 9; horizontal |Δ|: 1,2 + 0,0 + 2,5 = 10; 12 differences.
    assert total_variation(x, reduction="sum").item() == pytest.approx(19.0)
    assert total_variation(x).item() == pytest.approx(19.0 / 12)
    # squared: 1+0+4+1+1+16 = 23 and 1+4+0+0+4+25 = 34.
    assert total_variation(x, kind="squared", reduction="sum").item() == pytest.approx(57.0)
    assert total_variation(x, kind="squared").item() == pytest.approx(57.0 / 12)
    assert total_variation(torch.full((1, 3, 4, 4), 0.7)).item() == 0.0
    with pytest.raises(ValueError, match="l1, squared"):
        total_variation(x, kind="iso")


def test_tv_loss_ignores_target_and_takes_weights():
    loss = build_loss("tv", task="sr")
    assert isinstance(loss, TVLoss) and loss.feature_weights is None
    x = torch.rand(2, 3, 8, 8)
    assert loss(x).item() == pytest.approx(total_variation(x).item())
    assert loss(x, torch.rand(2, 3, 8, 8)).item() == pytest.approx(loss(x).item())
    torch.testing.assert_close(loss(x, weight=torch.full((2, 8, 8), 5.0)), loss(x))
    w = torch.ones(2, 8, 8)
    w[1] = 0
    torch.testing.assert_close(loss(x, weight=w), loss(x[:1]))
    sq = build_loss("tv(norm=squared, reduction=sum)")
    assert sq(x).item() == pytest.approx(total_variation(x, "squared", "sum").item())
    with pytest.raises(ValueError):
        build_loss("tv(norm=l2)")


def test_gradcheck_float64_gram_tv_style():
    g = torch.Generator().manual_seed(3)
    f = torch.rand(2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gram_matrix(t, normalize="chw"), (f,))
    x = torch.rand(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: total_variation(t), (x,))
    assert torch.autograd.gradcheck(lambda t: total_variation(t, "squared"), (x,))
    loss = StyleLoss(layers=("relu1_1", "relu2_1"), weights="random")
    loss.extractor = VGGFeatures("vgg19", "random").double()
    pred = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 4, 4, generator=g, dtype=torch.float64)
    # The value is small (~1e-6): scale it so gradcheck's absolute tolerance means something.
    assert torch.autograd.gradcheck(lambda t: 1e4 * loss(t, target), (pred,), eps=1e-6, atol=1e-5)
