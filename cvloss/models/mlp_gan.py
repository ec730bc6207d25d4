"""MLP generator and discriminator for 2-D toy data (the usual mode-coverage benchmark).

The generator maps noise z ~ N(0, I_d) ``(N, noise_dim)`` through ``layers`` hidden
ReLU layers of width ``hidden`` to a point ``(N, 2)`` (linear output: the data is
unbounded). The discriminator / critic maps ``(N, 2)`` through the same kind of stack to
one raw score per sample ``(N, 1)`` -- a logit for the log-likelihood objectives, a
critic value for WGAN; never a probability (the losses apply their own link).

No normalisation layer in either network: a WGAN-GP or R1 penalty needs each sample's
output to depend on that sample alone (BatchNorm would mix the batch into the gradient
the penalty constrains), and the original toy experiments use plain MLPs too
(Gulrajani et al. 2017: ReLU MLP, 3 hidden layers of 512).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["mlp", "MLPGAN"]


def mlp(in_dim: int, out_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` × (Linear → ReLU) of width ``hidden``, then a linear output layer."""
    if layers < 1 or hidden < 1:
        raise ValueError(f"need layers >= 1 and hidden >= 1; got layers={layers}, hidden={hidden}")
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class MLPGAN(nn.Module):
    """A generator ``G`` and a discriminator ``D`` in one module (one state_dict to
    checkpoint, one parameter count for the trial record).

    Args:
        noise_dim: dimension d of z.
        hidden: width of every hidden layer (both networks).
        layers: hidden layers per network.
        data_dim: dimension of the data (2).
    """

    def __init__(self, noise_dim: int = 2, hidden: int = 128, layers: int = 3, data_dim: int = 2) -> None:
        super().__init__()
        self.noise_dim = int(noise_dim)
        self.data_dim = int(data_dim)
        self.G = mlp(self.noise_dim, self.data_dim, hidden, layers)
        self.D = mlp(self.data_dim, 1, hidden, layers)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I) of shape ``(n, noise_dim)`` on the model's device, drawn from
        ``generator`` (which must live on that device)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.noise_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): ``(N, noise_dim)`` -> ``(N, data_dim)``."""
        return self.G(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generated points ``(n, data_dim)`` (no graph)."""
        return self.G(self.noise(n, generator))
