"""``python -m spectral_lib.bench`` (``make bench``): the spectral term's cost, as ratios.

1. Training steps (:mod:`spectral_lib.bench.steps`): one optimizer step of the UNet at 32×32 and 64×64 and of the
   DiffWave vocoder on 15 872 samples with each regularizer, over the same step without one (median of
   interleaved rounds), and steps per second.
2. The losses alone (:mod:`spectral_lib.bench.losses`, when present): forward + backward of each spectral loss over
   an MSE on the same batch. Without the network this is an upper bound on the relative overhead.
3. The library's hand-written fast paths against the plain PyTorch they replace
   (:mod:`spectral_lib.bench.implementations`): the custom autograd functions of the Fourier losses, the MR-STFT's
   framing, the wavelet DWT as matrices; speed-up = plain / ours. Every speed claim in a docstring or the book is
   one of these rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from spectral_lib.bench import steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spectral_lib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--cases", nargs="+", choices=steps.CASES, help=f"cases to time (default: all of {steps.CASES})")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per case (default: 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default: 3)")
    parser.add_argument("--batch-size", type=int, help="batch size for every case (default: per case and device)")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="autocast on CUDA (default: off)")
    parser.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"),
                        help="auto (CPU time of this process on a CPU, synchronised wall time on CUDA), wall or cpu")
    parser.add_argument("--no-losses", action="store_true", help="skip the table of the losses alone")
    parser.add_argument("--no-implementations", action="store_true",
                        help="skip the table of hand-written fast paths against plain PyTorch")
    parser.add_argument("--json", help="also write every row to this JSON file")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"torch {torch.__version__}, device {device} ({where}), torch threads {torch.get_num_threads()}")
    print("\nTraining step (forward + backward + AdamW), median of interleaved rounds; x none = ratio to the "
          "step without a regularizer")
    rows = steps.run_cases(args.cases, device=device, rounds=args.rounds, warmup=args.warmup, amp=args.amp,
                           batch_size=args.batch_size, clock=args.clock)
    print(f"clock: {rows[0]['clock']} time" + (" (CPU time of this process: other programs on a shared machine do "
                                               "not count)" if rows[0]["clock"] == "cpu" else ""))
    print(steps.format_table(rows))
    worst = max((r for r in rows if r["regularizer"] != "none"), key=lambda r: r["ratio"])
    target = 1.0 + steps.overhead_target(device)
    print(f"\nlargest overhead: {worst['ratio']:.3f}x ({worst['case']}, {worst['regularizer']}); "
          f"target <= {target:.2f}x on {'a GPU' if device.type == 'cuda' else 'a CPU'}")
    result = {"steps": rows}
    if not args.no_losses:
        try:
            from spectral_lib.bench import losses
        except ImportError as exc:  # the losses benchmark is optional
            print(f"\n(losses benchmark not available: {exc})")
        else:
            print("\nLosses alone (forward + backward), ratio to MSE on the same batch")
            loss_rows = losses.time_losses(device=device)
            print(losses.format_table(loss_rows))
            result["losses"] = loss_rows
    if not args.no_implementations:
        from spectral_lib.bench import implementations

        print("\nHand-written fast paths against the plain PyTorch they replace (forward + backward); "
              "speed-up = plain / ours, > 1: ours is faster")
        impl_rows = implementations.compare(device=device, clock=args.clock)
        print(implementations.format_comparison(impl_rows))
        result["implementations"] = impl_rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
