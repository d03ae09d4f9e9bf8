"""Figures of chapter 9 (plug-and-play in ``diffusers``): x̂₀ by prediction type, the error gain per timestep, the
loss parts during training, and the sample grids of the prediction-type x λ sweep.

Every function returns a :class:`~spectral_lib.plotting.core.BookFigure` (no ``pyplot`` state) with titles, axis
labels and units. Images are ``(B, 1, H, W)`` in the data range ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure

from spectral_lib.plotting.core import BookFigure, make_grid

__all__ = ["x0_hat_by_prediction", "error_gain", "loss_parts", "sweep_grids", "sweep_table"]


def x0_hat_by_prediction(rows: Mapping[str, torch.Tensor], timesteps: Sequence[int]) -> Figure:
    """One row per entry of ``rows`` (``name -> (len(timesteps), 1, H, W)``), one column per timestep: the noisy
    input and the x̂₀ each prediction type gives for the same output error."""
    if not rows:
        raise ValueError("rows is empty: pass at least one name -> images")
    timesteps = [int(t) for t in timesteps]
    for name, images in rows.items():
        if images.dim() != 4 or images.shape[0] != len(timesteps):
            raise ValueError(f"rows[{name!r}] must be ({len(timesteps)}, 1, H, W), got {tuple(images.shape)}")
    size = next(iter(rows.values())).shape[-1]
    fig = BookFigure(figsize=(2.2 * len(timesteps) + 1.6, 2.2 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(timesteps), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, t in enumerate(timesteps):
            ax = axes[r, c]
            ax.imshow(images[c, 0].detach().cpu().numpy(), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set(xticks=[], yticks=[])
            if r == 0:
                ax.set_title(f"t = {t}")
            if r == len(rows) - 1:
                ax.set_xlabel(f"{size} px")
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle("One board, the same output error δ (std 0.1); grey scale [-1, 1]")
    return fig


def error_gain(gains: Mapping[str, torch.Tensor], *, schedule: str = "linear β schedule") -> Figure:
    """``|Δx̂₀| / |δ|`` per timestep for each prediction type (``name -> (T,)``,
    :func:`~spectral_lib.integrations.diffusers.x0_error_gain`), on a log scale."""
    if not gains:
        raise ValueError("gains is empty")
    fig = BookFigure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    steps = 0
    for name, gain in gains.items():
        values = torch.as_tensor(gain).detach().cpu().double()
        steps = max(steps, len(values))
        ax.plot(values.numpy(), label=name)
    ax.set(yscale="log", xlabel="timestep t", ylabel="gain |Δx̂₀| / |δ| (log scale)",
           title=f"How an output error grows in x̂₀ ({schedule}, T = {steps})")
    ax.legend(title="prediction type")
    return fig


def loss_parts(histories: Mapping[str, Sequence[Mapping[str, float]]], *, title: str) -> Figure:
    """The pointwise (MSE) part of each run's loss against the training step, and, where logged, its spectral term
    (dashed), on a log scale. ``histories``: ``label -> [{"step", "diffusion", ["spectral"]}, ...]``."""
    if not histories:
        raise ValueError("histories is empty")
    fig = BookFigure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, (label, history) in enumerate(histories.items()):
        if not history:
            raise ValueError(f"the history of {label!r} is empty")
        steps = [h["step"] for h in history]
        ax.plot(steps, [h["diffusion"] for h in history], color=f"C{i}", label=f"{label}: pointwise (MSE) part")
        if all("spectral" in h for h in history):
            ax.plot(steps, [h["spectral"] for h in history], "--", color=f"C{i}", label=f"{label}: spectral term")
    ax.set(yscale="log", xlabel="training step", ylabel="loss (log scale)", title=title)
    ax.legend(fontsize=8)
    return fig


def sweep_grids(samples: Mapping[tuple[str, float], torch.Tensor], *, n: int = 16, title: str) -> Figure:
    """A grid of samples per sweep run: rows are prediction types, columns λ (``(prediction_type, lambda) ->
    (B, 1, H, W)``); each panel tiles the first ``n`` samples."""
    if not samples:
        raise ValueError("samples is empty")
    kinds = list(dict.fromkeys(k for k, _ in samples))
    lambdas = sorted({lam for _, lam in samples})
    fig = BookFigure(figsize=(2.9 * len(lambdas) + 0.6, 3.0 * len(kinds) + 0.4), layout="constrained")
    axes = fig.subplots(len(kinds), len(lambdas), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, lam in enumerate(lambdas):
            ax = axes[r, c]
            ax.set(xticks=[], yticks=[])
            if (kind, lam) in samples:
                ax.imshow(make_grid(samples[kind, lam][:n], padding=1), interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title("no term (baseline)" if lam == 0 else f"wavelet, λ = {lam:g}")
        axes[r, 0].set_ylabel(kind)
    fig.suptitle(title)
    return fig


def sweep_table(runs: Mapping[tuple[str, float], object]) -> dict[str, Any]:
    """``{"header", "rows", "formats"}`` for :func:`spectral_lib.book.table` (``book.table(**...)``): one row per sweep run (objects with
    ``prediction_type``, ``lambda_spec``, ``metrics`` and ``history``, e.g.
    :class:`~spectral_lib.integrations.diffusers_runs.RunSummary`): the crispness metrics and the ratio of the
    spectral term to the pointwise loss at the last logged step (blank for the baselines)."""
    header = ["prediction type", "λ", "binary_share", "contrast", "spectral / pointwise (last step)"]
    rows = []
    for run in runs.values():
        end = run.history[-1]
        scale = end["spectral"] / end["diffusion"] if "spectral" in end else "–"
        rows.append((run.prediction_type, run.lambda_spec, run.metrics["binary_share"], run.metrics["contrast"],
                     scale))
    return {"header": header, "rows": rows, "formats": ["", "g", ".2f", ".2f", ".1f"]}
