"""A small U-Net (Ronneberger, Fischer & Brox, MICCAI 2015), the reference model of ``seg``.

:class:`UNet`: ``depth`` stages of a double 3×3 conv block and 2×2 max-pooling (channels
``width · 2**i``), a bottleneck, 2×2 transposed convolutions back up with skip
concatenation, and a 1×1 head to ``num_classes`` logits. Convolutions are padded
(``padding=1``) so the output has the input's size; an optional norm layer follows each
conv; no dropout. Input ``(N, C, H, W)`` with H, W multiples of ``2**depth``; output raw
logits ``(N, num_classes, H, W)``.

The paper's architecture and what differs from it on purpose: ``docs/tasks/seg.md``.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

__all__ = ["UNet"]

_NORMS = ("batch", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # 8 groups (Wu & He 2018 found 8-32 all fine); gcd keeps it a divisor of any width.
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    """(conv3×3 → norm → ReLU) × 2, ``padding=1`` so H, W are kept."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        # A conv followed by a norm layer needs no bias: the norm's shift replaces it.
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Small U-Net for semantic segmentation: images in, per-pixel class logits out.

    Args:
        in_channels: channels of the input image (3 for RGB, 1 for grey).
        num_classes: number of output logit channels K (use K=1 for a binary foreground
            logit, K>=2 for softmax over classes).
        width: channels of the first stage; stage ``i`` has ``width · 2**i`` channels and
            the bottleneck ``width · 2**depth``.
        depth: number of 2×2 max-pool downsamplings (and of up-convolutions). The input's
            H and W must be multiples of ``2**depth``.
        norm: ``"batch"`` (BatchNorm2d), ``"group"`` (GroupNorm with gcd(8, C) groups)
            or ``"none"`` (convs with bias, as in the 2015 paper) after every 3×3 conv.

    Shapes: ``forward(x)`` takes ``x`` of shape ``(N, in_channels, H, W)``, float, with
    ``H % 2**depth == W % 2**depth == 0``, and returns logits of shape
    ``(N, num_classes, H, W)`` (raw scores, any real value; no softmax/sigmoid).

    Upsampling is the paper's 2×2 transposed convolution, stride 2 ("up-convolution"),
    halving the channels before the skip concatenation.

    Size: with the defaults (``in_channels=3, num_classes=3, width=16, depth=3,
    norm="batch"``) the model has **482,771** trainable parameters: 481,363 in
    convolutions (221,184 of them in the 64→128 bottleneck) and 1,408 BatchNorm affine
    parameters -- under 0.5 M. ``norm="group"`` has the same count, ``norm="none"``
    482,067 (conv biases instead of norm affines). Parameters grow ~4× per extra depth
    and ~4× per doubling of width.

    Initialisation: every convolution (3×3, 2×2 transposed and the 1×1 head) draws its
    weights from N(0, 2/N) with N the number of incoming connections of a unit (fan-in,
    e.g. 9·64 = 576 for a 3×3 conv on 64 channels) -- the paper's choice (He et al.
    2015) for ReLU networks; biases start at 0, norm layers at weight 1, bias 0. The draws
    come from torch's global generator in module-construction order, so
    ``torch.manual_seed(k)`` before ``UNet(...)`` gives identical weights every time (the
    runner relies on this to start every loss from the same initial weights).

    ``channels_last`` friendly: only convs, norms, pooling and a channel concat, all of
    which keep ``torch.channels_last`` tensors in that layout.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 3,
        width: int = 16,
        depth: int = 3,
        norm: Literal["batch", "group", "none"] = "batch",
    ) -> None:
        super().__init__()
        for arg, val in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width)):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{arg} must be a positive integer; got {val!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
        if norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(_NORMS)}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.depth = depth
        self.norm = norm

        chans = [width * 2**i for i in range(depth + 1)]  # stage channels, last = bottleneck
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in chans[:-1]:
            self.down.append(_DoubleConv(c_prev, c, norm))
            c_prev = c
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bottleneck = _DoubleConv(chans[-2], chans[-1], norm)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for i in reversed(range(depth)):
            # Up-convolution halves the channels; the concatenation with the skip doubles
            # them back, and the double conv brings them to the stage width again.
            self.up.append(nn.ConvTranspose2d(chans[i + 1], chans[i], kernel_size=2, stride=2))
            self.up_conv.append(_DoubleConv(2 * chans[i], chans[i], norm))
        self.head = nn.Conv2d(chans[0], num_classes, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # He normal, std = sqrt(2 / N), N = incoming connections of one unit.
                if isinstance(m, nn.ConvTranspose2d):
                    # kernel == stride == 2: the taps don't overlap, so each output pixel
                    # gets exactly one tap from each of the C_in input channels: N = C_in.
                    # (torch's own "fan_in" for a transposed conv would give C_out·k·k.)
                    fan_in = m.in_channels
                else:
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` float → logits ``(N, num_classes, H, W)``."""
        mult = 2**self.depth
        if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"expected input of shape (N, {self.in_channels}, H, W) with H and W multiples of "
                f"{mult} (2**depth, depth={self.depth}); got {got}"
            )
        h, w = x.shape[-2:]
        if h % mult or w % mult:
            raise ValueError(
                f"input H and W must be multiples of {mult} (2**depth, depth={self.depth}); got H={h}, W={w}. "
                f"Crop or pad to e.g. {math.ceil(h / mult) * mult}×{math.ceil(w / mult) * mult}"
            )
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.up_conv, reversed(skips)):
            # Skip first, as in the paper's figure (copy-and-crop then up-conv features).
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)
