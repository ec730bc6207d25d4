"""FID, KID and PSNR against hand / NumPy / SciPy computations on small feature sets."""
from __future__ import annotations


import numpy as np
import pytest
import scipy.linalg
import torch

from cvloss.metrics.fid import (FID_WEIGHTS_ENV, FID_WEIGHTS_FILE, PYTORCH_FID_FILE, feature_stats, fid_from_features,
                                fid_weights_status, frechet_distance, kid_from_features, mmd2_unbiased,
                                polynomial_kernel)


def _fid_scipy(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    y = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)) * 0.7 + 0.3
    assert fid_from_features(x, y) == pytest.approx(_fid_scipy(x, y), rel=1e-8)
    assert fid_from_features(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(_fid_scipy(x, y), rel=1e-8)


@pytest.mark.parametrize("n, m", [(30, 20), (8, 200), (2, 3)])
def test_few_samples_in_many_dimensions_match_the_covariance_form(n, m):
    """Fewer samples than dimensions (FID on ~100 images, 2048-d features): the low-rank
    form equals the d x d eigen form and scipy's sqrtm."""
    rng = np.random.default_rng(n)
    d = 64
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=d)
    y = rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) * 0.2 + 0.1
    # the d x d form carries round-off: √ of the ~1e-13 eigenvalues that are 0 in exact
    # arithmetic (rank < d) adds ~1e-7 each, hence rel 1e-7 rather than 1e-9
    full = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert fid_from_features(x, y) == pytest.approx(full, rel=1e-7)
    assert fid_from_features(x, y) == pytest.approx(_fid_scipy(x, y), rel=1e-6)
    assert fid_from_features(y, x) == pytest.approx(fid_from_features(x, y), rel=1e-12)  # symmetric
    with pytest.raises(ValueError, match="n, m >= 2"):
        fid_from_features(x[:1], y)


def test_frechet_distance_by_hand():
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = (mu1 - mu2)^2 + (sqrt s1 - sqrt s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(4 + 1)
    # Diagonal covariances: the sum of the 1-D distances.
    d = frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.ones(2), np.diag([4.0, 16.0]))
    assert d == pytest.approx(2 + 1 + 4)
    # Identical sets: 0 (up to round-off), and symmetric.
    x = np.random.default_rng(1).normal(size=(30, 5))
    assert abs(fid_from_features(x, x)) < 1e-8
    y = x[::-1] * 2
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-9)


def test_feature_stats_are_mean_and_unbiased_covariance():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = feature_stats(x)
    assert np.allclose(mu, [2.0, 2.0])
    assert np.allclose(sigma, [[4.0, 3.0], [3.0, 3.0]])  # ddof = 1
    with pytest.raises(ValueError, match="n >= 2"):
        feature_stats(x[:1])


def _mmd_loops(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_unbiased_estimator_matches_loops():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(9, 4)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd_loops(x, y), rel=1e-10)
    assert polynomial_kernel(x[:1], y[:1])[0, 0] == pytest.approx((x[0] @ y[0] / 4 + 1) ** 3)
    # The whole sets as the single subset when both fit: mean = the estimator, std 0.
    y7 = y[:7]
    assert kid_from_features(x, y7) == (pytest.approx(_mmd_loops(x, y7), rel=1e-10), 0.0)


def test_kid_subsets_are_deterministic_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(150, 8))
    a = kid_from_features(x, y, n_subsets=20, subset_size=50, seed=0)
    assert a == kid_from_features(x, y, n_subsets=20, subset_size=50, seed=0) and a[1] > 0
    shifted = kid_from_features(x, y + 1.0, n_subsets=20, subset_size=50)
    assert abs(a[0]) < 0.05 < shifted[0]  # same distribution ~ 0 (unbiased), a shift is seen
    # Subsets are drawn without replacement: a 1-subset of full size reproduces the whole-set value.
    assert kid_from_features(x[:50], y[:50], n_subsets=1, subset_size=50)[0] == pytest.approx(mmd2_unbiased(x[:50], y[:50]))


def test_kid_uses_both_whole_sets_when_each_fits_whatever_the_seed():
    # Sizes 30 and 45, subset 1000 (the default): no subsampling, so no seed dependence.
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(45, 5)) + 0.2
    values = {kid_from_features(x, y, seed=s) for s in range(5)}
    assert len(values) == 1 and next(iter(values))[0] == pytest.approx(_mmd_loops(x, y), rel=1e-10)
    assert kid_from_features(x, y, seed=0) == kid_from_features(x, y, seed=123) == (mmd2_unbiased(x, y), 0.0)
    # One set larger than the subset: only that one is subsampled; the smaller is whole every time.
    mean, std = kid_from_features(x, y, n_subsets=10, subset_size=40, seed=0)
    assert std > 0 and np.isfinite(mean)
    with pytest.raises(ValueError, match="subset_size"):
        kid_from_features(x, y, subset_size=1)


def test_fid_weights_status_never_downloads_and_says_where(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity", reason="the optional extra cvloss[fid] (torch-fidelity) is not installed")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    path, why = fid_weights_status()
    assert path is None and FID_WEIGHTS_FILE in why and str(tmp_path / "checkpoints") in why and "--fid-weights" in why
    assert "\n" not in why and not any(tmp_path.iterdir())  # one line; nothing fetched
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / PYTORCH_FID_FILE).write_bytes(b"x")  # pytorch-fid's name of the same weights
    assert fid_weights_status()[0] == tmp_path / "checkpoints" / PYTORCH_FID_FILE
    # An explicit path (--fid-weights, or $CVLOSS_FID_WEIGHTS) wins, and a missing one is named.
    own = tmp_path / "mine.pth"
    own.write_bytes(b"x")
    assert fid_weights_status(own) == (own.resolve(), "")
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(own))
    assert fid_weights_status() == (own.resolve(), "")
    path, why = fid_weights_status(tmp_path / "missing.pth")
    assert path is None and "missing.pth" in why


def test_fid_weights_status_without_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_fidelity(name, *args, **kwargs):
        if name.startswith("torch_fidelity"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fidelity)
    path, why = fid_weights_status()
    assert path is None and "cvloss[fid]" in why
