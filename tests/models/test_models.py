"""Every reference model (the U-Net has its own file): output shapes, gradients reaching
every parameter, the same initial weights under the same seed."""
from __future__ import annotations

import pytest
import torch

from cvloss.models.cyclegan import CycleGAN, ImagePool
from cvloss.models.discriminator import SRDiscriminator
from cvloss.models.embedding import EmbeddingNet
from cvloss.models.mlp_gan import MLPGAN
from cvloss.models.sr import EDSR, SRModel
from cvloss.models.style_image import StyleImage

CASES = {
    "edsr": (lambda: EDSR(2, n_feats=4, n_blocks=1), lambda: torch.rand(2, 3, 8, 8), (2, 3, 16, 16)),
    "sr_discriminator": (lambda: SRDiscriminator(4, 2), lambda: torch.rand(2, 3, 16, 16), None),
    "embedding": (lambda: EmbeddingNet(width=4, dim=8, depth=2, num_classes=5), lambda: torch.rand(4, 3, 32, 32), (4, 8)),
    "mlp_gan": (lambda: MLPGAN(noise_dim=2, hidden=8, layers=2), lambda: torch.randn(5, 2), (5, 2)),
    "cyclegan": (lambda: CycleGAN(4, 1, 2, 4, 2), lambda: torch.rand(2, 3, 16, 16) * 2 - 1, (2, 3, 16, 16)),
}


@pytest.mark.parametrize("name", CASES)
def test_shape_gradients_and_seeded_init(name):
    make, data, shape = CASES[name]
    torch.manual_seed(0)
    a = make()
    torch.manual_seed(0)
    b = make()
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    out = a(data())
    if shape is not None:
        assert tuple(out.shape) == shape
    out.float().square().mean().backward()
    # parts the forward does not run: the softmax head (trained by softmax alone), the
    # GANs' discriminators (forward is G)
    unused = {"embedding": ("classifier",), "mlp_gan": ("D.",), "cyclegan": ("g_ba", "d_a", "d_b")}.get(name, ())
    missing = [n for n, p in a.named_parameters() if p.grad is None and not n.startswith(unused)]
    assert not missing, missing


def test_sr_model_and_cyclegan_parts():
    model = SRModel(EDSR(2, n_feats=4, n_blocks=1), SRDiscriminator(4, 2))
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16) and model.d(torch.rand(1, 3, 16, 16)).numel() >= 1
    gan = CycleGAN(4, 1, 2, 4, 2)
    names = {id(p) for p in gan.generator_parameters()}
    assert names.isdisjoint(id(p) for p in gan.discriminator_parameters())
    assert len(names) + len(gan.discriminator_parameters()) == len(list(gan.parameters()))


def test_image_pool_and_style_image():
    pool, g = ImagePool(2), torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 4, 4)
    assert pool.query(x, g).shape == x.shape and pool.count == 2
    img = StyleImage(torch.full((1, 3, 4, 4), 0.5))
    with torch.no_grad():
        img.image.add_(1.0)
    img.project_()
    assert torch.equal(img(), torch.ones(1, 3, 4, 4))
    with pytest.raises(Exception, match="param"):
        StyleImage(torch.rand(1, 3, 4, 4), "tanh")
