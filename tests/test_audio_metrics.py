"""Audio metrics on cases with known answers: MR-STFT, PESQ (when installed), NDB, local FAD, and clear errors."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from spectral_lib.data.standin import synthesize_speech
from spectral_lib.metrics.audio import fad, logmel_frames, mrstft_distance, ndb, pesq_wb, utmos, vggish_embeddings

SR = 22050
HAS_PESQ = importlib.util.find_spec("pesq") is not None


@pytest.fixture(scope="module")
def speech():
    """Two different synthetic utterances of 1.5 s."""
    a, _ = synthesize_speech(1.5, SR, np.random.default_rng(0))
    b, _ = synthesize_speech(1.5, SR, np.random.default_rng(1))
    return a.astype(np.float64), b.astype(np.float64)


def test_mrstft_distance_zero_on_itself_and_matches_the_loss(speech):
    from spectral_lib.spectral.stft import mrstft_loss

    a, b = (torch.from_numpy(s).float() for s in speech)
    assert mrstft_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    d = mrstft_distance(torch.stack([a, b]), torch.stack([b, a]), reduction="none")
    assert d.shape == (2,) and bool((d > 0.1).all())
    direct = mrstft_loss(torch.stack([a, b]).unsqueeze(1), torch.stack([b, a]).unsqueeze(1), reduction="none")
    torch.testing.assert_close(d, direct)
    assert mrstft_distance(a.numpy(), b.numpy()) == pytest.approx(float(direct[0]), rel=1e-5)
    with pytest.raises(ValueError, match="mono audio"):
        mrstft_distance(torch.zeros(2, 2, 4096), torch.zeros(2, 2, 4096))


@pytest.mark.skipif(not HAS_PESQ, reason="the pesq package is not installed")
def test_pesq_identical_is_high_and_noise_lowers_it(speech):
    a, _ = speech
    noisy = a + 0.05 * np.random.default_rng(0).standard_normal(a.size)
    same = pesq_wb(a, a, SR)
    degraded = pesq_wb(noisy, a, SR)
    assert same > 4.4  # P.862.2 maps identical signals to about 4.64
    assert degraded < same - 1.0
    both = pesq_wb(np.stack([a, noisy]), np.stack([a, a]), SR, reduction="none")
    np.testing.assert_allclose(both, [same, degraded], rtol=1e-6)
    with pytest.raises(ValueError, match="no speech"):
        pesq_wb(np.zeros(SR), np.zeros(SR), SR)


def test_pesq_missing_package_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)
    with pytest.raises(ImportError, match="pip install pesq"):
        pesq_wb(np.zeros(100), np.zeros(100), SR)


def test_ndb_same_distribution_is_near_alpha_and_disjoint_is_one():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3000, 4))
    same = ndb(real, rng.standard_normal((3000, 4)), k=20, seed=0)
    assert same.fraction <= 0.2 and same.k == 20
    np.testing.assert_allclose(same.real_proportions.sum(), 1.0)
    far = ndb(real, rng.standard_normal((3000, 4)) + 10.0, k=20, seed=0)
    assert far.fraction == 1.0 and far.n_different == 20


def test_ndb_z_statistic_matches_the_formula():
    a, b = np.zeros((1, 2)), np.full((1, 2), 5.0)
    real = np.concatenate([np.repeat(a, 500, 0), np.repeat(b, 500, 0)])
    gen = np.concatenate([np.repeat(a, 300, 0), np.repeat(b, 700, 0)])
    res = ndb(real, gen, k=2, seed=1)
    pooled = 0.4
    z = (0.5 - 0.3) / np.sqrt(pooled * 0.6 * (2 / 1000))
    np.testing.assert_allclose(np.sort(np.abs(res.z)), [z, z], rtol=1e-10)
    assert res.fraction == 1.0
    close = ndb(real, np.concatenate([np.repeat(a, 490, 0), np.repeat(b, 510, 0)]), k=2, seed=1)
    assert close.fraction == 0.0 and np.all(close.p_values > 0.05)


def test_ndb_errors():
    with pytest.raises(ValueError, match="k must be"):
        ndb(np.zeros((5, 2)), np.zeros((5, 2)), k=6)
    with pytest.raises(ValueError, match="same D"):
        ndb(np.zeros((5, 2)), np.zeros((5, 3)), k=2)


def test_logmel_frames_shape_and_peak_band():
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    f = logmel_frames(tone, SR)
    assert f.shape == ((16000 - 512) // 160 + 1, 64)  # uncentred frames of n_fft = 512 samples
    import librosa

    centres = librosa.mel_frequencies(66, fmin=125.0, fmax=7500.0, htk=True)[1:-1]
    assert abs(centres[np.argmax(f.mean(0))] - 1000) < 100


def test_local_fad_zero_on_itself_and_ranks_noise_furthest(speech):
    a, b = speech
    noise = 0.3 * np.random.default_rng(0).standard_normal(a.size)
    same = fad([a, b], [a, b], SR)
    other_speech = fad([b], [a], SR)
    vs_noise = fad([noise], [a], SR)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert float(vs_noise) > 2 * float(other_speech) > 0
    assert vs_noise.name.startswith("FD (local log-mel") and vs_noise.dim == 64
    with pytest.raises(ValueError, match="unknown embedding"):
        fad([a], [a], SR, embedding="openl3")


def test_vggish_and_utmos_explain_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "frechet_audio_distance", None)
    monkeypatch.setitem(sys.modules, "utmos", None)
    with pytest.raises(ImportError, match="frechet_audio_distance.*not FAD"):
        vggish_embeddings(np.zeros(1000), SR)
    with pytest.raises(ImportError, match="UTMOS is a learned MOS predictor.*offline runs report no UTMOS"):
        utmos(np.zeros(1000), SR)
    with pytest.raises(ValueError, match="unknown backend"):
        utmos(np.zeros(1000), SR, backend="dnsmos")
