"""DistributedDataParallel through ``torchrun`` on two CPU processes (gloo): the ranks stay identical.

The test launches this very file under ``torchrun --nproc_per_node 2``; each rank trains the tiny stand-in network
of ``test_train`` with the unchanged ``train()`` and writes a hash of its weights after every step.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights_hash(*modules) -> str:
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _rank_main(out: Path) -> None:
    """Entry point of each rank (run by torchrun)."""
    import torch

    from spectral_lib.experiments import train as train_mod
    from test_train import tiny_components, tiny_config

    torch.set_num_threads(1)
    train_mod.build_components = tiny_components
    rank = int(os.environ["RANK"])
    hashes = []

    def record(state) -> None:
        assert state.dist.world_size == 2 and state.dist.rank == rank
        hashes.append(f"{state.step} {_weights_hash(state.model, state.ema_model)}")

    cfg = tiny_config(steps=STEPS, log_every=1, checkpoint_every=2, regularizer="wavelet",
                      regularizer_kwargs={"levels": 2})
    result = train_mod.train(cfg, out / "run", progress=True, callback=record)
    assert result.dist.world_size == 2
    assert not torch.distributed.is_initialized()  # train() created the group, so it tears it down
    (out / f"hashes_rank{rank}.txt").write_text("\n".join(hashes) + "\n")


@pytest.mark.slow
def test_two_cpu_ranks_stay_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), __file__, str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    h0 = (tmp_path / "hashes_rank0.txt").read_text().splitlines()
    h1 = (tmp_path / "hashes_rank1.txt").read_text().splitlines()
    assert len(h0) == STEPS and h0 == h1, "the ranks' weights diverged"
    assert len(set(h0)) == STEPS, "the weights must change from step to step"

    import torch

    # One writer: the log has each step once; the progress bar came from rank 0 only.
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == STEPS
    assert proc.stderr.count(f"{STEPS}/{STEPS}") == 1
    # Each rank drew its own data and noise streams; both are in the checkpoint for an exact resume.
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    ranks = ckpt["per_rank"]
    assert len(ranks) == 2
    for stream in ("data", "noise"):
        assert not torch.equal(ranks[0]["rng"]["generators"][stream], ranks[1]["rng"]["generators"][stream])


@pytest.mark.slow
def test_the_cli_runs_unchanged_under_torchrun(tmp_path):
    """``torchrun -m spectral_lib train``: rank 0 writes one finished run folder and prints its metrics once."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "spectral_lib", "train", "--experiment", "checkerboard",
        "--profile", "smoke", "--steps", "2", "--set", "data.size=16", "--set", "n_samples=2", "--set",
        "sample_steps=2", "--device", "cpu", "--no-progress", "--out", str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("finished in") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints", "config.json", "figures", "log.jsonl", "metrics.json", "samples.pt"
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _rank_main(Path(sys.argv[1]))
