"""Time each spectral loss (forward + backward) next to MSE on the same batch; print a table of ratios.

    python -m spectral_lib.bench.losses [--batch 64 --channels 3 --size 64 --repeats 20 --device cpu]

Images ``(batch, channels, size, size)``; the audio-only MR-STFT runs on ``(batch, 1, channels * size * size)``,
the same number of values, next to an MSE on that audio batch. Each entry is the median over ``repeats``
interleaved rounds (every loss once per round) after ``warmup`` untimed ones; the ratio is
``ms / ms(MSE on the same batch)``. Wall-clock times: on a busy machine (more runnable threads than cores) they
inflate, most for multi-threaded runs; compare ratios from one run, not numbers across runs. The paper claims the overhead
is "negligible" without numbers; this is our measurement (of the loss alone, without a network: in training the
network's forward and backward dominate, so the ratio here is an upper bound on the relative overhead).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from spectral_lib.spectral import (
    fourier_amplitude_loss,
    fourier_loss,
    fourier_phase_loss,
    mrstft_loss,
    wavelet_loss,
    wavelet_max_level,
)

__all__ = ["loss_cases", "time_losses", "loss_scaling", "format_table", "main"]


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.nn.functional.mse_loss(pred, target)


def loss_cases(size: int = 64) -> dict[str, tuple[str, Callable[[Tensor, Tensor], Tensor]]]:
    """name -> (signal kind, loss). "image" runs on (B, C, size, size), "audio" on (B, 1, T).

    Wavelets use 3 levels (the default), or fewer when ``size`` is too small for them.
    """
    haar = min(3, wavelet_max_level(size, "haar"))
    bior = min(3, wavelet_max_level(size, "bior1.3"))
    return {
        "mse": ("image", _mse),
        "fourier_amp": ("image", fourier_amplitude_loss),
        "fourier_phase": ("image", fourier_phase_loss),
        "fourier_amp_phase (additive)": ("image", lambda p, t: fourier_loss(p, t, coupling="additive")),
        "fourier_amp_phase (per_frequency)": ("image", lambda p, t: fourier_loss(p, t, coupling="per_frequency")),
        "fourier_amp_phase (product)": ("image", fourier_loss),
        f"wavelet haar, {haar} levels": ("image", lambda p, t: wavelet_loss(p, t, wavelet="haar", levels=haar)),
        f"wavelet bior1.3, {bior} levels": ("image", lambda p, t: wavelet_loss(p, t, wavelet="bior1.3", levels=bior)),
        "mse (audio)": ("audio", _mse),
        "mrstft": ("audio", mrstft_loss),
    }


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall-clock time covers it (CUDA and MPS run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _time_once(
    loss: Callable[[Tensor, Tensor], Tensor], pred: Tensor, target: Tensor, now: Callable[[], float]
) -> float:
    pred.grad = None
    _sync(pred.device)
    start = now()
    loss(pred, target).backward()
    _sync(pred.device)
    return (now() - start) * 1e3


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q25, _, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return q25, q75


def time_losses(
    batch: int = 64,
    channels: int = 3,
    size: int = 64,
    repeats: int = 20,
    device: str | torch.device = "cpu",
    *,
    warmup: int = 3,
    seed: int = 0,
    cases: dict[str, tuple[str, Callable[[Tensor, Tensor], Tensor]]] | None = None,
    clock: str = "auto",
) -> list[dict]:
    """Median forward + backward time of each loss of :func:`loss_cases`, in ms, and its ratio to MSE.

    ``cases`` replaces :func:`loss_cases` (same form: name -> (signal kind, loss)), e.g. to time two
    implementations of one loss side by side, interleaved. ``clock`` as in
    :func:`spectral_lib.bench.steps.time_training_steps`: ``"auto"`` reads this process's CPU time on a CPU (other
    programs on a shared machine do not count) and the synchronised wall clock on CUDA/MPS.

    Returns:
        One dict per loss: ``name``, ``shape`` (the input shape), ``ms`` (median), ``ms_min`` (the fastest round,
        the least disturbed one), ``ms_q25`` and ``ms_q75`` (quartiles over the rounds), ``ratio_vs_mse`` (``ms``
        over the MSE time on the same-shaped batch; NaN when ``cases`` has no ``"mse"`` / ``"mse (audio)"`` entry
        for that kind), ``clock``, ``device`` and ``threads`` (``torch.get_num_threads()``).
    """
    from spectral_lib._checks import check_choice

    device = torch.device(device)
    check_choice(clock, "clock", ("auto", "wall", "cpu"))
    if clock == "auto":
        clock = "wall" if device.type in ("cuda", "mps") else "cpu"
    now = time.perf_counter if clock == "wall" else time.process_time
    generator = torch.Generator(device="cpu").manual_seed(seed)
    # audio: as many values as the image batch, but at least the largest default FFT size of the MR-STFT
    shapes = {"image": (batch, channels, size, size), "audio": (batch, 1, max(channels * size * size, 2048))}
    cases = loss_cases(size) if cases is None else dict(cases)
    inputs = {}
    for kind, shape in shapes.items():
        pred = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
        target = torch.randn(shape, generator=generator).to(device)
        inputs[kind] = (pred, target)
    # Interleaved rounds (every loss once per round), so that a change in machine load hits all losses alike.
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(warmup + repeats):
        for name, (kind, fn) in cases.items():
            elapsed = _time_once(fn, *inputs[kind], now)
            if round_index >= warmup:
                samples[name].append(elapsed)
    times = {name: statistics.median(values) for name, values in samples.items()}
    baseline = {"image": times.get("mse", math.nan), "audio": times.get("mse (audio)", math.nan)}
    return [
        {
            "name": name,
            "shape": shapes[kind],
            "ms": times[name],
            "ms_min": min(samples[name]),
            "ms_q25": _quartiles(samples[name])[0],
            "ms_q75": _quartiles(samples[name])[1],
            "ratio_vs_mse": times[name] / baseline[kind],
            "clock": clock,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
        for name, (kind, _) in cases.items()
    ]


def loss_scaling(
    profile: str = "cpu", *, device: str | torch.device = "cpu", channels: int = 1, clock: str = "auto"
) -> list[dict]:
    """:func:`time_losses` at each image side of the bench profile's ``loss_sizes`` (how the cost grows with N).

    Uses the profile's ``loss_batch`` and ``loss_repeats`` (:data:`spectral_lib.bench.steps.BENCH_PROFILES`).

    Returns:
        The rows of every size, each also with ``size`` (the image side), ``pixels`` (``size**2``, per channel) and
        ``loss`` (the name without its level count, e.g. ``"wavelet haar"``, the same at every size).
    """
    from spectral_lib.bench.steps import get_bench_profile

    bench = get_bench_profile(profile)
    rows: list[dict] = []
    for size in bench.loss_sizes:
        for row in time_losses(bench.loss_batch, channels, size, bench.loss_repeats, device, clock=clock):
            rows.append({**row, "size": size, "pixels": size * size, "loss": row["name"].split(",")[0]})
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table of :func:`time_losses` rows."""
    lines = [f"{'loss':36s} {'input shape':>20s} {'ms (median)':>12s} {'x MSE':>8s}"]
    for row in rows:
        shape = "x".join(str(s) for s in row["shape"])
        lines.append(f"{row['name']:36s} {shape:>20s} {row['ms']:12.2f} {row['ratio_vs_mse']:8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: time the losses and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    rows = time_losses(args.batch, args.channels, args.size, args.repeats, args.device)
    print(f"forward + backward, device={rows[0]['device']}, clock={rows[0]['clock']}, "
          f"torch threads={rows[0]['threads']}, torch {torch.__version__}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
