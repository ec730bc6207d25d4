"""Paper-ready outputs of a comparison: compare.tex / tables.tex (booktabs fragments that
compile, with escaped loss names and the table's marks) and runs.csv / compare.csv (tidy:
they load with pandas and pivot without cleaning)."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import pandas as pd
import pytest

from cvloss.report.latex import comparison_latex, latex_escape
from cvloss.report.html import write_reports
from cvloss.run.compare import summarize_comparison
from cvloss.run.config import TrialConfig

LOSSES = ["ce", "0.5*dice+ce_x", "focal(gamma=1)"]
MIOU = {"ce": [0.50, 0.52, 0.51], "0.5*dice+ce_x": [0.60, 0.63, 0.61], "focal(gamma=1)": [0.51, 0.50, 0.55]}


@pytest.fixture
def comparison(tmp_path):
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", out=str(tmp_path / "res"))
    for loss, vals in MIOU.items():
        for seed, v in enumerate(vals):
            d = replace(base, loss=loss, seed=seed).trial_dir
            d.mkdir(parents=True)
            (d / "summary.json").write_text(json.dumps({"schema": 2, "status": "done", "metrics": {"miou": v, "dice": v / 2},
                                                        "train_time_s": 1.5 + seed, "epochs": 2}))
            (d / "trial.json").write_text(json.dumps({"git_commit": "abc123"}))
    return tmp_path / "res", summarize_comparison(base, LOSSES, [0, 1, 2])


def test_plot_formats_setting_is_checked(monkeypatch):
    from cvloss.errors import UsageError
    from cvloss.report.figures import vector_formats

    monkeypatch.setenv("CVLOSS_PLOT_FORMATS", "png,svg")
    assert vector_formats() == (".svg",)
    monkeypatch.setenv("CVLOSS_PLOT_FORMATS", "pdf")  # the report embeds the PNG: it is never left out
    with pytest.raises(UsageError, match="give png plus any of pdf, svg"):
        vector_formats()


def test_latex_escapes_every_special_character():
    assert latex_escape("a_b^c") == r"a\_b\textasciicircum{}c"
    assert latex_escape("l1+0.01*perceptual") == r"l1\texttt{+}0.01\textasteriskcentered{}perceptual"
    assert latex_escape(r"50% & $x$ #1 {y} ~\ ") == r"50\% \& \$x\$ \#1 \{y\} \textasciitilde{}\textbackslash{} "


def test_compare_tex_is_a_booktabs_float_with_the_tables_marks(comparison):
    root, result = comparison
    tex = (root / "seg" / "synth-pets" / "smoke" / "compare--ce--0.5xdice+ce_x--focal-gamma=1" / "compare.tex").read_text()
    assert tex == comparison_latex(result)
    for piece in (r"\begin{table}", r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\label{tab:cvloss-seg"):
        assert piece in tex
    assert r"\texttt{0.5\textasteriskcentered{}dice\texttt{+}ce\_x}" in tex  # the loss name, escaped
    assert result["best"]["miou"] == "0.5*dice+ce_x"
    dice_line = next(line for line in tex.splitlines() if line.startswith(r"\texttt{0.5"))
    assert r"\textbf{0.6133" in dice_line  # best in bold, as in the Markdown table


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="no TeX engine (Debian: apt-get install texlive-latex-base texlive-latex-recommended)")
def test_the_fragments_compile_in_a_standalone_document(comparison, tmp_path):
    root, _ = comparison
    write_reports(root, html=False, replot=False)
    doc = tmp_path / "paper.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
                   f"\\input{{{(root / 'tables.tex').as_posix()}}}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


def test_runs_and_compare_csv_pivot_without_cleaning(comparison):
    root, _ = comparison
    write_reports(root, html=False, replot=False)
    cmp_dir = root / "seg" / "synth-pets" / "smoke" / "compare--ce--0.5xdice+ce_x--focal-gamma=1"
    runs = pd.read_csv(cmp_dir / "runs.csv")
    assert list(runs.columns[:7]) == ["task", "dataset", "budget", "split", "loss", "seed", "status"]
    assert len(runs) == 9 and set(runs["commit"]) == {"abc123"} and runs["train_time_s"].dtype.kind == "f"
    wide = runs.pivot_table(index="loss", columns="seed", values="miou")
    assert wide.loc["0.5*dice+ce_x", 1] == pytest.approx(0.63)
    everything = pd.read_csv(root / "runs.csv")
    assert len(everything) == 9 and everything["comparison"].nunique() == 1
    table = pd.read_csv(cmp_dir / "compare.csv")
    assert {"task", "dataset", "budget", "split"} <= set(table.columns) and set(table["split"]) == {"test"}
    means = table.pivot_table(index="loss", columns="metric", values="mean")
    assert means.loc["ce", "miou"] == pytest.approx(0.51)
    assert table["p_adj"].dtype.kind == "f"


def test_every_plot_in_three_formats_and_byte_identical_when_redrawn(comparison, tmp_path, monkeypatch):
    from cvloss.report.plots import comparison_plots

    monkeypatch.delenv("CVLOSS_PLOT_FORMATS", raising=False)  # the default: PNG, PDF and SVG
    _, result = comparison
    made = {}
    for name in ("a", "b"):
        made[name] = comparison_plots(result, tmp_path / name)
    assert {"bars", "forest"} <= set(made["a"]) and made["a"] == made["b"]
    for png in made["a"].values():
        for ext in (".png", ".pdf", ".svg"):
            first = (tmp_path / "a" / png).with_suffix(ext).read_bytes()
            assert first == (tmp_path / "b" / png).with_suffix(ext).read_bytes(), f"{png} {ext} differs when redrawn"
    svg = (tmp_path / "a" / "forest.svg").read_text()
    assert "<dc:date>" not in svg and b"CreationDate" not in (tmp_path / "a" / "forest.pdf").read_bytes()


def test_time_per_trial_cell_never_goes_below_zero():
    from cvloss.report.tables import time_text

    result = {"compute": {"a": {"train_time_s": 1.0, "train_time_ci95": 3.0, "n": 2},
                          "b": {"train_time_s": 10.0, "train_time_ci95": 2.0, "n": 3},
                          "c": {"train_time_s": float("nan"), "train_time_ci95": float("nan"), "n": 0}}}
    assert time_text(result, "a") == "1 [0, 4]"  # mean 1 ± 3 shown as its bounded interval
    assert time_text(result, "b") == "10 ± 2"
    assert time_text(result, "c") == "n/a" and time_text({}, "a") == ""
