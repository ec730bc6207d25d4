"""Task ``gan``: GAN objectives compared on 2-D Gaussian mixtures (mode coverage).

Data: ``ring8`` (default) or ``grid25`` (:mod:`cvloss.data.toy2d`), infinite: an "epoch"
is ``steps_per_epoch`` generator steps, then an evaluation. Model:
:class:`~cvloss.models.mlp_gan.MLPGAN`. The spec is exactly one adversarial term; one
training step = one generator step after the objective's ``n_critic`` critic steps
(:meth:`~cvloss.tasks.adversarial.AdversarialStepper.critic_first`); the term's weight
scales G's loss only. Every draw after ``build_model`` comes from the trainer's epoch
generator or from generators seeded by a per-step seed: fair across objectives and
resume-exact. ``optimizer``: ``equal`` (smoke, quick) or ``paper`` (full).

Metrics (:mod:`cvloss.metrics.generative`) on ``n_eval`` samples: ``modes`` covered,
``hq_pct``, reverse ``kl``. Collapsed: <= 1 mode with the samples in one place;
degenerate: <= a quarter of the modes with < 10% high-quality samples. ``docs/tasks/gan.md``.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.registry import load_dataset
from cvloss.errors import UsageError
from cvloss.metrics.generative import mode_metrics
from cvloss.models.mlp_gan import MLPGAN
from cvloss.settings import Int
from cvloss.tasks.adversarial import OPTIMIZER_POLICY, AdversarialTask, policy_optimizer
from cvloss.task_registry import VIEWS
from cvloss.tasks.base import Optim
from cvloss.tasks.spec import Metric, TaskSpec

EVAL_SEED = 20180101  # fixed noise for evaluation: every epoch and loss sees the same z
REAL_SEED = 12345  # fixed real sample for the reference row and the 'input' scatter
# The two evaluation splits of an infinite sampler are two fixed, disjoint seed streams:
# val (every epoch, collapse check, scatter) keeps the seeds above, test (the reported
# number: untrained model and final model) draws its noise and real sample from its own.
SPLIT_SEEDS = {"val": (EVAL_SEED, REAL_SEED), "test": (20180102, 12346)}
_STREAMS = {"data": 0, "gen": 1, "penalty": 2}
#: Degenerate: at most this share of the modes covered ...
DEGENERATE_MODE_SHARE = 0.25
#: ... and fewer high-quality samples than this (%).
DEGENERATE_HQ_PCT = 10.0


@functools.lru_cache(maxsize=None)
def mode_count(dataset: str) -> int | None:
    """The number of modes of the mixture ``dataset`` names (ring8: 8, grid25: 25); None
    when it names none (a typo: the task refuses it elsewhere)."""
    try:
        return int(load_dataset(dataset, "train", task="gan").n_modes)
    except Exception:  # any failure to load says only that the count is unknown here
        return None


# ---------------------------------------------------------------- scatter rendering
def _lims(centers: np.ndarray) -> tuple[float, float]:
    r = float(np.abs(centers).max())
    return -1.5 * r, 1.5 * r


def render_scatter(points: np.ndarray, centers: np.ndarray, sigma: float, size: int = 240,
                   color: str = "#1f77b4", title: str | None = None) -> np.ndarray:
    """Scatter of ``points`` ``(N, 2)`` over the mode centres (red crosses, 3σ circles)
    on fixed axes (±1.5 × the farthest centre), rendered with Agg to a uint8 RGB image
    ``(size, size, 3)``. Points outside the axes are clipped to its border so a generator
    that wandered off still shows where it went."""
    import matplotlib.patches  # lazy: matplotlib only for the final samples
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lo, hi = _lims(centers)
    dpi = 80
    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.96 if title is None else 0.88])
    pts = np.clip(np.nan_to_num(points, nan=hi, posinf=hi, neginf=lo), lo, hi)
    # Centres below the points (a tight mode must stay visible), the HQ radius as a circle.
    ax.scatter(centers[:, 0], centers[:, 1], s=30, marker="+", color="#d62728", linewidths=0.6, zorder=1)
    for c in centers:
        ax.add_patch(matplotlib.patches.Circle(c, 3 * sigma, fill=False, color="#d62728", lw=0.5, zorder=1))
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.4, color=color, linewidths=0, zorder=2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return img


def _spread(points: torch.Tensor) -> float:
    """RMS distance of ``(N, 2)`` points to their mean (NaN-safe: non-finite -> inf)."""
    x = points.detach().to(torch.float64)
    value = float((x - x.mean(0)).pow(2).sum(1).mean().sqrt())
    return value if np.isfinite(value) else float("inf")


# ---------------------------------------------------------------- the task
class GANSpec(TaskSpec):
    """gan's rules that depend on the mixture: its mode count bounds ``modes`` and the
    degenerate rule."""

    def bounds(self, name: str, dataset: str | None = None) -> tuple[float | None, float | None]:
        """``modes`` cannot exceed the mixture's mode count (8 on ring8): the headroom of a
        contrast whose baseline already covers them all is 0."""
        low, high = super().bounds(name, dataset)
        n = mode_count(dataset) if name == "modes" and dataset else None
        return (low, float(n)) if n else (low, high)

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: at most :data:`DEGENERATE_MODE_SHARE` of the mixture's modes covered
        AND under :data:`DEGENERATE_HQ_PCT` % of the samples high-quality -- a generator
        that reached few modes and puts little mass near any (the reference study's
        ring8 ``minimax`` seed 0: 2 of 8 modes, 6.3%). One that covers few modes with
        sharp samples is a narrow generator, not a failed one (and <= 1 mode concentrated
        in one place is ``collapsed`` first, :meth:`GANTask.collapse_reason`)."""
        modes, hq, n = metrics.get("modes"), metrics.get("hq_pct"), mode_count(dataset)
        if not (isinstance(modes, (int, float)) and isinstance(hq, (int, float)) and n):
            return None
        if modes <= DEGENERATE_MODE_SHARE * n and hq < DEGENERATE_HQ_PCT:
            return (f"{modes:g} of {n} modes covered (<= {DEGENERATE_MODE_SHARE:.0%}) with {hq:.1f}% high-quality "
                    f"samples (< {DEGENERATE_HQ_PCT:g}%)")
        return None


class GANTask(AdversarialTask):
    spec = GANSpec(
        name="gan",
        # Metric(higher is better, low, high, unit)
        metrics={"modes": Metric(True, 0.0, None, "count"), "hq_pct": Metric(True, 0.0, 100.0, "% of samples"),
                 "kl": Metric(False, 0.0, None, "nats")},
        primary="modes",
        secondary="kl",
        slots={"adversarial": ("adversarial",)},
        degenerate_rule=(f"at most {DEGENERATE_MODE_SHARE:.0%} of the modes covered and under "
                         f"{DEGENERATE_HQ_PCT:g}% high-quality samples"),
        replicate_unit="seed: initial weights + real-batch, noise and penalty streams",
        evaluate_at_init=True,
        settings={
            "steps_per_epoch": Int(1, help="generator steps per epoch"),
            "noise_dim": Int(1, help="latent dimension"),
            "hidden": Int(1, help="MLP width"),
            "layers": Int(1, help="MLP hidden layers"),
            "optimizer": OPTIMIZER_POLICY,
            "n_eval": Int(10, help="samples drawn for the mode metrics"),
            "min_count": Int(1, help="samples a mode needs to count as covered"),
        },
        # steps_per_epoch counts GENERATOR steps (each with n_critic critic steps). quick:
        # 2,000 generator steps, ~20 min for 6 losses x 3 seeds on a heavily shared 2-core CPU
        # (load 5-11), much less idle. full: 50,000 steps of wider nets -- the toy benchmark
        # has no single paper protocol (Gulrajani et al. train 100k steps of 512-wide MLPs).
        budgets={
            "smoke": dict(epochs=2, steps_per_epoch=50, batch_size=64, noise_dim=2, hidden=64, layers=2,
                          optimizer="equal", lr=1e-3, beta1=0.5, beta2=0.999, n_eval=500, min_count=1, cpu_threads=1),
            "quick": dict(epochs=8, steps_per_epoch=250, batch_size=128, noise_dim=2, hidden=128, layers=3,
                          optimizer="equal", lr=1e-3, beta1=0.5, beta2=0.999, n_eval=2500, min_count=1, cpu_threads=1),
            "full": dict(epochs=50, steps_per_epoch=1000, batch_size=512, noise_dim=2, hidden=256, layers=4,
                         optimizer="paper", lr=1e-4, beta1=0.5, beta2=0.999, n_eval=2500, min_count=1, cpu_threads=1),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        self.mixture = load_dataset(self.dataset, "train", data_dir=self.data_dir, task="gan")
        self.centers = self.mixture.centers.to(self.device)
        # A fixed real sample (its own seed stream): the reference row and the 'input' plot.
        self.real_sets = {split: self.mixture.sample(self.params["n_eval"], torch.Generator().manual_seed(real))
                          for split, (_, real) in SPLIT_SEEDS.items()}
        self.real_eval = self.real_sets["val"]

    def describe_data(self) -> str:
        return f"{self.dataset}: {self.mixture.description}; infinite samples, {self.params['steps_per_epoch']} generator steps per epoch"

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        p = self.params
        return MLPGAN(noise_dim=p["noise_dim"], hidden=p["hidden"], layers=p["layers"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        """Both networks' optimiser under the ``optimizer`` policy (docs/tasks/gan.md); a
        spec without an adversarial term is refused."""
        if not slots["adversarial"]:
            raise UsageError(f"task gan needs exactly one adversarial objective (minimax, ns, lsgan, wgan, wgan_gp, "
                             f"hinge) in the loss spec; {slots['adversarial'].spec!r} has no adversarial term")
        p, adv = self.params, slots["adversarial"].terms[0][1]
        name, kw = policy_optimizer(p["optimizer"], adv, {"lr": p["lr"], "betas": (p["beta1"], p["beta2"])})
        return {"d": Optim(lambda m: m.D.parameters(), name, kw), "g": Optim(lambda m: m.G.parameters(), name, kw)}

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        return self.params["steps_per_epoch"]

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """Per generator step: the first critic step's real batch ``(batch_size, 2)`` and
        a step seed (int) for every other draw of that step, both from ``generator``."""
        bs = self.params["batch_size"]
        for _ in range(self.num_batches()):
            real = self.mixture.sample(bs, generator).to(self.device)
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            yield real, seed

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        real, seed = batch
        rng = {k: torch.Generator(device=self.device).manual_seed(seed + off) for k, off in _STREAMS.items()
               if k != "penalty"}
        self.stepper.penalty_gen.manual_seed(seed + _STREAMS["penalty"])  # WGAN-GP's ε stream of this step
        bs = real.shape[0]

        def critic_pairs(k: int):
            x = self.mixture.sample(bs, rng["data"], self.device) if k else real
            with torch.no_grad():  # D's step must not reach G: G(z) is a constant here
                fake = model.G(model.noise(bs, rng["data"]))
            return [(model.D, x, fake)]

        return self.stepper.critic_first(optimizers, [model.D], critic_pairs,
                                         lambda: self.stepper.adversarial_loss(model.D, model.G(model.noise(bs, rng["gen"]))))

    # ------------------------------------------------------------------ evaluation
    def generate(self, model: nn.Module, n: int | None = None, split: str = "val") -> torch.Tensor:
        """``n`` (default ``n_eval``) generated points ``(n, 2)`` from the split's FIXED
        noise batch (:data:`SPLIT_SEEDS`): the same z for every epoch, loss and seed."""
        n = n or self.params["n_eval"]
        g = torch.Generator(device=self.device).manual_seed(SPLIT_SEEDS[split][0])
        return model.sample(n, g)

    def _metrics(self, points: torch.Tensor) -> dict[str, float]:
        return mode_metrics(points, self.centers, self.mixture.sigma, min_count=self.params["min_count"])

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        return self._metrics(self.generate(model, split=split))

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        """The metrics of ``n_eval`` real samples of the split: the best a generator can
        expect (HQ below 100% only by the 3σ tail, ~1.1% of a 2-D Gaussian's mass)."""
        return {"real data": self._metrics(self.real_sets[split])}

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        """Mode collapse: at most one mode covered AND the samples concentrated in one
        place -- their spread (RMS distance to their mean) below 25% of the data's (for
        ring8 the data's is 2, a collapse onto one mode gives ~σ√2 ≈ 0.03). A generator
        as wide as the data that has not yet reached the modes (0 or 1 covered, a few
        stray high-quality samples) is under-trained, not collapsed: it keeps its low
        scores in the table (seen with WGAN-GP at its paper learning rate, ``optimizer=paper``, on ``quick``)."""
        modes = metrics.get("modes")
        if modes is None or modes > 1:
            return None
        ratio = _spread(self.generate(model)) / _spread(self.real_eval)
        if ratio < 0.25:
            return (f"mode collapse: {int(modes)} of {self.mixture.n_modes} modes covered, "
                    f"{metrics.get('hq_pct', 0.0):.1f}% high-quality samples, spread {ratio:.2f}x the data's")
        return None

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """One scatter each (K = 1 row): the real data (``input`` and ``truth``) and the
        generated samples (``pred``) over the mode centres, uint8 ``(1, 240, 240, 3)``."""
        centers = self.mixture.centers.numpy()
        real = render_scatter(self.real_eval.numpy(), centers, self.mixture.sigma, color="#2ca02c")
        fake = render_scatter(self.generate(model).cpu().numpy(), centers, self.mixture.sigma)
        return {"input": real[None], "truth": real[None], "pred": fake[None]}


VIEWS.register("gan", "cvloss.report.views:GAN_VIEW")  # titles, notes and plots: the report's
