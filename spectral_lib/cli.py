"""Command line: ``python -m spectral_lib train | sample | evaluate | standin``.

Examples::

    python -m spectral_lib train --experiment checkerboard --profile cpu --regularizer wavelet --out runs/haar
    python -m spectral_lib train --experiment checkerboard --profile cpu --formulation edm --resume --out runs/edm
    torchrun --nproc_per_node 4 -m spectral_lib train --experiment checkerboard --profile gpu --out runs/ddp
    python -m spectral_lib sample --run runs/haar --n 16 --steps 100 --grid runs/haar/figures/more.png
    python -m spectral_lib evaluate --run runs/haar
    python -m spectral_lib standin --kind images --out data/ffhq-standin --n 256

Exit codes: 0 success; 2 user errors (unknown names, bad values, an existing run without ``--resume``, a folder or
file that must not be written over, unreadable data), one line on stderr; 1 a run that failed (it diverged: the
line names the last good checkpoint; a download failed); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "parse_set"]


def _names() -> dict[str, tuple[str, ...]]:
    from spectral_lib.diffusion import FORMULATIONS
    from spectral_lib.experiments import profiles
    from spectral_lib.spectral import SPECTRAL_REGULARIZERS

    return {
        "experiments": profiles.EXPERIMENTS,
        "profiles": profiles.PROFILES,
        "regularizers": tuple(SPECTRAL_REGULARIZERS),
        "formulations": tuple(FORMULATIONS),
        "weightings": profiles.SPECTRAL_WEIGHTINGS,
    }


def parse_set(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (``3``, ``1e-4``, ``true``, ``{"size": 16}``), else text."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (valid names are read from the library, so new ones appear here by themselves)."""
    names = _names()
    parser = argparse.ArgumentParser(
        prog="python -m spectral_lib",
        description="Spectral regularization for diffusion models: train, sample, evaluate, write stand-in data.",
        epilog="Each command has its own --help. Under torchrun, 'train' runs DistributedDataParallel unchanged.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub, names)
    _add_sample(sub)
    _add_evaluate(sub)
    _add_standin(sub)
    return parser


def _add_train(sub: Any, names: dict[str, tuple[str, ...]]) -> None:
    t = sub.add_parser("train", help="train, sample and evaluate one run; write its run folder",
                       description="Train one run, sample it with the EMA weights, evaluate it and write the run "
                                   "folder (config.json, log.jsonl, checkpoints/last.pt, samples.pt, figures/, "
                                   "metrics.json).")
    t.add_argument("--experiment", required=True, choices=names["experiments"], help="which experiment")
    t.add_argument("--profile", default="cpu", choices=names["profiles"],
                   help="named configuration: smoke (seconds), cpu (minutes), gpu (Colab/GPU) (default: cpu)")
    t.add_argument("--regularizer", default="none", choices=names["regularizers"],
                   help="spectral term on x0_hat; 'none' is the plain diffusion baseline (default: none)")
    t.add_argument("--formulation", choices=names["formulations"],
                   help="ddpm (ancestral sampling), ddim (DDPM training, DDIM sampling) or edm (Heun) "
                        "(default: the profile's; ddpm for checkerboard, edm for ffhq)")
    t.add_argument("--lambda-spec", type=float, help="weight lambda of the spectral term (default: the profile's)")
    t.add_argument("--spectral-weighting", choices=names["weightings"],
                   help="'none' (lambda alone, the paper's unweighted) or 'formulation' (lambda times the "
                        "formulation's weight, e.g. lambda_EDM(sigma), the paper's weighted)")
    t.add_argument("--steps", type=int, help="optimizer steps (default: the profile's)")
    t.add_argument("--batch-size", type=int, help="batch size per process (default: the profile's)")
    t.add_argument("--lr", type=float, help="peak learning rate of AdamW (default: the profile's)")
    t.add_argument("--seed", type=int, help="seed of every random stream (default: the profile's, 0)")
    t.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: CUDA if available, else CPU)")
    t.add_argument("--data-dir", help="data folder for experiments on files (image folder, LJSpeech layout)")
    t.add_argument("--out", help="run folder (default: $SPECTRAL_RUNS_DIR or runs/, named after the settings)")
    t.add_argument("--resume", action="store_true",
                   help="continue an interrupted run exactly, or reuse a finished one with the same settings")
    t.add_argument("--overwrite", action="store_true", help="delete an existing run in --out and start again")
    t.add_argument("--set", dest="overrides", action="append", type=parse_set, default=[], metavar="KEY=VALUE",
                   help="any other config key, value as JSON (repeatable): --set ema_decay=0.99 "
                        "--set data.size=16 --set 'regularizer_kwargs={\"levels\": 2}'")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_sample(sub: Any) -> None:
    s = sub.add_parser("sample", help="draw samples from a run folder's checkpoint",
                       description="Draw samples from a run's EMA weights (the run's own sampler and settings "
                                   "unless given).")
    s.add_argument("--run", required=True, help="the run folder")
    s.add_argument("--n", type=int, help="number of samples (default: the run's n_samples)")
    s.add_argument("--steps", type=int, help="sampler steps (default: the run's sample_steps)")
    s.add_argument("--seed", type=int, help="sampling seed (default: the run's, which reproduces samples.pt)")
    s.add_argument("--device", help="cpu, cuda, ... (default: the run's device or the best available)")
    s.add_argument("--out", help="save the samples tensor (float32, [-1, 1]) to this .pt file")
    s.add_argument("--grid", help="save a sample grid figure (images) or waveform figure (audio) to this .png")
    s.add_argument("--raw", action="store_true", help="use the trained weights instead of their EMA")
    s.add_argument("--overwrite", action="store_true", help="replace existing --out / --grid files")
    s.add_argument("--trust-pickle", action="store_true",
                   help="a run fine-tuned from an EDM network pickle needs that pickle again, and unpickling runs "
                        "the code it holds: allow it (only for a run and a pickle you trust)")
    s.add_argument("--edm-repo", help="with --trust-pickle: a clone of NVlabs/edm to import NVIDIA's code from (a "
                                      "folder named in the run's config.json is never used)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_evaluate(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="recompute a run folder's metrics from its samples.pt",
                       description="Recompute the metrics (and figures) of a run from samples.pt; prints JSON.")
    e.add_argument("--run", required=True, help="the run folder")
    e.add_argument("--no-write", action="store_true", help="print only; leave metrics.json and figures alone")


def _add_standin(sub: Any) -> None:
    w = sub.add_parser("standin", help="write a stand-in data set in the real data set's on-disk layout",
                       description="Write stand-in data (no download): dead-leaves images in FFHQ's thumbnail "
                                   "layout, or synthetic speech in LJSpeech-1.1's layout.")
    w.add_argument("--kind", required=True, choices=("images", "ljspeech"), help="which data set to imitate")
    w.add_argument("--out", required=True, help="folder to write into")
    w.add_argument("--n", type=int, help="number of images / utterances (default: the writer's)")
    w.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    w.add_argument("--resolution", type=int, help="images: side in pixels (default: the writer's, 128)")
    w.add_argument("--seconds", type=float, help="ljspeech: duration of each utterance (default: the writer's)")
    w.add_argument("--overwrite", action="store_true",
                   help="replace a stand-in written before in --out (a folder of real data is never written over)")


def _train(args: argparse.Namespace) -> int:
    from spectral_lib.experiments.run import run_experiment

    overrides: dict[str, Any] = dict(args.overrides)
    for flag, key in (("lambda_spec", "lambda_spec"), ("spectral_weighting", "spectral_weighting"),
                      ("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("device", "device"),
                      ("data_dir", "data_dir")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    result = run_experiment(
        args.experiment, profile=args.profile, regularizer=args.regularizer, formulation=args.formulation,
        out=args.out, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
        progress=not args.no_progress, **overrides,
    )
    if result.samples is not None:  # rank 0 (or a single process)
        state = "reused (finished run)" if result.cached else f"finished in {result.wall_time:.1f} s"
        print(f"run {str(result.out_dir)!r} {state}")
        print(json.dumps(result.metrics, indent=2))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from spectral_lib.experiments.checkpoint import atomic_path
    from spectral_lib.experiments.run import sample_run

    for target in (args.out, args.grid):
        if target and Path(target).exists() and not args.overwrite:
            raise FileExistsError(f"{target!r} exists; pass --overwrite to replace it, or choose another file")
        if target and Path(target).is_dir():
            raise IsADirectoryError(f"{target!r} is a folder; give a file name")
    samples = sample_run(args.run, n=args.n, steps=args.steps, seed=args.seed, device=args.device,
                         ema=not args.raw, progress=not args.no_progress, trust_pickle=args.trust_pickle,
                         edm_repo=args.edm_repo)
    if args.out:
        with atomic_path(args.out) as tmp:
            import torch

            torch.save(samples, tmp)
    if args.grid:
        from spectral_lib import plotting

        title = f"Samples of {Path(args.run).name}"
        fig = plotting.sample_grid(samples, title=title) if samples.dim() == 4 else plotting.plot_waveform(
            samples[:4], title=title)
        plotting.save_figure(fig, args.grid)
    print(f"{len(samples)} samples of shape {tuple(samples.shape[1:])}, range "
          f"[{float(samples.min()):.3f}, {float(samples.max()):.3f}]" + (f", saved to {args.out}" if args.out else ""))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spectral_lib.experiments.run import evaluate_run

    print(json.dumps(evaluate_run(args.run, write=not args.no_write), indent=2))
    return 0


def _standin(args: argparse.Namespace) -> int:
    from spectral_lib.data import standin

    if args.kind == "images":
        kwargs = {k: v for k, v in (("n", args.n), ("resolution", args.resolution)) if v is not None}
        path = standin.write_image_standin(args.out, seed=args.seed, overwrite=args.overwrite, **kwargs)
    else:
        kwargs = {k: v for k, v in (("n_utterances", args.n), ("seconds", args.seconds)) if v is not None}
        path = standin.write_ljspeech_standin(args.out, seed=args.seed, overwrite=args.overwrite, **kwargs)
    print(f"wrote stand-in {args.kind} data to {path}")
    return 0


_COMMANDS = {"train": _train, "sample": _sample, "evaluate": _evaluate, "standin": _standin}


_USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError)
"""Errors caused by what the user asked for or pointed at (exit code 2): the message says what to change."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if not isinstance(exc, OSError) or exc.strerror is None else (
        f"{exc.strerror}: {exc.filename!r}" if exc.filename else exc.strerror)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code (0 ok, 2 user error, 1 failed run, 130 interrupted); errors
    are one line on stderr, never a traceback."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    prefix = f"{parser.prog} {args.command}"
    try:
        return _COMMANDS[args.command](args)
    except _USER_ERRORS as exc:
        print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (FloatingPointError, OSError) as exc:  # a diverged run; a download or disk that failed
        print(f"{prefix}: failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = " (continue the run with --resume)" if args.command == "train" else ""
        print(f"{prefix}: interrupted{hint}", file=sys.stderr)
        return 130
