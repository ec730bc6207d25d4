"""REPORT.md and report.html from hand-made comparisons: self-contained HTML, working
contents links, provenance, and one look per loss across comparisons and plots."""
import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.report import plots
from cvloss.report.html import write_reports
from cvloss.report.style import loss_style

PNG = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.hrefs, self.imgs = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k, v in a.items():
            assert not (k in ("src", "href", "srcset", "data") and v and re.match(r"(https?:)?//", v)), (tag, k, v)


@pytest.fixture(scope="module")
def report(tmp_path_factory, make_comparison):
    root = tmp_path_factory.mktemp("rep") / "results"
    make_comparison(root, losses=("ce", "dice", "topo", "wce"))
    make_comparison(root, losses=("topo", "ce"), dataset="toy2")  # ce in another comparison and position
    paths = write_reports(root)
    return root, paths


def test_html_is_one_self_contained_file(report):
    root, paths = report
    text = paths["html"].read_text()
    parser = _Collect()
    parser.feed(text)
    parser.close()
    assert "http://" not in text and "https://" not in text and 'src="//' not in text
    assert "link" not in parser.tags and "script" not in parser.tags and "iframe" not in parser.tags
    # 3 standard plots per comparison, every one embedded as a decodable PNG
    assert len(parser.imgs) == 8  # bars, forest, curves, samples per comparison of two
    for src in parser.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    # contents links all land somewhere on the page
    anchors = [h[1:] for h in parser.hrefs if h.startswith("#")]
    assert anchors and set(anchors) <= parser.ids and len(parser.hrefs) == len(anchors)
    for needle in ("Contents", "Provenance", "abc123def456", "cpu:test (2 cores)", "torch 2.14.1",
                   "cvloss compare --task seg --dataset toy --losses ce,dice,topo,wce --budget quick --seeds 0,1,2 "
                   "--set epochs=3", "1/3 (1 diverged) (1 collapsed)", "feature-network weights</b> imagenet",
                   "Budget settings: epochs=3, lr=0.01"):
        assert needle in text, needle
    assert text.index("Contents") < text.index("<section") < text.index('id="provenance"')


def test_markdown_links_contents_and_provenance(report):
    root, paths = report
    md = paths["md"].read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 8 and all((root / p).is_file() and not p.startswith("/") for p in images)
    targets = re.findall(r"\]\(#([^)]+)\)", md)
    ids = set(re.findall(r'<a id="([^"]+)"></a>', md))
    assert len(targets) == 4 and set(targets) <= ids  # two comparisons, the colour key, provenance
    assert md.index("## Contents") < md.index("## seg · toy") < md.index("## Colour key") < md.index("## Provenance")
    assert "Reproduce: `cvloss compare --task seg --dataset toy2 --losses topo,ce" in md
    assert "git commit: `abc123def456`" in md and "device: cpu:test (2 cores)" in md


def test_a_loss_has_one_look_in_every_comparison_and_plot(tmp_path, monkeypatch, make_comparison):
    """Draw two comparisons listing ce at different positions; every bar and curve of a
    loss in every figure has that loss's colour (and losses of one figure differ)."""
    seen: dict[str, set] = {}
    saved = []

    def capture(fig, path):
        saved.append(path.name)
        for ax in fig.axes:
            for artist in list(ax.patches) + list(ax.lines):
                gid = artist.get_gid()
                if gid:
                    seen.setdefault(gid, set()).add(tuple(round(c, 3) for c in (
                        artist.get_facecolor() if hasattr(artist, "get_hatch") else
                        __import__("matplotlib").colors.to_rgba(artist.get_color()))))
        plots.plt.close(fig)

    monkeypatch.setattr(plots, "save_figure", capture)
    a = make_comparison(tmp_path / "a", losses=("ce", "dice", "topo", "wce"))
    b = make_comparison(tmp_path / "b", losses=("topo", "ce"))
    for r in (a, b):
        plots.bar_plot(r, tmp_path / "bars.png")
        plots.curves_plot(r, tmp_path / "curves.png")
    assert saved == ["bars.png", "curves.png"] * 2
    assert set(seen) == {"ce", "dice", "topo", "wce"}
    for loss, colours in seen.items():
        assert len(colours) == 1, (loss, colours)
    assert len({next(iter(c)) for c in seen.values()}) == 4  # four different colours


def test_each_tasks_losses_differ_in_colour_and_pattern():
    """Grey print: the registered losses of one task never share colour, nor pattern."""
    from cvloss.losses import list_losses

    for task in ("seg", "sr", "style", "embed", "translate", "gan"):
        names = [i.name for i in list_losses(task)]
        looks = [loss_style(n) for n in names]
        assert len({l["color"] for l in looks}) == len(names), task
        assert len({(l["hatch"], l["color"]) for l in looks}) == len(names), task
    # variants keep the family's hue but get their own look; deterministic across calls
    a, b = loss_style("triplet(mining=all)"), loss_style("triplet(mining=semi_hard)")
    assert a != b and a == loss_style("triplet(mining=all)") and a["color"] != loss_style("triplet")["color"]


def test_cli_report_and_missing_folder(report, tmp_path):
    root, _ = report
    result = CliRunner().invoke(app, ["report", str(root), "--no-replot"])
    assert result.exit_code == 0, result.output
    assert f"report: {root / 'REPORT.md'}" in result.output and f"report: {root / 'report.html'}" in result.output
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.output.strip().startswith("error: no results folder")


def test_the_final_metrics_plot_names_the_split_of_its_numbers(tmp_path, monkeypatch, make_comparison):
    """The dot plot draws each trial's summary ``metrics`` (the test split under the
    protocol): its title and its captions in REPORT.md and report.html name that split,
    and a comparison without a recorded split names none (it once said "validation" for
    every comparison)."""
    import json

    titles = []

    def capture(fig, path):
        titles.append(fig._suptitle.get_text())
        plots.plt.close(fig)

    root = tmp_path / "results"
    tested = make_comparison(root, losses=("ce", "dice"))
    cmp_json = Path(tested["dir"]) / "compare.json"
    cmp_json.write_text(json.dumps({**json.loads(cmp_json.read_text()), "split": "test"}))
    make_comparison(root, losses=("ce", "topo"), dataset="old")  # predates the protocol: no split
    paths = write_reports(root)
    md, html = paths["md"].read_text(), paths["html"].read_text()
    assert "validation metric" not in md and "validation metric" not in html
    assert md.count("![Final test metrics:") == 1 and md.count("![Final metrics:") == 1
    assert html.count('alt="Final test metrics:') == 1 and html.count('alt="Final metrics:') == 1
    assert "on the split its table names" in html

    monkeypatch.setattr(plots, "save_figure", capture)
    plots.bar_plot({**tested, "split": "test"}, tmp_path / "bars.png")
    plots.bar_plot(make_comparison(tmp_path / "b", losses=("ce", "topo")), tmp_path / "bars.png")
    assert titles[0].startswith("seg / toy / quick: final test metrics\n")
    assert titles[1].startswith("seg / toy / quick: final metrics\n")
