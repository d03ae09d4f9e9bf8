"""DDPM (Ho et al. 2020): discrete-time Gaussian diffusion with eps / v / x0 parameterisations.

Pieces, each a small function, then a thin class that holds the schedule:

- forward corruption ``q(x_t | x_0)`` (Ho et al., Eq. 4);
- the clean-signal estimate ``x0_hat`` from the network output (Eq. 15 for eps, the spectral paper's Eq. 5);
- the training target of each parameterisation and its distance to the network output, one value per sample: the
  squared error (Eq. 14, "L_simple", the default) or the absolute error (``loss="l1"``, the loss of LMNT's DiffWave
  trainer, which the spectral paper fine-tunes);
- the posterior ``q(x_{t-1} | x_t, x0_hat)`` (Eqs. 6-7) for ancestral sampling (Algorithm 2).

Levels are integer steps ``t`` in ``[0, T - 1]`` (0 = least noisy); the network receives ``t`` as a float,
``model(x_t, t.float(), **cond)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from spectral_lib._checks import check_choice, check_signal
from spectral_lib.diffusion.schedules import (
    alpha_bar_from_betas,
    make_betas,
    sigma_from_alpha_bar,
)

__all__ = [
    "PARAMETERIZATIONS",
    "DDPM_LOSSES",
    "DDPM_SPECTRAL_WEIGHTS",
    "Denoised",
    "DDPM",
    "broadcast_to_signal",
    "draw_noise",
    "corrupt",
    "x0_from_output",
    "eps_from_x0",
    "parameterization_target",
    "pointwise_distance",
    "posterior_mean_variance",
    "edm_loss_weight",
]

PARAMETERIZATIONS: tuple[str, ...] = ("eps", "v", "x0")
DDPM_LOSSES: tuple[str, ...] = ("l2", "l1")
DDPM_SPECTRAL_WEIGHTS: tuple[str, ...] = ("ones", "edm")

Model = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Denoised:
    """What a formulation's ``denoise`` returns.

    Attributes:
        output: the raw network output (``eps``, ``v`` or ``x0`` for DDPM; ``F_theta`` for EDM), shape of ``x_t``.
        x0_hat: the clean-signal estimate, shape of ``x_t``; the spectral term compares it with ``x0``.
    """

    output: torch.Tensor
    x0_hat: torch.Tensor


# ---------------------------------------------------------------------------------------------------------------
# Small helpers shared with ddim.py and edm.py
# ---------------------------------------------------------------------------------------------------------------


def broadcast_to_signal(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample values ``(B,)`` to ``(B, 1, ..., 1)`` to multiply a signal ``x`` of rank ``x.dim()``."""
    return values.reshape(values.shape[0], *([1] * (x.dim() - 1))).to(device=x.device, dtype=x.dtype)


def draw_noise(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn from ``generator`` (on the generator's device), moved to ``device``.

    Drawing on the generator's device keeps a CPU generator usable for CUDA tensors, with the same numbers.
    """
    draw_device = generator.device if generator is not None else device
    noise = torch.randn(tuple(shape), generator=generator, device=draw_device, dtype=dtype)
    return noise.to(device) if device is not None else noise


def _check_model_input(x: torch.Tensor, name: str) -> torch.Tensor:
    # No finiteness check here: it would synchronise a GPU at every network call (diffusion_loss checks x0).
    return check_signal(x, name, ranks=(2, 3, 4, 5), finite=False)


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _call_model(
    model: Model, x: torch.Tensor, noise_cond: torch.Tensor, cond: Mapping[str, Any] | None
) -> torch.Tensor:
    """``model(x, noise_cond, **cond)`` with a check that the output has the input's shape."""
    out = model(x, noise_cond, **(dict(cond) if cond else {}))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model output must have the input's shape {tuple(x.shape)}, got {got}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The equations, as functions of alpha_bar (already broadcast to the signal's shape)
# ---------------------------------------------------------------------------------------------------------------


def corrupt(x0: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` (Ho et al. 2020, Eq. 4)."""
    return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise


def x0_from_output(
    output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, parameterization: str
) -> torch.Tensor:
    """The one-step clean-signal estimate ``x0_hat`` from the network output.

    - ``"eps"``: ``x0_hat = (x_t - sqrt(1 - alpha_bar) eps_theta) / sqrt(alpha_bar)`` (Ho et al. Eq. 15; the
      spectral paper's Eq. 5);
    - ``"v"``: ``x0_hat = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v_theta`` (Salimans & Ho 2022, Sec. 4);
    - ``"x0"``: ``x0_hat = x0_theta``.
    """
    if parameterization == "eps":
        return (x_t - (1.0 - alpha_bar).sqrt() * output) / alpha_bar.sqrt()
    if parameterization == "v":
        return alpha_bar.sqrt() * x_t - (1.0 - alpha_bar).sqrt() * output
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    return output


def eps_from_x0(x0_hat: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The noise implied by ``x0_hat``: ``eps_hat = (x_t - sqrt(alpha_bar) x0_hat) / sqrt(1 - alpha_bar)``
    (Eq. 4 solved for eps)."""
    return (x_t - alpha_bar.sqrt() * x0_hat) / (1.0 - alpha_bar).sqrt()


def parameterization_target(
    x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, parameterization: str
) -> torch.Tensor:
    """What the network is trained to output: ``eps``; ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0``
    (Salimans & Ho 2022, Sec. 4); or ``x0``."""
    if parameterization == "eps":
        return noise
    if parameterization == "v":
        return alpha_bar.sqrt() * noise - (1.0 - alpha_bar).sqrt() * x0
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    return x0


def pointwise_distance(output: torch.Tensor, target: torch.Tensor, loss: str = "l2") -> torch.Tensor:
    """Per-sample distance between network output and training target, averaged over all but the batch axis.

    - ``"l2"``: ``mean |target - output|^2`` (Ho et al. 2020, Eq. 14, "L_simple");
    - ``"l1"``: ``mean |target - output|`` (LMNT's DiffWave trainer: ``nn.L1Loss()`` on the noise, whose batch mean
      equals the mean of these per-sample values when every sample has the same size).

    Shapes: ``output`` and ``target`` ``(B, ...)``; returns ``(B,)``.
    """
    diff = output - target
    if loss == "l2":
        return diff.pow(2).flatten(1).mean(dim=1)
    check_choice(loss, "loss", DDPM_LOSSES)
    return diff.abs().flatten(1).mean(dim=1)


def posterior_mean_variance(
    x0_hat: torch.Tensor,
    x_t: torch.Tensor,
    alpha_bar: torch.Tensor,
    alpha_bar_prev: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)`` with ``x_0 := x0_hat`` (Ho et al. 2020, Eqs. 6-7).

    ``mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t``,
    ``beta_tilde = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t``, with ``alpha_t = alpha_bar_t / alpha_bar_{t-1}``.
    At ``t = 0`` (``alpha_bar_prev = 1``) the mean is ``x0_hat`` and the variance 0.
    """
    alpha_t = alpha_bar / alpha_bar_prev
    beta_t = 1.0 - alpha_t
    coef_x0 = alpha_bar_prev.sqrt() * beta_t / (1.0 - alpha_bar)
    coef_xt = alpha_t.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    mean = coef_x0 * x0_hat + coef_xt * x_t  # Eq. 7
    variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta_t  # Eq. 7
    return mean, variance


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2`` (Karras et al. 2022, Table 1).

    The spectral paper's "weighted" variant scales its spectral term by this per-sample weight.
    """
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


# ---------------------------------------------------------------------------------------------------------------
# The formulation
# ---------------------------------------------------------------------------------------------------------------


class DDPM:
    """Denoising diffusion probabilistic model (Ho et al. 2020) with a choice of parameterisation.

    Args:
        num_steps: ``T``, the number of training steps (1000 as in Ho et al.; DiffWave uses 50).
        schedule: ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal 2021).
        beta_start, beta_end: ends of the linear schedule (``1e-4``, ``0.02`` as in Ho et al.;
            DiffWave: ``1e-4``, ``0.05``).
        betas: an explicit ``(T,)`` schedule; overrides ``schedule``/``beta_*``/``num_steps``.
        parameterization: what the network predicts: ``"eps"`` (Ho et al.), ``"v"`` or ``"x0"``.
        clip_x0_hat: clip ``x0_hat`` to ``[-1, 1]`` inside the samplers (default on, as in Ho et al.'s code, since
            our data live in ``[-1, 1]``; both images and audio). Training never clips: the loss and the spectral
            term see the raw ``x0_hat`` (clipping would cut the gradient of saturated pixels).
        spectral_weight: per-sample weight of the spectral term when ``diffusion_loss(...,
            spectral_weighting="formulation")``: ``"ones"`` (default; the paper's "unweighted") or ``"edm"``,
            ``lambda_EDM(sigma_t)`` with the equivalent noise level ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)``
            (our extension of the paper's "weighted" variant to DDPM; it is large, ~1e4, at ``t = 0``).
        sigma_data: ``sigma_data`` of the ``"edm"`` spectral weight (0.5, as in EDM).
        loss: the distance of :meth:`pointwise_loss`: ``"l2"`` (default, Ho et al.'s "L_simple") or ``"l1"`` (the
            absolute error, as LMNT's DiffWave trainer minimises it; the spectral paper's vocoder fine-tune, whose
            lambda values are relative to it). Samplers are unaffected.
    """

    name = "ddpm"

    def __init__(
        self,
        *,
        num_steps: int = 1000,
        schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        betas: torch.Tensor | None = None,
        parameterization: str = "eps",
        clip_x0_hat: bool = True,
        spectral_weight: str = "ones",
        sigma_data: float = 0.5,
        loss: str = "l2",
    ) -> None:
        check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        check_choice(loss, "loss", DDPM_LOSSES)
        check_choice(spectral_weight, "spectral_weight", DDPM_SPECTRAL_WEIGHTS)
        if betas is None:
            betas = make_betas(schedule, num_steps, beta_start=beta_start, beta_end=beta_end)
        self.alpha_bar = alpha_bar_from_betas(betas)  # validates betas; float64 (T,)
        self.betas = 1.0 - self.alpha_bar / torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])
        self.num_steps = int(self.alpha_bar.numel())
        self.parameterization = parameterization
        self.clip_x0_hat = bool(clip_x0_hat)
        self.spectral_weight_kind = spectral_weight
        self.sigma_data = float(sigma_data)
        self.loss = loss
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_steps={self.num_steps}, parameterization={self.parameterization!r}, "
            f"loss={self.loss!r}, clip_x0_hat={self.clip_x0_hat})"
        )

    # -- schedule lookup ------------------------------------------------------------------------------------------

    def _alpha_bar_table(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (torch.device(device), dtype)
        if key not in self._cache:
            self._cache[key] = self.alpha_bar.to(device=device, dtype=dtype)
        return self._cache[key]

    def _check_levels(self, levels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(levels, torch.Tensor) or levels.dim() != 1 or levels.shape[0] != x.shape[0]:
            got = tuple(levels.shape) if isinstance(levels, torch.Tensor) else type(levels).__name__
            raise ValueError(f"levels must be a (B,) tensor of steps with B={x.shape[0]}, got {got}")
        if levels.is_floating_point() or levels.is_complex():
            raise ValueError(f"levels must be integer steps t for {type(self).__name__}, got dtype {levels.dtype}")
        if bool(((levels < 0) | (levels >= self.num_steps)).any()):
            raise ValueError(
                f"levels must lie in [0, {self.num_steps - 1}], got min {int(levels.min())} and max {int(levels.max())}"
            )
        return levels

    def alpha_bar_at(self, levels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``alpha_bar_t`` for each sample, shaped ``(B, 1, ..., 1)`` like ``x`` and in ``x``'s dtype."""
        self._check_levels(levels, x)
        table = self._alpha_bar_table(x.device, x.dtype if x.is_floating_point() else torch.float32)
        return broadcast_to_signal(table[levels.to(x.device)], x)

    # -- training -------------------------------------------------------------------------------------------------

    def sample_levels(
        self, batch_size: int, *, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``t ~ Uniform{0, ..., T-1}`` (Ho et al., Algorithm 1), shape ``(B,)``, dtype long."""
        draw_device = generator.device if generator is not None else device
        t = torch.randint(0, self.num_steps, (int(batch_size),), generator=generator, device=draw_device)
        return t.to(device) if device is not None else t

    def corrupt(self, x0: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t ~ q(x_t | x_0)`` (Eq. 4) for given noise.

        Shapes: ``x0`` and ``noise`` ``(B, ...)``; ``levels`` ``(B,)``; returns ``(B, ...)``.
        """
        _check_model_input(x0, "x0")
        _check_same_shape(x0, noise, ("x0", "noise"))
        return corrupt(x0, self.alpha_bar_at(levels, x0), noise)

    def noise_cond(self, levels: torch.Tensor) -> torch.Tensor:
        """What the network receives as its noise condition: ``t`` as float, shape ``(B,)``."""
        return levels.to(torch.float32)

    def denoise(
        self, model: Model, x_t: torch.Tensor, levels: torch.Tensor, *, cond: Mapping[str, Any] | None = None
    ) -> Denoised:
        """Run ``model(x_t, t.float(), **cond)`` and turn its output into ``x0_hat`` (see :func:`x0_from_output`)."""
        _check_model_input(x_t, "x_t")
        alpha_bar = self.alpha_bar_at(levels, x_t)
        output = _call_model(model, x_t, self.noise_cond(levels).to(x_t.device), cond)
        return Denoised(output=output, x0_hat=x0_from_output(output, x_t, alpha_bar, self.parameterization))

    def pointwise_loss(
        self, denoised: Denoised, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """``|| target - output ||^2`` averaged over all but the batch axis (Ho et al. Eq. 14, "L_simple", for eps;
        the same unweighted MSE on ``v`` or ``x0`` for the other parameterisations), or ``|target - output|``
        averaged likewise with ``loss="l1"`` (see :func:`pointwise_distance`). Returns ``(B,)``."""
        _check_same_shape(denoised.output, x0, ("denoised.output", "x0"))
        _check_same_shape(noise, x0, ("noise", "x0"))
        target = parameterization_target(x0, noise, self.alpha_bar_at(levels, x0), self.parameterization)
        return pointwise_distance(denoised.output, target, self.loss)

    def spectral_weight(self, levels: torch.Tensor) -> torch.Tensor:
        """Per-sample weight of the spectral term, ``(B,)``: ones, or ``lambda_EDM(sigma_t)`` (see the class doc)."""
        if self.spectral_weight_kind == "ones":
            return torch.ones(levels.shape[0], device=levels.device)
        alpha_bar = self.alpha_bar.to(levels.device)[levels]
        return edm_loss_weight(sigma_from_alpha_bar(alpha_bar), self.sigma_data).to(torch.float32)

    # -- sampling -------------------------------------------------------------------------------------------------

    def _initial_noise(
        self,
        shape: tuple[int, ...],
        noise: torch.Tensor | None,
        generator: torch.Generator | None,
        device: torch.device | str | None,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        if noise is None:
            return draw_noise(shape, generator=generator, device=device, dtype=dtype)
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        return noise.to(device=device if device is not None else noise.device, dtype=dtype)

    def _x0_for_sampling(self, model: Model, x: torch.Tensor, t: int, cond: Mapping[str, Any] | None) -> torch.Tensor:
        levels = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        x0_hat = self.denoise(model, x, levels, cond=cond).x0_hat
        return x0_hat.clamp(-1.0, 1.0) if self.clip_x0_hat else x0_hat

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
    ) -> torch.Tensor:
        """Ancestral sampling (Ho et al. 2020, Algorithm 2) through all ``T`` steps.

        Each step computes ``x0_hat`` (clipped to ``[-1, 1]`` when ``clip_x0_hat``) and draws
        ``x_{t-1} ~ N(mu_tilde(x_t, x0_hat), beta_tilde_t I)`` (Eqs. 6-7; the posterior variance, one of the two
        choices of Ho et al.); the last step returns the mean. Without clipping and with ``eps`` this mean is
        exactly Eq. 11.

        Args:
            model: ``model(x, noise_cond, **cond)``.
            shape: output shape ``(B, ...)``.
            steps: must be ``None`` or ``T``; use :class:`~spectral_lib.diffusion.ddim.DDIM` for fewer steps.
            noise: optional initial ``x_T`` (standard normal), to reuse the same start across samplers.

        Returns:
            ``x_0`` samples of ``shape``.
        """
        if steps is not None and int(steps) != self.num_steps:
            raise ValueError(
                f"steps must be None or num_steps={self.num_steps} for DDPM ancestral sampling, got {steps}; "
                "use DDIM (make_formulation('ddim')) for fewer steps"
            )
        x = self._initial_noise(shape, noise, generator, device, dtype)
        table = self.alpha_bar.to(device=x.device, dtype=dtype)
        iterator = range(self.num_steps - 1, -1, -1)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="DDPM sampling")
        for t in iterator:
            x0_hat = self._x0_for_sampling(model, x, t, cond)
            alpha_bar = table[t]
            alpha_bar_prev = table[t - 1] if t > 0 else table.new_tensor(1.0)
            mean, variance = posterior_mean_variance(x0_hat, x, alpha_bar, alpha_bar_prev)
            if t > 0:
                x = mean + variance.sqrt() * draw_noise(x.shape, generator=generator, device=x.device, dtype=dtype)
            else:
                x = mean
        return x
