"""Time each spectral loss (forward + backward) next to MSE on the same batch; print a table of ratios.

    python -m spectral_lib.bench.losses [--batch 64 --channels 3 --size 64 --repeats 20 --device cpu]

Images ``(batch, channels, size, size)``; the audio-only MR-STFT runs on ``(batch, 1, channels * size * size)``,
the same number of values, next to an MSE on that audio batch. Each entry is the median over ``repeats`` timed
runs after ``warmup`` untimed ones; the ratio is ``ms / ms(MSE on the same batch)``. The paper claims the overhead
is "negligible" without numbers; this is our measurement (of the loss alone, without a network: in training the
network's forward and backward dominate, so the ratio here is an upper bound on the relative overhead).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from spectral_lib.spectral import fourier_amplitude_loss, fourier_loss, fourier_phase_loss, mrstft_loss, wavelet_loss

__all__ = ["LOSSES", "time_losses", "main"]


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.nn.functional.mse_loss(pred, target)


#: name -> (signal kind, loss). "image" runs on (B, C, S, S), "audio" on (B, 1, C*S*S).
LOSSES: dict[str, tuple[str, Callable[[Tensor, Tensor], Tensor]]] = {
    "mse": ("image", _mse),
    "fourier_amp": ("image", fourier_amplitude_loss),
    "fourier_phase": ("image", fourier_phase_loss),
    "fourier_amp_phase (additive)": ("image", fourier_loss),
    "fourier_amp_phase (per_frequency)": ("image", lambda p, t: fourier_loss(p, t, coupling="per_frequency")),
    "fourier_amp_phase (product)": ("image", lambda p, t: fourier_loss(p, t, coupling="product")),
    "wavelet haar, 3 levels": ("image", lambda p, t: wavelet_loss(p, t, wavelet="haar", levels=3)),
    "wavelet bior1.3, 3 levels": ("image", lambda p, t: wavelet_loss(p, t, wavelet="bior1.3", levels=3)),
    "mse (audio)": ("audio", _mse),
    "mrstft": ("audio", mrstft_loss),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_one(loss: Callable[[Tensor, Tensor], Tensor], pred: Tensor, target: Tensor, repeats: int, warmup: int) -> float:
    times = []
    for i in range(warmup + repeats):
        pred.grad = None
        _sync(pred.device)
        start = time.perf_counter()
        loss(pred, target).backward()
        _sync(pred.device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def time_losses(
    batch: int = 64,
    channels: int = 3,
    size: int = 64,
    repeats: int = 20,
    device: str | torch.device = "cpu",
    *,
    warmup: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Median forward + backward time of each loss in :data:`LOSSES`, in ms, and its ratio to MSE.

    Returns:
        One dict per loss: ``name``, ``shape`` (the input shape), ``ms`` (median), ``ratio_vs_mse`` (``ms`` over
        the MSE time on the same-shaped batch), ``device`` and ``threads`` (``torch.get_num_threads()``).
    """
    device = torch.device(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    shapes = {"image": (batch, channels, size, size), "audio": (batch, 1, channels * size * size)}
    inputs = {}
    for kind, shape in shapes.items():
        pred = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
        target = torch.randn(shape, generator=generator).to(device)
        inputs[kind] = (pred, target)
    times = {name: _time_one(fn, *inputs[kind], repeats, warmup) for name, (kind, fn) in LOSSES.items()}
    baseline = {"image": times["mse"], "audio": times["mse (audio)"]}
    return [
        {
            "name": name,
            "shape": shapes[kind],
            "ms": times[name],
            "ratio_vs_mse": times[name] / baseline[kind],
            "device": str(device),
            "threads": torch.get_num_threads(),
        }
        for name, (kind, _) in LOSSES.items()
    ]


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
    print(f"forward + backward, device={rows[0]['device']}, torch threads={rows[0]['threads']}, torch {torch.__version__}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
