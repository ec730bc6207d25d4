"""DIV2K (Agustsson & Timofte, NTIRE 2017) for super-resolution, and the SR data container.

On-disk layout (the extracted official archives, under ``<data-dir>/div2k/``)::

    DIV2K_train_HR/0001.png ... 0800.png            high-resolution, 2K, RGB
    DIV2K_valid_HR/0801.png ... 0900.png
    DIV2K_{train,valid}_LR_bicubic/X{2,3,4}/0001x{s}.png ...   official LR, optional

Splits (disjoint by id): ``train`` 0001-0700, ``val`` 0701-0800 (both from
``DIV2K_train_*``), ``test`` 0801-0900 (``DIV2K_valid_*``, what papers report on).
Images are decoded once to uint8 tensors at native size (a list). An HR image of H×W is
cropped (top-left) to s·h × s·w so that every LR pixel has an s×s HR block
(:func:`make_pair`); official LR files are used when present, else
:func:`bicubic_downsample` makes them. More: ``docs/data.md``, "div2k".
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cvloss.data.types import SRData, DatasetError, check_split

__all__ = ["SCALES", "SPLIT_IDS", "SRData", "bicubic_downsample", "check_scale", "hr_files", "load_div2k",
           "make_pair", "read_png"]

SCALES = (2, 3, 4)
#: split -> (archive tag: DIV2K_<tag>_HR, first id, last id), ids inclusive
SPLIT_IDS = {"train": ("train", 1, 700), "val": ("train", 701, 800), "test": ("valid", 801, 900)}


def check_scale(scale: int) -> int:
    """Return ``scale`` as an int; :class:`DatasetError` unless it is 2, 3 or 4."""
    try:
        s = int(scale)
    except (TypeError, ValueError):
        s = -1
    if s not in SCALES or (isinstance(scale, float) and not float(scale).is_integer()):
        raise DatasetError(f"super-resolution scale must be 2, 3 or 4 (DIV2K's bicubic tracks); got {scale!r}")
    return s


def read_png(path: Path) -> torch.Tensor:
    """An image file -> ``(3, H, W)`` uint8 RGB (grayscale repeated, alpha dropped)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def bicubic_downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic ×1/``scale`` downsampling, quantised to 8 bits (DIV2K's track).

    ``hr``: ``(3, H, W)`` or ``(N, 3, H, W)`` uint8 with H, W multiples of ``scale``;
    returns uint8 of size H/s × W/s. Implementation:
    ``torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False)``
    -- Keys' cubic kernel with a = -0.5 stretched by the scale factor (the kernel MATLAB's
    ``imresize`` and PIL's ``BICUBIC`` use when shrinking, which made DIV2K's official LR
    files); the result is clamped to [0, 255] and rounded, as a PNG of the LR image would be.
    """
    x = hr[None] if hr.dim() == 3 else hr
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"bicubic_downsample: size {h}x{w} is not a multiple of the scale {scale}")
    y = F.interpolate(x.float(), size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    y = y.clamp_(0, 255).round_().to(torch.uint8)
    return y[0] if hr.dim() == 3 else y


def make_pair(hr: torch.Tensor, scale: int, lr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(HR, LR) with HR cropped (top-left) to ``scale`` × the LR size.

    Without ``lr``: HR is cropped to the largest multiple of ``scale`` and downsampled
    with :func:`bicubic_downsample`. With an official ``lr``: h = min(⌊H/s⌋, h_LR) (the
    official files are ⌈H/s⌉ when H is not a multiple; the extra LR row has no full HR
    block and is dropped), likewise w.
    """
    H, W = hr.shape[-2:]
    h, w = H // scale, W // scale
    if lr is not None:
        h, w = min(h, lr.shape[-2]), min(w, lr.shape[-1])
        return hr[..., : h * scale, : w * scale], lr[..., :h, :w]
    hr = hr[..., : h * scale, : w * scale]
    return hr, bicubic_downsample(hr, scale)


_NAME = re.compile(r"^(\d{4})\.png$")


def hr_files(root: str | Path, split: str) -> list[Path]:
    """The HR files of ``split`` (:data:`SPLIT_IDS`) under ``root`` in name order: only
    ``NNNN.png`` with NNNN in the split's range; :class:`DatasetError` when there is none."""
    tag, first, last = SPLIT_IDS[check_split(split, "div2k")]
    folder = Path(root) / f"DIV2K_{tag}_HR"
    files = sorted(f for f in folder.glob("*.png") if (m := _NAME.match(f.name)) and first <= int(m.group(1)) <= last) \
        if folder.is_dir() else []
    if not files:
        raise DatasetError(f"no DIV2K {split} images ({first:04d}.png-{last:04d}.png) in {folder}: "
                           f"run `cvloss datasets download div2k` (add --data-dir if you use one)")
    return files


def load_div2k(root: str | Path, split: str, limit: int | None = None, scale: int | None = None) -> SRData:
    """Load split ``train`` (0001-0700), ``val`` (0701-0800) or ``test`` (0801-0900) of
    DIV2K from ``root``.

    Args:
        root: ``<data-dir>/div2k`` holding ``DIV2K_{train,valid}_HR/`` (see module docstring).
        split: ``train``, ``val`` or ``test``.
        limit: the first ``limit`` images in name order (a deterministic subset).
        scale: also read the official bicubic LR files of this scale
            (``DIV2K_{train|valid}_LR_bicubic/X{s}/{id}x{s}.png``, the archive of the
            split's HR folder) when that folder exists.

    Only files named ``NNNN.png`` with NNNN in the split's range are read. Errors
    (:class:`DatasetError`, one line): no HR folder / no images, an unreadable file, an
    LR folder that lacks one of the HR images' LR files.
    """
    files = hr_files(root, split)
    tag = SPLIT_IDS[split][0]
    root = Path(root)
    files = files[:limit] if limit else files
    names = tuple(f.stem for f in files)
    hr = [read_png(f) for f in files]
    lr: dict[int, list[torch.Tensor]] = {}
    if scale is not None:
        s = check_scale(scale)
        lr_dir = root / f"DIV2K_{tag}_LR_bicubic" / f"X{s}"
        if lr_dir.is_dir():
            missing = [n for n in names if not (lr_dir / f"{n}x{s}.png").is_file()]
            if missing:
                raise DatasetError(f"{lr_dir} lacks the LR files of {', '.join(missing[:3])}"
                                   f"{'...' if len(missing) > 3 else ''} (expected e.g. {names[0]}x{s}.png)")
            lr[s] = [read_png(lr_dir / f"{n}x{s}.png") for n in names]
    return SRData(hr=hr, names=names, name="div2k", lr=lr)
