"""The trainer: one loop for every formulation, network and regularizer, resumable to the bit, DDP-ready.

One step (the only place where the parts meet is ``diffusion_loss``)::

    x0 = source.sample(batch_size, data_generator)                        # data in [-1, 1]
    out = diffusion_loss(formulation, model, x0, regularizer=reg,         # L_diffusion + λ · L_S(x0_hat, x0)
                         lambda_spec=λ, spectral_weighting=..., generator=noise_generator)
    AdamW step on out.total (gradient clipping, linear warm-up of the learning rate)
    EMA of the weights (sampling uses the EMA copy)

Reproducibility. Two generators drive all the randomness of a step: the *data* generator (procedural data, e.g.
checkerboard offsets) and the *noise* generator (diffusion levels t or σ and the noise ε). Both, the global torch /
NumPy / Python states (dropout), the model, the EMA, the optimizer and the gradient scaler are saved in
``out_dir/checkpoints/last.pt``; ``resume=True`` restores them, so on the CPU an interrupted and resumed run ends
with exactly the weights of an uninterrupted one.

Multi-GPU. Launched by ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the same call initialises the process
group (NCCL on CUDA, gloo on the CPU), wraps the model in ``DistributedDataParallel`` and gives every rank its own
data and noise streams; rank 0 alone writes files and shows progress. ``batch_size`` is per rank.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spectral_lib.device import adapt_threads, default_device, release_threads
from spectral_lib.experiments import run_folder
from spectral_lib.experiments.checkpoint import (
    CheckpointError,
    atomic_write_text,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.run_folder import checkpoint_path
from spectral_lib.experiments.sources import build_source, sample_shape, split_batch

__all__ = [
    "TrainResult",
    "TrainState",
    "Components",
    "EMA",
    "DistInfo",
    "train",
    "lr_factor",
    "training_step",
    "stream_seed",
    "draw_samples",
    "build_model",
    "build_formulation",
    "build_regularizer",
    "build_components",
    "setup_distributed",
    "checkpoint_path",
    "check_resumable",
    "RESUMABLE_CHANGES",
    "UntrustedPickleError",
]

RESUMABLE_CHANGES = (
    "steps", "log_every", "sample_every", "checkpoint_every", "device", "n_samples", "sample_steps",
    "sample_kwargs", "sample_batch_size", "grid_samples", "num_workers",
)
"""Config keys that may differ between a checkpoint and the run resuming it (they do not change past steps)."""


# ------------------------------------------------------------------------------------------------ components


@dataclass
class Components:
    """What a config builds: the data source, the network, the formulation, the regularizer and the loss."""

    source: Any
    model: nn.Module
    formulation: Any
    regularizer: nn.Module | None
    loss_fn: Callable[..., Any]


class UntrustedPickleError(ValueError):
    """Building the network would unpickle a file (code) that the caller did not say they trust."""


def build_model(config: ExperimentConfig, *, trust_pickle: bool = False) -> nn.Module:
    """The network named by ``config.model = {"name": ..., "preset": ..., **overrides}``.

    ``"unet2d"``: ``UNet2D(unet2d_preset(preset, in_channels=config.data["channels"], **overrides))``;
    ``"diffwave"``: ``DiffWave(diffwave_preset(preset, **overrides))``, or with ``"pretrained": name or path`` the
    published weights loaded into that architecture (fine-tuning; see
    :func:`spectral_lib.models.diffwave_pretrained.load_pretrained_diffwave`);
    ``"edm_pretrained"``: an official EDM checkpoint to fine-tune, ``{"network": name, URL or path, "edm_repo": ...,
    "dropout": ...}`` (:func:`spectral_lib.models.edm_pretrained.pretrained_edm`; needs ``formulation="edm"``).
    ``"in_channels"`` in ``config.model`` overrides ``config.data["channels"]`` (image folders are RGB and take no
    ``channels`` option).

    ``trust_pickle``: an ``"edm_pretrained"`` network is a pickle, and unpickling runs the code it holds (and
    ``edm_repo`` goes first on ``sys.path``); that happens only when the caller passes ``trust_pickle=True``, never
    because a config (e.g. a run folder's ``config.json``) says so. The trainer passes it: its config comes from the
    caller's code or command line.

    Raises:
        UntrustedPickleError: an ``"edm_pretrained"`` model without ``trust_pickle=True``.
    """
    options = dict(config.model)
    if "trust_pickle" in options:
        raise ValueError("trust_pickle is not a config option: a config cannot vouch for a pickle; the caller passes "
                         "trust_pickle=True")
    name = options.pop("name", "unet2d")
    preset = options.pop("preset", None)
    channels = int(options.pop("in_channels", config.data.get("channels", 1)))
    if name == "unet2d":
        from spectral_lib.models.unet2d import UNet2D, unet2d_preset

        return UNet2D(unet2d_preset(preset or "tiny", in_channels=channels, **options))
    if name == "diffwave":
        from spectral_lib import models

        pretrained = options.pop("pretrained", None)
        architecture = models.diffwave_preset(preset or "small", **options)
        if pretrained:
            from spectral_lib.models.diffwave_pretrained import load_pretrained_diffwave

            return load_pretrained_diffwave(pretrained, config=architecture).train()
        return models.DiffWave(architecture)
    if name == "edm_pretrained":
        from spectral_lib.models.edm_pretrained import check_edm_formulation, pretrained_edm

        if not trust_pickle:
            raise UntrustedPickleError(
                f"config.model names the EDM network pickle {options.get('network')!r}; unpickling runs any code it "
                "holds, so it is loaded only when the caller passes trust_pickle=True (for a file you trust)"
            )
        network = pretrained_edm(**options)
        check_edm_formulation(network, config.formulation, config.formulation_kwargs)
        return network
    raise ValueError(f"unknown model name {name!r}; valid: 'unet2d', 'diffwave', 'edm_pretrained'")


def build_formulation(config: ExperimentConfig) -> Any:
    """``make_formulation(config.formulation, **config.formulation_kwargs)``."""
    from spectral_lib.diffusion import make_formulation

    return make_formulation(config.formulation, **config.formulation_kwargs)


def build_regularizer(config: ExperimentConfig) -> nn.Module | None:
    """``SpectralRegularizer.from_name(...)``, or ``None`` for ``"none"`` (the plain objective)."""
    if config.regularizer == "none":
        return None
    from spectral_lib.spectral import SpectralRegularizer

    return SpectralRegularizer.from_name(config.regularizer, **config.regularizer_kwargs)


def build_components(config: ExperimentConfig, *, rank: int = 0, world_size: int = 1) -> Components:
    """Every part of a run from its config. Tests replace this function to train tiny stand-ins."""
    from spectral_lib.diffusion import diffusion_loss

    source = build_source(
        config.data, data_dir=config.data_dir, seed=config.seed, rank=rank, world_size=world_size,
        num_workers=config.num_workers,
    )
    model = build_model(config, trust_pickle=True)  # the caller's config (code, command line), not a data file
    check = getattr(model, "check_data", None)  # a pretrained network refuses data of another shape or class count
    if check is not None:
        check(sample_shape(source), int(getattr(source, "label_dim", 0) or 0))
    return Components(
        source=source,
        model=model,
        formulation=build_formulation(config),
        regularizer=build_regularizer(config),
        loss_fn=diffusion_loss,
    )


# ------------------------------------------------------------------------------------------------ pieces


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


class EMA:
    """Exponential moving average of a model's weights; the copy used for sampling.

    After update ``n`` (1-based): ``θ_ema ← d_n θ_ema + (1 − d_n) θ`` with ``d_n = min(decay, (1 + n) / (10 + n))``.
    The warm-up of ``d_n`` is our choice (as in TensorFlow's and diffusers' EMA): a short run at decay 0.999 would
    otherwise still carry ``0.999^800 ≈ 45 %`` of the random initial weights after 800 steps. Buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    def decay_at(self, n: int) -> float:
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module, n: int) -> None:
        weight = 1.0 - self.decay_at(n)
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), weight)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (``world_size == 1`` without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (set by ``torchrun``), join the process group, pick the device.

    NCCL and ``cuda:LOCAL_RANK`` when CUDA is available (and ``device`` does not say ``"cpu"``), gloo on the CPU
    otherwise. Without ``WORLD_SIZE > 1`` this is single-process training on ``default_device(device)``.
    """
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), default_device(device)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = torch.cuda.is_available() and (device is None or not str(device).startswith("cpu"))
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", **({"device_id": dev} if use_cuda else {}))
        created = True
    return DistInfo(rank, dist.get_world_size(), local_rank, created), dev


# ------------------------------------------------------------------------------------------------ results


@dataclass
class TrainState:
    """What ``callback(state)`` sees after every optimizer step."""

    step: int
    model: nn.Module
    ema_model: nn.Module
    optimizer: torch.optim.Optimizer
    dist: DistInfo
    log: dict[str, float] | None = None  # the log line written at this step, if any


@dataclass
class TrainResult:
    """The outcome of :func:`train`. ``ema_model`` is the copy used for sampling."""

    model: nn.Module
    ema_model: nn.Module
    formulation: Any
    source: Any
    config: ExperimentConfig
    out_dir: Path
    step: int
    wall_time: float  # seconds of training, summed over resumed sessions
    history: list[dict[str, float]] = field(default_factory=list)  # log lines of this session
    dist: DistInfo = field(default_factory=DistInfo)


# ------------------------------------------------------------------------------------------------ the loop


def check_resumable(saved: Mapping[str, Any], config: ExperimentConfig, path: Path) -> None:
    """Raise ``ValueError`` naming every key, other than :data:`RESUMABLE_CHANGES`, where ``config`` differs from
    the ``saved`` config dict of ``path``."""
    current = config.to_dict()
    differing = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if differing:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}" for k in differing)
        raise ValueError(
            f"cannot resume from {str(path)!r}: the config differs in {details}. Only "
            f"{', '.join(RESUMABLE_CHANGES)} may change when resuming; use another out_dir for a new run"
        )


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines of steps ``<= step`` (lines written after the last checkpoint are replayed). The file is
    replaced (atomically), so a ``log.jsonl`` that is a link, even a dangling one, is never appended through."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    kept = []
    for line in text.splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def _amp_dtype(config: ExperimentConfig, device: torch.device) -> torch.dtype | None:
    if config.amp == "off" or device.type != "cuda":
        return None
    if config.amp == "bf16":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        warnings.warn("amp='bf16' is not supported by this GPU; using fp16 with a gradient scaler", stacklevel=3)
    return torch.float16


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


def _save_sample_figure(
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
    x0 = x0.to(device, non_blocking=True)
    for key, value in (cond or {}).items():  # x0 is checked by the loss; conditioning reaches the network unchecked
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"cond[{key!r}] of this batch holds {int((~torch.isfinite(value)).sum())} NaN or "
                             "infinite value(s); the model would learn from NaN (check the data it comes from)")
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


# ------------------------------------------------------------------------------------------------ one session


@dataclass
class _Session:
    """Everything one call of :func:`train` works with, built by :func:`_set_up` and used by every step."""

    config: ExperimentConfig
    out_dir: Path
    info: DistInfo
    device: torch.device
    parts: Components
    model: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    generators: dict[str, torch.Generator]
    net: nn.Module | None = None  # what the loss calls: the model or its DistributedDataParallel wrapper
    shape: tuple[int, ...] = ()
    start_step: int = 0
    elapsed_before: float = 0.0  # seconds of training in earlier sessions
    saved_step: int | None = None  # the step of the checkpoint on disk (always finite weights), if any

    @property
    def ckpt(self) -> Path:
        return checkpoint_path(self.out_dir)

    def elapsed(self, t_start: float) -> float:
        return self.elapsed_before + time.perf_counter() - t_start


def _check_run_folder(out_dir: Path, config: ExperimentConfig, resume: bool) -> None:
    """The refusals made before anything is written (by every rank, before they meet, so that they agree): a file
    as ``out_dir``, files that are not a run, an existing run without ``resume``, another run's ``config.json``
    (without a checkpoint) with ``resume``."""
    run_folder.check_out_dir(out_dir)
    saved = run_folder.read_run_config(out_dir)  # raises on a config.json that is not a run's
    ckpt = checkpoint_path(out_dir)
    run_folder.refuse_foreign(out_dir)
    if not resume and ckpt.exists():
        raise FileExistsError(
            f"{str(ckpt)!r} exists: pass resume=True (--resume) to continue that run, or choose another out_dir"
        )
    if not resume and saved is not None:
        raise FileExistsError(f"{str(out_dir / 'config.json')!r} holds a run: pass resume=True (--resume) to "
                              "continue it, or choose another out_dir")
    if resume and saved is not None and not ckpt.exists():
        check_resumable(saved, config, out_dir / "config.json")


def _seed_streams(config: ExperimentConfig, rank: int, device: torch.device) -> dict[str, torch.Generator]:
    """Seed this rank's global torch, NumPy and Python generators; return its data and noise generators."""
    import random

    torch.manual_seed(stream_seed(config.seed, "torch", rank))
    np.random.seed(stream_seed(config.seed, "numpy", rank) % 2**32)
    random.seed(stream_seed(config.seed, "python", rank))
    return {
        "data": torch.Generator().manual_seed(stream_seed(config.seed, "data", rank)),
        "noise": torch.Generator(device=device).manual_seed(stream_seed(config.seed, "noise", rank)),
    }


def _set_up(config: ExperimentConfig, out_dir: Path) -> _Session:
    """Join the process group, build every part (identical initial weights on every rank), the EMA, AdamW and the
    gradient scaler, and seed this rank's own streams."""
    info, device = setup_distributed(config.device)
    torch.manual_seed(config.seed)
    parts = build_components(config, rank=info.rank, world_size=info.world_size)
    model = parts.model.to(device)
    if parts.regularizer is not None:
        parts.regularizer = parts.regularizer.to(device)
    amp_dtype = _amp_dtype(config, device)
    return _Session(
        config=config, out_dir=out_dir, info=info, device=device, parts=parts, model=model,
        ema=EMA(model, config.ema_decay),
        optimizer=torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), amp_dtype=amp_dtype,
        generators=_seed_streams(config, info.rank, device),
    )


_CHECKPOINT_KEYS = ("step", "elapsed_s", "config", "model", "ema", "optimizer", "per_rank")


def _resume(s: _Session) -> None:
    """Restore weights, EMA, optimizer, scaler and this rank's streams from the checkpoint (if there is one)."""
    state = load_checkpoint(s.ckpt, map_location="cpu")
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing or not isinstance(state["config"], Mapping) or not isinstance(state["per_rank"], list):
        raise CheckpointError(f"checkpoint {str(s.ckpt)!r} lacks {', '.join(map(repr, missing)) or 'a valid config'}"
                              ": it was not written by this trainer")
    check_resumable(state["config"], s.config, s.ckpt)
    step = int(state["step"])
    if step > s.config.steps:
        raise ValueError(
            f"cannot resume from {str(s.ckpt)!r}: it is at step {step}, beyond steps={s.config.steps}; a run "
            f"cannot be shortened (its weights, log and metrics are those of step {step}): resume with steps >= "
            f"{step}, or choose another out_dir"
        )
    try:
        s.model.load_state_dict(state["model"])
        s.ema.load_state_dict(state["ema"])
        s.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            s.scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {str(s.ckpt)!r} does not fit the network of this config: "
                              f"{str(exc).strip().splitlines()[0]}") from exc
    s.start_step, s.elapsed_before, s.saved_step = step, float(state["elapsed_s"]), step
    _restore_streams(s, state["per_rank"])


def _restore_streams(s: _Session, per_rank: list[Any]) -> None:
    """This rank's data and noise streams from the checkpoint, or fresh seeds when the number of ranks changed."""
    rank, world = s.info.rank, s.info.world_size
    if len(per_rank) == world:
        try:
            restore_rng_state(per_rank[rank]["rng"], s.generators)
            if per_rank[rank].get("data") is not None and hasattr(s.parts.source, "load_state_dict"):
                s.parts.source.load_state_dict(per_rank[rank]["data"])
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint {str(s.ckpt)!r} holds damaged random states for rank {rank} "
                                  f"({type(exc).__name__}: {exc}); it cannot be resumed exactly") from exc
        return
    warnings.warn(
        f"{str(s.ckpt)!r} was written by {len(per_rank)} process(es), this run has {world}: weights and "
        "optimizer are restored, the data and noise streams restart from new seeds (not an exact resume)",
        stacklevel=3,
    )
    for name, g in s.generators.items():
        g.manual_seed(stream_seed(s.config.seed + s.start_step, name, rank))


def _prepare_folder(s: _Session) -> None:
    """Rank 0: remove what crashed writes left, keep the log lines up to the checkpoint's step (those after it are
    replayed; none when there is no checkpoint), write ``config.json``, create ``figures/``."""
    if not s.info.is_main:
        return
    run_folder.remove_temporary_files(s.out_dir)
    _truncate_log(s.out_dir / "log.jsonl", s.start_step)
    atomic_write_text(s.out_dir / "config.json", json.dumps(s.config.to_dict(), indent=2) + "\n")
    (s.out_dir / "figures").mkdir(parents=True, exist_ok=True)


def _start(s: _Session, resume: bool) -> None:
    """After the set-up: wait for every rank's checks, resume, prepare the folder, wrap the model for DDP."""
    if s.info.enabled:  # every rank has made its checks before rank 0 writes (a process group that the caller
        import torch.distributed as dist  # made has had no start barrier)

        dist.barrier()
    if resume and s.ckpt.exists():
        _resume(s)
    _prepare_folder(s)
    s.net = s.model
    if s.info.enabled:
        s.net = nn.parallel.DistributedDataParallel(
            s.model, device_ids=[s.device.index] if s.device.type == "cuda" else None)
    s.shape = sample_shape(s.parts.source)


# ------------------------------------------------------------------------------------------------ steps


def _optimizer_step(s: _Session, step: int) -> tuple[Any, torch.Tensor, float]:
    """Step ``step`` (0-based): learning rate, a batch, :func:`training_step`, EMA. Returns ``(out, grad_norm, lr)``."""
    c = s.config
    lr = c.lr * lr_factor(step, c)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    x0, cond = split_batch(s.parts.source.sample(c.batch_size, s.generators["data"]))
    out, grad_norm = training_step(
        s.net, s.model, s.parts.loss_fn, s.parts.formulation, x0, s.optimizer, s.scaler,
        regularizer=s.parts.regularizer, lambda_spec=c.lambda_spec, spectral_weighting=c.spectral_weighting,
        grad_clip=c.grad_clip, generator=s.generators["noise"], amp_dtype=s.amp_dtype, cond=cond,
    )
    s.ema.update(s.model, step + 1)
    return out, grad_norm, lr


class _LossMeter:
    """Running sums of the loss parts between two log lines (tensors: no device sync until a line is written)."""

    def __init__(self, t_start: float) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count, self.t_window = 0, t_start

    def add(self, out: Any, grad_norm: torch.Tensor) -> None:
        values = {"loss": out.total.detach(), **{k: v.detach() for k, v in out.parts.items()}}
        values["grad_norm"] = grad_norm.detach()
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.float()
        self.count += 1

    def loss(self) -> float | None:
        """The summed loss since the last line (``None`` when nothing was added)."""
        return float(self.sums["loss"]) if "loss" in self.sums else None

    def line(self, done: int, lr: float, elapsed: float) -> dict[str, float]:
        """The averages since the last line as a log line, and a new window."""
        now = time.perf_counter()
        line = {"step": done, **{k: (v / self.count).item() for k, v in self.sums.items()}}
        line.update(lr=lr, steps_per_s=self.count / max(now - self.t_window, 1e-9), elapsed_s=elapsed)
        self.sums, self.count, self.t_window = {}, 0, now
        return line


def _all_finite(module: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in module.parameters() if p.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _check_finite(s: _Session, done: int, loss: float | None, *, weights: bool) -> None:
    """Stop with a ``FloatingPointError`` before anything is logged or saved when the loss (not under fp16, whose
    scaler skips such steps) or, when ``weights``, the weights or their EMA are no longer finite. Every rank takes
    the same decision (one all-reduce), so that none waits for a save that will not come."""
    bad_loss = loss is not None and not math.isfinite(loss) and s.amp_dtype != torch.float16
    bad = bad_loss or (weights and not (_all_finite(s.model) and _all_finite(s.ema.module)))
    if s.info.enabled:
        import torch.distributed as dist

        flag = torch.tensor([float(bad)], device=s.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        bad = bool(flag.item())
    if not bad:
        return
    what = (f"the loss became {loss} at step {done}" if bad_loss
            else f"the weights became NaN or infinite at step {done}")
    kept = (f"the last good checkpoint {str(s.ckpt)!r} (step {s.saved_step}) is kept" if s.saved_step is not None
            else "no checkpoint was written")
    raise FloatingPointError(f"training diverged: {what}; lower lr or lambda_spec; {kept}")


def _log(s: _Session, meter: _LossMeter, done: int, lr: float, t_start: float, bar: Any) -> dict[str, float]:
    """Check the loss, then write a log line (rank 0) and show it on the progress bar."""
    _check_finite(s, done, meter.loss(), weights=False)
    line = meter.line(done, lr, s.elapsed(t_start))
    if s.info.is_main:
        with open(s.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        bar.set_postfix({k: f"{v:.4g}" for k, v in line.items()
                         if k not in ("step", "elapsed_s", "steps_per_s", "lr")}, refresh=False)
    return line


def _save(s: _Session, meter: _LossMeter, done: int, t_start: float) -> None:
    """Check the loss since the last log line and the weights, then write the checkpoint atomically (rank 0)
    with every rank's random streams; a diverged run never replaces a good checkpoint."""
    import torch.distributed as dist

    _check_finite(s, done, meter.loss(), weights=True)
    mine = {"rng": capture_rng_state(s.generators), "data": getattr(s.parts.source, "state_dict", lambda: None)()}
    gathered: list[Any] = [mine]
    if s.info.enabled:
        gathered = [None] * s.info.world_size
        dist.all_gather_object(gathered, mine)
    if s.info.is_main:
        save_checkpoint(s.ckpt, {
            "step": done,
            "elapsed_s": s.elapsed(t_start),
            "config": s.config.to_dict(),
            "model": s.model.state_dict(),
            "ema": s.ema.state_dict(),
            "optimizer": s.optimizer.state_dict(),
            "scaler": s.scaler.state_dict() if s.scaler.is_enabled() else {},
            "sample_shape": list(s.shape),
            "per_rank": gathered,
        })
    s.saved_step = done


def _every(n: int | None, done: int, last: int) -> bool:
    """A periodic event after step ``done``: every ``n`` steps (never for 0/None), and at the last step."""
    return bool(n and done % n == 0) or done == last


def _after_step(s: _Session, meter: _LossMeter, done: int, lr: float, t_start: float, bar: Any) -> dict | None:
    """What follows an optimizer step: the log line, the sample figure, the checkpoint (in that order)."""
    c = s.config
    line = _log(s, meter, done, lr, t_start, bar) if _every(c.log_every, done, c.steps) else None
    if s.info.is_main and c.sample_every and done % c.sample_every == 0:
        _save_sample_figure(s.ema.module, s.parts.formulation, s.shape, c, s.device,
                            s.out_dir / "figures" / f"samples_step{done:06d}.png",
                            f"EMA samples after {done} steps ({c.formulation}, {c.regularizer})")
    if _every(c.checkpoint_every, done, c.steps):
        _save(s, meter, done, t_start)
    return line


# ------------------------------------------------------------------------------------------------ train


def train(
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """Train ``config`` into ``out_dir`` (``config.json``, ``log.jsonl``, ``figures/``, ``checkpoints/last.pt``).

    Args:
        config: the run's configuration (see :mod:`spectral_lib.experiments.profiles`).
        out_dir: the run folder; created if needed.
        resume: continue from ``out_dir/checkpoints/last.pt`` if it exists (exactly, on the CPU). Without it an
            existing run is an error, so that a finished run is never overwritten by mistake.
        progress: show a ``tqdm`` bar with the loss parts (rank 0 only).
        callback: called with a :class:`TrainState` after every step (after logging and checkpointing).

    Returns:
        :class:`TrainResult` with the trained model, its EMA copy and the log of this session.

    Seeds the global torch, NumPy and Python generators of the calling process (``config.seed``, then each rank's
    own streams), as any reproducible training must. Before every checkpoint the loss and the weights are checked:
    a diverging run stops without replacing the last good checkpoint.

    Raises:
        FileExistsError: a run exists and ``resume`` is false, or ``out_dir`` holds run files but is not a run.
        NotADirectoryError: ``out_dir`` is a file.
        ValueError: resuming with a config that differs in more than :data:`RESUMABLE_CHANGES`, with fewer
            ``steps`` than the checkpoint has done, or a ``config.json`` that is not a run's (never replaced).
        CheckpointError: the checkpoint is damaged or does not fit the network.
        FloatingPointError: the loss (not with fp16, whose scaler skips such steps) or the weights became NaN or
            infinite; the message names the last good checkpoint, which is kept.
    """
    from tqdm import tqdm

    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    _check_run_folder(out_dir, config, resume)
    s = _set_up(config, out_dir)
    _start(s, resume)
    history: list[dict[str, float]] = []
    bar = tqdm(total=config.steps, initial=min(s.start_step, config.steps), dynamic_ncols=True, mininterval=0.5,
               disable=not (progress and s.info.is_main),
               desc=f"{config.experiment}/{config.profile} {config.formulation}+{config.regularizer}")
    t_start = time.perf_counter()
    meter = _LossMeter(t_start)
    try:
        for step in range(s.start_step, config.steps):
            adapt_threads()  # this process's share of the cores, so side-by-side runs do not oversubscribe them
            out, grad_norm, lr = _optimizer_step(s, step)
            meter.add(out, grad_norm)
            line = _after_step(s, meter, step + 1, lr, t_start, bar)
            if line is not None:
                history.append(line)
            bar.update(1)
            if callback is not None:
                callback(TrainState(step + 1, s.model, s.ema.module, s.optimizer, s.info, line))
    finally:
        bar.close()
        release_threads()
    return _finish(s, t_start, history)


def _finish(s: _Session, t_start: float, history: list[dict[str, float]]) -> TrainResult:
    """Leave the process group if this call joined it, and gather the result."""
    wall = s.elapsed(t_start)
    if s.info.created_group:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(
        model=s.model, ema_model=s.ema.module, formulation=s.parts.formulation, source=s.parts.source,
        config=s.config, out_dir=s.out_dir, step=max(s.start_step, s.config.steps), wall_time=wall,
        history=history, dist=s.info,
    )
