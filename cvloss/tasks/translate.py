"""Task ``translate``: unpaired image-to-image translation with CycleGAN (Zhu et al. 2017).

Model (:mod:`cvloss.models.cyclegan`): ResNet generators G: A -> B, F: B -> A and PatchGAN
discriminators D_B, D_A; images in [-1, 1] inside the model. Spec slots: one
``adversarial`` objective (D sees pooled fakes), ``cycle`` and ``identity`` terms (on
[-1, 1] images) and ``image`` terms (on [0, 1]); CycleGAN's balance is
``2*lsgan+cycle+identity``. One step = one generator update (the shared adversarial
stepper); the learning rate decays linearly over the second half. Data: ``synth-stripes``
(default, hidden pairs in val and test) or a CycleGAN-layout dataset (``horse2zebra``).

Metrics on [0, 1] images: ``paired_*`` against the hidden pairs (primary ``paired_ssim``),
``cycle_l1``, ``fid``/``kid``. Reference row ``identity (B = A)``; collapsed below
:data:`COLLAPSE_RATIO` of the targets' spread; degenerate: paired SSIM below the untrained
model's, or spread < :data:`SPREAD_FRACTION`. More: ``docs/tasks/translate.md``.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.augment import crop_and_flip, permutations
from cvloss.data.registry import load_dataset
from cvloss.errors import UsageError
from cvloss.losses.ssim import ssim
from cvloss.metrics.fid import FIDInception, fid_from_features, fid_weights_status, kid_from_features
from cvloss.metrics.image_quality import psnr
from cvloss.metrics.independence import FeatureNet, describe_feature_metrics
from cvloss.metrics.lpips_metric import MIN_SIDE, LPIPSMetric, lpips_net, lpips_status
from cvloss.models.cyclegan import CycleGAN, ImagePool
from cvloss.settings import Bool, Int
from cvloss.tasks.adversarial import OPTIMIZER_POLICY, AdversarialTask, policy_optimizer
from cvloss.task_registry import VIEWS
from cvloss.tasks.base import EVAL_SPLITS, Optim, named, to_uint8
from cvloss.tasks.spec import Metric, TaskSpec

N_SAMPLES = 4
COLLAPSE_RATIO = 0.1
#: Degenerate below this spread of G's outputs across inputs, relative to the targets'
#: (per-pixel std across images, averaged; :meth:`TranslateTask.diversity`): half the
#: lowest spread measured on the reference study's ``2*lsgan`` trials, so it flags outputs
#: nearly alike, not outputs that follow their inputs' colours (docs/tasks/translate.md).
SPREAD_FRACTION = 0.3
POOL_SEED = 0x5EED  # the same stream for every loss (and exact after resume)
PAIRED = ("paired_ssim", "paired_psnr", "paired_l1", "paired_lpips")  # need the hidden pairs of embedded data


def _to01(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


class TranslateSpec(TaskSpec):
    """translate's setting checks and rule on stored numbers."""

    def check_params(self, params: dict[str, Any]) -> None:
        size, load_size = params["image_size"], params.get("load_size") or params["image_size"]
        if load_size < size:
            raise UsageError(f"load_size ({load_size}) must be >= image_size ({size})")
        if size % 2 ** params["n_down"]:
            raise UsageError(f"image_size {size} must be divisible by 2**n_down = {2 ** params['n_down']}")

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: ``paired_ssim`` below the untrained model's on the same split -- the
        translation is further from the hidden true B than the initial weights' (the
        reference study's ``cycle`` seed 9: -0.014 against 0.020). n/a without paired data."""
        got, floor = metrics.get("paired_ssim"), (untrained or {}).get("paired_ssim")
        if isinstance(got, (int, float)) and isinstance(floor, (int, float)) and got < floor:
            return f"paired SSIM {got:.3f} < the untrained model's {floor:.3f}"
        return None


_PIXEL_L1 = "mean |Δ|, pixels in [0,1]"


class TranslateTask(AdversarialTask):
    penalty_seed = 0x6F  # the same ε stream for every loss
    _common = dict(lr=2e-4, beta1=0.5, pool_size=50, n_down=2, augment=False, load_size=None, fid=True)
    # smoke: ~10 s per trial on a shared 2-core CPU. quick: the reference study's 14 specs x
    # (6 lr trials + 10 seeds) in < 60 min with --jobs 2. full: the paper's horse2zebra
    # protocol. n_test caps the test split apart from val (docs/tasks/translate.md, "Budgets").
    _smoke = dict(_common, optimizer="equal", epochs=2, batch_size=8, image_size=32, n_train=48, n_val=16, n_test=16,
                  g_width=8, n_blocks=1, d_width=8, d_layers=2)
    spec = TranslateSpec(
        name="translate",
        # Metric(higher is better, low, high, unit); KID is an unbiased estimate and can be
        # slightly negative: unbounded
        metrics={"paired_ssim": Metric(True, -1.0, 1.0, "SSIM, ≤1"), "paired_psnr": Metric(True, 0.0, 100.0, "dB"),
                 "paired_l1": Metric(False, 0.0, 1.0, _PIXEL_L1), "paired_lpips": Metric(False, 0.0, None),
                 "cycle_l1": Metric(False, 0.0, 1.0, _PIXEL_L1), "fid": Metric(False, 0.0, None, "FID"),
                 "kid": Metric(False, unit="KID")},
        primary="paired_ssim",
        secondary="paired_psnr",
        slots={"adversarial": ("adversarial",), "cycle": ("cycle",), "identity": ("identity",), "image": ("image",)},
        excluded_losses=("content", "style", "texture"),
        evaluate_at_init=True,  # the untrained model's val scores: what the degenerate rule holds G to
        degenerate_rule=(f"paired SSIM below the untrained model's, or outputs spread across inputs by under "
                         f"{SPREAD_FRACTION:g} x the targets' spread"),
        settings={
            "optimizer": OPTIMIZER_POLICY,
            "pool_size": Int(0, help="image pool of past fakes for D (0: none)"),
            "n_down": Int(1, help="generator down-sampling stages"),
            "load_size": Int(8, nullable=True, help="resize before the random crop (none: image_size)"),
            "fid": Bool("compute FID/KID when Inception weights are present"),
            "g_width": Int(1, help="generator width"),
            "d_layers": Int(1, help="PatchGAN layers"),
        },
        budgets={
            "smoke": dict(_smoke, cpu_threads=1),  # one thread, as every task's smoke (tiny models)
            "quick": dict(_smoke, epochs=5, n_train=128, n_val=64, n_test=256, g_width=16, n_blocks=3, d_width=16),
            "full": dict(_common, optimizer="paper", epochs=200, batch_size=1, image_size=256, n_train=None,
                         n_val=None, n_test=None, g_width=64, n_blocks=9, d_width=64, d_layers=3, augment=True,
                         load_size=286),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        p = self.params
        size = p["image_size"]
        load_size = p.get("load_size") or size  # >= size: checked by check_params
        train = load_dataset(self.dataset, "train", data_dir=self.data_dir, size=load_size, limit=p["n_train"],
                             task="translate")
        # n_val caps val (curves and choices), n_test test (the reported number); params
        # recorded before n_test existed capped test with n_val
        caps = {"val": p["n_val"], "test": p.get("n_test", p["n_val"])}
        evals = {split: load_dataset(self.dataset, split, data_dir=self.data_dir, size=size, limit=caps[split],
                                     task="translate") for split in EVAL_SPLITS}
        self.domains, self.real_name = train.domains, train.real
        self.paired = all(d.paired for d in evals.values())
        # Decode once: uint8 -> float [-1, 1] on the device, reused every epoch.
        to = lambda t: t.to(self.device, torch.float32).div_(127.5).sub_(1)  # noqa: E731
        self.train_a, self.train_b = to(train.a), to(train.b)
        self.eval_sets = {split: (to(d.a), to(d.b)) for split, d in evals.items()}
        self.val_a, self.val_b = self.eval_sets["val"]
        self._lpips, self._lpips_note = None, "no pairs"
        if self.paired:
            lpips_path, why = lpips_status()
            if lpips_path is not None and size < MIN_SIDE:
                lpips_path, why = None, f"images of {size} px, AlexNet needs >= {MIN_SIDE}"
            self._lpips_note = why and f"n/a: {why}"
            self._lpips = None if lpips_path is None else LPIPSMetric(lpips_path).to(self.device)
        self._inception = None
        self.fid_note = "off (--set fid=false)"
        if p.get("fid", True):
            path, why = fid_weights_status(self.fid_weights)
            if path is None:
                self.fid_note = f"n/a: {why}"
            else:
                self._inception = FIDInception(path).to(self.device)
                self.fid_note = f"G(A) vs all real B of the same split, {self._inception.name}"
        self._real_b_feats: dict[str, torch.Tensor] = {}  # Inception features of each split's real B
        self._pool_a, self._pool_b = ImagePool(p["pool_size"]), ImagePool(p["pool_size"])
        self._pool_gen = torch.Generator().manual_seed(POOL_SEED)

    def _metric_names(self) -> list[str]:
        return [k for k in self.spec.metrics if self.paired or k not in PAIRED]

    def describe_data(self) -> str:
        pairs = "hidden pairs" if self.paired else "unpaired"
        test_a, test_b = self.eval_sets["test"]
        a, b = self.domains
        nets = {k: v for k, v in self.feature_metrics().items() if k in self._metric_names()}
        return (f"{named(self, self.real_name)}: {len(self.train_a)} {a} (A) / {len(self.train_b)} {b} (B) train images, "
                f"{len(self.val_a)} / {len(self.val_b)} val, {len(test_a)} / {len(test_b)} test ({pairs}), "
                f"{self.train_a.shape[-1]} px; FID/KID: {self.fid_note}; "
                + describe_feature_metrics(nets, "translate", {"paired_lpips": self._lpips_note}))

    @classmethod
    def feature_metrics(cls, weights_used: str = "") -> dict[str, tuple[FeatureNet, tuple[str, ...]]]:
        """Each feature metric's network and the translate losses (at their defaults) that run
        the same network: none (no loss runs Inception or AlexNet)."""
        inception = FeatureNet("inception-v3 (TF 2015-12-05)", ("pool3",), "torch-fidelity port of the TF graph")
        return {"fid": (inception, ()), "kid": (inception, ()), "paired_lpips": (lpips_net(), ())}

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        p = self.params
        return CycleGAN(p["g_width"], p["n_blocks"], p["n_down"], p["d_width"], p["d_layers"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        """Both generators' and both discriminators' optimiser under the ``optimizer`` policy."""
        adv = slots["adversarial"].terms[0][1] if slots["adversarial"] else None
        name, kw = policy_optimizer(self.params["optimizer"], adv, {"lr": self.params["lr"],
                                                                     "betas": (self.params["beta1"], 0.999)})
        return {"g": Optim(lambda m: m.generator_parameters(), name, kw),
                "d": Optim(lambda m: m.discriminator_parameters(), name, kw)}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pool_a": self._pool_a.state_dict(),
                "pool_b": self._pool_b.state_dict(), "pool_gen": self._pool_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        super().load_state_dict(state)
        self._pool_a.load_state_dict(state["pool_a"], self.device)
        self._pool_b.load_state_dict(state["pool_b"], self.device)
        self._pool_gen.set_state(state["pool_gen"])

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        return max(1, max(len(self.train_a), len(self.train_b)) // self.params["batch_size"])

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One list of n_critic ``(a, b)`` batches per generator update (see
        :meth:`AdversarialStepper.batch_groups`)."""
        return self.stepper.batch_groups(self._data_batches, generator)

    def _data_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """One data epoch of ``(a, b)`` batches in [-1, 1]: A and B shuffled independently
        (unpaired), last partial batch dropped; crops and flips (``augment``) drawn from
        ``generator``."""
        bs, nb = self.params["batch_size"], self.num_batches()
        ia = permutations(len(self.train_a), nb * bs, generator)
        ib = permutations(len(self.train_b), nb * bs, generator)
        augment = self.params.get("augment", False)
        size = self.params["image_size"]
        for k in range(nb):
            a = self.train_a[ia[k * bs : (k + 1) * bs].to(self.device)]
            b = self.train_b[ib[k * bs : (k + 1) * bs].to(self.device)]
            if augment or a.shape[-1] != size:
                a, b = crop_and_flip(a, size, generator), crop_and_flip(b, size, generator)
            yield a, b

    def lr_factor(self, step: int) -> float:
        """CycleGAN's schedule, in 0-based epoch e of E: 1 for the first ⌈E/2⌉ epochs,
        then linear towards 0."""
        epoch, e_total = step // self.num_batches(), self.params["epochs"]
        n_decay = e_total // 2
        n_const = e_total - n_decay
        return 1.0 - max(0, epoch + 1 - n_const) / (n_decay + 1)

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        """One generator update on ``batch``, a list of n_critic ``(a, b)`` batches."""
        critics = [model.d_a, model.d_b]
        return self.stepper.update(optimizers, critics, batch, lambda ab: self._closures(model, plan, *ab))

    def _closures(self, model, plan, a: torch.Tensor, b: torch.Tensor):
        """``(generate, g_loss, d_pairs)`` of one ``(a, b)`` batch for the stepper."""

        def g_loss(fakes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            fake_b, fake_a = fakes
            parts = []
            if plan.adversarial:
                w, obj = plan.adversarial
                parts.append(w * (obj.g_loss(model.d_b(fake_b)) + obj.g_loss(model.d_a(fake_a))))
            if plan["cycle"] or plan["image"]:
                rec_a, rec_b = model.g_ba(fake_b), model.g_ab(fake_a)
                parts += [w * (t(rec_a, a) + t(rec_b, b)) for w, t in plan["cycle"]]
                parts += [w * (t(_to01(rec_a), _to01(a)) + t(_to01(rec_b), _to01(b))) for w, t in plan["image"]]
            if plan["identity"]:
                idt_b, idt_a = model.g_ab(b), model.g_ba(a)
                parts += [w * (t(idt_b, b) + t(idt_a, a)) for w, t in plan["identity"]]
            return torch.stack([p.float() for p in parts]).sum()

        def d_pairs(fakes: tuple[torch.Tensor, torch.Tensor]):
            fake_b, fake_a = fakes
            pool_b = self._pool_b.query(fake_b, self._pool_gen)
            pool_a = self._pool_a.query(fake_a, self._pool_gen)
            return [(model.d_b, b, pool_b), (model.d_a, a, pool_a)]

        return (lambda: (model.g_ab(a), model.g_ba(b))), g_loss, d_pairs

    # ------------------------------------------------------------------ evaluation
    def _translate(self, model: nn.Module, x: torch.Tensor, direction: str = "ab") -> torch.Tensor:
        """Apply G (``ab``) or F (``ba``) in batches; [-1, 1] in and out."""
        net = model.g_ab if direction == "ab" else model.g_ba
        bs = max(self.params["batch_size"], 32)
        return torch.cat([net(x[i : i + bs]) for i in range(0, len(x), bs)])

    def _fid_kid(self, fake_b01: torch.Tensor, split: str) -> tuple[float, float]:
        if self._inception is None:
            return math.nan, math.nan
        if split not in self._real_b_feats:  # the real B images of a split never change: once
            self._real_b_feats[split] = self._inception(_to01(self.eval_sets[split][1]))
        real, fake = self._real_b_feats[split], self._inception(fake_b01)
        return fid_from_features(real, fake), kid_from_features(real, fake)[0]

    def _paired(self, pred01: torch.Tensor, truth01: torch.Tensor) -> dict[str, float]:
        size = pred01.shape[-1]
        window = min(11, size - (1 - size % 2))  # the paper's 11x11 window, smaller for tiny images
        return {
            "paired_ssim": float(ssim(pred01, truth01, data_range=1.0, window_size=window).mean()),
            "paired_psnr": float(psnr(pred01, truth01).mean()),  # capped at 100 dB
            "paired_l1": float((pred01 - truth01).abs().mean()),
            "paired_lpips": math.nan if self._lpips is None else float(self._lpips(pred01, truth01).mean()),
        }

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        real_a, real_b = self.eval_sets[split]
        fake_b = self._translate(model, real_a, "ab")
        rec_a = self._translate(model, fake_b, "ba")
        rec_b = self._translate(model, self._translate(model, real_b, "ba"), "ab")
        out: dict[str, float] = {}
        fake01 = _to01(fake_b).clamp(0, 1)
        if self.paired:
            out.update(self._paired(fake01, _to01(real_b)))
        # Differences of [-1, 1] images halved = differences in [0, 1].
        out["cycle_l1"] = float(0.5 * ((rec_a - real_a).abs().mean() + (rec_b - real_b).abs().mean()) / 2)
        out["fid"], out["kid"] = self._fid_kid(fake01, split)
        return {k: out[k] for k in self._metric_names() if k in out}

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        """``identity (B = A)``: the metrics of G(a) = a (the input returned unchanged)."""
        real_a, real_b = self.eval_sets[split]
        a01 = _to01(real_a)
        ref: dict[str, float] = {"cycle_l1": 0.0}
        if self.paired:
            ref.update(self._paired(a01, _to01(real_b)))
        ref["fid"], ref["kid"] = self._fid_kid(a01, split)
        return {"identity (B = A)": {k: ref[k] for k in self._metric_names() if k in ref}}

    def diversity(self, model: nn.Module, split: str = "val") -> tuple[float, float]:
        """(per-pixel std across G's outputs on the split's A images, the same for the
        split's real B images), in [0, 1] units, each averaged over pixels and channels."""
        real_a, real_b = self.eval_sets[split]
        fake = _to01(self._translate(model, real_a, "ab"))
        return float(fake.std(0).mean()), float(_to01(real_b).std(0).mean())

    def degenerate_reason(self, model: nn.Module, metrics: dict[str, float], split: str,
                          untrained: dict[str, float] | None) -> str | None:
        """G's outputs on ``split`` spread across inputs by less than
        :data:`SPREAD_FRACTION` of the targets' (it draws nearly one image whatever the
        input), else the numbers' rule (:meth:`TranslateSpec.degenerate_by_numbers`: paired SSIM below
        the untrained model's)."""
        if len(self.eval_sets[split][0]) >= 2:
            d, ref = self.diversity(model, split)
            if ref > 0 and d < SPREAD_FRACTION * ref:
                return (f"G's outputs barely depend on the input: spread across {len(self.eval_sets[split][0])} "
                        f"{split} inputs {d:.4f} < {SPREAD_FRACTION:g} x the targets' ({ref:.4f})")
        return super().degenerate_reason(model, metrics, split, untrained)

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        if len(self.val_a) < 2:
            return None
        d, ref = self.diversity(model)
        if d < COLLAPSE_RATIO * ref:
            return (f"G's outputs are all alike: per-pixel std across {len(self.val_a)} validation outputs "
                    f"{d:.4f} < {COLLAPSE_RATIO:g} x that of real B images ({ref:.4f})")
        return None

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """The first K validation A images: ``input`` a, ``truth`` the hidden true b (for
        unpaired data: the first K validation B images, a domain reference, not pairs),
        ``pred`` G(a), ``recon`` F(G(a))."""
        a = self.val_a[:N_SAMPLES]
        fake = self._translate(model, a, "ab")
        rec = self._translate(model, fake, "ba")
        return {"input": to_uint8(_to01(a)), "truth": to_uint8(_to01(self.val_b[:N_SAMPLES])),
                "pred": to_uint8(_to01(fake)), "recon": to_uint8(_to01(rec))}


VIEWS.register("translate", "cvloss.report.views:TRANSLATE_VIEW")  # titles, notes and plots: the report's
