"""``depth-synth``: generated scenes, an RGB image and its depth map each.

A scene is a tilted background plane with one to three spheres in front of it, seen by an
orthographic camera. Depth is in scene units in ``[NEAR, FAR]`` (nearer is smaller); the
image is each surface's colour under Lambertian shading from one light, darkened with
distance, so the picture carries both cues a depth network can learn (shading and size).
Every split is its own seed stream (train 0, val 1, test 2) and the same for every trial
seed, so the test images pair across losses and seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cvloss.data.registry import register_dataset

NEAR, FAR = 0.2, 1.0
COUNTS = {"train": 32, "val": 12, "test": 12}
_STREAM = {"train": 0, "val": 1, "test": 2}
_SEED = 0xDE97


@dataclass
class DepthData:
    """``images`` (N, 3, H, W) uint8 RGB; ``depth`` (N, 1, H, W) float32 in [NEAR, FAR]."""

    images: torch.Tensor
    depth: torch.Tensor
    name: str = "depth-synth"
    real: str | None = None


def render(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ((H, W, 3) uint8 image, (H, W) float32 depth), both ``size`` px square.
    Normals are in the frame (column, row, towards the camera)."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)  # rows, columns in [0, 1]
    a, b = rng.uniform(-0.25, 0.25, 2)
    depth = np.clip(0.8 + a * (u - 0.5) + b * (v - 0.5), NEAR, FAR)  # the background plane
    normal = np.broadcast_to(np.array([a, b, 1.0]), (size, size, 3)).copy()
    albedo = np.broadcast_to(rng.uniform(0.3, 0.7, 3), (size, size, 3)).copy()
    for _ in range(int(rng.integers(1, 4))):
        cu, cv = rng.uniform(0.2, 0.8, 2)
        r, z = rng.uniform(0.1, 0.25), rng.uniform(0.45, 0.65)  # z - r >= NEAR
        h = np.sqrt(np.clip(r * r - (u - cu) ** 2 - (v - cv) ** 2, 0.0, None))
        hit = (h > 0) & (z - h < depth)  # the sphere's near surface is in front
        depth = np.where(hit, z - h, depth)
        normal = np.where(hit[..., None], np.stack([u - cu, v - cv, h], -1) / r, normal)
        albedo = np.where(hit[..., None], rng.uniform(0.4, 1.0, 3), albedo)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([0.4, -0.3, 0.87]) / np.linalg.norm([0.4, -0.3, 0.87])
    shade = 0.25 + 0.75 * np.clip(normal @ light, 0.0, 1.0)
    fog = 1.0 - 0.5 * (depth - NEAR) / (FAR - NEAR)  # far is darker
    image = albedo * (shade * fog)[..., None]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), depth.astype(np.float32)


def load_depth_synth(root, split: str, size: int = 32, limit: int | None = None) -> DepthData:
    """Split ``split`` of depth-synth: the first ``limit`` of its scenes (all when None),
    rendered at ``size`` px. ``root`` is unused: nothing is read from disk."""
    n = COUNTS[split] if limit is None else min(limit, COUNTS[split])
    scenes = [render(np.random.default_rng([_SEED, _STREAM[split], i]), size) for i in range(n)]
    images = torch.from_numpy(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).contiguous()
    depth = torch.from_numpy(np.stack([s[1] for s in scenes]))[:, None]
    return DepthData(images, depth)


DATASET = register_dataset(
    "depth-synth", tasks="depth", loader=load_depth_synth,
    description="generated planes and spheres: an RGB image and its depth map each (embedded)",
    splits={s: f"{n} scenes of seed stream {_STREAM[s]}" for s, n in COUNTS.items()},
)
