"""Task ``seg``: a small U-Net trained for semantic segmentation.

Data: ``synth-pets`` (default, embedded; stands in for Oxford-IIIT Pet trimaps),
``synth-vessels`` (embedded thin structures) or ``oxford-pets`` (downloaded). Images are
decoded once and kept in memory as float tensors in [0, 1]; masks as int64 class ids.

Metrics (see :mod:`cvloss.metrics.segmentation`): mIoU over all classes of the dataset
(for trimaps: background, pet, border -- the 3-class definition), per-class IoU, Dice of
the foreground classes, pixel accuracy, Betti-0/1 errors and the clDice score.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.tasks.base import Task

# Mask colours: background dark, first class light, then distinct hues (print-safe
# because lightness differs between classes too).
PALETTE = np.array(
    [[25, 25, 25], [235, 235, 235], [214, 39, 40], [31, 119, 180], [255, 127, 14], [44, 160, 44]], dtype=np.uint8
)
N_SAMPLES = 4


def _flip(t: torch.Tensor, fh: torch.Tensor | None, fv: torch.Tensor | None) -> torch.Tensor:
    """Flip each image of ``t`` (N, ..., H, W) horizontally where ``fh`` and vertically
    where ``fv`` ((N,) bool; ``None``: no flip)."""
    if fh is None:
        return t
    shape = (-1,) + (1,) * (t.dim() - 1)
    t = torch.where(fh.view(shape), t.flip(-1), t)
    return torch.where(fv.view(shape), t.flip(-2), t)


def colorize(mask: np.ndarray) -> np.ndarray:
    """(K, H, W) class ids -> (K, H, W, 3) uint8 colours."""
    return PALETTE[np.clip(mask, 0, len(PALETTE) - 1)]


class SegTask(Task):
    name = "seg"
    default_dataset = "synth-pets"
    metrics = {
        "miou": True,
        "dice": True,
        "pixel_acc": True,
        "betti0_err": False,
        "betti1_err": False,
        "cldice_score": True,
    }
    primary_metric = "miou"
    budgets = {
        "smoke": dict(epochs=2, batch_size=8, lr=2e-3, image_size=32, n_train=32, n_val=16, width=8, depth=2,
                      augment=True, amp=True, channels_last=True),
        "quick": dict(epochs=12, batch_size=16, lr=2e-3, image_size=64, n_train=192, n_val=64, width=16, depth=3,
                      augment=True, amp=True, channels_last=True),
        "full": dict(epochs=60, batch_size=16, lr=1e-3, image_size=128, n_train=None, n_val=None, width=32, depth=4,
                     augment=True, amp=True, channels_last=True),
    }

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        from cvloss.data.registry import load_dataset

        p = self.params
        train = load_dataset(self.dataset, "train", data_dir=self.data_dir, size=p["image_size"], limit=p["n_train"])
        val = load_dataset(self.dataset, "val", data_dir=self.data_dir, size=p["image_size"], limit=p["n_val"])
        self.class_names = tuple(train.class_names)
        self.num_classes = len(self.class_names)
        self.real_name = getattr(train, "real", None)
        # Decode once: uint8 -> float [0, 1] on the device, reused every epoch.
        self.train_x = train.images.to(self.device, torch.float32).div_(255)
        self.train_y = train.masks.to(self.device)
        self.val_x = val.images.to(self.device, torch.float32).div_(255)
        self.val_y = val.masks.to(self.device)
        self._border_cache: dict[tuple, torch.Tensor] = {}  # wce border maps per training image
        self.metrics = dict(SegTask.metrics)
        self.metrics.update({f"iou_{c}": True for c in self.class_names})

    def describe_data(self) -> str:
        n_tr, n_va = len(self.train_x), len(self.val_x)
        real = f" (embedded stand-in for {self.real_name})" if self.real_name else ""
        return f"{self.dataset}{real}: {n_tr} train / {n_va} val images, {self.num_classes} classes {list(self.class_names)}"

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        from cvloss.models.unet import UNet

        model = UNet(in_channels=3, num_classes=self.num_classes, width=self.params["width"], depth=self.params["depth"])
        model = model.to(self.device)
        if self._cuda and self.params.get("channels_last", True):
            model = model.to(memory_format=torch.channels_last)
        return model

    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(model.parameters(), lr=self.params["lr"])}

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def _autocast(self):
        # bf16 autocast only on CUDA (a flag of the budget); the loss itself runs in fp32.
        if self._cuda and self.params.get("amp", True):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        return max(1, len(self.train_x) // self.params["batch_size"])

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """Shuffled batches (last partial batch dropped, so every step has the same size)
        with random horizontal and vertical flips, all drawn from ``generator``."""
        n, bs = len(self.train_x), self.params["batch_size"]
        order = torch.randperm(n, generator=generator)
        flips = torch.rand(n, 2, generator=generator) < 0.5
        for b in range(self.num_batches()):
            idx = order[b * bs : (b + 1) * bs]
            on_device = idx.to(self.device)
            x, y = self.train_x[on_device], self.train_y[on_device]
            fh = fv = None
            if self.params.get("augment", True):
                fh, fv = flips[idx, 0].to(self.device), flips[idx, 1].to(self.device)
                x, y = _flip(x, fh, fv), _flip(y, fh, fv)
            # (indices, flips) let train_step pick each image's cached wce border map
            # and flip it with the image (see _wce_borders).
            yield x, y, (on_device, fh, fv)

    def _wce_borders(self, loss: nn.Module, idx: torch.Tensor, fh, fv) -> dict:
        """The U-Net border map of every wce term of ``loss`` for the batch ``idx``.

        The border term depends on one image's mask alone, so it is computed once per
        training image (per (w0, sigma, background), at the first step that needs it, in
        chunks of 64 images to bound scipy's memory) and then only indexed and flipped
        with the image (a flip maps objects to objects and keeps distances); the
        class-balanced part stays per batch, inside the loss."""
        from cvloss.losses.segmentation import wce_terms

        out = {}
        for term in wce_terms(loss):
            key = (term.w0, term.sigma, term.background)
            if key not in self._border_cache:
                chunks = [term.border_map(self.train_y[i : i + 64]) for i in range(0, len(self.train_y), 64)]
                self._border_cache[key] = torch.cat(chunks).to(self.device)
            out[term] = _flip(self._border_cache[key][idx], fh, fv)
        return out

    def train_step(self, model, loss, optimizers, batch) -> dict[str, torch.Tensor]:
        from cvloss.losses.segmentation import supplied_borders

        x, y, *where = batch
        borders = self._wce_borders(loss, *where[0]) if where else {}
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        if self._cuda and self.params.get("channels_last", True):
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            logits = model(x)
        with supplied_borders(borders):
            value = loss(logits.float(), y)
        value.backward()
        opt.step()
        return {"loss": value.detach()}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class ids (N, H, W): argmax of the logits, or sigmoid > 0.5 for one channel."""
        model.eval()
        with self._autocast():
            logits = model(x).float()
        model.train()
        if logits.shape[1] == 1:
            return (logits[:, 0] > 0).long()
        return logits.argmax(1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        from cvloss.metrics.segmentation import SegMetricAccumulator

        acc = SegMetricAccumulator(self.num_classes, self.class_names)
        bs = self.params["batch_size"]
        for i in range(0, len(self.val_x), bs):
            pred = self.predict(model, self.val_x[i : i + bs])
            acc.update(pred.cpu(), self.val_y[i : i + bs].cpu())
        out = acc.compute()
        return {k: float(out[k]) for k in self.metrics if k in out}

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        x = self.val_x[:N_SAMPLES]
        pred = self.predict(model, x).cpu().numpy()
        return {
            "input": (x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8),
            "truth": colorize(self.val_y[:N_SAMPLES].cpu().numpy()),
            "pred": colorize(pred),
        }
