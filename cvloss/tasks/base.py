"""The Task contract the trainer drives. A task owns its model, data, optimiser(s), one
training step, evaluation and sample images; the trainer owns the loop, seeding,
checkpoints, resume, divergence detection and results files."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.settings import COMMON, Setting


class Task(ABC):
    """Base class: subclasses set the class attributes and implement the methods.

    ``metrics`` maps each reported metric to ``True`` when higher is better; its order is
    the column order of tables. ``primary_metric`` is the one plots lead with.
    """

    name: str = ""
    default_dataset: str = ""
    metrics: dict[str, bool] = {}
    primary_metric: str = ""
    # {"smoke": {...}, "quick": {...}, "full": {...}}: every setting a run may override.
    budgets: dict[str, dict[str, Any]] = {}
    # The schema of the task's own settings (cvloss.settings); names shared by every task
    # (epochs, lr, batch_size, ...) come from COMMON unless declared here.
    settings: dict[str, Setting] = {}
    # Evaluate the untrained model too (row ``epoch 0`` of metrics.csv, ``summary["at_init"]``).
    evaluate_at_init: bool = False
    # ``--feature-weights`` of the run, set by the trainer before ``load_data`` so metrics that
    # use a feature network (SR feature distance, style Gram distances) use the same weights.
    feature_weights: str | None = None

    def __init__(self, dataset: str, params: dict[str, Any], device: torch.device, data_dir: str | None = None) -> None:
        self.dataset = dataset
        self.params = params
        self.device = device
        self.data_dir = data_dir

    @classmethod
    def schema(cls) -> dict[str, Setting]:
        """Every setting a run may override (the budgets' keys), with its type and range."""
        keys = dict.fromkeys(k for params in cls.budgets.values() for k in params)
        return {k: cls.settings.get(k) or COMMON[k] for k in keys}

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Checks that tie settings together (``UsageError``); each value alone already
        passed its schema. Called before anything is built or written."""

    @abstractmethod
    def load_data(self) -> None:
        """Load (decode once) the train and validation data into memory."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build the model; the trainer seeds torch right before, so init is per seed."""

    @abstractmethod
    def build_optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        ...

    @abstractmethod
    def num_batches(self) -> int:
        """Training batches per epoch."""

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """Yield the epoch's batches in an order (and augmentation) drawn from ``generator``."""

    @abstractmethod
    def train_step(self, model: nn.Module, loss: nn.Module, optimizers: dict, batch: Any) -> dict[str, torch.Tensor]:
        """One optimisation step; returns at least ``{"loss": scalar tensor}`` (unreduced
        by ``.item()`` so the trainer decides when to synchronise)."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics (keys of ``metrics``)."""

    @abstractmethod
    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """Images for sample grids, uint8 (K, H, W, 3): ``input``, ``truth``, ``pred``,
        always the same K validation images so grids line up across losses."""

    def reference_metrics(self) -> dict[str, dict[str, float]]:
        """Model-free reference rows for the comparison table, e.g. ``{"bicubic": {...}}``
        for super-resolution; computed once per trial, shown as extra rows."""
        return {}

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        """A one-line reason when the trained model has collapsed (all embeddings alike, a
        GAN stuck on one mode); the trial is then reported as collapsed, not as a low score."""
        return None

    @classmethod
    def comparison_plots(cls, result: dict[str, Any], out_dir: Path) -> dict[str, str]:
        """Task-specific plots of a whole comparison (ROC curves, sample scatter, ...),
        written into ``out_dir``; returns {key: file name}. ``result["trials"][loss]``
        lists each loss's trial folders (per seed) to read ``samples.npz`` etc. from."""
        return {}

    def state_dict(self) -> dict:
        """Task state beyond model/optimisers that a resume needs (e.g. a GAN image pool)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def describe_data(self) -> str:
        """One line naming the data, and the real dataset an embedded one stands in for."""
        return self.dataset


def save_grid(rows: dict[str, np.ndarray], path: Path, titles: dict[str, str] | None = None) -> None:
    """Save a grid whose columns are ``rows``' keys and rows the K sample images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(rows)
    k = len(next(iter(rows.values())))
    fig, axes = plt.subplots(k, len(cols), figsize=(1.6 * len(cols), 1.6 * k), squeeze=False)
    for j, col in enumerate(cols):
        for i in range(k):
            ax = axes[i][j]
            ax.imshow(rows[col][i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title((titles or {}).get(col, col), fontsize=8)
    fig.tight_layout()
    from cvloss.run.io import atomic_path

    with atomic_path(path) as tmp:  # a unique temporary name: concurrent writers never collide
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
