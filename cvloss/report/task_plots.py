"""Task-specific comparison plots, drawn from a whole comparison's trial folders:
embed's ROC curves and embedding PCA, gan's sample scatter, style's every-seed grid.

:func:`task_plots` writes a task's plots into ``out_dir`` and returns {key: file name};
``result.trials[loss]`` lists each loss's trial folders (per seed) to read
``samples.npz``, ``trial.json`` or the final weights (``model.pt``, else ``checkpoint.pt``)
from.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cvloss.errors import CheckpointError  # noqa: E402
from cvloss.io import load_checkpoint, load_torch_file, read_json  # noqa: E402
from cvloss.metrics.verification import roc_auc, roc_curve  # noqa: E402
from cvloss.report.plots import save_figure  # noqa: E402
from cvloss.report.style import REFERENCE_COLOR, result_key  # noqa: E402
from cvloss.report.text import mpl_text  # noqa: E402
from cvloss.result import ComparisonResult, reads_result  # noqa: E402
from cvloss.tasks.base import seed_everything  # noqa: E402
from cvloss.tasks.embed import EmbedTask  # noqa: E402

PCA_IDS = 10  # val identities drawn in the PCA plot
WEIGHTS = ("model.pt", "checkpoint.pt")  # a trial's final weights: model.pt, else (older trials) the last checkpoint


def task_plots(task: str, result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """The plots of ``task`` (none for tasks without their own)."""
    plots = _PLOTS.get(task)
    return plots(result, Path(out_dir)) if plots else {}


def has_weights(trial_dir: Path) -> bool:
    """Whether a trial folder holds final weights (:data:`WEIGHTS`) and its trial.json."""
    return (trial_dir / "trial.json").exists() and any((trial_dir / name).exists() for name in WEIGHTS)


def trained_weights(trial_dir: Path) -> dict[str, torch.Tensor]:
    """A finished trial's final ``state_dict``: ``model.pt`` (weights only), else the
    ``"model"`` of ``checkpoint.pt`` -- trials written before model.pt existed, and the
    committed results/embed seed-0 trials, have only that; both read with
    ``weights_only=True``."""
    if not (trial_dir / WEIGHTS[0]).exists():
        return load_checkpoint(trial_dir / WEIGHTS[1])["model"]
    state = load_torch_file(trial_dir / WEIGHTS[0], "model weights")
    if not isinstance(state, dict):
        raise CheckpointError(f"model weights {trial_dir / WEIGHTS[0]} refused: it holds a {type(state).__name__}, "
                              "not a state_dict")
    return state


@torch.no_grad()
def _embed(task: EmbedTask, model: torch.nn.Module) -> torch.Tensor:
    model.eval()  # as the trainer evaluates
    return task.embed(model, task.val_x)


@reads_result
def embed_plots(result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """``roc.png``: ROC curves (TAR vs FAR, log FAR axis) of every loss at the first
    seed, plus the untrained network; ``pca.png``: per loss, the 2-D PCA of the val
    embeddings of the first 10 val identities, coloured by identity. Both rebuilt
    from each trial's final weights (:func:`trained_weights`) and ``trial.json``."""
    curves, clouds, task = [], [], None
    for spec, dirs in result.trials.items():
        d = next((Path(x) for x in dirs if has_weights(Path(x))), None)
        if d is None:
            continue
        info = read_json(d / "trial.json")
        cfg = info["config"]
        if task is None:
            task = EmbedTask(cfg["dataset"], cfg["params"], torch.device("cpu"), cfg.get("data_dir"), cfg.get("feature_weights"))
            task.load_data()
            seed_everything(int(cfg["seed"]))  # the trainer's init at this seed
            init = task.build_model()
            s0 = task.pair_scores(_embed(task, init))
            curves.append(("untrained", s0))
        model = task.build_model()
        model.load_state_dict(trained_weights(d))
        emb = _embed(task, model)
        curves.append((spec, task.pair_scores(emb)))
        clouds.append((spec, emb))
    if task is None:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    floor = 1.0 / max(1, int((~task.same).sum()))
    for spec, s in curves:
        far, tar, _ = roc_curve(s, task.same)
        # the comparison's colour and line style of each loss, so the ROC matches every other plot
        look = {"color": REFERENCE_COLOR, "linestyle": "--"} if spec == "untrained" else result_key(result)[spec]
        ax.step(np.maximum(far, floor / 2), tar, where="post", ls=look["linestyle"], color=look["color"],
                label=mpl_text(f"{spec} (AUC {roc_auc(s, task.same):.3f})"))
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("FAR (false accept rate)")
    ax.set_ylabel("TAR (true accept rate)")
    ax.set_title(mpl_text(f"{result.task} / {result.dataset}: ROC on val pairs, seed {result.seeds[0]}"),
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_dir / "roc.png")  # with its PDF and SVG

    keep = torch.isin(task.val_y, torch.unique(task.val_y)[:PCA_IDS]).numpy()
    ncol = min(3, len(clouds))
    nrow = math.ceil(len(clouds) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (spec, emb) in zip(axes.flat, clouds):
        e = emb.numpy()[keep].astype(np.float64)
        e = e - e.mean(0)
        _, _, vt = np.linalg.svd(e, full_matrices=False)
        xy = e @ vt[:2].T
        ax.set_axis_on()
        ax.scatter(xy[:, 0], xy[:, 1], c=task.val_y.numpy()[keep], cmap="tab10", s=12, rasterized=True)
        ax.set_title(mpl_text(spec), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"PCA of val embeddings, {PCA_IDS} identities (colour = identity)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_dir / "pca.png")
    return {"roc": "roc.png", "pca": "pca.png"}


@reads_result
def gan_plots(result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """``scatter.png``: one column per loss (and the real data first), one row per seed,
    each cell that trial's generated samples over the modes (its ``samples.npz``)."""
    losses, seeds = result.losses, result.seeds
    cells: dict[tuple[int, int], np.ndarray] = {}
    real = None
    for j, loss in enumerate(losses):
        for i, trial in enumerate(result.trials[loss]):
            f = Path(trial) / "samples.npz"
            if f.exists():
                with np.load(f) as z:
                    cells[(i, j + 1)] = z["pred"][0]
                    if real is None:
                        real = z["truth"][0]
    if not cells:
        return {}
    status = result.status
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
                ax.set_title("real data" if j == 0 else mpl_text(losses[j - 1]), fontsize=8)
            if j > 0:
                st = (status.get(losses[j - 1]) or [None] * len(seeds))[i]
                if st and st != "done":
                    ax.set_xlabel(mpl_text(st), fontsize=7, color="#d62728")
    fig.suptitle(mpl_text(f"gan · {result.dataset}: samples over the modes (red: centres, 3σ circles)"), fontsize=8)
    fig.tight_layout()
    out = Path(out_dir) / "scatter.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)  # the cells are rendered scatters (images): raster in the PDF/SVG too
    return {"scatter": out.name}


@reads_result
def style_plots(result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """``stylised_all_seeds.png``: rows = every seed's pairs, columns = content,
    style, then each loss's result (the generic ``samples.png`` shows seed 1 only),
    plus a 2x nearest-neighbour zoom of each result's centre to show pixel noise."""
    losses = result.losses
    rows: list[dict[str, np.ndarray]] = []
    for s_i, seed in enumerate(result.seeds):
        per_loss = {}
        for loss in losses:
            f = Path(result.trials[loss][s_i]) / "samples.npz"
            if f.exists():
                with np.load(f) as z:
                    per_loss[loss] = {k: z[k] for k in ("input", "truth", "pred")}
        if not per_loss:
            continue
        first = next(iter(per_loss.values()))
        for k in range(len(first["input"])):
            row = {"content": first["input"][k], "style": first["truth"][k]}
            for loss in losses:
                if loss in per_loss:
                    pred = per_loss[loss]["pred"][k]
                    row[loss] = pred
                    h, w = pred.shape[:2]
                    crop = pred[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2]
                    row[f"{loss} (centre, 2x)"] = crop.repeat(2, 0).repeat(2, 1)
            row["_seed"] = seed  # type: ignore[assignment]
            rows.append(row)
    if not rows:
        return {}
    cols = [c for c in rows[0] if c != "_seed"]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.5 * len(cols), 1.5 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            if c in row:
                ax.imshow(row[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:  # long specs wrap instead of running into the next title
                ax.set_title(mpl_text("\n".join(textwrap.wrap(c, 22))), fontsize=5)
            if j == 0:
                ax.set_ylabel(f"seed {row['_seed']}", fontsize=7)
    weights = ", ".join(result.feature_weights or ["none"])
    fig.suptitle(mpl_text(f"style transfer, every seed (feature weights: {weights})"), fontsize=8)
    fig.tight_layout()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "stylised_all_seeds.png"
    save_figure(fig, path)
    return {"stylised_all_seeds": path.name}


_PLOTS: dict[str, Callable[[dict[str, Any], Path], dict[str, str]]] = {
    "embed": embed_plots, "gan": gan_plots, "style": style_plots}
