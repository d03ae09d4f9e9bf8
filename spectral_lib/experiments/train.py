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

The parts live in modules of one job each, and every public name stays importable from here:
:mod:`~spectral_lib.experiments.components` (what a config builds), :mod:`~spectral_lib.experiments.step` (one
optimizer step, seeds, learning-rate schedule), :mod:`~spectral_lib.experiments.ema`,
:mod:`~spectral_lib.experiments.distributed` (``torchrun``), :mod:`~spectral_lib.experiments.sampling` (samples and
the figure of the EMA's samples), :mod:`~spectral_lib.experiments.session` (one call's state, refusals, exact
resume). This module holds the loop: set-up, steps, log lines, finite checks and checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spectral_lib.device import adapt_threads, release_threads
from spectral_lib.experiments.checkpoint import capture_rng_state, save_checkpoint
from spectral_lib.experiments.components import (
    Components,
    UntrustedPickleError,
    build_components,
    build_formulation,
    build_model,
    build_regularizer,
)
from spectral_lib.experiments.distributed import DistInfo, setup_distributed
from spectral_lib.experiments.ema import EMA
from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.run_folder import checkpoint_path
from spectral_lib.experiments.sampling import draw_samples, save_sample_figure
from spectral_lib.experiments.session import (
    RESUMABLE_CHANGES,
    Session,
    check_resumable,
    check_run_folder,
    prepare_folder,
    resume_from_checkpoint,
    seed_streams,
)
from spectral_lib.experiments.sources import sample_shape, split_batch
from spectral_lib.experiments.step import autocast_dtype, lr_factor, stream_seed, training_step

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


# ------------------------------------------------------------------------------------------------ one session


def _set_up(config: ExperimentConfig, out_dir: Path) -> Session:
    """Join the process group, build every part (identical initial weights on every rank), the EMA, AdamW and the
    gradient scaler, and seed this rank's own streams."""
    info, device = setup_distributed(config.device)
    torch.manual_seed(config.seed)
    parts = build_components(config, rank=info.rank, world_size=info.world_size)
    model = parts.model.to(device)
    if parts.regularizer is not None:
        parts.regularizer = parts.regularizer.to(device)
    amp_dtype = autocast_dtype(config, device)
    return Session(
        config=config, out_dir=out_dir, info=info, device=device, parts=parts, model=model,
        ema=EMA(model, config.ema_decay),
        optimizer=torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), amp_dtype=amp_dtype,
        generators=seed_streams(config, info.rank, device),
    )


def _start(s: Session, resume: bool) -> None:
    """After the set-up: wait for every rank's checks, resume, prepare the folder, wrap the model for DDP."""
    if s.info.enabled:  # every rank has made its checks before rank 0 writes (a process group that the caller
        import torch.distributed as dist  # made has had no start barrier)

        dist.barrier()
    if resume and s.ckpt.exists():
        resume_from_checkpoint(s)
    prepare_folder(s)
    s.net = s.model
    if s.info.enabled:
        s.net = nn.parallel.DistributedDataParallel(
            s.model, device_ids=[s.device.index] if s.device.type == "cuda" else None)
    s.shape = sample_shape(s.parts.source)


# ------------------------------------------------------------------------------------------------ steps


def _optimizer_step(s: Session, step: int) -> tuple[Any, torch.Tensor, float]:
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


def _check_finite(s: Session, done: int, loss: float | None, *, weights: bool) -> None:
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


def _log(s: Session, meter: _LossMeter, done: int, lr: float, t_start: float, bar: Any) -> dict[str, float]:
    """Check the loss, then write a log line (rank 0) and show it on the progress bar."""
    _check_finite(s, done, meter.loss(), weights=False)
    line = meter.line(done, lr, s.elapsed(t_start))
    if s.info.is_main:
        with open(s.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        bar.set_postfix({k: f"{v:.4g}" for k, v in line.items()
                         if k not in ("step", "elapsed_s", "steps_per_s", "lr")}, refresh=False)
    return line


def _save(s: Session, meter: _LossMeter, done: int, t_start: float) -> None:
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


def _after_step(s: Session, meter: _LossMeter, done: int, lr: float, t_start: float, bar: Any) -> dict | None:
    """What follows an optimizer step: the log line, the sample figure, the checkpoint (in that order)."""
    c = s.config
    line = _log(s, meter, done, lr, t_start, bar) if _every(c.log_every, done, c.steps) else None
    if s.info.is_main and c.sample_every and done % c.sample_every == 0:
        save_sample_figure(s.ema.module, s.parts.formulation, s.shape, c, s.device,
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
    check_run_folder(out_dir, config, resume)
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


def _finish(s: Session, t_start: float, history: list[dict[str, float]]) -> TrainResult:
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
