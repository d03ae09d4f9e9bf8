"""STFT magnitudes against librosa; the multi-resolution STFT loss against an independent NumPy/librosa version."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from spectral_lib.spectral import MRSTFTLoss, mrstft_loss, stft_magnitude

SMALL = {"fft_sizes": (32, 64, 16), "hop_sizes": (8, 16, 4), "win_lengths": (32, 48, 16)}


def _librosa_magnitude(x: np.ndarray, n_fft: int, hop: int, win: int, eps: float = 1e-8) -> np.ndarray:
    spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=True, pad_mode="reflect")
    return np.sqrt(np.maximum(np.abs(spec) ** 2, eps))


def _reference_mrstft(pred: np.ndarray, target: np.ndarray, fft_sizes, hop_sizes, win_lengths) -> np.ndarray:
    total = np.zeros(pred.shape[0])
    for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths):
        s_hat = _librosa_magnitude(pred, n_fft, hop, win)
        s = _librosa_magnitude(target, n_fft, hop, win)
        b = pred.shape[0]
        sc = np.linalg.norm((s - s_hat).reshape(b, -1), axis=1) / np.linalg.norm(s.reshape(b, -1), axis=1)
        log_mag = np.abs(np.log(s) - np.log(s_hat)).reshape(b, -1).mean(axis=1)
        total += sc + log_mag
    return total / len(fft_sizes)


@pytest.mark.parametrize(("n_fft", "hop", "win"), [(64, 16, 64), (128, 32, 100), (512, 128, 512)])
def test_stft_magnitude_matches_librosa(n_fft, hop, win, generator):
    x = torch.randn(2, 3, 1000, generator=generator, dtype=torch.float64)
    got = stft_magnitude(x, fft_size=n_fft, hop_size=hop, win_length=win)
    ref = _librosa_magnitude(x.numpy(), n_fft, hop, win)
    assert got.shape == ref.shape == (2, 3, n_fft // 2 + 1, 1 + 1000 // hop)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9, atol=1e-9)


def test_stft_gradient_matches_torch_stft(generator):
    """The hand-framed STFT has torch.stft's gradient (it exists to be faster, not different)."""
    x = torch.randn(2, 2, 300, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 2, 33, 1 + 300 // 16, generator=generator, dtype=torch.float64)
    (ours,) = torch.autograd.grad((stft_magnitude(x, fft_size=64, hop_size=16, win_length=40) * weights).sum(), x)
    spec = torch.stft(x.reshape(4, 300), 64, 16, 40, torch.hann_window(40, dtype=torch.float64), center=True,
                      pad_mode="reflect", return_complex=True)
    reference = torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-8)).reshape(2, 2, 33, -1)
    (theirs,) = torch.autograd.grad((reference * weights).sum(), x)
    torch.testing.assert_close(ours, theirs)


def test_mrstft_matches_reference(generator):
    pred = torch.randn(3, 2, 200, generator=generator, dtype=torch.float64)
    target = torch.randn(3, 2, 200, generator=generator, dtype=torch.float64)
    got = mrstft_loss(pred, target, reduction="none", **SMALL)
    ref = _reference_mrstft(pred.numpy(), target.numpy(), **SMALL)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9)


def test_zero_distance_and_sign_flip_invariance(generator):
    x = torch.randn(2, 1, 4096, generator=generator)
    y = torch.randn(2, 1, 4096, generator=generator)
    assert mrstft_loss(x, x).item() == 0.0
    assert mrstft_loss(-x, x).item() == 0.0
    assert mrstft_loss(-x, y).item() == mrstft_loss(x, y).item() > 0.5  # default resolutions


def test_closed_form_scaled_signal():
    """Scaling by c: spectral convergence |1 - c|, log magnitude |log c| (where magnitudes clear the eps floor)."""
    t = torch.arange(512, dtype=torch.float64)
    x = (1.0 + 0.5 * torch.cos(0.3 * t) + torch.sin(0.05 * t))[None, None]
    value = mrstft_loss(2.0 * x, x, fft_sizes=(64,), hop_sizes=(16,), win_lengths=(64,), eps=1e-30)
    assert value.item() == pytest.approx(1.0 + np.log(2.0), rel=1e-6)


def test_short_signal_is_refused():
    with pytest.raises(ValueError, match=r"pred has 1000 samples, shorter than the largest FFT size 2048"):
        mrstft_loss(torch.zeros(1, 1, 1000), torch.zeros(1, 1, 1000))


@pytest.mark.parametrize("case", ["zeros", "constant", "impulse", "large"])
def test_gradients_finite_on_hard_inputs(case):
    shape = (2, 1, 128)
    hard = {"zeros": torch.zeros(shape), "constant": torch.full(shape, 0.3), "large": torch.full(shape, 1e4)}.get(case)
    if hard is None:
        hard = torch.zeros(shape)
        hard[..., 40] = 1.0
    other = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for pred, target in ((hard, other), (other, hard), (hard, hard.clone()), (hard, torch.zeros(shape))):
        pred = pred.clone().requires_grad_(True)
        value = mrstft_loss(pred, target, **SMALL)
        (grad,) = torch.autograd.grad(value, pred)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), case


def test_gradcheck_float64(generator):
    pred = torch.randn(2, 1, 48, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 1, 48, generator=generator, dtype=torch.float64, requires_grad=True)
    small = {"fft_sizes": (16, 32), "hop_sizes": (4, 8), "win_lengths": (16, 24)}
    assert torch.autograd.gradcheck(lambda p, t: mrstft_loss(p, t, **small), (pred, target), atol=1e-6, fast_mode=True)


def test_dtypes_autocast_reductions_module(generator):
    pred = torch.randn(3, 1, 256, generator=generator)
    target = torch.randn(3, 1, 256, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = mrstft_loss(pred.bfloat16(), target, **SMALL)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, mrstft_loss(pred.bfloat16().float(), target, **SMALL))
    assert mrstft_loss(pred.double(), target.double(), **SMALL).dtype == torch.float64
    per_sample = mrstft_loss(pred, target, reduction="none", **SMALL)
    assert per_sample.shape == (3,)
    torch.testing.assert_close(mrstft_loss(pred, target, reduction="sum", **SMALL), per_sample.sum())
    torch.testing.assert_close(MRSTFTLoss(reduction="none", **SMALL)(pred, target), per_sample)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mrstft_loss(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)), "pred must be 3-D"),
        (lambda: mrstft_loss(torch.zeros(1, 1, 4096), torch.zeros(1, 2, 4096)), "same shape"),
        (lambda: mrstft_loss(torch.zeros(1, 1, 4096, dtype=torch.int16), torch.zeros(1, 1, 4096)), "floating"),
        (lambda: mrstft_loss(torch.full((1, 1, 4096), float("nan")), torch.zeros(1, 1, 4096)), "pred contains"),
        (
            lambda: mrstft_loss(torch.zeros(1, 1, 256), torch.zeros(1, 1, 256), fft_sizes=(64, 32), hop_sizes=(16,),
                                win_lengths=(64, 32)),
            "same length",
        ),
        (
            lambda: mrstft_loss(torch.zeros(1, 1, 256), torch.zeros(1, 1, 256), fft_sizes=(64,), hop_sizes=(16,),
                                win_lengths=(128,)),
            "win_length must be <= fft_size",
        ),
        (
            lambda: mrstft_loss(torch.zeros(1, 1, 256), torch.zeros(1, 1, 256), fft_sizes=(64,), hop_sizes=(0,),
                                win_lengths=(64,)),
            "hop_size must be a positive integer",
        ),
        (lambda: mrstft_loss(torch.zeros(1, 1, 4096), torch.zeros(1, 1, 4096), reduction="max"), "reduction"),
        (lambda: mrstft_loss(torch.zeros(1, 1, 4096), torch.zeros(1, 1, 4096), fft_sizes=512), "fft_sizes must be"),
        (lambda: stft_magnitude(torch.zeros(1, 1, 100), fft_size=512), "x has 100 samples"),
        (lambda: MRSTFTLoss(fft_size=512), "unknown option"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
