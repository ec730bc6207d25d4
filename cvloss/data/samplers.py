"""Batch samplers that draw every random choice from the trainer's epoch generator."""
from __future__ import annotations

import torch


class PKSampler:
    """P×K batches (Hermans et al. 2017): each step draws P identities (an epoch visits
    every identity with ≥ 2 images once, in a random order) and K images of each, without
    replacement when the identity has ≥ K images, otherwise cycling through its shuffled
    images. ``labels``: ``(N,)`` int64 identity ids in ``[0, n_ids)``."""

    def __init__(self, labels: torch.Tensor, P: int, K: int, n_ids: int) -> None:
        self.P, self.K = int(P), int(K)
        counts = torch.bincount(labels, minlength=n_ids)
        self.eligible = torch.nonzero(counts >= 2).squeeze(1)
        # Each identity's image indices padded to the largest count (-1), so the K draws
        # of an identity are one argsort of random keys.
        order = torch.argsort(labels, stable=True)
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(int(counts.max()))
        table = start[:, None] + slot[None, :]
        self.id_count = counts
        self.id_images = torch.where(slot[None, :] < counts[:, None], order[table.clamp_max(len(labels) - 1)], -1)

    def __len__(self) -> int:
        return max(1, len(self.eligible) // self.P)

    def epoch(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The epoch's batches of image indices, ``(P·K,)`` each, drawn now (eagerly, so
        the draws come before whatever the caller draws next from ``generator``)."""
        P, K, steps = self.P, self.K, len(self)
        ids = self.eligible[torch.randperm(len(self.eligible), generator=generator)][: steps * P].view(steps, P)
        # K images per identity: sort random keys (invalid slots last), take the first K.
        keys = torch.rand(steps, P, self.id_images.shape[1], generator=generator)
        out = []
        for b in range(steps):
            k = keys[b].masked_fill(self.id_images[ids[b]] < 0, 2.0)
            perm = torch.argsort(k, dim=1)
            pos = torch.arange(K)[None, :] % self.id_count[ids[b]][:, None]
            out.append(self.id_images[ids[b]].gather(1, perm).gather(1, pos).reshape(-1))
        return out
