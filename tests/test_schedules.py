"""Schedules against closed forms computed independently with NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectral_lib.diffusion.schedules import (
    alpha_bar_from_betas,
    alpha_bar_from_sigma,
    betas_from_alpha_bar,
    cosine_alpha_bar,
    cosine_betas,
    ddim_timesteps,
    fast_sampling_steps,
    karras_sigmas,
    linear_betas,
    make_betas,
    sigma_from_alpha_bar,
)


def test_linear_alpha_bar_matches_numpy_product():
    betas = linear_betas(1000, 1e-4, 0.02)
    ref_betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(betas.numpy(), ref_betas, rtol=1e-12)
    ref = np.array([np.prod(1 - ref_betas[: t + 1]) for t in (0, 1, 499, 999)])
    np.testing.assert_allclose(alpha_bar_from_betas(betas)[[0, 1, 499, 999]].numpy(), ref, rtol=1e-10)
    # Known value: alpha_bar_T of Ho et al.'s schedule is about 4.0e-5 (SNR ~ 4e-5 at the end).
    assert 3.5e-5 < float(alpha_bar_from_betas(betas)[-1]) < 4.5e-5


def test_diffwave_schedule_alpha_bar():
    betas = make_betas("linear", 50, beta_start=1e-4, beta_end=0.05)
    ref = np.cumprod(1 - np.linspace(1e-4, 0.05, 50))
    np.testing.assert_allclose(alpha_bar_from_betas(betas).numpy(), ref, rtol=1e-12)


def test_cosine_alpha_bar_closed_form():
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    alpha_bar = cosine_alpha_bar(T, s=s)
    for t in (0, 10, 500, 900):  # far from the clipped end
        assert float(alpha_bar[t]) == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    betas = cosine_betas(T)
    assert float(betas.max()) == pytest.approx(0.999)
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all())


def test_betas_round_trip():
    betas = linear_betas(100, 1e-3, 0.1)
    torch.testing.assert_close(betas_from_alpha_bar(alpha_bar_from_betas(betas)), betas, rtol=1e-10, atol=1e-12)


def test_sigma_of_t_closed_form_and_inverse():
    alpha_bar = alpha_bar_from_betas(linear_betas(1000))
    sigma = sigma_from_alpha_bar(alpha_bar)
    np.testing.assert_allclose(sigma.numpy(), np.sqrt((1 - alpha_bar.numpy()) / alpha_bar.numpy()), rtol=1e-12)
    assert bool((sigma[1:] > sigma[:-1]).all())  # noisier with t
    assert float(sigma[0]) == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)))
    assert 150 < float(sigma[-1]) < 170  # the VP schedule reaches sigma ~ 157
    torch.testing.assert_close(alpha_bar_from_sigma(sigma), alpha_bar, rtol=1e-10, atol=0)


def test_karras_sigmas_endpoints_formula_and_monotonicity():
    sigmas = karras_sigmas(18, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert sigmas.shape == (19,)
    assert float(sigmas[0]) == pytest.approx(80.0)
    assert float(sigmas[-2]) == pytest.approx(0.002)
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    i = 5
    ref = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert float(sigmas[i]) == pytest.approx(ref, rel=1e-12)
    assert karras_sigmas(4, append_zero=False).shape == (4,)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 50).tolist() == list(range(0, 1000, 20))
    quad = ddim_timesteps(1000, 50, "quadratic")
    assert quad[0] == 0 and quad[-1] == int(0.8 * 1000) and bool((quad[1:] > quad[:-1]).all())
    assert ddim_timesteps(10, 10).tolist() == list(range(10))


def test_fast_sampling_steps_matches_interpolation_in_sqrt_alpha_bar():
    train = alpha_bar_from_betas(linear_betas(50, 1e-4, 0.05)).numpy()
    inference = [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]
    steps = fast_sampling_steps(train, inference).numpy()
    inf_alpha_bar = np.cumprod(1 - np.array(inference))
    # Independent reference: t is piecewise linear in sqrt(alpha_bar) between the integer training steps.
    ref = np.interp(np.sqrt(inf_alpha_bar), np.sqrt(train)[::-1], np.arange(50)[::-1].astype(float))
    np.testing.assert_allclose(steps, ref, atol=1e-9)
    assert steps[0] == pytest.approx(0.0)  # the first inference beta equals the first training beta
    assert bool(np.all(np.diff(steps) > 0))


def test_fast_sampling_steps_exact_on_training_levels():
    betas = linear_betas(20, 1e-3, 0.1)
    steps = fast_sampling_steps(alpha_bar_from_betas(betas), betas[:7])
    np.testing.assert_allclose(steps.numpy(), np.arange(7), atol=1e-9)


def test_schedule_errors():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        linear_betas(0)
    with pytest.raises(ValueError, match="beta_start <= beta_end < 1"):
        linear_betas(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\)"):
        alpha_bar_from_betas([0.1, 1.0])
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        karras_sigmas(10, sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="steps must be <= num_train_steps"):
        ddim_timesteps(10, 20)
    with pytest.raises(ValueError, match="outside the training range"):
        fast_sampling_steps(alpha_bar_from_betas(linear_betas(50, 1e-4, 0.05)), [0.5, 0.9])
