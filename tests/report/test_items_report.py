"""The "Image by image" section (cvloss.report.items): verdict lines for every agreement,
images too few or all tied said in words, values from compare.json escaped, and an
item_analysis of another shape shown as one line, never an exception."""
from __future__ import annotations

import copy

import pytest

from cvloss.report.items import item_lines, item_verdict_line, valid
from cvloss.run.item_analysis import analyse_items

IDS = [f"img{i}" for i in range(6)]


def _analysis(offsets, ids=IDS, seed_verdict="appears", loss="mse", unit="test image"):
    base = [{"ids": ids, "metrics": {"psnr_y": [20.0 + i for i in range(len(ids))]}} for _ in range(3)]
    other = [{"ids": ids, "metrics": {"psnr_y": [20.0 + i + o for i, o in enumerate(offsets)]}} for _ in range(3)]
    row = {"analysis": "completed", "loss": loss, "metric": "psnr_y", "verdict": seed_verdict, "p_adj": 0.004,
           "diff_vs_baseline": sum(offsets) / len(offsets), "n_pairs": 3}
    return analyse_items({"l1": base, loss: other}, ["l1", loss], {"psnr_y": True}, "psnr_y", [row], unit=unit)


def _line(found):
    return item_verdict_line(found["contrasts"][0], found)


def test_verdict_lines_say_where_the_effect_holds():
    one = _analysis([3, 0.1, -0.1, 0.2, -0.2, -0.1])
    assert _line(one) == ("`mse` vs `l1`, psnr_y: holds on seeds (Δ +0.483, p_holm = 0.004) but not across test "
                          "images: wins 3/6, sign p_holm = 1 (Wilcoxon 0.81).")
    every = _analysis([0.5] * 6)
    assert ("holds on seeds (Δ +0.5, p_holm = 0.004) and across test images: wins 6/6, sign p_holm = 0.031"
            in _line(every))
    assert "does not hold on seeds (Δ +0.5, p_holm = 0.004) but holds across test images" in _line(
        _analysis([0.5] * 6, seed_verdict="not detected"))
    assert "holds neither on seeds (Δ +0.483, p_holm = 0.004) nor across test images: wins 3/6" in _line(
        _analysis([3, 0.1, -0.1, 0.2, -0.2, -0.1], seed_verdict="not detected"))
    assert "but the other way across test images: wins 0/6" in _line(_analysis([-0.5] * 6))


def test_too_few_or_tied_images_cannot_be_checked_and_say_why():
    few = _analysis([1.0] * 2, ids=["rocket", "motorcycle"])
    assert _line(few).endswith("holds on seeds (Δ +1, p_holm = 0.004); across test images it cannot be checked: "
                               "wins 2/2, sign p_holm = 0.5 (Wilcoxon 0.5); 2 untied test images cannot reach "
                               "α/m = 0.05 (the smallest sign p is 0.5).")
    tied = _analysis([0.0] * 6, seed_verdict="not detected")
    assert _line(tied).endswith("does not hold on seeds (Δ 0, p_holm = 0.004); across test images it cannot be "
                                "checked: wins 0/6 (6 tied), sign p_holm = 1 (Wilcoxon 1); every test image is a tie, "
                                "no test.")


def test_the_section_has_a_summary_and_a_per_image_table():
    text = "\n".join(item_lines(_analysis([3, 0.1, -0.1, 0.2, -0.2, -0.1], unit="content image"), heading_level=2))
    assert "### Image by image (6 content images)" in text
    assert "| `mse` | +0.483 (0.004) | 3 / 3 / 0 of 6 | 1 | 0.81 | does not hold | 3 |" in text
    assert "| content image | `mse` − `l1` |" in text and "| img0 | +3 (3) |" in text
    assert item_lines(None) == []


def test_values_from_the_file_are_escaped():
    found = _analysis([0.5] * 6, ids=["<img src=x>", "a|b", "*c*", "d", "e", "f"], loss="mse")
    text = "\n".join(item_lines(found))
    assert "&lt;img src=x&gt;" in text and "<img" not in text
    assert "a\\|b" in text and "\\*c\\*" in text


@pytest.mark.parametrize("break_it", [
    lambda f: f.update(schema=2),
    lambda f: f.update(contrasts="x"),
    lambda f: f["contrasts"][0].update(wins="3"),
    lambda f: f["contrasts"][0].update(per_item=[{"item": 1}]),
    lambda f: f["contrasts"][0].update(seeds=None),
    lambda f: f.update(items=[None]),
])
def test_an_item_analysis_of_another_shape_is_not_shown(break_it):
    found = copy.deepcopy(_analysis([0.5] * 6))
    assert valid(found)
    break_it(found)
    assert not valid(found)
    assert "Not shown: this compare.json's item_analysis is not in the expected shape" in "\n".join(item_lines(found))
    assert "Not shown" in "\n".join(item_lines(["not", "a", "dict"]))
