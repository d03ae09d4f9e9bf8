"""The faces experiment ("ffhq"): the paper's image result (its Table 1) and an offline version of it.

Two paths share one experiment name, one trainer and one evaluator:

* **Real path** (profiles ``gpu`` and ``full``; a GPU, FFHQ on disk, network access): *fine-tune* NVIDIA's
  pretrained EDM network for FFHQ 64x64 (:data:`~spectral_lib.models.edm_pretrained.EDM_NETWORKS`, VP = DDPM++ or
  VE = NCSN++) with each regularizer, weighted by ``lambda_EDM(sigma)`` or unweighted, sample with EDM's
  deterministic Heun sampler (40 steps, as the paper) and measure FID with Inception-v3 features against EDM's
  published FFHQ-64 statistics (:func:`fid_for_run`). Fine-tuning settings as the paper (batch 16, lr 5e-5, dropout
  0.05). ``gpu``: a short fine-tune of two variants and a 10 000-sample FID with one seed (one to two hours on a
  Colab A100 by our estimate from EDM's published sampling time, longer on a T4; not measured); ``full``: the
  paper's protocol (0.5 Mimg, 50 000 samples, 3 seeds, both networks: days of GPU time).
* **Offline path** (profiles ``smoke`` and ``cpu``; CI, workshops, laptops): the dead-leaves stand-in
  (:func:`spectral_lib.data.standin.write_image_standin`, written on demand in FFHQ's folder layout and read back
  through :class:`~spectral_lib.data.images.ImageFolderDataset`), and our own small UNet with EDM preconditioning
  trained *from scratch* (no pretrained weights exist offline). Its numbers are spectra, high-frequency energy and
  a Fréchet distance on local random features (:func:`~spectral_lib.metrics.fid.frechet_distance_local`), which is
  **not FID** and is never called so.

Choices the paper leaves open, and ours (each is a parameter):

* **Fine-tune length.** The text says "5 optimisation steps", the table "duration 0.5" (EDM's ``--duration`` is in
  millions of images: 0.5 Mimg = 31 250 steps at batch 16). :data:`PAPER_FINETUNE_STEPS` holds both readings;
  ``full`` uses the table's, ``gpu`` a short 500 steps (our choice, for time).
* **Learning-rate ramp.** EDM's ``train.py`` ramps the rate linearly over 10 Mimg (``lr_rampup_kimg=10000``) and a
  fine-tune started with ``--transfer`` starts that ramp at zero, so a 0.5 Mimg fine-tune never gets beyond 5 % of
  5e-5. ``full`` reproduces that (``warmup_steps=625 000``); ``gpu`` warms up over 50 steps (our choice: a short
  fine-tune that never reaches its rate changes nothing).
* **Scale of the spectral term.** EDM's loss is summed over the ``C H W`` pixels of an image; ours (and our
  spectral terms) are means. If the authors added a per-image mean spectral term to EDM's summed loss, their term
  is ``1 / (3 * 64 * 64)`` as strong as ours at the same ``lambda``: :data:`LAMBDA_SPEC_READINGS`.
* **Augmentation.** The pretrained networks were trained with EDM's augmentation pipe (p = 0.15), which the paper's
  fine-tune presumably kept; ours does not augment (a deviation; :class:`~spectral_lib.models.edm_pretrained.
  EDMPretrainedNetwork` accepts ``augment_labels`` for a source that does).
* **EMA.** EDM's EMA has a half-life of 5 % of the images seen so far at the start of training; the trainer's EMA
  warm-up ``d_n = (1 + n) / (10 + n)`` has one of about 8 % of the steps, close to it; capped at ``ema_decay``.
* **Sampler precision.** EDM's ``generate.py`` integrates in float64; ours in float32 (``sample_kwargs`` cannot
  hold a dtype in JSON), a difference far below FID's noise.

Chapter-level settings (which variants, how many samples and seeds for each metric) are :class:`FacesSettings`,
one per profile (:func:`faces_settings`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectral_lib._checks import check_choice
from spectral_lib.experiments.checkpoint import atomic_write_text
from spectral_lib.experiments.profiles import REGISTRY, ExperimentConfig, get_profile, register_profile
from spectral_lib.models.edm_pretrained import EDM_FID_REFERENCES, EDM_NETWORKS

__all__ = [
    "EXPERIMENT",
    "Variant",
    "ALL_VARIANTS",
    "PROFILES",
    "PAPER_NAMES",
    "PAPER_TABLE1_FFHQ",
    "PAPER_FINETUNE_STEPS",
    "LAMBDA_SPEC_READINGS",
    "FacesSettings",
    "faces_settings",
    "planned_runs",
    "faces_metrics",
    "run_variant",
    "run_dir_for",
    "metrics_over_seeds",
    "fid_for_run",
    "mean_std",
    "noise_verdict",
    "paper_fid",
    "hf_energy_maps",
    "find_texture_crop",
    "crop",
    "markdown_table",
    "plot_edm_weight",
    "plot_spectrum_ratios",
    "plot_hf_ratios",
    "plot_crops",
    "plot_sample_panels",
]

EXPERIMENT = "ffhq"

PAPER_NAMES: dict[str, str] = {
    "none": "baseline",
    "fourier_amp": "AMP",
    "fourier_amp_phase": "AMPPHASE",
    "wavelet": "HAAR",
    "wavelet_bior13": "BIOR13",
}
"""Our regularizer names -> the names of the paper's Table 1."""

WEIGHTINGS = {"none": "unweighted", "formulation": "weighted"}


@dataclass(frozen=True)
class Variant:
    """One row of Table 1: a regularizer and its weighting (``"none"``: lambda alone, the paper's "unweighted";
    ``"formulation"``: lambda times lambda_EDM(sigma), "weighted"). The baseline is ``Variant("none")``."""

    regularizer: str = "none"
    weighting: str = "none"

    def __post_init__(self) -> None:
        check_choice(self.regularizer, "regularizer", tuple(PAPER_NAMES))
        check_choice(self.weighting, "weighting", tuple(WEIGHTINGS))
        if self.regularizer == "none" and self.weighting != "none":
            raise ValueError("the baseline (regularizer 'none') has no spectral term to weight; use weighting 'none'")

    @property
    def key(self) -> str:
        """A file-name-safe key: ``baseline``, ``wavelet-unweighted``, ``fourier_amp-weighted``..."""
        return "baseline" if self.regularizer == "none" else f"{self.regularizer}-{WEIGHTINGS[self.weighting]}"

    @property
    def label(self) -> str:
        """The paper's name: ``baseline``, ``HAAR (unweighted)``, ``AMP (weighted)``..."""
        name = PAPER_NAMES[self.regularizer]
        return name if self.regularizer == "none" else f"{name} ({WEIGHTINGS[self.weighting]})"


_REGULARIZERS = ("fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13")
ALL_VARIANTS: tuple[Variant, ...] = (Variant(),) + tuple(
    Variant(r, w) for w in ("none", "formulation") for r in _REGULARIZERS
)
"""The baseline and the eight regularized rows of the paper's Table 1."""

PAPER_TABLE1_FFHQ: dict[tuple[str, str], float] = {
    ("vp", "baseline"): 2.38,
    ("vp", "fourier_amp-unweighted"): 2.31,
    ("ve", "baseline"): 2.56,
    ("ve", "fourier_amp_phase-weighted"): 2.49,
    ("ve", "wavelet-unweighted"): 2.49,
}
"""FID of the paper's Table 1 for FFHQ 64x64 that our notes hold: the baselines and the best rows (mean over 3
seeds of 50 000 samples; the paper's standard deviations, and its other rows, are in its Table 1: gains are
0.02-0.07 FID, about 1-2 standard deviations). ``(network, Variant.key) -> FID``."""

PAPER_FINETUNE_STEPS: dict[str, int] = {"text": 5, "table": 31_250}
"""The paper's two readings of the fine-tune length at batch 16: "5 optimisation steps" (text) and "duration 0.5"
(table; EDM's ``--duration`` is in Mimg: 500 000 images / 16 = 31 250 steps)."""

LAMBDA_SPEC_READINGS: dict[str, float] = {"per_pixel_mean": 1.0, "edm_summed_loss": 1.0 / (3 * 64 * 64)}
"""``lambda_spec`` for two readings of how the paper scales its spectral term against EDM's loss at 64x64 RGB:
ours (both terms are per-image means) and "a mean spectral term added to EDM's per-image *sum* over 3 x 64 x 64
pixels" (then the term is 12 288 times weaker relative to the MSE)."""


# ------------------------------------------------------------------------------------------------ profiles


def _offline(profile: str, **changes: Any) -> ExperimentConfig:
    base = dict(
        experiment=EXPERIMENT,
        profile=profile,
        formulation="edm",
        regularizer="none",
        lambda_spec=1.0,
        spectral_weighting="none",
        grad_clip=1.0,
        checkpoint_every=0,
    )
    base.update(changes)
    return ExperimentConfig(**base)


_STANDIN = {"seed": 0, "coverage": 2.0}
"""Dead-leaves options of the offline profiles: shapes of at least 3 pixels at the training size and a coverage
of 2 (our choice: flat shapes with sharp edges that a UNet of a few hundred thousand parameters learns within
minutes; the writer's defaults, 1-pixel leaves at coverage 6, give a texture that such a model only turns into
coloured noise)."""

_REAL_DATA = {"source": "images", "resolution": 64}
_REAL = dict(
    experiment=EXPERIMENT,
    formulation="edm",
    regularizer="none",
    data=dict(_REAL_DATA),
    model={"name": "edm_pretrained", "network": "ffhq-64x64-uncond-vp", "dropout": 0.05},
    lambda_spec=1.0,
    spectral_weighting="none",
    batch_size=16,  # as the paper (EDM's fine-tuning setting)
    lr=5e-5,  # as the paper for FFHQ/AFHQ
    weight_decay=0.0,  # EDM's Adam has none
    grad_clip=None,  # EDM does not clip (it zeroes NaN gradients)
    amp="off",  # EDM trained these networks in float32
    sample_steps=40,  # as the paper for 64x64 (NFE 79)
    n_samples=500,  # for the spectra and the local FD; FID is fid_for_run's (its own sample count)
    sample_batch_size=250,
    grid_samples=16,
    log_every=25,
)

PROFILES: dict[str, ExperimentConfig] = {
    # Seconds on one core: every code path (stand-in -> loader -> UNet -> EDM -> regularizer -> Heun -> metrics).
    "smoke": _offline(
        "smoke",
        data={"source": "images", "resolution": 16, "standin": {**_STANDIN, "n": 48, "resolution": 32, "r_min": 3.0}},
        model={"name": "unet2d", "preset": "tiny", "in_channels": 3, "base_channels": 8, "num_groups": 4,
               "image_size": 16},
        batch_size=8,
        steps=20,
        lr=2e-3,
        warmup_steps=5,
        ema_decay=0.99,
        sample_steps=6,
        n_samples=24,
        sample_batch_size=64,
        grid_samples=16,
        log_every=5,
    ),
    # About a minute per variant on 2 CPU cores: 32x32 RGB dead leaves (written at 64 and resized by the loader),
    # the "tiny" UNet at 16 base channels (0.27 M parameters; 8 steps/s at batch 32 on 2 idle cores, twice the
    # 32-channel preset's speed: our choice, so that the ten runs of the chapter train in about 15 minutes and the
    # whole chapter runs in 22), EDM training from scratch, 12 Heun steps.
    "cpu": _offline(
        "cpu",
        data={"source": "images", "resolution": 32, "standin": {**_STANDIN, "n": 1024, "resolution": 64, "r_min": 6.0}},
        model={"name": "unet2d", "preset": "tiny", "in_channels": 3, "base_channels": 16, "image_size": 32},
        batch_size=32,
        steps=600,
        lr=2e-3,
        warmup_steps=50,
        ema_decay=0.995,
        sample_steps=12,
        n_samples=256,
        sample_batch_size=256,
        grid_samples=16,
        log_every=20,
        checkpoint_every=200,
    ),
    # Colab: a short fine-tune of the pretrained FFHQ-64 network (VP by default), lr warm-up over 50 steps.
    "gpu": ExperimentConfig(profile="gpu", steps=500, warmup_steps=50, ema_decay=0.999, checkpoint_every=250,
                            **_REAL),
    # The paper's protocol: duration 0.5 Mimg, EDM's lr ramp over 10 Mimg and its EMA cap (half-life 500 kimg).
    "full": ExperimentConfig(profile="full", steps=PAPER_FINETUNE_STEPS["table"], warmup_steps=625_000,
                             ema_decay=0.5 ** (16 / 500_000), checkpoint_every=2_500, **_REAL),
}
"""The ffhq profiles (registered on import)."""


def _register() -> None:
    for config in PROFILES.values():
        if REGISTRY.get(EXPERIMENT, {}).get(config.profile) != config:
            register_profile(config, overwrite=True)


_register()


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class FacesSettings:
    """What the chapter runs and measures at one profile (the training settings are the profile's config).

    Attributes:
        variants: the Table 1 rows to train (baseline first).
        networks: pretrained EDM networks (``"vp"``, ``"ve"``) for the real path; empty offline.
        train_seeds: training seeds of the baseline (a second seed shows how far training noise alone moves the
            numbers); the other variants use the first.
        fd_seeds, fd_samples: sampling seeds and samples per seed of the local-feature Fréchet distance.
        fd_reference: real images in the FD's reference set.
        fid_samples, fid_seeds, fid_batch_size: the Inception FID protocol (real path only; 0 = none).
        fid_autocast: ``"fp16"`` runs the network under CUDA autocast while sampling for FID (our choice at
            ``gpu``, for time); ``None`` keeps float32 (``full``).
        crop: side of the zoomed crops, in pixels.
        timing_images: images decoded to time the loader (first read against cached read).
        wavelet_levels: DWT levels of the wavelet terms (the paper gives none; 3 is our choice; ``smoke`` uses 2,
            because bior1.3's 6 taps do not fit three levels of a 16-pixel image).
        tf32: allow TensorFloat-32 matrix products on CUDA (faster on Ampere and later; EDM's training turns them
            off, and so does ``full``; ``gpu`` turns them on, our choice for time).
    """

    variants: tuple[Variant, ...]
    networks: tuple[str, ...] = ()
    train_seeds: tuple[int, ...] = (0,)
    fd_seeds: tuple[int, ...] = (0, 1, 2)
    fd_samples: int = 256
    fd_reference: int = 512
    fid_samples: int = 0
    fid_seeds: tuple[int, ...] = ()
    fid_batch_size: int = 250
    fid_autocast: str | None = None
    crop: int = 12
    timing_images: int = 256
    wavelet_levels: int = 3
    tf32: bool = False

    @property
    def real(self) -> bool:
        """True for the real path (pretrained EDM, FFHQ, Inception FID)."""
        return bool(self.networks)


_SETTINGS: dict[str, FacesSettings] = {
    # every regularizer once, one weighted variant, two baseline seeds: every code path in seconds
    "smoke": FacesSettings(variants=(Variant(),) + tuple(Variant(r) for r in _REGULARIZERS)
                           + (Variant("wavelet", "formulation"),), train_seeds=(0, 1), fd_seeds=(0, 1),
                           fd_samples=24, fd_reference=48, crop=6, timing_images=48, wavelet_levels=2),
    "cpu": FacesSettings(variants=ALL_VARIANTS, train_seeds=(0, 1), fd_seeds=(0, 1, 2), fd_samples=256,
                         fd_reference=1024, crop=10, timing_images=512),
    # the baseline and the paper's best FFHQ-VP row (AMP, unweighted): one to two hours on a Colab A100 (estimate)
    "gpu": FacesSettings(variants=(Variant(), Variant("fourier_amp")), networks=("vp",), fd_seeds=(0,),
                         fd_samples=500, fd_reference=5_000, fid_samples=10_000, fid_seeds=(0,),
                         fid_autocast="fp16", crop=16, timing_images=2_000, tf32=True),
    "full": FacesSettings(variants=ALL_VARIANTS, networks=("vp", "ve"), fd_seeds=(0,), fd_samples=1_000,
                          fd_reference=5_000, fid_samples=50_000, fid_seeds=(0, 1, 2), crop=16,
                          timing_images=2_000),
}


def faces_settings(profile: str) -> FacesSettings:
    """The chapter's settings at ``profile`` (``smoke``, ``cpu``, ``gpu``, ``full``)."""
    check_choice(profile, "profile for experiment 'ffhq'", tuple(_SETTINGS))
    return _SETTINGS[profile]


def planned_runs(profile: str) -> list[tuple[str | None, Variant, int]]:
    """``(network, variant, training seed)`` of every model the chapter trains at ``profile``: each variant with
    the first training seed, plus the baseline with the others; per pretrained network on the real path
    (``network`` is ``None`` offline)."""
    settings = faces_settings(profile)
    runs: list[tuple[str | None, Variant, int]] = []
    for network in settings.networks or (None,):
        runs += [(network, v, settings.train_seeds[0]) for v in settings.variants]
        runs += [(network, Variant(), seed) for seed in settings.train_seeds[1:]]
    return runs


# ------------------------------------------------------------------------------------------------ metrics


def faces_metrics(samples: torch.Tensor, data: torch.Tensor, config: ExperimentConfig) -> dict[str, float]:
    """The run's own evaluation (``EVALUATORS["ffhq"]``), on ``samples`` against as many training images.

    Spectral distance, high-frequency energy (of samples and data) and their ratio (cutoff a quarter of Nyquist),
    and ``fd_local``: the Fréchet distance on :class:`~spectral_lib.metrics.fid.RandomConvFeatures` (seed 0),
    *not FID*. FID, which needs Inception weights and tens of thousands of samples, is :func:`fid_for_run`.
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


def _register_evaluator() -> None:
    from spectral_lib.experiments.run import EVALUATORS

    EVALUATORS[EXPERIMENT] = faces_metrics


_register_evaluator()


# ------------------------------------------------------------------------------------------------ runs


def run_dir_for(root: str | os.PathLike[str], profile: str, variant: Variant, *, seed: int = 0,
                network: str | None = None) -> Path:
    """``root / {profile}[-{network}] / {variant.key}-seed{seed}``: one folder per trained model."""
    head = profile if network is None else f"{profile}-{network}"
    return Path(root) / head / f"{variant.key}-seed{seed}"


def _network_overrides(network: str | None, edm_repo: str | os.PathLike[str] | None) -> dict[str, Any]:
    if network is None:
        return {}
    check_choice(network, "network", ("vp", "ve"))
    model: dict[str, Any] = {"network": f"ffhq-64x64-uncond-{network}"}
    if edm_repo is not None:
        model["edm_repo"] = str(edm_repo)
    return {"model": model}


def run_variant(
    profile: str,
    variant: Variant,
    *,
    root: str | os.PathLike[str] = "runs/faces",
    seed: int = 0,
    network: str | None = None,
    edm_repo: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    **overrides: Any,
):
    """Train (or read back) one variant through :func:`~spectral_lib.experiments.run.run_experiment`.

    The run folder is :func:`run_dir_for`; a finished run with the same configuration is reused (``resume=True``),
    so the chapter trains each variant once. ``network`` (``"vp"``/``"ve"``) and ``edm_repo`` select the pretrained
    checkpoint on the real path; ``data_dir`` is the FFHQ folder or zip (offline: ``None`` uses the stand-in).
    Wavelet variants get ``levels = FacesSettings.wavelet_levels``; ``overrides`` are any other config keys.
    """
    from spectral_lib.experiments.run import run_experiment

    changes: dict[str, Any] = {"spectral_weighting": variant.weighting}
    if variant.regularizer.startswith("wavelet"):
        changes["regularizer_kwargs"] = {"levels": faces_settings(profile).wavelet_levels}
    changes.update(_network_overrides(network, edm_repo))
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    changes.update(overrides)
    return run_experiment(
        EXPERIMENT, profile=profile, regularizer=variant.regularizer, formulation="edm",
        out=run_dir_for(root, profile, variant, seed=seed, network=network), seed=seed, resume=True,
        progress=progress, **changes,
    )


def _cached_json(path: Path, key: Mapping[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` once per ``key``: the result is stored in ``path`` (atomically) beside the key."""
    key = json.loads(json.dumps(dict(key)))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}, indent=2) + "\n")
    return value


def metrics_over_seeds(
    run_dir: str | os.PathLike[str],
    reference: torch.Tensor,
    *,
    seeds: Sequence[int],
    n: int,
    feature_seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, list[float]]:
    """Per sampling seed, ``n`` fresh samples of a run against ``reference``: ``{"fd_local": [...],
    "hf_energy_ratio": [...]}``, one value per seed.

    ``fd_local`` is the Fréchet distance on :class:`~spectral_lib.metrics.fid.RandomConvFeatures` (seed
    ``feature_seed``), **not FID**: compare values only with each other. ``hf_energy_ratio`` is
    :func:`~spectral_lib.metrics.spectrum.high_frequency_energy_ratio` (cutoff a quarter of Nyquist). Samples come
    from the run's EMA weights with its own sampler (:func:`~spectral_lib.experiments.run.sample_run`); seed ``s``
    uses generator seed ``10_000 + s`` (independent of the run's ``samples.pt``). The result is cached in
    ``run_dir/seed_metrics.json`` for these settings and this reference (its size and sum).
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
            samples = sample_run(run_dir, n=n, seed=10_000 + int(s), device=device)
            values["fd_local"].append(float(frechet_distance_local(samples, reference, seed=feature_seed)))
            values["hf_energy_ratio"].append(high_frequency_energy_ratio(samples, reference))
        return values

    return _cached_json(run_dir / "seed_metrics.json", key, compute)


def _sample_batches(run_dir: Path, n: int, seed: int, batch_size: int, device: torch.device,
                    autocast: str | None) -> Iterator[torch.Tensor]:
    """``n`` samples of a run folder in batches (never all in memory), each batch from its own seed."""
    from spectral_lib.experiments import train as train_mod
    from spectral_lib.experiments.checkpoint import load_checkpoint

    config = ExperimentConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    state = load_checkpoint(train_mod.checkpoint_path(run_dir))
    model = train_mod.build_model(config)
    model.load_state_dict(state["ema"])
    model = model.to(device).eval()
    formulation = train_mod.build_formulation(config)
    shape = tuple(state["sample_shape"])
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, None: None}[autocast]
    for i, start in enumerate(range(0, n, batch_size)):
        b = min(batch_size, n - start)
        g = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + i)
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            x = train_mod.draw_samples(formulation, model, (b, *shape), steps=config.sample_steps, generator=g,
                                       device=device, sample_kwargs=config.sample_kwargs)
        yield x.float().clamp(-1, 1)


def fid_for_run(
    run_dir: str | os.PathLike[str],
    *,
    n: int,
    seeds: Sequence[int],
    reference: str | os.PathLike[str] | tuple[np.ndarray, np.ndarray] = "ffhq-64x64",
    batch_size: int = 250,
    device: str | torch.device | None = None,
    autocast: str | None = None,
    extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """FID of a run folder's EMA network: ``n`` samples per seed, streamed (never all in memory), against
    ``reference`` statistics; cached in ``run_dir/fid.json`` for these settings.

    Args:
        run_dir: a finished run folder.
        n, seeds: samples per seed (the paper: 50 000 and 3 seeds; FID is biased upward at smaller ``n``, so
            compare numbers only at equal ``n``).
        reference: ``(mu, sigma)``, an ``.npz`` path/URL, or a key of
            :data:`~spectral_lib.models.edm_pretrained.EDM_FID_REFERENCES` (default ``"ffhq-64x64"``: EDM's exact
            FFHQ-64 statistics, downloaded once).
        autocast: ``"fp16"``/``"bf16"`` runs the network under CUDA autocast while sampling (faster; ``None``
            keeps float32).
        extractor: the feature extractor (default Inception-v3 through torch-fidelity, the FID standard; tests
            pass an offline one, and the value is then not FID: the result's ``name`` says which features).

    Returns:
        ``{"values": [FID per seed], "mean", "std" (ddof 1, 0 for one seed), "n", "seeds", "name", "seconds"}``.
    """
    from spectral_lib.device import default_device
    from spectral_lib.metrics.fid import (
        InceptionFeatures,
        compute_features,
        feature_statistics,
        frechet_distance,
        load_reference_statistics,
    )

    run_dir = Path(run_dir)
    dev = default_device(device)
    if isinstance(reference, tuple):
        mu_ref, sigma_ref = reference
        ref_key: Any = {"mu_sum": float(np.sum(mu_ref)), "dim": int(np.shape(mu_ref)[0])}
    else:
        from spectral_lib.models.edm_pretrained import fetch_edm_file

        ref_path = fetch_edm_file(EDM_FID_REFERENCES.get(str(reference), str(reference)))
        mu_ref, sigma_ref = load_reference_statistics(ref_path)
        ref_key = str(reference)
    key = {"n": int(n), "seeds": [int(s) for s in seeds], "reference": ref_key, "autocast": autocast,
           "extractor": getattr(extractor, "name", type(extractor).__name__) if extractor is not None else None}

    def compute() -> dict[str, Any]:
        feats_fn = extractor if extractor is not None else InceptionFeatures().to(dev)
        name = getattr(feats_fn, "name", "unnamed features")
        t0 = time.perf_counter()
        values = []
        for s in seeds:
            batches = _sample_batches(run_dir, int(n), int(s), int(batch_size), dev, autocast)
            features = compute_features(feats_fn, batches, device=dev)
            mu, sigma = feature_statistics(features)
            values.append(frechet_distance(mu, sigma, mu_ref, sigma_ref))
        mean, std = mean_std(values)
        return {"values": values, "mean": mean, "std": std, "n": int(n), "seeds": [int(s) for s in seeds],
                "name": name, "seconds": time.perf_counter() - t0}

    return _cached_json(run_dir / "fid.json", key, compute)


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


def paper_fid(network: str, variant: Variant) -> float | None:
    """The paper's Table 1 FID for FFHQ 64x64 (:data:`PAPER_TABLE1_FFHQ`), or ``None`` where our notes hold none."""
    return PAPER_TABLE1_FFHQ.get((network, variant.key))


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


# ------------------------------------------------------------------------------------------------ figures and tables


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (for ``IPython.display.Markdown``); floats are written as given (format them first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_edm_weight(formulation: Any, *, size: tuple[float, float] = (6.0, 3.6)):
    """``lambda_EDM(sigma)`` (the "weighted" variant's factor) against ``sigma``, log-log, with the training
    distribution of ``sigma`` (log-normal, ``ln sigma ~ N(P_mean, P_std^2)``) on a second axis."""
    from matplotlib.figure import Figure

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
    from matplotlib.figure import Figure

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
    from matplotlib.figure import Figure

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
    from matplotlib.figure import Figure
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
    from matplotlib.figure import Figure

    from spectral_lib.plotting import make_grid

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
