"""Atomic checkpoints: round trip through torch.load(weights_only=True), RNG capture, crash safety, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from spectral_lib.experiments import checkpoint as ckpt_mod
from spectral_lib.experiments.checkpoint import (
    CheckpointError,
    atomic_write_text,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state() -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(5)
    return {
        "step": 7,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "config": {"experiment": "checkerboard", "lr": 1e-3, "model": {"preset": "tiny"}, "grad_clip": None},
        "rng": capture_rng_state({"data": g}),
    }


def test_round_trip_is_safe_and_exact(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "c" / "last.pt", state)
    # The file loads with the safe unpickler alone (no code runs), independently of our loader.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == ckpt_mod.CHECKPOINT_FORMAT
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == state["config"]
    for k, v in state["model"].items():
        assert torch.equal(loaded["model"][k], v)
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.pt"]  # no temporary files left


def test_rng_state_restores_every_stream():
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = capture_rng_state({"noise": g})
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], torch.rand(3, generator=g))
    torch.manual_seed(99), np.random.seed(99), random.seed(99), g.manual_seed(99)  # scramble everything
    restore_rng_state(saved, {"noise": g})
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], torch.rand(3, generator=g))
    assert torch.equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert first[2] == again[2]
    assert torch.equal(first[3], again[3])


def test_rng_state_survives_weights_only_load(tmp_path):
    np.random.seed(4)
    np.random.randn()  # leave a cached Gaussian in NumPy's state (has_gauss = 1)
    saved = capture_rng_state({})
    expected = np.random.randn(2)
    save_checkpoint(tmp_path / "r.pt", {"rng": saved})
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"], {})
    np.testing.assert_array_equal(np.random.randn(2), expected)


def test_missing_generator_state_is_named():
    saved = capture_rng_state({"data": torch.Generator()})
    with pytest.raises(CheckpointError, match="generator 'noise'"):
        restore_rng_state(saved, {"noise": torch.Generator()})


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:  # write part of a file, then die
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_keyboard_interrupt_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    def interrupted(obj, f, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_truncated_checkpoint_error_names_the_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 3, "w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"last\.pt.*truncated or corrupt"):
        load_checkpoint(path)


def test_garbage_and_missing_checkpoints_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="nowhere.pt.*does not exist"):
        load_checkpoint(tmp_path / "nowhere.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(1)}, foreign)  # a valid file, but not our layout
    with pytest.raises(CheckpointError, match="foreign.pt.*unknown layout"):
        load_checkpoint(foreign)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt_mod.CHECKPOINT_FORMAT, "obj": _Custom()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


class _Custom:
    pass


def test_atomic_write_text(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "{}\n")
    atomic_write_text(path, '{"b": 1}\n')
    assert path.read_text() == '{"b": 1}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_atomic_files_get_the_permissions_of_an_ordinary_write(tmp_path):
    """mkstemp creates its file readable by the owner only; a run folder written atomically must be as readable
    as one written with open() (colleagues, a web server, a results folder)."""
    import os

    old = os.umask(0o022)
    try:
        (tmp_path / "plain.txt").write_text("x")
        atomic_write_text(tmp_path / "atomic.txt", "x")
        save_checkpoint(tmp_path / "ckpt.pt", {"step": 1})
    finally:
        os.umask(old)
    expected = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert expected == 0o644
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == expected
    assert (tmp_path / "ckpt.pt").stat().st_mode & 0o777 == expected


def test_refusals_never_pass_on_torchs_advice_to_unpickle(tmp_path):
    """torch's own message for a file its safe loader refuses suggests weights_only=False, i.e. running the file's
    code: the one thing not to do with a checkpoint someone sent you."""
    evil = tmp_path / "evil.pt"
    torch.save({"format": ckpt_mod.CHECKPOINT_FORMAT, "obj": _Custom()}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for path, match in ((evil, r"evil\.pt.* pickled objects"), (garbage, r"garbage\.pt.*truncated or corrupt")):
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(path)
        assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
