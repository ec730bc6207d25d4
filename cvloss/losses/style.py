"""Style, texture and total-variation losses (Gatys et al. 2015/2016; Sajjadi et al. 2017).

Functional helpers: :func:`gram_matrix`, :func:`total_variation`.
Registered losses: ``style``, ``texture``, ``tv``.

Layer naming: Gatys et al. name the layers they use ``conv1_1``, ``conv2_1`` ... but their
Caffe VGG19 applies each ReLU in place, so the blob called ``conv1_1`` holds the
*rectified* response. We therefore default to the torchvision layers ``relu1_1`` ...
``relu5_1``; the pre-activation ``conv*`` layers can be asked for by name. Two further
differences from the paper, both forced by using torchvision's weights: the VGG is not
rescaled to unit mean activation and keeps max pooling (Gatys et al. swap in average
pooling for image synthesis).
"""
from __future__ import annotations

from typing import Literal

import torch

from cvloss.losses.base import Loss, check_image, check_weight
from cvloss.losses.features import FeatureLoss, check_layer_weights, layer_stride
from cvloss.losses.registry import register_loss

_GATYS_2016 = "Gatys, Ecker & Bethge 2016, Image Style Transfer Using Convolutional Neural Networks (CVPR)"


# ---------------------------------------------------------------------- functional
def gram_matrix(features: torch.Tensor, normalize: Literal["none", "hw", "chw"] = "none") -> torch.Tensor:
    """Gram matrix G = F·Fᵀ of feature maps, always in (at least) float32.

    Args:
        features: ``(N, C, H, W)``; reshaped to F of shape ``(N, C, M)`` with M = H·W.
        normalize: ``"none"`` -- G_ij = Σ_k F_ik F_jk (Gatys et al., who put the
            1/(4 N² M²) in the loss instead); ``"hw"`` -- G / M (mean over positions);
            ``"chw"`` -- G / (C·M) (Johnson et al. 2016's style Gram).

    Returns:
        ``(N, C, C)``, symmetric, float32 (float64 stays float64).

    Why float32 even under bf16/fp16 autocast: each entry is a sum of M products (M is
    ~10^5 at relu1_1 of a 512² image), so bf16's 8-bit mantissa loses most of it and
    fp16 overflows (max 65504); the style loss then subtracts two such nearly equal
    Grams, and its 1/(4 N² M²) constant (~10^14) is itself beyond fp16. In float32 the
    raw sums cannot overflow (max ~3·10^38), so the normalisation divides the small
    (C, C) product rather than the (C, M) features: scaling the features first would
    cost one more pass over the largest tensor of the loss, forward and backward.
    """
    if features.dim() != 4:
        raise ValueError(f"expected features of shape (N, C, H, W); got {tuple(features.shape)}")
    n, c, h, w = features.shape
    divisor = {"none": 1.0, "hw": float(h * w), "chw": float(c * h * w)}.get(normalize)
    if divisor is None:
        raise ValueError(f"unknown Gram normalisation {normalize!r}; valid: none, hw, chw")
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.reshape(n, c, h * w)
        if f.dtype not in (torch.float32, torch.float64):
            f = f.float()
        g = torch.bmm(f, f.transpose(1, 2))
        return g / divisor if divisor != 1.0 else g


def total_variation(
    x: torch.Tensor,
    kind: Literal["l1", "squared"] = "l1",
    reduction: Literal["mean", "sum"] = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Anisotropic total variation of images ``x`` of shape ``(N, C, H, W)``.

    ``l1``:      TV(x) = Σ_{n,c,i,j} |x_{i+1,j} − x_{i,j}| + |x_{i,j+1} − x_{i,j}|
    ``squared``: TV(x) = Σ (x_{i+1,j} − x_{i,j})² + (x_{i,j+1} − x_{i,j})²  (β = 2 of
    Mahendran & Vedaldi 2015's TV regulariser, anisotropic form)

    ``mean`` divides by the number of differences, N·C·((H−1)·W + H·(W−1)), so the value
    does not grow with the image size; ``sum`` is the plain sum. An optional per-pixel
    ``weight`` ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, C, H, W)`` weights each difference
    by the mean weight of its two pixels (``mean`` is then Σ w·d / Σ w).
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected images of shape (N, C, H, W), floating point; got {tuple(x.shape)}")
    if x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"total variation needs at least two pixels; got shape {tuple(x.shape)}")
    if kind not in ("l1", "squared"):
        raise ValueError(f"unknown total-variation kind {kind!r}; valid: l1, squared")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}; valid: mean, sum")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # differences of nearby pixels vanish in a 8-bit mantissa
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    dy, dx = (dy.abs(), dx.abs()) if kind == "l1" else (dy.square(), dx.square())
    w = check_weight(weight, x)
    if w is None:
        total = dy.sum() + dx.sum()
        return total / (dy.numel() + dx.numel()) if reduction == "mean" else total
    w = w.to(x.dtype)
    wy = 0.5 * (w[:, :, 1:, :] + w[:, :, :-1, :])
    wx = 0.5 * (w[:, :, :, 1:] + w[:, :, :, :-1])
    total = (wy * dy).sum() + (wx * dx).sum()
    if reduction == "sum":
        return total
    norm = wy.expand_as(dy).sum() + wx.expand_as(dx).sum()
    return total / norm.clamp_min(torch.finfo(x.dtype).tiny)


def _style_layer_term(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Gatys' E_l = 1/(4 N_l² M_l²) Σ_ij (G_ij − A_ij)² per image, averaged over the batch.

    Computed as ¼ Σ (Ĝ − Â)² with Ĝ = G / (N_l M_l), which is the same number (divide
    G − A by 2·N_l·M_l, then square) but keeps every intermediate O(1). The Gram is
    divided once, here -- the source article divided it twice. ``ft`` may have another
    spatial size (a style image): each Gram is divided by its own N·M then.
    """
    g = gram_matrix(fp, normalize="chw")
    a = gram_matrix(ft, normalize="chw")
    per_image = 0.25 * (g - a).square().sum(dim=(1, 2))  # (N,); broadcasts a batch-1 target
    return per_image.mean()


def _check_style_inputs(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, name: str, same_size: bool) -> None:
    check_image(pred)
    check_image(target)
    if target.shape[0] not in (1, pred.shape[0]):
        raise ValueError(
            f"{name}: expected a target batch of 1 or N={pred.shape[0]} images (N, C, H', W'); got {tuple(target.shape)}"
        )
    if same_size and target.shape[2:] != pred.shape[2:]:
        raise ValueError(
            f"{name}: patch-wise Grams need a target of the prediction's size (N, C, {pred.shape[2]}, {pred.shape[3]}); "
            f"got {tuple(target.shape)}"
        )
    if weight is not None:
        raise ValueError(f"{name} compares global Gram statistics; it takes no per-pixel weight map (got weight=...)")


# ---------------------------------------------------------------------- losses
@register_loss("style", family="content-style", paper=_GATYS_2016)
class StyleLoss(FeatureLoss):
    """Gatys et al. 2016 style loss: weighted Gram-matrix distance over VGG19 layers.

    L_style = Σ_l w_l · E_l,  E_l = 1 / (4 N_l² M_l²) · Σ_ij (G^l_ij − A^l_ij)²,
    G^l = F^l F^lᵀ the Gram of the prediction's features F^l (N_l channels × M_l = H_l·W_l
    positions), A^l the same for the style target. Defaults as in the paper: VGG19 layers
    conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 with w_l = 1/5 -- taken after their ReLU
    (``relu1_1`` ... ``relu5_1``) because the paper's Caffe blobs are rectified in place.

    Inputs: ``pred`` (N, 1|3, H, W) and ``target`` (N or 1, 1|3, H', W') in [0, 1]; the
    style image may have another size (each Gram is then divided by its own N_l·M_l,
    which equals the formula when the sizes agree). E_l is computed per image and
    averaged over the batch. Target features are computed without a graph. The Grams are
    float32 even under autocast (see :func:`gram_matrix`). No per-pixel weight map.

    Args: ``layers``, ``layer_weights`` (default 1/len(layers) each), ``arch``,
    ``weights`` (auto | imagenet | random[:SEED] | PATH).
    """

    kind = "image"

    def __init__(
        self,
        layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        layer_weights: tuple[float, ...] | None = None,
        arch: Literal["vgg16", "vgg19"] = "vgg19",
        weights: str = "auto",
    ) -> None:
        super().__init__()
        self._init_features(arch, weights, layers)
        self.layer_weights = check_layer_weights(self.layers, layer_weights, 1.0 / len(self.layers))

    shares_features = True

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> None:
        _check_style_inputs(pred, target, weight, "style", same_size=False)

    def loss_from_features(self, fp: dict[str, torch.Tensor], ft: dict[str, torch.Tensor], weight: None) -> torch.Tensor:
        terms = [w * _style_layer_term(fp[l], ft[l]) for l, w in zip(self.layers, self.layer_weights)]
        return torch.stack(terms).sum()


@register_loss(
    "texture",
    family="texture",
    paper="Gatys, Ecker & Bethge 2015, Texture Synthesis Using CNNs (NeurIPS); Sajjadi, Schölkopf & Hirsch 2017, EnhanceNet (ICCV)",
)
class TextureLoss(FeatureLoss):
    """Texture loss: Gram-matrix distance over several VGG19 layers, optionally patch-wise.

    L_texture = Σ_l w_l · 1 / (4 N_l² M_l²) · Σ_ij (G^l_ij − A^l_ij)² (Gatys et al. 2015),
    with the notation of ``style``. Default layers ``relu1_1``, ``relu2_1``, ``relu3_1``
    (EnhanceNet's conv1.1, conv2.1, conv3.1 of VGG19, rectified), w_l = 1/len(layers).

    ``patch_size=0`` (default): one Gram per image. ``patch_size=p > 0``: EnhanceNet
    (Sajjadi et al. 2017) matched Grams on 16×16 patches so textures agree *locally*
    (p=16 there). Here the features are computed once on the whole image and each
    layer's map is cut into non-overlapping windows of p / stride_l cells (the cells
    whose centres lie in one p×p image patch; border cells that do not fill a window are
    dropped); the term above is computed per window and averaged over windows and batch.
    This keeps the receptive field's context, unlike cropping patches before VGG. p must
    be a multiple of the deepest layer's stride, and the target must match the
    prediction's size (patches are compared position by position).

    Inputs: ``pred`` (N, 1|3, H, W), ``target`` (N or 1, 1|3, H', W') in [0, 1]; no
    per-pixel weight map. Target features without a graph; Grams in float32.
    """

    kind = "image"

    def __init__(
        self,
        layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1"),
        layer_weights: tuple[float, ...] | None = None,
        patch_size: int = 0,
        arch: Literal["vgg16", "vgg19"] = "vgg19",
        weights: str = "auto",
    ) -> None:
        super().__init__()
        self._init_features(arch, weights, layers)
        self.layer_weights = check_layer_weights(self.layers, layer_weights, 1.0 / len(self.layers))
        if patch_size < 0:
            raise ValueError(f"patch_size must be 0 (whole image) or a positive number of pixels; got {patch_size}")
        for l in self.layers:
            s = layer_stride(arch, l)
            if patch_size and patch_size % s:
                raise ValueError(f"patch_size={patch_size} must be a multiple of the stride {s} of layer {l!r}")
        self.patch_size = int(patch_size)

    def _windows(self, f: torch.Tensor, layer: str) -> torch.Tensor:
        """(N, C, h, w) -> (N·P, C, k, k) non-overlapping windows, k = patch_size / stride."""
        k = self.patch_size // layer_stride(self.arch, layer)
        n, c, h, w = f.shape
        if h < k or w < k:
            raise ValueError(f"texture: image too small for patch_size={self.patch_size} (layer {layer} is {h}×{w})")
        f = f[:, :, : h - h % k, : w - w % k]
        f = f.reshape(n, c, h // k, k, w // k, k).permute(0, 2, 4, 1, 3, 5)
        return f.reshape(-1, c, k, k)

    shares_features = True

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> None:
        _check_style_inputs(pred, target, weight, "texture", same_size=self.patch_size > 0)

    def loss_from_features(self, fp: dict[str, torch.Tensor], ft: dict[str, torch.Tensor], weight: None) -> torch.Tensor:
        terms = []
        for l, w in zip(self.layers, self.layer_weights):
            a, b = fp[l], ft[l]
            if self.patch_size:
                b = b.expand_as(a)
                a, b = self._windows(a, l), self._windows(b, l)
            terms.append(w * _style_layer_term(a, b))
        return torch.stack(terms).sum()


@register_loss(
    "tv",
    family="content-style",
    paper="Rudin, Osher & Fatemi 1992 (total variation); Mahendran & Vedaldi 2015; used as a regulariser by Johnson et al. 2016",
)
class TVLoss(Loss):
    """Total-variation regulariser: mean absolute (or squared) difference of neighbours.

    TV(ŷ) = Σ |ŷ_{i+1,j} − ŷ_{i,j}| + |ŷ_{i,j+1} − ŷ_{i,j}| (anisotropic; ``norm=squared``
    squares the differences instead), divided by the number of differences
    N·C·((H−1)·W + H·(W−1)) with ``reduction=mean`` (size-independent) or summed with
    ``reduction=sum``. See :func:`total_variation`.

    ``forward(pred, target=None, weight=None)``: ``pred`` (N, 1|3, H, W) in [0, 1]; the
    target is ignored (TV is a prior on the prediction alone); an optional per-pixel
    weight map weights each difference by its two pixels' mean weight.
    """

    kind = "image"

    def __init__(self, norm: Literal["l1", "squared"] = "l1", reduction: Literal["mean", "sum"] = "mean") -> None:
        super().__init__()
        if norm not in ("l1", "squared"):
            raise ValueError(f"unknown total-variation norm {norm!r}; valid: l1, squared")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"unknown reduction {reduction!r}; valid: mean, sum")
        self.norm = norm
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_image(pred)
        return total_variation(pred, kind=self.norm, reduction=self.reduction, weight=weight)


__all__ = ["StyleLoss", "TVLoss", "TextureLoss", "gram_matrix", "total_variation"]
