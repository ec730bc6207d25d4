"""Each task's degenerate rule: a trained model worse than the trivial answer. Crafted
models (seg labelling one class, sr upscaling by nearest neighbours -- below bicubic --, a
GAN on 2 of 8 modes with few sharp samples, translate drawing nearly one image) and
crafted numbers (embed at chance, style that gained no style) give the rule's reason; the
trainer makes such a trial ``degenerate`` (decided on val, the test verdict a note), the
comparison counts it against the success rate and at its own value in intent to treat,
and ``--strict`` exits 1 on it."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.run.budgets import resolve_overrides
from cvloss.run.compare import run_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.progress import Reporter
from cvloss.tasks.embed import EmbedTask
from cvloss.tasks.gan import GANTask
from cvloss.tasks.seg import MAJORITY, SegTask
from cvloss.tasks.sr import SRTask
from cvloss.tasks.style import StyleTask
from cvloss.tasks.translate import COLLAPSE_RATIO, SPREAD_FRACTION, TranslateTask

CPU = torch.device("cpu")
SEG_TINY = {"epochs": 4}  # smoke otherwise: 2 epochs leave the net at the majority-class mIoU (degenerate)


# ---------------------------------------------------------------- seg
class OneClass(nn.Module):
    """A segmentation net whose logits favour class 0 everywhere (its own net still trains)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out + F.pad(torch.full_like(out[:, :1], 1e3), (0, 0, 0, 0, 0, out.shape[1] - 1))


@pytest.fixture(scope="module")
def seg():
    task = SegTask("synth-pets", SegTask.spec.budgets["smoke"] | SEG_TINY, CPU)
    task.load_data()
    torch.manual_seed(0)
    return task


def test_seg_all_one_class_is_degenerate_with_its_reason(seg):
    model = OneClass(seg.build_model()).eval()
    with torch.no_grad():
        metrics = seg.evaluate(model, "val")
        reason = seg.degenerate_reason(model, metrics, "val", {})
        trained = seg.degenerate_reason(seg.build_model().eval(), seg.evaluate(seg.build_model().eval(), "val"),
                                        "val", {})
    share = float((seg.val_y == 0).float().mean())
    assert reason == (f"predicts background on 100.0% of the val pixels (>= 95%; the truth has it on "
                      f"{share:.1%})")
    assert trained is None or "predicts" not in trained or "100.0%" not in trained
    # the majority-class reference: every pixel labelled with the training masks' commonest
    # class (background); its IoU is that class's share, the other classes' 0
    ref = seg.reference_metrics("val")[MAJORITY]
    assert seg.majority_class() == 0
    assert ref["miou"] == pytest.approx(share / seg.num_classes, rel=1e-6)
    assert SegTask.spec.degenerate_by_numbers({"miou": ref["miou"]}, {MAJORITY: ref}, {}, "synth-pets").startswith("mIoU")
    assert SegTask.spec.degenerate_by_numbers({"miou": ref["miou"] + 0.01}, {MAJORITY: ref}, {}, "synth-pets") is None
    assert SegTask.spec.degenerate_by_numbers({"miou": 0.1}, {}, {}, "synth-pets") is None  # no reference: no call


# ---------------------------------------------------------------- sr
class Upscale(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode, self.w = mode, nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.mode, **({} if self.mode == "nearest" else
                                                                   {"align_corners": False}))


def test_sr_nearest_neighbour_upscaling_is_below_bicubic():
    task = SRTask("skimage-photos", SRTask.spec.budgets["smoke"] | {"hr_size": 40, "patch": 16}, CPU,
                  feature_weights="random")
    task.load_data()
    reasons = {}
    for mode in ("nearest", "bicubic"):
        model = nn.Module()
        model.g = Upscale(mode)
        with torch.no_grad():
            metrics = task.evaluate(model, "val")
            reasons[mode] = task.degenerate_reason(model, metrics, "val", {})
        floor = task.reference_metrics("val")["bicubic"]["psnr_y"]
        if mode == "nearest":
            assert metrics["psnr_y"] < floor
            assert reasons[mode] == f"PSNR-Y {metrics['psnr_y']:.2f} dB < bicubic's {floor:.2f} dB"
    assert reasons["bicubic"] is None  # bicubic itself is not below bicubic


# ---------------------------------------------------------------- gan
class TwoModes(nn.Module):
    """A 'generator' of ring8 points: ``sharp`` of them at modes 0 and 1, the rest halfway
    between the ring's centre and the modes (no mode's 3 sigma)."""

    def __init__(self, centers: torch.Tensor, sharp: float) -> None:
        super().__init__()
        self.centers, self.sharp = centers, sharp

    def sample(self, n: int, generator=None) -> torch.Tensor:
        k = int(round(self.sharp * n))
        angles = torch.linspace(0, 2 * math.pi, n - k)
        loose = torch.stack([torch.cos(angles), torch.sin(angles)], 1)  # radius 1: between modes
        sharp = self.centers[torch.arange(k) % 2]
        return torch.cat([sharp, loose])


def test_gan_on_2_of_8_modes_with_few_sharp_samples_is_degenerate():
    task = GANTask("ring8", GANTask.spec.budgets["smoke"] | {"n_eval": 400}, CPU)
    task.load_data()
    model = TwoModes(task.centers, 0.05)
    metrics = task.evaluate(model, "val")
    assert metrics["modes"] == 2 and metrics["hq_pct"] == pytest.approx(5.0)
    assert task.collapse_reason(model, metrics) is None  # 2 modes: not collapsed, degenerate
    assert task.degenerate_reason(model, metrics, "val", {}) == (
        "2 of 8 modes covered (<= 25%) with 5.0% high-quality samples (< 10%)")
    sharp = TwoModes(task.centers, 0.5)  # a narrow generator with sharp samples is not a failed one
    assert task.degenerate_reason(sharp, task.evaluate(sharp, "val"), "val", {}) is None
    assert GANTask.spec.bounds("modes", "ring8") == (0.0, 8.0) and GANTask.spec.bounds("modes", "grid25") == (0.0, 25.0)
    assert GANTask.spec.bounds("modes") == (0.0, None)


# ---------------------------------------------------------------- translate
class Scaled(nn.Module):
    """CycleGAN's two generators: G(a) = s * a (nearly one image for a small s), F = identity."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.g_ab = lambda x: scale * x
        self.g_ba = lambda x: x


def test_translate_outputs_nearly_alike_are_degenerate_and_a_constant_image_too():
    task = TranslateTask("synth-stripes", TranslateTask.spec.budgets["smoke"] | {"n_train": 8, "n_val": 16}, CPU)
    task.load_data()
    a, b = task.eval_sets["val"]
    scale = 0.2 * float(b.std(0).mean()) / float(a.std(0).mean())  # outputs spread 0.2 x the targets'
    model = Scaled(scale)
    spread, ref = task.diversity(model, "val")
    assert COLLAPSE_RATIO * ref < spread < SPREAD_FRACTION * ref
    assert task.collapse_reason(model, {}) is None  # above the collapse rule: degenerate, not collapsed
    reason = task.degenerate_reason(model, task.evaluate(model, "val"), "val", {})
    assert reason.startswith("G's outputs barely depend on the input: spread across 16 val inputs")
    assert reason.endswith(f"< {SPREAD_FRACTION:g} x the targets' ({ref:.4f})")
    constant = Scaled(0.0)
    assert "barely depend" in task.degenerate_reason(constant, task.evaluate(constant, "val"), "val", {})
    # the numbers' part: paired SSIM below the untrained model's
    assert TranslateTask.spec.degenerate_by_numbers({"paired_ssim": -0.014}, {}, {"paired_ssim": 0.020}, "x") == (
        "paired SSIM -0.014 < the untrained model's 0.020")
    assert TranslateTask.spec.degenerate_by_numbers({"paired_ssim": math.nan}, {}, {"paired_ssim": 0.02}, "x") is None


def test_embed_at_chance_and_style_without_style_gain_are_degenerate():
    assert EmbedTask.spec.degenerate_by_numbers({"verif_acc": 0.55}, {}, {}, "synth-ids") == (
        "verification accuracy 0.550 <= 0.55 (chance)")
    assert EmbedTask.spec.degenerate_by_numbers({"verif_acc": 0.56}, {}, {}, "synth-ids") is None
    init = {"content image (init)": {"style_dist": 2e-6}}
    assert StyleTask.spec.degenerate_by_numbers({"style_dist": 2e-6}, init, {}, "skimage-photos").startswith(
        "style distance 2e-06 not below")
    assert StyleTask.spec.degenerate_by_numbers({"style_dist": 1e-6}, init, {}, "skimage-photos") is None


# ---------------------------------------------------------------- through the trainer and the comparison
class Ends(Reporter):
    """Records each trial's end line (status and reason)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def trial_end(self, label, status, detail=""):
        self.lines.append(f"END {label} {status}")


@pytest.fixture
def capture():
    return Ends()


@pytest.fixture
def one_class_at_seed_1(monkeypatch):
    """SegTask builds its usual net, wrapped to label every pixel background at seed 1."""
    build = SegTask.build_model

    def crafted(self):
        net = build(self)
        return OneClass(net) if torch.initial_seed() == 1 else net

    monkeypatch.setattr(SegTask, "build_model", crafted)


def test_a_degenerate_trial_counts_in_success_and_itt(tmp_path, capture, one_class_at_seed_1):
    base = TrialConfig(task="seg", loss="", dataset="synth-pets", budget="smoke", device="cpu", out=str(tmp_path),
                       overrides=resolve_overrides("seg", {k: str(v) for k, v in SEG_TINY.items()}))
    result = run_comparison(base, ["ce", "dice"], [0, 1], capture)
    assert result["status"] == {"ce": ["done", "degenerate"], "dice": ["done", "degenerate"]}
    assert result["success"] == {"ce": 0.5, "dice": 0.5}
    summary = json.loads((tmp_path / "seg/synth-pets/smoke+epochs=4"
                          / "ce/seed1/summary.json").read_text())
    assert summary["schema"] == 3 and summary["status"] == "degenerate"
    assert summary["degenerate"].startswith("predicts background on 100.0% of the val pixels")
    assert summary["degenerate_on_test"].startswith("predicts background on 100.0% of the test pixels")
    assert result["degenerate"]["ce"] == [None, summary["degenerate"]]
    rows = {(r["analysis"], r["loss"]): r for r in result["rows"] if r["metric"] == "miou"}
    assert rows[("completed", "ce")]["n"] == 1 and rows[("completed", "ce")]["degenerate"] == 1
    itt = rows[("itt", "ce")]
    assert itt["n"] == 2  # the degenerate trial at its own value
    ok = json.loads((tmp_path / summary_path(base, "ce", 0)).read_text())
    assert itt["mean"] == pytest.approx(np.mean([ok["metrics"]["miou"], summary["metrics"]["miou"]]))
    md = (tmp_path / result["dir"] / "compare.md").read_text()
    assert "1/2 (1 degenerate) ⚠" in md and "⚠ Degenerate, decided on val and counted as failures" in md
    assert "`ce` seed 1 (predicts background on 100.0% of the val pixels" in md
    assert "Degenerate rule (seg): one class on &gt;= 95% of the pixels" in md and "## Intent to treat" in md
    assert "Unit of replication: seed: initial weights + batch order + augmentation." in md
    assert any(line.startswith("END seg/synth-pets/ce/seed1 degenerate (predicts background") for line in capture.lines)


def summary_path(base: TrialConfig, loss: str, seed: int):
    from dataclasses import replace

    return replace(base, loss=loss, seed=seed).trial_dir / "summary.json"


def test_strict_exits_1_on_a_degenerate_trial(tmp_path, one_class_at_seed_1):
    args = ["train", "--task", "seg", "--loss", "ce", "--seed", "1", "--out", str(tmp_path), "--quiet",
            *[x for k, v in SEG_TINY.items() for x in ("--set", f"{k}={v}")]]
    lenient = CliRunner().invoke(app, args)
    assert lenient.exit_code == 0, lenient.output
    assert "failures: 1 degenerate of 1 trial(s) (counted in the table; --strict makes this exit 1)" in lenient.stderr
    strict = CliRunner().invoke(app, args + ["--strict"])  # the finished trial is read back, then judged
    assert strict.exit_code == 1 and "failures: 1 degenerate of 1 trial(s); --strict: exit 1" in strict.stderr
