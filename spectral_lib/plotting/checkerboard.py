"""Figures and tables of chapters 5 and 6 (the checkerboard experiment and its ablation).

Figures (each a :class:`~spectral_lib.plotting.core.BookFigure` with titles, axis labels and units, sized for the
book's page, about 10 inches wide at most, so that nothing is shrunk into illegibility):

- :func:`grid_rows`: panels of sample grids in rows, each titled, sized to the grids' aspect (no empty bands);
- :func:`row_profiles`: one row of pixels of one sample per model against its nearest ideal board;
- :func:`board_spectra`: radially averaged power spectra with the edge cut-off marked;
- :func:`power_maps`: mean 2-D power spectra on one log colour scale;
- :func:`lambda_tradeoff`, :func:`pointwise_price`: scores and the pointwise loss against λ;
- :func:`loss_curves`: a logged training loss against the step.

Tables are returned as ``{"header", "rows", "formats"}`` for :func:`spectral_lib.book.table` (``book.table(**t)``):
:func:`setup_table` (what a checkerboard profile trains), :func:`runs_table` (where each run came from),
:func:`scores_table` (the six scores of :func:`~spectral_lib.experiments.ablation.checkerboard_scores` with leading
and trailing columns) and :func:`seed_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from spectral_lib.plotting.core import BookFigure, make_grid, plot_radial_spectra

__all__ = [
    "SCORE_COLUMNS",
    "setup_table",
    "runs_table",
    "scores_table",
    "sweep_table",
    "sampler_table",
    "seed_table",
    "grid_rows",
    "row_profiles",
    "board_spectra",
    "power_maps",
    "lambda_tradeoff",
    "pointwise_price",
    "loss_curves",
]

SCORE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("hf_ratio", "HF ratio (1 = data)", ".2f"),
    ("spectral_distance", "spectral distance (decades)", ".2f"),
    ("binary_share", "near ±1", ".2f"),
    ("ideal_agreement", "agreement", ".3f"),
    ("clean_share", "clean boards", ".2f"),
    ("contrast", "contrast", ".2f"),
)
"""``(score key, column title, format)`` of the chapters' score tables, in order."""

COMPACT_SCORES: tuple[str, ...] = ("binary_share", "ideal_agreement", "clean_share", "spectral_distance")
"""The scores of chapter 6's wider tables (the page has room for about eight columns)."""

_TITLE_IN = 0.2  # inches for one line of a panel title (9 pt)
_SUPTITLE_IN = 0.55  # the two-line figure title
_PAD_IN = 0.08  # padding around each panel


def _wrap(title: str, width_in: float, *, per_inch: float = 13) -> str:
    """``title`` broken into lines that fit ``width_in`` inches (9 pt text: about 13 characters an inch)."""
    import textwrap

    return "\n".join(textwrap.fill(part, max(8, int(width_in * per_inch))) for part in title.split("\n"))


# ------------------------------------------------------------------------------------------------ tables


def setup_table(config: Any, parameters: int) -> dict[str, list]:
    """What a checkerboard profile trains: data, network (``parameters`` weights), formulation, budget, λ, sampling.

    Args:
        config: the profile's :class:`~spectral_lib.experiments.profiles.ExperimentConfig`.
        parameters: the network's number of parameters.
    """
    data = config.data
    colours = {None: "-1 and +1 (fixed: the data range)",
               "random": "drawn per image: low ~ U(-1, -0.2), high ~ U(0.2, 1)"}.get(data.get("colours"),
                                                                                  str(data.get("colours")))
    offsets = "uniform in [0, 2s)² per image" if data.get("random_offsets") else "none"
    model = config.model
    width = f", {model['base_channels']} base channels" if "base_channels" in model else ""
    rows = [
        ("images", f"{data['size']}×{data['size']}, {data['channels']} channel(s), values in [-1, 1]"),
        ("check size s", f"drawn from {list(data['check_sizes'])} pixels"),
        ("offsets", offsets),
        ("colours", colours),
        ("network", f"UNet ({model.get('preset')} preset{width}), {parameters / 1e6:.2f} M parameters"),
        ("formulation", f"{config.formulation.upper()}; spectral term on the clean-signal estimate x̂₀"),
        ("training", f"{config.steps} steps, batch {config.batch_size}, AdamW lr {config.lr:g}, "
                     f"EMA {config.ema_decay}"),
        ("λ", f"{config.lambda_spec:g}, the same for every noise level (the paper's 'unweighted')"),
        ("sampling", f"{config.n_samples} samples, {config.sample_steps} steps, EMA weights, seed {config.seed}"),
    ]
    return {"header": ["", f"profile {config.profile}"], "rows": [list(r) for r in rows], "formats": ["", ""]}


def runs_table(runs: Mapping[str, Any], sources: Mapping[str, str]) -> dict[str, list]:
    """Where each run came from: ``{model name: RunResult}`` and ``{run folder name: "shipped" | "trained now" |
    ...}`` (:attr:`~spectral_lib.experiments.checkerboard_results.CheckerboardStudy.sources`), with the run's own
    wall time (training, sampling and evaluation, on the machine that trained it)."""
    rows = [[name, sources.get(run.out_dir.name, "?"), run.wall_time / 60] for name, run in runs.items()]
    return {"header": ["model", "from", "wall time (min)"], "rows": rows, "formats": ["", "", ".1f"]}


def scores_table(
    rows: Sequence[tuple[Sequence[Any], Mapping[str, float], Sequence[Any]]] | Mapping[str, Mapping[str, float]],
    *,
    leading: Sequence[tuple[str, str]] = (("", ""),),
    trailing: Sequence[tuple[str, str]] = (),
    keys: Sequence[str] | None = None,
) -> dict[str, list]:
    """A table of scores: per row its leading cells (e.g. the model's name, λ), the six scores of
    :data:`SCORE_COLUMNS`, then its trailing cells (e.g. a wall time).

    Args:
        rows: ``(leading cells, scores, trailing cells)`` per row; a row may leave trailing cells empty (``()``).
            A mapping ``{name: scores}`` gives one row per name (one leading column).
        leading, trailing: ``(title, format)`` of the extra columns.
        keys: the scores shown (default all six of :data:`SCORE_COLUMNS`), in :data:`SCORE_COLUMNS`' order.

    Returns:
        ``{"header", "rows", "formats"}`` for :func:`spectral_lib.book.table`.
    """
    if isinstance(rows, Mapping):
        rows = [((name,), scores, ()) for name, scores in rows.items()]
    if not rows:
        raise ValueError("scores_table needs at least one row")
    unknown = sorted(set(keys or ()) - {k for k, _, _ in SCORE_COLUMNS})
    if unknown:
        raise ValueError(f"unknown score keys {unknown}; known: {[k for k, _, _ in SCORE_COLUMNS]}")
    columns = [c for c in SCORE_COLUMNS if keys is None or c[0] in keys]
    header = [t for t, _ in leading] + [t for _, t, _ in columns] + [t for t, _ in trailing]
    formats = [f for _, f in leading] + [f for _, _, f in columns] + [f for _, f in trailing]
    table = []
    for i, (lead, scores, trail) in enumerate(rows):
        lead, trail = list(lead), list(trail) or [""] * len(trailing)
        if len(lead) != len(leading) or len(trail) != len(trailing):
            raise ValueError(f"row {i} has {len(lead)} leading and {len(trail)} trailing cells for "
                             f"{len(leading)} and {len(trailing)} columns")
        missing = [k for k, _, _ in columns if k not in scores]
        if missing:
            raise ValueError(f"row {i} lacks the scores {missing}")
        table.append(lead + [scores[k] for k, _, _ in columns] + trail)
    return {"header": header, "rows": table, "formats": formats}


def sweep_table(rows: Sequence[tuple[str, float, Mapping[str, float], float, float]]) -> dict[str, list]:
    """Chapter 6's λ sweep: per row ``(regularizer, λ, scores, pointwise loss at the end of training, wall time)``;
    the :data:`COMPACT_SCORES` and the loss are shown (the wall time is not: chapter 5 shows it)."""
    return scores_table([((name, lam), scores, (loss,)) for name, lam, scores, loss, _ in rows],
                        leading=[("regularizer", ""), ("λ", "g")], trailing=[("pointwise loss", ".4f")],
                        keys=COMPACT_SCORES)


def sampler_table(rows: Sequence[tuple[str, str, Mapping[str, float], float]]) -> dict[str, list]:
    """Chapter 6's formulation comparison: per row ``(formulation and sampler, regularizer, scores, pointwise loss
    of the network at the end of training)``."""
    return scores_table([((sampler, name), scores, (loss,)) for sampler, name, scores, loss in rows],
                        leading=[("formulation, sampler", ""), ("regularizer", "")],
                        trailing=[("pointwise loss of the network", ".4f")], keys=COMPACT_SCORES)


def seed_table(
    check: Mapping[str, Mapping[int, Mapping[str, float]]],
    keys: Sequence[tuple[str, str, str]] = (("clean_share", "clean boards", ".2f"),
                                             ("ideal_agreement", "agreement", ".3f")),
) -> dict[str, list]:
    """The seed check as a table: one row per model, per score one cell ``"a / b / c / –"`` over every seed of
    the check (``–`` where a model was not trained with that seed).

    Args:
        check: ``{model name: {seed: scores}}``.
        keys: ``(score key, title, format)`` of the columns.
    """
    if not check:
        raise ValueError("seed_table needs at least one model")
    seeds = sorted({s for per_seed in check.values() for s in per_seed})
    header = [""] + [f"{title}, seeds {' / '.join(map(str, seeds))}" for _, title, _ in keys]
    rows = []
    for name, per_seed in check.items():
        cells = [" / ".join(format(per_seed[s][k], fmt) if s in per_seed else "–" for s in seeds)
                 for k, _, fmt in keys]
        rows.append([name, *cells])
    return {"header": header, "rows": rows, "formats": [""] * len(header)}


# ------------------------------------------------------------------------------------------------ sample grids


def grid_rows(
    rows: Sequence[Sequence[tuple[str, torch.Tensor] | None]],
    title: str,
    *,
    nrow: int = 4,
    panel: float = 2.4,
    row_labels: Sequence[str] | None = None,
    max_width: float = 10.0,
) -> Figure:
    """Panels of sample grids in rows: ``rows[i][j] = (panel title, samples (B, C, H, W) in [-1, 1])`` or ``None``
    (an empty cell). Each panel tiles its samples ``nrow`` across; the figure's height follows the grids' aspect,
    so panels sit close together. ``row_labels`` name the rows on the left.

    Args:
        rows: the panels, row by row (rows may be shorter than the longest).
        title: the figure's title; the number of samples per panel and their size are added to it.
        nrow: samples across in each panel.
        panel: width of one panel in inches (less when ``max_width`` asks for it).
        max_width: the figure's largest width in inches, so that the page does not shrink it.
    """
    if not any(c is not None for r in rows for c in r):
        raise ValueError("grid_rows needs at least one panel")
    ncols = max(len(r) for r in rows)
    label_in = 0.35 if row_labels else 0.0
    panel = min(panel, (max_width - label_in) / ncols)
    rows = [[None if c is None else (_wrap(c[0], panel), c[1]) for c in r] for r in rows]
    cells = [c for r in rows for c in r if c is not None]
    first = torch.as_tensor(cells[0][1])
    grid = make_grid(first, nrow=nrow)
    aspect = grid.shape[0] / grid.shape[1]
    lines = max(c[0].count("\n") + 1 for c in cells)
    width = ncols * panel + label_in
    head = len(_wrap(title, width, per_inch=10).split("\n")) + 1 if width < 6 else 2
    height = len(rows) * ((panel - _PAD_IN) * aspect + lines * _TITLE_IN) + _SUPTITLE_IN * head / 2
    fig = BookFigure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = row[j] if j < len(row) else None
            if cell is None:
                ax.axis("off")
                continue
            name, samples = cell
            ax.imshow(make_grid(samples, nrow=nrow), interpolation="nearest")
            ax.set_title(name, fontsize=9)
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_labels:
            axes[i, 0].set_ylabel(_wrap(row_labels[i], (panel - _PAD_IN) * aspect, per_inch=11), fontsize=10)
    b, h, w = int(first.shape[0]), int(first.shape[-2]), int(first.shape[-1])
    width = fig.get_size_inches()[0]
    about = f"(each panel: {b} samples, {min(nrow, b)} across, {h}×{w} px each)"
    fig.suptitle(_wrap(title, width, per_inch=10) + "\n" + _wrap(about, width, per_inch=10), fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------------ pixels and spectra


def row_profiles(
    samples: Mapping[str, torch.Tensor],
    check_sizes: Sequence[int] = (4,),
    *,
    index: int = 0,
    row: int | None = None,
    ncols: int = 3,
) -> Figure:
    """One row of pixels of sample ``index`` of each model (``{name: (B, 1, H, W)}``) against the same row of its
    nearest ideal board (dashed square wave): a crisp board jumps from -1 to +1 in one pixel, a blurred one ramps.

    ``row`` defaults to ``H // 2 + 1`` (inside a check for even check sizes). Panels ``ncols`` across, each large
    enough to read the pixel values.
    """
    from spectral_lib.data.checkerboard import nearest_ideal_checkerboard

    if not samples:
        raise ValueError("row_profiles needs at least one model's samples")
    size = int(next(iter(samples.values())).shape[-1])
    row = size // 2 + 1 if row is None else int(row)
    nrows = math.ceil(len(samples) / ncols)
    fig = BookFigure(figsize=(3.3 * ncols, 2.7 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    columns = np.arange(size)
    for ax, (name, x) in zip(axes.flat, samples.items()):
        board = torch.as_tensor(x)[index : index + 1].float()
        ideal = nearest_ideal_checkerboard(board, check_sizes).board
        ax.step(columns, ideal[0, 0, row].numpy(), where="mid", color="k", ls="--", lw=1.2, label="nearest ideal")
        ax.plot(columns, board[0, 0, row].numpy(), "o-", ms=3.5, lw=1.2, color="C3", label="sample")
        ax.set(title=name, xlabel="column (px)", ylim=(-1.2, 1.2))
        ax.title.set_fontsize(10)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(samples):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"pixel value (row {row})")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)
    fig.suptitle(f"Row {row} of sample {index} of each model, against its nearest ideal board")
    return fig


def board_spectra(spectra: Mapping[str, tuple[torch.Tensor, torch.Tensor]], cutoff: float, *, floor: float,
                  reference: str = "data") -> Figure:
    """Radially averaged power spectra (``{name: (freqs, power)}``, power already floored) with the edge cut-off
    ``cutoff`` (cycles/pixel) marked; ``floor`` is named in the title (relative to the data's variance)."""
    fig = plot_radial_spectra(spectra, reference=reference, size=(8.0, 4.8),
                              title=f"Radially averaged power spectrum (floor {floor:g} × data variance)")
    ax = fig.axes[0]
    ax.axvline(cutoff, color="0.4", ls=":", lw=1.5, label="edge cut-off")
    ax.legend(fontsize=9, ncols=2)
    return fig


def power_maps(maps: Mapping[str, torch.Tensor], floor: float, *, ncols: int = 4) -> Figure:
    """Mean 2-D power spectra ``{name: (H, W)}`` (zero frequency at the centre, as
    :func:`~spectral_lib.experiments.ablation.mean_power_map`) on one log colour scale from ``floor`` up."""
    if not maps:
        raise ValueError("power_maps needs at least one map")
    size = int(next(iter(maps.values())).shape[-1])
    vmax = max(float(m.max()) for m in maps.values())
    extent = (-0.5, 0.5 - 1 / size, 0.5 - 1 / size, -0.5)  # cycles/pixel
    nrows = math.ceil(len(maps) / ncols)
    fig = BookFigure(figsize=(2.3 * ncols + 0.8, 2.4 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    image = None
    for ax, (name, power) in zip(axes.flat, maps.items()):
        image = ax.imshow(np.log10(power.clamp_min(floor).numpy()), extent=extent, vmin=np.log10(floor),
                          vmax=np.log10(vmax), cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for ax in axes.flat[len(maps):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("$f_x$ (cycles/pixel)")
    for ax in axes[:, 0]:
        ax.set_ylabel("$f_y$ (cycles/pixel)")
    fig.colorbar(image, ax=axes, label="log10 power (a.u.)", shrink=0.85)
    fig.suptitle("Mean 2-D power spectrum (log scale; zero frequency at the centre)")
    return fig


# ------------------------------------------------------------------------------------------------ λ and losses


def lambda_tradeoff(
    curves: Mapping[str, Sequence[tuple[float, Mapping[str, float], float]]],
    baseline: tuple[Mapping[str, float], float],
    *,
    panels: Sequence[tuple[str, str]] = (("binary_share", "near ±1 (crisp: higher)"),
                                         ("hf_ratio", "HF ratio (data = 1)"),
                                         ("clean_share", "clean boards (faithful: higher)"),
                                         ("spectral_distance", "spectral distance (decades)")),
    title: str = "The λ trade-off",
) -> Figure:
    """Scores and the pointwise loss against λ (log axis): ``curves = {regularizer: [(λ, scores, loss), ...]}``,
    ``baseline = (scores, loss)`` drawn dashed. One panel per ``(score key, title)`` of ``panels``, then the loss."""
    if not curves:
        raise ValueError("lambda_tradeoff needs at least one curve")
    count = len(panels) + 1
    ncols = 3
    nrows = math.ceil(count / ncols)
    fig = BookFigure(figsize=(10.0, 3.1 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.flat)
    for name, points in curves.items():
        points = sorted(points, key=lambda p: p[0])
        lams = [p[0] for p in points]
        for ax, (key, _) in zip(flat, panels):
            ax.plot(lams, [p[1][key] for p in points], "o-", label=name)
        flat[len(panels)].plot(lams, [p[2] for p in points], "o-", label=name)
    for ax, (key, label) in zip(flat, panels):
        ax.axhline(baseline[0][key], color="k", ls="--", lw=1, label="baseline")
        if key == "hf_ratio":
            ax.axhline(1.0, color="0.6", ls=":", lw=1, label="data")
        ax.set(xscale="log", xlabel="λ (log scale)", ylabel=label.split(" (")[0], title=label)
    loss_ax = flat[len(panels)]
    loss_ax.axhline(baseline[1], color="k", ls="--", lw=1, label="baseline")
    loss_ax.set(xscale="log", xlabel="λ (log scale)", ylabel="pointwise loss", title="pointwise loss, end of training")
    for ax in flat[count:]:
        ax.axis("off")
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=9)
    fig.suptitle(title)
    return fig


def pointwise_price(curves: Mapping[str, Sequence[tuple[float, float]]], baseline_loss: float) -> Figure:
    """The pointwise loss at the end of training relative to the baseline's, against λ: ``{regularizer: [(λ,
    loss), ...]}``."""
    fig = BookFigure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for name, points in curves.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] / baseline_loss for p in points], "o-", label=name)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="baseline")
    ax.set(xscale="log", xlabel="λ (log scale)", ylabel="pointwise loss / baseline's",
           title="The price of λ in the pointwise objective")
    ax.legend(fontsize=9)
    return fig


def loss_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], *, key: str = "diffusion",
                title: str = "The pointwise part of the training loss", ylabel: str = "pointwise loss") -> Figure:
    """``key`` of each run's training log (``{label: [log line, ...]}``) against the step, on a log scale."""
    fig = BookFigure(figsize=(7.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for label, history in histories.items():
        lines = [line for line in history if key in line]
        if lines:
            ax.plot([line["step"] for line in lines], [line[key] for line in lines], label=label)
            drawn += 1
    if not drawn:
        raise ValueError(f"no run's log has the key {key!r}")
    ax.set(yscale="log", xlabel="training step", ylabel=f"{ylabel} (log scale)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return fig
