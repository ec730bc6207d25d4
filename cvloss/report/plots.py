"""Comparison plots (matplotlib, Agg): each loss's final metrics as dot-and-whisker on a
zoomed axis (``bars.png``), the paired differences against the baseline with their CI and
corrected significance (``forest.png``), learning curves, and a grid of every loss's
prediction on the same validation images.

Every plot is written as PNG, PDF and SVG, deterministically (no creation date, a fixed
SVG hash salt), so regenerating a report changes no file whose data did not change. Every
loss keeps its look (:func:`cvloss.report.style.result_key`) across every plot; whiskers
stop at the metric's bounds; references (bicubic, the untrained network) are grey dashed
lines, or a labelled arrow at the panel's edge when far outside the losses' range. See
docs/report.md.
"""
from __future__ import annotations

import math
import os
import re
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cvloss.errors import ResultsFileError  # noqa: E402
from cvloss.report.figures import FONT, save_figure  # noqa: E402
from cvloss.report.style import REFERENCE_COLOR, metric_label, reference_style, result_key  # noqa: E402
from cvloss.report.tables import bound, clipped_interval, contrast_verdicts  # noqa: E402
from cvloss.result import ComparisonResult, reads_result  # noqa: E402
from cvloss.report.text import fmt, mpl_text  # noqa: E402
from cvloss.io import read_csv, read_summary  # noqa: E402
from cvloss.report.views import view_for  # noqa: E402


def _short(spec: str, width: int = 22) -> str:
    """Tick label or title: a long spec wrapped before ``+`` / ``(`` and after ``,``
    so neighbouring labels do not run into each other."""
    if len(spec) <= width:
        return spec
    import re

    parts = [p for p in re.split(r"(?=[+(])|(?<=,)", spec) if p]
    out, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            out.append(line)
            line = part
        else:
            line += part
    out.append(line)
    return "\n".join(out)


@reads_result
def seed_values(result: ComparisonResult, loss: str, metric: str) -> list[float]:
    """Final metric of each finished seed of ``loss`` (read from its ``summary.json``)."""
    vals = []
    for trial in result.trials.get(loss, []):
        f = Path(trial) / "summary.json"
        if f.exists():
            s = read_summary(f)
            v = s.get("metrics", {}).get(metric) if s.get("status") == "done" else None
            if v is not None and math.isfinite(v):
                vals.append(float(v))
    return vals


def _status_note(result: ComparisonResult, loss: str) -> str:
    status = result.status.get(loss, [])
    bad = [f"{sum(s == k for s in status)} {k}" for k in ("diverged", "collapsed", "degenerate", "missing")
           if k in status]
    return ", ".join(bad)


def _whisker(result: ComparisonResult, row: dict[str, Any] | None, metric: str) -> tuple[float, float] | None:
    """``(lo, hi)`` of a row's 95% CI cut at the metric's bounds (``result.bounds``)
    exactly as the table cuts it (:func:`cvloss.report.tables.clipped_interval`); None
    without a CI (fewer than two finished seeds)."""
    if not row or not row["n"] or row["n"] < 2 or not _finite_number(row.get("mean")) \
            or not _finite_number(row.get("ci95")):
        return None
    lo, hi, _ = clipped_interval(row["mean"], row["ci95"], *bound(result, metric))
    return lo, hi


def _zoom(values: list[float], margin: float = 0.12) -> tuple[float, float] | None:
    """The y-range that shows ``values`` (the losses' means, whiskers, seeds) with
    ``margin`` of their span on each side; None when there is none."""
    values = [v for v in values if _finite_number(v)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = hi - lo or (abs(hi) * 0.1 or 1.0)  # one value: a tenth of it around it
    return lo - margin * span, hi + margin * span


def _reference_lines(ax, refs: list[tuple[str, float, int]], zoom: tuple[float, float] | None) -> None:
    """Draw each reference ``(name, value, k)`` (``k``: its :func:`reference_style`) on a
    panel zoomed to ``zoom`` (the losses' range, None: no loss value): a grey line when the
    value lies inside it; otherwise a label at the panel's top or bottom edge, ``untrained
    92.1 ↑``, so an untrained model at 92 does not squash the losses' 0.5-8 into one pixel
    row. Sets the y-limits (the zoom, plus a label's height per label)."""
    if zoom is None:  # no loss value: the references alone set the axis, as lines
        for name, value, j in refs:
            rs = reference_style(j)
            ax.axhline(value, color=rs["color"], linestyle=rs["linestyle"], linewidth=1.2, zorder=1,
                       label=mpl_text(f"reference: {name}"))
        return
    lo, hi = zoom
    above, below = [], []
    for name, value, j in refs:
        if value > hi:
            above.append((name, value))
        elif value < lo:
            below.append((name, value))
        else:
            rs = reference_style(j)
            ax.axhline(value, color=rs["color"], linestyle=rs["linestyle"], linewidth=1.2, zorder=1,
                       label=mpl_text(f"reference: {name}"))
    room = 0.09 * (hi - lo)  # one label line, so a label never sits on a whisker
    ax.set_ylim(lo - room * len(below), hi + room * len(above))
    for side, items in ((1, above), (-1, below)):
        for k, (name, value) in enumerate(items):
            ax.annotate(mpl_text(f"{name} {fmt(value)} {'↑' if side > 0 else '↓'}"), (0.99, 1.0 if side > 0 else 0.0),
                        xycoords="axes fraction", xytext=(0, -2 - 8 * k if side > 0 else 2 + 8 * k),
                        textcoords="offset points", ha="right", va="top" if side > 0 else "bottom", fontsize=6.5,
                        color=REFERENCE_COLOR, gid=f"reference:{name}", zorder=4)


@reads_result
def bar_plot(result: ComparisonResult, path: Path) -> None:
    """One panel per metric: per loss its mean (the loss's marker) with the 95% CI as a
    whisker cut at the metric's bounds (as in the table) and each seed as a small open
    dot, on an axis zoomed to the losses' values (not from zero: the differences are what a
    reader compares); references as grey dashed lines inside that range, as a labelled
    arrow at the panel's edge outside it; trials that diverged/collapsed named under their
    loss."""
    losses = result.losses
    key = result_key(result)
    rows = {(r["loss"], r["metric"]): r for r in result.rows}
    # A metric no loss has a value for (FID without Inception weights) gets no panel.
    empty = [m for m in result.metrics if not any(
        r["n"] and r["mean"] is not None and math.isfinite(r["mean"]) for (l, mm), r in rows.items() if mm == m)]
    metrics = [m for m in result.metrics if m not in empty] or result.metrics[:1]
    refs = list(result.references or [])
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    width = max(2.9, 0.55 * len(losses) + 1.2)
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, 2.6 * nrow + 0.6), squeeze=False)
        for k, metric in enumerate(metrics):
            ax = axes[k // ncol][k % ncol]
            shown: list[float] = []  # every value drawn for a loss: the axis is zoomed to them
            for i, loss in enumerate(losses):
                r = rows.get((loss, metric))
                st = key[loss]
                n = r["n"] if r else 0
                mean = r["mean"] if n else math.nan
                whisker = _whisker(result, r, metric)
                if n and mean is not None and math.isfinite(mean):
                    yerr = None if whisker is None else [[mean - whisker[0]], [whisker[1] - mean]]
                    ax.errorbar(i, mean, yerr=yerr, fmt=st["marker"], color=st["color"], markeredgecolor="black",
                                markersize=7, elinewidth=1.4, ecolor="black", capsize=4, zorder=3, gid=loss)
                    vals = seed_values(result, loss, metric)
                    shown += [mean, *(whisker or ()), *vals]
                    if vals:
                        xs = i + 0.22 + (np.linspace(-0.06, 0.06, len(vals)) if len(vals) > 1 else np.zeros(1))
                        ax.scatter(xs, vals, s=9, marker="o", facecolor="white", edgecolor="black",
                                   linewidth=0.6, zorder=2, rasterized=True)
                else:
                    ax.text(i, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=7)
            ref_values = [(ref, rows[(ref, metric)]["mean"], j) for j, ref in enumerate(refs) if (ref, metric) in rows
                          and rows[(ref, metric)]["n"] and _finite_number(rows[(ref, metric)]["mean"])]
            _reference_lines(ax, ref_values, _zoom(shown))
            direction = result.directions.get(metric, True)
            ax.set_title(mpl_text(f"{metric} ({'higher' if direction else 'lower'} is better)"))
            ax.set_ylabel(mpl_text(metric_label(result.task, metric)))
            # Trials left out of the mean are named under the loss, in red.
            notes = [_status_note(result, l) for l in losses]
            tilt = len(losses) > 3 or max(len(_short(l).split("\n")[0]) for l in losses) > 10  # no overlaps
            ax.set_xticks(range(len(losses)))
            ax.set_xticklabels([mpl_text(_short(l)) + ("\n" + n.replace(", ", "\n") if n else "")
                                for l, n in zip(losses, notes)],
                               rotation=30 if tilt else 0, ha="right" if tilt else "center")
            for label, note in zip(ax.get_xticklabels(), notes):
                if note:
                    label.set_color("#b00000")
            ax.set_xlim(-0.6, len(losses) - 0.4)
            ax.grid(axis="y", alpha=0.3, zorder=0)
        for k in range(len(metrics), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        handles = [Line2D([], [], marker=key[l]["marker"], color=key[l]["color"],
                          markeredgecolor="black", linestyle="", markersize=6, label=mpl_text(l)) for l in losses]
        handles += [Line2D([], [], color=reference_style(j)["color"], linestyle=reference_style(j)["linestyle"],
                           label=mpl_text(f"reference: {ref}")) for j, ref in enumerate(refs)]
        handles.append(Line2D([], [], color="black", marker="|", markersize=10, linestyle="", label="95% CI (Student t)"))
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="",
                              markersize=4, label="one seed"))
        fw = ", ".join(result.feature_weights) if result.feature_weights else "none used"
        split = f"{result.split} " if result.split else ""  # the table's split (test under the protocol)
        fig.suptitle(mpl_text(f"{result.task} / {result.dataset} / {result.budget}: final {split}metrics\n"
                              f"mean ± 95% CI over {len(result.seeds)} seeds (feature-network weights: {fw})"
                              + (f"; no value for: {', '.join(empty)}" if empty else "")))
        ncol = len(handles) if len(handles) <= 7 else 5
        fig.tight_layout(rect=(0, (0.1 + 0.17 * math.ceil(len(handles) / ncol)) / fig.get_figheight(), 1, 1))
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, columnspacing=1.2)
        save_figure(fig, path)


def _curves(result: ComparisonResult, loss: str, keys: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per key: (epochs, array seeds x epochs) from each finished or partial trial's metrics.csv."""
    per_key: dict[str, list[dict[int, float]]] = {k: [] for k in keys}
    for trial in result.trials.get(loss, []):
        f = Path(trial) / "metrics.csv"
        if not f.exists():
            continue
        rows = read_csv(f)
        for key in keys:
            series = {}
            for r in rows:
                try:
                    series[int(float(r["epoch"]))] = float(r.get(key) or "nan")
                except (KeyError, ValueError, TypeError):
                    continue
            per_key[key].append(series)
    out = {}
    for key, runs in per_key.items():
        epochs = sorted({e for run in runs for e in run if math.isfinite(run[e])})
        if epochs:
            arr = np.array([[run.get(e, np.nan) for e in epochs] for run in runs], dtype=float)
            out[key] = (np.array(epochs), arr)
    return out


@reads_result
def curves_plot(result: ComparisonResult, path: Path) -> None:
    """Training loss and the primary validation metric per epoch: line = mean over seeds,
    band = min..max over seeds; diverged epochs (NaN/Inf) leave gaps."""
    metric = result.primary_metric or (result.metrics[0] if result.metrics else None)
    keys = ["train_loss"] + ([metric] if metric else [])
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.3), squeeze=False)
        axes = axes[0]
        positive, lows, highs = True, [], []
        looks, shown = result_key(result), []  # shown: the metric's band, the panel's zoom
        for loss in result.losses:
            st = looks[loss]
            data = _curves(result, loss, keys)
            for ax, key in zip(axes, keys):
                if key not in data:
                    continue
                epochs, arr = data[key]
                arr = np.where(np.isfinite(arr), arr, np.nan)
                with np.errstate(all="ignore"):
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        mean, lo, hi = np.nanmean(arr, 0), np.nanmin(arr, 0), np.nanmax(arr, 0)
                if key == "train_loss":
                    positive = positive and bool(np.nanmin(lo) > 0)
                    lows.append(np.nanmin(lo))
                    highs.append(np.nanmax(hi))
                elif np.isfinite(lo).any():
                    shown += [float(np.nanmin(lo)), float(np.nanmax(hi))]
                ax.plot(epochs, mean, color=st["color"], linestyle=st["linestyle"], marker=st["marker"],
                        markersize=4, markevery=max(1, len(epochs) // 12), linewidth=1.5, label=mpl_text(loss),
                        gid=loss)
                if len(arr) > 1:
                    ax.fill_between(epochs, lo, hi, color=st["color"], alpha=0.15, linewidth=0)
        if metric:
            refs = [(r["loss"], r["mean"], j) for j, ref in enumerate(result.references or [])
                    for r in result.rows
                    if r["loss"] == ref and r["metric"] == metric and r["n"] and _finite_number(r["mean"])]
            _reference_lines(axes[-1], refs, _zoom(shown, 0.06))
        # Losses live on their own scales (CE ~1, a weighted sum ~100): log scale when
        # they span more than a decade and are all positive (WGAN losses can be negative).
        log = positive and bool(lows) and max(highs) > 10 * min(lows)
        axes[0].set_ylabel("training loss (own scale per loss)")
        axes[0].set_title("training loss per epoch" + (" (log scale)" if log else ""))
        if log:
            axes[0].set_yscale("log")
        if metric:
            axes[-1].set_ylabel(mpl_text(metric_label(result.task, metric, result.directions.get(metric, True))))
            axes[-1].set_title(mpl_text(f"validation {metric} per epoch"))
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        handles, labels = axes[-1].get_legend_handles_labels()
        fig.suptitle(mpl_text(f"{result.task} / {result.dataset} / {result.budget}: learning curves\n"
                              f"line = mean over seeds, band = min..max over seeds"))
        if handles:  # under the panels, never on top of a curve
            ncol = min(len(handles), 4)
            rows = math.ceil(len(handles) / ncol)
            fig.tight_layout(rect=(0, (0.12 + 0.16 * rows) / fig.get_figheight(), 1, 1))
            fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
        else:
            fig.tight_layout()
        save_figure(fig, path)


@reads_result
def samples_plot(result: ComparisonResult, path: Path) -> bool:
    """Columns: input, truth, then each loss's prediction on the same validation images
    at its first seed that wrote samples; each loss column framed in the loss's colour."""
    cols: dict[str, np.ndarray] = {}
    seed_of: dict[str, int] = {}
    for loss in result.losses:
        for seed, trial in zip(result.seeds, result.trials.get(loss, [])):
            f = Path(trial) / "samples.npz"
            if f.exists():
                try:
                    with np.load(f) as z:
                        if not cols:
                            cols["input"], cols["truth"] = z["input"], z["truth"]
                        cols[loss] = z["pred"]
                except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                    raise ResultsFileError(f"{f} is not a valid samples file: {type(exc).__name__}: {exc}") from None
                seed_of[loss] = seed
                break
    if not cols:
        return False
    names = list(cols)
    k = len(cols["input"])
    one_seed = len(set(seed_of.values())) == 1
    view = view_for(result.task)
    titles, note = dict(view.sample_titles), view.sample_note
    looks = result_key(result)
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(k, len(names), figsize=(1.45 * len(names), 1.45 * k + 0.5), squeeze=False)
        for j, name in enumerate(names):
            is_loss = name in seed_of
            color = looks[name]["color"] if is_loss else "black"
            for i in range(k):
                ax = axes[i][j]
                ax.imshow(cols[name][i], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for sp in ax.spines.values():
                    sp.set_edgecolor(color)
                    sp.set_linewidth(3 if is_loss else 0.8)
            title = _short(titles.get(name, name) if not is_loss else name, 14) + (
                "" if one_seed or not is_loss else f"\n(seed {seed_of[name]})")
            # black text (pale loss colours are unreadable as text); the frame carries the colour
            axes[0][j].set_title(mpl_text(title), fontsize=7, fontweight="bold" if is_loss else "normal")
        where = f"seed {next(iter(seed_of.values()))}" if one_seed else "first finished seed of each loss"
        fig.suptitle(mpl_text(f"{result.task} / {result.dataset}: the same validation images under each loss "
                              f"({where})"), fontsize=8)
        if note:  # what the cells show, when they are not plain images (embed's decisions, gan's scatters)
            import textwrap

            lines = textwrap.wrap(note, max(40, 16 * len(names)))
            fig.text(0.5, 0.005, mpl_text("\n".join(lines)), ha="center", va="bottom", fontsize=6.5)
            fig.tight_layout(rect=(0, 0.12 * len(lines) / fig.get_figheight(), 1, 1))
        else:
            fig.tight_layout()
        save_figure(fig, path)
    return True


#: The forest plot's words for each verdict (beside the p-value of its row).
_VERDICT_SHORT = {"appears": "appears", "reversed": "reversed", "not detected": "n.d.",
                  "inconclusive": "inconclusive", "not measurable": "n/a"}


@reads_result
def forest_plot(result: ComparisonResult, path: Path) -> bool:
    """Paired differences against the baseline, one panel per metric (the primary one
    first), one row per loss: the mean difference (loss − baseline over the paired seeds)
    with its 95% CI, a filled marker when the adjusted p (Holm / BH) is below 0.05 and an
    open one otherwise, the adjusted p and the contrast's verdict written beside it
    (:func:`cvloss.report.tables.contrast_verdicts`: appears, reversed, n.d. = not
    detected, inconclusive = MDE ≥ headroom), and an arrow to the side where the metric
    improves. False (nothing written) with fewer than two losses."""
    losses = result.losses[1:]
    if not losses:
        return False
    rows = {(r["loss"], r["metric"]): r for r in result.rows}
    primary = result.primary_metric
    metrics = sorted(result.metrics, key=lambda m: m != primary)
    metrics = [m for m in metrics if any(_finite_number(rows.get((l, m), {}).get("diff_vs_baseline")) for l in losses)]
    if not metrics:
        return False
    ncol = min(3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    looks = result_key(result)
    with plt.rc_context(FONT):
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 0.42 * len(losses) * nrow + 1.1 * nrow + 0.5),
                                 squeeze=False)
        for k, metric in enumerate(metrics):
            ax = axes[k // ncol][k % ncol]
            verdicts = ({c["loss"]: c["verdict"] for c in contrast_verdicts(result, metric)}
                        if result.best is not None else {})
            for i, loss in enumerate(losses):
                r = rows.get((loss, metric)) or {}
                d, ci = r.get("diff_vs_baseline"), r.get("diff_ci95")
                if not _finite_number(d):
                    ax.text(0.5, i, "n/a", transform=ax.get_yaxis_transform(), ha="center", va="center", fontsize=7)
                    continue
                p = r.get("p_adj", r.get("p_value"))
                significant = _finite_number(p) and p < 0.05
                st = looks[loss]
                ax.errorbar(d, i, xerr=ci if _finite_number(ci) else None, fmt=st["marker"], markersize=6,
                            color="black", markerfacecolor=st["color"] if significant else "white",
                            markeredgecolor="black", capsize=3, elinewidth=1.2, zorder=3)
                said = _VERDICT_SHORT.get(verdicts.get(loss, ""), "")
                if _finite_number(p) or said:
                    text = "\n".join(t for t in ((f"p={p:.2g}" if _finite_number(p) else ""), said) if t)
                    ax.annotate(text, (1.0, i), xycoords=("axes fraction", "data"), xytext=(3, 0),
                                textcoords="offset points", va="center", fontsize=6, annotation_clip=False)
            ax.axvline(0, color="black", linewidth=0.8, zorder=1)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_yticks(range(len(losses)))
            ax.set_yticklabels([mpl_text(_short(l, 26)) for l in losses])
            ax.set_ylim(len(losses) - 0.5, -0.5)
            up = result.directions.get(metric, True)
            name = "p adjusted: Holm" if metric == primary else "p adjusted: BH (exploratory)"
            if not any("p_adj" in (rows.get((l, metric)) or {}) for l in losses):
                name = "p uncorrected"
            ax.set_title(mpl_text(f"{metric}{' (primary)' if metric == primary else ''}: "
                                  f"Δ vs {_short(result.baseline, 18)}\n"
                                  f"{'higher' if up else 'lower'} is better · {name}"))
            ax.set_xlabel(mpl_text(f"Δ {metric_label(result.task, metric)}  ({'→' if up else '←'} better)"))
            ax.grid(axis="x", alpha=0.3, zorder=0)
        for k in range(len(metrics), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        fig.suptitle(mpl_text(f"{result.task} / {result.dataset} / {result.budget}: paired differences "
                              f"against {result.baseline}, mean ± 95% CI over seeds; filled = adjusted p < 0.05"
                              + ("\nverdict: appears / reversed / n.d. = not detected / inconclusive = MDE ≥ headroom"
                                 if result.best is not None else "")))
        fig.tight_layout()
        save_figure(fig, path)
    return True


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# The temporary files of the atomic writer (cvloss.io.atomic_path): ".<name>.<random>.tmp<suffix>".
_TEMP_PLOT = re.compile(r"\.(?P<name>.+(?P<ext>\.(?:png|pdf|svg)))\.[A-Za-z0-9_]+\.tmp(?P=ext)")
#: A temporary plot older than this is an orphan: a writer renames its own within seconds.
ORPHAN_AGE_S = 60.0


def remove_orphan_plots(folder: Path, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the temporary plot files (``.bars.pdf.x1y2z3.tmp.pdf``) a writer killed
    mid-``savefig`` left in ``folder``, when older than ``min_age_s`` (a concurrent
    writer's own is younger); only regular files are removed, a link is left alone.
    Returns what was removed."""
    removed, now = [], time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet: nothing left over
        return removed
    for entry in entries:
        if not _TEMP_PLOT.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > min_age_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile (another process cleaned it): fine
            continue
    return removed


@reads_result
def comparison_plots(result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """Write ``bars.png``, ``forest.png`` (two losses or more), ``curves.png`` and
    ``samples.png`` (each with its PDF and SVG) into ``out_dir``; returns {key: PNG file
    name} of the plots made. Orphan temporary plots of earlier, interrupted runs are
    removed first (:func:`remove_orphan_plots`)."""
    out_dir = Path(out_dir)
    remove_orphan_plots(out_dir)
    made = {}
    if result.metrics:
        bar_plot(result, out_dir / "bars.png")
        made["bars"] = "bars.png"
        if forest_plot(result, out_dir / "forest.png"):
            made["forest"] = "forest.png"
        curves_plot(result, out_dir / "curves.png")
        made["curves"] = "curves.png"
    if samples_plot(result, out_dir / "samples.png"):
        made["samples"] = "samples.png"
    if result.tuning:
        if tuning_plot(result, out_dir / "tuning.png"):
            made["tuning"] = "tuning.png"
    return made


@reads_result
def tuning_plot(result: ComparisonResult, path: Path) -> bool:
    """A tuned comparison's search (``result.tuning``, :mod:`cvloss.run.tune`): val
    score against each tuned numeric parameter, one panel per parameter, one series per
    loss, the chosen candidate ringed, a log axis for ``log`` ranges. Val score against each tuned numeric parameter; False (nothing drawn) when the
    comparison was not tuned or tuned only categorical choices."""
    t = result.tuning
    if not t:
        return False
    losses = result.losses
    # every numeric tuned name, in the order the space lists them: each loss draws the
    # names its own candidates have (a loss trains its own dimensions)
    cands = {s: t["losses"][s]["candidates"] for s in losses}
    params = [p for p in dict.fromkeys(k for s in losses for c in cands[s][:1] for k in c)
              if all(isinstance(c[p], (int, float)) for s in losses for c in cands[s] if p in c)]
    if not params:
        return False
    log = {d.split("=", 1)[0] for d in t["space"] if d.split("=", 1)[1].startswith("log(")}
    looks = result_key(result)
    ncols = min(4, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 0.4, 3.0 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, params):
        for spec in losses:
            rec, style = t["losses"][spec], looks[spec]
            ses = rec.get("val_se") if isinstance(rec.get("val_se"), list) else [None] * len(rec["val_scores"])
            pts = [(c[name], s, e if isinstance(e, (int, float)) else 0.0)
                   for c, s, e in zip(rec["candidates"], rec["val_scores"], ses)
                   if name in c and s is not None and math.isfinite(s)]
            if pts:
                xs, ys, es = zip(*sorted(pts))
                ax.errorbar(xs, ys, yerr=es, marker=style["marker"], color=style["color"], linestyle="none",
                            label=mpl_text(spec), capsize=2, elinewidth=0.8)
            best = rec["val_scores"][rec["chosen_index"]]
            if best is not None and name in rec["chosen"]:
                ax.plot([rec["chosen"][name]], [best], marker="o", markersize=12, markerfacecolor="none",
                        color=style["color"])
        if name in log:
            ax.set_xscale("log")
        ax.set_xlabel(mpl_text(name))
        ax.set_ylabel(mpl_text(f"val {t['metric']}"))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("Tuning: val score of every candidate, mean ± SE over its tuning seeds (ringed: chosen)", fontsize=9)
    save_figure(fig, path)
    return True
