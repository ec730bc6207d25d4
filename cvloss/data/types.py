"""Plain containers the data layer hands to tasks, and its one error type.

Kept free of heavy imports so that :mod:`cvloss.data.fetch`, :mod:`cvloss.data.registry`
and every loader can share them without import cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cvloss.errors import CvlossError


class DatasetError(CvlossError, ValueError):
    """A user-facing data problem (unknown name, missing files, bad checksum, unsafe
    archive, unreachable URL). The message is one line and says what to do next."""


@dataclass
class SegData:
    """A whole segmentation split held in memory (the reference datasets are small).

    Attributes:
        images: ``(N, 3, H, W)`` ``torch.uint8`` RGB in [0, 255].
        masks: ``(N, H, W)`` ``torch.int64`` class ids in ``[0, K)``, ``K = len(class_names)``.
        class_names: name of each class id, e.g. ``("background", "pet", "border")``.
        name: catalog name of the dataset (``"oxford-pets"``, ``"synth-pets"``, ...).
        real: for an embedded stand-in, the catalog name of the real dataset it imitates
            (``"oxford-pets"``); ``None`` for a real dataset or one with no real twin here.
    """

    images: torch.Tensor
    masks: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    real: str | None = None

    def __post_init__(self) -> None:
        im, mk = self.images, self.masks
        if not isinstance(im, torch.Tensor) or im.dim() != 4 or im.shape[1] != 3 or im.dtype != torch.uint8:
            got = f"{tuple(im.shape)} {im.dtype}" if isinstance(im, torch.Tensor) else type(im).__name__
            raise ValueError(f"SegData.images must be (N, 3, H, W) torch.uint8, got {got}")
        if not isinstance(mk, torch.Tensor) or mk.dim() != 3 or mk.dtype != torch.int64:
            got = f"{tuple(mk.shape)} {mk.dtype}" if isinstance(mk, torch.Tensor) else type(mk).__name__
            raise ValueError(f"SegData.masks must be (N, H, W) torch.int64, got {got}")
        n, _, h, w = im.shape
        if tuple(mk.shape) != (n, h, w):
            raise ValueError(
                f"SegData.masks must be (N, H, W) = {(n, h, w)} to match images {tuple(im.shape)}, "
                f"got {tuple(mk.shape)}"
            )
        self.class_names = tuple(self.class_names)
        k = len(self.class_names)
        if k < 2:
            raise ValueError(f"SegData needs at least 2 class names, got {self.class_names!r}")
        if mk.numel() and (int(mk.min()) < 0 or int(mk.max()) >= k):
            raise ValueError(
                f"SegData.masks values must lie in [0, {k}) for classes {self.class_names}, "
                f"got range [{int(mk.min())}, {int(mk.max())}]"
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
