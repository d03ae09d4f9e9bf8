"""Training and measuring the image variants: run folders, the run's own metrics, per-seed distances, verdicts.

Run folders (one per trained model)::

    <root>/<experiment>/<profile>[-<network>]/<variant key>-seed<seed>/    config.json, metrics.json, samples.pt,
                                                                        checkpoints/, figures/, seed_metrics.json,
                                                                        fid.json
    e.g. runs/images/cifar10/gpu-vp/fourier_amp-unweighted-seed0/,  runs/images/ffhq/cpu/baseline-seed1/

What outlives a session (the FID numbers of ``gpu``/``full`` runs) goes to ``results/`` instead
(:mod:`~spectral_lib.experiments.images.results`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectral_lib._checks import check_choice
from spectral_lib.experiments.images.fid import cached_json, edm_latents_and_labels
from spectral_lib.experiments.images.profiles import (
    DATASETS,
    OFFLINE_EXPERIMENT,
    Variant,
    edm_network_name,
    settings,
)
from spectral_lib.experiments.profiles import ExperimentConfig

__all__ = [
    "DEFAULT_ROOT",
    "image_metrics",
    "conditional_sampler",
    "run_dir_for",
    "prepare_data",
    "variant_config",
    "run_variant",
    "metrics_over_seeds",
    "mean_std",
    "noise_verdict",
    "hf_energy_maps",
    "find_texture_crop",
    "crop",
]

DEFAULT_ROOT = Path("runs") / "images"
"""Where :func:`run_variant` puts run folders by default."""


def image_metrics(samples: torch.Tensor, data: torch.Tensor, config: ExperimentConfig) -> dict[str, float]:
    """A run's own evaluation (``EVALUATORS`` of every image experiment), on ``samples`` against as many images.

    Spectral distance, high-frequency energy (of samples and data) and their ratio (cutoff a quarter of Nyquist),
    and ``fd_local``: the Fréchet distance on :class:`~spectral_lib.metrics.fid.RandomConvFeatures` (seed 0),
    *not FID*. FID, which needs Inception weights and tens of thousands of samples, is
    :func:`~spectral_lib.experiments.images.fid.fid_for_run`.
    """
    from spectral_lib.metrics.fid import frechet_distance_local
    from spectral_lib.metrics.spectrum import high_frequency_energy, high_frequency_energy_ratio, spectral_distance

    return {
        "spectral_distance": spectral_distance(samples, data),
        "hf_energy_ratio": high_frequency_energy_ratio(samples, data),
        "hf_energy": high_frequency_energy(samples),
        "hf_energy_data": high_frequency_energy(data),
        "fd_local": float(frechet_distance_local(samples, data, seed=0)),
    }


@torch.no_grad()
def conditional_sampler(model: torch.nn.Module, formulation: Any, config: ExperimentConfig, *, n: int,
                        steps: int | None, seed: int, device: torch.device | str, progress: bool = False
                        ) -> torch.Tensor:
    """The run's samples of a class-conditional network (``SAMPLERS["cifar10"]``): image ``i`` has seed
    ``seed + i`` and draws its noise and then its class from it, as EDM's ``generate.py`` (no image is drawn with
    zero labels). Float32 ``(n, C, H, W)`` in ``[-1, 1]`` on the CPU."""
    label_dim = int(getattr(model, "label_dim", 0))
    shape = (int(model.img_channels), int(model.img_resolution), int(model.img_resolution))
    model = model.to(device).eval()
    out = []
    for start in range(0, n, config.sample_batch_size):
        seeds = [(int(seed) + i) % (1 << 32) for i in range(start, min(n, start + config.sample_batch_size))]
        latents, labels = edm_latents_and_labels(seeds, shape, label_dim, device)
        x = formulation.sample(model, tuple(latents.shape), steps=steps, device=device, noise=latents,
                               cond=None if labels is None else {"class_labels": labels})
        out.append(x.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def _register() -> None:
    from spectral_lib.experiments.run import EVALUATORS, SAMPLERS

    for name, spec in DATASETS.items():
        EVALUATORS[name] = image_metrics
        if spec.label_dim:
            SAMPLERS[name] = conditional_sampler


_register()


# ------------------------------------------------------------------------------------------------ runs


def run_dir_for(root: str | os.PathLike[str], profile: str, variant: Variant, *, seed: int = 0,
                network: str | None = None, dataset: str = OFFLINE_EXPERIMENT) -> Path:
    """``root / dataset / {profile}[-{network}] / {variant.key}-seed{seed}``: one folder per trained model."""
    head = profile if network is None else f"{profile}-{network}"
    return Path(root) / dataset / head / f"{variant.key}-seed{seed}"


def prepare_data(dataset: str, data_dir: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
    """The EDM zip a real-path run reads (:func:`spectral_lib.data.edm_datasets.prepare_dataset`): downloaded and
    converted once for ``cifar10``/``afhqv2``; for ``ffhq``, ``data_dir`` (a folder, converted, or an EDM zip)."""
    from spectral_lib.data.edm_datasets import prepare_dataset

    check_choice(dataset, "dataset", tuple(DATASETS))
    return prepare_dataset(dataset, source=data_dir, progress=progress)


def variant_config(
    profile: str,
    variant: Variant,
    *,
    dataset: str = OFFLINE_EXPERIMENT,
    seed: int = 0,
    network: str | None = None,
    edm_repo: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> ExperimentConfig:
    """The configuration :func:`run_variant` trains: ``dataset``'s profile with the variant's regularizer and
    weighting, EDM, ``seed``; wavelet variants get ``levels = ImageSettings.wavelet_levels``; on the real path
    (``network`` given) ``dataset``'s checkpoint of that network and ``edm_repo``; ``data_dir`` and any other
    config key of ``overrides``."""
    from spectral_lib.experiments.profiles import get_profile

    return get_profile(dataset, profile).replace(**_changes(profile, variant, dataset, seed, network, edm_repo,
                                                            data_dir, overrides))


def _changes(profile: str, variant: Variant, dataset: str, seed: int, network: str | None,
             edm_repo: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None,
             overrides: dict[str, Any]) -> dict[str, Any]:
    check_choice(dataset, "dataset", tuple(DATASETS))
    changes: dict[str, Any] = {"regularizer": variant.regularizer, "formulation": "edm", "seed": int(seed),
                               "spectral_weighting": variant.weighting}
    if variant.regularizer.startswith("wavelet"):
        changes["regularizer_kwargs"] = {"levels": settings(profile).wavelet_levels}
    if network is not None:
        model: dict[str, Any] = {"network": edm_network_name(dataset, network)}
        if edm_repo is not None:
            model["edm_repo"] = str(edm_repo)
        changes["model"] = model
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    changes.update(overrides)
    return changes


def run_variant(
    profile: str,
    variant: Variant,
    *,
    dataset: str = OFFLINE_EXPERIMENT,
    root: str | os.PathLike[str] = DEFAULT_ROOT,
    seed: int = 0,
    network: str | None = None,
    edm_repo: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    fresh: bool = False,
    progress: bool = False,
    **overrides: Any,
):
    """Train (or read back) one variant through :func:`~spectral_lib.experiments.run.run_experiment`.

    The configuration is :func:`variant_config`'s and the run folder :func:`run_dir_for`. A finished run with the
    same configuration is reused and an interrupted one continues (``resume=True``), unless ``fresh`` (then a run
    in that folder is replaced: ``overwrite=True``). On the real path (``gpu``/``full``) ``network``
    (``"vp"``/``"ve"``) picks ``dataset``'s checkpoint and the data is :func:`prepare_data`'s EDM zip; offline
    (``network=None``) ``data_dir=None`` uses the stand-in. Works under ``torchrun`` (the ranks other than 0 get no
    samples).
    """
    from spectral_lib.experiments.run import run_experiment

    if network is not None and data_dir is None and "data_dir" not in overrides:
        data_dir = prepare_data(dataset, data_dir, progress=progress)
    changes = _changes(profile, variant, dataset, seed, network, edm_repo, data_dir, overrides)
    regularizer, seed = changes.pop("regularizer"), changes.pop("seed")
    return run_experiment(
        dataset, profile=profile, regularizer=regularizer, out=run_dir_for(root, profile, variant, seed=seed,
                                                                            network=network, dataset=dataset),
        seed=seed, resume=not fresh, overwrite=fresh, progress=progress, **changes,
    )


def metrics_over_seeds(
    run_dir: str | os.PathLike[str],
    reference: torch.Tensor,
    *,
    seeds: Sequence[int],
    n: int,
    feature_seed: int = 0,
    device: str | torch.device | None = None,
    trust_pickle: bool = False,
    edm_repo: str | os.PathLike[str] | None = None,
) -> dict[str, list[float]]:
    """Per sampling seed, ``n`` fresh samples of a run against ``reference``: ``{"fd_local": [...],
    "hf_energy_ratio": [...]}``, one value per seed.

    ``fd_local`` is the Fréchet distance on :class:`~spectral_lib.metrics.fid.RandomConvFeatures` (seed
    ``feature_seed``), **not FID**: compare values only with each other. ``hf_energy_ratio`` is
    :func:`~spectral_lib.metrics.spectrum.high_frequency_energy_ratio` (cutoff a quarter of Nyquist). Samples come
    from the run's EMA weights with its own sampler (:func:`~spectral_lib.experiments.run.sample_run`); seed ``s``
    uses generator seed ``10_000 + s`` (independent of the run's ``samples.pt``). The result is cached in
    ``run_dir/seed_metrics.json`` for these settings and this reference (its size and sum); the file is one of the
    run's :data:`~spectral_lib.experiments.run_folder.RESULT_FILES`, removed when the run trains again.

    ``trust_pickle``, ``edm_repo``: a run fine-tuned from an EDM network pickle is rebuilt from that pickle, which
    runs its code: pass ``trust_pickle=True`` only for a run you trained from a network you trust, and ``edm_repo``
    (NVIDIA's code) yourself; neither is ever taken from the run folder
    (:func:`~spectral_lib.experiments.run.load_run_model`).
    """
    from spectral_lib.experiments.run import sample_run
    from spectral_lib.metrics.fid import frechet_distance_local
    from spectral_lib.metrics.spectrum import high_frequency_energy_ratio

    run_dir = Path(run_dir)
    key = {"seeds": [int(s) for s in seeds], "n": int(n), "feature_seed": int(feature_seed),
           "reference_n": len(reference), "reference_sum": round(float(reference.double().sum()), 6)}

    def compute() -> dict[str, Any]:
        values: dict[str, list[float]] = {"fd_local": [], "hf_energy_ratio": []}
        for s in seeds:
            samples = sample_run(run_dir, n=n, seed=10_000 + int(s), device=device, trust_pickle=trust_pickle,
                                 edm_repo=edm_repo)
            values["fd_local"].append(float(frechet_distance_local(samples, reference, seed=feature_seed)))
            values["hf_energy_ratio"].append(high_frequency_energy_ratio(samples, reference))
        return values

    return cached_json(run_dir / "seed_metrics.json", key, compute)


# ------------------------------------------------------------------------------------------------ statistics


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``; 0 for a single value)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("values is empty")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def noise_verdict(
    values: Sequence[float], baseline: Sequence[float], *, z: float = 2.0, training_gap: float | None = None
) -> tuple[float, str]:
    """``(difference of means, verdict)`` of a variant's values against the baseline's (lower is better).

    The verdict is ``"within noise"`` when ``|difference| <= z * standard error of the difference``
    (``sqrt(s_a^2 / n_a + s_b^2 / n_b)``, sample standard deviations), else ``"better"``/``"worse"``. With one value
    per side there is no error estimate and the verdict is ``"no error bar"``. ``z = 2``: our choice (about a 95 %
    two-sided band for normal errors).

    The spread comes from the seeds given (e.g. sampling seeds) and says nothing about training noise.
    ``training_gap`` (e.g. the distance between two baselines trained with different seeds) adds that yardstick: a
    difference that clears the sampling noise but not ``training_gap`` is ``"within training noise"``.
    """
    a, b = np.asarray(values, np.float64), np.asarray(baseline, np.float64)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, "no error bar"
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    if abs(diff) <= z * se:
        return diff, "within noise"
    if training_gap is not None and abs(diff) <= abs(float(training_gap)):
        return diff, "within training noise"
    return diff, "better" if diff < 0 else "worse"


# ------------------------------------------------------------------------------------------------ crops


def hf_energy_maps(images: torch.Tensor, window: int) -> torch.Tensor:
    """Local high-frequency energy ``(B, H - window + 1, W - window + 1)`` of images ``(B, C, H, W)``.

    The squared response to the 3x3 Laplacian (reflect padding), summed over channels and averaged over each
    ``window x window`` box: where an image holds fine texture and sharp edges.
    """
    from torch.nn import functional as F

    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=images.dtype)
    c = images.shape[1]
    lap = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), kernel.expand(c, 1, 3, 3).contiguous(), groups=c)
    energy = lap.square().sum(dim=1, keepdim=True)
    return F.avg_pool2d(energy, window, stride=1)[:, 0]


def find_texture_crop(samples: Mapping[str, torch.Tensor], window: int, *, first: int = 16) -> tuple[int, int, int]:
    """``(index, top, left)`` of the ``window``-pixel crop where the variants' textures differ most.

    ``samples`` maps variant names to sample sets drawn from the *same* starting noise (the run's own
    ``samples.pt``: the Heun sampler is deterministic, so sample ``i`` of each variant starts from the same noise
    and often shows a similar image). Among the first ``first`` samples and every crop position, the one with the
    largest spread (max - min over variants) of :func:`hf_energy_maps` is chosen.
    """
    if len(samples) < 2:
        raise ValueError(f"samples needs at least two variants to compare, got {list(samples)}")
    maps = torch.stack([hf_energy_maps(x[:first].float(), window) for x in samples.values()])  # (V, B, h, w)
    spread = maps.amax(0) - maps.amin(0)
    flat = int(spread.flatten().argmax())
    b, rest = divmod(flat, spread.shape[1] * spread.shape[2])
    top, left = divmod(rest, spread.shape[2])
    return b, top, left


def crop(images: torch.Tensor, index: int, top: int, left: int, size: int) -> torch.Tensor:
    """``images[index, :, top:top+size, left:left+size]`` as ``(C, size, size)``."""
    return images[index, :, top:top + size, left:left + size]
