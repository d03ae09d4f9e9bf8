"""Figures of chapter 2 (the Fourier lens): an image with its amplitude and phase, low- and high-pass cut-offs,
and rows of images with their own titles (amplitude/phase swaps, amplitude impostors).

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` with titles, axis labels and units.
Images are ``(1, 1, H, W)`` (or ``(H, W)``) in the data range ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure

from spectral_lib.plotting.core import BookFigure
from spectral_lib.spectral.fourier import highpass, lowpass

__all__ = ["amplitude_and_phase", "cutoff_grid", "image_row"]

_EXTENT = (-0.5, 0.5, 0.5, -0.5)  # centred frequency axes in cycles per pixel


def _plane(image: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(image).detach().cpu().float()
    while x.dim() > 2:
        x = x[0]
    return x


def amplitude_and_phase(image: torch.Tensor) -> Figure:
    """The image, its amplitude ``log10 A(f)`` and its phase ``phi(f)`` (unitary 2-D DFT, zero frequency in the
    centre), with colour bars."""
    x = _plane(image)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"))
    fig = BookFigure(figsize=(12, 3.9), layout="constrained")
    ax_image, ax_amp, ax_phase = fig.subplots(1, 3)
    ax_image.imshow(x.numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax_image.set(title="image x", xlabel="x (pixels)", ylabel="y (pixels)")
    freq_labels = {"xlabel": "$f_x$ (cycles/pixel)", "ylabel": "$f_y$ (cycles/pixel)"}
    im = ax_amp.imshow(torch.log10(spectrum.abs() + 1e-3).numpy(), cmap="magma", extent=_EXTENT)
    ax_amp.set(title="amplitude $\\log_{10} A(f)$", **freq_labels)
    fig.colorbar(im, ax=ax_amp, shrink=0.8)
    im = ax_phase.imshow(spectrum.angle().numpy(), cmap="twilight", extent=_EXTENT)
    ax_phase.set(title="phase $\\varphi(f)$ (radians)", **freq_labels)
    fig.colorbar(im, ax=ax_phase, shrink=0.8)
    return fig


def cutoff_grid(image: torch.Tensor, cutoffs: Sequence[float]) -> Figure:
    """Top row: ideal low-pass of ``image`` at each cut-off (cycles per pixel, Nyquist 0.5); bottom row: the
    high-pass that completes it (shown at twice the contrast). Uses :func:`~spectral_lib.spectral.fourier.lowpass`
    and :func:`~spectral_lib.spectral.fourier.highpass`."""
    x = torch.as_tensor(image).float().reshape(1, 1, *_plane(image).shape)
    fig = BookFigure(figsize=(2.9 * len(cutoffs), 6), layout="constrained")
    axes = fig.subplots(2, len(cutoffs), squeeze=False)
    for col, cutoff in enumerate(cutoffs):
        axes[0, col].imshow(lowpass(x, cutoff)[0, 0].numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axes[0, col].set_title(f"low-pass, |f| ≤ {cutoff}")
        axes[1, col].imshow(highpass(x, cutoff)[0, 0].numpy(), cmap="gray", vmin=-0.5, vmax=0.5,
                            interpolation="nearest")
        axes[1, col].set_title(f"high-pass, |f| > {cutoff}")
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("kept: slow waves")
    axes[1, 0].set_ylabel("kept: fast waves (×2 contrast)")
    fig.suptitle("Cut-off frequencies in cycles per pixel (Nyquist = 0.5)")
    return fig


def image_row(panels: Mapping[str, torch.Tensor], title: str, *, pixel_axes: bool = False,
              size: float = 3.0) -> Figure:
    """Images ``{panel title: image}`` in one row on the grey scale ``[-1, 1]``, under ``title``; with
    ``pixel_axes`` the axes are labelled in pixels, else they are hidden."""
    if not panels:
        raise ValueError("panels is empty; expected {title: image}")
    fig = BookFigure(figsize=(size * len(panels), size + 0.6), layout="constrained")
    for ax, (name, image) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items()):
        ax.imshow(_plane(image).numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(name)
        if pixel_axes:
            ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return fig
