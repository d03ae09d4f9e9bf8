"""The cost chapter's measurements (book chapter 10, ``book/10_cost.ipynb``): live, and the shipped ``cpu`` reference.

A benchmark measures the machine it runs on, so the chapter always times afresh, at its profile, with the
benchmark's own functions (:mod:`spectral_lib.bench.steps`, :mod:`spectral_lib.bench.losses`). Findings that only
hold for the book's ``cpu`` networks are quoted from a *reference*: the same measurement made at ``cpu`` on the
build machine and shipped in ``results/cpu/10_cost/`` (one JSON entry per measurement, keyed by the bench profile
and the device type). :func:`measure` does both::

    switch = ShippedResults(CHAPTER, profile, retrain=retrain)
    live, reference = measure(switch, "overhead", lambda: steps.overhead_sweep(profile, device=device),
                              key=bench_key("cpu", device))

At ``cpu`` a live measurement becomes the reference when ``retrain`` is set (``make book RETRAIN=1``) or when none
is shipped for this key yet; at every profile the shipped reference is returned (``None`` while there is none).

:func:`wavelet_paths` times the wavelet losses through their two DWT paths (dense matrices, the library's default
up to ``DENSE_MAX_SIZE`` pixels a side, and ptwt's convolutions) with the bench's own comparison,
:func:`spectral_lib.bench.implementations.compare` of :func:`~spectral_lib.bench.implementations.wavelet_comparisons`
(``ours_*``: matrices, ``plain_*``: convolutions, ``speedup``), at the bench profile's sizes.
:func:`overhead_summary` and :func:`paths_summary` give the numbers the prose quotes.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from spectral_lib.bench.steps import OVERHEAD_TARGETS

__all__ = [
    "CHAPTER",
    "TARGET_CPU",
    "MISSING_REFERENCE",
    "bench_key",
    "measure",
    "reference_note",
    "wavelet_paths",
    "overhead_summary",
    "paths_summary",
    "pixel_ratio",
]

CHAPTER = "10_cost"
TARGET_CPU = OVERHEAD_TARGETS["cpu"]
"""Our target for the extra cost of a spectral term on a CPU, as a share of a training step: the bench's own
(:data:`spectral_lib.bench.steps.OVERHEAD_TARGETS`, which ``python -m spectral_lib.bench`` prints as a ratio)."""


MISSING_REFERENCE = ("No reference measurement is shipped yet: run this page at <code>profile = \"cpu\"</code> on a "
                     "CPU (it ships its own measurement, or a new one with <code>retrain = True</code>), then commit "
                     "<code>results/cpu/10_cost</code>.")
"""The note the chapter shows while no ``cpu`` reference is shipped."""


def bench_key(profile: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """What decides a measurement besides the machine: the bench profile's values and the device type."""
    from spectral_lib.bench.steps import get_bench_profile

    import json

    key = {"bench": dataclasses.asdict(get_bench_profile(profile)), "device": torch.device(device).type}
    return json.loads(json.dumps(key))  # as stored: tuples become lists


def measure(switch: Any, name: str, compute: Callable[[], Any], *, key: Any, ship: bool = True) -> tuple[Any, Any]:
    """``(live, reference)``: ``compute()`` run now, and the shipped ``cpu`` measurement ``name``.

    Args:
        switch: the chapter's :class:`~spectral_lib.experiments.shipped.ShippedResults`.
        name: the shipped entry (``results/cpu/10_cost/<name>.json``).
        compute: the measurement (JSON-able rows).
        key: :func:`bench_key` of the reference (``"cpu"`` profile): a shipped entry with another key is not used.
        ship: whether this live measurement may become the reference (pass ``False`` when it did not run on a
            CPU: the reference is the ``cpu`` profile on a CPU).

    At ``cpu`` (and with ``ship``) the live rows are shipped as the new reference when ``switch.retrain`` is set or
    when no current reference exists. Returns ``reference = None`` when there is none (the page says so).
    """
    live = compute()
    store = switch.store
    current = store.has(name) and store.stale_reason(name, key=key) is None
    if switch.shipping and ship and (switch.retrain or not current):
        store.save_json(name, live, key=key)
        current = True
    reference = store.load_json(name, on_stale="ignore") if current else None
    return live, reference


def reference_note(store: Any, name: str) -> str:
    """One HTML sentence: which commit, date and machine made the shipped measurement ``name``."""
    import html

    entry = store.entry(name)
    changes = " + local changes" if entry.get("dirty") else ""
    return (f"The reference numbers were measured at the <code>cpu</code> profile at commit "
            f"<code>{html.escape(str(entry.get('commit')))}</code>{changes} on {html.escape(str(entry.get('date')))}"
            f" ({html.escape(str(entry.get('hardware')))}, {entry.get('threads')} torch thread(s)).")


def wavelet_paths(profile: str, *, device: str | torch.device = "cpu",
                  wavelets: Sequence[str] = ("haar", "bior1.3")) -> list[dict[str, Any]]:
    """Forward + backward of each wavelet loss through dense matrices (``ours``) and through ptwt's convolutions
    (``plain``), timed interleaved by :func:`spectral_lib.bench.implementations.compare` at every image side of the
    bench profile's size sweep, batch ``loss_batch``, ``loss_repeats`` rounds, one channel: the comparison that
    ``python -m spectral_lib.bench.implementations --kinds wavelet`` prints.

    Returns:
        One dict per (size, wavelet): ``name``, ``wavelet``, ``size``, ``shape``, ``ours_ms`` / ``plain_ms``
        (medians), ``ours_min`` / ``plain_min`` (fastest rounds), ``speedup`` (``plain_ms / ours_ms``),
        ``speedup_min`` (of the fastest rounds), ``clock``, ``device``, ``threads``.
    """
    from spectral_lib.bench import implementations
    from spectral_lib.bench.steps import get_bench_profile

    bench = get_bench_profile(profile)
    cases = implementations.wavelet_comparisons(bench.sizes, wavelets=wavelets, batch=bench.loss_batch)
    return implementations.compare(cases, repeats=bench.loss_repeats, device=device)


def overhead_summary(rows: Sequence[dict[str, Any]], profile: str,
                     regularizers: Sequence[str] | None = None) -> dict[str, float]:
    """The numbers the prose quotes from :func:`~spectral_lib.bench.steps.overhead_sweep` rows of ``profile``.

    Over ``regularizers`` (default: the paper's, :data:`~spectral_lib.spectral.PAPER_REGULARIZERS`) on the size
    sweep (batch ``batch_size`` of the bench profile):

    * ``ratio_lo`` / ``ratio_hi``: the smallest and largest median step ratio (step with the term over without);
    * ``size_small`` / ``size_large``: the smallest and largest image side; ``share_small_lo`` / ``_hi`` and
      ``share_large_lo`` / ``_hi``: the range of the terms' shares of the step there; ``share_max_rest``: the
      largest share at every side but the smallest (``nan`` with a single side);
    * ``size_mid``, ``share_mid_lo`` / ``_hi``: the same at the middle side of the sweep;
    * ``step_ms_small`` / ``step_ms_large``: the median step without a term at those sides;
    * ``falls``: 1.0 when every regularizer's share is lower at the largest side than at the smallest, else 0.0.
    """
    from spectral_lib.bench.steps import get_bench_profile
    from spectral_lib.spectral import PAPER_REGULARIZERS

    bench = get_bench_profile(profile)
    names = tuple(regularizers or PAPER_REGULARIZERS)
    sweep = [r for r in rows if r["batch_size"] == bench.batch_size]
    terms = [r for r in sweep if r["regularizer"] in names]
    if not terms:
        raise ValueError(f"no rows of the size sweep (batch {bench.batch_size}) for {names}")
    sizes = sorted({r["size"] for r in terms})
    small, large, mid = sizes[0], sizes[-1], sizes[len(sizes) // 2]

    def shares(size: int) -> list[float]:
        return [r["term_share"] for r in terms if r["size"] == size]

    def step_ms(size: int) -> float:
        return next(r["ms"] for r in sweep if r["size"] == size and r["regularizer"] == "none")

    share_of = {(r["regularizer"], r["size"]): r["term_share"] for r in terms}
    rest = [r["term_share"] for r in terms if r["size"] != small]
    return {
        "ratio_lo": min(r["ratio_paired"] for r in terms), "ratio_hi": max(r["ratio_paired"] for r in terms),
        "size_small": float(small), "size_large": float(large),
        "share_small_lo": min(shares(small)), "share_small_hi": max(shares(small)),
        "share_large_lo": min(shares(large)), "share_large_hi": max(shares(large)),
        "size_mid": float(mid), "share_mid_lo": min(shares(mid)), "share_mid_hi": max(shares(mid)),
        "share_max_rest": max(rest) if rest else float("nan"),
        "step_ms_small": step_ms(small), "step_ms_large": step_ms(large),
        "falls": float(all(share_of[n, large] < share_of[n, small] for n in names if (n, small) in share_of)),
    }


def paths_summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """From :func:`wavelet_paths` rows: ``speedup_lo`` / ``speedup_hi`` (of the fastest rounds, over every wavelet
    and size), ``speedup_median``, and ``size_small`` / ``size_large`` (the sides timed)."""
    if not rows:
        raise ValueError("no wavelet path rows")
    speedups = [r["speedup_min"] for r in rows]
    return {"speedup_lo": min(speedups), "speedup_hi": max(speedups), "speedup_median": statistics.median(speedups),
            "size_small": float(min(r["size"] for r in rows)), "size_large": float(max(r["size"] for r in rows))}


def pixel_ratio(loss_rows: Sequence[dict[str, Any]], step_rows: Sequence[dict[str, Any]], batch_size: int) -> dict:
    """How many times more the training step without a term costs per pixel than the most expensive image loss
    alone (MSE excluded), at the largest image side timed in both (:func:`~spectral_lib.bench.losses.loss_scaling`
    rows and the size sweep's steps at ``batch_size``). Returns ``{"ratio", "size", "loss"}``."""
    steps = {r["size"]: r for r in step_rows if r["regularizer"] == "none" and r["batch_size"] == batch_size}
    losses = [r for r in loss_rows if r["size"] in steps and not r["loss"].startswith("mse") and r["loss"] != "mrstft"]
    if not losses:
        raise ValueError("no image side is timed both as a step and as a loss alone")
    size = max(r["size"] for r in losses)
    worst = max((r for r in losses if r["size"] == size), key=lambda r: r["ms"] / r["shape"][0])
    step = steps[size]
    per_image = (step["ms"] / step["batch_size"]) / (worst["ms"] / worst["shape"][0])
    return {"ratio": float(per_image), "size": float(size), "loss": worst["loss"]}
