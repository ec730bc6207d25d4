"""LPIPS (Zhang et al. 2018), version 0.1 with the AlexNet trunk: the perceptual metric that
no cvloss loss trains through (every feature loss here runs VGG16 or VGG19).

    d(x, y) = Σ_l 1/(H_l W_l) Σ_hw ‖w_l ⊙ (ŷ^l_hw − x̂^l_hw)‖²

over AlexNet's five ReLU outputs, x̂ the channel-unit-normalised activations, w_l the
``lpips`` package's calibrated linear heads (optional extra ``cvloss[lpips]``). Lower is
more similar; inputs in [0, 1]. The trunk's ImageNet file (``alexnet-owt-7be5be79.pth``)
is never downloaded: :func:`lpips_status` finds it in the torch hub cache or says in one
line where to place it (LPIPS is then n/a). More: ``docs/tasks/sr.md``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from cvloss.metrics.independence import FeatureNet
from cvloss.errors import UsageError

__all__ = ["ALEXNET_FILE", "ALEXNET_URL", "LPIPS_LAYERS", "LPIPSMetric", "MIN_SIDE", "lpips_net", "lpips_status"]

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
LPIPS_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")
#: Smallest image side AlexNet's five stages accept (smaller images: LPIPS is n/a).
MIN_SIDE = 32
# torchvision ``alexnet().features`` index of each LPIPS slice's convolution (slice k = relu_k).
_CONV_INDEX = {1: 0, 2: 3, 3: 6, 4: 8, 5: 10}


def lpips_net() -> FeatureNet:
    """The network LPIPS measures with, as tables name it."""
    return FeatureNet("alexnet", LPIPS_LAYERS, "imagenet (torchvision IMAGENET1K_V1) + lpips v0.1 linear heads")


def lpips_status() -> tuple[Path | None, str]:
    """``(AlexNet weights file, "")`` or ``(None, one-line reason)``. Never downloads."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return None, "LPIPS needs the optional extra: pip install 'cvloss[lpips]' (lpips)"
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    path = cache / ALEXNET_FILE
    if path.is_file():
        return path, ""
    return None, f"LPIPS needs ImageNet AlexNet weights: place {ALEXNET_FILE} (from {ALEXNET_URL}) in {cache}/ (no download offline)"


class LPIPSMetric(nn.Module):
    """LPIPS v0.1, AlexNet trunk from ``alexnet_path`` (a torchvision state_dict; only its
    ``features.*`` entries are read). ``forward(pred, target)``: images ``(N, 3, H, W)`` in
    [0, 1], sides >= :data:`MIN_SIDE` -> per-image distances ``(N,)``, float64."""

    def __init__(self, alexnet_path: Path | str) -> None:
        super().__init__()
        import lpips

        with warnings.catch_warnings():  # the package's torchvision call is deprecated API; and no prints
            warnings.simplefilter("ignore")
            net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
        try:
            state = torch.load(alexnet_path, map_location="cpu", weights_only=True)
            trunk = {f"slice{k}.{i}.{t}": state[f"features.{i}.{t}"] for k, i in _CONV_INDEX.items() for t in ("weight", "bias")}
            net.net.load_state_dict(trunk, strict=True)
        except Exception as exc:  # not a state_dict, missing keys, wrong shapes
            raise UsageError(f"cannot load AlexNet weights from {alexnet_path} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:160]}); expected torchvision's {ALEXNET_FILE}") from None
        self.net = net.eval().requires_grad_(False)
        self.weights_path = Path(alexnet_path)

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        if min(pred.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least {MIN_SIDE} px; got {tuple(pred.shape[-2:])}")
        device = next(self.net.parameters()).device
        out = []
        for i in range(0, len(pred), batch_size):
            p, t = (z[i : i + batch_size].to(device).float().clamp(0, 1) for z in (pred, target))
            out.append(self.net(p, t, normalize=True).flatten().double().cpu())
        return torch.cat(out)
