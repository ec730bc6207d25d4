"""Executors side by side: the Ray executor against ``--jobs`` with the same number of
workers, on the same comparison (seg, 2 losses x 2 seeds, one thread per trial).

* ``--jobs N`` (:class:`cvloss.run.executor.ProcessExecutor`): N spawned worker processes;
* ``--executor ray`` (:class:`cvloss.run.ray_executor.RayExecutor`) on a local instance
  of N CPUs, started before the clock starts (instance start-up excluded; the workers'
  first import of torch is inside both timings, as it is for the pool's spawned workers).

Each runs into its own fresh results folder; printed: the wall time of each, the ratio
``jobs time / ray time`` (target >= 0.9: Ray costs at most ~10% over the process pool),
whether the metrics of every trial are identical, and the load average around the run.

    python benchmarks/executors.py            # quick-budget seg trials (minutes on 2 cores)
    python benchmarks/executors.py --small    # smoke-like sizes (seconds of training)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from cvloss.run.budgets import resolve_overrides
from cvloss.run.config import TrialConfig

SMALL = {"n_train": "32", "n_val": "8", "image_size": "48", "epochs": "4"}


def comparison(out: Path, budget: str, sets: dict[str, str], seeds: int) -> list[TrialConfig]:
    """The comparison's trials, seed-major as ``compare`` dispatches them."""
    overrides = resolve_overrides("seg", dict(sets))
    return [TrialConfig(task="seg", loss=loss, dataset="synth-pets", budget=budget, seed=seed, device="cpu",
                        out=str(out), feature_weights="random", overrides=overrides, threads=1)
            for seed in range(seeds) for loss in ("ce", "dice")]


def timed(executor, cfgs) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    summaries = executor.run(cfgs)
    return time.perf_counter() - t0, summaries


def ray_row(workers: int, budget: str, sets: dict[str, str], seeds: int, root: Path) -> dict:
    """The Ray executor against ``--jobs workers`` on one comparison."""
    import ray

    from cvloss.run.executor import ProcessExecutor
    from cvloss.run.ray_executor import RayExecutor

    load0 = os.getloadavg()
    t_jobs, jobs = timed(ProcessExecutor(workers, threads=1), comparison(root / "jobs", budget, sets, seeds))
    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - t0
    try:
        t_ray, rays = timed(RayExecutor(threads=1), comparison(root / "ray", budget, sets, seeds))
    finally:
        ray.shutdown()
    return {"workers": workers, "trials": len(jobs), "jobs_s": t_jobs, "ray_s": t_ray, "ray_init_s": t_init,
            "ratio": t_jobs / t_ray, "identical": [s["metrics"] for s in jobs] == [s["metrics"] for s in rays],
            "load": (load0, os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="smoke-like sizes instead of the quick budget")
    parser.add_argument("--workers", type=int, default=2, help="--jobs N against a Ray instance of N CPUs")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    budget, sets = ("smoke", SMALL) if args.small else ("quick", {})
    with tempfile.TemporaryDirectory(prefix="cvloss-bench-executors-") as tmp:
        row = ray_row(args.workers, budget, sets, args.seeds, Path(tmp))
    (l1, l5, _), (m1, m5, _) = row["load"]
    print(f"seg {budget}{'+' + '+'.join(f'{k}={v}' for k, v in sorted(sets.items())) if sets else ''}, "
          f"{row['trials']} trials, {row['workers']} workers, 1 thread each")
    print(f"  --jobs {row['workers']}:        {row['jobs_s']:7.1f} s")
    print(f"  --executor ray:   {row['ray_s']:7.1f} s   (ray.init {row['ray_init_s']:.1f} s, not counted)")
    print(f"  ratio jobs/ray:   {row['ratio']:7.2f}x  (target >= 0.9)  "
          f"{'PASS' if row['ratio'] >= 0.9 else 'FAIL'}; metrics identical: {row['identical']}")
    print(f"  load average (1/5 min): {l1:.2f}/{l5:.2f} before, {m1:.2f}/{m5:.2f} after; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
