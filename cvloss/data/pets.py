"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) as a 3-class segmentation dataset.

Our own loader (whole splits as tensors, decoded once and cached) over this layout::

    <root>/images/Abyssinian_100.jpg                 (images.tar.gz)
    <root>/annotations/trimaps/Abyssinian_100.png    (annotations.tar.gz)
    <root>/annotations/trainval.txt                  -> our "train" + "val" (3680 images)
    <root>/annotations/test.txt                      -> our "test" (3669 images)

Splits: ``val`` = a seeded 10 % of each breed of trainval.txt (:data:`VAL_SEED`, one
generator per breed), ``train`` = the rest, ``test`` = test.txt. Trimap 1 (pet) -> class
1, 2 (background) -> 0, 3 (border) -> 2. Image (bilinear) and trimap (nearest) are resized
straight to ``size x size``; images are decoded by content (the archive has grayscale, CMYK
and PNG-named-.jpg files). The rules in full and the cache key: ``docs/data.md``.
"""
from __future__ import annotations

import hashlib
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from cvloss.data import cache
from cvloss.data.types import DatasetError, SegData, check_split

__all__ = ["CLASS_NAMES", "SPLIT_FILES", "TRIMAP_TO_CLASS", "VAL_FRACTION", "VAL_SEED", "breed_of", "list_names",
           "load_oxford_pets", "read_split", "split_trainval"]

CLASS_NAMES = ("background", "pet", "border")
#: the official list each split is read from (train and val share trainval.txt)
SPLIT_FILES = {"train": "trainval.txt", "val": "trainval.txt", "test": "test.txt"}
TRIMAP_TO_CLASS = {1: 1, 2: 0, 3: 2}
#: seed of the per-breed val draw (fixed: every run, seed and loss sees the same val images)
VAL_SEED = 0x9E75
VAL_FRACTION = 0.1
_CACHE_FORMAT = 2  # 2: train/val are the split of trainval.txt (1: train = trainval, val = test)
_BAD = 255
# Lookup table trimap value -> class id; anything but 1/2/3 maps to _BAD and is reported.
_LUT = np.full(256, _BAD, dtype=np.uint8)
for _value, _cls in TRIMAP_TO_CLASS.items():
    _LUT[_value] = _cls


def breed_of(name: str) -> str:
    """The breed of an image name: the name without its trailing ``_<number>``."""
    return re.sub(r"_\d+$", "", name)


def split_trainval(names: list[str]) -> tuple[list[str], list[str]]:
    """``(train, val)`` of trainval.txt's ``names``, each in file order. A breed of n images
    gives ``max(1, floor(n / 10 + 1/2))`` to val when n >= 2 (none when n = 1), drawn by
    ``default_rng([VAL_SEED, crc32(breed)])`` over its names sorted: independent of the file's
    order and of the other breeds."""
    by_breed: dict[str, list[str]] = {}
    for name in names:
        by_breed.setdefault(breed_of(name), []).append(name)
    val: set[str] = set()
    for breed, members in by_breed.items():
        n = len(members)
        k = max(1, int(np.floor(VAL_FRACTION * n + 0.5))) if n >= 2 else 0
        rng = np.random.default_rng([VAL_SEED, zlib.crc32(breed.encode())])
        ordered = sorted(members)
        val.update(ordered[i] for i in rng.choice(n, size=k, replace=False))
    return [n for n in names if n not in val], [n for n in names if n in val]


def list_names(path: Path) -> list[str]:
    """The image names an official list (``annotations/trainval.txt``, ``test.txt``) holds,
    in file order; a missing, empty or repeating list is one :class:`DatasetError` line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise DatasetError(f"oxford-pets split list {path} is missing (run `cvloss datasets download oxford-pets`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read oxford-pets split list {path}: {exc}") from None
    names = [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not names:
        raise DatasetError(f"oxford-pets split list {path} names no images")
    if len(set(names)) != len(names):
        raise DatasetError(f"oxford-pets split list {path} names an image twice")
    return names


def read_split(root: Path, split: str) -> list[str]:
    """Image names of our ``split`` in file order: ``train`` and ``val`` split
    trainval.txt (see :func:`split_trainval`), ``test`` = test.txt."""
    check_split(split, "oxford-pets")
    path = Path(root) / "annotations" / SPLIT_FILES[split]
    names = list_names(path)
    if split == "test":
        return names
    train, val = split_trainval(names)
    chosen = train if split == "train" else val
    if not chosen:
        raise DatasetError(f"oxford-pets: {path} leaves no {split} images (every breed has a single image)")
    return chosen


def _subset(names: list[str], limit: int | None) -> list[str]:
    """The first ``limit`` would all be Abyssinians (the lists are sorted by breed):
    take ``limit`` evenly spaced entries instead, which spans every breed."""
    if limit is None or limit >= len(names):
        return names
    idx = np.unique(np.linspace(0, len(names) - 1, limit).round().astype(np.int64))
    return [names[i] for i in idx]


def _paths(root: Path, name: str) -> tuple[Path, Path]:
    return root / "images" / f"{name}.jpg", root / "annotations" / "trimaps" / f"{name}.png"


def _fingerprint(root: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        for p in _paths(root, name):
            try:
                st = p.stat()
            except FileNotFoundError:
                raise DatasetError(f"oxford-pets: {p} is listed in the split but missing") from None
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _decode_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                # Let libjpeg decode at a reduced scale (still >= size on both sides):
                # several times faster on the ~500 px originals, same result after resize.
                im.draft("RGB", (size, size))
            rgb = im.convert("RGB")  # L, CMYK, RGBA, P, ... whatever the content is
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        raise DatasetError(f"oxford-pets: cannot decode image {path}: {exc}") from None


def _decode_trimap(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"trimap mode {im.mode}, expected a single-channel PNG")
            small = im.resize((size, size), Image.Resampling.NEAREST)  # labels: never interpolate
            values = np.asarray(small).astype(np.int64)
    except Exception as exc:
        raise DatasetError(f"oxford-pets: cannot decode trimap {path}: {exc}") from None
    cls = _LUT[np.clip(values, 0, 255)]
    cls[(values < 0) | (values > 255)] = _BAD
    if (cls == _BAD).any():
        bad = sorted(set(np.unique(values[cls == _BAD]).tolist()))[:5]
        raise DatasetError(f"oxford-pets: trimap {path} has values {bad}; expected only 1, 2, 3")
    return cls


def _decode_all(root: Path, names: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    def one(name: str) -> tuple[np.ndarray, np.ndarray]:
        img_path, tri_path = _paths(root, name)
        return _decode_image(img_path, size), _decode_trimap(tri_path, size)

    # PIL releases the GIL while decoding, so threads give a real speed-up.
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pairs = list(pool.map(one, names))
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return images, masks


def _cache_path(folder: Path, split: str, size: int, limit: int | None) -> Path:
    return folder / f"{split}-{size}-{limit}.pt"


def _read_cache(path: Path, fingerprint: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated / foreign file: rebuild
        return None
    if not isinstance(blob, dict) or blob.get("format") != _CACHE_FORMAT or blob.get("fingerprint") != fingerprint:
        return None
    return blob["images"], blob["masks"]


def _write_cache(path: Path, fingerprint: str, images: torch.Tensor, masks: torch.Tensor) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Masks are stored as uint8 (4x smaller than int64 on disk); widened on load.
        torch.save({"format": _CACHE_FORMAT, "fingerprint": fingerprint, "images": images,
                    "masks": masks.to(torch.uint8)}, tmp)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of it
    except OSError:
        tmp.unlink(missing_ok=True)  # read-only data dir: work without a cache


def load_oxford_pets(root: Path, split: Literal["train", "val", "test"], size: int = 128,
                     limit: int | None = None, cache_dir: Path | None = None) -> SegData:
    """Load our ``split`` of Oxford-IIIT Pet from ``root`` (``<data-dir>/oxford-pets``).

    Args:
        root: folder holding ``images/`` and ``annotations/`` (layout in the module docstring).
        split: ``"train"`` / ``"val"`` = the two parts of trainval.txt (90 % / 10 % per
            breed), ``"test"`` = official test.txt (see the module docstring).
        size: output side; images and masks are resized to ``size x size`` (aspect not kept).
        limit: at most this many images: evenly spaced through the breed-sorted list,
            so all breeds appear; the same ``limit`` always gives the same images.
        cache_dir: where the decoded split is cached (default
            :func:`cvloss.data.cache.cache_dir` of ``root``; :func:`cvloss.data.registry.load_dataset`
            passes the dataset's, which is never inside an adopted copy).

    Returns:
        :class:`SegData` with images ``(N, 3, size, size)`` uint8 and masks
        ``(N, size, size)`` int64 in {0 background, 1 pet, 2 border}, ``real=None``.
    """
    root = Path(root)
    if size < 8:
        raise DatasetError(f"size must be >= 8 pixels, got {size}")
    names = _subset(read_split(root, split), limit)
    # The names themselves enter the key: the split's contents, not only its name.
    fingerprint = hashlib.sha256((split + "\n" + "\n".join(names) + "\n" + _fingerprint(root, names)).encode()).hexdigest()
    path = _cache_path(Path(cache_dir) if cache_dir is not None else cache.cache_dir(root), split, size, limit)
    cached = _read_cache(path, fingerprint) if cache.enabled() else None
    if cached is not None:
        images, masks = cached
    else:
        images, masks = _decode_all(root, names, size)
        if cache.enabled():
            _write_cache(path, fingerprint, images, masks)
    return SegData(images=images, masks=masks.long(), class_names=CLASS_NAMES, name="oxford-pets", real=None)
