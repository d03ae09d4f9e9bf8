"""The image experiments under ``torchrun --nproc_per_node 2`` (gloo, CPU).

1. DDP fine-tuning of a stand-in with the official checkpoints' quirks: a bias-free ``map_augment`` layer that our
   sources never feed (NVIDIA's networks all have one) and class labels from a CIFAR-10-style EDM zip. Without the
   wrapper's zero augment labels DDP stops at step 2 ("parameters that were not used"); the negative control shows
   that this test sees it.
2. Sharded FID sampling: two ranks give the same feature statistics and FID as one process.

The test launches this very file under torchrun; ``sys.argv[1]`` says what each rank does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

STEPS = 4
TINY = dict(steps=3, warmup_steps=1, batch_size=4, n_samples=6, sample_batch_size=6, sample_steps=2,
            grid_samples=4, log_every=1, device="cpu", data={"standin": {"n": 8, "resolution": 32, "seed": 0}})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), __file__, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


# ------------------------------------------------------------------------------------------------ ranks


def _ddp_rank(out: Path, data: Path, broken: bool) -> None:
    from test_edm_pretrained import EDMPrecond

    from spectral_lib.diffusion import diffusion_loss
    from spectral_lib.experiments import get_profile
    from spectral_lib.experiments import train as train_mod
    from spectral_lib.experiments.sources import build_source
    from spectral_lib.models.edm_pretrained import EDMPretrainedNetwork

    torch.set_num_threads(1)
    if broken:  # the wrapper as it was: no augment labels, so map_augment gets no gradient
        EDMPretrainedNetwork.augment_dim = property(lambda self: 0)

    def components(config, *, rank=0, world_size=1):
        return train_mod.Components(
            source=build_source(config.data, data_dir=config.data_dir, seed=config.seed, rank=rank,
                                world_size=world_size),
            model=EDMPretrainedNetwork(EDMPrecond(img_resolution=32, label_dim=10, augment_dim=9), dropout=0.13),
            formulation=train_mod.build_formulation(config), regularizer=train_mod.build_regularizer(config),
            loss_fn=diffusion_loss)

    train_mod.build_components = components
    rank, hashes = int(os.environ["RANK"]), []

    def record(state) -> None:
        h = hashlib.sha256()
        for tensor in state.model.state_dict().values():
            h.update(tensor.detach().contiguous().numpy().tobytes())
        hashes.append(f"{state.step} {h.hexdigest()}")

    config = get_profile("cifar10", "gpu").replace(
        data_dir=str(data), steps=STEPS, batch_size=2, warmup_steps=1, log_every=1, checkpoint_every=2, device="cpu",
        regularizer="wavelet", regularizer_kwargs={"levels": 2}, spectral_weighting="formulation")
    train_mod.train(config, out / "run", progress=False, callback=record)
    (out / f"hashes_rank{rank}.txt").write_text("\n".join(hashes) + "\n")


def _fid_rank(out: Path, run_dir: Path) -> None:
    from spectral_lib.experiments import images
    from spectral_lib.experiments.images import fid as fid_mod
    from spectral_lib.metrics.fid import RandomConvFeatures

    torch.set_num_threads(1)
    ctx = fid_mod.distributed_context("cpu")  # one group for the whole job (re-creating one can hang)
    ref = np.load(out / "reference.npz")
    stats_rank(out, run_dir, batch_size=3, name="sharded")
    shard_run = out / "sharded_run"
    result = images.fid_for_run(shard_run, n=7, seeds=(0, 1), reference=(ref["mu"], ref["sigma"]), batch_size=2,
                                extractor=RandomConvFeatures(0), sampler_dtype="float32")
    if int(os.environ["RANK"]) == 0:
        np.save(out / "sharded_fid.npy", np.asarray(result["values"] + [result["world_size"]]))
    else:
        assert result is None
    ctx.close()


def stats_rank(out: Path, run_dir: Path, *, batch_size: int, name: str) -> None:
    """Features of seeds 0..6 of a run, sharded over this job's ranks; rank 0 saves their mean and covariance."""
    from spectral_lib.experiments.images import fid as fid_mod
    from spectral_lib.metrics.fid import RandomConvFeatures, feature_statistics

    ctx = fid_mod.distributed_context("cpu")
    model, formulation, config, shape = fid_mod.load_run_network(run_dir, ctx.device)
    extractor = RandomConvFeatures(0)

    def features_of(batch):
        x = fid_mod.sample_seeds(model, formulation, batch, shape, label_dim=0, steps=config.sample_steps,
                                 device=ctx.device, sampler_dtype="float32")
        return extractor(x).double().numpy()

    feats = fid_mod.shard_features(features_of, range(7), batch_size, ctx)
    ctx.close()
    if ctx.is_main:
        mu, sigma = feature_statistics(feats)
        np.savez(out / f"{name}.npz", mu=mu, sigma=sigma, features=feats)


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.slow
def test_ddp_fine_tunes_a_checkpoint_with_an_unused_augment_layer(tmp_path):
    from test_edm_datasets import write_cifar_tarball

    from spectral_lib.data.edm_datasets import convert_cifar10

    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    data = convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar10-32x32.zip", progress=False)
    os.environ.setdefault("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    proc = _torchrun("ddp", str(tmp_path / "ok"), str(data))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    h0 = (tmp_path / "ok" / "hashes_rank0.txt").read_text().splitlines()
    h1 = (tmp_path / "ok" / "hashes_rank1.txt").read_text().splitlines()
    assert len(h0) == STEPS and h0 == h1 and len(set(h0)) == STEPS  # ranks identical, weights moving

    broken = _torchrun("ddp-broken", str(tmp_path / "broken"), str(data))  # negative control: the old wrapper
    assert broken.returncode != 0
    assert "did not receive grad" in broken.stderr or "not used" in broken.stderr, broken.stderr[-3000:]


@pytest.mark.slow
def test_sharded_fid_equals_one_process(tmp_path, monkeypatch):
    from spectral_lib.experiments import images
    from spectral_lib.metrics.fid import RandomConvFeatures, compute_features, feature_statistics

    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    run = images.run_variant("smoke", images.Variant(), root=tmp_path / "runs", **TINY).out_dir
    shutil.copytree(run, tmp_path / "sharded_run")
    reference = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mu_ref, sigma_ref = feature_statistics(compute_features(RandomConvFeatures(0), reference))
    np.savez(tmp_path / "reference.npz", mu=mu_ref, sigma=sigma_ref)

    stats_rank(tmp_path, run, batch_size=4, name="single")  # one process, other batches
    alone = images.fid_for_run(run, n=7, seeds=(0, 1), reference=(mu_ref, sigma_ref), batch_size=4,
                               extractor=RandomConvFeatures(0), sampler_dtype="float32")
    proc = _torchrun("fid", str(tmp_path), str(run))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    single, sharded = np.load(tmp_path / "single.npz"), np.load(tmp_path / "sharded.npz")
    # the same images in the same order; batches of 3 per rank against 4 in one process move only the rounding
    scale = np.abs(single["features"]).max()
    np.testing.assert_allclose(sharded["features"], single["features"], rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(sharded["mu"], single["mu"], rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(sharded["sigma"], single["sigma"], rtol=0, atol=1e-5 * np.abs(single["sigma"]).max())
    values = np.load(tmp_path / "sharded_fid.npy")
    assert values[-1] == 2  # computed by two ranks
    np.testing.assert_allclose(values[:-1], alone["values"], rtol=1e-4)
    assert alone["world_size"] == 1 and alone["values"][0] != alone["values"][1]


@pytest.mark.slow
def test_command_line_runs_a_row_under_torchrun(tmp_path):
    """``torchrun -m spectral_lib.experiments.images run``: DDP fine-tune of a conditional stand-in checkpoint with an
    augment layer, sharded FID (stand-in features), one result file written by rank 0."""
    import pickle

    from test_edm_datasets import write_cifar_tarball
    from test_edm_pretrained import EDMPrecond

    from spectral_lib.data.edm_datasets import convert_cifar10
    from spectral_lib.metrics.fid import RandomConvFeatures, compute_features, feature_statistics

    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    data = convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar10-32x32.zip", progress=False)
    repo = tmp_path / "edm"
    for sub, name in (("torch_utils", "persistence.py"), ("dnnlib", "__init__.py")):
        (repo / sub).mkdir(parents=True)
        (repo / sub / name).write_text("")
    torch.manual_seed(0)
    with open(tmp_path / "edm-standin.pkl", "wb") as f:
        pickle.dump({"ema": EDMPrecond(img_resolution=32, label_dim=10, augment_dim=9).eval()}, f)
    reference = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mu, sigma = feature_statistics(compute_features(RandomConvFeatures(0), reference))
    np.savez(tmp_path / "reference.npz", mu=mu, sigma=sigma)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
           "SPECTRAL_RESULTS_DIR": str(tmp_path / "results"), "SPECTRAL_LIB_CACHE": str(tmp_path / "cache"),
           "SPECTRAL_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "spectral_lib.experiments.images", "run", "--dataset",
           "cifar10", "--profile", "gpu", "--network", "vp", "--variant", "fourier_amp-unweighted", "--data",
           str(data), "--edm-repo", str(repo), "--root", str(tmp_path / "runs"), "--checkpoint",
           str(tmp_path / "edm-standin.pkl"), "--steps", "2", "--fid-samples", "6", "--fid-seeds", "0,1",
           "--features", "random-conv", "--reference", str(tmp_path / "reference.npz")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("written to") == 1
    import json

    record = json.loads((tmp_path / "results" / "gpu" / "cifar10" / "vp-fourier_amp-unweighted.json").read_text())
    fid = record["fid"]
    assert fid["world_size"] == 2 and fid["n"] == 6 and len(fid["values"]) == 2
    assert fid["name"].startswith("FD (local features") and fid["precision"]["network"] == "float32"
    assert record["training"]["steps"] == 2 and "--variant fourier_amp-unweighted" in record["command"]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    mode = sys.argv[1]
    if mode.startswith("ddp"):
        _ddp_rank(Path(sys.argv[2]), Path(sys.argv[3]), broken=mode == "ddp-broken")
    else:
        _fid_rank(Path(sys.argv[2]), Path(sys.argv[3]))
