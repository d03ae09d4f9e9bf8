"""Multi-resolution STFT loss for audio (Yamamoto et al., Parallel WaveGAN, ICASSP 2020; as in auraloss).

For one resolution (FFT size ``n``, hop ``h``, Hann window of length ``w``) with magnitudes ``S`` (target) and
``S_hat`` (prediction), per sample over channels, frequencies and frames:

    L_sc  = || S - S_hat ||_F / || S ||_F                    (spectral convergence, Arik et al. 2018)
    L_mag = mean | log S - log S_hat |                        (log STFT magnitude, natural log)

and the multi-resolution loss is the mean over resolutions of ``L_sc + L_mag`` (auraloss' ``w_sc = w_log_mag = 1``).
Magnitudes are ``sqrt(max(|STFT|^2, eps))`` (auraloss' guard, ``eps = 1e-8``), so the logarithm and the
denominator stay finite on silence. A magnitude loss ignores the sign: ``L(-x, y) == L(x, y)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spectral_lib._checks import check_choice, check_positive, check_signal

from .fourier import (
    REDUCTIONS,
    _LossModule,
    autocast_disabled,
    compute_dtype,
    magnitude,
    real_fft,
    reduce_batch,
    validates_pair,
)

__all__ = ["stft_magnitude", "mrstft_loss", "MRSTFTLoss"]

#: Default resolutions (ARCHITECTURE.md): window = FFT size, hop = FFT size / 4, Hann window. auraloss' own defaults
#: are Parallel WaveGAN's (1024, 2048, 512) / (120, 240, 50) / (600, 1200, 240).
DEFAULT_FFT_SIZES: tuple[int, ...] = (512, 1024, 2048)
DEFAULT_HOP_SIZES: tuple[int, ...] = (128, 256, 512)
DEFAULT_WIN_LENGTHS: tuple[int, ...] = (512, 1024, 2048)


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _stft_magnitude(x: Tensor, fft_size: int, hop_size: int, win_length: int, eps: float) -> Tensor:
    """Validated float32/float64 ``(B, C, T)`` -> ``(B, C, frames, fft_size//2+1)`` magnitudes, autocast off.

    Same frames as ``torch.stft(center=True, pad_mode="reflect")``: reflect-pad ``fft_size // 2`` on both sides,
    frames every ``hop_size`` samples, a periodic Hann window of ``win_length`` centred in ``fft_size``, unscaled
    rFFT. Framed by hand (``unfold``) so the spectrum comes out frame-major and contiguous, and transformed with
    :func:`real_fft` / :func:`magnitude`: faster than ``torch.stft(...).abs()`` forward + backward on a CPU
    (``python -m spectral_lib.bench.implementations --kinds stft`` prints the speed-up).
    """
    b, c, t = x.shape
    with autocast_disabled(x.device):
        window = torch.hann_window(win_length, periodic=True, device=x.device, dtype=x.dtype)
        if win_length < fft_size:
            left = (fft_size - win_length) // 2
            window = torch.nn.functional.pad(window, (left, fft_size - win_length - left))
        padded = torch.nn.functional.pad(x.reshape(b * c, 1, t), (fft_size // 2, fft_size // 2), mode="reflect")
        frames = padded.unfold(-1, fft_size, hop_size) * window  # (B*C, 1, frames, fft_size)
        spectrum = real_fft(frames, (-1,), "backward")
        mag = magnitude(spectrum, eps)
    return mag.reshape(b, c, *mag.shape[2:])


def stft_magnitude(
    x: Tensor, *, fft_size: int = 1024, hop_size: int = 256, win_length: int | None = None, eps: float = 1e-8
) -> Tensor:
    """STFT magnitude ``sqrt(max(|STFT(x)|^2, eps))`` with a periodic Hann window, centred frames (reflect padding).

    Args:
        x: audio ``(B, C, T)`` with ``T > fft_size // 2`` (reflect padding of the centred frames).
        fft_size, hop_size: FFT size and hop in samples.
        win_length: Hann window length (default ``fft_size``), ``<= fft_size``; zero-padded to ``fft_size`` and
            centred, as ``torch.stft`` and ``librosa.stft`` do.
        eps: floor on the power (default ``1e-8``, as auraloss), so magnitudes are ``>= sqrt(eps)``.

    Returns:
        ``(B, C, fft_size // 2 + 1, 1 + T // hop_size)``; equals ``abs(librosa.stft(..., window="hann",
        center=True, pad_mode="reflect"))`` wherever that is above ``sqrt(eps)``.
    """
    x = check_signal(x, "x", ranks=(3,))
    fft_size, hop_size, win_length = _check_resolution(fft_size, hop_size, win_length)
    check_positive(eps, "eps")
    if x.shape[-1] <= fft_size // 2:
        raise ValueError(f"x has {x.shape[-1]} samples; fft_size={fft_size} needs more than {fft_size // 2}")
    return _stft_magnitude(x.to(compute_dtype(x)), fft_size, hop_size, win_length, float(eps)).transpose(-1, -2)


def _check_resolution(fft_size: object, hop_size: object, win_length: object | None) -> tuple[int, int, int]:
    fft_size = _check_int(fft_size, "fft_size")
    hop_size = _check_int(hop_size, "hop_size")
    win_length = fft_size if win_length is None else _check_int(win_length, "win_length")
    if win_length > fft_size:
        raise ValueError(f"win_length must be <= fft_size, got win_length={win_length} > fft_size={fft_size}")
    return fft_size, hop_size, win_length


def _frobenius(x: Tensor) -> Tensor:
    """Per-sample Frobenius norm over all but the batch dim, with a zero (not NaN) gradient at exactly zero."""
    sq = x.square().flatten(1).sum(dim=1)
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq))


@validates_pair(ranks=(3,))
def mrstft_loss(
    pred: Tensor,
    target: Tensor,
    *,
    fft_sizes: Sequence[int] = DEFAULT_FFT_SIZES,
    hop_sizes: Sequence[int] = DEFAULT_HOP_SIZES,
    win_lengths: Sequence[int] = DEFAULT_WIN_LENGTHS,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Tensor:
    """Multi-resolution STFT loss: ``mean_r [ ||S_r - S_hat_r||_F / ||S_r||_F + mean |log S_r - log S_hat_r| ]``.

    Per sample (not over the whole batch as auraloss does), so per-sample weights apply cleanly.

    Args:
        pred: the prediction ``x0_hat``, audio ``(B, C, T)``.
        target: the clean waveform ``x0``, same shape; its magnitudes are the reference in the denominator.
        fft_sizes, hop_sizes, win_lengths: one entry per resolution, same lengths; defaults (512, 1024, 2048),
            (128, 256, 512), (512, 1024, 2048) (Hann windows, hop = FFT/4).
        eps: power floor of the magnitudes (default ``1e-8``, as auraloss).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(B,)``).

    Raises:
        ValueError: if ``T`` is shorter than the largest FFT size (our choice: refuse rather than silently drop a
            resolution and change what the loss means; pass smaller ``fft_sizes``).
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    check_positive(eps, "eps")
    for name, seq in (("fft_sizes", fft_sizes), ("hop_sizes", hop_sizes), ("win_lengths", win_lengths)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or len(seq) == 0:
            raise ValueError(f"{name} must be a non-empty sequence of integers, got {seq!r}")
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
        raise ValueError(
            "fft_sizes, hop_sizes and win_lengths must have the same length (one entry per resolution), got "
            f"{len(fft_sizes)}, {len(hop_sizes)} and {len(win_lengths)}"
        )
    resolutions = [_check_resolution(n, h, w) for n, h, w in zip(fft_sizes, hop_sizes, win_lengths)]
    length = pred.shape[-1]
    if length < max(fft_sizes):
        raise ValueError(
            f"pred has {length} samples, shorter than the largest FFT size {max(fft_sizes)} in "
            f"fft_sizes={tuple(fft_sizes)}; pass smaller fft_sizes/hop_sizes/win_lengths or longer signals"
        )
    per_sample = pred.new_zeros(pred.shape[0])
    for fft_size, hop_size, win_length in resolutions:
        s_hat = _stft_magnitude(pred, fft_size, hop_size, win_length, float(eps))
        s = _stft_magnitude(target, fft_size, hop_size, win_length, float(eps))
        spectral_convergence = _frobenius(s - s_hat) / _frobenius(s)
        log_magnitude = (torch.log(s) - torch.log(s_hat)).abs().flatten(1).mean(dim=1)
        per_sample = per_sample + spectral_convergence + log_magnitude
    return reduce_batch(per_sample / len(resolutions), reduction)


class MRSTFTLoss(_LossModule):
    """``nn.Module`` form of :func:`mrstft_loss`; keyword options pass through."""

    function = staticmethod(mrstft_loss)
