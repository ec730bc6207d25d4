"""SR metrics against hand-computed values: PSNR on RGB and on BT.601 Y, border crop,
quantisation, SSIM on Y, VGG feature distance."""
from __future__ import annotations

import math

import pytest
import torch

from cvloss.metrics.image_quality import PSNR_CAP, feature_distance, psnr, quantize, rgb_to_y, shave, ssim_y


def test_psnr_rgb_of_a_constant_offset():
    t = torch.full((2, 3, 8, 8), 0.5)
    p = t + 0.1  # MSE 0.01 -> 10·log10(1/0.01) = 20 dB
    torch.testing.assert_close(psnr(p, t), torch.tensor([20.0, 20.0]))


def test_border_is_cropped_before_measuring():
    t = torch.full((1, 3, 8, 8), 0.5)
    p = t.clone()
    p[..., 0, :] += 0.1  # only the first row (8 of 64 pixels per channel) differs
    expected = 10 * math.log10(1 / (0.01 * 8 / 64))
    assert psnr(p, t).item() == pytest.approx(expected, rel=1e-5)
    assert psnr(p, t, border=1).item() == PSNR_CAP  # identical after the crop: inf capped
    assert shave(p, 2).shape[-2:] == (4, 4)
    with pytest.raises(ValueError, match="too small"):
        shave(p, 4)


def test_y_is_bt601_studio_swing():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).view(3, 3, 1, 1)
    torch.testing.assert_close(rgb_to_y(rgb).flatten(), torch.tensor([235.0, 16.0, 16 + 65.481]))


def test_psnr_on_y_uses_peak_255():
    t = torch.full((1, 3, 6, 6), 0.4)
    p = torch.full((1, 3, 6, 6), 0.5)  # gray offset 0.1 -> ΔY = 219 · 0.1 = 21.9
    assert psnr(p, t, y_only=True).item() == pytest.approx(20 * math.log10(255 / 21.9), rel=1e-5)
    # a pure-chroma change that keeps Y: zero error on Y, not on RGB
    q = t.clone()
    q[:, 0] += 0.01
    q[:, 2] -= 0.01 * 65.481 / 24.966
    assert psnr(q, t, y_only=True).item() > 80 and psnr(q, t).item() < 50


def test_quantize_rounds_to_8_bits_and_clamps():
    x = torch.tensor([-0.2, 0.0, 0.31, 0.50196, 1.3])
    torch.testing.assert_close(quantize(x), torch.tensor([0.0, 0.0, 79 / 255, 128 / 255, 1.0]))


def test_ssim_on_y():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2, 3, 16, 16, generator=g)
    torch.testing.assert_close(ssim_y(t, t, border=2), torch.ones(2))
    assert (ssim_y(t.flip(-1), t, border=2) < 0.5).all()


class _Identity:
    """An 'extractor' whose layer is the image itself, to check the formula by hand."""

    def extract(self, x, layers):
        return {layers[0]: x}


def test_feature_distance_is_the_mean_squared_feature_difference():
    t = torch.zeros(2, 3, 6, 6)
    p = t.clone()
    p[0] += 0.2  # image 0: mean square 0.04; image 1: 0
    p[1, :, 0, 0] = 1.0  # only in the 1-px border of image 1
    torch.testing.assert_close(feature_distance(p, t, _Identity(), "x", border=1), torch.tensor([0.04, 0.0]))
    assert feature_distance(p, t, _Identity(), "x")[1].item() == pytest.approx(3 / 108)
