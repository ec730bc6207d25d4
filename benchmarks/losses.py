"""Speed and memory of every registered loss, as ratios against a plain baseline.

    python benchmarks/losses.py            # realistic sizes (minutes on a laptop CPU)
    python benchmarks/losses.py --quick    # small sizes, < 1 min on 2 cores
    python benchmarks/losses.py --only triplet,ce --repeats 9

For every loss in ``cvloss.losses.list_losses()`` (built with ``feature_weights="random"``
so no download is needed) it times forward + backward on fixed tensors and measures the
peak tensor memory of one forward + backward, next to a baseline timed in the same run on
the same tensors:

=============  ====================================================  ============================
kind           inputs (full / --quick)                               baseline
=============  ====================================================  ============================
seg            logits 8×3×256×256 + target (8,256,256) / 2×3×64×64    ``F.cross_entropy``
               (a loss that rejects C=3 is retried with C=1)         (C=1: BCE-with-logits)
image, cycle   pred, target 8×3×256×256 in [0,1] / 2×3×64×64          ``F.mse_loss``
metric         embeddings 256×128, 32 ids × 8 / 64×32, 8 ids × 8     ``torch.cdist`` (N×N matrix)
adversarial    D/critic outputs (8,1,30,30) / (2,1,6,6):             BCE-with-logits D + G terms
               ``d_loss(real, fake) + g_loss(fake)``
adversarial    ``penalty(critic, real, fake)`` through a 4-layer      one plain critic pass
  (.penalty)   conv critic on 8×3×256×256 / 2×3×64×64 images (only    ``critic(real).mean()``,
               when the loss has a differentiable penalty)           forward + backward
=============  ====================================================  ============================

See ``benchmarks/README.md`` for what each column measures. Rows that fail (a loss still
being written, an input it rejects) print ``error: ...`` instead of stopping the run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MiB = 1024.0 * 1024.0
# Non-default variants worth a row of their own: the triplet miners differ in cost
# (batch-all builds (N, N, N) tensors, semi-hard and batch-hard only (N, N)).
EXTRA_SPECS = ("triplet(mining=all)", "triplet(mining=batch_hard)")


# ---------------------------------------------------------------- peak tensor memory
class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storage allocated by ATen ops while the mode is active.

    Every op's output storages that the mode has not seen before count as new
    allocations (storages of op *inputs* seen first -- tensors that existed before -- are
    recorded as known and cost nothing, so views are free); a weakref callback subtracts
    a storage's bytes when it is freed. ``peak`` is the largest sum alive at once.

    It sees forward and backward ops (autograd runs them through the dispatcher), and
    gradients left in ``.grad``. It does not see allocator caching or fragmentation,
    scratch buffers a kernel allocates internally without returning a tensor (oneDNN
    workspaces, im2col), or Python objects. ``tracemalloc`` cannot be used: it only
    sees Python's allocator, not torch's; ``ru_maxrss`` only ever grows, so its deltas
    say nothing once an earlier step peaked higher.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def _track(self, t: torch.Tensor, count: bool) -> None:
        try:
            st = t.untyped_storage()
        except Exception:  # sparse / meta tensors have no plain storage
            return
        key = id(st)
        if key in self._refs and self._refs[key]() is st:
            return
        nbytes = st.nbytes() if count else 0
        self.current += nbytes
        self.peak = max(self.peak, self.current)

        def freed(_ref, key=key, nbytes=nbytes) -> None:
            self.current -= nbytes
            if self._refs.get(key) is _ref:
                del self._refs[key]

        self._refs[key] = weakref.ref(st, freed)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat_in, _ = tree_flatten((args, kwargs or {}))
        for t in flat_in:
            if isinstance(t, torch.Tensor):
                self._track(t, count=False)
        out = func(*args, **(kwargs or {}))
        flat_out, _ = tree_flatten(out)
        for t in flat_out:
            if isinstance(t, torch.Tensor):
                self._track(t, count=True)
        return out


# ---------------------------------------------------------------- timing
def _clear_grads(tensors: list[torch.Tensor], modules: list[nn.Module]) -> None:
    for t in tensors:
        t.grad = None
    for m in modules:
        m.zero_grad(set_to_none=True)


@dataclass
class Measure:
    ms: float
    peak_mib: float | None


def measure(step: Callable[[], torch.Tensor], leaves: list[torch.Tensor], modules: list[nn.Module],
            warmup: int, repeats: int) -> Measure:
    """Median wall time of ``step().backward()`` over ``repeats`` runs after ``warmup``,
    then one more run under :class:`PeakTensorMemory`."""

    def run() -> None:
        _clear_grads(leaves, modules)
        out = step()
        out.backward()

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    _clear_grads(leaves, modules)
    peak: float | None
    try:
        with PeakTensorMemory() as mem:
            out = step()
            out.backward()
            del out
        peak = mem.peak / MiB
    except Exception:
        peak = None
    _clear_grads(leaves, modules)
    return Measure(1000.0 * statistics.median(times), peak)


# ---------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Sizes:
    batch: int
    image: int
    classes: int
    emb_ids: int
    emb_per_id: int
    emb_dim: int


FULL = Sizes(batch=8, image=256, classes=3, emb_ids=32, emb_per_id=8, emb_dim=128)
QUICK = Sizes(batch=2, image=64, classes=3, emb_ids=8, emb_per_id=8, emb_dim=32)


def small_critic() -> nn.Module:
    """A PatchGAN-shaped critic: 256×256 → 30×30 map (64×64 → 6×6), 3→8→16→32→1 channels."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 1, 3, 1, 0),
    )


def blob_labels(n: int, h: int, classes: int, g: torch.Generator) -> torch.Tensor:
    """(n, h, h) int64 label maps of smooth blobs, about 8×8 blobs per image."""
    field = F.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=(h, h), mode="bicubic", align_corners=False)[:, 0]
    edges = torch.quantile(field.flatten(), torch.linspace(0, 1, classes + 1)[1:-1])
    return torch.bucketize(field, edges).long()


class Inputs:
    """All benchmark tensors, made once from a fixed seed so every row sees the same data."""

    def __init__(self, s: Sizes) -> None:
        g = torch.Generator().manual_seed(0)
        n, h = s.batch, s.image
        self.logits = torch.randn(n, s.classes, h, h, generator=g).requires_grad_()
        # Targets are blob-shaped label maps (a smooth random field cut at quantiles), like
        # real masks: per-pixel random labels would make every pixel its own object and
        # time the U-Net weight map on a case no dataset has.
        self.target = blob_labels(n, h, s.classes, g)
        self.logits1 = torch.randn(n, 1, h, h, generator=g).requires_grad_()
        self.target1 = blob_labels(n, h, 2, g)
        self.pred = torch.rand(n, 3, h, h, generator=g).requires_grad_()
        self.image = torch.rand(n, 3, h, h, generator=g)
        m = s.emb_ids * s.emb_per_id
        self.emb = F.normalize(torch.randn(m, s.emb_dim, generator=g), dim=1).requires_grad_()
        self.labels = torch.arange(s.emb_ids).repeat_interleave(s.emb_per_id)[torch.randperm(m, generator=g)]
        torch.manual_seed(0)
        self.critic = small_critic()
        self.real_img = torch.rand(n, 3, h, h, generator=g) * 2 - 1
        self.fake_img = (torch.rand(n, 3, h, h, generator=g) * 2 - 1).requires_grad_()
        with torch.no_grad():
            out_shape = self.critic(self.real_img).shape
        self.real_out = torch.randn(out_shape, generator=g).requires_grad_()
        self.fake_out = torch.randn(out_shape, generator=g).requires_grad_()

    def describe(self) -> str:
        return (f"seg logits {tuple(self.logits.shape)}, images {tuple(self.pred.shape)}, "
                f"embeddings {tuple(self.emb.shape)} ({int(self.labels.max()) + 1} ids), "
                f"D outputs {tuple(self.real_out.shape)}")


# ---------------------------------------------------------------- rows
@dataclass
class Row:
    name: str
    kind: str
    baseline: str
    loss: Measure | None = None
    base: Measure | None = None
    note: str = ""


def _bce_dg(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # Goodfellow's D terms on logits plus the non-saturating G term, all BCE-with-logits.
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))


def _error(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"error: {type(exc).__name__}: {msg}"[:110]


def bench_loss(spec: str, info, x: Inputs, cache: dict, warmup: int, repeats: int) -> list[Row]:
    """Rows for one loss spec (its registry entry ``info`` gives the input kind)."""
    from cvloss.losses import build_loss

    def baseline(key: str, step, leaves, modules=()) -> Measure:
        # Re-measured next to every row rather than once per run: the CPU is shared and
        # its speed drifts, and a baseline timed seconds away would skew the ratio.
        cache[key] = measure(step, leaves, list(modules), warmup, repeats)
        return cache[key]

    kind = info.kind
    try:
        loss = build_loss(spec, feature_weights="random")
    except Exception as exc:  # a family still being written
        return [Row(spec, kind, "-", note=_error(exc))]
    rows: list[Row] = []

    if kind == "seg":
        row = Row(spec, kind, "F.cross_entropy")
        try:
            loss(x.logits, x.target)  # does it take C=3?
            row.loss = measure(lambda: loss(x.logits, x.target), [x.logits], [loss], warmup, repeats)
            row.base = baseline("ce", lambda: F.cross_entropy(x.logits, x.target), [x.logits])
        except Exception as exc3:
            try:  # binary losses take one foreground channel
                row.baseline = "BCE-with-logits"
                row.note = f"C=1 (refuses C=3: {type(exc3).__name__})"
                row.loss = measure(lambda: loss(x.logits1, x.target1), [x.logits1], [loss], warmup, repeats)
                row.base = baseline("bce", lambda: F.binary_cross_entropy_with_logits(
                    x.logits1[:, 0], x.target1.float()), [x.logits1])
            except Exception as exc:
                row.note = _error(exc)
        rows.append(row)
    elif kind in ("image", "cycle"):
        row = Row(spec, kind, "F.mse_loss")
        try:
            row.loss = measure(lambda: loss(x.pred, x.image), [x.pred], [loss], warmup, repeats)
            row.base = baseline("mse", lambda: F.mse_loss(x.pred, x.image), [x.pred])
        except Exception as exc:
            row.note = _error(exc)
        rows.append(row)
    elif kind == "metric":
        row = Row(spec, kind, "torch.cdist")
        try:
            row.loss = measure(lambda: loss(x.emb, x.labels), [x.emb], [loss], warmup, repeats)
            row.base = baseline("cdist", lambda: torch.cdist(x.emb, x.emb).sum(), [x.emb])
        except Exception as exc:
            row.note = _error(exc)
        rows.append(row)
    elif kind == "adversarial":
        row = Row(spec, kind, "BCE D+G")
        leaves = [x.real_out, x.fake_out]
        try:
            row.loss = measure(lambda: loss.d_loss(x.real_out, x.fake_out) + loss.g_loss(x.fake_out),
                               leaves, [loss], warmup, repeats)
            row.base = baseline("bce_dg", lambda: _bce_dg(x.real_out, x.fake_out), leaves)
        except Exception as exc:
            row.note = _error(exc)
        rows.append(row)
        prow = Row(spec + ".penalty", kind, "critic pass")
        try:
            probe = loss.penalty(x.critic, x.real_img, x.fake_img)
            if torch.is_tensor(probe) and probe.requires_grad:
                del probe
                prow.loss = measure(lambda: loss.penalty(x.critic, x.real_img, x.fake_img),
                                    [x.fake_img], [x.critic, loss], warmup, repeats)
                prow.base = baseline("critic", lambda: x.critic(x.real_img).mean(), [], [x.critic])
                rows.append(prow)
        except Exception as exc:
            prow.note = _error(exc)
            rows.append(prow)
    else:
        rows.append(Row(spec, kind, "-", note=f"error: unknown kind {kind!r}"))
    return rows


# ---------------------------------------------------------------- table
def _fmt_ms(m: Measure | None) -> str:
    return "-" if m is None else (f"{m.ms:.3f}" if m.ms < 1 else f"{m.ms:.1f}")


def _fmt_mib(m: Measure | None) -> str:
    return "-" if m is None or m.peak_mib is None else f"{m.peak_mib:.3g}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 0.1 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def print_table(rows: list[Row], out=sys.stdout) -> None:
    head = ["loss", "kind", "ms", "baseline", "base ms", "time x", "peak MiB", "base MiB", "mem x", "note"]
    body = []
    for r in rows:
        body.append([
            r.name, r.kind, _fmt_ms(r.loss), r.baseline, _fmt_ms(r.base),
            _ratio(r.loss and r.loss.ms, r.base and r.base.ms),
            _fmt_mib(r.loss), _fmt_mib(r.base),
            _ratio(r.loss and r.loss.peak_mib, r.base and r.base.peak_mib),
            r.note,
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    numeric = {2, 4, 5, 6, 7, 8}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(head), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for b in body:
        print(line(b), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and fewer repeats (< 1 min on 2 cores)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (median); default 5")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    parser.add_argument("--only", default="", help="comma-separated loss names to run (default: all)")
    parser.add_argument("--spec", action="append", default=None, metavar="SPEC",
                        help="extra loss spec to add as a row, e.g. 'triplet(mining=all)' (repeatable); "
                             f"default: {', '.join(EXTRA_SPECS)}")
    args = parser.parse_args(argv)

    from cvloss.losses import get_loss_info, list_losses, parse_spec

    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or 5
    torch.manual_seed(0)
    x = Inputs(sizes)
    infos = list_losses()
    wanted: set[str] = set()
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        infos = [i for i in infos if i.name in wanted]
    print(f"cvloss loss benchmark ({'quick' if args.quick else 'full'}): torch {torch.__version__}, "
          f"CPU threads {torch.get_num_threads()}, forward+backward, median of {repeats} after {args.warmup} warm-up")
    print(f"inputs: {x.describe()}")
    print()
    t0 = time.perf_counter()
    cache: dict = {}
    rows: list[Row] = []
    jobs = [(info.name, info) for info in infos]
    for spec in (EXTRA_SPECS if args.spec is None else args.spec):
        try:
            name = parse_spec(spec)[0].name
            if args.only and name not in wanted:
                continue
            info = get_loss_info(name)
            # Next to the loss's default row when it is in the table, else at the end.
            at = max((k + 1 for k, (_, i) in enumerate(jobs) if i.name == name), default=len(jobs))
            jobs.insert(at, (spec, info))
        except Exception as exc:
            rows.append(Row(spec, "?", "-", note=_error(exc)))
    for spec, info in jobs:
        try:
            rows.extend(bench_loss(spec, info, x, cache, args.warmup, repeats))
        except Exception as exc:  # never let one loss stop the table
            rows.append(Row(spec, info.kind, "-", note=_error(exc)))
    print_table(rows)
    print(f"\n{len(rows)} rows, {sum(r.loss is None for r in rows)} without a measurement; "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
