"""2-D point clouds: geometry against closed forms and scikit-learn, the (N, 2, 1) layout, profiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from spectral_lib.data.toy2d import (
    TOY2D_DATASETS,
    TOY2D_PROFILES,
    checkerboard_points,
    eight_gaussians,
    points_to_signal,
    sample_toy2d,
    signal_to_points,
    toy2d_profile,
    two_moons,
)
from spectral_lib.diffusion import diffusion_loss, make_formulation


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_eight_gaussians_without_jitter_sit_on_the_eight_centres():
    p = eight_gaussians(400, radius=0.7, std=0.0, generator=gen()).double().numpy()
    np.testing.assert_allclose(np.hypot(p[:, 0], p[:, 1]), 0.7, atol=1e-6)
    k = np.arctan2(p[:, 1], p[:, 0]) / (2 * np.pi / 8)
    np.testing.assert_allclose(k, np.round(k), atol=1e-5)  # angles are multiples of 45 degrees
    assert len(np.unique(np.round(k) % 8)) == 8


def test_eight_gaussians_moments_match_the_closed_form():
    p = eight_gaussians(40_000, generator=gen(1))
    assert torch.allclose(p.mean(0), torch.zeros(2), atol=0.01)
    expected_std = math.sqrt(0.75**2 / 2 + 0.05**2)
    assert torch.allclose(p.std(0), torch.full((2,), expected_std), atol=0.01)


def test_two_moons_lie_on_scikit_learns_arcs():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ref, label = sklearn_datasets.make_moons(n_samples=20_000, noise=0.0, shuffle=False)
    ours = two_moons(500, noise=0.0, scale=0.6, generator=gen(2)).double().numpy() / 0.6 + np.array([0.5, 0.25])
    distance, _ = cKDTree(ref).query(ours)
    assert distance.max() < 1e-3  # every point on one of the two arcs (reference spacing ~3e-4)
    upper = ours[:, 1] > 0.25 + 1e-9  # either arc is hit, about equally often
    assert 0.4 < upper.mean() < 0.6 and (label == 0).mean() == 0.5


def test_two_moons_noise_is_added_after_scaling():
    clean = two_moons(2000, noise=0.0, generator=gen(3))
    noisy = two_moons(2000, noise=0.1, generator=gen(3))
    assert abs((noisy - clean).std().item() - 0.1) < 0.01


@pytest.mark.parametrize("cells", [2, 4, 6])
def test_checkerboard_points_fill_the_white_cells_evenly(cells):
    p = checkerboard_points(12_000, cells=cells, generator=gen(4)).double().numpy()
    assert p.min() >= -1.0 and p.max() <= 1.0
    col, row = np.floor((p + 1) / (2 / cells)).astype(int).T
    assert np.all((row + col) % 2 == 0)  # the parity rule of data.checkerboard, written again in NumPy
    white = (np.add.outer(np.arange(cells), np.arange(cells)) % 2 == 0).ravel()  # (row, col) cells, row-major
    counts = np.bincount(row * cells + col, minlength=cells * cells)[white]
    assert len(counts) == cells * cells // 2 and counts.min() > 0.8 * counts.mean()


def test_samplers_are_deterministic_per_generator_and_dispatch_by_name():
    for name in TOY2D_DATASETS:
        a, b = sample_toy2d(name, 64, generator=gen(5)), sample_toy2d(name, 64, generator=gen(5))
        assert a.shape == (64, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.equal(sample_toy2d("two_moons", 16, generator=gen(6), noise=0.0),
                       two_moons(16, noise=0.0, generator=gen(6)))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: sample_toy2d("spiral", 4), "unknown toy 2-D dataset 'spiral'"),
        (lambda: eight_gaussians(0), "n must be a positive int, got 0"),
        (lambda: eight_gaussians(4, radius=-1.0), "radius"),
        (lambda: two_moons(4, noise=-0.1), "noise"),
        (lambda: checkerboard_points(4, cells=3), "cells must be a positive even int, got 3"),
        (lambda: points_to_signal(torch.zeros(4, 3)), r"points must have shape \(N, 2\), got \(4, 3\)"),
        (lambda: points_to_signal(torch.zeros(4, 2, 1)), "points must be 2-D"),
        (lambda: signal_to_points(torch.zeros(4, 2, 2)), r"x must have shape \(N, 2, 1\)"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_points_round_trip_through_the_signal_layout_of_every_formulation():
    points = eight_gaussians(32, generator=gen(7))
    x0 = points_to_signal(points)
    assert x0.shape == (32, 2, 1) and torch.equal(signal_to_points(x0), points)

    def model(x, noise_cond):  # any callable (x, noise_cond) -> out of x's shape is a network
        return torch.zeros_like(x) + 0 * noise_cond.view(-1, 1, 1)

    for name in ("ddpm", "ddim", "edm"):
        out = diffusion_loss(make_formulation(name), model, x0, generator=gen(8))
        assert out.x0_hat.shape == x0.shape and torch.isfinite(out.total)
    # with a zero network, DDPM's x0_hat is x_t / sqrt(alpha_bar_t): check against the formulation's own corrupt
    ddpm = make_formulation("ddpm")
    t = torch.full((32,), 10)
    noise = torch.randn(x0.shape, generator=gen(9))
    x_t = ddpm.corrupt(x0, t, noise)
    expected = x_t / ddpm.alpha_bar[10].sqrt().float()
    assert torch.allclose(ddpm.denoise(model, x_t, t).x0_hat, expected, atol=1e-5)


def test_profiles_exist_validate_and_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = (toy2d_profile(p) for p in ("smoke", "cpu", "gpu"))
    assert set(TOY2D_PROFILES) == {"smoke", "cpu", "gpu"}
    assert smoke.steps < cpu.steps < gpu.steps and smoke.n_samples <= cpu.n_samples <= gpu.n_samples
    assert smoke.replace(steps=7).steps == 7 and smoke.steps == 50
    with pytest.raises(ValueError, match="unknown profile for the toy 2-D chapter 'laptop'"):
        toy2d_profile("laptop")
    with pytest.raises(ValueError, match=r"unknown profile key\(s\) \['epochs'\]"):
        smoke.replace(epochs=3)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        smoke.replace(steps=0)
    with pytest.raises(ValueError, match="lr must be"):
        smoke.replace(lr=-1.0)
