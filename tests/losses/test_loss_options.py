"""The options users know from torch / segmentation_models_pytorch: ``ignore_index`` on
every segmentation loss, class weights on ``ce`` and ``focal``, ``reduction`` (with
``none`` parsed as the string), and ``build_loss(require_scalar=True)``."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cvloss.losses import SpecError, build_loss, list_losses, parse_spec
from cvloss.losses.base import value_checks

IGNORE = 255
SEG_LOSSES = ("ce", "wce", "focal", "dice", "bce", "topo", "cldice")
# Extra arguments so every loss runs here offline and on tiny maps.
EXTRA = {"topo": "weights=random", "cldice": "iters=2"}


def _spec(name: str, *args: str) -> str:
    parts = [a for a in (EXTRA.get(name), *args) if a]
    return f"{name}({','.join(parts)})" if parts else name


def _batch(c: int, seed: int = 0, n: int = 2, h: int = 12, w: int = 12):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    target = torch.randint(0, max(c, 2), (n, h, w), generator=g)
    return logits, target


def _channels(name: str) -> list[int]:
    return [1, 2] if name == "bce" else [1, 3]


def test_every_registered_seg_loss_takes_ignore_index():
    """The list above is every loss of the seg task: a new one must join it."""
    assert {i.name for i in list_losses("seg")} == set(SEG_LOSSES)
    for name in SEG_LOSSES:
        assert build_loss(_spec(name, "ignore_index=255")).ignore_index == 255


# ---------------------------------------------------------------- ce against torch
def test_ce_ignore_index_hand_computed():
    # pixel A: logits (0, ln 3), class 1 -> p = 3/4, l = ln(4/3); pixel B ignored;
    # pixel C: logits (0, 0), class 0 -> l = ln 2.
    logits = torch.tensor([[[[0.0, 5.0, 0.0]], [[math.log(3), -2.0, 0.0]]]])  # (1, 2, 1, 3)
    target = torch.tensor([[[1, IGNORE, 0]]])
    value = build_loss("ce(ignore_index=255)")(logits, target)
    assert value.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2, rel=1e-6)
    # class weights [1, 2]: (2 ln(4/3) + 1 ln 2) / (2 + 1)
    value = build_loss("ce(ignore_index=255,weight=[1,2])")(logits, target)
    assert value.item() == pytest.approx((2 * math.log(4 / 3) + math.log(2)) / 3, rel=1e-6)
    assert build_loss("ce(ignore_index=255,reduction=sum)")(logits, target).item() == pytest.approx(
        math.log(4 / 3) + math.log(2), rel=1e-6)
    per_pixel = build_loss("ce(ignore_index=255,reduction=none)")(logits, target)
    assert per_pixel.shape == (1, 1, 3)
    assert per_pixel[0, 0].tolist() == pytest.approx([math.log(4 / 3), 0.0, math.log(2)], rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_equals_torch(reduction, smoothing, weighted):
    logits, target = _batch(3)
    target[0, :4] = IGNORE
    w = [1.0, 2.0, 0.5]
    spec = f"ce(ignore_index=255,label_smoothing={smoothing},reduction={reduction}" + (",weight=[1,2,0.5])" if weighted else ")")
    ours = build_loss(spec)(logits, target)
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w, dtype=torch.float64) if weighted else None,
                          ignore_index=IGNORE, label_smoothing=smoothing, reduction=reduction)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref)


def test_ce_pixel_weight_map_with_ignore_and_class_weights():
    """A per-pixel map m on top: Σ m·w_y·l / Σ m·w_y over the counted pixels."""
    logits, target = _batch(3, seed=1)
    target[1, 5:] = IGNORE
    m = torch.rand(target.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cw = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")  # unweighted, 0 if ignored
    keep = target != IGNORE
    wy = cw[target.clamp(max=2)] * keep
    expected = (m * wy * per_pixel).sum() / (m * wy).sum()
    ours = build_loss("ce(ignore_index=255,weight=[1,2,0.5])")(logits, target, m)
    torch.testing.assert_close(ours, expected)


def test_ce_binary_logit_is_two_class_torch():
    logits, target = _batch(1)
    target[:, :3] = IGNORE
    two = torch.cat([torch.zeros_like(logits), logits], 1)
    ref = F.cross_entropy(two, target, weight=torch.tensor([0.3, 1.7], dtype=torch.float64), ignore_index=IGNORE)
    torch.testing.assert_close(build_loss("ce(ignore_index=255,weight=[0.3,1.7])")(logits, target), ref)


def test_focal_with_gamma_0_and_class_weights_is_weighted_ce():
    logits, target = _batch(3, seed=3)
    target[0, 2:6, 2:6] = IGNORE
    ref = F.cross_entropy(logits, target, weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), ignore_index=IGNORE)
    torch.testing.assert_close(build_loss("focal(gamma=0,weight=[1,2,0.5],ignore_index=255)")(logits, target), ref)


def test_focal_class_weights_weighted_mean_hand_computed():
    """focal(weight) = Σ w_y·fl / Σ w_y with fl the unweighted focal terms."""
    logits, target = _batch(3, seed=4)
    fl = build_loss("focal(reduction=none)")(logits, target)
    cw = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    expected = (cw[target] * fl).sum() / cw[target].sum()
    torch.testing.assert_close(build_loss("focal(weight=[1,2,0.5])")(logits, target), expected)
    # and per pixel, -(1 - p_t)^2 log p_t by hand
    logp = F.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(fl, -(1 - logp.exp()) ** 2 * logp)


def test_class_weights_are_checked():
    logits, target = _batch(3)
    with pytest.raises(ValueError, match="weight has 2 entries but the logits have 3 classes"):
        build_loss("ce(weight=[1,2])")(logits, target)
    with pytest.raises(ValueError, match="focal: weight has 4 entries"):
        build_loss("focal(weight=[1,2,3,4])")(logits, target)
    for bad in ("[1,-2,1]", "[0,0,0]", "[]"):
        with pytest.raises(SpecError, match="weight must list one finite weight >= 0 per class"):
            build_loss(f"ce(weight={bad})")
    assert build_loss("ce(weight=[1,2,0.5])").spec == "ce(weight=[1,2,0.5])"


# ---------------------------------------------------------------- every seg loss
def _ignore_some(target: torch.Tensor) -> torch.Tensor:
    t = target.clone()
    t[0, :5] = IGNORE
    t[1, :, 7:] = IGNORE
    return t


@pytest.mark.parametrize("name", SEG_LOSSES)
def test_ignored_pixels_change_nothing_and_get_no_gradient(name):
    for c in _channels(name):
        logits, target = _batch(c)
        target = _ignore_some(target)
        keep = target != IGNORE
        loss = build_loss(_spec(name, "ignore_index=255"))
        x = logits.clone().requires_grad_(True)
        value = loss(x, target)
        (grad,) = torch.autograd.grad(value, x)
        assert torch.isfinite(value)
        assert grad.abs().amax(1)[~keep].max() == 0, (name, c)
        assert grad.abs().amax(1)[keep].max() > 0, (name, c)
        # Other logits and other (in-range) labels at the ignored pixels: the same value.
        other_logits = torch.where(keep[:, None], logits, 50 * torch.randn_like(logits))
        other_target = torch.where(keep, target, torch.zeros_like(target) + (1 if c > 1 else 0))
        torch.testing.assert_close(loss(other_logits, target), value.detach())
        changed = build_loss(_spec(name, "ignore_index=7"))  # 7 appears nowhere: nothing ignored
        assert not torch.allclose(changed(logits, other_target), value.detach()), (name, c)


@pytest.mark.parametrize("name", SEG_LOSSES)
def test_a_wholly_ignored_image_is_as_if_absent(name):
    """Batch sums (Dice, clDice, the weighted means) over the kept image alone: ignoring
    every pixel of image 1 gives the loss of image 0 by itself. (topo's feature term
    averages over all feature positions, so it is checked with its pixel term only.)"""
    spec = _spec(name, "ignore_index=255", "mu=0" if name == "topo" else "")
    for c in _channels(name):
        logits, target = _batch(c, seed=5)
        target[1] = IGNORE
        loss = build_loss(spec)
        torch.testing.assert_close(loss(logits, target), build_loss(spec)(logits[:1], target[:1]))


@pytest.mark.parametrize("name", SEG_LOSSES)
def test_everything_ignored_is_zero_not_nan(name):
    logits, target = _batch(3 if name != "bce" else 1)
    target[:] = IGNORE
    x = logits.clone().requires_grad_(True)
    value = build_loss(_spec(name, "ignore_index=255"))(x, target)
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(value) and torch.all(grad == 0)
    if name in ("ce", "wce", "focal", "bce", "topo"):  # means over no pixel
        assert value.item() == 0.0


def test_balanced_wce_is_torch_ce_with_the_counted_class_frequencies():
    """w_c = N_counted / (C · N_c) over the counted pixels only, then torch's weighted mean."""
    logits, target = _batch(3, seed=8)
    target[0, :6] = IGNORE
    kept = target[target != IGNORE]
    counts = torch.bincount(kept, minlength=3).double()
    wc = kept.numel() / (3 * counts)
    ref = F.cross_entropy(logits, target, weight=wc, ignore_index=IGNORE)
    torch.testing.assert_close(build_loss("wce(weighting=balanced,ignore_index=255)")(logits, target), ref)


def test_bce_ignore_index_is_the_mean_over_the_kept_pixels():
    logits, target = _batch(1, seed=9)
    target[1, 2:9] = IGNORE
    keep = target != IGNORE
    ref = F.binary_cross_entropy_with_logits(logits[:, 0][keep], target[keep].double())
    torch.testing.assert_close(build_loss("bce(ignore_index=255)")(logits, target), ref)


def test_dice_ignore_index_hand_computed():
    """C == 1, smooth 0: p = σ(z) on the two counted pixels only."""
    z = torch.tensor([[[[0.0, math.log(3), 9.0]]]])  # σ: 1/2, 3/4, (ignored)
    target = torch.tensor([[[1, 0, IGNORE]]])
    value = build_loss("dice(smooth=0,ignore_index=255)")(z, target)
    # inter = 1/2, Σp = 5/4, Σg = 1 -> 1 - 2·(1/2) / (9/4) = 5/9
    assert value.item() == pytest.approx(5 / 9, rel=1e-6)


def test_topo_pixel_term_is_torch_ce_with_ignore_index():
    logits, target = _batch(3, seed=6)
    target[0, 3:] = IGNORE
    loss = build_loss("topo(weights=random,ignore_index=255)")
    torch.testing.assert_close(loss.pixel_term(logits, target), F.cross_entropy(logits, target, ignore_index=IGNORE))


def test_value_checks_let_ignored_ids_through():
    logits, target = _batch(3)
    target[0, 0, 0] = IGNORE
    with value_checks():
        build_loss("ce(ignore_index=255)")(logits, target)
        with pytest.raises(ValueError, match=r"\[0, 2\] \(or ignore_index=254\)"):
            build_loss("ce(ignore_index=254)")(logits, target)


def test_ignore_index_must_be_an_int():
    with pytest.raises(SpecError, match="argument ignore_index='abc' must be int or none"):
        build_loss("dice(ignore_index=abc)")


# ---------------------------------------------------------------- reduction and parsing
def test_none_is_the_string_where_the_argument_takes_it():
    assert build_loss("l1(reduction=none)").reduction == "none"
    assert build_loss('l1(reduction="none")').reduction == "none"
    assert build_loss("focal(alpha=none)").alpha is None  # alpha: float | None keeps None
    assert build_loss("ce(weight=none)").class_weight is None
    (term,) = parse_spec('x(a="none",b=none,c="true",d=true)')
    assert term.args == {"a": "none", "b": None, "c": "true", "d": True}
    with pytest.raises(SpecError, match="argument label_smoothing=None must be float"):
        build_loss("ce(label_smoothing=none)")


@pytest.mark.parametrize("name, shape", [("l1", (2, 3, 4, 4)), ("mse", (2, 3, 4, 4)), ("charbonnier", (2, 3, 4, 4))])
def test_image_reductions(name, shape):
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    per = build_loss(f"{name}(reduction=none)")(pred, target)
    assert per.shape == shape
    torch.testing.assert_close(build_loss(f"{name}(reduction=sum)")(pred, target), per.sum())
    torch.testing.assert_close(build_loss(name)(pred, target), per.mean())
    if name == "l1":
        torch.testing.assert_close(per, (pred - target).abs())
    w = torch.rand(shape[0], *shape[2:], generator=g)
    torch.testing.assert_close(build_loss(f"{name}(reduction=none)")(pred, target, w), per * w[:, None])


@pytest.mark.parametrize("name", ["ce", "bce", "wce", "focal"])
def test_seg_reductions(name):
    c = 1 if name == "bce" else 3
    logits, target = _batch(c, seed=7)
    target[0, :2] = IGNORE
    per = build_loss(f"{name}(reduction=none,ignore_index=255)")(logits, target)
    assert per.shape == target.shape and torch.all(per[target == IGNORE] == 0)
    torch.testing.assert_close(build_loss(f"{name}(reduction=sum,ignore_index=255)")(logits, target), per.sum())
    mean = build_loss(f"{name}(ignore_index=255)")(logits, target)
    if name in ("bce", "focal"):  # unit weights: the mean over the counted pixels
        torch.testing.assert_close(mean, per.sum() / (target != IGNORE).sum())


def test_require_scalar_refuses_a_per_pixel_reduction():
    build_loss("l1(reduction=sum)", task="sr", require_scalar=True)
    for spec, task in (("l1(reduction=none)", "sr"), ("ce+0.5*focal(reduction=none)", "seg")):
        build_loss(spec, task=task)  # fine for one's own code
        with pytest.raises(SpecError, match="reduction=none gives a tensor per pixel.*need a scalar"):
            build_loss(spec, task=task, require_scalar=True)
