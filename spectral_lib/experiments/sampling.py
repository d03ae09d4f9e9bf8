"""Drawing samples from a trained network: the formulation's sampler (DDPM's made affordable), and the EMA sample
figure the trainer saves every ``sample_every`` steps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.step import stream_seed

__all__ = ["draw_samples", "save_sample_figure"]


def draw_samples(
    formulation: Any,
    model: nn.Module,
    shape: tuple[int, ...],
    *,
    steps: int | None,
    generator: torch.Generator | None,
    device: torch.device | str,
    sample_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """``formulation.sample(model, shape, steps=steps, ...)``, with DDPM's sampler made affordable.

    DDPM's ancestral sampler walks all ``T`` training steps. When ``steps < T`` we run the ancestral sampler on a
    respaced sub-sequence of ``steps`` steps instead (DDIM with ``eta = 1``, whose update is exactly DDPM's
    posterior step between the visited steps; Song et al. 2021, Eq. 16, and the respacing of Nichol & Dhariwal
    2021), on the same schedule. DDIM and EDM use ``steps`` as given.
    """
    if getattr(formulation, "name", None) == "ddpm":
        if steps is not None and int(steps) < formulation.num_steps:
            from spectral_lib.diffusion import DDIM

            formulation = DDIM(eta=1.0, betas=formulation.betas, parameterization=formulation.parameterization,
                               clip_x0_hat=formulation.clip_x0_hat)
        else:
            steps = None
    return formulation.sample(model, shape, steps=steps, generator=generator, device=device, progress=progress,
                              **dict(sample_kwargs or {}))


def save_sample_figure(
    ema_model: nn.Module, formulation: Any, shape: tuple[int, ...], config: ExperimentConfig,
    device: torch.device, path: Path, title: str,
) -> None:
    """Sample ``config.grid_samples`` with the EMA model from a fixed seed and save a figure, leaving every
    training random state untouched."""
    from spectral_lib import plotting

    n = config.grid_samples
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        generator = torch.Generator(device=device).manual_seed(stream_seed(config.seed, "grid"))
        with torch.no_grad():
            x = draw_samples(formulation, ema_model, (n, *shape), steps=config.sample_steps, generator=generator,
                             device=device, sample_kwargs=config.sample_kwargs)
    x = x.float().clamp(-1, 1).cpu()
    if x.dim() == 4:
        fig = plotting.sample_grid(x, nrow=int(math.ceil(math.sqrt(n))), title=title)
    else:
        fig = plotting.plot_waveform(x[: min(n, 4), 0], title=title)
    plotting.save_figure(fig, path)
