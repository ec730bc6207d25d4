"""The on-disk cache of decoded datasets and derived maps, and the memo of fixed targets'
feature passes: a hit returns what a build returns, every key part makes another file,
a corrupt file is rebuilt, nothing is computed twice."""
from __future__ import annotations

import torch

from cvloss.data import cache, synthetic
from cvloss.data.registry import load_dataset


def _files(root):
    return sorted(p.name for p in (root / "synth-pets" / cache.CACHE_DIR).glob("*.pt"))


def test_a_dataset_is_decoded_once_and_keyed_by_split_and_kwargs(tmp_path, monkeypatch):
    calls = []
    real = synthetic.load_synth_pets

    def counting(root, split, **kwargs):
        calls.append((split, kwargs))
        return real(root, split, **kwargs)

    monkeypatch.setattr(synthetic, "load_synth_pets", counting)
    first = load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=3)
    again = load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=3)
    assert len(calls) == 1  # the second came from the file
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    assert again.class_names == first.class_names and type(again.class_names) is tuple
    load_dataset("synth-pets", "val", data_dir=tmp_path, size=16, limit=3)
    load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=4)
    load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=3, seed=1)
    assert len(calls) == 4 and len(_files(tmp_path)) == 4  # split, limit and seed are each in the key
    assert [n for n in _files(tmp_path) if n.startswith("val-")]
    # a truncated file is rebuilt, not trusted
    for path in (tmp_path / "synth-pets" / cache.CACHE_DIR).glob("train-*.pt"):
        path.write_bytes(path.read_bytes()[:100])
    rebuilt = load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=3)
    assert len(calls) == 5 and torch.equal(rebuilt.images, first.images)
    monkeypatch.setenv(cache.CACHE_ENV, "0")
    load_dataset("synth-pets", "train", data_dir=tmp_path, size=16, limit=3)
    assert len(calls) == 6  # caching off


def test_a_derived_tensor_is_keyed_by_the_data_bytes(tmp_path):
    built = []

    def build(x):
        built.append(1)
        return x.float() * 2

    a, b = torch.arange(6).reshape(2, 3), torch.arange(6).reshape(2, 3) + 1
    first = cache.cached_tensor(tmp_path, "double", {"k": 1}, a, lambda: build(a))
    assert torch.equal(cache.cached_tensor(tmp_path, "double", {"k": 1}, a.clone(), lambda: build(a)), first)
    assert len(built) == 1
    assert torch.equal(cache.cached_tensor(tmp_path, "double", {"k": 1}, b, lambda: build(b)), b.float() * 2)
    cache.cached_tensor(tmp_path, "double", {"k": 2}, a, lambda: build(a))
    assert len(built) == 3


def test_a_constant_targets_features_are_computed_once(monkeypatch):
    from cvloss.losses import features

    net = features.get_feature_extractor("vgg16", "random")
    calls = []
    extract = type(net).extract
    # patch the class, not the process-wide cached instance: undoing an instance patch
    # would leave a bound method on that instance, shadowing later class-level patches
    monkeypatch.setattr(type(net), "extract", lambda self, x, layers: calls.append(1) or extract(self, x, layers))
    target, other = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    features.mark_constant(target)
    with torch.no_grad():
        one = features.target_features(net, target, ("relu1_2",))
        two = features.target_features(net, target, ("relu1_2",))
        features.target_features(net, other, ("relu1_2",))
        features.target_features(net, other, ("relu1_2",))
    assert one is two and len(calls) == 3  # the unmarked target is computed each time
    target.add_(0)  # an in-place change: computed again
    with torch.no_grad():
        three = features.target_features(net, target, ("relu1_2",))
    assert len(calls) == 4 and torch.equal(three["relu1_2"], one["relu1_2"])
