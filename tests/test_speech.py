"""The LJSpeech vocoder experiment: profiles, held-out clips, vocoding, metrics, the table, end to end and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pywt
import torch

from spectral_lib.cli import main
from spectral_lib.data.audio import LJSpeechDataset, load_wav, log_mel_spectrogram
from spectral_lib.data.standin import synthesize_speech, write_ljspeech_standin
from spectral_lib.diffusion import DIFFWAVE_FAST_BETAS
from spectral_lib.experiments import get_profile, profiles_for
from spectral_lib.experiments import run as run_mod
from spectral_lib.experiments import sources
from spectral_lib.experiments import speech as sp
from spectral_lib.models import DiffWave, diffwave_preset
from spectral_lib.spectral import fourier_amplitude_loss, wavelet_loss

TINY_STANDIN = {"n_utterances": 6, "seconds": [0.7, 0.9], "seed": 0}  # 2 held-out (LJ001/LJ002), 4 for training
FAST = dict(steps=2, batch_size=2, warmup_steps=1, log_every=1, device="cpu", progress=False,  # clips of 0.5 s:
            data={"standin": TINY_STANDIN, "crop_frames": 4}, sample_kwargs={"clip_frames": 43})  # PESQ needs speech


@pytest.fixture(autouse=True)
def _standin_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    return write_ljspeech_standin(tmp_path_factory.mktemp("lj"), **{**TINY_STANDIN, "seconds": (0.7, 0.9)})


# ------------------------------------------------------------------------------------------------ profiles


def test_profiles_exist_and_validate():
    assert profiles_for("ljspeech") == ("smoke", "cpu", "gpu", "full")
    for name in profiles_for("ljspeech"):
        config = get_profile("ljspeech", name)
        settings = sp.vocoder_eval(config)
        assert settings.inference_betas == DIFFWAVE_FAST_BETAS
        loss = {"loss": "l1"} if name in ("gpu", "full") else {}
        assert config.formulation_kwargs == {"num_steps": 50, "beta_start": 1e-4, "beta_end": 0.05, **loss}
        assert config.sample_every == 0  # the vocoder cannot draw unconditional figures during training
        assert config.data["source"] == "audio" and config.data["split"] == "train"
        assert ("standin" in config.data) == (name in ("smoke", "cpu"))


@pytest.mark.parametrize("name", ["gpu", "full"])
def test_gpu_profiles_follow_the_paper_and_lmnts_recipe(name):
    config = get_profile("ljspeech", name)
    assert config.model == {"name": "diffwave", "preset": "paper", "pretrained": "diffwave-ljspeech"}
    assert (config.batch_size, config.lr, config.data["crop_frames"]) == (16, 2e-4, 62)
    assert config.checkpoint_every > 0  # resumable after a disconnect
    assert config.lambda_spec == pytest.approx(sp.paper_lambda_equivalent("fourier_amp", 1e-4))
    # LMNT's learner: L1 on the noise, float32, Adam at a constant rate, no clipping, no EMA
    assert config.formulation == "ddpm" and config.formulation_kwargs["loss"] == "l1"
    assert (config.amp, config.grad_clip, config.ema_decay) == ("off", 1e9, 0.0)  # LMNT: clip at 1e9, log the norm
    assert (config.lr_schedule, config.warmup_steps, config.weight_decay) == ("constant", 0, 0.0)
    if name == "full":
        assert config.steps == 150_000


def test_adamw_without_weight_decay_is_lmnts_adam():
    """Our trainer's optimizer (AdamW) with weight_decay=0 makes the same updates as LMNT's torch.optim.Adam."""
    g = torch.Generator().manual_seed(0)
    start, grads = torch.randn(5, generator=g), [torch.randn(5, generator=g) for _ in range(4)]
    params = [start.clone().requires_grad_(True), start.clone().requires_grad_(True)]
    optimizers = [torch.optim.AdamW([params[0]], lr=2e-4, weight_decay=0.0), torch.optim.Adam([params[1]], lr=2e-4)]
    for grad in grads:
        for p, opt in zip(params, optimizers, strict=True):
            p.grad = grad.clone()
            opt.step()
    torch.testing.assert_close(params[0], params[1], rtol=0, atol=0)
    assert not torch.equal(params[0], start)


def test_ema_decay_zero_samples_the_trained_weights():
    """ema_decay=0 (gpu/full) means no EMA: after every update the sampled copy equals the trained weights."""
    from spectral_lib.experiments.train import EMA

    model = torch.nn.Linear(3, 2)
    ema = EMA(model, 0.0)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, 1)
    assert torch.equal(ema.module.weight, model.weight) and torch.equal(ema.module.bias, model.bias)


def test_recipe_table_sets_lmnt_beside_our_profiles():
    table = sp.recipe_table("cpu", "gpu")
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    assert set(sp.LMNT_RECIPE) <= set(rows) and table.splitlines()[0].count("|") == 6
    assert rows["diffusion loss"][3].startswith("squared error") and rows["diffusion loss"][4].startswith("L1")
    assert rows["gradient clipping"][3] == "global norm 1" and rows["gradient clipping"][4].startswith("at norm 1e9")
    assert rows["EMA of the weights"][4].startswith("none") and rows["precision"][4] == "float32"
    assert rows["learning rate"][4] == "2e-4, constant, no warm-up"
    assert "15 872 samples" in rows["batch"][4] and rows["steps"][4] == "1500"


def test_sample_kwargs_are_checked():
    config = get_profile("ljspeech", "smoke")
    with pytest.raises(ValueError, match=r"unknown sample_kwargs \['eta'\].*clip_frames"):
        sp.vocoder_eval(config.replace(sample_kwargs={"eta": 0.0}))
    with pytest.raises(ValueError, match="clip_frames must be an integer >= 4"):
        sp.VocoderEval(clip_frames=2)
    with pytest.raises(ValueError, match="fad_embedding"):
        sp.VocoderEval(fad_embedding="pann")
    with pytest.raises(ValueError, match="hf_cutoff_hz must be below the Nyquist"):
        sp.VocoderEval(hf_cutoff_hz=12_000.0)
    with pytest.raises(ValueError, match="inference_betas"):
        sp.VocoderEval(inference_betas=(0.1, 1.5))


# ------------------------------------------------------------------------------------------------ lambda


def test_paper_lambda_fourier_factor_matches_the_literal_sum():
    n = 62 * 256
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 1, n, generator=g).unbind(0)
    ours = fourier_amplitude_loss(a, b).item()
    literal = np.abs(np.abs(np.fft.rfft(a.numpy()[0, 0])) - np.abs(np.fft.rfft(b.numpy()[0, 0]))).sum()
    assert literal / ours == pytest.approx(sp.paper_lambda_equivalent("fourier_amp", 1.0, n), rel=1e-2)
    mean_over_bins = literal / (n // 2 + 1)
    assert mean_over_bins / ours == pytest.approx(sp.paper_lambda_equivalent("fourier_amp", 1.0, n, reading="mean"),
                                                  rel=1e-2)
    assert sp.paper_lambda_equivalent("fourier_amp", 1e-4) == pytest.approx(100.0, rel=1e-3)


def test_paper_lambda_wavelet_factor_matches_the_literal_sum():
    n = 62 * 256
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 1, 1, n, generator=g).unbind(0)
    ours = wavelet_loss(a, b, wavelet="haar", levels=3).item()
    coeffs = pywt.wavedec((a - b).numpy()[0, 0].astype(np.float64), "haar", level=3, mode="reflect")
    literal = sum(np.abs(c).sum() for c in coeffs)
    assert literal / ours == pytest.approx(sp.paper_lambda_equivalent("wavelet", 1.0, n), rel=0.05)


def test_lambda_table():
    assert sp.lambda_for("none", "cpu") == 0.0
    assert sp.lambda_for("fourier_amp", "cpu") == get_profile("ljspeech", "cpu").lambda_spec
    assert sp.lambda_for("wavelet", "gpu") == pytest.approx(1e-4 * 62 * 256 / 4)
    assert sp.lambda_for("wavelet", "full", paper_lambda=1e-6) == pytest.approx(1e-6 * 62 * 256 / 4)
    assert sp.PAPER_LAMBDAS == (1e-4, 1e-5, 1e-6) and "mrstft" not in sp.PAPER_REGULARIZERS
    assert set(sp.LAMBDAS["gpu"]) == set(sp.PAPER_REGULARIZERS) | set(sp.BEYOND_PAPER)
    with pytest.raises(ValueError, match="paper_lambda applies to the paper's regularizers"):
        sp.lambda_for("wavelet", "cpu", paper_lambda=1e-5)
    with pytest.raises(ValueError, match="paper_lambda applies"):
        sp.lambda_for("mrstft", "gpu", paper_lambda=1e-5)
    with pytest.raises(ValueError, match="profile for experiment 'ljspeech'"):
        sp.lambda_for("wavelet", "laptop")
    with pytest.raises(ValueError, match="not in the paper|paper's variants"):
        sp.paper_lambda_equivalent("mrstft", 1e-4)
    assert sp.paper_lambda_equivalent("none", 1e-4) == 0.0


# ------------------------------------------------------------------------------------------------ held-out clips


def test_heldout_clips_are_the_first_frames_of_the_eval_utterances(standin_dir):
    config = get_profile("ljspeech", "smoke").replace(data_dir=str(standin_dir), sample_kwargs={"clip_frames": 30})
    audio, mel, ids = sp.heldout_clips(config, 5)
    assert ids == ["LJ001-0001", "LJ002-0001"]  # the stand-in's held-out chapters, in metadata order
    assert audio.shape == (2, 1, 30 * 256) and mel.shape == (2, 80, 30)
    for i, uid in enumerate(ids):
        wave = load_wav(standin_dir / "wavs" / f"{uid}.wav")
        np.testing.assert_array_equal(audio[i, 0].numpy(), wave[: 30 * 256])
        whole = log_mel_spectrogram(torch.from_numpy(wave))
        torch.testing.assert_close(mel[i], whole[:, :30], rtol=1e-4, atol=1e-4)
    assert torch.equal(sp.heldout_reference(config, 1), audio[:1])
    with pytest.raises(ValueError, match="at least clip_frames=200 frames"):
        sp.heldout_clips(config.replace(sample_kwargs={"clip_frames": 200}), 2)
    with pytest.raises(ValueError, match="needs LJSpeech: pass data_dir"):
        sp.heldout_clips(get_profile("ljspeech", "gpu"), 2)


def test_standin_is_written_once_and_data_dir_wins(standin_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path))
    first, options = sources.resolve_data_dir({"source": "audio", "split": "eval", "standin": TINY_STANDIN}, None)
    assert options == {"split": "eval"} and first.parent == tmp_path / "standins"
    assert len(LJSpeechDataset(first, "all")) == 6 and json.loads((first / "standin.json").read_text())["seed"] == 0

    def fail(*args, **kwargs):
        raise AssertionError("a cached stand-in must not be written again")

    monkeypatch.setattr("spectral_lib.data.standin.write_ljspeech_standin", fail)
    again, _ = sources.resolve_data_dir({"source": "audio", "standin": TINY_STANDIN}, None)
    assert again == first
    given, _ = sources.resolve_data_dir({"source": "audio", "standin": TINY_STANDIN}, standin_dir)
    assert given == standin_dir
    with pytest.raises(ValueError, match="only available for the sources"):
        sources.resolve_data_dir({"source": "checkerboard", "standin": {}}, None)


# ------------------------------------------------------------------------------------------------ vocoding


def test_vocode_shapes_range_and_seed():
    torch.manual_seed(0)
    model = DiffWave(diffwave_preset("tiny", n_mels=80))
    torch.nn.init.normal_(model.output_projection.weight, std=0.5)  # a network that predicts something
    mel = torch.rand(3, 80, 5)
    a = sp.vocode(model, mel, generator=torch.Generator().manual_seed(4), batch_size=2)
    b = sp.vocode(model, mel, generator=torch.Generator().manual_seed(4), batch_size=2)
    assert a.shape == (3, 1, 5 * 256) and a.dtype == torch.float32
    assert torch.equal(a, b) and a.abs().max() <= 1.0 and a.std() > 0
    assert sp.vocode(model, mel[0], generator=torch.Generator().manual_seed(4)).shape == (1, 1, 1280)
    with pytest.raises(ValueError, match=r"mel must be \(B, n_mels, frames\)"):
        sp.vocode(model, torch.rand(80))
    config = get_profile("ljspeech", "smoke")
    with pytest.raises(ValueError, match="6-step inference schedule.*steps=50"):
        sp.vocode_heldout(model, None, config, n=1, steps=50, seed=0, device="cpu")


# ------------------------------------------------------------------------------------------------ metrics


@pytest.fixture(scope="module")
def speech_clips():
    clips = [synthesize_speech(0.75, 22050, rng=k)[0][: 64 * 256] for k in range(3)]
    return torch.from_numpy(np.stack(clips)).unsqueeze(1)


def test_metrics_of_a_perfect_vocoder(speech_clips):
    config = get_profile("ljspeech", "smoke")
    m = sp.evaluate_vocoder(speech_clips, speech_clips.clone(), config)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-6)
    assert m["fd_logmel"] == pytest.approx(0.0, abs=1e-3)
    frames = 1 + (int(np.ceil(64 * 256 * 16000 / 22050)) - 400) // 160  # 25 ms windows every 10 ms at 16 kHz
    assert m["ndb"] == 0.0 and m["ndb_k"] == sp.ndb_bins(3 * frames) == 10
    assert m["pesq"] > 4.4  # P.862.2's maximum is 4.64
    assert m["hf_energy_ratio"] == pytest.approx(1.0) and m["spectral_distance"] == pytest.approx(0.0, abs=1e-9)
    assert m["n_clips"] == 3 and m["clip_seconds"] == pytest.approx(64 * 256 / 22050)
    assert "utmos" not in m and "fad_vggish" not in m  # offline: neither is available at this profile


def test_metrics_see_a_muffled_vocoder(speech_clips):
    config = get_profile("ljspeech", "smoke")
    spectrum = torch.fft.rfft(speech_clips)
    freqs = torch.fft.rfftfreq(speech_clips.shape[-1], d=1 / 22050)
    muffled = torch.fft.irfft(spectrum * (freqs < 2000), n=speech_clips.shape[-1])  # everything above 2 kHz gone
    m = sp.evaluate_vocoder(muffled, speech_clips, config)
    assert m["hf_energy"] < 1e-6 < m["hf_energy_data"] and m["hf_energy_ratio"] < 1e-3
    assert m["mrstft"] > 0.5 and m["fd_logmel"] > 1.0 and m["pesq"] < 4.4
    with pytest.raises(ValueError, match="paired clips of one shape"):
        sp.evaluate_vocoder(muffled[:2], speech_clips, config)


def test_silent_output_gives_nan_pesq_with_a_warning(speech_clips):
    config = get_profile("ljspeech", "smoke")
    with pytest.warns(UserWarning, match="PESQ not computed"):
        m = sp.evaluate_vocoder(torch.zeros_like(speech_clips), speech_clips, config)
    assert np.isnan(m["pesq"]) and m["hf_energy"] == 0.0


def test_vggish_requested_offline_fails_clearly_and_auto_warns(speech_clips):
    config = get_profile("ljspeech", "smoke")
    with pytest.raises(ImportError, match="frechet_audio_distance"):
        sp.evaluate_vocoder(speech_clips, speech_clips, config.replace(sample_kwargs={"fad_embedding": "vggish"}))
    with pytest.warns(UserWarning, match="FAD \\(VGGish\\) not computed"):
        m = sp.evaluate_vocoder(speech_clips, speech_clips, config.replace(sample_kwargs={"fad_embedding": "auto"}))
    assert "fd_logmel" in m and "fad_vggish" not in m


def test_ndb_bins_rule():
    assert sp.ndb_bins(10) == 2 and sp.ndb_bins(400) == 20 and sp.ndb_bins(10**6) == 100
    assert sp.ndb_bins(10**6, max_k=50) == 50


def test_results_table_and_description():
    ours = {"Baseline": {"mrstft": 1.5, "pesq": 2.0, "fd_logmel": 10.0, "ndb": 0.5, "hf_energy_ratio": 0.8},
            "AMP (λ=1)": {"mrstft": (1.25, 0.05), "pesq": 2.5, "fad_vggish": 3.0, "ndb": 0.4, "utmos": 3.5}}
    table = sp.results_table(ours)
    lines = table.splitlines()
    assert lines[0] == "| metric | paper: baseline | paper: best (variant, λ) | Baseline | AMP (λ=1) |"
    assert "| FAD ↓ | 1.994 | 1.462 (AMP, λ=1e-4) | 10.000 (FD local) | 3.000 |" in lines
    assert "| UTMOS ↑ | 3.941 | 3.988 (AMP+PHASE, λ=1e-5) | n/a | 3.500 |" in lines
    assert "| MR-STFT ↓ | 1.217 | 1.1708 (HAAR, λ=1e-4) | 1.500 | 1.250 ± 0.050 |" in lines
    assert lines[-1] == "| HF energy ratio (ours) | – | – | 0.800 | n/a |"
    assert sp.mean_std([{"a": 1.0, "b": 2.0}, {"a": 3.0}]) == {"a": (2.0, pytest.approx(2**0.5))}
    text = sp.describe_metrics(get_profile("ljspeech", "cpu"))
    for needle in ("129 mel frames", "P.862.2", "not* FAD", "k = min(100", "UTMOS** (higher, 1 to 5): not computed",
                   "above 4 kHz", "[512, 1024, 2048]"):
        assert needle in text, needle


# ------------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "amp"
    return run_mod.run_experiment("ljspeech", profile="smoke", regularizer="fourier_amp", lambda_spec=1.0, out=out,
                                  **FAST)


def test_smoke_run_end_to_end(smoke_run):
    out = smoke_run.out_dir
    for name in ("config.json", "metrics.json", "samples.pt", "checkpoints/last.pt", "figures/samples.png",
                 "figures/spectrogram.png", "figures/radial_spectrum.png"):
        assert (out / name).is_file(), name
    assert smoke_run.samples.shape == (2, 1, 43 * 256)  # the two held-out stand-in utterances, vocoded
    assert smoke_run.samples.abs().max() <= 1.0
    for key in ("mrstft", "pesq", "fd_logmel", "ndb", "hf_energy_ratio", "train_time_s", "wall_time_s"):
        assert key in smoke_run.metrics, key
    assert smoke_run.history[-1]["fourier_amp"] > 0  # the spectral term was on
    reference = run_mod.reference_data(smoke_run.config, 2)
    assert torch.equal(reference, sp.heldout_clips(smoke_run.config, 2)[0])  # paired with the samples


def test_lmnt_recipe_trains_with_l1_no_ema_and_a_logged_gradient_norm(tmp_path):
    """The gpu/full recipe on the tiny vocoder: L1 loss, clipping at 1e9 (norm logged), no EMA (sampled = trained)."""
    from spectral_lib.experiments.checkpoint import load_checkpoint

    recipe = {k: getattr(get_profile("ljspeech", "gpu"), k) for k in ("formulation_kwargs", "grad_clip", "ema_decay",
                                                                       "amp", "lr", "lr_schedule", "weight_decay")}
    result = run_mod.run_experiment("ljspeech", profile="smoke", regularizer="fourier_amp", lambda_spec=1.0,
                                    out=tmp_path / "lmnt", **{**FAST, "warmup_steps": 0, "checkpoint_every": 1},
                                    **recipe)
    assert result.config.formulation_kwargs["loss"] == "l1" and result.config.grad_clip == 1e9
    assert all(line["grad_norm"] > 0 for line in result.history)  # LMNT logs the norm; clipping never bites
    state = load_checkpoint(tmp_path / "lmnt" / "checkpoints" / "last.pt")
    for name, value in state["model"].items():
        assert torch.equal(state["ema"][name], value), name


def test_smoke_run_is_a_cache_and_resamples_identically(smoke_run):
    again = run_mod.run_experiment("ljspeech", profile="smoke", regularizer="fourier_amp", lambda_spec=1.0,
                                   out=smoke_run.out_dir, resume=True, **FAST)
    assert again.cached and json.dumps(again.metrics) == json.dumps(smoke_run.metrics)  # NaN-safe comparison
    assert torch.equal(run_mod.sample_run(smoke_run.out_dir), smoke_run.samples)


def test_cli_trains_on_a_data_dir(standin_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--experiment", "ljspeech", "--profile", "smoke", "--regularizer", "mrstft",
                 "--lambda-spec", "0.05", "--data-dir", str(standin_dir), "--out", str(out), "--steps", "1",
                 "--batch-size", "2", "--no-progress", "--set", "warmup_steps=0",
                 "--set", "sample_kwargs.clip_frames=43"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert '"mrstft"' in printed and '"pesq"' in printed
    config = json.loads((out / "config.json").read_text())
    assert config["data_dir"] == str(standin_dir) and config["experiment"] == "ljspeech"
    assert torch.load(out / "samples.pt", weights_only=True).shape == (2, 1, 43 * 256)


def test_cli_without_data_at_gpu_profile_says_what_is_missing(tmp_path, capsys):
    code = main(["train", "--experiment", "ljspeech", "--profile", "gpu", "--out", str(tmp_path / "g"),
                 "--no-progress"])
    assert code == 2
    assert "needs data_dir" in capsys.readouterr().err


def test_shipped_loss_comparison_matches_the_cpu_profile(tmp_path):
    """The chapter's L1-vs-squared-error table is shipped; it must still be the current cpu profile's (or fail)."""
    data = sp.loss_comparison()
    assert set(data["metrics"]) == {"l1", "l2"} and "run_loss_comparison" in data["command"]
    assert data["configs"]["l1"]["formulation_kwargs"]["loss"] == "l1"
    for metrics in data["metrics"].values():
        assert {"mrstft", "pesq", "fd_logmel", "ndb", "hf_energy_ratio"} <= set(metrics)
    stale = json.loads(json.dumps(data))
    stale["configs"]["l2"]["lr"] = 1e-3
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(ValueError, match=r"l2 run's configuration differs from the current cpu profile in \['lr'\]"):
        sp.loss_comparison(str(path))
