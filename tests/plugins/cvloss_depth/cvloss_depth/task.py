"""Task ``depth``: a tiny conv net predicts a depth map from an RGB image.

Its one slot takes every loss of kind ``image``: a term sees the prediction and the true
depth, each ``(N, 3, H, W)`` in ``[0, 1]`` (the one depth channel repeated, so that
feature losses built for RGB work too; for pixel losses the value equals the one-channel
one). Metrics, on the test split: ``abs_rel`` = mean |d̂ - d| / d, ``rmse`` =
sqrt(mean (d̂ - d)²) (scene units) and ``delta1`` = the share of pixels with
max(d̂/d, d/d̂) < 1.25 (Eigen et al. 2014's accuracy under a threshold); reference row
``mean depth``, the training split's mean depth predicted everywhere.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.registry import load_dataset
from cvloss.tasks.base import EVAL_SPLITS, Optim, Task, named
from cvloss.tasks.spec import Metric, TaskSpec
from cvloss_depth.data import FAR, NEAR

N_SAMPLES = 4
MEAN_DEPTH = "mean depth"  # the reference row
_EPS = 1e-3  # a predicted depth is clamped to at least this before the ratios


def depth_metrics(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """abs_rel, rmse and delta1 of ``pred`` against ``truth`` (same shape, truth > 0)."""
    pred = pred.clamp_min(_EPS)
    ratio = torch.maximum(pred / truth, truth / pred)
    return {"abs_rel": float(((pred - truth).abs() / truth).mean()),
            "rmse": float((pred - truth).square().mean().sqrt()),
            "delta1": float((ratio < 1.25).float().mean())}


def grey(depth: torch.Tensor) -> np.ndarray:
    """(K, 1, H, W) depth -> (K, H, W, 3) uint8: NEAR white, FAR black."""
    level = ((FAR - depth) / (FAR - NEAR)).clamp(0, 1).expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
    return (level.cpu().numpy() * 255).round().astype(np.uint8)


class DepthNet(nn.Module):
    """Three 3x3 convolutions (3 -> width -> width -> 1), a sigmoid last: depth in (0, 1)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DepthTask(Task):
    spec = TaskSpec(
        name="depth",
        metrics={"abs_rel": Metric(False, 0.0, None, "|Δd|/d"), "rmse": Metric(False, 0.0, None, "scene units"),
                 "delta1": Metric(True, 0.0, 1.0, "share of pixels, 0-1")},
        primary="abs_rel",
        secondary="delta1",
        slots={"image": ("image",)},
        budgets={
            # smoke: 2 epochs x 8 steps, about a second per trial; already beats the untrained net
            "smoke": dict(epochs=2, batch_size=4, lr=1e-2, image_size=16, n_train=32, n_val=8, n_test=8, width=8,
                          cpu_threads=1),
            "quick": dict(epochs=20, batch_size=8, lr=5e-3, image_size=32, n_train=None, n_val=None, n_test=None,
                          width=16),
            "full": dict(epochs=60, batch_size=8, lr=1e-3, image_size=64, n_train=None, n_val=None, n_test=None,
                         width=32),
        },
        item_unit="test scene",
        default_dataset="depth-synth",
    )

    def load_data(self) -> None:
        p = self.params
        caps = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        data = {s: load_dataset(self.dataset, s, data_dir=self.data_dir, size=p["image_size"], limit=caps[s],
                                task="depth") for s in ("train", *EVAL_SPLITS)}
        self.sets = {s: (d.images.to(self.device, torch.float32).div_(255), d.depth.to(self.device))
                     for s, d in data.items()}
        self.mean_depth = float(self.sets["train"][1].mean())

    def describe_data(self) -> str:
        n = {s: len(x) for s, (x, _) in self.sets.items()}
        return f"{named(self, None)}: {n['train']} train / {n['val']} val / {n['test']} test scenes"

    def build_model(self) -> nn.Module:
        return DepthNet(self.params["width"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        return {"model": Optim(lambda m: m.parameters(), "adam", {"lr": self.params["lr"]})}

    def num_batches(self) -> int:
        return max(1, len(self.sets["train"][0]) // self.params["batch_size"])

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        x, d = self.sets["train"]
        order = torch.randperm(len(x), generator=generator)
        size = self.params["batch_size"]
        for b in range(self.num_batches()):
            idx = order[b * size:(b + 1) * size].to(self.device)
            yield x[idx], d[idx]

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        x, d = batch
        opt = optimizers["model"]
        opt.zero_grad()
        loss = plan["image"](model(x).expand(-1, 3, -1, -1), d.expand(-1, 3, -1, -1))
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    def evaluate(self, model, split: str = "val") -> dict[str, float]:
        x, d = self.sets[split]
        return depth_metrics(model(x), d)

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        _, d = self.sets[split]
        return {MEAN_DEPTH: depth_metrics(torch.full_like(d, self.mean_depth), d)}

    def sample_rows(self, model) -> dict[str, np.ndarray]:
        x, d = (t[:N_SAMPLES] for t in self.sets["val"])
        return {"input": (x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8),
                "truth": grey(d), "pred": grey(model(x))}
