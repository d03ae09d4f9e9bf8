#!/usr/bin/env python
"""Train a Hugging Face diffusers ``UNet2DModel`` on checkerboards, with the paper's spectral term added.

This is a plain diffusers training loop (as in diffusers' ``train_unconditional.py``: ``DDPMScheduler.add_noise``,
MSE on the prediction type's target, AdamW, EMA); the lines between the ``+++`` markers are all that spectral
regularization adds. At the end it samples with diffusers' ``DDIMScheduler`` and writes, under ``--out``:
``samples.png`` (a grid), ``samples.pt`` (the samples, data range [-1, 1]), ``metrics.json`` (how crisp the boards
are, and the loss history) and ``config.json``.

    python examples/train_diffusers.py --regularizer none    --out runs/diffusers_baseline
    python examples/train_diffusers.py --regularizer wavelet --out runs/diffusers_wavelet

Defaults come from ``spectral_lib.integrations.diffusers.DIFFUSERS_PROFILES[--profile]`` (``cpu``: a few minutes on
a laptop); every flag overrides one value. Needs the optional extra: ``pip install
"spectral-diffusion-book[diffusers]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spectral_lib.data.checkerboard import CheckerboardSource, checkerboard_metrics
from spectral_lib.device import default_device
from spectral_lib.integrations.diffusers import (
    DIFFUSERS_PROFILES,
    PREDICTION_TYPES,
    get_diffusers_profile,
    require_diffusers,
    spectral_training_loss,
    x0_from_scheduler,
)
from spectral_lib.plotting import sample_grid, save_figure


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=tuple(DIFFUSERS_PROFILES), default="cpu",
                        help="where the defaults come from (default: cpu)")
    parser.add_argument("--regularizer", default="wavelet",
                        help='a SpectralRegularizer name ("none", "fourier_amp", "fourier_amp_phase", "wavelet", '
                             '"wavelet_bior13"); default: wavelet (Haar)')
    parser.add_argument("--lambda-spec", type=float, default=None, help="λ, the spectral term's weight")
    parser.add_argument("--prediction-type", choices=PREDICTION_TYPES, default="v_prediction",
                        help="what the UNet predicts (diffusers' scheduler.config.prediction_type); default "
                             "v_prediction: an error in an epsilon prediction grows up to ~160x in x̂₀ at the last "
                             "timesteps, which makes the spectral term noisy (see examples/README.md)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--size", type=int, default=None, help="image size in pixels")
    parser.add_argument("--sample-steps", type=int, default=None, help="DDIM sampling steps")
    parser.add_argument("--n-samples", type=int, default=None, help="samples drawn at the end")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--out", type=Path, default=Path("runs/diffusers"), help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                                   "size": args.size, "sample_steps": args.sample_steps,
                                   "n_samples": args.n_samples, "seed": args.seed,
                                   "lambda_spec": args.lambda_spec}.items() if v is not None}
    p = get_diffusers_profile(args.profile, **overrides)
    diffusers = require_diffusers()
    from diffusers.training_utils import EMAModel

    device = default_device(args.device)
    torch.manual_seed(p.seed)
    generator = torch.Generator().manual_seed(p.seed)  # data, noise and timesteps (drawn on the CPU)

    # A standard diffusers set-up: UNet, DDPM scheduler, AdamW with warm-up, EMA.
    n_blocks = len(p.block_out_channels)
    unet = diffusers.UNet2DModel(
        sample_size=p.size, in_channels=p.channels, out_channels=p.channels,
        block_out_channels=p.block_out_channels, layers_per_block=p.layers_per_block,
        down_block_types=("DownBlock2D",) * n_blocks, up_block_types=("UpBlock2D",) * n_blocks,
        norm_num_groups=p.norm_num_groups,
    ).to(device)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=p.num_train_timesteps, beta_schedule=p.beta_schedule,
                                        prediction_type=args.prediction_type)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=p.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, p.warmup_steps)))
    ema = EMAModel(unet.parameters(), decay=p.ema_decay)
    data = CheckerboardSource(size=p.size, check_sizes=(p.check_size,), channels=p.channels)

    # +++ spectral regularization (1/2): pick the term +++
    from spectral_lib.spectral import SpectralRegularizer

    regularizer = None if args.regularizer == "none" else SpectralRegularizer.from_name(args.regularizer)
    # +++ end +++

    history = []
    start = time.perf_counter()
    for step in range(p.steps):
        x0 = data.sample(p.batch_size, generator=generator).to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        timesteps = torch.randint(0, p.num_train_timesteps, (p.batch_size,), generator=generator).to(device)
        noisy = scheduler.add_noise(x0, noise, timesteps)
        model_output = unet(noisy, timesteps).sample
        if args.prediction_type == "epsilon":
            target = noise
        elif args.prediction_type == "v_prediction":
            target = scheduler.get_velocity(x0, noise, timesteps)
        else:
            target = x0
        pointwise = F.mse_loss(model_output, target, reduction="none").mean(dim=(1, 2, 3))  # (B,)

        # +++ spectral regularization (2/2): x̂₀ from the prediction, then L = L_diffusion + λ · L_S(x̂₀, x₀) +++
        x0_hat = x0_from_scheduler(scheduler, model_output, noisy, timesteps)
        loss = spectral_training_loss(pointwise, x0_hat, x0, regularizer, p.lambda_spec)
        # +++ end (without the term: loss = pointwise.mean()) +++

        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), p.grad_clip)
        optimizer.step()
        warmup.step()
        ema.step(unet.parameters())
        if step % p.log_every == 0 or step == p.steps - 1:
            parts = {k: round(float(v), 5) for k, v in loss.parts.items()}
            history.append({"step": step, "loss": float(loss.total.detach()), **parts})
            print(f"step {step:5d}  loss {history[-1]['loss']:.4f}  {parts}", flush=True)
    train_seconds = time.perf_counter() - start

    # Sampling with diffusers' DDIM (eta = 0), from the EMA weights.
    ema.copy_to(unet.parameters())
    unet.eval()
    sampler = diffusers.DDIMScheduler.from_config(scheduler.config)
    sampler.set_timesteps(p.sample_steps, device=device)
    x = torch.randn((p.n_samples, p.channels, p.size, p.size), generator=generator).to(device)
    with torch.no_grad():
        for t in sampler.timesteps:
            x = sampler.step(unet(x, t).sample, t, x).prev_sample
    samples = x.cpu()

    args.out.mkdir(parents=True, exist_ok=True)
    metrics = checkerboard_metrics(samples.clamp(-1, 1), check_sizes=(p.check_size,))
    torch.save(samples, args.out / "samples.pt")
    title = f"diffusers UNet2DModel, {args.regularizer}, {args.prediction_type}, {p.steps} steps"
    save_figure(sample_grid(samples, title=title), args.out / "samples.png")
    (args.out / "config.json").write_text(json.dumps(
        {"profile": args.profile, "regularizer": args.regularizer, "prediction_type": args.prediction_type,
         "device": str(device), **dataclasses.asdict(p)},
        indent=2))
    (args.out / "metrics.json").write_text(json.dumps(
        {**metrics, "train_seconds": train_seconds, "history": history}, indent=2))
    print(f"{train_seconds:.1f} s of training; crispness {metrics}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
