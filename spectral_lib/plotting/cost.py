"""Figures and tables of chapter 10 (what it costs): the regularizers' overhead against image side and batch size,
the cost per pixel of the network's step and of the terms alone, and the tables the chapter shows.

Rows are those of :func:`spectral_lib.bench.steps.overhead_sweep` (steps), :func:`spectral_lib.bench.losses.
loss_scaling` (losses alone) and :func:`spectral_lib.experiments.cost.wavelet_paths`. Figures are
:class:`~spectral_lib.plotting.core.BookFigure` s (no ``pyplot`` state) with titles, axis labels and units; tables
are ``{"header", "rows", "formats"}`` for :func:`spectral_lib.book.table` (``book.table(**...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from spectral_lib.bench.steps import OVERHEAD_TARGETS
from spectral_lib.plotting.core import BookFigure

__all__ = ["label", "overhead", "per_pixel", "overhead_table", "paths_table"]

Rows = Sequence[dict[str, Any]]


def label(regularizer: str) -> str:
    """The regularizer's name in the book's figures (``DISPLAY_NAMES`` of the ablation chapter)."""
    from spectral_lib.experiments.ablation import DISPLAY_NAMES

    return DISPLAY_NAMES.get(regularizer, regularizer)


def _regularizers(rows: Rows) -> list[str]:
    return [n for n in dict.fromkeys(r["regularizer"] for r in rows) if n != "none"]


def _sweeps(rows: Rows, batch_size: int, sweep_size: int) -> tuple[list[dict], list[dict]]:
    size_rows = [r for r in rows if r["batch_size"] == batch_size]
    batch_rows = [r for r in rows if r["size"] == sweep_size]
    if not size_rows or not batch_rows:
        raise ValueError(f"rows hold no size sweep at batch {batch_size} or no batch sweep at side {sweep_size}")
    return size_rows, batch_rows


def _plot_sweep(ax, rows: Rows, key: str, share: bool) -> None:
    names = _regularizers(rows)
    for i, name in enumerate(names):
        mine = sorted((r for r in rows if r["regularizer"] == name), key=lambda r: r[key])
        x = [r[key] * (1 + 0.03 * (i - (len(names) - 1) / 2)) for r in mine]  # a small shift keeps bars apart
        if share:
            ax.plot(x, [100 * r["term_share"] for r in mine], marker="o", label=label(name))
        else:
            y = [100 * (r["ratio_paired"] - 1) for r in mine]
            low = [v - 100 * (r["ratio_q25"] - 1) for v, r in zip(y, mine)]
            high = [100 * (r["ratio_q75"] - 1) - v for v, r in zip(y, mine)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label(name))
    ticks = sorted({r[key] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.axhline(0, color="0.5", lw=0.8)


def overhead(rows: Rows, *, batch_size: int, sweep_size: int, where: str,
             target: float | None = OVERHEAD_TARGETS["cpu"]) -> Figure:
    """2 x 2 panels: top, the extra step time in % (median and quartiles of the paired ratios) against the image
    side (batch ``batch_size``) and the batch size (side ``sweep_size``); bottom, the term's share of the step.
    ``target``: a dashed line at our CPU target (``None``: none)."""
    size_rows, batch_rows = _sweeps(rows, batch_size, sweep_size)
    fig = BookFigure(figsize=(12, 8.5), layout="constrained")
    axes = fig.subplots(2, 2)
    xlabels = (f"image side (pixels), batch {batch_size}", f"batch size (images of {sweep_size}×{sweep_size})")
    for col, (sweep, key) in enumerate(((size_rows, "size"), (batch_rows, "batch_size"))):
        _plot_sweep(axes[0, col], sweep, key, share=False)
        _plot_sweep(axes[1, col], sweep, key, share=True)
        if target is not None:
            axes[0, col].axhline(100 * target, color="C3", ls="--", lw=1, label=f"{target:.0%} (our CPU target)")
        for row in (0, 1):
            axes[row, col].set_xlabel(xlabels[col])
            axes[row, col].set_ylabel(("extra step time (%), median and quartiles",
                                       "spectral term's share of the step (%)")[row])
            axes[row, col].set_title(f"{('whole step', 'the term alone')[row]}, by {('image side', 'batch')[col]}",
                                     fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Cost of each regularizer on {where}: the whole step (top) and the term alone (bottom)")
    return fig


def per_pixel(loss_rows: Rows, step_rows: Rows, *, batch_size: int, shown: Sequence[str] | None = None) -> Figure:
    """Time per pixel and image (ns) against the pixels per image, log-log: each loss alone (``loss_rows``,
    names in ``shown``, default all but the audio ones) and the training step without a term (``step_rows`` of the
    size sweep at ``batch_size``)."""
    shown = list(shown) if shown is not None else [n for n in dict.fromkeys(r["loss"] for r in loss_rows)
                                                   if "audio" not in n and n != "mrstft"]
    net = sorted((r for r in step_rows if r["regularizer"] == "none" and r["batch_size"] == batch_size),
                 key=lambda r: r["size"])
    if not net:
        raise ValueError(f"step_rows hold no step without a term at batch {batch_size}")
    fig = BookFigure(figsize=(11, 5), layout="constrained")
    ax = fig.subplots()
    for name in shown:
        mine = sorted((r for r in loss_rows if r["loss"] == name), key=lambda r: r["pixels"])
        if not mine:
            raise ValueError(f"no loss rows named {name!r}")
        ax.plot([r["pixels"] for r in mine], [1e6 * r["ms"] / (r["shape"][0] * r["pixels"]) for r in mine],
                marker="o", label=f"{name}, loss alone")
    ax.plot([r["size"] ** 2 for r in net], [1e6 * r["ms"] / (r["batch_size"] * r["size"] ** 2) for r in net],
            marker="s", color="k", lw=2, label=f"training step without a term ({net[0]['network']} UNet)")
    ax.set(xscale="log", yscale="log", xlabel="pixels per image N", ylabel="time per pixel and image (ns)",
           title="Cost per pixel: the network's step against the spectral terms alone")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def overhead_table(rows: Rows, key: str = "size") -> dict[str, Any]:
    """One row per regularizer, one column per value of ``key`` (``"size"`` or ``"batch_size"``): the median
    ratio to the plain step with its quartiles, and the term's share; a first row gives the plain step in ms."""
    columns = sorted({r[key] for r in rows})
    cell = {(r["regularizer"], r[key]): r for r in rows}
    title = {"size": "image side", "batch_size": "batch"}.get(key, key)
    header = [title, *[str(c) for c in columns]]
    body: list[tuple] = [("step without a term (ms)", *(f"{cell['none', c]['ms']:.0f}" for c in columns))]
    for name in _regularizers(rows):
        body.append((label(name), *(
            f"{cell[name, c]['ratio_paired']:.3f} ({cell[name, c]['ratio_q25']:.2f}–{cell[name, c]['ratio_q75']:.2f});"
            f" {cell[name, c]['term_share']:.1%}" for c in columns)))
    return {"header": header, "rows": body, "formats": [""] * len(header)}


def paths_table(rows: Rows) -> dict[str, Any]:
    """One row per (wavelet, size) of :func:`~spectral_lib.experiments.cost.wavelet_paths`: fastest and median
    times of both DWT paths and the speed-up of the fastest rounds (convolutions over matrices)."""
    header = ["wavelet loss, forward + backward", "input", "convolutions: fastest (median), ms",
              "matrices: fastest (median), ms", "speed-up (fastest)"]
    body = [(r["wavelet"], "×".join(str(s) for s in r["shape"]), f"{r['plain_min']:.2f} ({r['plain_ms']:.2f})",
             f"{r['ours_min']:.2f} ({r['ours_ms']:.2f})", f"{r['speedup_min']:.1f}×") for r in rows]
    return {"header": header, "rows": body, "formats": [""] * len(header)}
