"""Effects checked image by image: the sign and signed-rank tests against hand
computations, the item-level verdicts (one image carrying the whole effect, every image,
ties, too few images), pairing across seeds, test_items.json round trip and malformed
files, and a comparison from hand-written trials (no training)."""
from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import pytest

from cvloss.errors import ResultsFileError
from cvloss.report.console import print_comparison
from cvloss.run import item_analysis as ia
from cvloss.run.compare import comparison_dir, summarize_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.stats import min_sign_p, sign_test_p, signed_rank_p

IDS = [f"img{i}" for i in range(6)]


# ---------------------------------------------------------------------------- the tests
def test_sign_test_against_the_binomial_by_hand():
    # two-sided: 2 * P(X <= min) with X ~ Bin(n, 1/2)
    assert sign_test_p(5, 1) == pytest.approx(2 * (1 + 6) / 64)  # 0.21875
    assert sign_test_p(1, 9) == pytest.approx(2 * (1 + 10) / 1024)  # 0.0215
    assert sign_test_p(6, 0) == pytest.approx(2 / 64)
    assert sign_test_p(3, 3) == 1.0 and sign_test_p(0, 0) == 1.0  # no untied item: no evidence
    assert min_sign_p(5) == 0.0625 and min_sign_p(6) == 0.03125 and min_sign_p(0) == 1.0


def test_signed_rank_drops_zeros_and_says_all_ties():
    assert signed_rank_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    # W- = 2 (the rank of -2): subsets of {1..6} summing to <= 2 are {}, {1}, {2}: p = 2 * 3/64
    assert signed_rank_p([1, -2, 3, 4, 5, 6]) == pytest.approx(6 / 64)
    assert signed_rank_p([0, 0, 1, 2, 3, 4]) == pytest.approx(2 / 16)  # as 4 differences
    assert signed_rank_p([0.0, 0.0]) == 1.0
    assert math.isnan(signed_rank_p([math.nan]))


# ---------------------------------------------------------------------------- verdicts
def _records(offsets: list[float], seeds: int = 10, noise: float = 0.05, ids: list[str] = IDS):
    """Baseline and loss records per seed: the loss is the baseline plus ``offsets[i]`` on
    item i plus ``noise * (-1)**seed`` (which cancels over an even number of seeds)."""
    base, loss = [], []
    for s in range(seeds):
        b = [20.0 + i + 0.3 * s for i in range(len(ids))]
        base.append({"ids": ids, "metrics": {"psnr_y": b}})
        loss.append({"ids": ids, "metrics": {"psnr_y": [x + o + noise * (-1) ** s for x, o in zip(b, offsets)]}})
    return base, loss


def _seed_row(loss: str, verdict: str, p_adj: float, diff: float) -> dict:
    return {"analysis": "completed", "loss": loss, "metric": "psnr_y", "verdict": verdict, "p_adj": p_adj,
            "diff_vs_baseline": diff, "n_pairs": 10}


def _analyse(records: dict, rows=()):
    return ia.analyse_items(records, list(records), {"psnr_y": True}, "psnr_y", rows)


def test_one_image_carrying_the_whole_effect_does_not_hold_across_images():
    base, loss = _records([3.0, 0.01, -0.01, 0.02, -0.02, -0.01])
    out = _analyse({"b": base, "a": loss}, [_seed_row("a", "appears", 1e-9, 0.4983)])
    (c,) = out["contrasts"]
    assert out["n_items"] == 6 and out["items"] == IDS
    assert [round(r["diff"], 6) for r in c["per_item"]] == [3.0, 0.01, -0.01, 0.02, -0.02, -0.01]
    assert all(r["n_seeds"] == 10 for r in c["per_item"])
    assert (c["wins"], c["losses"], c["ties"]) == (3, 3, 0)
    assert c["sign_p"] == 1.0 and c["sign_p_adj"] == 1.0 and c["correction"] == "holm"
    assert c["verdict"] == ia.NOT_ACROSS and c["agreement"] == ia.SEEDS_ONLY


def test_an_effect_on_every_image_holds_across_images():
    base, loss = _records([0.5, 0.4, 0.6, 0.3, 0.5, 0.45])
    (c,) = _analyse({"b": base, "a": loss}, [_seed_row("a", "appears", 1e-9, 0.46)])["contrasts"]
    assert (c["wins"], c["losses"]) == (6, 0)
    assert c["sign_p"] == pytest.approx(2 / 64) and c["wilcoxon_p"] == pytest.approx(2 / 64)
    assert c["verdict"] == ia.HOLDS and c["agreement"] == ia.BOTH
    _, worse = _records([-0.5, -0.4, -0.6, -0.3, -0.5, -0.45])
    (c,) = _analyse({"b": base, "a": worse})["contrasts"]
    assert c["verdict"] == ia.REVERSED and c["seeds"]["verdict"] is None and c["agreement"] is None


def test_lower_is_better_counts_a_lower_value_as_a_win():
    base, loss = _records([-0.5] * 6)
    out = ia.analyse_items({"b": base, "a": loss}, ["b", "a"], {"psnr_y": False}, "psnr_y")
    assert out["contrasts"][0]["wins"] == 6


def test_holm_over_two_contrasts_leaves_six_images_too_few():
    base, one = _records([0.5] * 6)
    _, two = _records([0.4] * 6)
    out = _analyse({"b": base, "a": one, "c": two})
    for c in out["contrasts"]:
        assert c["sign_p"] == pytest.approx(2 / 64) and c["sign_p_adj"] == pytest.approx(4 / 64)
        assert c["family_m"] == 2 and c["level"] == 0.025
        assert c["verdict"] == ia.TOO_FEW  # even 6/6 cannot reach alpha/m = 0.025


def test_fewer_than_six_images_and_ties_are_said():
    ids = IDS[:5]
    base, loss = _records([1.0] * 5, ids=ids)
    (c,) = _analyse({"b": base, "a": loss})["contrasts"]
    assert (c["wins"], c["sign_p"], c["min_p"]) == (5, 0.0625, 0.0625) and c["verdict"] == ia.TOO_FEW
    base, loss = _records([0.0, 0.0, 1.0, 1.0, 1.0, 1.0], noise=0.0)
    (c,) = _analyse({"b": base, "a": loss})["contrasts"]
    assert (c["wins"], c["losses"], c["ties"]) == (4, 0, 2)
    assert c["sign_p"] == pytest.approx(2 / 16) and c["verdict"] == ia.TOO_FEW  # 4 untied images
    base, loss = _records([0.0] * 6, noise=0.0)
    (c,) = _analyse({"b": base, "a": loss})["contrasts"]
    assert c["ties"] == 6 and c["sign_p"] == 1.0 and c["wilcoxon_p"] == 1.0 and c["verdict"] == ia.ALL_TIES


def test_seeds_pair_by_item_and_unmatched_seeds_are_left_out():
    """Style: each seed scores its own pair; seeds sharing a content average into its item."""
    contents = ["rocket", "coffee", "rocket", "moon"]
    base = [{"ids": [c], "metrics": {"psnr_y": [1.0]}} for c in contents]
    loss = [{"ids": [c], "metrics": {"psnr_y": [1.0 + d]}} for c, d in zip(contents, (0.2, -0.1, 0.4, 0.3))]
    loss.append({"ids": ["other"], "metrics": {"psnr_y": [5.0]}})  # seed 4: other data than the baseline's
    base.append({"ids": ["moon"], "metrics": {"psnr_y": [1.0]}})
    loss.append(None)  # seed 5: the loss's trial did not finish
    base.append({"ids": ["moon"], "metrics": {"psnr_y": [1.0]}})
    out = ia.analyse_items({"b": base, "a": loss}, ["b", "a"], {"psnr_y": True}, "psnr_y", unit="content image")
    (c,) = out["contrasts"]
    assert {r["item"]: (round(r["diff"], 9), r["n_seeds"]) for r in c["per_item"]} == {
        "rocket": (0.3, 2), "coffee": (-0.1, 1), "moon": (0.3, 1)}
    assert (c["n_seeds"], c["n_unpaired_seeds"]) == (4, 1) and out["unit"] == "content image"


def test_nothing_to_analyse_gives_none():
    base, loss = _records([1.0] * 6)
    assert ia.analyse_items({"b": base}, ["b"], {"psnr_y": True}, "psnr_y") is None  # one loss: no contrast
    assert ia.analyse_items({"b": [None], "a": [None]}, ["b", "a"], {"psnr_y": True}, "psnr_y") is None
    many = [f"i{k}" for k in range(ia.MAX_ITEMS)]
    base, loss = _records([1.0] * len(many), seeds=2, ids=many)
    assert ia.analyse_items({"b": base, "a": loss}, ["b", "a"], {"psnr_y": True}, "psnr_y") is None


# ---------------------------------------------------------------------------- the file
def test_test_items_round_trip_and_limits(tmp_path):
    items = {"ids": ["rocket", "moon"], "metrics": {"psnr_y": [30.5, 25.25], "lpips": [math.nan, math.nan]}}
    path = ia.write_test_items(tmp_path, items, "test image")
    assert path == tmp_path / ia.TEST_ITEMS
    got = ia.read_test_items(path)
    assert got == {"schema": 1, "split": "test", "unit": "test image", "ids": ["rocket", "moon"],
                   "metrics": {"psnr_y": [30.5, 25.25], "lpips": [None, None]}}  # NaN written as null
    many = {"ids": [f"i{k}" for k in range(ia.MAX_ITEMS)], "metrics": {"m": [1.0] * ia.MAX_ITEMS}}
    assert ia.write_test_items(tmp_path / "big", many, "test image") is None and not (tmp_path / "big").exists()
    assert ia.write_test_items(tmp_path / "none", None, "test image") is None
    with pytest.raises(ValueError, match="one value per id"):
        ia.write_test_items(tmp_path, {"ids": ["a", "b"], "metrics": {"m": [1.0]}}, "test image")


@pytest.mark.parametrize("text, why", [
    ("[1, 2]", "not an object"),
    ('{"schema": 1, "ids": [], "metrics": {}}', "'ids' must be a list of 1 to"),
    ('{"schema": 1, "ids": ["a", 3], "metrics": {}}', "every id must be a non-empty string"),
    ('{"schema": 1, "ids": ["a", "b"], "metrics": {"m": [1]}}', "must list one value per id (2)"),
    ('{"schema": 1, "ids": ["a"], "metrics": {"m": ["x"]}}', "not a finite number or null"),
    ('{"schema": 1, "ids": ["a"], "metrics": {"m": [Infinity]}}', "not a finite number or null"),
    ('{"schema": 1, "ids": ["a"], "metrics": {"m": [true]}}', "not a finite number or null"),
    ('{"schema": 1, "ids": ["a"], "metrics": []}', "'metrics' must be an object"),
    ('{"schema": 2, "ids": ["a"], "metrics": {"m": [1]}}', "this cvloss reads schema 1"),
    ('{"ids": ["' + "x" * 300 + '"], "metrics": {}}', "at most 200 characters"),
    ("{not json", "corrupt results file"),
])
def test_a_malformed_test_items_file_is_refused_in_one_line(tmp_path, text, why):
    path = tmp_path / ia.TEST_ITEMS
    path.write_text(text)
    with pytest.raises(ResultsFileError) as exc:
        ia.read_test_items(path)
    assert why in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


# ---------------------------------------------------------------------------- a comparison
def _trial(base, loss, seed, values, status="done", items=True):
    d = replace(base, loss=loss, seed=seed).trial_dir
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"schema": 3, "status": status,
                                                "metrics": {"psnr_y": sum(values) / len(values)}}))
    if items:
        (d / ia.TEST_ITEMS).write_text(json.dumps({"schema": 1, "split": "test", "unit": "test image", "ids": IDS,
                                                   "metrics": {"psnr_y": values}}))
    return d


def _comparison(tmp_path, offsets, bad_file=False):
    base = TrialConfig(task="sr", loss="", dataset="skimage-photos", budget="smoke", out=str(tmp_path))
    baseline, loss = _records(offsets)
    for seed, (b, a) in enumerate(zip(baseline, loss)):
        _trial(base, "l1", seed, b["metrics"]["psnr_y"])
        d = _trial(base, "mse", seed, a["metrics"]["psnr_y"])
        if bad_file and seed == 0:
            (d / ia.TEST_ITEMS).write_text('{"schema": 1, "ids": ["a"], "metrics": {"psnr_y": [1, 2]}}')
    summarize_comparison(base, ["l1", "mse"], list(range(10)))
    out = comparison_dir(base, ["l1", "mse"])
    return json.loads((out / "compare.json").read_text()), (out / "compare.md").read_text()


def test_a_comparison_says_the_effect_holds_on_seeds_but_not_across_images(tmp_path):
    data, md = _comparison(tmp_path, [3.0, 0.01, -0.01, 0.02, -0.02, -0.01])
    rows = {(r["loss"], r["metric"]): r for r in data["rows"] if r.get("analysis") == "completed"}
    assert rows[("mse", "psnr_y")]["verdict"] == "appears"  # the seed-level effect is there
    found = data["item_analysis"]
    (c,) = found["contrasts"]
    assert found["schema"] == 1 and found["n_items"] == 6 and found["baseline"] == "l1"
    assert found["seeds_recorded"] == {"l1": 10, "mse": 10} and found["n_unreadable"] == 0
    assert c["seeds"]["p_adj"] == rows[("mse", "psnr_y")]["p_adj"] and c["agreement"] == ia.SEEDS_ONLY
    assert "Image by image (6 test images)" in md
    assert "holds on seeds (Δ +0.498, p_holm = " in md
    assert "but not across test images: wins 3/6, sign p_holm = 1 (Wilcoxon " in md
    assert "| img0 | +3 (10) |" in md
    printed = io.StringIO()  # stdout's verdict says it too, beside the seed-level lines
    print_comparison(data, "t", file=printed, width=400)
    assert "mse vs l1, psnr_y: holds on seeds (Δ +0.498" in printed.getvalue()
    assert "but not across test images: wins 3/6" in printed.getvalue()


def test_a_comparison_says_when_the_effect_holds_across_images(tmp_path):
    data, md = _comparison(tmp_path, [0.5, 0.4, 0.6, 0.3, 0.5, 0.45])
    (c,) = data["item_analysis"]["contrasts"]
    assert c["agreement"] == ia.BOTH
    assert "and across test images: wins 6/6, sign p_holm = 0.031" in md


def test_an_unreadable_test_items_file_leaves_its_trial_out_with_a_note(tmp_path):
    data, md = _comparison(tmp_path, [0.5, 0.4, 0.6, 0.3, 0.5, 0.45], bad_file=True)
    found = data["item_analysis"]
    assert found["n_unreadable"] == 1 and "must list one value per id" in found["unreadable"][0]
    assert found["seeds_recorded"] == {"l1": 10, "mse": 9} and found["contrasts"][0]["n_seeds"] == 9
    assert "1 test_items.json file(s) could not be read and were left out" in md


def test_report_md_carries_the_section_and_survives_a_hostile_one(tmp_path):
    from typer.testing import CliRunner

    from cvloss.cli import app

    _comparison(tmp_path, [3.0, 0.01, -0.01, 0.02, -0.02, -0.01])
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--no-replot", "--no-html"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "REPORT.md").read_text()
    assert "Image by image (6 test images)" in report and "but not across test images: wins 3/6" in report
    cmp_json = next(tmp_path.rglob("compare.json"))
    data = json.loads(cmp_json.read_text())
    data["item_analysis"]["contrasts"][0]["wins"] = "<b>3</b>"  # hand-edited: another shape
    cmp_json.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--no-replot", "--no-html"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "REPORT.md").read_text()
    assert "Not shown: this compare.json's item_analysis is not in the expected shape" in report
    assert "<b>" not in report
