"""Per-item test metrics: style's per-pair metrics against hand computations
and their mean against the batch's, and a smoke sr comparison that writes
test_items.json per trial and an item_analysis in compare.json."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.task_registry import task_names
from cvloss.tasks import get_task_class
from cvloss.tasks.base import Task
from cvloss.tasks.sr import SRTask
from cvloss.tasks.style import EVAL_STYLE_LAYERS, StyleTask


def test_only_sr_and_style_record_test_items():
    """The hook's default records none; the tasks whose test split is a few images use it."""
    overriding = [name for name in task_names() if get_task_class(name).test_items is not Task.test_items]
    assert sorted(overriding) == ["sr", "style"]


def test_style_items_are_its_pairs_named_by_content():
    params = StyleTask.spec.budgets["smoke"] | {"image_size": 32, "pairs": "chelsea:waves,coffee:gravel"}
    t = StyleTask("skimage-photos", params, torch.device("cpu"), feature_weights="random")
    t.load_data()
    torch.manual_seed(0)
    model = t.build_model()
    with torch.no_grad():
        x = model().clone()
        x[1] = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2  # a checkerboard: TV exactly 1
        per_pair = t.pair_metrics(x)
        # E_l of pair 1 alone, by hand: 1 / (4 N^2 M^2) * sum (G - A)^2 with unnormalised Grams
        l = EVAL_STYLE_LAYERS[1]
        fx, fs = t._eval_net.extract(x[1:], [l])[l], t._eval_net.extract(t.style[1:], [l])[l]
        n_l, m_l = fx.shape[1], fx.shape[2] * fx.shape[3]
        fx, fs = fx.double().flatten(2), fs.double().flatten(2)
        e = float(((fx @ fx.transpose(1, 2) - fs @ fs.transpose(1, 2)) ** 2).sum() / (4 * n_l**2 * m_l**2))
        assert float(per_pair[f"gram_{l}"][1]) == pytest.approx(e, rel=1e-4)
        assert float(per_pair["tv"][1]) == pytest.approx(1.0)
        assert float(per_pair["content_loss"][0]) == 0.0  # pair 0 is still its content image
        means = t.image_metrics(x)
        assert {k: float(v.mean()) for k, v in per_pair.items()} == pytest.approx(means, rel=1e-6)
        out = t.evaluate(model, "test")
    items = t.test_items("test")
    assert items["ids"] == ["chelsea", "coffee"] and t.spec.item_unit == "content image"
    assert set(items["metrics"]) == {"content_loss", "style_dist", "tv", *(f"gram_{l}" for l in EVAL_STYLE_LAYERS)}
    for name, values in items["metrics"].items():
        assert len(values) == 2 and sum(values) / 2 == pytest.approx(out[name], rel=1e-6)


def test_sr_compare_writes_test_items_and_an_item_analysis(tmp_path):
    """Smoke budget (2 epochs: l1 gains ~0.4 dB over bicubic there, so its trials are
    ``done``), one seed: every trial scores every test photo."""
    result = CliRunner().invoke(app, ["compare", "--task", "sr", "--losses", "mse,l1", "--budget", "smoke",
                                      "--seeds", "1", "--out", str(tmp_path), "--quiet", "--feature-weights", "random"])
    assert result.exit_code == 0, result.output
    group = tmp_path / "sr" / "skimage-photos" / "smoke"
    records = {loss: json.loads((group / loss / "seed0" / "test_items.json").read_text()) for loss in ("mse", "l1")}
    summaries = {loss: json.loads((group / loss / "seed0" / "summary.json").read_text()) for loss in ("mse", "l1")}
    assert {s["status"] for s in summaries.values()} == {"done"}
    for loss, rec in records.items():
        assert rec["schema"] == 1 and rec["unit"] == "test image" and len(rec["ids"]) >= 2
        assert set(rec["metrics"]) == set(SRTask.spec.metrics)
        psnr = rec["metrics"]["psnr_y"]  # the summary's number is the mean over the photos
        assert sum(psnr) / len(psnr) == pytest.approx(summaries[loss]["metrics"]["psnr_y"], rel=1e-9)
    assert records["mse"]["ids"] == records["l1"]["ids"]
    cmp_dir = next(group.glob("compare--*"))
    found = json.loads((cmp_dir / "compare.json").read_text())["item_analysis"]
    assert found["n_items"] == len(records["l1"]["ids"]) and found["baseline"] == "mse"
    primary = next(c for c in found["contrasts"] if c["metric"] == "psnr_y")
    want = [a - b for a, b in zip(records["l1"]["metrics"]["psnr_y"], records["mse"]["metrics"]["psnr_y"])]
    assert [r["diff"] for r in primary["per_item"]] == pytest.approx(want)
    assert f"Image by image ({found['n_items']} test images)" in (cmp_dir / "compare.md").read_text()
