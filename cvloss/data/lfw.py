"""Labeled Faces in the Wild (Huang et al. 2007), read from its real on-disk layout. Under
``<data-dir>/lfw/`` (torchvision's ``lfw-py/`` is the same and can be adopted): an
image folder ``lfw-deepfunneled/`` (preferred), ``lfw/`` or ``lfw_funneled/`` of
``Name/Name_%04d.jpg``; View 1's ``peopleDevTrain.txt``, ``pairsDevTest.txt``; View 2's
``people.txt``, ``pairs.txt`` (10 folds of 300 same + 300 different pairs).

* View 1 (no ``fold``): ``train`` = peopleDevTrain.txt's people, ``val`` = the 1000 pairs
  of pairsDevTest.txt; ``test`` is refused (LFW's test is View 2).
* View 2 (``fold=f``, unrestricted): ``train`` = the people of the other nine sets of
  people.txt, ``test`` = fold f's 600 pairs (none may use a training person), ``val`` =
  the other folds' 5400 pairs, where fold f's threshold is chosen.

Images are centre-cropped to ``crop``, resized to ``size``; returns
:class:`~cvloss.data.synth_ids.IdentityData`. More: ``docs/data.md``, "lfw".
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from cvloss.data.synth_ids import N_FOLDS, IdentityData
from cvloss.data.types import DatasetError, check_split

__all__ = ["IMAGE_DIRS", "N_VIEW2_FOLDS", "image_dir", "image_path", "load_lfw", "read_pairs", "read_people",
           "read_people_sets", "train_people", "usable_train_identities"]

IMAGE_DIRS = ("lfw-deepfunneled", "lfw", "lfw_funneled")  # in order of preference
N_VIEW2_FOLDS = 10
Pair = tuple[str, int, str, int]


def image_dir(root: Path) -> Path:
    """The image folder: the first of :data:`IMAGE_DIRS` present (deep-funneled, plain,
    funneled)."""
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


def read_pairs(path: Path) -> tuple[list[Pair], np.ndarray, np.ndarray]:
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
    return pairs, np.array(same, dtype=bool), folds.astype(np.int64)


def _person(path: Path, row: list[str]) -> tuple[str, int]:
    if len(row) != 2 or not row[1].isdigit():
        raise DatasetError(f"{path.name}: bad person line {' '.join(row)!r} (expected 'name<TAB>number of images')")
    return row[0], int(row[1])


def read_people(path: Path) -> list[tuple[str, int]]:
    """Parse ``peopleDevTrain.txt`` / ``peopleDevTest.txt``: (name, number of images)."""
    rows = _lines(path)
    return [_person(path, r) for r in rows[1:]]


def read_people_sets(path: Path) -> list[list[tuple[str, int]]]:
    """Parse ``people.txt``: the 10 sets of View 2, each a list of (name, number of images)
    in file order. The file is a line with the number of sets, then per set a count line
    and that many "name\\tn" lines; a person listed in two sets is refused."""
    rows = _lines(path)
    if not rows or len(rows[0]) != 1 or not rows[0][0].isdigit():
        raise DatasetError(f"{path.name}: the first line must be the number of sets (10)")
    n_sets, pos, sets = int(rows[0][0]), 1, []
    for k in range(n_sets):
        if pos >= len(rows) or len(rows[pos]) != 1 or not rows[pos][0].isdigit():
            raise DatasetError(f"{path.name}: set {k} has no count line")
        count = int(rows[pos][0])
        members = [_person(path, r) for r in rows[pos + 1 : pos + 1 + count]]
        if len(members) != count:
            raise DatasetError(f"{path.name}: set {k} announces {count} people, the file ends after {len(members)}")
        sets.append(members)
        pos += 1 + count
    if pos != len(rows):
        raise DatasetError(f"{path.name}: {len(rows) - pos} line(s) after the {n_sets} announced sets")
    seen: dict[str, int] = {}
    for k, members in enumerate(sets):
        for name, _ in members:
            if name in seen:
                raise DatasetError(f"{path.name}: {name} is in set {seen[name]} and set {k}; the sets must be disjoint")
            seen[name] = k
    return sets


def _check_fold(fold: int | None) -> int | None:
    if fold is None:
        return None
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= int(fold) < N_VIEW2_FOLDS:
        raise DatasetError(f"lfw: fold must be one of 0..{N_VIEW2_FOLDS - 1} (View 2's ten folds); got {fold!r}")
    return int(fold)


def _people_named(pairs: list[Pair]) -> set[str]:
    return {a for a, _, _, _ in pairs} | {b for _, _, b, _ in pairs}


def train_people(root: Path, fold: int | None = None) -> list[tuple[str, int]]:
    """The training people ``(name, number of images)`` in file order: View 1's
    peopleDevTrain.txt minus anyone of pairsDevTest.txt (``fold=None``), or the people of
    the nine sets of people.txt other than ``fold``."""
    root, fold = Path(root), _check_fold(fold)
    if fold is None:
        dev_test = _people_named(read_pairs(root / "pairsDevTest.txt")[0])
        return [(n, c) for n, c in read_people(root / "peopleDevTrain.txt") if n not in dev_test]
    sets = read_people_sets(root / "people.txt")
    if len(sets) != N_VIEW2_FOLDS:
        raise DatasetError(f"lfw: people.txt lists {len(sets)} sets; View 2 has {N_VIEW2_FOLDS}")
    return [p for k, members in enumerate(sets) if k != fold for p in members]


def usable_train_identities(root: Path, fold: int | None = None, limit: int | None = None) -> int:
    """How many training identities of ``load_lfw(root, "train", fold=fold, limit=limit)``
    have 2 or more images (the ones a P×K sampler can draw), read from the lists alone
    (no image is decoded), so a task can refuse a batch of P identities it cannot fill."""
    people = train_people(root, fold)
    if limit is not None:
        people = people[: int(limit)]
    return sum(1 for _, count in people if count >= 2)


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


def _pair_split(images: Path, plist: list[Pair], same: np.ndarray, folds: np.ndarray, size: int,
                crop: int) -> IdentityData:
    """The images of ``plist`` (each once, sorted by person and number) with the pairs
    as indices into them."""
    keys = sorted({(a, i) for a, i, _, _ in plist} | {(b, j) for _, _, b, j in plist})
    index = {k: n for n, k in enumerate(keys)}
    people = sorted({k[0] for k in keys})
    pid = {p: n for n, p in enumerate(people)}
    x = _decode([image_path(images, a, i) for a, i in keys], size, crop)
    labels = torch.tensor([pid[a] for a, _ in keys], dtype=torch.int64)
    pair_idx = torch.tensor([(index[(a, i)], index[(b, j)]) for a, i, b, j in plist], dtype=torch.int64)
    return IdentityData(x, labels, tuple(people), "lfw", pairs=pair_idx.view(-1, 2),
                        same=torch.from_numpy(np.asarray(same, dtype=bool)),
                        folds=torch.from_numpy(np.asarray(folds, dtype=np.int64)))


def load_lfw(root: Path, split: Literal["train", "val", "test"], size: int = 64, limit: int | None = None,
             seed: int = 0, crop: int = 128, fold: int | None = None) -> IdentityData:
    """Catalog loader of ``lfw`` (see the module docstring for the protocol).

    Args:
        root: ``<data-dir>/lfw``.
        split: ``"train"`` (the training people, every image), ``"val"`` (pairsDevTest
            pairs and their images, with same/folds) or ``"test"`` (fold ``fold`` of
            pairs.txt; needs ``fold``).
        size: output side in pixels; crop: centre crop in pixels before resizing.
        limit: train: at most this many identities (the first in file order); val and
            test: ignored (their pairs are fixed).
        seed: unused (the lists fix every split).
        fold: ``None`` for View 1, or 0..9 for View 2's fold: train on the other nine
            sets' people, test on the fold's 600 pairs, val = the 5400 pairs of the nine
            other folds of pairs.txt (where the fold's threshold is chosen).

    Returns :class:`IdentityData`: train without pairs; val/test with ``pairs`` ``(M, 2)``,
    ``same`` ``(M,)`` and ``folds`` ``(M,)`` (test: every entry ``fold``).
    """
    root = Path(root)
    check_split(split, "lfw")
    fold = _check_fold(fold)
    if split == "test" and fold is None:
        raise DatasetError("lfw: the test split is View 2 (pairs.txt, 10 folds) and needs fold=0..9: "
                           "train with the same fold, test on that fold's 600 pairs")
    images = image_dir(root)
    if split == "train":
        people = train_people(root, fold)
        if limit is not None:
            people = people[: int(limit)]
        if not people:
            raise DatasetError("lfw: no training identity in the lists (peopleDevTrain.txt / people.txt)")
        paths, labels = [], []
        for k, (name, count) in enumerate(people):
            paths += [image_path(images, name, i) for i in range(1, count + 1)]
            labels += [k] * count
        return IdentityData(_decode(paths, size, crop), torch.tensor(labels, dtype=torch.int64),
                            tuple(n for n, _ in people), "lfw")
    trained = {n for n, _ in train_people(root, fold)}
    if split == "val" and fold is not None:  # the nine training folds' pairs: the threshold's
        plist, same, folds = read_pairs(root / "pairs.txt")
        other = folds != fold
        return _pair_split(images, [p for p, k in zip(plist, other) if k], same[other], folds[other], size, crop)
    if split == "val":
        plist, same, folds = read_pairs(root / "pairsDevTest.txt")
        keep = np.array([a not in trained and b not in trained for a, _, b, _ in plist], dtype=bool)
        if not keep.any():
            raise DatasetError(f"lfw: no pairsDevTest.txt pair is free of the training people of fold {fold}")
        plist = [p for p, k in zip(plist, keep) if k]
        return _pair_split(images, plist, same[keep], folds[keep], size, crop)
    plist, same, folds = read_pairs(root / "pairs.txt")
    if len(np.unique(folds)) != N_VIEW2_FOLDS:
        raise DatasetError(f"lfw: pairs.txt must hold {N_VIEW2_FOLDS} folds (first line '10<TAB>300')")
    mine = folds == fold
    plist = [p for p, k in zip(plist, mine) if k]
    leaked = sorted(_people_named(plist) & trained)
    if leaked:
        raise DatasetError(f"lfw: fold {fold} of pairs.txt uses {len(leaked)} training person(s) of that fold "
                           f"(e.g. {leaked[0]}): people.txt and pairs.txt do not match")
    return _pair_split(images, plist, same[mine], folds[mine], size, crop)
