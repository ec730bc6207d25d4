"""``synth-stripes``: an embedded two-domain dataset for unpaired translation (stand-in for
horse2zebra), with hidden pairs for paired evaluation.

A scene is a smooth two-colour background with 1-3 soft coloured shapes, rendered in two
domains: A ("plain") fills each shape with its colour; B ("striped") adds near-black
stripes inside every shape at a fixed angle (default 45°) and period (default
``size / 6``), their phase anchored at the shape's centre. So A -> B is a function of the
A image, and a perfect G scores L1 = 0 on the hidden pairs.

Splits: ``train`` draws A and B scenes from two independent streams (unpaired); ``val``
and ``test`` render the same scene ``i`` in both domains (``paired=True``: ``b[i]`` is the
truth of ``G(a[i])``, used only for evaluation), each from its own stream. Every image is
a deterministic function of ``(seed, split, domain stream, index)``, so ``limit=16`` gives
the first 16 images of the full split. Split sizes and streams: ``docs/data.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from cvloss.data.horse2zebra import TranslateData
from cvloss.data.types import DatasetError, check_split

__all__ = ["DEFAULT_N", "DOMAINS", "TranslateData", "load_synth_stripes", "render_scene", "synth_stripes"]

DEFAULT_N = {"train": 400, "val": 64, "test": 256}
DOMAINS = ("plain", "striped")
_DATASET_CODE = 6  # keeps these streams apart from every other synthetic dataset's
# Stream 0: train domain A; 1: train domain B; 2: val (paired) scenes; 3: test (paired) scenes.
_STREAM = {("train", "A"): 0, ("train", "B"): 1, ("val", "A"): 2, ("val", "B"): 2, ("test", "A"): 3, ("test", "B"): 3}


def _rng(seed: int, stream: int, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_DATASET_CODE, stream, i)))


def _scene(rng: np.random.Generator) -> dict:
    """Random scene parameters in unit coordinates (independent of the image size)."""
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        shapes.append({
            "kind": "ellipse" if rng.random() < 0.5 else "rect",
            "centre": rng.uniform(0.25, 0.75, 2),
            "radii": rng.uniform(0.12, 0.26, 2),
            "angle": rng.uniform(0, np.pi),
            # Saturated mid-bright colours: clearly apart from the pale background.
            "colour": np.clip(rng.dirichlet([1.0, 1.0, 1.0]) * 1.6, 0.15, 0.95),
            "shade": rng.uniform(-0.15, 0.15, 2),
        })
    return {
        "bg": rng.uniform(0.65, 0.95, (2, 3)),
        "bg_dir": rng.uniform(0, 2 * np.pi),
        "shapes": shapes,
    }


def render_scene(scene: dict, size: int, striped: bool, period: float, angle: float) -> np.ndarray:
    """Render one scene ``(size, size, 3)`` float in [0, 1]; ``striped`` gives domain B.

    Stripes: inside a shape with centre c, the pixel p is dark where
    ``cos(2π <p - c, u> / period) < 0`` with ``u = (cos angle, sin angle)``; the square
    wave is anti-aliased by a steep sigmoid of that cosine.
    """
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float64) + 0.5) / size  # unit coords
    t = 0.5 + 0.5 * ((xx - 0.5) * np.cos(scene["bg_dir"]) + (yy - 0.5) * np.sin(scene["bg_dir"]))
    img = scene["bg"][0] * (1 - t[..., None]) + scene["bg"][1] * t[..., None]
    u = np.array([np.cos(angle), np.sin(angle)])
    for sh in scene["shapes"]:
        dx, dy = xx - sh["centre"][0], yy - sh["centre"][1]
        ca, sa = np.cos(sh["angle"]), np.sin(sh["angle"])
        p, q = (dx * ca + dy * sa) / sh["radii"][0], (-dx * sa + dy * ca) / sh["radii"][1]
        inside = (p * p + q * q <= 1) if sh["kind"] == "ellipse" else (np.abs(p) <= 1) & (np.abs(q) <= 1)
        alpha = ndimage.gaussian_filter(inside.astype(np.float64), 0.5)[..., None]  # soft edge
        fill = sh["colour"] * (1 + sh["shade"][0] * dx / 0.25 + sh["shade"][1] * dy / 0.25)[..., None]
        if striped:
            phase = 2 * np.pi * (dx * u[0] + dy * u[1]) * size / period
            light = 1 / (1 + np.exp(-4 * np.cos(phase)))[..., None]
            fill = light * fill + (1 - light) * 0.08
        img = alpha * fill + (1 - alpha) * img
    return np.clip(img, 0, 1)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    arr = (np.stack(images) * 255 + 0.5).astype(np.uint8)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def synth_stripes(split: Literal["train", "val", "test"], size: int = 32, n: int | None = None, seed: int = 0,
                  period: float | None = None, angle: float = np.pi / 4) -> TranslateData:
    """Generate a split of ``synth-stripes``.

    Args:
        split: ``"train"`` (unpaired, independent A and B scenes), ``"val"`` or ``"test"``
            (paired: ``b[i]`` is scene ``i`` of ``a[i]`` with stripes; disjoint streams).
        size: image side in pixels (>= 16).
        n: images per domain (default 400 train / 64 val / 256 test).
        seed: base seed.
        period: stripe period in pixels (default ``size / 6``; >= 2).
        angle: stripe direction in radians (default π/4).

    Returns:
        :class:`TranslateData` with ``a``, ``b`` ``(n, 3, size, size)`` uint8.
    """
    check_split(split, "synth-stripes")
    if size < 16:
        raise DatasetError(f"size must be >= 16 pixels, got {size}")
    n = DEFAULT_N[split] if n is None else int(n)
    if n < 1:
        raise DatasetError(f"n must be >= 1, got {n}")
    period = size / 6 if period is None else float(period)
    if period < 2:
        raise DatasetError(f"stripe period must be >= 2 pixels, got {period}")
    domains = {}
    for dom, striped in (("A", False), ("B", True)):
        stream = _STREAM[(split, dom)]
        scenes = [_scene(_rng(seed, stream, i)) for i in range(n)]
        domains[dom] = _to_tensor([render_scene(s, size, striped, period, angle) for s in scenes])
    return TranslateData(a=domains["A"], b=domains["B"], paired=split != "train", domains=DOMAINS,
                         name="synth-stripes", real="horse2zebra")


def load_synth_stripes(root: Path | str | None, split: str, size: int = 32, limit: int | None = None,
                       seed: int = 0) -> TranslateData:
    """Catalog loader (``cvloss.data.registry.load_dataset("synth-stripes", split)``);
    ``root`` is ignored (nothing on disk), ``limit`` is the number of images per domain."""
    return synth_stripes(split, size=size, n=limit, seed=seed)  # type: ignore[arg-type]
