"""``synth-ids``: procedurally drawn identities, the embedded stand-in for LFW.

Each identity is a fixed random "face" template (colours, face shape, hairline, eyes,
nose, mouth, a skin texture); every image renders it under its own nuisances: pose
(rotation U(−15°, 15°), scale U(0.88, 1.12), shift), lighting (gain, bias, a gradient),
an occluding rectangle with probability 0.5, a random background, Gaussian noise σ ~
U(0.01, 0.05). Train, val and test identities come from three seed streams
(:data:`_STREAM`), so they are disjoint; val and test carry LFW-style pairs in 10
identity-disjoint folds, ``pairs_per_fold`` same and as many different pairs per fold.
Defaults per split: :data:`DEFAULTS` (test: 200 identities, 1,000 distinct pairs).
Rendering is vectorised numpy; the result is :class:`IdentityData` (LFW's loader returns
it too). Every nuisance's range and the splits' history: ``docs/data.md``, "synth-ids".
"""
from __future__ import annotations
from cvloss.data.types import DatasetError, IdentityData, check_split

from pathlib import Path
from typing import Literal

import numpy as np
import torch

N_FOLDS = 10
# Defaults per split: (identities, images per identity, pairs of each kind per fold).
# test: 200 identities, 10 folds x (50 same + 50 different) = 1,000 pairs: evaluated twice
# per trial only, so it can be larger than val.
DEFAULTS = {"train": (200, 8, 0), "val": (100, 6, 30), "test": (200, 6, 50)}
_STREAM = {"train": 0x1D5, "val": 0x7A1, "test": 0x7E57}  # seed streams: the splits' identities differ


# ---------------------------------------------------------------- rendering
def _templates(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` identity templates: one row per identity in every array."""
    u = rng.uniform
    skin = np.stack([u(0.45, 0.95, n), u(0.3, 0.8, n), u(0.2, 0.7, n)], 1)
    return {
        "skin": skin,
        "hair": u(0.0, 0.8, (n, 3)),
        "eye": u(0.0, 0.6, (n, 3)),
        "mouth": np.stack([u(0.4, 1.0, n), u(0.0, 0.5, n), u(0.0, 0.5, n)], 1),
        "face_a": u(0.42, 0.66, n),  # half-width of the face ellipse
        "face_b": u(0.58, 0.82, n),  # half-height
        "hairline": u(-0.75, -0.2, n),
        "eye_y": u(-0.3, 0.0, n),
        "eye_dx": u(0.15, 0.33, n),
        "eye_r": u(0.05, 0.12, n),
        "nose_len": u(0.08, 0.25, n),
        "mouth_y": u(0.28, 0.52, n),
        "mouth_w": u(0.1, 0.3, n),
        "mouth_h": u(0.025, 0.08, n),
        "tex_f": u(1.5, 5.0, (n, 2)),  # cycles per unit
        "tex_th": u(0.0, np.pi, (n, 2)),
        "tex_ph": u(0.0, 2 * np.pi, (n, 2)),
        "tex_amp": u(0.0, 0.07, (n, 2)),
    }


def _soft(sd: np.ndarray, px: float) -> np.ndarray:
    """Coverage of a shape from its signed distance ``sd`` (< 0 inside), anti-aliased
    over about one pixel ``px`` so small features survive at 32×32."""
    return 1.0 / (1.0 + np.exp(np.clip(sd / (0.5 * px), -30, 30)))


def _render(t: dict[str, np.ndarray], ids: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Render one image per entry of ``ids`` (template rows) under random nuisances;
    returns ``(N, 3, size, size)`` uint8."""
    n = len(ids)
    g = {k: v[ids] for k, v in t.items()}
    u = rng.uniform
    # Pose: the image pixel q maps to template point R⁻¹ (q − shift) / scale.
    ang, scale, shift = np.deg2rad(u(-15, 15, n)), u(0.88, 1.12, n), u(-0.12, 0.12, (n, 2))
    lin = (np.arange(size) + 0.5) / size * 2 - 1
    qy, qx = np.meshgrid(lin, lin, indexing="ij")
    dx = qx[None] - shift[:, 0, None, None]
    dy = qy[None] - shift[:, 1, None, None]
    c, s = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    sc = scale[:, None, None]
    x, y = (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc
    px = 2.0 / size / scale[:, None, None]

    def col(name: str) -> np.ndarray:  # (N, 3, 1, 1) colour of every image
        return g[name][:, :, None, None]

    def p(name: str) -> np.ndarray:  # (N, 1, 1) scalar parameter
        return g[name][:, None, None]

    # Face ellipse: approximate signed distance (normalised radius − 1) × min axis.
    r = np.sqrt((x / p("face_a")) ** 2 + (y / p("face_b")) ** 2)
    face = _soft((r - 1) * np.minimum(p("face_a"), p("face_b")), px)
    hair_region = _soft((r - 1.12) * p("face_b"), px) * _soft(y - p("hairline"), px)
    eyes = np.zeros_like(x)
    for sign in (-1.0, 1.0):
        d = np.sqrt((x - sign * p("eye_dx")) ** 2 + (y - p("eye_y")) ** 2)
        eyes = np.maximum(eyes, _soft(d - p("eye_r"), px))
    nose = _soft(np.abs(x) - 0.025, px) * _soft(np.abs(y - 0.08 - p("nose_len") / 2) - p("nose_len") / 2, px)
    mouth = _soft(np.sqrt((x / p("mouth_w")) ** 2 + ((y - p("mouth_y")) / p("mouth_h")) ** 2) - 1, px * 0.5 / p("mouth_h").clip(0.02))
    tex = np.zeros_like(x)
    for k in range(2):
        th, f = g["tex_th"][:, k, None, None], g["tex_f"][:, k, None, None]
        tex += g["tex_amp"][:, k, None, None] * np.sin(2 * np.pi * f * (np.cos(th) * x + np.sin(th) * y) + g["tex_ph"][:, k, None, None])

    # Background: a random colour per image (a nuisance, as in photos), not per identity.
    img = u(0.0, 1.0, (n, 3))[:, :, None, None] * np.ones((1, 3, size, size))
    skin = col("skin") + tex[:, None]
    img = img + face[:, None] * (skin - img)
    img = img + hair_region[:, None] * (col("hair") - img)
    img = img + eyes[:, None] * (col("eye") - img)
    img = img + (0.6 * nose)[:, None] * (col("skin") * 0.6 - img)
    img = img + mouth[:, None] * (col("mouth") - img)

    # Lighting: gain, bias and a linear gradient, in image coordinates.
    gain, bias = u(0.65, 1.35, n), u(-0.12, 0.12, n)
    gdir, gslope = u(0, 2 * np.pi, n), u(0, 0.35, n)
    grad = gslope[:, None, None] * (np.cos(gdir)[:, None, None] * qx + np.sin(gdir)[:, None, None] * qy)
    img = img * gain[:, None, None, None] + bias[:, None, None, None] + grad[:, None]

    # Occlusion: a rectangle of random colour on half of the images.
    occ = u(0, 1, n) < 0.5
    w, h = u(0.2, 0.55, (2, n)) * 2
    x0, y0 = u(-1, 1 - w), u(-1, 1 - h)
    inside = (qx[None] >= x0[:, None, None]) & (qx[None] < (x0 + w)[:, None, None]) & \
             (qy[None] >= y0[:, None, None]) & (qy[None] < (y0 + h)[:, None, None]) & occ[:, None, None]
    img = np.where(inside[:, None], u(0, 1, (n, 3))[:, :, None, None], img)

    img = img + rng.normal(size=img.shape) * u(0.01, 0.05, n)[:, None, None, None]
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _pairs(rng: np.random.Generator, labels: np.ndarray, n_ids: int, per_fold: int,
           distinct: bool = False) -> tuple[np.ndarray, ...]:
    """LFW-style pairs: identities split into 10 disjoint folds; per fold ``per_fold``
    same pairs and ``per_fold`` different pairs, drawn from that fold's identities.

    ``distinct`` (the test split): a pair already drawn (in either order) is drawn again,
    so every pair is a different comparison; a fold whose identities give fewer distinct
    same (or different) pairs than ``per_fold`` gets as many as there are, of each kind
    (a tiny split, e.g. 2 images per identity: the task's data line names the count). val
    keeps plain draws (a pair may repeat), so its pairs stay those of before the test split."""
    if n_ids < 2 * N_FOLDS:
        raise DatasetError(f"synth-ids val and test need at least {2 * N_FOLDS} identities for 10 folds; got {n_ids}")
    by_id = [np.flatnonzero(labels == i) for i in range(n_ids)]
    fold_of = rng.permutation(n_ids) % N_FOLDS
    pairs, same, folds = [], [], []
    seen: set[tuple[int, int]] = set()

    def fresh(a: int, b: int) -> bool:
        key = (min(a, b), max(a, b))
        if distinct and key in seen:
            return False
        seen.add(key)
        return True

    for f in range(N_FOLDS):
        ids = np.flatnonzero(fold_of == f)
        wanted = per_fold
        if distinct:  # no more than there are, or the draws below would never end
            sizes = np.array([len(by_id[i]) for i in ids])
            n_same, n_diff = int((sizes * (sizes - 1) // 2).sum()), int((sizes.sum() ** 2 - (sizes**2).sum()) // 2)
            wanted = min(per_fold, n_same, n_diff)
        drawn = 0
        while drawn < wanted:  # same: two distinct images of one identity
            i = rng.choice(ids)
            a, b = rng.choice(by_id[i], 2, replace=False)
            if fresh(int(a), int(b)):
                pairs.append((a, b)); same.append(True); folds.append(f); drawn += 1
        drawn = 0
        while drawn < wanted:  # different: one image of each of two identities
            i, j = rng.choice(ids, 2, replace=False)
            a, b = rng.choice(by_id[i]), rng.choice(by_id[j])
            if fresh(int(a), int(b)):
                pairs.append((a, b)); same.append(False); folds.append(f); drawn += 1
    return np.array(pairs, dtype=np.int64), np.array(same), np.array(folds, dtype=np.int64)


def synth_ids(split: Literal["train", "val", "test"], size: int = 32, n_ids: int | None = None, per_id: int | None = None,
              pairs_per_fold: int | None = None, seed: int = 0) -> IdentityData:
    """Generate a ``synth-ids`` split.

    Args:
        split: ``"train"`` (no pairs), ``"val"`` or ``"test"`` (with 10-fold verification
            pairs); their identities are disjoint.
        size: image side in pixels (≥ 16).
        n_ids, per_id: identities and images per identity (defaults train 200 × 8, val
            100 × 6, test 200 × 6).
        pairs_per_fold: same pairs per fold, as many different ones (default val 30, test 50).
        seed: generation seed; a different seed draws different identities.
    """
    check_split(split, "synth-ids")
    d_ids, d_per, d_pairs = DEFAULTS[split]
    n_ids, per_id = int(n_ids or d_ids), int(per_id or d_per)
    pairs_per_fold = int(pairs_per_fold or d_pairs)
    if size < 16 or per_id < 2 or n_ids < 2:
        raise DatasetError(f"synth-ids needs size >= 16, per_id >= 2 and n_ids >= 2; got {size}, {per_id}, {n_ids}")
    rng = np.random.default_rng([int(seed), _STREAM[split]])
    templates = _templates(rng, n_ids)
    labels = np.repeat(np.arange(n_ids), per_id)
    images = _render(templates, labels, rng, size)
    kw = {}
    if split != "train":
        pairs, same, folds = _pairs(rng, labels, n_ids, pairs_per_fold, distinct=split == "test")
        kw = {"pairs": torch.from_numpy(pairs), "same": torch.from_numpy(same), "folds": torch.from_numpy(folds)}
    names = tuple(f"{split}_{i:04d}" for i in range(n_ids))
    return IdentityData(torch.from_numpy(images), torch.from_numpy(labels).long(), names, "synth-ids", real="lfw", **kw)


def load_synth_ids(root: Path | None, split: Literal["train", "val", "test"], size: int = 32, limit: int | None = None,
                   seed: int = 0, n_ids: int | None = None, per_id: int | None = None,
                   pairs_per_fold: int | None = None) -> IdentityData:
    """Catalog loader of ``synth-ids``; ``root`` unused. ``limit`` caps the number of
    identities."""
    if limit is not None:
        n_ids = min(int(n_ids or DEFAULTS[split][0]), int(limit))
    return synth_ids(split, size=size, n_ids=n_ids, per_id=per_id, pairs_per_fold=pairs_per_fold, seed=seed)
