"""One optimizer step and what it needs: the streams' seeds, the learning-rate schedule, the autocast dtype.

:func:`training_step` is the trainer's step (and the one :mod:`spectral_lib.bench.steps` times): the only place
where the parts meet is the loss, ``diffusion_loss(formulation, model, x0, regularizer=..., lambda_spec=...)``.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from spectral_lib.experiments.profiles import ExperimentConfig

__all__ = ["stream_seed", "lr_factor", "autocast_dtype", "training_step"]


def stream_seed(seed: int, stream: str, rank: int = 0) -> int:
    """An independent 63-bit seed for the named stream (``"data"``, ``"noise"``, ``"torch"``) of one rank."""
    words = np.random.SeedSequence([int(seed), zlib.crc32(stream.encode()), int(rank)]).generate_state(2)
    return int((int(words[0]) << 31) ^ int(words[1])) & (2**63 - 1)


def lr_factor(step: int, config: ExperimentConfig) -> float:
    """Learning-rate multiplier before optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then ``1`` (``"constant"``,
    our default: EDM and DDPM train at a constant rate) or a half cosine from 1 to 0 at ``config.steps``
    (``"cosine"``).
    """
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def autocast_dtype(config: ExperimentConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``config.amp`` on ``device`` (``None``: float32; autocast only on CUDA)."""
    if config.amp == "off" or device.type != "cuda":
        return None
    if config.amp == "bf16":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        warnings.warn("amp='bf16' is not supported by this GPU; using fp16 with a gradient scaler", stacklevel=3)
    return torch.float16


def training_step(
    net: nn.Module,
    model: nn.Module,
    loss_fn: Callable[..., Any],
    formulation: Any,
    x0: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    *,
    regularizer: nn.Module | None,
    lambda_spec: float,
    spectral_weighting: str,
    grad_clip: float | None,
    generator: torch.Generator | None,
    amp_dtype: torch.dtype | None = None,
    cond: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Any, torch.Tensor]:
    """One optimizer step: ``loss_fn`` (``diffusion_loss``) under autocast, backward, clipping, AdamW.

    ``net`` is what the loss calls (the model, or its ``DistributedDataParallel`` wrapper); ``model`` owns the
    parameters. ``x0`` and ``cond`` are moved to the parameters' device. The learning rate is set by the caller.

    Returns:
        ``(LossOutput, grad_norm)``: the gradient norm before clipping (0 when ``grad_clip`` is ``None``).
    """
    device = next(model.parameters()).device
    x0 = x0.to(device, non_blocking=True)  # the loss refuses NaN or infinite x0 and cond by name
    extra = {} if cond is None else {"cond": {k: v.to(device, non_blocking=True) for k, v in cond.items()}}
    model.train()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = loss_fn(formulation, net, x0, regularizer=regularizer, lambda_spec=lambda_spec,
                      spectral_weighting=spectral_weighting, generator=generator, **extra)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out.total).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        grad_norm = torch.zeros((), device=device)
    scaler.step(optimizer)
    scaler.update()
    return out, grad_norm
