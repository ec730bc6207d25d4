"""A small ResNet-like CNN that maps a face image to an L2-normalised embedding.

Architecture (``width`` w, ``dim`` D, input ``(N, 3, H, W)`` in [0, 1], H = W ≥ 16)::

    stem     conv3×3(3→w) · BN · ReLU                     H × W
    stage 1  BasicBlock(w → w)                            H × W
    stage 2  BasicBlock(w → 2w, stride 2)                 H/2 × W/2
    stage 3  BasicBlock(2w → 4w, stride 2)                H/4 × W/4
    stage 4  BasicBlock(4w → 8w, stride 2)  (depth = 4)   H/8 × W/8
    head     global average pool · Linear(→ D) · BN1d      f(x) ∈ R^D   (BN1d: bn_neck)
    output   f(x) / ‖f(x)‖₂                               on the unit sphere (FaceNet)

A BasicBlock is He et al.'s (2016): two conv3×3 + BN with an identity (or 1×1-conv +
BN projection) shortcut. ``features`` returns the un-normalised f(x) (the layer before
the classifier of the softmax baseline); ``forward`` the normalised embedding; and, when
``num_classes`` is given, ``classifier`` is a Linear(D → num_classes) over f(x), used only
by the softmax baseline (it is built for every loss so every loss starts from the same
backbone weights at a given seed).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class EmbeddingNet(nn.Module):
    """Image ``(N, 3, H, W)`` → unit-norm embedding ``(N, dim)``.

    Args:
        width: channels of the first stage (doubling per stage).
        dim: embedding size (64–128 in the reference budgets).
        depth: number of stages, 2–4 (each after the first halves the resolution).
        num_classes: training identities of the softmax baseline's classifier; ``None``
            builds no classifier.
        bn_neck: BatchNorm1d on f(x) before the normalisation (see ``neck``).
    """

    def __init__(self, width: int = 16, dim: int = 64, depth: int = 3, num_classes: int | None = None,
                 bn_neck: bool = True) -> None:
        super().__init__()
        if not 2 <= depth <= 4:
            raise ValueError(f"depth must be 2, 3 or 4; got {depth}")
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks, c = [BasicBlock(width, width)], width
        for _ in range(depth - 1):
            blocks.append(BasicBlock(c, 2 * c, stride=2))
            c *= 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, dim)
        # BatchNorm1d on the embedding ("BNNeck", Luo et al. 2019): centres f(x), so the
        # unit-norm embeddings of an untrained net are spread over the sphere instead of
        # huddled around the mean of all-positive pooled ReLU features; hard-negative
        # mining from such a huddle tends to collapse everything to one point.
        self.neck = nn.BatchNorm1d(dim) if bn_neck else nn.Identity()
        self.dim = dim
        self.classifier = nn.Linear(dim, num_classes) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding f(x), ``(N, dim)``."""
        h = self.blocks(self.stem(x))
        return self.neck(self.head(h.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embedding f(x)/‖f(x)‖₂, ``(N, dim)``, each row of norm 1."""
        return F.normalize(self.features(x), dim=1)
