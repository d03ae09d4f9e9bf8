"""The image experiments (cifar10, afhqv2, ffhq): profiles, the offline path end to end, the real path on stand-ins
with the real networks' quirks (class labels, augment layer, resolution), results files, metrics helpers, crops."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from spectral_lib.cli import main
from spectral_lib.data.standin import write_image_standin
from spectral_lib.experiments import EVALUATORS, ExperimentConfig, get_profile, images, profiles_for
from spectral_lib.experiments.images import Variant
from spectral_lib.experiments.run import sample_run
from spectral_lib.metrics.fid import RandomConvFeatures, compute_features, feature_statistics
from spectral_lib.metrics.spectrum import high_frequency_energy_ratio

TINY = dict(steps=3, warmup_steps=1, batch_size=4, n_samples=6, sample_batch_size=6, sample_steps=2,
            grid_samples=4, log_every=1, device="cpu", data={"standin": {"n": 8, "resolution": 32, "seed": 0}})


def test_profiles_validate_and_follow_the_paper_on_the_real_path():
    assert set(profiles_for("ffhq")) == {"smoke", "cpu", "gpu", "full"}
    assert set(profiles_for("cifar10")) == set(profiles_for("afhqv2")) == {"gpu", "full"}
    for name in ("smoke", "cpu", "gpu", "full"):
        config = get_profile("ffhq", name)
        assert config.formulation == "edm" and config.data["source"] == "images"
        assert ExperimentConfig.from_dict(config.to_dict()) == config
        chosen = images.settings(name)
        assert chosen.variants[0] == Variant() and chosen.real == (name in ("gpu", "full"))
    for name in ("smoke", "cpu"):  # offline: our UNet on the stand-in, written on demand
        config = get_profile("ffhq", name)
        assert config.model["name"] == "unet2d" and config.model["in_channels"] == 3 and "standin" in config.data
    expected = {"cifar10": (2e-4, 0.13, 18, 32, "cifar10-32x32-cond-vp"),
                "afhqv2": (5e-5, 0.25, 40, 64, "afhqv2-64x64-uncond-vp"),
                "ffhq": (5e-5, 0.05, 40, 64, "ffhq-64x64-uncond-vp")}
    for dataset, (lr, dropout, steps, res, network) in expected.items():
        for name in ("gpu", "full"):  # the paper's fine-tuning settings
            config = get_profile(dataset, name)
            assert (config.batch_size, config.lr, config.model["dropout"], config.sample_steps) == (16, lr, dropout,
                                                                                                    steps)
            assert config.model["name"] == "edm_pretrained" and config.model["network"] == network
            assert config.data["resolution"] == res and "standin" not in config.data
            assert config.data.get("use_labels", False) == (dataset == "cifar10")
            assert config.amp == "off" and config.grad_clip is None
        assert images.edm_network_name(dataset, "ve") == network[:-2] + "ve"
    assert get_profile("ffhq", "full").steps == images.PAPER_FINETUNE_STEPS["table"] == 500_000 // 16
    full, gpu = images.settings("full"), images.settings("gpu")
    assert full.fid_samples == 50_000 and full.fid_seeds == (0, 1, 2) and gpu.fid_samples == 10_000
    assert full.fid_autocast is None and gpu.fid_autocast is None  # float32 networks for FID (issue 11)
    assert full.sampler_dtype == gpu.sampler_dtype == "float64"  # as generate.py
    with pytest.raises(ValueError, match=r"profile for the image experiments.*'smoke'"):
        images.settings("huge")
    with pytest.raises(ValueError, match="network"):
        images.edm_network_name("ffhq", "adm")


def test_variants_and_the_paper_table():
    assert len(images.ALL_VARIANTS) == 9 and len(set(images.ALL_VARIANTS)) == 9
    assert Variant("wavelet", "formulation").label == "HAAR (weighted)"
    assert Variant("fourier_amp").key == "fourier_amp-unweighted" and Variant().label == "baseline"
    assert all(Variant.from_key(v.key) == v for v in images.ALL_VARIANTS)
    with pytest.raises(ValueError, match="unknown variant key 'haar'"):
        Variant.from_key("haar")
    with pytest.raises(ValueError, match="baseline.*has no spectral term to weight"):
        Variant("none", "formulation")
    with pytest.raises(ValueError, match="regularizer"):
        Variant("mrstft")
    assert images.paper_fid("ffhq", "vp", Variant()) == 2.38 and images.paper_fid("ffhq", "ve", Variant()) == 2.56
    assert images.paper_fid("ffhq", "vp", Variant("fourier_amp")) == 2.31
    assert images.paper_fid("afhqv2", "ve", Variant()) == 2.17 and images.PAPER_BEST["afhqv2", "vp"] == 2.03
    assert images.paper_fid("ffhq", "vp", Variant("wavelet_bior13", "formulation")) is None
    assert images.PAPER_CIFAR10_RANGE == (1.81, 1.84)
    # every best row is no worse than its baseline, as the paper reports
    assert all(best <= images.PAPER_TABLE1[(d, n, "baseline")] for (d, n), best in images.PAPER_BEST.items())


@pytest.fixture
def standin_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_offline_path_end_to_end_at_smoke(standin_env, monkeypatch):
    """Stand-in written on demand -> ImageFolderDataset -> UNet + EDM + weighted Haar term -> Heun -> metrics."""
    variant = Variant("wavelet", "formulation")
    result = images.run_variant("smoke", variant, root=standin_env / "runs", **TINY)
    out = standin_env / "runs" / "ffhq" / "smoke" / "wavelet-weighted-seed0"
    assert result.out_dir == out and (out / "metrics.json").is_file() and (out / "figures" / "samples.png").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["formulation"] == "edm" and config["spectral_weighting"] == "formulation"
    assert config["regularizer"] == "wavelet" and config["data_dir"] is None
    assert result.samples.shape == (6, 3, 16, 16)
    assert list((standin_env / "data" / "standins").glob("images-*/thumbnails32x32/00000/00000.png"))
    for key in ("fd_local", "hf_energy_ratio", "spectral_distance", "hf_energy", "hf_energy_data"):
        assert np.isfinite(result.metrics[key]), key

    again = images.run_variant("smoke", variant, root=standin_env / "runs", **TINY)
    assert again.cached and torch.equal(again.samples, result.samples)

    reference = torch.rand(12, 3, 16, 16) * 2 - 1
    values = images.metrics_over_seeds(out, reference, seeds=(0, 1), n=4)
    assert set(values) == {"fd_local", "hf_energy_ratio"}
    assert len(values["fd_local"]) == 2 and all(v > 0 for v in values["fd_local"])
    assert values["fd_local"][0] != values["fd_local"][1]  # fresh noise per seed
    samples = sample_run(out, n=4, seed=10_000 + 1)
    assert values["hf_energy_ratio"][1] == pytest.approx(high_frequency_energy_ratio(samples, reference))

    def no_sampling(*args, **kwargs):
        raise AssertionError("cached values must not sample again")

    monkeypatch.setattr("spectral_lib.experiments.run.sample_run", no_sampling)
    assert images.metrics_over_seeds(out, reference, seeds=(0, 1), n=4) == values

    extractor = RandomConvFeatures(3)  # offline stand-in for Inception: the streaming and caching, not FID
    mu, sigma = feature_statistics(compute_features(extractor, reference))
    fid = images.fid_for_run(out, n=5, seeds=(0,), reference=(mu, sigma), batch_size=2, extractor=extractor,
                             sampler_dtype="float32")
    assert fid["n"] == 5 and len(fid["values"]) == 1 and fid["std"] == 0.0 and fid["values"][0] > 0
    assert fid["name"].startswith("FD (local features") and (out / "fid.json").is_file()
    assert fid["precision"] == {"network": "float32", "sampler": "float32"} and fid["world_size"] == 1
    assert images.fid_for_run(out, n=5, seeds=(0,), reference=(mu, sigma), batch_size=3, extractor=extractor,
                              sampler_dtype="float32") == fid  # cached (the batch size changes no image)


def test_cached_seed_metrics_and_fid_go_when_the_run_trains_again(standin_env):
    """seed_metrics.json and fid.json are computed from the weights: a run trained further (or overwritten) must not
    serve them again (they are RESULT_FILES of the run folder)."""
    from spectral_lib.experiments import run_folder

    assert {"seed_metrics.json", "fid.json"} <= set(run_folder.RESULT_FILES) <= set(run_folder.run_entries())
    root = standin_env / "runs"
    out = images.run_variant("smoke", Variant(), root=root, **TINY).out_dir
    reference = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    before = images.metrics_over_seeds(out, reference, seeds=(0,), n=4)
    extractor = RandomConvFeatures(3)
    stats = feature_statistics(compute_features(extractor, reference))
    fid = images.fid_for_run(out, n=4, seeds=(0,), reference=stats, batch_size=4, extractor=extractor,
                             sampler_dtype="float32")
    assert (out / "seed_metrics.json").is_file() and (out / "fid.json").is_file()

    images.run_variant("smoke", Variant(), root=root, **{**TINY, "steps": TINY["steps"] + 3})  # trains on
    assert not (out / "seed_metrics.json").exists() and not (out / "fid.json").exists()
    assert images.metrics_over_seeds(out, reference, seeds=(0,), n=4) != before  # the new weights' numbers
    assert images.fid_for_run(out, n=4, seeds=(0,), reference=stats, batch_size=4, extractor=extractor,
                              sampler_dtype="float32")["values"] != fid["values"]


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
    assert EVALUATORS["ffhq"] is EVALUATORS["cifar10"] is EVALUATORS["afhqv2"] is images.image_metrics
    x = torch.rand(16, 3, 16, 16, generator=generator) * 2 - 1
    m = images.image_metrics(x, x.clone(), get_profile("ffhq", "smoke"))
    assert m["spectral_distance"] == 0.0 and m["hf_energy_ratio"] == pytest.approx(1.0)
    assert abs(m["fd_local"]) < 1e-6
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    assert images.image_metrics(blurred, x, get_profile("ffhq", "smoke"))["hf_energy_ratio"] < 0.8


def test_mean_std_and_noise_verdict():
    assert images.mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, float(np.std([1, 2, 4], ddof=1))))
    assert images.mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError, match="values is empty"):
        images.mean_std([])
    base = [10.0, 10.2, 9.8]
    assert images.noise_verdict([10.1, 9.9, 10.0], base) == (pytest.approx(0.0), "within noise")
    assert images.noise_verdict([8.0, 8.1, 7.9], base) == (pytest.approx(-2.0), "better")
    assert images.noise_verdict([12.0, 12.1, 11.9], base) == (pytest.approx(2.0), "worse")
    # |diff| = 0.3, standard error sqrt(0.04/3 + 0.04/3) = 0.163: within 2 SE, outside 1 SE
    assert images.noise_verdict([10.3, 10.5, 10.1], base)[1] == "within noise"
    assert images.noise_verdict([10.3, 10.5, 10.1], base, z=1.0)[1] == "worse"
    assert images.noise_verdict([9.0], [10.0]) == (-1.0, "no error bar")
    # clears the sampling noise, but two baselines trained with other seeds lie 2.5 apart
    assert images.noise_verdict([8.0, 8.1, 7.9], base, training_gap=2.5) == (pytest.approx(-2.0),
                                                                             "within training noise")
    assert images.noise_verdict([8.0, 8.1, 7.9], base, training_gap=-1.5)[1] == "better"


def test_texture_crop_finds_where_the_variants_differ(generator):
    flat = torch.zeros(4, 3, 16, 16)
    textured = flat.clone()
    textured[2, :, 9:13, 3:7] = torch.rand(3, 4, 4, generator=generator) * 2 - 1  # fine texture in sample 2 only
    maps = images.hf_energy_maps(textured, 4)
    assert maps.shape == (4, 13, 13) and float(maps[0].abs().max()) == 0.0
    index, top, left = images.find_texture_crop({"blurred": flat, "crisp": textured}, 4)
    assert index == 2 and abs(top - 9) <= 1 and abs(left - 3) <= 1
    with pytest.raises(ValueError, match="at least two variants"):
        images.find_texture_crop({"only": flat}, 4)


def test_planned_runs_follow_the_settings():
    smoke = images.planned_runs("smoke")
    assert smoke[0] == (None, Variant(), 0) and smoke[-1] == (None, Variant(), 1)
    chosen = images.settings("smoke")
    assert len(smoke) == len(chosen.variants) + len(chosen.beyond_paper) + 1
    ours = Variant("fourier_amp_phase_safe")
    assert [r[1] for r in images.planned_runs("cpu")[:-1]] == [*images.ALL_VARIANTS, ours]
    assert ours.label == "AMP+PHASE additive (ours, unweighted)" and not ours.paper and Variant("wavelet").paper
    assert Variant.from_key(ours.key) == ours and ours not in images.ALL_VARIANTS
    full = images.planned_runs("full")  # the real path: the paper's rows only
    assert {r[0] for r in full} == {"vp", "ve"} and len(full) == 2 * len(images.ALL_VARIANTS)
    assert all(v.paper for _, v, _ in full + images.planned_runs("gpu"))


# ------------------------------------------------------------------------------------------------ real path


def test_seed_batches_and_draws_follow_generate_py():
    # 10 seeds, batch 3, 2 ranks: ceil(10 / 6) * 2 = 4 consecutive batches of sizes 3, 3, 2, 2; rank r takes r::2
    assert images.edm_seed_batches(range(10), 3, 0, 2) == [[0, 1, 2], [6, 7]]
    assert images.edm_seed_batches(range(10), 3, 1, 2) == [[3, 4, 5], [8, 9]]
    assert images.edm_seed_batches(range(5), 8) == [[0, 1, 2, 3, 4]]
    latents, labels = images.edm_latents_and_labels([7, 123], (3, 4, 4), 10, "cpu")
    for row, seed in enumerate((7, 123)):  # each image: its own generator, the normal draw, then the class
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(latents[row], torch.randn(3, 4, 4, generator=g))
        assert labels[row].argmax() == torch.randint(10, size=[], generator=g) and labels[row].sum() == 1
    alone, _ = images.edm_latents_and_labels([123], (3, 4, 4), 10, "cpu")
    assert torch.equal(alone[0], latents[1])  # an image does not depend on its batch
    assert images.edm_latents_and_labels([1], (3, 4, 4), 0, "cpu")[1] is None


@pytest.fixture
def real_path(tmp_path, monkeypatch):
    """A stub of NVIDIA's code folder, a stand-in CIFAR-10 EDM zip, and a writer of stand-in checkpoint pickles
    with the official networks' quirks (class labels, a bias-free augment layer, a fixed resolution)."""
    import pickle

    from test_edm_datasets import write_cifar_tarball
    from test_edm_pretrained import EDMPrecond

    from spectral_lib.data.edm_datasets import convert_cifar10

    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPECTRAL_RESULTS_DIR", str(tmp_path / "results"))
    # training puts the stub code folder on sys.path and imports its packages: undo both afterwards, so that later
    # tests (which check that nothing of NVIDIA's is importable) do not depend on the order they run in
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    repo = tmp_path / "edm"
    for sub, name in (("torch_utils", "persistence.py"), ("dnnlib", "__init__.py")):
        (repo / sub).mkdir(parents=True)
        (repo / sub / name).write_text("")
    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    data = convert_cifar10(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar10-32x32.zip", progress=False)

    def checkpoint(name, **kwargs):
        torch.manual_seed(0)
        path = tmp_path / f"edm-{name}.pkl"
        with open(path, "wb") as f:
            pickle.dump({"ema": EDMPrecond(augment_dim=9, **kwargs).eval()}, f)
        return {"network": str(path), "edm_repo": str(repo)}

    tiny = dict(steps=2, warmup_steps=1, batch_size=4, n_samples=4, sample_batch_size=4, sample_steps=2,
                grid_samples=4, log_every=1, checkpoint_every=0, device="cpu")
    yield data, checkpoint, tiny
    for name in set(sys.modules) - modules:
        if name.split(".")[0] in ("torch_utils", "dnnlib"):
            del sys.modules[name]


def test_cifar10_labels_flow_into_fine_tuning_fid_and_results(tmp_path, real_path):
    data, checkpoint, tiny = real_path
    variant = Variant("fourier_amp")
    result = images.run_variant("gpu", variant, dataset="cifar10", network="vp", root=tmp_path / "runs",
                                data_dir=data, model=checkpoint("cifar", img_resolution=32, label_dim=10), **tiny)
    # the wrapper refuses to train a conditional network without labels, so finishing proves the labels arrived
    assert result.out_dir == tmp_path / "runs" / "cifar10" / "gpu-vp" / "fourier_amp-unweighted-seed0"
    assert result.config.data["use_labels"] and result.samples.shape == (4, 3, 32, 32)

    from spectral_lib.experiments.run import SAMPLERS

    assert SAMPLERS["cifar10"] is images.conditional_sampler and "ffhq" not in SAMPLERS  # offline path unchanged
    reference = (torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    extractor = RandomConvFeatures(0)
    mu, sigma = feature_statistics(compute_features(extractor, reference))
    from spectral_lib.experiments.train import UntrustedPickleError

    # the run folder names its pickle and an edm_repo: reloading it needs the caller's trust, never the folder's
    with pytest.raises(UntrustedPickleError, match="edm-cifar.pkl"):
        images.fid_for_run(result.out_dir, n=5, seeds=(0, 1), reference=(mu, sigma), batch_size=2, extractor=extractor)
    with pytest.raises(UntrustedPickleError, match="edm-cifar.pkl"):
        images.metrics_over_seeds(result.out_dir, reference, seeds=(0,), n=2)
    assert not (result.out_dir / "fid.json").exists() and not (result.out_dir / "seed_metrics.json").exists()
    repo = result.config.model["edm_repo"]
    fid = images.fid_for_run(result.out_dir, n=5, seeds=(0, 1), reference=(mu, sigma), batch_size=2,
                             extractor=extractor, trust_pickle=True, edm_repo=repo)
    per_seed = images.metrics_over_seeds(result.out_dir, reference, seeds=(0,), n=2, trust_pickle=True,
                                         edm_repo=repo)
    assert len(per_seed["fd_local"]) == 1 and np.isfinite(per_seed["fd_local"][0])
    assert len(fid["values"]) == 2 and fid["values"][0] != fid["values"][1] and fid["std"] > 0
    assert fid["precision"] == {"network": "float32", "sampler": "float64"}

    path = images.write_result("gpu", "cifar10", "vp", variant, fid, run_metrics=result.metrics, config=result.config)
    assert path == tmp_path / "results" / "gpu" / "cifar10" / "vp-fourier_amp-unweighted.json"
    record = json.loads(path.read_text())
    assert record["fid"]["values"] == fid["values"] and "--variant fourier_amp-unweighted" in record["command"]
    assert record["training"]["steps"] == 2 and record["training"]["lr"] == 2e-4
    rows = {r[1]: r for r in images.table1_rows("cifar10", networks=("vp",))}
    assert rows["AMP (unweighted)"][3].startswith(f"{fid['mean']:.2f} ± ") and "n=5" in rows["AMP (unweighted)"][3]
    assert rows["AMP (unweighted)"][4] == rows["baseline"][3] == images.NOT_RUN
    assert rows["baseline"][2] == "1.81–1.84 (every row)"
    cost = images.full_cost("cifar10")  # now based on our own (CPU, here) result file
    assert cost["runs"] == 18 and cost["images"] == 18 * (3 * 50_000 + 500) and "our 1 result file" in cost["basis"]


def test_checkpoints_that_do_not_fit_the_data_are_refused(tmp_path, real_path):
    data, checkpoint, tiny = real_path
    with pytest.raises(ValueError, match=r"checkpoint is unconditional \(no labels\), the data has 10 classes"):
        images.run_variant("gpu", Variant(), dataset="cifar10", network="vp", root=tmp_path / "a", data_dir=data,
                           model=checkpoint("uncond", img_resolution=32), **tiny)
    with pytest.raises(ValueError, match=r"takes images of 3 channels at 64x64, the data gives 3x32x32"):
        images.run_variant("gpu", Variant(), dataset="cifar10", network="ve", root=tmp_path / "b", data_dir=data,
                           model=checkpoint("res64", img_resolution=64, label_dim=10), **tiny)
    with pytest.raises(ValueError, match=r"holds 32x32 images, the data set needs 64x64"):
        images.prepare_data("afhqv2", data)
    assert not list(tmp_path.rglob("last.pt")), "refused before the first training step, nothing written"


def test_command_line_prepares_data_and_explains_ffhq(tmp_path, monkeypatch, capsys):
    from test_edm_datasets import write_cifar_tarball

    from spectral_lib.experiments.images.__main__ import main as images_main

    monkeypatch.setenv("SPECTRAL_DATA_DIR", str(tmp_path / "data"))
    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    assert images_main(["prepare", "--dataset", "cifar10", "--source", str(tmp_path / "cifar-10-python.tar.gz")]) == 0
    made = tmp_path / "data" / "datasets" / "cifar10-32x32.zip"
    assert capsys.readouterr().out.strip() == str(made) and made.is_file()
    with pytest.raises(ValueError, match="ffhq has no one-click download"):
        images_main(["prepare", "--dataset", "ffhq"])
    with pytest.raises(SystemExit):
        images_main(["run", "--dataset", "cifar10", "--profile", "smoke", "--network", "vp"])  # gpu/full only
    assert "--variant fourier_amp-weighted" in images.reproduce_command("ffhq", "full", "ve",
                                                                       Variant("fourier_amp", "formulation"))
    assert "--data " in images.reproduce_command("ffhq", "full", "ve", Variant())


def test_throughput_arithmetic(monkeypatch, tmp_path):
    from spectral_lib.experiments.images import throughput
    from spectral_lib.models.unet2d import UNet2D, UNet2DConfig

    monkeypatch.setattr(throughput, "STANDIN_ARCHITECTURES", {8: {"channel_mults": (1,), "nfe": 5}})
    monkeypatch.setattr(throughput, "standin_network", lambda r: UNet2D(UNet2DConfig(in_channels=3, base_channels=8,
                                                                                     image_size=8, num_groups=4)))
    times = iter([0.0, 0.5, 10.0, 12.0])  # forward: 0.5 s, training step: 2 s (CPU seconds per repeat)
    monkeypatch.setattr(throughput.time, "process_time", lambda: next(times))
    record = throughput.measure_throughput(tmp_path / "t.json", batches=(4,), repeats=1)
    row = record["measured"]["8px-batch4"]
    assert row["images_per_s"] == pytest.approx(4 / (0.5 * 5)) and row["steps_per_s"] == pytest.approx(0.5)
    assert json.loads((tmp_path / "t.json").read_text())["measured"] == record["measured"]
