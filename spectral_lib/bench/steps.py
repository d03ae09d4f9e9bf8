"""What the spectral term costs in training: one optimizer step with each regularizer over one without.

A step is the trainer's own :func:`~spectral_lib.experiments.train.training_step`: ``diffusion_loss`` (forward of
the network and, when present, of the regularizer on x̂₀), backward, gradient clipping and AdamW. For each case
the regularizers are timed *side by side and interleaved*: every round times one step of each regularizer, in an
order that rotates from round to round, so that a slow moment of a shared machine hits them all alike; the result
is the median over the rounds. ``ratio = median(step with regularizer) / median(step without)``.

Cases (the networks of the book's chapters):

- ``unet32``: the checkerboard ``cpu`` profile's UNet (preset ``tiny``, 0.6 M) on 32×32 grayscale;
- ``unet64``: the same UNet on 64×64 (the paper's toy size) — on CUDA the ``base`` preset (9 M) on 64×64 RGB;
- ``diffwave16k``: the CPU DiffWave vocoder (preset ``small``, 0.36 M, mel-conditioned) on 62 mel frames =
  15 872 samples, DiffWave's training crop.

The paper calls the overhead "negligible" without a number; our target is ≤ 1.10× on a CPU and ≤ 1.03× on a GPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["StepCase", "CASES", "default_cases", "time_training_steps", "run_cases", "format_table"]


@dataclass(frozen=True)
class StepCase:
    """One network and input size to time. ``regularizers`` that do not apply to the signal kind are skipped."""

    name: str
    network: str  # "unet2d" | "diffwave"
    preset: str
    shape: tuple[int, ...]  # one sample: (C, H, W) or (C, T)
    batch_size: int
    formulation: dict[str, Any] = field(default_factory=lambda: {"name": "ddpm"})
    model_overrides: dict[str, Any] = field(default_factory=dict)
    n_mels: int | None = None  # mel-conditioned vocoder: frames = T / hop

    @property
    def kind(self) -> str:
        return "image" if len(self.shape) == 3 else "audio"


def default_cases(device: str | torch.device = "cpu") -> dict[str, StepCase]:
    """The three cases, with batch sizes for a CPU (small) or a GPU (larger, and a bigger UNet at 64×64)."""
    cuda = torch.device(device).type == "cuda"
    return {
        "unet32": StepCase("unet32", "unet2d", "tiny", (1, 32, 32), 64 if cuda else 16),
        "unet64": (
            StepCase("unet64", "unet2d", "base", (3, 64, 64), 32) if cuda
            else StepCase("unet64", "unet2d", "tiny", (1, 64, 64), 8)
        ),
        "diffwave16k": StepCase(
            "diffwave16k", "diffwave", "small", (1, 62 * 256), 16 if cuda else 1,
            formulation={"name": "ddpm", "num_steps": 50, "beta_end": 0.05}, n_mels=80,
        ),
    }


CASES = tuple(default_cases())
"""Names of the cases."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(case: StepCase, device: torch.device) -> tuple[torch.nn.Module, Any]:
    from spectral_lib.diffusion import make_formulation
    from spectral_lib.models import DiffWave, UNet2D, diffwave_preset, unet2d_preset

    if case.network == "unet2d":
        model = UNet2D(unet2d_preset(case.preset, in_channels=case.shape[0], **case.model_overrides))
    elif case.network == "diffwave":
        model = DiffWave(diffwave_preset(case.preset, **case.model_overrides))
    else:
        raise ValueError(f"unknown network {case.network!r}; valid: 'unet2d', 'diffwave'")
    options = dict(case.formulation)
    return model.to(device), make_formulation(options.pop("name"), **options)


def _applies(name: str, kind: str) -> bool:
    return not (name == "mrstft" and kind == "image")  # the STFT loss is for waveforms


def time_training_steps(
    case: StepCase,
    regularizers: Sequence[str] | None = None,
    *,
    rounds: int = 15,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    amp: str = "off",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Median time of one training step of ``case`` with each regularizer, and its ratio to ``"none"``.

    Args:
        case: network, input shape and batch size.
        regularizers: names (default: every name of ``SPECTRAL_REGULARIZERS`` that applies to the signal kind);
            ``"none"`` is always timed, as the reference.
        rounds: timed rounds (each times one step of every regularizer); ``warmup`` untimed rounds first.
        device: where to run; CUDA timings synchronise before and after each step.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` autocast (CUDA only, as in the trainer).

    Returns:
        One dict per regularizer: ``case``, ``network``, ``params``, ``input`` (batch shape), ``regularizer``,
        ``ms`` (median), ``steps_per_s``, ``ratio`` (to ``"none"``), ``ms_min``, ``device``, ``threads``.
    """
    from spectral_lib.diffusion import diffusion_loss
    from spectral_lib.experiments.train import training_step
    from spectral_lib.spectral import SPECTRAL_REGULARIZERS, SpectralRegularizer

    device = torch.device(device)
    names = [n for n in (regularizers or SPECTRAL_REGULARIZERS) if _applies(n, case.kind)]
    names = ["none"] + [n for n in names if n != "none"]
    torch.manual_seed(seed)
    model, formulation = _build(case, device)
    regs = {n: None if n == "none" else SpectralRegularizer.from_name(n).to(device) for n in names}
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand((case.batch_size, *case.shape), generator=g) * 2 - 1).to(device)
    cond = None
    if case.n_mels is not None:
        frames = case.shape[-1] // model.config.hop_length
        cond = {"mel": torch.rand((case.batch_size, case.n_mels, frames), generator=g).to(device)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp_dtype = None
    if device.type == "cuda" and amp != "off":
        amp_dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    noise = torch.Generator(device=device).manual_seed(seed)

    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: no regularizer always goes first
        for name in order:
            _sync(device)
            start = time.perf_counter()
            training_step(model, model, diffusion_loss, formulation, x0, optimizer, scaler, regularizer=regs[name],
                          lambda_spec=1.0, spectral_weighting="none", grad_clip=1.0, generator=noise,
                          amp_dtype=amp_dtype, cond=cond)
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    base = statistics.median(times["none"])
    rows = []
    for name in names:
        med = statistics.median(times[name])
        rows.append({
            "case": case.name,
            "network": f"{case.network}/{case.preset}",
            "params": params,
            "input": "x".join(str(s) for s in (case.batch_size, *case.shape)),
            "regularizer": name,
            "ms": med * 1e3,
            "ms_min": min(times[name]) * 1e3,
            "steps_per_s": 1.0 / med,
            "ratio": med / base,
            "device": str(device),
            "threads": torch.get_num_threads(),
        })
    return rows


def run_cases(
    cases: Sequence[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    rounds: int = 15,
    warmup: int = 3,
    amp: str = "off",
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """:func:`time_training_steps` for the named cases (default: all of :data:`CASES`), rows concatenated."""
    from spectral_lib._checks import check_choice

    available = default_cases(device)
    rows: list[dict[str, Any]] = []
    for name in cases or tuple(available):
        check_choice(name, "case", tuple(available))
        case = available[name]
        if batch_size is not None:
            case = StepCase(**{**case.__dict__, "batch_size": int(batch_size)})
        rows += time_training_steps(case, rounds=rounds, warmup=warmup, device=device, amp=amp)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`time_training_steps` rows."""
    lines = [f"{'case':12s} {'network':16s} {'params':>8s} {'batch x input':>16s} {'regularizer':18s} "
             f"{'ms/step':>9s} {'steps/s':>8s} {'x none':>7s}"]
    for r in rows:
        lines.append(
            f"{r['case']:12s} {r['network']:16s} {r['params'] / 1e6:7.2f}M {r['input']:>16s} {r['regularizer']:18s} "
            f"{r['ms']:9.1f} {r['steps_per_s']:8.2f} {r['ratio']:7.3f}"
        )
    return "\n".join(lines)
