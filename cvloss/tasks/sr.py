"""Task ``sr``: single-image super-resolution with a small EDSR-baseline-like network.

Data: ``skimage-photos`` (default, embedded; stands in for DIV2K), ``div2k`` (downloaded)
or a folder of HR images. LR = antialiased bicubic ×1/s of the HR image, rounded to 8
bits, or DIV2K's official LR files; HR is cropped to a multiple of s ∈ {2, 3, 4}.
Training: random aligned crops with flips and 90° rotations; the ``image`` terms see the
raw output and the HR patch in [0, 1]. An ``adversarial`` term (SRGAN: ``l1+1e-3*ns``)
trains :class:`~cvloss.models.discriminator.SRDiscriminator` through the shared
:class:`~cvloss.tasks.adversarial.AdversarialStepper`; one step = one generator update.

Metrics on whole images, quantised to 8 bits, ``s`` border pixels shaved: ``psnr_y``
(primary), ``psnr_rgb``, ``ssim`` (on Y), ``feat_dist`` (VGG16 relu3_3: not independent
of ``perceptual``) and ``lpips`` (AlexNet: the independent one). Reference row
``bicubic``; degenerate: PSNR-Y below bicubic's. More: ``docs/tasks/sr.md``.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.augment import dihedral, permutations
from cvloss.data.div2k import check_scale, make_pair
from cvloss.data.registry import get_dataset, load_dataset
from cvloss.errors import UsageError
from cvloss.losses.features import get_feature_extractor
from cvloss.metrics.image_quality import feature_distance, psnr, quantize, ssim_y
from cvloss.metrics.independence import FeatureNet, describe_feature_metrics
from cvloss.metrics.lpips_metric import MIN_SIDE, LPIPSMetric, lpips_net, lpips_status
from cvloss.models.discriminator import SRDiscriminator
from cvloss.models.sr import EDSR, SRModel
from cvloss.settings import Choice, Int, Positive
from cvloss.task_registry import VIEWS
from cvloss.tasks.adversarial import AdversarialTask
from cvloss.tasks.base import EVAL_SPLITS, Optim, named, to_uint8
from cvloss.tasks.spec import Metric, TaskSpec

EVAL_ARCH, EVAL_LAYER = "vgg16", "relu3_3"
N_SAMPLES = 4
SAMPLE_SIDE = 64


class SRSpec(TaskSpec):
    """sr's rule on stored numbers."""

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: ``psnr_y`` strictly below the ``bicubic`` reference row's on the same
        split -- the trained network made the picture worse than the interpolation it
        starts from (with ``global_skip=bicubic`` and a zero residual, its initial
        output). The reference study's ``content`` (8 of 10 seeds) and ``texture`` (10 of
        10) ended there."""
        got, floor = metrics.get("psnr_y"), (reference.get("bicubic") or {}).get("psnr_y")
        if isinstance(got, (int, float)) and isinstance(floor, (int, float)) and got < floor:
            return f"PSNR-Y {got:.2f} dB < bicubic's {floor:.2f} dB"
        return None


class SRTask(AdversarialTask):
    penalty_seed = 0x5151  # the same ε stream for every loss
    # n_test caps the test split apart from val: none = all 6 embedded test
    # photos (quick, full); smoke keeps the first 2, rocket and motorcycle, as before
    _common = dict(optimizer="equal", scale=2, lr=1e-3, lr_step=None, res_scale=1.0, global_skip="bicubic", d_lr=1e-4,
                   n_train=None, n_val=None, n_test=None)
    spec = SRSpec(
        name="sr",
        # Metric(higher is better, low, high, unit)
        metrics={"psnr_y": Metric(True, 0.0, None, "dB"), "psnr_rgb": Metric(True, 0.0, None, "dB"),
                 "ssim": Metric(True, -1.0, 1.0, "SSIM, ≤1"), "feat_dist": Metric(False, 0.0, None),
                 "lpips": Metric(False, 0.0, None)},
        primary="psnr_y",
        secondary="ssim",
        slots={"image": ("image",), "adversarial": ("adversarial",)},
        excluded_losses=("style",),
        degenerate_rule="PSNR-Y below bicubic upsampling's",
        replicate_unit="seed: initial weights + crop order and augmentation (every seed scores the same test images)",
        settings={
            # One policy: the same Adam for every loss (the papers' too); see docs/tasks/sr.md.
            "optimizer": Choice("equal", help="the same Adam for every loss (EDSR / SRGAN)"),
            "scale": Int(2, 4, help="upscaling factor (2, 3 or 4)"),
            "lr_step": Int(1, nullable=True, help="halve the learning rates every lr_step epochs (none: constant)"),
            "res_scale": Positive(help="EDSR residual scaling"),
            "global_skip": Choice("bicubic", "none", help="add the bicubic upsampling to the output"),
            "d_lr": Positive(help="discriminator learning rate (adversarial terms)"),
            "patch": Int(2, help="HR crop side in pixels (a multiple of the scale)"),
            "repeat": Int(1, help="random crops per image per epoch"),
            "hr_size": Int(8, nullable=True, help="embedded photos' HR side (none: native)"),
            "n_feats": Int(1, help="EDSR feature channels"),
            "d_down": Int(1, help="discriminator down-sampling stages"),
        },
        budgets={
            # smoke: 2 x 32 steps, ~5 s per l1 trial on one core, enough to beat bicubic; n_train
            # keeps any folder to seconds (docs/tasks/sr.md, "Budgets")
            "smoke": dict(_common, epochs=2, batch_size=4, patch=32, repeat=32, hr_size=64, n_feats=8, n_blocks=1,
                          d_width=8, d_down=2, n_train=8, n_test=2, cpu_threads=1),
            # quick: the reference study's 14 specs x (6 lr trials + 10 seeds) in < 60 min with
            # --jobs 2, one thread each (docs/tasks/sr.md, "Budgets")
            "quick": dict(_common, epochs=6, batch_size=16, patch=32, repeat=64, hr_size=128, n_feats=24, n_blocks=3,
                          d_width=16, d_down=3),
            # full: EDSR-baseline (Lim et al. 2017) on DIV2K: 3e5 iterations = 300 epochs of 800
            # images x 20 crops / 16, lr 1e-4 halved every 2e5; no bicubic skip (x4: docs/tasks/sr.md)
            "full": dict(_common, epochs=300, batch_size=16, patch=96, repeat=20, hr_size=None, n_feats=64, n_blocks=16,
                         lr=1e-4, lr_step=200, global_skip="none", d_width=64, d_down=4),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        p = self.params
        self.scale = s = check_scale(p["scale"])
        patch = int(p["patch"])
        if patch <= 0 or patch % s:
            raise UsageError(f"patch (HR crop side) must be a positive multiple of the scale {s}; got {patch}")
        # embedded photos are shrunk to hr_size; div2k's official LR files are read for the scale
        load = lambda split, limit: load_dataset(self.dataset, split, data_dir=self.data_dir, size=p["hr_size"],  # noqa: E731
                                                 limit=limit, task="sr", optional={"scale": s})
        train = load("train", p["n_train"])
        # n_val caps val, n_test test (params recorded before n_test existed: n_val capped both)
        caps = {"val": p["n_val"], "test": p.get("n_test", p["n_val"])}
        evals = {split: load(split, caps[split]) for split in EVAL_SPLITS}
        val = evals["val"]
        self.real_name = train.real
        self.official_lr = s in train.lr
        info = get_dataset(self.dataset, task="sr")  # embedded sets and dataset folders shrink to hr_size
        self.resized = (info.embedded or info.root is not None) and p["hr_size"]

        def pairs(data) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            out = [make_pair(h, s, data.lr[s][i] if s in data.lr else None) for i, h in enumerate(data.hr)]
            return [h.to(self.device) for h, _ in out], [l.to(self.device) for _, l in out]

        self.train_hr, self.train_lr = pairs(train)
        self.eval_sets = {split: pairs(d) for split, d in evals.items()}
        self.val_hr, self.val_lr = self.eval_sets["val"]
        self.val_names = val.names
        for name, lr in zip(train.names, self.train_lr):
            h, w = lr.shape[-2:]
            if min(h, w) < patch // s:
                raise UsageError(
                    f"training image {name} is {w * s}x{h * s} px (HR after cropping to a multiple of {s}), smaller than "
                    f"the training crop of {patch} px; use --set patch=<= {min(h, w) * s} or larger images (hr_size)")
        for split, d in evals.items():
            for name, lr in zip(d.names, self.eval_sets[split][1]):
                if min(lr.shape[-2:]) * s <= 2 * s + 10:
                    raise UsageError(f"{split} image {name} is too small to score after shaving {s} border px")
        self._eval_net = get_feature_extractor(EVAL_ARCH, self.feature_weights or "auto")
        lpips_path, self._lpips_note = lpips_status()
        self._lpips = None if lpips_path is None else LPIPSMetric(lpips_path).to(self.device)
        self._reference: dict[str, dict[str, dict[str, float]]] = {}
        self.eval_names = {split: list(d.names) for split, d in evals.items()}
        self._items: dict[str, dict[str, Any]] = {}  # the model's per-image rows, by split (test_items)

    def describe_data(self) -> str:
        test_hr = self.eval_sets["test"][0]
        sizes = sorted({tuple(h.shape[-2:]) for h in self.val_hr + test_hr})
        lr_src = "official DIV2K bicubic LR files" if self.official_lr else "antialiased bicubic (torch interpolate, 8-bit)"
        hr = f", HR short side {self.params['hr_size']} px" if self.resized else ""
        return (f"{named(self, self.real_name)}: {len(self.train_hr)} train / {len(self.val_hr)} val / {len(test_hr)} test images{hr}, x{self.scale}, "
                f"LR: {lr_src}; val and test scored whole ({'; '.join(f'{w}x{h}' for h, w in sizes[:3])} px), "
                f"{self.scale}-px border shaved; "
                + describe_feature_metrics(self.feature_metrics(self._eval_net.weights_used), "sr",
                                           {"lpips": self._lpips_note and f"n/a: {self._lpips_note}"}))

    @classmethod
    def feature_metrics(cls, weights_used: str) -> dict[str, tuple[FeatureNet, tuple[str, ...]]]:
        """Each feature metric's network (``weights_used``: the run's VGG weights) and the sr
        losses that, at their defaults, run the same network with the same weights."""
        return {"feat_dist": (FeatureNet(EVAL_ARCH, (EVAL_LAYER,), weights_used), ("perceptual",)),
                "lpips": (lpips_net(), ())}

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        p = self.params
        g = EDSR(self.scale, p["n_feats"], p["n_blocks"], p["res_scale"], p["global_skip"])
        d = SRDiscriminator(p["d_width"], p["d_down"])  # after g: g's init is the same with or without a GAN term
        return SRModel(g, d).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        """Adam for G and D; an adversarial term alone (no reconstruction target) is refused."""
        if slots["adversarial"] and not slots["image"]:
            name = slots["adversarial"].terms[0][1].name
            raise UsageError(f"loss {slots['image'].spec!r}: an adversarial term alone has no reconstruction target "
                             f"in sr; add a content term, e.g. l1+1e-3*{name} (SRGAN)")
        betas = (0.9, 0.999)
        return {"g": Optim(lambda m: m.g.parameters(), "adam", {"lr": self.params["lr"], "betas": betas}),
                "d": Optim(lambda m: m.d.parameters(), "adam", {"lr": self.params["d_lr"], "betas": betas})}

    def lr_factor(self, step: int) -> float | None:
        """EDSR's schedule: halved every ``lr_step`` epochs (none: constant)."""
        every = self.params.get("lr_step")
        return 0.5 ** ((step // self.num_batches()) // int(every)) if every else None

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        return max(1, len(self.train_hr) * self.params["repeat"] // self.params["batch_size"])

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One list of n_critic ``(lr, hr)`` batches per generator update (n_critic = 1
        without an adversarial term; see :meth:`AdversarialStepper.batch_groups`)."""
        return self.stepper.batch_groups(self._data_batches, generator)

    def _data_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One data epoch of ``(lr, hr)`` float batches in [0, 1]: (B, 3, p/s, p/s) and
        (B, 3, p, p).

        Every training image appears ``repeat`` times per epoch in a random order; each
        crop has a uniform random LR offset and one of the 8 flips/rotations (EDSR's
        augmentation), all drawn from ``generator``. Last partial batch dropped.
        """
        s, bs, nb = self.scale, self.params["batch_size"], self.num_batches()
        pl = self.params["patch"] // s
        n = len(self.train_hr)
        # fewer crops than one batch (a tiny folder at repeat 1): the one batch wraps round
        # the images again; otherwise this is n * repeat, every image `repeat` times
        order = permutations(n, max(n * self.params["repeat"], nb * bs), generator)
        u = torch.rand(len(order), 2, generator=generator)
        aug = torch.randint(0, 8, (len(order),), generator=generator)
        for b in range(nb):
            lrs, hrs = [], []
            for k in range(b * bs, (b + 1) * bs):
                i = int(order[k])
                lr, hr = self.train_lr[i], self.train_hr[i]
                y = int(u[k, 0] * (lr.shape[-2] - pl + 1))
                x = int(u[k, 1] * (lr.shape[-1] - pl + 1))
                a = int(aug[k])
                lrs.append(dihedral(lr[:, y : y + pl, x : x + pl], a))
                hrs.append(dihedral(hr[:, y * s : (y + pl) * s, x * s : (x + pl) * s], a))
            yield torch.stack(lrs).float().div_(255), torch.stack(hrs).float().div_(255)

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        """One generator update on ``batch``, a list of n_critic ``(lr, hr)`` batches."""

        def closures(pair):
            lr, hr = pair

            def g_loss(sr: torch.Tensor) -> torch.Tensor:
                total = plan["image"](sr, hr)
                return total + self.stepper.adversarial_loss(model.d, sr) if plan.adversarial else total

            return (lambda: model.g(lr)), g_loss, (lambda sr: [(model.d, hr, sr)])

        return self.stepper.update(optimizers, [model.d], batch, closures)

    # ------------------------------------------------------------------ evaluation
    def _upscale(self, model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """One whole LR image (3, h, w) uint8 -> (1, 3, s·h, s·w) in [0, 1], 8-bit quantised."""
        return quantize(model.g(lr[None].float().div(255)))

    def _score(self, preds: list[torch.Tensor], split: str, keep: bool = False) -> dict[str, float]:
        """Every metric per image of ``split``, averaged over its images; ``keep``: the
        per-image rows are the model's (not bicubic's) and :meth:`test_items` returns them."""
        rows = []
        s = self.scale
        for pred, hr in zip(preds, self.eval_sets[split][0], strict=True):
            t = hr[None].float().div(255)
            lp = math.nan  # LPIPS: on the shaved images, when the weights are there and the image is large enough
            if self._lpips is not None and min(pred.shape[-2:]) - 2 * s >= MIN_SIDE:
                lp = float(self._lpips(pred[..., s:-s, s:-s], t[..., s:-s, s:-s])[0])
            rows.append([float(psnr(pred, t, s, y_only=True)), float(psnr(pred, t, s)), float(ssim_y(pred, t, s)),
                         float(feature_distance(pred, t, self._eval_net, EVAL_LAYER, s)), lp])
        if keep:
            self._items[split] = {"ids": list(self.eval_names[split]),
                                  "metrics": {m: [r[k] for r in rows] for k, m in enumerate(self.spec.metrics)}}
        mean = np.mean(np.array(rows), axis=0)
        return dict(zip(self.spec.metrics, map(float, mean)))

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        return self._score([self._upscale(model, lr) for lr in self.eval_sets[split][1]], split, keep=True)

    def test_items(self, split: str = "test") -> dict[str, Any] | None:
        """Per test image (named as the dataset names it), the metrics :meth:`_score`
        averages, of the last ``evaluate(model, split)``."""
        return self._items.get(split)

    def _bicubic(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr[None].float().div(255)
        return quantize(torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False))

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        if split not in self._reference:
            lrs = self.eval_sets[split][1]
            self._reference[split] = {"bicubic": self._score([self._bicubic(lr) for lr in lrs], split)}
        return self._reference[split]

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """``N_SAMPLES`` fixed HR crops (at most 64 px) of the validation images, cycling
        through the images (centre, then upper-left quarter): ``input`` the LR crop
        enlarged with nearest neighbours, ``bicubic``, ``truth`` (HR) and ``pred``."""
        s = self.scale
        side = min([SAMPLE_SIDE] + [min(h.shape[-2:]) for h in self.val_hr]) // s * s
        rows: dict[str, list[torch.Tensor]] = {"input": [], "bicubic": [], "truth": [], "pred": []}
        preds = [self._upscale(model, lr) for lr in self.val_lr]
        for k in range(N_SAMPLES):
            i = k % len(self.val_hr)
            frac = 0.5 if k // len(self.val_hr) % 2 == 0 else 0.25
            H, W = self.val_hr[i].shape[-2:]
            y = int((H - side) * frac) // s * s
            x = int((W - side) * frac) // s * s
            crop = lambda t: t[..., y : y + side, x : x + side]  # noqa: E731
            lr = self.val_lr[i][None].float().div(255)[..., y // s : (y + side) // s, x // s : (x + side) // s]
            rows["input"].append(torch.nn.functional.interpolate(lr, scale_factor=s, mode="nearest")[0])
            rows["bicubic"].append(crop(self._bicubic(self.val_lr[i]))[0])
            rows["truth"].append(crop(self.val_hr[i].float().div(255)))
            rows["pred"].append(crop(preds[i])[0])
        return {k: to_uint8(torch.stack(v)) for k, v in rows.items()}


VIEWS.register("sr", "cvloss.report.views:SR_VIEW")  # titles, notes and plots: the report's
