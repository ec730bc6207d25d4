"""Metric-learning losses: contrastive (Hadsell, Chopra & LeCun 2006) and triplet
(Schroff et al. 2015, FaceNet) with batch-all / batch-hard (Hermans et al. 2017) and
semi-hard (FaceNet) mining; the offline-triplet and softmax baselines of ``embed``.

Inputs (``kind = "metric"``): ``loss(embeddings (N, D) float, labels (N,) int64)``. The
``embed`` task L2-normalises the embeddings, so distances lie in [0, 2] (squared: [0, 4])
and the default margins are chosen for that range. A batch with no positive (K = 1) or no
negative (P = 1) pair gives 0 (``ValueError`` under the opt-in
:func:`cvloss.losses.base.value_checks`); nothing synchronises with the host. Everything
computes in float32 or wider with autocast off: ‖a‖² − 2a·b + ‖b‖² cancels in bfloat16.

Functional helpers: :func:`pairwise_distances`, :func:`contrastive_loss`,
:func:`batch_all_triplet_loss`, :func:`batch_hard_triplet_loss`,
:func:`semi_hard_triplet_loss`, :func:`triplet_margin_loss`; :class:`OfflineTripletSampler`.
"""
from __future__ import annotations

from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

from cvloss.losses.base import Loss, check_embeddings, value_checks_enabled
from cvloss.losses.registry import register_loss

__all__ = [
    "ContrastiveLoss",
    "OfflineTripletLoss",
    "OfflineTripletSampler",
    "SoftmaxLoss",
    "TripletLoss",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "contrastive_loss",
    "pairwise_distances",
    "semi_hard_triplet_loss",
    "triplet_margin_loss",
]

NO_POSITIVE = "batch has no positive pair: use a P×K sampler with K ≥ 2"
NO_NEGATIVE = "batch has no negative pair: it holds a single label; use a P×K sampler with P ≥ 2"


# ---------------------------------------------------------------- helpers
def _float(x: torch.Tensor) -> torch.Tensor:
    """Upcast half / bfloat16 to float32; float32 and float64 pass through unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _safe_sqrt(sq: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt with a finite gradient at 0.

    d/dx sqrt(x) = 1 / (2 sqrt(x)) is infinite at x = 0 and autograd would return
    inf · 0 = NaN for coincident embeddings (duplicates, or the diagonal). Entries at or
    below ``eps`` are treated as exactly zero: we take the sqrt of a harmless 1 there
    and multiply the result by 0, so the value is 0 and the gradient is 0 (the
    subgradient of ‖·‖ at 0 that points nowhere) instead of NaN.
    """
    zero = sq <= eps
    root = torch.sqrt(torch.where(zero, torch.ones_like(sq), sq))
    return torch.where(zero, torch.zeros_like(root), root)


def _check_margin(margin: float) -> None:
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not margin > 0:
        raise ValueError(f"margin must be a number > 0; got {margin!r}")


def _label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, N) boolean masks: positive pairs (same label, i ≠ j) and negative pairs."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _require_pairs(pos: torch.Tensor, neg: torch.Tensor) -> None:
    """ValueError on a batch without a positive or a negative pair -- a value check, so
    opt-in (:func:`cvloss.losses.base.value_checks`): it reads the masks on the host.
    Without it such a batch gives the loss 0 (no term to average)."""
    if not value_checks_enabled():
        return
    if not bool(pos.any()):
        raise ValueError(NO_POSITIVE)
    if not bool(neg.any()):
        raise ValueError(NO_NEGATIVE)


def _sorted_negatives(d: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's negative distances ascending, (N, N), non-negatives last at +inf;
    and the sort order (column of each entry)."""
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    return torch.sort(torch.where(neg, d, inf), dim=1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds, 0 where it never does; no host sync
    (a boolean index ``values[mask]`` would need the count on the host)."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1).to(values.dtype)


# ---------------------------------------------------------------- functional
def pairwise_distances(embeddings: torch.Tensor, squared: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """All pairwise Euclidean distances of a batch, through the Gram matrix.

    Args:
        embeddings: ``(N, D)`` float.
        squared: return ‖x_i − x_j‖² instead of ‖x_i − x_j‖.
        eps: squared distances ≤ ``eps`` count as exactly 0 when taking the square root
            (value 0, gradient 0): the derivative of sqrt is infinite at 0.

    Returns:
        ``(N, N)``, ≥ 0, with an exact-zero diagonal, in float32 (float64 if given).

    d²_ij = ‖x_i‖² − 2 x_i·x_j + ‖x_j‖² costs one (N, D)×(D, N) matmul instead of an
    (N, N, D) difference tensor. Rounding can make it slightly negative (clamped to 0)
    and leaves noise on the diagonal (set to exactly 0).
    """
    if not torch.is_tensor(embeddings) or embeddings.dim() != 2 or not embeddings.is_floating_point():
        got = tuple(embeddings.shape) if torch.is_tensor(embeddings) else type(embeddings).__name__
        raise ValueError(f"expected embeddings of shape (N, D), floating point; got {got}")
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        x = _float(embeddings)
        gram = x @ x.t()
        sq_norm = gram.diagonal()
        d2 = (sq_norm[:, None] - 2.0 * gram + sq_norm[None, :]).clamp_min(0.0)
        # The diagonal is 0 by definition; make it exact whatever the matmul rounding.
        d2 = d2 * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))
        # Masked sqrt: an exact 0 (diagonal, duplicates) must not send inf into the
        # backward pass (inf · 0 = NaN). clamp_min's backward happens to drop the
        # gradient at exactly 0 too, but we do not rely on that detail; and entries
        # ≤ eps (rounding residue of coincident points) get 0 instead of a huge gradient.
        return d2 if squared else _safe_sqrt(d2, eps)


def contrastive_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 1.0,
    balance: bool = False,
) -> torch.Tensor:
    """Contrastive loss of Hadsell, Chopra & LeCun (2006), Eq. (4), over all pairs i < j.

    L(y, d) = y · ½ d² + (1 − y) · ½ max(0, m − d)²

    with d = ‖x_i − x_j‖₂ (not squared) and y = 1 for a same-label pair. (The paper writes
    Y = 0 for similar pairs; the ½ factors are the paper's.)

    Args:
        embeddings: ``(N, D)`` float, N ≥ 2.
        labels: ``(N,)`` int64.
        margin: m > 0; dissimilar pairs farther than m cost nothing. On L2-normalised
            embeddings d ∈ [0, 2], so the default m = 1 sits mid-range.
        balance: False: mean over all N(N−1)/2 pairs. True: ½ (mean over positive pairs +
            mean over negative pairs), so the many negative pairs of a P×K batch (for
            P = 32, K = 8: 28 negatives per positive) do not drown the positives; a kind
            absent from the batch is left out.

    Returns:
        A scalar ≥ 0.
    """
    check_embeddings(embeddings, labels)
    _check_margin(margin)
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError(f"contrastive loss needs at least 2 embeddings (one pair); got N={n}")
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        d2 = pairwise_distances(embeddings, squared=True)
        d = _safe_sqrt(d2, 1e-12)
        iu = torch.triu_indices(n, n, offset=1, device=embeddings.device)
        d2, d = d2[iu[0], iu[1]], d[iu[0], iu[1]]
        y = (labels[iu[0]] == labels[iu[1]]).to(d.dtype)
        # Positive term from d² directly (no sqrt): smooth, exact gradient at d = 0.
        pos_term = 0.5 * y * d2
        neg_term = 0.5 * (1.0 - y) * torch.clamp_min(margin - d, 0.0) ** 2
        if not balance:
            return (pos_term + neg_term).mean()
        # ½ (positive mean + negative mean), a kind absent from the batch left out --
        # weighted by presence instead of a Python branch on the counts (no host sync).
        n_pos, n_neg = y.sum(), (1.0 - y).sum()
        has_pos, has_neg = (n_pos > 0).to(d.dtype), (n_neg > 0).to(d.dtype)
        pos_mean = pos_term.sum() / n_pos.clamp_min(1.0)
        neg_mean = neg_term.sum() / n_neg.clamp_min(1.0)
        return (pos_mean * has_pos + neg_mean * has_neg) / (has_pos + has_neg)


def _hinge(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp_min(x, 0.0)


def batch_all_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    squared: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hermans et al. (2017) "batch all" triplet loss, with FaceNet's hinge.

    Every valid triplet (a, p, n): a ≠ p, y_a = y_p, y_n ≠ y_a, costs
    ℓ = max(d(a,p) − d(a,n) + α, 0) (FaceNet Eq. 1 when ``squared``). The loss is the mean
    over triplets with ℓ > 0 (Hermans et al.: averaging over all triplets would let the
    many easy ones wash out the gradient); 0 (with a graph) when none is active.

    Computed without the (N, N, N) triplet tensor. For a positive pair (a, p) put
    t = d(a,p) + α; the active negatives are those with d(a,n) < t, and their summed loss
    is Σ_{n: d(a,n) < t} (t − d(a,n)) = c·t − S_c, with c their count and S_c the sum of
    the c smallest negative distances of a. Each anchor's negative distances are sorted
    once, their running sums taken, and c found by binary search (``searchsorted``), so
    time is O(N² log N) and memory O(N²) for any batch (P×K or not), with no host sync:
    for a P×K batch of 256 (P = 64, K = 4) that is 65 k pairs instead of 16.8 M
    (a, p, n) entries (the 194 k valid triplets are never listed one by one). The
    gradient is autograd's through sort, cumulative sum and gather: 1/#active per
    active triplet, as with the explicit sum. Running sums and c·t − S_c are taken in
    float64 (a difference of sums of up to N distances would lose float32 digits).

    Returns:
        ``(loss, fraction_positive)``: the scalar loss and the fraction of valid
        triplets with ℓ > 0 (a detached scalar; it falls as training converges).
    """
    check_embeddings(embeddings, labels)
    _check_margin(margin)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        d = pairwise_distances(embeddings, squared=squared)
        pos, neg = _label_masks(labels)
        _require_pairs(pos, neg)
        acc = torch.float64 if d.device.type != "mps" else d.dtype  # MPS has no float64
        d_neg, _ = _sorted_negatives(d, neg)
        t = d + margin  # (N, N): threshold of each (a, p)
        # c[a, p] = #{n : d(a, n) < t}: strict, since ℓ > 0 ⇔ d(a, n) < d(a, p) + α.
        c = torch.searchsorted(d_neg, t.detach().contiguous(), right=False)
        # S[a, k] = sum of a's k smallest negative distances (S[a, 0] = 0).
        finite = torch.where(neg.sum(1, keepdim=True) > torch.arange(d.shape[1], device=d.device), d_neg, 0.0)
        running = torch.cat([finite.new_zeros(d.shape[0], 1, dtype=acc), finite.to(acc).cumsum(dim=1)], dim=1)
        s_c = running.gather(1, c)
        active = torch.where(pos, c, 0)
        per_pair = torch.where(pos, c.to(acc) * t.to(acc) - s_c, 0.0)
        n_active = active.sum()
        n_valid = pos.sum(1).mul(neg.sum(1)).sum()
        frac = (n_active.to(d.dtype) / n_valid.to(d.dtype)).detach()
        loss = (per_pair.sum() / n_active.clamp_min(1).to(acc)).to(d.dtype)
        return loss, frac


def batch_hard_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    squared: bool = True,
) -> torch.Tensor:
    """Hermans et al. (2017) "batch hard" triplet loss.

    For each anchor a: hardest positive p* = argmax_{p: y_p = y_a, p ≠ a} d(a, p) and
    hardest negative n* = argmin_{n: y_n ≠ y_a} d(a, n); ℓ_a = max(d(a,p*) − d(a,n*) + α, 0).
    Mean over anchors that have at least one positive and one negative. O(N²) memory.
    """
    check_embeddings(embeddings, labels)
    _check_margin(margin)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        d = pairwise_distances(embeddings, squared=squared)
        pos, neg = _label_masks(labels)
        _require_pairs(pos, neg)
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        hardest_pos = torch.where(pos, d, -inf).amax(dim=1)
        hardest_neg = torch.where(neg, d, inf).amin(dim=1)
        # Mask invalid anchors before subtracting so no ±inf reaches the loss (a mask,
        # not a boolean index: that would need the anchor count on the host).
        ok = pos.any(dim=1) & neg.any(dim=1)
        zero = torch.zeros_like(hardest_pos)
        gap = torch.where(ok, hardest_pos, zero) - torch.where(ok, hardest_neg, zero)
        return _masked_mean(_hinge(gap + margin), ok)


def semi_hard_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    squared: bool = True,
    fallback: Literal["easiest", "hardest"] = "easiest",
) -> torch.Tensor:
    """Triplet loss with FaceNet's semi-hard negatives (Schroff et al. 2015, Sec. 3.2).

    For every positive pair (a, p) (a ≠ p, same label) the negative is the hardest
    *semi-hard* one: n* = argmin d(a, n) over negatives with d(a, n) > d(a, p) ("further
    away from the anchor than the positive, but still hard"); ℓ = max(d(a,p) − d(a,n*) + α, 0),
    which is > 0 only when n* lies inside the margin band d(a,p) < d(a,n*) < d(a,p) + α.

    When no negative is farther than the positive (all are closer: hard), ``fallback``
    picks the negative:

    * ``"easiest"`` (default): the largest d(a, n), i.e. the least hard of the hard
      negatives. This is TensorFlow-Addons' documented convention ("if no such negative
      exists, uses the largest negative distance instead") and keeps FaceNet's warning
      that the hardest negatives lead to collapsed models early in training.
    * ``"hardest"``: the smallest d(a, n).

    Mean over all positive pairs. O(N²) memory: the search sorts each anchor's negatives.
    """
    check_embeddings(embeddings, labels)
    _check_margin(margin)
    if fallback not in ("easiest", "hardest"):
        raise ValueError(f"fallback must be 'easiest' or 'hardest'; got {fallback!r}")
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        d = pairwise_distances(embeddings, squared=squared)
        pos, neg = _label_masks(labels)
        _require_pairs(pos, neg)
        # Choosing n* is a discrete decision: make it without autograd, then gather
        # d(a, n*) with its gradient (the same gradient a differentiable min would give).
        with torch.no_grad():
            inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
            # Each anchor's negatives sorted by distance (non-negatives pushed to +inf at
            # the end); searchsorted(right=True) finds, for every d(a, p), the first
            # negative with d(a, n) > d(a, p): the hardest semi-hard one. O(N²) memory
            # and O(N² log N) time instead of an (N, N, N) mask.
            d_neg, order = _sorted_negatives(d, neg)
            k = torch.searchsorted(d_neg, d.contiguous(), right=True)  # (N, N): per (a, p)
            has_semi = k < neg.sum(dim=1, keepdim=True)
            semi = order.gather(1, k.clamp_max(d.shape[1] - 1))
            if fallback == "easiest":
                fb = torch.where(neg, d, -inf).argmax(dim=1)  # (N,): per anchor
            else:
                fb = torch.where(neg, d, inf).argmin(dim=1)
            n_star = torch.where(has_semi, semi, fb[:, None].expand_as(semi))  # (N, N)
        # Every (a, p) cell is evaluated and the positive pairs averaged through a mask
        # (listing them with nonzero() would need their count on the host). An anchor
        # without negatives (a one-label batch) has no triplet and is left out.
        valid = pos & neg.any(dim=1, keepdim=True)
        return _masked_mean(_hinge(d - d.gather(1, n_star) + margin), valid)


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    squared: bool = True,
) -> torch.Tensor:
    """FaceNet's triplet loss (Schroff et al. 2015, Eq. 1) on triplets sampled offline.

    ℓ_i = max(‖f(a_i) − f(p_i)‖² − ‖f(a_i) − f(n_i)‖² + α, 0), mean over the B triplets
    (non-squared distances when ``squared=False``). Inputs: three ``(B, D)`` float tensors
    (e.g. from :class:`OfflineTripletSampler`).
    """
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        if not torch.is_tensor(t) or t.dim() != 2 or not t.is_floating_point() or t.shape != anchor.shape:
            got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"expected {name} of shape (B, D) = {tuple(anchor.shape)}, floating point; got {got}")
    _check_margin(margin)
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        a, p, n = _float(anchor), _float(positive), _float(negative)
        d_ap = ((a - p) ** 2).sum(dim=1)
        d_an = ((a - n) ** 2).sum(dim=1)
        if not squared:
            d_ap, d_an = _safe_sqrt(d_ap, 1e-12), _safe_sqrt(d_an, 1e-12)
        return _hinge(d_ap - d_an + margin).mean()


# ---------------------------------------------------------------- offline sampling
class OfflineTripletSampler(Sampler):
    """FaceNet's offline baseline: random (anchor, positive, negative) index triplets.

    Each triplet draws the anchor uniformly over the dataset, the positive uniformly over
    the other samples of the anchor's class, and the negative uniformly over samples of
    the other classes. Iterating yields ``(a, p, n)`` int tuples; ``len`` is
    ``triplets_per_epoch``. Deterministic for a given ``seed`` and epoch
    (:meth:`set_epoch` changes the draw, as ``DistributedSampler`` does).

    Args:
        labels: ``(N,)`` int labels of the dataset (tensor or sequence).
        triplets_per_epoch: number of triplets per iteration, ≥ 1.
        seed: seed of the generator.

    Raises:
        ValueError: a class with fewer than 2 samples (no positive) or a single class (no
            negative).
    """

    def __init__(self, labels, triplets_per_epoch: int, seed: int = 0) -> None:
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"expected labels of shape (N,), integer; got shape {tuple(labels.shape)}, {labels.dtype}")
        if int(triplets_per_epoch) < 1:
            raise ValueError(f"triplets_per_epoch must be ≥ 1; got {triplets_per_epoch}")
        classes, counts = torch.unique(labels, return_counts=True)
        if classes.numel() < 2:
            raise ValueError(f"offline triplets need at least 2 classes (a negative); got {classes.numel()}")
        small = classes[counts < 2]
        if small.numel():
            raise ValueError(
                f"offline triplets need at least 2 samples per class (a positive); classes with fewer: "
                f"{small.tolist()[:10]}{' ...' if small.numel() > 10 else ''}"
            )
        self.labels = labels.cpu()
        self.triplets_per_epoch = int(triplets_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        # Samples sorted by class: class c occupies positions [start[c], start[c] + count[c]).
        self._order = torch.argsort(self.labels, stable=True)
        self._cls = torch.searchsorted(classes, self.labels)  # class index of each sample
        self._count = counts
        self._start = torch.cumsum(counts, 0) - counts
        self._rank = torch.empty_like(self._order)
        self._rank[self._order] = torch.arange(len(self.labels))  # position in sorted order

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def triplets(self) -> torch.Tensor:
        """The epoch's triplets as a ``(T, 3)`` int64 tensor of dataset indices."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n, t = len(self.labels), self.triplets_per_epoch
        a = torch.randint(n, (t,), generator=g)
        c = self._cls[a]
        count, start = self._count[c], self._start[c]
        # Positive: a uniform rank among the count−1 other members, skipping the anchor.
        r = (torch.rand(t, generator=g) * (count - 1)).long().clamp_max(count - 2)
        a_rank = self._rank[a] - start
        p = self._order[start + r + (r >= a_rank).long()]
        # Negative: a uniform position among the n − count samples outside the class
        # block, jumping over the block.
        r = (torch.rand(t, generator=g) * (n - count)).long().clamp_max(n - count - 1)
        neg = self._order[torch.where(r < start, r, r + count)]
        return torch.stack([a, p, neg], dim=1)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for a, p, n in self.triplets().tolist():
            yield a, p, n

    def __len__(self) -> int:
        return self.triplets_per_epoch


# ---------------------------------------------------------------- registered losses
@register_loss(
    "contrastive",
    family="metric learning",
    paper="Hadsell, Chopra & LeCun 2006, Dimensionality Reduction by Learning an Invariant Mapping",
)
class ContrastiveLoss(Loss):
    """Contrastive loss over all pairs of the batch: ½d² for same-label pairs, ½max(0, m−d)² else.

    Hadsell, Chopra & LeCun (2006), Eq. (4), with the paper's ½ factors:
    L = y · ½ d² + (1 − y) · ½ max(0, m − d)², y = 1 for a same-label pair, d the
    (non-squared) Euclidean distance, mean over the N(N−1)/2 pairs i < j.

    Input: embeddings ``(N, D)`` float (L2-normalised by the task, so d ∈ [0, 2]), labels
    ``(N,)`` int64; N ≥ 2. ``margin`` m = 1.0 by default; ``balance=true`` averages
    positive and negative pairs separately and takes the mean of the two.
    """

    kind = "metric"

    def __init__(self, margin: float = 1.0, balance: bool = False) -> None:
        super().__init__()
        _check_margin(margin)
        self.margin = float(margin)
        self.balance = bool(balance)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(embeddings, labels, self.margin, self.balance)


@register_loss(
    "triplet",
    family="metric learning",
    paper="Schroff, Kalenichenko & Philbin 2015 (FaceNet); Hermans, Beyer & Leibe 2017",
)
class TripletLoss(Loss):
    """Triplet loss max(d(a,p) − d(a,n) + α, 0) with in-batch mining (semi-hard, batch-hard, all).

    FaceNet (Schroff et al. 2015), Eq. (1): ‖f(a) − f(p)‖² − ‖f(a) − f(n)‖² + α, α = 0.2,
    on L2-normalised embeddings with **squared** Euclidean distance (``squared=true``);
    Hermans et al. (2017) use the non-squared distance (``squared=false``), which they
    found more stable.

    ``mining``: ``semi_hard`` (FaceNet; mean over positive pairs, falls back to the
    largest-distance negative when no negative is farther than the positive),
    ``batch_hard`` (Hermans; mean over anchors), ``all`` (Hermans' batch-all; mean over
    triplets with positive loss; O(N² log N) time, O(N²) memory). Input: embeddings ``(N, D)`` float,
    labels ``(N,)`` int64 from a P×K sampler with K ≥ 2 and P ≥ 2 (a batch without a
    positive or negative pair gives 0; ``ValueError`` under the opt-in
    :func:`~cvloss.losses.base.value_checks`).
    After each call, ``fraction_positive`` holds the fraction of active triplets for
    ``mining=all`` (``None`` otherwise).
    """

    kind = "metric"

    def __init__(
        self,
        mining: Literal["all", "batch_hard", "semi_hard"] = "semi_hard",
        margin: float = 0.2,
        squared: bool = True,
    ) -> None:
        super().__init__()
        if mining not in ("all", "batch_hard", "semi_hard"):
            raise ValueError(f"mining must be one of 'all', 'batch_hard', 'semi_hard'; got {mining!r}")
        _check_margin(margin)
        self.mining = mining
        self.margin = float(margin)
        self.squared = bool(squared)
        self.fraction_positive: torch.Tensor | None = None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.mining == "all":
            loss, self.fraction_positive = batch_all_triplet_loss(embeddings, labels, self.margin, self.squared)
            return loss
        if self.mining == "batch_hard":
            return batch_hard_triplet_loss(embeddings, labels, self.margin, self.squared)
        return semi_hard_triplet_loss(embeddings, labels, self.margin, self.squared)


@register_loss("softmax", family="metric learning",
               paper="softmax classification baseline (e.g. Taigman et al. 2014, DeepFace)")
class SoftmaxLoss(Loss):
    """Softmax baseline: cross-entropy −log softmax(W f(x) + b)_y over training identities.

    Input: ``logits`` ``(N, C)`` float from a linear classifier on the un-normalised
    embedding f(x) (C = training identities), ``labels`` ``(N,)`` int64 in [0, C). The
    embedding used for verification is the layer before the classifier, f(x)/‖f(x)‖₂
    (the classic "softmax features" baseline of FaceNet-era face recognition, e.g.
    DeepFace / DeepID). ``label_smoothing`` ε ∈ [0, 1) mixes the one-hot target with the
    uniform distribution (0 = plain cross-entropy). Returns a scalar ≥ 0 (mean over N).
    Kind ``logits``: the ``embed`` task routes it to the classifier's output.
    """

    kind = "logits"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1); got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_embeddings(logits, labels)  # same shapes: (N, C) float, (N,) int64
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)


@register_loss("triplet_offline", family="metric learning",
               paper="Schroff, Kalenichenko & Philbin 2015 (FaceNet), random offline triplets")
class OfflineTripletLoss(Loss):
    """FaceNet's offline baseline: the triplet hinge on random triplets, no mining.

    ℓ_i = max(‖f(a_i) − f(p_i)‖² − ‖f(a_i) − f(n_i)‖² + α, 0), mean over the B triplets
    (Schroff et al. 2015, Eq. 1; α = ``margin`` = 0.2; non-squared distances with
    ``squared=false``). Input: ``anchor``, ``positive``, ``negative`` ``(B, D)``
    L2-normalised embeddings of random triplets (anchor uniform over the training
    images, positive uniform over the anchor's other images, negative uniform over the
    other identities' images: :class:`~cvloss.losses.metric.OfflineTripletSampler`).
    Kind ``triplets``: the ``embed`` task feeds it ⌊P·K/3⌋ such triplets per step.
    """

    kind = "triplets"

    def __init__(self, margin: float = 0.2, squared: bool = True) -> None:
        super().__init__()
        if not margin > 0:
            raise ValueError(f"margin must be > 0; got {margin}")
        self.margin = float(margin)
        self.squared = bool(squared)

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return triplet_margin_loss(anchor, positive, negative, self.margin, self.squared)
