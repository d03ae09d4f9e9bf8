"""One call of :func:`~spectral_lib.experiments.train.train`: its state, its run folder, and resuming it exactly.

What a session may refuse before anything is written (a file as ``out_dir``, files that are not a run, an
existing run without ``resume``, a resume with another config), how a checkpoint is restored (weights, EMA,
optimizer, gradient scaler, every rank's data and noise streams), and how the folder is prepared (stale
temporary files removed, log lines after the checkpoint dropped to be replayed, ``config.json`` written).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spectral_lib.experiments import run_folder
from spectral_lib.experiments.checkpoint import (
    CheckpointError,
    atomic_write_text,
    load_checkpoint,
    restore_rng_state,
)
from spectral_lib.experiments.components import Components
from spectral_lib.experiments.distributed import DistInfo
from spectral_lib.experiments.ema import EMA
from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.run_folder import checkpoint_path
from spectral_lib.experiments.step import stream_seed

__all__ = [
    "RESUMABLE_CHANGES",
    "CHECKPOINT_KEYS",
    "Session",
    "check_resumable",
    "check_run_folder",
    "seed_streams",
    "resume_from_checkpoint",
    "prepare_folder",
    "truncate_log",
]

RESUMABLE_CHANGES = (
    "steps", "log_every", "sample_every", "checkpoint_every", "device", "n_samples", "sample_steps",
    "sample_kwargs", "sample_batch_size", "grid_samples", "num_workers",
)
"""Config keys that may differ between a checkpoint and the run resuming it (they do not change past steps)."""


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


def truncate_log(path: Path, step: int) -> None:
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


@dataclass
class Session:
    """Everything one call of :func:`~spectral_lib.experiments.train.train` works with, built by its set-up and used
    by every step."""

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


def check_run_folder(out_dir: Path, config: ExperimentConfig, resume: bool) -> None:
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


def seed_streams(config: ExperimentConfig, rank: int, device: torch.device) -> dict[str, torch.Generator]:
    """Seed this rank's global torch, NumPy and Python generators; return its data and noise generators."""
    import random

    torch.manual_seed(stream_seed(config.seed, "torch", rank))
    np.random.seed(stream_seed(config.seed, "numpy", rank) % 2**32)
    random.seed(stream_seed(config.seed, "python", rank))
    return {
        "data": torch.Generator().manual_seed(stream_seed(config.seed, "data", rank)),
        "noise": torch.Generator(device=device).manual_seed(stream_seed(config.seed, "noise", rank)),
    }


CHECKPOINT_KEYS = ("step", "elapsed_s", "config", "model", "ema", "optimizer", "per_rank")


def resume_from_checkpoint(s: Session) -> None:
    """Restore weights, EMA, optimizer, scaler and this rank's streams from the checkpoint (if there is one)."""
    state = load_checkpoint(s.ckpt, map_location="cpu")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
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


def _restore_streams(s: Session, per_rank: list[Any]) -> None:
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


def prepare_folder(s: Session) -> None:
    """Rank 0: remove what crashed writes left, keep the log lines up to the checkpoint's step (those after it are
    replayed; none when there is no checkpoint), write ``config.json``, create ``figures/``."""
    if not s.info.is_main:
        return
    run_folder.remove_temporary_files(s.out_dir)
    truncate_log(s.out_dir / "log.jsonl", s.start_step)
    atomic_write_text(s.out_dir / "config.json", json.dumps(s.config.to_dict(), indent=2) + "\n")
    (s.out_dir / "figures").mkdir(parents=True, exist_ok=True)
