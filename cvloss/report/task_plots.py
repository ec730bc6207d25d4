"""The built-in tasks' own comparison plots, drawn from the files the trials wrote:
embed's ROC curves and embedding PCA (``report_data.npz``), gan's sample scatter and
style's every-seed grid (``samples.npz``). The views (:mod:`cvloss.report.views`) hold them.

Each takes a comparison (``result.trials[loss]``: that loss's trial folders, one per seed)
and a folder to draw in, and returns {key: file name}. No task is rebuilt and no weights
are loaded: a trial's files are read as untrusted (:func:`read_report_data`).
"""
from __future__ import annotations

import math
import textwrap
import warnings
import zipfile
from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.lib import format as npy_format  # noqa: E402

from cvloss.errors import ResultsFileError  # noqa: E402
from cvloss.io import read_bounded  # noqa: E402
from cvloss.metrics.verification import roc_auc, roc_curve  # noqa: E402
from cvloss.report.figures import save_figure  # noqa: E402
from cvloss.report.style import REFERENCE_COLOR, result_key  # noqa: E402
from cvloss.report.text import mpl_text  # noqa: E402
from cvloss.result import ComparisonResult, reads_result  # noqa: E402

#: A trial's arrays for its task's plots (:meth:`cvloss.tasks.base.Task.report_arrays`),
#: written by the trainer after the final test evaluation; the untrained model's arrays
#: under the same keys prefixed ``untrained.``.
REPORT_DATA = "report_data.npz"
#: The largest report data file read: embed's full budget writes well under 1 MiB.
MAX_REPORT_DATA_BYTES = 64 * 2**20
UNTRAINED_PREFIX = "untrained."


def _declared_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The data bytes an ``.npy`` member's header declares (read before the array, so a
    header claiming a huge shape is refused before numpy allocates it)."""
    with zf.open(info) as f:
        version = npy_format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"member {info.filename} is .npy format {version}, not 1.0 or 2.0")
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    if dtype.hasobject:
        raise ValueError(f"member {info.filename} holds Python objects")
    return math.prod(shape) * dtype.itemsize


def read_report_data(trial_dir: Path, name: str = REPORT_DATA) -> dict[str, np.ndarray]:
    """The arrays of ``trial_dir``'s :data:`REPORT_DATA` (or ``name``), read as untrusted: a
    regular file inside the folder of at most :data:`MAX_REPORT_DATA_BYTES`, a zip of plain
    ``.npy`` arrays (no pickled objects) each declaring no more data than its member holds.
    :class:`FileNotFoundError` when there is none; else one :class:`ResultsFileError` line."""
    path = Path(trial_dir) / name
    data = read_bounded(path, Path(trial_dir), MAX_REPORT_DATA_BYTES, "report data file")
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > MAX_REPORT_DATA_BYTES:
                raise ValueError(f"its members unpack to more than {MAX_REPORT_DATA_BYTES} bytes")
            for info in infos:
                if not info.filename.endswith(".npy") or _declared_bytes(zf, info) > info.file_size:
                    raise ValueError(f"member {info.filename} is not an .npy array of the size it declares")
        with np.load(BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ResultsFileError(f"{path} is not a valid report data file: {type(exc).__name__}: {exc}") from None


def _pairs(arrays: dict[str, np.ndarray], prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``(scores (M,) float64 finite, same (M,) bool with both kinds)`` for a ROC curve;
    ValueError naming what is wrong."""
    s, same = arrays.get(prefix + "pair_scores"), arrays.get(prefix + "pair_same")
    if s is None or same is None:
        raise ValueError(f"no {prefix}pair_scores or {prefix}pair_same")
    if s.ndim != 1 or s.dtype.kind != "f" or same.shape != s.shape or same.dtype != np.bool_:
        raise ValueError(f"{prefix}pair_scores/{prefix}pair_same are not (M,) floats and (M,) booleans")
    if not np.isfinite(s).all() or same.all() or not same.any():
        raise ValueError(f"{prefix}pair_scores are not finite, or the pairs are not both same and different")
    return s.astype(np.float64), same


def _cloud(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings (N, D) float64 finite, N >= 2, D >= 2; identities (N,) int)`` for the PCA."""
    e, ids = arrays.get("pca_embeddings"), arrays.get("pca_ids")
    if e is None or ids is None:
        raise ValueError("no pca_embeddings or pca_ids")
    if e.ndim != 2 or e.dtype.kind != "f" or min(e.shape) < 2 or ids.shape != e.shape[:1] or ids.dtype.kind not in "iu":
        raise ValueError("pca_embeddings/pca_ids are not (N, D >= 2) floats and (N,) integers")
    if not np.isfinite(e).all():
        raise ValueError("pca_embeddings are not finite")
    return e.astype(np.float64), ids


def _embed_arrays(dirs: list[str]) -> tuple[dict[str, np.ndarray] | None, str]:
    """The report data of the first of a loss's trials (seed order) whose file reads and
    holds embed's arrays, else (None, why not). A seed run as k folds (LFW View 2) keeps
    it in each fold's sub-trial: its first fold's is drawn."""
    why = f"no {REPORT_DATA} in its trials (trials written before cvloss kept report data)"
    folders = [f for d in dirs for f in (Path(d), Path(d) / "fold0")]
    for d in folders:
        try:
            arrays = read_report_data(d)
            _pairs(arrays)
            _cloud(arrays)
            return arrays, ""
        except FileNotFoundError:
            continue
        except ResultsFileError as exc:
            why = str(exc)
        except ValueError as exc:
            why = f"{d / REPORT_DATA}: {exc}"
    return None, why


@reads_result
def embed_plots(result: ComparisonResult, out_dir: Path) -> dict[str, str]:
    """``roc.png``: ROC curves (TAR vs FAR, log FAR axis) of every loss on the val pairs
    at its first seed with report data, plus the untrained network; ``pca.png``: per loss,
    the 2-D PCA of the val embeddings of the first 10 val identities, coloured by identity.
    Both from each trial's ``report_data.npz``; a loss without one is left out, said in one
    warning line (trials written before that file existed have none)."""
    curves, clouds, skipped, untrained = [], [], {}, None
    for spec, dirs in result.trials.items():
        arrays, why = _embed_arrays(dirs)
        if arrays is None:
            skipped.setdefault(why, []).append(spec)
            continue
        curves.append((spec, *_pairs(arrays)))
        clouds.append((spec, *_cloud(arrays)))
        if untrained is None:
            try:  # every loss's untrained network at a seed is the same one: drawn once
                untrained = ("untrained", *_pairs(arrays, UNTRAINED_PREFIX))
            except ValueError:
                pass
    if skipped:
        warnings.warn(f"{result.task} plots roc.png and pca.png leave out "
                      + "; ".join(f"{', '.join(specs)}: {why}" for why, specs in skipped.items()), stacklevel=2)
    if not curves:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    _roc_plot(result, [untrained, *curves] if untrained else curves, out_dir / "roc.png")
    _pca_plot(clouds, out_dir / "pca.png")
    return {"roc": "roc.png", "pca": "pca.png"}


def _roc_plot(result: ComparisonResult, curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """ROC curves ``(spec, scores, same)``, FAR on a log axis down to one false accept."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    floor = 1.0 / max(1, int((~curves[0][2]).sum()))
    for spec, s, same in curves:
        far, tar, _ = roc_curve(s, same)
        # the comparison's colour and line style of each loss, so the ROC matches every other plot
        look = {"color": REFERENCE_COLOR, "linestyle": "--"} if spec == "untrained" else result_key(result)[spec]
        ax.step(np.maximum(far, floor / 2), tar, where="post", ls=look["linestyle"], color=look["color"],
                label=mpl_text(f"{spec} (AUC {roc_auc(s, same):.3f})"))
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
    save_figure(fig, path)  # with its PDF and SVG


def _pca_plot(clouds: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """Per loss ``(spec, embeddings, identities)``: the embeddings projected on their first
    two principal axes, coloured by identity."""
    ncol = min(3, len(clouds))
    nrow = math.ceil(len(clouds) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (spec, e, ids) in zip(axes.flat, clouds):
        e = e - e.mean(0)
        _, _, vt = np.linalg.svd(e, full_matrices=False)
        xy = e @ vt[:2].T
        ax.set_axis_on()
        ax.scatter(xy[:, 0], xy[:, 1], c=ids, cmap="tab10", s=12, rasterized=True)
        ax.set_title(mpl_text(spec), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    n_ids = len(np.unique(clouds[0][2]))
    fig.suptitle(f"PCA of val embeddings, {n_ids} identities (colour = identity)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


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
