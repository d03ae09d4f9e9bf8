"""Plug-and-play in Hugging Face ``diffusers``: the spectral term added to a standard diffusers training loop.

The paper sells the spectral term as "one more term in your training loop" {Chandran et al. 2026}. Most people
train diffusion models with ``diffusers``, whose loop (``train_unconditional.py``) looks like this; the lines
marked ``# +`` are everything this module adds::

    noise = torch.randn_like(x0)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,))
    noisy = scheduler.add_noise(x0, noise, timesteps)
    model_output = unet(noisy, timesteps).sample
    pointwise = F.mse_loss(model_output, target, reduction="none").mean(dim=(1, 2, 3))   # target: ε, v or x0
    x0_hat = x0_from_scheduler(scheduler, model_output, noisy, timesteps)                  # +
    loss = spectral_training_loss(pointwise, x0_hat, x0, regularizer, lambda_spec).total   # +
    loss.backward()

The only subtle part is x̂₀: the spectral term compares the model's *clean-signal estimate* with x₀ (never ε,
never x_t), and what the network outputs depends on ``scheduler.config.prediction_type``.
:func:`x0_from_prediction` writes the three cases out; ``tests/test_diffusers_integration.py`` checks that they
equal the ``pred_original_sample`` that ``DDPMScheduler.step`` and ``DDIMScheduler.step`` return.

The rest of the module is a small trainer for the book's chapter and ``examples/train_diffusers.py``: a
``UNet2DModel`` + ``DDPMScheduler`` on checkerboards, DDIM sampling with ``DDIMScheduler``, and the profiles
(:data:`DIFFUSERS_PROFILES`). ``diffusers`` is an optional extra: this module imports without it and each function
that needs it raises :class:`ImportError` saying what to install.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_pair, check_positive

__all__ = [
    "INSTALL_HINT",
    "PREDICTION_TYPES",
    "require_diffusers",
    "x0_from_prediction",
    "x0_from_scheduler",
    "x0_from_edm_scheduler",
    "gap_to_scheduler",
    "x0_error_gain",
    "SpectralLossOutput",
    "spectral_training_loss",
    "resolve_regularizer",
    "prediction_target",
    "training_step",
    "DiffusersProfile",
    "DIFFUSERS_PROFILES",
    "get_diffusers_profile",
    "make_unet",
    "make_scheduler",
    "TrainedUNet",
    "train_unet",
    "ddim_sample",
    "CheckerboardRun",
    "train_checkerboard",
]

INSTALL_HINT = 'pip install "spectral-diffusion-book[diffusers]"'

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""What a diffusers network predicts (``scheduler.config.prediction_type``): the noise ε, the velocity
v = √ᾱ_t ε − √(1−ᾱ_t) x₀ (Salimans & Ho, 2022), or x₀ itself."""

# Schedulers whose training corruption is diffusers' `add_noise`: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, indexed by an
# integer timestep into `alphas_cumprod`. Euler-type schedulers (EulerDiscrete, Heun, LMS, ...) corrupt in sigma
# space (x₀ + σ ε) and EDM schedulers precondition the network: different formulas, so they are refused by name.
_VP_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "DDPMParallelScheduler", "DDIMParallelScheduler",
                  "PNDMScheduler")
_EDM_SCHEDULERS = ("EDMEulerScheduler", "EDMDPMSolverMultistepScheduler")


def require_diffusers() -> ModuleType:
    """Import and return ``diffusers``; without it, an :class:`ImportError` that says how to install it."""
    try:
        import diffusers
    except ImportError as err:  # pragma: no cover - exercised only where the extra is missing
        raise ImportError(
            "spectral_lib.integrations.diffusers needs Hugging Face diffusers, an optional extra of this project. "
            f"Install it with: {INSTALL_HINT}"
        ) from err
    return diffusers


# ------------------------------------------------------------------------------------------------ x0_hat


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half inputs are promoted: 1/√ᾱ_t reaches ~160 at t = T−1)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _per_sample(values: Tensor, x: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` to broadcast against ``x``."""
    return values.reshape(values.shape[0], *([1] * (x.dim() - 1)))


def _batch_timesteps(timesteps: Tensor | int, batch: int, device: torch.device, num_timesteps: int) -> Tensor:
    """Integer timesteps as a ``(B,)`` long tensor on ``device``; a scalar is used for every sample."""
    t = torch.as_tensor(timesteps, device=device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"timesteps must be integers (a long tensor of shape (B,) or an int), got dtype {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"timesteps must have shape ({batch},) (one per sample) or be a scalar, got {tuple(t.shape)}")
    low, high = int(t.min()), int(t.max())
    if low < 0 or high >= num_timesteps:
        raise ValueError(f"timesteps must lie in [0, {num_timesteps - 1}] (len(alphas_cumprod) = {num_timesteps}), "
                         f"got values in [{low}, {high}]")
    return t.long()


def x0_from_prediction(
    model_output: Tensor,
    sample: Tensor,
    timesteps: Tensor | int,
    alphas_cumprod: Tensor,
    prediction_type: str = "epsilon",
) -> Tensor:
    """The clean-signal estimate x̂₀ from a network output, for each diffusers prediction type.

    With ᾱ_t = ``alphas_cumprod[t]`` and the corruption x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε:

    * ``"epsilon"``: x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t  (the paper's Eq. 5; Ho et al. 2020, Eq. 15);
    * ``"v_prediction"``: x̂₀ = √ᾱ_t x_t − √(1−ᾱ_t) v̂, with v = √ᾱ_t ε − √(1−ᾱ_t) x₀ (Salimans & Ho 2022);
    * ``"sample"``: x̂₀ = the output itself.

    These are the formulas of ``DDPMScheduler.step`` / ``DDIMScheduler.step`` (their ``pred_original_sample``),
    without the clipping or thresholding that those apply when *sampling*: the loss needs the raw estimate, and
    clipping would cut its gradient.

    Args:
        model_output: the network's output, ``(B, C, ...)`` (images ``(B, C, H, W)``).
        sample: the noisy input x_t, same shape.
        timesteps: integer timesteps, ``(B,)`` (one per sample, as drawn in training) or a scalar.
        alphas_cumprod: ᾱ, ``(T,)`` (``scheduler.alphas_cumprod``).
        prediction_type: one of :data:`PREDICTION_TYPES`.

    Returns:
        x̂₀, same shape as ``sample``, in float32 (float64 if an input is float64), differentiable in
        ``model_output``.
    """
    check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
    model_output, sample = check_pair(model_output, sample, names=("model_output", "sample"), ranks=(3, 4, 5))
    if not isinstance(alphas_cumprod, Tensor) or alphas_cumprod.dim() != 1 or not alphas_cumprod.is_floating_point():
        got = (f"a {alphas_cumprod.dim()}-D {alphas_cumprod.dtype} tensor" if isinstance(alphas_cumprod, Tensor)
               else type(alphas_cumprod).__name__)
        raise ValueError(f"alphas_cumprod must be a 1-D float tensor (T,), got {got}")
    dtype = _compute_dtype(model_output, sample)
    out = model_output.to(dtype)
    if prediction_type == "sample":
        return out
    t = _batch_timesteps(timesteps, sample.shape[0], sample.device, alphas_cumprod.shape[0])
    alpha_bar = _per_sample(alphas_cumprod.to(device=sample.device, dtype=dtype)[t], sample)
    x_t = sample.to(dtype)
    if prediction_type == "epsilon":
        return (x_t - (1 - alpha_bar) ** 0.5 * out) / alpha_bar**0.5
    return alpha_bar**0.5 * x_t - (1 - alpha_bar) ** 0.5 * out  # v_prediction


def _class_names(obj: object) -> tuple[str, ...]:
    return tuple(c.__name__ for c in type(obj).__mro__)


def x0_from_scheduler(scheduler: Any, model_output: Tensor, noisy: Tensor, timesteps: Tensor | int) -> Tensor:
    """x̂₀ for a diffusers DDPM-family scheduler: :func:`x0_from_prediction` with the scheduler's own
    ``config.prediction_type`` and ``alphas_cumprod``.

    Works with ``DDPMScheduler`` and ``DDIMScheduler`` (and their parallel variants and ``PNDMScheduler``), whose
    ``add_noise`` is x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε. A ``DDPMScheduler`` with a learned variance
    (``variance_type="learned"`` or ``"learned_range"``) outputs ``2C`` channels; as in its ``step``, the first
    ``C`` are the prediction. EDM schedulers: use :func:`x0_from_edm_scheduler`.

    Args:
        scheduler: the training scheduler.
        model_output: ``unet(noisy, timesteps).sample``, ``(B, C, H, W)``.
        noisy: ``scheduler.add_noise(x0, noise, timesteps)``, ``(B, C, H, W)``.
        timesteps: ``(B,)`` integer timesteps (or one for the whole batch).
    """
    names = _class_names(scheduler)
    if any(n in _EDM_SCHEDULERS for n in names):
        raise ValueError(f"scheduler is an EDM scheduler ({type(scheduler).__name__}): its x̂₀ is the preconditioned "
                         "denoiser output; use x0_from_edm_scheduler(scheduler, model_output, noisy, sigmas)")
    if not any(n in _VP_SCHEDULERS for n in names):
        raise ValueError(
            f"scheduler must be one of {', '.join(_VP_SCHEDULERS)} (training corruption x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε "
            f"at an integer timestep), got {type(scheduler).__name__}; for another parameterisation call "
            "x0_from_prediction with your own alphas_cumprod, or x0_from_edm_scheduler for EDM schedulers"
        )
    config = scheduler.config
    if (getattr(config, "variance_type", None) in ("learned", "learned_range") and isinstance(model_output, Tensor)
            and isinstance(noisy, Tensor) and model_output.dim() >= 2 and model_output.shape[1] == 2 * noisy.shape[1]):
        model_output = model_output[:, : noisy.shape[1]]
    return x0_from_prediction(model_output, noisy, timesteps, scheduler.alphas_cumprod, config.prediction_type)


def x0_from_edm_scheduler(scheduler: Any, model_output: Tensor, noisy: Tensor, sigmas: Tensor | float) -> Tensor:
    """x̂₀ for an EDM scheduler (``EDMEulerScheduler``): the preconditioned denoiser output
    D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ))  (Karras et al. 2022, Eq. 7 and Table 1),
    with c_skip = σ_data² / (σ² + σ_data²) and c_out = ±σ σ_data / √(σ² + σ_data²) (sign − for v-prediction,
    as in diffusers), computed by the scheduler's own ``precondition_outputs``.

    Args:
        scheduler: an EDM scheduler (has ``precondition_outputs``).
        model_output: ``F``'s output, ``(B, C, H, W)``.
        noisy: x = x₀ + σ n, ``(B, C, H, W)`` (not the network's scaled input c_in x).
        sigmas: σ per sample, ``(B,)`` positive floats (or one for the batch).
    """
    if not any(n in _EDM_SCHEDULERS for n in _class_names(scheduler)):
        raise ValueError(f"scheduler must be one of {', '.join(_EDM_SCHEDULERS)}, got {type(scheduler).__name__}; "
                         "for DDPM-family schedulers use x0_from_scheduler")
    model_output, noisy = check_pair(model_output, noisy, names=("model_output", "noisy"), ranks=(3, 4, 5))
    dtype = _compute_dtype(model_output, noisy)
    sigma = torch.as_tensor(sigmas, device=noisy.device)
    if not sigma.is_floating_point():
        raise ValueError(f"sigmas must be floats (σ, not an integer index), got dtype {sigma.dtype}")
    sigma = sigma.to(dtype)
    if sigma.dim() == 0:
        sigma = sigma.expand(noisy.shape[0])
    if sigma.shape != (noisy.shape[0],):
        raise ValueError(f"sigmas must have shape ({noisy.shape[0]},) or be a scalar, got {tuple(sigma.shape)}")
    if not bool((sigma > 0).all()):
        raise ValueError(f"sigmas must be > 0, got min {float(sigma.min())}")
    return scheduler.precondition_outputs(noisy.to(dtype), model_output.to(dtype), _per_sample(sigma, noisy))


def gap_to_scheduler(
    scheduler: Any,
    timesteps: tuple[int, ...] | None = None,
    *,
    shape: tuple[int, ...] = (4, 1, 16, 16),
    generator: torch.Generator | None = None,
) -> float:
    """max |:func:`x0_from_scheduler` − ``scheduler.step(...).pred_original_sample``| over random outputs and
    samples of ``shape``, at each of ``timesteps`` (default: 0, 1, T/2, T−2, T−1). 0 means the formulas agree.

    The scheduler must not clip or threshold x̂₀ (``clip_sample=False``, ``thresholding=False``): those change
    ``pred_original_sample`` on purpose, for sampling. A copy is stepped, so ``scheduler`` is left as it was.
    """
    config = scheduler.config
    if getattr(config, "clip_sample", False) or getattr(config, "thresholding", False):
        raise ValueError("scheduler must have clip_sample=False and thresholding=False for an exact comparison, got "
                         f"clip_sample={config.clip_sample}, thresholding={config.thresholding}")
    scheduler = copy.deepcopy(scheduler)
    if scheduler.num_inference_steps is None and any(n.startswith("DDIM") for n in _class_names(scheduler)):
        scheduler.set_timesteps(min(50, config.num_train_timesteps))  # DDIM's step needs it; x̂₀ does not
    total = config.num_train_timesteps
    ts = timesteps if timesteps is not None else (0, 1, total // 2, total - 2, total - 1)
    gap = 0.0
    for t in ts:
        sample = torch.randn(shape, generator=generator)
        model_output = torch.randn(shape, generator=generator)
        reference = scheduler.step(model_output, int(t), sample, generator=generator).pred_original_sample
        ours = x0_from_scheduler(scheduler, model_output, sample, int(t))
        gap = max(gap, float((ours - reference).abs().max()))
    return gap


def x0_error_gain(alphas_cumprod: Tensor, prediction_type: str) -> Tensor:
    """How much an error δ in the network's output grows in x̂₀, per timestep ``(T,)``: ‖Δx̂₀‖ = gain_t · ‖δ‖.

    From :func:`x0_from_prediction`: gain = √(1−ᾱ_t)/√ᾱ_t for ``"epsilon"``, √(1−ᾱ_t) for ``"v_prediction"``,
    1 for ``"sample"``.
    """
    check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
    ab = alphas_cumprod.double()
    if prediction_type == "epsilon":
        return ((1 - ab) / ab).sqrt()
    if prediction_type == "v_prediction":
        return (1 - ab).sqrt()
    return torch.ones_like(ab)


# ------------------------------------------------------------------------------------------------ the loss


class RegularizerLike(Protocol):
    """``SpectralRegularizer`` or any callable ``(x0_hat, x0) -> RegularizerOutput | Tensor``."""

    def __call__(self, x0_hat: Tensor, x0: Tensor) -> Any: ...


@dataclass(frozen=True)
class SpectralLossOutput:
    """The training loss and its parts.

    Attributes:
        total: scalar, differentiable: mean over the batch of ``pointwise + lambda_spec * spectral``.
        parts: detached scalars for logging, named as in :func:`spectral_lib.diffusion.diffusion_loss`:
            ``"diffusion"`` (the pointwise loss), and with a spectral term ``"spectral"`` (its batch mean, before
            λ) and one entry per term the regularizer reports (e.g. ``"wavelet"``).
    """

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)


def _as_per_sample(value: Tensor, batch: int, name: str) -> Tensor:
    if value.dim() == 0:
        return value
    if value.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},) (one value per sample), "
                         f"got {tuple(value.shape)}")
    return value


def spectral_training_loss(
    pointwise: Tensor,
    x0_hat: Tensor,
    x0: Tensor,
    regularizer: RegularizerLike | None = None,
    lambda_spec: float | Tensor = 1.0,
) -> SpectralLossOutput:
    """L_total = L_diffusion + λ · L_S(x̂₀, x₀): the paper's total loss, as the one line added to a training loop.

    Args:
        pointwise: the loop's own loss L_diffusion, per sample ``(B,)`` or already reduced (scalar).
        x0_hat: the clean-signal estimate, ``(B, C, H, W)`` (:func:`x0_from_scheduler`).
        x0: the clean batch, same shape.
        regularizer: ``SpectralRegularizer.from_name(...)`` (returns ``.total (B,)`` and ``.terms``), or any
            callable ``(x0_hat, x0) -> Tensor`` of shape ``(B,)`` or a scalar. ``None``: no spectral term.
        lambda_spec: λ ≥ 0, a number or one weight per sample ``(B,)`` (e.g. λ·λ_EDM(σ), the paper's "weighted").
            Default 1: the paper's "unweighted" image setting.

    Returns:
        :class:`SpectralLossOutput`. With ``regularizer=None`` or ``lambda_spec == 0``, ``total`` is exactly
        ``pointwise.mean()`` and the regularizer is not evaluated.
    """
    if not isinstance(pointwise, Tensor):
        raise ValueError(f"pointwise must be a tensor (B,) or a scalar, got {type(pointwise).__name__}")
    batch = x0.shape[0] if isinstance(x0, Tensor) and x0.dim() > 0 else 0
    pointwise = _as_per_sample(pointwise, batch, "pointwise")
    parts = {"diffusion": pointwise.detach().mean()}
    if isinstance(lambda_spec, Tensor):
        lam = _as_per_sample(lambda_spec.to(pointwise.device), batch, "lambda_spec")
        if not bool((lam >= 0).all()) or not bool(torch.isfinite(lam).all()):
            raise ValueError("lambda_spec must be finite and >= 0 for every sample")
        off = bool((lam == 0).all())
    else:
        check_positive(lambda_spec, "lambda_spec", allow_zero=True)
        lam, off = float(lambda_spec), float(lambda_spec) == 0.0
    if regularizer is None or off:
        return SpectralLossOutput(total=pointwise.mean(), parts=parts)
    x0_hat, x0 = check_pair(x0_hat, x0, names=("x0_hat", "x0"), ranks=(3, 4, 5))
    out = regularizer(x0_hat, x0)
    spectral = out.total if hasattr(out, "total") else out
    if not isinstance(spectral, Tensor):
        raise ValueError(f"regularizer must return a tensor or an object with .total, got {type(out).__name__}")
    spectral = _as_per_sample(spectral, batch, "the regularizer's output")
    total = pointwise.mean() + (lam * spectral).mean()
    parts["spectral"] = spectral.detach().mean()
    for name, value in (getattr(out, "terms", None) or {}).items():
        if name in parts:
            raise ValueError(f"regularizer term name {name!r} clashes with a reserved part name")
        parts[name] = value.detach().mean()
    return SpectralLossOutput(total=total, parts=parts)


def resolve_regularizer(regularizer: str | RegularizerLike | None) -> RegularizerLike | None:
    """A regularizer from a name (``SpectralRegularizer.from_name``; ``"none"`` gives ``None``), a callable, or
    ``None``."""
    if regularizer is None or regularizer == "none":
        return None
    if isinstance(regularizer, str):
        from ..spectral import SpectralRegularizer  # imported here: the spectral package is not needed otherwise

        return SpectralRegularizer.from_name(regularizer)
    if not callable(regularizer):
        raise ValueError(f"regularizer must be a name, a callable or None, got {type(regularizer).__name__}")
    return regularizer


# ------------------------------------------------------------------------------------------------ one step


def prediction_target(scheduler: Any, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
    """What the network is trained to output (diffusers' convention): ε, v = ``scheduler.get_velocity`` or x₀."""
    prediction_type = scheduler.config.prediction_type
    check_choice(prediction_type, "scheduler.config.prediction_type", PREDICTION_TYPES)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    return x0


def _draw(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


def training_step(
    unet: torch.nn.Module,
    scheduler: Any,
    x0: Tensor,
    *,
    regularizer: RegularizerLike | None = None,
    lambda_spec: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
) -> SpectralLossOutput:
    """One diffusers training loss (as ``train_unconditional.py``: uniform timesteps, MSE on the prediction type's
    target), plus the spectral term on x̂₀ at the same timesteps. Returns the loss; the caller steps the optimiser.
    """
    batch = x0.shape[0]
    where = generator.device if generator is not None else x0.device
    noise = _draw(tuple(x0.shape), generator, x0.device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator,
                              device=where).to(x0.device)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    model_output = unet(noisy, timesteps).sample
    target = prediction_target(scheduler, x0, noise, timesteps)
    pointwise = F.mse_loss(model_output.float(), target.float(), reduction="none").flatten(1).mean(dim=1)
    # The spectral term: x̂₀ from the scheduler's prediction type, then L_diffusion + λ · L_S(x̂₀, x₀).
    x0_hat = x0_from_scheduler(scheduler, model_output, noisy, timesteps)
    return spectral_training_loss(pointwise, x0_hat, x0, regularizer, lambda_spec)


# ------------------------------------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class DiffusersProfile:
    """Every number of the diffusers checkerboard run (chapter "Plug-and-play in diffusers" and the example).

    The data follow the checkerboard experiment (:mod:`spectral_lib.data.checkerboard`): grayscale boards in
    ``[-1, 1]`` with random offsets. The network is a plain ``UNet2DModel`` without attention (our choice: the toy
    needs no global context, and attention would dominate the CPU time).
    """

    size: int
    check_size: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    norm_num_groups: int
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    ema_decay: float
    sample_steps: int
    n_samples: int
    channels: int = 1
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    grad_clip: float = 1.0
    lambda_spec: float = 1.0
    log_every: int = 10
    seed: int = 0

    def replace(self, **overrides: Any) -> DiffusersProfile:
        """A copy with ``overrides``; unknown keys raise ``ValueError`` listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"unknown profile key(s) {unknown}; valid keys: {', '.join(valid)}")
        if "block_out_channels" in overrides:
            overrides["block_out_channels"] = tuple(overrides["block_out_channels"])
        return dataclasses.replace(self, **overrides)


DIFFUSERS_PROFILES: dict[str, DiffusersProfile] = {
    # Seconds on one core: every code path (train, EMA, DDIM sampling), not a learned board.
    "smoke": DiffusersProfile(size=16, check_size=4, block_out_channels=(16, 32), layers_per_block=1,
                              norm_num_groups=8, batch_size=8, steps=20, lr=1e-3, warmup_steps=5, ema_decay=0.99,
                              sample_steps=10, n_samples=8, log_every=5),
    # A laptop: 32×32 with 4-pixel checks as the library's checkerboard `cpu` profile; a 0.64 M-parameter UNet (our
    # prototype's had 0.58 M) with three levels, whose 16-channel first level keeps a step at ~0.27 CPU-seconds
    # (batch 32): about 2 minutes per run on one free core. lr 2e-3 with warm-up, as the library's `cpu` profile.
    "cpu": DiffusersProfile(size=32, check_size=4, block_out_channels=(16, 32, 64), layers_per_block=1,
                            norm_num_groups=8, batch_size=32, steps=400, lr=2e-3, warmup_steps=50, ema_decay=0.995,
                            sample_steps=50, n_samples=16, log_every=20),
    # Colab / a workstation: the paper's 64×64 toy size with 8-pixel checks, a wider UNet, more steps.
    "gpu": DiffusersProfile(size=64, check_size=8, block_out_channels=(64, 128, 128), layers_per_block=2,
                            norm_num_groups=32, batch_size=128, steps=5000, lr=5e-4, warmup_steps=200,
                            ema_decay=0.999, sample_steps=100, n_samples=64, log_every=50),
}
"""``profile -> DiffusersProfile`` for the diffusers chapter and ``examples/train_diffusers.py``."""


def get_diffusers_profile(profile: str, **overrides: Any) -> DiffusersProfile:
    """The named profile (``"smoke"``, ``"cpu"``, ``"gpu"``), with optional overrides."""
    check_choice(profile, "profile", tuple(DIFFUSERS_PROFILES))
    config = DIFFUSERS_PROFILES[profile]
    return config.replace(**overrides) if overrides else config


# ------------------------------------------------------------------------------------------------ builders


def make_unet(profile: DiffusersProfile) -> torch.nn.Module:
    """A diffusers ``UNet2DModel`` for ``profile``: ResNet down/up blocks only, ``channels`` in and out."""
    diffusers = require_diffusers()
    n = len(profile.block_out_channels)
    return diffusers.UNet2DModel(
        sample_size=profile.size,
        in_channels=profile.channels,
        out_channels=profile.channels,
        block_out_channels=tuple(profile.block_out_channels),
        layers_per_block=profile.layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=profile.norm_num_groups,
    )


def make_scheduler(
    prediction_type: str = "epsilon",
    *,
    num_train_timesteps: int = 1000,
    beta_schedule: str = "linear",
    kind: str = "ddpm",
    clip_sample: bool = True,
) -> Any:
    """A ``DDPMScheduler`` (or ``DDIMScheduler`` with ``kind="ddim"``) with diffusers' defaults (linear β from
    1e-4 to 0.02 over 1000 steps, as in Ho et al. 2020) and the given prediction type. ``clip_sample`` clips x̂₀
    to ``[-1, 1]`` inside ``step`` when sampling (diffusers' default); training never uses it."""
    diffusers = require_diffusers()
    check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
    check_choice(kind, "kind", ("ddpm", "ddim"))
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    return cls(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
               prediction_type=prediction_type, clip_sample=clip_sample)


# ------------------------------------------------------------------------------------------------ training


class BatchSource(Protocol):
    """Anything with ``sample(batch_size, generator=...) -> Tensor``, e.g. ``CheckerboardSource``."""

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor: ...


@dataclass
class TrainedUNet:
    """``unet``: the trained network; ``ema_unet``: its exponential moving average (sample with this one);
    ``history``: one dict per logged step (``step``, ``loss`` and the loss parts); ``seconds``: wall time."""

    unet: torch.nn.Module
    ema_unet: torch.nn.Module
    history: list[dict[str, float]]
    seconds: float


def train_unet(
    unet: torch.nn.Module,
    scheduler: Any,
    source: BatchSource,
    profile: DiffusersProfile,
    *,
    regularizer: RegularizerLike | None = None,
    lambda_spec: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> TrainedUNet:
    """Train ``unet`` for ``profile.steps`` steps of :func:`training_step`: AdamW, linear warm-up then constant
    learning rate, gradient clipping, and diffusers' ``EMAModel`` (its default decay warm-up, as in
    ``train_unconditional.py``). ``lambda_spec`` defaults to ``profile.lambda_spec``."""
    require_diffusers()
    from diffusers.training_utils import EMAModel

    device = torch.device(device)
    lam = profile.lambda_spec if lambda_spec is None else lambda_spec
    unet = unet.to(device).train()
    ema = EMAModel(unet.parameters(), decay=profile.ema_decay)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=profile.lr, weight_decay=0.0)
    warmup = max(1, profile.warmup_steps)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    history: list[dict[str, float]] = []
    steps = range(profile.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="train", leave=False)
    start = time.perf_counter()
    for step in steps:
        x0 = source.sample(profile.batch_size, generator=generator).to(device)
        out = training_step(unet, scheduler, x0, regularizer=regularizer, lambda_spec=lam, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), profile.grad_clip)
        optimizer.step()
        lr_schedule.step()
        ema.step(unet.parameters())
        if step % profile.log_every == 0 or step == profile.steps - 1:
            history.append({"step": step, "loss": float(out.total.detach()),
                            **{k: float(v) for k, v in out.parts.items()}})
    seconds = time.perf_counter() - start
    ema_unet = copy.deepcopy(unet)
    ema.copy_to(ema_unet.parameters())
    return TrainedUNet(unet=unet.eval(), ema_unet=ema_unet.eval(), history=history, seconds=seconds)


@torch.no_grad()
def ddim_sample(
    unet: torch.nn.Module,
    scheduler: Any,
    n: int,
    *,
    steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` samples ``(n, C, H, W)`` with diffusers' ``DDIMScheduler`` (Song et al. 2021), built from the training
    scheduler's config (same β schedule and prediction type); ``eta=0``: deterministic DDIM."""
    diffusers = require_diffusers()
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    device = torch.device(device)
    sampler = diffusers.DDIMScheduler.from_config(scheduler.config)
    sampler.set_timesteps(steps, device=device)
    config = unet.config
    x = _draw((n, config.in_channels, config.sample_size, config.sample_size), generator, device)
    unet = unet.to(device).eval()
    for t in sampler.timesteps:
        model_output = unet(x, t).sample
        x = sampler.step(model_output, t, x, eta=eta, generator=generator).prev_sample
    return x


# ------------------------------------------------------------------------------------------------ the toy


@dataclass
class CheckerboardRun:
    """One diffusers checkerboard run: the profile, the regularizer's name, the trained networks, the loss history,
    ``samples (n, C, H, W)`` from the EMA network, ``metrics`` (:func:`checkerboard_metrics`) and wall times."""

    profile: DiffusersProfile
    regularizer: str
    prediction_type: str
    trained: TrainedUNet
    samples: Tensor
    metrics: dict[str, float]
    train_seconds: float
    sample_seconds: float


def train_checkerboard(
    profile: str | DiffusersProfile = "cpu",
    regularizer: str = "none",
    *,
    prediction_type: str = "epsilon",
    lambda_spec: float | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    regularizer_fn: RegularizerLike | Callable[[Tensor, Tensor], Tensor] | None = None,
) -> CheckerboardRun:
    """Train a diffusers ``UNet2DModel`` + ``DDPMScheduler`` on checkerboards with the named regularizer, then
    sample with DDIM and measure how crisp the boards are.

    Args:
        profile: a name of :data:`DIFFUSERS_PROFILES` or a :class:`DiffusersProfile`.
        regularizer: a ``SpectralRegularizer`` name (``"none"``: the plain diffusers baseline).
        prediction_type: ``"epsilon"`` (diffusers' default), ``"v_prediction"`` or ``"sample"``.
        lambda_spec: λ; default ``profile.lambda_spec``.
        device: default: CUDA if available, else the CPU.
        regularizer_fn: use this callable instead of looking ``regularizer`` up (``regularizer`` is then only
            the run's label).
    """
    from ..data.checkerboard import CheckerboardSource, checkerboard_metrics
    from ..device import default_device

    config = get_diffusers_profile(profile) if isinstance(profile, str) else profile
    if not isinstance(config, DiffusersProfile):
        raise ValueError(f"profile must be a name or a DiffusersProfile, got {type(profile).__name__}")
    dev = default_device(None if device is None else str(device))
    reg = regularizer_fn if regularizer_fn is not None else resolve_regularizer(regularizer)
    with torch.random.fork_rng(devices=[]):  # the UNet's initial weights, without touching the caller's RNG
        torch.manual_seed(config.seed)
        unet = make_unet(config)
    scheduler = make_scheduler(prediction_type, num_train_timesteps=config.num_train_timesteps,
                               beta_schedule=config.beta_schedule)
    source = CheckerboardSource(size=config.size, check_sizes=(config.check_size,), channels=config.channels)
    generator = torch.Generator().manual_seed(config.seed)
    trained = train_unet(unet, scheduler, source, config, regularizer=reg, lambda_spec=lambda_spec,
                         generator=generator, device=dev, progress=progress)
    start = time.perf_counter()
    samples = ddim_sample(trained.ema_unet, scheduler, config.n_samples, steps=config.sample_steps,
                          generator=torch.Generator().manual_seed(config.seed + 1), device=dev).cpu()
    sample_seconds = time.perf_counter() - start
    metrics = checkerboard_metrics(samples.clamp(-1, 1), check_sizes=(config.check_size,))
    return CheckerboardRun(profile=config, regularizer=regularizer, prediction_type=prediction_type, trained=trained,
                           samples=samples, metrics=metrics, train_seconds=trained.seconds,
                           sample_seconds=sample_seconds)
