"""The plots agree with the tables and the colour key: no two losses of a report look
alike, the key is deterministic, whiskers stop at the metric's bounds as the tables'
intervals do, and a far-away reference line does not stretch a zoomed axis.

Artists are read from the drawn axes (errorbar segments, limits, texts), never pixels."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

from cvloss.losses import list_losses
from cvloss.report import plots
from cvloss.report.html import write_reports
from cvloss.report.markdown import ReportedComparison, load_comparisons
from cvloss.report.style import MARKER_GLYPHS, PALETTE, REFERENCE_COLOR, loss_key, loss_style, report_key, result_key
from cvloss.report.tables import interval_text

UNTRAINED = "untrained (epoch 0)"


def _pair(look):
    return look["color"], look["hatch"]


def _colliding_names() -> tuple[str, str]:
    """Two unregistered names whose looks on their own coincide (SHA-1, so the same pair
    on every machine): what the report's key must pull apart."""
    first: dict[tuple[str, str], str] = {}
    for i in range(1000):
        name = f"myloss{i:03d}"
        pair = _pair(loss_style(name))
        if pair in first:
            return first[pair], name
        first[pair] = name
    raise AssertionError("no two names collide: the test needs a collision to mean anything")


def _figures(monkeypatch) -> dict[str, object]:
    """Route save_figure to a dict {file name: figure} (the last one drawn under that name;
    every one in ``drawn["all"]``) so tests read the artists."""
    drawn: dict[str, object] = {"all": []}

    def keep(fig, path, close=True):
        drawn[Path(path).name] = fig
        drawn["all"].append(fig)

    monkeypatch.setattr(plots, "save_figure", keep)
    return drawn


def _panel(fig, metric):
    return next(ax for ax in fig.axes if ax.get_title().startswith(metric + " "))


def _whiskers(ax) -> dict[str, tuple[float, float]]:
    """{loss: (bottom, top)} of each errorbar's vertical segment."""
    out = {}
    for container in ax.containers:
        line, _, bars = container.lines
        (_, lo), (_, hi) = bars[0].get_segments()[0]
        out[line.get_gid()] = (float(lo), float(hi))
    return out


def _dots(figs) -> list:
    """The mean markers (each errorbar's data line, gid = its loss) of every panel."""
    return [c.lines[0] for fig in figs for ax in fig.axes for c in ax.containers]


def _row(loss, metric, mean, ci, n=3, reference=False):
    row = {"loss": loss, "metric": metric, "mean": mean, "ci95": ci, "n": n, "diff_vs_baseline": 0.0,
           "diff_ci95": 0.1, "p_value": 0.5}
    if reference:
        row["reference"] = True
    return row


def _gan_result(losses=("ns", "minimax", "wgan_gp")) -> dict:
    """A gan comparison with no trial folders. modes (bounds 0..inf): ns 1 ± 4.13 (the table
    says ``1 [0, 5.13]``), minimax 3 ± 1, wgan_gp 6 ± 2; hq_pct (bounds 0..100): losses
    between 0.5 and 10, untrained 92.1, far above; kl (bounds 0..inf): untrained 0.6 inside
    the losses' 0.2..1.3, a second reference at 50 above it."""
    values = {"modes": [(1.0, 4.13), (3.0, 1.0), (6.0, 2.0)], "hq_pct": [(2.0, 1.5), (4.0, 2.0), (8.0, 2.0)],
              "kl": [(0.8, 0.3), (1.0, 0.3), (0.5, 0.3)]}
    rows = [_row(loss, m, *values[m][i % 3]) for m in values for i, loss in enumerate(losses)]
    rows += [_row(UNTRAINED, "modes", 0.0, 0.0, reference=True), _row(UNTRAINED, "hq_pct", 92.1, 1.0, reference=True),
             _row(UNTRAINED, "kl", 0.6, 0.1, reference=True), _row("uniform", "kl", 50.0, 0.0, reference=True)]
    return {"task": "gan", "dataset": "grid25", "budget": "quick", "losses": list(losses), "seeds": [0, 1, 2],
            "baseline": losses[0], "references": [UNTRAINED, "uniform"], "metrics": list(values),
            "directions": {"modes": True, "hq_pct": True, "kl": False},
            "bounds": {"modes": [0.0, None], "hq_pct": [0.0, 100.0], "kl": [0.0, None]}, "rows": rows,
            "trials": {loss: [] for loss in losses}, "status": {}, "primary_metric": "modes"}


# -- the key ------------------------------------------------------------------------------

def test_every_registered_loss_has_its_own_look_in_any_report():
    """The user's report put gan's ns beside seg's topo (same red, same hatch) and dice
    beside minimax. Over all registered losses at once, no two share colour+hatch (nor
    colour+marker, colour+line style), and each keeps its look whatever else is reported."""
    names = [info.name for info in list_losses()]
    key = loss_key(names)
    assert len(names) >= 27
    for attrs in (("color", "hatch"), ("color", "marker"), ("color", "linestyle")):
        assert len({tuple(str(key[n][a]) for a in attrs) for n in names}) == len(names), attrs
    assert _pair(key["ns"]) != _pair(key["topo"]) and _pair(key["dice"]) != _pair(key["minimax"])
    seg_only = loss_key(["ce", "dice", "topo", "wce"])
    assert all(seg_only[n] == key[n] == loss_style(n) for n in seg_only)


def test_twenty_losses_more_than_the_colours_never_share_a_look():
    a, b = _colliding_names()
    first = int(a[-3:])
    names = [f"myloss{i:03d}" for i in range(first, first + 20)]
    names += [b] if b not in names else []
    names += ["ce", "ns", "triplet(mining=semi_hard)", "triplet(mining=all)", "0.5*dice+ce", "2*lsgan+cycle"]
    key = loss_key(names)
    assert len(key) == len(names) > len(PALETTE)  # more losses than base colours: colours must repeat
    assert len({_pair(k) for k in key.values()}) == len(names)
    assert len({(k["color"], k["marker"]) for k in key.values()}) == len(names)
    # the pair that collided on its own: the spec sorted first keeps its look, the other moves
    assert _pair(loss_style(a)) == _pair(loss_style(b)) and key[a] == loss_style(a) and _pair(key[b]) != _pair(key[a])


def test_the_key_is_stable_and_adding_a_comparison_recolours_no_registered_loss():
    """Chosen: registered names have fixed looks; other specs take their hashed look unless
    a registered name or a spec sorting before them holds it. So the same set gives the same
    key in any order, and a new comparison recolours only a spec it collides with."""
    a, b = _colliding_names()
    seg = ["ce", "dice", "topo", "wce", "topo(mu=0.1)"]
    gan = ["ns", "minimax", "wgan_gp", "lsgan", a]
    alone = loss_key(seg)
    both = loss_key(seg + gan)
    assert both == loss_key(list(reversed(gan + seg)) + seg)  # order and repeats do not matter
    assert all(both[s] == alone[s] for s in seg)  # adding the gan comparison recolours nothing of seg
    assert loss_key([b])[b] == loss_style(b) != loss_key([a, b])[b]  # ...unless it collides, as b does with a


# -- whiskers and zoom --------------------------------------------------------------------

def test_a_whisker_stops_at_the_metrics_bound_exactly_where_the_table_cuts_it(monkeypatch):
    drawn = _figures(monkeypatch)
    result = _gan_result()
    plots.bar_plot(result, Path("bars.png"))
    modes = _whiskers(_panel(drawn["bars.png"], "modes"))
    assert interval_text(1.0, 4.13, 0.0, None) == "1 [0, 5.13]"  # the table's cell for ns
    assert modes["ns"] == (0.0, pytest.approx(5.13))
    assert modes["minimax"] == (pytest.approx(2.0), pytest.approx(4.0))  # inside the bounds: ± ci as before
    # an upper bound too: a rate at 99 ± 3 stops at 100
    result["rows"] = [dict(r, mean=99.0, ci95=3.0) if (r["loss"], r["metric"]) == ("ns", "hq_pct") else r
                      for r in result["rows"]]
    plots.bar_plot(result, Path("bars.png"))
    assert _whiskers(_panel(drawn["bars.png"], "hq_pct"))["ns"] == (pytest.approx(96.0), 100.0)
    matplotlib.pyplot.close("all")


def test_a_far_reference_is_labelled_at_the_edge_and_does_not_widen_the_axis(monkeypatch):
    drawn = _figures(monkeypatch)
    plots.bar_plot(_gan_result(), Path("bars.png"))
    fig = drawn["bars.png"]
    hq = _panel(fig, "hq_pct")
    low, high = hq.get_ylim()
    assert 10.0 <= high < 15.0 and -2.0 < low <= 0.5  # the losses' 0.5..10, not 0..92
    labels = [t for t in hq.texts if (t.get_gid() or "").startswith("reference:")]
    assert [t.get_text() for t in labels] == [f"{UNTRAINED} 92.1 ↑"]
    assert labels[0].xy == (0.99, 1.0) and labels[0].xycoords == "axes fraction"  # pinned to the top edge
    assert not [ln for ln in hq.lines if matplotlib.colors.same_color(ln.get_color(), REFERENCE_COLOR)]
    # kl: 0.6 lies among the losses -> a grey line as before; 50 is far above -> a label
    kl = _panel(fig, "kl")
    grey = [ln for ln in kl.lines if matplotlib.colors.same_color(ln.get_color(), REFERENCE_COLOR)]
    assert [tuple(ln.get_ydata()) for ln in grey] == [(0.6, 0.6)]
    assert kl.get_ylim()[1] < 2.0 and [t.get_text() for t in kl.texts if t.get_gid()] == ["uniform 50 ↑"]
    # below the range: modes' untrained 0 is inside (ns's whisker reaches 0): a line
    assert any(tuple(ln.get_ydata()) == (0.0, 0.0) for ln in _panel(fig, "modes").lines)
    matplotlib.pyplot.close("all")


# -- the report ---------------------------------------------------------------------------

def test_a_comparisons_plots_use_the_report_wide_key(monkeypatch):
    """b looks like a on its own; in a report holding both, b's comparison is drawn with
    b's report look, which differs from a's, in every plot."""
    a, b = _colliding_names()
    ra, rb = _gan_result(("ns", a, "minimax")), _gan_result(("ns", b, "minimax"))
    assert _pair(result_key(rb)[b]) == _pair(result_key(ra)[a])  # each comparison alone: alike
    key = report_key([ra, rb])
    rb = ReportedComparison.from_dict(rb)
    rb.loss_key = key
    drawn = _figures(monkeypatch)
    plots.bar_plot(rb, Path("bars.png"))
    plots.forest_plot(rb, Path("forest.png"))
    dots = [ln for ln in _dots([drawn["bars.png"]]) if ln.get_gid() == b]
    assert len(dots) == 3  # one per panel
    for ln in dots:
        assert matplotlib.colors.same_color(ln.get_color(), key[b]["color"]) and ln.get_marker() == key[b]["marker"]
    assert (key[b]["color"], key[b]["marker"]) != (key[a]["color"], key[a]["marker"])
    forest_b = drawn["forest.png"].axes[0].lines  # rows: b then minimax (the baseline ns is the zero line)
    assert any(ln.get_marker() == key[b]["marker"] for ln in forest_b)
    matplotlib.pyplot.close("all")


def test_cvloss_report_draws_and_keys_every_loss_alike(tmp_path, monkeypatch, make_comparison):
    """Two comparisons with different losses: load_comparisons gives both the union's key;
    report.html's key and REPORT.md's key show one swatch per loss with that look, and the
    redrawn bars use it."""
    monkeypatch.setenv("CVLOSS_PLOT_FORMATS", "png")
    root = tmp_path / "results"
    make_comparison(root, losses=("ce", "dice"))
    make_comparison(root, losses=("topo", "wce"), dataset="toy2")
    results = load_comparisons(root, replot=False)
    key = report_key(results)
    assert sorted(key) == ["ce", "dice", "topo", "wce"] and all(r.loss_key == key for r in results)
    drawn = _figures(monkeypatch)
    paths = write_reports(root)
    html = paths["html"].read_text()
    section = html[html.index('id="colour-key"'):html.index('id="provenance"')]
    swatches = re.findall(r'background-color:(#[0-9a-f]{6})" title="([^"]+)"></span><span[^>]*>(.)</span>', section)
    assert swatches == [(key[n]["color"], n, MARKER_GLYPHS[key[n]["pattern"]]) for n in sorted(key)]
    md = paths["md"].read_text()
    for name in key:
        assert re.search(rf"\| `{name}` \| {key[name]['color_name']} `{key[name]['color']}` \|", md), name
    dots = [ln for ln in _dots(drawn["all"]) if ln.get_gid()]  # bars' means (the forest's carry no gid)
    assert {ln.get_gid() for ln in dots} == set(key)  # every loss drawn, each with its key look
    for ln in dots:
        look = key[ln.get_gid()]
        assert matplotlib.colors.same_color(ln.get_color(), look["color"]) and ln.get_marker() == look["marker"]
    matplotlib.pyplot.close("all")
