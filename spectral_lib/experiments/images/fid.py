"""FID of a fine-tuned run, sampled as NVIDIA's ``generate.py`` samples and sharded over ``torchrun`` ranks.

The recipe, step by step as EDM's ``generate.py`` and ``fid.py`` (NVlabs/edm):

1. **Seeds.** FID seed ``k`` with ``n`` images draws the images of seeds ``k n, ..., (k + 1) n - 1`` (EDM's README
   repeats FID with ``--seeds=0-49999``, ``50000-99999``, ``100000-149999``).
2. **Shards.** The seeds are cut into ``ceil(n / (batch * world)) * world`` nearly equal consecutive batches
   (``tensor_split``), and rank ``r`` takes batches ``r, r + world, ...``: disjoint, and fixed by the seeds alone.
3. **Noise and labels per image.** Image ``s`` gets its own ``torch.Generator(device).manual_seed(s % 2**32)``; its
   latent ``(C, H, W)`` is the generator's first normal draw and, for a class-conditional network, its class is the
   generator's next ``randint(label_dim)``, one-hot (``generate.py``'s ``StackedRandomGenerator``). So an image does
   not depend on the batch or the rank that drew it.
4. **Sampling.** EDM's deterministic Heun sampler with the profile's steps; the network in float32 (autocast only when
   asked, and then the result says so) and the integration in float64 by default, as ``generate.py``.
5. **Features.** Images are quantised as ``generate.py`` saves them (``uint8(clip(x * 127.5 + 128))``, inside
   :class:`~spectral_lib.metrics.fid.InceptionFeatures`) and passed through Inception-v3 (torch-fidelity's port of the
   TensorFlow graph NVIDIA's ``fid.py`` also ports). Each rank sends its **features** (never the images) to rank 0,
   which orders them by seed and computes mean and covariance in float64 and the Fréchet distance to NVIDIA's
   reference statistics. Because every image's draw depends only on its seed, 2 ranks give the statistics of
   1 process up to float rounding (tested with gloo on the CPU).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectral_lib.experiments.profiles import ExperimentConfig

__all__ = [
    "edm_seed_batches",
    "edm_latents_and_labels",
    "sample_seeds",
    "DistContext",
    "distributed_context",
    "shard_features",
    "fid_for_run",
    "load_run_network",
    "cached_json",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16, None: None}


def edm_seed_batches(seeds: Sequence[int], batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """This rank's batches of ``seeds``, cut as ``generate.py`` cuts them (see the module docstring, step 2)."""
    if batch_size <= 0 or world_size <= 0 or not 0 <= rank < world_size:
        raise ValueError(f"need batch_size > 0 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
    seeds = torch.as_tensor(list(seeds), dtype=torch.int64)
    num_batches = ((len(seeds) - 1) // (batch_size * world_size) + 1) * world_size
    return [b.tolist() for b in seeds.tensor_split(num_batches)[rank::world_size]]


def edm_latents_and_labels(
    seeds: Sequence[int], shape: tuple[int, int, int], label_dim: int, device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latents ``(B, C, H, W)`` and one-hot labels ``(B, label_dim)`` (``None`` for 0) of images ``seeds``, each
    from its own generator: the normal draw first, then ``randint(label_dim)`` (``generate.py``, step 3)."""
    device = torch.device(device)
    latents, classes = [], []
    for seed in seeds:
        gen = torch.Generator(device).manual_seed(int(seed) % (1 << 32))
        latents.append(torch.randn(tuple(shape), generator=gen, device=device))
        if label_dim:
            classes.append(torch.randint(label_dim, size=[], generator=gen, device=device))
    labels = torch.eye(label_dim, device=device)[torch.stack(classes)] if label_dim else None
    return torch.stack(latents), labels


@torch.no_grad()
def sample_seeds(
    model: torch.nn.Module, formulation: Any, seeds: Sequence[int], shape: tuple[int, int, int], *, label_dim: int,
    steps: int, device: torch.device | str, sampler_dtype: str = "float64", autocast: str | None = None,
) -> torch.Tensor:
    """The images of ``seeds``: float32 ``(B, C, H, W)`` in ``[-1, 1]`` (clipped, as saved PNGs would be)."""
    device = torch.device(device)
    latents, labels = edm_latents_and_labels(seeds, shape, label_dim, device)
    cond = None if labels is None else {"class_labels": labels}
    dtype = _AUTOCAST[autocast]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        x = formulation.sample(model, tuple(latents.shape), steps=steps, device=device, noise=latents, cond=cond,
                               dtype=_DTYPES[sampler_dtype])
    return x.float().clamp(-1, 1)


# ------------------------------------------------------------------------------------------------ ranks


class DistContext:
    """This process's rank and world size for sharded sampling, and a CPU (gloo) group to gather features on."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
                 group: Any = None, created: bool = False) -> None:
        self.rank, self.world_size, self.group, self.created = rank, world_size, group, created
        self.device = device if device is not None else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
            self.created = False


def distributed_context(device: str | torch.device | None = None) -> DistContext:
    """Join the ``torchrun`` job (``WORLD_SIZE > 1``) or run alone. NCCL on CUDA (``cuda:LOCAL_RANK``), gloo on the
    CPU; a gloo group is made for gathering features either way. The timeout is 2 hours, because rank 0 may still
    be sampling the run's own figures when the others arrive.

    An existing process group is reused and left open (``close`` then does nothing). **Create the group once per
    process, before training** (as ``python -m spectral_lib.experiments.images run`` does): the trainer then keeps
    it too. Destroying a group and creating another in the same ``torchrun`` job can meet the old group's keys in
    torchrun's store and hang or fail (seen here with gloo).
    """
    import torch.distributed as dist

    from spectral_lib.device import default_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=default_device(device))
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    use_cuda = torch.cuda.is_available() and (device is None or not str(device).startswith("cpu"))
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(hours=2),
                                **({"device_id": dev} if use_cuda else {}))
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return DistContext(dist.get_rank(), dist.get_world_size(), dev, group, created)


def shard_features(
    features_of: Callable[[list[int]], np.ndarray], seeds: Sequence[int], batch_size: int, ctx: DistContext,
    progress: bool = False,
) -> np.ndarray | None:
    """Features of every seed, computed ``batch_size`` seeds at a time on this rank's shard and gathered on rank 0
    in seed order: ``(len(seeds), D)`` on rank 0, ``None`` elsewhere."""
    from tqdm.auto import tqdm

    batches = edm_seed_batches(seeds, batch_size, ctx.rank, ctx.world_size)
    mine_seeds: list[int] = []
    mine: list[np.ndarray] = []
    for batch in tqdm(batches, desc="FID sampling", unit="batch", disable=not (progress and ctx.is_main)):
        if batch:
            mine.append(np.asarray(features_of(batch), dtype=np.float32))
            mine_seeds += batch
    local = (mine_seeds, np.concatenate(mine) if mine else np.zeros((0, 0), np.float32))
    if ctx.world_size > 1:
        import torch.distributed as dist

        gathered: list[Any] = [None] * ctx.world_size if ctx.is_main else None  # type: ignore[assignment]
        dist.gather_object(local, gathered, dst=0, group=ctx.group)
        if not ctx.is_main:
            return None
        parts = [g for g in gathered if len(g[0])]
    else:
        parts = [local]
    order = {int(s): i for i, s in enumerate(seeds)}
    rows = np.concatenate([p[1] for p in parts])
    index = np.array([order[int(s)] for p in parts for s in p[0]])
    out = np.empty_like(rows)
    out[index] = rows
    return out


# ------------------------------------------------------------------------------------------------ runs


def cached_json(path: Path, key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` once per ``key``: the result is stored in ``path`` (atomically) beside the key."""
    from spectral_lib.experiments.checkpoint import atomic_write_text

    key = json.loads(json.dumps(dict(key)))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}, indent=2) + "\n")
    return value


def load_run_network(
    run_dir: Path, device: torch.device, *, trust_pickle: bool = False, edm_repo: str | os.PathLike[str] | None = None,
) -> tuple[torch.nn.Module, Any, ExperimentConfig, tuple]:
    """``(EMA network in eval mode on device, formulation, config, sample shape)`` of a finished run folder
    (:func:`~spectral_lib.experiments.run.load_run_model`).

    A run fine-tuned from an EDM network pickle names that pickle in its ``config.json``, and rebuilding the network
    unpickles it (code runs): only with ``trust_pickle=True`` from a caller who chose it (the command line that
    trained this run, the chapter at ``gpu``/``full``), never because the run folder says so. The ``edm_repo`` of
    the folder's ``config.json`` is never put on ``sys.path``; pass ``edm_repo`` (a clone of NVIDIA's code) here.

    Raises:
        UntrustedPickleError: an EDM run without ``trust_pickle=True``.
    """
    from spectral_lib.experiments.run import load_run_model

    model, formulation, config, state = load_run_model(run_dir, ema=True, trust_pickle=trust_pickle,
                                                       edm_repo=edm_repo)
    return model.to(device).eval(), formulation, config, tuple(state["sample_shape"])


def _reference(reference: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    from spectral_lib.metrics.fid import load_reference_statistics

    if isinstance(reference, tuple):
        mu, sigma = reference
        return mu, sigma, {"mu_sum": float(np.sum(mu)), "dim": int(np.shape(mu)[0])}
    from spectral_lib.models.edm_pretrained import EDM_FID_REFERENCES, fetch_edm_file

    mu, sigma = load_reference_statistics(fetch_edm_file(EDM_FID_REFERENCES.get(str(reference), str(reference))))
    return mu, sigma, str(reference)


def fid_for_run(
    run_dir: str | os.PathLike[str], *, n: int, seeds: Sequence[int], reference: Any = "ffhq-64x64",
    batch_size: int = 250, device: str | torch.device | None = None, autocast: str | None = None,
    sampler_dtype: str = "float64", extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False, trust_pickle: bool = False, edm_repo: str | os.PathLike[str] | None = None,
) -> dict[str, Any] | None:
    """FID of a run folder's EMA network, ``n`` images per FID seed (see the module docstring), sharded over the
    ranks of a ``torchrun`` job; cached in ``run_dir/fid.json`` for these settings.

    Args:
        n, seeds: images per FID seed and the FID seeds (the paper: 50 000 and 3; FID is biased upward at smaller
            ``n``, so compare numbers only at equal ``n``).
        reference: ``(mu, sigma)``, an ``.npz`` path/URL, or a key of ``EDM_FID_REFERENCES`` (NVIDIA's statistics).
        autocast: ``None`` (float32 network, the default) or ``"fp16"``/``"bf16"``; recorded in the result.
        sampler_dtype: ``"float64"`` (as ``generate.py``) or ``"float32"`` (the offline UNet).
        extractor: the features (default Inception-v3, the FID standard; tests pass an offline one, and the value
            is then not FID: the result's ``name`` says which features).
        trust_pickle, edm_repo: a run fine-tuned from an EDM network pickle is rebuilt from that pickle, which runs
            its code: pass ``trust_pickle=True`` only for runs you trained from a network you trust, and
            ``edm_repo`` for NVIDIA's code (:func:`load_run_network`; never taken from the run's ``config.json``).

    Returns:
        On rank 0: ``{"values": [FID per seed], "mean", "std" (ddof 1), "n", "seeds", "name", "precision",
        "world_size", "images_per_s", "seconds"}``; ``None`` on the other ranks.
    """
    from spectral_lib.metrics.fid import InceptionFeatures, feature_statistics, frechet_distance

    if autocast not in _AUTOCAST or sampler_dtype not in _DTYPES:
        raise ValueError(f"autocast must be one of {list(_AUTOCAST)} and sampler_dtype one of {list(_DTYPES)}, "
                         f"got {autocast!r}, {sampler_dtype!r}")
    run_dir = Path(run_dir)
    ctx = distributed_context(device)
    mu_ref, sigma_ref, ref_key = _reference(reference)
    precision = {"network": "float32" if autocast is None else f"{autocast} autocast", "sampler": sampler_dtype}
    key = {"n": int(n), "seeds": [int(s) for s in seeds], "reference": ref_key, "precision": precision,
           "extractor": getattr(extractor, "name", type(extractor).__name__) if extractor is not None else None}
    cache = run_dir / "fid.json"
    stored = json.loads(cache.read_text()) if cache.is_file() else {}
    if stored.get("key") == json.loads(json.dumps(key)):  # every rank reads it, so all skip the sampling together
        ctx.close()
        return stored["value"] if ctx.is_main else None
    model, formulation, config, shape = load_run_network(run_dir, ctx.device, trust_pickle=trust_pickle,
                                                         edm_repo=edm_repo)
    label_dim = int(getattr(model, "label_dim", 0))
    feats_fn = extractor if extractor is not None else InceptionFeatures().to(ctx.device)

    def features_of(batch: list[int]) -> np.ndarray:
        images = sample_seeds(model, formulation, batch, shape, label_dim=label_dim, steps=config.sample_steps,
                              device=ctx.device, sampler_dtype=sampler_dtype, autocast=autocast)
        return feats_fn(images).detach().double().cpu().numpy()

    t0 = time.perf_counter()
    stats = []
    for k in seeds:
        feats = shard_features(features_of, range(int(k) * n, (int(k) + 1) * n), batch_size, ctx, progress)
        if ctx.is_main:
            stats.append(feature_statistics(feats))
    seconds = time.perf_counter() - t0
    ctx.close()
    if not ctx.is_main:
        return None
    from spectral_lib.experiments.images.evaluation import mean_std

    values = [frechet_distance(mu, sigma, mu_ref, sigma_ref) for mu, sigma in stats]
    mean, std = mean_std(values)
    value = {"values": values, "mean": mean, "std": std, "n": int(n), "seeds": [int(s) for s in seeds],
             "name": getattr(feats_fn, "name", "unnamed features"), "precision": precision,
             "world_size": ctx.world_size, "images_per_s": n * len(seeds) / max(seconds, 1e-9), "seconds": seconds}
    return cached_json(run_dir / "fid.json", key, lambda: value)
