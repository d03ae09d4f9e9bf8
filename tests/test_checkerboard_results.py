"""spectral_lib.experiments.checkerboard_results: chapters 5 and 6 through the shipped cpu results.

The ``cpu`` profile, the comparison, the grid and the seed checks are replaced by tiny ones (a few training steps on
16-pixel boards), so that the shipping path runs in seconds: train and ship at ``cpu``, then read everything back
with the run folders (and their checkpoints) deleted, as a fresh clone does.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from spectral_lib.experiments import ablation, profiles
from spectral_lib.experiments import checkerboard_results as results
from spectral_lib.experiments import train as train_mod
from spectral_lib.experiments.ablation import AblationGrid, Variant
from spectral_lib.experiments.checkerboard_results import CHAPTER_5, CHAPTER_6, CheckerboardStudy, run_name
from spectral_lib.experiments.shipped import Shipped, ShippedResultError, stale_entries

TINY = dict(data={"size": 16}, steps=3, batch_size=4, warmup_steps=1, log_every=1, n_samples=4,
            sample_batch_size=4, sample_steps=2, grid_samples=4, checkpoint_every=0, sample_every=0)


@pytest.fixture
def tiny_cpu(monkeypatch, tmp_path):
    """A tiny ``cpu`` profile, comparison, grid and seed checks; results and runs in ``tmp_path``; no page notes."""
    from spectral_lib import book

    smoke = profiles.REGISTRY["checkerboard"]["smoke"]
    monkeypatch.setitem(profiles.REGISTRY["checkerboard"], "cpu", smoke.replace(profile="cpu", **TINY))
    monkeypatch.setitem(ablation.COMPARISON, "cpu", ("none", "wavelet"))
    monkeypatch.setitem(ablation.COMPARISON_SEEDS, "cpu", {Variant("none"): (0, 1), Variant("wavelet"): (0,)})
    monkeypatch.setitem(ablation.ABLATION, "cpu", AblationGrid(sweeps={"wavelet": (0.5, 1.0)},
                                                               formulations=("ddpm",)))
    monkeypatch.setitem(ablation.ABLATION_SEEDS, "cpu", {Variant("wavelet", 0.5): (0, 1)})
    notes: list[str] = []
    monkeypatch.setattr(book, "note", lambda text, kind="note", title="Note": notes.append(title))
    return {"results": tmp_path / "results", "runs": tmp_path / "runs", "notes": notes}


def _studies(paths, profile="cpu", **kwargs):
    ch5 = CheckerboardStudy(CHAPTER_5, profile, runs_root=paths["runs"], results_root=paths["results"], **kwargs)
    ch6 = CheckerboardStudy(CHAPTER_6, profile, runs_root=paths["runs"], results_root=paths["results"], shared=ch5,
                            **kwargs)
    return ch5, ch6


def _everything(ch5, ch6):
    return {"comparison": ch5.comparison(), "seeds5": ch5.seed_check(), "sweep": ch6.sweep(),
            "formulations": ch6.formulations(), "ddim": ch6.ddim_samples(), "seeds6": ch6.seed_check()}


def _no_training(*args, **kwargs):
    raise AssertionError("a shipped result must be read back, not trained")


def test_cpu_ships_everything_then_reads_it_back_without_checkpoints(tiny_cpu, monkeypatch):
    first = _everything(*_studies(tiny_cpu))
    ch5_files = sorted(p.name for p in (tiny_cpu["results"] / "cpu" / CHAPTER_5).iterdir())
    assert "seed_check.json" in ch5_files and "manifest.json" in ch5_files
    assert len([f for f in ch5_files if f.startswith("checkerboard-cpu-")]) == 2  # the comparison's runs only
    ch6 = Shipped(CHAPTER_6, root=tiny_cpu["results"])
    # chapter 6 ships its own runs (λ = 0.5, the DDPM pair) and none of chapter 5's (baseline, λ = 1)
    own = {n for n, e in ch6.entries().items() if e["kind"] == "run"}
    assert own == {"checkerboard-cpu-edm-wavelet-lam0.5-seed0", "checkerboard-cpu-ddpm-none-lam1-seed0",
                   "checkerboard-cpu-ddpm-wavelet-lam1-seed0"}
    assert ch6.entry("ddim_samples")["kind"] == "arrays" and ch6.entry("seed_check")["kind"] == "json"
    assert stale_entries(tiny_cpu["results"]) == {}

    shutil.rmtree(tiny_cpu["runs"])  # no run folder, no checkpoint: a fresh clone
    monkeypatch.setattr(train_mod, "train", _no_training)
    ch5, ch6 = _studies(tiny_cpu)
    del tiny_cpu["notes"][:]
    again = _everything(ch5, ch6)
    assert set(ch5.sources.values()) == set(ch6.sources.values()) == {"shipped"}
    assert tiny_cpu["notes"] == ["Shipped results"], "one note on chapter 6's page, not one per chapter"
    for regularizer, run in first["comparison"].items():
        torch.testing.assert_close(again["comparison"][regularizer].samples, run.samples, atol=1e-3, rtol=0)
    assert set(again["ddim"]) == {(Variant("none", None, "ddpm"), 0.0), (Variant("wavelet", None, "ddpm"), 0.0),
                                  (Variant("none", None, "ddpm"), 0.5), (Variant("none", None, "ddpm"), 1.0)}
    for key, samples in first["ddim"].items():
        torch.testing.assert_close(again["ddim"][key], samples)
    assert again["seeds5"][Variant("none")][1] == pytest.approx(first["seeds5"][Variant("none")][1])
    assert set(again["seeds5"][Variant("none")]) == {0, 1} and set(again["seeds6"][Variant("wavelet", 0.5)]) == {0, 1}
    # seed 0 of the check is the page's own run, scored on the page
    assert again["seeds5"][Variant("wavelet")][0] == pytest.approx(ch5.scores(again["comparison"]["wavelet"].samples))


def test_ddim_samples_are_the_ddpm_networks_sampled_with_ddim(tiny_cpu):
    ch5, ch6 = _studies(tiny_cpu)
    ddpm = ch6.run(Variant("wavelet", None, "ddpm"))  # trained now: its run folder has the checkpoint
    samples = ch6.ddim_samples()
    for eta in (0.0,):
        expected = ablation.sample_with(ddpm, "ddim", eta=eta)
        torch.testing.assert_close(samples[Variant("wavelet", None, "ddpm"), eta], expected, atol=1e-3, rtol=0)
    baseline = ch6.run(Variant("none", None, "ddpm"))
    torch.testing.assert_close(samples[Variant("none", None, "ddpm"), 0.5],
                               ablation.sample_with(baseline, "ddim", eta=0.5), atol=1e-3, rtol=0)
    assert not torch.equal(samples[Variant("none", None, "ddpm"), 0.5], samples[Variant("none", None, "ddpm"), 0.0])


def test_seed_check_goes_stale_with_its_runs_and_retrains(tiny_cpu, monkeypatch):
    ch5, _ = _studies(tiny_cpu)
    ch5.comparison()
    ch5.seed_check()
    cpu = profiles.REGISTRY["checkerboard"]["cpu"]
    monkeypatch.setitem(profiles.REGISTRY["checkerboard"], "cpu", cpu.replace(lr=cpu.lr / 2))
    stale = stale_entries(tiny_cpu["results"])
    assert f"{CHAPTER_5}/seed_check" in stale and "depends on run" in stale[f"{CHAPTER_5}/seed_check"]
    calls = []
    real = ablation.run_variant
    monkeypatch.setattr(results, "run_variant", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    ch5, _ = _studies(tiny_cpu)
    ch5.comparison()
    ch5.seed_check()
    assert sorted(calls) == [0, 0, 1], "the two runs and the extra seed train again at the new profile"
    assert stale_entries(tiny_cpu["results"]) == {}
    assert "Retraining: shipped result out of date" in tiny_cpu["notes"]


def test_findings_read_the_shipped_cpu_results_at_every_profile(tiny_cpu, monkeypatch):
    ch5, ch6 = _studies(tiny_cpu)
    ch6.sweep()
    cpu_scores = ch6.scores(ch6.run(Variant("wavelet", 0.5)).samples)
    assert ch6.findings() == (ch6, None)

    smoke5, smoke6 = _studies(tiny_cpu, profile="smoke")
    monkeypatch.setattr(train_mod, "train", _no_training)
    view, claim_profiles = smoke6.findings()
    assert claim_profiles is None and view.read_only and view.profile == "cpu" and view.shared.read_only
    assert view.scores(view.run(Variant("wavelet", 0.5)).samples) == pytest.approx(cpu_scores, abs=1e-3)
    assert view.run(Variant("none")).out_dir.parent.name == CHAPTER_5  # shared runs come from chapter 5
    assert view.provenance()["commit"] not in ("this build", "?")
    with pytest.raises(ShippedResultError, match="RETRAIN=1"):
        view.seed_check()  # never shipped, and a view never trains


def test_without_shipped_results_the_findings_are_this_builds_and_say_so(tiny_cpu):
    ch5, ch6 = _studies(tiny_cpu, profile="smoke")
    assert ch6.findings() == (ch6, ("cpu",))
    assert tiny_cpu["notes"] == ["No shipped results"]
    assert ch6.provenance()["commit"] == "this build"


def test_plan_says_what_will_train_and_what_is_shipped(tiny_cpu):
    ch5, ch6 = _studies(tiny_cpu)
    before = {name: status for _, name, status in ch6.plan()}
    assert all(status.startswith("trains now") for status in before.values())
    ch6.sweep()
    plan = ch6.plan()
    assert len({name for _, name, _ in plan}) == len(plan), "each run once"
    after = {name: status for _, name, status in plan}
    assert after[run_name(ch6.variant_config(Variant("none")))] == "shipped result (chapter 5's run)"
    assert after[run_name(ch6.variant_config(Variant("wavelet", 0.5)))] == "shipped result"
    assert after[run_name(ch6.variant_config(Variant("none", None, "ddpm")))].startswith("trains now")


def test_bad_chapter_and_misuse_are_refused(tiny_cpu):
    with pytest.raises(ValueError, match="chapter must be"):
        CheckerboardStudy("07_faces", "cpu")
    ch5, _ = _studies(tiny_cpu, profile="smoke")
    with pytest.raises(ValueError, match="chapter 6"):
        ch5.ddim_samples()


def test_every_seed_check_variant_is_trained_by_its_chapter():
    for profile in profiles.profiles_for("checkerboard"):
        compared = set(ablation.comparison_variants(profile))
        assert set(ablation.COMPARISON_SEEDS[profile]) <= compared
        assert all(0 in seeds for seeds in ablation.COMPARISON_SEEDS[profile].values())
        grid = set(ablation.ablation_variants(profile))
        assert set(ablation.ABLATION_SEEDS[profile]) <= grid
        assert all(0 in seeds for seeds in ablation.ABLATION_SEEDS[profile].values())
    assert ablation.COMPARISON_SEEDS["cpu"] == {Variant("none"): (0, 1, 2, 3), Variant("wavelet"): (0, 1, 2, 3),
                                               Variant("fourier_amp"): (0, 1)}


def test_prose_helpers():
    from spectral_lib.experiments.checkerboard_results import compared, listed, spectral_lambda
    from spectral_lib.experiments.checkerboard_results import variant_name

    assert listed({1.0: 0.75, 0.1: 0.451}, ".2f") == "0.45 at λ = 0.1 and 0.75 at λ = 1"
    assert listed({0.5: 0.8}, ".2f", symbol="η") == "0.80 at η = 0.5"
    with pytest.raises(ValueError):
        listed({}, ".2f")
    assert compared(0.5, 0.45, tolerance=0.02) == "more than" and compared(0.4, 0.45, tolerance=0.02) == "fewer than"
    assert compared(0.46, 0.45, tolerance=0.02) == "about as many as"
    cpu = profiles.get_profile("checkerboard", "cpu")
    assert spectral_lambda(cpu) == 0.0 and spectral_lambda(cpu.replace(regularizer="wavelet", lambda_spec=0.3)) == 0.3
    assert variant_name(Variant("wavelet", 0.3)) == "Haar wavelet, λ=0.3"
    assert variant_name(Variant("wavelet"), cpu) == f"Haar wavelet, λ={cpu.lambda_spec:g}"
    assert variant_name(Variant("none", 0.3)) == "baseline (MSE only)"


def test_pointwise_loss_at_end_averages_the_last_log_lines(tmp_path):
    from types import SimpleNamespace

    history = [{"step": s, "diffusion": float(s), "loss": 99.0} for s in range(1, 11)]
    assert ablation.pointwise_loss_at_end(SimpleNamespace(history=history, out_dir=tmp_path)) == 8.0
    assert ablation.pointwise_loss_at_end(SimpleNamespace(history=history, out_dir=tmp_path), window=2) == 9.5
    with pytest.raises(ValueError, match="no logged 'diffusion'"):
        ablation.pointwise_loss_at_end(SimpleNamespace(history=[], out_dir=tmp_path))
