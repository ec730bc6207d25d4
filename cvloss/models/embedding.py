"""A small ResNet-like CNN that maps a face image to an L2-normalised embedding.

Input ``(N, 3, H, W)`` in [0, 1], H = W ≥ 16: a conv3×3·BN·ReLU stem, ``depth`` stages of
He et al.'s BasicBlock (width ``w, 2w, 4w, 8w``, stride 2 from the second), global
average pooling, Linear(→ ``dim``) and an optional BatchNorm1d neck (``bn_neck``) give
f(x) ∈ R^D; ``forward`` returns f(x)/‖f(x)‖₂ ``(N, D)`` on the unit sphere (FaceNet),
``features`` the un-normalised f(x). With ``num_classes``, ``classifier`` is a
Linear(D → num_classes) over f(x) for the softmax baseline, built for every loss so every
loss starts from the same backbone weights at a given seed. Layer table:
``docs/tasks/embed.md``, "Model".
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
