"""Feature-reconstruction losses: ``perceptual`` (Johnson et al. 2016) and ``content``
(Gatys et al. 2016), both on a frozen VGG (see :mod:`cvloss.losses.features`).

Inputs of both: ``pred`` and ``target`` of shape (N, C, H, W), C in {1, 3}, values in
[0, 1] (the extractor applies the ImageNet normalisation and repeats one channel to
three). Target features are computed under ``torch.no_grad()``: the target is a constant,
and no graph is kept for it.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from cvloss.losses.base import check_image, check_weight, weighted_reduce
from cvloss.losses.features import FeatureLoss, at_least_float32, check_layer_weights, check_layers
from cvloss.losses.registry import register_loss


def feature_sq_error(
    fp: torch.Tensor, ft: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Squared feature error (φ(ŷ) − φ(y))², reduced over all N·C·H·W elements, in float32.

    ``weight`` is an image-resolution map (N, 1|C, H, W); it is area-averaged over the
    channels and down to the feature resolution (adaptive average pooling), so a pixel
    weight map from the task keeps its meaning at every layer (``mean`` = Σ w·d / Σ w).
    """
    fp, ft = at_least_float32(fp), at_least_float32(ft)
    if weight is None:  # torch's fused kernel: one pass forward, one backward
        return F.mse_loss(fp, ft.to(fp.dtype), reduction=reduction)
    d = (fp - ft).square()
    weight = F.adaptive_avg_pool2d(weight.to(d.dtype).mean(dim=1, keepdim=True), d.shape[-2:])
    return weighted_reduce(d, weight, reduction)


@register_loss(
    "perceptual",
    family="perceptual",
    paper="Johnson, Alahi & Fei-Fei 2016, Perceptual Losses for Real-Time Style Transfer and Super-Resolution (ECCV)",
)
class PerceptualLoss(FeatureLoss):
    """Johnson et al. 2016 feature reconstruction loss on a frozen VGG16 (default relu2_2).

    ℓ = Σ_j w_j · ‖φ_j(ŷ) − φ_j(y)‖²₂ / (C_j·H_j·W_j), φ_j the activations of layer j
    (C_j × H_j × W_j). Johnson et al. use one layer, ``relu2_2`` of VGG16, for
    super-resolution (and relu3_3 for style transfer); with several layers the terms are
    summed with weights ``layer_weights`` (default 1 each, i.e. the plain Σ_j). The
    per-image value is averaged over the batch, so each layer term is the mean of the
    squared feature difference over N·C_j·H_j·W_j elements.

    Inputs: ``pred``, ``target`` (N, 1|3, H, W) in [0, 1]; optional ``weight`` (N, H, W)
    / (N, 1|C, H, W) pixel map, area-pooled to each layer's resolution (weighted mean).
    Value >= 0, 0 iff the features agree. Target features under ``no_grad``.

    Args: ``layers``, ``layer_weights``, ``arch`` (vgg16 | vgg19), ``weights``
    (auto | imagenet | random[:SEED] | PATH).
    """

    kind = "image"

    def __init__(
        self,
        layers: tuple[str, ...] = ("relu2_2",),
        layer_weights: tuple[float, ...] | None = None,
        arch: Literal["vgg16", "vgg19"] = "vgg16",
        weights: str = "auto",
    ) -> None:
        super().__init__()
        self._init_features(arch, weights, layers)
        self.layer_weights = check_layer_weights(self.layers, layer_weights, 1.0)

    shares_features = True  # forward: FeatureLoss.forward (check, one pass each, formula)

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
        check_image(pred, target)
        return check_weight(weight, pred)

    def loss_from_features(self, fp: dict[str, torch.Tensor], ft: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        terms = [lw * feature_sq_error(fp[l], ft[l], weight) for l, lw in zip(self.layers, self.layer_weights)]
        return torch.stack(terms).sum()


@register_loss(
    "content",
    family="content-style",
    paper="Gatys, Ecker & Bethge 2016, Image Style Transfer Using Convolutional Neural Networks (CVPR)",
)
class ContentLoss(FeatureLoss):
    """Gatys et al. 2016 content loss: squared error of VGG19 features at conv4_2.

    Paper: L_content(p, x, l) = ½ Σ_ij (F^l_ij − P^l_ij)², F^l / P^l the layer-l responses
    of the generated / content image -- a *sum* over all N_l × M_l entries, with ½.
    ``reduction="sum"`` gives exactly that (summed over the batch too); the default
    ``reduction="mean"`` is ½ · mean over the N·C·H·W entries, i.e. the paper's value
    divided by the element count, so its scale does not change with image size or batch
    and a weight next to a pixel loss means the same at every resolution.

    Layer: the paper's "conv4_2" is read from a Caffe VGG19 whose ReLUs run in place, so
    it is the rectified response: the default is ``relu4_2`` (``layer=conv4_2`` gives the
    pre-activation).

    Inputs: ``pred``, ``target`` (N, 1|3, H, W) in [0, 1]; optional ``weight`` pixel map
    area-pooled to the feature resolution. Target features under ``no_grad``.
    """

    kind = "image"

    def __init__(
        self,
        layer: str = "relu4_2",
        reduction: Literal["mean", "sum"] = "mean",
        arch: Literal["vgg16", "vgg19"] = "vgg19",
        weights: str = "auto",
    ) -> None:
        super().__init__()
        check_layers(arch, (layer,))
        if reduction not in ("mean", "sum"):
            raise ValueError(f"unknown reduction {reduction!r}; valid: mean, sum")
        self._init_features(arch, weights, (layer,))
        self.layer = layer
        self.reduction = reduction

    shares_features = True

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
        check_image(pred, target)
        return check_weight(weight, pred)

    def loss_from_features(self, fp: dict[str, torch.Tensor], ft: dict[str, torch.Tensor], weight: torch.Tensor | None) -> torch.Tensor:
        return 0.5 * feature_sq_error(fp[self.layer], ft[self.layer], weight, self.reduction)


__all__ = ["ContentLoss", "PerceptualLoss", "feature_sq_error"]
