"""Speed and memory of every registered loss, against a plain-torch baseline and the peer
libraries that have the same loss, timed side by side in one run.

    python benchmarks/losses.py                      # the issue-18 sizes (a few minutes, 1 thread)
    python benchmarks/losses.py --quick              # small sizes, < 1 min
    python benchmarks/losses.py --only triplet,wce,dice,mse,ce --repeats 31
    python benchmarks/losses.py --spec "triplet(mining=all,squared=false)"

Every loss in ``cvloss.losses.list_losses()`` (defaults, ``feature_weights="random"``) plus
the specs of ``EXTRA_SPECS`` / ``--spec`` is one row; each row times forward + backward of
the cvloss loss next to its comparators on the same tensors:

* ``baseline`` -- the plain-torch baseline of its input kind (``F.cross_entropy`` for seg,
  ``F.mse_loss`` for images, ``torch.cdist`` for embeddings, BCE-with-logits D + G for
  adversarial objectives, one critic pass for a gradient penalty), as before;
* ``peer`` -- the same loss in a peer library, configured to the same formula where it
  can be (piq, kornia, MONAI, pytorch-metric-learning: the ``cvloss[bench]`` extra);
  a peer that is not importable is listed once with the reason and skipped;
* ``floor`` -- the cheapest plain-torch program that computes the same value (wce: one
  ``F.cross_entropy`` with the precomputed weight map; the VGG losses: one hand-written
  torchvision VGG pass computing the same layers and Grams).

Timing: ``--repeats`` (default 15) rounds after one warm-up -- more for cheap rows, up
to 400, to fill ``--min-seconds`` (2) per row; in each round every candidate of the row
runs once, in an order rotated from round to round, so drift of a shared CPU hits them
alike; the median per candidate is reported, and ``time x`` is the median over rounds
of the ratio of the two times taken in the same round (paired, so a slow stretch of the
machine cancels). Gradients are cleared outside the timing. One intra-op thread
(``--threads``). Memory: the peak of one more forward + backward -- on CUDA
``torch.cuda.max_memory_allocated`` above what was allocated before; on the CPU the
allocator profile of ``torch.profiler`` (``profile_memory=True``): the running sum of
every allocation minus every free during the step, its maximum. That sees all tensor
storage the step allocates -- activations saved for backward, temporaries, kernels'
scratch buffers, the gradients left in ``.grad`` -- but not memory that existed before
(inputs, VGG weights) nor Python objects. ``value`` compares the candidate's value with
cvloss's where both compute the same quantity (``=`` within 1e-5 relative, else the
relative difference), so a ratio is never one between different formulas.

The last table checks the issue-18 targets (ratio of each row to its best comparator).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

MiB = 1024.0 * 1024.0
# Non-default variants worth a row: the triplet miners differ in cost, and the combined
# feature loss shares one VGG pass between its terms.
COMBINED = "l1+perceptual+texture(arch=vgg16)"
EXTRA_SPECS = ("triplet(mining=all)", "triplet(mining=batch_hard)", COMBINED)
# The speed targets: row -> (comparator label prefix, target ratio).
TARGETS = {
    "triplet(mining=all)": ("PML TripletMarginLoss", 1.05),
    "wce": ("floor", 1.2),
    "dice": ("MONAI DiceLoss", 1.05),
    "mse": ("F.mse_loss", 1.05),
    "ce": ("F.cross_entropy", 1.05),
    COMBINED: ("floor", 1.05),
}


# ---------------------------------------------------------------- measuring
@dataclass
class Candidate:
    label: str  # what is timed: "cvloss", "baseline: F.mse_loss", "MONAI DiceLoss(...)", ...
    step: Callable[[], torch.Tensor]
    leaves: list[torch.Tensor]
    modules: list[nn.Module] = field(default_factory=list)
    same_value: bool = False  # computes the same number as the cvloss loss
    times: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    value: float | None = None

    @property
    def ms(self) -> float | None:
        return 1000.0 * statistics.median(self.times) if self.times else None

    def clear(self) -> None:
        for t in self.leaves:
            t.grad = None
        for m in self.modules:
            m.zero_grad(set_to_none=True)

    def run(self) -> torch.Tensor:
        """One forward + backward (gradients are cleared by the caller, untimed)."""
        out = self.step()
        out.backward()
        return out.detach()


def peak_memory_mib(c: Candidate) -> float:
    """Peak bytes allocated during one forward + backward of ``c`` (see the docstring)."""
    c.clear()
    if any(t.is_cuda for t in c.leaves):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        c.run()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            c.run()
        events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                        key=lambda e: e.start_ns())
        current = peak = 0
        for e in events:
            current += e.nbytes()
            peak = max(peak, current)
    c.clear()
    return peak / MiB


def measure_row(cands: list[Candidate], repeats: int, warmup: int, memory: bool, min_seconds: float = 0.0) -> None:
    """Interleaved timing: each round runs every candidate once, order rotated per round.

    At least ``repeats`` rounds; more (up to 400) for cheap rows, until the rounds fill
    about ``min_seconds``: a sub-millisecond median of 15 is at the mercy of one
    scheduler hiccup on a shared CPU."""
    if not cands:
        return
    sync = torch.cuda.synchronize if any(t.is_cuda for c in cands for t in c.leaves) else (lambda: None)
    t0 = time.perf_counter()
    for c in cands:
        for _ in range(warmup):
            c.clear()
            c.value = float(c.run())
    sync()
    per_round = (time.perf_counter() - t0) / max(warmup, 1)
    rounds = max(repeats, min(400, int(min_seconds / max(per_round, 1e-9))))
    for r in range(rounds):
        k = r % len(cands)
        for c in cands[k:] + cands[:k]:
            c.clear()
            sync()
            t0 = time.perf_counter()
            c.run()
            sync()
            c.times.append(time.perf_counter() - t0)
    if memory:
        for c in cands:
            try:
                c.peak_mib = peak_memory_mib(c)
            except Exception:  # a profiler that cannot start: leave the column empty
                c.peak_mib = None
    for c in cands:
        c.clear()


# ---------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Sizes:
    batch: int
    image: int
    classes: int
    emb_ids: int
    emb_per_id: int
    emb_dim: int


FULL = Sizes(batch=4, image=128, classes=3, emb_ids=64, emb_per_id=4, emb_dim=128)
QUICK = Sizes(batch=2, image=64, classes=3, emb_ids=16, emb_per_id=4, emb_dim=32)


def small_critic() -> nn.Module:
    """A PatchGAN-shaped critic, 3→8→16→32→1 channels (128×128 → 14×14)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 1, 3, 1, 0),
    )


def blob_labels(n: int, h: int, classes: int, g: torch.Generator) -> torch.Tensor:
    """(n, h, h) int64 label maps of smooth blobs, about 8×8 blobs per image."""
    field_ = F.interpolate(torch.rand(n, 1, 8, 8, generator=g), size=(h, h), mode="bicubic", align_corners=False)[:, 0]
    edges = torch.quantile(field_.flatten(), torch.linspace(0, 1, classes + 1)[1:-1])
    return torch.bucketize(field_, edges).long()


class Inputs:
    """All benchmark tensors, made once from a fixed seed so every row sees the same data."""

    def __init__(self, s: Sizes, device: str) -> None:
        g = torch.Generator().manual_seed(0)
        n, h = s.batch, s.image

        def leaf(t: torch.Tensor) -> torch.Tensor:
            return t.to(device).requires_grad_()

        self.logits = leaf(torch.randn(n, s.classes, h, h, generator=g))
        # Blob-shaped label maps (a smooth random field cut at quantiles), like real
        # masks: per-pixel random labels would make every pixel its own object.
        self.target = blob_labels(n, h, s.classes, g).to(device)
        self.logits1 = leaf(torch.randn(n, 1, h, h, generator=g))
        self.target1 = blob_labels(n, h, 2, g).to(device)
        self.pred = leaf(torch.rand(n, 3, h, h, generator=g))
        self.image = torch.rand(n, 3, h, h, generator=g).to(device)
        m = s.emb_ids * s.emb_per_id
        self.emb = leaf(F.normalize(torch.randn(m, s.emb_dim, generator=g), dim=1))
        self.labels = torch.arange(s.emb_ids).repeat_interleave(s.emb_per_id)[torch.randperm(m, generator=g)].to(device)
        self.pk = (s.emb_ids, s.emb_per_id)
        self.class_logits = leaf(torch.randn(m, s.emb_ids, generator=g))  # softmax baseline of embed
        self.triplets = [leaf(F.normalize(torch.randn(m // 3, s.emb_dim, generator=g), dim=1)) for _ in range(3)]
        torch.manual_seed(0)
        self.critic = small_critic().to(device)
        self.real_img = (torch.rand(n, 3, h, h, generator=g) * 2 - 1).to(device)
        self.fake_img = leaf(torch.rand(n, 3, h, h, generator=g) * 2 - 1)
        with torch.no_grad():
            out_shape = self.critic(self.real_img).shape
        self.real_out = leaf(torch.randn(out_shape, generator=g))
        self.fake_out = leaf(torch.randn(out_shape, generator=g))

    def describe(self) -> str:
        return (f"seg logits {tuple(self.logits.shape)} with blob labels, images {tuple(self.pred.shape)}, "
                f"embeddings {tuple(self.emb.shape)} (P={self.pk[0]}, K={self.pk[1]}), "
                f"D outputs {tuple(self.real_out.shape)}")


# ---------------------------------------------------------------- peers
PEER_STATUS: dict[str, str] = {}  # library -> version, or why it is skipped


def _peer(module: str, label: str):
    """Import a peer library; ``None`` (and the reason in PEER_STATUS) when it cannot be."""
    try:
        mod = __import__(module, fromlist=["_"])
        top = sys.modules[module.split(".")[0]]
        PEER_STATUS.setdefault(label, f"{label} {getattr(top, '__version__', '?')}")
        return mod
    except Exception as exc:  # not installed, or broken against this torch
        PEER_STATUS.setdefault(label, f"{label}: skipped ({type(exc).__name__}: {' '.join(str(exc).split())[:80]})")
        return None


def _onehot(target: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(target, c).permute(0, 3, 1, 2).float()


def seg_peers(name: str, x: Inputs) -> list[Candidate]:
    z, t, c = x.logits, x.target, x.logits.shape[1]
    out: list[Candidate] = []
    if name == "dice":
        monai = _peer("monai.losses", "MONAI")
        if monai:
            dice = monai.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
            out.append(Candidate("MONAI DiceLoss(softmax, one-hot, batch)", lambda: dice(z, t[:, None]), [z], same_value=True))
    elif name == "focal":
        kornia = _peer("kornia.losses", "kornia")
        if kornia:
            out.append(Candidate("kornia focal_loss(alpha=None, gamma=2)",
                                 lambda: kornia.focal_loss(z, t, alpha=None, gamma=2.0, reduction="mean"), [z]))
    elif name == "cldice":
        monai = _peer("monai.losses", "MONAI")
        if monai:
            cl = monai.SoftDiceclDiceLoss(iter_=3, alpha=0.5, smooth=1.0)
            out.append(Candidate("MONAI SoftDiceclDiceLoss(iter=3, alpha=0.5)",
                                 lambda: cl(_onehot(t, c), F.softmax(z, dim=1)), [z]))
    return out


def wce_floor(loss, x: Inputs) -> tuple[Callable, Candidate]:
    """cvloss wce with the border map cached (as the seg task runs it), and the floor:
    F.cross_entropy with the precomputed weight map w = 1 + border."""
    from cvloss.losses.segmentation import supplied_borders, wce_terms

    z, t = x.logits, x.target
    borders = {term: term.border_map(t) for term in wce_terms(loss)}
    wmap = (1.0 + next(iter(borders.values()))) if borders else torch.ones(t.shape, device=t.device)

    def cached():
        with supplied_borders(borders):
            return loss(z, t)

    def floor():
        return (F.cross_entropy(z, t, reduction="none") * wmap).sum() / wmap.sum()

    return cached, Candidate("floor: F.cross_entropy x precomputed map", floor, [z], same_value=True)


def image_peers(name: str, x: Inputs) -> list[Candidate]:
    p, t = x.pred, x.image
    out: list[Candidate] = []
    if name == "l1":
        out.append(Candidate("F.l1_loss", lambda: F.l1_loss(p, t), [p], same_value=True))
    elif name == "ssim":
        piq = _peer("piq", "piq")
        if piq:
            out.append(Candidate("piq ssim (1 - SSIM)", lambda: 1.0 - piq.ssim(p, t, data_range=1.0, downsample=False), [p]))
        kornia = _peer("kornia.losses", "kornia")
        if kornia:
            out.append(Candidate("kornia ssim_loss", lambda: kornia.ssim_loss(p, t, window_size=11), [p]))
    elif name == "tv":
        kornia = _peer("kornia.losses", "kornia")
        if kornia:
            out.append(Candidate("kornia total_variation", lambda: kornia.total_variation(p, reduction="mean").mean(), [p]))
    return out


def metric_peers(spec: str, loss, x: Inputs) -> list[Candidate]:
    pml = _peer("pytorch_metric_learning", "pytorch-metric-learning")
    if not pml or getattr(loss, "mining", None) is None:
        return []
    from pytorch_metric_learning import distances, losses, miners

    e, y = x.emb, x.labels
    # The embeddings are unit-norm already (as the embed task feeds them): PML's own
    # normalisation is off, so value *and* gradient are cvloss's (tests/losses/test_fast_paths.py).
    dist = distances.LpDistance(normalize_embeddings=False, p=2, power=2 if loss.squared else 1)
    tml = losses.TripletMarginLoss(margin=loss.margin, distance=dist, triplets_per_anchor="all")
    if loss.mining == "all":
        return [Candidate("PML TripletMarginLoss(all triplets)", lambda: tml(e, y), [e], same_value=True)]
    if loss.mining == "batch_hard":
        miner = miners.BatchHardMiner(distance=dist)
        return [Candidate("PML BatchHardMiner + TripletMarginLoss", lambda: tml(e, y, miner(e, y)), [e])]
    miner = miners.TripletMarginMiner(margin=loss.margin, distance=dist, type_of_triplets="semihard")
    return [Candidate("PML TripletMarginMiner(semihard) + TripletMarginLoss", lambda: tml(e, y, miner(e, y)), [e])]


# ---------------------------------------------------------------- hand-written VGG floors
def _gram_term(fp: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    n, c, h, w = fp.shape
    gp = torch.bmm(fp.reshape(n, c, h * w), fp.reshape(n, c, h * w).transpose(1, 2)) / (c * h * w)
    gt = torch.bmm(ft.reshape(n, c, h * w), ft.reshape(n, c, h * w).transpose(1, 2)) / (c * h * w)
    return 0.25 * (gp - gt).square().sum(dim=(1, 2)).mean()


def vgg_floor_fn(loss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """One hand-written torchvision VGG pass computing the feature terms of ``loss``
    (perceptual / texture / style / content and an l1 term): the same weights, layers,
    constants and Grams, with torchvision's in-place ReLUs and no checks, sharing, dicts
    or upcasts -- the cheapest plain-torch program for the same value. ``None`` when
    ``loss`` has other terms or more than one feature network."""
    import torchvision

    from cvloss.losses.features import IMAGENET_MEAN, IMAGENET_STD, LAYER_INDEX
    from cvloss.losses.perceptual import ContentLoss, PerceptualLoss
    from cvloss.losses.pixel import L1Loss
    from cvloss.losses.style import StyleLoss, TextureLoss

    terms = loss.weighted_terms() if hasattr(loss, "weighted_terms") else [(1.0, loss)]
    nets = {id(t.extractor) for _, t in terms if hasattr(t, "extractor")}
    if len(nets) != 1 or any(not isinstance(t, (PerceptualLoss, ContentLoss, StyleLoss, TextureLoss, L1Loss)) for _, t in terms):
        return None
    if any(isinstance(t, TextureLoss) and t.patch_size for _, t in terms):
        return None
    ext = next(t.extractor for _, t in terms if hasattr(t, "extractor"))
    idx = LAYER_INDEX[ext.arch]
    sq_terms, gram_terms, l1_w = [], [], 0.0  # (layer index, weight)
    for w, t in terms:
        if isinstance(t, L1Loss):
            l1_w += w
        elif isinstance(t, PerceptualLoss):
            sq_terms += [(idx[l], w * lw) for l, lw in zip(t.layers, t.layer_weights)]
        elif isinstance(t, ContentLoss):
            sq_terms.append((idx[t.layer], 0.5 * w))
        else:
            gram_terms += [(idx[l], w * lw) for l, lw in zip(t.layers, t.layer_weights)]
    last = max(i for i, _ in sq_terms + gram_terms)
    device = ext.mean.device
    net = getattr(torchvision.models, ext.arch)(weights=None).features[: last + 1].to(device)
    net.load_state_dict({k: v for k, v in ext.features.state_dict().items() if int(k.split(".")[0]) <= last})
    net.requires_grad_(False).eval()
    keep = sorted({i for i, _ in sq_terms + gram_terms})
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def features(img: torch.Tensor) -> dict[int, torch.Tensor]:
        h, out = (img - mean) / std, {}
        for i, m in enumerate(net):
            h = m(h)
            if i in keep:
                out[i] = h
        return out

    def floor(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        fp = features(p)
        with torch.no_grad():
            ft = features(t)
        total = l1_w * (p - t).abs().mean() if l1_w else p.new_zeros(())
        for i, w in sq_terms:
            total = total + w * (fp[i] - ft[i]).square().mean()
        for i, w in gram_terms:
            total = total + w * _gram_term(fp[i], ft[i])
        return total

    floor.arch = ext.arch
    return floor


def vgg_floor(loss, x: Inputs) -> Candidate | None:
    fn = vgg_floor_fn(loss)
    if fn is None:
        return None
    return Candidate(f"floor: hand-written torchvision {fn.arch} pass", lambda: fn(x.pred, x.image), [x.pred], same_value=True)


def gp_floor(loss, x: Inputs) -> Candidate:
    """A hand-written per-sample WGAN-GP penalty (λ = loss.lam) through the same critic."""
    real, fake, critic = x.real_img, x.fake_img, x.critic

    def gp() -> torch.Tensor:
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        xh = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
        return loss.lam * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()

    return Candidate("floor: hand-written per-sample GP", gp, [x.fake_img], [critic])


# ---------------------------------------------------------------- rows
@dataclass
class Row:
    name: str
    kind: str
    cands: list[Candidate] = field(default_factory=list)
    note: str = ""


def _bce_dg(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # Goodfellow's D terms on logits plus the non-saturating G term, all BCE-with-logits.
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            + F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {' '.join(str(exc).split())}"[:110]


def build_rows(spec: str, kind: str, x: Inputs) -> list[Row]:
    """The rows of one loss spec: the loss and its comparators (not yet timed)."""
    from cvloss.losses import build_loss

    loss = build_loss(spec, feature_weights="random").to(x.pred.device)
    name = spec.split("(")[0]
    row = Row(spec, kind)
    rows = [row]
    if kind == "seg":
        z, t = x.logits, x.target
        try:
            loss(z, t)
        except ValueError as exc:  # binary losses take one foreground channel
            z, t = x.logits1, x.target1
            row.note = f"C=1 (refuses C=3: {type(exc).__name__})"
        step = lambda: loss(z, t)  # noqa: E731
        comparators = []
        if name == "wce":
            step, floor = wce_floor(loss, x)
            comparators.append(floor)
            row.note = "border map cached per image (as the seg task runs it)"
            # The same loss computing the map on the host per call, for the record.
            uncached = Row("wce (map per call)", kind, [Candidate("cvloss", lambda: loss(z, t), [z])])
            rows.append(uncached)
        if z is x.logits1:
            base = Candidate("baseline: BCE-with-logits",
                             lambda: F.binary_cross_entropy_with_logits(z[:, 0], t.float()), [z], same_value=name == "bce")
        else:
            base = Candidate("baseline: F.cross_entropy", lambda: F.cross_entropy(z, t), [z], same_value=name == "ce")
        row.cands = [Candidate("cvloss", step, [z], [loss]), base] + comparators + seg_peers(name, x)
        if name == "wce":
            rows[1].cands.append(dataclasses.replace(floor, times=[]))
    elif kind in ("image", "cycle"):
        p, t = x.pred, x.image
        row.cands = [Candidate("cvloss", lambda: loss(p, t), [p], [loss]),
                     Candidate("baseline: F.mse_loss", lambda: F.mse_loss(p, t), [p], same_value=name == "mse")]
        floor = vgg_floor(loss, x) if hasattr(loss, "extractor") or hasattr(loss, "weighted_terms") else None
        row.cands += ([floor] if floor else []) + image_peers(name, x)
    elif kind == "metric":
        e, y = x.emb, x.labels
        row.cands = [Candidate("cvloss", lambda: loss(e, y), [e], [loss]),
                     Candidate("baseline: torch.cdist (N x N)", lambda: torch.cdist(e, e).sum(), [e])]
        row.cands += metric_peers(spec, loss, x)
    elif kind == "adversarial":
        leaves = [x.real_out, x.fake_out]
        row.cands = [Candidate("cvloss", lambda: loss.d_loss(x.real_out, x.fake_out) + loss.g_loss(x.fake_out), leaves, [loss]),
                     Candidate("baseline: BCE D+G", lambda: _bce_dg(x.real_out, x.fake_out), leaves)]
        probe = loss.penalty(x.critic, x.real_img, x.fake_img)
        if torch.is_tensor(probe) and probe.requires_grad:
            prow = Row(spec + ".penalty", kind)
            prow.cands = [Candidate("cvloss", lambda: loss.penalty(x.critic, x.real_img, x.fake_img), [x.fake_img], [x.critic]),
                          Candidate("baseline: critic pass", lambda: x.critic(x.real_img).mean(), [], [x.critic])]
            if hasattr(loss, "lam"):
                prow.cands.append(gp_floor(loss, x))
            rows.append(prow)
    elif kind == "logits":
        z, y = x.class_logits, x.labels
        row.cands = [Candidate("cvloss", lambda: loss(z, y), [z], [loss]),
                     Candidate("baseline: F.cross_entropy", lambda: F.cross_entropy(z, y), [z], same_value=True)]
    elif kind == "triplets":
        a, p, n = x.triplets
        row.cands = [Candidate("cvloss", lambda: loss(a, p, n), [a, p, n], [loss]),
                     Candidate("baseline: F.triplet_margin_loss (non-squared)",
                               lambda: F.triplet_margin_loss(a, p, n, margin=loss.margin), [a, p, n])]
    else:
        row.note = f"no benchmark inputs for kind {kind!r}"
    return rows


# ---------------------------------------------------------------- table
def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def paired_ratio(own: Candidate, other: Candidate) -> float | None:
    """Median over rounds of own time / other time *in the same round*: the two ran one
    right after the other, so a slow stretch of a shared CPU cancels out of each ratio."""
    pairs = [a / b for a, b in zip(own.times, other.times) if b > 0]
    return statistics.median(pairs) if pairs else None


def _ratio(a: float | None, b: float | None = 1.0) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def _value_note(c: Candidate, ref: Candidate) -> str:
    if not c.same_value or c.value is None or ref.value is None:
        return ""
    rel = abs(c.value - ref.value) / max(abs(ref.value), 1e-12)
    return "value =" if rel <= 1e-5 else f"value differs by {rel:.1e} (relative)"


def print_table(rows: list[Row], out=sys.stdout) -> None:
    head = ["loss", "compared with", "cvloss ms", "other ms", "time x", "cvloss MiB", "other MiB", "mem x", "note"]
    body = []
    for r in rows:
        if not r.cands or not r.cands[0].times:
            body.append([r.name, "-", "-", "-", "-", "-", "-", "-", r.note])
            continue
        own, others = r.cands[0], r.cands[1:]
        if not others:
            body.append([r.name, "-", _fmt(own.ms), "-", "-", _fmt(own.peak_mib), "-", "-", r.note])
        for k, c in enumerate(others):
            note = "; ".join(n for n in (_value_note(c, own), r.note if k == 0 else "") if n)
            body.append([r.name if k == 0 else "", c.label, _fmt(own.ms) if k == 0 else "", _fmt(c.ms),
                         _ratio(paired_ratio(own, c)), _fmt(own.peak_mib) if k == 0 else "", _fmt(c.peak_mib),
                         _ratio(own.peak_mib, c.peak_mib), note])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    numeric = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(head), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for b in body:
        print(line(b), file=out)


def print_targets(rows: list[Row], out=sys.stdout) -> bool:
    """The speed-target rows: cvloss time / its comparator's, against the target. True if all met."""
    by_name = {r.name: r for r in rows}
    print("\nspeed targets (time x = median over rounds of cvloss ms / comparator ms in the same round):", file=out)
    ok_all = True
    for name, (prefix, target) in TARGETS.items():
        r = by_name.get(name)
        c = next((c for c in r.cands[1:] if c.label.startswith(prefix) or c.label.startswith("baseline: " + prefix)), None) if r else None
        if r is None or c is None or not c.times or not r.cands[0].times:
            print(f"  {name:<36} -- not measured", file=out)
            ok_all = False
            continue
        ratio = paired_ratio(r.cands[0], c)
        ok = ratio <= target
        ok_all &= ok
        print(f"  {name:<36} {ratio:5.2f}x  {c.label:<45} target <= {target:.2f}x  {'met' if ok else 'MISSED'}", file=out)
    return ok_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 1 min)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timed rounds per row (median); default 15")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each candidate first (default 1)")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="cheap rows get more rounds, up to 400, to fill about this many seconds (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--only", default="", help="comma-separated loss names to run (default: all)")
    parser.add_argument("--spec", action="append", default=None, metavar="SPEC",
                        help=f"extra loss spec to add as a row (repeatable); default: {', '.join(EXTRA_SPECS)}")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    args = parser.parse_args(argv)

    from cvloss.losses import get_loss_info, list_losses, parse_spec

    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    torch.manual_seed(0)
    x = Inputs(sizes, args.device)
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    jobs = [(i.name, i.kind) for i in list_losses() if not wanted or i.name in wanted]
    for spec in EXTRA_SPECS if args.spec is None else args.spec:
        name = parse_spec(spec)[0].name
        if wanted and name not in wanted and spec not in wanted:
            continue
        kind = get_loss_info(name).kind
        at = max((k + 1 for k, (n, _) in enumerate(jobs) if n == name), default=len(jobs))
        jobs.insert(at, (spec, kind))
    print(f"cvloss loss benchmark ({'quick' if args.quick else 'full'}): torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} thread(s), forward+backward, median of >= {args.repeats} interleaved rounds "
          f"(cheap rows: up to 400, ~{args.min_seconds:g} s) after {args.warmup} warm-up; memory: "
          + ("torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "torch.profiler CPU allocator profile"))
    print(f"inputs: {x.describe()}")
    t0 = time.perf_counter()
    rows: list[Row] = []
    for spec, kind in jobs:
        try:
            new_rows = build_rows(spec, kind, x)
        except Exception as exc:  # never let one loss stop the table
            rows.append(Row(spec, kind, note=_error(exc)))
            continue
        for r in new_rows:
            try:
                measure_row(r.cands, args.repeats, args.warmup, not args.no_memory, args.min_seconds)
            except Exception as exc:
                r.cands, r.note = [], _error(exc)
            rows.append(r)
    print("peers: " + "; ".join(sorted(PEER_STATUS.values())) if PEER_STATUS else "peers: none used")
    print()
    print_table(rows)
    print_targets(rows)
    print(f"\n{len(rows)} rows; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
