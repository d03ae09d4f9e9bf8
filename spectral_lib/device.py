"""Device choice and seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["default_device", "seed_everything", "make_generator", "on_colab"]


def default_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), else CUDA when
    available, else Apple's MPS when available, else the CPU. Asking for CUDA without one is an error."""
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for but CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Same seed + same profile -> same numbers on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def on_colab() -> bool:
    """True when running inside Google Colab."""
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in __import__("sys").modules
