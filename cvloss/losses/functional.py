"""Functional forms of the losses and the helpers behind them, for users' own code.

Each function lives in its family module (where its docstring gives the formula and
constants); this module gathers them under one import::

    from cvloss.losses import functional as LF
    w = LF.unet_weight_map(mask, w0=10, sigma=5)
"""
from cvloss.losses.adversarial import gradient_penalty, r1_penalty
from cvloss.losses.metric import (
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    contrastive_loss,
    pairwise_distances,
    semi_hard_triplet_loss,
    triplet_margin_loss,
)
from cvloss.losses.segmentation import class_balanced_weights, unet_border_map, unet_weight_map
from cvloss.losses.ssim import ssim, ssim_map
from cvloss.losses.style import gram_matrix, total_variation
from cvloss.losses.topology import soft_dilate, soft_erode, soft_skeleton

__all__ = [
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "class_balanced_weights",
    "contrastive_loss",
    "gradient_penalty",
    "gram_matrix",
    "pairwise_distances",
    "r1_penalty",
    "semi_hard_triplet_loss",
    "soft_dilate",
    "soft_erode",
    "soft_skeleton",
    "ssim",
    "ssim_map",
    "total_variation",
    "triplet_margin_loss",
    "unet_border_map",
    "unet_weight_map",
]
