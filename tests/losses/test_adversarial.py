"""Tests of the adversarial objectives, the WGAN-GP gradient penalty and R1."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from cvloss.losses import CombinedLoss, SpecError, build_loss, get_loss_info, list_losses
from cvloss.losses.adversarial import (
    HingeGANLoss,
    LSGANLoss,
    MinimaxGANLoss,
    NonSaturatingGANLoss,
    WGANGPLoss,
    WGANLoss,
    gradient_penalty,
    r1_penalty,
)
from cvloss.losses.cycle import CycleConsistencyLoss, IdentityLoss

NAMES = ("minimax", "ns", "lsgan", "wgan", "wgan_gp", "hinge")
REAL = [-1.0, 0.0, 2.0]
FAKE = [0.5, -2.0, 1.0]


def sp(x: float) -> float:
    """softplus by hand: log(1 + e^x)."""
    return math.log1p(math.exp(x))


def mean(xs) -> float:
    return sum(xs) / len(xs)


def t(xs, dtype=torch.float64, grad=False):
    return torch.tensor(xs, dtype=dtype, requires_grad=grad)


# ---------------------------------------------------------------- hand-computed values
def test_registration():
    for name in NAMES:
        info = get_loss_info(name)
        assert info.family == "adversarial"
        assert info.tasks == ("sr", "translate", "gan")  # by kind, in task order
        assert info.kind == "adversarial"
        assert info.summary


def test_minimax_and_ns_by_hand():
    d_expected = mean([sp(1.0), sp(0.0), sp(-2.0)]) + mean([sp(0.5), sp(-2.0), sp(1.0)])
    for loss in (MinimaxGANLoss(), NonSaturatingGANLoss()):
        assert loss.d_loss(t(REAL), t(FAKE)).item() == pytest.approx(d_expected, rel=1e-12)
    # log 2 at logit 0: D(x) = 1/2 for both.
    assert MinimaxGANLoss().d_loss(t([0.0]), t([0.0])).item() == pytest.approx(2 * math.log(2), rel=1e-12)
    # saturating: G minimises log(1 - σ(f)) = -softplus(f)
    assert MinimaxGANLoss().g_loss(t(FAKE)).item() == pytest.approx(-mean([sp(0.5), sp(-2.0), sp(1.0)]), rel=1e-12)
    # non-saturating: G minimises -log σ(f) = softplus(-f)
    assert NonSaturatingGANLoss().g_loss(t(FAKE)).item() == pytest.approx(mean([sp(-0.5), sp(2.0), sp(-1.0)]), rel=1e-12)


def test_lsgan_by_hand():
    loss = LSGANLoss()
    # ½·mean((r-1)²) = ½·(4+1+1)/3 = 1;  ½·mean(f²) = ½·(0.25+4+1)/3 = 0.875
    assert loss.d_loss(t(REAL), t(FAKE)).item() == pytest.approx(1.875, rel=1e-12)
    # ½·mean((f-1)²) = ½·(0.25+9+0)/3
    assert loss.g_loss(t(FAKE)).item() == pytest.approx(9.25 / 6, rel=1e-12)
    # the paper's other coding a=-1, b=1, c=0
    alt = LSGANLoss(a=-1.0, b=1.0, c=0.0)
    assert alt.d_loss(t(REAL), t(FAKE)).item() == pytest.approx(1.0 + 0.5 * (2.25 + 1 + 4) / 3, rel=1e-12)
    assert alt.g_loss(t(FAKE)).item() == pytest.approx(0.875, rel=1e-12)


def test_lsgan_uses_raw_outputs_not_sigmoid():
    loss = LSGANLoss()
    # ½(3-1)² + ½(-3)² = 6.5; with a sigmoid every residual would be < 1 (value < 1).
    assert loss.d_loss(t([3.0]), t([-3.0])).item() == pytest.approx(6.5, rel=1e-12)
    # The generator gradient grows with the distance (f - c), it does not vanish:
    f = t([-10.0], grad=True)
    loss.g_loss(f).backward()
    assert f.grad.item() == pytest.approx(-11.0, rel=1e-12)


def test_wgan_by_hand():
    for loss in (WGANLoss(), WGANGPLoss()):
        # mean(fake) - mean(real) = -0.5/3 - 1/3
        assert loss.d_loss(t(REAL), t(FAKE)).item() == pytest.approx(-0.5, rel=1e-12)
        assert loss.g_loss(t(FAKE)).item() == pytest.approx(0.5 / 3, rel=1e-12)


def test_hinge_by_hand():
    loss = HingeGANLoss()
    # relu(1 - r) = [2, 1, 0] -> 1;  relu(1 + f) = [1.5, 0, 2] -> 3.5/3
    assert loss.d_loss(t(REAL), t(FAKE)).item() == pytest.approx(1.0 + 3.5 / 3, rel=1e-12)
    assert loss.g_loss(t(FAKE)).item() == pytest.approx(0.5 / 3, rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_any_output_shape_is_a_mean_over_all_elements(name):
    loss = build_loss(name)
    g = torch.Generator().manual_seed(1)
    real = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    flat = loss.d_loss(real.flatten(), fake.flatten())
    assert loss.d_loss(real, fake).item() == pytest.approx(flat.item(), rel=1e-12)
    assert loss.d_loss(real.reshape(-1, 1), fake.reshape(-1, 1)).item() == pytest.approx(flat.item(), rel=1e-12)
    assert loss.g_loss(fake).item() == pytest.approx(loss.g_loss(fake.flatten()).item(), rel=1e-12)
    # real and fake batches need not have the same size
    assert torch.isfinite(loss.d_loss(real, fake[:1]))


# ---------------------------------------------------------------- numerics
def test_softplus_forms_equal_log_probability_forms_at_moderate_logits():
    x = torch.linspace(-8, 8, 17, dtype=torch.float64)
    r, f = x, x.flip(0) * 0.7
    d_naive = -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    for loss in (MinimaxGANLoss(), NonSaturatingGANLoss()):
        torch.testing.assert_close(loss.d_loss(r, f), d_naive, rtol=1e-10, atol=0)
    torch.testing.assert_close(MinimaxGANLoss().g_loss(f), torch.log(1 - torch.sigmoid(f)).mean(), rtol=1e-10, atol=0)
    torch.testing.assert_close(NonSaturatingGANLoss().g_loss(f), -torch.log(torch.sigmoid(f)).mean(), rtol=1e-10, atol=0)


def test_finite_at_extreme_logits_where_naive_log_sigmoid_is_inf():
    x = torch.tensor([100.0, -100.0])  # float32
    naive = -torch.log(1 - torch.sigmoid(x))
    assert torch.isinf(naive).any()  # 1 - σ(100) == 0 in float32
    # softplus(-x) and softplus(x) at ±100: {0, 100} each -> mean 50
    for loss in (MinimaxGANLoss(), NonSaturatingGANLoss()):
        d = loss.d_loss(x, x)
        assert torch.isfinite(d) and d.item() == pytest.approx(100.0, rel=1e-6)
    assert NonSaturatingGANLoss().g_loss(x).item() == pytest.approx(50.0, rel=1e-6)
    assert MinimaxGANLoss().g_loss(x).item() == pytest.approx(-50.0, rel=1e-6)
    for name in NAMES:
        loss = build_loss(name)
        r, f = x.clone().requires_grad_(), x.clone().requires_grad_()
        (loss.d_loss(r, f) + loss.g_loss(f)).backward()
        assert torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    loss = build_loss(name)
    # away from the hinge kinks at ±1
    real = t([-2.3, -0.4, 0.3, 1.7, 2.5], grad=True)
    fake = t([0.6, -1.6, 2.2, -0.2], grad=True)
    assert torch.autograd.gradcheck(loss.d_loss, (real, fake))
    assert torch.autograd.gradcheck(loss.g_loss, (fake,))


def test_minimax_saturates_where_ns_does_not():
    # D confidently rejects the fakes: logits -20, σ ≈ 2e-9.
    n = 4
    f1 = torch.full((n,), -20.0, dtype=torch.float64, requires_grad=True)
    MinimaxGANLoss().g_loss(f1).backward()
    assert f1.grad.abs().max().item() < 1e-9  # -σ(f)/n: vanished
    f2 = torch.full((n,), -20.0, dtype=torch.float64, requires_grad=True)
    NonSaturatingGANLoss().g_loss(f2).backward()
    torch.testing.assert_close(f2.grad, torch.full((n,), -1.0 / n, dtype=torch.float64), rtol=1e-8, atol=0)


# ---------------------------------------------------------------- WGAN schedule + clipping
def test_wgan_schedule_and_clipping():
    loss = build_loss("wgan")
    assert loss.n_critic == 5 and loss.clip_value == 0.01
    assert loss.paper_optimizer == {"name": "rmsprop", "lr": 5e-5}
    critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
        critic[0].bias[0] = 0.004  # inside the bound: must stay
    loss.clip_weights(critic)
    params = torch.cat([p.detach().flatten() for p in critic.parameters()])
    assert params.abs().max().item() <= 0.01
    assert (params.abs() == 0.01).sum().item() > params.numel() // 2
    assert critic[0].bias[0].item() == pytest.approx(0.004)
    custom = build_loss("wgan(clip=0.05,n_critic=3)")
    assert custom.clip_value == 0.05 and custom.n_critic == 3


def test_wgan_gp_schedule_and_no_clipping():
    loss = build_loss("wgan_gp")
    assert loss.n_critic == 5 and loss.clip_value is None and loss.lam == 10.0
    assert loss.paper_optimizer == {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)}
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.fill_(2.0)
    loss.clip_weights(critic)
    assert critic.weight.min().item() == 2.0
    for name in ("minimax", "ns", "lsgan", "hinge"):
        assert build_loss(name).n_critic == 1 and build_loss(name).clip_value is None


def test_every_objective_declares_its_papers_optimiser():
    """The constants ``optimizer=paper`` trains with (cited in each class's docstring);
    a newly registered objective must be added here."""
    dcgan = {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}  # Radford et al. 2016, Sec. 4
    expected = {"minimax": dcgan, "ns": dcgan, "lsgan": dcgan,
                "wgan": {"name": "rmsprop", "lr": 5e-5},  # Arjovsky et al. 2017, Algorithm 1
                "wgan_gp": {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)},  # Gulrajani et al. 2017, Algorithm 1
                "hinge": None}  # Miyato et al. 2018 report several settings
    names = {i.name for i in list_losses() if i.family == "adversarial"}
    assert names == set(expected)
    for name, optim in expected.items():
        assert build_loss(name).paper_optimizer == optim, name
    assert build_loss("wgan(n_critic=2)").paper_optimizer == expected["wgan"]  # arguments leave it alone


@pytest.mark.parametrize("spec", ["wgan(clip=0)", "wgan(n_critic=0)", "wgan_gp(lam=-1)", "wgan_gp(n_critic=0)",
                                  "ns(r1=-1)", "lsgan(a=1,b=1)", "wgan_gp(generator=foo)"])
def test_bad_arguments(spec):
    with pytest.raises(SpecError):
        build_loss(spec)


def test_bad_inputs():
    loss = NonSaturatingGANLoss()
    with pytest.raises(ValueError, match=r"\(N,\)"):
        loss.d_loss(torch.tensor([1, 2]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        loss.g_loss(torch.tensor(1.0))
    with pytest.raises(TypeError):
        loss(torch.zeros(2))
    critic = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, torch.zeros(2, 3), torch.zeros(3, 3))


# ---------------------------------------------------------------- gradient penalty
def conv_critic(patch: bool = False) -> nn.Module:
    """A tiny smooth conv critic over (N, 3, 8, 8): (N, 1) scores or a (N, 1, 4, 4) map."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 1, 3, stride=2, padding=1)]
    if not patch:
        layers += [nn.Flatten(), nn.Softplus(), nn.Linear(16, 1)]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():  # scale so that per-sample gradient norms are O(1)
        for p in net.parameters():
            p.mul_(3.0)
    return net


def images(seed=0, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64)


def loop_gradient_penalty(critic, real, fake, lam, seed):
    """Reference: each sample's gradient on its own, with autograd, in a Python loop."""
    eps = torch.rand((real.shape[0], 1, 1, 1), generator=torch.Generator().manual_seed(seed), dtype=real.dtype)
    terms = []
    for i in range(real.shape[0]):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).mean(), x)
        terms.append((grad.flatten().norm() - 1) ** 2)
    return lam * torch.stack(terms).mean(), eps


@pytest.mark.parametrize("patch", [False, True])
def test_gradient_penalty_matches_per_sample_loop(patch):
    critic = conv_critic(patch)
    real, fake = images()
    expected, eps = loop_gradient_penalty(critic, real, fake, 10.0, seed=7)
    got = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)
    # the loss object routes to the same function
    loss = WGANGPLoss(generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loss.penalty(critic, real, fake), expected, rtol=1e-10, atol=0)
    # the per-pixel (dim=1) variant of peer libraries is a different number
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.reshape(4, -1).mean(1).sum(), x_hat)
    per_pixel = 10.0 * ((grad.norm(2, dim=1) - 1) ** 2).mean()
    assert abs(per_pixel.item() - got.item()) > 0.1 * got.item()


def test_gradient_penalty_linear_critic_by_hand():
    # C(x) = Σ 0.5·x over (3, 2, 2): ∇ = 0.5 everywhere, ‖∇‖ = √(12·0.25) = √3 per sample,
    # whatever ε. Per-pixel (dim=1) norms would be √(3·0.25) ≈ 0.87 -> penalty ≈ 0.18.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False)).double()
    with torch.no_grad():
        critic[1].weight.fill_(0.5)
    real, fake = images(shape=(2, 3, 2, 2))
    gp = gradient_penalty(critic, real, fake, lam=10.0)
    assert gp.item() == pytest.approx(10.0 * (math.sqrt(3) - 1) ** 2, rel=1e-12)
    assert gradient_penalty(critic, real, fake, lam=2.0).item() == pytest.approx(2.0 * (math.sqrt(3) - 1) ** 2, rel=1e-12)


def test_gradient_penalty_draws_one_eps_per_sample():
    # C(x) = ½‖x‖² per sample: ∇ = x̂ = ε_i·1 for real = 1, fake = 0, so ‖∇‖ = ε_i·√D.
    class Quadratic(nn.Module):
        def forward(self, x):
            return 0.5 * x.pow(2).flatten(1).sum(1)

    n, shape = 5, (5, 3, 4, 4)
    real, fake = torch.ones(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    eps = torch.rand((n, 1, 1, 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64).flatten()
    expected = 10.0 * ((eps * math.sqrt(48) - 1) ** 2).mean()
    got = gradient_penalty(Quadratic(), real, fake, generator=torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    # also for vector samples (N, D) -- the gan task's MLP critic
    got_vec = gradient_penalty(Quadratic(), real.flatten(1), fake.flatten(1), generator=torch.Generator().manual_seed(3))
    assert got_vec.item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradient_penalty_reproducible_and_detaches_inputs():
    critic = conv_critic()
    real, fake = images()
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    c = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2))
    assert a.item() == b.item() and a.item() != c.item()
    # a "generator output" that requires grad gets none from the penalty
    z = fake.clone().requires_grad_(True)
    gp = gradient_penalty(critic, real, z * 1.0)
    gp.backward()
    assert z.grad is None
    # the penalty reaches every weight (create_graph=True) ...
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in critic.named_parameters() if "weight" in n)
    # ... but not the output bias: ∇_x C does not depend on it
    assert critic[-1].bias.grad is None or critic[-1].bias.grad.abs().sum() == 0


def test_gradient_penalty_is_differentiable_wrt_critic_parameters():
    critic = conv_critic()
    real, fake = images(shape=(2, 3, 8, 8))
    params = dict(critic.named_parameters())
    name = "0.weight"

    def gp_of(weight):
        p = {k: (weight if k == name else v.detach()) for k, v in params.items()}
        return gradient_penalty(lambda x: functional_call(critic, p, (x,)), real, fake,
                                generator=torch.Generator().manual_seed(0))

    w = params[name].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(gp_of, (w,))


# ---------------------------------------------------------------- R1
def linear_critic():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1)).double()
    with torch.no_grad():
        critic[1].weight.copy_(torch.arange(12, dtype=torch.float64).reshape(1, 12) / 10)
        critic[1].bias.fill_(0.3)
    return critic


def test_r1_by_hand_on_linear_critic():
    critic = linear_critic()
    real, fake = images(shape=(3, 3, 2, 2))
    # ∇_x D = w, ‖w‖² = Σ_{i<12} i² / 100 = 5.06;  R1 = γ/2 · 5.06
    r1 = r1_penalty(critic, real, gamma=10.0)
    assert r1.item() == pytest.approx(25.3, rel=1e-12)
    # d/dw (γ/2‖w‖²) = γ·w: the penalty trains the critic (create_graph)
    r1.backward()
    torch.testing.assert_close(critic[1].weight.grad, 10.0 * critic[1].weight.detach(), rtol=1e-12, atol=0)
    for name in ("ns", "minimax", "hinge"):
        assert build_loss(f"{name}(r1=10)").penalty(critic, real, fake).item() == pytest.approx(25.3, rel=1e-12)
        zero = build_loss(name).penalty(critic, real, fake)
        assert zero.item() == 0.0 and zero.dim() == 0
    assert build_loss("lsgan").penalty(critic, real, fake).item() == 0.0


# ---------------------------------------------------------------- autocast + build_loss
@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast(name):
    loss = build_loss(name + ("(r1=1)" if name in ("ns", "minimax", "hinge") else ""))
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, stride=2, padding=1))
    real = torch.rand(2, 3, 8, 8)
    fake = torch.rand(2, 3, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real_out, fake_out = critic(real), critic(fake.detach())
        assert fake_out.dtype == torch.bfloat16
        d = loss.d_loss(real_out, fake_out) + loss.penalty(critic, real, fake)
        g = loss.g_loss(critic(fake))
    assert d.dtype == torch.float32 and torch.isfinite(d) and torch.isfinite(g)
    d.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
    g.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_build_cyclegan_objective():
    loss = build_loss("lsgan+cycle+identity", task="translate")
    assert isinstance(loss, CombinedLoss)
    (w, adv), *cyc = loss.weighted_terms()
    assert w == 1.0 and isinstance(adv, LSGANLoss)
    assert [t.name for _, t in cyc] == ["cycle", "identity"]
    assert isinstance(cyc[0][1], CycleConsistencyLoss) and cyc[0][1].lam == 10.0
    assert isinstance(cyc[1][1], IdentityLoss) and cyc[1][1].effective_lam == 5.0
    with pytest.raises(TypeError):
        loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
    single = build_loss("wgan_gp(lam=5)", task="gan")
    assert isinstance(single, WGANGPLoss) and single.lam == 5.0
    with pytest.raises(SpecError, match="does not serve task"):
        build_loss("hinge", task="seg")
