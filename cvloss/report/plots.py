"""Comparison plots (matplotlib, Agg): metric bars with 95% CI, learning curves, and a
side-by-side grid of every loss's prediction on the same validation images.

Each loss keeps one colour and one hatch pattern across all plots of a comparison, so
plots stay readable when printed in grey."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cvloss.run.io import read_csv  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++", "**", "||"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]


def loss_style(i: int) -> dict[str, Any]:
    return {"color": COLORS[i % len(COLORS)], "hatch": HATCHES[i % len(HATCHES)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def bar_plot(result: dict[str, Any], path: Path) -> None:
    metrics = result["metrics"]
    rows = {(r["loss"], r["metric"]): r for r in result["rows"]}
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
    for k, metric in enumerate(metrics):
        ax = axes[k // ncol][k % ncol]
        for i, loss in enumerate(result["losses"]):
            r = rows.get((loss, metric))
            mean = r["mean"] if r and r["n"] else np.nan
            ci = r["ci95"] if r and r["n"] >= 2 else 0.0
            st = loss_style(i)
            ax.bar(i, mean, yerr=None if np.isnan(ci) else ci, color=st["color"], hatch=st["hatch"],
                   edgecolor="black", capsize=4, label=loss)
        arrow = "higher is better" if result["directions"][metric] else "lower is better"
        ax.set_title(f"{metric} ({arrow})", fontsize=9)
        ax.set_xticks(range(len(result["losses"])))
        ax.set_xticklabels(result["losses"], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(metric)
    for k in range(len(metrics), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fw = ", ".join(result["feature_weights"]) if result.get("feature_weights") else "no feature net"
    fig.suptitle(f"{result['task']} / {result['dataset']} / {result['budget']}: mean ± 95% CI over "
                 f"{len(result['seeds'])} seeds (features: {fw})", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def curves_plot(result: dict[str, Any], path: Path) -> None:
    metric = result.get("primary_metric") or (result["metrics"][0] if result["metrics"] else None)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, loss in enumerate(result["losses"]):
        curves = {"train_loss": [], metric: []}
        for trial in result["trials"][loss]:
            f = Path(trial) / "metrics.csv"
            if not f.exists():
                continue
            rows = read_csv(f)
            for key in curves:
                curves[key].append([float(r.get(key) or "nan") for r in rows])
        st = loss_style(i)
        for ax, key in zip(axes, ["train_loss", metric]):
            series = curves[key]
            if not series:
                continue
            length = min(len(s) for s in series)
            arr = np.array([s[:length] for s in series])
            epochs = np.arange(1, length + 1)
            mean = np.nanmean(arr, axis=0)
            ax.plot(epochs, mean, color=st["color"], linestyle=st["linestyle"], label=loss)
            if len(arr) > 1:
                ax.fill_between(epochs, np.nanmin(arr, 0), np.nanmax(arr, 0), color=st["color"], alpha=0.15)
    axes[0].set_ylabel("training loss (own scale per loss)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel(f"validation {metric}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle("learning curves: mean over seeds, band = min..max", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def samples_plot(result: dict[str, Any], path: Path) -> bool:
    """Columns: input, truth, then each loss's prediction at its first finished seed."""
    cols: dict[str, np.ndarray] = {}
    for loss in result["losses"]:
        for trial in result["trials"][loss]:
            f = Path(trial) / "samples.npz"
            if f.exists():
                with np.load(f) as z:
                    if not cols:
                        cols["input"], cols["truth"] = z["input"], z["truth"]
                    cols[loss] = z["pred"]
                break
    if not cols:
        return False
    names = list(cols)
    k = len(cols["input"])
    fig, axes = plt.subplots(k, len(names), figsize=(1.5 * len(names), 1.5 * k), squeeze=False)
    for j, name in enumerate(names):
        for i in range(k):
            axes[i][j].imshow(cols[name][i], interpolation="nearest")
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
        axes[0][j].set_title(name, fontsize=7)
    fig.suptitle(f"same validation images, seed {result['seeds'][0]}", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return True


def comparison_plots(result: dict[str, Any], out_dir: Path) -> dict[str, str]:
    out_dir = Path(out_dir)
    made = {}
    if result["metrics"]:
        bar_plot(result, out_dir / "bars.png")
        made["bars"] = "bars.png"
        curves_plot(result, out_dir / "curves.png")
        made["curves"] = "curves.png"
    if samples_plot(result, out_dir / "samples.png"):
        made["samples"] = "samples.png"
    return made
