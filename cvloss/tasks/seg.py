"""Task ``seg``: a small U-Net trained for semantic segmentation.

Data: ``synth-pets`` (default, embedded; stands in for Oxford-IIIT Pet trimaps),
``synth-vessels`` (embedded thin structures), ``oxford-pets`` (downloaded) or a folder.
Images are float tensors in [0, 1], masks int64 class ids; every loss term (kind ``seg``)
sees the logits ``(N, C, H, W)`` and the masks ``(N, H, W)``.

Metrics (:mod:`cvloss.metrics.segmentation`): mIoU over all classes of the dataset
(primary), per-class IoU, Dice of the foreground classes (secondary), pixel accuracy,
Betti-0/1 errors, clDice score; reference row ``majority class``. Degenerate: one class
on >= :data:`ONE_CLASS_SHARE` of the pixels (more than the truth has), or mIoU at or
below the majority-class predictor's.

Metric definitions, degenerate rule and budgets: ``docs/tasks/seg.md``.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.augment import flip_hv
from cvloss.data.cache import cached_tensor, source_hash
from cvloss.data.registry import data_cache_dir, get_dataset, load_dataset
from cvloss.errors import UsageError
from cvloss.losses.base import Loss
from cvloss.losses.spec import CombinedLoss
from cvloss.losses.segmentation import supplied_borders, wce_terms
from cvloss.metrics.segmentation import SegMetricAccumulator
from cvloss.models.unet import UNet
from cvloss.task_registry import VIEWS
from cvloss.tasks.base import EVAL_SPLITS, Optim, Task, named
from cvloss.tasks.spec import Metric, TaskSpec

# Mask colours: background dark, first class light, then distinct hues (print-safe
# because lightness differs between classes too).
PALETTE = np.array(
    [[25, 25, 25], [235, 235, 235], [214, 39, 40], [31, 119, 180], [255, 127, 14], [44, 160, 44]], dtype=np.uint8
)
N_SAMPLES = 4
#: A prediction with one class on at least this share of the pixels is degenerate (unless
#: the truth has that class on as many): it has learnt to draw one label.
ONE_CLASS_SHARE = 0.95
MAJORITY = "majority class"  # the reference row of the trivial predictor


def colorize(mask: np.ndarray) -> np.ndarray:
    """(K, H, W) class ids -> (K, H, W, 3) uint8 colours."""
    return PALETTE[np.clip(mask, 0, len(PALETTE) - 1)]


def check_ignore_index(loss: nn.Module, ignore_index: int) -> None:
    """Every term of ``loss`` must honour the data's ``ignore_index`` with that very value
    (``ce(ignore_index=255)``): a term that counts void pixels as a class (or cannot tell
    them apart) would train on labels that are not there. One :class:`UsageError` line."""
    terms = [m for m in loss.modules() if isinstance(m, Loss) and not isinstance(m, CombinedLoss)]
    bad = [t.name for t in terms if getattr(t, "ignore_index", None) != ignore_index]
    if bad:
        raise UsageError(f"the data declares ignore_index {ignore_index} (classes.txt) but loss term(s) "
                         f"{', '.join(bad)} do not: write each as e.g. '{bad[0]}(ignore_index={ignore_index})'")


class SegSpec(TaskSpec):
    """seg's rule on stored numbers."""

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """mIoU at or below the ``majority class`` reference row's (absent in summaries
        written before that row existed: then None)."""
        miou, floor = metrics.get("miou"), (reference.get(MAJORITY) or {}).get("miou")
        if isinstance(miou, (int, float)) and isinstance(floor, (int, float)) and miou <= floor:
            return f"mIoU {miou:.3g} <= the majority-class predictor's {floor:.3g}"
        return None


class SegTask(Task):
    spec = SegSpec(
        name="seg",
        # Metric(higher is better, low, high, unit)
        metrics={"miou": Metric(True, 0.0, 1.0, "mean IoU, 0-1"), "dice": Metric(True, 0.0, 1.0, "Dice, 0-1"),
                 "pixel_acc": Metric(True, 0.0, 1.0, "fraction of pixels"),
                 "betti0_err": Metric(False, 0.0, None, "|Δβ0|, components"),
                 "betti1_err": Metric(False, 0.0, None, "|Δβ1|, holes"),
                 "cldice_score": Metric(True, 0.0, 1.0, "clDice, 0-1")},
        extra_metrics={"iou_": Metric(True, 0.0, 1.0, "IoU, 0-1")},  # per-class IoU, one per class of the dataset
        primary="miou",
        secondary="dice",
        slots={"seg": ("seg",)},
        degenerate_rule=(f"one class on >= {ONE_CLASS_SHARE:.0%} of the pixels (more than the truth has), or mIoU at "
                         "or below the majority-class predictor's"),
        budgets={
            # smoke on one CPU thread, as every task's: a tiny model gains nothing from threads, and
            # one count for every smoke comparison keeps their provenance alike
            "smoke": dict(epochs=2, batch_size=8, lr=2e-3, image_size=32, n_train=32, n_val=16, n_test=16, width=8,
                          depth=2, augment=True, amp=True, channels_last=True, cpu_threads=1),
            # quick: the reference study's 8 specs x (6 lr trials + 10 seeds) in < 60 min with
            # --jobs 2 on 2 cores; n_test: the whole test split, read twice per trial only
            # (rationale: docs/tasks/seg.md, "Budgets")
            "quick": dict(epochs=8, batch_size=16, lr=2e-3, image_size=64, n_train=192, n_val=64, n_test=256,
                          width=16, depth=3, augment=True, amp=True, channels_last=True),
            "full": dict(epochs=60, batch_size=16, lr=1e-3, image_size=128, n_train=None, n_val=None, n_test=None,
                         width=32, depth=4, augment=True, amp=True, channels_last=True),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        p = self.params
        train = load_dataset(self.dataset, "train", data_dir=self.data_dir, size=p["image_size"], limit=p["n_train"])
        # n_val caps val (learning curves, choices: read every epoch), n_test caps test (the
        # reported number, read once after training and once for the untrained model);
        # params recorded before n_test existed capped test with n_val
        caps = {"val": p["n_val"], "test": p.get("n_test", p["n_val"])}
        evals = {split: load_dataset(self.dataset, split, data_dir=self.data_dir, size=p["image_size"], limit=caps[split])
                 for split in EVAL_SPLITS}
        self.class_names = tuple(train.class_names)
        self.num_classes = len(self.class_names)
        self.real_name = getattr(train, "real", None)
        # void pixels a dataset folder declares (classes.txt): the metrics leave them out,
        # and plan() makes every loss term say the same ignore_index
        self.ignore_index = getattr(train, "ignore_index", None)
        # Decode once: uint8 -> float [0, 1] on the device, reused every epoch.
        self.train_x = train.images.to(self.device, torch.float32).div_(255)
        self.train_y = train.masks.to(self.device)
        self.eval_sets = {split: (d.images.to(self.device, torch.float32).div_(255), d.masks.to(self.device))
                          for split, d in evals.items()}
        self.val_x, self.val_y = self.eval_sets["val"]
        self._border_cache: dict[tuple, torch.Tensor] = {}  # wce border maps per training image
        self._reference: dict[str, dict[str, dict[str, float]]] = {}

    def _metric_names(self) -> list[str]:
        return [*self.spec.metrics, *(f"iou_{c}" for c in self.class_names)]

    def describe_data(self) -> str:
        n_tr, n_va, n_te = len(self.train_x), len(self.val_x), len(self.eval_sets["test"][0])
        return (f"{named(self, self.real_name)}: {n_tr} train / {n_va} val / {n_te} test images, "
                f"{self.num_classes} classes {list(self.class_names)}")

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        p = self.params
        return UNet(in_channels=3, num_classes=self.num_classes, width=p["width"], depth=p["depth"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        """Adam over the U-Net. Class weights must name every class of the data: checked
        here, before trial.json is written, rather than at the first step."""
        k = max(self.num_classes, 2)
        for _, term in slots["seg"]:
            w = getattr(term, "class_weight", None)
            if w is not None and w.numel() != k:
                raise UsageError(f"loss {slots['seg'].spec!r}: {term.name}(weight=...) has {w.numel()} entries but "
                                 f"{self.dataset} has {k} classes {list(self.class_names)}; give one weight per class")
        return {"model": Optim(nn.Module.parameters, "adam", {"lr": self.params["lr"]})}

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
                fh, fv = flips[idx, 0], flips[idx, 1]
                x, y = flip_hv(x, fh, fv), flip_hv(y, fh, fv)
            # (indices, flips) let train_step pick each image's cached wce border map
            # and flip it with the image (see _wce_borders).
            yield x, y, (on_device, fh, fv)

    def plan(self, loss):
        if getattr(self, "ignore_index", None) is not None:  # set by load_data
            check_ignore_index(loss, self.ignore_index)
        self._wce = wce_terms(loss)  # the wce terms with a U-Net border map, bound once
        return super().plan(loss)

    def _wce_borders(self, idx: torch.Tensor, fh, fv) -> dict:
        """The U-Net border map of every wce term for the batch ``idx``: it depends on one
        image's mask alone, so it is computed once per training image and (w0, sigma,
        background), in chunks of 64 images (scipy's memory), then indexed and flipped with
        the image (a flip keeps distances); the class-balanced part stays in the loss."""
        out = {}
        for term in self._wce:
            key = (term.w0, term.sigma, term.background)
            if key not in self._border_cache:  # and on disk beside the data's caches: every trial shares it
                build = lambda: torch.cat([term.border_map(self.train_y[i : i + 64])  # noqa: E731
                                           for i in range(0, len(self.train_y), 64)])
                parts = {"w0": term.w0, "sigma": term.sigma, "background": term.background, "source": source_hash(type(term))}
                # the dataset's cache dir: never inside a folder of the user's or an adopted copy
                folder = data_cache_dir(get_dataset(self.dataset, "seg"), self.data_dir)
                self._border_cache[key] = cached_tensor(folder, "wce-border", parts, self.train_y, build,
                                                        folder=folder).to(self.device)
            border = self._border_cache[key][idx]
            out[term] = border if fh is None else flip_hv(border, fh, fv)
        return out

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        x, y, *where = batch
        borders = self._wce_borders(*where[0]) if where else {}
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        with supplied_borders(borders):
            value = plan["seg"](model(x), y)
        value.backward()
        opt.step()
        return {"loss": value.detach()}

    # ------------------------------------------------------------------ evaluation
    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Class ids (N, H, W): argmax of the logits, or sigmoid > 0.5 for one channel."""
        logits = model(x).float()
        if logits.shape[1] == 1:
            return (logits[:, 0] > 0).long()
        return logits.argmax(1)

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        acc = SegMetricAccumulator(self.num_classes, self.class_names, ignore_index=self.ignore_index)
        bs = self.params["batch_size"]
        xs, ys = self.eval_sets[split]
        for i in range(0, len(xs), bs):
            pred = self.predict(model, xs[i : i + bs])
            acc.update(pred.cpu(), ys[i : i + bs].cpu())
        out = acc.compute()
        return {k: float(out[k]) for k in self._metric_names() if k in out}

    def _class_shares(self, labels: torch.Tensor) -> torch.Tensor:
        """(K,) share of each class among ``labels`` (void pixels left out)."""
        flat = labels.flatten()
        if self.ignore_index is not None:
            flat = flat[flat != self.ignore_index]
        counts = torch.bincount(flat.cpu().clamp(0, self.num_classes - 1), minlength=self.num_classes).double()
        return counts / counts.sum().clamp(min=1)

    def majority_class(self) -> int:
        """The most frequent class of the training masks: what the trivial predictor says."""
        return int(self._class_shares(self.train_y).argmax())

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        """``majority class``: every pixel of the split labelled with the training masks'
        most frequent class, scored like a model (its mIoU is what a degenerate model is
        held to)."""
        if split not in self._reference:
            acc = SegMetricAccumulator(self.num_classes, self.class_names, ignore_index=self.ignore_index)
            ys = self.eval_sets[split][1].cpu()
            acc.update(torch.full_like(ys, self.majority_class()), ys)
            out = acc.compute()
            self._reference[split] = {MAJORITY: {k: float(out[k]) for k in self._metric_names() if k in out}}
        return self._reference[split]

    def degenerate_reason(self, model: nn.Module, metrics: dict[str, float], split: str,
                          untrained: dict[str, float] | None) -> str | None:
        """One class on >= :data:`ONE_CLASS_SHARE` of ``split``'s predicted pixels while
        the truth has it on fewer (the model draws one label), else the numbers' rule
        (:meth:`SegSpec.degenerate_by_numbers`: mIoU at or below the majority predictor's)."""
        xs, ys = self.eval_sets[split]
        bs = self.params["batch_size"]
        pred = torch.cat([self.predict(model, xs[i : i + bs]).cpu() for i in range(0, len(xs), bs)])
        if self.ignore_index is not None:  # a void pixel's prediction is not scored
            pred = pred[ys.cpu() != self.ignore_index]
        shares, truth = self._class_shares(pred), self._class_shares(ys)
        top = int(shares.argmax())
        if shares[top] >= ONE_CLASS_SHARE and truth[top] < shares[top]:
            return (f"predicts {self.class_names[top]} on {float(shares[top]):.1%} of the {split} pixels "
                    f"(>= {ONE_CLASS_SHARE:.0%}; the truth has it on {float(truth[top]):.1%})")
        return super().degenerate_reason(model, metrics, split, untrained)

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        x = self.val_x[:N_SAMPLES]
        pred = self.predict(model, x).cpu().numpy()
        return {
            "input": (x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8),
            "truth": colorize(self.val_y[:N_SAMPLES].cpu().numpy()),
            "pred": colorize(pred),
        }


VIEWS.register("seg", "cvloss.report.views:SEG_VIEW")  # titles, notes and plots: the report's
