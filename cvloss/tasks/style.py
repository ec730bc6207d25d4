"""Task ``style``: Gatys-style neural style transfer by optimising an image.

The "model" is one image x in [0, 1] (:class:`~cvloss.models.style_image.StyleImage`),
initialised from the content image p and optimised with L-BFGS (Gatys et al. 2016) or
Adam to minimise Σ_i w_i · L_i(x, target_i), e.g. ``content+1e3*style+1e-3*tv``. Each
term gets its target by slot: ``content``/``perceptual`` -> p ``(N, 3, H, W)``;
``style``/``texture`` -> the style image a ``(N, 3, Hs, Ws)``; ``tv`` -> none.

Pairs come from :mod:`cvloss.data.style_pairs` (embedded photos and textures, DIV2K, or
files). The pool is split by content (``pair_split``: test reported, val for tuning), and
seed k optimises its own pairs, drawn without replacement. Metrics on one fixed VGG16 for
every loss: ``content_loss``, ``gram_<layer>`` and their mean ``style_dist`` (primary),
``tv``, ``evals``, ``wall_s``; degenerate: style distance not below the initial image's.
Parameterisation, iterations, seeds, metric formulas, budgets: ``docs/tasks/style.md``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from cvloss.data.registry import dataset_root, get_dataset
from cvloss.data.style_pairs import load_style_pairs, pool_size, seed_pair_indices, seeds_beyond_pool
from cvloss.errors import UsageError
from cvloss.losses.features import get_feature_extractor, mark_constant
from cvloss.losses.style import gram_matrix, total_variation
from cvloss.metrics.independence import FeatureNet, describe_feature_metrics
from cvloss.models.style_image import StyleImage
from cvloss.settings import Choice, Float, ImagePath, Int, Positive, Setting
from cvloss.task_registry import VIEWS
from cvloss.tasks.base import Optim, Task, to_uint8
from cvloss.tasks.spec import Metric, TaskSpec

log = logging.getLogger(__name__)

#: The fixed evaluation network and layers: VGG16 (no default term's network), Johnson et
#: al.'s style layers, content at the deepest layer of block 4.
EVAL_ARCH = "vgg16"
EVAL_CONTENT_LAYER = "relu4_3"
EVAL_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


class StyleSpec(TaskSpec):
    """style's checks of settings and seeds against the pair pool, and its rule on stored
    numbers."""

    def check_params(self, params: dict[str, Any]) -> None:
        if (params.get("content") is None) != (params.get("style") is None):
            raise UsageError("give both a content and a style image (--set content=PATH --set style=PATH), or neither")

    def check_seeds(self, params: dict[str, Any], seeds: list[int], dataset: str, data_dir: str | None = None) -> None:
        """Refuse, in one line naming both numbers, a comparison whose seeds cannot each
        take their own pairs of the test pool (more seeds than distinct pairs, or a seed
        past the pool), and several seeds of named pairs or files without ``init_noise``
        (the same optimisation every seed: identical replicates)."""
        explicit = params.get("pairs") is not None or params.get("content") is not None
        if explicit:
            if len(seeds) > 1 and not params.get("init_noise"):
                raise UsageError(f"--seeds: {len(seeds)} seeds of the same named pairs/files with init_noise=0 would be "
                                 f"{len(seeds)} identical replicates (1 distinct); use --seeds 1, or vary the init "
                                 "with --set init_noise=0.01")
            return
        if params.get("pair_split", "test") != "test":
            return  # val pools wrap round (tuning seeds)
        info = get_dataset(dataset, task="style")
        root = None if info.embedded else dataset_root(info, data_dir)
        n = pool_size(root, "test", source=dataset)
        why = seeds_beyond_pool(list(seeds), n, params.get("n_pairs") or 1) if n else None
        if why:
            raise UsageError(f"--seeds: {why}")

    def degenerate_by_numbers(self, metrics, reference, untrained, dataset) -> str | None:
        """Degenerate: the final image's ``style_dist`` not below its initial image's (the
        ``content image (init)`` reference row: the content it starts from) -- the
        optimisation bought no style at all."""
        got, start = metrics.get("style_dist"), (reference.get("content image (init)") or {}).get("style_dist")
        if isinstance(got, (int, float)) and isinstance(start, (int, float)) and not got < start:
            return f"style distance {got:.3g} not below the initial image's {start:.3g}"
        return None


def _cost(unit: str) -> Metric:
    """A style metric: lower is better, at least 0."""
    return Metric(False, 0.0, None, unit)


class StyleTask(Task):
    _common = dict(optimizer="lbfgs", lr=None, param="clamp", init_noise=0.0, pairs=None, content=None, style=None,
                   pair_split="test")
    spec = StyleSpec(
        name="style",
        metrics={"content_loss": _cost("feature MSE"), "style_dist": _cost("Gram distance"),
                 **{f"gram_{l}": _cost("Gram distance") for l in EVAL_STYLE_LAYERS}, "tv": _cost("total variation"),
                 "evals": _cost("function evaluations"), "wall_s": _cost("s")},
        primary="style_dist",
        secondary="content_loss",
        # Which target each term is called with: the content image, the style image, none.
        slots={"content": ("content", "perceptual"), "style": ("style", "texture"), "prior": ("tv",)},
        tune_overrides={"pair_split": "val"},
        replicate_unit="seed: the content/style pair (each seed its own, drawn without replacement) + init noise",
        timing_metrics=("wall_s",),
        # One item per optimised pair, named by its content image: seeds that draw the same
        # content (with other styles) are averaged into that content's item.
        item_unit="content image",
        degenerate_rule="final style distance not below the initial image's",
        settings={
            "iters_per_epoch": Int(1, help="optimiser iterations between evaluations"),
            "image_size": Int(16, help="content side in px (VGG19's relu5_1 needs >= 16)"),
            "style_size": Int(16, nullable=True, help="style image side (none: image_size)"),
            "n_pairs": Int(1, help="content/style pairs optimised per trial"),
            "optimizer": Choice(*DEFAULT_LR, help="L-BFGS (the paper) or Adam"),
            "lr": Positive(nullable=True, help="step size (none: the optimiser's default)"),
            "param": Choice("clamp", "sigmoid", help="image parameterisation"),
            "init_noise": Float(0.0, help="std of noise added to the content init"),
            "pairs": Setting("str", nullable=True, help="named embedded pairs, e.g. astronaut:brick,coffee:waves"),
            "content": ImagePath("a content image file (with style=)"),
            "pair_split": Choice("test", "val", help="the pool the trial's pairs are drawn from"),
            "style": ImagePath("a style image file (with content=)"),
        },
        budgets={
            # smoke: every output in seconds; quick: 1 pair per seed (3 seeds = 3 pairs),
            # 64 px, 60 L-BFGS iterations; full: Gatys' ~500 iterations at 512 px on a GPU.
            "smoke": dict(epochs=2, iters_per_epoch=2, image_size=32, style_size=None, n_pairs=1, cpu_threads=1,
                          **_common),
            "quick": dict(epochs=4, iters_per_epoch=15, image_size=64, style_size=None, n_pairs=1, **_common),
            "full": dict(epochs=10, iters_per_epoch=50, image_size=512, style_size=None, n_pairs=3, **_common),
        },
    )

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        p = self.params  # types and ranges: checked by the schema (``settings``) before this
        info = get_dataset(self.dataset, task="style")  # the catalog refuses datasets style cannot read
        root = None if info.embedded else dataset_root(info, self.data_dir)  # an adopted copy too
        self.data = load_style_pairs(root, p["pair_split"], size=p["image_size"], style_size=p["style_size"], pairs=p["pairs"],
                                     content=p["content"], style=p["style"], source=self.dataset)
        if self.data.explicit and self.data.notes:  # a user's file: say it once, loudly
            log.warning("; ".join(self.data.notes))
        self.contents = self.data.contents.to(self.device)
        self.styles = self.data.styles.to(self.device)
        self._eval_cache: dict[str, Any] = {}
        self._items: dict[str, dict[str, Any]] = {}  # per-pair metrics of the last evaluate, by split
        # The fixed evaluation network uses the run's feature weights (auto without any).
        self._eval_net = get_feature_extractor(EVAL_ARCH, self.feature_weights or "auto")
        self._wall, self._evals = 0.0, 0

    def describe_data(self) -> str:
        d = self.data
        src = {"files": "files", "div2k": "div2k (DIV2K_valid_HR contents)"}.get(d.name, f"{d.name} (embedded stand-in for {d.real})")
        how = "pairs as given" if d.explicit else f"{self.params['n_pairs']} pair(s) drawn per seed"
        notes = f"; {'; '.join(d.notes)}" if d.notes else ""
        return (f"{src}: {len(d.content_names)} content x {len(d.style_names)} style images, {len(d.pairs)} candidate pairs, "
                f"{how}; content {tuple(self.contents.shape[-2:])} px, style {tuple(self.styles.shape[-2:])} px{notes}; "
                + describe_feature_metrics(self.feature_metrics(self._eval_net.weights_used), "style"))

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        """Draw this seed's pairs (global RNG, seeded by the trainer just before) and
        build the image initialised from their contents (+ ``init_noise`` · N(0, 1))."""
        p = self.params
        pairs = list(self.data.pairs)
        if not self.data.explicit:
            # torch.initial_seed() is the trial's seed: the trainer seeds torch
            # (seed_everything) right before it builds the model
            seed = torch.initial_seed()
            try:
                # n_contents: consecutive seeds take different contents (photos, not styles)
                picks = seed_pair_indices(len(pairs), seed, p["n_pairs"], self.data.split,
                                          n_contents=len(self.data.content_names))
            except ValueError as exc:
                raise UsageError(f"style: {exc}; each seed takes its own pairs (seeds 0.."
                                 f"{len(pairs) // max(1, min(p['n_pairs'], len(pairs))) - 1} on this pool)") from None
            pairs = [pairs[i] for i in picks]
        self.pairs = pairs
        self.content = self.contents[[c for c, _ in pairs]]
        self.style = self.styles[[s for _, s in pairs]]
        mark_constant(self.content, self.style)  # their feature passes run once per trial, not every step
        init = self.content
        if p["init_noise"]:
            init = init + float(p["init_noise"]) * torch.randn(init.shape).to(self.device)
        self._eval_cache = {}
        return StyleImage(init.clamp(0, 1), p["param"]).to(self.device)

    def optimizers(self, slots) -> dict[str, Optim]:
        p = self.params
        lr = DEFAULT_LR[p["optimizer"]] if p["lr"] is None else float(p["lr"])
        if p["optimizer"] == "lbfgs":
            return {"image": Optim(nn.Module.parameters, "lbfgs", dict(lr=lr, max_iter=p["iters_per_epoch"],
                                   history_size=100, line_search_fn="strong_wolfe"))}
        return {"image": Optim(nn.Module.parameters, "adam", {"lr": lr})}

    # ------------------------------------------------------------------ training
    def num_batches(self) -> int:
        # L-BFGS runs its epoch's iterations inside one step(closure) call.
        return 1 if self.params["optimizer"] == "lbfgs" else self.params["iters_per_epoch"]

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        # Nothing is sampled: every step sees the same content/style targets.
        for i in range(self.num_batches()):
            yield i

    def objective(self, plan, x: torch.Tensor) -> torch.Tensor:
        """Σ w_i · L_i(x, target_i): each slot's terms with its target (tv: none)."""
        targets = {"content": (self.content,), "style": (self.style,), "prior": ()}
        parts = [plan[slot](x, *target) for slot, target in targets.items() if plan[slot]]
        value = parts[0]
        for part in parts[1:]:
            value = value + part
        return value

    def train_step(self, model, plan, optimizers, batch) -> dict[str, torch.Tensor]:
        opt = optimizers["image"]
        last: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            value = self.objective(plan, model())
            value.backward()
            self._evals += 1
            last.append(value.detach())
            return value

        t0 = time.perf_counter()
        if isinstance(opt, torch.optim.LBFGS):
            opt.step(closure)
        else:
            closure()
            opt.step()
        model.project_()
        self._wall += time.perf_counter() - t0
        return {"loss": last[-1]}

    # ------------------------------------------------------------------ evaluation
    @classmethod
    def feature_metrics(cls, weights_used: str) -> dict[str, tuple[FeatureNet, tuple[str, ...]]]:
        """Each feature metric's network (``weights_used``: the run's VGG weights) and the
        style losses that, at their defaults, run the same network with the same weights."""
        return {"content_loss": (FeatureNet(EVAL_ARCH, (EVAL_CONTENT_LAYER,), weights_used), ("perceptual",)),
                "style_dist": (FeatureNet(EVAL_ARCH, EVAL_STYLE_LAYERS, weights_used), ("perceptual",))}

    def image_metrics(self, x: torch.Tensor, with_content: bool = True) -> dict[str, float]:
        """Fixed-layer metrics of images ``x`` (N, 3, H, W) against this seed's pairs,
        averaged over the pairs (:meth:`pair_metrics`)."""
        return {k: float(v.mean()) for k, v in self.pair_metrics(x, with_content).items()}

    def pair_metrics(self, x: torch.Tensor, with_content: bool = True) -> dict[str, torch.Tensor]:
        """Fixed-layer metrics of images ``x`` (N, 3, H, W) against this seed's N pairs:
        one value per pair, each an (N,) tensor. Every pair has the same size, so their
        mean is the batch's metric."""
        net = self._eval_net
        layers = (EVAL_CONTENT_LAYER, *EVAL_STYLE_LAYERS)
        if "style_grams" not in self._eval_cache:
            fc = net.extract(self.content, (EVAL_CONTENT_LAYER,))[EVAL_CONTENT_LAYER]
            fs = net.extract(self.style, EVAL_STYLE_LAYERS)
            self._eval_cache = {"content_feat": fc, "style_grams": {l: gram_matrix(fs[l], "chw") for l in EVAL_STYLE_LAYERS}}
        fx = net.extract(x, layers)
        out: dict[str, torch.Tensor] = {}
        if with_content:
            d = fx[EVAL_CONTENT_LAYER] - self._eval_cache["content_feat"]
            out["content_loss"] = 0.5 * d.square().flatten(1).mean(1)
        grams = {}
        for l in EVAL_STYLE_LAYERS:
            # E_l = ¼ Σ (Ĝ − Â)² with Ĝ = G / (N_l M_l): Gatys' 1/(4 N² M²) Σ (G − A)²
            d = gram_matrix(fx[l], "chw") - self._eval_cache["style_grams"][l]
            grams[f"gram_{l}"] = 0.25 * d.square().sum(dim=(1, 2))
        out["style_dist"] = torch.stack(list(grams.values())).mean(0)
        out.update(grams)
        out["tv"] = torch.stack([total_variation(x[i : i + 1], "l1", "mean") for i in range(len(x))])
        return out

    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        per_pair = self.pair_metrics(model())  # the trial's own pairs (docs/tasks/style.md, "Splits")
        out: dict[str, Any] = {k: float(v.mean()) for k, v in per_pair.items()}
        self._items[split] = {"ids": [self.data.content_names[c] for c, _ in self.pairs],
                              "metrics": {k: [float(x) for x in v] for k, v in per_pair.items()}}
        out["evals"] = float(self._evals)
        out["wall_s"] = self._wall
        out["eval_feature_weights"] = self._eval_net.weights_used  # type: ignore[assignment]
        return out

    def test_items(self, split: str = "test") -> dict[str, Any] | None:
        """Per optimised pair (id: its content image's name) the metrics of the last
        ``evaluate(model, split)``, timing counts (evals, wall_s) left out: they are the trial's."""
        return self._items.get(split)

    def reference_metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        return {"content image (init)": self.image_metrics(self.content),
                "style image": {"tv": float(total_variation(self.style, "l1", "mean"))}}

    def sample_rows(self, model: nn.Module) -> dict[str, np.ndarray]:
        """input = content, truth = style, pred = the optimised image, one row per pair."""
        return {"input": to_uint8(self.content), "truth": to_uint8(self.style), "pred": to_uint8(model())}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"wall_s": self._wall, "evals": self._evals, "pairs": self.pairs}

    def load_state_dict(self, state: dict) -> None:
        self._wall = float(state.get("wall_s", 0.0))
        self._evals = int(state.get("evals", 0))
        if "pairs" in state and [tuple(p) for p in state["pairs"]] != [tuple(p) for p in self.pairs]:
            raise UsageError("the checkpoint was made with other content/style pairs; use another --out")


VIEWS.register("style", "cvloss.report.views:STYLE_VIEW")  # titles, notes and plots: the report's
