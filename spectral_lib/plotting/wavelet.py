"""Figures of chapter 3 (the wavelet lens): one signal through two lenses, the subband mosaic of a 2-D DWT, grids
of edited images, the filters of Haar and bior1.3, where the wavelet loss sees an error, and what a blur does to
each band.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` with titles, axis labels and units.
Images are ``(1, 1, H, W)`` (or ``(H, W)``) in the data range ``[-1, 1]``. The displays follow PyWavelets' layout
(``pywt.coeffs_to_array``) and its names ``cA, (cH, cV, cD)``; the numbers behind the last two figures
(:func:`detail_error_map`, :func:`band_relative_errors`) come from :func:`spectral_lib.spectral.wavelet_decompose`,
the transform of the loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pywt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from spectral_lib.plotting.core import BookFigure
from spectral_lib.spectral import wavelet_decompose, wavelet_loss

__all__ = [
    "two_lenses",
    "mosaic_array",
    "subband_mosaic",
    "image_grid",
    "filter_taps",
    "detail_error_map",
    "where_is_the_error",
    "band_relative_errors",
    "band_damage",
]

_ORIENTATIONS = (("da", "horizontal"), ("ad", "vertical"), ("dd", "diagonal"))  # coeffs_to_array keys


def _plane(image: torch.Tensor | np.ndarray) -> np.ndarray:
    x = torch.as_tensor(image).detach().cpu().float()
    while x.dim() > 2:
        x = x[0]
    if x.dim() != 2:
        raise ValueError(f"an image must be (H, W) or (1, 1, H, W), got shape {tuple(torch.as_tensor(image).shape)}")
    return x.numpy()


def two_lenses(signal: Sequence[float] | np.ndarray, levels: int, *, edges: Sequence[float] = (),
               wavelet: str = "haar") -> Figure:
    """A 1-D signal (left), its Fourier amplitude (middle) and its detail coefficients per level (right).

    Args:
        signal: ``(T,)`` samples.
        levels: DWT levels drawn, one row each (coarsest on top); PyWavelets' ``wavedec`` with ``"periodization"``,
            so that level ``j`` has ``T / 2^j`` coefficients, each drawn over the ``2^j`` samples it covers.
        edges: positions (in samples) marked by red dotted lines on the detail rows.
        wavelet: PyWavelets name.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size < 2**levels:
        raise ValueError(f"signal must be (T,) with T >= 2^levels = {2**levels}, got shape {x.shape}")
    coeffs = pywt.wavedec(x, wavelet, level=levels, mode="periodization")  # [a_L, d_L, ..., d_1]
    n = np.arange(x.size)
    fig = BookFigure(figsize=(10, 6), layout="constrained")
    outer = fig.add_gridspec(1, 2)
    left, right = outer[0].subgridspec(2, 1), outer[1].subgridspec(levels, 1)
    ax_signal, ax_fourier = fig.add_subplot(left[0]), fig.add_subplot(left[1])
    ax_signal.step(n, x, where="mid")
    ax_signal.set(title="signal", xlabel="position n (samples)", ylabel="value")
    ax_fourier.stem(np.fft.rfftfreq(x.size), np.abs(np.fft.rfft(x, norm="ortho")))
    ax_fourier.set(title="Fourier amplitude: spread, no position", xlabel="frequency (cycles/sample)",
                   ylabel="amplitude |X(f)|")
    ax = ax_signal
    for row, (level, detail) in enumerate(zip(range(levels, 0, -1), coeffs[1:])):
        ax = fig.add_subplot(right[row])
        width = x.size / detail.size  # samples per coefficient, 2^level
        ax.bar(np.arange(detail.size) * width, detail, width=width, align="edge", edgecolor="k", linewidth=0.3)
        for edge in edges:
            ax.axvline(edge, color="r", ls=":")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set(xlim=(0, x.size), ylabel=f"level {level}")
        ax.tick_params(labelbottom=row == levels - 1)
        if row == 0:
            ax.set_title(f"{wavelet} detail coefficients, one row per level")
    ax.set_xlabel("position n (samples)" + ("; red: the edges" if edges else ""))
    fig.suptitle("One signal, two lenses: Fourier amplitudes have no position axis, wavelet details do")
    return fig


def mosaic_array(coeffs: list) -> tuple[np.ndarray, list[tuple[tuple[slice, slice], str]]]:
    """``pywt.wavedec2`` coefficients tiled as PyWavelets does (``coeffs_to_array``), each band scaled on its own.

    The approximation is stretched to ``[-1, 1]``; each detail band is divided by its 99th percentile of ``|.|``
    and clipped to ``[-1, 1]`` (0, grey, stays 0). Returns the mosaic and ``[(slices, name), ...]`` with names
    ``a3`` (approximation of level 3) or ``h2``/``v2``/``d2`` (horizontal, vertical, diagonal details of level 2).
    """
    array, slices = pywt.coeffs_to_array(coeffs)
    mosaic = np.zeros_like(array)
    levels = len(coeffs) - 1
    a = array[slices[0]]
    mosaic[slices[0]] = (a - a.min()) / max(a.max() - a.min(), 1e-12) * 2 - 1
    labels = [(slices[0], f"a{levels}")]
    for level, band_slices in zip(range(levels, 0, -1), slices[1:]):
        for key, name in _ORIENTATIONS:
            band = array[band_slices[key]]
            mosaic[band_slices[key]] = np.clip(band / (np.percentile(np.abs(band), 99) + 1e-12), -1, 1)
            labels.append((band_slices[key], f"{name[0]}{level}"))
    return mosaic, labels


def subband_mosaic(image: torch.Tensor | np.ndarray, levels: int, *, wavelet: str = "haar") -> Figure:
    """The multi-level 2-D DWT of ``image`` (``"periodization"``) as one labelled mosaic (see :func:`mosaic_array`)."""
    coeffs = pywt.wavedec2(_plane(image).astype(np.float64), wavelet, level=levels, mode="periodization")
    mosaic, labels = mosaic_array(coeffs)
    fig = BookFigure(figsize=(7, 7), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    for (rows, cols), text in labels:
        top, left = rows.start or 0, cols.start or 0
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), cols.stop - left, rows.stop - top, fill=False, ec="yellow"))
        ax.text(left + 1, top + 1, text, color="yellow", fontsize=10, va="top", ha="left",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "lw": 0})
    ax.set(title=f"{wavelet} DWT, {levels} levels: approximation a and h/v/d details per level",
           xlabel="coefficient index (columns)", ylabel="coefficient index (rows)")
    return fig


def image_grid(panels: Mapping[str, torch.Tensor | np.ndarray], title: str, *, ncols: int = 3,
               size: float = 3.2) -> Figure:
    """Images ``{panel title: image}`` on the grey scale ``[-1, 1]``, ``ncols`` per row, under ``title``."""
    if not panels:
        raise ValueError("panels is empty; expected {title: image}")
    ncols = min(int(ncols), len(panels))
    nrows = -(-len(panels) // ncols)
    fig = BookFigure(figsize=(size * ncols, size * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, image) in zip(axes, panels.items()):
        ax.imshow(_plane(image), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return fig


def filter_taps(wavelets: Sequence[str] = ("haar", "bior1.3")) -> Figure:
    """The four filters of each wavelet (analysis and synthesis, low- and high-pass) as stem plots, one row each."""
    fig = BookFigure(figsize=(11, 2.7 * len(wavelets) + 0.4), layout="constrained")
    axes = fig.subplots(len(wavelets), 4, sharey=True, squeeze=False)
    for row, name in enumerate(wavelets):
        w = pywt.Wavelet(name)
        filters = (("analysis low-pass", w.dec_lo), ("analysis high-pass", w.dec_hi),
                   ("synthesis low-pass", w.rec_lo), ("synthesis high-pass", w.rec_hi))
        for col, (label, taps) in enumerate(filters):
            ax = axes[row, col]
            ax.stem(np.arange(len(taps)), taps)
            ax.axhline(0, color="0.6", lw=0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(title=f"{name}: {label}", xlabel="tap index", ylabel="coefficient" if col == 0 else "")
    fig.suptitle("Filters of the paper's two wavelets (PyWavelets' taps)")
    return fig


def detail_error_map(pred: torch.Tensor, target: torch.Tensor, level: int, *, wavelet: str = "haar",
                     levels: int | None = None, mode: str = "reflect") -> torch.Tensor:
    """``|dH| + |dV| + |dD|`` at one level: where the wavelet loss sees an error, ``(H / 2^level, W / 2^level)``.

    ``pred`` and ``target`` are ``(1, 1, H, W)``; the DWT is :func:`~spectral_lib.spectral.wavelet_decompose`
    with ``levels`` (default ``level``) levels, as in the loss.
    """
    depth = level if levels is None else levels
    bands_p = wavelet_decompose(pred, wavelet, depth, mode=mode)
    bands_t = wavelet_decompose(target, wavelet, depth, mode=mode)
    details = [(p.coeffs - t.coeffs).abs() for p, t in zip(bands_p, bands_t)
               if p.level == level and p.orientation != "approximation"]
    if not details:
        raise ValueError(f"level {level} is not among the {depth} levels of the decomposition")
    return sum(details)[0, 0]


def where_is_the_error(answer: torch.Tensor, target: torch.Tensor, *, levels: Sequence[int] = (1, 2),
                       wavelet: str = "haar") -> Figure:
    """Top: the answer and the Fourier error ``|ΔX(f)|`` (no position axis); bottom: the wavelet detail errors
    (:func:`detail_error_map`) of ``levels`` on the image's pixel grid. Panels are large enough to read each
    coefficient."""
    a, t = torch.as_tensor(answer).float(), torch.as_tensor(target).float()
    a, t = a.reshape(1, 1, *_plane(a).shape), t.reshape(1, 1, *_plane(t).shape)
    height, width = a.shape[-2:]
    panels = 2 + len(levels)
    ncols = 2
    fig = BookFigure(figsize=(10.5, 4.9 * (-(-panels // ncols))), layout="constrained")
    axes = fig.subplots(-(-panels // ncols), ncols, squeeze=False).ravel()
    axes[0].imshow(a[0, 0].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest",
                   extent=(0, width, height, 0))
    axes[0].set(title="the answer", xlabel="x (pixels)", ylabel="y (pixels)")
    fourier = torch.fft.fftshift(torch.fft.fft2(a - t, norm="ortho").abs())[0, 0]
    im = axes[1].imshow(fourier.numpy(), cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5), interpolation="nearest")
    axes[1].set(title="Fourier lens: |ΔX(f)|, no position axis", xlabel="$f_x$ (cycles/pixel)",
                ylabel="$f_y$ (cycles/pixel)")
    fig.colorbar(im, ax=axes[1], shrink=0.85, label="|ΔX(f)|")
    for ax, level in zip(axes[2:], levels):
        error = detail_error_map(a, t, level, wavelet=wavelet, levels=max(levels))
        im = ax.imshow(error.numpy(), cmap="magma", extent=(0, width, height, 0), interpolation="nearest")
        ax.set(title=f"wavelet lens: {wavelet} level {level} detail error", xlabel="x (pixels)",
               ylabel="y (pixels)")
        fig.colorbar(im, ax=ax, shrink=0.85, label="|ΔH| + |ΔV| + |ΔD|")
    for ax in axes[panels:]:
        ax.set_axis_off()
    fig.suptitle("Where is the error? The Fourier lens cannot say; the wavelet lens can")
    return fig


def band_relative_errors(pred: torch.Tensor, target: torch.Tensor, *, wavelet: str = "haar", levels: int = 3,
                         mode: str = "reflect") -> dict[str, float]:
    """``{band name: mean |ΔW| / mean |W|}`` per band of the target's DWT (``a3``, ``h3``, ..., ``d1``): 0 when a
    band is intact, about 1 when its content is gone."""
    bands_p = wavelet_decompose(pred, wavelet, levels, mode=mode)
    bands_t = wavelet_decompose(target, wavelet, levels, mode=mode)
    return {t.name: ((p.coeffs - t.coeffs).abs().mean() / t.coeffs.abs().mean().clamp_min(1e-12)).item()
            for p, t in zip(bands_p, bands_t)}


def band_damage(reference: torch.Tensor, variants: Mapping[str, torch.Tensor], *, wavelet: str = "haar",
                levels: int = 3) -> Figure:
    """Grouped bars of :func:`band_relative_errors` of each variant against ``reference``, one group per band, with
    the paper's Eq. 16 total (:func:`~spectral_lib.spectral.wavelet_loss`) in the legend."""
    if not variants:
        raise ValueError("variants is empty; expected {name: image}")
    fig = BookFigure(figsize=(10, 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(variants)
    names: list[str] = []
    for i, (name, image) in enumerate(variants.items()):
        errors = band_relative_errors(image, reference, wavelet=wavelet, levels=levels)
        names = list(errors)
        total = wavelet_loss(image, reference, wavelet=wavelet, levels=levels).item()
        ax.bar(np.arange(len(errors)) + (i - (len(variants) - 1) / 2) * width, list(errors.values()),
               width=width, label=f"{name}: Eq. 16 total {total:.3f}")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set(xlabel="band (a = approximation, h/v/d = details; number = level, 1 = finest)",
           ylabel="mean |ΔW| / mean |W|", title=f"How much of each {wavelet} band a blur destroys")
    ax.legend(fontsize=9)
    return fig
