"""Command line of the image experiments: ``python -m spectral_lib.experiments.images {prepare,run,bench}``.

    # one-click data (CIFAR-10, AFHQv2), or FFHQ from a folder / EDM zip you have
    python -m spectral_lib.experiments.images prepare --dataset cifar10
    python -m spectral_lib.experiments.images prepare --dataset ffhq --source ~/ffhq/images1024x1024

    # one row of Table 1: fine-tune, FID (sharded over the GPUs), results/<profile>/<dataset>/<row>.json
    torchrun --standalone --nproc_per_node=8 -m spectral_lib.experiments.images run \\
        --dataset cifar10 --profile full --network vp --variant fourier_amp-unweighted

    # ``run`` unpickles the network it fine-tunes (NVIDIA's official one, or --checkpoint) and puts NVIDIA's code
    # (--edm-repo) on sys.path: running it is your choice to trust both. It trusts nothing a run folder names.

    # CPU throughput of stand-ins of the real networks' size (the basis of the GPU-hour estimate)
    OMP_NUM_THREADS=1 python -m spectral_lib.experiments.images bench
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from spectral_lib.experiments.images.profiles import ALL_VARIANTS, DATASETS, Variant, settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spectral_lib.experiments.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="download/convert a data set into an EDM zip")
    prep.add_argument("--dataset", choices=list(DATASETS), required=True)
    prep.add_argument("--source", help="an archive, folder or EDM zip you have (required for ffhq)")
    run = sub.add_parser("run", help="fine-tune one Table 1 row, measure FID, write its result file")
    run.add_argument("--dataset", choices=list(DATASETS), required=True)
    run.add_argument("--profile", choices=["gpu", "full"], required=True)
    run.add_argument("--network", choices=["vp", "ve"], required=True)
    run.add_argument("--variant", choices=[v.key for v in ALL_VARIANTS], default="baseline")
    run.add_argument("--data", help="FFHQ: images1024x1024/ or an EDM zip (cifar10/afhqv2 are downloaded)")
    run.add_argument("--edm-repo", default="runs/edm", help="a clone of NVlabs/edm (cloned here if missing); its "
                                                            "code is imported to unpickle the networks")
    run.add_argument("--root", default="runs/images", help="where run folders go")
    run.add_argument("--seed", type=int, default=0, help="training seed")
    run.add_argument("--autocast", choices=["fp16", "bf16"], help="sample for FID under autocast (labelled)")
    run.add_argument("--checkpoint", help="a network pickle (path or URL) instead of the official one, e.g. a "
                                          "snapshot of EDM's own training; unpickling runs its code, so name only "
                                          "a file you trust")
    run.add_argument("--steps", type=int, help="fine-tuning steps (default: the profile's)")
    run.add_argument("--fid-samples", type=int, help="images per FID seed (default: the profile's)")
    run.add_argument("--fid-seeds", help="FID seeds, comma-separated (default: the profile's)")
    run.add_argument("--reference", help="FID reference statistics (.npz with mu, sigma; default NVIDIA's)")
    run.add_argument("--features", choices=["inception", "random-conv"], default="inception",
                     help="random-conv: offline stand-in features for tests; the value is then NOT FID and its "
                          "result file says so")
    sub.add_parser("bench", help="CPU images/s and steps/s of stand-ins of the real networks' size")
    return parser


def _prepared_data(dataset: str, data: str | None) -> Path:
    """Rank 0 downloads/converts; the other ranks wait for the zip (no process group exists yet)."""
    from spectral_lib.data.edm_datasets import IMAGE_DATA, _is_edm_zip, default_data_root
    from spectral_lib.experiments.images.evaluation import prepare_data

    if int(os.environ.get("RANK", "0")) == 0:
        return prepare_data(dataset, data)
    if data is not None and Path(data).is_file() and _is_edm_zip(Path(data)):
        return Path(data)
    target = default_data_root() / IMAGE_DATA[dataset].zip_name
    for _ in range(2 * 3600 // 5):
        if target.is_file():
            return target
        time.sleep(5)
    raise TimeoutError(f"rank {os.environ.get('RANK')} waited 2 hours for rank 0 to prepare {target}")


def _clone_edm(repo: str) -> None:
    import subprocess

    from spectral_lib.models.edm_pretrained import EDM_CODE_URL

    if not Path(repo, "torch_utils").is_dir() and int(os.environ.get("RANK", "0")) == 0:
        subprocess.run(["git", "clone", "--depth", "1", EDM_CODE_URL, repo], check=True)
    while not Path(repo, "dnnlib", "__init__.py").is_file():
        time.sleep(2)


def run_row(args: argparse.Namespace) -> None:
    """Fine-tune (DDP under torchrun), FID (sharded), result file (rank 0).

    The network pickle (the official one of ``--dataset``/``--network``, or ``--checkpoint``) and the code folder
    ``--edm-repo`` are the user's choice on this command line, so the run this command trains is reloaded for FID
    with ``trust_pickle=True`` and that ``edm_repo``: the trust comes from the command line, never from the run
    folder's ``config.json``."""
    import torch

    from spectral_lib.experiments.images.evaluation import run_variant
    from spectral_lib.experiments.images.fid import distributed_context, fid_for_run
    from spectral_lib.experiments.images.results import write_result

    plan, variant = settings(args.profile), Variant.from_key(args.variant)
    ctx = distributed_context()  # one process group for training and FID (the trainer reuses it, see fid.py)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = plan.tf32
    _clone_edm(args.edm_repo)
    data = _prepared_data(args.dataset, args.data)
    overrides = {} if args.steps is None else {"steps": args.steps}
    if args.checkpoint:
        overrides["model"] = {"network": args.checkpoint, "edm_repo": args.edm_repo}
    result = run_variant(args.profile, variant, dataset=args.dataset, root=args.root, seed=args.seed,
                         network=args.network, edm_repo=args.edm_repo, data_dir=data, progress=True, **overrides)
    seeds = plan.fid_seeds if args.fid_seeds is None else tuple(int(k) for k in args.fid_seeds.split(","))
    extractor = None
    if args.features == "random-conv":
        from spectral_lib.metrics.fid import RandomConvFeatures

        extractor = RandomConvFeatures(0)
    fid = fid_for_run(result.out_dir, n=args.fid_samples or plan.fid_samples, seeds=seeds,
                      reference=args.reference or DATASETS[args.dataset].fid_reference, batch_size=plan.fid_batch_size,
                      autocast=args.autocast, sampler_dtype=plan.sampler_dtype, extractor=extractor, progress=True,
                      trust_pickle=True, edm_repo=args.edm_repo)  # the pickle and code this command line chose
    if fid is not None:  # rank 0
        path = write_result(args.profile, args.dataset, args.network, variant, fid, run_metrics=result.metrics,
                            config=result.config, seed=args.seed)
        print(f"FID {fid['mean']:.3f} (n={fid['n']}, seeds {fid['seeds']}); written to {path}")
    ctx.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "prepare":
        from spectral_lib.data.edm_datasets import prepare_dataset

        print(prepare_dataset(args.dataset, source=args.source))
    elif args.command == "bench":
        from spectral_lib.experiments.images.throughput import measure_throughput

        measure_throughput()
    else:
        run_row(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
