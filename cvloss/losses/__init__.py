"""The loss library: every loss of cvloss, built from spec strings by the registry.

>>> from cvloss.losses import build_loss, list_losses
>>> loss = build_loss("ce+0.1*topo(mu=0.5)", task="seg")
"""
from cvloss.losses.base import AdversarialLoss, Loss, weighted_reduce
from cvloss.losses.registry import LossInfo, get_loss_info, list_losses, register_loss, serves
from cvloss.losses.spec import CombinedLoss, SpecError, build_loss, parse_spec

# Importing a family module registers its losses.
from cvloss.losses import (  # noqa: E402,F401  (registration side effects)
    pixel,
    segmentation,
    ssim,
    perceptual,
    style,
    topology,
    metric,
    adversarial,
    cycle,
)
from cvloss.losses import functional  # noqa: E402
from cvloss.losses.plugins import PluginError, load_plugins, plugin_provenance  # noqa: E402

__all__ = [
    "AdversarialLoss",
    "CombinedLoss",
    "Loss",
    "LossInfo",
    "PluginError",
    "SpecError",
    "build_loss",
    "functional",
    "get_loss_info",
    "list_losses",
    "load_plugins",
    "parse_spec",
    "plugin_provenance",
    "register_loss",
    "serves",
    "weighted_reduce",
]
