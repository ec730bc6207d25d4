"""Adversarial objectives: what the discriminator (critic) and the generator minimise.

Every objective works on RAW discriminator logits / critic outputs -- never on
probabilities -- of any shape: ``(N,)``, ``(N, 1)`` or a PatchGAN map ``(N, 1, h, w)``,
each expectation being the mean over all elements. Log-likelihoods are written with
softplus (log σ(x) = −softplus(−x), log(1 − σ(x)) = −softplus(x)): exact and finite for
every logit. Interface (:class:`~cvloss.losses.base.AdversarialLoss`): ``d_loss(real_out,
fake_out)``, ``g_loss(fake_out)`` and ``penalty(critic, real, fake)`` (added to
``d_loss``); the caller detaches ``G(z)`` for the D step. Class attributes carry each
paper's schedule: ``n_critic``, ``clip_value``, ``paper_optimizer`` (or ``None``).

Functional helpers: :func:`gradient_penalty` (Gulrajani et al. 2017) and
:func:`r1_penalty` (Mescheder et al. 2018). More: ``docs/losses.md``.
"""
from __future__ import annotations

from typing import Any, Literal  # noqa: F401  (Literal: annotations are eval'd by the registry)

import torch
import torch.nn.functional as F
from torch import nn

from cvloss.losses.base import AdversarialLoss, _shape
from cvloss.losses.registry import register_loss

__all__ = [
    "MinimaxGANLoss",
    "NonSaturatingGANLoss",
    "LSGANLoss",
    "WGANLoss",
    "WGANGPLoss",
    "HingeGANLoss",
    "gradient_penalty",
    "r1_penalty",
]

# DCGAN's optimiser (Radford et al. 2016, Sec. 4, "Details of adversarial training"):
# Adam with learning rate 0.0002 (the suggested 0.001 "too high") and beta1 = 0.5 (0.9 made
# training oscillate), beta2 left at Adam's 0.999. The protocol the log-likelihood GANs have
# been trained with since (Goodfellow et al. 2014 give only momentum SGD, no single setting).
DCGAN_ADAM: dict[str, Any] = {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}


# ---------------------------------------------------------------- helpers
def _logits(x: torch.Tensor, what: str) -> torch.Tensor:
    """Check a discriminator output and return it in (at least) float32.

    Reduced-precision outputs (bf16/fp16 under autocast) are upcast: softplus and the
    squares here are cheap, and a bf16 mean over a PatchGAN map loses ~3 digits.
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() == 0 or x.numel() == 0:
        got = _shape(x) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(
            f"expected {what} as raw logits of shape (N,), (N, 1) or (N, 1, h, w), floating point, non-empty; got {got}"
        )
    return _f32(x)


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Upcast bf16/fp16 to float32; leave float32/float64 alone (gradcheck runs in float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _per_sample_input_grad(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """∇_x f(x_i) for every sample, shape ``x.shape``, kept in the graph (create_graph).

    The per-sample critic value f(x_i) is the mean of that sample's outputs: the scalar
    itself for an (N,) / (N, 1) critic, the average patch score for a PatchGAN map -- the
    quantity the mean-reduced losses above actually see. Summing f over the batch and
    differentiating once gives every sample's gradient at once, because a critic without
    cross-sample layers (no BatchNorm; Gulrajani et al. use layer normalisation instead)
    makes sample i's output depend on x_i only.
    """
    out = critic(x)
    if not torch.is_tensor(out) or out.dim() == 0 or out.shape[0] != x.shape[0]:
        got = _shape(out) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"expected the critic to return (N, ...) with N = {x.shape[0]}; got {got}")
    per_sample = _f32(out).reshape(out.shape[0], -1).mean(dim=1)
    # create_graph=True: the penalty is a function of the critic's weights through this
    # gradient, so the critic step must be able to differentiate it again.
    (grad,) = torch.autograd.grad(per_sample.sum(), x, create_graph=True)
    return grad


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lam: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017, Algorithm 1), a scalar.

        GP = λ · E_x̂[(‖∇_x̂ C(x̂)‖₂ − 1)²],   x̂ = ε·x + (1 − ε)·x̃,   ε ~ U[0, 1]

    with λ = 10 in the paper. ``real`` x and ``fake`` x̃ = G(z) have the same shape
    ``(N, ...)`` -- images ``(N, C, H, W)`` or vectors ``(N, D)``; any value range. One ε
    is drawn PER SAMPLE and broadcast over all its other dimensions (a point on the line
    between a real and a fake sample), and the gradient norm is taken per sample over
    ALL non-batch dimensions: the gradient is flattened to ``(N, -1)``. (Peer code that
    norms over ``dim=1`` constrains a per-pixel channel vector instead -- a different,
    much weaker penalty.) ``generator`` makes ε reproducible; it must live on
    ``real.device``.

    ``real`` and ``fake`` are detached (the penalty trains the critic only); the input
    gradient is built with ``create_graph=True`` so the result is differentiable w.r.t.
    the critic's parameters. The critic must not mix samples (no BatchNorm).
    """
    if not torch.is_tensor(real) or not torch.is_tensor(fake) or not real.is_floating_point() or real.dim() < 2:
        got = _shape(real) if torch.is_tensor(real) else type(real).__name__
        raise ValueError(f"expected real samples of shape (N, ...) e.g. (N, C, H, W), floating point; got {got}")
    if fake.shape != real.shape:
        raise ValueError(f"expected fake samples of the same shape as the real ones {_shape(real)}; got {_shape(fake)}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0; got {lam}")
    real, fake = real.detach(), fake.detach().to(real.dtype)
    n = real.shape[0]
    eps = torch.rand((n,) + (1,) * (real.dim() - 1), generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    grad = _per_sample_input_grad(critic, x_hat)
    norm = torch.linalg.vector_norm(_f32(grad).reshape(n, -1), ord=2, dim=1)
    return lam * ((norm - 1.0) ** 2).mean()


def r1_penalty(critic: nn.Module, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 regulariser (Mescheder et al. 2018, eq. 9), a scalar:

        R1 = γ/2 · E_x~p_D[‖∇_x D(x)‖²]

    on REAL samples ``real`` ``(N, ...)`` only; D is the discriminator's logit (its
    per-sample mean for a PatchGAN map), the squared norm is per sample over all non-batch
    dimensions. The paper uses γ = 10 in most experiments. Differentiable w.r.t. the
    critic's parameters (create_graph); ``real`` is detached.
    """
    if not torch.is_tensor(real) or not real.is_floating_point() or real.dim() < 2:
        got = _shape(real) if torch.is_tensor(real) else type(real).__name__
        raise ValueError(f"expected real samples of shape (N, ...) e.g. (N, C, H, W), floating point; got {got}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0; got {gamma}")
    x = real.detach().requires_grad_(True)
    grad = _per_sample_input_grad(critic, x)
    sq_norm = _f32(grad).reshape(x.shape[0], -1).pow(2).sum(dim=1)
    return 0.5 * gamma * sq_norm.mean()


class _R1Objective(AdversarialLoss):
    """Base of the objectives with an optional R1 penalty: ``penalty`` = R1 on reals when
    ``r1`` (γ) > 0, zero otherwise. One D step per G step; ``paper_optimizer`` per class."""

    n_critic = 1

    def __init__(self, r1: float = 0.0) -> None:
        super().__init__()
        if r1 < 0:
            raise ValueError(f"r1 (the R1 weight gamma) must be >= 0; got {r1}")
        self.r1 = float(r1)

    def penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if self.r1 == 0.0:
            return _f32(real.new_zeros(()))
        return r1_penalty(critic, real, self.r1)


# ---------------------------------------------------------------- log-likelihood GANs
@register_loss("minimax", family="adversarial",
               paper="Goodfellow et al. 2014, Generative Adversarial Nets")
class MinimaxGANLoss(_R1Objective):
    """Original saturating minimax GAN: G minimises log(1 - D(G(z))).

    Goodfellow et al. 2014, eq. 1: min_G max_D E_x[log D(x)] + E_z[log(1 - D(G(z)))],
    D(·) = σ(logit). As losses to minimise, from logits (log σ(t) = -softplus(-t),
    log(1 - σ(t)) = -softplus(t)):

        d_loss = E[softplus(-D(x))] + E[softplus(D(G(z)))]      (binary cross-entropy)
        g_loss = E[log(1 - σ(D(G(z))))] = -E[softplus(D(G(z)))]

    The generator's gradient, -σ(D(G(z))) per logit, vanishes when D confidently rejects
    fakes (large negative logits) -- early in training; the paper itself recommends the
    non-saturating ``ns`` instead. Kept to show that effect.

    Inputs: logits of any shape ((N,), (N, 1), (N, 1, h, w)), any real value; each
    expectation is a mean over all elements. Schedule: k = 1 discriminator step per
    generator step (the paper's Algorithm 1 uses k = 1). The paper trains with momentum SGD
    and gives no single learning rate, so ``paper_optimizer`` is DCGAN's Adam(2e-4,
    betas (0.5, 0.999)) (Radford et al. 2016, Sec. 4), the standard protocol of this loss.

    Args:
        r1: γ of an optional R1 penalty on reals (Mescheder et al. 2018), returned by
            ``penalty``; 0 (default) disables it.
    """

    paper_optimizer = DCGAN_ADAM

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        real_out, fake_out = _logits(real_out, "real_out"), _logits(fake_out, "fake_out")
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -F.softplus(_logits(fake_out, "fake_out")).mean()


@register_loss("ns", family="adversarial",
               paper="Goodfellow et al. 2014, Generative Adversarial Nets (non-saturating, Sec. 3)")
class NonSaturatingGANLoss(_R1Objective):
    """Non-saturating GAN: G maximises log D(G(z)) instead of minimising log(1 - D(G(z))).

    Goodfellow et al. 2014, Sec. 3: same fixed point as ``minimax``, much stronger
    gradients early in training. From logits:

        d_loss = E[softplus(-D(x))] + E[softplus(D(G(z)))]      (as minimax)
        g_loss = -E[log σ(D(G(z)))] = E[softplus(-D(G(z)))]

    The generator's gradient -σ(-D(G(z))) per logit tends to -1 (not 0) as D rejects fakes.
    Inputs: logits of any shape, means over all elements. Schedule: k = 1 (the paper's
    Algorithm 1); ``paper_optimizer``: DCGAN's Adam(2e-4, betas (0.5, 0.999)) (Radford et
    al. 2016, Sec. 4, who train this loss; Goodfellow et al. give no single setting).

    Args:
        r1: γ of an optional R1 penalty on reals (Mescheder et al. 2018, who use it with
            this loss, typically γ = 10), returned by ``penalty``; 0 (default) disables it.
    """

    paper_optimizer = DCGAN_ADAM

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        real_out, fake_out = _logits(real_out, "real_out"), _logits(fake_out, "fake_out")
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-_logits(fake_out, "fake_out")).mean()


# ---------------------------------------------------------------- least squares
@register_loss("lsgan", family="adversarial",
               paper="Mao et al. 2017, Least Squares Generative Adversarial Networks")
class LSGANLoss(AdversarialLoss):
    """Least-squares GAN on RAW discriminator outputs (no sigmoid).

    Mao et al. 2017, eq. 2:

        d_loss = ½ E[(D(x) - b)²] + ½ E[(D(G(z)) - a)²]
        g_loss = ½ E[(D(G(z)) - c)²]

    with the 0-1 coding a = 0 (fake label), b = 1 (real label), c = 1 (what G wants D to
    say about fakes) by default; the paper's other scheme is a = -1, b = 1, c = 0.
    D(·) is the discriminator's linear output: applying a sigmoid first (a common
    peer-library bug) bounds the residuals to (-1, 1) and brings back the vanishing
    gradients the least-squares loss was designed to remove.

    This is the adversarial term of CycleGAN (Zhu et al. 2017, Sec. 4), but CycleGAN
    writes it without the ½: G minimises E[(D(G(x)) - 1)²], D minimises
    E[(D(y) - 1)²] + E[D(G(x))²] (its official code then halves the D loss only). Its
    λ = 10 for the cycle term is relative to that un-halved G loss, so reproducing
    CycleGAN's balance exactly takes ``2*lsgan`` (the factor on D is immaterial with Adam).

    Inputs: outputs of any shape ((N,), (N, 1), PatchGAN (N, 1, h, w)), any real value;
    means over all elements. Schedule: one D step per G step; ``paper_optimizer``: Adam
    with β1 = 0.5 as the DCGAN implementation Mao et al. build on (Sec. 4), at DCGAN's
    learning rate 2e-4, β2 = 0.999 (Radford et al. 2016, Sec. 4) -- also CycleGAN's setting
    for this loss (Zhu et al. 2017, Sec. 4). (The learning rate Mao et al. report per
    experiment was not checked against their text here.)
    """

    n_critic = 1
    paper_optimizer = DCGAN_ADAM

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0) -> None:
        super().__init__()
        if a == b:
            raise ValueError(f"LSGAN needs distinct fake and real labels; got a = b = {a}")
        self.a, self.b, self.c = float(a), float(b), float(c)

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        real_out, fake_out = _logits(real_out, "real_out"), _logits(fake_out, "fake_out")
        return 0.5 * (real_out - self.b).pow(2).mean() + 0.5 * (fake_out - self.a).pow(2).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * (_logits(fake_out, "fake_out") - self.c).pow(2).mean()


# ---------------------------------------------------------------- Wasserstein
@register_loss("wgan", family="adversarial",
               paper="Arjovsky et al. 2017, Wasserstein GAN")
class WGANLoss(AdversarialLoss):
    """Wasserstein GAN with weight clipping: the critic estimates W1 between data and G.

    Arjovsky et al. 2017, Algorithm 1, on raw critic outputs C(·) (no sigmoid):

        d_loss = E[C(G(z))] - E[C(x)]       (critic maximises E[C(x)] - E[C(G(z))])
        g_loss = -E[C(G(z))]

    The Lipschitz constraint is enforced by clamping every critic weight to
    [-c, c] after each critic step: call ``clip_weights(critic)``. Algorithm 1's defaults:
    c = 0.01, n_critic = 5 critic steps per generator step, RMSProp with learning rate
    α = 5e-5 for critic and generator (the paper found momentum-based optimisers such as
    Adam unstable), batch size m = 64: ``paper_optimizer`` = RMSprop(lr 5e-5).

    Inputs: critic outputs of any shape, any real value; means over all elements.

    Args:
        clip: the clipping bound c (> 0), exposed as ``clip_value``.
        n_critic: critic steps per generator step (>= 1).
    """

    paper_optimizer: dict[str, Any] | None = {"name": "rmsprop", "lr": 5e-5}

    def __init__(self, clip: float = 0.01, n_critic: int = 5) -> None:
        super().__init__()
        if not clip > 0:
            raise ValueError(f"clip must be > 0; got {clip}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1; got {n_critic}")
        self.clip_value = float(clip)
        self.n_critic = int(n_critic)

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        real_out, fake_out = _logits(real_out, "real_out"), _logits(fake_out, "fake_out")
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -_logits(fake_out, "fake_out").mean()


@register_loss("wgan_gp", family="adversarial",
               paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs")
class WGANGPLoss(WGANLoss):
    """WGAN with a gradient penalty instead of weight clipping (WGAN-GP).

    Gulrajani et al. 2017, Algorithm 1: same losses as ``wgan``,

        d_loss = E[C(G(z))] - E[C(x)],   g_loss = -E[C(G(z))]

    plus ``penalty(critic, real, fake)`` = λ · E[(‖∇_x̂ C(x̂)‖₂ - 1)²] on
    x̂ = ε·x + (1 - ε)·G(z), ε ~ U[0, 1] per sample, the norm per sample over all non-batch
    dimensions (see :func:`gradient_penalty`), added to ``d_loss`` by the caller. No
    weight clipping (``clip_value`` is None) and no BatchNorm in the critic. Algorithm 1's
    defaults ("We use default values of λ = 10, n_critic = 5, α = 0.0001, β1 = 0,
    β2 = 0.9", the same Adam for critic and generator): ``paper_optimizer`` = Adam(1e-4,
    betas (0, 0.9)).

    Args:
        lam: the penalty weight λ (>= 0).
        n_critic: critic steps per generator step (>= 1).
        generator: optional ``torch.Generator`` (on the samples' device) for ε, to make
            the penalty reproducible.
    """

    paper_optimizer: dict[str, Any] | None = {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)}

    def __init__(self, lam: float = 10.0, n_critic: int = 5, generator: torch.Generator | None = None) -> None:
        AdversarialLoss.__init__(self)
        if lam < 0:
            raise ValueError(f"lam must be >= 0; got {lam}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1; got {n_critic}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
        self.lam = float(lam)
        self.n_critic = int(n_critic)
        self.clip_value = None
        self.generator = generator

    def penalty(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return gradient_penalty(critic, real, fake, lam=self.lam, generator=self.generator)


# ---------------------------------------------------------------- hinge
@register_loss("hinge", family="adversarial",
               paper="Lim & Ye 2017, Geometric GAN; Miyato et al. 2018, Spectral Normalization for GANs")
class HingeGANLoss(_R1Objective):
    """Hinge GAN: a margin-1 SVM discriminator and a linear generator loss.

    Lim & Ye 2017; Miyato et al. 2018 (Sec. 4), on raw outputs D(·):

        d_loss = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]
        g_loss = -E[D(G(z))]

    Inputs: outputs of any shape, any real value; means over all elements. Schedule:
    Miyato et al. report several (n_dis = 1 or 5, Adam settings per experiment), so
    ``n_critic`` = 1 and ``paper_optimizer`` is None (a task's ``optimizer=paper`` then
    trains it with the task's own Adam).

    Args:
        r1: γ of an optional R1 penalty on reals (Mescheder et al. 2018), returned by
            ``penalty``; 0 (default) disables it.
    """

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        real_out, fake_out = _logits(real_out, "real_out"), _logits(fake_out, "fake_out")
        return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -_logits(fake_out, "fake_out").mean()
