"""What the spectral term costs in training: one optimizer step with each regularizer over one without.

A step is the trainer's own :func:`~spectral_lib.experiments.step.training_step`: ``diffusion_loss`` (forward of
the network and, when present, of the regularizer on x̂₀), backward, gradient clipping and AdamW. For each case
the regularizers are timed *side by side and interleaved*: every round times one step of each regularizer, in an
order that rotates from round to round, so that a slow moment of a shared machine hits them all alike; the result
is the median over the rounds. ``ratio = median(step with regularizer) / median(step without)``.

Cases (the networks of the book's chapters):

- ``unet32``: the checkerboard ``cpu`` profile's UNet (preset ``tiny``, 0.6 M) on 32×32 grayscale;
- ``unet64``: the same UNet on 64×64 (the paper's toy size) — on CUDA the ``base`` preset (9 M) on 64×64 RGB;
- ``diffwave16k``: the CPU DiffWave vocoder (preset ``small``, 0.36 M, mel-conditioned) on 62 mel frames =
  15 872 samples, DiffWave's training crop.

The paper calls the overhead "negligible" without a number; our target (:data:`OVERHEAD_TARGETS`) is a ratio of at
most 1.10 on a CPU and 1.03 on a GPU.

With ``time_terms=True`` every round also times the regularizer alone (forward + backward of the spectral term on a
batch of x̂₀'s shape), so each row also gives the term's **share** of the step, ``term_ms / ms``: a direct measure of
the overhead that a loaded machine blurs less than the ratio of two step medians.

The cost chapter (``book/10_cost.ipynb``) sweeps image size and batch size with :func:`overhead_sweep`, at the
values of :data:`BENCH_PROFILES` (``smoke``, ``cpu``, ``gpu``), on the checkerboard experiment's UNet of the same
profile.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "StepCase",
    "CASES",
    "default_cases",
    "time_training_steps",
    "run_cases",
    "format_table",
    "BenchProfile",
    "BENCH_PROFILES",
    "get_bench_profile",
    "checkerboard_case",
    "overhead_sweep",
    "OVERHEAD_TARGETS",
    "overhead_target",
]

OVERHEAD_TARGETS: dict[str, float] = {"cpu": 0.10, "cuda": 0.03}
"""Our target for the extra cost of a spectral term, as a share of the training step, by device type: the step with
the term at most ``1 + target`` times the step without it. The paper gives no number ("negligible"): our choice, a
cost a practitioner would not notice on a laptop, and a tighter one on a GPU, where training runs for days."""


def overhead_target(device: str | torch.device = "cpu") -> float:
    """:data:`OVERHEAD_TARGETS` of ``device``'s type (a CPU's for anything but CUDA)."""
    return OVERHEAD_TARGETS["cuda" if torch.device(device).type == "cuda" else "cpu"]


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
    """Wait for the device's queued work, so that wall-clock time covers it (CUDA and MPS run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


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


def _regularizer(name: str, case: StepCase) -> Any:
    """``SpectralRegularizer.from_name(name)``; a wavelet term gets at most the deepest level that fits the input."""
    import inspect

    from spectral_lib.spectral import SpectralRegularizer, wavelet_loss, wavelet_max_level

    if name == "none":
        return None
    reg = SpectralRegularizer.from_name(name)
    options = reg.options.get("wavelet")
    if options is not None:
        defaults = inspect.signature(wavelet_loss).parameters
        deepest = wavelet_max_level(min(case.shape[1:]), options.get("wavelet", defaults["wavelet"].default))
        if options.get("levels", defaults["levels"].default) > deepest:
            reg = SpectralRegularizer.from_name(name, levels=deepest)
    return reg


def time_training_steps(
    case: StepCase,
    regularizers: Sequence[str] | None = None,
    *,
    rounds: int = 15,
    warmup: int = 3,
    device: str | torch.device = "cpu",
    amp: str = "off",
    seed: int = 0,
    time_terms: bool = False,
    clock: str = "auto",
) -> list[dict[str, Any]]:
    """Median time of one training step of ``case`` with each regularizer, and its ratio to ``"none"``.

    Args:
        case: network, input shape and batch size.
        regularizers: names (default: every name of ``SPECTRAL_REGULARIZERS`` that applies to the signal kind);
            ``"none"`` is always timed, as the reference.
        rounds: timed rounds (each times one step of every regularizer); ``warmup`` untimed rounds first.
        device: where to run; CUDA timings synchronise before and after each step.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` autocast (CUDA only, as in the trainer).
        time_terms: also time each regularizer alone in every round (forward + backward on a random x̂₀ of the
            batch's shape, same autocast), after its step.
        clock: ``"wall"`` (``time.perf_counter``, synchronised on CUDA), ``"cpu"`` (``time.process_time``: the CPU
            time of this process, all its threads, so that other programs on a shared machine do not inflate the
            figures) or ``"auto"`` (our choice: CPU time on a CPU, synchronised wall time on CUDA).

    A wavelet regularizer uses at most the deepest level that fits the input (its default, 3, when it fits).

    Returns:
        One dict per regularizer: ``case``, ``network``, ``params``, ``input`` (batch shape), ``batch_size``,
        ``size`` (the last signal dimension: image side or waveform length), ``regularizer``, ``ms`` (median),
        ``steps_per_s``, ``ratio`` (median step over the median step of ``"none"``), ``ratio_paired``,
        ``ratio_q25`` and ``ratio_q75`` (median and quartiles of the per-round ratios, each step over the step
        without a regularizer of the same round: the centre and spread to plot),
        ``ms_min``, ``clock``, ``device``, ``threads``; with ``time_terms`` also
        ``term_ms`` (median time of the term alone, 0 for ``"none"``) and ``term_share`` (``term_ms / ms``).
    """
    from spectral_lib._checks import check_choice
    from spectral_lib.diffusion import diffusion_loss
    from spectral_lib.experiments.step import training_step
    from spectral_lib.spectral import SPECTRAL_REGULARIZERS

    device = torch.device(device)
    check_choice(clock, "clock", ("auto", "wall", "cpu"))
    if clock == "auto":
        clock = "wall" if device.type in ("cuda", "mps") else "cpu"
    now = time.perf_counter if clock == "wall" else time.process_time
    names = [n for n in (regularizers or SPECTRAL_REGULARIZERS) if _applies(n, case.kind)]
    names = ["none"] + [n for n in names if n != "none"]
    torch.manual_seed(seed)
    model, formulation = _build(case, device)
    regs = {n: _regularizer(n, case) for n in names}
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand((case.batch_size, *case.shape), generator=g) * 2 - 1).to(device)
    x0_hat = (x0 + 0.1 * torch.randn(x0.shape, generator=g).to(device)).requires_grad_(True)  # for time_terms
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
    term_times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names):] + names[: r % len(names)]  # rotate: no regularizer always goes first
        for name in order:
            _sync(device)
            start = now()
            training_step(model, model, diffusion_loss, formulation, x0, optimizer, scaler, regularizer=regs[name],
                          lambda_spec=1.0, spectral_weighting="none", grad_clip=1.0, generator=noise,
                          amp_dtype=amp_dtype, cond=cond)
            _sync(device)
            if r >= warmup:
                times[name].append(now() - start)
            if time_terms and regs[name] is not None:
                term_times[name].append(_time_term(regs[name], x0_hat, x0, device, amp_dtype, now))
    params = sum(p.numel() for p in model.parameters())
    base = statistics.median(times["none"])
    rows = []
    for name in names:
        med = statistics.median(times[name])
        paired = [t / t0 for t, t0 in zip(times[name], times["none"])]
        q25, q50, q75 = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) > 1 else paired * 3
        row = {
            "case": case.name,
            "network": f"{case.network}/{case.preset}",
            "params": params,
            "input": "x".join(str(s) for s in (case.batch_size, *case.shape)),
            "batch_size": case.batch_size,
            "size": case.shape[-1],
            "regularizer": name,
            "ms": med * 1e3,
            "ms_min": min(times[name]) * 1e3,
            "steps_per_s": 1.0 / med,
            "ratio": med / base,
            "ratio_paired": q50,
            "ratio_q25": q25,
            "ratio_q75": q75,
            "clock": clock,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
        if time_terms:
            timed = term_times[name][warmup:]  # the term's first timings warm it up, as for the steps
            row["term_ms"] = statistics.median(timed) * 1e3 if timed else 0.0
            row["term_share"] = row["term_ms"] / row["ms"]
        rows.append(row)
    return rows


def _time_term(
    regularizer: Any, x0_hat: torch.Tensor, x0: torch.Tensor, device: torch.device, amp_dtype: torch.dtype | None,
    now: Any = time.perf_counter,
) -> float:
    """Seconds for one forward + backward of the regularizer alone, synchronised and clocked like the steps."""
    x0_hat.grad = None
    _sync(device)
    start = now()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        total = regularizer(x0_hat, x0).total.mean()
    total.backward()
    _sync(device)
    return now() - start


def run_cases(
    cases: Sequence[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    rounds: int = 15,
    warmup: int = 3,
    amp: str = "off",
    batch_size: int | None = None,
    clock: str = "auto",
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
        rows += time_training_steps(case, rounds=rounds, warmup=warmup, device=device, amp=amp, clock=clock)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`time_training_steps` rows (with the term's share when it was timed)."""
    terms = bool(rows) and all("term_ms" in r for r in rows)
    lines = [f"{'case':12s} {'network':16s} {'params':>8s} {'batch x input':>16s} {'regularizer':18s} "
             f"{'ms/step':>9s} {'steps/s':>8s} {'x none':>7s}" + (f" {'term ms':>8s} {'share':>6s}" if terms else "")]
    for r in rows:
        lines.append(
            f"{r['case']:12s} {r['network']:16s} {r['params'] / 1e6:7.2f}M {r['input']:>16s} {r['regularizer']:18s} "
            f"{r['ms']:9.1f} {r['steps_per_s']:8.2f} {r['ratio']:7.3f}"
            + (f" {r['term_ms']:8.2f} {r['term_share']:6.1%}" if terms else "")
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# The cost chapter's sweeps
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProfile:
    """What the cost chapter times at one profile.

    Attributes:
        network: the checkerboard experiment's profile whose UNet (and, on CUDA, mixed precision) is timed.
        sizes: image sides (pixels) of the size sweep, at ``batch_size``.
        batch_size: batch of the size sweep.
        batch_sizes: batches of the batch sweep, at ``batch_sweep_size``.
        batch_sweep_size: image side of the batch sweep.
        rounds, warmup: timed and untimed interleaved rounds per (size, batch) point.
        loss_sizes: image sides for the losses alone (:func:`spectral_lib.bench.losses.loss_scaling`).
        loss_batch: batch for the losses alone.
        loss_repeats: timed rounds for the losses alone.
    """

    network: str
    sizes: tuple[int, ...]
    batch_size: int
    batch_sizes: tuple[int, ...]
    batch_sweep_size: int
    rounds: int
    warmup: int
    loss_sizes: tuple[int, ...]
    loss_batch: int
    loss_repeats: int

    @property
    def points(self) -> tuple[tuple[int, int], ...]:
        """The ``(size, batch)`` points of both sweeps, each once, by increasing cost."""
        both = {(s, self.batch_size) for s in self.sizes} | {(self.batch_sweep_size, b) for b in self.batch_sizes}
        return tuple(sorted(both, key=lambda p: (p[0] ** 2 * p[1], p)))


BENCH_PROFILES: dict[str, BenchProfile] = {
    # Seconds on one core: the smoke UNet on tiny images, two rounds (the numbers mean nothing, the code runs).
    "smoke": BenchProfile("smoke", sizes=(8, 16), batch_size=2, batch_sizes=(1, 4), batch_sweep_size=8,
                          rounds=2, warmup=1, loss_sizes=(8, 16, 32), loss_batch=2, loss_repeats=2),
    # About two minutes on two shared cores: the checkerboard cpu UNet (0.64 M) at 16-64 pixels; 5 rounds of steps,
    # our choice (fewer make the medians jumpy on a loaded machine, more cost minutes); the losses alone take
    # milliseconds, so they get 15 rounds.
    "cpu": BenchProfile("cpu", sizes=(16, 32, 64), batch_size=16, batch_sizes=(4, 16, 32), batch_sweep_size=32,
                        rounds=5, warmup=1, loss_sizes=(16, 32, 64, 128), loss_batch=16, loss_repeats=15),
    # A GPU (Colab): the checkerboard gpu UNet (``base``, 9 M, bf16 autocast) up to 256 pixels.
    "gpu": BenchProfile("gpu", sizes=(32, 64, 128, 256), batch_size=32, batch_sizes=(8, 32, 128),
                        batch_sweep_size=64, rounds=20, warmup=5, loss_sizes=(32, 64, 128, 256, 512),
                        loss_batch=32, loss_repeats=20),
}
"""Profile name -> :class:`BenchProfile` (the values of the cost chapter)."""


def get_bench_profile(profile: str) -> BenchProfile:
    """The named :class:`BenchProfile`; an unknown name raises ``ValueError`` listing the valid ones."""
    from spectral_lib._checks import check_choice

    check_choice(profile, "bench profile", tuple(BENCH_PROFILES))
    return BENCH_PROFILES[profile]


def checkerboard_case(profile: str, size: int, batch_size: int) -> StepCase:
    """A :class:`StepCase` for the checkerboard experiment's UNet at ``profile`` on ``size x size`` images."""
    from spectral_lib.experiments.profiles import get_profile

    config = get_profile("checkerboard", get_bench_profile(profile).network)
    model = dict(config.model)
    network, preset = model.pop("name"), model.pop("preset")
    channels = int(config.data.get("channels", 1))
    return StepCase(f"{size}x{size}", network, preset, (channels, int(size), int(size)), int(batch_size),
                    model_overrides=model)


def overhead_sweep(
    profile: str = "cpu",
    *,
    device: str | torch.device = "cpu",
    regularizers: Sequence[str] | None = None,
    progress: bool = False,
    clock: str = "auto",
) -> list[dict[str, Any]]:
    """:func:`time_training_steps` (with ``time_terms=True``) at every point of the profile's size and batch sweeps.

    The network is the checkerboard experiment's UNet at the profile of the same name (``BenchProfile.network``);
    on CUDA with that profile's mixed precision (the transforms themselves always run in float32). ``clock`` as in
    :func:`time_training_steps` (``"auto"``: CPU time on a CPU, synchronised wall time on CUDA/MPS).

    Returns:
        The rows of every point (see :func:`time_training_steps`), each also with ``profile``. The size sweep is
        the rows with ``batch_size == BENCH_PROFILES[profile].batch_size``, the batch sweep those with
        ``size == batch_sweep_size``.
    """
    from spectral_lib.experiments.profiles import get_profile

    bench = get_bench_profile(profile)
    device = torch.device(device)
    amp = get_profile("checkerboard", bench.network).amp if device.type == "cuda" else "off"
    rows: list[dict[str, Any]] = []
    for size, batch in bench.points:
        start = time.perf_counter()
        case = checkerboard_case(profile, size, batch)
        point = time_training_steps(case, regularizers, rounds=bench.rounds, warmup=bench.warmup, device=device,
                                    amp=amp, time_terms=True, clock=clock)
        rows += [{**row, "profile": profile} for row in point]
        if progress:
            print(f"{size}x{size}, batch {batch}: {time.perf_counter() - start:.1f} s", flush=True)
    return rows
