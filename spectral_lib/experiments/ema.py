"""The exponential moving average of a network's weights that the trainer keeps for sampling."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["EMA"]


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
