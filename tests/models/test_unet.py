"""The small U-Net: shapes, size, input checks, deterministic init, gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cvloss.models.unet import UNet


def _expected_params(in_ch: int, k: int, width: int, depth: int, norm: str) -> int:
    """Parameter count from the architecture's channel arithmetic, written independently."""
    bias = norm == "none"

    def double(ci: int, co: int) -> int:
        convs = 9 * ci * co + 9 * co * co + (2 * co if bias else 0)
        return convs + (0 if bias else 2 * 2 * co)  # two norm layers, weight + bias each

    ch = [width * 2**i for i in range(depth + 1)]
    total = double(in_ch, ch[0]) + sum(double(ch[i], ch[i + 1]) for i in range(depth))
    for i in range(depth):
        total += 4 * ch[i + 1] * ch[i] + ch[i]  # 2×2 transposed conv with bias
        total += double(2 * ch[i], ch[i])
    return total + ch[0] * k + k  # 1×1 head


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_output_shape_and_dtype():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 24)
    out = UNet()(x)
    assert out.shape == (2, 3, 16, 24) and out.dtype == torch.float32
    out = UNet(in_channels=1, num_classes=1, width=4, depth=2)(torch.randn(2, 1, 8, 12))
    assert out.shape == (2, 1, 8, 12)


def test_param_count_matches_docstring_and_formula():
    assert _n_params(UNet()) == 482_771 < 500_000
    assert "482,771" in UNet.__doc__
    for kw in [
        dict(in_ch=3, k=3, width=16, depth=3, norm="batch"),
        dict(in_ch=1, k=2, width=8, depth=2, norm="none"),
        dict(in_ch=3, k=5, width=4, depth=4, norm="group"),
    ]:
        m = UNet(kw["in_ch"], kw["k"], kw["width"], kw["depth"], kw["norm"])
        assert _n_params(m) == _expected_params(**kw), kw
    assert _n_params(UNet(norm="none")) == 482_067


def test_wrong_input_size_or_channels_raises():
    m = UNet(depth=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        m(torch.randn(1, 3, 20, 16))
    with pytest.raises(ValueError, match="multiples of 4"):
        UNet(depth=2)(torch.randn(1, 3, 8, 6))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        m(torch.randn(3, 16, 16))


def test_bad_constructor_args_raise():
    with pytest.raises(ValueError, match="batch, group, none"):
        UNet(norm="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="width"):
        UNet(width=0)


def test_deterministic_init_under_manual_seed():
    torch.manual_seed(123)
    a = UNet().state_dict()
    torch.manual_seed(123)
    b = UNet().state_dict()
    torch.manual_seed(124)
    c = UNet().state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["bottleneck.0.weight"], c["bottleneck.0.weight"])


def test_he_normal_init():
    # Paper: weights ~ N(0, 2/N), N = incoming connections (9·C_in for a 3×3 conv).
    torch.manual_seed(0)
    m = UNet()
    w = m.bottleneck[3].weight  # 128→128 3×3: 147,456 draws
    std = math.sqrt(2 / (9 * 128))
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert abs(w.mean().item()) < 0.02 * std  # standard error of the mean is ~0.003·std
    up = m.up[0].weight  # 2×2 stride-2 transposed conv 128→64: one tap per input channel
    assert up.std().item() == pytest.approx(math.sqrt(2 / 128), rel=0.05)
    assert all(torch.count_nonzero(mod.bias.detach()) == 0 for mod in m.modules() if isinstance(mod, nn.ConvTranspose2d))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    m = UNet(width=4, depth=2)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = torch.randint(0, 3, (2, 8, 8))
    loss = nn.functional.cross_entropy(m(x), y)
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_channels_last_matches_contiguous(norm):
    torch.manual_seed(0)
    m = UNet(width=4, depth=2, norm=norm).eval()
    x = torch.randn(2, 3, 8, 8)
    ref = m(x)
    m_cl = m.to(memory_format=torch.channels_last)
    out = m_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
