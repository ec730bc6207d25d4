"""The photos and textures that scikit-image ships (``skimage.data``), plus matplotlib's
sample photograph, as float images: the embedded stand-in for DIV2K (``sr``) and the
content/style pool of ``style``. Nothing is downloaded (both packages are dependencies).

Colour photos :data:`PHOTOS`, grayscale photos :data:`GRAY_PHOTOS`, grayscale textures
:data:`TEXTURES`; each one's licence in :data:`LICENSES`, its file in
:func:`source_file`. :func:`skimage_image` / :func:`skimage_images` return float32 arrays
in [0, 1], ``(H, W, 3)`` for colour and ``(H, W)`` for gray (``rgb=True``: repeated).
``size`` (short side, default 192) shrinks each photo first: that is the HR image.

Super-resolution split :data:`SR_SPLIT`, fixed and disjoint by photo: train retina,
camera, coins, moon; val chelsea, coffee; test rocket, motorcycle (first, so a test cap of
2 keeps them), astronaut, grace_hopper, immunohistochemistry, hubble. Sizes, licences,
why this split and what is left out: ``docs/data.md``, "skimage-photos".
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cvloss.data.div2k import SRData
from cvloss.data.types import DatasetError, check_split

__all__ = ["GRAY_PHOTOS", "LICENSES", "PHOTOS", "SR_SPLIT", "TEXTURES", "load_skimage_photos", "skimage_image",
           "skimage_images", "source_file"]

#: prefix of a source that is a file of matplotlib's sample data, not a ``skimage.data`` function
MPL = "matplotlib:"
#: colour photos: our name -> (``skimage.data`` function or ``matplotlib:<sample file>``,
#: index into a tuple result or None)
PHOTOS: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),
    "rocket": ("rocket", None),
    "motorcycle": ("stereo_motorcycle", 0),
    "hubble": ("hubble_deep_field", None),
    "immunohistochemistry": ("immunohistochemistry", None),
    "retina": ("retina", None),
    "grace_hopper": (MPL + "grace_hopper.jpg", None),
}
TEXTURES: dict[str, tuple[str, int | None]] = {"brick": ("brick", None), "grass": ("grass", None), "gravel": ("gravel", None)}
GRAY_PHOTOS: dict[str, tuple[str, int | None]] = {"camera": ("camera", None), "moon": ("moon", None), "coins": ("coins", None)}
_ALL = {**PHOTOS, **TEXTURES, **GRAY_PHOTOS}
#: the file of each picture in its package (skimage/data/<file>; matplotlib's sample data)
_FILES = {"astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png", "rocket": "rocket.jpg",
          "motorcycle": "motorcycle_left.png", "hubble": "hubble_deep_field.jpg", "immunohistochemistry": "ihc.png",
          "retina": "retina.jpg", "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
          "camera": "camera.png", "moon": "moon.png", "coins": "coins.png"}
#: each picture's licence, as the package that ships it states it (docs/data.md)
LICENSES = {
    "astronaut": "public domain (NASA)",
    "coffee": "CC0 (Rachel Michetti)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "rocket": "public domain (SpaceX)",
    "motorcycle": "Middlebury 2014 stereo benchmark (Scharstein et al. 2014); no licence stated by scikit-image",
    "hubble": "public domain (NASA)",
    "immunohistochemistry": "no known copyright restrictions (CMMI)",
    "retina": "CC0 1.0 (Wikimedia Commons, M. Haggstrom)",
    "grace_hopper": "public domain (U.S. Navy photograph; matplotlib sample data)",
    "camera": "CC0 (Lav Varshney)",
    "moon": "no licence stated by scikit-image",
    "coins": "no known copyright restrictions (Brooklyn Museum)",
    "brick": "CC0 (CC0 Textures)",
    "grass": "CC0 (CC0 Textures)",
    "gravel": "CC0 (CC0 Textures)",
}
#: the fixed super-resolution split (docs/data.md): disjoint by photo; test's first two
#: come first so that a cap of 2 test images (the smoke budget) keeps scoring them
SR_SPLIT = {
    "train": ("retina", "camera", "coins", "moon"),
    "val": ("chelsea", "coffee"),
    "test": ("rocket", "motorcycle", "astronaut", "grace_hopper", "immunohistochemistry", "hubble"),
}


def source_file(name: str) -> Path:
    """The file picture ``name`` is read from (in scikit-image's or matplotlib's package)."""
    if name not in _ALL:
        raise DatasetError(f"unknown scikit-image picture {name!r}; valid: {', '.join(_ALL)}")
    func = _ALL[name][0]
    if func.startswith(MPL):
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data(func[len(MPL):], asfileobj=False))
    import skimage.data

    return Path(skimage.data.__file__).parent / _FILES[name]


@lru_cache(maxsize=None)
def _raw(name: str) -> np.ndarray:
    func, index = _ALL[name]
    if func.startswith(MPL):
        import skimage.io

        img = skimage.io.imread(str(source_file(name)))
    else:
        import skimage.data

        img = getattr(skimage.data, func)()
    img = img[index] if index is not None else img
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    img.setflags(write=False)
    return img


def skimage_image(name: str, rgb: bool = False) -> np.ndarray:
    """One picture (scikit-image's, or matplotlib's grace_hopper) as float32 in [0, 1]:
    ``(H, W, 3)`` colour, ``(H, W)`` grayscale (``rgb=True``: ``(H, W, 3)`` always).
    Decoded once per process (cached).
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
    """The fixed SR split of the photos (see :data:`SR_SPLIT`) as :class:`SRData`, RGB
    (a grayscale photo's channel repeated).

    Args:
        root: ignored (embedded data).
        split: ``train`` (retina, camera, coins, moon), ``val`` (chelsea, coffee) or ``test``
            (rocket, motorcycle, astronaut, grace_hopper, immunohistochemistry, hubble).
        size: short side of the HR images in px after antialiased bicubic shrinking
            (``None``: native size, up to 1411 px).
        limit: the first ``limit`` photos of the split.
    """
    check_split(split, "skimage-photos")
    if size is not None and size < 8:
        raise DatasetError(f"skimage-photos: size (short side of the HR photos) must be >= 8 px; got {size}")
    names = SR_SPLIT[split][:limit] if limit else SR_SPLIT[split]
    hr = [_shrink(skimage_image(n, rgb=True), size) for n in names]
    return SRData(hr=hr, names=names, name="skimage-photos", real="div2k")
