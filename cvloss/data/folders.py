"""Your own data: one folder per dataset, for ``seg``, ``sr``, ``embed`` and ``translate``.

``--dataset PATH`` names such a folder (a directory, or ``./…``, ``../…``, ``/…``, ``~…``;
a catalog name wins over a folder of the same name). Layouts::

    seg:        images/<stem>.<ext>   masks/<stem>.png   [classes.txt]
    sr:         <any path>.<ext>      (the HR images; LR is made by the task)
    embed:      <identity>/<file>.<ext>   (one sub-folder per identity)
    translate:  trainA/ trainB/ testA/ testB/
    every task: [splits/train.txt splits/val.txt splits/test.txt]

Without ``splits/``: a fixed seeded split (:data:`SPLIT_SEED`). Untrusted input stays
harmless (links kept inside, :data:`MAX_FILES`, :data:`MAX_IMAGE_PIXELS`); each problem is
one :class:`DatasetError` line naming the file. All the rules: ``docs/data.md``.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from cvloss.data.types import SPLITS, DatasetError, IdentityData, SegData, SRData, TranslateData, check_split
from cvloss.registry import Registry
from cvloss.settings import env_number

__all__ = [
    "LOADERS", "FolderLayout", "Indexed", "IMAGE_SUFFIXES", "MAX_FILES", "MAX_IMAGE_PIXELS", "MIN_IMAGE_SIDE",
    "SPLIT_SEED", "PAIR_SEED",
    "check_name", "looks_like_path", "resolve_folder", "dataset_label", "fingerprint", "detect_task", "index_folder",
    "describe_folder", "load_folder", "load_seg_folder", "load_sr_folder", "load_embed_folder",
    "load_translate_folder",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: the most files one dataset folder may hold ($CVLOSS_MAX_FOLDER_FILES replaces it)
MAX_FILES = 200_000
#: the largest image (width x height) decoded; PIL's own bomb check is 2 x 89 M pixels
MAX_IMAGE_PIXELS = 40_000_000
#: the shortest side an image may have (the smallest ``size`` a loader takes)
MIN_IMAGE_SIDE = 8
MAX_UNLISTED_CLASSES = 64
SPLIT_SEED = 0x17F01D  # the seeded split: fixed, so every trial seed and loss sees the same splits
PAIR_SEED = 0x17FA12  # the verification pairs of embed val / test
N_FOLDS = 10
MIN_EVAL_IDS = 2 * N_FOLDS
VAL_SEED, VAL_FRACTION = 0xC7C1E, 0.1  # translate: horse2zebra's val draw (cvloss.data.horse2zebra)  # 10 folds of at least 2 identities (a different pair needs two)
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


# ----------------------------------------------------------------------------- names
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


def check_name(name: Any, what: str = "dataset name") -> str:
    """``name`` when it is a plain name -- ``[a-z0-9][a-z0-9._-]*``, no ``..``, at most 100
    characters -- so that ``<root>/<name>`` is one folder directly in ``<root>``: no
    separator, nothing absolute, no way up. Else one :class:`DatasetError` line. The rule
    of every catalog dataset's and loader's name (:mod:`cvloss.data.registry`)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise DatasetError(f"{what} {shown} is not a plain name: use lower-case letters, digits, '.', '_' and "
                           f"'-', starting with a letter or digit, no '..', at most 100 characters")
    return name


def looks_like_path(text: str) -> bool:
    """``True`` for ``./x``, ``../x``, ``/x``, ``~x`` (and ``.\\x`` on Windows): written as a path."""
    return str(text).startswith(("./", "../", "/", "~", ".\\", "..\\")) or str(text) in (".", "..")


def resolve_folder(text: str | Path) -> Path:
    """The absolute, symlink-free path of the folder ``text``; one line when it is none."""
    try:
        path = Path(str(text)).expanduser()
    except RuntimeError:  # ~user of no such user
        raise DatasetError(f"--dataset {text}: no such folder (no such user's home)") from None
    if not path.exists():
        raise DatasetError(f"--dataset {text}: no such folder (and no catalog dataset of that name)")
    if not path.is_dir():
        raise DatasetError(f"--dataset {text}: not a folder; a folder dataset is a directory "
                           f"({', '.join(LOADERS.names())})")
    return _resolve(path)


def dataset_label(name: str) -> str:
    """The dataset part of a results path: a catalog name as it is (checked again here:
    a plain name, see :func:`check_name`, so the folder stays in
    ``<out>/<task>/``); a folder (an absolute path) as ``<basename>-<first 8 hex of
    sha256(path)>``, so two folders of one name never share results and the label is a
    plain file name."""
    if not os.path.isabs(name):
        return check_name(name)
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name).lstrip(".") or "data"
    return f"{base}-{hashlib.sha256(str(name).encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class Entry:
    """One file of a dataset folder: ``rel`` its POSIX path under the folder as listed,
    ``path`` the file to open (a link's target, always inside the folder)."""

    rel: str
    path: Path
    size: int
    mtime_ns: int


def _resolve(path: Path) -> Path:
    """``path`` with every link resolved; a link that leads back to itself (``a -> b ->
    a``, or ``x -> x``) is one :class:`DatasetError` line naming it, not Python's
    ``RuntimeError``/``OSError``."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise DatasetError(f"{path} is a symbolic link loop ({type(exc).__name__}: {exc}): refused; remove the "
                           f"link") from None


def _walk(root: Path) -> list[Entry]:
    """Every regular file under ``root`` (sorted by ``rel``), hidden names skipped. Links
    are followed only into ``root``; a link out of it (or a dangling one) is refused."""
    cap = int(env_number("CVLOSS_MAX_FOLDER_FILES", MAX_FILES, int, positive=True))
    out: list[Entry] = []
    seen: set[Path] = set()

    def visit(folder: Path, rel: str) -> None:
        real = _resolve(folder)
        if real in seen:  # a link loop, or two links to one folder: list it once
            return
        seen.add(real)
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DatasetError(f"cannot list {folder}: {exc.strerror or exc}") from None
        for child in children:
            if child.name.startswith("."):
                continue
            crel = f"{rel}{child.name}"
            path = Path(child.path)
            if child.is_symlink():
                target = _resolve(path)
                if not target.is_relative_to(root) or not target.exists():
                    raise DatasetError(f"{path} is a symbolic link out of the dataset folder {root} (or dangling): "
                                       f"refused; copy the file in instead")
                path = target
            if path.is_dir():
                visit(path, crel + "/")
            elif path.is_file():
                st = path.stat()
                out.append(Entry(crel, path, st.st_size, st.st_mtime_ns))
                if len(out) > cap:
                    raise DatasetError(f"dataset folder {root} holds more than {cap} files: point at the dataset "
                                       f"itself (or raise $CVLOSS_MAX_FOLDER_FILES)")

    visit(root, "")
    return sorted(out, key=lambda e: e.rel)


def fingerprint(root: str | Path) -> str:
    """sha256 over ``rel<TAB>size<TAB>mtime_ns`` of every file of the folder (sorted): a
    file added, removed, renamed, rewritten or touched changes it; reading nothing."""
    root = _resolve(Path(root))
    digest = hashlib.sha256()
    for e in _walk(root):
        digest.update(f"{e.rel}\t{e.size}\t{e.mtime_ns}\n".encode())
    return digest.hexdigest()


def _is_image(rel: str) -> bool:
    return Path(rel).suffix.lower() in IMAGE_SUFFIXES


def _stem(rel: str) -> str:
    """``a/b.png`` -> ``a/b``: the key of an image (suffix dropped)."""
    p = Path(rel)
    return str(p.with_suffix("").as_posix()) if p.suffix.lower() in IMAGE_SUFFIXES else rel


def _dirs(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


@dataclass(frozen=True)
class Indexed:
    """What a layout's ``index`` finds in a folder: ``files`` (key -> its files; seg: (image,
    mask), an identity: its images), ``normalise`` (a ``splits/*.txt`` line -> key),
    ``unit`` (what a key is, in words), seg's classes, and whether keys in no split are
    worth a note."""

    files: dict[str, tuple[Entry, ...]]
    normalise: Callable[[str], str]
    unit: str = "images"
    class_names: tuple[str, ...] = ()
    ignore_index: int | None = None
    note_unused: bool = True


@dataclass(frozen=True)
class FolderLayout:
    """How one task reads a dataset folder: an entry of :data:`LOADERS`.

    ``layout``: what such a folder holds, in words (refusal lines); ``detect(root, dirs)``:
    whether a folder whose sub-folder names are ``dirs`` has this layout (tried by
    ``rank``, then in registration order: a broad rule ranks above 0 so that specific
    layouts, a plugin's too, are tried first); ``lacks(root, dirs)``: what it lacks
    for this task (None: it fits); ``index(root, entries)`` -> :class:`Indexed`;
    ``seeded_split(root, files)`` -> (split -> keys, how in words) without ``splits/``;
    ``check_splits(root, splits, files)`` refuses splits the task cannot use;
    ``loader(root, split, size=..., limit=...)`` loads a split."""

    layout: str
    detect: Callable[[Path, set[str]], bool]
    lacks: Callable[[Path, set[str]], str | None]
    index: Callable[[Path, list[Entry]], Indexed]
    seeded_split: Callable[[Path, dict[str, tuple[Entry, ...]]], tuple[dict[str, list[str]], str]]
    loader: Callable[..., Any]
    check_splits: Callable[[Path, dict[str, list[str]], dict[str, tuple[Entry, ...]]], None] | None = None
    rank: int = 0


#: task -> its :class:`FolderLayout`; installed packages add theirs in the entry-point group
#: ``cvloss.folders`` (``mytask = "mypkg.data:LAYOUT"``)
LOADERS: Registry[FolderLayout] = Registry("folder layout", group="cvloss.folders", option="folder task")


def detect_task(root: Path, task: str | None = None) -> str:
    """The task whose layout the folder has (:data:`LOADERS`' ``detect`` rules by rank,
    then in registration order); with ``task`` given, that task, or one line saying why the folder
    does not fit it."""
    dirs = _dirs(root)
    if task is None:
        names = LOADERS.names()
        ordered = sorted(names, key=lambda t: LOADERS.get(t).rank)  # stable: registration order within a rank
        found = next((t for t in ordered if LOADERS.get(t).detect(root, dirs)), None)
        if found is None:
            raise DatasetError(f"--dataset {root}: no folder layout fits it ({', '.join(names)}); give --task")
        return found
    if task not in LOADERS:
        raise DatasetError(f"--dataset {root}: task '{task}' takes no dataset folder (folders serve "
                           f"{', '.join(LOADERS.names())}); use a catalog dataset or the task's own settings")
    entry = LOADERS.get(task)
    lacks = entry.lacks(root, dirs)
    if lacks is not None:
        raise DatasetError(f"--dataset {root}: a {task} folder needs {entry.layout}; this one lacks {lacks}")
    return task


# ----------------------------------------------------------------------------- images
def _open(path: Path) -> Image.Image:
    """PIL image of ``path`` (header read only), refused above :data:`MAX_IMAGE_PIXELS`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Exception as exc:  # OSError, SyntaxError, DecompressionBomb*, ... on a bad file
        raise DatasetError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise DatasetError(f"image {path} is {im.width}x{im.height} px, more than the {MAX_IMAGE_PIXELS} pixels "
                           f"cvloss decodes; shrink it")
    if min(im.width, im.height) < MIN_IMAGE_SIDE:
        im.close()  # a 4000x1 strip has no 2-D content, and a x4 downscale of it is empty
        raise DatasetError(f"image {path} is {im.width}x{im.height} px: cvloss needs at least {MIN_IMAGE_SIDE} px on "
                           f"each side; remove or enlarge it")
    return im


def _rgb(path: Path, size: int | None, short_side: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``path``: resized to ``size`` x ``size`` (bilinear, aspect
    not kept), or with ``short_side`` shrunk (never enlarged) to short side ``size``
    (bicubic, PIL's antialiased filter), or as it is for ``size=None``."""
    try:
        with _open(path) as im:
            rgb = im.convert("RGB")
            if size is not None and short_side and min(rgb.size) > size:
                w, h = rgb.size
                r = size / min(w, h)
                rgb = rgb.resize((max(1, round(w * r)), max(1, round(h * r))), Image.Resampling.BICUBIC)
            elif size is not None and not short_side and rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.array(rgb, dtype=np.uint8)  # a copy: torch wants writable memory
    except DatasetError:
        raise
    except Exception as exc:  # truncated data shows only when decoding
        raise DatasetError(f"cannot decode image {path}: {type(exc).__name__}: {exc}") from None


def _stack(arrays: list[np.ndarray], what: str) -> torch.Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DatasetError(f"{what}: images differ in size ({', '.join(str(s[:2]) for s in sorted(shapes)[:3])}); "
                           f"give a size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _subset(items: list[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` items, evenly spaced through the (sorted) list: deterministic."""
    if limit is None or limit >= len(items):
        return items
    idx = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(np.int64))
    return [items[i] for i in idx]


# ----------------------------------------------------------------------------- splits
def _read_split_files(root: Path, entries: list[Entry], normalise, known: set[str]) -> dict[str, list[str]] | None:
    """``splits/{train,val,test}.txt`` as keys (``normalise`` maps a line to a key), or
    ``None`` without ``splits/``; refusals name the file and line."""
    listed = {e.rel for e in entries}
    present = [s for s in SPLITS if f"splits/{s}.txt" in listed]
    if not present:
        return None
    if len(present) < 3:
        missing = [f"splits/{s}.txt" for s in SPLITS if s not in present]
        raise DatasetError(f"{root / 'splits'}: has {', '.join(f'{s}.txt' for s in present)} but lacks "
                           f"{', '.join(missing)}: give all three or none (then the split is seeded)")
    out: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for split in SPLITS:
        path = root / "splits" / f"{split}.txt"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from None
        keys: list[str] = []
        for n, line in enumerate(lines, 1):
            item = line.split("#", 1)[0].strip()
            if not item:
                continue
            key = normalise(item)
            if key not in known:
                raise DatasetError(f"{path} line {n}: {item!r} is not in the dataset folder {root}")
            if key in where:
                raise DatasetError(f"{path} line {n}: {item!r} is already listed in {where[key]}: splits must be "
                                   f"disjoint")
            where[key] = f"splits/{split}.txt"
            keys.append(key)
        if not keys:
            raise DatasetError(f"{path} lists nothing: every split needs at least one item")
        out[split] = sorted(keys)
    return out


def _seeded(keys: list[str], code: int, fraction_min: int = 1) -> dict[str, list[str]]:
    """80/10/10 of the sorted ``keys``: ``max(fraction_min, round(n/10))`` each for val and
    test, drawn by ``default_rng([SPLIT_SEED, code])``; the rest train."""
    keys = sorted(keys)
    n = len(keys)
    k = max(fraction_min, int(np.floor(n / 10 + 0.5)))
    order = np.random.default_rng([SPLIT_SEED, code]).permutation(n)
    val, test = order[:k], order[k:2 * k]
    return {"val": sorted(keys[i] for i in val), "test": sorted(keys[i] for i in test),
            "train": sorted(keys[i] for i in order[2 * k:])}


# ----------------------------------------------------------------------------- the index
@dataclass
class FolderIndex:
    """A checked dataset folder: which files each split reads, and what they hold.

    ``splits[s]``: the keys of split ``s`` (seg/sr: stems; embed: identity names;
    translate: ``trainA/x``-style stems). ``files[key]``: the files of a key (seg:
    (image, mask); sr: (image,); embed: the identity's images; translate: (image,)).
    ``description``: one line for ``describe_data`` and ``trial.json``.
    """

    root: Path
    task: str
    fingerprint: str
    splits: dict[str, list[str]]
    files: dict[str, tuple[Entry, ...]]
    description: str
    class_names: tuple[str, ...] = ()
    ignore_index: int | None = None
    notes: list[str] = field(default_factory=list)


def _classes(root: Path, entries: list[Entry]) -> tuple[tuple[str, ...] | None, int | None]:
    if not any(e.rel == "classes.txt" for e in entries):
        return None, None
    path = root / "classes.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names: list[str] = []
    ignore: int | None = None
    for n, line in enumerate(lines, 1):
        text = line.strip()
        m = re.fullmatch(r"ignore_index\s*:\s*(\S*)", text)
        if m:
            if ignore is not None or not m.group(1).isdigit() or int(m.group(1)) > 255:
                raise DatasetError(f"{path} line {n}: expected one 'ignore_index: N' with N in 0..255; got {text!r}")
            ignore = int(m.group(1))
        elif not text:
            raise DatasetError(f"{path} line {n} is empty: line i names class i")
        elif text in names:
            raise DatasetError(f"{path} line {n}: class {text!r} named twice")
        else:
            names.append(text)
    if len(names) < 2:
        raise DatasetError(f"{path} names {len(names)} class(es); segmentation needs at least 2")
    if ignore is not None and ignore < len(names):
        raise DatasetError(f"{path}: ignore_index {ignore} is also the id of class {names[ignore]!r}; the ignored "
                           f"id must be no class (e.g. 255)")
    return tuple(names), ignore


def _check_mask(entry: Entry, image: Entry) -> np.ndarray:
    """The ids of the mask ``entry`` (H, W), after checking its format, mode and size."""
    with _open(image.path) as im:
        size = im.size
    try:
        with _open(entry.path) as mk:
            if mk.format != "PNG" or mk.mode not in ("L", "P"):
                raise DatasetError(f"mask {entry.path} is a {mk.format} of mode {mk.mode}: masks are single-channel "
                                   f"PNGs of class ids (mode L or P)")
            if mk.size != size:
                raise DatasetError(f"mask {entry.path} is {mk.size[0]}x{mk.size[1]} px but its image {image.path} is "
                                   f"{size[0]}x{size[1]} px")
            return np.asarray(mk)
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot decode mask {entry.path}: {type(exc).__name__}: {exc}") from None


def _index_seg(root: Path, entries: list[Entry]) -> tuple[dict[str, tuple[Entry, ...]], tuple[str, ...], int | None]:
    images, masks = {}, {}
    for e in entries:
        top, _, rest = e.rel.partition("/")
        if top == "images" and _is_image(rest):
            key, table = _stem(rest), images
        elif top == "masks" and _is_image(rest):
            key, table = _stem(rest), masks
        else:
            continue
        if key in table:
            raise DatasetError(f"{e.path}: another file of stem {key!r} is in {top}/ already ({table[key].path.name})")
        table[key] = e
    if not images:
        raise DatasetError(f"seg folder {root}: no images in {root / 'images'} ({', '.join(IMAGE_SUFFIXES)})")
    for key, e in images.items():
        if key not in masks:
            raise DatasetError(f"image {e.path} has no mask {root / 'masks' / key}.png")
    for key, e in masks.items():
        if key not in images:
            raise DatasetError(f"mask {e.path} has no image {root / 'images' / key}.*")
    names, ignore = _classes(root, entries)
    top = 0
    for key in sorted(images):
        values = _check_mask(masks[key], images[key])
        ids = values[values != ignore] if ignore is not None else values
        if ids.size:
            hi = int(ids.max())
            if names is not None and hi >= len(names):
                raise DatasetError(f"mask {masks[key].path} has class id {hi}, but classes.txt names {len(names)} "
                                   f"classes (ids 0-{len(names) - 1})"
                                   + ("" if ignore is not None else "; declare void pixels with 'ignore_index: N'"))
            if names is None and hi >= MAX_UNLISTED_CLASSES:
                raise DatasetError(f"mask {masks[key].path} has class id {hi}: write {root / 'classes.txt'} naming "
                                   f"the classes (and 'ignore_index: {hi}' if {hi} marks pixels to ignore)")
            top = max(top, hi)
    if names is None:
        names = tuple(f"class{i}" for i in range(max(top + 1, 2)))
    return {k: (images[k], masks[k]) for k in images}, names, ignore


def _index_embed(root: Path, entries: list[Entry]) -> dict[str, tuple[Entry, ...]]:
    ids: dict[str, list[Entry]] = {}
    for e in entries:
        if e.rel.startswith("splits/") or not _is_image(e.rel):
            continue
        ident, sep, _ = e.rel.partition("/")
        if not sep:
            raise DatasetError(f"embed folder {root}: image {e.path} is not in an identity sub-folder")
        ids.setdefault(ident, []).append(e)
    if not ids:
        raise DatasetError(f"embed folder {root}: no images in identity sub-folders ({', '.join(IMAGE_SUFFIXES)})")
    return {k: tuple(v) for k, v in ids.items()}


def _check_headers(files: dict[str, tuple[Entry, ...]]) -> None:
    for group in files.values():
        for e in group:
            if e.rel.startswith("masks/"):
                continue
            _open(e.path).close()


def _seg_indexed(root: Path, entries: list[Entry]) -> Indexed:
    files, names, ignore = _index_seg(root, entries)
    return Indexed(files, lambda item: _stem(item.split("/", 1)[1] if item.startswith(("images/", "masks/")) else item),
                   class_names=names, ignore_index=ignore)


def _sr_indexed(root: Path, entries: list[Entry]) -> Indexed:
    files = {_stem(e.rel): (e,) for e in entries if _is_image(e.rel) and not e.rel.startswith("splits/")}
    if not files:
        raise DatasetError(f"sr folder {root}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(files) < sum(_is_image(e.rel) for e in entries if not e.rel.startswith("splits/")):
        raise DatasetError(f"sr folder {root}: two images share a stem (e.g. x.png and x.jpg); rename one")
    return Indexed(files, _stem)


def _embed_indexed(root: Path, entries: list[Entry]) -> Indexed:
    return Indexed(_index_embed(root, entries), lambda item: item.rstrip("/"), unit="identities")


_TRANSLATE_DIRS = ("trainA", "trainB", "testA", "testB")


def _translate_indexed(root: Path, entries: list[Entry]) -> Indexed:
    files: dict[str, tuple[Entry, ...]] = {}
    for folder in _TRANSLATE_DIRS:
        found = {_stem(e.rel): (e,) for e in entries if e.rel.startswith(folder + "/") and _is_image(e.rel)}
        if not found:
            raise DatasetError(f"translate folder {root}: {root / folder} holds no images "
                               f"({', '.join(IMAGE_SUFFIXES)})")
        files.update(found)
    return Indexed(files, _stem, note_unused=False)  # val is drawn from train: nothing is left unused


def _check_domains(root: Path, splits: dict[str, list[str]], files: dict[str, tuple[Entry, ...]]) -> None:
    for split, keys in splits.items():
        for d in "AB":
            if not any(k.split("/", 1)[0].endswith(d) for k in keys):
                raise DatasetError(f"translate folder {root}: the {split} split has no domain-{d} image")


@lru_cache(maxsize=16)
def _index_cached(root: Path, task: str, print_: str) -> FolderIndex:
    entries = _walk(root)
    layout = LOADERS.get(task)
    found = layout.index(root, entries)
    files = found.files
    _check_headers(files)
    splits = _read_split_files(root, entries, found.normalise, set(files))
    how = "splits/*.txt"
    if splits is None:
        splits, how = layout.seeded_split(root, files)
    if layout.check_splits is not None:
        layout.check_splits(root, splits, files)
    counts = " / ".join(f"{len(splits[s])} {s}" for s in SPLITS)
    desc = f"{task} folder {root}: {counts} {found.unit}, split by {how}"
    if found.class_names:
        ignore = found.ignore_index
        desc += f"; {len(found.class_names)} classes" + (f", ignore_index {ignore}" if ignore is not None else "")
    unused = len(files) - sum(len(v) for v in splits.values())
    if unused and found.note_unused:
        desc += f"; {unused} {found.unit} in no split (unused)"
    return FolderIndex(root=root, task=task, fingerprint=print_, splits=splits, files=files, description=desc,
                       class_names=found.class_names, ignore_index=found.ignore_index)


Files = dict[str, tuple[Entry, ...]]  # key -> its files
Splits = dict[str, list[str]]  # split -> keys


def _split_by_file(task: str, code: int) -> Callable[[Path, Files], tuple[Splits, str]]:
    """The seeded 80/10/10 split by file of ``task``'s folders, seed stream ``code``."""

    def split(root: Path, files: Files) -> tuple[Splits, str]:
        if len(files) < 3:
            raise DatasetError(f"{task} folder {root}: {len(files)} image(s); a train, val and test split need at "
                               f"least 3")
        return _seeded(list(files), code), f"seed {SPLIT_SEED:#x} (80/10/10 by file)"

    return split


def _split_by_identity(root: Path, files: dict[str, tuple[Entry, ...]]) -> tuple[dict[str, list[str]], str]:
    """embed: val and test get ``max(20, round(n/10))`` identities each among those with 2+
    images (seed stream 2), the rest train."""
    eligible = sorted(k for k, v in files.items() if len(v) >= 2)
    k = max(MIN_EVAL_IDS, int(np.floor(len(files) / 10 + 0.5)))
    if len(eligible) < 2 * k + 2:
        raise DatasetError(f"embed folder {root}: {len(eligible)} identities with 2+ images; the seeded split "
                           f"needs {2 * k + 2} ({k} val and {k} test for 10 folds, 2 train), or list them in "
                           f"splits/*.txt")
    order = np.random.default_rng([SPLIT_SEED, 2]).permutation(len(eligible))
    val = sorted(eligible[i] for i in order[:k])
    test = sorted(eligible[i] for i in order[k:2 * k])
    train = sorted(set(files) - set(val) - set(test))
    return {"train": train, "val": val, "test": test}, f"seed {SPLIT_SEED:#x} (by identity, {k} each for val and test)"


def _split_by_domain(root: Path, files: dict[str, tuple[Entry, ...]]) -> tuple[dict[str, list[str]], str]:
    """translate: val is a seeded 10 % of trainA and of trainB, test is testA / testB."""
    from cvloss.data.horse2zebra import split_files  # horse2zebra's rule, one definition for both loaders

    by_rel = {e.rel: key for key, (e,) in files.items()}
    out = {}
    for split in SPLITS:
        a, b = split_files(root, split)
        found = [p.relative_to(root).as_posix() for p in (*a, *b)]
        out[split] = sorted(by_rel[rel] for rel in found if rel in by_rel)  # hidden names are not ours
    return out, "horse2zebra's rule (val: a seeded 10% of trainA / trainB; test: testA / testB)"


def _check_identities(root: Path, splits: dict[str, list[str]], files: dict[str, tuple[Entry, ...]]) -> None:
    train_ok = [k for k in splits["train"] if len(files[k]) >= 2]
    if len(train_ok) < 2:
        raise DatasetError(f"embed folder {root}: the train split has {len(train_ok)} identities with 2+ images; "
                           f"a P x K batch needs at least 2 (P of them)")
    for split in ("val", "test"):
        ids = splits[split]
        multi = [k for k in ids if len(files[k]) >= 2]
        if len(ids) < MIN_EVAL_IDS or len(multi) < N_FOLDS:
            raise DatasetError(f"embed folder {root}: the {split} split has {len(ids)} identities ({len(multi)} with "
                               f"2+ images); 10 verification folds need at least {MIN_EVAL_IDS}, {N_FOLDS} of them "
                               f"with 2+ images")


def index_folder(root: str | Path, task: str | None = None) -> FolderIndex:
    """The checked :class:`FolderIndex` of the folder ``root`` (every image header, mask,
    ``classes.txt`` and ``splits/*.txt`` checked). Cached per fingerprint: a changed
    folder is indexed again."""
    root = resolve_folder(root)
    task = detect_task(root, task)
    return _index_cached(root, task, fingerprint(root))


def describe_folder(root: str | Path, task: str | None = None) -> str:
    """One line: task, folder, split sizes and how the split was made (``trial.json``)."""
    return index_folder(root, task).description


# ----------------------------------------------------------------------------- loaders
def _check(split: str, size: int | None, limit: int | None) -> None:
    check_split(split, "a dataset folder")
    if size is not None and size < 8:
        raise DatasetError(f"size must be >= 8 pixels, got {size}")
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be >= 1, got {limit}")


def load_seg_folder(root: str | Path, split: str, size: int | None = None, limit: int | None = None) -> SegData:
    """Split ``split`` of a seg folder: images ``(N, 3, size, size)`` uint8 (bilinear) and
    masks ``(N, size, size)`` int64 (nearest), class ids in ``[0, K)`` or
    ``ignore_index``; ``size=None`` keeps the files' size (all must then agree)."""
    _check(split, size, limit)
    idx = index_folder(root, "seg")
    keys = _subset(idx.splits[split], limit)
    images, masks = [], []
    for key in keys:
        image, mask = idx.files[key]
        images.append(_rgb(image.path, size))
        with _open(mask.path) as mk:
            if size is not None and mk.size != (size, size):
                mk = mk.resize((size, size), Image.Resampling.NEAREST)  # labels: never interpolate
            masks.append(np.asarray(mk).astype(np.int64))
    x = _stack(images, f"seg folder {idx.root}")
    y = torch.from_numpy(np.stack(masks))
    return SegData(images=x, masks=y, class_names=idx.class_names, name=dataset_label(str(idx.root)),
                   ignore_index=idx.ignore_index)


def load_sr_folder(root: str | Path, split: str, size: int | None = None, limit: int | None = None) -> SRData:
    """Split ``split`` of an sr folder: HR images ``(3, H_i, W_i)`` uint8, shrunk (never
    enlarged) to short side ``size`` when given; LR images are the task's."""
    _check(split, size, limit)
    idx = index_folder(root, "sr")
    keys = _subset(idx.splits[split], limit)
    hr = [torch.from_numpy(_rgb(idx.files[k][0].path, size, short_side=True)).permute(2, 0, 1).contiguous()
          for k in keys]
    return SRData(hr=hr, names=tuple(keys), name=dataset_label(str(idx.root)))


def _pairs(labels: np.ndarray, n_ids: int, per_fold: int, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``per_fold`` distinct same pairs and as many distinct different pairs per
    fold (balanced: both kinds as many as the fewer); identities dealt into 10 folds in
    an order drawn by ``default_rng([PAIR_SEED, code])``, no identity in two folds."""
    rng = np.random.default_rng([PAIR_SEED, code])
    by_id = [np.flatnonzero(labels == i) for i in range(n_ids)]
    # deal the identities with 2+ images first, round-robin, then the others: with 10 of
    # the former and 20 in all (checked by the index) every fold has a same pair to draw
    # and two identities for a different pair
    multi_first = [i for i in rng.permutation(n_ids) if len(by_id[i]) >= 2] + \
        [i for i in rng.permutation(n_ids) if len(by_id[i]) < 2]
    fold_of = np.empty(n_ids, dtype=np.int64)
    fold_of[multi_first] = np.arange(n_ids) % N_FOLDS
    pairs, same, folds = [], [], []
    for f in range(N_FOLDS):
        ids = np.flatnonzero(fold_of == f)
        multi = [i for i in ids if len(by_id[i]) >= 2]
        found: dict[bool, set[tuple[int, int]]] = {True: set(), False: set()}
        for _ in range(20 * per_fold):  # distinct pairs, bounded tries (a small fold has few)
            if len(found[True]) >= per_fold:
                break
            a, b = rng.choice(by_id[rng.choice(multi)], 2, replace=False)
            found[True].add((int(min(a, b)), int(max(a, b))))
        for _ in range(20 * per_fold):
            if len(found[False]) >= len(found[True]):
                break
            i, j = rng.choice(ids, 2, replace=False)
            a, b = int(rng.choice(by_id[i])), int(rng.choice(by_id[j]))
            found[False].add((min(a, b), max(a, b)))
        n = min(len(found[True]), len(found[False]))  # balanced, as LFW's folds are
        for kind in (True, False):
            for pair in sorted(found[kind])[:n]:
                pairs.append(pair); same.append(kind); folds.append(f)  # noqa: E702
    return np.array(pairs, dtype=np.int64), np.array(same), np.array(folds, dtype=np.int64)


def load_embed_folder(root: str | Path, split: str, size: int = 64, limit: int | None = None,
                      pairs_per_fold: int | None = None) -> IdentityData:
    """Split ``split`` of an embed folder: images ``(N, 3, size, size)`` uint8 (bilinear,
    aspect not kept), labels = identity ids; val / test carry 10-fold pairs
    (``pairs_per_fold`` same pairs per fold at most, default 30). ``limit`` caps the
    number of identities (evenly spaced in name order)."""
    _check(split, size, limit)
    idx = index_folder(root, "embed")
    ids = _subset(idx.splits[split], limit)
    images, labels = [], []
    for i, ident in enumerate(ids):
        for e in idx.files[ident]:
            images.append(_rgb(e.path, size))
            labels.append(i)
    lab = np.array(labels, dtype=np.int64)
    kw: dict[str, Any] = {}
    if split != "train":
        pairs, same, folds = _pairs(lab, len(ids), int(pairs_per_fold or 30), _SPLIT_CODE[split])
        kw = {"pairs": torch.from_numpy(pairs), "same": torch.from_numpy(same), "folds": torch.from_numpy(folds)}
    return IdentityData(_stack(images, f"embed folder {idx.root}"), torch.from_numpy(lab), tuple(ids),
                        name=dataset_label(str(idx.root)), **kw)


def load_translate_folder(root: str | Path, split: str, size: int = 256, limit: int | None = None) -> TranslateData:
    """Split ``split`` of a translate folder: ``(N, 3, size, size)`` uint8 images of
    domain A and of domain B (bilinear, aspect not kept), unpaired; ``limit`` per domain."""
    _check(split, size, limit)
    idx = index_folder(root, "translate")
    keys = idx.splits[split]
    side = {d: _subset([k for k in keys if k.split("/", 1)[0].endswith(d)], limit) for d in "AB"}
    a, b = ([_rgb(idx.files[k][0].path, size) for k in side[d]] for d in "AB")
    where = f"translate folder {idx.root}"
    return TranslateData(a=_stack(a, where), b=_stack(b, where), paired=False, domains=("A", "B"),
                         name=dataset_label(str(idx.root)))


def _has_images(root: Path) -> bool:
    return any(p.is_file() and _is_image(p.name) for p in root.iterdir())


def _lacks_dirs(need: tuple[str, ...]) -> Callable[[Path, set[str]], str | None]:
    def lacks(root: Path, dirs: set[str]) -> str | None:
        missing = sorted(set(need) - dirs)
        return ", ".join(f"{m}/" for m in missing) or None

    return lacks


# The built-in layouts: seg and translate by their folder names; embed (any sub-folders)
# and sr (any images) are the broad rules, tried last. The seed stream of a seeded split is
# the task's place in the order seg, sr, embed, translate.
LOADERS.register("seg", FolderLayout(
    "images/ and masks/", detect=lambda root, dirs: {"images", "masks"} <= dirs, lacks=_lacks_dirs(("images", "masks")),
    index=_seg_indexed, seeded_split=_split_by_file("seg", 0), loader=load_seg_folder))
LOADERS.register("translate", FolderLayout(
    "trainA/ trainB/ testA/ testB/", detect=lambda root, dirs: "trainA" in dirs, lacks=_lacks_dirs(_TRANSLATE_DIRS),
    index=_translate_indexed, seeded_split=_split_by_domain, loader=load_translate_folder,
    check_splits=_check_domains))
LOADERS.register("embed", FolderLayout(
    "one sub-folder per identity", detect=lambda root, dirs: bool(dirs - {"splits"}) and not _has_images(root),
    lacks=lambda root, dirs: None if dirs - {"splits"} else "identity sub-folders",
    index=_embed_indexed, seeded_split=_split_by_identity, loader=load_embed_folder, check_splits=_check_identities,
    rank=1))
LOADERS.register("sr", FolderLayout(
    "HR image files", detect=lambda root, dirs: True, lacks=lambda root, dirs: None,
    index=_sr_indexed, seeded_split=_split_by_file("sr", 1), loader=load_sr_folder, rank=2))


def load_folder(root: str | Path, split: str, **kwargs: Any) -> Any:
    """The loader of whatever task the folder's layout serves (see :func:`detect_task`)."""
    return LOADERS.get(detect_task(resolve_folder(root))).loader(root, split, **kwargs)

