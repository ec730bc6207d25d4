"""Training throughput of the cvloss runner against a minimal hand-written PyTorch loop.

Both train the same U-Net on the same decoded tensors with the same batch size, loss
(``ce``), optimiser and flips; they run side by side in this process, alternating, so
machine noise hits both. Printed:

* images/s of each and their ratio (target: runner / hand-written >= 0.95);
* the fraction of each runner epoch spent waiting for data, from epoch 2 on (target <= 10%:
  data is decoded once and kept as tensors).

The runner's numbers come from its own ``metrics.csv`` columns ``train_time_s`` (the
optimisation part of an epoch, evaluation excluded) and ``data_time_s``.

    python benchmarks/train_seg.py            # quick-budget sizes (a few minutes on 2 cores)
    python benchmarks/train_seg.py --small    # smoke-like sizes (seconds)
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from cvloss.run.config import TrialConfig
from cvloss.io import read_csv
from cvloss.run.trainer import resolve_device, run_trial, seed_everything
from cvloss.tasks.seg import SegTask


def hand_written_epochs(params: dict, epochs: int) -> list[float]:
    """The loop a user would write: returns images/s per epoch."""
    from cvloss.data.registry import load_dataset
    from cvloss.models.unet import UNet

    data = load_dataset("synth-pets", "train", size=params["image_size"], limit=params["n_train"])
    x_all = data.images.float().div(255)
    y_all = data.masks
    seed_everything(0)
    model = UNet(3, len(data.class_names), width=params["width"], depth=params["depth"])
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
    bs = params["batch_size"]
    rates = []
    for epoch in range(1, epochs + 1):
        g = torch.Generator().manual_seed(epoch)
        t0 = time.perf_counter()
        order = torch.randperm(len(x_all), generator=g)
        flips = torch.rand(len(x_all), generator=g) < 0.5
        seen = 0
        for b in range(len(x_all) // bs):
            idx = order[b * bs : (b + 1) * bs]
            x, y = x_all[idx], y_all[idx]
            f = flips[idx]
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
            y = torch.where(f[:, None, None], y.flip(-1), y)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            loss.item()  # the runner also reads the loss every step (divergence check)
            seen += len(idx)
        rates.append(seen / (time.perf_counter() - t0))
    return rates


def runner_epochs(params: dict, epochs: int, out: str) -> tuple[list[float], list[float]]:
    overrides = {k: params[k] for k in ("image_size", "n_train", "n_val", "width", "depth", "batch_size")}
    overrides["epochs"] = epochs
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="quick", seed=0, device="cpu", out=out,
                      overrides=overrides)
    run_trial(cfg)
    rows = read_csv(cfg.trial_dir / "metrics.csv")
    n_imgs = (params["n_train"] // params["batch_size"]) * params["batch_size"]
    rates = [n_imgs / float(r["train_time_s"]) for r in rows]
    waits = [float(r["data_time_s"]) / float(r["train_time_s"]) for r in rows]
    return rates, waits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="smoke-like sizes")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of runner / hand-written")
    args = ap.parse_args()
    params = dict(SegTask.spec.budgets["smoke" if args.small else "quick"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {resolve_device('cpu')}; "
          f"U-Net width {params['width']} depth {params['depth']}, {params['n_train']} images "
          f"{params['image_size']}px, batch {params['batch_size']}, {args.epochs} epochs x {args.rounds} rounds")
    runner, hand, waits = [], [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as out:
            rates, w = runner_epochs(params, args.epochs, out)
        runner += rates[1:]  # epoch 1 includes one-off warm-up
        waits += w[1:]
        hand += hand_written_epochs(params, args.epochs)[1:]
    r_med, h_med = statistics.median(runner), statistics.median(hand)
    print(f"{'loop':<14}{'images/s (median, epochs>=2)':>30}")
    print(f"{'runner':<14}{r_med:>30.1f}")
    print(f"{'hand-written':<14}{h_med:>30.1f}")
    print(f"ratio runner/hand-written: {r_med / h_med:.3f}  (target >= 0.95)")
    print(f"data-wait fraction of runner epochs >= 2: median {statistics.median(waits):.1%}, "
          f"max {max(waits):.1%}  (target <= 10%)")


if __name__ == "__main__":
    main()
