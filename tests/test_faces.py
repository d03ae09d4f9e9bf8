"""The faces experiment ("ffhq"): profiles, the offline path end to end, the CLI, metrics helpers, crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spectral_lib.cli import main
from spectral_lib.data.standin import write_image_standin
from spectral_lib.experiments import EVALUATORS, ExperimentConfig, get_profile, profiles_for
from spectral_lib.experiments import faces
from spectral_lib.experiments.faces import Variant
from spectral_lib.experiments.run import sample_run
from spectral_lib.metrics.fid import RandomConvFeatures, compute_features, feature_statistics
from spectral_lib.metrics.spectrum import high_frequency_energy_ratio

TINY = dict(steps=3, warmup_steps=1, batch_size=4, n_samples=6, sample_batch_size=6, sample_steps=2,
            grid_samples=4, log_every=1, device="cpu", data={"standin": {"n": 8, "resolution": 32, "seed": 0}})


def test_profiles_validate_and_follow_the_paper_on_the_real_path():
    assert set(profiles_for("ffhq")) == {"smoke", "cpu", "gpu", "full"}
    for name in ("smoke", "cpu", "gpu", "full"):
        config = get_profile("ffhq", name)
        assert config.formulation == "edm" and config.data["source"] == "images"
        assert ExperimentConfig.from_dict(config.to_dict()) == config
        settings = faces.faces_settings(name)
        assert settings.variants[0] == Variant() and settings.real == (name in ("gpu", "full"))
    for name in ("smoke", "cpu"):  # offline: our UNet on the stand-in, written on demand
        config = get_profile("ffhq", name)
        assert config.model["name"] == "unet2d" and config.model["in_channels"] == 3 and "standin" in config.data
    for name in ("gpu", "full"):  # the paper's fine-tuning settings (EDM's FFHQ setting)
        config = get_profile("ffhq", name)
        assert (config.batch_size, config.lr, config.model["dropout"], config.sample_steps) == (16, 5e-5, 0.05, 40)
        assert config.model["name"] == "edm_pretrained" and "standin" not in config.data
    assert get_profile("ffhq", "full").steps == faces.PAPER_FINETUNE_STEPS["table"] == 500_000 // 16
    assert faces.faces_settings("full").fid_samples == 50_000 and faces.faces_settings("full").fid_seeds == (0, 1, 2)
    assert faces.faces_settings("gpu").fid_samples == 10_000
    with pytest.raises(ValueError, match=r"profile for experiment 'ffhq'.*'smoke'"):
        faces.faces_settings("huge")


def test_variants_and_the_paper_table():
    assert len(faces.ALL_VARIANTS) == 9 and len(set(faces.ALL_VARIANTS)) == 9
    assert Variant("wavelet", "formulation").label == "HAAR (weighted)"
    assert Variant("fourier_amp").key == "fourier_amp-unweighted" and Variant().label == "baseline"
    with pytest.raises(ValueError, match="baseline.*has no spectral term to weight"):
        Variant("none", "formulation")
    with pytest.raises(ValueError, match="regularizer"):
        Variant("mrstft")
    assert faces.paper_fid("vp", Variant()) == 2.38 and faces.paper_fid("ve", Variant()) == 2.56
    assert faces.paper_fid("vp", Variant("fourier_amp")) == 2.31
    assert faces.paper_fid("vp", Variant("wavelet_bior13", "formulation")) is None


@pytest.fixture
def standin_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_offline_path_end_to_end_at_smoke(standin_env, monkeypatch):
    """Stand-in written on demand -> ImageFolderDataset -> UNet + EDM + weighted Haar term -> Heun -> metrics."""
    variant = Variant("wavelet", "formulation")
    result = faces.run_variant("smoke", variant, root=standin_env / "runs", **TINY)
    out = standin_env / "runs" / "smoke" / "wavelet-weighted-seed0"
    assert result.out_dir == out and (out / "metrics.json").is_file() and (out / "figures" / "samples.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["formulation"] == "edm" and config["spectral_weighting"] == "formulation"
    assert config["regularizer"] == "wavelet" and config["data_dir"] is None
    assert result.samples.shape == (6, 3, 16, 16)
    assert list((standin_env / "data" / "standins").glob("images-*/thumbnails32x32/00000/00000.png"))
    for key in ("fd_local", "hf_energy_ratio", "spectral_distance", "hf_energy", "hf_energy_data"):
        assert np.isfinite(result.metrics[key]), key

    again = faces.run_variant("smoke", variant, root=standin_env / "runs", **TINY)
    assert again.cached and torch.equal(again.samples, result.samples)

    reference = torch.rand(12, 3, 16, 16) * 2 - 1
    values = faces.metrics_over_seeds(out, reference, seeds=(0, 1), n=4)
    assert set(values) == {"fd_local", "hf_energy_ratio"}
    assert len(values["fd_local"]) == 2 and all(v > 0 for v in values["fd_local"])
    assert values["fd_local"][0] != values["fd_local"][1]  # fresh noise per seed
    samples = sample_run(out, n=4, seed=10_000 + 1)
    assert values["hf_energy_ratio"][1] == pytest.approx(high_frequency_energy_ratio(samples, reference))

    def no_sampling(*args, **kwargs):
        raise AssertionError("cached values must not sample again")

    monkeypatch.setattr("spectral_lib.experiments.run.sample_run", no_sampling)
    assert faces.metrics_over_seeds(out, reference, seeds=(0, 1), n=4) == values

    extractor = RandomConvFeatures(3)  # offline stand-in for Inception: the streaming and caching, not FID
    mu, sigma = feature_statistics(compute_features(extractor, reference))
    fid = faces.fid_for_run(out, n=5, seeds=(0,), reference=(mu, sigma), batch_size=2, extractor=extractor)
    assert fid["n"] == 5 and len(fid["values"]) == 1 and fid["std"] == 0.0 and fid["values"][0] > 0
    assert fid["name"].startswith("FD (local features") and (out / "fid.json").is_file()


def test_cli_trains_ffhq_on_a_data_dir_with_the_profile_formulation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    folder = write_image_standin(tmp_path / "ffhq", n=8, resolution=32)
    out = tmp_path / "run"
    argv = ["train", "--experiment", "ffhq", "--profile", "smoke", "--data-dir", str(folder), "--out", str(out),
            "--regularizer", "fourier_amp", "--steps", "2", "--batch-size", "2", "--set", "n_samples=4",
            "--set", "sample_steps=2", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fd_local" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["data_dir"] == str(folder) and config["formulation"] == "edm"
    assert torch.load(out / "samples.pt", weights_only=True).shape == (4, 3, 16, 16)


def test_evaluator_is_registered_and_zero_on_identical_sets(generator):
    assert EVALUATORS["ffhq"] is faces.faces_metrics
    x = torch.rand(16, 3, 16, 16, generator=generator) * 2 - 1
    m = faces.faces_metrics(x, x.clone(), get_profile("ffhq", "smoke"))
    assert m["spectral_distance"] == 0.0 and m["hf_energy_ratio"] == pytest.approx(1.0)
    assert abs(m["fd_local"]) < 1e-6
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    assert faces.faces_metrics(blurred, x, get_profile("ffhq", "smoke"))["hf_energy_ratio"] < 0.8


def test_mean_std_and_noise_verdict():
    assert faces.mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, float(np.std([1, 2, 4], ddof=1))))
    assert faces.mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError, match="values is empty"):
        faces.mean_std([])
    base = [10.0, 10.2, 9.8]
    assert faces.noise_verdict([10.1, 9.9, 10.0], base) == (pytest.approx(0.0), "within noise")
    assert faces.noise_verdict([8.0, 8.1, 7.9], base) == (pytest.approx(-2.0), "better")
    assert faces.noise_verdict([12.0, 12.1, 11.9], base) == (pytest.approx(2.0), "worse")
    # |diff| = 0.3, standard error sqrt(0.04/3 + 0.04/3) = 0.163: within 2 SE, outside 1 SE
    assert faces.noise_verdict([10.3, 10.5, 10.1], base)[1] == "within noise"
    assert faces.noise_verdict([10.3, 10.5, 10.1], base, z=1.0)[1] == "worse"
    assert faces.noise_verdict([9.0], [10.0]) == (-1.0, "no error bar")
    # clears the sampling noise, but two baselines trained with other seeds lie 2.5 apart
    assert faces.noise_verdict([8.0, 8.1, 7.9], base, training_gap=2.5) == (pytest.approx(-2.0),
                                                                             "within training noise")
    assert faces.noise_verdict([8.0, 8.1, 7.9], base, training_gap=-1.5)[1] == "better"


def test_texture_crop_finds_where_the_variants_differ(generator):
    flat = torch.zeros(4, 3, 16, 16)
    textured = flat.clone()
    textured[2, :, 9:13, 3:7] = torch.rand(3, 4, 4, generator=generator) * 2 - 1  # fine texture in sample 2 only
    maps = faces.hf_energy_maps(textured, 4)
    assert maps.shape == (4, 13, 13) and float(maps[0].abs().max()) == 0.0
    index, top, left = faces.find_texture_crop({"blurred": flat, "crisp": textured}, 4)
    assert index == 2 and abs(top - 9) <= 1 and abs(left - 3) <= 1
    with pytest.raises(ValueError, match="at least two variants"):
        faces.find_texture_crop({"only": flat}, 4)


def test_planned_runs_follow_the_settings():
    smoke = faces.planned_runs("smoke")
    assert smoke[0] == (None, Variant(), 0) and smoke[-1] == (None, Variant(), 1)
    assert len(smoke) == len(faces.faces_settings("smoke").variants) + 1
    assert [r[1] for r in faces.planned_runs("cpu")[:-1]] == list(faces.ALL_VARIANTS)
    full = faces.planned_runs("full")
    assert {r[0] for r in full} == {"vp", "ve"} and len(full) == 2 * len(faces.ALL_VARIANTS)


def test_figures_have_titles_and_labelled_axes(generator):
    from spectral_lib.diffusion import EDM
    from spectral_lib.metrics.spectrum import radial_power_spectrum

    x = torch.rand(8, 3, 16, 16, generator=generator) * 2 - 1
    spectra = {"baseline": radial_power_spectrum(x), "HAAR (unweighted)": radial_power_spectrum(x * 0.5)}
    figures = [
        faces.plot_edm_weight(EDM()),
        faces.plot_spectrum_ratios(spectra, radial_power_spectrum(x)),
        faces.plot_hf_ratios({"baseline": 1.0, "AMP (unweighted)": (0.9, 0.05)}),
    ]
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    ratio = figures[1].axes[0].lines[1].get_ydata()
    assert np.allclose(ratio, np.log10(0.25))  # half the amplitude = a quarter of the power
    crops = faces.plot_crops({"a": x[0, :, :4, :4], "b": x[1, :, :4, :4]}, title="crops", context=(x[0], (0, 0, 4)))
    assert len(crops.axes) == 3 and crops.get_suptitle() == "crops"
    panels = faces.plot_sample_panels({"data": x, "baseline": x}, ncols=2, nrow=2)
    assert "2 x 2 images of 16 px" in panels.get_suptitle()
    assert faces.markdown_table(["a", "b"], [(1, "x")]) == "| a | b |\n| --- | --- |\n| 1 | x |"
