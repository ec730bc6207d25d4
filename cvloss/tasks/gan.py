"""Task ``gan``: GAN objectives compared on 2-D Gaussian mixtures (mode coverage).

Data: ``ring8`` (default; 8 Gaussians on a ring of radius 2, σ = 0.02) or ``grid25`` (25
Gaussians at {-4, -2, 0, 2, 4}², σ = 0.05), see :mod:`cvloss.data.toy2d`. The data is
infinite: real points are drawn fresh every step, and an "epoch" is ``steps_per_epoch``
generator steps followed by an evaluation.

Model: :class:`~cvloss.models.mlp_gan.MLPGAN`, MLP generator (noise_dim -> hidden ×
layers -> 2) and MLP discriminator / critic (2 -> hidden × layers -> 1 raw score), ReLU,
no normalisation layer (WGAN-GP and R1 need per-sample gradients).

One training step = ONE GENERATOR STEP, preceded by ``adv.n_critic`` discriminator steps
(Arjovsky et al. 2017 / Gulrajani et al. 2017, Algorithm 1; 1 for the other objectives):

    repeat n_critic times:
        x ~ data, z ~ N(0, I);  L_D = d_loss(D(x), D(G(z))) + penalty(D, x, G(z))
        step D;  clip_weights(D)        (a no-op except for ``wgan``: clamp to [-c, c])
    z ~ N(0, I);  L_G = w · g_loss(D(G(z)));  step G

``w`` is the adversarial term's weight in the spec (``2*lsgan`` -> 2); it scales the
generator's loss only. The spec must contain exactly one adversarial term
(:class:`~cvloss.losses.base.AdversarialLoss` or ``CombinedLoss.adversarial``); a spec
without one (or with two) is refused with a :class:`~cvloss.errors.UsageError`.

Optimisers (``optimizer`` setting): ``"paper"`` (default) uses the objective's
``paper_optimizer`` for both networks where its paper prescribes one -- ``wgan``: RMSProp,
lr 5e-5; ``wgan_gp``: Adam, lr 1e-4, betas (0, 0.9) -- and otherwise Adam(``lr``,
betas (``beta1``, ``beta2``)) = Adam(1e-3, (0.5, 0.999)) in ``quick``; ``"adam"`` uses that
Adam for every objective (the same optimiser for all, at the price of running WGAN with the
momentum optimiser its paper found unstable). Because the task meets the loss only in
``train_step``, each optimiser is a :class:`ObjectiveOptimizer` that builds the real one
on the first step and checkpoints which one it built, so a resumed trial continues with
the same optimiser and state.

Randomness (fairness and exact resume): the first critic step's real batch and an integer
step seed are drawn from the trainer's epoch generator in :meth:`GANTask.train_batches`;
every other draw of the step -- further real batches and z of the critic steps, z of the
generator step, the gradient penalty's ε -- comes from three generators seeded by that
step seed (one stream each, so e.g. the generator step's z is the same for every objective
at a given seed and step, whatever its n_critic or penalty consumed). Nothing is drawn
from the global RNG after ``build_model``, and no generator state has to be checkpointed.

Metrics (:mod:`cvloss.metrics.generative`, PacGAN's protocol) on ``n_eval`` = 2,500
samples from a fixed noise batch: ``modes`` covered (≥ ``min_count`` high-quality samples),
``hq_pct`` (% of samples within 3σ of a mode), ``kl`` (reverse KL of the HQ mode histogram
against the uniform target). A trained generator covering ≤ 1 mode with its samples
concentrated in one place is reported as collapsed (see :meth:`GANTask.collapse_reason`).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.errors import UsageError
from cvloss.settings import Choice, Int
from cvloss.tasks.base import Task

EVAL_SEED = 20180101  # fixed noise for evaluation: every epoch and loss sees the same z
REAL_SEED = 12345  # fixed real sample for the reference row and the 'input' scatter
_STREAMS = {"data": 0, "gen": 1, "penalty": 2}
_OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}


# ---------------------------------------------------------------- optimiser chosen late
class ObjectiveOptimizer:
    """An optimiser whose kind is fixed on the first training step, by the objective.

    The trainer builds optimisers before the task sees the loss, and restores their state
    from a checkpoint before the first step; this wrapper holds the parameters until
    :meth:`configure` builds the real ``torch.optim`` optimiser from a spec such as
    ``{"name": "rmsprop", "lr": 5e-5}``, and its ``state_dict`` carries that spec so a
    resume rebuilds the same kind before loading its state.
    """

    def __init__(self, params) -> None:
        self.params = list(params)
        self.spec: dict[str, Any] | None = None
        self.inner: torch.optim.Optimizer | None = None

    def configure(self, spec: dict[str, Any]) -> None:
        spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()}
        if self.inner is not None:
            if spec != self.spec:
                raise UsageError(f"this trial's optimiser is {self.spec} but the objective asks for {spec}; "
                                 f"use another --out or delete the trial folder")
            return
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "name"}
        try:
            cls = _OPTIMIZERS[spec["name"]]
        except KeyError:
            raise UsageError(f"unknown optimiser {spec.get('name')!r}; valid: {', '.join(_OPTIMIZERS)}") from None
        self.inner = cls(self.params, **kwargs)
        self.spec = spec

    def _need(self) -> torch.optim.Optimizer:
        if self.inner is None:
            raise RuntimeError("ObjectiveOptimizer used before configure()")
        return self.inner

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._need().zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self._need().step()

    @property
    def param_groups(self):
        return self._need().param_groups

    def state_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "inner": self.inner.state_dict() if self.inner is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("spec") is not None:
            self.inner = None
            self.configure(state["spec"])
            self.inner.load_state_dict(state["inner"])


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

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
class GANTask(Task):
    name = "gan"
    default_dataset = "ring8"
    metrics = {"modes": True, "hq_pct": True, "kl": False}
    primary_metric = "modes"
    evaluate_at_init = True
    # steps_per_epoch counts GENERATOR steps (each with n_critic critic steps). quick:
    # 2,000 generator steps, ~20 min for 6 losses x 3 seeds on a heavily shared 2-core CPU
    # (load 5-11), much less idle. full: 50,000 steps of wider nets -- the toy benchmark
    # has no single paper protocol (Gulrajani et al. train 100k steps of 512-wide MLPs).
    settings = {
        "steps_per_epoch": Int(1, help="generator steps per epoch"),
        "noise_dim": Int(1, help="latent dimension"),
        "hidden": Int(1, help="MLP width"),
        "layers": Int(1, help="MLP hidden layers"),
        "optimizer": Choice("paper", "adam", help="each objective's paper optimiser, or Adam for all"),
        "n_eval": Int(10, help="samples drawn for the mode metrics"),
        "min_count": Int(1, help="samples a mode needs to count as covered"),
        "cpu_threads": Int(1, nullable=True, help="torch threads on a CPU (none: leave as is)"),
    }
    budgets = {
        "smoke": dict(epochs=2, steps_per_epoch=50, batch_size=64, noise_dim=2, hidden=64, layers=2,
                      optimizer="paper", lr=1e-3, beta1=0.5, beta2=0.999, n_eval=500, min_count=1, cpu_threads=1),
        "quick": dict(epochs=8, steps_per_epoch=250, batch_size=128, noise_dim=2, hidden=128, layers=3,
                      optimizer="paper", lr=1e-3, beta1=0.5, beta2=0.999, n_eval=2500, min_count=1, cpu_threads=1),
        "full": dict(epochs=50, steps_per_epoch=1000, batch_size=512, noise_dim=2, hidden=256, layers=4,
                     optimizer="paper", lr=1e-4, beta1=0.5, beta2=0.999, n_eval=2500, min_count=1, cpu_threads=1),
    }

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        from cvloss.data.registry import load_dataset

        if self.device.type == "cpu" and self.params.get("cpu_threads"):
            # These MLPs are far too small to gain from intra-op threads, and on a shared
            # CPU every parallel op can stall for a scheduler slice (measured: 50 WGAN-GP
            # steps 34 s with 2 threads on a loaded 2-core machine vs ~3 s with one).
            torch.set_num_threads(int(self.params["cpu_threads"]))
        self.mixture = load_dataset(self.dataset, "train", data_dir=self.data_dir, task="gan")
        self.centers = self.mixture.centers.to(self.device)
        if self.params["optimizer"] not in ("paper", "adam"):
            raise UsageError(f"optimizer must be 'paper' or 'adam'; got {self.params['optimizer']!r}")
        # A fixed real sample (its own seed stream): the reference row and the 'input' plot.
        g = torch.Generator().manual_seed(REAL_SEED)
        self.real_eval = self.mixture.sample(self.params["n_eval"], g)

    def describe_data(self) -> str:
        return f"{self.dataset}: {self.mixture.description}; infinite samples, {self.params['steps_per_epoch']} generator steps per epoch"

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        from cvloss.models.mlp_gan import MLPGAN

        p = self.params
        return MLPGAN(noise_dim=p["noise_dim"], hidden=p["hidden"], layers=p["layers"]).to(self.device)

    def build_optimizers(self, model: nn.Module) -> dict[str, ObjectiveOptimizer]:
        return {"D": ObjectiveOptimizer(model.D.parameters()), "G": ObjectiveOptimizer(model.G.parameters())}

    def optimizer_spec(self, adv) -> dict[str, Any]:
        """The optimiser both networks use under objective ``adv`` (see the module docstring)."""
        p = self.params
        if p["optimizer"] == "paper" and getattr(adv, "paper_optimizer", None):
            return dict(adv.paper_optimizer)
        return {"name": "adam", "lr": p["lr"], "betas": (p["beta1"], p["beta2"])}

    @staticmethod
    def objective(loss: nn.Module):
        """``(weight, AdversarialLoss)`` of a spec; UsageError unless it has exactly one."""
        from cvloss.losses.base import AdversarialLoss

        if isinstance(loss, AdversarialLoss):
            return 1.0, loss
        terms = loss.terms_of_kind("adversarial") if hasattr(loss, "terms_of_kind") else []
        spec = getattr(loss, "spec", getattr(loss, "name", type(loss).__name__))
        if len(terms) != 1:
            what = "no adversarial term" if not terms else f"{len(terms)} adversarial terms"
            raise UsageError(f"task gan needs exactly one adversarial objective (minimax, ns, lsgan, wgan, wgan_gp, "
                             f"hinge) in the loss spec; {spec!r} has {what}")
        if len(terms) != len(loss.terms):
            raise UsageError(f"task gan trains with the adversarial objective only; {spec!r} has other terms")
        return terms[0]

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

    def _streams(self, seed: int) -> dict[str, torch.Generator]:
        return {k: torch.Generator(device=self.device).manual_seed(seed + off) for k, off in _STREAMS.items()}

    def train_step(self, model, loss, optimizers, batch) -> dict[str, torch.Tensor]:
        weight, adv = self.objective(loss)
        opt_d, opt_g = optimizers["D"], optimizers["G"]
        spec = self.optimizer_spec(adv)
        opt_d.configure(spec)
        opt_g.configure(spec)
        real, seed = batch
        rng = self._streams(seed)
        if hasattr(adv, "generator"):  # WGAN-GP draws its ε from here (resume-exact, not global)
            adv.generator = rng["penalty"]
        bs = real.shape[0]

        for k in range(adv.n_critic):
            if k:
                real = self.mixture.sample(bs, rng["data"], self.device)
            with torch.no_grad():  # D's step must not reach G: G(z) is a constant here
                fake = model.G(model.noise(bs, rng["data"]))
            d_loss = adv.d_loss(model.D(real), model.D(fake)) + adv.penalty(model.D, real, fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            adv.clip_weights(model.D)

        fake = model.G(model.noise(bs, rng["gen"]))
        g_loss = weight * adv.g_loss(model.D(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()  # also fills D's grads; the next critic step zeroes them first
        opt_g.step()
        g, d = g_loss.detach(), d_loss.detach()
        # "loss" is G's loss; adding 0·L_D makes it non-finite when L_D is (NaN·0 = NaN),
        # so the trainer's divergence check sees either network blowing up.
        return {"loss": g + 0.0 * d, "g_loss": g, "d_loss": d}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def generate(self, model: nn.Module, n: int | None = None) -> torch.Tensor:
        """``n`` (default ``n_eval``) generated points ``(n, 2)`` from a FIXED noise batch
        (seed ``EVAL_SEED``): the same z for every epoch, loss and seed."""
        n = n or self.params["n_eval"]
        g = torch.Generator(device=self.device).manual_seed(EVAL_SEED)
        return model.sample(n, g)

    def _metrics(self, points: torch.Tensor) -> dict[str, float]:
        from cvloss.metrics.generative import mode_metrics

        return mode_metrics(points, self.centers, self.mixture.sigma, min_count=self.params["min_count"])

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self._metrics(self.generate(model))

    def reference_metrics(self) -> dict[str, dict[str, float]]:
        """The metrics of ``n_eval`` real samples: the best a generator can expect (HQ
        below 100% only by the 3σ tail, ~1.1% of a 2-D Gaussian's mass)."""
        return {"real data": self._metrics(self.real_eval)}

    def collapse_reason(self, model: nn.Module, metrics: dict[str, float]) -> str | None:
        """Mode collapse: at most one mode covered AND the samples concentrated in one
        place -- their spread (RMS distance to their mean) below 25% of the data's (for
        ring8 the data's is 2, a collapse onto one mode gives ~σ√2 ≈ 0.03). A generator
        as wide as the data that has not yet reached the modes (0 or 1 covered, a few
        stray high-quality samples) is under-trained, not collapsed: it keeps its low
        scores in the table (seen with WGAN-GP at its paper learning rate on ``quick``)."""
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

    @classmethod
    def comparison_plots(cls, result: dict[str, Any], out_dir: Path) -> dict[str, str]:
        """``scatter.png``: one column per loss (and the real data first), one row per seed,
        each cell that trial's generated samples over the modes (its ``samples.npz``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        losses, seeds = result["losses"], result["seeds"]
        cells: dict[tuple[int, int], np.ndarray] = {}
        real = None
        for j, loss in enumerate(losses):
            for i, trial in enumerate(result["trials"][loss]):
                f = Path(trial) / "samples.npz"
                if f.exists():
                    with np.load(f) as z:
                        cells[(i, j + 1)] = z["pred"][0]
                        if real is None:
                            real = z["truth"][0]
        if not cells:
            return {}
        status = result.get("status", {})
        fig, axes = plt.subplots(len(seeds), len(losses) + 1, figsize=(1.8 * (len(losses) + 1), 1.9 * len(seeds)),
                                 squeeze=False)
        for i, seed in enumerate(seeds):
            for j in range(len(losses) + 1):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                img = real if j == 0 else cells.get((i, j))
                if img is not None:
                    ax.imshow(img, interpolation="nearest")
                else:
                    ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7, transform=ax.transAxes)
                if j == 0:
                    ax.set_ylabel(f"seed {seed}", fontsize=7)
                if i == 0:
                    ax.set_title("real data" if j == 0 else losses[j - 1], fontsize=8)
                if j > 0:
                    st = (status.get(losses[j - 1]) or [None] * len(seeds))[i]
                    if st and st != "done":
                        ax.set_xlabel(st, fontsize=7, color="#d62728")
        fig.suptitle(f"gan · {result['dataset']}: samples over the modes (red: centres, 3σ circles)", fontsize=8)
        fig.tight_layout()
        out = Path(out_dir) / "scatter.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        tmp.replace(out)
        return {"scatter": out.name}
