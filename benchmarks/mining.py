"""Cost of the in-batch triplet miners against the pairwise distance matrix alone.

    python benchmarks/mining.py                  # 256 embeddings x 128 dims, 32 ids x 8
    python benchmarks/mining.py --n 512 --repeats 31 --threads 2

Every miner of :mod:`cvloss.losses.metric` starts from :func:`pairwise_distances` (one
N×N Gram matmul); what it adds is the mining. This script times, on the same tensors and
in the same run, the distance matrix alone and each loss (batch-all, batch-hard,
semi-hard, and the contrastive loss for reference), forward only and forward + backward,
and prints each as a ratio to the distance matrix (target: ≤ 3×). Medians over
``--repeats`` runs after warm-up; the machine may be shared, so read the ratios, not the
absolute times.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from cvloss.losses.metric import (batch_all_triplet_loss, batch_hard_triplet_loss, contrastive_loss,
                                  pairwise_distances, semi_hard_triplet_loss)


def _median_ms(fn: Callable[[], None], repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="embeddings per batch (P×K)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=8, help="images per identity (K)")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(args.n, args.dim, generator=g), dim=1)
    labels = torch.arange(args.n // args.k).repeat_interleave(args.k)[: args.n]
    if len(labels) < args.n:
        labels = torch.cat([labels, labels[: args.n - len(labels)]])

    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "pairwise_distances (baseline)": lambda e: pairwise_distances(e, squared=True).sum(),
        "triplet batch_all": lambda e: batch_all_triplet_loss(e, labels)[0],
        "triplet batch_hard": lambda e: batch_hard_triplet_loss(e, labels),
        "triplet semi_hard": lambda e: semi_hard_triplet_loss(e, labels),
        "contrastive": lambda e: contrastive_loss(e, labels),
    }
    rows = []
    for name, f in losses.items():
        def fwd() -> None:
            with torch.no_grad():
                f(emb)

        def fwd_bwd() -> None:
            e = emb.clone().requires_grad_()
            f(e).backward()

        rows.append((name, _median_ms(fwd, args.repeats), _median_ms(fwd_bwd, args.repeats)))
    base_f, base_fb = rows[0][1], rows[0][2]
    print(f"N={args.n} embeddings x D={args.dim}, K={args.k} per identity, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"{'loss':32s} {'fwd ms':>8s} {'fwd x':>7s} {'fwd+bwd ms':>11s} {'fwd+bwd x':>10s}")
    for name, f_ms, fb_ms in rows:
        print(f"{name:32s} {f_ms:8.3f} {f_ms / base_f:7.2f} {fb_ms:11.3f} {fb_ms / base_fb:10.2f}")


if __name__ == "__main__":
    main()
