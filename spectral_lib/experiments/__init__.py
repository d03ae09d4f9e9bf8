"""Experiments: named profiles, the trainer, atomic checkpoints and run folders (see ARCHITECTURE.md).

The trainer itself is :func:`spectral_lib.experiments.train.train`.

    from spectral_lib.experiments import run_experiment
    result = run_experiment("checkerboard", profile="cpu", regularizer="wavelet", formulation="ddim",
                            out="runs/haar", resume=True)   # trains once; later calls read the run folder back
"""

from spectral_lib.experiments.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spectral_lib.experiments.profiles import (
    REGISTRY,
    ExperimentConfig,
    get_profile,
    profiles_for,
    register_profile,
)
from spectral_lib.experiments.run import (
    EVALUATORS,
    RunResult,
    default_run_dir,
    evaluate_run,
    load_run,
    run_experiment,
    sample_run,
)
from spectral_lib.experiments.train import TrainResult, TrainState
from spectral_lib.experiments import speech as _speech  # noqa: E402,F401  (registers the ljspeech experiment)
from spectral_lib.experiments import images as _images  # noqa: E402,F401  registers cifar10, afhqv2, ffhq

# The trainer is ``spectral_lib.experiments.train.train``; it is not re-exported here, so that the name ``train``
# keeps meaning the module (``from spectral_lib.experiments import train as train_mod`` stays unambiguous).

__all__ = [
    "ExperimentConfig",
    "REGISTRY",
    "EXPERIMENTS",
    "PROFILES",
    "get_profile",
    "profiles_for",
    "register_profile",
    "TrainResult",
    "TrainState",
    "run_experiment",
    "RunResult",
    "sample_run",
    "evaluate_run",
    "load_run",
    "default_run_dir",
    "EVALUATORS",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
]


def __getattr__(name: str):
    # EXPERIMENTS and PROFILES follow the registry (experiments registered later appear).
    if name in ("EXPERIMENTS", "PROFILES"):
        from spectral_lib.experiments import profiles

        return getattr(profiles, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
