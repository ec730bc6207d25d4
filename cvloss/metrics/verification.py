"""Face-verification metrics on pair scores: 10-fold accuracy, ROC, AUC, TAR at FAR.

A score is the cosine similarity s = ⟨e₁, e₂⟩ ∈ [−1, 1] of a pair's two unit-norm
embeddings; a pair is "same" when s ≥ t.

* 10-fold accuracy (LFW's unrestricted protocol): fold k's threshold maximises accuracy
  on the nine other folds; mean and standard deviation over the folds.
* ROC: TAR(t) and FAR(t) over every distinct threshold, from (0, 0) to (1, 1).
* AUC: trapezoids = P(s_same > s_diff) + ½ P(s_same = s_diff) (Mann–Whitney).
* TAR @ FAR = f: the highest TAR over ROC points with FAR ≤ f, no interpolation.

Threshold candidates, ties and FAR resolution: ``docs/tasks/embed.md``, "Metrics".
"""
from __future__ import annotations

import numpy as np


def _arrays(scores, same) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(same, dtype=bool).ravel()
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"scores and same must be non-empty and of equal length; got {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y


def cosine_scores(e1, e2) -> np.ndarray:
    """Row-wise cosine similarity of two ``(M, D)`` arrays (normalised here), ``(M,)``."""
    a = np.asarray(e1, dtype=np.float64)
    b = np.asarray(e2, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def roc_curve(scores, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: one point per distinct score (descending) plus (0, 0)
    at threshold +inf; both rates non-decreasing, ending at (1, 1)."""
    s, y = _arrays(scores, same)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both same and different pairs")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # last index of each run of equal scores
    tar = np.r_[0.0, tp[last] / n_pos]
    far = np.r_[0.0, fp[last] / n_neg]
    return far, tar, np.r_[np.inf, s[last]]


def roc_auc(scores, same) -> float:
    """Area under the ROC curve (trapezoidal rule over :func:`roc_curve`), in [0, 1]."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def tar_at_far(scores, same, far_target: float) -> float:
    """Highest TAR among ROC points with FAR ≤ ``far_target`` (no interpolation)."""
    far, tar, _ = roc_curve(scores, same)
    return float(tar[far <= far_target + 1e-12].max())


def _candidates(s: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct scores, one below the minimum and one above
    the maximum: every distinct decision is reachable."""
    u = np.unique(s)
    return np.r_[u[0] - 1.0, (u[1:] + u[:-1]) / 2, u[-1] + 1.0]


def best_threshold(scores, same) -> float:
    """The threshold t (decide "same" when s ≥ t) of highest accuracy; ties → smallest t."""
    s, y = _arrays(scores, same)
    cand = _candidates(s)
    # accuracy(t) = (#same with s ≥ t + #different with s < t) / M, for every t at once:
    # sort the scores and count with searchsorted instead of an (M, T) comparison.
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, cand, side="left")
    tn = np.searchsorted(neg, cand, side="left")
    return float(cand[np.argmax(tp + tn)])


def accuracy_at(scores, same, threshold: float) -> float:
    s, y = _arrays(scores, same)
    return float(np.mean((s >= threshold) == y))


def kfold_accuracy(scores, same, folds) -> tuple[float, float, np.ndarray]:
    """LFW 10-fold verification accuracy: ``(mean, std, per-fold accuracies)``; the
    threshold of fold k is :func:`best_threshold` on the other folds."""
    s, y = _arrays(scores, same)
    f = np.asarray(folds).ravel()
    if f.shape != s.shape:
        raise ValueError(f"folds must have one entry per pair; got {f.shape} for {s.shape}")
    ids = np.unique(f)
    if len(ids) < 2:
        raise ValueError("k-fold accuracy needs at least 2 folds")
    accs = np.array([accuracy_at(s[f == k], y[f == k], best_threshold(s[f != k], y[f != k])) for k in ids])
    return float(accs.mean()), float(accs.std()), accs


def verification_metrics(scores, same, folds) -> dict[str, float]:
    """Everything the ``embed`` task reports, keys: ``verif_acc`` (10-fold mean),
    ``verif_acc_std``, ``auc``, ``tar_far1e-2``, ``tar_far1e-3``."""
    mean, std, _ = kfold_accuracy(scores, same, folds)
    return {
        "verif_acc": mean,
        "verif_acc_std": std,
        "auc": roc_auc(scores, same),
        "tar_far1e-2": tar_at_far(scores, same, 1e-2),
        "tar_far1e-3": tar_at_far(scores, same, 1e-3),
    }
