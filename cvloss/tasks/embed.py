"""Task ``embed``: a small CNN embedding trained for face verification.

Data: ``synth-ids`` (default, embedded stand-in for LFW), ``lfw`` (downloaded; reported
by View 2's ten folds, one sub-trial per fold) or an identity-folder dataset; train, val
and test identities are disjoint. Training batches come from a P×K sampler (P identities,
K >= 2 images each, random flips). Loss kinds: ``metric`` terms see the P·K unit-norm
embeddings and identity ids; ``triplets`` (``triplet_offline``) random offline triplets,
⌊P·K/3⌋ per step; ``logits`` (``softmax``) a linear classifier over the training
identities on the un-normalised features.

Metrics (:mod:`cvloss.metrics.verification`) on the cosine similarity of the split's
pairs: 10-fold verification accuracy (primary), ROC AUC, TAR at FAR = 1e-2 and 1e-3; the
untrained network is scored too. Collapsed: val embeddings' RMS spread below
``collapse_tol``; degenerate: accuracy <= :data:`CHANCE_ACC`. ``docs/tasks/embed.md``.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cvloss.data.augment import flip_where
from cvloss.data.registry import load_dataset
from cvloss.data.samplers import PKSampler
from cvloss.errors import UsageError
from cvloss.losses.metric import OfflineTripletSampler
from cvloss.metrics.verification import accuracy_at, best_threshold, roc_auc, tar_at_far, verification_metrics
from cvloss.models.embedding import EmbeddingNet
from cvloss.settings import Bool, Float, Int
from cvloss.task_registry import VIEWS
from cvloss.tasks.base import EVAL_SPLITS, Optim, Task, named, to_uint8
from cvloss.tasks.spec import Metric, TaskSpec

N_SAMPLES = 4  # verification pairs shown in the sample grid
PCA_IDS = 10  # val identities whose embeddings the report's PCA plot draws


class EmbedBatch(NamedTuple):
    """One step: the P×K batch and, for offline terms, random triplets.

    x: ``(P·K, 3, H, W)`` float in [0, 1]; y: ``(P·K,)`` int64 identity ids;
    triplets: ``(T, 3)`` int64 train-image indices (anchor, positive, negative), T = ⌊P·K/3⌋;
    triplet_flip: ``(T, 3)`` bool horizontal flips of those images.
    """

    x: torch.Tensor
    y: torch.Tensor
    triplets: torch.Tensor
    triplet_flip: torch.Tensor


#: Datasets reported by a k-fold protocol: LFW View 2 (10 folds of 300 + 300 pairs).
VIEW2_FOLDS = {"lfw": 10}


class EvalPairs(NamedTuple):
    """One evaluation split: images ``x`` (N, 3, H, W) float in [0, 1] on the device, their
    identity labels ``y`` (N,) int64 on the CPU, and the verification pairs: ``pairs`` (M, 2) indices into x, ``same`` (M,) bool,
    ``folds`` (M,) fold ids in [0, 10)."""

    x: torch.Tensor
    y: torch.Tensor
    pairs: np.ndarray
    same: np.ndarray
    folds: np.ndarray


#: Degenerate: verification accuracy at or below this (pairs are half same, half not:
#: chance is 0.5; 0.55 leaves room for the noise of a few hundred pairs).
CHANCE_ACC = 0.55


class EmbedSpec(TaskSpec):
    """embed's folds (LFW View 2) and rule on stored numbers."""

    def folds(self, dataset: str) -> int:
        """LFW is reported by View 2's ten folds (docs/tasks/embed.md); other sets by one trial."""
        return VIEW2_FOLDS.get(dataset, 0)

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: ``verif_acc`` <= :data:`CHANCE_ACC` -- the embedding tells same and
        different pairs apart no better than chance. (Embeddings all alike are
        ``collapsed`` first, :meth:`EmbedTask.collapse_reason`.)"""
        acc = metrics.get("verif_acc")
        if isinstance(acc, (int, float)) and acc <= CHANCE_ACC:
            return f"verification accuracy {acc:.3f} <= {CHANCE_ACC:g} (chance)"
        return None


class EmbedTask(Task):
    spec = EmbedSpec(
        name="embed",
        # Metric(higher is better, low, high, unit)
        metrics={"verif_acc": Metric(True, 0.0, 1.0, "fraction of pairs"), "auc": Metric(True, 0.0, 1.0, "ROC AUC, 0-1"),
                 "tar_far1e-2": Metric(True, 0.0, 1.0, "TAR, 0-1"), "tar_far1e-3": Metric(True, 0.0, 1.0, "TAR, 0-1")},
        primary="verif_acc",
        secondary="auc",
        slots={"metric": ("metric",), "logits": ("logits",), "triplets": ("triplets",)},
        degenerate_rule=f"verification accuracy <= {CHANCE_ACC:g} (chance: 0.5)",
        replicate_unit="seed: initial weights + P×K identity order, image draws and flips",
        evaluate_at_init=True,
        # P identities × K images per step; n_* / per_id / pairs_per_fold size synth-ids
        # (ignored for lfw, whose lists are fixed; n_train_ids then caps its identities).
        settings={
            "P": Int(2, help="identities per batch (>= 2 for a negative pair)"),
            "K": Int(2, help="images per identity (>= 2 for a positive pair)"),
            "dim": Int(1, help="embedding dimension"),
            "depth": Int(2, 4, help="ResNet stages (2, 3 or 4)"),
            "n_train_ids": Int(2, nullable=True, help="training identities (none: all)"),
            "per_id": Int(2, help="synth-ids images per identity"),
            "n_val_ids": Int(2, help="synth-ids evaluation identities"),
            "val_per_id": Int(2, help="synth-ids evaluation images per identity"),
            "pairs_per_fold": Int(1, help="verification pairs per fold and kind"),
            # the test split apart from val: it is embedded twice per trial, val every epoch,
            # so it can be larger (quick: 200 identities, 10 x (50 + 50) = 1,000 pairs)
            "n_test_ids": Int(2, help="synth-ids test identities"),
            "test_pairs_per_fold": Int(1, help="synth-ids test verification pairs per fold and kind"),
            "eval_batch": Int(1, help="images per evaluation batch"),
            "collapse_tol": Float(0.0, help="embedding spread below which a model counts as collapsed"),
            "bn_neck": Bool("batch-norm before the embedding"),
        },
        budgets={
            "smoke": dict(epochs=2, P=8, K=4, lr=2e-3, weight_decay=0.0, image_size=32, width=8, depth=3, dim=32,
                          n_train_ids=40, per_id=6, n_val_ids=20, val_per_id=4, pairs_per_fold=6, n_test_ids=20,
                          test_pairs_per_fold=6, eval_batch=512, collapse_tol=0.05, bn_neck=True, amp=True, cpu_threads=1),
            # quick: 15 epochs × 12 steps of 16 × 4 images, ~20 s per trial on 2 idle cores.
            "quick": dict(epochs=15, P=16, K=4, lr=1e-3, weight_decay=0.0, image_size=32, width=8, depth=3, dim=64,
                          n_train_ids=200, per_id=8, n_val_ids=100, val_per_id=6, pairs_per_fold=30, n_test_ids=200,
                          test_pairs_per_fold=50, eval_batch=512, collapse_tol=0.05, bn_neck=True, amp=True),
            # Real data (lfw) on a GPU: Hermans et al.'s P = 18, K = 4 scaled to 32 × 4;
            # 96 px crops, 128-d embeddings (FaceNet's size).
            "full": dict(epochs=60, P=32, K=4, lr=1e-3, weight_decay=5e-4, image_size=96, width=32, depth=4, dim=128,
                         n_train_ids=None, per_id=10, n_val_ids=300, val_per_id=8, pairs_per_fold=300, n_test_ids=300,
                         test_pairs_per_fold=300, eval_batch=512, collapse_tol=0.05, bn_neck=True, amp=True),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        p = self.params
        if int(p["K"]) < 2:
            raise UsageError(f"embed: K={p['K']} images per identity gives no positive pair (contrastive and "
                             f"triplet losses need one); use --set K=2 or more")
        if int(p["P"]) < 2:
            raise UsageError(f"embed: P={p['P']} identities per batch gives no negative pair; use --set P=2 or more")
        size, data_dir = p["image_size"], self.data_dir
        # A fold of LFW's View 2 (the trainer sets params["fold"]): train on the people of
        # the other nine folds, test on the fold's pairs (cvloss.run.folds).
        self.fold = p.get("fold")
        fold = {} if self.fold is None else {"fold": int(self.fold)}
        # synth-ids' loader takes its sizes; lfw's lists are fixed (n_train_ids caps them)
        train = load_dataset(self.dataset, "train", data_dir=data_dir, size=size, limit=p["n_train_ids"], task="embed",
                             optional=dict(n_ids=p["n_train_ids"], per_id=p["per_id"], **fold))
        # val and test: identity-disjoint evaluation sets, val_per_id images per identity;
        # for synth-ids n_val_ids / pairs_per_fold size val and n_test_ids /
        # test_pairs_per_fold test (params recorded before those existed: test as val).
        sizes = {"val": (p["n_val_ids"], p["pairs_per_fold"]),
                 "test": (p.get("n_test_ids", p["n_val_ids"]), p.get("test_pairs_per_fold", p["pairs_per_fold"]))}
        evals = {split: load_dataset(self.dataset, split, data_dir=data_dir, size=size, task="embed",
                                     optional=dict(n_ids=sizes[split][0], per_id=p["val_per_id"],
                                                   pairs_per_fold=sizes[split][1], **fold))
                 for split in EVAL_SPLITS}
        self.real_name = getattr(train, "real", None)
        self.n_train_ids = train.num_identities
        self.train_x = train.images.to(self.device, torch.float32).div_(255)
        self.train_y = train.labels.to(self.device)
        self.eval_sets = {split: EvalPairs(d.images.to(self.device, torch.float32).div_(255), d.labels, d.pairs.numpy(),
                                           d.same.numpy(), d.folds.numpy()) for split, d in evals.items()}
        val = self.eval_sets["val"]
        self.val_x, self.val_y, self.pairs, self.same, self.folds = val.x, val.y, val.pairs, val.same, val.folds
        self.sampler = PKSampler(train.labels, p["P"], p["K"], self.n_train_ids)
        if len(self.sampler.eligible) < int(p["P"]):
            raise UsageError(f"embed: P={p['P']} but only {len(self.sampler.eligible)} training identities have 2+ images")
        counts = self.sampler.id_count
        self.offline_pool = torch.nonzero(counts[train.labels] >= 2).squeeze(1)  # images usable as offline anchors

    def describe_data(self) -> str:
        return (f"{named(self, self.real_name)}: {len(self.train_x)} train images of {self.n_train_ids} identities / "
                + " / ".join(f"{split} {len(e.x)} images, {len(e.same)} pairs in {len(np.unique(e.folds))} folds"
                             for split, e in self.eval_sets.items())
                + " (identity-disjoint)")

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        p = self.params
        return EmbeddingNet(width=p["width"], dim=p["dim"], depth=p["depth"], num_classes=self.n_train_ids,
                            bn_neck=p["bn_neck"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        return {"model": Optim(nn.Module.parameters, "adamw",
                               {"lr": self.params["lr"], "weight_decay": self.params["weight_decay"]})}

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        return len(self.sampler)

    def train_batches(self, generator: torch.Generator) -> Iterator[EmbedBatch]:
        """P×K batches (each image flipped horizontally with probability ½) plus offline
        triplets, every random choice from ``generator``."""
        P, K = int(self.params["P"]), int(self.params["K"])
        batches = self.sampler.epoch(generator)
        steps = len(batches)
        flips = torch.rand(steps, P * K, generator=generator) < 0.5
        n_trip = (P * K) // 3
        sampler_seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        trip_flip = torch.rand(steps, n_trip, 3, generator=generator) < 0.5
        sub_labels = self.train_y.cpu()[self.offline_pool]
        sampler = OfflineTripletSampler(sub_labels, triplets_per_epoch=steps * n_trip, seed=sampler_seed)
        triplets = self.offline_pool[sampler.triplets()].view(steps, n_trip, 3)
        for b, idx in enumerate(batches):
            x = flip_where(self.train_x[idx.to(self.device)], flips[b])
            yield EmbedBatch(x, self.train_y[idx.to(self.device)], triplets[b], trip_flip[b])

    def train_step(self, model, plan, optimizers, batch: EmbedBatch) -> dict[str, torch.Tensor]:
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        parts = []
        if plan["metric"] or plan["logits"]:
            feats = model.features(batch.x).float()
            if plan["metric"]:
                parts.append(plan["metric"](F.normalize(feats, dim=1), batch.y))
            if plan["logits"]:
                parts.append(plan["logits"](model.classifier(feats), batch.y))
        if plan["triplets"]:
            tx = flip_where(self.train_x[batch.triplets.reshape(-1).to(self.device)], batch.triplet_flip.reshape(-1))
            temb = F.normalize(model.features(tx).float(), dim=1).view(-1, 3, model.dim)
            parts.append(plan["triplets"](temb[:, 0], temb[:, 1], temb[:, 2]))
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        total.backward()
        opt.step()
        return {"loss": total.detach()}

    # ------------------------------------------------------------------ evaluation
    def embed(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings ``(N, D)`` of images ``x`` (call in eval mode), on the CPU."""
        bs = int(self.params["eval_batch"])
        return torch.cat([F.normalize(model.features(x[i : i + bs]).float(), dim=1).cpu() for i in range(0, len(x), bs)])

    def pair_scores(self, emb: np.ndarray | torch.Tensor, pairs: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity of every pair (default: the val pairs), ``(M,)`` in [−1, 1]."""
        e = torch.as_tensor(emb, dtype=torch.float64)
        p = torch.as_tensor(self.pairs if pairs is None else pairs)
        return (e[p[:, 0]] * e[p[:, 1]]).sum(1).numpy()

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        ev = self.eval_sets[split]
        scores = self.pair_scores(self.embed(model, ev.x), ev.pairs)
        if self.fold is not None and split == "test":
            # One View 2 fold: its threshold is a choice, so it is chosen on val's pairs.
            val = self.eval_sets["val"]
            t = best_threshold(self.pair_scores(self.embed(model, val.x), val.pairs), val.same)
            return {"verif_acc": accuracy_at(scores, ev.same, t), "auc": roc_auc(scores, ev.same),
                    "tar_far1e-2": tar_at_far(scores, ev.same, 1e-2), "tar_far1e-3": tar_at_far(scores, ev.same, 1e-3)}
        out = verification_metrics(scores, ev.same, ev.folds)
        return {k: float(out[k]) for k in self.spec.metrics}

    @staticmethod
    def spread(emb: torch.Tensor) -> float:
        """Mean pairwise Euclidean distance of unit-norm embeddings (0 = all identical),
        from the mean vector: mean_{i≠j} ‖e_i − e_j‖² = 2N/(N−1) · (1 − ‖ē‖²) for unit
        rows, so no N×N matrix is needed; the square root gives a distance scale."""
        n = emb.shape[0]
        mean_sq = 2.0 * n / max(n - 1, 1) * (1.0 - float(emb.double().mean(0).pow(2).sum()))
        return math.sqrt(max(mean_sq, 0.0))

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        spread = self.spread(self.embed(model, self.val_x))
        tol = float(self.params["collapse_tol"])
        if spread < tol:
            return f"embeddings collapsed: RMS pairwise distance {spread:.3g} < {tol:g} (unit-norm embeddings)"
        return None

    def report_arrays(self, model: nn.Module) -> dict[str, np.ndarray]:
        """What the report's ROC and PCA plots draw, on the val split: ``pair_scores``
        (M,) float64 cosine similarities in [-1, 1] of the val pairs, ``pair_same`` (M,)
        bool; ``pca_embeddings`` (N, D) float32 unit-norm embeddings of the images of the
        first :data:`PCA_IDS` val identities and ``pca_ids`` (N,) int64 their identities."""
        emb = self.embed(model, self.val_x)
        keep = torch.isin(self.val_y, torch.unique(self.val_y)[:PCA_IDS]).numpy()
        return {"pair_scores": self.pair_scores(emb), "pair_same": np.asarray(self.same, dtype=bool),
                "pca_embeddings": emb.numpy()[keep].astype(np.float32),
                "pca_ids": self.val_y.numpy()[keep].astype(np.int64)}

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """``input``/``truth``: the two images of N_SAMPLES val pairs (half same, half
        different); ``pred``: the decision at the best threshold over all pairs -- green
        "same", red "different" -- with a white bar whose height is the similarity
        mapped from [−1, 1] to [0, 1] and a yellow line at the threshold."""
        emb = self.embed(model, self.val_x)
        scores = self.pair_scores(emb)
        t = best_threshold(scores, self.same)
        pick = np.r_[np.flatnonzero(self.same)[: N_SAMPLES // 2], np.flatnonzero(~self.same)[: N_SAMPLES - N_SAMPLES // 2]]
        a, b = self.pairs[pick, 0], self.pairs[pick, 1]
        h, w = self.val_x.shape[2:]
        pred = np.zeros((len(pick), h, w, 3), dtype=np.uint8)
        for i, s in enumerate(scores[pick]):
            pred[i] = (40, 160, 60) if s >= t else (200, 50, 50)
            bar = int(round((s + 1) / 2 * h))
            pred[i, h - bar :, w // 3 : 2 * w // 3] = 255
            ty = min(h - 1, max(0, h - int(round((t + 1) / 2 * h))))
            pred[i, ty, :] = (255, 220, 0)
        return {"input": to_uint8(self.val_x[a]), "truth": to_uint8(self.val_x[b]), "pred": pred}


VIEWS.register("embed", "cvloss.report.views:EMBED_VIEW")  # titles, notes and plots: the report's
