"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").

The noise level is ``sigma`` (``x = x0 + sigma n``); the network ``F_theta`` is wrapped by the preconditioning

    D_theta(x; sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x; c_noise(sigma))      (Eq. 7)

with the coefficients of Table 1 (column "Ours"), trained on ``ln(sigma) ~ N(P_mean, P_std^2)`` with the weight
``lambda(sigma) = 1 / c_out(sigma)^2`` (Eq. 8 and Table 1), and sampled with Heun's 2nd-order method on the time
steps of Eq. 5 (Algorithm 1). The denoiser output ``D_theta`` is ``x0_hat`` (the spectral paper compares it with x0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from spectral_lib._checks import check_choice, check_positive
from spectral_lib.diffusion.ddpm import (
    Denoised,
    Model,
    _call_model,
    _check_model_input,
    _check_same_shape,
    broadcast_to_signal,
    draw_noise,
    edm_loss_weight,
)
from spectral_lib.diffusion.schedules import karras_sigmas

__all__ = ["EDM", "EDM_SOLVERS", "edm_preconditioning", "edm_loss_weight", "edm_sampler"]

EDM_SOLVERS: tuple[str, ...] = ("heun", "euler")


def edm_preconditioning(
    sigma: torch.Tensor, sigma_data: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The EDM preconditioning coefficients (Karras et al. 2022, Table 1; derived in App. B.6).

    Returns:
        ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``:
        ``c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)``,
        ``c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)``,
        ``c_in = 1 / sqrt(sigma^2 + sigma_data^2)``, ``c_noise = ln(sigma) / 4``.
    """
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    c_in = 1 / (sigma**2 + sigma_data**2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


@torch.no_grad()
def edm_sampler(
    denoiser: Any,
    x_init: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    solver: str = "heun",
    progress: bool = False,
) -> torch.Tensor:
    """Deterministic EDM sampling (Karras et al. 2022, Algorithm 1, without churn).

    Args:
        denoiser: ``denoiser(x, sigma) -> D(x; sigma)`` with ``sigma`` a ``(B,)`` tensor.
        x_init: standard normal noise ``(B, ...)``; it is scaled by ``sigmas[0]`` (Algorithm 1, line 2).
        sigmas: ``(N + 1,)`` decreasing noise levels ending with 0 (e.g. :func:`karras_sigmas`).
        solver: ``"heun"`` (2nd order; the paper's choice, ``2N - 1`` network calls) or ``"euler"`` (``N`` calls).

    Returns:
        ``x`` at ``sigma = 0``: the final step is an Euler step, which lands exactly on ``D(x; sigma_{N-1})``.
    """
    check_choice(solver, "solver", EDM_SOLVERS)
    sigmas = sigmas.to(device=x_init.device, dtype=x_init.dtype)
    batch = x_init.shape[0]
    x_next = x_init * sigmas[0]  # line 2: x_0 ~ N(0, t_0^2 I)
    pairs = list(zip(sigmas[:-1], sigmas[1:]))
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc=f"EDM {solver} sampling")
    for t_cur, t_next in pairs:  # line 3: for i in 0 .. N-1
        x_cur = x_next
        d_cur = (x_cur - denoiser(x_cur, t_cur.expand(batch))) / t_cur  # line 4: d_i = (x_i - D(x_i; t_i)) / t_i
        x_next = x_cur + (t_next - t_cur) * d_cur  # line 5: Euler step
        if solver == "heun" and t_next > 0:  # line 6: if t_{i+1} != 0, apply the 2nd-order correction
            d_prime = (x_next - denoiser(x_next, t_next.expand(batch))) / t_next  # line 7
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)  # line 8: trapezoidal rule
    return x_next


class EDM:
    """The EDM formulation: preconditioned denoiser, log-normal training levels, Heun sampler.

    Args:
        sigma_data: standard deviation of the data (0.5, as in the paper, for data in ``[-1, 1]``).
        p_mean, p_std: ``ln(sigma) ~ N(p_mean, p_std^2)`` for training (-1.2, 1.2; Table 1).
        sigma_min, sigma_max, rho: sampling schedule of Eq. 5 (0.002, 80, 7; Table 1).
        default_steps: sampling steps ``N`` when ``sample(steps=None)`` (18, the paper's CIFAR-10 budget;
            the spectral paper uses 40 for FFHQ/AFHQ).
        solver: ``"heun"`` (the paper's) or ``"euler"``.
    """

    name = "edm"

    def __init__(
        self,
        *,
        sigma_data: float = 0.5,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        default_steps: int = 18,
        solver: str = "heun",
    ) -> None:
        check_positive(sigma_data, "sigma_data")
        check_positive(p_std, "p_std")
        check_choice(solver, "solver", EDM_SOLVERS)
        karras_sigmas(max(int(default_steps), 1), sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)  # validates
        self.sigma_data = float(sigma_data)
        self.p_mean = float(p_mean)
        self.p_std = float(p_std)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.rho = float(rho)
        self.default_steps = int(default_steps)
        self.solver = solver

    def __repr__(self) -> str:
        return (
            f"EDM(sigma_data={self.sigma_data}, p_mean={self.p_mean}, p_std={self.p_std}, "
            f"sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, rho={self.rho}, solver={self.solver!r})"
        )

    def _check_levels(self, levels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(levels, torch.Tensor) or levels.dim() != 1 or levels.shape[0] != x.shape[0]:
            got = tuple(levels.shape) if isinstance(levels, torch.Tensor) else type(levels).__name__
            raise ValueError(f"levels must be a (B,) tensor of noise levels sigma with B={x.shape[0]}, got {got}")
        if not levels.is_floating_point() or not bool((levels > 0).all()) or not bool(torch.isfinite(levels).all()):
            raise ValueError("levels must be finite float noise levels sigma > 0 for EDM")
        return levels

    # -- training -------------------------------------------------------------------------------------------------

    def sample_levels(
        self, batch_size: int, *, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``sigma = exp(P_mean + P_std n)``, ``n ~ N(0, 1)`` (Table 1, "training"), shape ``(B,)``, float32."""
        n = draw_noise((int(batch_size),), generator=generator, device=device)
        return (n * self.p_std + self.p_mean).exp()

    def corrupt(self, x0: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x = x0 + sigma n`` (Eq. 2: ``n ~ N(0, sigma^2 I)``, written with unit ``noise``)."""
        _check_model_input(x0, "x0")
        _check_same_shape(x0, noise, ("x0", "noise"))
        return x0 + broadcast_to_signal(self._check_levels(levels, x0), x0) * noise

    def noise_cond(self, levels: torch.Tensor) -> torch.Tensor:
        """``c_noise = ln(sigma) / 4``, shape ``(B,)`` (Table 1)."""
        return levels.log() / 4

    def precondition(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`edm_preconditioning` with this formulation's ``sigma_data``."""
        return edm_preconditioning(sigma, self.sigma_data)

    def denoise(
        self, model: Model, x_t: torch.Tensor, levels: torch.Tensor, *, cond: Mapping[str, Any] | None = None
    ) -> Denoised:
        """``D_theta(x; sigma) = c_skip x + c_out F_theta(c_in x; c_noise)`` (Eq. 7). ``output`` is ``F_theta``."""
        _check_model_input(x_t, "x_t")
        sigma = self._check_levels(levels, x_t).to(device=x_t.device, dtype=x_t.dtype)
        c_skip, c_out, c_in, c_noise = self.precondition(sigma)
        F_x = _call_model(model, broadcast_to_signal(c_in, x_t) * x_t, c_noise, cond)
        D_x = broadcast_to_signal(c_skip, x_t) * x_t + broadcast_to_signal(c_out, x_t) * F_x  # Eq. 7
        return Denoised(output=F_x, x0_hat=D_x)

    def pointwise_loss(
        self, denoised: Denoised, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """``lambda(sigma) ||D_theta(x0 + sigma n; sigma) - x0||^2`` averaged over all but the batch axis
        (Eq. 2 weighted as in Eq. 8, the form of NVlabs/edm ``EDMLoss``). Returns ``(B,)``."""
        _check_same_shape(denoised.x0_hat, x0, ("denoised.x0_hat", "x0"))
        weight = edm_loss_weight(self._check_levels(levels, x0), self.sigma_data).to(x0.dtype)
        return weight * (denoised.x0_hat - x0).pow(2).flatten(1).mean(dim=1)

    def spectral_weight(self, levels: torch.Tensor) -> torch.Tensor:
        """``lambda_EDM(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``, ``(B,)``: the spectral paper's
        "weighted" variant."""
        return edm_loss_weight(levels, self.sigma_data)

    # -- sampling -------------------------------------------------------------------------------------------------

    def sigmas(self, steps: int | None = None) -> torch.Tensor:
        """The ``N + 1`` sampling levels of Eq. 5, ending with 0 (float64)."""
        return karras_sigmas(
            self.default_steps if steps is None else int(steps),
            sigma_min=self.sigma_min, sigma_max=self.sigma_max, rho=self.rho,
        )

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
        solver: str | None = None,
    ) -> torch.Tensor:
        """Deterministic sampling with :func:`edm_sampler` on :meth:`sigmas` (Algorithm 1).

        Args:
            steps: ``N`` (default ``default_steps``); Heun makes ``2N - 1`` network calls.
            noise: optional standard normal start of ``shape`` (scaled by ``sigma_max`` inside).
            solver: ``"heun"`` or ``"euler"``; default the formulation's.
            dtype: the sampler's dtype (NVlabs/edm samples in float64; float32 is our default for speed).

        Returns:
            ``x_0`` samples of ``shape``. The output is not clipped (EDM's convention).
        """
        shape = tuple(int(s) for s in shape)
        if noise is None:
            x_init = draw_noise(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        else:
            x_init = noise.to(device=device if device is not None else noise.device, dtype=dtype)

        def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return self.denoise(model, x, sigma, cond=cond).x0_hat

        return edm_sampler(denoiser, x_init, self.sigmas(steps), solver=solver or self.solver, progress=progress)
