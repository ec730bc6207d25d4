"""Task ``embed``: a small CNN embedding trained for face verification.

Data: ``synth-ids`` (default, embedded stand-in for LFW) or ``lfw`` (downloaded). The
train, val and test identities are disjoint; val and test carry 10-fold verification
pairs. On ``lfw`` the reported number follows View 2's unrestricted protocol: a trial is
ten fold sub-trials (``seed<k>/fold<f>/``, :mod:`cvloss.run.folds`), each trained on the
people of the other nine folds of people.txt and tested on the 600 pairs of its fold,
with the accuracy threshold chosen on the val pairs (in a fold: the nine other folds'
pairs, as LFW's protocol has it); the seed's number is the mean over folds, with its
standard error.

Training batches come from a **P×K sampler**: each step draws P identities (an epoch
visits every identity with ≥ 2 images once, in an order drawn from the batch generator)
and K images of each (without replacement when the identity has ≥ K images, otherwise
cycling through its shuffled images), each flipped horizontally with probability ½.
K = 1 is refused (no positive pair for any metric loss).

How a loss is applied, by the ``kind`` of each term of the spec:

* ``metric`` (``contrastive``, ``triplet(mining=all|batch_hard|semi_hard)``):
  ``loss(e, y)`` on the P·K L2-normalised embeddings e = f(x)/‖f(x)‖₂ and identity ids y.
* ``triplets`` (:class:`OfflineTripletLoss`, registered as ``triplet_offline``): FaceNet's
  offline baseline. Each step also carries ⌊P·K/3⌋ random (anchor, positive, negative)
  image triplets drawn by the library's :class:`~cvloss.losses.metric.OfflineTripletSampler`
  (seeded from the batch generator, so fair and resume-exact) -- the same number of images
  per step as the P×K batch, with no mining; the loss is FaceNet's hinge on them.
* ``logits`` (:class:`SoftmaxLoss`, registered as ``softmax``): the softmax baseline,
  cross-entropy over the training identities of a linear classifier on the
  un-normalised embedding f(x); verification then uses f(x)/‖f(x)‖₂, the layer before
  the classifier. The classifier exists in every model (so all losses share the
  backbone's initial weights) and is simply unused by the other losses.

``softmax`` and ``triplet_offline`` live in :mod:`cvloss.losses.metric` with the other
metric-learning losses (kinds ``logits`` and ``triplets``: only this task can feed them).

Metrics (see :mod:`cvloss.metrics.verification`), on the cosine similarity of the
pairs of the evaluation split (val every epoch, test at the end): 10-fold verification accuracy (threshold chosen on nine folds, applied to the
tenth), ROC AUC, TAR at FAR = 1e-2 and 1e-3 (highest TAR with FAR ≤ target, no
interpolation). The untrained network is evaluated too (``evaluate_at_init``).

Collapse: a trial is reported as collapsed when the root-mean-square pairwise Euclidean
distance of its unit-norm val embeddings is below ``collapse_tol`` (default 0.05), i.e.
all images map to (nearly) one point -- the classic triplet failure, whose accuracy of
~50% would otherwise read as a merely bad score. Scale: random unit vectors in R^D give
√2 ≈ 1.41; trained quick-budget models 0.8–1.4; collapsed batch-hard runs (seen without
the BatchNorm neck of :class:`~cvloss.models.embedding.EmbeddingNet`) 0.03–0.05. The
untrained network in eval mode measures 0.03–0.09 (seeds 0–2, quick): fresh BatchNorm
running statistics (mean 0, variance 1) leave its embeddings huddled, which is why the
check is applied to trained models only.

Degenerate (:meth:`EmbedTask.degenerate_by_numbers`): a trained model whose verification
accuracy is at most :data:`CHANCE_ACC` (0.55; chance is 0.5) -- it tells same and different
pairs apart no better than a coin.
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
from cvloss.tasks.base import EVAL_SPLITS, Optim, Task, to_uint8

N_SAMPLES = 4  # verification pairs shown in the sample grid


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


class EmbedTask(Task):
    name = "embed"
    metrics = {"verif_acc": True, "auc": True, "tar_far1e-2": True, "tar_far1e-3": True}
    primary_metric = "verif_acc"
    metric_bounds = {m: (0.0, 1.0) for m in metrics}
    slots = {"metric": ("metric",), "logits": ("logits",), "triplets": ("triplets",)}
    degenerate_rule = f"verification accuracy <= {CHANCE_ACC:g} (chance: 0.5)"
    replicate_unit = "seed: initial weights + P×K identity order, image draws and flips"
    secondary_metric = "auc"
    evaluate_at_init = True
    # P identities × K images per step; n_* / per_id / pairs_per_fold size synth-ids
    # (ignored for lfw, whose lists are fixed; n_train_ids then caps its identities).
    settings = {
        "P": Int(2, help="identities per batch (>= 2 for a negative pair)"),
        "K": Int(2, help="images per identity (>= 2 for a positive pair)"),
        "dim": Int(1, help="embedding dimension"),
        "depth": Int(2, 4, help="ResNet stages (2, 3 or 4)"),
        "n_train_ids": Int(2, nullable=True, help="training identities (none: all)"),
        "per_id": Int(2, help="synth-ids images per identity"),
        "n_val_ids": Int(2, help="synth-ids evaluation identities"),
        "val_per_id": Int(2, help="synth-ids evaluation images per identity"),
        "pairs_per_fold": Int(1, help="verification pairs per fold and kind"),
        # the test split apart from val (issue 31): it is embedded twice per trial, val every
        # epoch, so it can be larger (quick: 200 identities, 10 x (50 + 50) = 1,000 pairs)
        "n_test_ids": Int(2, help="synth-ids test identities"),
        "test_pairs_per_fold": Int(1, help="synth-ids test verification pairs per fold and kind"),
        "eval_batch": Int(1, help="images per evaluation batch"),
        "collapse_tol": Float(0.0, help="embedding spread below which a model counts as collapsed"),
        "bn_neck": Bool("batch-norm before the embedding"),
    }
    budgets = {
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
    }

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
        return (f"{self.named(self.real_name)}: {len(self.train_x)} train images of {self.n_train_ids} identities / "
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

    @classmethod
    def folds(cls, dataset: str) -> int:
        """LFW is reported by View 2's ten folds (module docstring); other sets by one trial."""
        return VIEW2_FOLDS.get(dataset, 0)

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
        return {k: float(out[k]) for k in self.metrics}

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

    @classmethod
    def degenerate_by_numbers(cls, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: ``verif_acc`` <= :data:`CHANCE_ACC` -- the embedding tells same and
        different pairs apart no better than chance. (Embeddings all alike are
        ``collapsed`` first, :meth:`collapse_reason`.)"""
        acc = metrics.get("verif_acc")
        if isinstance(acc, (int, float)) and acc <= CHANCE_ACC:
            return f"verification accuracy {acc:.3f} <= {CHANCE_ACC:g} (chance)"
        return None

    sample_titles = {"input": "image A of the pair", "truth": "image B of the pair"}
    sample_note = ("Pairs: the first half share an identity, the second half do not. Loss columns: the decision at the "
                   "best threshold (green = same, red = different); white bar = similarity (-1..1), yellow line = threshold.")

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
