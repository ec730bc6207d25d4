"""Embedded segmentation datasets, generated on the fly: the offline defaults for ``seg``.

* :func:`synth_pets` imitates Oxford-IIIT Pet trimaps: a large textured star-shaped blob
  (the "pet") on a textured background with distractor blobs; classes 0 = background,
  1 = pet, 2 = border (a thin band straddling the outline).
* :func:`synth_vessels` imitates retinal vessel segmentation: thin branching structures
  1-3 px wide, some joined into loops (Betti-1 matters), over clutter, illumination
  gradients and noise; classes 0 = background, 1 = vessel.

Both are deterministic functions of ``(seed, split, index)``: image ``i`` comes from
``SeedSequence(seed, spawn_key=(dataset, split code, i))``, so splits are disjoint
streams and ``n=16`` gives the first 16 images of ``n=160``. Default sizes:
:data:`DEFAULT_N` (test: 256 images, its own stream). Why the test split is large and
its own stream: ``docs/data.md``, "synth-pets and synth-vessels".
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from cvloss.data.types import DatasetError, SegData, check_split

__all__ = [
    "PETS_CLASSES", "VESSEL_CLASSES", "DEFAULT_N", "synth_pets", "synth_vessels",
    "load_synth_pets", "load_synth_vessels",
]

PETS_CLASSES = ("background", "pet", "border")
VESSEL_CLASSES = ("background", "vessel")
DEFAULT_N = {"train": 160, "val": 48, "test": 256}  # test: large, read twice per trial (docs/data.md)
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}  # test: a stream no budget was tuned on
_DATASET_CODE = {"synth-pets": 1, "synth-vessels": 2}


def _rngs(dataset: str, split: str, n: int | None, seed: int) -> list[np.random.Generator]:
    check_split(split, dataset)
    n = DEFAULT_N[split] if n is None else int(n)
    if n < 1:
        raise DatasetError(f"n must be >= 1, got {n}")
    key = (_DATASET_CODE[dataset], _SPLIT_CODE[split])
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(*key, i))) for i in range(n)]


def _check_size(size: int) -> None:
    if size < 16:
        raise DatasetError(f"size must be >= 16 pixels, got {size}")


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` noise in [0, 1], smooth at the scale ``size / cells`` (bilinear
    upsampling of a ``cells x cells`` Gaussian grid)."""
    grid = rng.standard_normal((cells + 1, cells + 1))
    coords = np.linspace(0, cells, size)
    field = ndimage.map_coordinates(grid, np.meshgrid(coords, coords, indexing="ij"), order=1)
    lo, hi = field.min(), field.max()
    return (field - lo) / (hi - lo + 1e-8)


def _texture(rng: np.random.Generator, size: int, fine: bool) -> np.ndarray:
    """A random two-colour texture ``(size, size, 3)`` in [0, 1]: smooth noise or stripes.
    ``fine`` picks higher spatial frequencies (fur) than the background's."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    if rng.random() < 0.5:
        cells = int(rng.integers(6, 14)) if fine else int(rng.integers(2, 5))
        t = _smooth_noise(rng, size, cells)
    else:
        freq = rng.uniform(5, 10) if fine else rng.uniform(1.5, 3.5)
        angle = rng.uniform(0, np.pi)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
        t = 0.8 * t + 0.2 * _smooth_noise(rng, size, 8)
    c1, c2 = rng.uniform(0.05, 0.95, size=(2, 3))
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


def _star_blob(rng: np.random.Generator, size: int, r0: float, cx: float, cy: float) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a smooth star-shaped blob: an ellipse (random axis
    ratio and angle) whose radius is modulated by low harmonics ``cos(k theta + phi)``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    angle = rng.uniform(0, np.pi)
    ratio = rng.uniform(0.65, 1.0)
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ratio
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    k = np.arange(2, 6)[:, None, None]
    amp = rng.uniform(0, 0.22, size=(4, 1, 1)) / (k - 1)
    phase = rng.uniform(0, 2 * np.pi, size=(4, 1, 1))
    radius = r0 * (1 + (amp * np.cos(k * theta + phase)).sum(0))
    return rho < radius


def _pet_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    bg = _texture(rng, size, fine=False)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    bg = bg + (rng.uniform(-0.2, 0.2) * (xx - 0.5) + rng.uniform(-0.2, 0.2) * (yy - 0.5))[..., None]  # lighting
    pet = _texture(rng, size, fine=True)
    # Keep the pet visibly different from its background on average (as photos are):
    # shift its colour away from the background mean when they are too close.
    gap = pet.mean((0, 1)) - bg.mean((0, 1))
    if np.linalg.norm(gap) < 0.3:
        direction = gap / (np.linalg.norm(gap) + 1e-8) if np.linalg.norm(gap) > 1e-3 else rng.standard_normal(3)
        pet = pet + 0.3 * direction / (np.linalg.norm(direction) + 1e-8)

    img = bg
    for _ in range(int(rng.integers(0, 3))):  # small background distractors (class 0)
        d = _star_blob(rng, size, rng.uniform(0.04, 0.09) * size, *rng.uniform(0.05, 0.95, 2) * size)
        img = np.where(d[..., None], rng.uniform(0.05, 0.95, 3), img)

    inside = _star_blob(rng, size, rng.uniform(0.18, 0.3) * size, *rng.uniform(0.35, 0.65, 2) * size)
    alpha = ndimage.gaussian_filter(inside.astype(np.float64), 0.6)[..., None]  # soft photo edge
    img = alpha * pet + (1 - alpha) * img
    img = img + rng.normal(0, rng.uniform(0.01, 0.04), img.shape)

    # Border band: pixels within ``r`` of the outline on either side (2r px wide).
    r = max(1, round(size / 64))
    band = ndimage.binary_dilation(inside, _disk(r)) & ~ndimage.binary_erosion(inside, _disk(r), border_value=1)
    mask = np.where(band, 2, inside.astype(np.int64))
    return _to_uint8(img), mask


def synth_pets(split: Literal["train", "val", "test"], size: int = 64, n: int | None = None, seed: int = 0) -> SegData:
    """Synthetic pets-like trimaps (stand-in for Oxford-IIIT Pet, ``real="oxford-pets"``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint seed streams).
        size: image side in pixels (>= 16).
        n: number of images (default 160 train / 48 val / 256 test).
        seed: base seed; image ``i`` depends only on ``(seed, split, i)``.

    Returns:
        :class:`SegData`: images ``(n, 3, size, size)`` uint8, masks ``(n, size, size)``
        int64 with 0 = background, 1 = pet, 2 = border (band ``2 * max(1, round(size/64))``
        px wide around the outline).
    """
    _check_size(size)
    samples = [_pet_sample(rng, size) for rng in _rngs("synth-pets", split, n, seed)]
    images = torch.from_numpy(np.stack([s[0] for s in samples])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([s[1] for s in samples]))
    return SegData(images=images, masks=masks, class_names=PETS_CLASSES, name="synth-pets", real="oxford-pets")


# ----------------------------------------------------------------------------- vessels
# Pixel offsets stamped around each curve sample for widths 1, 2, 3 px.
_STAMPS = {
    1: np.array([[0, 0]]),
    2: np.array([[0, 0], [0, 1], [1, 0], [1, 1]]),
    3: np.argwhere(_disk(1)) - 1,
}


def _walk(rng: np.random.Generator, start: np.ndarray, heading: float, length: float) -> np.ndarray:
    """Points (every 0.5 px) of a smooth curve: the heading is ``heading`` plus a sum of
    three random low-frequency sinusoids of arc length, so the curve bends gently and its
    total turning stays bounded (no spirals)."""
    steps = max(2, int(length / 0.5))
    s = np.linspace(0, 1, steps)[:, None]
    j = np.arange(1, 4)[None, :]
    amp = rng.uniform(-0.7, 0.7, (1, 3)) / j
    angles = heading + (amp * np.sin(np.pi * j * s + rng.uniform(0, 2 * np.pi, (1, 3)))).sum(1)
    step = 0.5 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return start + np.cumsum(step, 0)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    n = max(2, int(2 * (np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1))))
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _vessel_tree(rng: np.random.Generator, size: int) -> list[tuple[np.ndarray, int, int]]:
    """Curves ``(points (M, 2) as (x, y), width px, branch id)`` of 1-2 trees plus loops."""
    curves: list[tuple[np.ndarray, int, int]] = []
    stack = []
    for _ in range(int(rng.integers(1, 3))):
        # Roots enter from a random side, aimed roughly at the centre (like vessels
        # leaving the optic disc).
        side = rng.integers(4)
        t = rng.uniform(0.2, 0.8) * size
        start = np.array([[t, 0.0], [size, t], [t, size], [0.0, t]][side])
        aim = np.arctan2(size / 2 - start[1], size / 2 - start[0]) + rng.uniform(-0.5, 0.5)
        stack.append((start, aim, rng.uniform(0.7, 1.0) * size, 3, 0))
    while stack:
        start, heading, length, width, depth = stack.pop()
        pts = _walk(rng, start, heading, length)
        keep = np.all((pts > -2) & (pts < size + 2), 1)
        stop = np.argmin(keep) if not keep.all() else len(pts)  # stop where it leaves the image
        pts = pts[:max(stop, 2)]
        curves.append((pts, width, len(curves)))
        if depth < 3 and len(pts) > 8:
            for _ in range(int(rng.integers(1, 3))):
                j = int(rng.integers(len(pts) // 4, 3 * len(pts) // 4))
                d = pts[min(j + 1, len(pts) - 1)] - pts[max(j - 1, 0)]
                h = np.arctan2(d[1], d[0]) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
                stack.append((pts[j], h, length * rng.uniform(0.45, 0.7), max(1, width - 1), depth + 1))

    # Anastomoses: join points of two different branches -> a cycle in the vessel graph.
    allpts = np.concatenate([c[0] for c in curves])
    owner = np.concatenate([np.full(len(c[0]), c[2]) for c in curves])
    inside = np.all((allpts >= 0) & (allpts < size), 1)
    allpts, owner = allpts[inside], owner[inside]
    for _ in range(int(rng.integers(1, 4))):
        if len(allpts) < 2:
            break
        i = int(rng.integers(len(allpts)))
        dist = np.linalg.norm(allpts - allpts[i], axis=1)
        ok = np.flatnonzero((owner != owner[i]) & (dist > 0.1 * size) & (dist < 0.35 * size))
        if ok.size == 0:
            continue
        j = int(rng.choice(ok))
        mid = (allpts[i] + allpts[j]) / 2 + rng.normal(0, 0.08 * size, 2)
        curves.append((_bezier(allpts[i], mid, allpts[j]), int(rng.integers(1, 3)), len(curves)))
    if rng.random() < 0.5:  # a small closed ring: one more hole
        c = rng.uniform(0.25, 0.75, 2) * size
        r = rng.uniform(0.06, 0.12) * size
        th = np.linspace(0, 2 * np.pi, int(4 * np.pi * r) + 8)
        wob = 1 + 0.15 * np.sin(2 * th + rng.uniform(0, 2 * np.pi))
        ring = c + (r * wob)[:, None] * np.stack([np.cos(th), np.sin(th)], 1)
        curves.append((ring, int(rng.integers(1, 3)), len(curves)))
    return curves


def _rasterise(curves: list[tuple[np.ndarray, int, int]], size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    for pts, width, _ in curves:
        base = np.floor(pts[:, ::-1]).astype(np.int64)  # (row, col)
        cells = (base[:, None, :] + _STAMPS[width][None]).reshape(-1, 2)
        ok = np.all((cells >= 0) & (cells < size), 1)
        mask[cells[ok, 0], cells[ok, 1]] = True
    return mask


def _vessel_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    vessel = _rasterise(_vessel_tree(rng, size), size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    # Fundus-like background: illumination gradient + vignette + blobs of clutter.
    base = 0.55 + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    base -= rng.uniform(0.0, 0.3) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    k = int(rng.integers(3, 9))
    centres = rng.uniform(0, 1, (k, 2))
    sig = rng.uniform(0.03, 0.12, k)
    amps = rng.uniform(-0.2, 0.2, k)
    d2 = (xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2
    base += (amps[:, None, None] * np.exp(-d2 / (2 * sig[:, None, None] ** 2))).sum(0)
    base += 0.05 * (_smooth_noise(rng, size, 10) - 0.5)
    # Vessels are darker, with a soft cross-section profile. Contrast and noise are set so
    # that thin (1 px) branches sit near the noise level, as in fundus images: a pixel loss
    # then breaks them up, which is where topology-aware losses should help.
    profile = ndimage.gaussian_filter(vessel.astype(np.float64), 0.5)
    intensity = base - rng.uniform(0.1, 0.22) * np.clip(profile * 1.5, 0, 1)
    tint = np.array([1.0, rng.uniform(0.45, 0.7), rng.uniform(0.2, 0.4)])  # reddish, varied
    img = intensity[..., None] * tint + rng.normal(0, rng.uniform(0.03, 0.06), (size, size, 3))
    return _to_uint8(img), vessel.astype(np.int64)


def synth_vessels(split: Literal["train", "val", "test"], size: int = 64, n: int | None = None, seed: int = 0) -> SegData:
    """Synthetic thin vessels (stand-in for retinal vessel sets such as DRIVE, which we do
    not ship; ``real=None``).

    Each image: 1-2 vessel trees entering from the border, branching up to three times
    (widths 3 -> 2 -> 1 px), 1-3 anastomoses joining different branches (loops) and, half
    the time, a small closed ring; darker than a reddish background with illumination
    gradient, vignette, blob clutter and Gaussian noise.

    Returns:
        :class:`SegData`: images ``(n, 3, size, size)`` uint8, masks ``(n, size, size)``
        int64 with 0 = background, 1 = vessel.
    """
    _check_size(size)
    samples = [_vessel_sample(rng, size) for rng in _rngs("synth-vessels", split, n, seed)]
    images = torch.from_numpy(np.stack([s[0] for s in samples])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([s[1] for s in samples]))
    return SegData(images=images, masks=masks, class_names=VESSEL_CLASSES, name="synth-vessels", real=None)


# ----------------------------------------------------------------------------- catalog loaders
def load_synth_pets(root: Path | None, split: Literal["train", "val", "test"], size: int = 64,
                    limit: int | None = None, seed: int = 0) -> SegData:
    """Catalog loader of ``synth-pets``: ``limit`` images (default 160 / 48 / 256); ``root`` unused."""
    return synth_pets(split, size=size, n=limit, seed=seed)


def load_synth_vessels(root: Path | None, split: Literal["train", "val", "test"], size: int = 64,
                       limit: int | None = None, seed: int = 0) -> SegData:
    """Catalog loader of ``synth-vessels``: ``limit`` images (default 160 / 48 / 256); ``root`` unused."""
    return synth_vessels(split, size=size, n=limit, seed=seed)
