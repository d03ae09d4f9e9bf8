"""Named experiment configurations ("profiles"): every number a run uses lives here, never in a notebook.

A profile is an :class:`ExperimentConfig`, a frozen dataclass. Change it with :meth:`ExperimentConfig.replace`,
which refuses unknown keys. The registry :data:`REGISTRY` maps ``experiment -> {profile -> config}``; another
experiment is added by putting one more entry in it (see :func:`register_profile`).

Profiles of the checkerboard toy (32×32 grayscale, 4-pixel checks, random offsets):

- ``smoke``: a tiny UNet, 30 steps, a few samples with 10 sampling steps; trains and samples in seconds on one core
  (used by ``make test`` and by every notebook's smoke run).
- ``cpu``: shows the effect within minutes on two CPU cores: a 0.16 M-parameter UNet, 800 steps at batch 64,
  λ = 1 (unweighted), L1 spectral terms on x̂₀, EDM with 50 Heun steps. What it shows (the share of clean boards
  per regularizer, and how much it moves between training seeds) is in book chapter 5, read from its shipped
  results (``results/cpu/05_checkerboard``); chapter 6 turns λ.
- ``gpu``: 64×64 with 8-pixel checks (the paper's toy size), a wider UNet and more steps, for Colab or a workstation.

All three use the EDM formulation, where x̂₀ is the preconditioned denoiser output (the paper's image experiments).
With DDPM's ε-prediction, x̂₀ = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t multiplies the network's error by up to 1/√ᾱ_T (over a
hundred for the linear schedule): at λ = 1 the unweighted spectral term's gradient is dominated by the noisiest
steps. Chapter 6 shows what that does to a DDPM network at the cpu profile, and what a much smaller λ does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spectral_lib._checks import check_choice, check_positive

__all__ = [
    "ExperimentConfig",
    "AMP_MODES",
    "LR_SCHEDULES",
    "SPECTRAL_WEIGHTINGS",
    "REGISTRY",
    "EXPERIMENTS",
    "PROFILES",
    "get_profile",
    "profiles_for",
    "register_profile",
]

AMP_MODES = ("off", "bf16", "fp16")
"""Mixed precision: ``"off"`` (float32), ``"bf16"`` (bfloat16 autocast) or ``"fp16"`` (float16 autocast with a
gradient scaler). Used on CUDA only; on other devices training runs in float32 whatever this says."""

LR_SCHEDULES = ("constant", "cosine")
"""Learning rate after the linear warm-up: ``"constant"`` (our default, as in EDM and DDPM training), or
``"cosine"`` decay to zero at ``steps``."""

SPECTRAL_WEIGHTINGS = ("none", "formulation")
"""Weight of the spectral term per noise level: ``"none"`` (λ alone, the paper's "unweighted") or
``"formulation"`` (λ · the formulation's own weight, e.g. λ_EDM(σ), the paper's "weighted")."""

_DICT_FIELDS = ("data", "model", "formulation_kwargs", "regularizer_kwargs", "sample_kwargs")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run needs. JSON-safe through :meth:`to_dict` / :meth:`from_dict`.

    The dictionary fields are passed through to the component they configure:

    - ``data``: the data source, ``{"source": "checkerboard" | "images" | "audio", ...}`` plus that source's
      options (checkerboard: ``size``, ``channels``, ``check_sizes``, ``random_offsets``; images: ``size``; audio:
      ``length``, ``sample_rate``).
    - ``model``: ``{"name": "unet2d" | "diffwave", "preset": str, ...}`` plus keyword overrides of the preset.
    - ``formulation_kwargs``: options of the formulation's constructor (e.g. ``{"schedule": "cosine"}``).
    - ``regularizer_kwargs``: options of ``SpectralRegularizer.from_name`` (e.g. ``{"levels": 3}``).
    - ``sample_kwargs``: options of ``formulation.sample`` (e.g. DDIM's ``eta``).

    Treat the dictionaries as read-only; :meth:`replace` returns a new config.
    """

    experiment: str
    profile: str
    data: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    formulation: str = "ddpm"
    formulation_kwargs: dict[str, Any] = field(default_factory=dict)
    regularizer: str = "none"
    regularizer_kwargs: dict[str, Any] = field(default_factory=dict)
    lambda_spec: float = 1.0
    spectral_weighting: str = "none"
    batch_size: int = 64
    steps: int = 800
    lr: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    amp: str = "off"
    sample_steps: int = 50
    sample_kwargs: dict[str, Any] = field(default_factory=dict)
    n_samples: int = 64
    sample_batch_size: int = 256
    grid_samples: int = 16
    log_every: int = 10
    sample_every: int = 0
    checkpoint_every: int = 200
    num_workers: int = 0
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for name in _DICT_FIELDS:  # own copies, so that the caller's dictionaries are never shared
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
            object.__setattr__(self, name, json.loads(json.dumps(dict(value))))
        check_choice(self.amp, "amp", AMP_MODES)
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_choice(self.spectral_weighting, "spectral_weighting", SPECTRAL_WEIGHTINGS)
        check_positive(self.lambda_spec, "lambda_spec", allow_zero=True)
        check_positive(self.lr, "lr")
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        for name in ("batch_size", "steps", "sample_steps", "n_samples", "sample_batch_size", "grid_samples"):
            _check_int(getattr(self, name), name, minimum=1)
        for name in ("warmup_steps", "log_every", "sample_every", "checkpoint_every", "num_workers", "seed"):
            _check_int(getattr(self, name), name, minimum=0)

    # ------------------------------------------------------------------------------------------ changes

    def replace(self, **overrides: Any) -> ExperimentConfig:
        """A copy with ``overrides`` applied.

        Top-level keys replace the field. For the dictionary fields (``data``, ``model``, ``formulation_kwargs``,
        ``regularizer_kwargs``, ``sample_kwargs``) a dict *updates* the existing one (so ``replace(data={"size": 16})``
        keeps the other data options), and a dotted key sets one entry: ``replace(**{"model.preset": "tiny"})``.

        Raises:
            ValueError: a key is not a field (the message lists the valid ones) or a value is invalid.
        """
        valid = [f.name for f in dataclasses.fields(self)]
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            head, _, sub = key.partition(".")
            if head not in valid or (sub and head not in _DICT_FIELDS):
                raise ValueError(
                    f"unknown config key {key!r}; valid keys: {', '.join(valid)} "
                    f"(dotted keys such as 'data.size' work for {', '.join(_DICT_FIELDS)})"
                )
            if head in _DICT_FIELDS:
                current = dict(changes.get(head, getattr(self, head)))
                if sub:
                    current[sub] = value
                elif isinstance(value, Mapping):
                    current.update(value)
                else:
                    raise ValueError(f"{head} must be a dict, got {type(value).__name__}")
                changes[head] = current
            else:
                changes[head] = value
        return dataclasses.replace(self, **changes)

    def diff(self, other: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
        """``{key: (self's value, other's value)}`` for every field that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    # ------------------------------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary (``json.dumps`` works on it)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`. Missing keys take their defaults; unknown keys are refused."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(valid)}")
        for required in ("experiment", "profile"):
            if required not in values:
                raise ValueError(f"a config needs the key {required!r}, got keys {sorted(values)}")
        return cls(**dict(values))


def _check_int(value: object, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ------------------------------------------------------------------------------------------------ registry

_CHECKERBOARD_DATA = {"source": "checkerboard", "size": 32, "channels": 1, "check_sizes": [4], "random_offsets": True}

REGISTRY: dict[str, dict[str, ExperimentConfig]] = {
    "checkerboard": {
        # Seconds on one core: enough to exercise every code path, not to learn checkerboards.
        "smoke": ExperimentConfig(
            experiment="checkerboard",
            profile="smoke",
            data=dict(_CHECKERBOARD_DATA),
            model={"name": "unet2d", "preset": "tiny", "base_channels": 8, "num_groups": 4},
            formulation="edm",
            batch_size=8,
            steps=30,
            lr=1e-3,
            warmup_steps=5,
            ema_decay=0.99,
            sample_steps=10,
            n_samples=8,
            grid_samples=8,
            log_every=5,
            checkpoint_every=0,
        ),
        # The prototype's budget (see /work/shared/paper.md): 800 steps at batch 64, λ = 1, 50 sampling steps.
        # The UNet is the "tiny" preset with 8 base channels and multipliers (1, 2, 4): 0.16 M parameters, a fifth
        # of the preset's compute (our choice, so that one run takes minutes on 2 cores; chapter 5's time line
        # gives the measured time). With 16 base channels (0.64 M) the baseline's boards were already nearly ideal after
        # 800 steps and the regularizers had little left to show; with 8 the baseline smears and the effect is plain.
        # EDM (see the module docstring); lr 2e-3 with 50 warm-up steps: our choice, because at 800 steps a small
        # UNet needs a large step size.
        "cpu": ExperimentConfig(
            experiment="checkerboard",
            profile="cpu",
            data=dict(_CHECKERBOARD_DATA),
            model={"name": "unet2d", "preset": "tiny", "base_channels": 8, "channel_mults": [1, 2, 4], "num_groups": 4},
            formulation="edm",
            batch_size=64,
            steps=800,
            lr=2e-3,
            warmup_steps=50,
            ema_decay=0.995,
            sample_steps=50,
            n_samples=128,  # our choice: with 64 the share of clean boards moved by ±6 % between sampling seeds
            log_every=10,
            sample_every=200,
            checkpoint_every=200,
        ),
        # The paper's toy size (64×64), checks scaled with it; a wider UNet and more steps for a GPU.
        "gpu": ExperimentConfig(
            experiment="checkerboard",
            profile="gpu",
            data={**_CHECKERBOARD_DATA, "size": 64, "check_sizes": [8]},
            model={"name": "unet2d", "preset": "base"},
            formulation="edm",
            batch_size=128,
            steps=10_000,
            lr=5e-4,
            warmup_steps=500,
            ema_decay=0.999,
            amp="bf16",
            sample_steps=100,
            n_samples=256,
            log_every=50,
            sample_every=2_000,
            checkpoint_every=1_000,
        ),
    },
}
"""``experiment -> {profile -> ExperimentConfig}``. Extend it with :func:`register_profile`."""


def register_profile(config: ExperimentConfig, *, overwrite: bool = False) -> None:
    """Add ``config`` to the registry under ``(config.experiment, config.profile)``."""
    profiles = REGISTRY.setdefault(config.experiment, {})
    if config.profile in profiles and not overwrite:
        raise ValueError(
            f"profile {config.profile!r} of experiment {config.experiment!r} exists; pass overwrite=True to replace it"
        )
    profiles[config.profile] = config


def _experiments() -> tuple[str, ...]:
    return tuple(REGISTRY)


def _profiles() -> tuple[str, ...]:
    names: list[str] = []
    for profiles in REGISTRY.values():
        names.extend(p for p in profiles if p not in names)
    return tuple(names)


def __getattr__(name: str) -> tuple[str, ...]:
    # EXPERIMENTS and PROFILES are computed on access, so that experiments registered later (ffhq, ljspeech) appear.
    if name == "EXPERIMENTS":
        return _experiments()
    if name == "PROFILES":
        return _profiles()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def profiles_for(experiment: str) -> tuple[str, ...]:
    """The profile names of ``experiment``."""
    check_choice(experiment, "experiment", _experiments())
    return tuple(REGISTRY[experiment])


def get_profile(experiment: str, profile: str) -> ExperimentConfig:
    """The named configuration. Unknown names raise ``ValueError`` listing the valid ones."""
    check_choice(experiment, "experiment", _experiments())
    check_choice(profile, f"profile for experiment {experiment!r}", tuple(REGISTRY[experiment]))
    return REGISTRY[experiment][profile]
