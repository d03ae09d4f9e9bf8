"""Run folders end to end with the real stack (tiny UNet, 16x16 checkerboards, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spectral_lib.experiments import run as run_mod
from spectral_lib.experiments import train as train_mod
from spectral_lib.experiments.run import evaluate_run, load_run, run_experiment, sample_run

TINY = dict(
    profile="smoke", data={"size": 16}, steps=4, batch_size=4, warmup_steps=2, log_every=2, n_samples=6,
    sample_batch_size=4, sample_steps=3, grid_samples=4, progress=False, device="cpu",
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "wavelet"
    result = run_experiment("checkerboard", regularizer="wavelet", formulation="ddim", out=out, **TINY)
    return result


def test_run_folder_layout_and_contents(finished):
    out = finished.out_dir
    for name in ("config.json", "metrics.json", "samples.pt", "log.jsonl", "checkpoints/last.pt",
                 "figures/samples.png", "figures/radial_spectrum.png"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp"))
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == (6, 1, 16, 16) and samples.dtype == torch.float32
    assert samples.min() >= -1 and samples.max() <= 1
    assert torch.equal(samples, finished.samples)
    config = json.loads((out / "config.json").read_text())
    assert config["regularizer"] == "wavelet" and config["formulation"] == "ddim" and config["data"]["size"] == 16
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == finished.metrics
    for key in ("spectral_distance", "hf_energy_ratio", "binary_share", "contrast", "ideal_mae", "train_time_s",
                "sample_time_s", "wall_time_s", "final_loss"):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN
    assert metrics["wall_time_s"] >= metrics["train_time_s"] + metrics["sample_time_s"]
    assert finished.wall_time == metrics["wall_time_s"] and not finished.cached
    assert [line["step"] for line in finished.history] == [2, 4]
    assert set(finished.figures) == {"samples", "radial_spectrum"}


def test_finished_run_is_a_cache(finished, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(train_mod, "train", no_training)
    again = run_experiment("checkerboard", regularizer="wavelet", formulation="ddim", out=finished.out_dir,
                           resume=True, **{**TINY, "log_every": 1})  # log_every does not change the result
    assert again.cached and torch.equal(again.samples, finished.samples) and again.metrics == finished.metrics
    assert load_run(finished.out_dir).metrics == finished.metrics


def test_existing_run_needs_resume_or_overwrite(finished):
    with pytest.raises(FileExistsError, match="already holds a run.*resume=True"):
        run_experiment("checkerboard", regularizer="wavelet", formulation="ddim", out=finished.out_dir, **TINY)


def test_sample_run_reproduces_samples_and_evaluate_run_the_metrics(finished):
    again = sample_run(finished.out_dir)
    assert torch.equal(again, finished.samples)
    other = sample_run(finished.out_dir, n=2, steps=2, seed=123)
    assert other.shape == (2, 1, 16, 16) and not torch.equal(other, again[:2])
    metrics = evaluate_run(finished.out_dir, write=False)
    for key, value in metrics.items():
        assert value == pytest.approx(finished.metrics[key]), key


def test_resume_with_more_steps_continues_and_overwrite_restarts(tmp_path):
    out = tmp_path / "base"
    first = run_experiment("checkerboard", formulation="edm", out=out, **TINY)
    assert first.config.regularizer == "none" and first.metrics["steps"] == 4
    longer = run_experiment("checkerboard", formulation="edm", out=out, resume=True, **{**TINY, "steps": 6})
    assert not longer.cached and longer.metrics["steps"] == 6
    assert [line["step"] for line in longer.history] == [2, 4, 6]
    fresh = run_experiment("checkerboard", formulation="edm", out=out, overwrite=True, **TINY)
    assert [line["step"] for line in fresh.history] == [2, 4]


def test_unknown_names_are_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown regularizer 'fourier'; valid: 'none', .*'wavelet'"):
        run_experiment("checkerboard", regularizer="fourier", out=tmp_path / "x", **TINY)
    with pytest.raises(ValueError, match=r"unknown formulation 'sde'; valid: 'ddpm', 'ddim', 'edm'"):
        run_experiment("checkerboard", formulation="sde", out=tmp_path / "x", **TINY)
    with pytest.raises(ValueError, match=r"unknown config key 'stepz'"):
        run_experiment("checkerboard", out=tmp_path / "x", stepz=3, **TINY)
    assert not (tmp_path / "x").exists()


def test_ddpm_sampling_respaces_below_T_and_runs_every_step_otherwise():
    from spectral_lib.diffusion import DDIM, make_formulation

    ddpm = make_formulation("ddpm", num_steps=6)

    calls = []

    def model(x, noise_cond):
        calls.append(float(noise_cond[0]))
        return torch.zeros_like(x)

    def draw(steps, formulation=ddpm):
        g = torch.Generator().manual_seed(0)
        return train_mod.draw_samples(formulation, model, (2, 1, 4, 4), steps=steps, generator=g, device="cpu")

    full = draw(None)
    assert calls == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]  # all T steps, as Ho et al.
    assert torch.equal(full, draw(6))
    calls.clear()
    respaced = draw(3)
    assert len(calls) == 3
    expected = DDIM(eta=1.0, num_steps=6).sample(model, (2, 1, 4, 4), steps=3,
                                                 generator=torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(respaced, expected)


def test_default_run_dir(monkeypatch, tmp_path):
    from spectral_lib.experiments.profiles import get_profile

    monkeypatch.setenv("SPECTRAL_RUNS_DIR", str(tmp_path))
    cfg = get_profile("checkerboard", "cpu").replace(regularizer="wavelet", formulation="edm", seed=3)
    assert run_mod.default_run_dir(cfg) == tmp_path / "checkerboard-cpu-edm-wavelet-seed3"


def test_cache_with_an_unresumable_change_is_refused_and_keeps_the_result(finished):
    with pytest.raises(ValueError, match=r"cannot resume .*lr: checkpoint 0\.001, now 0\.5"):
        run_experiment("checkerboard", regularizer="wavelet", formulation="ddim", out=finished.out_dir,
                       resume=True, **{**TINY, "lr": 0.5})
    assert (finished.out_dir / "metrics.json").exists()


# ------------------------------------------------------------------------------------------------ safety


def _user_folder(root):
    """A folder of someone's own project that happens to use the names of a run's entries."""
    (root / "figures").mkdir(parents=True)
    (root / "figures" / "plot.png").write_bytes(b"my plot")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "model.ckpt").write_bytes(b"my weights")
    (root / "config.json").write_text('{"batch": 32}\n')
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("flag", ["overwrite", "resume"])
def test_overwrite_or_resume_never_touch_a_folder_that_is_not_a_run(tmp_path, flag):
    before = _user_folder(tmp_path / "mine")
    with pytest.raises(ValueError, match=r"config\.json.* not the config of a spectral_lib run"):
        run_experiment("checkerboard", out=tmp_path / "mine", **{flag: True}, **TINY)
    (tmp_path / "mine" / "config.json").unlink()
    del before[tmp_path / "mine" / "config.json"]
    with pytest.raises(FileExistsError, match=r"checkpoints, figures but is not a spectral_lib run folder"):
        run_experiment("checkerboard", out=tmp_path / "mine", **{flag: True}, **TINY)
    assert {p: p.read_bytes() for p in (tmp_path / "mine").rglob("*") if p.is_file()} == before


def _copy(finished, tmp_path):
    import shutil

    return Path(shutil.copytree(finished.out_dir, tmp_path / "copy"))


def test_overwrite_removes_the_run_and_only_the_run(finished, tmp_path):
    out = _copy(finished, tmp_path)
    (out / "notes.txt").write_text("mine")
    run_mod.RESULT_FILES.append("cached_result.json")
    try:
        (out / "cached_result.json").write_text("{}")
        run_experiment("checkerboard", out=out, overwrite=True, **{**TINY, "steps": 2, "n_samples": 2})
    finally:
        run_mod.RESULT_FILES.remove("cached_result.json")
    assert (out / "notes.txt").read_text() == "mine" and not (out / "cached_result.json").exists()
    assert torch.load(out / "samples.pt", weights_only=True).shape[0] == 2
    assert json.loads((out / "config.json").read_text())["regularizer"] == "none"


def test_resuming_a_finished_run_with_fewer_steps_is_refused_and_keeps_it(finished, tmp_path):
    out = _copy(finished, tmp_path)
    with pytest.raises(ValueError, match=r"4 steps.*steps=2"):
        run_experiment("checkerboard", regularizer="wavelet", formulation="ddim", out=out, resume=True,
                       **{**TINY, "steps": 2})
    assert json.loads((out / "config.json").read_text())["steps"] == 4
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4


def test_out_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"'.*f' is a file, not a run folder"):
        run_experiment("checkerboard", out=tmp_path / "f", **TINY)
    with pytest.raises(NotADirectoryError, match=r"is inside the file"):
        run_experiment("checkerboard", out=tmp_path / "f" / "run", **TINY)


def test_corrupt_samples_pt_is_named_without_advice_to_unpickle(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished.out_dir, copy)
    (copy / "samples.pt").write_bytes(b"PK\x03\x04 not a tensor file")
    with pytest.raises(ValueError, match=r"samples\.pt.* cannot be read") as info:
        evaluate_run(copy, write=False)
    assert "weights_only" not in str(info.value)
    torch.save({"not": "a tensor"}, copy / "samples.pt")
    with pytest.raises(ValueError, match=r"samples\.pt.* holds a dict, not a tensor of samples"):
        evaluate_run(copy, write=False)


def test_a_damaged_log_line_does_not_break_reading_the_run(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished.out_dir, copy)
    with open(copy / "log.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 0.1')  # a line cut by a crash
    with pytest.warns(UserWarning, match=r"log\.jsonl.*line 3"):
        result = load_run(copy)
    assert [line["step"] for line in result.history] == [2, 4]


def test_sample_run_refuses_a_checkpoint_that_does_not_fit(finished, tmp_path):
    import shutil

    from spectral_lib.experiments.checkpoint import CheckpointError, save_checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(finished.out_dir, copy)
    state = torch.load(copy / "checkpoints" / "last.pt", weights_only=True)
    del state["ema"]
    save_checkpoint(copy / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last\.pt.* lacks 'ema'"):
        sample_run(copy, n=1, steps=1)
    state["ema"] = {k: v[..., :1] for k, v in state["model"].items()}
    save_checkpoint(copy / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"last\.pt.* does not fit the network"):
        sample_run(copy, n=1, steps=1)
    state["ema"], state["sample_shape"] = state["model"], [10**9, 1]
    save_checkpoint(copy / "checkpoints" / "last.pt", state)
    with pytest.raises(CheckpointError, match=r"sample_shape"):
        sample_run(copy, n=1, steps=1)


def test_a_foreign_checkpoints_last_pt_does_not_make_a_folder_a_run(tmp_path):
    (tmp_path / "theirs" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "theirs" / "checkpoints" / "last.pt")
    with pytest.raises(FileExistsError, match="not a spectral_lib run folder"):
        run_experiment("checkerboard", out=tmp_path / "theirs", overwrite=True, **TINY)
    assert (tmp_path / "theirs" / "checkpoints" / "last.pt").exists()


def test_a_run_whose_config_json_was_lost_is_still_recognised_by_its_checkpoint(finished, tmp_path):
    out = _copy(finished, tmp_path)
    (out / "config.json").unlink()
    assert run_mod.run_folder.is_run(out)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_experiment("checkerboard", out=out, **TINY)
