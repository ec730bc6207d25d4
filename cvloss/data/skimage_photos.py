"""The photos and textures that scikit-image ships (``skimage.data``), plus matplotlib's
sample photograph, as float images.

Embedded stand-in for DIV2K (``sr``) and the content/style pool of ``style``: nothing is
downloaded; every image below is in scikit-image 0.26's wheel (no ``pooch`` needed) or in
matplotlib's ``mpl-data/sample_data`` (both are dependencies).

Colour photos (:data:`PHOTOS`, name -> source), with their licences (:data:`LICENSES`, as
the shipping package states them):

* ``astronaut`` 512×512 (Eileen Collins, NASA): public domain;
* ``coffee`` 400×600 (Rachel Michetti): CC0;
* ``chelsea`` 300×451 (Stefan van der Walt): CC0;
* ``rocket`` 427×640 (SpaceX): public domain;
* ``motorcycle`` 500×741, the left view of ``stereo_motorcycle`` (Middlebury 2014 stereo
  benchmark, Scharstein et al., GCPR 2014; scikit-image states no licence);
* ``hubble`` 872×1000 (``hubble_deep_field``, NASA): public domain;
* ``immunohistochemistry`` 512×512 (CMMI): no known copyright restrictions;
* ``retina`` 1411×1411 (Wikimedia Commons, M. Häggström): CC0 1.0;
* ``grace_hopper`` 600×512 (matplotlib's ``sample_data/grace_hopper.jpg``: a U.S. Navy
  photograph, public domain as a work of the U.S. federal government; matplotlib added it
  as a public-domain replacement of "Lena", PR #1599).

Grayscale photos (:data:`GRAY_PHOTOS`): ``camera`` 512×512 (Lav Varshney, CC0), ``moon``
512×512 (scikit-image states no licence), ``coins`` 303×384 (Brooklyn Museum collection,
no known copyright restrictions). Grayscale textures (:data:`TEXTURES`): ``brick``,
``grass``, ``gravel`` 512×512 (CC0 Textures, CC0). :func:`source_file` names the file each
is read from (tests pin their sha256).

Public API for both tasks: :func:`skimage_image` / :func:`skimage_images` return float32
arrays in [0, 1], ``(H, W, 3)`` for colour and ``(H, W)`` for grayscale images (or
``(H, W, 3)`` with ``rgb=True``: the gray channel repeated).

Super-resolution splits (fixed, so every seed and loss sees the same images; disjoint
by photo, :data:`SR_SPLIT`):

* ``val`` = chelsea, coffee (fur and a textured table: detail-rich; unchanged since
  before the test split existed, so the budgets' tuning still holds);
* ``test`` = rocket, motorcycle, astronaut, grace_hopper, immunohistochemistry, hubble:
  six photographs (two before issue 31: an sr effect on 10 seeds was an effect on two
  photographs). For it astronaut, immunohistochemistry and hubble moved out of ``train``
  and matplotlib's grace_hopper was added; rocket and motorcycle stay first, so a budget
  that caps the test split at 2 (``n_test``, the smoke budget) scores what it scored;
* ``train`` = retina (colour) and the grayscale photos camera, coins, moon (gray channel
  repeated to RGB): four images, as before, so an epoch has as many steps as before. SR
  learns mostly luminance detail (PSNR-Y is the primary metric), which gray photos carry.

Left out: ``motorcycle_right``, the right view of the same stereo pair as
``motorcycle`` (the same scene: it would not be an independent test image, and in train
it would leak the test scene); scikit-learn's ``china.jpg`` and ``flower.jpg``, since
scikit-learn is no dependency of cvloss and a split must not depend on what else
happens to be installed (the same command would score other images on another machine).

``size`` (short side in px, default 192) shrinks each photo first with antialiased
bicubic interpolation (``torch.nn.functional.interpolate(mode="bicubic",
antialias=True)``, aspect kept) so CPU budgets stay small: the shrunk photo is the HR
image, its bicubic ×1/s downsampling the LR one (made by the task).
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
#: each picture's licence, as the package that ships it states it (module docstring)
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
#: the fixed super-resolution split (module docstring): disjoint by photo; test's first
#: two are the two it had before issue 31
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
