"""Chapter 8's modules: its runs as shipped results (speech_runs), its tables and quoted numbers (speech_report),
its figures (plotting.audio) and the spectrum and envelope measures they use (speech_metrics)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from spectral_lib.experiments import profiles
from spectral_lib.experiments import speech as sp
from spectral_lib.experiments import speech_report as report
from spectral_lib.experiments import speech_runs as chapter
from spectral_lib.experiments.shipped import Shipped, ShippedResults, stale_entries
from spectral_lib.plotting import audio as figures
from spectral_lib.plotting.core import BookFigure

TINY = dict(steps=2, batch_size=2, warmup_steps=1, log_every=1, n_samples=2, sample_batch_size=2,
            data={"standin": {"n_utterances": 6, "seconds": [0.7, 0.9], "seed": 0}, "crop_frames": 4},
            sample_kwargs={"clip_frames": 43})
"""A cpu profile small enough for a unit test (two steps, two held-out clips of 0.5 s)."""
SPECS = {"baseline": chapter.RunSpec(), "amp": chapter.RunSpec("fourier_amp")}


@pytest.fixture(autouse=True)
def _standin_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path_factory.getbasetemp() / "data"))


@pytest.fixture
def tiny_cpu(monkeypatch):
    """The ljspeech cpu profile shrunk to seconds, for the shipped round trip."""
    cpu = profiles.REGISTRY["ljspeech"]["cpu"]
    monkeypatch.setitem(profiles.REGISTRY["ljspeech"], "cpu", cpu.replace(**TINY))
    return profiles.REGISTRY["ljspeech"]["cpu"]


# ------------------------------------------------------------------------------------------------ names, configs


def test_run_names_labels_and_configs():
    amp, l1 = chapter.RunSpec("fourier_amp"), chapter.RunSpec(loss="l1")
    assert chapter.run_name("cpu", amp) == "fourier_amp-seed0" and chapter.run_name("cpu", l1) == "none-l1-seed0"
    assert chapter.run_name("cpu", amp, 1e-5) == "fourier_amp-seed0"  # paper_lambda means nothing offline
    assert chapter.run_name("gpu", amp, 1e-5) == "fourier_amp-lam1e-05-seed0"
    assert chapter.run_name("gpu", chapter.RunSpec("mrstft"), 1e-5) == "mrstft-seed0"  # not one of the paper's
    assert chapter.run_label("cpu", amp) == "AMP (λ=0.5)"
    assert chapter.run_label("gpu", amp, 1e-5) == "AMP (λ_paper=1e-05)"
    assert chapter.run_label("cpu", l1) == "Baseline, L1 loss (LMNT's)"
    assert chapter.run_label("cpu", chapter.RunSpec("mrstft")) == "MR-STFT loss (λ=0.001, beyond the paper)"

    config = chapter.run_config("cpu", chapter.RunSpec("wavelet", seed=3))
    assert (config.regularizer, config.seed, config.lambda_spec) == ("wavelet", 3, sp.lambda_for("wavelet", "cpu"))
    assert config.formulation_kwargs == sp.DIFFWAVE_SCHEDULE  # the cpu profile's squared error
    assert chapter.run_config("cpu", l1).formulation_kwargs == {**sp.DIFFWAVE_SCHEDULE, "loss": "l1"}
    assert chapter.run_config("cpu", chapter.RunSpec()).lambda_spec == 0.0
    gpu = chapter.run_config("gpu", amp, paper_lambda=1e-6, data_dir="/data/LJSpeech-1.1")
    assert gpu.lambda_spec == pytest.approx(sp.paper_lambda_equivalent("fourier_amp", 1e-6))
    assert gpu.data_dir == "/data/LJSpeech-1.1" and gpu.formulation_kwargs["loss"] == "l1"
    assert chapter.page_data_dir("cpu", None) is None and chapter.page_data_dir("gpu", "/x") == "/x"


def test_bad_choices_say_what_to_do():
    with pytest.raises(ValueError, match="regularizer must be one of"):
        chapter.RunSpec("fourier")
    with pytest.raises(ValueError, match="seed must be an integer"):
        chapter.RunSpec(seed=-1)
    with pytest.raises(ValueError, match="loss must be"):
        chapter.RunSpec(loss="huber")
    with pytest.raises(ValueError, match="not the paper's.*put them in beyond_paper"):
        chapter.check_choices(("wavelet", "mrstft"), ())
    with pytest.raises(ValueError, match="beyond_paper holds \\['wavelet'\\]"):
        chapter.check_choices(("wavelet",), ("wavelet",))
    chapter.check_choices(sp.PAPER_REGULARIZERS, sp.BEYOND_PAPER)


# ------------------------------------------------------------------------------------------------ spectrum, envelope


def test_band_power_spectrum_against_a_direct_sum():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((3, 1, 1000))
    freqs, power = sp.band_power_spectrum(waves, 8000, n_bands=10)
    # by hand: |DFT|^2 / T per bin from the definition, bins 1..500 (DC out), 50 bins per band
    t = np.arange(1000)
    dft = np.array([[np.abs(np.sum(w[0] * np.exp(-2j * np.pi * k * t / 1000))) ** 2 / 1000 for k in range(501)]
                    for w in waves]).mean(0)
    bands = [dft[1:50].mean()] + [dft[50 * i: 50 * (i + 1)].mean() for i in range(1, 9)] + [dft[450:501].mean()]
    np.testing.assert_allclose(power, bands, rtol=1e-9)
    np.testing.assert_allclose(freqs, (np.arange(10) + 0.5) * 400)
    sine = np.sin(2 * np.pi * 1000 * np.arange(4000) / 8000)[None]  # 1 kHz at 8 kHz: band 2 of 8 (500 Hz each)
    assert int(np.argmax(sp.band_power_spectrum(sine, 8000, n_bands=8)[1])) == 2
    with pytest.raises(ValueError, match="n_bands must be between 1 and T // 2"):
        sp.band_power_spectrum(sine[:, :10], 8000, n_bands=8)


def test_envelope_correlation():
    rng = np.random.default_rng(1)
    envelope = np.repeat(np.abs(np.sin(np.linspace(0, 6, 20))) + 0.01, 256)
    clips = envelope * rng.standard_normal((2, envelope.size))
    assert sp.envelope_correlation(clips, clips) == pytest.approx(1.0)
    assert sp.envelope_correlation(0.1 * clips, clips) == pytest.approx(1.0)  # any gain
    flat = rng.standard_normal(clips.shape)
    assert abs(sp.envelope_correlation(flat, clips)) < 0.5
    inverted = (envelope.max() + 0.02 - envelope) * rng.standard_normal(clips.shape)  # loud in the pauses
    assert sp.envelope_correlation(inverted, clips) < -0.5
    assert math.isnan(sp.envelope_correlation(np.zeros_like(clips), clips))  # constant level: undefined
    with pytest.raises(ValueError, match="paired clips"):
        sp.envelope_correlation(clips[:1], clips)
    with pytest.raises(ValueError, match="NaN"):
        sp.envelope_correlation(clips * np.nan, clips)


# ------------------------------------------------------------------------------------------------ shipped round trip


def _forbid_training(monkeypatch):
    from spectral_lib.experiments import run as run_mod

    monkeypatch.setattr(run_mod, "run_experiment", lambda *a, **k: pytest.fail("a shipped run was trained again"))


def test_cpu_runs_are_shipped_compact_and_read_back_at_every_profile(tiny_cpu, tmp_path, notes, monkeypatch):
    switch = ShippedResults(chapter.CHAPTER, "cpu", root=tmp_path)
    trained = chapter.cpu_results(switch, runs_root=tmp_path / "runs", specs=SPECS)
    assert not any(run.shipped for run in trained.values()) and switch.computed == ["none-seed0", "fourier_amp-seed0"]
    folder = tmp_path / "cpu" / chapter.CHAPTER / "fourier_amp-seed0"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "log.jsonl", "metrics.json", "samples.npz",
                                                          chapter.SUMMARY]
    with np.load(folder / "samples.npz") as data:  # only the clip the page plays, in float16
        assert data["samples"].shape == (chapter.SHOWN_CLIPS, 1, 43 * 256) and data["samples"].dtype == np.float16
    summary = json.loads((folder / chapter.SUMMARY).read_text())
    assert len(summary["spectrum"]["power"]) == sp.SPECTRUM_BANDS and len(summary["clip_ids"]) == 2
    assert trained["amp"].history[-1]["fourier_amp"] > 0 and trained["amp"].metrics["n_clips"] == 2

    _forbid_training(monkeypatch)
    again = chapter.cpu_results(ShippedResults(chapter.CHAPTER, "cpu", root=tmp_path), runs_root=tmp_path / "x",
                                specs=SPECS)
    elsewhere = chapter.cpu_results(ShippedResults(chapter.CHAPTER, "smoke", root=tmp_path), runs_root="unused",
                                    specs=SPECS)
    for runs in (again, elsewhere):
        assert all(run.shipped for run in runs.values())
        assert runs["amp"].metrics == trained["amp"].metrics and runs["amp"].summary == trained["amp"].summary
        torch.testing.assert_close(runs["amp"].samples, trained["amp"].samples, atol=1e-3, rtol=0)
    assert notes.count("Training: no shipped result yet") == 2 and "Shipped results" in notes

    # the profile changes: the shipped runs are stale, the other profiles stop quoting them, the repository test sees it
    monkeypatch.setitem(profiles.REGISTRY["ljspeech"], "cpu", tiny_cpu.replace(batch_size=3))
    assert chapter.cpu_results(ShippedResults(chapter.CHAPTER, "gpu", root=tmp_path), runs_root="unused",
                               specs=SPECS) is None
    assert set(stale_entries(tmp_path)) == {f"{chapter.CHAPTER}/none-seed0", f"{chapter.CHAPTER}/fourier_amp-seed0"}


def test_a_retrain_trains_each_cpu_run_once(tiny_cpu, tmp_path, notes, monkeypatch):
    from spectral_lib.experiments import run as run_mod

    calls = []
    real = run_mod.run_experiment
    monkeypatch.setattr(run_mod, "run_experiment", lambda *a, **k: calls.append(k["regularizer"]) or real(*a, **k))
    switch = ShippedResults(chapter.CHAPTER, "cpu", root=tmp_path, retrain=True)
    page = [chapter.vocoder_run(switch, SPECS["baseline"], runs_root=tmp_path / "runs")]
    chapter.cpu_results(switch, runs_root=tmp_path / "runs", known=page, specs=SPECS)
    assert calls == ["none", "fourier_amp"]
    assert Shipped(chapter.CHAPTER, root=tmp_path).has("none-seed0") and notes == []


# ------------------------------------------------------------------------------------------------ report


def _fake_run(role: str, metrics: dict[str, float], *, power: float = 1.0, envelope: float = 0.8) -> chapter.VocoderRun:
    spec = chapter.CPU_RUNS[role]
    freqs = np.linspace(21.5, 11003.5, 256)
    summary = {"clip_ids": ["LJ001-0001"], "envelope_correlation": envelope,
               "spectrum": {"freqs_hz": freqs.tolist(), "power": [power] * 256, "power_data": [1.0] * 256}}
    full = {"mrstft": 4.0, "pesq": 1.03, "fd_logmel": 300.0, "ndb": 0.9, "hf_energy_ratio": 1.0,
            "train_time_s": 120.0, "steps": 600.0, "wall_time_s": 150.0, **metrics}
    history = [{"step": 600, "loss": 0.1, "diffusion": 0.05, "fourier_amp": 0.04}]
    return chapter.VocoderRun(name=chapter.run_name("cpu", spec), spec=spec, label=chapter.run_label("cpu", spec),
                              config=chapter.run_config("cpu", spec), samples=torch.zeros(1, 1, 8), metrics=full,
                              history=history, summary=summary, shipped=True)


def test_findings_quote_the_shipped_runs():
    cpu = {"baseline": _fake_run("baseline", {}, power=2.0), "amp": _fake_run("amp", {"hf_energy_ratio": 1.5}),
           "haar": _fake_run("haar", {"hf_energy_ratio": 0.7, "mrstft": 4.2}),
           "baseline_seed1": _fake_run("baseline_seed1", {"hf_energy_ratio": 2.0, "mrstft": 4.5,
                                                          "fd_logmel": 400.0}),
           "baseline_l1": _fake_run("baseline_l1", {"mrstft": 5.0}),
           "mrstft": _fake_run("mrstft", {"hf_energy_ratio": 30.0})}
    found = report.findings(cpu)
    assert found["amp_d_hf"] == pytest.approx(0.5) and found["haar_d_mrstft"] == pytest.approx(0.2)
    assert found["noise_share"] == pytest.approx(0.5)  # AMP's HF change 0.5 against the seed's 1.0
    assert (found["hf_top"], found["hf_other"]) == ("AMP", "HAAR") and found["hf_other_d"] == pytest.approx(-0.3)
    assert found["base_mid_ratio"] == pytest.approx(2.0) and found["base_top_ratio"] == pytest.approx(2.0)
    assert found["mr_hf_times"] == pytest.approx(30.0) and found["amp_lambda"] == 0.5 and found["base_lambda"] == 0
    assert found["amp_term_end"] == pytest.approx(0.04) and found["total_min"] == pytest.approx(6 * 2.5)
    assert found["cpu_params"] == "35 907" and found["steps"] == 600
    empty = report.findings(None)
    assert set(empty) == set(found) and math.isnan(empty["base_mrstft"]) and empty["hf_top"] == "n/a"

    table = report.cpu_table(cpu, ("baseline", "amp"))
    assert table["header"][1:] == [title for title, _, _ in report.METRICS.values()]
    assert [row[0] for row in table["rows"]] == ["Baseline, seed 0", "AMP (λ=0.5), seed 0"]
    assert len(report.cost_table(cpu)["rows"]) == 6 and report.cost_table(cpu)["rows"][0][2] == pytest.approx(5.0)
    for run in cpu.values():
        run.metrics.update(hf_energy=0.02, hf_energy_data=0.01)
    hf = report.hf_table([cpu["baseline"], cpu["amp"]], 4000.0)
    assert hf["header"][1] == "energy above 4 kHz (share)" and hf["rows"][1][0] == "AMP (λ=0.5)"
    runs = report.page_runs_table([cpu["haar"]])
    assert runs["rows"][0][:3] == ["HAAR (λ=0.1), seed 0", "shipped `cpu` result", 120.0]
    assert math.isnan(runs["rows"][0][3])  # no final loss logged in this stand-in run
    with pytest.raises(ValueError, match="no band"):
        report.band_ratio(cpu["baseline"], 20_000.0)


def test_set_up_tables_follow_the_profiles():
    rows = {row[0]: row for row in report.profile_table()["rows"]}
    assert "35 907 parameters" in rows["`cpu`"][1] and rows["`cpu`"][3] == "stand-in, 48 training utterances"
    assert rows["`gpu`"][2] == "LMNT's pretrained checkpoint" and rows["`full`"][4].startswith("150 000 steps")
    lam = report.lambda_table("gpu", 1e-5)
    assert lam["header"][1:4] == ["paper 1e-4", "paper 1e-5", "paper 1e-6"]
    amp = lam["rows"][0]
    assert amp[0] == "AMP" and amp[-1] == pytest.approx(sp.paper_lambda_equivalent("fourier_amp", 1e-5))
    assert report.lambda_table("cpu", 1e-5)["rows"][0][-1] == 0.5  # paper_lambda only at gpu/full
    header, rows = sp.recipe_rows("cpu", "gpu")
    assert sp.recipe_table("cpu", "gpu").splitlines()[0] == "| " + " | ".join(header) + " |" and len(rows) == 11
    header, rows = sp.results_rows({"Baseline": {"mrstft": 1.5}}, with_paper=False)
    assert header == ["metric", "Baseline"] and rows[3] == ["MR-STFT ↓", "1.500"] and rows[0][1] == "n/a"


# ------------------------------------------------------------------------------------------------ figures


def _texts(fig) -> list[str]:
    found = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in found if t]


def test_loudest_window():
    x = np.zeros(1000)
    x[620:650] = 1.0
    assert figures.loudest_window(x, 100) == 600 and figures.loudest_window(torch.tensor(x)[None, None], 300) == 600
    with pytest.raises(ValueError, match="fewer than one window"):
        figures.loudest_window(x, 2000)


def test_audio_figures_have_titles_labels_and_no_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rng = np.random.default_rng(0)
    clip = torch.from_numpy(rng.standard_normal(4096) * 0.1).float()
    versions = {"original": clip, "Baseline": clip[None] * 0.5, "AMP (λ=0.5)": clip[None, None]}
    figs = [figures.clip_and_mel(clip, torch.rand(80, 17), 22050, title="Held-out clip X"),
            figures.waveforms_with_zoom(versions, 22050),
            figures.mel_spectrograms(versions, 22050),
            figures.power_spectra({"original": sp.band_power_spectrum(clip[None], 22050, 64),
                                   "Baseline": sp.band_power_spectrum(clip[None] * 2, 22050, 64)},
                                  reference="original", cutoff_hz=4000.0)]
    assert all(isinstance(f, BookFigure) for f in figs) and plt.get_fignums() == before
    assert "Held-out clip X: waveform" in _texts(figs[0]) and "time (s)" in _texts(figs[0])
    assert "AMP (λ=0.5): 30 ms zoom" in _texts(figs[1]) and "time (ms)" in _texts(figs[1])
    assert len([ax for ax in figs[2].axes if ax.get_visible() and ax.images]) == 3
    assert "frequency (kHz)" in _texts(figs[3]) and "mean power (dB)" in _texts(figs[3])
    lines = {line.get_label(): line for line in figs[3].axes[0].get_lines()}
    assert lines["original"].get_linestyle() == "--" and "4 kHz" in lines
    np.testing.assert_allclose(lines["Baseline"].get_ydata() - lines["original"].get_ydata(), 10 * np.log10(4))
    for f in figs:
        f.savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="not one of the spectra"):
        figures.power_spectra({"a": ([1.0], [1.0])}, reference="original")
    with pytest.raises(ValueError, match="one waveform"):
        figures.waveforms_with_zoom({"two": torch.zeros(2, 100)}, 22050)
