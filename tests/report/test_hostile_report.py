"""A results folder is untrusted: every string a compare.json or a trial file holds reaches
report.html, REPORT.md, tables.tex and the plots as text, never as markup, a command or a
mathtext expression; and the report reads only its own folder's regular files (no
symbolic or hard link to a file elsewhere), and cleans up the temporary plots a killed
writer left behind."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cvloss.io import loss_slug
from cvloss.report.html import html_report, write_reports
from cvloss.report.markdown import load_comparisons
from cvloss.report.plots import remove_orphan_plots
from cvloss.report.tables import comparison_markdown
from cvloss.report.text import md_code, md_escape, mpl_text

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MATH = "$x$"
TEX = r"\input{/etc/passwd}"
LINK = "[a](javascript:alert(1))"
EVIL = SCRIPT + IMG + MATH + TEX + LINK  # every attack in one string
# Three losses, each a different attack, so plots and tables hold each on its own; the
# last is mathtext matplotlib cannot parse (it stopped every plot).
LOSSES = ["ce" + SCRIPT, MATH + IMG, f"${TEX}$" + LINK]
METRICS = ["miou", "m" + EVIL]
SEEDS = [0, 1]
PNG = b"\x89PNG\r\n\x1a\n"


def _row(loss: str, metric: str, mean: float, **extra) -> dict:
    row = {"loss": loss, "metric": metric, "mean": mean, "ci95": 0.02, "n": 2, "diff_vs_baseline": 0.01,
           "diff_ci95": 0.01, "p_value": 0.01, "p_adj": 0.02, "n_pairs": 2, "correction": "holm", "dz": 1.0,
           "p_improve": 1.0}
    row.update(extra)
    return row


def _tuning() -> dict:
    rec = {"candidates": [{EVIL: 0.001}, {EVIL: 0.01}], "val_scores": [0.5, 0.6], "status": [EVIL, "done"],
           "chosen_index": 1, "chosen": {EVIL: 0.01}, "trained_spec": EVIL, "cost_s": 1.5, "flags": [EVIL]}
    return {"space": [f"{EVIL}=log(0.001,0.01)"], "trials": 2, "sampler_seed": 7, "sampler": EVIL, "metric": EVIL,
            "hash": EVIL, "tuning_seeds": EVIL, "higher_is_better": True, "losses": {l: dict(rec) for l in LOSSES}}


def _trial(d: Path, loss: str, seed: int, status: str) -> None:
    d.mkdir(parents=True)
    (d / "trial.json").write_text(json.dumps({
        "config": {"task": "seg", "loss": loss, "dataset": EVIL, "seed": seed, "feature_weights": EVIL,
                   "overrides": {"epochs": EVIL}, "params": {"epochs": 2, EVIL: EVIL}},
        "versions": {"torch": EVIL, EVIL: EVIL}, "git_commit": EVIL, "device": EVIL, "threads": EVIL,
        "data": EVIL, "code": {"source_sha256": EVIL, "plugins_sha256": EVIL}}))
    metrics = {"miou": 0.5 + 0.1 * seed, METRICS[1]: 0.3} if status == "done" else {}
    (d / "summary.json").write_text(json.dumps({"schema": 2, "status": status, "metrics": metrics}))
    (d / "metrics.csv").write_text("epoch,train_loss,miou\n1,1.0,0.5\n2,0.8,0.6\n")
    img = np.random.default_rng(seed).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    np.savez(d / "samples.npz", input=img, truth=img, pred=img)


def hostile_results(root: Path) -> Path:
    """A comparison (seg, 3 losses, 2 seeds) whose every string field holds the attacks;
    returns its folder."""
    group = root / "seg" / "toy" / "quick"
    cmp_dir = group / "compare--hostile"
    cmp_dir.mkdir(parents=True)
    status = {l: ["done", "done"] for l in LOSSES}
    status[LOSSES[2]] = ["done", "diverged"]  # a failure: the intent-to-treat section is drawn too
    for loss in LOSSES:
        for seed in SEEDS:
            _trial(group / loss_slug(loss) / f"seed{seed}", loss, seed, status[loss][seed])
    ref = "untrained" + EVIL
    rows = [_row(l, m, 0.5 + 0.05 * i) for i, l in enumerate(LOSSES) for m in METRICS]
    rows += [_row(l, m, 0.4, analysis="itt") for l in LOSSES for m in METRICS]
    rows += [_row(ref, m, 0.1, reference=True) for m in METRICS]
    result = {
        "task": "seg", "dataset": EVIL, "budget": "quick+" + EVIL, "losses": LOSSES, "seeds": SEEDS,
        "baseline": LOSSES[0], "references": [ref], "metrics": METRICS, "primary_metric": "miou",
        "directions": {"miou": True, METRICS[1]: False}, "rows": rows, "feature_weights": [EVIL], "split": EVIL,
        "status": status, "plots": {EVIL: "extra.png"}, "best": {"miou": LOSSES[1]},
        "itt": {"best": {"miou": None}, "mde": {"miou": 0.2}}, "mde": {"miou": 0.1, METRICS[1]: 0.2},
        "mde_level": 0.025, "target_effect": 0.1, "seeds_needed": {"miou": 5}, "success": {l: 1.0 for l in LOSSES},
        "compute": {l: {"train_time_s": 2.0, "train_time_ci95": 0.5, "optimizer": EVIL, "peak_mem_how": EVIL}
                    for l in LOSSES},
        "provenance": {"combinations": [{"source": EVIL, "torch": EVIL, "threads": EVIL, "device": EVIL,
                                         "trials": 6}], "commits": [EVIL], "mixed": True, "dirty": False},
        "folds": {LOSSES[0]: [{"seed": 0, "mean": 0.5, "se": 0.01, "protocol": EVIL}]},
        "tuning": _tuning(),
    }
    (cmp_dir / "compare.json").write_text(json.dumps(result))
    (cmp_dir / "extra.png").write_bytes(PNG + b"EXTRA")
    (cmp_dir / "runs.csv").write_text(f"loss,seed,miou\n\"{EVIL}\",0,0.5\n")
    return cmp_dir


class _Page(HTMLParser):
    """Every element, attribute and text run of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _assert_inert(page: _Page) -> None:
    """No script element, no event-handler attribute, no ``javascript:`` URL."""
    assert "script" not in page.tags
    assert not [a for a in page.attrs if a[1].lower().startswith("on")]
    assert not [a for a in page.attrs if re.sub(r"\s", "", a[2]).lower().startswith("javascript:")]


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "results"
    cmp_dir = hostile_results(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CVLOSS_PLOT_FORMATS", "png")  # the PNGs are what the report embeds
        paths = write_reports(root)
    return root, cmp_dir, paths


def test_html_shows_every_hostile_value_as_text(hostile_report):
    _, _, paths = hostile_report
    html = paths["html"].read_text()
    page = _parsed(html)
    _assert_inert(page)
    assert page.tags.count("img") == 6  # bars, forest, curves, samples, tuning + the folder's extra.png
    text = "".join(page.text)
    for attack in (SCRIPT, IMG, MATH, TEX, LINK):
        assert attack in text  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_escapes_tuning_fields_whatever_their_type(hostile_report):
    """The reported injection: sampler_seed and trials went into the page unescaped. The
    results-file check wants numbers there; the page escapes them all the same."""
    root, _, _ = hostile_report
    results = load_comparisons(root, replot=False)
    results[0].tuning.update(sampler_seed=SCRIPT, trials=IMG)
    page = _parsed(html_report(results, root))
    _assert_inert(page)
    assert f"sampler seed {SCRIPT})" in "".join(page.text) and f"{IMG} trials per loss" in "".join(page.text)


def _rendered_markdown(md: str) -> _Page:
    markdown_it = pytest.importorskip("markdown_it")  # rich's Markdown parser: CommonMark with tables
    return _parsed(markdown_it.MarkdownIt("commonmark").enable("table").render(md))


def test_markdown_has_no_tag_or_link_of_the_data(hostile_report):
    root, _, paths = hostile_report
    md = paths["md"].read_text()
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert not re.search(r"(?<!\\)\]\(\s*javascript:", md)  # no link syntax that is not escaped
    page = _rendered_markdown(md)
    _assert_inert(page)
    images = [v for tag, k, v in page.attrs if tag == "img" and k == "src"]
    assert len(images) == 6 and all((root / v).is_file() for v in images)  # only the plots
    links = [v for tag, k, v in page.attrs if tag == "a" and k == "href"]
    assert all(v.startswith("#") or v == "report.html" for v in links), links
    text = "".join(page.text)
    for attack in (SCRIPT, IMG, MATH, TEX, LINK):
        assert attack in text  # rendered as itself
    # compare.md (written by `cvloss compare`) is made by the same function
    _assert_inert(_rendered_markdown(comparison_markdown(load_comparisons(root, replot=False)[0])))


def test_latex_holds_no_command_from_the_data(hostile_report, tmp_path):
    _, _, paths = hostile_report
    tex = paths["tex"].read_text()
    assert r"\input" not in tex and r"\$\textbackslash{}input\{/etc/passwd\}\$" in tex
    assert "<script>" not in tex and "$x$" not in tex  # \textless{}, \$x\$
    if shutil.which("pdflatex") is None:
        pytest.skip("no TeX engine (Debian: apt-get install texlive-latex-base texlive-latex-recommended)")
    doc = tmp_path / "paper.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
                   f"\\input{{{paths['tex'].as_posix()}}}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_plots_draw_hostile_names_literally(hostile_report):
    """A ``$x$`` loss name once stopped the plots (matplotlib's mathtext); they are drawn,
    the name shown as written."""
    _, cmp_dir, _ = hostile_report
    for name in ("bars", "forest", "curves", "samples", "tuning"):
        assert (cmp_dir / f"{name}.png").read_bytes().startswith(PNG), name
    import matplotlib.pyplot as plt

    fig = plt.figure()
    text = fig.text(0, 0, mpl_text(LOSSES[2]))
    fig.canvas.draw()  # a mathtext parse of "$\input{...}$" would happen (and fail) here
    assert text._preprocess_math(text.get_text()) == (LOSSES[2], False)  # drawn as written
    plt.close(fig)


@pytest.mark.parametrize("text, markdown", [
    ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
    ("[a](javascript:b)", r"\[a\](javascript:b)"),
    ("![i](x.png)", r"!\[i\](x.png)"),
    ("*em* _u_ a_b `c` ~~s~~ #h", r"\*em\* \_u\_ a_b \`c\` \~\~s\~\~ \#h"),
    ("line\nbreak\\", r"line break\\"),
])
def test_markdown_escape(text, markdown):
    assert md_escape(text) == markdown


def test_markdown_code_span_or_escaped_text():
    assert md_code("ce+0.1*topo(layers=[relu2_2])") == "`ce+0.1*topo(layers=[relu2_2])`"  # verbatim in code
    assert md_code("a`b") == r"a\`b" and md_code("<b>") == "&lt;b&gt;"  # cannot be a code span: text
    assert md_code("[a](javascript:b)") == r"\[a\](javascript:b)"


# -- the report reads only inside its folder ------------------------------------------


def _small_comparison(root: Path, make_comparison) -> Path:
    return Path(make_comparison(root, losses=("ce", "dice"))["dir"])


def test_a_runs_csv_linked_to_a_file_elsewhere_is_not_merged(tmp_path, make_comparison):
    root = tmp_path / "results"
    cmp_dir = _small_comparison(root, make_comparison)
    outside = tmp_path / "outside.csv"
    outside.write_text("loss,secret\nce,OUTSIDE-SECRET\n")
    (cmp_dir / "runs.csv").symlink_to(outside)
    other = _small_comparison(tmp_path / "other", make_comparison)  # a hard link from another folder
    (other / "runs.csv").write_text("loss,secret\nce,HARD-LINKED\n")
    second = Path(make_comparison(root, losses=("ce", "topo"), dataset="toy2")["dir"])
    os.link(other / "runs.csv", second / "runs.csv")
    third = Path(make_comparison(root, losses=("ce", "wce"), dataset="toy3")["dir"])
    (third / "runs.csv").write_text("loss,seed\nce,0\n")  # its own: merged
    text = write_reports(root, html=False, replot=False)["runs"].read_text()
    assert "OUTSIDE-SECRET" not in text and "HARD-LINKED" not in text
    assert text.splitlines() == ["comparison,loss,seed", f"{third.relative_to(root).as_posix()},ce,0"]


def test_a_linked_plot_is_not_embedded(tmp_path, make_comparison):
    root = tmp_path / "results"
    cmp_dir = _small_comparison(root, make_comparison)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "hard.png").write_bytes(PNG + b"HARD-LINKED-BYTES")
    (outside / "soft.png").write_bytes(PNG + b"SYMLINKED-BYTES")
    os.link(outside / "hard.png", cmp_dir / "hard.png")
    (cmp_dir / "soft.png").symlink_to(outside / "soft.png")
    (cmp_dir / "own.png").write_bytes(PNG + b"OWN-BYTES")
    data = json.loads((cmp_dir / "compare.json").read_text())
    data["plots"] = {"hard": "hard.png", "soft": "soft.png", "own": "own.png"}
    (cmp_dir / "compare.json").write_text(json.dumps(data))
    paths = write_reports(root, replot=False)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    srcs = [v for tag, k, v in _parsed(html).attrs if tag == "img" and k == "src"]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in srcs] == [PNG + b"OWN-BYTES"]
    assert "hard.png" not in md and "soft.png" not in md and "/own.png)" in md


def test_orphan_temporary_plots_are_removed_when_plots_are_redrawn(tmp_path, make_comparison, monkeypatch):
    monkeypatch.setenv("CVLOSS_PLOT_FORMATS", "png")
    root = tmp_path / "results"
    cmp_dir = _small_comparison(root, make_comparison)
    old = [cmp_dir / ".bars.pdf.k2x_9q1z.tmp.pdf", cmp_dir / ".curves.png.a1b2c3d4.tmp.png"]
    fresh = cmp_dir / ".forest.svg.zz11yy22.tmp.svg"  # a concurrent writer's, still being written
    keep = [cmp_dir / ".notes.txt.abcdefgh.tmp.txt", cmp_dir / ".bars.pdf.k2x_9q1z.tmp.png"]  # not plot temps
    for path in old + [fresh] + keep:
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    for path in old + keep:
        os.utime(path, (hour_ago, hour_ago))
    write_reports(root, html=False)  # redraws the plots
    assert [p.exists() for p in old] == [False, False]
    assert fresh.exists() and all(p.exists() for p in keep)
    assert (cmp_dir / "bars.png").exists()
    os.utime(fresh, (hour_ago, hour_ago))
    assert remove_orphan_plots(cmp_dir) == [fresh]
