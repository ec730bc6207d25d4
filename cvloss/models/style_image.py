"""The "model" of Gatys-style transfer: the optimised image itself."""
from __future__ import annotations

import torch
from torch import nn

from cvloss.errors import UsageError


class StyleImage(nn.Module):
    """The optimised image(s): one parameter, ``forward()`` returns (N, 3, H, W) in [0, 1].

    ``param="clamp"``: the parameter is the image itself (projected to [0, 1] by
    :meth:`project_`); ``param="sigmoid"``: x = sigmoid(θ).
    """

    def __init__(self, init: torch.Tensor, param: str = "clamp") -> None:
        super().__init__()
        if param not in ("clamp", "sigmoid"):
            raise UsageError(f"unknown image parameterisation param={param!r}; valid: clamp, sigmoid")
        self.param = param
        init = init.detach().clone().clamp(0, 1)
        if param == "sigmoid":
            init = torch.logit(init.clamp(1e-3, 1 - 1e-3))
        self.image = nn.Parameter(init)

    def forward(self) -> torch.Tensor:
        if self.param == "sigmoid":
            return torch.sigmoid(self.image)
        return self.image.clamp(0, 1)

    @torch.no_grad()
    def project_(self) -> None:
        if self.param == "clamp":
            self.image.clamp_(0, 1)
