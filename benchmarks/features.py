"""Shared VGG features: step time of a combined feature loss against ``perceptual`` alone.

    python benchmarks/features.py            # batch 16, 96 px HR patches (EDSR's x2 size)
    python benchmarks/features.py --quick    # batch 4, 48 px (seconds)
    python benchmarks/features.py --spec "l1+perceptual+texture" --rounds 7
    python benchmarks/features.py --spec "l1+perceptual+texture(arch=vgg16)" --spec "l1+perceptual+texture(arch=vgg16) (floor)"

In a :class:`~cvloss.losses.spec.CombinedLoss` the frozen VGG runs once on the prediction
and once, under ``no_grad``, on the target per step for all feature terms that use the
same network (same arch and weights), up to the deepest layer any of them needs. Each row
is one super-resolution training step (small EDSR forward, loss, backward, Adam step) on
the same fixed batch; rows are timed in alternating blocks of ``--steps`` steps,
``--rounds`` blocks each, so drift of a shared CPU hits every row alike; the median block
is reported and divided by the baseline's (``perceptual``: VGG16 relu2_2).

Rows (default): the combined loss with texture on the same VGG16 and within perceptual's
depth (the sharing case: target <= 1.15x), the same terms summed one by one (what it
costs without sharing), texture reaching relu3_1 (a deeper shared pass), its floor --
one hand-written torchvision VGG16 pass computing the same layers and Grams
(``SPEC (floor)``; target: the combined loss <= 1.05x its floor) -- and the registry
defaults ``l1+perceptual+texture`` (texture defaults to VGG19: two networks, each run
once). ``passes`` counts VGG forward passes per step (pred + target; the floor's own
pass is not a ``VGGFeatures`` one and counts 0).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from cvloss.losses import build_loss
from cvloss.losses.features import VGGFeatures
from cvloss.models.sr import EDSR

BASELINE = "perceptual"
SHARED = "l1+perceptual+texture(arch=vgg16,layers=[relu1_2,relu2_2])"
DEEP = "l1+perceptual+texture(arch=vgg16)"
FLOOR = " (floor)"
DEFAULT_SPECS = [SHARED, SHARED + " (unshared)", DEEP, DEEP + FLOOR, "l1+perceptual+texture"]


class Unshared(nn.Module):
    """The terms of a combined loss summed one by one (each runs its own VGG passes)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, pred, target):
        return sum(w * t(pred, target) for w, t in self.loss.weighted_terms())


class Floor(nn.Module):
    """The combined loss's floor: one hand-written torchvision VGG pass computing the
    same layers and Grams (``vgg_floor_fn`` of ``benchmarks/losses.py``), same weights."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        from losses import vgg_floor_fn  # benchmarks/losses.py, next to this script

        self.fn = vgg_floor_fn(loss)
        if self.fn is None:
            raise ValueError("no hand-written floor for this spec (one VGG, feature and l1 terms only)")

    def forward(self, pred, target):
        return self.fn(pred, target)


def make_loss(spec: str) -> nn.Module:
    if spec.endswith(" (unshared)"):
        return Unshared(build_loss(spec[: -len(" (unshared)")], task="sr", feature_weights="random"))
    if spec.endswith(FLOOR):
        return Floor(build_loss(spec[: -len(FLOOR)], task="sr", feature_weights="random"))
    return build_loss(spec, task="sr", feature_weights="random")


def count_passes(step) -> int:
    """VGG forward passes during one call of ``step``."""
    n = 0
    original = VGGFeatures.extract

    def counting(self, x, layers):
        nonlocal n
        n += 1
        return original(self, x, layers)

    VGGFeatures.extract = counting
    try:
        step()
    finally:
        VGGFeatures.extract = original
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 4, 48 px patches")
    ap.add_argument("--spec", action="append", help="combined spec(s) to time (default: the rows in the docstring)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--size", type=int, help="HR patch side (x2 SR)")
    ap.add_argument("--steps", type=int, default=3, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=5, help="timed blocks per row")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = args.batch or (4 if args.quick else 16)
    size = args.size or (48 if args.quick else 96)
    specs = [BASELINE] + (args.spec or DEFAULT_SPECS)

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(batch, 3, size, size, generator=g)
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True).clamp(0, 1)
    rows = []
    for spec in specs:
        torch.manual_seed(0)
        model = EDSR(2, n_feats=32, n_blocks=4)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        loss = make_loss(spec)

        def step(model=model, opt=opt, loss=loss):
            opt.zero_grad(set_to_none=True)
            loss(model(lr), hr).backward()
            opt.step()

        step()  # warm-up (allocations, oneDNN primitives)
        rows.append({"spec": spec, "step": step, "passes": count_passes(step), "times": []})
    for _ in range(args.rounds):
        for row in rows:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                row["step"]()
            row["times"].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(rows[0]["times"])
    print(f"SR x2 training step, batch {batch}, HR {size}x{size}, EDSR F=32 B=4, random VGG weights, "
          f"{args.threads} thread(s); median of {args.rounds} blocks of {args.steps} steps")
    width = max(len(r["spec"]) for r in rows)
    print(f"{'loss':<{width}}  {'ms/step':>8}  {'x perceptual':>12}  {'VGG passes':>10}")
    for row in rows:
        ms = statistics.median(row["times"]) * 1e3
        print(f"{row['spec']:<{width}}  {ms:8.1f}  {ms / (base * 1e3):12.2f}  {row['passes']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
