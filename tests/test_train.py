"""The trainer: logging, warm-up, EMA, exact resume, refusals. A tiny stand-in network keeps it fast."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from spectral_lib.experiments import train as train_mod
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile
from spectral_lib.experiments.sources import DatasetSource, epoch_permutation
from spectral_lib.experiments.train import EMA, Components, lr_factor, stream_seed, train


class TinyNet(nn.Module):
    """``(x, noise_cond) -> out`` with a noise-level embedding and dropout (so that the global RNG matters)."""

    def __init__(self, channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.emb = nn.Linear(1, width)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, noise_cond: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.emb(noise_cond.float().view(-1, 1) / 1000.0)[:, :, None, None]
        return self.out(self.drop(torch.nn.functional.silu(h)))


def tiny_components(config: ExperimentConfig, *, rank: int = 0, world_size: int = 1) -> Components:
    """The real source, formulation, regularizer and loss of ``config`` around :class:`TinyNet`."""
    from spectral_lib.diffusion import diffusion_loss
    from spectral_lib.experiments.sources import build_source

    source = build_source(config.data, seed=config.seed, rank=rank, world_size=world_size)
    return Components(
        source=source,
        model=TinyNet(int(config.data.get("channels", 1))),
        formulation=train_mod.build_formulation(config),
        regularizer=train_mod.build_regularizer(config),
        loss_fn=diffusion_loss,
    )


def tiny_config(**overrides) -> ExperimentConfig:
    base = get_profile("checkerboard", "smoke").replace(
        data={"size": 8, "check_sizes": [2]}, batch_size=4, steps=8, warmup_steps=3, log_every=2,
        checkpoint_every=4, sample_every=0, sample_steps=4, grid_samples=4, n_samples=4, formulation="ddim",
        formulation_kwargs={"num_steps": 50}, device="cpu",
    )
    return base.replace(**overrides)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(train_mod, "build_components", tiny_components)
    return tiny_config


def _state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if isinstance(a[k], torch.Tensor):
            if not torch.equal(a[k], b[k]):
                return False
        elif isinstance(a[k], dict):
            if not _state_equal(a[k], b[k]):
                return False
        elif a[k] != b[k]:
            return False
    return True


def _read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_writes_log_config_and_checkpoint(tiny, tmp_path):
    cfg = tiny(regularizer="wavelet", regularizer_kwargs={"levels": 2})
    result = train(cfg, tmp_path, progress=False)
    assert result.step == 8 and result.wall_time > 0
    log = _read_log(tmp_path / "log.jsonl")
    assert [line["step"] for line in log] == [2, 4, 6, 8]
    for line in log:
        assert {"loss", "diffusion", "spectral", "grad_norm", "lr", "steps_per_s"} <= set(line)
        assert math.isfinite(line["loss"]) and line["spectral"] > 0
        # total = diffusion + λ·spectral for each step, hence for the averages (λ = 1)
        assert line["loss"] == pytest.approx(line["diffusion"] + line["spectral"], rel=1e-5)
    assert log[0]["lr"] == pytest.approx(cfg.lr * 2 / 3)  # step index 1 of a 3-step warm-up
    assert json.loads((tmp_path / "config.json").read_text()) == cfg.to_dict()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    # the EMA copy differs from the trained weights but is close to them
    diffs = [(p - q).abs().max().item() for p, q in zip(result.model.parameters(), result.ema_model.parameters())]
    assert 0 < max(diffs) < 1.0


def test_every_step_takes_its_thread_share_and_hands_it_back(tiny, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "adapt_threads", lambda: calls.append("adapt") or 1)
    monkeypatch.setattr(train_mod, "release_threads", lambda: calls.append("release"))
    train(tiny(), tmp_path, progress=False)
    assert calls == ["adapt"] * 8 + ["release"]


def test_a_failing_run_still_hands_its_threads_back(tiny, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "release_threads", lambda: calls.append("release"))

    def stop(state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(), tmp_path, progress=False, callback=stop)
    assert calls == ["release"]


def test_baseline_logs_zero_spectral_term(tiny, tmp_path):
    result = train(tiny(steps=2, log_every=1), tmp_path, progress=False)
    assert [line["spectral"] for line in result.history] == [0.0, 0.0]


@pytest.mark.parametrize(("kill_at", "checkpoint_every"), [(4, 4), (6, 4)])
def test_interrupted_and_resumed_run_equals_uninterrupted(tiny, tmp_path, kill_at, checkpoint_every):
    """Train 8 steps; train again, die after step ``kill_at`` (steps after the last checkpoint are lost), resume to
    8: model, EMA and optimizer states must be bit-identical, and so must the loss log."""
    cfg = tiny(regularizer="fourier_amp", checkpoint_every=checkpoint_every)
    full = train(cfg, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill(state):
        if state.step == kill_at:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, tmp_path / "cut", progress=False, callback=kill)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)

    assert resumed.step == full.step == 8
    assert _state_equal(full.model.state_dict(), resumed.model.state_dict())
    assert _state_equal(full.ema_model.state_dict(), resumed.ema_model.state_dict())
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert _state_equal(a["optimizer"]["state"], b["optimizer"]["state"])
    assert a["per_rank"][0]["rng"]["generators"]["noise"].equal(b["per_rank"][0]["rng"]["generators"]["noise"])

    def losses(path):
        return [(line["step"], line["loss"], line["spectral"]) for line in _read_log(path / "log.jsonl")]

    assert losses(tmp_path / "cut") == losses(tmp_path / "full")


def test_resume_extends_a_finished_run(tiny, tmp_path):
    first = train(tiny(steps=4), tmp_path, progress=False)
    again = train(tiny(steps=4), tmp_path, resume=True, progress=False)  # nothing left to do
    assert again.step == 4 and again.history == []
    assert _state_equal(first.model.state_dict(), again.model.state_dict())
    longer = train(tiny(steps=6), tmp_path, resume=True, progress=False)
    assert longer.step == 6 and [line["step"] for line in longer.history] == [6]


def test_existing_checkpoint_without_resume_is_refused(tiny, tmp_path):
    train(tiny(steps=2), tmp_path, progress=False)
    with pytest.raises(FileExistsError, match=r"last\.pt.*resume=True"):
        train(tiny(steps=2), tmp_path, progress=False)


def test_resume_with_a_different_config_is_refused(tiny, tmp_path):
    train(tiny(steps=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume .*lr: checkpoint 0\.001, now 0\.5"):
        train(tiny(steps=4, lr=0.5), tmp_path, resume=True, progress=False)


def test_progress_bar_shows_loss_parts_and_can_be_silenced(tiny, tmp_path, capsys):
    train(tiny(steps=2, log_every=1), tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""
    train(tiny(steps=2, log_every=1), tmp_path / "loud", progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "diffusion=" in err


def test_sample_grids_are_written_periodically(tiny, tmp_path):
    train(tiny(steps=4, sample_every=2), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == [
        "samples_step000002.png", "samples_step000004.png"
    ]


def test_sampling_during_training_does_not_change_training(tiny, tmp_path):
    a = train(tiny(steps=4, sample_every=0), tmp_path / "a", progress=False)
    b = train(tiny(steps=4, sample_every=1), tmp_path / "b", progress=False)
    assert _state_equal(a.model.state_dict(), b.model.state_dict())


def test_callback_sees_every_step(tiny, tmp_path):
    seen = []
    train(tiny(steps=3, log_every=2), tmp_path, progress=False, callback=lambda s: seen.append((s.step, s.log)))
    assert [s for s, _ in seen] == [1, 2, 3]
    assert seen[0][1] is None and seen[1][1]["step"] == 2


def test_non_finite_loss_stops_with_a_clear_error(tiny, tmp_path, monkeypatch):
    def nan_components(config, **kw):
        parts = tiny_components(config, **kw)
        real = parts.loss_fn

        def loss_fn(*args, **kwargs):
            out = real(*args, **kwargs)
            return type(out)(total=out.total * float("nan"), parts=out.parts, x0_hat=out.x0_hat)

        parts.loss_fn = loss_fn
        return parts

    monkeypatch.setattr(train_mod, "build_components", nan_components)
    with pytest.raises(FloatingPointError, match="loss became nan at step 2"):
        train(tiny(steps=4), tmp_path, progress=False)


def test_lr_factor_warmup_then_constant_or_cosine():
    cfg = tiny_config(steps=10, warmup_steps=4)
    assert [lr_factor(s, cfg) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cos = cfg.replace(lr_schedule="cosine")
    assert lr_factor(4, cos) == pytest.approx(1.0)
    assert lr_factor(7, cos) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert lr_factor(10, cos) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0, cfg.replace(warmup_steps=0)) == 1.0


def test_ema_update_matches_closed_form():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, 1)  # d_1 = min(0.9, 2/11)
    d = 2 / 11
    for e, s, p in zip(ema.module.parameters(), start, model.parameters()):
        torch.testing.assert_close(e, d * s + (1 - d) * p)
    assert ema.decay_at(10_000) == 0.9
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_stream_seeds_differ_by_stream_and_rank():
    seeds = {stream_seed(0, s, r) for s in ("data", "noise", "torch") for r in (0, 1)}
    assert len(seeds) == 6 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed(3, "data", 1) == stream_seed(3, "data", 1)


class _Items(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((1, 2, 2), float(i))


def test_dataset_source_order_is_seeded_resumable_and_split_across_ranks():
    ds = _Items(10)
    ids = lambda x: x[:, 0, 0, 0].long().tolist()  # noqa: E731
    src = DatasetSource(ds, seed=3)
    first = [ids(src.sample(4)) for _ in range(5)]  # 20 samples = 2 epochs
    assert sorted(first[0] + first[1] + first[2][:2]) == list(range(10))  # epoch 0 is a permutation
    assert first[0] + first[1] + first[2][:2] == epoch_permutation(10, 3, 0).tolist()
    again = DatasetSource(ds, seed=3)
    again.load_state_dict({"position": 8, "seed": 3, "world_size": 1})
    assert [ids(again.sample(4)) for _ in range(3)] == first[2:]
    ranks = [DatasetSource(ds, seed=3, rank=r, world_size=2) for r in (0, 1)]
    a, b = ids(ranks[0].sample(5)), ids(ranks[1].sample(5))
    assert sorted(a + b) == list(range(10))
    with pytest.raises(ValueError, match="world_size=2"):
        DatasetSource(ds, seed=3).load_state_dict(ranks[0].state_dict())


def test_step_benchmark_rows():
    """The step benchmark times the trainer's own step for each regularizer next to 'none' (tiny case, 1 round)."""
    from spectral_lib.bench.steps import StepCase, format_table, time_training_steps

    case = StepCase("toy", "unet2d", "tiny", (1, 8, 8), 2, model_overrides={"base_channels": 8, "num_groups": 4})
    rows = time_training_steps(case, ["wavelet", "mrstft"], rounds=2, warmup=0)
    assert [r["regularizer"] for r in rows] == ["none", "wavelet"]  # the STFT loss is skipped for images
    assert rows[0]["ratio"] == 1.0 and rows[1]["ratio"] > 0
    assert rows[1]["steps_per_s"] == pytest.approx(1e3 / rows[1]["ms"])
    assert rows[0]["input"] == "2x1x8x8" and "wavelet" in format_table(rows)
    assert rows[0]["clock"] == "cpu"  # on a CPU: the process's CPU time, robust to other programs


# ------------------------------------------------------------------------------------------------ safety


def _nan_from_call(start: int):
    """``build_components`` whose loss turns NaN from its ``start``-th call on (the weights follow one step later)."""
    calls = {"n": 0}

    def components(config, **kw):
        parts = tiny_components(config, **kw)
        real = parts.loss_fn

        def loss_fn(*args, **kwargs):
            calls["n"] += 1
            out = real(*args, **kwargs)
            if calls["n"] >= start:
                out = type(out)(total=out.total * float("nan"), parts=out.parts, x0_hat=out.x0_hat)
            return out

        parts.loss_fn = loss_fn
        return parts

    return components


def test_diverging_run_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    """Checkpoints at steps 3 and 6, log lines at 4 and 8, NaN from step 5: the weights at step 6 must not replace
    the good checkpoint of step 3, and the error must name that one."""
    monkeypatch.setattr(train_mod, "build_components", _nan_from_call(5))
    with pytest.raises(FloatingPointError, match=r"at step 6.*last good checkpoint .*last\.pt' \(step 3\) is kept"):
        train(tiny(steps=8, log_every=4, checkpoint_every=3), tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in (*state["model"].values(), *state["ema"].values()))


def test_divergence_before_any_checkpoint_says_so(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "build_components", _nan_from_call(1))
    with pytest.raises(FloatingPointError, match=r"at step 2.*no checkpoint was written"):
        train(tiny(steps=8, log_every=4, checkpoint_every=2), tmp_path, progress=False)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_resume_with_fewer_steps_than_done_is_refused(tiny, tmp_path):
    """A finished 6-step run resumed with steps=4 would be relabelled: config.json saying 4, weights from 6."""
    train(tiny(steps=6), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"last\.pt.* step 6.*steps=4"):
        train(tiny(steps=4), tmp_path, resume=True, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 6


def test_resume_never_overwrites_a_config_json_that_is_not_a_run(tiny, tmp_path):
    mine = '{"learning_rate": 3, "notes": "my own project"}\n'
    (tmp_path / "config.json").write_text(mine)
    for resume in (True, False):
        with pytest.raises(ValueError, match=r"config\.json.* not the config of a spectral_lib run"):
            train(tiny(steps=2), tmp_path, resume=resume, progress=False)
    assert (tmp_path / "config.json").read_text() == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_config_json_of_another_run_is_not_replaced(tiny, tmp_path):
    """A run killed before its first checkpoint leaves config.json: resuming it with other settings is refused as
    for a checkpoint, and starting again without resume is refused as for an existing run."""
    train(tiny(steps=2, checkpoint_every=0), tmp_path, progress=False)
    (tmp_path / "checkpoints" / "last.pt").unlink()
    with pytest.raises(ValueError, match=r"cannot resume from .*config\.json.*lr: checkpoint 0\.001, now 0\.5"):
        train(tiny(steps=2, lr=0.5), tmp_path, resume=True, progress=False)
    with pytest.raises(FileExistsError, match=r"config\.json.*resume=True"):
        train(tiny(steps=2), tmp_path, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.001


def test_stale_temporary_files_of_a_crashed_save_are_removed(tiny, tmp_path):
    train(tiny(steps=2), tmp_path, progress=False)
    stale = [tmp_path / "checkpoints" / ".last.pt.x1y2z3w4.tmp", tmp_path / ".config.json.abc_1234.tmp",
             tmp_path / "figures" / ".samples.png.q9q9q9q9.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    mine = tmp_path / "checkpoints" / "my_notes.tmp"
    mine.write_text("not ours")
    train(tiny(steps=4), tmp_path, resume=True, progress=False)
    assert not any(p.exists() for p in stale) and mine.exists()


def test_run_killed_before_its_first_checkpoint_resumes_with_a_clean_log(tiny, tmp_path):
    class Killed(Exception):
        pass

    def kill(state):
        if state.step == 4:
            raise Killed

    cfg = tiny(steps=6, log_every=2, checkpoint_every=0)
    with pytest.raises(Killed):
        train(cfg, tmp_path, progress=False, callback=kill)
    assert [line["step"] for line in _read_log(tmp_path / "log.jsonl")] == [2, 4]
    train(cfg, tmp_path, resume=True, progress=False)
    assert [line["step"] for line in _read_log(tmp_path / "log.jsonl")] == [2, 4, 6]


def test_non_finite_conditioning_is_refused_naming_it(tiny, tmp_path, monkeypatch):
    class MelSource:
        shape = (1, 8, 8)

        def sample(self, batch_size, generator=None):
            x = torch.rand(batch_size, 1, 8, 8, generator=generator) * 2 - 1
            return {"x": x, "mel": torch.full((batch_size, 4), float("nan"))}

    def components(config, **kw):
        parts = tiny_components(config, **kw)
        parts.source = MelSource()
        return parts

    monkeypatch.setattr(train_mod, "build_components", components)
    with pytest.raises(ValueError, match=r"cond\['mel'\] .*NaN or infinite"):
        train(tiny(steps=2), tmp_path, progress=False)


def test_out_dir_that_is_a_file_is_a_clear_error(tiny, tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"'.*run' is a file, not a run folder"):
        train(tiny(steps=2), tmp_path / "run", progress=False)


def test_checkpoint_without_the_trainer_entries_is_named(tiny, tmp_path):
    from spectral_lib.experiments.checkpoint import CheckpointError, save_checkpoint

    train(tiny(steps=2), tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    del state["optimizer"], state["per_rank"]
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last\.pt.* lacks .*'optimizer', 'per_rank'"):
        train(tiny(steps=4), tmp_path, resume=True, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    state["model"] = {k: v[..., :1] for k, v in state["model"].items()}
    state["optimizer"], state["per_rank"] = {}, []
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last\.pt.* does not fit the network"):
        train(tiny(steps=4), tmp_path, resume=True, progress=False)


def test_checkpoint_with_damaged_random_states_is_named(tiny, tmp_path):
    from spectral_lib.experiments.checkpoint import CheckpointError, save_checkpoint

    train(tiny(steps=2), tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    state["per_rank"] = [{"rng": {"torch_cpu": "not a state"}}]
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last\.pt.* damaged random states"):
        train(tiny(steps=4), tmp_path, resume=True, progress=False)


def test_a_log_that_is_a_link_is_replaced_not_appended_through(tiny, tmp_path):
    train(tiny(steps=2, checkpoint_every=0), tmp_path / "run", progress=False)
    (tmp_path / "run" / "log.jsonl").unlink()
    (tmp_path / "run" / "log.jsonl").symlink_to(tmp_path / "elsewhere.txt")  # dangling: appending would create it
    train(tiny(steps=4, checkpoint_every=0), tmp_path / "run", resume=True, progress=False)
    assert not (tmp_path / "elsewhere.txt").exists()
    assert not (tmp_path / "run" / "log.jsonl").is_symlink()
    assert [line["step"] for line in _read_log(tmp_path / "run" / "log.jsonl")] == [4]
