"""How fast the real networks sample and fine-tune: the basis of the ``full`` protocol's GPU-hour estimate.

NVIDIA's networks cannot be loaded here (their pickles need NVIDIA's code and a download), so we time stand-ins of
the same size and layout built from our own UNet (:class:`~spectral_lib.models.unet2d.UNet2D`): DDPM++'s widths,
128 base channels, 4 residual blocks per level, attention at 16x16, levels ``(2, 2, 2)`` at 32x32 (CIFAR-10) and
``(1, 2, 2, 2)`` at 64x64 (FFHQ, AFHQv2). NCSN++ (VE) has about as many parameters and more work per block
(FIR resampling), so it is somewhat slower than these numbers.

Per stand-in and batch size (1 and 16) we time, in CPU seconds of this process (``time.process_time``, so that a
busy shared machine does not inflate the numbers; run it with ``OMP_NUM_THREADS=1`` for one core):

* one network evaluation under ``torch.no_grad`` -> sampling images/s = batch / (seconds x NFE), with EDM's NFE
  (35 at 18 Heun steps, 79 at 40);
* one training step (EDM loss, forward, backward, Adam) -> steps/s.

``python -m spectral_lib.experiments.images bench`` prints them and writes ``results/cpu/images/throughput.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["STANDIN_ARCHITECTURES", "standin_network", "time_network", "measure_throughput"]

STANDIN_ARCHITECTURES: dict[int, dict[str, Any]] = {
    32: {"channel_mults": (2, 2, 2), "nfe": 35},
    64: {"channel_mults": (1, 2, 2, 2), "nfe": 79},
}
"""Resolution -> DDPM++'s level multipliers (EDM's ``--cres``) and EDM's sampling NFE at that resolution."""


def standin_network(resolution: int) -> torch.nn.Module:
    """Our UNet with DDPM++'s widths at ``resolution`` (32 or 64): 53.6 M / 58.7 M parameters (NVIDIA's DDPM++:
    about 56 M / 62 M)."""
    from spectral_lib.models.unet2d import UNet2D, UNet2DConfig

    arch = STANDIN_ARCHITECTURES[resolution]
    return UNet2D(UNet2DConfig(in_channels=3, base_channels=128, channel_mults=arch["channel_mults"],
                               num_res_blocks=4, attention_resolutions=(16,), image_size=resolution, num_groups=32,
                               dropout=0.1))


def _cpu_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, kernel choice)
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats


def time_network(net: torch.nn.Module, resolution: int, batch: int, repeats: int = 2) -> dict[str, float]:
    """CPU seconds of one evaluation and of one training step of ``net`` at ``batch``."""
    from spectral_lib.diffusion import EDM, diffusion_loss

    x = torch.randn(batch, 3, resolution, resolution)
    cond = torch.zeros(batch)
    edm, opt = EDM(), torch.optim.Adam(net.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)

    def forward() -> None:
        with torch.no_grad():
            net.eval()(x, cond)

    def step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        diffusion_loss(edm, net, x.clamp(-1, 1), generator=gen).total.backward()
        opt.step()

    return {"forward_s": _cpu_seconds(forward, repeats), "step_s": _cpu_seconds(step, repeats)}


def measure_throughput(out: Path | None = None, *, batches: tuple[int, ...] = (1, 16), repeats: int = 2
                       ) -> dict[str, Any]:
    """Time both stand-ins at ``batches``; print a table; write JSON to ``out`` (default
    ``results/cpu/images/throughput.json``). Returns ``{"<res>px-batch<B>": {...}}``."""
    from spectral_lib.experiments.shipped import results_root

    table: dict[str, Any] = {}
    for resolution, arch in STANDIN_ARCHITECTURES.items():
        net = standin_network(resolution)
        params = sum(p.numel() for p in net.parameters())
        for batch in batches:
            t = time_network(net, resolution, batch, repeats)
            row = {"parameters": params, "batch": batch, "nfe": arch["nfe"], **t,
                   "images_per_s": batch / (t["forward_s"] * arch["nfe"]), "steps_per_s": 1.0 / t["step_s"]}
            table[f"{resolution}px-batch{batch}"] = row
            print(f"{resolution}x{resolution}, {params / 1e6:.1f} M parameters, batch {batch}: "
                  f"{row['images_per_s']:.4f} images/s sampling (NFE {arch['nfe']}), "
                  f"{row['steps_per_s']:.4f} training steps/s  [CPU seconds, {torch.get_num_threads()} thread(s)]")
    record = {"measured": table, "threads": torch.get_num_threads(), "clock": "time.process_time (CPU seconds)",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "command": "OMP_NUM_THREADS=1 python -m spectral_lib.experiments.images bench"}
    path = out if out is not None else results_root() / "cpu" / "images" / "throughput.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record
