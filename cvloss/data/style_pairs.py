"""Content/style image pairs for the ``style`` task (Gatys-style optimisation).

Three sources, one container (:class:`StylePairs`): embedded (``skimage-photos``: the
photos of :mod:`cvloss.data.skimage_photos` as content, :data:`CONTENT_SPLIT`; its gray
textures and two procedural colour ones as style, :data:`STYLE_TEXTURES`), files
(``content=PATH``, ``style=PATH``) and ``div2k`` (contents from DIV2K's photos). Images
are float32 RGB in [0, 1], ``(3, H, W)``, short side ``size`` / ``style_size``, cropped
square when several pairs stack; gray styles are repeated to RGB (:attr:`StylePairs.notes`).

The pool of pairs is split by content (``val`` for tuning, ``test`` reported; ``train``
reads val's). Seed k takes ``n_pairs`` pairs from position ``k * n_pairs`` of one fixed
order (:data:`PAIR_ORDER_SEED`) that shows every content before any twice
(:func:`seed_pair_indices`); on ``test`` a seed past the pool is refused, elsewhere
positions wrap. Which photos each pool holds and why: ``docs/data.md``, "Style pairs".
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cvloss.data.div2k import hr_files
from cvloss.data.skimage_photos import skimage_image
from cvloss.data.types import StylePairs, DatasetError, check_split

__all__ = [
    "CONTENT_PHOTOS", "CONTENT_SPLIT", "STYLE_TEXTURES", "MIN_STYLE_RATIO", "PAIR_ORDER_SEED", "StylePairs",
    "load_style_pairs", "load_pair_files", "procedural_texture", "read_image", "parse_pairs", "pool_order",
    "pool_size", "seed_pair_indices", "seeds_beyond_pool",
]

#: the embedded contents of each split (disjoint val / test; train = val: nothing to
#: train): val = sr's val photos; test = sr's six test photos + four more (docs/data.md)
CONTENT_SPLIT = {
    "train": ("chelsea", "coffee"),
    "val": ("chelsea", "coffee"),
    "test": ("rocket", "motorcycle", "astronaut", "grace_hopper", "immunohistochemistry", "hubble", "retina",
             "camera", "coins", "moon"),
}
#: every embedded content photo (:mod:`cvloss.data.skimage_photos` names): val, then test.
CONTENT_PHOTOS = (*CONTENT_SPLIT["val"], *CONTENT_SPLIT["test"])
#: styles: scikit-image's grayscale textures, then procedural colour textures.
STYLE_TEXTURES = ("brick", "grass", "gravel", "waves", "mosaic")
PROCEDURAL = ("waves", "mosaic")
#: a style image's short side must be at least this fraction of the content's short side.
MIN_STYLE_RATIO = 0.25
#: Seed of the one fixed order of a pool in which seeds take their pairs (see seed_pair_indices).
PAIR_ORDER_SEED = 2016


# ----------------------------------------------------------------------------- images
def _to_float_rgb(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8/uint16/float/bool image, (H, W), (H, W, 1|3|4) -> ((H, W, 3) float32 [0, 1], was_gray)."""
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype.kind in "ui":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        a = a.astype(np.float32)
        if a.size and a.max() > 1.0 + 1e-6:  # float images stored in 0..255
            a = a / 255.0
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]  # drop alpha (style statistics are of the colours)
    gray = a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {img.shape}")
    return np.clip(a, 0.0, 1.0), gray


def read_image(path: str | Path, role: str = "image") -> tuple[np.ndarray, bool]:
    """Read an image file as ``((H, W, 3) float32 in [0, 1], was_grayscale)``.

    ``role`` ("content image", "style image") names the file in the one-line errors:
    a missing file, a directory, or a file that is not a readable image.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{role} {str(p)!r} does not exist")
    if not p.is_file():
        raise DatasetError(f"{role} {str(p)!r} is not a file")
    import skimage.io

    try:
        img = skimage.io.imread(str(p))
    except Exception as exc:  # unreadable / unknown format: the library's reason, one line
        raise DatasetError(f"{role} {str(p)!r} is not a readable image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    try:
        return _to_float_rgb(img)
    except ValueError as exc:
        raise DatasetError(f"{role} {str(p)!r}: {exc}") from None


def procedural_texture(name: str, size: int, seed: int = 0) -> np.ndarray:
    """A colour texture ``(size, size, 3)`` float32 in [0, 1], deterministic in ``seed``.

    ``waves``: three superposed oriented sinusoids (periods 12-30 px at size 256, scaled
    with ``size``) passed through a blue-orange-cream colour ramp -- brush-stroke-like
    strong orientation and mid frequencies. ``mosaic``: a Voronoi tiling of ~60 cells
    (at any size) with random saturated colours and dark 2 px grout lines -- flat
    regions separated by sharp edges, the opposite statistics of ``waves``.
    """
    g = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    scale = size / 256.0
    if name == "waves":
        field_ = np.zeros((size, size), np.float32)
        for period, angle, phase in zip((30.0, 19.0, 12.0), g.uniform(0, np.pi, 3), g.uniform(0, 2 * np.pi, 3)):
            k = 2 * np.pi / (period * scale)
            field_ += np.sin(k * (np.cos(angle) * xx + np.sin(angle) * yy) + phase).astype(np.float32)
        t = (field_ - field_.min()) / max(float(np.ptp(field_)), 1e-6)
        ramp = np.array([[0.08, 0.15, 0.45], [0.25, 0.55, 0.85], [0.95, 0.60, 0.15], [0.98, 0.93, 0.75]], np.float32)
        pos = t * (len(ramp) - 1)
        lo = np.clip(np.floor(pos).astype(int), 0, len(ramp) - 2)
        frac = (pos - lo)[..., None]
        return np.clip(ramp[lo] * (1 - frac) + ramp[lo + 1] * frac, 0, 1).astype(np.float32)
    if name == "mosaic":
        n_cells = 60
        centres = g.uniform(0, size, (n_cells, 2)).astype(np.float32)
        colours = g.uniform(0.15, 1.0, (n_cells, 3)).astype(np.float32)
        d = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2  # (H, W, cells)
        part = np.partition(d, 1, axis=2)
        nearest = d.argmin(axis=2)
        # distance to the cell border ~ (d2 - d1) / (2 * centre distance); grout where small
        gap = np.sqrt(part[..., 1]) - np.sqrt(part[..., 0])
        img = colours[nearest]
        img[gap < 2.0 * max(scale, 0.25)] = 0.08
        return img.astype(np.float32)
    raise DatasetError(f"unknown procedural texture {name!r}; valid: {', '.join(PROCEDURAL)}")


def _style_image(name: str) -> tuple[np.ndarray, bool]:
    if name in PROCEDURAL:
        # drawn at 512 px, the size of scikit-image's textures, then resized like them
        return procedural_texture(name, 512), False
    return _to_float_rgb(skimage_image(name))  # brick, grass, gravel: gray, flagged as such


# ----------------------------------------------------------------------------- resizing
def _fit(img: np.ndarray, side: int, square: bool) -> torch.Tensor:
    """(H, W, 3) -> (3, H', W') float32 with short side ``side`` (antialiased bilinear),
    centre-cropped to ``side`` x ``side`` when ``square``."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    h, w = t.shape[-2:]
    r = side / min(h, w)
    nh, nw = max(side, round(h * r)), max(side, round(w * r))
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    if square:
        top, left = (nh - side) // 2, (nw - side) // 2
        t = t[..., top : top + side, left : left + side]
    return t[0].clamp_(0, 1).contiguous()


def _check_style_size(content: np.ndarray, style: np.ndarray, cname: str, sname: str) -> None:
    c, s = min(content.shape[:2]), min(style.shape[:2])
    if s < MIN_STYLE_RATIO * c:
        raise DatasetError(
            f"style image {sname} is {style.shape[1]}x{style.shape[0]} px, less than 1/4 of the content's short side "
            f"({content.shape[1]}x{content.shape[0]} px, {cname}): its Gram statistics would come from an upsampled "
            f"blur; use a style image with a short side of at least {math.ceil(MIN_STYLE_RATIO * c)} px"
        )


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"astronaut:brick,coffee:waves"`` -> ``[("astronaut", "brick"), ("coffee", "waves")]``,
    every name checked against :data:`CONTENT_PHOTOS` / :data:`STYLE_TEXTURES`."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        c, sep, s = item.partition(":")
        if not sep or c not in CONTENT_PHOTOS or s not in STYLE_TEXTURES:
            raise DatasetError(
                f"bad style pair {item!r}: write CONTENT:STYLE with CONTENT in {', '.join(CONTENT_PHOTOS)} "
                f"and STYLE in {', '.join(STYLE_TEXTURES)} (e.g. pairs=astronaut:brick,coffee:waves)"
            )
        out.append((c, s))
    if not out:
        raise DatasetError("pairs= is empty; write e.g. pairs=astronaut:brick,coffee:waves")
    return out


# ----------------------------------------------------------------------------- loaders
def _assemble(contents: list[tuple[str, np.ndarray]], styles: list[tuple[str, np.ndarray, bool]],
              pairs: list[tuple[int, int]], size: int, style_size: int, explicit: bool, name: str,
              real: str | None, split: str = "val") -> StylePairs:
    for c, s in pairs:
        _check_style_size(contents[c][1], styles[s][1], contents[c][0], styles[s][0])
    square = len(contents) > 1 or len(styles) > 1
    gray = [n for n, _, g in styles if g]
    notes = (f"grayscale style(s) {', '.join(gray)} converted to RGB (no colour in their Gram)",) if gray else ()
    return StylePairs(
        contents=torch.stack([_fit(img, size, square) for _, img in contents]),
        styles=torch.stack([_fit(img, style_size, square) for _, img, _ in styles]),
        content_names=tuple(n for n, _ in contents), style_names=tuple(n for n, _, _ in styles),
        pairs=tuple(pairs), explicit=explicit, notes=notes, name=name, real=real, split=split,
    )


def load_pair_files(content: str | Path, style: str | Path, size: int = 128, style_size: int | None = None,
                    split: str = "val") -> StylePairs:
    """One pair read from disk (``--set content=PATH --set style=PATH``).

    Errors (one line, :class:`DatasetError`): a file that does not exist or is not an
    image; a style image whose short side is below 1/4 of the content's (see
    :data:`MIN_STYLE_RATIO`). The aspect ratios are kept (one pair needs no cropping).
    """
    c_img, _ = read_image(content, "content image")
    s_img, s_gray = read_image(style, "style image")
    return _assemble([(Path(content).name, c_img)], [(Path(style).name, s_img, s_gray)], [(0, 0)],
                     size, style_size or size, explicit=True, name="files", real=None, split=split)


def _skimage_contents(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    return [(n, skimage_image(n, rgb=True)) for n in names]


def _div2k_contents(root: Path, split: str, limit: int | None) -> list[tuple[str, np.ndarray]]:
    # train has nothing to train: it reads val's photos (module docstring)
    files = hr_files(root, "val" if split == "train" else split)[: limit or 5]
    return [(f.stem, read_image(f, "DIV2K content image")[0]) for f in files]


def load_style_pairs(root: str | Path | None, split: str = "val", size: int = 128, limit: int | None = None,
                     seed: int = 0, style_size: int | None = None, pairs: str | None = None,
                     content: str | None = None, style: str | None = None, source: str = "skimage-photos") -> StylePairs:
    """Load the pool of content/style pairs of ``split`` (see the module docstring for
    the sources and the splits).

    Args:
        root: ``<data-dir>/<dataset>`` (only read for ``source="div2k"``).
        split: ``val`` (tuning contents), ``test`` (reported contents; disjoint from val)
            or ``train`` (= val: style transfer trains nothing on a dataset).
        size: short side of the contents in px; ``style_size`` that of the styles
            (default ``size``).
        limit: at most this many contents (the first ones of the split's pool).
        seed: unused (the embedded pool is fixed; the task draws pairs from it per seed).
        pairs: ``"CONTENT:STYLE,..."`` by name (embedded only): exactly those pairs.
        content, style: paths of one pair on disk (both or neither); win over the rest.
        source: ``skimage-photos`` (embedded) or ``div2k``.

    Returns a :class:`StylePairs`; its ``pairs`` is every content x style combination
    unless pairs were named or files given (``explicit``).
    """
    check_split(split, "style pairs")
    style_size = style_size or size
    if content is not None or style is not None:
        if content is None or style is None:
            raise DatasetError("give both a content and a style image (--set content=PATH --set style=PATH), or neither")
        return load_pair_files(content, style, size, style_size, split=split)
    if source == "div2k":
        contents = _div2k_contents(Path(root) if root is not None else Path("."), split, limit)
        real = None
    elif source == "skimage-photos":
        names = CONTENT_SPLIT[split]
        if pairs is not None:
            wanted = parse_pairs(pairs)
            names = tuple(dict.fromkeys(c for c, _ in wanted))
        contents = _skimage_contents(names[:limit] if limit and pairs is None else names)
        real = "div2k"
    else:
        raise DatasetError(f"unknown style-pair source {source!r}; valid: skimage-photos, div2k")
    style_names = STYLE_TEXTURES
    if pairs is not None and source == "skimage-photos":
        style_names = tuple(dict.fromkeys(s for _, s in wanted))
    styles = [(n, *_style_image(n)) for n in style_names]
    if pairs is not None and source == "skimage-photos":
        cidx = {n: i for i, (n, _) in enumerate(contents)}
        sidx = {n: i for i, n in enumerate(style_names)}
        chosen = [(cidx[c], sidx[s]) for c, s in wanted]
        explicit = True
    else:
        chosen = [(c, s) for c in range(len(contents)) for s in range(len(styles))]
        explicit = False
    return _assemble(contents, styles, chosen, size, style_size, explicit, source, real, split)


# ----------------------------------------------------------------------------- seeds -> pairs
def pool_order(n_pool: int, n_contents: int | None = None) -> list[int]:
    """The one fixed order of a pool of ``n_pool`` pairs (seeded by :data:`PAIR_ORDER_SEED`).

    With ``n_contents`` (the pool is every content x style, content-major: pair ``c *
    n_styles + s``), position ``j`` holds content ``cperm[j % n_contents]`` with style
    ``sperm[(j // n_contents + j % n_contents) % n_styles]``: each round of ``n_contents``
    positions shows every content once, a content's style changes from round to round,
    and all ``n_pool`` pairs appear once. Without it (or for a pool that is not such a
    grid), a plain permutation of the pool."""
    g = torch.Generator().manual_seed(PAIR_ORDER_SEED)
    if not n_contents or n_contents < 2 or n_pool % n_contents:
        return torch.randperm(n_pool, generator=g).tolist()
    n_styles = n_pool // n_contents
    cperm = torch.randperm(n_contents, generator=g).tolist()
    sperm = torch.randperm(n_styles, generator=g).tolist()
    return [cperm[j % n_contents] * n_styles + sperm[(j // n_contents + j % n_contents) % n_styles]
            for j in range(n_pool)]


def seed_pair_indices(n_pool: int, seed: int, per_seed: int, split: str, n_contents: int | None = None) -> list[int]:
    """The pool positions of seed ``seed``'s ``per_seed`` pairs (at most the pool's
    ``n_pool``): ``order[seed * per_seed + j]`` for ``j < per_seed``, ``order`` the pool's
    one order (:func:`pool_order`; give ``n_contents`` so that consecutive seeds take
    different contents). Positions wrap round the pool on ``val``/``train`` (tuning
    seeds); on ``test`` a position past the pool is a :class:`ValueError` naming the
    pool's size (:func:`seeds_beyond_pool` words it for a command)."""
    per_seed = max(1, min(int(per_seed), n_pool))
    perm = pool_order(n_pool, n_contents)
    start = int(seed) * per_seed
    if split == "test" and start + per_seed > n_pool:
        which = f"pair {start + 1}" if per_seed == 1 else f"pairs {start + 1}-{start + per_seed}"
        raise ValueError(f"seed {seed} would take {which} of a test pool of {n_pool}")
    return [perm[(start + j) % n_pool] for j in range(per_seed)]


def seeds_beyond_pool(seeds: list[int], n_pool: int, per_seed: int) -> str | None:
    """One line when the test seeds ``seeds`` cannot each take ``per_seed`` distinct pairs
    of a pool of ``n_pool`` (more seeds than distinct pairs, or a seed past the pool's
    end), naming both numbers; None when they can."""
    per_seed = max(1, min(int(per_seed), n_pool))
    usable = n_pool // per_seed  # seeds 0 .. usable - 1
    if len(seeds) * per_seed > n_pool:
        return (f"{len(seeds)} seeds x {per_seed} pair(s) need {len(seeds) * per_seed} distinct content/style pairs "
                f"but the test pool has {n_pool}: give at most {usable} seeds (0..{usable - 1}), or more pairs "
                f"(another dataset, fewer n_pairs)")
    late = [s for s in seeds if s >= usable]
    if late:
        return (f"seed {late[0]} would take pairs past the test pool of {n_pool} distinct content/style pairs "
                f"({per_seed} per seed: seeds 0..{usable - 1}); each seed takes its own pairs, so use seeds "
                f"below {usable}")
    return None


def pool_size(root: str | Path | None, split: str = "test", limit: int | None = None, pairs: str | None = None,
              content: str | None = None, style: str | None = None, source: str = "skimage-photos") -> int | None:
    """How many candidate pairs :func:`load_style_pairs` would return, without reading an
    image; None when it cannot tell (div2k not on disk: loading will say so)."""
    if content is not None or style is not None:
        return 1
    if pairs is not None and source == "skimage-photos":
        return len(parse_pairs(pairs))
    if source == "div2k":
        try:
            n = len(hr_files(Path(root) if root is not None else Path("."), "val" if split == "train" else split)
                    [: limit or 5])
        except Exception:  # no data on disk: the trial's own loading error says what to do
            return None
    elif source == "skimage-photos":
        names = CONTENT_SPLIT.get(split, ())
        n = len(names[:limit] if limit else names)
    else:
        return None  # load_style_pairs refuses it, in its own words
    return n * len(STYLE_TEXTURES)
