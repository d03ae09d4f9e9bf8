"""This process's place in a ``torchrun`` job, and joining its process group.

Launched by ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the trainer joins the process group (NCCL on
CUDA, gloo on the CPU); without it, training is single-process and nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from spectral_lib.device import default_device

__all__ = ["DistInfo", "setup_distributed"]


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
