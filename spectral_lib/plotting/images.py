"""Figures and tables of the image chapter (chapter 7): weights, spectrum ratios, fine-detail bars, crops, panels.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` built without ``pyplot``; tables are
Markdown strings for ``IPython.display.Markdown``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "markdown_table",
    "plot_edm_weight",
    "plot_spectrum_ratios",
    "plot_hf_ratios",
    "plot_crops",
    "plot_sample_panels",
]



def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (for ``IPython.display.Markdown``); floats are written as given (format them first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_edm_weight(formulation: Any, *, size: tuple[float, float] = (6.0, 3.6)):
    """``lambda_EDM(sigma)`` (the "weighted" variant's factor) against ``sigma``, log-log, with the training
    distribution of ``sigma`` (log-normal, ``ln sigma ~ N(P_mean, P_std^2)``) on a second axis."""
    from spectral_lib.plotting.core import BookFigure as Figure

    sigma = torch.logspace(-3, 2, 400, dtype=torch.float64)
    weight = formulation.spectral_weight(sigma)
    log_s = sigma.log()
    density = torch.exp(-0.5 * ((log_s - formulation.p_mean) / formulation.p_std) ** 2)
    density = density / (formulation.p_std * math.sqrt(2 * math.pi))  # density of ln(sigma)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.loglog(sigma.numpy(), weight.numpy(), color="C0", lw=2)
    ax.set_xlabel(r"noise level $\sigma$ (data units; data in [-1, 1])")
    ax.set_ylabel(r"weight $\lambda(\sigma)$ (dimensionless)", color="C0")
    ax.grid(True, which="both", alpha=0.3)
    twin = ax.twinx()
    twin.semilogx(sigma.numpy(), density.numpy(), color="C1", lw=1.5, ls="--")
    twin.set_ylabel(r"training density of $\ln\sigma$ (per unit $\ln\sigma$)", color="C1")
    ax.set_title(r"Weighted variant: spectral term $\times\ \lambda(\sigma)$; dashed: where training samples $\sigma$")
    return fig


def plot_spectrum_ratios(spectra: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                         data: tuple[torch.Tensor, torch.Tensor], *, title: str | None = None,
                         size: tuple[float, float] = (6.5, 4.0)):
    """``log10(P_variant(f) / P_data(f))`` against frequency for every variant: 0 = the data's power, below 0 =
    missing detail (blur), above 0 = excess (noise, ringing). The DC bin is left out."""
    from spectral_lib.plotting.core import BookFigure as Figure

    f_data, p_data = data
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    for i, (name, (f, p)) in enumerate(spectra.items()):
        ratio = torch.log10(torch.as_tensor(p)[1:].double() / torch.as_tensor(p_data)[1:].double())
        style = {"color": "k", "lw": 2.2} if i == 0 else {"lw": 1.3, "ls": "-" if "unweighted" in name else "--"}
        ax.plot(torch.as_tensor(f)[1:].numpy(), ratio.numpy(), label=name, **style)
    ax.axhline(0.0, color="grey", lw=1, ls=":")
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("log10(power of samples / power of data) (decades)")
    ax.set_title(title or "Power of samples relative to the data")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_hf_ratios(values: Mapping[str, float | tuple[float, float]], *, cutoff: float = 0.25,
                   size: tuple[float, float] = (6.5, 3.6)):
    """Horizontal bars of the high-frequency energy ratio (samples / data) per variant; a ``(mean, std)`` value
    draws an error bar. 1 = as much fine detail as the data."""
    from spectral_lib.plotting.core import BookFigure as Figure

    names = list(values)
    means = [v[0] if isinstance(v, tuple) else v for v in values.values()]
    errs = [v[1] if isinstance(v, tuple) else 0.0 for v in values.values()]
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    colors = ["k" if name.startswith("baseline") else "C0" for name in names]
    ax.barh(range(len(names)), means, xerr=errs, color=colors, alpha=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("variant")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel(f"high-frequency energy ratio, samples / data (above {cutoff:g} x Nyquist)")
    ax.set_title("Fine detail kept by each variant (1 = as much as the data)")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def _rgb(image: torch.Tensor) -> np.ndarray:
    x = image.detach().float().cpu().clamp(-1, 1)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return ((x + 1) / 2).permute(1, 2, 0).numpy()


def plot_crops(crops: Mapping[str, torch.Tensor], *, title: str,
               context: tuple[torch.Tensor, tuple[int, int, int]] | None = None, size: float = 1.55):
    """Zoomed crops ``(C, h, w)`` in ``[-1, 1]``, one panel each, nearest-neighbour (every pixel visible).

    ``context = (image, (top, left, size))`` adds a first panel with the whole image and the crop's box.
    """
    from spectral_lib.plotting.core import BookFigure as Figure
    from matplotlib.patches import Rectangle

    panels = len(crops) + (context is not None)
    fig = Figure(figsize=(size * panels, size + 0.8), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    if context is not None:
        image, (top, left, side) = context
        ax = axes.pop(0)
        ax.imshow(_rgb(image), interpolation="nearest", vmin=0, vmax=1)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, color="red", lw=1.5))
        ax.set_title("where (baseline)", fontsize=7)
        ax.set_xlabel(f"{image.shape[-1]} px", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, (name, image) in zip(axes, crops.items()):
        ax.imshow(_rgb(image), interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(name, fontsize=7)
        ax.set_xlabel(f"{image.shape[-1]} x {image.shape[-2]} px", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return fig


def plot_sample_panels(grids: Mapping[str, torch.Tensor], *, ncols: int = 5, nrow: int = 4,
                       title: str = "Samples", size: float = 2.4):
    """One grid of images per entry (e.g. data and every variant), ``ncols`` panels per row."""
    from spectral_lib.plotting.core import BookFigure as Figure

    from spectral_lib.plotting.core import make_grid

    rows = math.ceil(len(grids) / ncols)
    fig = Figure(figsize=(size * ncols, (size + 0.3) * rows), layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False).flatten()
    for ax in axes:
        ax.set_axis_off()
    for ax, (name, images) in zip(axes, grids.items()):
        ax.imshow(make_grid(images, nrow), interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
    fig.suptitle(f"{title} ({nrow} x {nrow} images of {next(iter(grids.values())).shape[-1]} px each)")
    return fig
