"""Segmentation losses and U-Net weight maps: hand values, brute-force references,
weighted means, gradcheck, stability, shape errors, autocast."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvloss.losses import SpecError, build_loss
from cvloss.losses.base import value_checks
from cvloss.losses.segmentation import (
    BCELoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    WeightedCrossEntropyLoss,
    class_balanced_weights,
    unet_weight_map,
)

LN3 = math.log(3.0)


def logits_2px(*pixels):
    """(1, C, 1, P) logits from per-pixel logit lists."""
    return torch.tensor(pixels, dtype=torch.float64).T.reshape(1, len(pixels[0]), 1, len(pixels))


# ---------------------------------------------------------------- ce
def test_ce_hand_value():
    logits = logits_2px([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    target = torch.tensor([[[2, 0]]])
    l0 = -(3 - math.log(math.e + math.e**2 + math.e**3))
    expected = (l0 + LN3) / 2
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)


def test_ce_label_smoothing_hand_value():
    logits = logits_2px([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    target = torch.tensor([[[2, 0]]])
    lse = math.log(math.e + math.e**2 + math.e**3)
    nll = [lse - 1, lse - 2, lse - 3]
    eps = 0.3
    l0 = (1 - eps) * nll[2] + eps * sum(nll) / 3
    l1 = LN3  # uniform prediction: every class costs log 3, smoothed or not
    assert CrossEntropyLoss(label_smoothing=eps)(logits, target).item() == pytest.approx((l0 + l1) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.0)


def test_ce_single_channel_is_binary_ce():
    logits = torch.tensor([0.0, 2.0], dtype=torch.float64).reshape(1, 1, 1, 2)
    target = torch.tensor([[[1, 0]]])
    expected = (math.log(2) + math.log(1 + math.e**2)) / 2
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- bce
def test_bce_hand_value_and_stability():
    logits = torch.tensor([0.0, 2.0, -3.0], dtype=torch.float64).reshape(1, 1, 1, 3)
    target = torch.tensor([[[1, 1, 0]]])
    expected = (math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-3))) / 3
    assert BCELoss()(logits, target).item() == pytest.approx(expected, rel=1e-12)
    # Saturated wrong logits: log-sum-exp gives |z|, a log of probabilities would give inf.
    z = torch.tensor([200.0, -200.0]).reshape(1, 1, 1, 2).requires_grad_()
    out = BCELoss()(z, torch.tensor([[[0, 1]]]))
    assert out.item() == pytest.approx(200.0)
    out.backward()
    assert torch.isfinite(z.grad).all()


def test_bce_two_channels_uses_logit_difference():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 3, 4, dtype=torch.float64)
    target = torch.randint(0, 2, (2, 3, 4))
    diff = (logits[:, 1:] - logits[:, :1])
    assert torch.allclose(BCELoss()(logits, target), BCELoss()(diff, target))
    assert torch.allclose(BCELoss()(logits, target), CrossEntropyLoss()(logits, target))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*got \(2, 3, 3, 4\)"):
        BCELoss()(torch.randn(2, 3, 3, 4), target)


# ---------------------------------------------------------------- class weights and the U-Net map
def test_class_balanced_weights_by_hand():
    target = torch.tensor([[0, 0, 1], [2, 0, 0]])
    # N = 6, C = 4, counts (4, 1, 1, 0): w_c = 6 / (4 N_c), absent class -> 0
    w = class_balanced_weights(target, 4)
    assert w.dtype == torch.float32
    assert torch.allclose(w, torch.tensor([6 / 16, 6 / 4, 6 / 4, 0.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\].*\[0, 2\]"):
        class_balanced_weights(target, 2)


def brute_force_unet(mask, objects, w0, sigma, class_weights=None):
    """Per pixel: sort the distances to every object's nearest pixel (pure loops)."""
    h, w = mask.shape
    out = np.ones((h, w)) if class_weights is None else np.asarray(class_weights, float)[mask]
    for i in range(h):
        for j in range(w):
            if mask[i, j] != 0:
                continue
            ds = sorted(min(math.hypot(i - a, j - b) for a, b in obj) for obj in objects)
            if len(ds) >= 2:
                out[i, j] += w0 * math.exp(-((ds[0] + ds[1]) ** 2) / (2 * sigma**2))
    return out


def rect(r0, r1, c0, c1):
    return [(a, b) for a in range(r0, r1) for b in range(c0, c1)]


def make_masks():
    h, w = 10, 12
    # Image 0: two separate class-1 blobs, one class-2 blob touching the first (a
    # different object because its class differs), one class-2 bar at the bottom.
    objs0 = [rect(1, 4, 1, 4), rect(1, 4, 7, 10), rect(1, 3, 4, 6), rect(7, 9, 2, 11)]
    classes0 = [1, 1, 2, 2]
    # Image 1: a block and a diagonal line of one class; 4-connectivity makes each
    # diagonal pixel its own object. Image 2: a single object (no border term).
    objs1 = [rect(0, 3, 0, 3)] + [[(a, 5 + a)] for a in range(7)]
    classes1 = [1] * len(objs1)
    objs2 = [rect(4, 6, 4, 6)]
    masks, objects = np.zeros((3, h, w), dtype=np.int64), []
    for n, (objs, cls) in enumerate([(objs0, classes0), (objs1, classes1), (objs2, [3])]):
        for obj, c in zip(objs, cls):
            for a, b in obj:
                masks[n, a, b] = c
        objects.append(objs)
    return masks, objects


def test_unet_weight_map_matches_brute_force():
    masks, objects = make_masks()
    w0, sigma = 10.0, 5.0
    got = unet_weight_map(torch.from_numpy(masks), w0=w0, sigma=sigma)
    assert got.shape == (3, 10, 12) and got.dtype == torch.float32
    for n in range(3):
        ref = brute_force_unet(masks[n], objects[n], w0, sigma)
        np.testing.assert_allclose(got[n].numpy(), ref, rtol=1e-6)
    assert torch.all(got[2] == 1.0)  # one object: no second-nearest, no border term
    assert got[0].max() > 5.0  # the gaps between objects are emphasised


def test_unet_weight_map_class_weights_sigma_and_2d_input():
    masks, objects = make_masks()
    cw = [0.5, 2.0, 3.0, 4.0]
    got = unet_weight_map(masks[0], w0=4.0, sigma=2.0, class_weights=cw)  # (H, W) numpy
    assert isinstance(got, torch.Tensor) and got.shape == (10, 12) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), brute_force_unet(masks[0], objects[0], 4.0, 2.0, cw), rtol=1e-6)
    # A different background id: class 0 pixels now form the objects.
    empty = unet_weight_map(np.zeros((4, 4), dtype=np.int64))
    assert torch.all(empty == 1.0)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        unet_weight_map(np.zeros((1, 1, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        unet_weight_map(np.zeros((4, 4)))  # float mask


def test_unet_weight_map_background_argument():
    mask = np.full((6, 9), 2, dtype=np.int64)
    mask[1:5, 1:3] = 0
    mask[1:5, 6:8] = 0
    objs = [rect(1, 5, 1, 3), rect(1, 5, 6, 8)]
    got = unet_weight_map(mask, background=2).numpy()
    ref = brute_force_unet(np.where(mask == 2, 0, 1), objs, 10.0, 5.0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


# ---------------------------------------------------------------- wce
def test_wce_balanced_hand_value():
    logits = logits_2px([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, LN3])
    target = torch.tensor([[[0, 0, 0, 1]]])
    # w = N / (C N_c): 4 / (2·3) = 2/3 for class 0, 4 / (2·1) = 2 for class 1; Σw = 4
    expected = (3 * (2 / 3) * math.log(2) + 2 * math.log(4 / 3)) / 4
    got = WeightedCrossEntropyLoss(weighting="balanced")(logits, target)
    assert got.item() == pytest.approx(expected, rel=1e-7)  # the weights are float32
    assert got.item() != pytest.approx(CrossEntropyLoss()(logits, target).item(), rel=1e-3)


def test_wce_unet_uses_weight_map():
    masks, _ = make_masks()
    target = torch.from_numpy(masks).clamp_max(2)
    torch.manual_seed(0)
    logits = torch.randn(3, 3, 10, 12, dtype=torch.float64)
    nll = -F.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
    for weighting, cw in [("unet", None), ("balanced+unet", class_balanced_weights(target, 3))]:
        w = unet_weight_map(target, 10.0, 5.0, cw).double()
        expected = (w * nll).sum() / w.sum()
        got = WeightedCrossEntropyLoss(weighting=weighting)(logits, target)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # A forward weight map multiplies the computed one.
    extra = torch.rand(3, 10, 12, dtype=torch.float64)
    w = unet_weight_map(target).double() * extra
    got = WeightedCrossEntropyLoss()(logits, target, extra)
    assert got.item() == pytest.approx(((w * nll).sum() / w.sum()).item(), rel=1e-6)


def test_wce_build_from_spec():
    loss = build_loss("wce(weighting=balanced)", task="seg")
    assert isinstance(loss, WeightedCrossEntropyLoss) and loss.weighting == "balanced"
    assert build_loss('wce(weighting="balanced+unet", w0=5, sigma=3)', task="seg").w0 == 5.0
    assert build_loss("wce", task="seg").weighting == "unet"
    with pytest.raises(SpecError, match="one of 'balanced', 'unet', 'balanced\\+unet'"):
        build_loss("wce(weighting=borders)", task="seg")
    with pytest.raises(SpecError, match="does not serve task"):
        build_loss("wce", task="sr")


# ---------------------------------------------------------------- dice
def test_dice_hand_values():
    # C = 1: p = 0.5 on both pixels, g = (1, 0): (2·0.5 + 1) / (1 + 1 + 1)
    z = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    t = torch.tensor([[[1, 0]]])
    assert DiceLoss()(z, t).item() == pytest.approx(1 - 2 / 3)
    assert DiceLoss(smooth=0.0)(z, t).item() == pytest.approx(0.5)
    # C = 2: p = (1/4, 3/4) and (3/4, 1/4), both targets class 1.
    logits = logits_2px([0.0, LN3], [LN3, 0.0])
    t = torch.tensor([[[1, 1]]])
    # class 0: (0 + 1) / (1 + 0 + 1) = 1/2; class 1: (2·1 + 1) / (1 + 2 + 1) = 3/4
    assert DiceLoss()(logits, t).item() == pytest.approx(1 - (0.5 + 0.75) / 2)
    assert DiceLoss(include_background=False)(logits, t).item() == pytest.approx(1 - 0.75)
    # Batch-level: the same two pixels as two images give the same value (not a mean of
    # per-image Dice, which would be ≈ 0.263 here).
    as_batch = logits.permute(3, 1, 2, 0)  # (2, 2, 1, 1)
    assert DiceLoss()(as_batch, t.reshape(2, 1, 1)).item() == pytest.approx(3 / 8)


# ---------------------------------------------------------------- focal
def test_focal_hand_values():
    logits = logits_2px([0.0, LN3], [0.0, LN3])  # p = (1/4, 3/4) on both pixels
    t = torch.tensor([[[1, 0]]])
    fl1 = (1 / 4) ** 2 * -math.log(3 / 4)  # p_t = 3/4
    fl0 = (3 / 4) ** 2 * -math.log(1 / 4)  # p_t = 1/4
    assert FocalLoss()(logits, t).item() == pytest.approx((fl1 + fl0) / 2, rel=1e-12)
    assert FocalLoss(alpha=0.25)(logits, t).item() == pytest.approx((0.25 * fl1 + 0.75 * fl0) / 2, rel=1e-12)
    # C = 1 (sigmoid form): z = ln 3 gives the same p
    z = torch.full((1, 1, 1, 2), LN3, dtype=torch.float64)
    assert FocalLoss()(z, t).item() == pytest.approx((fl1 + fl0) / 2, rel=1e-12)
    # γ = 0 is cross-entropy.
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 3, 3))
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), CrossEntropyLoss()(logits, target))
    # Saturated logits stay finite.
    big = torch.tensor([300.0, -300.0]).reshape(1, 2, 1, 1).requires_grad_()
    out = FocalLoss()(big, torch.tensor([[[1]]]))
    assert out.item() == pytest.approx(600.0)
    out.backward()
    assert torch.isfinite(big.grad).all()


@pytest.mark.parametrize("gamma", [0.25, 0.4167, 0.999, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_focal_gradient_is_zero_not_nan_where_p_t_rounds_to_one(gamma, dtype):
    """0 < γ < 1: d(1 − p_t)^γ/dp_t is infinite at p_t = 1, so a confident pixel once made the
    whole gradient NaN (a reference-study search candidate "diverged" in its first epoch).
    The loss there, (1 − p_t)^γ·(−log p_t) ~ (1 − p_t)^(γ+1), has gradient 0."""
    logits = torch.tensor([[[[40.0, 0.5]], [[-40.0, 0.0]]]], dtype=dtype, requires_grad=True)  # pixel 0: p_t == 1
    target = torch.tensor([[[0, 1]]])
    loss = FocalLoss(gamma=gamma, alpha=0.1667)(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, :, 0, 0].abs().max().item() < 1e-30  # 0, or the (1 − p_t)^(γ+1) scale
    assert logits.grad[0, :, 0, 1].abs().max().item() > 0.0  # the other pixel still learns


def test_focal_gradcheck_with_gamma_below_one():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 2, 2))
    assert torch.autograd.gradcheck(lambda z: FocalLoss(gamma=0.5, alpha=0.3)(z, target), (logits,))


# ---------------------------------------------------------------- shared behaviour
SEG_LOSSES = {
    "ce": CrossEntropyLoss,
    "bce": BCELoss,
    "wce": lambda: WeightedCrossEntropyLoss(weighting="balanced+unet"),
    "dice": DiceLoss,
    "focal": lambda: FocalLoss(alpha=0.25),
}


def _inputs(name, dtype=torch.float32, n=2, h=6, w=7):
    torch.manual_seed(1)
    c = 2 if name == "bce" else 3
    logits = torch.randn(n, c, h, w, dtype=dtype)
    target = torch.randint(0, c, (n, h, w))
    return logits, target


@pytest.mark.parametrize("name", list(SEG_LOSSES))
def test_weight_map_means(name):
    loss = SEG_LOSSES[name]()
    logits, target = _inputs(name, torch.float64)
    plain = loss(logits, target)
    assert torch.allclose(loss(logits, target, torch.ones(2, 6, 7, dtype=torch.float64)), plain)
    assert torch.allclose(loss(logits, target, torch.ones(2, 1, 6, 7, dtype=torch.float64)), plain)
    if name != "wce":  # wce's own map depends on the whole target, not only the kept half
        half = torch.zeros(2, 6, 7, dtype=torch.float64)
        half[..., :3] = 1.0
        assert torch.allclose(loss(logits, target, half), loss(logits[..., :3], target[..., :3]))
    with pytest.raises(ValueError, match=r"\(N, H, W\) = \(2, 6, 7\).*got \(2, 6, 6\)"):
        loss(logits, target, torch.ones(2, 6, 6))


@pytest.mark.parametrize("name", list(SEG_LOSSES))
def test_gradcheck(name):
    loss = SEG_LOSSES[name]()
    logits, target = _inputs(name, torch.float64, n=2, h=3, w=3)
    weight = torch.rand(2, 3, 3, dtype=torch.float64)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: loss(z, target, weight), (logits,))


@pytest.mark.parametrize("name", list(SEG_LOSSES))
def test_shape_errors(name):
    loss = build_loss(name, task="seg")
    logits, target = _inputs(name)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(logits[0], target)
    with pytest.raises(ValueError, match=r"\(N, H, W\) = \(2, 6, 7\).*\(2, 6, 6\)"):
        loss(logits, target[..., :6])
    # The label range is a value check (it reads the target on the host): opt-in.
    with value_checks(), pytest.raises(ValueError, match=r"class ids must lie in \[0, "):
        loss(logits, target + 5)


@pytest.mark.parametrize("name", list(SEG_LOSSES))
@pytest.mark.parametrize("channels", [1, 3])
def test_defaults_autocast_and_grad(name, channels):
    if name == "bce" and channels == 3:
        channels = 2
    loss = build_loss(name, task="seg")
    torch.manual_seed(2)
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    target = torch.randint(0, max(channels, 2), (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(logits.to(torch.bfloat16), target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="sigma"):
        WeightedCrossEntropyLoss(sigma=0.0)
    with pytest.raises(ValueError, match="smooth"):
        DiceLoss(smooth=-1.0)
