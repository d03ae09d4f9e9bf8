"""Figures of the image chapter (chapter 7): EDM's weight, spectra, fine-detail bars, zoomed crops, sample panels.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` built without ``pyplot``, at most
:data:`MAX_WIDTH` inches wide (wider figures are shrunk on the page until unreadable). Tables are
:mod:`spectral_lib.experiments.images.report`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from spectral_lib.plotting.core import BookFigure

__all__ = [
    "MAX_WIDTH",
    "edm_weight",
    "data_spectrum",
    "spectrum_ratios",
    "hf_ratios",
    "crops",
    "sample_panels",
]

MAX_WIDTH = 10.0
"""The widest figure in inches (the book's column shows about 10 inches at the page's resolution)."""


def edm_weight(formulation: Any, *, size: tuple[float, float] = (7.0, 3.8)) -> BookFigure:
    """``lambda_EDM(sigma)`` (the "weighted" variant's factor) against ``sigma``, log-log, with the training
    distribution of ``sigma`` (log-normal, ``ln sigma ~ N(P_mean, P_std^2)``) on a second axis."""
    sigma = torch.logspace(-3, 2, 400, dtype=torch.float64)
    weight = formulation.spectral_weight(sigma)
    log_s = sigma.log()
    density = torch.exp(-0.5 * ((log_s - formulation.p_mean) / formulation.p_std) ** 2)
    density = density / (formulation.p_std * math.sqrt(2 * math.pi))  # density of ln(sigma)
    fig = BookFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.loglog(sigma.numpy(), weight.numpy(), color="C0", lw=2)
    ax.set_xlabel(r"noise level $\sigma$ (data units; data in [-1, 1])")
    ax.set_ylabel(r"weight $\lambda(\sigma)$ (dimensionless)", color="C0")
    ax.grid(True, which="both", alpha=0.3)
    twin = ax.twinx()
    twin.semilogx(sigma.numpy(), density.numpy(), color="C1", lw=1.5, ls="--")
    twin.set_ylabel(r"training density of $\ln\sigma$", color="C1")
    ax.set_title(r"Weighted variant: spectral term $\times\ \lambda(\sigma)$; dashed: where training draws $\sigma$")
    return fig


def data_spectrum(freqs: torch.Tensor, power: torch.Tensor, fit: tuple[float, float] | None = None, *,
                  title: str = "Power spectrum of the training images", size: tuple[float, float] = (6.0, 3.8)
                  ) -> BookFigure:
    """The data's radially averaged power spectrum on log-log axes (the DC bin left out) and, with
    ``fit = (slope, intercept)`` of ``ln power = slope ln f + intercept``, the fitted power law (dotted)."""
    f = torch.as_tensor(freqs, dtype=torch.float64)[1:].numpy()
    p = torch.as_tensor(power, dtype=torch.float64)[1:].numpy()
    fig = BookFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.loglog(f, p, "k-", lw=2, label="training images")
    if fit is not None:
        slope, intercept = fit
        ax.loglog(f, np.exp(intercept + slope * np.log(f)), "r:", lw=2, label=f"fit: power ∝ f^{slope:.2f}")
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("power (a.u., log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def _ratio(power: Any, data_power: Any) -> np.ndarray:
    p, d = torch.as_tensor(power, dtype=torch.float64)[1:], torch.as_tensor(data_power, dtype=torch.float64)[1:]
    return torch.log10(p / d).numpy()


def spectrum_ratios(spectra: Mapping[str, tuple[Any, Any]], data: tuple[Any, Any],
                    groups: Mapping[str, Sequence[str]], *, title: str | None = None,
                    panel: tuple[float, float] = (4.9, 3.8)) -> BookFigure:
    """``log10(P_model(f) / P_data(f))`` against frequency, one panel per group (``{panel title: [model names]}``,
    e.g. unweighted and weighted), the first model of each group (its baseline) in black: 0 = the data's power,
    below 0 = missing detail (blur), above 0 = excess (noise, ringing). The DC bin is left out; the y range is shared.
    """
    if not groups or not all(groups.values()):
        raise ValueError("groups must be {panel title: [model names]}, none empty")
    missing = sorted({n for names in groups.values() for n in names} - set(spectra))
    if missing:
        raise ValueError(f"groups name models without a spectrum: {missing}")
    width = min(MAX_WIDTH, panel[0] * len(groups))
    fig = BookFigure(figsize=(width, panel[1]), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    _, p_data = data
    for ax, (name, members) in zip(axes, groups.items()):
        ax.axhline(0.0, color="grey", lw=1, ls=":")
        for i, model in enumerate(members):
            f, p = spectra[model]
            style = {"color": "k", "lw": 2.2} if i == 0 else {"lw": 1.4, "color": f"C{i - 1}"}
            ax.plot(torch.as_tensor(f, dtype=torch.float64)[1:].numpy(), _ratio(p, p_data), label=model, **style)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("log10(power of samples / power of data)")
    fig.suptitle(title or "Where in frequency each model differs from the data (0 = as the data)")
    return fig


def hf_ratios(values: Mapping[str, float | tuple[float, float]], *, cutoff: float = 0.25,
              size: tuple[float, float] = (8.5, 4.2)) -> BookFigure:
    """Horizontal bars of the high-frequency energy ratio (samples / data) per model; a ``(mean, std)`` value draws an
    error bar. 1 = as much fine detail as the data. Baselines are black, weighted models orange, others blue."""
    names = list(values)
    means = [v[0] if isinstance(v, tuple) else v for v in values.values()]
    errs = [v[1] if isinstance(v, tuple) else 0.0 for v in values.values()]
    colors = ["k" if n.startswith("baseline") else "C1" if "(weighted)" in n else "C0" for n in names]
    fig = BookFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.barh(range(len(names)), means, xerr=errs, color=colors, alpha=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("model")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel(f"HF energy ratio: share of power above {cutoff:g} x Nyquist, samples / data")
    ax.set_title("Fine detail of each model (1 = as much as the data)", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def _rgb(image: torch.Tensor) -> np.ndarray:
    x = torch.as_tensor(image).detach().float().cpu().clamp(-1, 1)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return ((x + 1) / 2).permute(1, 2, 0).numpy()


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def crops(pieces: Mapping[str, torch.Tensor], *, title: str,
          context: tuple[torch.Tensor, tuple[int, int, int]] | None = None, ncols: int = 6, panel: float = 1.6
          ) -> BookFigure:
    """Zoomed crops ``(C, h, w)`` in ``[-1, 1]``, one panel each, ``ncols`` per row, nearest-neighbour (every pixel a
    visible block). ``context = (image, (top, left, size))`` adds a first panel with the whole image and the crop's
    box."""
    from matplotlib.patches import Rectangle

    if not pieces:
        raise ValueError("crops needs at least one crop")
    count = len(pieces) + (context is not None)
    ncols = min(ncols, count)
    rows = math.ceil(count / ncols)
    panel = min(panel, MAX_WIDTH / ncols)
    fig = BookFigure(figsize=(panel * ncols, (panel + 0.35) * rows + 0.4), layout="constrained")
    axes = list(fig.subplots(rows, ncols, squeeze=False).flatten())
    for ax in axes[count:]:
        ax.axis("off")
    if context is not None:
        image, (top, left, side) = context
        ax = axes.pop(0)
        ax.imshow(_rgb(image), interpolation="nearest", vmin=0, vmax=1)
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, color="red", lw=1.5))
        ax.set_title(f"where (baseline, {image.shape[-1]} px)", fontsize=7)
        _bare(ax)
    for ax, (name, image) in zip(axes, pieces.items()):
        ax.imshow(_rgb(image), interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(name.replace(" (", "\n("), fontsize=7)
        _bare(ax)
    fig.suptitle(title, fontsize=10)
    return fig


def sample_panels(grids: Mapping[str, torch.Tensor], *, title: str, ncols: int = 4, nrow: int = 4,
                  panel: float = 2.4) -> BookFigure:
    """One grid of ``nrow x nrow`` images per entry (the data, then every model), ``ncols`` panels per row, packed
    tightly (:func:`spectral_lib.plotting.checkerboard.grid_rows`)."""
    from spectral_lib.plotting.checkerboard import grid_rows

    if not grids:
        raise ValueError("grids is empty; expected {name: images}")
    cells = [(name, torch.as_tensor(x)[: nrow * nrow]) for name, x in grids.items()]
    rows = [cells[i:i + ncols] for i in range(0, len(cells), ncols)]
    return grid_rows(rows, title, nrow=nrow, panel=panel, max_width=MAX_WIDTH)
