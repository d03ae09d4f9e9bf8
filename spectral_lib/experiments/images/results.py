"""Results of the image experiments that outlive a session, the commands that reproduce them, and what ``full`` costs.

Every ``gpu``/``full`` run writes one small JSON per Table 1 row (:func:`write_result`)::

    results/<profile>/<experiment>/<network>-<variant key>[-seed<s>].json
    e.g. results/gpu/cifar10/vp-baseline.json, results/full/ffhq/ve-wavelet-unweighted.json

holding the FID values (per FID seed, mean, std, n), how they were measured (precision, world size, images/s),
the training settings and time, and the command that made them. The chapter reads them at any profile
(:func:`table1_rows`), so a row filled on a GPU and committed shows on the rendered page; cells say "not run yet"
otherwise. :func:`results_root` is ``$SPECTRAL_RESULTS_DIR`` or the repository's ``results/``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectral_lib._checks import check_choice
from spectral_lib.experiments.images.profiles import (
    ALL_VARIANTS,
    DATASETS,
    PAPER_CIFAR10_RANGE,
    Variant,
    paper_fid,
    settings,
)
from spectral_lib.experiments.profiles import get_profile
from spectral_lib.experiments.shipped import results_root

__all__ = [
    "RESULT_PROFILES",
    "NOT_RUN",
    "row_name",
    "result_path",
    "write_result",
    "read_results",
    "command_prefix",
    "reproduce_command",
    "row_arguments",
    "table1_rows",
    "Throughput",
    "PUBLISHED_THROUGHPUT",
    "measured_throughput",
    "full_cost",
]

RESULT_PROFILES = ("gpu", "full")
NOT_RUN = "not run yet"


def row_name(network: str, variant: Variant, seed: int = 0) -> str:
    """``<network>-<variant key>`` (``-seed<s>`` for a training seed other than 0): a result file's stem."""
    return f"{network}-{variant.key}" + (f"-seed{seed}" if seed else "")


def result_path(profile: str, dataset: str, row: str, root: Path | None = None) -> Path:
    """``results/<profile>/<dataset>/<row>.json``."""
    check_choice(profile, "profile with results", RESULT_PROFILES)
    check_choice(dataset, "dataset", tuple(DATASETS))
    return (root if root is not None else results_root()) / profile / dataset / f"{row}.json"


def write_result(profile: str, dataset: str, network: str, variant: Variant, fid: Mapping[str, Any], *,
                 run_metrics: Mapping[str, Any] | None = None, config: Any = None, seed: int = 0,
                 root: Path | None = None, command: str | None = None) -> Path:
    """Write one row's numbers (atomically) and return the file. ``fid`` is ``fid_for_run``'s result;
    ``run_metrics`` the run's ``metrics.json`` (training time, spectra...); ``config`` the run's
    ``ExperimentConfig`` (default: the profile's)."""
    from spectral_lib.experiments.checkpoint import atomic_write_text

    path = result_path(profile, dataset, row_name(network, variant, seed), root)
    config = config if config is not None else get_profile(dataset, profile)
    record = {
        "dataset": dataset, "profile": profile, "network": network, "variant": variant.key, "label": variant.label,
        "training_seed": seed, "fid": dict(fid),
        "training": {"steps": config.steps, "batch_size": config.batch_size, "lr": config.lr,
                     "tf32": settings(profile).tf32, **({k: run_metrics[k] for k in ("train_time_s", "final_loss",
                                                        "hf_energy_ratio", "fd_local") if k in run_metrics}
                                                        if run_metrics else {})},
        "command": command or reproduce_command(dataset, profile, network, variant),
        "machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def _machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()})"


def read_results(profile: str, dataset: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """``{row name: record}`` of every result file of ``profile`` and ``dataset`` (empty when none was run)."""
    folder = result_path(profile, dataset, "x", root).parent
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def command_prefix(dataset: str, profile: str, *, gpus: int = 1) -> str:
    """The part of :func:`reproduce_command` that every row of ``dataset`` at ``profile`` shares."""
    data = "" if DATASETS[dataset].name != "ffhq" else " --data PATH/TO/images1024x1024-or-ffhq-64x64.zip"
    return (f"torchrun --standalone --nproc_per_node={gpus} -m spectral_lib.experiments.images run "
            f"--dataset {dataset} --profile {profile}{data}")


def reproduce_command(dataset: str, profile: str, network: str, variant: Variant, *, gpus: int = 1) -> str:
    """The shell command that reproduces one row (fine-tune, FID, result file) on ``gpus`` GPUs of one machine:
    :func:`command_prefix` and :func:`row_arguments`."""
    return f"{command_prefix(dataset, profile, gpus=gpus)} {row_arguments(network, variant)}"


def _cell(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return NOT_RUN
    fid = record["fid"]
    text = f"{fid['mean']:.2f} ± {fid['std']:.2f}" if len(fid["values"]) > 1 else f"{fid['mean']:.2f}"
    note = "" if fid["precision"]["network"] == "float32" else f" ({fid['precision']['network']})"
    return f"{text} (n={fid['n']:,}){note}"


def _paper_cell(dataset: str, network: str, variant: Variant) -> str:
    value = paper_fid(dataset, network, variant)
    if value is not None:
        return f"{value:.2f}"
    if dataset == "cifar10":
        return f"{PAPER_CIFAR10_RANGE[0]:.2f}–{PAPER_CIFAR10_RANGE[1]:.2f} (every row)"
    return "—"


def row_arguments(network: str, variant: Variant) -> str:
    """The arguments that pick one row in :func:`reproduce_command`: ``--network vp --variant wavelet-weighted``."""
    return f"--network {network} --variant {variant.key}"


def table1_rows(dataset: str, networks: tuple[str, ...] = ("vp", "ve"), variants: tuple[Variant, ...] = ALL_VARIANTS,
                root: Path | None = None, *, full_commands: bool = True) -> list[tuple[str, ...]]:
    """One row per (network, variant): network, variant, the paper's FID, ours at ``gpu``, ours at ``full``, and the
    command that fills the ``full`` cell (``full_commands=False``: only the row's :func:`row_arguments`, for a page
    that prints the common part once). Read from ``results/`` (:func:`read_results`)."""
    found = {p: read_results(p, dataset, root) for p in RESULT_PROFILES}
    rows = []
    for network in networks:
        for variant in variants:
            name = row_name(network, variant)
            command = (reproduce_command(dataset, "full", network, variant) if full_commands
                       else row_arguments(network, variant))
            rows.append((network.upper(), variant.label, _paper_cell(dataset, network, variant),
                         _cell(found["gpu"].get(name)), _cell(found["full"].get(name)), f"`{command}`"))
    return rows


# ------------------------------------------------------------------------------------------------ cost


@dataclass(frozen=True)
class Throughput:
    """Images per second of FID sampling (the profile's Heun steps) and fine-tuning steps per second (batch 16)
    on one device, and where the numbers come from."""

    images_per_s: float
    steps_per_s: float
    source: str


PUBLISHED_THROUGHPUT: dict[str, Throughput] = {
    "cifar10": Throughput(64 / 6, 200e6 / (2 * 86_400) / 8 / 16, "NVIDIA's EDM README: 64 CIFAR-10 images in ~6 s "
                          "(example.py, 18 steps, one GPU); training 200 Mimg in ~2 days on 8 V100"),
    "afhqv2": Throughput(64 / 28, 200e6 / (4 * 86_400) / 8 / 16, "NVIDIA's EDM README: 64 images in ~28 s "
                         "(40 steps, one GPU); training 200 Mimg in ~4 days on 8 V100"),
    "ffhq": Throughput(64 / 28, 200e6 / (4 * 86_400) / 8 / 16, "NVIDIA's EDM README, as AFHQv2"),
}
"""GPU throughput from NVIDIA's published times (an upper bound on time: example.py's 64 images include start-up,
and big-batch training is more efficient per image than batch 16; per GPU, V100 class)."""

def measured_throughput(dataset: str, root: Path | None = None) -> Throughput | None:
    """The throughput of our own ``gpu``/``full`` runs of ``dataset`` (their result files), if any ran."""
    rates, steps = [], []
    for profile in RESULT_PROFILES:
        for record in read_results(profile, dataset, root).values():
            fid = record["fid"]
            rates.append(fid["images_per_s"] / max(1, fid.get("world_size", 1)))
            if record["training"].get("train_time_s"):
                steps.append(record["training"]["steps"] / record["training"]["train_time_s"])
    if not rates:
        return None
    return Throughput(sum(rates) / len(rates), sum(steps) / len(steps) if steps else float("nan"),
                      f"our {len(rates)} result file(s) of {dataset} (per GPU)")


def full_cost(dataset: str, throughput: Throughput | None = None) -> dict[str, Any]:
    """GPU-hours of ``full`` for one data set: every Table 1 row for both networks, fine-tuned for the profile's
    steps and sampled ``fid_samples x len(fid_seeds)`` times (plus the run's own ``n_samples``). (Our CPU timings
    of stand-ins of the same size, ``results/cpu/images/throughput.json`` from
    :mod:`~spectral_lib.experiments.images.throughput`, give the scale on a CPU core.)

    ``throughput``: default our measured one (:func:`measured_throughput`), else :data:`PUBLISHED_THROUGHPUT`.
    """
    tp = throughput or measured_throughput(dataset) or PUBLISHED_THROUGHPUT[dataset]
    plan, config = settings("full"), get_profile(dataset, "full")
    runs = len(plan.networks) * len(plan.variants)
    images = runs * (plan.fid_samples * len(plan.fid_seeds) + config.n_samples)
    steps = runs * config.steps
    sampling_h, training_h = images / tp.images_per_s / 3600, steps / tp.steps_per_s / 3600
    return {"dataset": dataset, "runs": runs, "images": images, "steps": steps, "sampling_gpu_hours": sampling_h,
            "training_gpu_hours": training_h, "gpu_hours": sampling_h + training_h, "basis": tp.source}
