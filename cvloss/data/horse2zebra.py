"""Unpaired two-domain image data for the ``translate`` task, and the loader of any dataset
in the CycleGAN on-disk layout (horse2zebra, monet2photo, summer2winter_yosemite, ...)::

    <root>/NAME/trainA/*.jpg    domain A, training   (horse2zebra: 1067 horses)
    <root>/NAME/trainB/*.jpg    domain B, training   (horse2zebra: 1334 zebras)
    <root>/NAME/testA/*.jpg     domain A, test       (120)
    <root>/NAME/testB/*.jpg     domain B, test       (140)

:func:`load_cyclegan_folder` accepts ``<root>`` holding ``trainA`` directly or through
one sub-folder; the domains are unpaired. Splits: ``val`` = a seeded 10 % of trainA and
of trainB (``max(1, floor(n / 10 + 1/2))``, none when n = 1; :data:`VAL_SEED`),
``train`` = the rest, ``test`` = testA / testB. Images are decoded by content through
PIL, converted to RGB and resized to ``size x size`` (bilinear, antialiased); ``limit``
picks evenly spaced files per domain. More: ``docs/data.md``, "horse2zebra".
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvloss.data.types import TranslateData, DatasetError, check_split

__all__ = ["IMAGE_SUFFIXES", "SPLIT_FOLDERS", "TranslateData", "VAL_FRACTION", "VAL_SEED", "find_cyclegan_root",
           "load_cyclegan_folder", "load_horse2zebra", "split_files"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: the folders (domain A, domain B) each split is read from (train and val share trainA/B)
SPLIT_FOLDERS = {"train": ("trainA", "trainB"), "val": ("trainA", "trainB"), "test": ("testA", "testB")}
#: seed of the val draw from trainA / trainB (fixed: every seed and loss sees the same val)
VAL_SEED = 0xC7C1E
VAL_FRACTION = 0.1


def find_cyclegan_root(root: Path | str) -> Path:
    """The folder holding ``trainA``: ``root`` itself or its only sub-folder that has one."""
    root = Path(root)
    if (root / "trainA").is_dir():
        return root
    subs = [p for p in sorted(root.iterdir()) if (p / "trainA").is_dir()] if root.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        raise DatasetError(f"{root} holds several CycleGAN datasets ({', '.join(p.name for p in subs)}); point at one")
    raise DatasetError(f"no CycleGAN layout (trainA/ trainB/ testA/ testB/) under {root}")


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"CycleGAN folder {folder} is missing")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"CycleGAN folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def split_files(base: Path, split: str) -> tuple[list[Path], list[Path]]:
    """The (domain A, domain B) files of ``split`` under the CycleGAN folder ``base``, in
    name order (the val rule: module docstring)."""
    out = []
    for domain, folder in enumerate(SPLIT_FOLDERS[check_split(split, "the CycleGAN layout")]):
        files = _list_images(base / folder)
        if split != "test":
            n = len(files)
            k = max(1, int(np.floor(VAL_FRACTION * n + 0.5))) if n >= 2 else 0
            val = set(np.random.default_rng([VAL_SEED, domain]).choice(n, size=k, replace=False).tolist())
            files = [f for i, f in enumerate(files) if (i in val) == (split == "val")]
            if not files:
                raise DatasetError(f"CycleGAN folder {base / folder} has {n} image(s): too few for a {split} split")
        out.append(files)
    return out[0], out[1]


def _subset(files: list[Path], limit: int | None) -> list[Path]:
    if limit is None or limit >= len(files):
        return files
    idx = np.unique(np.linspace(0, len(files) - 1, limit).round().astype(np.int64))
    return [files[i] for i in idx]


def _decode(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (size, size))  # decode at a reduced scale when shrinking a lot
            rgb = im.convert("RGB")  # grayscale (L), CMYK, RGBA, P -> RGB
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        raise DatasetError(f"cannot decode image {path}: {exc}") from None


def _decode_all(files: list[Path], size: int) -> torch.Tensor:
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda p: _decode(p, size), files))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_cyclegan_folder(root: Path | str, split: str, size: int = 256, limit: int | None = None,
                         name: str = "cyclegan", domains: tuple[str, str] = ("A", "B")) -> TranslateData:
    """Load ``split`` (``train`` / ``val`` -> 90 % / 10 % of trainA and trainB, ``test`` ->
    testA/testB) of a dataset in the CycleGAN layout under ``root`` (see the module docstring).

    Args:
        size: output side in pixels; ``limit``: at most this many images per domain
            (evenly spaced in name order).

    Returns:
        :class:`TranslateData`, ``paired=False``, images ``(N, 3, size, size)`` uint8.
    """
    check_split(split, name)
    if size < 16:
        raise DatasetError(f"size must be >= 16 pixels, got {size}")
    fa, fb = (_subset(files, limit) for files in split_files(find_cyclegan_root(root), split))
    return TranslateData(a=_decode_all(fa, size), b=_decode_all(fb, size), paired=False, domains=domains, name=name)


def load_horse2zebra(root: Path | str, split: str, size: int = 256, limit: int | None = None) -> TranslateData:
    """Catalog loader of ``horse2zebra`` (A = horse, B = zebra); see :func:`load_cyclegan_folder`."""
    return load_cyclegan_folder(root, split, size=size, limit=limit, name="horse2zebra", domains=("horse", "zebra"))
