"""Chapter 7's models as shipped results (spectral_lib.experiments.images.chapter) and its tables and findings
(images.report), with the ``cpu`` profile replaced by a tiny one and ``results/`` in a temporary folder."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil

import pytest
import torch

from spectral_lib.data.images import ImageFolderDataset
from spectral_lib.experiments import get_profile
from spectral_lib.experiments.images import chapter, profiles, report
from spectral_lib.experiments.images.profiles import ImageSettings, Variant
from spectral_lib.experiments.profiles import register_profile
from spectral_lib.experiments.sources import resolve_data_dir

TINY = dict(steps=3, warmup_steps=1, batch_size=4, n_samples=20, sample_batch_size=20, sample_steps=2,
            grid_samples=4, log_every=1, checkpoint_every=0, device="cpu",
            data={"standin": {"n": 12, "resolution": 32, "seed": 0}})
TINY_SETTINGS = ImageSettings(variants=(Variant(), Variant("wavelet", "formulation")),
                              beyond_paper=(Variant("fourier_amp_phase_safe"),), train_seeds=(0, 1), fd_seeds=(0, 1),
                              fd_samples=4, fd_reference=8, crop=4, timing_images=8, wavelet_levels=2)


@contextlib.contextmanager
def tiny_cpu_profile(tmp, settings=TINY_SETTINGS):
    """The ``cpu`` profile and settings made tiny (restored afterwards); results, data and caches under ``tmp``."""
    env = {"SPECTRAL_RESULTS_DIR": tmp / "results", "SPECTRAL_DATA_DIR": tmp / "data",
           "SPECTRAL_LIB_CACHE": tmp / "cache"}
    saved = {k: os.environ.get(k) for k in [*env, "SPECTRAL_RETRAIN"]}
    real, real_settings = get_profile("ffhq", "cpu"), profiles._SETTINGS["cpu"]
    os.environ.update({k: str(v) for k, v in env.items()})
    os.environ.pop("SPECTRAL_RETRAIN", None)
    register_profile(get_profile("ffhq", "smoke").replace(profile="cpu", **TINY), overwrite=True)
    profiles._SETTINGS["cpu"] = settings
    try:
        yield tmp
    finally:
        register_profile(real, overwrite=True)
        profiles._SETTINGS["cpu"] = real_settings
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reference(study):
    config = study.config(Variant())
    folder, options = resolve_data_dir(config.data, config.data_dir)
    return ImageFolderDataset(folder, options["resolution"], progress=False).get_batch(range(8))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The tiny cpu profile's models trained and shipped once: ``(folder, runs, per_seed)``."""
    tmp = tmp_path_factory.mktemp("shipped")
    with tiny_cpu_profile(tmp):
        study = chapter.ImageStudy("cpu", runs_root=tmp / "runs")
        runs = study.runs()
        per_seed = study.seed_metrics(runs, _reference(study))
    return tmp, runs, per_seed


@pytest.fixture
def tiny_cpu(shipped, tmp_path):
    """A copy of the shipped results (and the stand-in) in ``tmp_path``, under the tiny cpu profile."""
    for name in ("results", "data"):
        shutil.copytree(shipped[0] / name, tmp_path / name)
    with tiny_cpu_profile(tmp_path):
        yield tmp_path


def test_cpu_runs_are_shipped_then_read_back_without_training(shipped, tiny_cpu, monkeypatch):
    _, runs, per_seed = shipped
    assert [run.name for run in runs.values()] == ["baseline-seed0", "wavelet-weighted-seed0",
                                                   "fourier_amp_phase_safe-unweighted-seed0", "baseline-seed1"]
    assert all(run.source == "trained now" for run in runs.values())
    assert all(run.samples.shape == (chapter.SHOWN_SAMPLES, 3, 16, 16) for run in runs.values())
    assert set(per_seed) == {run.name for run in runs.values()}
    assert all(len(v["fd_local"]) == 2 and all(x > 0 for x in v["fd_local"]) for v in per_seed.values())

    folder = tiny_cpu / "results" / "cpu" / chapter.CHAPTER
    manifest = json.loads((folder / "manifest.json").read_text())["entries"]
    assert set(manifest) == {*per_seed, *(f"fd-{n}" for n in per_seed)}
    shipped_run = folder / "wavelet-weighted-seed0"
    assert (shipped_run / chapter.SUMMARY).is_file() and not (shipped_run / "checkpoints").exists()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 400_000
    freqs, power = runs[None, Variant("wavelet", "formulation"), 0].spectrum()
    assert freqs.shape == power.shape == (9,) and bool((power > 0).all())  # all 20 samples, not the 16 shown

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped runs must be read back, not trained")

    monkeypatch.setattr(chapter, "run_variant", no_training)
    monkeypatch.setattr(chapter, "metrics_over_seeds", no_training)
    again = chapter.ImageStudy("cpu", runs_root=tiny_cpu / "elsewhere")
    back = again.runs()
    assert all(run.source == "shipped" for run in back.values())
    assert all(torch.allclose(back[k].samples, runs[k].samples, atol=1e-3) for k in runs)
    assert again.seed_metrics(back, _reference(again)) == per_seed
    assert again.cpu_results(back, per_seed).per_seed == per_seed


def test_other_profiles_read_the_shipped_cpu_findings_and_see_when_they_are_stale(shipped, tiny_cpu):
    per_seed = shipped[2]
    smoke = chapter.ImageStudy("smoke", runs_root=tiny_cpu / "smoke")
    cpu = smoke.cpu_results()
    assert cpu is not None and set(cpu.per_seed) == set(per_seed)
    assert all(run.source == "shipped" for run in cpu.runs.values())
    found = report.findings(cpu)
    assert found["base_fd"] == pytest.approx(sum(per_seed["baseline-seed0"]["fd_local"]) / 2)
    assert found["gap"] == pytest.approx(abs(found["seed1_fd"] - found["base_fd"]))
    assert found["haar_w_d_fd"] == pytest.approx(found["haar_w_fd"] - found["base_fd"])
    assert found["w_d_min"] == found["w_d_max"] == pytest.approx(found["haar_w_d_fd"])
    assert math.isnan(found["amp_fd"]) and found["cpu_commit"] != "n/a"  # not trained in the tiny settings
    assert found["gap_vs_noise"] in ("larger than", "smaller than")

    register_profile(get_profile("ffhq", "cpu").replace(steps=TINY["steps"] + 1), overwrite=True)
    assert smoke.cpu_results() is None and "baseline-seed0" in smoke.missing_reason
    assert "steps" in smoke.missing_reason
    nothing = report.findings(None)
    assert math.isnan(nothing["base_fd"]) and nothing["better"] == "n/a"


def test_retrain_trains_afresh_and_metrics_never_shipped_need_a_retrain(tiny_cpu):
    from spectral_lib.experiments.shipped import ShippedResultError

    profiles._SETTINGS["cpu"] = dataclasses.replace(TINY_SETTINGS, variants=(Variant(),), beyond_paper=(),
                                                    train_seeds=(0,))
    again = chapter.ImageStudy("cpu", runs_root=tiny_cpu / "runs", retrain=True)
    assert [run.source for run in again.runs().values()] == ["trained now"]
    # a shipped run whose metrics were never shipped cannot be measured without its checkpoint: a clear error
    folder = tiny_cpu / "results" / "cpu" / chapter.CHAPTER
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["entries"]["fd-baseline-seed0"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    reader = chapter.ImageStudy("cpu", runs_root=tiny_cpu / "empty")
    read = reader.runs()
    with pytest.raises(ShippedResultError, match="retrain = True"):
        reader.seed_metrics(read, _reference(reader))


def test_run_names_labels_and_variant_configs():
    assert chapter.run_name(Variant()) == "baseline-seed0"
    assert chapter.run_name(Variant("wavelet", "formulation"), 1, "vp") == "vp-wavelet-weighted-seed1"
    study = chapter.ImageStudy("smoke")
    config = study.config(Variant("wavelet_bior13", "formulation"), seed=1)
    assert (config.regularizer, config.spectral_weighting, config.seed) == ("wavelet_bior13", "formulation", 1)
    assert config.regularizer_kwargs == {"levels": profiles.settings("smoke").wavelet_levels}
    real = chapter.ImageStudy("gpu", dataset="cifar10", data_dir="/data/c.zip", edm_repo="/edm")
    config = real.config(Variant("fourier_amp"), network="ve")
    assert config.model["network"] == "cifar10-32x32-cond-ve" and config.model["edm_repo"] == "/edm"
    assert config.data_dir == "/data/c.zip" and config.experiment == "cifar10"
    with pytest.raises(ValueError, match="trust_pickle = True"):
        chapter.prepare_real_path("cifar10", None, "/edm", trust_pickle=False)


def test_paper_numbers_and_tables_come_from_the_constants():
    numbers = report.paper_numbers()
    assert numbers["gain_max"] == pytest.approx(0.07) and numbers["gain_min"] == pytest.approx(0.01)
    assert (numbers["cifar_low"], numbers["cifar_high"]) == profiles.PAPER_CIFAR10_RANGE
    table = report.paper_table()
    assert len(table["rows"]) == len(profiles.PAPER_BEST) + 1 and len(table["header"]) == len(table["formats"])
    datasets = report.dataset_table()
    assert [r[2] for r in datasets["rows"]] == [18, 40, 40] and [r[3] for r in datasets["rows"]] == [35, 79, 79]
    recipe = report.recipe_table()
    assert "31,250 steps" in recipe["rows"][1][2] and all(len(r) == 3 for r in recipe["rows"])
    offline = report.offline_table()
    assert [r[0] for r in offline["rows"]] == ["smoke", "cpu"] and offline["rows"][1][3] == 600
    slope, _ = report.power_law([0, 1, 2, 4], [9, 1, 0.25, 1 / 16])
    assert slope == pytest.approx(-2.0)
    assert report.listed([]) == "none" and report.listed(["a", "b", "c"]) == "a, b and c"
    assert report.compared(1.0, 1.05, tolerance=0.1) == "about the same as"
    assert report.compared(1.0, 2.0, tolerance=0.1) == "lower than"


def test_edm_weights_follow_the_formula():
    from spectral_lib.diffusion import EDM

    weights = report.edm_weights(EDM())
    assert weights["weight_one"] == pytest.approx((1 + 0.25) / 0.25)
    s = weights["sigma_low"]
    assert s == pytest.approx(math.exp(-1.2 - 1.2 * 2.3263478740), rel=1e-6)
    assert weights["weight_low"] == pytest.approx((s**2 + 0.25) / (0.25 * s**2))
