"""The VGG feature extractor: layer names vs torchvision indices, normalisation, weights."""
from __future__ import annotations


import pytest
import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from cvloss.losses import build_loss
from cvloss.losses import features as feat
from cvloss.losses.features import (
    LAYER_INDEX,
    FeatureWeightsError,
    RandomFeaturesWarning,
    VGGFeatures,
    clear_feature_cache,
    get_feature_extractor,
    layer_stride,
)

CFG = {"vgg16": "D", "vgg19": "E"}


def torchvision_features(arch: str) -> nn.Sequential:
    """torchvision's own ``vgg16().features`` / ``vgg19().features`` (without the classifier)."""
    return tv_vgg.make_layers(tv_vgg.cfgs[CFG[arch]], batch_norm=False)


@pytest.fixture(scope="module")
def vgg16() -> VGGFeatures:
    return VGGFeatures("vgg16", "random:3")


@pytest.fixture
def fresh_cache():
    clear_feature_cache()
    yield
    clear_feature_cache()


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_layer_names_match_torchvision_indices(arch):
    ref = torchvision_features(arch)
    names = list(LAYER_INDEX[arch])
    assert len(names) == len(ref)
    for name, idx in LAYER_INDEX[arch].items():
        module = ref[idx]
        expected = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name[:4]]
        assert isinstance(module, expected), (name, idx, module)
        if name.startswith("conv"):
            block = int(name[4])
            assert module.out_channels == (64, 128, 256, 512, 512)[block - 1]
    # Indices quoted in the literature.
    assert LAYER_INDEX["vgg16"]["relu2_2"] == 8 and LAYER_INDEX["vgg16"]["relu3_3"] == 15
    assert LAYER_INDEX["vgg16"]["relu4_3"] == 22 and LAYER_INDEX["vgg16"]["pool5"] == 30
    assert LAYER_INDEX["vgg19"]["relu3_4"] == 17 and LAYER_INDEX["vgg19"]["relu4_2"] == 22
    assert LAYER_INDEX["vgg19"]["relu5_1"] == 29 and LAYER_INDEX["vgg19"]["relu5_4"] == 35
    assert "relu5_4" not in LAYER_INDEX["vgg16"]


def test_state_dict_keys_and_shapes_match_torchvision(vgg16):
    ours = vgg16.features.state_dict()
    ref = torchvision_features("vgg16").state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_imagenet_normalisation_matches_manual_torchvision(vgg16):
    ref = torchvision_features("vgg16")
    ref.load_state_dict(vgg16.features.state_dict())
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    manual = ref[: LAYER_INDEX["vgg16"]["relu3_3"] + 1]((x - mean) / std)
    ours = vgg16.extract(x, ["relu3_3"])["relu3_3"]
    torch.testing.assert_close(ours, manual)
    unnormalised = ref[:16](x)
    assert not torch.allclose(ours, unnormalised, atol=1e-3)


def test_extract_returns_every_requested_layer_with_its_shape(vgg16):
    x = torch.rand(2, 3, 16, 16)
    out = vgg16.extract(x, ["relu2_2", "conv1_1", "pool1"])
    assert list(out) == ["relu2_2", "conv1_1", "pool1"]
    assert out["conv1_1"].shape == (2, 64, 16, 16)
    assert out["pool1"].shape == (2, 64, 8, 8)
    assert out["relu2_2"].shape == (2, 128, 8, 8)
    # conv output is the pre-activation (not clobbered by an in-place ReLU).
    assert (out["conv1_1"] < 0).any()
    assert layer_stride("vgg19", "relu3_1") == 4 and layer_stride("vgg16", "pool5") == 32


def test_forward_stops_at_the_deepest_requested_layer(vgg16):
    called = []
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: called.append(k)) for k, m in enumerate(vgg16.features)]
    try:
        x = torch.rand(1, 3, 8, 8)
        out = vgg16.extract(x, ["relu1_2"])["relu1_2"]
    finally:
        for h in hooks:
            h.remove()
    # ReLUs whose input is not asked for run in place (torch.relu_, no module call):
    # the hooks see the convolutions up to relu1_2 and nothing after it.
    assert called == [0, 2]
    torch.testing.assert_close(out, vgg16.features[:4](vgg16.normalize(x)))


def test_a_requested_conv_output_survives_its_relu(vgg16):
    x = torch.rand(1, 3, 8, 8)
    out = vgg16.extract(x, ["conv1_2", "relu1_2"])
    reference = vgg16.features[:3](vgg16.normalize(x))
    torch.testing.assert_close(out["conv1_2"], reference)
    assert (out["conv1_2"] < 0).any()
    torch.testing.assert_close(out["relu1_2"], reference.clamp_min(0))


def test_one_channel_is_repeated_to_three(vgg16):
    x1 = torch.rand(2, 1, 8, 8)
    a = vgg16.extract(x1, ["relu1_2"])["relu1_2"]
    b = vgg16.extract(x1.repeat(1, 3, 1, 1), ["relu1_2"])["relu1_2"]
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        vgg16.extract(torch.rand(2, 2, 8, 8), ["relu1_2"])


def test_frozen_eval_and_stays_eval_under_parent_train(vgg16):
    assert all(not p.requires_grad for p in vgg16.parameters())
    parent = nn.Sequential(nn.Conv2d(3, 3, 1), vgg16)
    parent.train()
    assert parent[0].training and not vgg16.training
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    vgg16.extract(x, ["relu1_1"])["relu1_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg16.parameters())


def test_random_weights_are_reproducible_and_leave_global_rng_alone():
    state = torch.get_rng_state()
    a = VGGFeatures("vgg16", "random:7")
    assert torch.equal(torch.get_rng_state(), state)
    b = VGGFeatures("vgg16", "random:7")
    c = VGGFeatures("vgg16", "random:8")
    for (k, va), vb, vc in zip(a.features.state_dict().items(), b.features.state_dict().values(), c.features.state_dict().values()):
        assert torch.equal(va, vb), k
        if k.endswith("weight"):
            assert not torch.equal(va, vc), k
    assert a.weights_used == "random(seed=7)"
    d = VGGFeatures("vgg16", "random")
    assert d.weights_used == "random(seed=0)"
    # Kaiming normal, fan_out: std = sqrt(2 / (out_channels * 9)).
    w = d.features[2].weight
    assert w.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)
    assert torch.equal(d.features[2].bias, torch.zeros(64))


def test_path_state_dict_loads_full_and_features_only(tmp_path, vgg16):
    sd = {f"features.{k}": v.clone() for k, v in vgg16.features.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision VGG has these: ignored
    full = tmp_path / "vgg16_full.pth"
    torch.save(sd, full)
    net = VGGFeatures("vgg16", str(full))
    assert net.weights_used == f"file:{full}"
    assert torch.equal(net.features[0].weight, vgg16.features[0].weight)
    only = tmp_path / "vgg16_features.pth"
    torch.save(vgg16.features.state_dict(), only)
    assert torch.equal(VGGFeatures("vgg16", str(only)).features[28].bias, vgg16.features[28].bias)


def test_missing_or_mismatched_path_fails_naming_the_file(tmp_path, vgg16):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FeatureWeightsError, match="nope.pth.*does not exist"):
        VGGFeatures("vgg16", str(missing))
    wrong = tmp_path / "vgg16_for_vgg19.pth"
    torch.save(vgg16.features.state_dict(), wrong)
    with pytest.raises(FeatureWeightsError, match="vgg16_for_vgg19.pth.*vgg19"):
        VGGFeatures("vgg19", str(wrong))
    # build_loss turns it into a one-line SpecError (a ValueError).
    with pytest.raises(ValueError, match="nope.pth"):
        build_loss(f"perceptual(weights={missing})")


def _offline(*args, **kwargs):
    raise OSError("network unreachable (test)")


def test_auto_offline_falls_back_to_random_with_a_loud_warning(monkeypatch, fresh_cache):
    monkeypatch.setattr(feat, "_imagenet_state_dict", _offline)
    with pytest.warns(RandomFeaturesWarning) as record:
        net = get_feature_extractor("vgg16", "auto")
    assert net.weights_used == "random(seed=0)"
    # One warning (not a warning and a log record: the CLI printed both, so twice).
    (warning,) = record
    text = str(warning.message)
    assert "RANDOM" in text and "vgg16-397923af.pth" in text and feat.hub_checkpoint_path("vgg16").rsplit("/", 1)[0] in text
    # auto is resolved once and shared with an explicit random request.
    assert get_feature_extractor("vgg16", "auto") is net
    assert get_feature_extractor("vgg16", "random") is net
    with pytest.raises(FeatureWeightsError, match="vgg16-397923af.pth"):
        VGGFeatures("vgg16", "imagenet")


def test_auto_uses_imagenet_when_the_loader_has_it(monkeypatch, fresh_cache, vgg16):
    sd = {f"features.{k}": v for k, v in vgg16.features.state_dict().items()}
    monkeypatch.setattr(feat, "_imagenet_state_dict", lambda arch: sd)
    net = get_feature_extractor("vgg16", "auto")
    assert net.weights_used == "imagenet"
    assert get_feature_extractor("vgg16", "imagenet") is net
    assert torch.equal(net.features[0].weight, vgg16.features[0].weight)


def test_imagenet_loader_reads_the_hub_cache_before_any_download(monkeypatch, tmp_path, capsys, vgg16):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(feat, "_unreachable", lambda url, timeout: "network unreachable (test)")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)  # never reached offline
    with pytest.raises(feat.WeightsUnavailable, match="unreachable") as err:
        feat._imagenet_state_dict("vgg16")  # no cache file, no network: refused
    # One line naming the file to fetch and where it goes; nothing created, nothing printed.
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in str(err.value)
    assert str(tmp_path / "checkpoints" / "vgg16-397923af.pth") in str(err.value)
    assert not any(tmp_path.iterdir()) and capsys.readouterr() == ("", "")
    (tmp_path / "checkpoints").mkdir()
    torch.save({f"features.{k}": v for k, v in vgg16.features.state_dict().items()}, tmp_path / "checkpoints" / "vgg16-397923af.pth")
    assert feat.hub_checkpoint_path("vgg16") == str(tmp_path / "checkpoints" / "vgg16-397923af.pth")
    assert VGGFeatures("vgg16", "imagenet").weights_used == "imagenet"


def test_imagenet_online_downloads_into_the_cache_with_the_checksum_and_nothing_on_stdout(
        monkeypatch, tmp_path, capsys, vgg16):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        torch.save({f"features.{k}": v for k, v in vgg16.features.state_dict().items()}, dst)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(feat, "_unreachable", lambda url, timeout: None)  # the server answers
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert VGGFeatures("vgg16", "imagenet").weights_used == "imagenet"
    assert calls == [("https://download.pytorch.org/models/vgg16-397923af.pth", str(path), "397923af")]
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("downloading ImageNet vgg16 weights")
    VGGFeatures("vgg16", "imagenet")  # cached now: no second download
    assert len(calls) == 1


def test_require_feature_weights_refuses_offline_imagenet_for_the_networks_used_only(monkeypatch, tmp_path, vgg16):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(feat, "_unreachable", lambda url, timeout: "offline (test)")
    (tmp_path / "checkpoints").mkdir()
    torch.save(vgg16.features.state_dict(), tmp_path / "checkpoints" / "vgg16-397923af.pth")
    feat.require_feature_weights("imagenet", ["vgg16", "alexnet"])  # cached; not a VGG of ours: not asked
    feat.require_feature_weights("random", ["vgg19"])
    feat.require_feature_weights("auto", ["vgg19"])  # auto falls back later, with its warning
    with pytest.raises(feat.WeightsUnavailable, match=r"vgg19 weights .*\(offline \(test\)\).*vgg19-dcbb9e9d.pth"):
        feat.require_feature_weights("ImageNet", ["vgg16", "vgg19"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "vgg16-397923af.pth"]


@pytest.mark.parametrize("spec, task, archs", [
    ("l1+0.01*perceptual", "sr", ("vgg16",)),
    ("ce+0.1*topo", "seg", ("vgg19",)),
    ("content+1000*style+0.01*tv", "style", ("vgg19",)),
    ("perceptual(arch=vgg19)+texture(arch=vgg16)", None, ("vgg19", "vgg16")),
    ("l1+perceptual(weights=random)", "sr", ()),  # its own weights: --feature-weights does not decide them
    ("ce+dice", "seg", ()),
])
def test_default_feature_archs(spec, task, archs):
    from cvloss.losses.spec import default_feature_archs

    assert default_feature_archs(spec, task) == archs


def test_cache_shares_one_network_between_losses():
    a = build_loss("perceptual(weights=random)")
    b = build_loss("perceptual(layers=[relu1_2,relu3_3], weights=random)")
    assert a.extractor is b.extractor is get_feature_extractor("vgg16", "random:0")
    assert a.feature_weights == "random(seed=0)"
    assert get_feature_extractor("vgg16", "random:1") is not a.extractor


def test_bad_weights_and_layers_are_refused():
    with pytest.raises(ValueError, match="relu9_9.*valid: conv1_1"):
        build_loss("perceptual(layers=[relu9_9], weights=random)")
    with pytest.raises(ValueError, match="seed"):
        VGGFeatures("vgg16", "random:x")
    with pytest.raises(ValueError, match="vgg16, vgg19"):
        VGGFeatures("vgg11", "random")
