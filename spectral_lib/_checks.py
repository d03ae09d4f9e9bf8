"""Input validation shared by every public function.

Each check raises :class:`ValueError` naming the argument, what it got and what was expected, so that a wrong
call fails at the boundary with a message a reader can act on, not deep inside an FFT.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["check_signal", "check_pair", "check_choice", "check_positive", "check_noise_cond"]


def check_signal(x: object, name: str = "x", *, ranks: Iterable[int] = (3, 4), finite: bool = True) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of an allowed rank with finite values.

    Args:
        x: the value to check.
        name: the argument's name, used in the message.
        ranks: allowed numbers of dimensions; ``(3, 4)`` means ``(B, C, T)`` audio or ``(B, C, H, W)`` images.
        finite: also reject NaN and infinite values.

    Returns:
        ``x`` unchanged, so that the check can be used inline.
    """
    ranks = tuple(ranks)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in ranks:
        layouts = {1: "(T,)", 2: "(B, T)", 3: "(B, C, T)", 4: "(B, C, H, W)", 5: "(B, C, D, H, W)"}
        expected = " or ".join(f"{r}-D {layouts.get(r, '')}".strip() for r in ranks)
        raise ValueError(f"{name} must be {expected}, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise ValueError(f"{name} must have a floating dtype (float16/bfloat16/float32/float64), got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    # One reduction is enough when every value is finite (the usual case); only then look for the bad entries.
    # A sum can overflow to inf on huge finite inputs, so an infinite sum is checked element-wise.
    if finite and not bool(torch.isfinite(x.sum(dtype=torch.float32 if x.dtype != torch.float64 else None))) and not bool(
        torch.isfinite(x).all()
    ):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); spectral losses need finite inputs")
    return x


def check_pair(
    pred: object,
    target: object,
    *,
    names: tuple[str, str] = ("pred", "target"),
    ranks: Iterable[int] = (3, 4),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a prediction/target pair: each a valid signal, same shape, same device. No broadcasting."""
    ranks = tuple(ranks)
    pred = check_signal(pred, names[0], ranks=ranks)
    target = check_signal(target, names[1], ranks=ranks)
    if pred.shape != target.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)} (no broadcasting between prediction and target)"
        )
    if pred.device != target.device:
        raise ValueError(f"{names[0]} is on {pred.device} but {names[1]} is on {target.device}")
    return pred, target


def check_choice(value: object, name: str, choices: Iterable[object]) -> None:
    """Raise ``ValueError`` listing the valid choices when ``value`` is not one of them."""
    choices = tuple(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid: {valid}")


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0 (or >= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v in (float("inf"), float("-inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")


def check_noise_cond(noise_cond: object, x: torch.Tensor) -> torch.Tensor:
    """A network's noise condition as a ``(B,)`` tensor on ``x``'s device: a scalar (Python or 0-d) is repeated for
    the batch ``B = x.shape[0]``; any other shape raises ``ValueError`` naming it."""
    if not isinstance(noise_cond, torch.Tensor):
        noise_cond = torch.as_tensor(noise_cond, device=x.device)
    if noise_cond.dim() == 0:
        noise_cond = noise_cond.expand(x.shape[0])
    if noise_cond.shape != (x.shape[0],):
        raise ValueError(f"noise_cond must have shape ({x.shape[0]},) or be a scalar, got {tuple(noise_cond.shape)}")
    return noise_cond
