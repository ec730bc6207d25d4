"""``cvloss report``: gather every comparison under a results folder into ``REPORT.md``
(tables, relative image links) and ``report.html`` (one self-contained file).

Layout of both: a contents list; per task and dataset, one section per comparison (facts,
table, paired differences, bars, learning curves, samples and the task's own plots);
a colour key; provenance at the bottom (the command that reproduces each comparison,
package versions, git commit, device, budget settings, read from the trials'
``trial.json``).

The standard plots are redrawn from the trials when their folders are there, so every
plot of the report uses the same look per loss (:mod:`cvloss.report.style`) even for
comparisons made by an older version.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cvloss.report.tables import comparison_markdown, is_mixed, markdown_table
from cvloss.report.text import md_code, md_escape
from cvloss.io import file_inside, loss_slug, read_json_object
from cvloss.report.plots import comparison_plots
from cvloss.report.style import HATCH_NAMES, LINESTYLE_NAMES, MARKER_NAMES, LossKey, report_key
from cvloss.report.trial_notes import trial_notes
from cvloss.result import ComparisonResult, reads_result

PLOT_TITLES = {
    "bars": "Final {split}metrics: mean ± 95% CI (zoomed axis), one open dot per seed",
    "forest": "Paired differences against the baseline: mean ± 95% CI, filled = adjusted p < 0.05",
    "curves": "Learning curves: mean over seeds, band = min..max",
    "samples": "The same validation images under each loss",
}
STANDARD_PLOTS = ("bars", "forest", "curves", "samples")


@dataclass
class ReportedComparison(ComparisonResult):
    """A comparison as the report shows it (:func:`load_comparisons`): its
    ``compare.json`` with trial folders resolved beside it, and what the report adds."""

    path: Path | None = None  # its compare.json
    rel: str = ""  # its folder, relative to the report's root ("/"-separated)
    prov: dict[str, Any] = field(default_factory=dict)  # :func:`provenance` of its trials
    command: str = ""  # the command that remakes it (:func:`reproduce_command`)
    anchor: str = ""  # its section's id, unique in the report
    loss_key: LossKey | None = None  # one look per loss over the whole report (cvloss.report.style)


def find_comparisons(root: Path) -> list[Path]:
    """Every ``compare.json`` below ``root``, in a stable order."""
    return sorted(Path(root).rglob("compare.json"))


def plot_title(key: str, split: str | None = None) -> str:
    """The caption of plot ``key``; the final-metrics plot names the split its numbers were
    measured on (``compare.json``'s ``split``: ``test`` under the protocol, none in
    comparisons that predate it)."""
    title = PLOT_TITLES.get(key, key.replace("_", " "))
    return title.replace("{split}", f"{split} " if split else "")


def _resolve_trials(result: ComparisonResult, cmp_dir: Path) -> None:
    """Trial folders are the siblings ``<group>/<loss-slug>/seed<k>`` of the comparison
    folder, derived from (loss, seed) alone: the paths compare.json stores (maybe another
    machine's, maybe hostile) are never followed. A folder that is a link leading out of
    the group is left out (treated as missing)."""
    group = cmp_dir.parent.resolve()
    trials = {}
    for loss in result.losses:
        slug = loss_slug(loss)
        dirs = []
        for seed in result.seeds:
            d = cmp_dir.parent / slug / f"seed{seed}"
            real = d.resolve()
            ok = slug not in (".", "..") and real.parent.parent == group and real.parent.name == slug
            dirs.append(str(d) if ok else str(cmp_dir / ".outside" / slug / f"seed{seed}"))
        trials[loss] = dirs
    result.trials = trials
    result.dir = str(cmp_dir)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@reads_result
def provenance(result: ComparisonResult) -> dict[str, Any]:
    """What made a comparison, from its trials' ``trial.json``: ``versions`` (name ->
    sorted distinct values), ``git_commits``, ``devices``, ``sources`` (source hash + the
    plugins it recorded), ``threads``, ``params`` (budget settings of
    the first trial), ``overrides``, ``feature_weights`` (the option), ``data``, and
    ``n_trials`` (how many trial.json were found)."""
    versions: dict[str, set[str]] = {}
    commits, devices, datas, sources, threads = set(), set(), set(), set(), set()
    params, overrides, fw_option, found = None, {}, "auto", 0
    for dirs in result.trials.values():
        for d in dirs:
            f = Path(d) / "trial.json"
            if not f.exists():
                continue
            info = read_json_object(f, "trial file")
            found += 1
            versions_of = info.get("versions")
            for k, v in (versions_of.items() if isinstance(versions_of, dict) else ()):
                versions.setdefault(k, set()).add(str(v))
            if info.get("git_commit"):
                commits.add(str(info["git_commit"]))
            if info.get("device"):
                devices.add(str(info["device"]))
            if info.get("threads") is not None:
                threads.add(str(info["threads"]))
            if isinstance(info.get("code"), dict):
                sources.add(_source_of(info["code"]))
            if info.get("data"):
                datas.add(str(info["data"]))
            cfg = info.get("config") if isinstance(info.get("config"), dict) else {}
            if params is None:
                params = cfg.get("params") if isinstance(cfg.get("params"), dict) else None
                overrides = cfg.get("overrides") if isinstance(cfg.get("overrides"), dict) else {}
                fw_option = str(cfg.get("feature_weights") or "auto")
    return {"versions": {k: sorted(v) for k, v in versions.items()}, "git_commits": sorted(commits),
            "devices": sorted(devices), "sources": sorted(sources), "threads": sorted(threads, key=_numeric_first), "data": sorted(datas), "params": params or {}, "overrides": overrides,
            "feature_weights": fw_option, "n_trials": found}


def _source_of(code: dict[str, Any]) -> str:
    """A trial's code as the report shows it: 12 hex of the source hash, and 8 of its
    plugins' hash when it used plugins (as :func:`cvloss.run.provenance.code_key` does)."""
    text = str(code.get("source_sha256") or "unrecorded")[:12]
    return text + (f"+plugins {str(code['plugins_sha256'])[:8]}" if code.get("plugins_sha256") else "")


def _numeric_first(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def provenance_rows(results: list[ReportedComparison], markdown: bool = True) -> list[dict[str, str]]:
    """One row per comparison for the report's provenance table: folder, commit, source,
    torch, threads, device and whether it pooled mixed code. Comparisons of different code
    or thread counts sit side by side in one report; this table says which is which.
    ``markdown``: values escaped as Markdown (names as code), else plain text."""
    rows = []
    code, text = (md_code, md_escape) if markdown else (str, str)
    for r in results:
        p = r.prov
        rows.append({
            "comparison": code(r.rel),
            "commit": ", ".join(code(c[:10]) for c in p["git_commits"]) or "unknown",
            "source": ", ".join(code(s) for s in p.get("sources") or []) or "unrecorded",
            "torch": text(" / ".join(p["versions"].get("torch", []))) or "unknown",
            "threads": text(", ".join(p.get("threads") or [])) or "unrecorded",
            "device": text("; ".join(p["devices"])) or "unknown",
            "mixed": "⚠ MIXED CODE" if is_mixed(r) else "no",
        })
    return rows


@reads_result
def reproduce_command(result: ComparisonResult, prov: dict[str, Any], out: str | None = None) -> str:
    """The ``cvloss compare`` command line that remakes this comparison (it resumes and
    skips finished trials, so running it on the same folder only redraws)."""
    budget = result.budget.split("+")[0]
    overrides = prov.get("overrides") or {}
    if overrides:
        sets = [f"{k}={v}" for k, v in sorted(overrides.items())]
    else:  # no trial.json: recover the overrides from the budget label (not the tuned tag)
        sets = [s for s in result.budget.split("+")[1:] if not s.startswith("tuned-")]
    cmd = ["cvloss", "compare", "--task", result.task, "--dataset", result.dataset,
           "--losses", ",".join(result.losses), "--budget", budget,
           "--seeds", ",".join(map(str, result.seeds))]
    for s in sets:
        cmd += ["--set", s]
    tuning = result.tuning
    if isinstance(tuning, dict):  # a tuned comparison: its search, which retrains nothing that is done
        for dim in tuning.get("space") or []:
            cmd += ["--tune", str(dim)]
        cmd += ["--tune-trials", str(tuning.get("trials")), "--tune-sampler", str(tuning.get("sampler")),
                "--tune-seed", str(tuning.get("sampler_seed")),
                # how each candidate was scored; a record without it: one seed each (the first protocol)
                "--tune-seeds", str(tuning.get("tune_seeds", 1))]
        if tuning.get("repeats", 1) != 1:
            cmd += ["--tune-repeats", str(tuning.get("repeats"))]
        halving = tuning.get("halving")
        if isinstance(halving, dict):
            cmd += ["--tune-halving", str(halving.get("eta")), "--tune-min-epochs", str(halving.get("min_epochs"))]
    if prov.get("feature_weights", "auto") != "auto":
        cmd += ["--feature-weights", str(prov["feature_weights"])]
    if out and out != "results":
        cmd += ["--out", out]
    return " ".join(shlex.quote(c) for c in cmd)


def load_comparisons(root: Path, replot: bool = True) -> list[ReportedComparison]:
    """Every comparison under ``root`` with resolved trial paths, provenance, reproduce
    command and anchors; ordered by task, dataset, budget, folder. With ``replot`` the
    standard plots are redrawn (current style) when the trials are there."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder at {root}; run `cvloss compare ...` first")
    found = find_comparisons(root)
    if not found:
        raise FileNotFoundError(f"no comparisons under {root}; run `cvloss compare ...` first")
    # untrusted: a wrong shape is one line naming the file
    loaded = [(path, ReportedComparison.from_json(path)) for path in found]
    looks = report_key(r for _, r in loaded)  # one look per loss over the whole report, in every plot
    results, anchors = [], set()
    for path, r in loaded:
        r.loss_key = looks
        cmp_dir = path.parent
        _resolve_trials(r, cmp_dir)
        if r.degenerate is None:  # written before trial notes: read them from its trials now
            for key, notes in _trial_notes(r).items():
                setattr(r, key, notes)
        if replot and any(Path(d).is_dir() for dirs in r.trials.values() for d in dirs):
            r.plots.update(comparison_plots(r, cmp_dir))
        # only plain file names of files inside the comparison folder are shown or embedded
        r.plots = {k: v for k, v in r.plots.items() if file_inside(cmp_dir, v)}
        r.path = path
        r.rel = os.path.relpath(cmp_dir, root).replace(os.sep, "/")
        r.prov = provenance(r)
        r.command = reproduce_command(r, r.prov, str(root))
        anchor = base = _slug(f"{r.task}-{r.dataset}-{r.budget}-{cmp_dir.name}")
        k = 2
        while anchor in anchors:
            anchor, k = f"{base}-{k}", k + 1
        anchors.add(anchor)
        r.anchor = anchor
        results.append(r)
    results.sort(key=lambda r: (r.task, r.dataset, r.budget, r.rel))
    return results


def _trial_notes(result: ComparisonResult) -> dict[str, Any]:
    """The trial notes (:func:`cvloss.report.trial_notes.trial_notes`) of a comparison
    written before compare.json carried them, read from its (resolved) trial folders at
    report time: degenerate reasons the rule's numbers part finds in stored test metrics
    (a note: statuses stay as written), identical replicates."""
    try:
        from cvloss.tasks import get_task_class

        task_cls = get_task_class(result.task)
    except Exception:  # a comparison of a task this cvloss does not know: no rule to apply
        task_cls = None
    return trial_notes(task_cls, result.trials, result.seeds)


def colour_key_markdown(key: dict[str, dict[str, Any]]) -> str:
    """The report's colour key (:func:`cvloss.report.style.report_key`) as a Markdown
    section: per loss, in words, the colour (and its hex), marker, line style and hatch the
    plots draw it with (Markdown cannot show a swatch; ``report.html`` does)."""
    rows = [{"loss": md_code(spec), "colour": f"{look['color_name']} `{look['color']}`",
             "marker (final metrics)": MARKER_NAMES[look["pattern"]],
             "line (curves)": LINESTYLE_NAMES[look["pattern"]], "hatch": HATCH_NAMES[look["pattern"]]}
            for spec, look in sorted(key.items())]
    return ('<a id="colour-key"></a>\n\n## Colour key\n\nOne look per loss, the same in every plot of this report; '
            "no two losses share colour and pattern. References (untrained network, bicubic) are grey dashed "
            "lines.\n\n" + markdown_table(rows))


def group_by_task_dataset(results: list[ReportedComparison]) -> list[tuple[str, str, list[ReportedComparison]]]:
    groups: dict[tuple[str, str], list[ReportedComparison]] = {}
    for r in results:
        groups.setdefault((r.task, r.dataset), []).append(r)
    return [(t, d, rs) for (t, d), rs in groups.items()]


def comparison_title(r: ComparisonResult) -> str:
    return f"{r.budget}: {', '.join(r.losses)}"


def _budget_line(r: ReportedComparison) -> str:
    params = r.prov["params"]
    if not params:
        return ""
    return "Budget settings: " + ", ".join(f"{k}={v}" for k, v in params.items()) + "."


def markdown_report(results: list[ReportedComparison], root: Path) -> str:
    """``REPORT.md``. Every value from a results file or a folder name goes through
    :func:`cvloss.report.text.md_escape` (text) or ``md_code`` (names, commands): no tag,
    link or table break of its own reaches the page. Anchors are slugs (``[a-z0-9-]``),
    image links percent-encoded."""
    parts = ["# cvloss report\n",
             f"{len(results)} comparison(s) under {md_code(root)}. Also as one self-contained page: "
             "[report.html](report.html).\n", "## Contents\n"]
    for task, dataset, rs in group_by_task_dataset(results):
        parts.append(f"- **{md_escape(task)} · {md_escape(dataset)}**")
        for r in rs:
            parts.append(f"  - [{md_escape(comparison_title(r))}](#{r.anchor})")
    parts.append("- [Colour key](#colour-key)\n- [Provenance](#provenance)\n")
    for task, dataset, rs in group_by_task_dataset(results):
        parts.append(f"## {md_escape(task)} · {md_escape(dataset)}\n")
        for r in rs:
            parts.append(f'<a id="{r.anchor}"></a>\n')
            body = comparison_markdown(r, heading_level=3, heading=comparison_title(r))
            if r.prov["data"]:
                body += "\nData: " + md_escape("; ".join(r.prov["data"])) + "\n"
            if _budget_line(r):
                body += "\n" + md_escape(_budget_line(r)) + "\n"
            parts.append(body)
            for key, name in r.plots.items():
                link = quote(r.rel + "/" + name, safe="/+=-_.,")
                parts.append(f"![{md_escape(plot_title(key, r.split))}]({link})\n")
            parts.append(f"Reproduce: {md_code(r.command)}\n")
    parts.append(colour_key_markdown(report_key(results)))
    parts.append('<a id="provenance"></a>\n\n## Provenance\n')
    parts.append(f"Report made with {md_code(f'cvloss report {root}')} from the files below; each comparison is remade "
                 "(finished trials are skipped) by its command. Comparisons made by different code, torch "
                 "versions or thread counts sit side by side; the table says which made each.\n")
    parts.append(markdown_table(provenance_rows(results)))
    for r in results:
        p = r.prov
        parts.append(f"### {md_escape(' · '.join([r.task, r.dataset, comparison_title(r)]))}\n")
        parts.append(f"- folder: {md_code(r.rel)}")
        parts.append(f"- command: {md_code(r.command)}")
        parts.append(f"- git commit: {', '.join(md_code(c) for c in p['git_commits']) or 'unknown'}")
        parts.append(f"- device: {md_escape('; '.join(p['devices'])) or 'unknown'}")
        parts.append("- versions: " + (md_escape(", ".join(f"{k} {' / '.join(v)}" for k, v in p["versions"].items()))
                                       or "unknown"))
        parts.append(f"- trials with a trial.json: {p['n_trials']} of "
                     f"{sum(len(d) for d in r.trials.values())}\n")
    return "\n".join(parts)
