"""SSIM (Wang et al. 2004): identity, closed-form values, skimage reference, gradcheck."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cvloss.losses import build_loss
from cvloss.losses.ssim import SSIMLoss, ssim, ssim_map

C1, C2 = 0.01**2, 0.03**2


def test_identical_images():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert SSIMLoss()(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_constant_images_closed_form():
    # σ = 0 everywhere, so SSIM = (2ab + C1) / (a² + b² + C1) at every window.
    a, b = 0.2, 0.7
    x = torch.full((1, 1, 11, 11), a, dtype=torch.float64)
    y = torch.full((1, 1, 11, 11), b, dtype=torch.float64)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-10)
    assert SSIMLoss()(x, y).item() == pytest.approx(1 - expected, rel=1e-10)
    # data_range scales the constants: L = 255 -> C1 = (0.01·255)².
    c1 = (0.01 * 255) ** 2
    assert ssim(x * 255, y * 255, data_range=255.0).item() == pytest.approx(
        (2 * a * b * 255**2 + c1) / ((a * a + b * b) * 255**2 + c1), rel=1e-10
    )


def test_single_window_hand_value():
    # An 11×11 image has exactly one valid window; compute eq. 13 with explicit weights.
    rng = np.random.default_rng(0)
    x, y = rng.random((11, 11)), rng.random((11, 11))
    r = np.arange(-5, 6)
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cxy = (w * (x - mx) * (y - my)).sum()
    expected = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    got = ssim_map(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])
    assert got.shape == (1, 1, 1, 1)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_against_skimage():
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 20, 24))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    ours = ssim(torch.from_numpy(x), torch.from_numpy(y))
    assert ours.shape == (2,)
    for i in range(2):
        ref = structural_similarity(
            x[i], y[i], channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        assert ours[i].item() == pytest.approx(ref, rel=1e-8)
    assert ssim(torch.from_numpy(x), torch.from_numpy(y), reduction="mean").item() == pytest.approx(ours.mean().item())
    # Map size: valid convolution, (H − 10) × (W − 10).
    assert ssim_map(torch.from_numpy(x), torch.from_numpy(y)).shape == (2, 3, 10, 14)


def test_weight_map_is_centre_weighted_mean():
    torch.manual_seed(0)
    x, y = torch.rand(1, 1, 13, 14), torch.rand(1, 1, 13, 14)
    loss = SSIMLoss()
    assert torch.allclose(loss(x, y, torch.ones(1, 13, 14)), loss(x, y))
    # Weight only on the centre pixel of the window at valid position (1, 2).
    w = torch.zeros(1, 13, 14)
    w[0, 1 + 5, 2 + 5] = 1.0
    assert loss(x, y, w).item() == pytest.approx(1 - ssim_map(x, y)[0, 0, 1, 2].item(), rel=1e-6)


def test_gradcheck():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: SSIMLoss()(p, y), (x,))


def test_errors():
    loss = build_loss("ssim", task="sr")
    with pytest.raises(ValueError, match=r"H, W >= 11; got \(1, 1, 10, 12\)"):
        loss(torch.rand(1, 1, 10, 12), torch.rand(1, 1, 10, 12))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(torch.rand(12, 12), torch.rand(12, 12))
    with pytest.raises(ValueError, match=r"same shape.*\(1, 3, 12, 12\)"):
        ssim(torch.rand(1, 3, 12, 12), torch.rand(1, 1, 12, 12))
    with pytest.raises(ValueError, match="window_size"):
        SSIMLoss(window_size=4)


def test_autocast_bfloat16():
    pred = torch.rand(2, 3, 12, 12, requires_grad=True)
    target = torch.rand(2, 3, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = build_loss("ssim")(pred.to(torch.bfloat16), target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert pred.grad.abs().sum() > 0
