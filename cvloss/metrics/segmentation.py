"""Segmentation metrics: overlap (mIoU, Dice, pixel accuracy) and topology (Betti-number
errors, clDice score), on hard label maps.

Inputs everywhere are label maps, not logits: ``pred`` and ``target`` ``(N, H, W)``,
integer class ids in ``[0, K)``, numpy arrays or torch tensors on any device (copied to
the host: topology needs scipy / scikit-image); ``target`` may also hold
``ignore_index``. Take ``logits.argmax(1)`` (or ``logits[:, 0] > 0`` for one binary
logit) first. IoU and Dice are dataset-level (from the confusion matrix of the whole
set, classes absent from prediction and truth excluded); Betti errors and clDice are
per (image, foreground class) pair, averaged. Ignored pixels leave the confusion matrix;
for the topology metrics the target takes the predicted label there.

Every definition, with the conventions where papers and libraries disagree (the 8/4
connectivity pair, clDice on empty masks): ``docs/tasks/seg.md``, "Metrics".
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

__all__ = [
    "confusion_matrix",
    "segmentation_metrics",
    "betti_numbers",
    "betti_numbers_batch",
    "cldice_score",
    "SegMetricAccumulator",
]

# In-plane structuring elements for a stack (B, H, W): the zero planes at depth 0 and 2
# stop components from joining across images, so one ``ndimage.label`` call labels every
# mask of the stack independently.
_EIGHT = np.zeros((3, 3, 3), dtype=bool)
_EIGHT[1] = True
_FOUR = np.zeros((3, 3, 3), dtype=bool)
_FOUR[1] = ndimage.generate_binary_structure(2, 1)


def _to_numpy_labels(x: Any, name: str) -> np.ndarray:
    """Host int64 copy of an integer (N, H, W) label map (numpy array or torch tensor)."""
    if hasattr(x, "detach"):  # torch tensor, possibly on an accelerator
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"expected {name} of shape (N, H, W) with integer class ids; got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ValueError(f"expected {name} with integer class ids (N, H, W); got dtype {x.dtype}")
    return x.astype(np.int64, copy=False)


def _check_pair(pred: Any, target: Any, num_classes: int, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 (class 0 = background); got {num_classes!r}")
    p = _to_numpy_labels(pred, "pred")
    t = _to_numpy_labels(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"expected pred and target of the same shape (N, H, W); got {p.shape} and {t.shape}")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(
            f"pred class ids must lie in [0, {num_classes - 1}]; got range [{p.min()}, {p.max()}]"
        )
    valid = t != ignore_index if ignore_index is not None else np.ones(t.shape, dtype=bool)
    tv = t[valid]
    if tv.size and (tv.min() < 0 or tv.max() >= num_classes):
        extra = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"target class ids must lie in [0, {num_classes - 1}]{extra}; got range [{tv.min()}, {tv.max()}]"
        )
    return p, t


def _confusion(p: np.ndarray, t: np.ndarray, k: int, ignore_index: int | None) -> np.ndarray:
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    # One bincount over the flat index t·K + p fills the K×K table in a single pass.
    return np.bincount((t.ravel() * k + p.ravel()), minlength=k * k).reshape(k, k).astype(np.int64)


def confusion_matrix(pred: Any, target: Any, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Confusion matrix ``M`` of shape ``(K, K)``, int64: ``M[t, p]`` counts the pixels of
    true class ``t`` predicted as class ``p`` over all N images.

    ``pred``, ``target``: ``(N, H, W)`` integer class ids in ``[0, K)``; target pixels
    equal to ``ignore_index`` are not counted.
    """
    p, t = _check_pair(pred, target, num_classes, ignore_index)
    return _confusion(p, t, int(num_classes), ignore_index)


def betti_numbers_batch(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Betti numbers of a stack of binary masks ``(B, H, W)`` → ``(b0, b1)``, each ``(B,)``
    int64. β0: 8-connected foreground components; β1: 4-connected background components
    not touching the image border (holes): the dual pair of digital topology, so that
    β0 − β1 is the Euler characteristic (docs/tasks/seg.md).

    Vectorised over the stack: one labelling per connectivity, counts per mask by
    ``bincount`` of the mask index of each component.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected a stack of binary masks of shape (B, H, W); got {masks.shape}")
    b = masks.shape[0]
    if masks.size == 0:
        return np.zeros(b, np.int64), np.zeros(b, np.int64)
    hw = masks.shape[1] * masks.shape[2]

    def mask_of_label(lab: np.ndarray, n: int) -> np.ndarray:
        # The stack index of each label 1..n: labels never span two masks (see _EIGHT).
        flat = lab.ravel()
        first = np.zeros(n + 1, dtype=np.int64)
        nz = np.flatnonzero(flat)
        first[flat[nz]] = nz  # any pixel of the label will do
        return first[1:] // hw

    fg, n_fg = ndimage.label(masks, structure=_EIGHT)
    b0 = np.bincount(mask_of_label(fg, n_fg), minlength=b)

    bg, n_bg = ndimage.label(~masks, structure=_FOUR)
    border = np.unique(np.concatenate([bg[:, 0].ravel(), bg[:, -1].ravel(), bg[:, :, 0].ravel(), bg[:, :, -1].ravel()]))
    is_hole = np.ones(n_bg + 1, dtype=bool)
    is_hole[border] = False
    is_hole[0] = False
    owner = mask_of_label(bg, n_bg)
    b1 = np.bincount(owner[is_hole[1:]], minlength=b)
    return b0.astype(np.int64), b1.astype(np.int64)


def betti_numbers(mask: Any) -> tuple[int, int]:
    """Betti numbers ``(β0, β1)`` of one binary mask ``(H, W)`` (bool or 0/1).

    β0 = number of 8-connected foreground components, β1 = number of holes = 4-connected
    background components that do not touch the border, so β0 − β1 is the Euler
    characteristic (``skimage.measure.euler_number(mask, connectivity=2)``).
    """
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a binary mask of shape (H, W); got {mask.shape}")
    b0, b1 = betti_numbers_batch(mask[None].astype(bool))
    return int(b0[0]), int(b1[0])


def cldice_score(pred_mask: Any, true_mask: Any) -> float:
    """clDice score (Shit et al. 2021) of two binary masks ``(H, W)``, in [0, 1].

    ``2·Tprec·Tsens / (Tprec + Tsens)`` with ``Tprec = |S_P ∩ V_L| / |S_P|`` and
    ``Tsens = |S_L ∩ V_P| / |S_L|``, S = ``skimage.morphology.skeletonize`` of the mask.
    Both masks empty → 1.0; exactly one empty → 0.0; ``Tprec + Tsens = 0`` → 0.0.
    """
    vp = np.asarray(pred_mask, dtype=bool)
    vl = np.asarray(true_mask, dtype=bool)
    if vp.ndim != 2 or vp.shape != vl.shape:
        raise ValueError(f"expected two binary masks of the same shape (H, W); got {vp.shape} and {vl.shape}")
    has_p, has_l = vp.any(), vl.any()
    if not has_p and not has_l:
        return 1.0
    if not has_p or not has_l:
        return 0.0
    sp, sl = skeletonize(vp), skeletonize(vl)
    n_sp, n_sl = sp.sum(), sl.sum()
    # skeletonize keeps at least one pixel of every component, so these are > 0 here;
    # the guards only protect against a future change of that behaviour.
    tprec = (sp & vl).sum() / n_sp if n_sp else 0.0
    tsens = (sl & vp).sum() / n_sl if n_sl else 0.0
    if tprec + tsens == 0:
        return 0.0
    return float(2.0 * tprec * tsens / (tprec + tsens))


class SegMetricAccumulator:
    """Streaming version of :func:`segmentation_metrics`: ``update`` per batch, then
    ``compute``. Every metric is a ratio of sums (confusion counts; sums of per-(image,
    class) topology terms and their count), so feeding the set in any batches gives
    exactly the one-shot result.

    Args:
        num_classes: K >= 2; class 0 is background, 1 … K-1 are foreground.
        class_names: K names used in the ``iou_<name>`` keys (default ``"0" … "K-1"``).
        ignore_index: target value to ignore (see the module docstring), or ``None``.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int | None = None) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2 (class 0 = background); got {num_classes!r}")
        names = [str(c) for c in range(num_classes)] if class_names is None else [str(n) for n in class_names]
        if len(names) != num_classes:
            raise ValueError(f"expected {num_classes} class_names (one per class); got {len(names)}: {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names must be unique; got {names}")
        self.num_classes = int(num_classes)
        self.class_names = names
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        k = self.num_classes
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self._betti0_sum = 0
        self._betti1_sum = 0
        self._cldice_sum = 0.0
        self._pairs = 0  # (image, foreground class) pairs seen

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch: ``pred``, ``target`` ``(N, H, W)`` integer class ids."""
        k = self.num_classes
        p, t = _check_pair(pred, target, k, self.ignore_index)
        self.confusion += _confusion(p, t, k, self.ignore_index)
        if p.shape[0] == 0:
            return
        if self.ignore_index is not None:
            t = np.where(t == self.ignore_index, p, t)
        # (N, K-1, H, W) one-hot of the foreground classes, flattened to a mask stack.
        fg = np.arange(1, k).reshape(1, k - 1, 1, 1)
        pm = (p[:, None] == fg).reshape(-1, *p.shape[1:])
        tm = (t[:, None] == fg).reshape(-1, *t.shape[1:])
        pb0, pb1 = betti_numbers_batch(pm)
        tb0, tb1 = betti_numbers_batch(tm)
        self._betti0_sum += int(np.abs(pb0 - tb0).sum())
        self._betti1_sum += int(np.abs(pb1 - tb1).sum())
        # Skeletonisation is per 2D mask (a 3D call would thin across the stack).
        self._cldice_sum += sum(cldice_score(a, b) for a, b in zip(pm, tm))
        self._pairs += pm.shape[0]

    def compute(self) -> dict[str, float]:
        """The metrics as a ``{name: float}`` dict: ``miou``, ``dice``, ``pixel_acc``,
        ``iou_<name>`` per class, ``betti0_err``, ``betti1_err``, ``cldice_score``.
        Values that are undefined (nothing seen; a class absent everywhere) are NaN."""
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        union = tp + fp + fn
        present = union > 0  # in prediction or target somewhere in the set
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(present, tp / union, np.nan)
            dice = np.where(present, 2 * tp / (2 * tp + fp + fn), np.nan)
        total = cm.sum()
        out: dict[str, float] = {
            "miou": float(iou[present].mean()) if present.any() else float("nan"),
            "dice": float(dice[1:][present[1:]].mean()) if present[1:].any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        }
        for name, v in zip(self.class_names, iou):
            out[f"iou_{name}"] = float(v)
        n = self._pairs
        out["betti0_err"] = self._betti0_sum / n if n else float("nan")
        out["betti1_err"] = self._betti1_sum / n if n else float("nan")
        out["cldice_score"] = self._cldice_sum / n if n else float("nan")
        return out


def segmentation_metrics(
    pred: Any,
    target: Any,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
) -> dict[str, float]:
    """All segmentation metrics of a whole evaluation set in one call.

    ``pred``, ``target``: ``(N, H, W)`` integer class ids in ``[0, K)``. Returns
    ``miou``, ``dice``, ``pixel_acc``, ``iou_<name>`` per class, ``betti0_err``,
    ``betti1_err``, ``cldice_score`` (definitions: docs/tasks/seg.md). Same as a
    :class:`SegMetricAccumulator` fed the set in batches.
    """
    acc = SegMetricAccumulator(num_classes, class_names, ignore_index)
    acc.update(pred, target)
    return acc.compute()
