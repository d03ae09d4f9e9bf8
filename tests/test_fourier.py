"""Fourier amplitude / phase losses against NumPy's full FFT and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectral_lib.spectral.fourier import magnitude, real_fft
from spectral_lib.spectral import (
    FourierAmplitudeLoss,
    FourierLoss,
    amplitude_phase,
    fourier_amplitude_loss,
    fourier_loss,
    fourier_phase_loss,
    highpass,
    lowpass,
    radial_filter,
    radial_frequency,
    rfft_bin_weights,
    rfft_spectrum,
)

SHAPES = [(2, 3, 16), (2, 2, 15), (2, 2, 8, 10), (2, 1, 9, 7)]


def _pair(shape, generator, dtype=torch.float64):
    return torch.randn(shape, generator=generator, dtype=dtype), torch.randn(shape, generator=generator, dtype=dtype)


def _np_spectra(pred, target, norm="ortho"):
    axes = tuple(range(2, pred.dim()))
    return np.fft.fftn(pred.numpy(), axes=axes, norm=norm), np.fft.fftn(target.numpy(), axes=axes, norm=norm)


def _per_sample_mean(values):
    return values.reshape(values.shape[0], -1).mean(axis=1)


# ---------------------------------------------------------------------------------------------- against NumPy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["ortho", "backward", "forward"])
@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_amplitude_loss_equals_full_fft_mean(shape, norm, distance, generator):
    pred, target = _pair(shape, generator)
    p, t = _np_spectra(pred, target, norm)
    diff = np.abs(p) - np.abs(t)
    ref = _per_sample_mean(np.abs(diff) if distance == "l1" else diff**2)
    got = fourier_amplitude_loss(pred, target, norm=norm, distance=distance, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_log_amplitude_and_radial_weighting_match_numpy(shape, generator):
    pred, target = _pair(shape, generator)
    p, t = _np_spectra(pred, target)
    ref_log = _per_sample_mean(np.abs(np.log1p(np.abs(p)) - np.log1p(np.abs(t))))
    got_log = fourier_amplitude_loss(pred, target, log_amplitude=True, reduction="none")
    np.testing.assert_allclose(got_log.numpy(), ref_log, rtol=1e-10)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[2:]], indexing="ij")
    radius = np.sqrt(sum(f**2 for f in freqs))
    ref_rad = _per_sample_mean(np.abs(np.abs(p) - np.abs(t)) * radius / radius.max())
    got_rad = fourier_amplitude_loss(pred, target, frequency_weighting="radial", reduction="none")
    np.testing.assert_allclose(got_rad.numpy(), ref_rad, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_phase_losses_match_numpy(shape, generator):
    pred, target = _pair(shape, generator)
    p, t = _np_spectra(pred, target)
    dphi = np.angle(p * np.conj(t))  # wrapped into (-pi, pi]
    got_raw = fourier_phase_loss(pred, target, weighting="none", reduction="none")
    np.testing.assert_allclose(got_raw.numpy(), _per_sample_mean(np.abs(dphi)), rtol=1e-10)
    a_hat, a = np.abs(p), np.abs(t)
    weighted = 2 * a * a_hat / (a + a_hat) * 2 * np.abs(np.sin(dphi / 2))
    got = fourier_phase_loss(pred, target, reduction="none")
    np.testing.assert_allclose(got.numpy(), _per_sample_mean(weighted), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES[::2])
def test_fourier_loss_couplings_match_numpy(shape, generator):
    pred, target = _pair(shape, generator)
    p, t = _np_spectra(pred, target)
    a_hat, a = np.abs(p), np.abs(t)
    d_amp = np.abs(a_hat - a)
    dphi = np.abs(np.angle(p * np.conj(t)))
    weighted_phase = 2 * a * a_hat / (a + a_hat) * 2 * np.abs(np.sin(dphi / 2))
    refs = {
        "additive": 0.7 * _per_sample_mean(d_amp) + 0.3 * _per_sample_mean(weighted_phase),
        "per_frequency": 0.7 * _per_sample_mean(d_amp * (1 + 0.3 * dphi)),
        "product": 0.7 * _per_sample_mean(d_amp) * (1 + 0.3 * _per_sample_mean(dphi)),
    }
    for coupling, ref in refs.items():
        got = fourier_loss(
            pred, target, amplitude_weight=0.7, phase_weight=0.3, coupling=coupling, reduction="none"
        )
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6, err_msg=coupling)


def test_spectrum_helpers_match_numpy(generator):
    x = torch.randn(2, 3, 8, 11, generator=generator, dtype=torch.float64)
    ref = np.fft.rfftn(x.numpy(), axes=(2, 3), norm="ortho")
    np.testing.assert_allclose(rfft_spectrum(x).numpy(), ref, atol=1e-12)
    amplitude, phase = amplitude_phase(x, norm="backward")
    ref_b = np.fft.rfftn(x.numpy(), axes=(2, 3))
    np.testing.assert_allclose(amplitude.numpy(), np.abs(ref_b), atol=1e-10)
    np.testing.assert_allclose(phase.numpy(), np.angle(ref_b), atol=1e-10)
    for n in (7, 8):
        w = rfft_bin_weights(n)
        assert w.sum().item() == n and w[0].item() == 1
    np.testing.assert_allclose(radial_frequency((9,)).numpy(), np.fft.rfftfreq(9), atol=1e-7)
    grid = radial_frequency((6, 8), dtype=torch.float64).numpy()
    np.testing.assert_allclose(grid[1, 2], math.hypot(1 / 6, 2 / 8))
    assert grid.shape == (6, 5)


@pytest.mark.parametrize("norm", ["ortho", "backward", "forward"])
@pytest.mark.parametrize(("shape", "dims"), [((2, 3, 10), (-1,)), ((2, 1, 11), (-1,)), ((1, 2, 5, 8), (-2, -1)),
                                             ((1, 2, 6, 7), (-2, -1))])
def test_real_fft_backward_matches_torch(norm, shape, dims, generator):
    """Our rFFT's cheaper backward (one irfftn) gives PyTorch's gradient; gradcheck confirms it in float64."""
    x = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    spectrum = torch.fft.rfftn(x, dim=dims, norm=norm)
    weights = torch.randn(spectrum.shape, generator=generator, dtype=torch.complex128)
    (ours,) = torch.autograd.grad((real_fft(x, dims, norm) * weights).real.sum() + real_fft(x, dims, norm).abs().sum(), x)
    (theirs,) = torch.autograd.grad((spectrum * weights).real.sum() + spectrum.abs().sum(), x)
    torch.testing.assert_close(ours, theirs)
    assert torch.autograd.gradcheck(lambda v: torch.view_as_real(real_fft(v, dims, norm)), (x,))


def test_magnitude_matches_abs_and_clamp(generator):
    z = torch.randn(4, 6, generator=generator, dtype=torch.complex128)
    z[0, 0] = 0.0
    z[1, 1] = 3e-5  # below a floor of 1e-8 (magnitude 1e-4): clamped, zero gradient
    weights = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    for floor, reference in ((0.0, lambda v: v.abs()), (1e-8, lambda v: v.abs().clamp_min(1e-4))):
        a = z.clone().requires_grad_(True)
        b = z.clone().requires_grad_(True)
        torch.testing.assert_close(magnitude(a, floor), reference(b))
        (ga,) = torch.autograd.grad((magnitude(a, floor) * weights).sum(), a)
        (gb,) = torch.autograd.grad((reference(b) * weights).sum(), b)
        torch.testing.assert_close(ga, gb)
        assert ga[0, 0] == 0 and (floor == 0 or ga[1, 1] == 0)
    live = torch.randn(3, 4, generator=generator, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: magnitude(v, 1e-8), (live,))


# ---------------------------------------------------------------------------------------------- closed forms


def test_two_sinusoids_closed_form():
    n, k0 = 64, 5
    t = torch.arange(n, dtype=torch.float64)
    x = torch.cos(2 * math.pi * k0 * t / n)[None, None]
    # amplitude: a cosine of amplitude c has |X| = c sqrt(n) / 2 at +-k0 (ortho); mean over n bins
    got = fourier_amplitude_loss(2 * x, x).item()
    assert got == pytest.approx(2 * (math.sqrt(n) / 2) / n, rel=1e-12)
    # phase: a shift by phi0 gives dphi = +-phi0 at +-k0; phi0 = 3pi/2 wraps to pi/2
    for phi0, wrapped in ((0.7, 0.7), (1.5 * math.pi, 0.5 * math.pi)):
        y = torch.cos(2 * math.pi * k0 * t / n + phi0)[None, None]
        assert fourier_phase_loss(y, x, weighting="none").item() == pytest.approx(2 * wrapped / n, rel=1e-9)
        weighted = 2 * (math.sqrt(n) / 2) * 2 * abs(math.sin(phi0 / 2)) / n
        assert fourier_phase_loss(y, x).item() == pytest.approx(weighted, rel=1e-6)
        assert fourier_amplitude_loss(y, x).item() == pytest.approx(0.0, abs=1e-12)


def test_identical_inputs_give_exactly_zero(generator):
    x = torch.randn(3, 2, 12, 12, generator=generator)
    assert fourier_amplitude_loss(x, x).item() == 0.0
    assert fourier_amplitude_loss(x, x, log_amplitude=True, distance="l2").item() == 0.0
    assert fourier_phase_loss(x, x).item() == 0.0
    assert fourier_phase_loss(x, x, weighting="none").item() == 0.0
    for coupling in ("additive", "per_frequency", "product"):
        assert fourier_loss(x, x, coupling=coupling).item() == 0.0


def test_circular_shift_changes_phase_not_amplitude(generator):
    x = torch.randn(2, 1, 16, 16, generator=generator, dtype=torch.float64)
    shifted = torch.roll(x, shifts=(3, 5), dims=(-2, -1))
    assert fourier_amplitude_loss(shifted, x).item() == pytest.approx(0.0, abs=1e-12)
    assert fourier_phase_loss(shifted, x).item() > 0.1
    assert fourier_loss(shifted, x, coupling="additive").item() > 0.1  # additive: the phase term sees the shift
    assert fourier_loss(shifted, x).item() == pytest.approx(0.0, abs=1e-12)  # default: Eq. 15 as printed
    # the coupled readings vanish when the amplitudes match exactly (why "additive" is the default)
    assert fourier_loss(shifted, x, coupling="per_frequency").item() == pytest.approx(0.0, abs=1e-12)
    assert fourier_loss(shifted, x, coupling="product").item() == pytest.approx(0.0, abs=1e-12)
    audio = torch.randn(2, 1, 32, generator=generator, dtype=torch.float64)
    assert fourier_amplitude_loss(torch.roll(audio, 7, -1), audio).item() == pytest.approx(0.0, abs=1e-12)


def test_radial_filters():
    n = 64
    t = torch.arange(n, dtype=torch.float64)
    slow = torch.cos(2 * math.pi * 3 * t / n)  # f = 3/64
    fast = torch.sin(2 * math.pi * 20 * t / n)  # f = 20/64
    image = (slow[:, None] + fast[None, :])[None, None]
    torch.testing.assert_close(lowpass(image, 0.1), slow[:, None].expand(n, n)[None, None])
    torch.testing.assert_close(highpass(image, 0.1), fast[None, :].expand(n, n)[None, None])
    audio = torch.randn(2, 3, 101, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lowpass(audio, 0.2) + highpass(audio, 0.2), audio)
    # a Gaussian gain is a Gaussian blur: the cosine's amplitude drops by exp(-2 pi^2 sigma^2 f^2)
    blurred = radial_filter(slow[None, None], lambda f: torch.exp(-2 * math.pi**2 * 2.0**2 * f**2))
    torch.testing.assert_close(blurred[0, 0], slow * math.exp(-2 * math.pi**2 * 4.0 * (3 / n) ** 2))
    with pytest.raises(ValueError, match="cutoff"):
        lowpass(audio, -0.1)


# ---------------------------------------------------------------------------------------------- gradients


def _hard_inputs(shape):
    impulse = torch.zeros(shape)
    impulse[..., 0] = 1.0
    return {
        "zeros": torch.zeros(shape),
        "constant": torch.full(shape, 0.5),
        "impulse": impulse,
        "large": torch.full(shape, 1e4) + torch.linspace(0, 1, shape[-1]),
    }


LOSS_CALLS = {
    "amp_l1": lambda p, t: fourier_amplitude_loss(p, t),
    "amp_log_radial_l2": lambda p, t: fourier_amplitude_loss(
        p, t, log_amplitude=True, frequency_weighting="radial", distance="l2"
    ),
    "phase_amplitude": lambda p, t: fourier_phase_loss(p, t),
    "phase_none": lambda p, t: fourier_phase_loss(p, t, weighting="none"),
    "additive": lambda p, t: fourier_loss(p, t, coupling="additive"),
    "per_frequency": lambda p, t: fourier_loss(p, t, coupling="per_frequency"),
    "product": lambda p, t: fourier_loss(p, t, coupling="product"),
}


@pytest.mark.parametrize("name", list(LOSS_CALLS))
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 2, 16)])
def test_gradients_finite_on_hard_inputs(name, shape):
    loss = LOSS_CALLS[name]
    cases = _hard_inputs(shape)
    other = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for case, hard in cases.items():
        for pred, target in ((hard, other), (other, hard), (hard, hard.clone()), (hard, torch.zeros(shape))):
            pred = pred.clone().requires_grad_(True)
            target = target.clone().requires_grad_(True)
            value = loss(pred, target)
            grad_pred, grad_target = torch.autograd.grad(value, (pred, target))
            assert torch.isfinite(value), (name, case)
            assert torch.isfinite(grad_pred).all() and torch.isfinite(grad_target).all(), (name, case)


@pytest.mark.parametrize("name", ["amp_l1", "amp_log_radial_l2", "phase_amplitude", "phase_none", "additive",
                                  "per_frequency", "product"])
def test_gradcheck_float64(name, generator):
    pred, target = _pair((2, 1, 5, 6), generator)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    assert torch.autograd.gradcheck(LOSS_CALLS[name], (pred, target), eps=1e-6, atol=1e-5, fast_mode=True)


def test_amplitude_weighted_phase_gradient_bounded_at_zero_amplitude():
    """The harmonic-mean weighting keeps the gradient O(1) when the prediction's spectrum is (nearly) zero."""
    target = torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for scale in (1e-3, 1e-9, 0.0):
        pred = (scale * torch.randn(1, 1, 16, dtype=torch.float64)).requires_grad_(True)
        (grad,) = torch.autograd.grad(fourier_phase_loss(pred, target), pred)
        assert grad.abs().max().item() < 10.0


# ---------------------------------------------------------------------------------------------- dtypes, autocast


def test_reductions_and_dtypes(generator):
    pred, target = _pair((4, 2, 8, 8), generator, dtype=torch.float32)
    per_sample = fourier_loss(pred, target, reduction="none")
    assert per_sample.shape == (4,) and per_sample.dtype == torch.float32
    torch.testing.assert_close(fourier_loss(pred, target), per_sample.mean())
    torch.testing.assert_close(fourier_loss(pred, target, reduction="sum"), per_sample.sum())
    assert fourier_amplitude_loss(pred.double(), target.double()).dtype == torch.float64
    assert fourier_amplitude_loss(pred.half(), target).dtype == torch.float32


def test_autocast_bfloat16_cpu_returns_float32(generator):
    pred, target = _pair((2, 3, 16, 16), generator, dtype=torch.float32)
    pred_bf16 = pred.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred_in = pred_bf16.requires_grad_(True)
        values = {
            "amp": fourier_amplitude_loss(pred_in, target),
            "phase": fourier_phase_loss(pred_in, target),
            "fourier": fourier_loss(pred_in, target),
        }
    for name, value in values.items():
        assert value.dtype == torch.float32, name
    reference = fourier_loss(pred_bf16.float(), target)
    torch.testing.assert_close(values["fourier"], reference)
    values["fourier"].backward()
    assert pred_in.grad is not None and torch.isfinite(pred_in.grad).all()


# ---------------------------------------------------------------------------------------------- errors, modules


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fourier_amplitude_loss(torch.zeros(2, 1, 8), torch.zeros(2, 1, 9)), "same shape"),
        (lambda: fourier_amplitude_loss(torch.zeros(8, 8), torch.zeros(8, 8)), "pred must be 3-D"),
        (lambda: fourier_loss(torch.zeros(2, 1, 8, dtype=torch.long), torch.zeros(2, 1, 8)), "floating dtype"),
        (lambda: fourier_phase_loss(torch.zeros(2, 1, 8), torch.full((2, 1, 8), float("nan"))), "target contains"),
        (lambda: fourier_amplitude_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), distance="l3"), "distance"),
        (lambda: fourier_amplitude_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), norm="unitary"), "norm"),
        (lambda: fourier_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), reduction="avg"), "reduction"),
        (lambda: fourier_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), coupling="mult"), "coupling"),
        (lambda: fourier_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), phase_weight=-1), "phase_weight"),
        (lambda: fourier_phase_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), weighting="x"), "weighting"),
        (
            lambda: fourier_amplitude_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), frequency_weighting="lin"),
            "frequency_weighting",
        ),
        (lambda: fourier_amplitude_loss(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), log_amplitude=1), "log_ampl"),
        (lambda: FourierLoss(couplings="product"), "unknown option"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_modules_match_functions(generator):
    pred, target = _pair((2, 1, 8, 8), generator)
    module = FourierLoss(coupling="product", phase_weight=0.5, reduction="none")
    torch.testing.assert_close(module(pred, target), fourier_loss(pred, target, coupling="product", phase_weight=0.5,
                                                                  reduction="none"))
    torch.testing.assert_close(FourierAmplitudeLoss()(pred, target), fourier_amplitude_loss(pred, target))
    assert "coupling='product'" in repr(module)
