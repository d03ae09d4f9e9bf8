"""The image chapter's tables and the numbers its prose quotes (book chapter 7, ``book/07_images.ipynb``).

Every table is ``{"header", "rows", "formats"}``, the keyword arguments of :func:`spectral_lib.book.table`
(``book.table(**report.fd_table(runs, per_seed))``); every number the prose quotes comes from this module's
functions (glued with :func:`spectral_lib.book.glue`): the paper's from :data:`~.profiles.PAPER_TABLE1` and its
neighbours (:func:`paper_numbers`), the offline findings from the shipped ``cpu`` results (:func:`findings`; NaN and
``"n/a"`` while they are not shipped), the settings from the profiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from spectral_lib.experiments.images.chapter import CpuResults, ImageRun
from spectral_lib.experiments.images.evaluation import mean_std, noise_verdict
from spectral_lib.experiments.images.profiles import (
    DATASETS,
    EDM_AUGMENT,
    OFFLINE_EXPERIMENT,
    PAPER_BEST,
    PAPER_CIFAR10_RANGE,
    PAPER_FINETUNE_STEPS,
    PAPER_TABLE1,
    Variant,
    edm_network_name,
    planned_runs,
    settings,
)
from spectral_lib.experiments.profiles import get_profile

__all__ = [
    "Table",
    "SHORT",
    "dataset_table",
    "offline_table",
    "paper_table",
    "paper_numbers",
    "power_law",
    "runs_table",
    "spectrum_groups",
    "fd_rows",
    "fd_table",
    "recipe_table",
    "edm_weights",
    "cost_table",
    "cost_numbers",
    "throughput_table",
    "findings",
    "listed",
    "compared",
]

Table = dict[str, Any]
"""``{"header": [...], "rows": [[...], ...], "formats": [...]}``, the arguments of :func:`spectral_lib.book.table`."""

SHORT: dict[Variant, str] = {
    Variant(): "base",
    Variant("fourier_amp"): "amp",
    Variant("fourier_amp_phase"): "eq15",
    Variant("wavelet"): "haar",
    Variant("wavelet_bior13"): "bior",
    Variant("fourier_amp_phase_safe"): "safe",
    Variant("fourier_amp", "formulation"): "amp_w",
    Variant("fourier_amp_phase", "formulation"): "eq15_w",
    Variant("wavelet", "formulation"): "haar_w",
    Variant("wavelet_bior13", "formulation"): "bior_w",
}
"""The ``cpu`` models' short names in glued numbers (``haar_d_fd``); the baseline at training seed 1 is ``seed1``."""


def _table(header: list[str], rows: list[list[Any]], formats: list[str]) -> Table:
    return {"header": header, "rows": rows, "formats": formats}


def listed(names: Iterable[str]) -> str:
    """``"none"``, ``"A"``, ``"A and B"``, ``"A, B and C"``: names for prose."""
    names = list(names)
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def compared(value: float, other: float, *, tolerance: float, lower: str = "lower than",
             higher: str = "higher than", same: str = "about the same as") -> str:
    """How ``value`` compares with ``other`` (within ``tolerance``: ``same``), for prose that cannot know the
    numbers in advance; ``"n/a"`` when either is NaN."""
    if math.isnan(value) or math.isnan(other):
        return "n/a"
    if abs(value - other) <= tolerance:
        return same
    return lower if value < other else higher


# ------------------------------------------------------------------------------------------------ set-up tables


def dataset_table() -> Table:
    """Table 1's data sets and the paper's fine-tuning settings (from :data:`~.profiles.DATASETS`)."""
    rows = []
    for name, spec in DATASETS.items():
        rows.append([spec.title, f"`{edm_network_name(name, 'vp')}`, `…-ve`", spec.sample_steps,
                     2 * spec.sample_steps - 1, spec.lr, spec.dropout, EDM_AUGMENT[name]])
    return _table(["data set", "NVIDIA's checkpoints", "Heun steps", "network calls (NFE)", "learning rate",
                   "dropout", "EDM's augmentation p"], rows, ["", "", "d", "d", ".0e", "g", "g"])


def _parameters(config: Any) -> int:
    from spectral_lib.experiments.train import build_model
    from spectral_lib.models.unet2d import count_parameters

    return count_parameters(build_model(config))


def offline_table(profiles: Iterable[str] = ("smoke", "cpu")) -> Table:
    """What the offline profiles train: stand-in images, the UNet's size, steps, batch, learning rate, Heun steps,
    samples per run and per sampling seed (from the profiles)."""
    rows = []
    for profile in profiles:
        config, chosen = get_profile(OFFLINE_EXPERIMENT, profile), settings(profile)
        standin = config.data["standin"]
        rows.append([profile, f"{standin['n']} at {config.data['resolution']} px", _parameters(config), config.steps,
                     config.batch_size, config.lr, config.sample_steps, config.n_samples,
                     f"{len(chosen.fd_seeds)} x {chosen.fd_samples}"])
    return _table(["profile", "stand-in images", "UNet parameters", "training steps", "batch", "learning rate",
                   "Heun steps", "samples per run", "sampling seeds x samples"], rows,
                  ["", "", ",d", "d", "d", "g", "d", "d", ""])


def paper_table() -> Table:
    """The paper's Table 1 as our notes hold it: baseline and best FID per data set and network, the gain; CIFAR-10's
    range of every row."""
    rows = []
    for (dataset, network), best in PAPER_BEST.items():
        base = PAPER_TABLE1[(dataset, network, "baseline")]
        rows.append([DATASETS[dataset].title, network.upper(), base, best, base - best])
    low, high = PAPER_CIFAR10_RANGE
    rows.append([DATASETS["cifar10"].title, "VP, VE", f"every row {low:.2f}–{high:.2f}", "—", "none beyond noise"])
    return _table(["data set", "network", "baseline FID", "best regularized FID", "gain"], rows,
                  ["", "", ".2f", ".2f", ".2f"])


def paper_numbers() -> dict[str, float]:
    """The paper's numbers the prose quotes: ``gain_min``/``gain_max`` (best row against the baseline, FFHQ and
    AFHQv2), ``ffhq_vp_base``/``ffhq_vp_best``, ``ffhq_ve_base``/``ffhq_ve_best``, ``cifar_low``/``cifar_high``,
    ``finetune_text``/``finetune_table`` (the fine-tune's two readings, in steps)."""
    gains = [PAPER_TABLE1[(d, n, "baseline")] - best for (d, n), best in PAPER_BEST.items()]
    out = {"gain_min": min(gains), "gain_max": max(gains), "cifar_low": PAPER_CIFAR10_RANGE[0],
           "cifar_high": PAPER_CIFAR10_RANGE[1], "finetune_text": PAPER_FINETUNE_STEPS["text"],
           "finetune_table": PAPER_FINETUNE_STEPS["table"]}
    for network in ("vp", "ve"):
        out[f"ffhq_{network}_base"] = PAPER_TABLE1[("ffhq", network, "baseline")]
        out[f"ffhq_{network}_best"] = PAPER_BEST[("ffhq", network)]
    return out


def recipe_table() -> Table:
    """NVIDIA's EDM recipe (upstream) against ours, per choice; every number from the library's constants and
    profiles (``gpu`` and ``full`` of FFHQ; the others differ only in the data set's settings)."""
    gpu, full = get_profile("ffhq", "gpu"), get_profile("ffhq", "full")
    table, text = PAPER_FINETUNE_STEPS["table"], PAPER_FINETUNE_STEPS["text"]
    augment = ", ".join(f"{DATASETS[d].title.split(' ')[0]} {p:g}" for d, p in EDM_AUGMENT.items())
    dropout = ", ".join(f"{s.title.split(' ')[0]} {s.dropout:g}" for s in DATASETS.values())
    tf32 = {p: "on" if settings(p).tf32 else "off" for p in ("gpu", "full")}
    rows = [
        ["data sets", "`dataset_tool.py` zips", "the same zips, made by our code (same order, names, Lanczos resize)"],
        ["fine-tune length",
         f"`--duration` in Mimg; the paper's table: {table:,} steps at batch 16, its text: {text} steps",
         f"`full`: {full.steps:,} steps; `gpu`: {gpu.steps:,} steps, to fit one session"],
        ["learning rate", "ramped from zero over 10 Mimg, also when fine-tuning",
         f"`full`: the same ramp ({full.warmup_steps:,} steps); `gpu`: warm-up over {gpu.warmup_steps} steps"],
        ["augmentation", f"the pipe the networks were trained with (p: {augment})",
         "none; the network's augment layer gets zero labels (it has no bias: the same output)"],
        ["EMA", "half-life 500 kimg, ramped to 5 % of the images seen",
         f"warm-up (1 + n) / (10 + n), capped at decay {full.ema_decay:.6f} at `full` (the same half-life)"],
        ["dropout", f"{dropout}", "the same"],
        ["scale of the spectral term", "EDM's loss is a per-pixel sum; the paper does not say how its term is scaled",
         "both terms are per-pixel means (`LAMBDA_SPEC_READINGS` gives the other reading)"],
        ["FID sampling", "network float32, Heun in float64, per-image seeds and classes",
         "the same; fp16/bf16 autocast only when asked, and then the result files say so"],
        ["TF32", "off", f"`full` {tf32['full']}; `gpu` {tf32['gpu']}, for time (its result files say so)"],
        ["Inception-v3", "NVIDIA's pickled port of the TensorFlow graph",
         "torch-fidelity's port of the same graph (not compared by us)"],
    ]
    return _table(["choice", "NVIDIA's EDM (upstream)", "ours"], rows, ["", "", ""])


def edm_weights(formulation: Any, quantile: float = 0.01) -> dict[str, float]:
    """``lambda_EDM`` where training puts its pressure: ``sigma_low`` (the ``quantile`` of the training noise levels,
    ``ln sigma ~ N(P_mean, P_std^2)``), ``weight_low`` there and ``weight_one`` at ``sigma = 1``."""
    import torch
    from scipy.stats import norm

    sigma_low = math.exp(formulation.p_mean + formulation.p_std * float(norm.ppf(quantile)))
    weight = formulation.spectral_weight(torch.tensor([sigma_low, 1.0], dtype=torch.float64))
    return {"sigma_low": sigma_low, "weight_low": float(weight[0]), "weight_one": float(weight[1]),
            "quantile": quantile}


def power_law(freqs: Any, power: Any) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line ``ln power = slope ln f + intercept`` over every frequency bin
    but the DC (a power spectrum falling as ``f^slope``; natural photographs give about -2)."""
    f = np.asarray(freqs, dtype=np.float64)[1:]
    p = np.asarray(power, dtype=np.float64)[1:]
    if f.size < 2 or np.any(p <= 0):
        raise ValueError("power_law needs at least two positive bins beside the DC")
    slope, intercept = np.polyfit(np.log(f), np.log(p), 1)
    return float(slope), float(intercept)


def cost_table() -> Table:
    """GPU-hours of the ``full`` protocol per data set (:func:`~.results.full_cost`) and what the estimate rests on."""
    from spectral_lib.experiments.images.results import full_cost

    rows = []
    for name in DATASETS:
        cost = full_cost(name)
        rows.append([name, cost["images"], cost["steps"], cost["sampling_gpu_hours"], cost["training_gpu_hours"],
                     cost["gpu_hours"], cost["basis"]])
    return _table(["data set", "images sampled", "training steps", "sampling GPU-h", "training GPU-h",
                   "total GPU-h", "basis"], rows, ["", ",d", ",d", ",.0f", ",.0f", ",.0f", ""])


def cost_numbers() -> dict[str, float]:
    """The numbers the cost section quotes: ``fid_samples``, ``fid_seeds``, ``rows`` (Table 1's rows per network),
    ``networks``, ``images_m`` (millions of images sampled per data set), ``steps_per_row``, ``gpu_hours_min`` and
    ``gpu_hours_max`` over the data sets."""
    from spectral_lib.experiments.images.results import full_cost

    chosen, costs = settings("full"), [full_cost(name) for name in DATASETS]
    return {"fid_samples": chosen.fid_samples, "fid_seeds": len(chosen.fid_seeds), "rows": len(chosen.variants),
            "networks": len(chosen.networks), "images_m": costs[0]["images"] / 1e6,
            "steps_per_row": get_profile("ffhq", "full").steps, "gpu_hours_min": min(c["gpu_hours"] for c in costs),
            "gpu_hours_max": max(c["gpu_hours"] for c in costs)}


def throughput_table(root: Any = None) -> Table | None:
    """Our CPU timings of stand-ins of the real networks' size (``results/cpu/images/throughput.json`` of
    :mod:`~.throughput`), or ``None`` when none were measured."""
    import json

    from spectral_lib.experiments.shipped import results_root

    path = (root if root is not None else results_root()) / "cpu" / "images" / "throughput.json"
    if not path.is_file():
        return None
    measured = json.loads(path.read_text())
    rows = [[key.split("-")[0], row["parameters"] / 1e6, row["batch"], row["images_per_s"], row["steps_per_s"]]
            for key, row in measured["measured"].items()]
    return _table(["stand-in", "parameters (M)", "batch", "sampling images/s", "training steps/s", "threads"],
                  [[*row, measured["threads"]] for row in rows], ["", ".1f", "d", ".4f", ".3f", "d"])


# ------------------------------------------------------------------------------------------------ the runs


def runs_table(runs: Mapping[Any, ImageRun]) -> Table:
    """Per model: where it comes from, training steps and time, the loss at the end and the spectral term's share
    of it (the mean of the last logged values; blank for the baseline)."""
    rows = []
    for run in runs.values():
        spectral, diffusion = run.last("spectral"), run.last("diffusion")
        ratio = spectral / diffusion if run.variant.regularizer != "none" and diffusion else ""
        rows.append([run.label, run.source, int(run.metrics.get("steps", run.config.steps)),
                     run.metrics["train_time_s"], run.last("loss"), ratio])
    return _table(["model", "from", "training steps", "training (s)", "loss at the end",
                   "spectral term / EDM loss at the end"], rows, ["", "", "d", ".0f", ".3g", ".3g"])


def spectrum_groups(runs: Mapping[Any, ImageRun]) -> dict[str, list[str]]:
    """The panels of the spectrum figure: per network, ``{"unweighted (the paper's and ours)": [labels],
    "weighted by λ_EDM(σ)": [labels]}``, each led by that network's baseline (other training seeds of the baseline go
    with the unweighted models; an empty group is left out)."""
    groups: dict[str, list[str]] = {}
    for run in sorted(runs.values(), key=lambda r: (r.network or "", r.variant != Variant(), r.seed)):
        head = f"{run.network.upper()}, " if run.network else ""
        base = next(r.label for r in runs.values() if r.network == run.network and r.variant == Variant()
                    and r.seed == min(x.seed for x in runs.values() if x.network == run.network))
        kind = "weighted by λ_EDM(σ)" if run.variant.weighting == "formulation" else "unweighted"
        members = groups.setdefault(f"{head}{kind}", [base])
        if run.label not in members:
            members.append(run.label)
    return groups


def fd_rows(runs: Mapping[Any, ImageRun], per_seed: Mapping[str, Mapping[str, list[float]]]) -> list[dict[str, Any]]:
    """Per model: ``label``, ``variant``, ``seed``, ``fd``/``fd_std`` (mean and standard deviation over the sampling
    seeds), ``d_fd`` (against its network's baseline at the first training seed), ``verdict``
    (:func:`~.evaluation.noise_verdict`, with the baselines' training-seed gap as ``training_gap``), ``hf``/``hf_std``,
    and ``gap`` (that gap, ``None`` with one training seed)."""
    by_network: dict[Any, list[ImageRun]] = {}
    for run in runs.values():
        by_network.setdefault(run.network, []).append(run)
    rows = []
    for group in by_network.values():
        base = next(r for r in group if r.variant == Variant() and r.seed == min(g.seed for g in group))
        base_fd = per_seed[base.name]["fd_local"]
        gaps = [abs(mean_std(per_seed[r.name]["fd_local"])[0] - mean_std(base_fd)[0])
                for r in group if r.variant == Variant() and r is not base]
        gap = max(gaps) if gaps else None
        for run in group:
            values = per_seed[run.name]
            fd, fd_std = mean_std(values["fd_local"])
            hf, hf_std = mean_std(values["hf_energy_ratio"])
            d_fd, verdict = noise_verdict(values["fd_local"], base_fd,
                                          training_gap=None if run.variant == Variant() else gap)
            rows.append({"label": run.label, "variant": run.variant, "seed": run.seed, "name": run.name, "fd": fd,
                         "fd_std": fd_std, "d_fd": d_fd, "verdict": "" if run is base else verdict, "hf": hf,
                         "hf_std": hf_std, "gap": gap, "base": run is base})
    return rows


def fd_table(runs: Mapping[Any, ImageRun], per_seed: Mapping[str, Mapping[str, list[float]]],
             seeds: int, samples: int) -> Table:
    """FD on local features and the HF energy ratio per model, mean ± standard deviation over ``seeds`` sampling
    seeds of ``samples`` samples, with the difference to the baseline and its verdict."""
    rows = [[r["label"], f"{r['fd']:.3f} ± {r['fd_std']:.3f}", "" if r["base"] else f"{r['d_fd']:+.3f}",
             r["verdict"], f"{r['hf']:.3f} ± {r['hf_std']:.3f}"] for r in fd_rows(runs, per_seed)]
    return _table(["model", f"FD local ↓ ({seeds} seeds x {samples} samples)", "vs baseline", "verdict",
                   "HF energy ratio (1 = data)"], rows, [""] * 5)


# ------------------------------------------------------------------------------------------------ findings


def _nan_findings() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for short in [*SHORT.values(), "seed1"]:
        for key in ("fd", "fd_std", "d_fd", "hf", "ratio"):
            out[f"{short}_{key}"] = math.nan
        out[f"{short}_verdict"] = "n/a"
    for key in ("gap", "gap_se", "w_d_min", "w_d_max", "w_hf_min", "w_hf_max", "w_ratio_min", "w_ratio_max",
                "total_min", "base_train_s"):
        out[key] = math.nan
    for key in ("gap_vs_noise", "better", "worse", "noise", "eq15_vs_safe", "eq15_vs_amp", "amp_hf_vs_base",
                "cpu_hardware", "cpu_commit", "cpu_date"):
        out[key] = "n/a"
    return out


def findings(cpu: CpuResults | None) -> dict[str, Any]:
    """The numbers the chapter's prose quotes, from the shipped ``cpu`` results; NaN (``"n/a"`` for strings) while
    ``cpu`` is ``None``.

    Keys, with ``<m>`` a model of :data:`SHORT` or ``seed1`` (the baseline at training seed 1):

    - ``<m>_fd``, ``<m>_fd_std``, ``<m>_d_fd`` (against the baseline), ``<m>_verdict``, ``<m>_hf`` (mean HF energy
      ratio over the sampling seeds), ``<m>_ratio`` (spectral term over EDM loss at the end of training);
    - ``gap``: how far the baseline moves between its two training seeds (FD); ``gap_se``: the sampling standard
      error of that difference; ``gap_vs_noise``: ``"larger than"``/``"smaller than"`` twice that error;
    - ``w_d_min``/``w_d_max``, ``w_hf_min``/``w_hf_max``, ``w_ratio_min``/``w_ratio_max``: ranges over the four
      weighted models;
    - ``better``, ``worse``, ``noise``: the unweighted models (the paper's and ours) by verdict, as prose lists;
    - ``eq15_vs_safe``, ``eq15_vs_amp``: how Eq. 15 as printed compares (FD) with our additive coupling and with
      the amplitude term alone (``"lower than"``...); ``amp_hf_vs_base``: AMP's HF ratio against the baseline's;
    - ``total_min`` (every run's wall time), ``base_train_s``, ``cpu_hardware``, ``cpu_commit``, ``cpu_date``;
    - from the ``cpu`` profile, at any time: ``cpu_params`` (the UNet's parameters), ``cpu_steps``, ``cpu_batch``,
      ``cpu_px`` (image size) and ``n_cpu_runs``.
    """
    out = _nan_findings()
    config = get_profile(OFFLINE_EXPERIMENT, "cpu")
    out.update(cpu_params=_parameters(config), cpu_steps=config.steps, cpu_batch=config.batch_size,
               cpu_px=config.data["resolution"], n_cpu_runs=len(planned_runs("cpu")))
    if cpu is None:
        return out
    rows = {(r["variant"], r["seed"]): r for r in fd_rows(cpu.runs, cpu.per_seed)}
    runs = {(v, s): run for (_, v, s), run in cpu.runs.items()}
    names = {**{(v, 0): short for v, short in SHORT.items()}, (Variant(), 1): "seed1"}
    for key, short in names.items():
        if key not in rows:
            continue
        row, run = rows[key], runs[key]
        out.update({f"{short}_fd": row["fd"], f"{short}_fd_std": row["fd_std"], f"{short}_d_fd": row["d_fd"],
                    f"{short}_hf": row["hf"], f"{short}_verdict": row["verdict"] or "—",
                    f"{short}_ratio": run.last("spectral") / run.last("diffusion")})
    base, seed1 = cpu.per_seed[runs[Variant(), 0].name], cpu.per_seed[runs[Variant(), 1].name]
    a, b = np.asarray(base["fd_local"]), np.asarray(seed1["fd_local"])
    out["gap"] = abs(float(b.mean() - a.mean()))
    out["gap_se"] = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if min(a.size, b.size) > 1 else math.nan
    out["gap_vs_noise"] = "larger than" if out["gap"] > 2 * out["gap_se"] else "smaller than"
    weighted = [short for v, short in SHORT.items() if v.weighting == "formulation"]
    for key in ("d_fd", "hf", "ratio"):
        values = [out[f"{w}_{key}"] for w in weighted if not math.isnan(out[f"{w}_{key}"])]
        name = {"d_fd": "w_d", "hf": "w_hf", "ratio": "w_ratio"}[key]
        out[f"{name}_min"], out[f"{name}_max"] = (min(values), max(values)) if values else (math.nan, math.nan)
    unweighted = [(v, r) for (v, s), r in rows.items() if v.weighting == "none" and v != Variant() and s == 0]
    for verdict, key in (("better", "better"), ("worse", "worse")):
        out[key] = listed(v.label for v, r in unweighted if r["verdict"] == verdict)
    out["noise"] = listed(v.label for v, r in unweighted if r["verdict"] not in ("better", "worse"))
    tolerance = out["gap"]  # a difference within the training-seed gap reads as "about the same"
    out["eq15_vs_safe"] = compared(out["eq15_fd"], out["safe_fd"], tolerance=tolerance)
    out["eq15_vs_amp"] = compared(out["eq15_fd"], out["amp_fd"], tolerance=tolerance)
    out["amp_hf_vs_base"] = compared(out["amp_hf"], out["base_hf"], tolerance=0.02)
    out["total_min"] = float(sum(r.metrics.get("wall_time_s", math.nan) for r in cpu.runs.values())) / 60
    out["base_train_s"] = float(runs[Variant(), 0].metrics["train_time_s"])
    out.update(cpu_hardware=cpu.provenance["hardware"], cpu_commit=cpu.provenance["commit"],
               cpu_date=cpu.provenance["date"])
    return out
