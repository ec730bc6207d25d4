"""Topology-aware segmentation losses: ``topo`` (Mosinska et al. 2018) and ``cldice``
(Shit et al. 2021), with the functional :func:`soft_skeleton`.

Both take ``(logits (N, C, H, W), target (N, H, W) int64)``. ``C == 1`` is binary
(sigmoid of the logit, target in {0, 1}); ``C >= 2`` uses the softmax and one-hot targets
per class channel, without the background class 0 unless ``include_background=True``.

``ignore_index`` (default ``None``): those pixels count in no sum, and in the structural
terms (``topo``'s VGG features, ``cldice``'s soft skeletons) they are background in *both*
the predicted maps and the one-hot targets, so an ignored band can neither create nor
remove a topological difference, and their logits get zero gradient. Why this differs
from the topology metrics: ``docs/losses.md``, "Topology-aware losses".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cvloss.losses.base import Loss, check_ignore_index, check_seg, check_weight, valid_pixels, weighted_reduce
from cvloss.losses.features import FeatureLoss, at_least_float32
from cvloss.losses.registry import register_loss


def _class_maps(logits: torch.Tensor, target: torch.Tensor, include_background: bool,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and one-hot targets (N, K, H, W) in float32 for the classes scored.

    C == 1: K = 1, sigmoid(logit) vs target. C >= 2: softmax over the C classes, then
    channels 1..C-1 (or 0..C-1 with ``include_background``). ``valid`` (N, H, W) 0/1:
    both maps are 0 on ignored pixels (see the module docstring); ``target`` must then
    hold class ids only.
    """
    logits = at_least_float32(logits)  # probabilities near 0/1 need more than bf16 holds
    if logits.shape[1] == 1:
        probs, onehot = torch.sigmoid(logits), target.unsqueeze(1).to(logits.dtype)
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
        if not include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    if valid is not None:
        v = valid.unsqueeze(1).to(probs.dtype)
        probs, onehot = probs * v, onehot * v
    return probs, onehot


# ---------------------------------------------------------------------- topo
@register_loss(
    "topo",
    family="topology-aware",
    paper="Mosinska, Márquez-Neila, Koziński & Fua 2018, Beyond the Pixel-Wise Loss for Topology-Aware Delineation (CVPR)",
)
class TopoLoss(FeatureLoss):
    """Mosinska et al. 2018 topology loss: pixel loss + μ · VGG19 feature distance of masks.

    Paper: L = L_bce + μ · Σ_n Σ_m ‖l_m^n(y) − l_m^n(ŷ)‖²₂, l_m^n the m-th feature map of
    the n-th selected layer of an ImageNet VGG19, y the ground-truth mask, ŷ the predicted
    probability map; layers conv1_2, conv2_2, conv3_4 taken after their ReLU (the paper's
    Caffe-style naming: ``relu1_2``, ``relu2_2``, ``relu3_4``), μ tuned per dataset.

    Here:
    * pixel term: binary cross-entropy on the logit for C == 1, cross-entropy for C >= 2
      (mean over pixels; a per-pixel ``weight`` map applies to this term only).
    * topological term: each scored class c gives a one-channel map -- softmax (sigmoid
      for C == 1) probability of c vs the one-hot mask of c, both in [0, 1] -- repeated to
      3 channels and ImageNet-normalised by the extractor; all N·K maps go through VGG in
      one batch. Each layer's term is the mean squared difference over its
      C_n·H_n·W_n elements (and over batch and classes, i.e. classes are *averaged*),
      and the layers are summed. Change from the paper's plain sum: a sum grows with the
      image area and the channel count, so a μ tuned at one resolution would not carry
      to another; per-element means make μ scale-free.
    * default μ = 0.1 (the paper tunes μ per dataset; with per-element means the feature
      term is of the order of the pixel term for random features -- tune it).
    * ``mu=0`` returns the pixel term exactly (no VGG pass). Target features under no_grad.
    """

    kind = "seg"

    def __init__(
        self,
        mu: float = 0.1,
        layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_4"),
        weights: str = "auto",
        include_background: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if mu < 0:
            raise ValueError(f"mu must be >= 0; got {mu}")
        self.ignore_index = check_ignore_index("topo", ignore_index)
        self._init_features("vgg19", weights, layers)
        self.mu = float(mu)
        self.include_background = bool(include_background)

    def pixel_term(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """BCE (C == 1) or CE (C >= 2), mean over counted pixels (weighted mean with ``weight``)."""
        w = check_weight(weight, logits[:, :1])
        target, valid = valid_pixels(target, self.ignore_index)
        if valid is not None:
            w = valid.unsqueeze(1) if w is None else w * valid.unsqueeze(1).to(w.dtype)
        logits = at_least_float32(logits)
        if logits.shape[1] == 1:
            per_pixel = F.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).to(logits.dtype), reduction="none")
        else:
            per_pixel = F.cross_entropy(logits, target, reduction="none").unsqueeze(1)
        return weighted_reduce(per_pixel, w, "mean")

    def topo_term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Σ_n mean over (N·K·C_n·H_n·W_n) of (l^n(y) − l^n(ŷ))², classes averaged
        (ignored pixels set to background in both maps)."""
        target, valid = valid_pixels(target, self.ignore_index)
        probs, onehot = _class_maps(logits, target, self.include_background, valid)
        n, k, h, w = probs.shape
        fp = self.extractor.extract(probs.reshape(n * k, 1, h, w), self.layers)
        with torch.no_grad():
            ft = self.extractor.extract(onehot.reshape(n * k, 1, h, w), self.layers)
        return torch.stack([(at_least_float32(fp[l]) - at_least_float32(ft[l])).square().mean() for l in self.layers]).sum()

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        pixel = self.pixel_term(logits, target, weight)
        if self.mu == 0:
            return pixel
        return pixel + self.mu * self.topo_term(logits, target)


# ---------------------------------------------------------------------- clDice
def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: min over the 3×3 cross (4-neighbourhood + centre), (N, C, H, W).

    Min-pooling as −maxpool(−x); the cross is the min of a 3×1 and a 1×3 min-pool.
    Outside the image counts as +∞ (no erosion from the border), as max-pool pads −∞.
    """
    p1 = -F.max_pool2d(-x, kernel_size=(3, 1), stride=1, padding=(1, 0))
    p2 = -F.max_pool2d(-x, kernel_size=(1, 3), stride=1, padding=(0, 1))
    return torch.minimum(p1, p2)


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: max over the 3×3 square, (N, C, H, W)."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def soft_open(x: torch.Tensor) -> torch.Tensor:
    """Soft opening: dilate(erode(x))."""
    return soft_dilate(soft_erode(x))


def soft_skeleton(prob_map: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Soft skeleton of probability maps (N, C, H, W) in [0, 1] -> (N, C, H, W) in [0, 1].

    Algorithm 1 of Shit et al. 2021 (soft-skeletonize), with soft erosion = min-pool over a
    3×3 cross and soft dilation = max-pool over a 3×3 square:

        I' = open(I);  S = ReLU(I − I')
        repeat ``iters`` times:
            I = erode(I);  I' = open(I);  S = S + (1 − S) ∘ ReLU(I − I')

    What an opening removes at each erosion depth is a ridge of the shape, and the
    union of these ridges is its skeleton; (1 − S)∘δ is a soft union that keeps S <= 1.
    ``iters`` should be at least the largest expected half-width of a structure (in
    pixels); the paper's pseudo-code counts the loop "for i = 0 to k", the authors'
    reference code runs k erosion steps after the first opening, as here.
    Differentiable almost everywhere (max-pool and ReLU are piecewise linear).
    """
    if prob_map.dim() != 4:
        raise ValueError(f"expected probability maps of shape (N, C, H, W); got {tuple(prob_map.shape)}")
    if iters < 0:
        raise ValueError(f"iters must be >= 0; got {iters}")
    img = prob_map
    skel = F.relu(img - soft_open(img))
    for _ in range(iters):  # loop over erosion depth, not over pixels
        img = soft_erode(img)
        delta = F.relu(img - soft_open(img))
        skel = skel + (1 - skel) * delta
    return skel


@register_loss(
    "cldice",
    family="topology-aware",
    paper="Shit et al. 2021, clDice - a Novel Topology-Preserving Loss Function for Tubular Structure Segmentation (CVPR)",
)
class ClDiceLoss(Loss):
    """Soft-Dice + soft-clDice (Shit et al. 2021): rewards predictions that keep centrelines.

    With V_P / V_L the predicted probability / one-hot mask of a class and S_P / S_L their
    soft skeletons (:func:`soft_skeleton`, ``iters`` steps), sums over batch and pixels:

        Tprec = (Σ S_P ⊙ V_L + ε) / (Σ S_P + ε)     (topology precision)
        Tsens = (Σ S_L ⊙ V_P + ε) / (Σ S_L + ε)     (topology sensitivity)
        clDice = 2 · Tprec · Tsens / (Tprec + Tsens)
        Dice   = (2 Σ V_P ⊙ V_L + ε) / (Σ V_P + Σ V_L + ε)
        L = (1 − α) · (1 − Dice) + α · (1 − clDice),   α = 0.5, ε = 1 (smoothing)

    Multi-class (C >= 2): softmax, computed per foreground class channel (and background
    with ``include_background``), Dice and clDice *averaged* over those classes. Binary
    (C == 1): sigmoid of the single logit channel -- the loss is computed on that channel
    (a peer bug takes channels 1: and is constant for one channel). An optional
    per-pixel ``weight`` map (N, H, W) multiplies every summand. Value in [0, 1].
    ``ignore_index``: see the module docstring (ignored pixels are background in both
    skeletons and count in no sum).
    """

    kind = "seg"

    def __init__(self, alpha: float = 0.5, iters: int = 3, smooth: float = 1.0, include_background: bool = False,
                 ignore_index: int | None = None) -> None:
        super().__init__()
        self.ignore_index = check_ignore_index("cldice", ignore_index)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
        if iters < 0:
            raise ValueError(f"iters must be >= 0; got {iters}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0; got {smooth}")
        self.alpha = float(alpha)
        self.iters = int(iters)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_seg(logits, target, self.ignore_index)
        w = check_weight(weight, logits[:, :1])
        target, valid = valid_pixels(target, self.ignore_index)
        probs, onehot = _class_maps(logits, target, self.include_background, valid)
        w = torch.ones_like(probs[:, :1]) if w is None else w.to(probs.dtype)
        if valid is not None:  # ignored pixels count in no sum
            w = w * valid.unsqueeze(1).to(probs.dtype)
        s_p = soft_skeleton(probs, self.iters)
        s_l = soft_skeleton(onehot, self.iters)
        eps = self.smooth

        def total(t: torch.Tensor) -> torch.Tensor:  # Σ over batch and pixels, per class -> (K,)
            return (w * t).sum(dim=(0, 2, 3))

        t_prec = (total(s_p * onehot) + eps) / (total(s_p) + eps)
        t_sens = (total(s_l * probs) + eps) / (total(s_l) + eps)
        cl_dice = 2 * t_prec * t_sens / (t_prec + t_sens).clamp_min(torch.finfo(probs.dtype).tiny)
        dice = (2 * total(probs * onehot) + eps) / (total(probs) + total(onehot) + eps)
        return (1 - self.alpha) * (1 - dice.mean()) + self.alpha * (1 - cl_dice.mean())


__all__ = ["ClDiceLoss", "TopoLoss", "soft_dilate", "soft_erode", "soft_open", "soft_skeleton"]
