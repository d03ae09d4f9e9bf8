"""Noise schedules: pure functions from a few numbers to a 1-D float64 tensor.

Conventions (the same in every formulation of this package):

- Discrete time (DDPM/DDIM) counts from ``t = 0`` (the least noisy step) to ``t = T - 1``;
  ``alpha_bar[t] = prod_{s <= t} (1 - beta[s])`` (Ho et al. 2020, Eq. 4 with a 0-based index, as in the public
  DDPM and DiffWave code).
- Continuous noise level (EDM) is ``sigma``, the standard deviation of the noise added to the data
  (Karras et al. 2022, ``sigma(t) = t``).
- A discrete step and a noise level correspond through ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``
  (the variance-preserving process rescaled to a variance-exploding one; Karras et al. 2022, Table 1, "VP").

Schedules are float64 so that ``alpha_bar`` near 0 and near 1 keeps its digits; the formulations cast them to the
data's dtype at the point of use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from spectral_lib._checks import check_choice, check_positive

__all__ = [
    "BETA_SCHEDULES",
    "DDIM_SPACINGS",
    "linear_betas",
    "cosine_alpha_bar",
    "cosine_betas",
    "make_betas",
    "alpha_bar_from_betas",
    "betas_from_alpha_bar",
    "sigma_from_alpha_bar",
    "alpha_bar_from_sigma",
    "karras_sigmas",
    "ddim_timesteps",
    "fast_sampling_steps",
]

BETA_SCHEDULES: tuple[str, ...] = ("linear", "cosine")
DDIM_SPACINGS: tuple[str, ...] = ("uniform", "quadratic")


def _check_num_steps(num_steps: int, name: str = "num_steps") -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"{name} must be a positive integer, got {num_steps!r}")
    return int(num_steps)


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linearly spaced ``beta_t`` (Ho et al. 2020, Sec. 4: ``T = 1000``, ``beta`` from ``1e-4`` to ``0.02``).

    DiffWave (Kong et al. 2021) uses the same shape with ``num_steps=50, beta_end=0.05``.

    Returns:
        ``(num_steps,)`` float64 tensor, ``beta_start`` first and ``beta_end`` last.
    """
    num_steps = _check_num_steps(num_steps)
    check_positive(beta_start, "beta_start")
    check_positive(beta_end, "beta_end")
    if not (beta_start <= beta_end < 1):
        raise ValueError(f"need beta_start <= beta_end < 1, got beta_start={beta_start!r}, beta_end={beta_end!r}")
    return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)


def cosine_alpha_bar(num_steps: int = 1000, s: float = 0.008) -> torch.Tensor:
    """The cosine schedule's ``alpha_bar_t`` at ``t = 0 .. T-1`` (Nichol & Dhariwal 2021, Eq. 17).

    ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``; our index ``t`` is
    their ``t + 1`` (their ``alpha_bar_0 = 1`` is the clean data, which no step of ours reaches).
    The values are those implied by :func:`cosine_betas` (including its clipping of ``beta`` at 0.999).

    Returns:
        ``(num_steps,)`` float64 tensor, decreasing from just below 1 to about 0.
    """
    return alpha_bar_from_betas(cosine_betas(num_steps, s=s))


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """``beta_t = 1 - alpha_bar(t + 1) / alpha_bar(t)``, clipped to ``max_beta`` (Nichol & Dhariwal 2021, Eq. 17
    and the clipping at 0.999 of Sec. 3.2 "to prevent singularities at the end of the diffusion process").

    Returns:
        ``(num_steps,)`` float64 tensor.
    """
    num_steps = _check_num_steps(num_steps)
    check_positive(s, "s")
    if not (0 < max_beta < 1):
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta!r}")
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1.0 - f[1:] / f[:-1]
    return betas.clamp(max=max_beta)


def make_betas(
    schedule: str = "linear", num_steps: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """``beta_t`` of a named schedule: ``"linear"`` (uses ``beta_start``/``beta_end``) or ``"cosine"``."""
    check_choice(schedule, "schedule", BETA_SCHEDULES)
    if schedule == "linear":
        return linear_betas(num_steps, beta_start, beta_end)
    return cosine_betas(num_steps)


def _as_float64_1d(values: object, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def alpha_bar_from_betas(betas: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` (Ho et al. 2020, notation above Eq. 4).

    Args:
        betas: ``(T,)`` values in ``(0, 1)``.

    Returns:
        ``(T,)`` float64 tensor.
    """
    betas = _as_float64_1d(betas, "betas")
    if bool(((betas <= 0) | (betas >= 1)).any()):
        raise ValueError(f"betas must lie in (0, 1), got min {betas.min().item()!r} and max {betas.max().item()!r}")
    return torch.cumprod(1.0 - betas, dim=0)


def betas_from_alpha_bar(alpha_bar: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`alpha_bar_from_betas`: ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}``, with
    ``alpha_bar_{-1} = 1``."""
    alpha_bar = _as_float64_1d(alpha_bar, "alpha_bar")
    previous = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return 1.0 - alpha_bar / previous


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """The equivalent EDM noise level of a DDPM step: ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``.

    ``x_t = sqrt(alpha_bar) (x_0 + sigma * eps)``: dividing a DDPM sample by ``sqrt(alpha_bar)`` gives an EDM sample
    at noise level ``sigma`` (Karras et al. 2022, Table 1, VP column, with ``s(t) = sqrt(alpha_bar)``).
    """
    return torch.sqrt((1.0 - alpha_bar) / alpha_bar)


def alpha_bar_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`sigma_from_alpha_bar`: ``alpha_bar = 1 / (1 + sigma^2)``."""
    return 1.0 / (1.0 + sigma**2)


def karras_sigmas(
    steps: int,
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    append_zero: bool = True,
) -> torch.Tensor:
    """The EDM time steps (Karras et al. 2022, Eq. 5; defaults as in the paper's Table 1).

    ``sigma_i = (sigma_max^(1/rho) + i / (N - 1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` for
    ``i = 0 .. N-1``, then ``sigma_N = 0``.

    Args:
        steps: ``N``, the number of noise levels before the final 0 (``N = 1`` gives ``[sigma_max]``).
        append_zero: append ``sigma_N = 0`` (what the sampler's last step goes to).

    Returns:
        ``(N + 1,)`` (or ``(N,)``) float64 tensor, strictly decreasing from ``sigma_max``.
    """
    steps = _check_num_steps(steps, "steps")
    check_positive(sigma_min, "sigma_min")
    check_positive(sigma_max, "sigma_max")
    check_positive(rho, "rho")
    if sigma_min >= sigma_max:
        raise ValueError(f"need sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    max_inv_rho = sigma_max ** (1 / rho)
    min_inv_rho = sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho  # Eq. 5
    if append_zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas


def ddim_timesteps(num_train_steps: int, steps: int, spacing: str = "uniform") -> torch.Tensor:
    """The sub-sequence ``tau`` of training steps that DDIM visits (Song et al. 2021, Sec. 4.2 and App. D.2).

    - ``"uniform"``: ``tau_i = i * floor(T / S)`` (their "linear" choice, used for CIFAR-10 / CelebA results);
    - ``"quadratic"``: ``tau_i = floor((i * sqrt(0.8 T) / (S - 1))^2)`` (their choice for CIFAR-10 too), made
      strictly increasing where the first values coincide.

    Returns:
        ``(S,)`` long tensor, strictly increasing, in ``[0, T - 1]``. The sampler walks it backwards.
    """
    num_train_steps = _check_num_steps(num_train_steps, "num_train_steps")
    steps = _check_num_steps(steps, "steps")
    check_choice(spacing, "spacing", DDIM_SPACINGS)
    if steps > num_train_steps:
        raise ValueError(f"steps must be <= num_train_steps={num_train_steps}, got {steps}")
    if spacing == "uniform":
        tau = np.arange(steps) * (num_train_steps // steps)
    else:
        tau = np.floor(np.linspace(0, math.sqrt(0.8 * num_train_steps), steps) ** 2).astype(np.int64)
        # The first few squares floor to the same step; push each to at least its predecessor + 1 (our fix, so
        # that every visited step is distinct) and keep the sequence inside [0, T - 1].
        for i in range(1, steps):
            tau[i] = max(tau[i], tau[i - 1] + 1)
        tau = np.minimum(tau, num_train_steps - steps + np.arange(steps))
    return torch.as_tensor(tau, dtype=torch.long)


def fast_sampling_steps(
    train_alpha_bar: Sequence[float] | torch.Tensor, inference_betas: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Fractional training steps ``t_s`` matching a short inference schedule (DiffWave, Kong et al. 2021, App. B).

    DiffWave trains on ``T`` steps and samples with ``S << T`` steps of its own betas (``eta`` in the paper,
    e.g. ``[1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]``). The network still needs a step index, so each inference level
    ``alpha_bar^inf_s = prod_{k <= s} (1 - eta_k)`` is located between two training levels,
    ``alpha_bar_{t+1} <= alpha_bar^inf_s <= alpha_bar_t``, and ``t_s`` interpolates linearly in
    ``sqrt(alpha_bar)``:

        t_s = t + (sqrt(alpha_bar_t) - sqrt(alpha_bar^inf_s)) / (sqrt(alpha_bar_t) - sqrt(alpha_bar_{t+1}))

    (as in the public implementation, lmnt-com/diffwave ``inference.py``). The network's step embedding must
    accept fractional steps (ours interpolates its table, like DiffWave's).

    Args:
        train_alpha_bar: ``(T,)`` decreasing training ``alpha_bar``.
        inference_betas: ``(S,)`` inference betas in ``(0, 1)``.

    Returns:
        ``(S,)`` float64 tensor of steps in ``[0, T - 1]``, increasing with ``s``.

    Raises:
        ValueError: when an inference level is noisier than the last training step or cleaner than the first.
    """
    train_alpha_bar = _as_float64_1d(train_alpha_bar, "train_alpha_bar")
    if train_alpha_bar.numel() < 2 or bool((train_alpha_bar[1:] >= train_alpha_bar[:-1]).any()):
        raise ValueError("train_alpha_bar must have at least 2 strictly decreasing values")
    inference_alpha_bar = alpha_bar_from_betas(inference_betas)
    root_train = train_alpha_bar.sqrt()
    root_inf = inference_alpha_bar.sqrt()
    lo, hi = float(train_alpha_bar[-1]), float(train_alpha_bar[0])
    tol = 1e-12
    bad = (inference_alpha_bar < lo - tol) | (inference_alpha_bar > hi + tol)
    if bool(bad.any()):
        raise ValueError(
            f"inference_betas give alpha_bar {inference_alpha_bar[bad].tolist()} outside the training range "
            f"[{lo:.6g}, {hi:.6g}]; the network was never trained at those noise levels"
        )
    # Index t of the training interval [t, t+1] holding each inference level (root_train is decreasing).
    t = torch.searchsorted(-root_train, -root_inf, right=True) - 1
    t = t.clamp(0, train_alpha_bar.numel() - 2)
    twiddle = (root_train[t] - root_inf) / (root_train[t] - root_train[t + 1])
    return (t.to(torch.float64) + twiddle).clamp(0, train_alpha_bar.numel() - 1)
