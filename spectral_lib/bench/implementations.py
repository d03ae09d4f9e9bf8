"""Hand-written fast paths next to the plain PyTorch they replace: does each one earn its place?

    python -m spectral_lib.bench.implementations [--kinds wavelet] [--sizes 64 128 256] [--repeats 30 --device cpu]

`spectral_lib` keeps three pieces of code whose only purpose is speed:

- ``fourier``: the custom autograd functions of :mod:`spectral_lib.spectral.fourier` (``real_fft``: an rFFT whose
  backward is one half-size ``irfftn``; ``magnitude``: ``|z|`` from ``re^2 + im^2`` with gradient ``g z / |z|``),
  timed inside :func:`~spectral_lib.spectral.fourier_amplitude_loss` against the same loss written with
  ``torch.fft.rfftn(...).abs()``;
- ``stft``: the MR-STFT loss's framing by hand (``unfold``) through the same two functions, against
  ``torch.stft(...).abs()``;
- ``wavelet``: the DWT as dense analysis matrices (what the library does up to ``dense_max_size(wavelet)`` a side;
  here forced at every size), against ptwt's strided convolutions (the path every longer signal takes), for the
  wavelet losses (Haar and bior1.3, 3 levels or as many as fit) on the image sizes of book chapter 10 and at each
  family's limit (``DENSE_MAX_SIZES``: where the speed-up crosses 1); ``--sizes`` picks the sides.
  Book chapter 10 times the same comparisons (:func:`wavelet_comparisons`) at its profile's sizes.

Each pair computes the same values and gradients (the tests check it); here both are timed forward + backward,
interleaved round by round, and the table prints ``speed-up = time(plain) / time(ours)``: above 1 the hand-written
path is faster. Read the median and the fastest round (disturbances only add time). The clock is this process's CPU
time on a CPU (other programs on a shared machine do not count; run with ``OMP_NUM_THREADS=1``) and the synchronised
wall clock on a GPU. Every speed claim in the library's docstrings and the book points here.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
from torch import Tensor

from spectral_lib._checks import check_choice
from spectral_lib.bench.losses import _sync, _time_once
from spectral_lib.spectral import fourier_amplitude_loss, mrstft_loss, wavelet_loss
from spectral_lib.spectral import stft as stft_module
from spectral_lib.spectral import wavelet as wavelet_module
from spectral_lib.spectral.fourier import _spectral_mean, spectral_dims
from spectral_lib.spectral.stft import _frobenius
from spectral_lib.spectral.wavelet import DENSE_MAX_SIZE, DENSE_MAX_SIZES, wavelet_max_level

__all__ = [
    "KINDS",
    "Comparison",
    "plain_amplitude_loss",
    "plain_stft_magnitude",
    "plain_mrstft_loss",
    "mrstft_with_plain_helpers",
    "WAVELETS",
    "wavelet_comparisons",
    "comparisons",
    "compare",
    "format_comparison",
    "main",
]

Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Comparison:
    """One hand-written path (``ours``) and the plain PyTorch it replaces (``plain``), on inputs of ``shape``;
    ``about`` holds extra fields for its row of :func:`compare` (e.g. ``{"wavelet": "haar", "size": 64}``)."""

    name: str
    shape: tuple[int, ...]
    ours: Loss
    plain: Loss
    about: Mapping[str, Any] = field(default_factory=dict)


def plain_amplitude_loss(pred: Tensor, target: Tensor) -> Tensor:
    """:func:`~spectral_lib.spectral.fourier_amplitude_loss` (L1, ``"ortho"``, batch mean) with PyTorch's own
    ``rfftn`` and ``abs`` and their autograd formulas: the same value and gradient."""
    dims = spectral_dims(pred)
    a_hat = torch.fft.rfftn(pred, dim=dims, norm="ortho").abs()
    a = torch.fft.rfftn(target, dim=dims, norm="ortho").abs()
    return _spectral_mean((a_hat - a).abs(), tuple(pred.shape[2:])).mean()


def plain_stft_magnitude(x: Tensor, fft_size: int, hop_size: int, win_length: int, eps: float = 1e-8) -> Tensor:
    """``(B, C, T)`` -> ``(B, C, frames, fft_size // 2 + 1)``: ``torch.stft(center=True, pad_mode="reflect")`` with
    a periodic Hann window, ``sqrt(clamp(|X|^2, eps))``; the frames of ``spectral_lib.spectral.stft``."""
    b, c, t = x.shape
    window = torch.hann_window(win_length, periodic=True, device=x.device, dtype=x.dtype)
    spectrum = torch.stft(x.reshape(b * c, t), fft_size, hop_size, win_length, window, center=True,
                          pad_mode="reflect", return_complex=True)
    power = torch.view_as_real(spectrum).square().sum(-1)
    return power.clamp_min(eps).sqrt().transpose(-1, -2).reshape(b, c, -1, fft_size // 2 + 1)


def plain_mrstft_loss(pred: Tensor, target: Tensor, *, fft_sizes: tuple[int, ...] = (512, 1024, 2048),
                      hop_sizes: tuple[int, ...] = (128, 256, 512),
                      win_lengths: tuple[int, ...] = (512, 1024, 2048)) -> Tensor:
    """:func:`~spectral_lib.spectral.mrstft_loss` (its defaults, batch mean) on :func:`plain_stft_magnitude`:
    spectral convergence plus mean absolute log-magnitude difference, averaged over the resolutions."""
    total = pred.new_zeros(pred.shape[0])
    for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
        s_hat, s = plain_stft_magnitude(pred, n_fft, hop, win), plain_stft_magnitude(target, n_fft, hop, win)
        convergence = _frobenius(s - s_hat) / _frobenius(s)
        log_distance = (s.log() - s_hat.log()).abs().flatten(1).mean(dim=1)
        total = total + convergence + log_distance
    return (total / len(fft_sizes)).mean()


def _plain_fft(x: Tensor, dims: tuple[int, ...], norm: str) -> Tensor:
    return torch.fft.rfftn(x, dim=dims, norm=norm)


def _plain_magnitude(z: Tensor, floor: float = 0.0) -> Tensor:
    return z.abs().clamp_min(floor**0.5) if floor > 0 else z.abs()


def mrstft_with_plain_helpers(pred: Tensor, target: Tensor) -> Tensor:
    """:func:`~spectral_lib.spectral.mrstft_loss` with the same framing but PyTorch's ``rfftn`` and ``abs`` in place
    of ``real_fft`` and ``magnitude``: isolates what the two autograd functions bring to the MR-STFT."""
    with mock.patch.object(stft_module, "real_fft", _plain_fft), mock.patch.object(stft_module, "magnitude",
                                                                                  _plain_magnitude):
        return mrstft_loss(pred, target)


def _through_convolutions(loss: Loss) -> Loss:
    """``loss`` with every DWT through ptwt's convolutions (``DENSE_MAX_SIZE`` set to 0 while it runs)."""

    def convolutions(pred: Tensor, target: Tensor) -> Tensor:
        with mock.patch.object(wavelet_module, "DENSE_MAX_SIZE", 0):
            return loss(pred, target)

    return convolutions


def _through_matrices(loss: Loss, size: int) -> Loss:
    """``loss`` with every DWT of sides up to ``size`` through dense matrices, whatever the family's limit (no
    ``DENSE_MAX_SIZES`` entry and ``DENSE_MAX_SIZE >= size`` while it runs)."""

    def matrices(pred: Tensor, target: Tensor) -> Tensor:
        with mock.patch.object(wavelet_module, "DENSE_MAX_SIZE", max(DENSE_MAX_SIZE, size)), \
                mock.patch.dict(wavelet_module.DENSE_MAX_SIZES, clear=True):
            return loss(pred, target)

    return matrices


KINDS: tuple[str, ...] = ("fourier", "stft", "wavelet")
WAVELETS: tuple[str, ...] = ("haar", "bior1.3")
"""The wavelets timed: the paper's Haar (Eq. 16) and bior1.3."""


def wavelet_comparisons(sizes: Sequence[int], *, wavelets: Sequence[str] = WAVELETS,
                        batch: int = 16) -> list[Comparison]:
    """The wavelet losses (3 levels, or as many as fit) through dense matrices (``ours``, forced at every size)
    and through ptwt's convolutions (``plain``) on ``(batch, 1, size, size)`` images, for every size, then every
    wavelet; each row of :func:`compare` also carries ``wavelet`` and ``size``."""
    out = []
    for size in sizes:
        for name in wavelets:
            loss = _wavelet(name, size)
            out.append(Comparison(f"wavelet {name}: dense matrices vs ptwt convolutions", (batch, 1, size, size),
                                  _through_matrices(loss, size), _through_convolutions(loss),
                                  about={"wavelet": name, "size": size}))
    return out


def comparisons(kinds: tuple[str, ...] = KINDS, *, quick: bool = False,
                sizes: Sequence[int] | None = None) -> list[Comparison]:
    """The pairs to time. ``"fourier"``: the two autograd functions inside the Fourier amplitude loss (on the issue's
    64×3×64² batch, the checkerboard's 64×1×32² and a DiffWave batch of 16 crops of 15 872 samples) and inside the
    MR-STFT loss (that audio batch, same framing); ``"stft"``: the MR-STFT loss against one built on ``torch.stft``;
    ``"wavelet"``: the wavelet losses (Haar, bior1.3, 3 levels or as many as fit) on 16×1×32² and 16×1×64² (book
    chapter 10) and at the matrix path's limits, ``DENSE_MAX_SIZES`` and ``DENSE_MAX_SIZE`` (``sizes`` replaces
    those sides).
    ``quick``: small shapes only (tests)."""
    for kind in kinds:
        check_choice(kind, "comparison kind", KINDS)
    audio = (2, 1, 4096) if quick else (16, 1, 62 * 256)
    images = [(2, 1, 16, 16)] if quick else [(64, 3, 64, 64), (64, 1, 32, 32)]
    out: list[Comparison] = []
    if "fourier" in kinds:
        for shape in [*images, audio]:
            out.append(Comparison("fourier_amp: real_fft + magnitude vs rfftn().abs()", shape,
                                  fourier_amplitude_loss, plain_amplitude_loss))
        out.append(Comparison("mrstft: real_fft + magnitude vs rfftn().abs()", audio, mrstft_loss,
                              mrstft_with_plain_helpers))
    if "stft" in kinds:
        out.append(Comparison("mrstft: unfold + real_fft + magnitude vs torch.stft().abs()", audio, mrstft_loss,
                              plain_mrstft_loss))
    if "wavelet" in kinds:
        default = (16,) if quick else sorted({32, 64, DENSE_MAX_SIZE, *DENSE_MAX_SIZES.values()})
        out += wavelet_comparisons(default if sizes is None else sizes, batch=2 if quick else 16)
    return out


def _wavelet(name: str, size: int) -> Loss:
    """The wavelet loss with 3 levels, or as many as ``size`` holds (as :func:`.losses.loss_cases` does)."""
    levels = min(3, wavelet_max_level(size, name))

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        return wavelet_loss(pred, target, wavelet=name, levels=levels)

    return loss


def compare(
    cases: list[Comparison] | None = None,
    *,
    repeats: int = 30,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    clock: str = "auto",
    seed: int = 0,
) -> list[dict]:
    """Time each :class:`Comparison` (forward + backward of both paths, interleaved, ``repeats`` rounds after
    ``warmup``), on random inputs; the prediction requires a gradient, the target does not.

    Returns:
        One dict per comparison: ``name``, ``shape``, ``ours_ms`` / ``plain_ms`` (medians), ``ours_min`` /
        ``plain_min`` (fastest rounds), ``speedup`` (``plain_ms / ours_ms``), ``speedup_min`` (of the fastest
        rounds), ``clock``, ``device``, ``threads``, and the comparison's ``about`` fields.
    """
    device = torch.device(device)
    check_choice(clock, "clock", ("auto", "wall", "cpu"))
    if clock == "auto":
        clock = "wall" if device.type in ("cuda", "mps") else "cpu"
    now = time.perf_counter if clock == "wall" else time.process_time
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for case in comparisons() if cases is None else cases:
        pred = torch.randn(case.shape, generator=generator).to(device).requires_grad_(True)
        target = torch.randn(case.shape, generator=generator).to(device)
        times: dict[str, list[float]] = {"ours": [], "plain": []}
        for round_index in range(warmup + repeats):
            order = ("ours", "plain") if round_index % 2 == 0 else ("plain", "ours")  # alternate who goes first
            for which in order:
                elapsed = _time_once(getattr(case, which), pred, target, now)
                if round_index >= warmup:
                    times[which].append(elapsed)
        _sync(device)
        ours, plain = statistics.median(times["ours"]), statistics.median(times["plain"])
        rows.append({
            "name": case.name, "shape": case.shape, "ours_ms": ours, "plain_ms": plain,
            "ours_min": min(times["ours"]), "plain_min": min(times["plain"]), "speedup": plain / ours,
            "speedup_min": min(times["plain"]) / min(times["ours"]), "clock": clock, "device": str(device),
            "threads": torch.get_num_threads(), **case.about,
        })
    return rows


def format_comparison(rows: list[dict]) -> str:
    """A plain-text table of :func:`compare` rows."""
    lines = [f"{'hand-written path vs plain PyTorch':60s} {'input':>14s} {'ours ms':>9s} {'plain ms':>9s} "
             f"{'speed-up':>9s} {'(fastest)':>9s}"]
    for row in rows:
        shape = "x".join(str(s) for s in row["shape"])
        lines.append(f"{row['name']:60s} {shape:>14s} {row['ours_ms']:9.2f} {row['plain_ms']:9.2f} "
                     f"{row['speedup']:8.2f}x {row['speedup_min']:8.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: time every comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    default_sizes = " ".join(map(str, sorted({32, 64, DENSE_MAX_SIZE, *DENSE_MAX_SIZES.values()})))
    parser.add_argument("--sizes", nargs="+", type=int,
                        help=f"image sides of the wavelet comparisons (default: {default_sizes})")
    args = parser.parse_args(argv)
    rows = compare(comparisons(tuple(args.kinds), sizes=args.sizes), repeats=args.repeats, device=args.device)
    print(f"forward + backward, device={rows[0]['device']}, clock={rows[0]['clock']}, "
          f"torch threads={rows[0]['threads']}, torch {torch.__version__}; speed-up = plain / ours (> 1: ours faster)")
    print(format_comparison(rows))


if __name__ == "__main__":
    main()
