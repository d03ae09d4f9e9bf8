"""Diffusion formulations (DDPM, DDIM, EDM), their schedules and the training objective.

Every formulation implements the interface of ARCHITECTURE.md: ``sample_levels``, ``corrupt``, ``denoise``,
``pointwise_loss``, ``spectral_weight`` and ``sample``; :func:`diffusion_loss` combines one with a network and an
optional spectral regularizer.
"""

from __future__ import annotations

import inspect
from typing import Any

from spectral_lib._checks import check_choice
from spectral_lib.diffusion.ddim import DDIM, DIFFWAVE_FAST_BETAS, ddim_step, fast_sample
from spectral_lib.diffusion.ddpm import DDPM, PARAMETERIZATIONS, Denoised
from spectral_lib.diffusion.edm import EDM, edm_loss_weight, edm_preconditioning, edm_sampler
from spectral_lib.diffusion.objective import SPECTRAL_WEIGHTINGS, LossOutput, diffusion_loss
from spectral_lib.diffusion.schedules import (
    alpha_bar_from_betas,
    cosine_alpha_bar,
    cosine_betas,
    ddim_timesteps,
    fast_sampling_steps,
    karras_sigmas,
    linear_betas,
    sigma_from_alpha_bar,
)

__all__ = [
    "FORMULATIONS",
    "make_formulation",
    "DDPM",
    "DDIM",
    "EDM",
    "Denoised",
    "LossOutput",
    "diffusion_loss",
    "PARAMETERIZATIONS",
    "SPECTRAL_WEIGHTINGS",
    "DIFFWAVE_FAST_BETAS",
    "ddim_step",
    "fast_sample",
    "edm_preconditioning",
    "edm_loss_weight",
    "edm_sampler",
    "linear_betas",
    "cosine_betas",
    "cosine_alpha_bar",
    "alpha_bar_from_betas",
    "sigma_from_alpha_bar",
    "karras_sigmas",
    "ddim_timesteps",
    "fast_sampling_steps",
]

FORMULATIONS: tuple[str, ...] = ("ddpm", "ddim", "edm")
_CLASSES = {"ddpm": DDPM, "ddim": DDIM, "edm": EDM}


def make_formulation(name: str, **kwargs: Any) -> DDPM | DDIM | EDM:
    """Build a formulation by name: ``"ddpm"``, ``"ddim"`` or ``"edm"``; ``kwargs`` go to its constructor.

    Example: DiffWave's schedule with its 6-step fast sampler:
    ``make_formulation("ddim", num_steps=50, beta_end=0.05, inference_betas=DIFFWAVE_FAST_BETAS)``.
    """
    check_choice(name, "formulation", FORMULATIONS)
    cls = _CLASSES[name]
    valid = _constructor_arguments(cls)
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for formulation {name!r}; valid: {sorted(valid)}")
    return cls(**kwargs)


def _constructor_arguments(cls: type) -> set[str]:
    """Keyword names accepted by ``cls`` and, through ``**kwargs``, by its parents (DDIM passes on to DDPM)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    names.discard("self")
    return names
