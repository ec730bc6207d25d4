"""The loss contract: one base class holds every shape check; each loss writes its formula.

Input kinds (``Loss.kind``) and what a loss takes:

* ``"seg"`` -- ``(logits (N, C, H, W) raw, target (N, H, W) int64 in [0, C), weight=None)``;
  ``C == 1``: binary foreground logits, target in {0, 1}; weight ``(N, H, W)`` >= 0.
* ``"image"`` -- ``(pred, target (N, C, H, W), C in {1, 3}, in [0, 1], weight=None)``.
* ``"metric"`` -- ``(embeddings (N, D) float, labels (N,) int64)``.
* ``"adversarial"`` -- ``d_loss``, ``g_loss``, ``penalty`` on logits / critic outputs.
* ``"cycle"`` -- ``(reconstruction, original)`` images; the task picks the pairs.
* ``"logits"`` -- ``(class_logits (N, C), labels (N,) int64)``: embed's softmax baseline.
* ``"triplets"`` -- ``(anchor, positive, negative)``, each ``(B, D)``: offline triplets.

The same table with the weight shapes: ``docs/losses.md``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

KINDS = ("seg", "image", "metric", "adversarial", "cycle", "logits", "triplets")

# ---------------------------------------------------------------- value checks (opt-in)
# Checks that read tensor *values* (label ranges, "the batch has a positive pair") need
# the values on the host: on a GPU each one is a device -> host copy that stalls the
# stream once per loss call. They are off in the hot path by default; shape, dtype and
# argument checks (host metadata only) always run. The data side validates masks once
# when a dataset is loaded (``SegData``), and the embed task refuses P < 2 or K < 2
# before training, so the tool itself never needs them per step.
_VALUE_CHECKS = False


def value_checks_enabled() -> bool:
    """Whether the opt-in value checks (label ranges, P×K batch structure) run."""
    return _VALUE_CHECKS


def set_value_checks(enabled: bool) -> bool:
    """Turn the opt-in value checks on or off for the process; returns the old setting."""
    global _VALUE_CHECKS
    old, _VALUE_CHECKS = _VALUE_CHECKS, bool(enabled)
    return old


@contextlib.contextmanager
def value_checks(enabled: bool = True) -> Iterator[None]:
    """Run the block with the opt-in value checks on (debugging a data pipeline)::

        with value_checks():
            loss(logits, target)   # ValueError on class ids outside [0, C)

    Each check reads tensor values on the host (one synchronisation per check on a GPU).
    """
    old = set_value_checks(enabled)
    try:
        yield
    finally:
        set_value_checks(old)


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_seg(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> None:
    """Raise ``ValueError`` unless logits are (N,C,H,W) float and target (N,H,W) int64 ids.

    Shapes and dtypes always; the range of the ids in ``[0, max(C, 2))`` (pixels equal
    to ``ignore_index`` aside) only with the opt-in :func:`value_checks` (it reads the
    target's values).
    """
    if not torch.is_tensor(logits) or logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(
            f"expected logits of shape (N, C, H, W), floating point; got {_shape(logits) if torch.is_tensor(logits) else type(logits).__name__}"
        )
    n, c, h, w = logits.shape
    if not torch.is_tensor(target) or target.shape != (n, h, w):
        got = _shape(target) if torch.is_tensor(target) else type(target).__name__
        raise ValueError(f"expected target of shape (N, H, W) = ({n}, {h}, {w}) with class ids; got {got}")
    if target.dtype != torch.int64:
        raise ValueError(f"expected target of dtype int64 (class ids); got {target.dtype}")
    n_classes = max(c, 2)
    # Label range: a value check, opt-in (see value_checks); CPU kernels still raise an
    # IndexError/RuntimeError on an out-of-range id, CUDA kernels a device-side assert.
    if not _VALUE_CHECKS:
        return
    ids = target if ignore_index is None else target[target != ignore_index]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_classes):
        extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        raise ValueError(
            f"target class ids must lie in [0, {n_classes - 1}]{extra} for logits with C={c}; "
            f"got range [{int(ids.min())}, {int(ids.max())}]"
        )


def valid_pixels(target: torch.Tensor, ignore_index: int | None, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(target', valid)`` for a loss that honours ``ignore_index``.

    ``valid`` is the float32 (N, H, W) map of the pixels that count (1) and those whose
    target equals ``ignore_index`` (0), or ``None`` when ``ignore_index`` is ``None``
    (every pixel counts; nothing is allocated). ``target'`` is ``target`` with the
    ignored ids replaced by class ``fill`` (0), so that gathers, one-hots and scatters stay in
    range (an ignore id such as 255 is no class); what those pixels then compute is
    multiplied by 0 by every loss, so neither their value nor their gradient reaches
    the result. Device-side, no host round trip.
    """
    if ignore_index is None:
        return target, None
    keep = target != ignore_index
    return target.masked_fill(~keep, fill), keep.to(torch.float32)


def check_ignore_index(name: str, ignore_index: int | None) -> int | None:
    """Constructor check of a loss's ``ignore_index`` (an int or ``None``)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"{name}: ignore_index must be an integer class id or none; got {ignore_index!r}")
    return int(ignore_index)


def check_image(pred: torch.Tensor, target: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` unless pred (and target) are (N,C,H,W) float with C in {1, 3}."""
    if not torch.is_tensor(pred) or pred.dim() != 4 or not pred.is_floating_point():
        got = _shape(pred) if torch.is_tensor(pred) else type(pred).__name__
        raise ValueError(f"expected images of shape (N, C, H, W), floating point, C in {{1, 3}}; got {got}")
    if pred.shape[1] not in (1, 3):
        raise ValueError(f"expected images with 1 or 3 channels, shape (N, C, H, W); got {_shape(pred)}")
    if target is not None and (not torch.is_tensor(target) or target.shape != pred.shape):
        got = _shape(target) if torch.is_tensor(target) else type(target).__name__
        raise ValueError(f"expected target of the same shape as the prediction {_shape(pred)}; got {got}")


def check_embeddings(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` unless embeddings are (N,D) float and labels (N,) int64."""
    if not torch.is_tensor(embeddings) or embeddings.dim() != 2 or not embeddings.is_floating_point():
        got = _shape(embeddings) if torch.is_tensor(embeddings) else type(embeddings).__name__
        raise ValueError(f"expected embeddings of shape (N, D), floating point; got {got}")
    n = embeddings.shape[0]
    if not torch.is_tensor(labels) or labels.shape != (n,):
        got = _shape(labels) if torch.is_tensor(labels) else type(labels).__name__
        raise ValueError(f"expected labels of shape (N,) = ({n},); got {got}")
    if labels.dtype != torch.int64:
        raise ValueError(f"expected labels of dtype int64; got {labels.dtype}")


def check_weight(weight: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor | None:
    """Return a per-pixel weight map broadcastable to ``ref`` (N,C,H,W) as (N,1|C,H,W).

    Accepts (N,H,W), (N,1,H,W) or (N,C,H,W); raises ``ValueError`` otherwise.
    """
    if weight is None:
        return None
    n, c, h, w = ref.shape
    if weight.dim() == 3 and weight.shape == (n, h, w):
        return weight.unsqueeze(1)
    if weight.dim() == 4 and weight.shape[0] == n and weight.shape[2:] == (h, w) and weight.shape[1] in (1, c):
        return weight
    raise ValueError(
        f"expected a weight map of shape (N, H, W) = ({n}, {h}, {w}) or (N, 1|C, H, W); got {_shape(weight)}"
    )


def weighted_reduce(values: torch.Tensor, weight: torch.Tensor | None, reduction: str = "mean") -> torch.Tensor:
    """Reduce elementwise ``values`` with an optional broadcastable weight map.

    ``mean`` with weights is the weighted mean Σ w·v / Σ w (BasicSR's convention, so a
    weight map changes where the loss looks, not its scale); ``sum`` is Σ w·v; ``none``
    returns w·v with the shape of ``values``.
    """
    if weight is not None:
        weight = weight.to(values.dtype).expand_as(values)
        values = values * weight
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        if weight is None:
            return values.mean()
        return values.sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)
    raise ValueError(f"unknown reduction {reduction!r}; valid: mean, sum, none")


class Loss(nn.Module):
    """Base class of every registered loss.

    Subclasses set ``kind`` (one of :data:`KINDS`), implement ``forward`` (or, for
    adversarial objectives, ``d_loss``/``g_loss``/``penalty``), and call the ``check_*``
    helpers above so that wrong shapes fail with a message naming the expected shape.
    The registry fills in ``name`` and the constructor arguments (``spec_args``).
    """

    kind: str = "image"
    name: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.spec_args: dict[str, Any] = {}

    @property
    def feature_weights(self) -> str | None:
        """The feature-network weights this loss uses ("imagenet", "random(seed=0)", a
        path), or ``None`` when it uses no pretrained features. Recorded in results."""
        return None

    def weighted_terms(self) -> list[tuple[float, "Loss"]]:
        """The (weight, term) pairs of this loss; a single loss is one term of weight 1
        (:class:`~cvloss.losses.spec.CombinedLoss` lists its own)."""
        return [(1.0, self)]

    def config(self) -> dict[str, Any]:
        """The resolved configuration, JSON-serialisable, for ``trial.json``."""
        cfg: dict[str, Any] = {"name": self.name, "args": dict(self.spec_args)}
        if self.feature_weights is not None:
            cfg["feature_weights"] = self.feature_weights
        return cfg


class AdversarialLoss(Loss):
    """Base class of GAN objectives. Works on raw discriminator logits / critic outputs
    of any shape (a scalar per sample or a PatchGAN map); never on probabilities.

    ``n_critic`` is the number of discriminator steps per generator step that the paper
    prescribes; ``clip_value`` the weight-clipping bound (WGAN) or ``None``;
    ``paper_optimizer`` the optimiser of G and D in the paper's protocol, e.g.
    ``{"name": "rmsprop", "lr": 5e-5}`` (a ``torch.optim`` name and its arguments), or
    ``None`` where the paper gives no single setting (a task's ``optimizer=paper`` policy
    then uses its own Adam).
    """

    kind = "adversarial"
    n_critic: int = 1
    clip_value: float | None = None
    paper_optimizer: dict[str, Any] | None = None

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Extra discriminator regulariser (gradient penalty, R1); zero by default."""
        return real.new_zeros(())

    def clip_weights(self, critic: nn.Module) -> None:
        """Clamp every critic parameter to [-clip_value, clip_value] when set (WGAN)."""
        if self.clip_value is None:
            return
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-self.clip_value, self.clip_value)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise TypeError(f"{self.name or type(self).__name__} is adversarial: call d_loss(real_out, fake_out), g_loss(fake_out) or penalty(critic, real, fake)")
