"""CycleGAN's networks (Zhu et al. 2017, Appendix 7.2), written from the paper.

* :class:`ResnetGenerator` -- ``c7s1-k, d2k, d4k, R4k x n, u2k, uk, c7s1-3`` with
  reflection padding, InstanceNorm (no affine, no running statistics) and ReLU, ``tanh``
  out; ``(N, 3, H, W)`` in [-1, 1] -> the same shape; H, W divisible by 4.
* :class:`PatchDiscriminator` -- the 70x70 PatchGAN ``C64-C128-C256-C512`` and a 4x4 conv
  to raw scores ``(N, 1, h, w)``, one per overlapping patch (fewer layers: smaller
  patches, :func:`patch_receptive_field`). InstanceNorm, never BatchNorm: the WGAN-GP
  penalty needs per-sample input gradients.
* :class:`CycleGAN` -- ``g_ab`` (G: A -> B), ``g_ba`` (F: B -> A), ``d_b`` (real B vs
  G(a)) and ``d_a`` (real A vs F(b)); :class:`ImagePool` -- the fakes D sees.

Initialisation as the official code: conv weights ~ N(0, 0.02), biases 0. The paper's
layer-by-layer description: ``docs/tasks/translate.md``, "Model".
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["CycleGAN", "ImagePool", "PatchDiscriminator", "ResidualBlock", "ResnetGenerator", "init_weights", "patch_receptive_field"]


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``R`` block: x + IN(conv3(pad(ReLU(IN(conv3(pad(x))))))), reflection padding 1."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), _norm(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator ``c7s1-k, d2k, d4k, R4k x n_blocks, u2k, uk, c7s1-3``.

    Args:
        width: k, the channels of the first layer (64 in the paper).
        n_blocks: residual blocks (6 at 128 px, 9 at 256 px in the paper).
        n_down: down-/up-sampling stages (2 in the paper); H, W must be divisible by 2**n_down.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64, n_blocks: int = 9,
                 n_down: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7), _norm(width), nn.ReLU(True)]
        ch = width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1), _norm(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.n_down = n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in [-1, 1] -> ``(N, C_out, H, W)`` in (-1, 1)."""
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: ``C{w}-C{2w}-...`` (4x4 convs, LeakyReLU 0.2), raw scores.

    Layers: conv(s2, no norm); ``n_layers - 1`` convs(s2, IN); one conv(s1, IN) (channels
    capped at 8w); conv(s1) to 1 channel. ``width=64, n_layers=3`` is the paper's 70x70
    PatchGAN. Output ``(N, 1, h, w)``; e.g. 256 px -> 30x30, 32 px with 2 layers -> 6x6.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(1, n_layers + 1):
            out = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), _norm(out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers += [nn.Conv2d(ch, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patch_receptive_field(n_layers: int) -> int:
    """Side in pixels of the input patch one PatchGAN score sees: 70 for ``n_layers=3``,
    34 for 2, 16 for 1 (walking back through the 4x4 convs: r <- (r - 1)·stride + 4)."""
    r = 1
    strides = [2] * n_layers + [1, 1]  # first conv + (n_layers - 1) strided, then two stride-1 convs
    for s in reversed(strides):
        r = (r - 1) * s + 4
    return r


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The official CycleGAN init ("normal", gain 0.02): conv weights ~ N(0, std²), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CycleGAN(nn.Module):
    """Both generators and both discriminators; ``forward(a)`` = G(a), the A -> B map.

    Built in the order g_ab, g_ba, d_a, d_b from the global generator, so for a given seed
    the generators' initial weights do not depend on the discriminator settings.
    """

    def __init__(self, g_width: int = 64, n_blocks: int = 9, n_down: int = 2, d_width: int = 64,
                 d_layers: int = 3) -> None:
        super().__init__()
        self.g_ab = ResnetGenerator(3, 3, g_width, n_blocks, n_down)
        self.g_ba = ResnetGenerator(3, 3, g_width, n_blocks, n_down)
        self.d_a = PatchDiscriminator(3, d_width, d_layers)
        self.d_b = PatchDiscriminator(3, d_width, d_layers)
        for m in (self.g_ab, self.g_ba, self.d_a, self.d_b):
            init_weights(m)

    def generator_parameters(self):
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def discriminator_parameters(self):
        return [*self.d_a.parameters(), *self.d_b.parameters()]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.g_ab(a)


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN
    Sec. 4, size 50).

    :meth:`query` takes a batch ``(N, C, H, W)`` and returns one of the same shape: while
    the pool has room each image is stored and returned; once full, each image is, with
    probability ½, returned as is, otherwise stored in place of a uniformly drawn stored
    image, which is returned instead. All draws come from ``generator`` (a fixed number
    per image, so the stream never depends on the pool's fill level). Size 0 = no pool.
    """

    def __init__(self, size: int = 50) -> None:
        self.size = int(size)
        self.images: torch.Tensor | None = None  # (size, C, H, W) once the first batch arrives
        self.count = 0

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size <= 0:
            return images
        n = images.shape[0]
        coins = torch.rand(n, generator=generator).tolist()
        slots = torch.randint(self.size, (n,), generator=generator).tolist()
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        out = images.clone()
        for i in range(n):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
            elif coins[i] > 0.5:
                out[i] = self.images[slots[i]]
                self.images[slots[i]] = images[i]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "count": self.count, "images": None if self.images is None else self.images.cpu()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.size, self.count = int(state["size"]), int(state["count"])
        self.images = None if state["images"] is None else state["images"].to(device)
