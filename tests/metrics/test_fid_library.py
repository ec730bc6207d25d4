"""Our Fréchet distance and KID maths against torch-fidelity's on fixed random features,
and the standard extractor (torch-fidelity's Inception) loaded from a weights file.

Needs the optional extra ``cvloss[fid]`` (torch-fidelity); skipped without it. The weights
file is a fake (random Inception weights saved under the real file name): the real one
cannot be downloaded here, and the maths does not depend on it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

fidelity_fid = pytest.importorskip("torch_fidelity.metric_fid", reason="optional extra cvloss[fid] (torch-fidelity) not installed")
fidelity_kid = pytest.importorskip("torch_fidelity.metric_kid", reason="optional extra cvloss[fid] (torch-fidelity) not installed")

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

from cvloss.metrics.fid import FID_WEIGHTS_FILE, FIDInception, fid_from_features, kid_from_features, mmd2_unbiased  # noqa: E402

_spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_fake_weights",
                                               Path(__file__).resolve().parents[1] / "fixtures" / "fake_weights.py")
fake_weights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_weights)

_KID_KW = dict(kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
               verbose=False, rng_seed=2020)


def _features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 16))
    y = rng.normal(size=(120, 16)) @ rng.normal(size=(16, 16)) * 0.3 + 0.5
    return x, y


def test_frechet_distance_matches_torch_fidelity():
    x, y = _features()
    stats = [fidelity_fid.fid_features_to_statistics(torch.from_numpy(f)) for f in (x, y)]
    theirs = fidelity_fid.fid_statistics_to_metric(*stats, verbose=False)[fidelity_fid.KEY_METRIC_FID]
    assert fid_from_features(x, y) == pytest.approx(theirs, rel=1e-7)


def test_kid_matches_torch_fidelity():
    x, y = _features(1)
    # The unbiased MMD² with the cubic kernel (gamma = 1/d, coef0 = 1) on equal-size sets.
    assert mmd2_unbiased(x[:50], y[:50]) == pytest.approx(fidelity_kid.kernel_mmd(x[:50], y[:50], **_KID_KW), rel=1e-9)
    # Subsets as large as both sets: every subset is the whole sets, so the library's mean
    # (whatever its seed) is our single value, and both standard deviations are ~0.
    theirs = fidelity_kid.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=5,
                                                 kid_subset_size=len(x), **_KID_KW)
    mean, std = kid_from_features(x, y)
    assert mean == pytest.approx(theirs[fidelity_kid.KEY_METRIC_KID_MEAN], rel=1e-9)
    assert std == 0.0 and theirs[fidelity_kid.KEY_METRIC_KID_STD] == pytest.approx(0.0, abs=1e-12)


def test_fid_inception_reads_the_weights_file_and_quantises(tmp_path):
    path = tmp_path / FID_WEIGHTS_FILE
    fake_weights.fake_fid_weights(path)
    net = FIDInception(path)
    assert "torch-fidelity" in net.name and "2015-12-05" in net.name and FID_WEIGHTS_FILE in net.name
    x = torch.rand(3, 3, 32, 40)
    f = net(x, batch_size=2)
    assert f.shape == (3, 2048) and f.dtype == torch.float64 and torch.isfinite(f).all()
    # [0, 1] floats are quantised to uint8 first: the same features as the uint8 images.
    assert torch.equal(f, net((x * 255).round().to(torch.uint8)))


def test_fid_inception_refuses_a_file_that_is_not_its_state_dict(tmp_path):
    from cvloss.errors import UsageError

    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(UsageError, match="cannot load FID Inception weights"):
        FIDInception(bad)
