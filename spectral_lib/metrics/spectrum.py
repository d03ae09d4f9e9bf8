"""Power spectra and the spectral metrics every chapter uses to say "blurrier" or "crisper".

Conventions
-----------
- Power is ``|FFT(x)|^2 / n`` (``norm="ortho"`` squared), so white noise of variance ``s^2`` has power ``s^2`` in
  every bin, whatever the size; spectra of different resolutions are comparable.
- Frequencies are in **cycles per sample** (cycles/pixel for images); the Nyquist frequency is 0.5.
- A spectrum of a *set* is the mean power over the batch and the channels.
- 2-D spectra are **radially averaged** over integer radius bins: a bin ``k`` collects the FFT bins whose radius
  ``sqrt(ky^2 + kx^2)`` (in units of ``1 / N`` cycles/pixel, ``N = min(H, W)``) rounds to ``k``, for
  ``k = 0 .. N // 2`` (the corners beyond the Nyquist circle are left out); its frequency is ``k / N``.
- 1-D spectra ``(B, C, T)`` are the rFFT bins ``k = 0 .. T // 2`` at ``k / T``; :func:`radial_power_spectrum`
  dispatches on the rank, so one call handles images and audio.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spectral_lib._checks import check_positive, check_signal

__all__ = [
    "power_spectrum_1d",
    "radial_power_spectrum",
    "spectral_distance",
    "high_frequency_energy",
    "high_frequency_energy_ratio",
]


def _as_float(x: Tensor) -> Tensor:
    return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def _mean_power_map(x: Tensor, chunk: int = 256) -> Tensor:
    """Mean over batch and channels of ``|FFT|^2 / n``: ``(T // 2 + 1,)`` (rFFT, 1-D) or ``(H, W)`` (full FFT, 2-D).

    Computed ``chunk`` samples at a time (memory stays bounded for large sets), without gradients.
    """
    total = None
    with torch.no_grad():
        for part in torch.split(x.detach(), chunk, dim=0):
            part = _as_float(part)
            if part.dim() == 3:
                spectrum = torch.fft.rfft(part, dim=-1, norm="ortho")
            else:
                spectrum = torch.fft.fft2(part, dim=(-2, -1), norm="ortho")
            power = (spectrum.real.square() + spectrum.imag.square()).sum(dim=(0, 1))
            total = power if total is None else total + power
    assert total is not None
    return total / (x.shape[0] * x.shape[1])


def power_spectrum_1d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean power spectrum of audio ``(B, C, T)``.

    Returns:
        ``(frequencies, power)``, both ``(T // 2 + 1,)``: frequencies ``k / T`` in cycles/sample (multiply by the
        sample rate for Hz), power ``|rFFT|^2 / T`` averaged over batch and channels.
    """
    x = check_signal(x, "x", ranks=(3,))
    power = _mean_power_map(x)
    frequencies = torch.fft.rfftfreq(x.shape[-1], device=power.device, dtype=power.dtype)
    return frequencies, power


def radial_power_spectrum(x: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum of images ``(B, C, H, W)`` (or :func:`power_spectrum_1d` for ``(B, C, T)``).

    Returns:
        ``(frequencies, power)``, both ``(N // 2 + 1,)`` with ``N = min(H, W)``: frequencies ``k / N`` in
        cycles/pixel, power the mean of ``|FFT2|^2 / (H W)`` over batch, channels and the FFT bins of radius bin
        ``k``. Bin 0 is the DC (mean brightness).
    """
    x = check_signal(x, "x", ranks=(3, 4))
    if x.dim() == 3:
        return power_spectrum_1d(x)
    power_map = _mean_power_map(x)
    h, w = x.shape[-2:]
    n = min(h, w)
    fy = torch.fft.fftfreq(h, device=power_map.device, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, device=power_map.device, dtype=torch.float64)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2) * n  # in units of 1/N cycles/pixel
    bins = torch.round(radius).long().flatten()
    n_bins = n // 2 + 1
    keep = bins < n_bins
    sums = torch.bincount(bins[keep], weights=power_map.flatten()[keep].to(torch.float64), minlength=n_bins)
    counts = torch.bincount(bins[keep], minlength=n_bins).to(torch.float64)
    power = (sums / counts).to(power_map.dtype)
    frequencies = torch.arange(n_bins, device=power.device, dtype=power.dtype) / n
    return frequencies, power


def _check_sets(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    check_signal(a, names[0])
    check_signal(b, names[1])
    if a.dim() != b.dim() or a.shape[2:] != b.shape[2:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same signal size (batch and channels may differ), got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


def spectral_distance(a: Tensor, b: Tensor, *, eps: float = 1e-12) -> float:
    """Mean absolute log10-power difference between the (radial) spectra of two sets.

    ``mean_k | log10(P_a(k) + eps) - log10(P_b(k) + eps) |`` over the bins ``k = 1 .. Nyquist`` of
    :func:`radial_power_spectrum` (the DC bin, the mean brightness, is left out: it says nothing about detail).
    0 for identical spectra; 1 means the spectra differ by a factor 10 on average. Units: decades.

    Args:
        a, b: two sets ``(B, C, H, W)`` (or ``(B, C, T)``) with the same signal size; batch sizes may differ.
        eps: power floor so that silent / constant sets give a finite value (default ``1e-12``).
    """
    _check_sets(a, b, ("a", "b"))
    check_positive(eps, "eps")
    _, p_a = radial_power_spectrum(a)
    _, p_b = radial_power_spectrum(b)
    diff = torch.log10(p_a[1:].double() + eps) - torch.log10(p_b[1:].double() + eps)
    return float(diff.abs().mean())


def _check_cutoff(cutoff: float) -> float:
    check_positive(cutoff, "cutoff", allow_zero=True)
    if not float(cutoff) < 1.0:
        raise ValueError(f"cutoff must be in [0, 1) (a fraction of the Nyquist frequency), got {cutoff!r}")
    return float(cutoff)


def high_frequency_energy(x: Tensor, cutoff: float = 0.25) -> float:
    """Share of a set's power above ``cutoff * Nyquist``: ``sum_{|f| > cutoff/2} P(f) / sum_{f != 0} P(f)``.

    ``|f|`` is the radial frequency in cycles/sample over the full FFT grid (corners included); the DC bin is left
    out of the total, so the mean brightness does not count. In ``[0, 1]``; 0 for a constant set.

    Args:
        x: ``(B, C, H, W)`` images or ``(B, C, T)`` audio.
        cutoff: fraction of the Nyquist frequency 0.5, in ``[0, 1)`` (default 0.25, our choice: above an eighth of
            the sampling rate, i.e. structure finer than 8 pixels).
    """
    x = check_signal(x, "x")
    cutoff = _check_cutoff(cutoff)
    power_map = _mean_power_map(x).double()
    if x.dim() == 3:
        radius = torch.fft.rfftfreq(x.shape[-1], device=power_map.device, dtype=torch.float64)
        # rFFT: the bins other than DC and (even T) Nyquist stand for two full-FFT bins each
        weights = torch.full_like(radius, 2.0)
        weights[0] = 1.0
        if x.shape[-1] % 2 == 0:
            weights[-1] = 1.0
        power_map = power_map * weights
    else:
        fy = torch.fft.fftfreq(x.shape[-2], device=power_map.device, dtype=torch.float64)
        fx = torch.fft.fftfreq(x.shape[-1], device=power_map.device, dtype=torch.float64)
        radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    ac_total = power_map[radius > 0].sum()
    if float(ac_total) == 0.0:
        return 0.0
    return float(power_map[radius > cutoff * 0.5].sum() / ac_total)


def high_frequency_energy_ratio(samples: Tensor, data: Tensor, cutoff: float = 0.25) -> float:
    """``high_frequency_energy(samples) / high_frequency_energy(data)``: 1 = as much fine detail as the data,
    ``< 1`` = blurrier, ``> 1`` = more high-frequency energy (noise, ringing, stripes) than the data.

    Args:
        samples: generated set, ``(B, C, H, W)`` or ``(B, C, T)``.
        data: reference set with the same signal size (batch sizes may differ).
        cutoff: fraction of the Nyquist frequency, see :func:`high_frequency_energy`.

    Raises:
        ValueError: if ``data`` has no power above the cutoff (the ratio is undefined).
    """
    _check_sets(samples, data, ("samples", "data"))
    reference = high_frequency_energy(data, cutoff)
    if reference == 0.0:
        raise ValueError(f"data has no power above cutoff={cutoff} x Nyquist; the ratio is undefined")
    return high_frequency_energy(samples, cutoff) / reference
