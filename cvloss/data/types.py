"""Plain containers the data layer hands to tasks, and its one error type.

Kept free of heavy imports so that :mod:`cvloss.data.fetch`, :mod:`cvloss.data.registry`
and every loader can share them without import cycles.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cvloss.errors import CvlossError


class DatasetError(CvlossError, ValueError):
    """A user-facing data problem (unknown name, missing files, bad checksum, unsafe
    archive, unreachable URL). The message is one line and says what to do next."""


#: The three splits of every dataset: ``train`` (fit the model), ``val`` (every choice:
#: tuning, thresholds, early stopping, learning curves) and ``test`` (read only for a
#: trial's final evaluation and the untrained model's). Pairwise disjoint for every dataset.
SPLITS = ("train", "val", "test")


def check_split(split: str, dataset: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise the one-line
    :class:`DatasetError` every loader gives (``dataset`` names the loader's set)."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}' for {dataset}; valid: {', '.join(SPLITS)}")
    return split


@dataclass
class SegData:
    """A whole segmentation split held in memory (the reference datasets are small).

    Attributes:
        images: ``(N, 3, H, W)`` ``torch.uint8`` RGB in [0, 255].
        masks: ``(N, H, W)`` ``torch.int64`` class ids in ``[0, K)``, ``K = len(class_names)``,
            or ``ignore_index`` (void pixels, no class).
        class_names: name of each class id, e.g. ``("background", "pet", "border")``.
        name: catalog name of the dataset (``"oxford-pets"``, ``"synth-pets"``, ...).
        real: for an embedded stand-in, the catalog name of the real dataset it imitates
            (``"oxford-pets"``); ``None`` for a real dataset or one with no real twin here.
        ignore_index: the id of pixels that belong to no class (a folder dataset's
            ``classes.txt`` declares it, e.g. 255), to be passed on as the losses' and
            metrics' ``ignore_index``; ``None``: every pixel has a class.
    """

    images: torch.Tensor
    masks: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    real: str | None = None
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        im, mk = self.images, self.masks
        if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[1] != 3 or im.dtype != torch.uint8:
            got = f"{tuple(im.shape)} {im.dtype}" if isinstance(im, torch.Tensor) else type(im).__name__
            raise DatasetError(f"SegData.images must be (N, 3, H, W) torch.uint8, got {got}")
        if not isinstance(mk, torch.Tensor) or mk.dim() != 3 or mk.dtype != torch.int64:
            got = f"{tuple(mk.shape)} {mk.dtype}" if isinstance(mk, torch.Tensor) else type(mk).__name__
            raise DatasetError(f"SegData.masks must be (N, H, W) torch.int64, got {got}")
        n, _, h, w = im.shape
        if tuple(mk.shape) != (n, h, w):
            raise DatasetError(
                f"SegData.masks must be (N, H, W) = {(n, h, w)} to match images {tuple(im.shape)}, "
                f"got {tuple(mk.shape)}"
            )
        self.class_names = tuple(self.class_names)
        k = len(self.class_names)
        if k < 2:
            raise DatasetError(f"SegData needs at least 2 class names, got {self.class_names!r}")
        if self.ignore_index is not None and 0 <= self.ignore_index < k:
            raise DatasetError(f"SegData.ignore_index {self.ignore_index} is a class id (classes 0-{k - 1})")
        ids = mk[mk != self.ignore_index] if self.ignore_index is not None else mk
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise DatasetError(
                f"SegData.masks values must lie in [0, {k}) for classes {self.class_names}, "
                f"got range [{int(ids.min())}, {int(ids.max())}]"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        return int(self.images.shape[2]), int(self.images.shape[3])


@dataclass
class SRData:
    """One split of a super-resolution dataset, in memory.

    Attributes:
        hr: high-resolution images, each ``(3, H_i, W_i)`` ``torch.uint8`` RGB (sizes differ).
        names: one name per image (``"0801"``, ``"chelsea"``).
        lr: official low-resolution images per scale, ``{s: [(3, h_i, w_i) uint8, ...]}``;
            a scale that is missing is made by :func:`bicubic_downsample` by the task.
        name: catalog name (``"div2k"``, ``"skimage-photos"``).
        real: for an embedded stand-in, the real dataset it imitates (``"div2k"``).
    """

    hr: list[torch.Tensor]
    names: tuple[str, ...]
    name: str
    lr: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    real: str | None = None

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        if len(self.hr) != len(self.names) or not self.hr:
            raise DatasetError(f"SRData needs one name per HR image and at least one image; got {len(self.hr)} / {len(self.names)}")
        for t in self.hr:
            if t.dim() != 3 or t.shape[0] != 3 or t.dtype != torch.uint8:
                raise DatasetError(f"SRData.hr images must be (3, H, W) torch.uint8; got {tuple(t.shape)} {t.dtype}")
        for s, imgs in self.lr.items():
            if len(imgs) != len(self.hr):
                raise DatasetError(f"SRData.lr[{s}] has {len(imgs)} images for {len(self.hr)} HR images")


@dataclass
class TranslateData:
    """One split of an unpaired two-domain dataset, held in memory.

    Attributes:
        a: ``(N, 3, H, W)`` ``torch.uint8`` RGB images of domain A.
        b: ``(M, 3, H, W)`` ``torch.uint8`` RGB images of domain B (same H, W).
        paired: ``True`` when ``a[i]`` and ``b[i]`` show the same scene (``N == M``): the
            hidden pairs of an embedded set, for paired metrics only; ``False`` for real
            unpaired data.
        domains: names of domains A and B, e.g. ``("horse", "zebra")``.
        name: catalog name; ``real``: the real dataset an embedded one stands in for.
    """

    a: torch.Tensor
    b: torch.Tensor
    paired: bool
    domains: tuple[str, str]
    name: str
    real: str | None = None

    def __post_init__(self) -> None:
        for key in ("a", "b"):
            t = getattr(self, key)
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3 or t.dtype != torch.uint8 or len(t) == 0:
                got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
                raise DatasetError(f"TranslateData.{key} must be non-empty (N, 3, H, W) torch.uint8, got {got}")
        if self.a.shape[2:] != self.b.shape[2:]:
            raise DatasetError(f"TranslateData: A and B images differ in size: {tuple(self.a.shape)} vs {tuple(self.b.shape)}")
        if self.paired and len(self.a) != len(self.b):
            raise DatasetError(f"TranslateData: paired data needs as many A as B images, got {len(self.a)} and {len(self.b)}")
        self.domains = tuple(self.domains)  # type: ignore[assignment]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.a.shape[2]), int(self.a.shape[3])


@dataclass
class IdentityData:
    """A whole identity split held in memory, with verification pairs for evaluation.

    Attributes:
        images: ``(N, 3, H, W)`` ``torch.uint8`` RGB in [0, 255].
        labels: ``(N,)`` ``torch.int64`` identity ids in ``[0, len(identities))``.
        identities: the name of each identity id (LFW: the person's folder name).
        pairs: ``(M, 2)`` int64 indices into ``images`` of the verification pairs, or
            ``None`` (a training split).
        same: ``(M,)`` bool, True for a same-identity pair (``None`` with ``pairs``).
        folds: ``(M,)`` int64 fold id of each pair in ``[0, 10)`` (``None`` with ``pairs``).
        name: catalog name (``"synth-ids"``, ``"lfw"``).
        real: for an embedded stand-in, the real dataset it imitates (``"lfw"``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    identities: tuple[str, ...]
    name: str
    pairs: torch.Tensor | None = None
    same: torch.Tensor | None = None
    folds: torch.Tensor | None = None
    real: str | None = None

    def __post_init__(self) -> None:
        im, lb = self.images, self.labels
        if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[1] != 3 or im.dtype != torch.uint8:
            got = f"{tuple(im.shape)} {im.dtype}" if isinstance(im, torch.Tensor) else type(im).__name__
            raise DatasetError(f"IdentityData.images must be (N, 3, H, W) torch.uint8, got {got}")
        if not isinstance(lb, torch.Tensor) or lb.shape != (im.shape[0],) or lb.dtype != torch.int64:
            raise DatasetError(f"IdentityData.labels must be (N,) = ({im.shape[0]},) torch.int64")
        self.identities = tuple(self.identities)
        if lb.numel() and (int(lb.min()) < 0 or int(lb.max()) >= len(self.identities)):
            raise DatasetError(f"IdentityData.labels must lie in [0, {len(self.identities)})")
        if self.pairs is not None:
            m = self.pairs.shape[0]
            if self.pairs.shape != (m, 2) or self.same is None or self.folds is None or \
                    self.same.shape != (m,) or self.folds.shape != (m,):
                raise DatasetError("IdentityData.pairs must be (M, 2) with same (M,) and folds (M,)")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_identities(self) -> int:
        return len(self.identities)


@dataclass
class StylePairs:
    """Content and style images plus the candidate pairs between them.

    Attributes:
        contents: ``(P, 3, H, W)`` float32 in [0, 1] (P contents, one size).
        styles: ``(S, 3, Hs, Ws)`` float32 in [0, 1] (S styles, one size).
        content_names, style_names: one name per image (photo/texture name or file name).
        pairs: candidate ``(content index, style index)`` pairs; ``explicit`` says they
            were asked for by name or by file (the task then uses them as given instead
            of drawing some per seed).
        notes: human-readable remarks (grayscale conversion), shown in ``describe_data``.
        name: catalog name of the source (``skimage-photos``, ``files``, ``div2k``).
        real: the real dataset an embedded source stands in for (``div2k``), else ``None``.
        split: the split the pool was loaded as (``train`` / ``val``: the tuning contents,
            ``test``: the reported ones; see :mod:`cvloss.data.style_pairs`); pairs given
            by name or by file are used as given whatever the split.
    """

    contents: torch.Tensor
    styles: torch.Tensor
    content_names: tuple[str, ...]
    style_names: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    explicit: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    name: str = "skimage-photos"
    real: str | None = "div2k"
    split: str = "val"

    def __post_init__(self) -> None:
        for what, t, names in (("contents", self.contents, self.content_names), ("styles", self.styles, self.style_names)):
            if t.dim() != 4 or t.shape[1] != 3 or t.dtype != torch.float32:
                raise DatasetError(f"StylePairs.{what} must be (N, 3, H, W) float32, got {tuple(t.shape)} {t.dtype}")
            if len(names) != len(t):
                raise DatasetError(f"StylePairs: {len(t)} {what} but {len(names)} names")
        for c, s in self.pairs:
            if not (0 <= c < len(self.contents) and 0 <= s < len(self.styles)):
                raise DatasetError(f"StylePairs: pair {(c, s)} out of range")

    def pair_names(self) -> list[str]:
        return [f"{self.content_names[c]}:{self.style_names[s]}" for c, s in self.pairs]
