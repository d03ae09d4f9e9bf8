"""Fréchet distance against closed forms and an eigenvalue reference; the offline extractor; FID's clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from spectral_lib.data.checkerboard import sample_checkerboards
from spectral_lib.metrics.fid import (
    FrechetResult,
    RandomConvFeatures,
    compute_features,
    feature_statistics,
    fid_score,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_local,
    inception_features,
    load_reference_statistics,
)


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 8))
    mu, sigma = feature_statistics(a)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_from_features(a, a.copy()) == pytest.approx(0.0, abs=1e-8)


def test_diagonal_gaussians_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # one dimension: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance([2.0], [[4.0]], [-1.0], [[1.0]]) == pytest.approx(9.0 + 1.0)


def test_full_covariances_match_eigenvalue_reference():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = eigen_reference(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def eigen_reference(mu1, s1, mu2, s2):
    """Tr sqrt(S1 S2) from the eigenvalues of S1^{1/2} S2 S1^{1/2} (symmetric PSD): no sqrtm involved."""
    w, v = np.linalg.eigh(s1)
    r = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr


def test_rank_deficient_covariances_match_the_reference():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((12, 40)), rng.standard_normal((12, 40)) * 0.5 + 0.3  # N < D: singular
    (m1, s1), (m2, s2) = feature_statistics(a), feature_statistics(b)
    d = frechet_distance(m1, s1, m2, s2)
    assert np.isfinite(d)
    assert d == pytest.approx(eigen_reference(m1, s1, m2, s2), rel=1e-5)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))


def test_sampled_gaussians_approach_the_formula():
    rng = np.random.default_rng(3)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    a = rng.standard_normal((20000, 4))
    b = rng.standard_normal((20000, 4)) * 2.0 + shift
    expected = (shift**2).sum() + 4 * (1 + 4 - 2 * 2)
    assert frechet_distance_from_features(a, b) == pytest.approx(expected, rel=0.05)


def test_feature_statistics_and_errors():
    f = np.arange(12.0).reshape(4, 3) ** 1.5
    mu, sigma = feature_statistics(torch.from_numpy(f))
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, np.cov(f.T, ddof=1))
    with pytest.raises(ValueError, match="at least 2 rows"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"2-D \(N, D\)"):
        feature_statistics(np.zeros(3))
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"must be \(2, 2\)"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def test_random_conv_features_are_deterministic_and_labelled():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a, b = RandomConvFeatures(seed=1), RandomConvFeatures(seed=1)
    assert torch.equal(a(x), b(x)) and a(x).shape == (4, 480)
    assert not torch.equal(a(x), RandomConvFeatures(seed=2)(x))
    assert torch.equal(a(x[:, :1]), a(x[:, :1].expand(-1, 3, -1, -1)))  # grayscale -> RGB
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        a(x[:, :2])
    assert "FID" not in a.name and a.name.startswith("FD (local features")
    feats = compute_features(a, iter([x[:2], x[2:]]))
    np.testing.assert_allclose(feats, a(x).double().numpy(), rtol=1e-6)


def test_inception_features_take_grayscale_and_refuse_other_channel_counts():
    """Both extractors share the RGB check; Inception's (no weights here) is run with a stand-in network."""
    from spectral_lib.metrics.fid import InceptionFeatures

    extractor = InceptionFeatures.__new__(InceptionFeatures)
    nn.Module.__init__(extractor)
    extractor.net = lambda u8: [u8.double().mean(dim=(2, 3))]  # torch-fidelity's network returns a tuple
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(extractor(x), extractor(x.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="1 or 3 channels, got 4"):
        extractor(torch.zeros(2, 4, 8, 8))


def test_local_fd_ranks_blurred_samples_further_than_fresh_samples():
    g = torch.Generator().manual_seed(0)
    data = sample_checkerboards(64, 16, (4,), generator=g)
    fresh = sample_checkerboards(64, 16, (4,), generator=g)
    blurred = F.avg_pool2d(F.pad(fresh, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    same = frechet_distance_local(data, data)
    near = frechet_distance_local(fresh, data)
    far = frechet_distance_local(blurred, data)
    assert isinstance(far, FrechetResult) and "not" not in far.name and "FID" not in far.name
    assert abs(float(same)) < 1e-6 * float(far)  # 64 samples < 480 dims: zero up to round-off
    assert float(far) > 3 * float(near)  # blur moves the features much further than sampling noise
    assert (far.n_samples, far.n_reference, far.dim) == (64, 64, 480)


def test_fid_without_torch_fidelity_explains_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(ImportError, match="pip install torch-fidelity.*frechet_distance_local"):
        inception_features(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ImportError, match="torch-fidelity"):
        fid_score(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))


def test_reference_statistics_npz(tmp_path):
    np.savez(tmp_path / "ref.npz", mu=np.zeros(3), sigma=np.eye(3))
    mu, sigma = load_reference_statistics(tmp_path / "ref.npz")
    assert mu.shape == (3,) and sigma.shape == (3, 3)
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        load_reference_statistics(tmp_path / "bad.npz")


def test_metrics_package_exports_resolve():
    import importlib

    import spectral_lib.metrics as metrics

    for name in metrics.__all__:
        module = importlib.import_module(f"spectral_lib.metrics.{metrics._EXPORTS[name]}")
        assert getattr(metrics, name) is getattr(module, name)
    import spectral_lib.metrics.fid as fid_module

    assert fid_module.__name__ == "spectral_lib.metrics.fid" and callable(metrics.fid_score)


def test_quantisation_follows_edm_generate_py():
    from spectral_lib.metrics.fid import quantize_like_edm

    x = torch.tensor([-1.5, -1.0, -1.0 + 1.2 / 127.5, 0.0, 0.4 / 127.5, 1.0, 2.0], dtype=torch.float64)
    expected = np.clip(np.floor(x.double().numpy() * 127.5 + 128), 0, 255).astype(np.uint8)  # generate.py's formula
    assert quantize_like_edm(x).tolist() == expected.tolist() == [0, 0, 1, 128, 128, 255, 255]
