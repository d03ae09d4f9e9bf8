"""spectral_lib.experiments.ablation: the checkerboard chapters' variants, run folders (a shared cache) and scores."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from spectral_lib.data.checkerboard import sample_checkerboards
from spectral_lib.experiments import ablation
from spectral_lib.experiments import train as train_mod
from spectral_lib.experiments.ablation import (
    ABLATION,
    COMPARISON,
    AblationGrid,
    Variant,
    ablation_variants,
    checkerboard_scores,
    comparison_variants,
    floored_radial_spectrum,
    harmonic_cutoff,
    mean_power_map,
    run_variant,
    variant_config,
    variant_dir,
)
from spectral_lib.experiments.profiles import get_profile, profiles_for

TINY = dict(data={"size": 16}, steps=3, batch_size=4, warmup_steps=1, log_every=1, n_samples=4,
            sample_batch_size=4, sample_steps=2, grid_samples=4, device="cpu")


def boards(n: int = 32, size: int = 32, check: int = 4, seed: int = 0) -> torch.Tensor:
    return sample_checkerboards(n, size, (check,), generator=torch.Generator().manual_seed(seed))


def box_blur(x: torch.Tensor, width: int = 3) -> torch.Tensor:
    """Circular box blur along both axes (numpy, independent of the library)."""
    a = x.numpy()
    out = np.zeros_like(a)
    for dy in range(width):
        for dx in range(width):
            out += np.roll(a, (dy - width // 2, dx - width // 2), axis=(2, 3))
    return torch.from_numpy(out / width**2)


# ------------------------------------------------------------------------------------------------ variants


def test_every_checkerboard_profile_has_a_comparison_and_a_grid():
    for profile in profiles_for("checkerboard"):
        variants = comparison_variants(profile)
        assert variants[0] == Variant("none") and len(set(variants)) == len(variants)
        assert {"fourier_amp", "fourier_amp_phase", "wavelet"} <= {v.regularizer for v in variants}
        grid = ABLATION[profile]
        assert len(grid.lambdas) >= 2 and get_profile("checkerboard", profile).lambda_spec in grid.lambdas
        every = ablation_variants(profile)
        assert len(every) == len(set(every)) and Variant("none") in every
        assert "ddim" not in grid.formulations  # DDIM shares DDPM's training: sampled, not trained again
    assert set(COMPARISON) == set(ABLATION) == set(profiles_for("checkerboard"))


def test_smoke_grid_is_smaller_than_cpu_grid():
    assert len(ablation_variants("smoke")) < len(ablation_variants("cpu"))


def test_unknown_names_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"regularizer.*'fourier'.*'wavelet'"):
        Variant("fourier")
    with pytest.raises(ValueError, match=r"formulation.*'sde'.*'edm'"):
        Variant("wavelet", formulation="sde")
    with pytest.raises(ValueError, match="lambda_spec"):
        Variant("wavelet", -1.0)
    with pytest.raises(ValueError, match=r"profile for ABLATION.*'huge'.*'smoke'"):
        ablation_variants("huge")
    with pytest.raises(ValueError, match="sweeps"):
        AblationGrid(sweeps={"wavelet": ()}, formulations=("ddpm",))
    with pytest.raises(ValueError, match="regularizer.*'haar'"):
        AblationGrid(sweeps={"haar": (1.0,)}, formulations=("ddpm",))


def test_grid_variants():
    grid = AblationGrid(sweeps={"wavelet": (0.1, 1.0), "fourier_amp": (3.0,)}, formulations=("ddpm", "edm"),
                        extra=(Variant("wavelet", 0.01, "ddpm"),))
    assert grid.lambdas == (0.1, 1.0, 3.0)
    assert grid.lambda_variants() == [Variant("none"), Variant("wavelet", 0.1), Variant("wavelet", 1.0),
                                      Variant("fourier_amp", 3.0)]
    assert grid.formulation_variants() == [Variant("none", None, "ddpm"), Variant("wavelet", None, "ddpm"),
                                           Variant("none", None, "edm"), Variant("wavelet", None, "edm"),
                                           Variant("wavelet", 0.01, "ddpm")]


def test_overrides_and_labels():
    assert Variant("wavelet").overrides() == {"regularizer": "wavelet"}
    assert Variant("wavelet", 0.3, "edm").overrides() == {"regularizer": "wavelet", "lambda_spec": 0.3,
                                                           "formulation": "edm"}
    assert Variant("wavelet", 0.3).label() == "wavelet, λ=0.3"
    assert Variant("none", 0.3, "edm").label() == "none (edm)"
    config = variant_config(Variant("fourier_amp"), profile="smoke")
    assert Variant("fourier_amp").label(config) == f"fourier_amp, λ={config.lambda_spec:g} ({config.formulation})"


def test_variant_dir_names_lambda_and_matches_the_profile_default(tmp_path):
    lam = get_profile("checkerboard", "smoke").lambda_spec
    default = variant_dir(tmp_path, variant_config(Variant("wavelet"), profile="smoke"))
    explicit = variant_dir(tmp_path, variant_config(Variant("wavelet", lam), profile="smoke"))
    other = variant_dir(tmp_path, variant_config(Variant("wavelet", 0.1), profile="smoke"))
    assert default == explicit != other  # chapter 6's λ = profile value reuses chapter 5's folder
    assert other.name.endswith("-wavelet-lam0.1-seed0") and other.parent == tmp_path


# ------------------------------------------------------------------------------------------------ runs


def test_run_variant_trains_once_then_reads_back(tmp_path, monkeypatch):
    first = run_variant(Variant("wavelet", 0.5), profile="smoke", root=tmp_path, **TINY)
    assert not first.cached and first.out_dir == variant_dir(tmp_path, first.config)
    assert first.config.lambda_spec == 0.5 and first.config.regularizer == "wavelet"
    assert first.samples.shape == (4, 1, 16, 16)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished variant must not train again")

    monkeypatch.setattr(train_mod, "train", no_training)
    again = run_variant(Variant("wavelet", 0.5), profile="smoke", root=tmp_path, **TINY)
    assert again.cached and torch.equal(again.samples, first.samples)


def test_two_threads_asking_for_one_run_train_it_once(tmp_path):
    results = []

    def ask():
        results.append(run_variant(Variant("none"), profile="smoke", root=tmp_path, **TINY))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.cached for r in results) == [False, True]
    assert torch.equal(results[0].samples, results[1].samples)


def test_sample_with_ddim_uses_the_ddpm_network(tmp_path):
    ddpm = run_variant(Variant("none", formulation="ddpm"), profile="smoke", root=tmp_path, **TINY)
    again = ablation.sample_with(ddpm, "ddpm")
    assert torch.equal(again, ddpm.samples)  # same network, sampler and seed: the run's own samples
    ddim = ablation.sample_with(ddpm, "ddim", n=3)
    assert ddim.shape == (3, 1, 16, 16) and not torch.equal(ddim, ddpm.samples[:3])
    assert float(ddim.abs().max()) <= 1.0
    edm = run_variant(Variant("none", formulation="edm"), profile="smoke", root=tmp_path, **TINY)
    with pytest.raises(ValueError, match="trained with 'ddpm' or 'ddim'.*'edm'"):
        ablation.sample_with(edm, "ddim")
    with pytest.raises(ValueError, match="formulation.*'edm'"):
        ablation.sample_with(ddpm, "edm")


# ------------------------------------------------------------------------------------------------ scores


def test_harmonic_cutoff_separates_fundamental_from_edges():
    assert harmonic_cutoff((4,)) == 0.5 and harmonic_cutoff((8, 4)) == 0.5 and harmonic_cutoff((8,)) == 0.25
    with pytest.raises(ValueError, match=r"check_sizes.*>= 3"):
        harmonic_cutoff((2,))
    with pytest.raises(ValueError, match="check_sizes"):
        harmonic_cutoff(())


def test_edge_share_of_an_ideal_board_against_numpy():
    x = boards(8)
    power = np.abs(np.fft.fft2(x.numpy().astype(np.float64), norm="ortho")) ** 2
    power = power.mean(axis=(0, 1))
    f = np.fft.fftfreq(32)
    radius = np.hypot(f[:, None], f[None, :])
    expected = power[radius > harmonic_cutoff((4,)) * 0.5].sum() / power[radius > 0].sum()
    from spectral_lib.metrics.spectrum import high_frequency_energy

    assert high_frequency_energy(x, harmonic_cutoff((4,))) == pytest.approx(expected, rel=1e-6)
    assert 0.2 < expected < 0.4  # most power on the fundamental ring, the rest in the edges' harmonics


def test_scores_of_the_data_blurred_and_noisy_boards():
    data, other = boards(64, seed=0), boards(64, seed=1)
    same = checkerboard_scores(other, data)
    assert same["hf_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert same["spectral_distance"] == pytest.approx(0.0, abs=1e-6)
    assert same["binary_share"] == 1.0 and same["ideal_agreement"] == 1.0 and same["contrast"] == pytest.approx(1)
    assert same["clean_share"] == 1.0
    blurred = checkerboard_scores(box_blur(other).float(), data)
    assert blurred["hf_ratio"] < 0.5 and blurred["binary_share"] < 0.6 and blurred["spectral_distance"] > 0.1
    noisy = other + 0.3 * torch.randn(other.shape, generator=torch.Generator().manual_seed(2))
    assert checkerboard_scores(noisy.clamp(-1, 1), data)["hf_ratio"] > 1.0


def test_floor_keeps_the_spectral_distance_finite_and_meaningful():
    data = boards(16)
    faint = data + 1e-4 * torch.randn(data.shape, generator=torch.Generator().manual_seed(3))
    from spectral_lib.metrics.spectrum import spectral_distance

    assert spectral_distance(faint, data) > 3  # without a floor: decades between 1e-8 noise and exact zeros
    assert checkerboard_scores(faint, data)["spectral_distance"] < 1e-2
    with pytest.raises(ValueError, match="floor"):
        checkerboard_scores(faint, data, floor=0.0)


def test_floored_radial_spectrum_and_power_map_against_numpy():
    data = boards(8)
    freqs, power = floored_radial_spectrum(data, data)
    assert freqs.shape == power.shape == (17,)
    assert float(power.min()) == pytest.approx(ablation.SPECTRUM_FLOOR * float(data.double().var()), rel=1e-5)
    power_map = mean_power_map(data)
    expected = np.fft.fftshift((np.abs(np.fft.fft2(data.numpy().astype(np.float64), norm="ortho")) ** 2).mean((0, 1)))
    np.testing.assert_allclose(power_map.numpy(), expected, rtol=1e-5, atol=1e-9)
    assert power_map.shape == (32, 32) and float(power_map[16, 16]) < 1e-6  # zero frequency at the centre: mean 0
    with pytest.raises(ValueError, match="x"):
        mean_power_map(data[0])


def test_calibration_boards_score_as_their_names_say():
    data = boards(32, seed=0)
    answers = ablation.calibration_boards(boards(32, seed=1), generator=torch.Generator().manual_seed(4))
    assert set(answers) == {"blurred", "noisy", "amplitude impostor"}
    for x in answers.values():
        assert x.shape == data.shape and float(x.min()) >= -1 and float(x.max()) <= 1
    scores = {name: checkerboard_scores(x, data) for name, x in answers.items()}
    assert scores["blurred"]["hf_ratio"] < 0.3 and scores["blurred"]["ideal_agreement"] > 0.9
    assert scores["noisy"]["ideal_agreement"] > 0.9 and scores["noisy"]["hf_ratio"] > 1
    # the impostor has the data's spectrum (up to clipping) and still is no checkerboard: pixel scores see it
    impostor = scores["amplitude impostor"]
    assert impostor["spectral_distance"] < 0.1 < scores["blurred"]["spectral_distance"]
    assert impostor["binary_share"] < 0.6 and impostor["ideal_mae"] > 0.3
    with pytest.raises(ValueError, match="blur_sigma"):
        ablation.calibration_boards(data, blur_sigma=0)


def test_clean_share_counts_boards_not_pixels():
    data = boards(8, seed=0)
    broken = data.clone()
    broken[:2, :, :8, :8] *= -1  # two boards with 4 checks flipped (64 of 1024 pixels, 6 %)
    broken[2:4, :, :4, :4] *= -1  # two with one check flipped (16 pixels, 1.6 %)
    scores = checkerboard_scores(broken, data)
    assert scores["clean_share"] == pytest.approx(6 / 8)
    assert scores["ideal_agreement"] == pytest.approx(1 - (2 * 64 + 2 * 16) / (8 * 1024))
    assert checkerboard_scores(broken, data, clean_agreement=0.99)["clean_share"] == pytest.approx(4 / 8)
    with pytest.raises(ValueError, match="clean_agreement"):
        checkerboard_scores(broken, data, clean_agreement=0.0)


def test_run_variant_replaces_a_stale_run_only_when_asked(tmp_path):
    first = run_variant(Variant("none"), profile="smoke", root=tmp_path, **TINY)
    changed = dict(TINY, lr=first.config.lr / 2)
    with pytest.raises(ValueError, match="cannot resume.*lr"):
        run_variant(Variant("none"), profile="smoke", root=tmp_path, **changed)
    again = run_variant(Variant("none"), profile="smoke", root=tmp_path, replace_stale=True, **changed)
    assert not again.cached and again.config.lr == first.config.lr / 2 and again.out_dir == first.out_dir
    assert run_variant(Variant("none"), profile="smoke", root=tmp_path, replace_stale=True, **changed).cached
