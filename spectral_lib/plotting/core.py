"""Figures shared by the notebooks and the run folders: sample grids, radial spectra, waveforms, spectrograms.

Every function returns a :class:`BookFigure`, a :class:`matplotlib.figure.Figure` built without ``pyplot``: nothing
is registered with a GUI backend, nothing is shown twice in a notebook, and nothing piles up in long scripts. It
renders itself as a PNG in Jupyter (``_repr_png_``) whatever the notebook's backend, so make the figure the last
expression of a cell (or ``display(fig)``) to see it; :func:`save_figure` writes it atomically. The notebook's own
backend (``inline``, ``widget``) is never changed, and no backend is forced globally.

Every figure has a title, axis labels and units.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "BookFigure",
    "make_grid",
    "sample_grid",
    "compare_grids",
    "plot_radial_spectra",
    "plot_waveform",
    "plot_spectrogram",
    "save_figure",
]


class BookFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter displays as a PNG without ``pyplot`` or an inline backend."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _as_images(samples: torch.Tensor | np.ndarray, name: str = "samples") -> np.ndarray:
    x = torch.as_tensor(samples).detach().float().cpu()
    if x.dim() == 3:  # (B, H, W) -> grayscale
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"{name} must be (B, 1, H, W) grayscale or (B, 3, H, W) RGB images, got shape {tuple(x.shape)}"
        )
    return ((x.clamp(-1, 1) + 1) / 2).numpy()


def make_grid(samples: torch.Tensor | np.ndarray, nrow: int | None = None, *, padding: int = 2) -> np.ndarray:
    """Tile images in ``[-1, 1]`` into one ``(H', W', 3)`` array in ``[0, 1]``, ``nrow`` images per row.

    Args:
        samples: ``(B, C, H, W)`` with ``C`` 1 or 3 (or ``(B, H, W)``), data range ``[-1, 1]`` (clipped).
        nrow: images per row; default ``ceil(sqrt(B))``.
        padding: white pixels between images.
    """
    x = _as_images(samples)
    b, c, h, w = x.shape
    nrow = int(nrow or math.ceil(math.sqrt(b)))
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    ncol_rows = math.ceil(b / nrow)
    grid = np.ones((ncol_rows * (h + padding) + padding, nrow * (w + padding) + padding, 3), dtype=np.float32)
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        img = np.repeat(x[i], 3, axis=0) if c == 1 else x[i]
        grid[top : top + h, left : left + w] = img.transpose(1, 2, 0)
    return grid


def _draw_grid(ax, samples, nrow: int | None, title: str | None) -> None:
    x = torch.as_tensor(samples)
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    nrow = int(nrow or math.ceil(math.sqrt(b)))
    ax.imshow(make_grid(x, nrow), vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{min(nrow, b)} samples across, {w} px each")
    ax.set_ylabel(f"{math.ceil(b / nrow)} rows, {h} px each")
    if title:
        ax.set_title(title)


def sample_grid(
    samples: torch.Tensor | np.ndarray, nrow: int | None = None, title: str = "Samples", *, size: float = 4.0
) -> Figure:
    """One grid of images in ``[-1, 1]`` (grayscale or RGB), ``nrow`` per row (default ``ceil(sqrt(B))``)."""
    fig = BookFigure(figsize=(size, size), layout="constrained")
    _draw_grid(fig.add_subplot(), samples, nrow, title)
    return fig


def compare_grids(
    grids: Mapping[str, torch.Tensor | np.ndarray], nrow: int | None = None, title: str | None = None,
    *, size: float = 3.5,
) -> Figure:
    """Grids side by side, one panel per entry of ``{name: samples}`` (e.g. data, baseline, wavelet)."""
    if not grids:
        raise ValueError("grids is empty; expected {name: samples}")
    fig = BookFigure(figsize=(size * len(grids), size + 0.4), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (name, samples) in zip(axes, grids.items()):
        _draw_grid(ax, samples, nrow, name)
    if title:
        fig.suptitle(title)
    return fig


def plot_radial_spectra(
    spectra: Mapping[str, tuple[Sequence[float] | torch.Tensor, Sequence[float] | torch.Tensor]],
    reference: str | tuple | None = None,
    title: str = "Radially averaged power spectrum",
    *,
    frequency_unit: str = "cycles/pixel",
    size: tuple[float, float] = (5.5, 4.0),
) -> Figure:
    """Radially averaged power spectra on a log scale, one line per ``{name: (freqs, power)}``.

    ``reference`` is the data's spectrum (drawn black and dashed): the name of one entry, or a ``(freqs, power)``
    pair labelled "data". Power is in arbitrary units (squared amplitude of the orthonormal DFT, averaged).
    """
    fig = BookFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    items = dict(spectra)
    ref_name: str | None = None
    if isinstance(reference, str):
        if reference not in items:
            raise ValueError(f"reference {reference!r} is not one of the spectra {list(items)}")
        ref_name = reference
    elif reference is not None:
        items = {"data": reference, **items}
        ref_name = "data"
    for name, (freqs, power) in items.items():
        f = torch.as_tensor(freqs).detach().cpu().double().numpy()
        p = torch.as_tensor(power).detach().cpu().double().numpy()
        if name == ref_name:
            ax.plot(f, p, "k--", lw=2, label=name, zorder=3)
        else:
            ax.plot(f, p, lw=1.5, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(f"spatial frequency ({frequency_unit})")
    ax.set_ylabel("power (a.u., log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def _as_waves(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    x = torch.as_tensor(wave).detach().float().cpu()
    if x.dim() == 3:  # (B, C, T): first channel
        x = x[:, 0]
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2:
        raise ValueError(f"wave must be (T,), (N, T) or (B, C, T), got shape {tuple(x.shape)}")
    return x.numpy()


def plot_waveform(
    wave: torch.Tensor | np.ndarray, sample_rate: int | None = None, title: str = "Waveform",
    *, labels: Sequence[str] | None = None, size: tuple[float, float] = (7.0, 2.6),
) -> Figure:
    """Waveforms against time: ``(T,)``, ``(N, T)`` or ``(B, C, T)`` (first channel), one panel per signal.

    With ``sample_rate`` the time axis is in seconds, otherwise in samples. Amplitude is in the data range.
    """
    waves = _as_waves(wave)
    fig = BookFigure(figsize=(size[0], size[1] * len(waves)), layout="constrained")
    axes = fig.subplots(len(waves), 1, squeeze=False, sharex=True)[:, 0]
    t = np.arange(waves.shape[1]) / (sample_rate or 1)
    for i, (ax, w) in enumerate(zip(axes, waves)):
        ax.plot(t, w, lw=0.6)
        ax.set_ylabel("amplitude (data range)")
        if labels is not None:
            ax.set_title(labels[i], fontsize="medium")
    axes[-1].set_xlabel("time (s)" if sample_rate else "time (samples)")
    fig.suptitle(title)
    return fig


def plot_spectrogram(
    wave: torch.Tensor | np.ndarray, sample_rate: int, title: str = "Spectrogram",
    *, n_fft: int = 1024, hop_length: int = 256, top_db: float = 80.0, size: tuple[float, float] = (7.0, 3.2),
) -> Figure:
    """Log-magnitude STFT (dB re the maximum, Hann window) of one waveform ``(T,)`` (or the first of a batch).

    Axes: time in seconds, frequency in kHz; the colour bar is in dB.
    """
    x = torch.as_tensor(_as_waves(wave)[0])
    if x.numel() < n_fft:
        raise ValueError(f"wave has {x.numel()} samples, fewer than n_fft={n_fft}")
    spec = torch.stft(x, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-10) / spec.max().clamp_min(1e-10))
    db = db.clamp_min(-top_db).numpy()
    fig = BookFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    extent = (0.0, x.numel() / sample_rate, 0.0, sample_rate / 2 / 1000)
    image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-top_db, vmax=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="magnitude (dB re max)")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    The format follows the suffix (``.png``, ``.pdf``, ``.svg``). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=fmt, dpi=dpi)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
