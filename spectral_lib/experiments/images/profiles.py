"""The image experiments of the paper's Table 1: data sets, variants, the paper's numbers, profiles and settings.

Three experiments, one per data set, share one pipeline (:mod:`spectral_lib.experiments.images`):

* ``cifar10``: 32x32, 10 classes (class-conditional), ``cifar10-32x32-cond-vp|ve``, 18 Heun steps (NFE 35),
  lr 2e-4 (the paper), dropout 0.13 (EDM's CIFAR-10 training value; the paper gives none);
* ``afhqv2``: 64x64, unconditional, ``afhqv2-64x64-uncond-vp|ve``, 40 steps (NFE 79), lr 5e-5, dropout 0.25;
* ``ffhq``: 64x64, unconditional, ``ffhq-64x64-uncond-vp|ve``, 40 steps, lr 5e-5, dropout 0.05.

* **Real path** (profiles ``gpu`` and ``full``): *fine-tune* NVIDIA's pretrained EDM network (VP = DDPM++, VE =
  NCSN++) with each regularizer, weighted by ``lambda_EDM(sigma)`` or not, sample with EDM's deterministic Heun
  sampler and measure FID against NVIDIA's published statistics (:mod:`~spectral_lib.experiments.images.fid`).
  Fine-tuning as the paper: batch 16, the lr and dropout above. ``gpu`` is one Colab session (a short fine-tune of
  two rows, 10 000-sample FID, one seed); ``full`` is the paper's protocol (every row, both networks, 0.5 Mimg,
  FID-50k x 3 seeds; :func:`~spectral_lib.experiments.images.results.full_cost` says how many GPU-hours).
* **Offline path** (``smoke``, ``cpu``; registered under ``ffhq``): the dead-leaves stand-in in FFHQ's folder layout
  and our small UNet trained from scratch; spectra, high-frequency energy and a Fréchet distance on local random
  features, which is **not FID**. Beside the paper's rows it trains our additive amplitude + phase coupling
  (:data:`BEYOND_PAPER_NAMES`), labelled as ours.

Choices the paper leaves open, and ours (each is a parameter):

* **Fine-tune length.** "5 optimisation steps" (text) or "duration 0.5" (table; EDM's ``--duration`` is in Mimg:
  31 250 steps at batch 16): :data:`PAPER_FINETUNE_STEPS`. ``full`` uses the table's, ``gpu`` 500 steps.
* **Learning-rate ramp.** EDM ramps the rate over 10 Mimg (``lr_rampup_kimg=10000``), from zero again with
  ``--transfer``: a 0.5 Mimg fine-tune reaches 5 % of its rate. ``full`` keeps that ramp; ``gpu`` warms up over 50
  steps (our choice: a short fine-tune that never reaches its rate changes nothing).
* **Scale of the spectral term.** EDM sums its loss over ``C H W`` pixels; ours are means, so a per-image mean
  spectral term added to EDM's sum would be ``1 / (C H W)`` as strong as ours: :data:`LAMBDA_SPEC_READINGS`.
* **Augmentation.** The networks were trained with EDM's augmentation pipe (p = 0.15 at 64x64, 0.12 CIFAR-10); we
  do not augment. The network's augment layer gets zero labels (no bias: the same output), so it stays in the graph.
* **EMA.** EDM's half-life is 500 kimg, ramped to 5 % of the images seen; ours ramps as ``(1 + n) / (10 + n)``
  (about 8 % of the steps) and is capped at ``ema_decay`` (the same 500 kimg at ``full``).
* **Sampling precision for FID.** As EDM's ``generate.py``: the network in float32, the Heun steps in float64
  (:class:`ImageSettings` ``sampler_dtype``); autocast only when asked (``fid_autocast``), and then the result
  says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spectral_lib._checks import check_choice
from spectral_lib.experiments.profiles import REGISTRY, ExperimentConfig, register_profile

__all__ = [
    "DATASETS",
    "ImageDataset",
    "EDM_AUGMENT",
    "OFFLINE_EXPERIMENT",
    "Variant",
    "ALL_VARIANTS",
    "PAPER_NAMES",
    "BEYOND_PAPER_NAMES",
    "PAPER_TABLE1",
    "PAPER_BEST",
    "PAPER_CIFAR10_RANGE",
    "PAPER_FINETUNE_STEPS",
    "LAMBDA_SPEC_READINGS",
    "PROFILES",
    "ImageSettings",
    "settings",
    "planned_runs",
    "paper_fid",
    "edm_network_name",
]


@dataclass(frozen=True)
class ImageDataset:
    """One data set of Table 1 and the paper's fine-tuning settings for it."""

    name: str
    title: str
    resolution: int
    label_dim: int
    sample_steps: int  # EDM's: 18 (NFE 35) at 32x32, 40 (NFE 79) at 64x64
    lr: float  # the paper's fine-tuning rate
    dropout: float  # EDM's training dropout of that network (the paper: 0.05 FFHQ, 0.25 AFHQv2)
    fid_reference: str  # key of EDM_FID_REFERENCES


DATASETS: dict[str, ImageDataset] = {
    "cifar10": ImageDataset("cifar10", "CIFAR-10 32x32 (class-conditional)", 32, 10, 18, 2e-4, 0.13,
                            "cifar10-32x32"),
    "afhqv2": ImageDataset("afhqv2", "AFHQv2 64x64", 64, 0, 40, 5e-5, 0.25, "afhqv2-64x64"),
    "ffhq": ImageDataset("ffhq", "FFHQ 64x64", 64, 0, 40, 5e-5, 0.05, "ffhq-64x64"),
}
"""Table 1's data sets in the paper's order; each is an experiment of the same name."""

EDM_AUGMENT: dict[str, float] = {"cifar10": 0.12, "afhqv2": 0.15, "ffhq": 0.15}
"""The augmentation probability EDM trained each network with (its README's training commands); we do not augment
when fine-tuning (see the module docstring)."""

OFFLINE_EXPERIMENT = "ffhq"
"""The experiment whose ``smoke``/``cpu`` profiles are the offline path (stand-in data in FFHQ's layout)."""


def edm_network_name(dataset: str, network: str) -> str:
    """The official checkpoint of ``dataset`` and ``network`` (``"vp"``/``"ve"``), e.g. ``cifar10-32x32-cond-vp``."""
    check_choice(dataset, "dataset", tuple(DATASETS))
    check_choice(network, "network", ("vp", "ve"))
    spec = DATASETS[dataset]
    cond = "cond" if spec.label_dim else "uncond"
    return f"{dataset}-{spec.resolution}x{spec.resolution}-{cond}-{network}"


PAPER_NAMES: dict[str, str] = {
    "none": "baseline",
    "fourier_amp": "AMP",
    "fourier_amp_phase": "AMPPHASE",
    "wavelet": "HAAR",
    "wavelet_bior13": "BIOR13",
}
"""Our regularizer names -> the names of the paper's Table 1."""

BEYOND_PAPER_NAMES: dict[str, str] = {
    "fourier_amp_phase_safe": "AMP+PHASE additive (ours)",
}
"""Regularizers the offline chapter compares beside the paper's rows, labelled as ours: ``fourier_amp_phase_safe`` is
our additive amplitude + phase coupling (chapter 2), next to ``fourier_amp_phase``, which is Eq. 15 as printed."""

WEIGHTINGS = {"none": "unweighted", "formulation": "weighted"}


@dataclass(frozen=True)
class Variant:
    """One row of Table 1: a regularizer and its weighting (``"none"``: lambda alone, the paper's "unweighted";
    ``"formulation"``: lambda times lambda_EDM(sigma), "weighted"). The baseline is ``Variant("none")``."""

    regularizer: str = "none"
    weighting: str = "none"

    def __post_init__(self) -> None:
        check_choice(self.regularizer, "regularizer", (*PAPER_NAMES, *BEYOND_PAPER_NAMES))
        check_choice(self.weighting, "weighting", tuple(WEIGHTINGS))
        if self.regularizer == "none" and self.weighting != "none":
            raise ValueError("the baseline (regularizer 'none') has no spectral term to weight; use weighting 'none'")

    @property
    def key(self) -> str:
        """A file-name-safe key: ``baseline``, ``wavelet-unweighted``, ``fourier_amp-weighted``..."""
        return "baseline" if self.regularizer == "none" else f"{self.regularizer}-{WEIGHTINGS[self.weighting]}"

    @property
    def label(self) -> str:
        """The paper's name: ``baseline``, ``HAAR (unweighted)``, ``AMP (weighted)``...; ours say so:
        ``AMP+PHASE additive (ours, unweighted)``."""
        if self.regularizer in BEYOND_PAPER_NAMES:
            return BEYOND_PAPER_NAMES[self.regularizer].replace("(ours)", f"(ours, {WEIGHTINGS[self.weighting]})")
        name = PAPER_NAMES[self.regularizer]
        return name if self.regularizer == "none" else f"{name} ({WEIGHTINGS[self.weighting]})"

    @property
    def paper(self) -> bool:
        """Whether this is one of the paper's rows (the baseline included)."""
        return self.regularizer in PAPER_NAMES

    @classmethod
    def from_key(cls, key: str) -> Variant:
        """Inverse of :attr:`key` (the paper's rows and ours)."""
        if key == "baseline":
            return cls()
        regularizer, _, weighting = key.rpartition("-")
        inverse = {v: k for k, v in WEIGHTINGS.items()}
        if weighting not in inverse:
            raise ValueError(f"unknown variant key {key!r}; valid: {', '.join(v.key for v in ALL_VARIANTS)}")
        if regularizer not in PAPER_NAMES and regularizer not in BEYOND_PAPER_NAMES:
            raise ValueError(f"unknown variant key {key!r}; valid: {', '.join(v.key for v in ALL_VARIANTS)}")
        return cls(regularizer, inverse[weighting])


_REGULARIZERS = ("fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13")
ALL_VARIANTS: tuple[Variant, ...] = (Variant(),) + tuple(
    Variant(r, w) for w in ("none", "formulation") for r in _REGULARIZERS
)
"""The baseline and the eight regularized rows of the paper's Table 1."""

PAPER_TABLE1: dict[tuple[str, str, str], float] = {
    ("ffhq", "vp", "baseline"): 2.38,
    ("ffhq", "vp", "fourier_amp-unweighted"): 2.31,
    ("ffhq", "ve", "baseline"): 2.56,
    ("ffhq", "ve", "fourier_amp_phase-weighted"): 2.49,
    ("ffhq", "ve", "wavelet-unweighted"): 2.49,
    ("afhqv2", "vp", "baseline"): 2.04,
    ("afhqv2", "ve", "baseline"): 2.17,
}
"""FID of the paper's Table 1 that our notes hold row by row (mean over 3 seeds of 50 000 samples):
``(dataset, network, Variant.key) -> FID``. Its other rows and its standard deviations are in the paper; gains are
0.02-0.07 FID, about 1-2 standard deviations."""

PAPER_BEST: dict[tuple[str, str], float] = {
    ("ffhq", "vp"): 2.31, ("ffhq", "ve"): 2.49, ("afhqv2", "vp"): 2.03, ("afhqv2", "ve"): 2.13,
}
"""The paper's best regularized FID per data set and network (for AFHQv2 our notes do not say which row)."""

PAPER_CIFAR10_RANGE: tuple[float, float] = (1.81, 1.84)
"""CIFAR-10: every row of the paper's table lies in this FID range ("no change beyond noise")."""

PAPER_FINETUNE_STEPS: dict[str, int] = {"text": 5, "table": 31_250}
"""The paper's two readings of the fine-tune length at batch 16: "5 optimisation steps" (text) and "duration 0.5"
(table; EDM's ``--duration`` is in Mimg: 500 000 images / 16 = 31 250 steps)."""

LAMBDA_SPEC_READINGS: dict[str, float] = {"per_pixel_mean": 1.0, "edm_summed_loss": 1.0 / (3 * 64 * 64)}
"""``lambda_spec`` for two readings of how the paper scales its spectral term against EDM's loss at 64x64 RGB:
ours (both terms are per-image means) and "a mean spectral term added to EDM's per-image *sum* over 3 x 64 x 64
pixels" (then the term is 12 288 times weaker relative to the MSE; at 32x32, 3 072 times)."""


def paper_fid(dataset: str, network: str, variant: Variant) -> float | None:
    """The paper's FID for one row (:data:`PAPER_TABLE1`), or ``None`` where our notes hold none."""
    return PAPER_TABLE1.get((dataset, network, variant.key))


# ------------------------------------------------------------------------------------------------ profiles


def _offline(profile: str, **changes: Any) -> ExperimentConfig:
    base = dict(experiment=OFFLINE_EXPERIMENT, profile=profile, formulation="edm", regularizer="none",
                lambda_spec=1.0, spectral_weighting="none", grad_clip=1.0, checkpoint_every=0)
    base.update(changes)
    return ExperimentConfig(**base)


_STANDIN = {"seed": 0, "coverage": 2.0}
"""Dead-leaves options of the offline profiles: shapes of at least 3 pixels at the training size and a coverage
of 2 (our choice: flat shapes with sharp edges that a UNet of a few hundred thousand parameters learns within
minutes; the writer's defaults, 1-pixel leaves at coverage 6, give a texture that such a model only turns into
coloured noise)."""

_OFFLINE: dict[str, ExperimentConfig] = {
    # Seconds on one core: every code path (stand-in -> loader -> UNet -> EDM -> regularizer -> Heun -> metrics).
    "smoke": _offline(
        "smoke",
        data={"source": "images", "resolution": 16, "standin": {**_STANDIN, "n": 48, "resolution": 32, "r_min": 3.0}},
        model={"name": "unet2d", "preset": "tiny", "in_channels": 3, "base_channels": 8, "num_groups": 4,
               "image_size": 16},
        batch_size=8, steps=20, lr=2e-3, warmup_steps=5, ema_decay=0.99, sample_steps=6, n_samples=24,
        sample_batch_size=64, grid_samples=16, log_every=5,
    ),
    # About a minute per variant on 2 CPU cores: 32x32 RGB dead leaves (written at 64 and resized by the loader),
    # the "tiny" UNet at 16 base channels (0.27 M parameters; 8 steps/s at batch 32 on 2 idle cores, twice the
    # 32-channel preset's speed: our choice, so that the eleven runs of the chapter train in about 16 minutes and
    # the whole chapter retrains in about 25), EDM training from scratch, 12 Heun steps.
    "cpu": _offline(
        "cpu",
        data={"source": "images", "resolution": 32, "standin": {**_STANDIN, "n": 1024, "resolution": 64, "r_min": 6.0}},
        model={"name": "unet2d", "preset": "tiny", "in_channels": 3, "base_channels": 16, "image_size": 32},
        batch_size=32, steps=600, lr=2e-3, warmup_steps=50, ema_decay=0.995, sample_steps=12, n_samples=256,
        sample_batch_size=256, grid_samples=16, log_every=20, checkpoint_every=200,
    ),
}


def _real(dataset: str, profile: str) -> ExperimentConfig:
    spec = DATASETS[dataset]
    common: dict[str, Any] = dict(
        experiment=dataset, profile=profile, formulation="edm", regularizer="none",
        data={"source": "images", "resolution": spec.resolution, **({"use_labels": True} if spec.label_dim else {})},
        model={"name": "edm_pretrained", "network": edm_network_name(dataset, "vp"), "dropout": spec.dropout},
        lambda_spec=1.0, spectral_weighting="none",
        batch_size=16,  # as the paper (EDM's fine-tuning setting)
        lr=spec.lr, weight_decay=0.0,  # EDM's Adam has none
        grad_clip=None,  # EDM does not clip (it zeroes NaN gradients)
        amp="off",  # EDM trained these networks in float32
        sample_steps=spec.sample_steps,
        n_samples=500,  # for the spectra and the local FD; FID draws its own (fid.fid_for_run)
        sample_batch_size=250, grid_samples=16, log_every=25,
    )
    if profile == "gpu":  # one Colab session: a short fine-tune, lr warm-up over 50 steps
        return ExperimentConfig(steps=500, warmup_steps=50, ema_decay=0.999, checkpoint_every=250, **common)
    # the paper's protocol: duration 0.5 Mimg, EDM's lr ramp over 10 Mimg and its EMA cap (half-life 500 kimg)
    return ExperimentConfig(steps=PAPER_FINETUNE_STEPS["table"], warmup_steps=625_000,
                            ema_decay=0.5 ** (16 / 500_000), checkpoint_every=2_500, **common)


PROFILES: dict[str, dict[str, ExperimentConfig]] = {
    name: ({**_OFFLINE} if name == OFFLINE_EXPERIMENT else {}) | {p: _real(name, p) for p in ("gpu", "full")}
    for name in DATASETS
}
"""``experiment -> {profile -> config}`` (registered on import)."""


def _register() -> None:
    for profiles in PROFILES.values():
        for config in profiles.values():
            if REGISTRY.get(config.experiment, {}).get(config.profile) != config:
                register_profile(config, overwrite=True)


_register()


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class ImageSettings:
    """What the chapter runs and measures at one profile (the training settings are the profile's config).

    Attributes:
        variants: the Table 1 rows to train (baseline first).
        beyond_paper: rows of ours trained beside them (:data:`BEYOND_PAPER_NAMES`; offline only).
        networks: pretrained EDM networks (``"vp"``, ``"ve"``) for the real path; empty offline.
        train_seeds: training seeds of the baseline (a second seed shows how far training noise alone moves the
            numbers); the other variants use the first.
        fd_seeds, fd_samples: sampling seeds and samples per seed of the local-feature Fréchet distance.
        fd_reference: real images in the FD's reference set.
        fid_samples, fid_seeds, fid_batch_size: the FID protocol (real path only; 0 = none). FID seed ``k`` draws
            the images of seeds ``k n ... (k + 1) n - 1``, as EDM's README recommends for repeats.
        fid_autocast: ``None`` (default: the network in float32, as NVIDIA samples it) or ``"fp16"``/``"bf16"``
            (faster; the result is then labelled with it).
        sampler_dtype: the Heun integrator's dtype for FID (``"float64"`` as EDM's ``generate.py``).
        crop: side of the zoomed crops, in pixels.
        timing_images: images decoded to time the loader (first read against cached read).
        wavelet_levels: DWT levels of the wavelet terms (the paper gives none; 3 is our choice; ``smoke`` uses 2,
            because bior1.3's 6 taps do not fit three levels of a 16-pixel image).
        tf32: allow TensorFloat-32 matrix products on CUDA (faster on Ampere and later; EDM's training turns them
            off, and so does ``full``; ``gpu`` turns them on, our choice for time, and says so in its results).
    """

    variants: tuple[Variant, ...]
    beyond_paper: tuple[Variant, ...] = ()
    networks: tuple[str, ...] = ()
    train_seeds: tuple[int, ...] = (0,)
    fd_seeds: tuple[int, ...] = (0, 1, 2)
    fd_samples: int = 256
    fd_reference: int = 512
    fid_samples: int = 0
    fid_seeds: tuple[int, ...] = ()
    fid_batch_size: int = 250
    fid_autocast: str | None = None
    sampler_dtype: str = "float32"
    crop: int = 12
    timing_images: int = 256
    wavelet_levels: int = 3
    tf32: bool = False

    @property
    def real(self) -> bool:
        """True for the real path (pretrained EDM, real data, Inception FID)."""
        return bool(self.networks)


_OURS = (Variant("fourier_amp_phase_safe"),)

_SETTINGS: dict[str, ImageSettings] = {
    # every regularizer once, one weighted variant, two baseline seeds: every code path in seconds
    "smoke": ImageSettings(variants=(Variant(),) + tuple(Variant(r) for r in _REGULARIZERS)
                           + (Variant("wavelet", "formulation"),), beyond_paper=_OURS, train_seeds=(0, 1),
                           fd_seeds=(0, 1), fd_samples=24, fd_reference=48, crop=6, timing_images=48,
                           wavelet_levels=2),
    # our additive coupling beside Eq. 15 as printed, unweighted only (every weighted row is far off at lambda = 1)
    "cpu": ImageSettings(variants=ALL_VARIANTS, beyond_paper=_OURS, train_seeds=(0, 1), fd_seeds=(0, 1, 2),
                         fd_samples=256, fd_reference=1024, crop=10, timing_images=512),
    # the baseline and the paper's best FFHQ-VP row (AMP, unweighted), VP only, FID-10k once: one Colab session
    "gpu": ImageSettings(variants=(Variant(), Variant("fourier_amp")), networks=("vp",), fd_seeds=(0,),
                         fd_samples=500, fd_reference=5_000, fid_samples=10_000, fid_seeds=(0,),
                         sampler_dtype="float64", crop=16, timing_images=2_000, tf32=True),
    "full": ImageSettings(variants=ALL_VARIANTS, networks=("vp", "ve"), fd_seeds=(0,), fd_samples=1_000,
                          fd_reference=5_000, fid_samples=50_000, fid_seeds=(0, 1, 2), sampler_dtype="float64",
                          crop=16, timing_images=2_000),
}


def settings(profile: str) -> ImageSettings:
    """The chapter's settings at ``profile`` (``smoke``, ``cpu``, ``gpu``, ``full``)."""
    check_choice(profile, "profile for the image experiments", tuple(_SETTINGS))
    return _SETTINGS[profile]


def planned_runs(profile: str) -> list[tuple[str | None, Variant, int]]:
    """``(network, variant, training seed)`` of every model the chapter trains at ``profile``: each variant (the
    paper's, then ours) with the first training seed, plus the baseline with the others; per pretrained network on
    the real path (``network`` is ``None`` offline)."""
    chosen = settings(profile)
    runs: list[tuple[str | None, Variant, int]] = []
    for network in chosen.networks or (None,):
        runs += [(network, v, chosen.train_seeds[0]) for v in chosen.variants + chosen.beyond_paper]
        runs += [(network, Variant(), seed) for seed in chosen.train_seeds[1:]]
    return runs
