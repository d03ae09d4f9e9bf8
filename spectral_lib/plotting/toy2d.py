"""Figures of chapter 4 (diffusion in a few lines): 2-D point clouds through the forward process, the noise
schedules, training curves, where the one-step estimate x0_hat lands, and the paths of the samplers.

Points are ``(N, 2)`` tensors (see :mod:`spectral_lib.data.toy2d`); the chapter computes them with the library's
formulations and hands them over, so that the figures draw and never decide what is computed. Every function
returns a :class:`~spectral_lib.plotting.core.BookFigure` with titles, axis labels and units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from spectral_lib.plotting.core import BookFigure

__all__ = [
    "toy_datasets",
    "forward_process",
    "schedules",
    "loss_curves",
    "running_mean",
    "estimates_grid",
    "sampling_paths",
    "samples_grid",
]

DATA_LIMIT = 1.2
"""Half-width of the axes that show the data (the toy sets lie in ``[-1, 1]^2``, see :mod:`~spectral_lib.data.toy2d`)."""
_DATA_GREY = "0.8"


def _points(x: torch.Tensor | np.ndarray, name: str = "points") -> np.ndarray:
    p = torch.as_tensor(x).detach().cpu().float()
    if p.dim() == 3 and p.shape[1:] == (2, 1):  # a (N, 2, 1) signal
        p = p[..., 0]
    if p.dim() != 2 or p.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2) points or (N, 2, 1) signals, got shape {tuple(p.shape)}")
    return p.numpy()


def _square(ax, limit: float) -> None:
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")


def _scatter_on_data(ax, data: np.ndarray, points: np.ndarray, *, label: bool = False) -> None:
    ax.scatter(*data.T, s=1, color=_DATA_GREY, label="data" if label else None)
    ax.scatter(*points.T, s=1, color="C3", label="model" if label else None)
    _square(ax, DATA_LIMIT)


def toy_datasets(clouds: Mapping[str, torch.Tensor], *, used: str | None = None) -> Figure:
    """One panel per point cloud ``{name: (N, 2)}``; the one named ``used`` in colour, the others grey."""
    if not clouds:
        raise ValueError("clouds is empty; expected {name: (N, 2) points}")
    fig = BookFigure(figsize=(3.6 * len(clouds), 3.9), layout="constrained")
    for ax, (name, cloud) in zip(fig.subplots(1, len(clouds), squeeze=False)[0], clouds.items()):
        p = _points(cloud, name)
        ax.scatter(*p.T, s=2, color="C0" if name == used else "0.6")
        ax.set(title=name + (" (used below)" if name == used else ""), xlabel="$x_1$", ylabel="$x_2$")
        _square(ax, DATA_LIMIT)
    sizes = {len(_points(c)) for c in clouds.values()}
    fig.suptitle("The toy data sets" + (f", {sizes.pop()} points each" if len(sizes) == 1 else ""))
    return fig


def forward_process(rows: Mapping[str, Mapping[str, torch.Tensor]], title: str, *,
                    limits: Mapping[str, float] | None = None) -> Figure:
    """A grid of noised point clouds: one row per formulation ``{row: {panel title: (N, 2) points}}``.

    Args:
        rows: the corrupted points, e.g. ``{"DDPM, linear": {"t = 100": x_t, ...}, "EDM": {"σ = 0.5": x, ...}}``.
        title: the figure's title.
        limits: half-width of the axes per row, shared by its panels (e.g. 3.5 for DDPM, whose ``x_t`` keeps about
            unit variance); rows not named get per-panel limits that fit the cloud (EDM's grows with sigma).
    """
    if not rows or not all(rows.values()):
        raise ValueError("rows must map each row name to a non-empty {panel title: points}")
    limits = dict(limits or {})
    ncols = max(len(panels) for panels in rows.values())
    fig = BookFigure(figsize=(1.85 * ncols, 2.0 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (row, panels) in enumerate(rows.items()):
        for c, (name, cloud) in enumerate(panels.items()):
            ax, p = axes[r, c], _points(cloud, name)
            ax.scatter(*p.T, s=1, alpha=0.5)
            fit = 1.1 * float(np.abs(p).max()) if p.size else DATA_LIMIT
            _square(ax, limits.get(row, max(DATA_LIMIT, fit)))
            ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("$x_1$" if r == len(rows) - 1 else "", fontsize=9)
        for ax in axes[r, len(panels):]:
            ax.set_axis_off()
        axes[r, 0].set_ylabel(f"{row}\n$x_2$", fontsize=9)
    fig.suptitle(title)
    return fig


def schedules(steps: torch.Tensor, alpha_bar: Mapping[str, torch.Tensor], sigma: Mapping[str, torch.Tensor],
              sampler_levels: Mapping[str, torch.Tensor], training_levels: Mapping[str, torch.Tensor], *,
              sigma_data: float, bins: int = 60) -> Figure:
    """Four views of the noise: ``alpha_bar_t``, the equivalent ``sigma_t``, the levels each sampler visits and a
    histogram of the levels training draws.

    Args:
        steps: ``(T,)`` DDPM steps ``t``.
        alpha_bar: ``{schedule: (T,)}``.
        sigma: ``{schedule: (T,)}`` equivalent noise levels ``sqrt((1 - alpha_bar) / alpha_bar)``.
        sampler_levels: ``{sampler: (S,)}`` the sigmas a sampler visits, from high to low noise.
        training_levels: ``{formulation: (n,)}`` sigmas drawn for training; drawn on log-spaced bins from
            ``1e-3`` to ``1e3`` (values outside are counted in the end bins).
        sigma_data: EDM's data standard deviation, marked by a dotted line.
    """
    fig = BookFigure(figsize=(10.5, 7.6), layout="constrained")
    (ax_ab, ax_sigma), (ax_sampler, ax_train) = fig.subplots(2, 2)
    t = torch.as_tensor(steps).numpy()
    for name, values in alpha_bar.items():
        ax_ab.plot(t, torch.as_tensor(values).numpy(), label=name)
    ax_ab.set(title="$\\bar\\alpha_t$: how much signal is left", xlabel="DDPM step t", ylabel="$\\bar\\alpha_t$")
    for name, values in sigma.items():
        ax_sigma.semilogy(t, torch.as_tensor(values).numpy(), label=name)
    ax_sigma.axhline(sigma_data, color="k", ls=":", label=f"$\\sigma_{{data}}$ = {sigma_data:g}")
    ax_sigma.set(title="equivalent noise level (SNR = $1/\\sigma_t^2$)", xlabel="DDPM step t",
                 ylabel="$\\sigma_t$ (log scale)")
    for marker, (name, values) in zip("os^v", sampler_levels.items()):
        v = torch.as_tensor(values).numpy()
        ax_sampler.semilogy(np.arange(len(v)), v, f"{marker}-", ms=3, label=name)
    ax_sampler.set(title="levels visited while sampling", xlabel="sampling step i", ylabel="$\\sigma$ (log scale)")
    edges = np.logspace(-3, 3, bins + 1)
    for name, values in training_levels.items():
        v = torch.as_tensor(values).double().clamp(1e-3, 1e3).numpy()
        ax_train.hist(v, bins=edges, histtype="step", label=name)
        count = len(v)
    ax_train.axvline(sigma_data, color="k", ls=":")
    ax_train.set(xscale="log", title="levels drawn for training",
                 xlabel="$\\sigma$ (log scale; beyond $10^{\\pm 3}$ counted at the ends)",
                 ylabel=f"count (of {count})" if training_levels else "count")
    for ax in (ax_ab, ax_sigma, ax_sampler, ax_train):
        ax.legend(fontsize=8)
    fig.suptitle("How much noise, where: DDPM's schedules and EDM's levels")
    return fig


def running_mean(values: torch.Tensor | Sequence[float], window: int) -> torch.Tensor:
    """Mean over each ``window`` consecutive values (``len - window + 1`` of them); the values when too few."""
    v = torch.as_tensor(values, dtype=torch.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return v.unfold(0, window, 1).mean(1) if len(v) >= window else v


def loss_curves(losses: Mapping[str, torch.Tensor | Sequence[float]], *, window: int = 1) -> Figure:
    """One panel per ``{name: loss per training step}``, a running mean over ``window`` steps, log scale."""
    if not losses:
        raise ValueError("losses is empty; expected {name: loss per step}")
    fig = BookFigure(figsize=(5.2 * len(losses), 3.4), layout="constrained")
    for ax, (name, values) in zip(fig.subplots(1, len(losses), squeeze=False)[0], losses.items()):
        curve = running_mean(values, window)
        start = window if len(torch.as_tensor(values)) >= window else 1
        ax.plot(np.arange(len(curve)) + start, curve.numpy())
        ax.set(title=f"{name} training loss (running mean of {window})", xlabel="training step",
               ylabel="loss (log scale)", yscale="log")
    fig.suptitle("Training curves: each loss is comparable only with itself")
    return fig


def estimates_grid(data: torch.Tensor, estimates: Mapping[str, Mapping[str, torch.Tensor]], title: str) -> Figure:
    """Where the one-step estimates land (red) against the data (grey): one row per ``{row: {panel: (N, 2)}}``,
    on the data's axes (points beyond them are cut off)."""
    if not estimates or not all(estimates.values()):
        raise ValueError("estimates must map each row name to a non-empty {panel title: points}")
    d = _points(data, "data")
    ncols = max(len(panels) for panels in estimates.values())
    fig = BookFigure(figsize=(1.85 * ncols, 2.05 * len(estimates) + 0.4), layout="constrained")
    axes = fig.subplots(len(estimates), ncols, squeeze=False)
    for r, panels in enumerate(estimates.values()):
        for c, (name, points) in enumerate(panels.items()):
            _scatter_on_data(axes[r, c], d, _points(points, name))
            axes[r, c].set_title(name, fontsize=9)
            axes[r, c].tick_params(labelsize=7)
            axes[r, c].set_xlabel("$x_1$" if r == len(estimates) - 1 else "", fontsize=9)
        for ax in axes[r, len(panels):]:
            ax.set_axis_off()
        axes[r, 0].set_ylabel("$x_2$", fontsize=9)
    fig.suptitle(title)
    return fig


def sampling_paths(data: torch.Tensor, runs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], *,
                   max_drawn_steps: int = 100, path_limit: float = 3.0) -> Figure:
    """One row per sampler: its paths (left: circle = start, star = end) and its samples on the data (right).

    Args:
        data: ``(N, 2)`` points drawn in grey.
        runs: ``{sampler: (samples (M, 2), path (steps + 1, K, 2))}``; a path longer than ``max_drawn_steps`` is
            thinned to about that many points (its end always kept), or the page turns to ink.
        path_limit: half-width of the path panels (the noise starts at about unit scale).
    """
    if not runs:
        raise ValueError("runs is empty; expected {sampler: (samples, path)}")
    d = _points(data, "data")
    fig = BookFigure(figsize=(8.6, 4.1 * len(runs) + 0.4), layout="constrained")
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for (ax_path, ax_samples), (name, (samples, path)) in zip(axes, runs.items()):
        path = torch.as_tensor(path).detach().float()
        if path.dim() != 3 or path.shape[-1] != 2:
            raise ValueError(f"{name}: path must be (steps + 1, K, 2), got shape {tuple(path.shape)}")
        stride = max(1, len(path) // max_drawn_steps)
        shown = torch.cat([path[:-1:stride], path[-1:]]).numpy()
        ax_path.scatter(*d.T, s=1, color="0.85")
        for k in range(shown.shape[1]):
            colour = f"C{k % 10}"
            ax_path.plot(shown[:, k, 0], shown[:, k, 1], lw=0.7, alpha=0.8, color=colour)
            ax_path.plot(*shown[0, k], "o", ms=3, color=colour)
            ax_path.plot(*shown[-1, k], "*", ms=8, color=colour, mec="k", mew=0.4)
        thinned = f", every {stride}th step drawn" if stride > 1 else ""
        ax_path.set(title=f"{name}\n{shown.shape[1]} paths{thinned}", xlabel="$x_1$", ylabel="$x_2$")
        _square(ax_path, path_limit)
        s = _points(samples, f"{name} samples")
        _scatter_on_data(ax_samples, d, s, label=True)
        ax_samples.set(title=f"{name}\n{len(s)} samples", xlabel="$x_1$", ylabel="$x_2$")
    axes[0, 1].legend(loc="lower left", fontsize=8, markerscale=5)
    fig.suptitle("Sampling from the same noise: paths (circle = start, star = end) and samples")
    return fig


def samples_grid(data: torch.Tensor, samples: Mapping[str, Mapping[str, torch.Tensor]], title: str) -> Figure:
    """Samples (red) on the data (grey), one row per ``{row: {panel: (M, 2)}}`` (e.g. a spacing per row and a
    step budget per panel)."""
    return estimates_grid(data, samples, title)
