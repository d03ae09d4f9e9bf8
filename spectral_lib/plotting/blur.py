"""Figures of chapter 1 (why diffusion models blur): training boards, the exact posterior mean at rising noise,
its spectrum, two answers to an uncertain shift, jitter averaging in sound, two errors with the same MSE.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` with titles, axis labels and units.
Images are ``(B, 1, H, W)`` in the data range ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from matplotlib.figure import Figure

from spectral_lib.plotting.core import BookFigure, plot_radial_spectra

__all__ = ["log_power_map", "board_gallery", "posterior_panels", "peak_spectra", "two_answers", "jitter_average",
           "same_mse"]


def log_power_map(x: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """``log10`` of the batch- and channel-averaged 2-D power spectrum ``|FFT2(x)|^2`` (unitary), zero frequency
    in the centre (``fftshift``): ``(B, C, H, W) -> (H, W)``; power below ``floor`` is shown as ``floor``."""
    power = torch.fft.fft2(x.float(), norm="ortho").abs().square().mean(dim=(0, 1))
    return torch.fft.fftshift(power).clamp_min(floor).log10()


def _image(ax, image: torch.Tensor, title: str = "", *, cmap: str = "gray", vmin: float = -1.0, vmax: float = 1.0,
           ticks: bool = False, **kwargs) -> None:
    ax.imshow(torch.as_tensor(image).detach().cpu().float().numpy(), cmap=cmap, vmin=vmin, vmax=vmax,
              interpolation="nearest", **kwargs)
    if title:
        ax.set_title(title, fontsize=9)
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])


def board_gallery(boards: torch.Tensor, n: int = 8) -> Figure:
    """``n`` boards spread evenly over the data set ``(N, 1, H, W)``, titled with their index."""
    step = max(1, len(boards) // n)
    picks = list(range(0, len(boards), step))[:n]
    fig = BookFigure(figsize=(1.5 * len(picks), 1.9), layout="constrained")
    for ax, k in zip(fig.subplots(1, len(picks), squeeze=False)[0], picks):
        _image(ax, boards[k, 0], f"board {k}")
    fig.suptitle(f"Some of the {len(boards)} training images (pixel values -1 = black, +1 = white)")
    return fig


def posterior_panels(noisy: Mapping[int, torch.Tensor], means: Mapping[int, torch.Tensor],
                     alpha_bar: torch.Tensor) -> Figure:
    """Per DDPM step ``t`` (columns): the first noisy board ``x_t``, the posterior mean ``E[x0 | x_t]`` and the
    batch-averaged log power spectrum of the means (rows)."""
    steps = list(means)
    fig = BookFigure(figsize=(1.75 * len(steps), 6.0), layout="constrained")
    axes = fig.subplots(3, len(steps), squeeze=False)
    for col, t in enumerate(steps):
        _image(axes[0, col], noisy[t][0, 0], f"t = {t}\n$\\bar\\alpha_t$ = {float(alpha_bar[t]):.1e}", vmin=-2.5,
               vmax=2.5)
        _image(axes[1, col], means[t][0, 0])
        _image(axes[2, col], log_power_map(means[t]), cmap="magma", vmin=-3, vmax=1.5)
    for row, label in enumerate(["noisy input $x_t$", "E[$x_0$ | $x_t$]", "log$_{10}$ power spectrum"]):
        axes[row, 0].set_ylabel(label)
    fig.suptitle("The MSE-optimal denoiser: sharp at low noise, a grey blur at high noise")
    return fig


def peak_spectra(data: torch.Tensor, means: Mapping[int, torch.Tensor], *, relative_floor: float = 1e-6) -> Figure:
    """Radially averaged power of the posterior means at the rings where the data has power (the checkerboard's
    peaks, above ``relative_floor`` times the data's largest), against the data's, with markers."""
    from spectral_lib.metrics.spectrum import radial_power_spectrum

    frequencies, data_power = radial_power_spectrum(data)
    peaks = data_power > relative_floor * data_power.max()
    spectra = {f"E[x0 | x_t], t = {t}": (frequencies[peaks], radial_power_spectrum(m)[1][peaks])
               for t, m in means.items()}
    fig = plot_radial_spectra(spectra, reference=(frequencies[peaks], data_power[peaks]),
                              title="Radially averaged power at the checkerboard's peaks")
    for line in fig.axes[0].lines:
        line.set_marker("o")
    fig.axes[0].legend(fontsize=8)
    return fig


def two_answers(answers: Mapping[str, torch.Tensor]) -> Figure:
    """The candidate answers ``{name: (1, 1, H, W)}`` side by side, with pixel axes."""
    fig = BookFigure(figsize=(2.75 * len(answers), 3.0), layout="constrained")
    for ax, (name, image) in zip(fig.subplots(1, len(answers), squeeze=False)[0], answers.items()):
        _image(ax, image[0, 0], name, ticks=True)
        ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
    fig.suptitle("Two answers to an uncertain shift")
    return fig


def jitter_average(freqs: torch.Tensor, transfer: torch.Tensor, jitter_ms: float,
                   clips: Mapping[str, torch.Tensor]) -> Figure:
    """Left: the measured gain ``|mean_k exp(-2 pi i f tau_k)|`` of averaging jittered copies against the expected
    ``exp(-2 pi^2 f^2 s^2)``; right: the smoothed power spectra of ``clips`` (``{label: (T,)}``)."""
    fig = BookFigure(figsize=(12, 3.8), layout="constrained")
    gain_ax, power_ax = fig.subplots(1, 2)
    expected = torch.exp(-2 * torch.pi**2 * freqs**2 * (jitter_ms / 1000) ** 2)
    khz = (freqs / 1000).numpy()
    gain_ax.plot(khz, transfer.abs().numpy(), label="measured")
    gain_ax.plot(khz, expected.numpy(), "k--", label="expected $e^{-2\\pi^2 f^2 s^2}$")
    gain_ax.set(xlabel="frequency (kHz)", ylabel="gain (factor on the amplitude)",
                title=f"What averaging does (jitter s = {jitter_ms} ms)")
    gain_ax.legend()
    for label, wave in clips.items():
        power = torch.fft.rfft(wave.float()).abs().square()
        smooth = torch.nn.functional.avg_pool1d(power[None, None], 64, 16)[0, 0]  # smoothed for display
        power_ax.semilogy((freqs[::16][: smooth.numel()] / 1000).numpy(), smooth.numpy(), label=label)
    power_ax.set(xlabel="frequency (kHz)", ylabel="power (log scale)", title="Spectrum of the clip")
    power_ax.legend()
    return fig


def same_mse(versions: Mapping[str, torch.Tensor], clean: torch.Tensor) -> Figure:
    """Top: each version ``{name: (1, 1, H, W)}`` (the first is the clean image); bottom: the amplitude spectrum of
    its error against ``clean`` (of the clean image itself in the first column), centred."""
    fig = BookFigure(figsize=(3.0 * len(versions), 6.0), layout="constrained")
    axes = fig.subplots(2, len(versions), squeeze=False)
    for col, (name, image) in enumerate(versions.items()):
        _image(axes[0, col], image[0, 0], name, vmin=-1.5, vmax=1.5, ticks=True)
        axes[0, col].set(xlabel="x (pixels)", ylabel="y (pixels)")
        shown = image - clean if col else clean
        spectrum = torch.fft.fftshift(torch.fft.fft2(shown.float(), norm="ortho").abs())[0, 0]
        axes[1, col].imshow(spectrum.numpy(), cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5))
        axes[1, col].set(title="|FFT(error)|" if col else "|FFT(x0)|", xlabel="$f_x$ (cycles/pixel)",
                         ylabel="$f_y$ (cycles/pixel)")
    fig.suptitle("Same mean squared error, errors in different places of the spectrum (grey scale -1.5 to 1.5)")
    return fig
