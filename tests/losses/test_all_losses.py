"""Every registered loss, automatically: builds from its bare name, gives a finite value,
sends a gradient to its input, and survives CPU bf16 autocast. A loss registered later is
exercised here without anyone editing this file."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cvloss.losses import build_loss, list_losses
from cvloss.losses.segmentation import WeightedCrossEntropyLoss, supplied_borders, wce_terms

EXPECTED = {
    "mse", "l1", "charbonnier", "ce", "bce", "wce", "dice", "focal", "ssim",
    "perceptual", "content", "style", "texture", "tv", "topo", "cldice",
    "contrastive", "triplet", "triplet_offline", "softmax",
    "minimax", "ns", "lsgan", "wgan", "wgan_gp", "hinge",
    "cycle", "identity",
}  # fmt: skip

ALL = [info.name for info in list_losses()]


def test_every_loss_of_the_design_is_registered():
    missing = EXPECTED - set(ALL)
    assert not missing, f"not registered: {sorted(missing)}"


@pytest.mark.parametrize("name", ALL)
def test_metadata_is_complete(name):
    info = next(i for i in list_losses() if i.name == name)
    assert info.tasks and info.paper and info.family
    assert len(info.doc) > 80, "docstring must give the formula, constants, shapes and ranges"


def _seg_inputs(channels: int, gen: torch.Generator, device: str = "cpu"):
    logits = torch.randn(2, channels, 16, 16, generator=gen).to(device).requires_grad_()
    target = torch.randint(0, max(channels, 2), (2, 16, 16), generator=gen).to(device)
    return logits, target


def _loss_call(loss: nn.Module, kind: str, gen: torch.Generator, device: str = "cpu"):
    """Return (call, input tensors that should receive a gradient): ``call()`` evaluates
    the loss on inputs made here, once, from ``gen`` on ``device`` (so that it can run
    in a mode that watches only the loss itself)."""

    def rand(*shape, grad=False, normal=False, unit=False):
        t = (torch.randn if normal else torch.rand)(*shape, generator=gen)
        t = torch.nn.functional.normalize(t, dim=1) if unit else t
        t = t.to(device)
        return t.requires_grad_() if grad else t

    if kind == "seg":
        # Multi-class first; binary-only losses (bce) refuse C=3 with a ValueError.
        logits, target = _seg_inputs(3, gen, device)
        try:
            loss(logits, target)
        except ValueError:
            logits, target = _seg_inputs(1, gen, device)
        # The U-Net border term of wce is per-image host work: the seg task computes it
        # once per training image and hands it over with the batch.
        borders = {t: t.border_map(target) for t in wce_terms(loss)}

        def call():
            with supplied_borders(borders):
                return loss(logits, target)

        return call, [logits]
    if kind in ("image", "cycle"):
        pred, target = rand(2, 3, 32, 32, grad=True), rand(2, 3, 32, 32)
        return (lambda: loss(pred, target)), [pred]
    if kind == "metric":
        emb = rand(12, 8, grad=True, normal=True, unit=True)
        labels = torch.arange(4).repeat_interleave(3).to(device)
        return (lambda: loss(emb, labels)), [emb]
    if kind == "logits":
        logits = rand(6, 4, grad=True, normal=True)
        labels = torch.tensor([0, 1, 2, 3, 0, 1]).to(device)
        return (lambda: loss(logits, labels)), [logits]
    if kind == "triplets":
        a, p, n = (rand(5, 8, grad=True, normal=True, unit=True) for _ in range(3))
        return (lambda: loss(a, p, n)), [a, p, n]
    if kind == "adversarial":
        real_out, fake_out = rand(4, 1, grad=True, normal=True), rand(4, 1, grad=True, normal=True)
        critic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(), nn.LazyLinear(1)).to(device)
        real, fake = rand(4, 3, 8, 8), rand(4, 3, 8, 8)
        critic(real)  # materialise the lazy layer
        return (lambda: loss.d_loss(real_out, fake_out) + loss.g_loss(fake_out) + loss.penalty(critic, real, fake)), \
            [real_out, fake_out]
    raise AssertionError(f"unknown kind {kind}")


def _forward_value(loss: nn.Module, kind: str, gen: torch.Generator, autocast: bool):
    """Return (value, input tensors that should receive a gradient)."""
    call, leaves = _loss_call(loss, kind, gen)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with ctx:
        return call(), leaves


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("name", ALL)
def test_value_is_finite_and_gradient_reaches_input(name, autocast):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    loss = build_loss(name, feature_weights="random")
    value, inputs = _forward_value(loss, loss.kind, gen, autocast)
    assert value.dim() == 0, "default reduction must give a scalar"
    assert torch.isfinite(value), f"{name}: non-finite value {value}"
    value.float().backward()
    for x in inputs:
        assert x.grad is not None, f"{name}: no gradient reached the input"
        assert torch.isfinite(x.grad).all(), f"{name}: non-finite gradient"
    assert any(x.grad.abs().sum() > 0 for x in inputs), f"{name}: zero gradient everywhere"


@pytest.mark.parametrize("name", ALL)
def test_loss_serves_its_tasks(name):
    info = next(i for i in list_losses() if i.name == name)
    for task in info.tasks:
        assert build_loss(name, task=task, feature_weights="random").name == name


def test_feature_weights_are_reported():
    loss = build_loss("l1+0.01*perceptual", feature_weights="random")
    assert "random" in loss.feature_weights
    assert loss.config()["feature_weights"] == loss.feature_weights
    assert build_loss("l1").feature_weights is None


# ---------------------------------------------------------------- no host synchronisation
class RaiseOnHostSync(TorchFunctionMode):
    """Raises on every Python-level call that reads tensor values on the host: ``.item()``,
    ``.tolist()``, ``.numpy()``, ``.cpu()``, ``bool()/int()/float()`` of a tensor (a
    Python ``if`` on a tensor value), ``nonzero`` / ``argwhere``, ``unique``,
    ``masked_select`` and boolean-mask indexing (their output size is data-dependent), and
    ``repeat_interleave`` with tensor repeats. On a GPU each is a device -> host copy
    that stalls the stream."""

    BANNED = {
        torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.__array__,
        torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__,
        torch.Tensor.nonzero, torch.nonzero, torch.Tensor.argwhere, torch.argwhere,
        torch.Tensor.unique, torch.unique, torch.unique_consecutive, torch.Tensor.unique_consecutive,
        torch.masked_select, torch.Tensor.masked_select,
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", repr(func))
        if func in self.BANNED:
            raise AssertionError(f"host sync: {name}")
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
            index = args[1] if len(args) > 1 else None
            for i in index if isinstance(index, tuple) else (index,):
                if torch.is_tensor(i) and i.dtype == torch.bool:
                    raise AssertionError(f"host sync: boolean-mask {name}")
        if func in (torch.repeat_interleave, torch.Tensor.repeat_interleave):
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            if torch.is_tensor(repeats) and kwargs.get("output_size") is None:
                raise AssertionError("host sync: repeat_interleave with tensor repeats")
        return func(*args, **kwargs)


def test_the_sync_detector_catches_the_usual_syncs():
    x = torch.ones(4)
    for sync in (lambda: x.sum().item(), lambda: bool(x.sum() > 0), lambda: x[x > 0], lambda: x.nonzero(),
                 lambda: x.tolist(), lambda: float(x[0]), lambda: torch.unique(x)):
        with RaiseOnHostSync(), pytest.raises(AssertionError, match="host sync"):
            sync()


# The defaults above, plus the variants that take other code paths.
SYNC_SPECS = ALL + [
    "triplet(mining=all)", "triplet(mining=batch_hard)", "triplet(squared=false)", "contrastive(balance=true)",
    "ce(label_smoothing=0.1)", "wce(weighting=balanced)", 'wce(weighting="balanced+unet")',
    "dice(include_background=false)", "focal(alpha=0.25)", "wce+dice", "l1+perceptual+texture(arch=vgg16)",
]  # fmt: skip


@pytest.mark.parametrize("name", SYNC_SPECS)
def test_forward_and_backward_do_not_sync_with_the_host(name):
    """Every registered loss, forward and backward, under :class:`RaiseOnHostSync` (CPU).

    Inputs (and, for wce, the per-image border map that the seg task caches) are made
    before the mode is entered; building the loss is not watched either."""
    gen = torch.Generator().manual_seed(0)
    loss = build_loss(name, feature_weights="random")
    call, leaves = _loss_call(loss, loss.kind, gen)
    with RaiseOnHostSync():
        value = call()
        value.backward()
    assert all(x.grad is not None for x in leaves)


def test_wce_without_a_supplied_border_does_host_work():
    # Documented: the border term is scipy work on the host; the task caches it.
    loss = WeightedCrossEntropyLoss()
    logits, target = _seg_inputs(3, torch.Generator().manual_seed(0))
    with RaiseOnHostSync(), pytest.raises(AssertionError, match="host sync"):
        loss(logits, target)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode checks device syncs")
@pytest.mark.parametrize("name", SYNC_SPECS)
def test_no_cuda_sync(name):
    gen = torch.Generator().manual_seed(0)
    loss = build_loss(name, feature_weights="random").cuda()
    call, _ = _loss_call(loss, loss.kind, gen, "cuda")
    call().backward()  # warm-up: lazy init (cuBLAS handles, cached constants) may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        call().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
