"""Power-spectrum metrics: flat for white noise, slope -alpha for a 1/f^alpha field, HF ratios behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectral_lib.metrics.spectrum import (
    high_frequency_energy,
    high_frequency_energy_ratio,
    power_spectrum_1d,
    radial_power_spectrum,
    spectral_distance,
)


def _power_law_field(n: int, alpha: float, batch: int, seed: int) -> torch.Tensor:
    """Gaussian random field with power spectrum ~ |f|^-alpha (random phases), built with NumPy."""
    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    f[0, 0] = 1.0
    amplitude = f ** (-alpha / 2)
    amplitude[0, 0] = 0.0
    noise = np.fft.fft2(rng.standard_normal((batch, 1, n, n)))
    return torch.from_numpy(np.real(np.fft.ifft2(noise * amplitude)))


def test_white_noise_radial_spectrum_is_flat(generator):
    x = 0.5 * torch.randn(64, 3, 32, 32, generator=generator)
    freqs, power = radial_power_spectrum(x)
    assert freqs.shape == power.shape == (17,)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(0.5)
    # variance 0.25 in every bin (ortho normalisation), within sampling noise
    np.testing.assert_allclose(power[1:].numpy(), 0.25, rtol=0.1)
    f1, p1 = power_spectrum_1d(0.5 * torch.randn(64, 2, 256, generator=generator))
    assert f1.shape == p1.shape == (129,)
    np.testing.assert_allclose(p1[1:].mean().item(), 0.25, rtol=0.05)
    f_dispatch, _ = radial_power_spectrum(torch.randn(2, 1, 256, generator=generator))
    torch.testing.assert_close(f_dispatch, f1)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_power_law_slope(alpha):
    freqs, power = radial_power_spectrum(_power_law_field(64, alpha, batch=16, seed=int(alpha)))
    keep = slice(2, None)  # skip DC and the first, coarsest ring
    slope = np.polyfit(np.log(freqs[keep].numpy()), np.log(power[keep].numpy()), 1)[0]
    assert slope == pytest.approx(-alpha, abs=0.15)


def test_radial_spectrum_matches_numpy_binning(generator):
    x = torch.randn(3, 2, 12, 16, generator=generator, dtype=torch.float64)
    power_map = (np.abs(np.fft.fft2(x.numpy(), norm="ortho")) ** 2).mean(axis=(0, 1))
    radius = np.sqrt(np.fft.fftfreq(12)[:, None] ** 2 + np.fft.fftfreq(16)[None, :] ** 2) * 12
    bins = np.round(radius).astype(int)
    ref = np.array([power_map[bins == k].mean() for k in range(7)])
    freqs, power = radial_power_spectrum(x)
    np.testing.assert_allclose(power.numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(freqs.numpy(), np.arange(7) / 12)


def test_blur_lowers_high_frequency_ratio(generator):
    data = torch.rand(16, 1, 32, 32, generator=generator) * 2 - 1

    def box_blur(x, k):
        padded = torch.nn.functional.pad(x, (k // 2,) * 4, mode="circular")
        return torch.nn.functional.conv2d(padded, torch.ones(1, 1, k, k) / k**2)

    blurred, very_blurred = box_blur(data, 3), box_blur(data, 5)
    assert high_frequency_energy_ratio(data, data) == 1.0
    ratio = high_frequency_energy_ratio(blurred, data)
    assert 0 < high_frequency_energy_ratio(very_blurred, data) < ratio < 0.8
    assert high_frequency_energy_ratio(data + 0.5 * torch.randn(data.shape, generator=generator), blurred) > 1
    assert spectral_distance(data, data) == 0.0
    assert spectral_distance(blurred, data) > spectral_distance(data[:8], data[8:])


def test_high_frequency_energy_closed_forms():
    n = 64
    t = torch.arange(n, dtype=torch.float64)
    low = torch.cos(2 * np.pi * 4 * t / n)[None, None]  # f = 4/64 = 0.0625 < 0.125
    high = torch.cos(2 * np.pi * 20 * t / n)[None, None]  # f = 0.3125 > 0.125
    assert high_frequency_energy(low, cutoff=0.25) == pytest.approx(0.0, abs=1e-12)
    assert high_frequency_energy(high, cutoff=0.25) == pytest.approx(1.0)
    assert high_frequency_energy(low + high + 3.0, cutoff=0.25) == pytest.approx(0.5)  # DC left out
    image = (torch.cos(2 * np.pi * 20 * t / n)[:, None] + torch.cos(2 * np.pi * 4 * t / n)[None, :])[None, None]
    assert high_frequency_energy(image) == pytest.approx(0.5)
    assert high_frequency_energy(torch.ones(2, 1, 8, 8)) == 0.0


def test_spectral_distance_one_decade(generator):
    x = torch.randn(8, 1, 16, 16, generator=generator, dtype=torch.float64)
    assert spectral_distance(np.sqrt(10.0) * x, x) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: radial_power_spectrum(torch.zeros(4, 4)), "x must be 3-D"),
        (lambda: power_spectrum_1d(torch.zeros(1, 1, 4, 4)), "x must be 3-D"),
        (lambda: spectral_distance(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 16)), "same signal size"),
        (lambda: high_frequency_energy(torch.zeros(1, 1, 8, 8), cutoff=1.5), "cutoff must be in"),
        (lambda: high_frequency_energy(torch.zeros(1, 1, 8, 8), cutoff=-0.1), "cutoff"),
        (lambda: high_frequency_energy_ratio(torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 8)), "data has no power"),
        (lambda: high_frequency_energy(torch.zeros(1, 1, 8, 8, dtype=torch.uint8)), "floating dtype"),
        (lambda: high_frequency_energy_ratio(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8)), "samples and data"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
