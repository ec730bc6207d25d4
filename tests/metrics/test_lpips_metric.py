"""LPIPS (AlexNet, the ``lpips`` package): never downloads, says where the file goes, and
loads a torchvision AlexNet file into the package's trunk exactly (checked against the
package's own network). Needs the optional extra ``cvloss[lpips]``; skipped without it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

lpips = pytest.importorskip("lpips", reason="optional extra cvloss[lpips] (lpips) not installed")

from cvloss.errors import UsageError  # noqa: E402
from cvloss.metrics.lpips_metric import ALEXNET_FILE, LPIPSMetric, lpips_net, lpips_status  # noqa: E402

_spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_fake_weights",
                                               Path(__file__).resolve().parents[1] / "fixtures" / "fake_weights.py")
fake_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_weights)


def test_status_names_the_file_and_the_folder_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path, why = lpips_status()
    assert path is None and ALEXNET_FILE in why and str(tmp_path / "checkpoints") in why and "\n" not in why
    assert not any(tmp_path.iterdir())
    (tmp_path / "checkpoints").mkdir()
    fake_weights.fake_alexnet_features(tmp_path / "checkpoints" / ALEXNET_FILE)
    assert lpips_status() == (tmp_path / "checkpoints" / ALEXNET_FILE, "")


@pytest.mark.filterwarnings("ignore::UserWarning")  # the package calls deprecated torchvision API
def test_trunk_loads_like_the_package_and_distances_behave(tmp_path):
    state = fake_weights.fake_alexnet_features(tmp_path / ALEXNET_FILE, seed=3)
    ours = LPIPSMetric(tmp_path / ALEXNET_FILE)
    # The package's own network with the same trunk (its torchvision AlexNet, our weights).
    ref = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    import torchvision

    tv = torchvision.models.alexnet(weights=None)
    tv.features.load_state_dict({k[len("features."):]: v for k, v in state.items()})
    for k in range(1, 6):
        for name, mod in getattr(ref.net, f"slice{k}").named_children():
            if isinstance(mod, torch.nn.Conv2d):
                mod.load_state_dict(tv.features[int(name)].state_dict())
    torch.manual_seed(0)
    x, y = torch.rand(3, 3, 48, 48), torch.rand(3, 3, 48, 48)
    d = ours(x, y, batch_size=2)
    assert d.shape == (3,) and torch.allclose(d.float(), ref(x, y, normalize=True).flatten(), rtol=1e-5, atol=1e-7)
    assert torch.allclose(ours(x, x), torch.zeros(3, dtype=torch.float64), atol=1e-12) and (d > 0).all()
    assert lpips_net().arch == "alexnet" and len(lpips_net().layers) == 5


def test_a_file_that_is_not_alexnet_is_refused_in_one_line(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UsageError, match="cannot load AlexNet weights"):
        LPIPSMetric(tmp_path / "bad.pth")
