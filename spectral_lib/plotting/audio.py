"""Figures of chapter 8 (speech): a clip with the log-mel spectrogram a vocoder receives, original and vocoded
waveforms with a zoom on a few pitch periods, their log-mel spectrograms side by side, and mean power spectra.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` with a title, axis labels and units.
Waveforms are ``(T,)``, ``(1, T)`` or ``(1, 1, T)`` in the data range ``[-1, 1]``; mel spectrograms are DiffWave's
normalised log-mel features ``(n_mels, frames)`` in ``[0, 1]`` (:func:`spectral_lib.data.audio.log_mel_spectrogram`:
0 is -100 dB, 1 is 0 dB).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from spectral_lib.data.audio import DIFFWAVE_MEL, log_mel_spectrogram
from spectral_lib.plotting.core import BookFigure

__all__ = ["loudest_window", "clip_and_mel", "waveforms_with_zoom", "mel_spectrograms", "power_spectra"]

MEL_LABEL = "normalised log magnitude (0 = -100 dB, 1 = 0 dB)"
_MEL_AXIS = f"mel band ({DIFFWAVE_MEL.f_min:g} Hz to {DIFFWAVE_MEL.fmax / 1000:g} kHz)"


def _wave(wave: torch.Tensor | np.ndarray, name: str = "wave") -> np.ndarray:
    x = np.asarray(wave.detach().cpu().float() if isinstance(wave, torch.Tensor) else wave, dtype=np.float64)
    x = x.reshape(-1) if x.ndim > 1 and x.size == x.shape[-1] else x
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be one waveform (T,), (1, T) or (1, 1, T), got shape {x.shape}")
    return x


def _mel(mel: torch.Tensor | np.ndarray) -> np.ndarray:
    m = np.asarray(mel.detach().cpu().float() if isinstance(mel, torch.Tensor) else mel, dtype=np.float64)
    m = m.reshape(m.shape[-2:]) if m.ndim > 2 and m.size == m.shape[-2] * m.shape[-1] else m
    if m.ndim != 2:
        raise ValueError(f"mel must be (n_mels, frames), got shape {m.shape}")
    return m


def loudest_window(wave: torch.Tensor | np.ndarray, length: int) -> int:
    """Start of the loudest of the non-overlapping windows of ``length`` samples (largest mean ``|x|``)."""
    x = np.abs(_wave(wave))
    n = x.size // int(length)
    if n < 1:
        raise ValueError(f"the wave has {x.size} samples, fewer than one window of {length}")
    return int(np.argmax(x[: n * length].reshape(n, length).mean(1))) * int(length)


def clip_and_mel(clip: torch.Tensor | np.ndarray, mel: torch.Tensor | np.ndarray, sample_rate: int, *,
                 hop: int = DIFFWAVE_MEL.hop_length, title: str = "Held-out clip") -> Figure:
    """A clip's waveform above its log-mel spectrogram (the vocoder's input), on one time axis in seconds."""
    x, m = _wave(clip, "clip"), _mel(mel)
    fig = BookFigure(figsize=(10, 5.5), layout="constrained")
    ax_wave, ax_mel = fig.subplots(2, 1, sharex=True)
    ax_wave.plot(np.arange(x.size) / sample_rate, x, lw=0.5)
    ax_wave.set(ylabel="amplitude (data range)", title=f"{title}: waveform")
    end = m.shape[1] * hop / sample_rate
    image = ax_mel.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                          extent=(0, end, -0.5, m.shape[0] - 0.5))
    ax_mel.set(xlabel="time (s)", ylabel=_MEL_AXIS, title="its log-mel spectrogram: the vocoder's input")
    fig.colorbar(image, ax=[ax_wave, ax_mel], label=MEL_LABEL, shrink=0.8)
    return fig


def waveforms_with_zoom(versions: Mapping[str, torch.Tensor | np.ndarray], sample_rate: int, *,
                        zoom_ms: float = 30.0) -> Figure:
    """One row per ``{name: waveform}``: the whole clip, and a zoom of ``zoom_ms`` milliseconds on the loudest
    stretch of the *first* waveform (the original: a few pitch periods of a voiced sound), the same for every row."""
    if not versions:
        raise ValueError("versions is empty; expected {name: waveform}")
    waves = {name: _wave(w, name) for name, w in versions.items()}
    first = next(iter(waves.values()))
    length = max(2, int(round(zoom_ms / 1000 * sample_rate)))
    start = loudest_window(first, length)
    fig = BookFigure(figsize=(12, 1.9 * len(waves) + 0.6), layout="constrained")
    axes = fig.subplots(len(waves), 2, squeeze=False, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    for row, (name, x) in enumerate(waves.items()):
        axes[row, 0].plot(np.arange(x.size) / sample_rate, x, lw=0.4)
        axes[row, 0].set(ylabel="amplitude", title=name)
        window = np.arange(start, min(start + length, x.size))
        axes[row, 1].plot(window / sample_rate * 1000, x[window], lw=0.8)
        axes[row, 1].set_title(f"{name}: {zoom_ms:g} ms zoom", fontsize="medium")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (ms)")
    fig.suptitle("Waveforms: original and vocoded")
    return fig


def mel_spectrograms(versions: Mapping[str, torch.Tensor | np.ndarray], sample_rate: int) -> Figure:
    """Each ``{name: waveform}`` as DiffWave's log-mel spectrogram (the features the vocoder is conditioned on), on
    one colour scale in a grid of at most three columns (two for two or four panels): the vocoder's output seen the
    way its input is."""
    if not versions:
        raise ValueError("versions is empty; expected {name: waveform}")
    mels = {name: log_mel_spectrogram(torch.from_numpy(_wave(w, name)).float()).numpy()
            for name, w in versions.items()}
    hop = DIFFWAVE_MEL.hop_length
    ncols = 2 if len(mels) in (2, 4) else min(len(mels), 3)  # panels large enough to read
    nrows = -(-len(mels) // ncols)
    fig = BookFigure(figsize=(5.0 * ncols + 1.0, 3.4 * nrows + 0.5), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    axes = list(grid.flat)
    for ax in axes[len(mels):]:
        ax.set_visible(False)
    for ax, (name, m) in zip(axes, mels.items()):
        image = ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                          extent=(0, m.shape[1] * hop / sample_rate, -0.5, m.shape[0] - 0.5))
        ax.set(title=name, xlabel="time (s)")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in grid[:, 0]:
        ax.set_ylabel(_MEL_AXIS)
    fig.colorbar(image, ax=axes[: len(mels)], label=MEL_LABEL, shrink=0.9)
    fig.suptitle("Log-mel spectrograms (DiffWave's features, the vocoder's input format)")
    return fig


def power_spectra(spectra: Mapping[str, tuple[np.ndarray, np.ndarray]], *, reference: str | None = None,
                  cutoff_hz: float | None = None, title: str = "Mean power spectrum of the evaluation clips") -> Figure:
    """Mean power spectra ``{name: (frequencies in Hz, power)}`` in dB against kHz; ``reference`` (e.g. the
    originals) drawn black and dashed, ``cutoff_hz`` marked by a vertical line."""
    if not spectra:
        raise ValueError("spectra is empty; expected {name: (freqs_hz, power)}")
    if reference is not None and reference not in spectra:
        raise ValueError(f"reference {reference!r} is not one of the spectra {list(spectra)}")
    fig = BookFigure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, (freqs, power) in spectra.items():
        f = np.asarray(freqs, dtype=np.float64) / 1000
        db = 10 * np.log10(np.maximum(np.asarray(power, dtype=np.float64), 1e-12))
        style = {"color": "k", "ls": "--", "lw": 1.8, "zorder": 3} if name == reference else {"lw": 1.2}
        ax.plot(f, db, label=name, **style)
    if cutoff_hz is not None:
        ax.axvline(cutoff_hz / 1000, color="grey", ls=":", lw=1, label=f"{cutoff_hz / 1000:g} kHz")
    ax.set(xlabel="frequency (kHz)", ylabel="mean power (dB)", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
