"""The fast paths give today's values and gradients (to 1e-6).

Each reference below is a verbatim copy of the formula the loss used before it was made
cheaper (the (N, N, N) batch-all tensor, boolean indexing, log_softmax + gather, one-hot
Dice, ...), kept here so that the new code is checked against the old one, not against
itself. Inputs are float32 at the sizes of the loss benchmark unless stated.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvloss.losses.metric import (
    _hinge,
    _label_masks,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    contrastive_loss,
    pairwise_distances,
    semi_hard_triplet_loss,
)
from cvloss.losses.pixel import L1Loss, MSELoss
from cvloss.losses.segmentation import (
    CrossEntropyLoss,
    DiceLoss,
    WeightedCrossEntropyLoss,
    class_balanced_weights,
    supplied_borders,
    unet_border_map,
    unet_weight_map,
    wce_terms,
)

ATOL = 1e-6


def _close(new: torch.Tensor, old: torch.Tensor, what: str) -> None:
    err = (new.detach().double() - old.detach().double()).abs().max().item()
    assert err <= ATOL, f"{what}: max |new − old| = {err:.3g} > {ATOL}"


def _value_and_grad(fn, *leaves: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    xs = [x.detach().clone().requires_grad_() for x in leaves]
    value = fn(*xs)
    value.backward()
    return value.detach(), [x.grad for x in xs]


def _check(new_fn, old_fn, *leaves: torch.Tensor, what: str) -> None:
    v_new, g_new = _value_and_grad(new_fn, *leaves)
    v_old, g_old = _value_and_grad(old_fn, *leaves)
    _close(v_new, v_old, f"{what} value")
    for a, b in zip(g_new, g_old):
        _close(a, b, f"{what} gradient")


# ---------------------------------------------------------------- metric: old formulas
def old_batch_all(embeddings, labels, margin=0.2, squared=True):
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _label_masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]
    loss = _hinge(d[:, :, None] - d[:, None, :] + margin) * valid
    active = (loss > 0) & valid
    n_active = active.sum()
    frac = (n_active.to(d.dtype) / valid.sum()).detach()
    return loss.sum() / n_active.clamp_min(1).to(d.dtype), frac


def old_batch_hard(embeddings, labels, margin=0.2, squared=True):
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _label_masks(labels)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    hardest_pos = torch.where(pos, d, -inf).amax(dim=1)
    hardest_neg = torch.where(neg, d, inf).amin(dim=1)
    ok = pos.any(dim=1) & neg.any(dim=1)
    return _hinge(hardest_pos[ok] - hardest_neg[ok] + margin).mean()


def old_semi_hard(embeddings, labels, margin=0.2, squared=True, fallback="easiest"):
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _label_masks(labels)
    a_idx, p_idx = pos.nonzero(as_tuple=True)
    with torch.no_grad():
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        d_neg, order = torch.sort(torch.where(neg, d, inf), dim=1)
        k = torch.searchsorted(d_neg, d.contiguous(), right=True)
        has_semi = k < neg.sum(dim=1, keepdim=True)
        semi = order.gather(1, k.clamp_max(d.shape[1] - 1))
        if fallback == "easiest":
            fb = torch.where(neg, d, -inf).argmax(dim=1)
        else:
            fb = torch.where(neg, d, inf).argmin(dim=1)
        n_star = torch.where(has_semi, semi, fb[:, None].expand_as(semi))[a_idx, p_idx]
    return _hinge(d[a_idx, p_idx] - d[a_idx, n_star] + margin).mean()


def old_contrastive_balanced(embeddings, labels, margin=1.0):
    n = embeddings.shape[0]
    d2 = pairwise_distances(embeddings, squared=True)
    zero = d2 <= 1e-12
    d = torch.where(zero, torch.zeros_like(d2), torch.sqrt(torch.where(zero, torch.ones_like(d2), d2)))
    iu = torch.triu_indices(n, n, offset=1)
    d2, d = d2[iu[0], iu[1]], d[iu[0], iu[1]]
    y = (labels[iu[0]] == labels[iu[1]]).to(d.dtype)
    pos_term = 0.5 * y * d2
    neg_term = 0.5 * (1.0 - y) * torch.clamp_min(margin - d, 0.0) ** 2
    n_pos, n_neg = y.sum(), (1.0 - y).sum()
    parts = []
    if n_pos > 0:
        parts.append(pos_term.sum() / n_pos)
    if n_neg > 0:
        parts.append(neg_term.sum() / n_neg)
    return torch.stack(parts).mean()


def _pk_batch(p: int, k: int, dim: int, seed: int, shuffle: bool = True, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = p * k
    x = F.normalize(torch.randn(n, dim, generator=g, dtype=dtype), dim=1)
    labels = torch.arange(p).repeat_interleave(k)
    if shuffle:
        labels = labels[torch.randperm(n, generator=g)]
    return x, labels


BATCHES = {
    "bench P=64 K=4 D=128": (64, 4, 128),
    "P=8 K=3": (8, 3, 16),
    "P=5 K=7 D=4": (5, 7, 4),
}


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "euclidean"])
@pytest.mark.parametrize("batch", list(BATCHES))
def test_batch_all_equals_the_n_cubed_formula(batch, squared):
    x, y = _pk_batch(*BATCHES[batch], seed=1)
    _check(lambda e: batch_all_triplet_loss(e, y, 0.2, squared)[0], lambda e: old_batch_all(e, y, 0.2, squared)[0],
           x, what="batch-all")
    _close(batch_all_triplet_loss(x, y, 0.2, squared)[1], old_batch_all(x, y, 0.2, squared)[1], "fraction_positive")


def test_batch_all_on_a_batch_that_is_not_pk():
    # Uneven identity counts (1 to 6 images, one singleton without a positive).
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0] * 6 + [1] * 2 + [2] * 5 + [3] + [4] * 3)
    x = F.normalize(torch.randn(len(y), 8, generator=g), dim=1)
    for margin in (0.05, 0.2, 1.0):
        _check(lambda e: batch_all_triplet_loss(e, y, margin)[0], lambda e: old_batch_all(e, y, margin)[0],
               x, what=f"batch-all margin={margin}")


def test_batch_all_memory_is_quadratic():
    # No (N, N, N) tensor: every tensor the loss allocates has at most N² (+N) entries.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    Largest.most = max(Largest.most, t.numel())
            return out

    x, y = _pk_batch(64, 4, 128, seed=0)
    x.requires_grad_()
    with Largest():
        batch_all_triplet_loss(x, y)[0].backward()
    n = len(y)
    assert Largest.most <= n * (n + 1)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "euclidean"])
@pytest.mark.parametrize("batch", list(BATCHES))
def test_batch_hard_and_semi_hard_equal_the_indexed_formulas(batch, squared):
    x, y = _pk_batch(*BATCHES[batch], seed=2)
    _check(lambda e: batch_hard_triplet_loss(e, y, 0.2, squared), lambda e: old_batch_hard(e, y, 0.2, squared),
           x, what="batch-hard")
    for fb in ("easiest", "hardest"):
        _check(lambda e: semi_hard_triplet_loss(e, y, 0.2, squared, fb), lambda e: old_semi_hard(e, y, 0.2, squared, fb),
               x, what=f"semi-hard {fb}")


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2], [0, 1, 2, 3], [0, 0, 0, 0]], ids=["pk", "no-pos", "no-neg"])
def test_balanced_contrastive_equals_the_branching_formula(labels):
    g = torch.Generator().manual_seed(4)
    y = torch.tensor(labels)
    x = F.normalize(torch.randn(len(y), 5, generator=g), dim=1)
    _check(lambda e: contrastive_loss(e, y, 1.0, balance=True), lambda e: old_contrastive_balanced(e, y, 1.0),
           x, what="contrastive balance")


# ---------------------------------------------------------------- segmentation: old formulas
def old_log_probs(logits):
    if logits.shape[1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
    return F.log_softmax(logits, dim=1)


def old_pixel_ce(log_p, target, label_smoothing=0.0):
    nll = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)
    if label_smoothing > 0:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * log_p.mean(dim=1)
    return nll


def old_weighted_mean(values, weight):
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype).expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


def old_ce(logits, target, weight=None, label_smoothing=0.0):
    return old_weighted_mean(old_pixel_ce(old_log_probs(logits), target, label_smoothing), weight)


def old_wce(logits, target, weight=None, weighting="unet"):
    k = max(logits.shape[1], 2)
    cw = class_balanced_weights(target, k) if "balanced" in weighting else None
    wmap = cw[target] if weighting == "balanced" else unet_weight_map(target, 10.0, 5.0, cw, 0)
    if weight is not None:
        wmap = wmap * weight
    return old_weighted_mean(old_pixel_ce(old_log_probs(logits), target), wmap)


def old_dice(logits, target, weight=None, smooth=1.0, include_background=True):
    c = logits.shape[1]
    if c == 1:
        probs = torch.sigmoid(logits)
        onehot = target.unsqueeze(1).to(probs.dtype)
    else:
        probs = F.softmax(logits, dim=1)
        onehot = F.one_hot(target, c).permute(0, 3, 1, 2).to(probs.dtype)
        if not include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    if weight is not None:
        w = weight.unsqueeze(1).to(probs.dtype)
        probs_w, onehot_w = probs * w, onehot * w
    else:
        probs_w, onehot_w = probs, onehot
    dims = (0, 2, 3)
    inter = (probs_w * onehot).sum(dims)
    dice = (2 * inter + smooth) / (probs_w.sum(dims) + onehot_w.sum(dims) + smooth)
    return 1.0 - dice.mean()


def _seg_batch(channels: int, seed: int, n: int = 4, size: int = 128):
    """Benchmark-sized logits and blob-shaped labels (a smooth field cut at quantiles)."""
    g = torch.Generator().manual_seed(seed)
    k = max(channels, 2)
    field = F.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=(size, size), mode="bicubic", align_corners=False)[:, 0]
    target = torch.bucketize(field, torch.quantile(field.flatten(), torch.linspace(0, 1, k + 1)[1:-1])).long()
    return torch.randn(n, channels, size, size, generator=g), target, torch.rand(n, size, size, generator=g)


@pytest.mark.parametrize("channels", [3, 2, 1])
def test_ce_dice_equal_their_old_formulas(channels):
    logits, target, w = _seg_batch(channels, seed=5)
    for weight in (None, w):
        for eps in (0.0, 0.1):
            _check(lambda z: CrossEntropyLoss(eps)(z, target, weight), lambda z: old_ce(z, target, weight, eps),
                   logits, what=f"ce eps={eps} weight={weight is not None}")
        for smooth, bg in ((1.0, True), (0.0, True), (1.0, False)):
            _check(lambda z: DiceLoss(smooth, bg)(z, target, weight),
                   lambda z: old_dice(z, target, weight, smooth, bg),
                   logits, what=f"dice smooth={smooth} bg={bg} weight={weight is not None}")


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("weighting", ["unet", "balanced", "balanced+unet"])
def test_wce_equals_its_old_formula_with_and_without_a_supplied_border(weighting, channels):
    logits, target, w = _seg_batch(channels, seed=6, size=64)
    loss = WeightedCrossEntropyLoss(weighting)
    border = unet_border_map(target, 10.0, 5.0)
    for weight in (None, w):
        old = lambda z: old_wce(z, target, weight, weighting)  # noqa: E731
        _check(lambda z: loss(z, target, weight), old, logits, what=f"wce {weighting}")
        _check(lambda z: loss(z, target, weight, border=border), old, logits, what=f"wce {weighting} border=")
        with supplied_borders({loss: border}):
            _check(lambda z: loss(z, target, weight), old, logits, what=f"wce {weighting} supplied_borders")


def test_border_map_is_the_weight_map_minus_the_class_weights_and_flips_with_the_mask():
    _, target, _ = _seg_batch(3, seed=7, size=64)
    cw = class_balanced_weights(target, 3)
    border = unet_border_map(target, 10.0, 5.0)
    assert border.max() > 1  # there are touching objects: the term is not trivially 0
    torch.testing.assert_close(cw[target] + border, unet_weight_map(target, 10.0, 5.0, cw), rtol=0, atol=ATOL * 10)
    for dims in ((-1,), (-2,), (-2, -1)):
        torch.testing.assert_close(unet_border_map(target.flip(dims)), border.flip(dims), rtol=0, atol=ATOL)
    # Per image: the map of one image does not depend on the rest of the batch.
    torch.testing.assert_close(unet_border_map(target[2]), border[2], rtol=0, atol=0)


# ---------------------------------------------------------------- pixel: old formula
@pytest.mark.parametrize("cls", [MSELoss, L1Loss])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_pixel_losses_equal_the_old_formula(cls, reduction):
    g = torch.Generator().manual_seed(8)
    pred, target = torch.rand(4, 3, 128, 128, generator=g), torch.rand(4, 3, 128, 128, generator=g)
    rho = (lambda d: d.square()) if cls is MSELoss else (lambda d: d.abs())
    old = (lambda p: rho(p - target).mean()) if reduction == "mean" else (lambda p: rho(p - target).sum())
    v_new, (g_new,) = _value_and_grad(lambda p: cls(reduction)(p, target), pred)
    v_old, (g_old,) = _value_and_grad(old, pred)
    scale = 1.0 if reduction == "mean" else v_old.abs().item()  # a sum of 196 k terms: relative
    assert abs(v_new - v_old).item() <= ATOL * scale
    _close(g_new, g_old, f"{cls.__name__} gradient")


# ---------------------------------------------------------------- seg task: cached border maps
@pytest.mark.parametrize("spec", ["wce", 'wce(weighting="balanced+unet",w0=5)+dice'])
def test_seg_task_caches_the_border_map_per_image_and_flips_it_with_the_batch(spec):
    from cvloss.losses import build_loss
    from cvloss.run.trainer import resolve_device
    from cvloss.tasks.seg import SegTask

    params = SegTask.spec.budgets["smoke"] | {"n_train": 16, "n_val": 4, "image_size": 32}
    task = SegTask("synth-pets", params, resolve_device("cpu"))
    task.load_data()
    loss = build_loss(spec, task="seg")
    task.plan(loss)
    (term,) = wce_terms(loss)
    g = torch.Generator().manual_seed(0)
    flipped = 0
    for x, y, where in task.train_batches(torch.Generator().manual_seed(1)):
        borders = task._wce_borders(*where)
        # The cached, indexed and flipped maps equal the maps of the batch's own masks.
        torch.testing.assert_close(borders[term], term.border_map(y), rtol=0, atol=ATOL)
        logits = torch.randn(len(y), 3, 32, 32, generator=g)
        with supplied_borders(borders):
            cached = loss(logits, y)
        _close(cached, loss(logits, y), "loss with the cached map")
        flipped += int(where[1].sum() + where[2].sum())
    assert flipped > 0 and len(task._border_cache) == 1  # flips happened; one map per image, computed once


# ---------------------------------------------------------------- feature losses: old formulas
def old_extract(net, x, layers):
    """The old pass: every module called out of place (no in-place ReLU)."""
    from cvloss.losses.features import LAYER_INDEX

    wanted = {LAYER_INDEX[net.arch][l]: l for l in layers}
    out, h = {}, net.normalize(x)
    for i, module in enumerate(net.features):
        h = module(h)
        if i in wanted:
            out[wanted[i]] = h
        if i == max(wanted):
            break
    return out


def old_gram_chw(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w) / (c * h * w) ** 0.5  # the old scaling of the features
    return torch.bmm(f, f.transpose(1, 2))


def old_combined(loss, pred, target):
    """l1 + perceptual + texture/style with the old extractor, Gram and squared error."""
    from cvloss.losses.perceptual import ContentLoss, PerceptualLoss
    from cvloss.losses.pixel import L1Loss

    total = 0.0
    for w, t in loss.weighted_terms():
        if isinstance(t, L1Loss):
            total = total + w * (pred - target).abs().mean()
            continue
        fp = old_extract(t.extractor, pred, t.layers)
        with torch.no_grad():
            ft = old_extract(t.extractor, target, t.layers)
        if isinstance(t, PerceptualLoss):
            total = total + w * sum(lw * (fp[l] - ft[l]).square().mean() for l, lw in zip(t.layers, t.layer_weights))
        elif isinstance(t, ContentLoss):
            total = total + w * 0.5 * (fp[t.layer] - ft[t.layer]).square().mean()
        else:
            total = total + w * sum(lw * 0.25 * (old_gram_chw(fp[l]) - old_gram_chw(ft[l])).square().sum((1, 2)).mean()
                                    for l, lw in zip(t.layers, t.layer_weights))
    return total


@pytest.mark.parametrize("spec", ["l1+perceptual+texture(arch=vgg16)", "perceptual", "texture", "style",
                                  "content(layer=conv3_1)", "perceptual(layers=[conv1_2,relu1_2,relu2_2])"])
def test_feature_losses_equal_the_old_pass_gram_and_error(spec):
    from cvloss.losses import build_loss
    from cvloss.losses.spec import CombinedLoss

    loss = build_loss(spec, feature_weights="random")
    if not isinstance(loss, CombinedLoss):
        loss = CombinedLoss([(1.0, loss)], spec)
    g = torch.Generator().manual_seed(9)
    pred, target = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 3, 48, 48, generator=g)
    v_new, (g_new,) = _value_and_grad(lambda p: loss(p, target), pred)
    v_old, (g_old,) = _value_and_grad(lambda p: old_combined(loss, p, target), pred)
    # Relative: texture/style terms are sums of squared Gram differences of random-VGG
    # features, large numbers whose float32 rounding is relative.
    scale = max(1.0, v_old.abs().item())
    assert abs(v_new - v_old).item() <= ATOL * scale, (v_new, v_old)
    assert (g_new - g_old).abs().max().item() <= ATOL * max(1.0, g_old.abs().max().item())


# ---------------------------------------------------------------- peers (the bench extra), when installed
def test_batch_all_equals_pytorch_metric_learning_all_triplets():
    pml = pytest.importorskip("pytorch_metric_learning", reason="bench extra not installed")
    from pytorch_metric_learning import distances, losses

    x, y = _pk_batch(64, 4, 128, seed=10)
    for squared in (True, False):
        # The embeddings are unit-norm already; PML's own normalisation would also project
        # the gradient onto the sphere, which cvloss leaves to the embed model.
        peer = losses.TripletMarginLoss(margin=0.2, triplets_per_anchor="all",
                                        distance=distances.LpDistance(normalize_embeddings=False, power=2 if squared else 1))
        _check(lambda e: batch_all_triplet_loss(e, y, 0.2, squared)[0], lambda e: peer(e, y), x,
               what=f"batch-all vs PML {pml.__version__} squared={squared}")


def test_dice_equals_monai_batch_dice():
    monai = pytest.importorskip("monai.losses", reason="bench extra not installed")
    logits, target, _ = _seg_batch(3, seed=11)
    peer = monai.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
    _check(lambda z: DiceLoss()(z, target), lambda z: peer(z, target[:, None]), logits, what="dice vs MONAI")
