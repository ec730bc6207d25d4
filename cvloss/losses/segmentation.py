"""Segmentation losses on logits: ``ce``, ``bce``, ``wce``, ``dice``, ``focal``; and the
weight maps of U-Net (Ronneberger et al. 2015): :func:`class_balanced_weights`,
:func:`unet_weight_map`.

Inputs: ``logits`` ``(N, C, H, W)`` raw scores; ``target`` ``(N, H, W)`` int64 in
``[0, C)``; optional per-pixel ``weight`` ``(N, H, W)`` (or ``(N, 1, H, W)``) >= 0, giving
the weighted mean ``Σ w·l / Σ w``. Every loss here takes ``ignore_index`` (those pixels
leave numerator and denominator and get zero gradient; all ignored: 0, not nan);
``ce``/``focal`` take class weights ``weight=[w_0, …]`` (torch's weighted mean);
``ce``/``bce``/``wce``/``focal`` take ``reduction`` ``mean``, ``sum`` or ``none`` (the
weighted per-pixel map; ``train``/``compare`` refuse it). ``C == 1``: the channel is the
foreground logit z and the cross-entropy family uses the two logits ``(0, z)``, which is
exactly binary cross-entropy. Log-probabilities come from log-sum-exp, never ``log`` of a
probability. More: ``docs/losses.md``, "Segmentation losses".
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from cvloss.errors import UsageError
from cvloss.losses.base import Loss, _shape, check_ignore_index, check_seg, valid_pixels, weighted_reduce
from cvloss.losses.pixel import _REDUCTION_ENUM, check_reduction, _upcast
from cvloss.losses.registry import register_loss

_UNET = "Ronneberger et al. 2015, 'U-Net: Convolutional Networks for Biomedical Image Segmentation'"


# ---------------------------------------------------------------- shared helpers
def _seg_weight(weight: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor | None:
    """Validate a per-pixel weight map against target (N, H, W); return it as (N, H, W)."""
    if weight is None:
        return None
    n, h, w = target.shape
    if torch.is_tensor(weight) and weight.dim() == 4 and weight.shape[1] == 1:
        weight = weight[:, 0]
    if not torch.is_tensor(weight) or weight.shape != (n, h, w):
        got = _shape(weight) if torch.is_tensor(weight) else type(weight).__name__
        raise ValueError(f"expected a per-pixel weight map of shape (N, H, W) = ({n}, {h}, {w}) or (N, 1, H, W); got {got}")
    return weight


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log class probabilities (N, K, H, W), K = max(C, 2), via log-sum-exp.

    ``C == 1`` becomes the two logits ``(0, z)`` (see the module docstring). Half
    precision is upcast so that log-probabilities of confident pixels keep their digits.
    """
    return F.log_softmax(_two_class(_upcast(logits)), dim=1)


def _two_class(logits: torch.Tensor) -> torch.Tensor:
    """``C == 1`` foreground logits ``z`` -> the two-class logits ``(0, z)``; else unchanged."""
    return torch.cat([torch.zeros_like(logits), logits], dim=1) if logits.shape[1] == 1 else logits


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                   reduction: str = "none", class_weight: torch.Tensor | None = None,
                   ignore_index: int | None = None) -> torch.Tensor:
    """Pixel cross-entropy ``−log softmax(z)_t`` through torch's fused kernel
    (``F.cross_entropy``: log-sum-exp, one pass forward and one backward), in float32
    at least. ``reduction="none"`` gives (N, H, W) (``w_t·l``, 0 where ignored);
    ``class_weight`` (K,) and ``ignore_index`` as in ``F.cross_entropy``.

    With label smoothing ε (Szegedy et al. 2016) the one-hot target becomes
    ``(1 − ε)·onehot + ε/K``, i.e. ``(1 − ε)(−log p_t) + ε·mean_k(−log p_k)`` -- torch's
    definition too. ``C == 1`` is the two-class problem with logits ``(0, z)``.
    """
    # float32 logits stay float32 under autocast (log_softmax / nll_loss run in float32).
    # The op F.cross_entropy ends in, without its Python wrapper (legacy-argument checks
    # and a reduction lookup), as for mse / l1 (see cvloss.losses.pixel.fused_kernel).
    logits = _two_class(_upcast(logits))
    ignore = -100 if ignore_index is None else ignore_index  # torch's default: no class id is negative
    if class_weight is not None:
        class_weight = class_weight.to(device=logits.device, dtype=logits.dtype)
    op = getattr(torch._C._nn, "cross_entropy_loss", None)
    if op is None:  # pragma: no cover
        return F.cross_entropy(logits, target, class_weight, reduction=reduction, ignore_index=ignore,
                               label_smoothing=label_smoothing)
    return op(logits, target, class_weight, _REDUCTION_ENUM[reduction], ignore, label_smoothing)


def _class_frequency_weights(target: torch.Tensor, num_classes: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``w_c = N_pixels / (C · N_c)`` (0 for an absent class) on ``target``'s device,
    without a host round trip (``scatter_add`` counts; no range check). With ``valid``
    (the (N, H, W) 0/1 map of :func:`~cvloss.losses.base.valid_pixels`) only counted
    pixels enter N_c and N_pixels."""
    flat = target.reshape(-1)
    counts = torch.zeros(num_classes, dtype=torch.float32, device=target.device)
    ones = torch.ones_like(flat, dtype=torch.float32) if valid is None else valid.reshape(-1).to(torch.float32)
    counts.scatter_add_(0, flat, ones)
    n_pixels = flat.numel() if valid is None else ones.sum()
    weights = n_pixels / (num_classes * counts.clamp_min(1.0))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


_Reduction = Literal["mean", "sum", "none"]


def _check_class_weight(name: str, weight: tuple[float, ...] | None) -> torch.Tensor | None:
    """The (K,) float32 tensor of a ``weight=[...]`` class-weight list, checked: finite,
    >= 0, not all 0 (a mean over zero total weight is undefined)."""
    if weight is None:
        return None
    w = torch.as_tensor([float(v) for v in weight], dtype=torch.float32)
    if w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError(f"{name}: weight must list one finite weight >= 0 per class, not all 0; got {list(weight)}")
    return w


def _class_weight_for(loss: Loss, logits: torch.Tensor) -> torch.Tensor | None:
    """The loss's class weights on the logits' device, checked against K = max(C, 2).

    A wrong count is the user's spec against the data, so a :class:`UsageError` (one
    line, exit 2 on the CLI) rather than a bug; it can only be seen once the number of
    classes is (at the first call)."""
    w = loss.class_weight
    if w is None:
        return None
    k = max(logits.shape[1], 2)
    if w.numel() != k:
        raise UsageError(f"{loss.name}: weight has {w.numel()} entries but the logits have {k} classes "
                         f"(shape {_shape(logits)}); give one weight per class")
    return w.to(logits.device)


def _times(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """Product of two optional weight maps (None is a map of ones)."""
    if a is None:
        return b
    return a if b is None else a * b.to(a.dtype)


# ---------------------------------------------------------------- weight maps
def class_balanced_weights(target: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    """Class-balancing weights from the label frequencies of ``target``.

    ``w_c = N_pixels / (C · N_c)`` with ``N_c`` the number of pixels of class ``c`` in the
    whole of ``target`` (all images together) and ``C = num_classes``; a class absent
    from ``target`` gets ``w_c = 0`` (it has no pixel to weigh, and 0 avoids dividing by
    zero). With every class present the mean weight per pixel is 1, so the frequency-
    weighted mean of the weights, Σ_c N_c w_c / N_pixels, is (#classes present) / C.

    Args:
        target: int class ids, any shape (typically ``(N, H, W)`` or ``(H, W)``), in ``[0, C)``.
        num_classes: ``C`` >= 1.

    Returns:
        ``(C,)`` float32 tensor (on ``target``'s device when it is a tensor).
    """
    t = torch.as_tensor(target)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"class_balanced_weights expects integer class ids; got dtype {t.dtype}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"class_balanced_weights: num_classes must be a positive int; got {num_classes!r}")
    if t.numel() == 0:
        raise ValueError("class_balanced_weights: target is empty")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"class ids must lie in [0, {num_classes - 1}]; got range [{lo}, {hi}]")
    return _class_frequency_weights(t.long(), num_classes)


def _mask_array(mask: torch.Tensor | np.ndarray, w0: float, sigma: float, name: str) -> tuple[torch.device, np.ndarray, bool]:
    """Validate a weight-map mask and its constants; return (device, (N, H, W) array, was 2-D)."""
    device = mask.device if torch.is_tensor(mask) else torch.device("cpu")
    m = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if m.ndim not in (2, 3) or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"{name} expects an integer mask of shape (H, W) or (N, H, W); got shape {m.shape}, dtype {m.dtype}")
    if not sigma > 0:
        raise ValueError(f"{name}: sigma must be > 0; got {sigma}")
    if not w0 >= 0:
        raise ValueError(f"{name}: w0 must be >= 0; got {w0}")
    single = m.ndim == 2
    return device, (m[None] if single else m), single


def _border_term(m: np.ndarray, w0: float, sigma: float, background: int) -> np.ndarray:
    """``w0·exp(−(d1 + d2)²/(2σ²))`` on background pixels of (N, H, W) ``m``, else 0 (float64)."""
    n, h, w = m.shape
    classes = np.unique(m)
    fg = classes[classes != background]
    border = np.zeros(m.shape, dtype=np.float64)
    if fg.size and w0 > 0:
        # Label every (image, class) plane in one call: neighbours only within a plane.
        planes = (m[:, None] == fg[None, :, None, None]).reshape(n * fg.size, h, w)
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
        labels, n_obj = ndimage.label(planes, structure=structure)
        # A pixel has one class, so summing over the class planes gives each image's
        # object map (0 = background), with labels unique across the batch.
        labels = labels.reshape(n, fg.size, h, w).sum(axis=1)
        obj_ids = np.arange(1, n_obj + 1)
        image_of = np.zeros(n_obj + 1, dtype=np.int64)
        image_of[labels.reshape(n, -1)] = np.arange(n)[:, None]
        image_of = image_of[1:]  # (K,) image index of each object
        per_image = np.bincount(image_of, minlength=n)
        k_max = int(per_image.max())
        if k_max >= 2:
            # Rank of each object within its image (objects sorted by image, stably).
            order = np.argsort(image_of, kind="stable")
            starts = np.concatenate([[0], np.cumsum(per_image)[:-1]])
            rank = np.empty(n_obj, dtype=np.int64)
            rank[order] = np.arange(n_obj) - starts[image_of[order]]
            # Distance from every pixel to object k of its image, one EDT for all objects.
            not_obj = labels[image_of] != obj_ids[:, None, None]  # (K, H, W)
            dist = ndimage.distance_transform_edt(not_obj, sampling=(float(h + w), 1.0, 1.0))
            table = np.full((n, k_max, h, w), np.inf)
            table[image_of, rank] = dist
            two = np.partition(table, 1, axis=1)[:, :2]  # d1 <= d2 per pixel
            d = two[:, 0] + two[:, 1]  # inf where the image has < 2 objects -> term 0
            border = w0 * np.exp(-np.square(d) / (2.0 * sigma**2))
            border = np.where(m == background, border, 0.0)

    return border


def unet_weight_map(
    mask: torch.Tensor | np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: torch.Tensor | np.ndarray | list[float] | None = None,
    background: int = 0,
) -> torch.Tensor:
    """U-Net border weight map (Ronneberger et al. 2015, eq. 2)::

        w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2 σ²))

    ``d1``/``d2`` are the Euclidean distances (in pixels) from ``x`` to the nearest and
    second-nearest object; ``w0 = 10``, ``σ = 5`` pixels as in the paper.

    Choices, stated:

    * An *object* is a 4-connected component of one non-background class, found in each
      image separately; two touching objects of different classes are two objects.
      ``background`` (default 0) is the class id that forms no object.
    * The border term is added on background pixels only: it exists to make the network
      learn the thin background gaps between touching objects (paper §3, Fig. 3c/d); on
      an object pixel ``d1 = 0`` and the term would only blur the object's own weight.
    * Fewer than two objects in an image: ``d2 = ∞`` and the border term is 0.
    * ``w_c(x) = class_weights[mask(x)]`` when ``class_weights`` (length > max class id)
      is given, e.g. from :func:`class_balanced_weights`; otherwise ``w_c ≡ 1``.

    Vectorised: one ``scipy.ndimage.label`` call labels every (image, class) plane at
    once (the structuring element has no neighbours across planes), and one
    ``distance_transform_edt`` call computes the distance to every object of the batch:
    the K per-object "not this object" masks are stacked into a (K, H, W) volume sampled
    with spacing H + W along the stacking axis, which is larger than any in-plane
    distance, so each plane's nearest zero is always in the same plane. ``np.partition``
    then picks d1, d2 per pixel. Memory is O(N · K_max · H · W).

    Args:
        mask: ``(H, W)`` or ``(N, H, W)`` integer class ids (tensor or array).
        w0, sigma: border weight and width (10 and 5 pixels in the paper).
        class_weights: optional ``(C,)`` per-class weights ``w_c``.
        background: class id of the background.

    Returns:
        float32 torch tensor with the leading dims of ``mask`` (on its device if a
        tensor), values >= min(w_c); computed without gradient, nothing cached.
    """
    device, m, single = _mask_array(mask, w0, sigma, "unet_weight_map")

    # w_c(x)
    if class_weights is None:
        wc = np.ones(m.shape, dtype=np.float64)
    else:
        cw = np.asarray(torch.as_tensor(class_weights).detach().cpu(), dtype=np.float64).reshape(-1)
        if m.size and (m.min() < 0 or m.max() >= cw.size):
            raise ValueError(f"class_weights has {cw.size} entries but the mask holds class ids in [{m.min()}, {m.max()}]")
        wc = cw[m]

    border = _border_term(m, w0, sigma, background)
    out = torch.from_numpy((wc + border).astype(np.float32)).to(device)
    return out[0] if single else out


def unet_border_map(
    mask: torch.Tensor | np.ndarray, w0: float = 10.0, sigma: float = 5.0, background: int = 0
) -> torch.Tensor:
    """The border term of :func:`unet_weight_map` alone: ``w0·exp(−(d1 + d2)²/(2σ²))``
    on background pixels, 0 on object pixels (same objects, distances and choices).

    It depends on one image's mask only (objects and distances are found per image), so
    it can be computed once per training image when the data is loaded and flipped with
    the image (a flip maps objects to objects and keeps distances), then handed to
    ``wce`` with each batch (``wce(logits, target, border=...)``): the loss then adds the
    per-batch class weights ``w_c`` and costs one weighted cross-entropy, with no host
    work. ``unet_weight_map(m, w0, sigma, cw) == w_c[m] + unet_border_map(m, w0, sigma)``
    (to float32 rounding).

    Returns a float32 tensor with the leading dims of ``mask`` (on its device if a tensor).
    """
    device, m, single = _mask_array(mask, w0, sigma, "unet_border_map")
    out = torch.from_numpy(_border_term(m, w0, sigma, background).astype(np.float32)).to(device)
    return out[0] if single else out


# ---------------------------------------------------------------- losses
@register_loss("ce", family="pixel-wise", paper=_UNET + " (pixel-wise softmax cross-entropy, eq. 1)")
class CrossEntropyLoss(Loss):
    """Multi-class cross-entropy on logits: mean over pixels of −log softmax(z)_t.

    ``l(x) = −log p_{t(x)}(x)``, ``p = softmax(z)`` over the C channels (log-sum-exp form);
    value >= 0. With ``C == 1`` it is binary cross-entropy on the foreground logit.
    ``label_smoothing`` ε in [0, 1) (Szegedy et al. 2016) replaces the one-hot target by
    ``(1 − ε)·onehot + ε/K`` (K = max(C, 2)). Optional per-pixel ``weight`` (N, H, W)
    gives the weighted mean Σ w·l / Σ w.

    ``weight=[w_0, …]`` (class weights), ``ignore_index`` and ``reduction`` follow
    ``F.cross_entropy`` exactly: ``mean`` is Σ_x m(x)·w_{t(x)}·l(x) / Σ_x m(x)·w_{t(x)}
    over the counted pixels (m the per-pixel map, 1 without one; with label smoothing
    the numerator is torch's smoothed weighted term and the denominator the same), and
    0 when no pixel counts (torch: nan).
    """

    kind = "seg"

    def __init__(self, label_smoothing: float = 0.0, weight: tuple[float, ...] | None = None,
                 ignore_index: int | None = None, reduction: _Reduction = "mean") -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"ce: label_smoothing must lie in [0, 1); got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = check_ignore_index("ce", ignore_index)
        self.reduction = check_reduction(reduction)
        self.register_buffer("class_weight", _check_class_weight("ce", weight), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        weight = _seg_weight(weight, target)
        cw = _class_weight_for(self, logits)
        if weight is None and (self.ignore_index is None or self.reduction != "mean"):
            # torch's fused reduction: one pass forward, one backward
            return _cross_entropy(logits, target, self.label_smoothing, self.reduction, cw, self.ignore_index)
        values = _cross_entropy(logits, target, self.label_smoothing, "none", cw, self.ignore_index)  # w_t·l, 0 if ignored
        if self.reduction != "mean":
            return weighted_reduce(values, weight, self.reduction)
        safe, valid = valid_pixels(target, self.ignore_index)
        # Σ m·w_t·l / Σ m·w_t over counted pixels (torch's weighted mean; 0 if none counts)
        den = _times(_times(weight, valid), None if cw is None else cw.to(values.dtype)[safe])
        num = values if weight is None else values * weight.to(values.dtype)
        return num.sum() / den.sum().to(values.dtype).clamp_min(torch.finfo(values.dtype).tiny)


@register_loss("bce", family="pixel-wise", paper="binary cross-entropy on logits (log-sum-exp form); see " + _UNET)
class BCELoss(Loss):
    """Binary cross-entropy on the foreground logit: mean of softplus(z) − t·z.

    ``l = −[t log σ(z) + (1 − t) log(1 − σ(z))] = max(z, 0) − t·z + log(1 + e^{−|z|})``,
    evaluated in that log-sum-exp form (``binary_cross_entropy_with_logits``), never as a
    log of probabilities. Logits ``(N, 1, H, W)`` (the foreground logit z) with target in
    {0, 1}; ``(N, 2, H, W)`` is accepted and uses the logit difference ``z = z1 − z0``
    (``σ(z1 − z0)`` is the softmax probability of class 1, so this equals 2-class ``ce``);
    more channels raise ``ValueError``. Optional ``weight`` (N, H, W) -> Σ w·l / Σ w.
    ``ignore_index`` (e.g. 255) and ``reduction`` as described in the module docstring
    (torch's BCE has no ignore_index; this is segmentation_models_pytorch's masking).
    """

    kind = "seg"

    def __init__(self, ignore_index: int | None = None, reduction: _Reduction = "mean") -> None:
        super().__init__()
        self.ignore_index = check_ignore_index("bce", ignore_index)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        if logits.shape[1] > 2:
            raise ValueError(
                f"bce expects binary logits of shape (N, 1, H, W) (or (N, 2, H, W)); got {_shape(logits)}; use ce for C > 2"
            )
        weight = _seg_weight(weight, target)
        target, valid = valid_pixels(target, self.ignore_index)
        logits = _upcast(logits)
        z = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
        with torch.autocast(device_type=z.device.type, enabled=False):
            values = F.binary_cross_entropy_with_logits(z, target.to(z.dtype), reduction="none")
        return weighted_reduce(values, _times(weight, valid), self.reduction)


@register_loss("wce", family="pixel-wise", paper=_UNET + " (weight map, eq. 2; w0=10, sigma=5)")
class WeightedCrossEntropyLoss(Loss):
    """Weighted cross-entropy with class-balanced and/or U-Net border weight maps.

    ``loss = Σ_x w(x)·(−log p_{t(x)}(x)) / Σ_x w(x)`` (weighted mean; the overall
    scale of w cancels), with ``w`` computed from the target, without gradient, by
    ``weighting``:

    * ``balanced``: ``w(x) = w_c(t(x))``, ``w_c = N_pixels / (C · N_c)`` from the class
      frequencies of the whole batch (absent classes get 0; :func:`class_balanced_weights`).
    * ``unet`` (default): ``w(x) = 1 + w0·exp(−(d1 + d2)²/(2σ²))`` -- eq. 2 of Ronneberger
      et al. 2015 with ``w_c ≡ 1``, the border term that separates touching objects.
    * ``balanced+unet``: eq. 2 in full, ``w_c`` class-balanced plus the border term.
      (Quote it in a spec: ``wce(weighting="balanced+unet")``.)

    ``w0 = 10``, ``σ = 5`` pixels (the paper). Objects are the 4-connected components of
    each class except ``background`` (default 0); the border term is added on background
    pixels only (see :func:`unet_weight_map`). With ``C == 1`` the classes are {0, 1}.
    A ``weight`` map passed to ``forward`` multiplies the computed one.

    Cost: the border term depends on each image's mask alone, so the ``seg`` task
    computes it once per training image (:func:`unet_border_map`) and passes it with
    the batch (``border=``, or :func:`supplied_borders` for a combined loss); the loss
    is then one fused weighted cross-entropy plus the per-batch ``w_c``, on the device.
    Without a supplied map it is computed per call on the host (scipy), as before.

    ``ignore_index``: ignored pixels leave both sums of the weighted mean and the class
    frequencies of ``w_c``; for a border term computed here they count as
    ``background`` (they form no object); a supplied border map is used as given (its
    ignored pixels weigh 0 anyway). ``reduction``: ``mean`` (above), ``sum`` Σ w·l, or
    ``none`` the (N, H, W) map w·l.
    """

    kind = "seg"
    _supplied_border: torch.Tensor | None = None  # set by supplied_borders for one call

    def __init__(
        self,
        weighting: Literal["balanced", "unet", "balanced+unet"] = "unet",
        w0: float = 10.0,
        sigma: float = 5.0,
        background: int = 0,
        ignore_index: int | None = None,
        reduction: _Reduction = "mean",
    ) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index("wce", ignore_index)
        self.reduction = check_reduction(reduction)
        if weighting not in ("balanced", "unet", "balanced+unet"):
            raise ValueError(f"wce: unknown weighting {weighting!r}; valid: balanced, unet, balanced+unet")
        if not w0 >= 0:
            raise ValueError(f"wce: w0 must be >= 0; got {w0}")
        if not sigma > 0:
            raise ValueError(f"wce: sigma must be > 0; got {sigma}")
        self.weighting = weighting
        self.w0 = float(w0)
        self.sigma = float(sigma)
        self.background = int(background)

    @property
    def uses_border(self) -> bool:
        """Whether the weight map has the U-Net border term (``unet`` weighting, w0 > 0)."""
        return "unet" in self.weighting and self.w0 > 0

    @torch.no_grad()
    def border_map(self, target: torch.Tensor) -> torch.Tensor:
        """The (N, H, W) float32 border term of ``target`` (:func:`unet_border_map` with
        this loss's w0, sigma, background); zeros without the ``unet`` weighting.
        Host work (scipy): compute it once per training image and pass it to forward."""
        if not self.uses_border:
            return torch.zeros(target.shape, dtype=torch.float32, device=target.device)
        return unet_border_map(target, self.w0, self.sigma, self.background)

    @torch.no_grad()
    def weight_map(self, target: torch.Tensor, num_classes: int, border: torch.Tensor | None = None,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
        """The (N, H, W) float32 weight map of ``target`` for this ``weighting``:
        ``w_c[target]`` (class-balanced, from this batch, or 1) plus the border term
        (``border`` if given, else computed from ``target`` on the host). ``valid``
        (0/1, (N, H, W)): only counted pixels enter the class frequencies, and the map
        is 0 elsewhere; ``target`` must then hold class ids only (ignored ones replaced)."""
        wc = _class_frequency_weights(target, num_classes, valid)[target] if "balanced" in self.weighting else 1.0
        if "unet" not in self.weighting:
            out = wc
        else:
            if border is None:
                border = self.border_map(target)
            out = border.to(device=target.device, dtype=torch.float32) + wc  # one pass for w_c ≡ 1
        return out if valid is None else out * valid

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        border: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``border``: the (N, H, W) border term of ``target`` computed beforehand
        (:meth:`border_map` / :func:`unet_border_map`, e.g. once per image at data
        loading); without it the term is computed here on the host (scipy), a device ->
        host copy of the target per call. Inside :func:`supplied_borders` the supplied
        map is used."""
        check_seg(logits, target, self.ignore_index)
        weight = _seg_weight(weight, target)
        if border is None:
            border = self._supplied_border
        if border is not None and "unet" in self.weighting:
            border = _seg_weight(border, target)
        # Ignored pixels become ``background`` (no object for the border term), then weigh 0.
        target, valid = valid_pixels(target, self.ignore_index, fill=self.background)
        wmap = self.weight_map(target, max(logits.shape[1], 2), border, valid)
        if weight is not None:
            wmap = wmap * weight.to(wmap.dtype)
        values = _cross_entropy(logits, target)
        if self.reduction != "mean":
            return weighted_reduce(values, wmap, self.reduction)
        # Σ w·l / Σ w: wmap is float32 (N, H, W) like the pixel losses, nothing to expand.
        return (values * wmap).sum() / wmap.sum().to(values.dtype).clamp_min(torch.finfo(values.dtype).tiny)


def wce_terms(loss: torch.nn.Module) -> list[WeightedCrossEntropyLoss]:
    """The ``wce`` modules inside ``loss`` (itself, or terms of a combined loss) whose
    weight map has the U-Net border term."""
    return [m for m in loss.modules() if isinstance(m, WeightedCrossEntropyLoss) and m.uses_border]


class supplied_borders:
    """Hand precomputed border maps to ``wce`` terms for the calls in the block::

        with supplied_borders({term: border_of_this_batch for term in wce_terms(loss)}):
            value = loss(logits, target)    # a combined loss passes no extra argument

    so a task can cache the per-image maps whatever other terms the loss has. (A small
    class rather than a generator context manager, and plain attribute writes rather
    than ``nn.Module.__setattr__``: it wraps every training step.)
    """

    def __init__(self, borders: dict[WeightedCrossEntropyLoss, torch.Tensor]) -> None:
        self.borders = borders
        self.old: dict[WeightedCrossEntropyLoss, torch.Tensor | None] = {}

    def __enter__(self) -> None:
        for t, b in self.borders.items():
            self.old[t] = t.__dict__.get("_supplied_border")
            object.__setattr__(t, "_supplied_border", b)

    def __exit__(self, *exc) -> None:
        for t, b in self.old.items():
            object.__setattr__(t, "_supplied_border", b)
        self.old = {}


@register_loss("dice", family="region", paper="Milletari et al. 2016, 'V-Net: Fully Convolutional Neural Networks for Volumetric Medical Image Segmentation'")
class DiceLoss(Loss):
    """Soft Dice loss, batch-level: 1 − mean_c (2 Σ p·g + s) / (Σ p + Σ g + s).

    ``p`` = softmax probabilities (sigmoid of the single channel when ``C == 1``), ``g``
    the one-hot target; each sum runs over all images and pixels of the batch for one
    class (batch Dice, as in V-Net, Milletari et al. 2016, and nnU-Net), and the mean is
    over classes. The smoothing ``s = smooth`` (default 1.0) is added once to the
    numerator and once to the denominator, so an absent class predicted absent scores 1.
    Value in [0, 1). ``include_background=False`` drops channel 0 (C >= 2); with
    ``C == 1`` the only channel is the foreground and the flag changes nothing.
    Optional ``weight`` (N, H, W) weighs each pixel in the three sums.
    ``ignore_index``: pixels whose target equals it are left out of all three sums
    (prediction and target alike, as segmentation_models_pytorch's DiceLoss does), so
    they change neither value nor gradient. A scalar loss only: Dice is a ratio of
    batch sums, it has no per-pixel terms for a ``reduction``.
    """

    kind = "seg"

    def __init__(self, smooth: float = 1.0, include_background: bool = True, ignore_index: int | None = None) -> None:
        super().__init__()
        if not smooth >= 0:
            raise ValueError(f"dice: smooth must be >= 0; got {smooth}")
        self.smooth = float(smooth)
        self.include_background = bool(include_background)
        self.ignore_index = check_ignore_index("dice", ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        weight = _seg_weight(weight, target)
        target, valid = valid_pixels(target, self.ignore_index)
        weight = _times(weight, valid)
        logits = _upcast(logits)
        c = logits.shape[1]
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if c == 1:
                probs = torch.sigmoid(logits)
                g = target.unsqueeze(1).to(probs.dtype)
                if weight is not None:
                    w = weight.unsqueeze(1).to(probs.dtype)
                    probs_w, g_w = probs * w, g * w
                else:
                    probs_w, g_w = probs, g
                inter, p_sum, g_sum = (probs_w * g).sum(), probs_w.sum(), g_w.sum()
            else:
                inter, p_sum, g_sum = self._class_sums(F.softmax(logits, dim=1), target, weight)
                if not self.include_background:
                    inter, p_sum, g_sum = inter[1:], p_sum[1:], g_sum[1:]
            dice = (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)
            return 1.0 - dice.mean()

    @staticmethod
    def _class_sums(probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None):
        """Per class c: Σ w·p_c·[t = c], Σ w·p_c and Σ w·[t = c] over batch and pixels.

        One batched matmul gives the first two: with P the (N, C, HW) probabilities
        (times w) and G the (N, C, HW) one-hot target, M = Σ_n P Gᵀ is (C, C) with
        M_cc = Σ p_c·[t = c] and row sums Σ_k M_ck = Σ p_c (each pixel has exactly one
        class) -- one pass over the probabilities forward and one backward, instead of
        a product and two reductions over the one-hot and their backward. The one-hot is
        written by ``scatter_`` into zeros (cheaper on a CPU than a broadcast comparison
        and its float copy), and the class counts are its sums (``bincount`` was slower
        on a CPU, and reads its maximum on the host on CUDA).
        """
        n, c, h, w_ = probs.shape
        flat = target.reshape(n, 1, h * w_)
        onehot = probs.new_zeros(n, c, h * w_).scatter_(1, flat, 1.0)  # (N, C, HW)
        p = probs.reshape(n, c, h * w_)
        if weight is not None:
            wt = weight.to(probs.dtype).reshape(n, 1, h * w_)
            p, g_sum = p * wt, (onehot * wt).sum((0, 2))
        else:
            g_sum = onehot.sum((0, 2))
        m = torch.bmm(p, onehot.transpose(1, 2)).sum(0)  # (C, C)
        return m.diagonal(), m.sum(1), g_sum


@register_loss("focal", family="pixel-wise", paper="Lin et al. 2017, 'Focal Loss for Dense Object Detection'")
class FocalLoss(Loss):
    """Focal loss: mean over pixels of −α_t (1 − p_t)^γ log p_t (Lin et al. 2017, eq. 5).

    ``log p_t`` comes from ``log_softmax`` (log-sum-exp; ``C == 1`` uses logits (0, z),
    i.e. the sigmoid form) and ``p_t = exp(log p_t)``; ``γ = 2`` (paper's default,
    ``γ = 0`` gives cross-entropy). ``alpha=None`` (default): no α weighting. A float α
    follows the paper's binary definition -- ``α_t = α`` on foreground, ``1 − α`` on
    background -- and, for C > 2, every class except 0 counts as foreground. The paper
    normalises by the number of anchors assigned to objects; for dense segmentation
    every pixel counts, so this is the mean over pixels (weighted mean Σ w·l / Σ w with
    an optional (N, H, W) ``weight``). Value >= 0.

    ``weight=[w_0, …]``: class weights with ce's weighted mean,
    Σ w_t·l / Σ w_t (so ``gamma=0`` with ``weight`` is torch's weighted cross-entropy);
    they multiply α_t when both are given. ``ignore_index`` and ``reduction`` as in the
    module docstring.
    """

    kind = "seg"

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, weight: tuple[float, ...] | None = None,
                 ignore_index: int | None = None, reduction: _Reduction = "mean") -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"focal: gamma must be >= 0; got {gamma}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal: alpha must lie in [0, 1] or be none; got {alpha}")
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.ignore_index = check_ignore_index("focal", ignore_index)
        self.reduction = check_reduction(reduction)
        self.register_buffer("class_weight", _check_class_weight("focal", weight), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        weight = _seg_weight(weight, target)
        cw = _class_weight_for(self, logits)
        target, valid = valid_pixels(target, self.ignore_index)
        weight = _times(weight, valid)
        if cw is not None:  # w_t enters numerator and denominator: Σ w_t·l / Σ w_t
            weight = _times(cw[target], weight)
        log_pt = _log_probs(logits).gather(1, target.unsqueeze(1)).squeeze(1)
        # (1 − p_t) via −expm1(log p_t): exact when p_t is close to 1, where the
        # modulating factor matters most.
        values = -log_pt
        if self.gamma != 0:  # skip x**0: its gradient is nan at x = 0 (p_t == 1)
            # For 0 < γ < 1, d(x^γ)/dx = γ·x^(γ−1) is inf at x = 0, a pixel whose p_t
            # rounds to 1, and inf·0 makes the whole gradient NaN. The true gradient of
            # (1 − p_t)^γ·(−log p_t) ~ (1 − p_t)^(γ+1) there is 0; flooring x at the
            # dtype's smallest normal keeps it finite and changes no loss value.
            modulating = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
            values = modulating.pow(self.gamma) * values
        if self.alpha is not None:
            alpha_t = torch.where(target > 0, self.alpha, 1.0 - self.alpha).to(values.dtype)
            values = alpha_t * values
        return weighted_reduce(values, weight, self.reduction)
