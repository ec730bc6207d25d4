"""The fast paths of issue 18 give today's values and gradients (to 1e-6).

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
