"""Executors and shared work, each a ratio measured side by side in one run.

1. ``compare --jobs 2 --threads 1`` against serial ``compare --threads 2`` on a quick seg
   comparison of 2 losses x 2 seeds, each as its own ``cvloss`` command (fresh --out),
   alternated ``--rounds`` times; the ratio is serial / parallel (median wall time).
   Target on 2 cores: >= 1.6x.
2. A wce U-Net training step (forward, wce with the cached border map, backward, Adam)
   against the same step with plain ``F.cross_entropy`` times a precomputed weight map.
   Target: <= 1.2x.
3. ``--executor ray`` against ``--jobs N`` (N = ``--workers``, default 2, one thread per
   trial) on the same quick comparison, both in this process (``RayExecutor`` and
   ``ProcessExecutor`` on the same trial configurations, fresh folders), the Ray instance
   (N CPUs) started before the clock: instance start-up excluded, the workers' first
   import of torch inside both timings (the pool's spawned workers pay it too). The
   ratio is jobs time / Ray time; target >= 0.9x. Also printed: whether every trial's
   metrics are identical, and the load average before and after.
4. ``--executor slurm`` against ``--jobs N`` the same way (``SlurmExecutor`` at one
   thread per job, ``ProcessExecutor``), on the Slurm cluster of ``$SLURM_CONF`` when
   ``squeue`` answers, else on a one-node Slurm of N CPUs that the benchmark starts
   itself (tests/fixtures/slurm_cluster.py: Debian's slurm-wlm and munge, root) before the
   clock: scheduler start-up excluded; the run's ``sbatch --test-only``, probe job,
   submissions and each job's own start (Python, torch) inside the timing. The ratio is
   jobs time / Slurm time; target >= 0.8x.

    python benchmarks/executors.py                 # both (minutes on a 2-core CPU)
    python benchmarks/executors.py --only step     # the step ratio alone (seconds)
    python benchmarks/executors.py --set epochs=2  # a shorter comparison
    python benchmarks/executors.py --only ray      # the Ray row (needs cvloss[ray])
    python benchmarks/executors.py --only slurm    # the Slurm row (needs cvloss[slurm] and Slurm)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _compare(out: str, jobs: int, threads: int, sets: list[str]) -> float:
    cmd = [sys.executable, "-m", "cvloss.cli", "compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "2",
           "--budget", "quick", "--threads", str(threads), "--jobs", str(jobs), "--out", out, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CVLOSS_PLOT_FORMATS": "png"}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_jobs(rounds: int, sets: list[str]) -> float:
    serial, pooled = [], []
    for r in range(rounds):
        for name, jobs, threads, times in (("serial", 1, 2, serial), ("jobs 2", 2, 1, pooled)):
            with tempfile.TemporaryDirectory() as out:
                times.append(_compare(out, jobs, threads, sets))
            print(f"round {r + 1}: {name:7s} {times[-1]:7.1f} s", flush=True)
    s, p = statistics.median(serial), statistics.median(pooled)
    print(f"quick seg compare ce,dice x 2 seeds: serial (2 threads) {s:.1f} s, --jobs 2 (1 thread each) {p:.1f} s: "
          f"{s / p:.2f}x (target >= 1.6x)")
    return s / p


def bench_step(batch: int, size: int, repeats: int) -> float:
    import torch
    import torch.nn.functional as F

    from cvloss.losses import build_loss
    from cvloss.losses.segmentation import class_balanced_weights, supplied_borders, wce_terms
    from cvloss.models.unet import UNet

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g)
    field_ = F.interpolate(torch.rand(batch, 1, 8, 8, generator=g), size=(size, size), mode="bicubic")[:, 0]
    t = torch.bucketize(field_, torch.quantile(field_.flatten(), torch.tensor([0.33, 0.66]))).long()
    loss = build_loss("wce", task="seg")
    t0 = time.perf_counter()
    borders = {term: term.border_map(t) for term in wce_terms(loss)}  # what the seg task caches per image
    map_s = time.perf_counter() - t0
    wmap = class_balanced_weights(t, 3)[t] + next(iter(borders.values()))  # eq. 2, precomputed whole

    def step(model, opt, objective):
        opt.zero_grad(set_to_none=True)
        objective(model(x)).backward()
        opt.step()

    def cached(z):
        with supplied_borders(borders):
            return loss(z, t)

    def plain(z):
        return (F.cross_entropy(z, t, reduction="none") * wmap).sum() / wmap.sum()

    runs = {}
    for name, objective in (("wce, cached map", cached), ("F.cross_entropy x map", plain)):
        torch.manual_seed(0)
        model = UNet(width=16, depth=3)
        runs[name] = (model, torch.optim.Adam(model.parameters(), 1e-3), objective, [])
    for _ in range(repeats):  # alternated: the machine's load hits both alike
        for model, opt, objective, times in runs.values():
            t0 = time.perf_counter()
            step(model, opt, objective)
            times.append(time.perf_counter() - t0)
    med = {k: statistics.median(v[3][1:]) for k, v in runs.items()}
    ratio = med["wce, cached map"] / med["F.cross_entropy x map"]
    print(f"U-Net step {batch}x3x{size}x{size}, 1 thread, median of {repeats - 1}: "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in med.items())
          + f": {ratio:.2f}x (target <= 1.2x); the border map itself: {map_s * 1e3:.0f} ms per batch (computed once)")
    return ratio


def _quick_trials(out: str, sets: list[str]) -> list:
    """The quick seg comparison ce,dice x 2 seeds, seed-major as compare dispatches them."""
    from cvloss.run.budgets import parse_overrides, resolve_overrides
    from cvloss.run.config import TrialConfig

    overrides = resolve_overrides("seg", parse_overrides(sets))
    return [TrialConfig(task="seg", loss=loss, dataset="synth-pets", budget="quick", seed=seed, device="cpu",
                        out=out, feature_weights="random", overrides=overrides, threads=1)
            for seed in range(2) for loss in ("ce", "dice")]


def _timed(executor, out: str, sets: list[str]) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    summaries = executor.run(_quick_trials(out, sets))
    return time.perf_counter() - t0, summaries


def bench_ray(workers: int, sets: list[str]) -> float:
    import ray
    import torch

    from cvloss.run.executor import ProcessExecutor
    from cvloss.run.ray_executor import RayExecutor

    torch.set_num_threads(1)

    def timed(executor, out: str) -> tuple[float, list[dict]]:
        return _timed(executor, out, sets)

    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as jobs_out, tempfile.TemporaryDirectory() as ray_out:
        t_jobs, jobs = timed(ProcessExecutor(workers, threads=1), jobs_out)
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - t0
        try:
            t_ray, rays = timed(RayExecutor(threads=1), ray_out)
        finally:
            ray.shutdown()
    return _ratio_line(f"{workers} workers x 1 thread", workers, (t_jobs, jobs), ("ray", t_ray, rays),
                       f"ray.init {t_init:.1f} s", 0.9, before)


def _slurm_cluster(cpus: int):
    """(cluster to stop or None, where): ``$SLURM_CONF``'s cluster when squeue answers,
    else a one-node Slurm of ``cpus`` CPUs started now (tests/fixtures/slurm_cluster.py)."""
    import importlib.util
    import shutil

    if shutil.which("squeue") and subprocess.run(["squeue", "--noheader"], capture_output=True).returncode == 0:
        return None, f"the cluster of {os.environ.get('SLURM_CONF', 'the default slurm.conf')}"
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tests" / "fixtures" / "slurm_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reason = module.missing()
    if reason:
        raise SystemExit(f"--only slurm: no Slurm here ({reason})")
    cluster = module.LocalSlurm(cpus=cpus).start()
    os.environ["SLURM_CONF"] = str(cluster.conf)
    return cluster, f"a one-node Slurm of {cpus} CPUs started for this benchmark"


def bench_slurm(workers: int, sets: list[str]) -> float:
    import torch

    from cvloss.run.executor import ProcessExecutor
    from cvloss.run.slurm_executor import SlurmExecutor

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cluster, where = _slurm_cluster(workers)
    t_start = time.perf_counter() - t0
    before = os.getloadavg()
    try:
        # The Slurm results folder in the working directory (run it from shared storage on a
        # real cluster: the probe refuses a node-local folder such as /tmp).
        with tempfile.TemporaryDirectory() as jobs_out, tempfile.TemporaryDirectory(dir=os.getcwd()) as slurm_out:
            t_jobs, jobs = _timed(ProcessExecutor(workers, threads=1), jobs_out, sets)
            t_slurm, slurms = _timed(SlurmExecutor(threads=1), slurm_out, sets)
    finally:
        if cluster is not None:
            cluster.stop()
    return _ratio_line(f"1 thread per trial, on {where}", workers, (t_jobs, jobs), ("slurm", t_slurm, slurms),
                       f"scheduler start {t_start:.1f} s", 0.8, before)


def _ratio_line(setup: str, workers: int, baseline: tuple, other: tuple, excluded: str, target: float,
                before: tuple) -> float:
    """Print one executor against ``--jobs`` (same trials, same run) and return the ratio
    jobs time / executor time; ``baseline`` = (seconds, summaries), ``other`` = (name,
    seconds, summaries)."""
    (t_jobs, jobs), (name, t_other, others) = baseline, other
    after = os.getloadavg()
    same = [s["metrics"] for s in jobs] == [s["metrics"] for s in others]
    print(f"quick seg ce,dice x 2 seeds, {setup}: --jobs {workers} {t_jobs:.1f} s, --executor {name} "
          f"{t_other:.1f} s ({excluded} not counted): {t_jobs / t_other:.2f}x (target >= {target}x); metrics "
          f"identical: {same}; load average {before[0]:.2f}/{before[1]:.2f} before, {after[0]:.2f}/{after[1]:.2f} after")
    return t_jobs / t_other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["jobs", "step", "ray", "slurm"])
    ap.add_argument("--workers", type=int, default=2,
                    help="ray, slurm: --jobs N against a Ray instance (a one-node Slurm) of N CPUs")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="--set for the comparison")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    try:
        load = os.getloadavg()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        pass
    if args.only in (None, "step"):
        bench_step(args.batch, args.size, args.repeats)
    if args.only in (None, "jobs"):
        bench_jobs(args.rounds, args.sets)
    if args.only in (None, "ray"):
        bench_ray(args.workers, args.sets)
    if args.only in (None, "slurm"):
        bench_slurm(args.workers, args.sets)


if __name__ == "__main__":
    main()
