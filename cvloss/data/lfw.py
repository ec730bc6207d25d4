"""Labeled Faces in the Wild (Huang et al. 2007), read from its real on-disk layout.

Layout under ``<data-dir>/lfw/`` (what the official archives and lists extract to)::

    lfw-deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg   (preferred when present)
    lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg                 (the plain images otherwise)
    pairs.txt           View 2: first line "10\\t300", then 10 folds of 300 same pairs
                        ("name\\tn1\\tn2") followed by 300 different pairs
                        ("name1\\tn1\\tname2\\tn2"); image n of a person is Name_%04d.jpg
    peopleDevTrain.txt  View 1 training people: a count line, then "name\\tnum_images"
    pairsDevTest.txt    View 1 test pairs: a count line ("500"), 500 same then 500 different

Protocol (identity-disjoint, stated exactly):

* ``train``: the people listed in ``peopleDevTrain.txt``, **minus every person named in
  ``pairs.txt``** (View 1 and View 2 share people, so training on all of
  peopleDevTrain would leak test identities), with all their images.
* ``val``: the 6000 pairs of ``pairs.txt`` in its 10 folds (fold k = lines
  1 + 600k … 600(k+1)), scored by the 10-fold protocol (threshold from nine folds,
  applied to the tenth). ``pairs="pairsDevTest.txt"`` evaluates the View 1 dev pairs
  instead (1000 pairs, dealt into 10 folds by position, i mod 10); the train identities
  then exclude the people of that file as well as of pairs.txt.

Images (250×250 JPEG) are decoded once with PIL, centre-cropped to ``crop`` pixels (the
face occupies the centre of the aligned LFW images) and resized to ``size`` (bilinear,
antialiased). Returns :class:`~cvloss.data.synth_ids.IdentityData`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from cvloss.data.synth_ids import N_FOLDS, IdentityData
from cvloss.data.types import DatasetError

IMAGE_DIRS = ("lfw-deepfunneled", "lfw")


def image_dir(root: Path) -> Path:
    """The image folder: ``lfw-deepfunneled`` when present, else ``lfw``."""
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(f"no LFW image folder under {root}: expected one of {', '.join(IMAGE_DIRS)} "
                       f"(extract lfw-deepfunneled.tgz or lfw.tgz there)")


def image_path(images: Path, name: str, number: int) -> Path:
    return images / name / f"{name}_{number:04d}.jpg"


def _lines(path: Path) -> list[list[str]]:
    if not path.exists():
        raise DatasetError(f"missing {path.name} under {path.parent}; run `cvloss datasets download lfw`")
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]


def read_pairs(path: Path) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray]:
    """Parse ``pairs.txt`` (header "folds\\tn") or ``pairsDevTest.txt`` (header "n").

    Returns ``(pairs, same, folds)``: pairs as (name1, n1, name2, n2), ``same`` bool
    ``(M,)``, ``folds`` int64 ``(M,)``. pairs.txt: fold k holds n same then n different
    pairs; pairsDevTest.txt (a single set of n same then n different): fold = i mod 10.
    """
    rows = _lines(path)
    header, body = rows[0], rows[1:]
    if len(header) == 2:
        n_folds, n = int(header[0]), int(header[1])
    elif len(header) == 1:
        n_folds, n = 1, int(header[0])
    else:
        raise DatasetError(f"{path.name}: unexpected first line {' '.join(header)!r}")
    if len(body) != n_folds * 2 * n:
        raise DatasetError(f"{path.name}: expected {n_folds * 2 * n} pair lines, found {len(body)}")
    pairs, same = [], []
    for r in body:
        if len(r) == 3:
            pairs.append((r[0], int(r[1]), r[0], int(r[2])))
            same.append(True)
        elif len(r) == 4:
            pairs.append((r[0], int(r[1]), r[2], int(r[3])))
            same.append(False)
        else:
            raise DatasetError(f"{path.name}: bad pair line {' '.join(r)!r}")
    idx = np.arange(len(pairs))
    folds = idx // (2 * n) if n_folds > 1 else idx % N_FOLDS
    return pairs, np.array(same), folds.astype(np.int64)


def read_people(path: Path) -> list[tuple[str, int]]:
    """Parse ``peopleDevTrain.txt`` / ``peopleDevTest.txt``: (name, number of images)."""
    rows = _lines(path)
    return [(r[0], int(r[1])) for r in rows[1:]]


def _decode(paths: list[Path], size: int, crop: int) -> torch.Tensor:
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        if not p.exists():
            raise DatasetError(f"missing LFW image {p}")
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            c = min(crop, w, h)
            left, top = (w - c) // 2, (h - c) // 2
            im = im.crop((left, top, left + c, top + c)).resize((size, size), Image.BILINEAR, reducing_gap=None)
            out[i] = np.asarray(im)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def load_lfw(root: Path, split: Literal["train", "val"], size: int = 64, limit: int | None = None,
             seed: int = 0, crop: int = 128, pairs: str = "pairs.txt") -> IdentityData:
    """Catalog loader of ``lfw`` (see the module docstring for the protocol).

    Args:
        root: ``<data-dir>/lfw``.
        split: ``"train"`` (identities of peopleDevTrain.txt not in the evaluation pairs)
            or ``"val"`` (the pairs' images, with same/folds).
        size: output side in pixels; crop: centre crop in pixels before resizing.
        limit: train: at most this many identities (the first in file order); val: ignored.
        pairs: ``"pairs.txt"`` (default, 10 folds × 600) or ``"pairsDevTest.txt"``.
    """
    root = Path(root)
    if pairs not in ("pairs.txt", "pairsDevTest.txt"):
        raise DatasetError(f"lfw: pairs must be pairs.txt or pairsDevTest.txt; got {pairs!r}")
    images = image_dir(root)
    if split == "val":
        plist, same, folds = read_pairs(root / pairs)
        keys = sorted({(a, i) for a, i, _, _ in plist} | {(b, j) for _, _, b, j in plist})
        index = {k: n for n, k in enumerate(keys)}
        people = sorted({k[0] for k in keys})
        pid = {p: n for n, p in enumerate(people)}
        x = _decode([image_path(images, a, i) for a, i in keys], size, crop)
        labels = torch.tensor([pid[a] for a, _ in keys], dtype=torch.int64)
        pair_idx = torch.tensor([(index[(a, i)], index[(b, j)]) for a, i, b, j in plist], dtype=torch.int64)
        return IdentityData(x, labels, tuple(people), "lfw", pairs=pair_idx, same=torch.from_numpy(same),
                            folds=torch.from_numpy(folds))
    if split != "train":
        raise DatasetError(f"unknown split {split!r}; valid: train, val")
    excluded = set()
    for name in {"pairs.txt", pairs}:
        plist, _, _ = read_pairs(root / name)
        excluded |= {a for a, _, _, _ in plist} | {b for _, _, b, _ in plist}
    people = [(n, c) for n, c in read_people(root / "peopleDevTrain.txt") if n not in excluded]
    if limit is not None:
        people = people[: int(limit)]
    if not people:
        raise DatasetError("lfw: no training identity left after removing the people of the evaluation pairs")
    paths, labels = [], []
    for k, (name, count) in enumerate(people):
        paths += [image_path(images, name, i) for i in range(1, count + 1)]
        labels += [k] * count
    return IdentityData(_decode(paths, size, crop), torch.tensor(labels, dtype=torch.int64),
                        tuple(n for n, _ in people), "lfw")
