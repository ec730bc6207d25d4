"""CycleGAN step speed: the ``translate`` task's step against a minimal hand-written loop.

    python benchmarks/cyclegan.py                 # quick-budget networks, 32 px, batch 8
    python benchmarks/cyclegan.py --size 64 --width 32 --blocks 6 --batch 4 --steps 20

Rows:

* ``task step`` vs ``hand loop``: iterations/s of ``TranslateTask.train_step`` under
  ``2*lsgan+cycle+identity`` and of a plain loop written here with the same networks
  (same initial weights), the same objective (LSGAN as MSE, L1 cycle λ = 10, identity 5),
  the same Adam settings and a 50-image pool, on the same batches. Target ratio >= 0.95.
* ``wgan_gp`` vs ``wgan``: the cost of the gradient penalty, with one critic step per
  batch (``n_critic=1``, so every step has the same G and D work and differs only by the
  penalty's double backward) and with the papers' ``n_critic=5`` (per batch, averaged).

Timing: blocks of ``--steps`` steps, alternating between the two sides of a row (ABAB...)
for ``--rounds`` rounds so that drift of a shared CPU hits both alike; the median
block rate is reported. One intra-op thread by default (``--threads``).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from cvloss.losses import build_loss
from cvloss.tasks.translate import TranslateTask


def make_task(args) -> TranslateTask:
    params = TranslateTask.spec.budgets["quick"] | dict(image_size=args.size, batch_size=args.batch, g_width=args.width,
                                                   d_width=args.width, n_blocks=args.blocks, n_train=args.batch * 8,
                                                   n_val=8, fid=False, epochs=100)
    task = TranslateTask("synth-stripes", params, torch.device("cpu"))
    task.load_data()
    return task


class HandLoop:
    """A from-scratch CycleGAN step (the official code's order: G step, then D step)."""

    def __init__(self, model, lr=2e-4):
        self.m = model
        self.opt_g = torch.optim.Adam([*model.g_ab.parameters(), *model.g_ba.parameters()], lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam([*model.d_a.parameters(), *model.d_b.parameters()], lr, betas=(0.5, 0.999))
        self.pool_a, self.pool_b = [], []

    def _pool(self, pool, x):
        out = []
        for img in x:
            if len(pool) < 50:
                pool.append(img)
                out.append(img)
            elif torch.rand(()) > 0.5:
                i = int(torch.randint(50, ()))
                out.append(pool[i])
                pool[i] = img
            else:
                out.append(img)
        return torch.stack(out)

    def step(self, a, b):
        m = self.m
        for p in [*m.d_a.parameters(), *m.d_b.parameters()]:
            p.requires_grad_(False)
        fb, fa = m.g_ab(a), m.g_ba(b)
        pb, pa = m.d_b(fb), m.d_a(fa)
        g = (F.mse_loss(pb, torch.ones_like(pb)) + F.mse_loss(pa, torch.ones_like(pa))
             + 10 * (F.l1_loss(m.g_ba(fb), a) + F.l1_loss(m.g_ab(fa), b))
             + 5 * (F.l1_loss(m.g_ab(b), b) + F.l1_loss(m.g_ba(a), a)))
        self.opt_g.zero_grad(set_to_none=True)
        g.backward()
        self.opt_g.step()
        for p in [*m.d_a.parameters(), *m.d_b.parameters()]:
            p.requires_grad_(True)
        fb, fa = self._pool(self.pool_b, fb.detach()), self._pool(self.pool_a, fa.detach())
        rb, ffb, ra, ffa = m.d_b(b), m.d_b(fb), m.d_a(a), m.d_a(fa)
        d = 0.5 * (F.mse_loss(rb, torch.ones_like(rb)) + F.mse_loss(ffb, torch.zeros_like(ffb))
                   + F.mse_loss(ra, torch.ones_like(ra)) + F.mse_loss(ffa, torch.zeros_like(ffa)))
        self.opt_d.zero_grad(set_to_none=True)
        d.backward()
        self.opt_d.step()
        return g.detach()


def timed(fn, batches, steps):
    t0 = time.perf_counter()
    for i in range(steps):
        float(fn(batches[i % len(batches)]))  # synchronise like the trainer does
    return steps / (time.perf_counter() - t0)


def compare(name_a, fn_a, name_b, fn_b, batches, args):
    fn_a(batches[0]), fn_b(batches[0])  # warm-up (allocator, oneDNN primitives)
    ra, rb = [], []
    for _ in range(args.rounds):
        ra.append(timed(fn_a, batches, args.steps))
        rb.append(timed(fn_b, batches, args.steps))
    a, b = statistics.median(ra), statistics.median(rb)
    print(f"{name_a:<34} {a:8.2f} it/s   {name_b:<34} {b:8.2f} it/s   ratio {a / b:5.3f}")
    return a / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=5, help="alternating blocks per side")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    task = make_task(args)
    batches = list(task.train_batches(torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model_task = task.build_model()
    model_hand = copy.deepcopy(model_task)  # same networks, same initial weights
    plan = task.plan(build_loss("2*lsgan+cycle+identity", task="translate"))
    opts = plan.build_optimizers(model_task)
    hand = HandLoop(model_hand)
    print(f"CycleGAN {args.size}px, batch {args.batch}, width {args.width}, {args.blocks} blocks, "
          f"{sum(p.numel() for p in model_task.parameters())} parameters, {torch.get_num_threads()} thread(s)")
    compare("task step (2*lsgan+cycle+identity)", lambda b: task.train_step(model_task, plan, opts, b)["loss"],
            "hand loop", lambda b: hand.step(*b), batches, args)

    for n_critic in (1, 5):
        t_gp, t_wg = make_task(args), make_task(args)  # each plan's stepper is its task's state
        gp = t_gp.plan(build_loss(f"wgan_gp(n_critic={n_critic})+cycle+identity", task="translate"))
        wg = t_wg.plan(build_loss(f"wgan(n_critic={n_critic})+cycle+identity", task="translate"))
        torch.manual_seed(0)
        m1 = task.build_model()
        m2 = copy.deepcopy(m1)
        o1, o2 = gp.build_optimizers(m1), wg.build_optimizers(m2)
        compare(f"wgan (n_critic={n_critic})", lambda b: t_wg.train_step(m2, wg, o2, b)["loss"],
                f"wgan_gp (n_critic={n_critic})", lambda b: t_gp.train_step(m1, gp, o1, b)["loss"], batches, args)
    print("ratio of the wgan rows = plain wgan speed / wgan_gp speed = the cost factor of the gradient penalty")


if __name__ == "__main__":
    main()
