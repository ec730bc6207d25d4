"""The photos and textures that scikit-image ships (``skimage.data``), as float images.

Embedded stand-in for DIV2K (``sr``) and the content/style pool of ``style``: nothing is
downloaded; every image below is in scikit-image 0.26's wheel (no ``pooch`` needed).

Colour photos (:data:`PHOTOS`, name -> ``skimage.data`` function):
``astronaut`` 512×512, ``coffee`` 400×600, ``chelsea`` 300×451, ``rocket`` 427×640,
``motorcycle`` 500×741 (the left view of ``stereo_motorcycle``), ``hubble``
872×1000 (``hubble_deep_field``), ``immunohistochemistry`` 512×512, ``retina``
1411×1411. Grayscale textures (:data:`TEXTURES`): ``brick``, ``grass``, ``gravel``
(512×512); grayscale photos (:data:`GRAY_PHOTOS`): ``camera``, ``moon``, ``coins``.

Public API for both tasks: :func:`skimage_image` / :func:`skimage_images` return float32
arrays in [0, 1], ``(H, W, 3)`` for colour and ``(H, W)`` for grayscale images (or
``(H, W, 3)`` with ``rgb=True``: the gray channel repeated).

Super-resolution splits (fixed, so every seed and loss sees the same images; disjoint
by photo, :data:`SR_SPLIT`): ``val`` = chelsea, coffee (fur and a textured table: hard,
detail-rich; the val split since before the test split existed); ``test`` = rocket,
motorcycle (a launch scene and a machine of sharp edges and fine parts: natural,
detail-rich photos like val's; both moved out of ``train`` for it) --
scikit-image ships no other natural colour photo but ``motorcycle_right``, the right
view of the same stereo pair as ``motorcycle``, which is therefore left out; ``train`` =
astronaut, hubble, immunohistochemistry, retina. ``size`` (short side in px, default 192) shrinks each photo
first with antialiased bicubic interpolation (``torch.nn.functional.interpolate(mode=
"bicubic", antialias=True)``, aspect kept) so CPU budgets stay small: the shrunk photo
is the HR image, its bicubic ×1/s downsampling the LR one (made by the task).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cvloss.data.div2k import SRData
from cvloss.data.types import DatasetError, check_split

__all__ = ["GRAY_PHOTOS", "PHOTOS", "SR_SPLIT", "TEXTURES", "load_skimage_photos", "skimage_image", "skimage_images"]

#: colour photos: our name -> (``skimage.data`` function, index into a tuple result or None)
PHOTOS: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),
    "rocket": ("rocket", None),
    "motorcycle": ("stereo_motorcycle", 0),
    "hubble": ("hubble_deep_field", None),
    "immunohistochemistry": ("immunohistochemistry", None),
    "retina": ("retina", None),
}
TEXTURES: dict[str, tuple[str, int | None]] = {"brick": ("brick", None), "grass": ("grass", None), "gravel": ("gravel", None)}
GRAY_PHOTOS: dict[str, tuple[str, int | None]] = {"camera": ("camera", None), "moon": ("moon", None), "coins": ("coins", None)}
_ALL = {**PHOTOS, **TEXTURES, **GRAY_PHOTOS}
SR_SPLIT = {
    "train": ("astronaut", "hubble", "immunohistochemistry", "retina"),
    "val": ("chelsea", "coffee"),
    "test": ("rocket", "motorcycle"),
}


@lru_cache(maxsize=None)
def _raw(name: str) -> np.ndarray:
    import skimage.data

    func, index = _ALL[name]
    img = getattr(skimage.data, func)()
    img = img[index] if index is not None else img
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    img.setflags(write=False)
    return img


def skimage_image(name: str, rgb: bool = False) -> np.ndarray:
    """One scikit-image picture as float32 in [0, 1]: ``(H, W, 3)`` colour, ``(H, W)``
    grayscale (``rgb=True``: ``(H, W, 3)`` always). Decoded once per process (cached).
    :class:`DatasetError` for a name not in :data:`PHOTOS`, :data:`TEXTURES` or
    :data:`GRAY_PHOTOS`."""
    if name not in _ALL:
        raise DatasetError(f"unknown scikit-image picture {name!r}; valid: {', '.join(_ALL)}")
    img = _raw(name).astype(np.float32) / 255.0
    if rgb and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


def skimage_images(names: tuple[str, ...] | list[str] | None = None, rgb: bool = False) -> dict[str, np.ndarray]:
    """``{name: float32 image in [0, 1]}`` for ``names`` (default: every colour photo)."""
    return {n: skimage_image(n, rgb=rgb) for n in (names if names is not None else PHOTOS)}


def _shrink(img: np.ndarray, size: int | None) -> torch.Tensor:
    """float (H, W, 3) -> uint8 (3, H', W') with short side ``size`` (never enlarged)."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    h, w = t.shape[-2:]
    if size is not None and min(h, w) > size:
        r = size / min(h, w)
        t = F.interpolate(t, size=(max(1, round(h * r)), max(1, round(w * r))), mode="bicubic", antialias=True,
                          align_corners=False)
    return t[0].mul(255).clamp_(0, 255).round_().to(torch.uint8).contiguous()


def load_skimage_photos(root: str | Path | None, split: str, size: int | None = 192, limit: int | None = None) -> SRData:
    """The fixed SR split of the colour photos (see :data:`SR_SPLIT`) as :class:`SRData`.

    Args:
        root: ignored (embedded data).
        split: ``train`` (4 photos), ``val`` (chelsea, coffee) or ``test`` (rocket, motorcycle).
        size: short side of the HR images in px after antialiased bicubic shrinking
            (``None``: native size, up to 1411 px).
        limit: the first ``limit`` photos of the split.
    """
    check_split(split, "skimage-photos")
    if size is not None and size < 8:
        raise DatasetError(f"skimage-photos: size (short side of the HR photos) must be >= 8 px; got {size}")
    names = SR_SPLIT[split][:limit] if limit else SR_SPLIT[split]
    hr = [_shrink(skimage_image(n), size) for n in names]
    return SRData(hr=hr, names=names, name="skimage-photos", real="div2k")
