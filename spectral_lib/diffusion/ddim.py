"""DDIM (Song et al. 2021): DDPM's training, a shorter and optionally deterministic sampler.

The sampler visits a sub-sequence ``tau`` of the training steps and moves from ``x_t`` to ``x_prev`` with

    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps_hat + sigma z     (Eq. 12)
    sigma  = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)  (Eq. 16)

``eta = 0`` is deterministic (an ODE solver), ``eta = 1`` is DDPM's ancestral step on the sub-sequence.

It also carries DiffWave's fast sampling (Kong et al. 2021, App. B): a short explicit inference schedule of betas
mapped onto fractional training steps (:func:`~spectral_lib.diffusion.schedules.fast_sampling_steps`) and DiffWave's
own stochastic update (:func:`fast_sample`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from spectral_lib._checks import check_choice, check_positive
from spectral_lib.diffusion.ddpm import (
    DDPM,
    Model,
    _call_model,
    broadcast_to_signal,
    draw_noise,
    eps_from_x0,
    x0_from_output,
)
from spectral_lib.diffusion.schedules import (
    DDIM_SPACINGS,
    alpha_bar_from_betas,
    ddim_timesteps,
    fast_sampling_steps,
)

__all__ = ["DDIM", "ddim_step", "fast_sample", "DIFFWAVE_FAST_BETAS"]

#: DiffWave's 6-step inference schedule for its 50-step models (Kong et al. 2021, Table 1 / App. B; the paper we
#: reproduce uses it too).
DIFFWAVE_FAST_BETAS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)


def ddim_step(
    x_t: torch.Tensor,
    x0_hat: torch.Tensor,
    eps_hat: torch.Tensor,
    alpha_bar: torch.Tensor,
    alpha_bar_prev: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None,
) -> torch.Tensor:
    """One DDIM update from ``x_t`` to ``x_prev`` (Song et al. 2021, Eq. 12 with ``sigma`` of Eq. 16).

    Args:
        x_t: current sample (unused except for its shape; kept to make the call read like the equation).
        x0_hat, eps_hat: the model's estimates at ``x_t``.
        alpha_bar, alpha_bar_prev: scalars or tensors broadcastable to ``x_t``.
        eta: 0 for the deterministic sampler, 1 for DDPM's posterior variance.
        noise: ``z``, standard normal of ``x_t``'s shape; may be ``None`` when ``eta = 0``.
    """
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()  # Eq. 16
    direction = (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps_hat  # "direction pointing to x_t"
    x_prev = alpha_bar_prev.sqrt() * x0_hat + direction  # Eq. 12
    if eta > 0:
        if noise is None:
            raise ValueError("noise must be given when eta > 0")
        x_prev = x_prev + sigma * noise
    return x_prev


class DDIM(DDPM):
    """DDPM's schedule and loss (inherited unchanged) with the DDIM sampler.

    Args:
        eta: stochasticity of the sampler (0 = deterministic, as in Song et al.'s main results).
        default_steps: sampling steps when ``sample(steps=None)`` (50, our choice: a common DDIM budget).
        spacing: ``"uniform"`` or ``"quadratic"`` sub-sequence (see
            :func:`~spectral_lib.diffusion.schedules.ddim_timesteps`).
        inference_betas: an explicit short inference schedule (e.g. :data:`DIFFWAVE_FAST_BETAS`); when given,
            ``sample`` uses DiffWave's fast sampling (:func:`fast_sample`) and ``eta``/``spacing`` are unused.
        **ddpm_kwargs: the DDPM schedule and parameterisation (see :class:`~spectral_lib.diffusion.ddpm.DDPM`).
    """

    name = "ddim"

    def __init__(
        self,
        *,
        eta: float = 0.0,
        default_steps: int = 50,
        spacing: str = "uniform",
        inference_betas: Sequence[float] | None = None,
        **ddpm_kwargs: Any,
    ) -> None:
        super().__init__(**ddpm_kwargs)
        check_positive(eta, "eta", allow_zero=True)
        check_choice(spacing, "spacing", DDIM_SPACINGS)
        self.eta = float(eta)
        self.default_steps = min(int(default_steps), self.num_steps)
        self.spacing = spacing
        self.inference_betas = None if inference_betas is None else tuple(float(b) for b in inference_betas)
        if self.inference_betas is not None:
            fast_sampling_steps(self.alpha_bar, self.inference_betas)  # fail early when out of the training range

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, eta={self.eta}, inference_betas={self.inference_betas})"

    @torch.no_grad()
    def sample(
        self,
        model: Model,
        shape: tuple[int, ...],
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        cond: Mapping[str, Any] | None = None,
        noise: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        eta: float | None = None,
    ) -> torch.Tensor:
        """DDIM sampling on ``steps`` training steps (Song et al. 2021, Eq. 12), or DiffWave's fast sampling when
        the formulation has ``inference_betas`` (then ``steps`` must be ``None`` or ``len(inference_betas)``).

        The last step goes to ``alpha_bar_prev = 1`` and so returns ``x0_hat`` of the least noisy visited step.
        ``x0_hat`` is clipped to ``[-1, 1]`` when ``clip_x0_hat`` (and ``eps_hat`` recomputed from the clipped value).

        Args:
            eta: overrides the formulation's ``eta`` for this call (unused by the fast schedule).
            noise: optional initial ``x_T`` (standard normal) of ``shape``.

        Returns:
            ``x_0`` samples of ``shape``.
        """
        if self.inference_betas is not None:
            if steps is not None and int(steps) != len(self.inference_betas):
                raise ValueError(
                    f"steps must be None or len(inference_betas)={len(self.inference_betas)}, got {steps}"
                )
            return fast_sample(
                self, model, shape, self.inference_betas, generator=generator, device=device, progress=progress,
                cond=cond, noise=noise, dtype=dtype,
            )
        if eta is None:
            eta = self.eta
        check_positive(eta, "eta", allow_zero=True)
        eta = float(eta)
        steps = self.default_steps if steps is None else int(steps)
        tau = ddim_timesteps(self.num_steps, steps, self.spacing).tolist()
        x = self._initial_noise(shape, noise, generator, device, dtype)
        table = self.alpha_bar.to(device=x.device, dtype=dtype)
        pairs = list(zip(reversed(tau), reversed([-1] + tau[:-1])))
        if progress:
            from tqdm.auto import tqdm

            pairs = tqdm(pairs, desc="DDIM sampling")
        for t, t_prev in pairs:
            alpha_bar = table[t]
            alpha_bar_prev = table[t_prev] if t_prev >= 0 else table.new_tensor(1.0)
            x0_hat = self._x0_for_sampling(model, x, t, cond)
            eps_hat = eps_from_x0(x0_hat, x, alpha_bar)
            z = None
            if eta > 0 and t_prev >= 0:
                z = draw_noise(x.shape, generator=generator, device=x.device, dtype=dtype)
            x = ddim_step(x, x0_hat, eps_hat, alpha_bar, alpha_bar_prev, eta if t_prev >= 0 else 0.0, z)
        return x


@torch.no_grad()
def fast_sample(
    formulation: DDPM,
    model: Model,
    shape: tuple[int, ...],
    inference_betas: Sequence[float] = DIFFWAVE_FAST_BETAS,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    cond: Mapping[str, Any] | None = None,
    noise: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    clamp_sample: bool = True,
) -> torch.Tensor:
    """DiffWave's fast sampling with an explicit inference schedule (Kong et al. 2021, Algorithm 2 and App. B).

    With ``gamma_s = 1 - eta_s`` and ``gamma_bar_s = prod_{k <= s} gamma_k`` from the inference betas ``eta_s``:

        x_{s-1} = (x_s - eta_s / sqrt(1 - gamma_bar_s) * eps_theta(x_s, t_s)) / sqrt(gamma_s) + sigma_s z,
        sigma_s^2 = (1 - gamma_bar_{s-1}) / (1 - gamma_bar_s) * eta_s      (no noise at the last step),

    where ``t_s`` is the fractional training step of :func:`fast_sampling_steps` (the network is called with it
    as its float noise condition, so its step embedding must interpolate). ``eps_theta`` comes from the
    formulation's parameterisation at ``alpha_bar = gamma_bar_s``. This is DDIM with ``eta = 1`` on the inference
    schedule (Song et al. 2021, Sec. 4.1), written as in DiffWave.

    Args:
        formulation: a :class:`~spectral_lib.diffusion.ddpm.DDPM` (or DDIM) holding the training schedule.
        inference_betas: ``(S,)``, default DiffWave's 6-step ``[1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]``.
        clamp_sample: clamp ``x`` to ``[-1, 1]`` after every step, as the public DiffWave implementation does
            (default on for that reason). ``formulation.clip_x0_hat`` is not used here.

    Returns:
        ``x_0`` samples of ``shape``.
    """
    steps_t = fast_sampling_steps(formulation.alpha_bar, inference_betas)
    gamma = 1.0 - torch.as_tensor(inference_betas, dtype=torch.float64)
    gamma_bar = alpha_bar_from_betas(1.0 - gamma)
    x = formulation._initial_noise(shape, noise, generator, device, dtype)
    order = range(len(gamma) - 1, -1, -1)
    if progress:
        from tqdm.auto import tqdm

        order = tqdm(order, desc="fast sampling")
    for s in order:
        noise_cond = torch.full((x.shape[0],), float(steps_t[s]), device=x.device, dtype=torch.float32)
        output = _call_model(model, x, noise_cond, cond)
        alpha_bar = broadcast_to_signal(gamma_bar[s].reshape(1).expand(x.shape[0]), x)
        if formulation.parameterization == "eps":
            eps_hat = output
        else:
            eps_hat = eps_from_x0(x0_from_output(output, x, alpha_bar, formulation.parameterization), x, alpha_bar)
        beta_s = float(1.0 - gamma[s])
        x = (x - beta_s / float(1.0 - gamma_bar[s]) ** 0.5 * eps_hat) / float(gamma[s]) ** 0.5
        if s > 0:
            sigma = (float(1.0 - gamma_bar[s - 1]) / float(1.0 - gamma_bar[s]) * beta_s) ** 0.5
            x = x + sigma * draw_noise(x.shape, generator=generator, device=x.device, dtype=dtype)
        if clamp_sample:
            x = x.clamp(-1.0, 1.0)
    return x
