"""topo (Mosinska et al. 2018), soft skeleton and clDice (Shit et al. 2021)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvloss.losses import build_loss
from cvloss.losses.base import value_checks
from cvloss.losses.features import VGGFeatures
from cvloss.losses.topology import ClDiceLoss, TopoLoss, soft_erode, soft_skeleton


def _seg(c: int, seed: int = 0, n: int = 2, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, size, size, generator=g), torch.randint(0, max(c, 2), (n, size, size), generator=g)


# ---------------------------------------------------------------------- topo
def test_topo_with_mu_zero_is_exactly_the_pixel_term():
    logits, target = _seg(3)
    assert build_loss("topo(mu=0, weights=random)")(logits, target).item() == F.cross_entropy(logits, target).item()
    b_logits, b_target = _seg(1)
    ref = F.binary_cross_entropy_with_logits(b_logits[:, 0], b_target.float())
    torch.testing.assert_close(TopoLoss(mu=0, weights="random")(b_logits, b_target), ref)


def test_topo_adds_the_vgg_term_for_mismatched_masks():
    loss = TopoLoss(weights="random")
    assert loss.layers == ("relu1_2", "relu2_2", "relu3_4") and loss.mu == 0.1 and loss.arch == "vgg19"
    logits, target = _seg(3, seed=1)
    value = loss(logits, target)
    assert value.item() > F.cross_entropy(logits, target).item()
    # Manual: per foreground class, softmax prob vs one-hot, 1 channel repeated to 3.
    probs = logits.softmax(1)
    per_layer = {l: [] for l in loss.layers}
    for c in (1, 2):
        p = probs[:, c : c + 1].repeat(1, 3, 1, 1)
        t = (target == c).float().unsqueeze(1).repeat(1, 3, 1, 1)
        fp, ft = loss.extractor.extract(p, loss.layers), loss.extractor.extract(t, loss.layers)
        for l in loss.layers:
            per_layer[l].append(((fp[l] - ft[l]) ** 2).sum() / fp[l].numel())
    topo = sum(torch.stack(v).mean() for v in per_layer.values())  # classes averaged, layers summed
    torch.testing.assert_close(value, F.cross_entropy(logits, target) + 0.1 * topo)
    with_bg = TopoLoss(weights="random", include_background=True)
    assert with_bg(logits, target).item() != pytest.approx(value.item())


def test_topo_feature_term_vanishes_for_a_perfect_prediction_and_grad_flows():
    loss = TopoLoss(mu=1.0, weights="random")
    _, target = _seg(2, seed=2)
    perfect = 60.0 * (F.one_hot(target, 2).permute(0, 3, 1, 2).float() - 0.5)
    assert loss(perfect, target).item() < 1e-6
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    loss(logits, target).backward()
    assert logits.grad.abs().sum() > 0


def test_topo_weight_map_and_errors():
    loss = TopoLoss(mu=0.0, weights="random")
    logits, target = _seg(3, seed=3)
    w = torch.ones(2, 16, 16)
    w[1] = 0
    torch.testing.assert_close(loss(logits, target, weight=w), F.cross_entropy(logits[:1], target[:1]))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        loss(logits, target[:, :8])
    with value_checks(), pytest.raises(ValueError, match=r"\[0, 2\]"):  # opt-in value check
        loss(logits, target + 3)
    with pytest.raises(ValueError, match="mu"):
        build_loss("topo(mu=-1, weights=random)")


def test_topo_gradcheck_float64():
    loss = TopoLoss(mu=0.5, layers=("relu1_2",), weights="random")
    loss.extractor = VGGFeatures("vgg19", "random").double()
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 2, (1, 5, 5), generator=g)
    assert torch.autograd.gradcheck(lambda t: loss(t, target), (logits,), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------------- soft skeleton
def test_soft_erode_uses_the_3x3_cross():
    x = torch.ones(1, 1, 5, 5)
    x[0, 0, 1, 1] = 0  # a hole: erosion spreads it to its 4-neighbours, not its diagonals
    e = soft_erode(x)[0, 0]
    assert e[0, 1] == 0 and e[1, 0] == 0 and e[2, 1] == 0 and e[1, 2] == 0
    assert e[0, 0] == 1 and e[2, 2] == 1


def test_soft_skeleton_of_a_thick_bar_is_thin_and_inside():
    bar = torch.zeros(1, 1, 16, 16)
    bar[..., 5:10, 2:14] = 1.0  # 5 rows thick, 12 columns long
    skel = soft_skeleton(bar, iters=5)
    assert skel.shape == bar.shape
    assert skel.min() >= 0 and skel.max() <= 1
    assert (skel * (1 - bar)).abs().sum() == 0  # inside the bar
    assert skel.sum() <= bar.sum() / 3  # thin
    assert (skel[0, 0, 7, 4:12] > 0.5).all()  # the centre line is there
    assert (skel[0, 0, 5] == 0).all() and (skel[0, 0, 9] == 0).all()  # the bar's edges are not
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        soft_skeleton(bar[0])


# ---------------------------------------------------------------------- clDice
def test_cldice_by_the_formula_and_perfect_prediction():
    loss = ClDiceLoss()
    assert (loss.alpha, loss.iters, loss.smooth) == (0.5, 3, 1.0)
    logits, target = _seg(1, seed=5)
    p = torch.sigmoid(logits)
    v = target.unsqueeze(1).float()
    sp, sl = soft_skeleton(p, 3), soft_skeleton(v, 3)
    tprec = ((sp * v).sum() + 1) / (sp.sum() + 1)
    tsens = ((sl * p).sum() + 1) / (sl.sum() + 1)
    cl = 2 * tprec * tsens / (tprec + tsens)
    dice = (2 * (p * v).sum() + 1) / (p.sum() + v.sum() + 1)
    torch.testing.assert_close(loss(logits, target), 0.5 * (1 - dice) + 0.5 * (1 - cl))
    perfect = 40.0 * (v - 0.5)
    assert loss(perfect, target).item() < 1e-6


def test_cldice_single_channel_equals_two_channel_softmax_and_is_not_constant():
    logits1, target = _seg(1, seed=6)
    logits2 = torch.cat([torch.zeros_like(logits1), logits1], dim=1)  # softmax[:,1] = sigmoid(z)
    loss = ClDiceLoss()
    torch.testing.assert_close(loss(logits1, target), loss(logits2, target))
    other, _ = _seg(1, seed=7)
    assert loss(logits1, target).item() != pytest.approx(loss(other, target).item())
    z = logits1.clone().requires_grad_()
    loss(z, target).backward()
    assert z.grad.abs().sum() > 0


def test_cldice_multiclass_averages_classes_and_errors():
    logits, target = _seg(3, seed=8)
    per_class = []
    for c in (1, 2):
        two = torch.stack([torch.zeros_like(logits[:, 0]), logits[:, c] - torch.logsumexp(logits[:, [0, 3 - c]], 1)], 1)
        per_class.append(ClDiceLoss()(two, (target == c).long()))
    # softmax prob of class c = sigmoid(z_c − logsumexp(others)); the loss averages the classes.
    torch.testing.assert_close(ClDiceLoss()(logits, target), torch.stack(per_class).mean())
    with pytest.raises(ValueError, match="alpha"):
        build_loss("cldice(alpha=1.5)")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        ClDiceLoss()(logits, target[0])


def test_cldice_gradcheck_float64():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 2, (1, 8, 8), generator=g)
    loss = ClDiceLoss(iters=2)
    assert torch.autograd.gradcheck(lambda t: loss(t, target), (logits,))
    multi = torch.randn(1, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    t3 = torch.randint(0, 3, (1, 6, 6), generator=g)
    assert torch.autograd.gradcheck(lambda t: loss(t, t3), (multi,))
