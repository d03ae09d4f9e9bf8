"""The training objective: where a formulation, a network and a spectral regularizer meet.

    L_total = L_diffusion + lambda_spec * w(level) * L_S(x0_hat, x0)

(the spectral paper's total loss; ``w`` is 1, "unweighted", or the formulation's ``spectral_weight``, e.g.
``lambda_EDM(sigma)``, "weighted"). ``x0_hat`` is the one-step clean-signal estimate at the level drawn for the
ordinary loss (the paper's Eq. 5 for DDPM; ``D_theta`` for EDM), so the spectral term costs one regularizer call
and no extra network call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from spectral_lib._checks import check_choice, check_positive, check_signal
from spectral_lib.diffusion.ddpm import Denoised, draw_noise

__all__ = ["SPECTRAL_WEIGHTINGS", "Formulation", "LossOutput", "diffusion_loss"]

SPECTRAL_WEIGHTINGS: tuple[str, ...] = ("none", "formulation")


class Formulation(Protocol):
    """What ``diffusion_loss`` needs from a formulation (DDPM, DDIM and EDM implement it; see ARCHITECTURE.md)."""

    def sample_levels(
        self, batch_size: int, *, device: torch.device | str | None = ..., generator: torch.Generator | None = ...
    ) -> torch.Tensor: ...

    def corrupt(self, x0: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor: ...

    def denoise(
        self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, levels: torch.Tensor, *,
        cond: Mapping[str, Any] | None = ...,
    ) -> Denoised: ...

    def pointwise_loss(
        self, denoised: Denoised, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor: ...

    def spectral_weight(self, levels: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class LossOutput:
    """The training loss and what to log.

    Attributes:
        total: scalar, the mean over the batch of ``pointwise + lambda_spec * w * spectral``; backpropagate this.
        parts: detached scalars: ``"diffusion"`` (the formulation's loss), ``"spectral"`` (mean of ``w * L_S``,
            before ``lambda_spec``; 0 without a regularizer) and each of the regularizer's terms (unweighted means).
        x0_hat: the clean-signal estimate, detached, shape of ``x0`` (for figures and metrics).
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]
    x0_hat: torch.Tensor


def diffusion_loss(
    formulation: Formulation,
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    *,
    regularizer: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
    lambda_spec: float = 1.0,
    spectral_weighting: str = "none",
    cond: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """One training loss evaluation: draw levels and noise, corrupt, denoise, add the spectral term.

    Steps (draws in this order, from ``generator``): ``levels = formulation.sample_levels(B)``;
    ``noise ~ N(0, I)`` of ``x0``'s shape; ``x_t = corrupt(x0, levels, noise)``;
    ``denoised = denoise(model, x_t, levels, cond=cond)`` (the model is called as ``model(x_t, noise_cond, **cond)``);
    ``L = pointwise_loss(...) + lambda_spec * w(levels) * regularizer(x0_hat, x0).total``.

    Args:
        formulation: a DDPM, DDIM or EDM instance (see :func:`~spectral_lib.diffusion.make_formulation`).
        model: the network.
        x0: clean data ``(B, C, T)`` or ``(B, C, H, W)`` in ``[-1, 1]``.
        regularizer: callable ``(x0_hat, x0) -> obj`` with ``obj.total`` ``(B,)`` and ``obj.terms`` a dict of ``(B,)``
            (e.g. ``spectral_lib.spectral.SpectralRegularizer``); ``None`` for the plain objective.
        lambda_spec: the spectral weight ``lambda`` (>= 0). With ``0`` (or no regularizer) the regularizer is not
            called and ``total`` is exactly the formulation's standard objective.
        spectral_weighting: ``"none"`` (``w = 1``, the paper's "unweighted") or ``"formulation"``
            (``w = formulation.spectral_weight(levels)``, e.g. ``lambda_EDM(sigma)``, the paper's "weighted").
        cond: keyword arguments passed to the model (e.g. ``{"mel": mel}`` for a vocoder); float tensors among
            them must be finite, like ``x0``.
        generator: source of all randomness of this call.

    Returns:
        :class:`LossOutput`.
    """
    check_signal(x0, "x0", ranks=(3, 4))
    check_positive(lambda_spec, "lambda_spec", allow_zero=True)
    check_choice(spectral_weighting, "spectral_weighting", SPECTRAL_WEIGHTINGS)
    if cond is not None and not isinstance(cond, Mapping):
        raise ValueError(f"cond must be a mapping of keyword arguments for the model, got {type(cond).__name__}")
    for key, value in (cond or {}).items():  # a NaN mel gives a NaN loss without a word: refuse it by name, as x0
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            n_bad = int((~torch.isfinite(value)).sum())
            if n_bad:
                raise ValueError(f"cond[{key!r}] contains {n_bad} NaN or infinite value(s); the model would learn "
                                 "from NaN (check the data it comes from)")

    batch = x0.shape[0]
    levels = formulation.sample_levels(batch, device=x0.device, generator=generator)
    noise = draw_noise(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = formulation.corrupt(x0, levels, noise)
    denoised = formulation.denoise(model, x_t, levels, cond=cond)
    pointwise = formulation.pointwise_loss(denoised, x0, noise, levels)  # (B,)
    if pointwise.shape != (batch,):
        raise ValueError(f"formulation.pointwise_loss must return shape ({batch},), got {tuple(pointwise.shape)}")

    parts: dict[str, torch.Tensor] = {"diffusion": pointwise.detach().mean()}
    if regularizer is None or float(lambda_spec) == 0.0:
        parts["spectral"] = torch.zeros((), device=x0.device, dtype=pointwise.dtype)
        return LossOutput(total=pointwise.mean(), parts=parts, x0_hat=denoised.x0_hat.detach())

    reg = regularizer(denoised.x0_hat, x0)
    spectral = reg.total
    if not isinstance(spectral, torch.Tensor) or spectral.shape != (batch,):
        got = tuple(spectral.shape) if isinstance(spectral, torch.Tensor) else type(spectral).__name__
        raise ValueError(f"regularizer(...).total must be a ({batch},) tensor, one value per sample, got {got}")
    if spectral_weighting == "formulation":
        spectral = formulation.spectral_weight(levels).to(device=spectral.device, dtype=spectral.dtype) * spectral
    total = (pointwise + float(lambda_spec) * spectral).mean()
    parts["spectral"] = spectral.detach().mean()
    for name, term in reg.terms.items():
        if name in parts:
            raise ValueError(f"regularizer term name {name!r} clashes with a reserved part name")
        parts[name] = term.detach().mean()
    return LossOutput(total=total, parts=parts, x0_hat=denoised.x0_hat.detach())
