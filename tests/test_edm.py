"""EDM: preconditioning identities, training distribution, loss, Heun/Euler samplers against exact solutions."""

from __future__ import annotations

import math

import pytest
import torch

from spectral_lib.diffusion import EDM, edm_preconditioning, edm_sampler, karras_sigmas, make_formulation
from spectral_lib.diffusion.ddpm import Denoised

SD = 0.5  # sigma_data


def oracle_F(x_star: torch.Tensor, sigma_data: float = SD):
    """The raw network F that makes D(x; sigma) = x_star exactly; it sees only (c_in x, c_noise) and undoes them
    with closed-form coefficients (written here, independent of spectral_lib)."""

    def model(x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        sigma = torch.exp(4 * c_noise).view(-1, *([1] * (x_in.dim() - 1)))
        x = x_in * torch.sqrt(sigma**2 + sigma_data**2)
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)
        return (x_star - c_skip * x) / c_out

    return model


def test_preconditioning_closed_forms_and_identities():
    sigma = torch.tensor([0.002, 0.1, 0.5, 1.0, 10.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, SD)
    torch.testing.assert_close(c_skip, 0.25 / (sigma**2 + 0.25))
    torch.testing.assert_close(c_noise, torch.log(sigma) / 4)
    weight = (sigma**2 + SD**2) / (sigma * SD) ** 2
    torch.testing.assert_close(weight * c_out**2, torch.ones_like(sigma))  # lambda = 1 / c_out^2 (Eq. 8)
    torch.testing.assert_close(c_skip + c_out**2 / SD**2, torch.ones_like(sigma))
    torch.testing.assert_close(c_in**2 * (sigma**2 + SD**2), torch.ones_like(sigma))  # unit-variance input
    c_skip0, c_out0, _, _ = edm_preconditioning(torch.tensor([0.0]), SD)
    assert float(c_skip0) == 1.0 and float(c_out0) == 0.0  # D(x; 0) = x
    assert float(edm_preconditioning(torch.tensor([SD]), SD)[0]) == pytest.approx(0.5)


@pytest.mark.parametrize("sigma", [0.05, 0.5, 5.0])
def test_effective_target_has_unit_variance_for_data_of_std_sigma_data(sigma, generator):
    """Karras et al. App. B.6: c_out is chosen so that the effective training target
    (x0 - c_skip (x0 + n)) / c_out has unit variance when the data have standard deviation sigma_data; c_skip x
    is then the optimal (MMSE) denoiser of Gaussian data, so F* = 0."""
    x0 = torch.randn(200_000, generator=generator, dtype=torch.float64) * SD
    x = x0 + sigma * torch.randn(200_000, generator=generator, dtype=torch.float64)
    c_skip, c_out, _, _ = edm_preconditioning(torch.tensor(sigma, dtype=torch.float64), SD)
    target = (x0 - c_skip * x) / c_out
    assert float(target.var()) == pytest.approx(1.0, rel=0.02)
    mmse = SD**2 / (sigma**2 + SD**2)  # E[x0 | x] = mmse * x for Gaussian data
    assert float(c_skip) == pytest.approx(mmse)


def test_training_levels_are_log_normal(generator):
    sigma = EDM().sample_levels(50_000, generator=generator)
    assert sigma.shape == (50_000,) and bool((sigma > 0).all())
    assert float(sigma.log().mean()) == pytest.approx(-1.2, abs=0.03)
    assert float(sigma.log().std()) == pytest.approx(1.2, abs=0.03)


def test_corrupt_denoise_and_loss(generator):
    edm = EDM()
    x0 = torch.rand((3, 2, 4, 4), generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    sigma = torch.tensor([0.01, 1.0, 50.0], dtype=torch.float64)
    x = edm.corrupt(x0, sigma, noise)
    torch.testing.assert_close(x, x0 + sigma.view(-1, 1, 1, 1) * noise)
    den = edm.denoise(oracle_F(x0), x, sigma)
    torch.testing.assert_close(den.x0_hat, x0, rtol=0, atol=1e-9)
    torch.testing.assert_close(edm.pointwise_loss(den, x0, noise, sigma), torch.zeros(3, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # For any F, lambda ||D - x0||^2 = ||F - F_target||^2 (Eq. 8): the weighting makes the F-loss unweighted.
    F = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    den = edm.denoise(lambda x_in, c_noise: F, x, sigma)
    c_skip, c_out, _, _ = (c.view(-1, 1, 1, 1) for c in edm_preconditioning(sigma, SD))
    F_target = (x0 - c_skip * x) / c_out
    torch.testing.assert_close(edm.pointwise_loss(den, x0, noise, sigma), (F - F_target).pow(2).mean(dim=(1, 2, 3)))


def test_model_gets_c_in_x_and_c_noise_and_cond():
    seen = {}

    def model(x_in, c_noise, *, label):
        seen.update(x_in=x_in, c_noise=c_noise, label=label)
        return torch.zeros_like(x_in)

    edm = EDM(sigma_data=1.0)
    x = torch.full((2, 1, 8), 3.0)
    sigma = torch.tensor([1.0, math.e])
    den = edm.denoise(model, x, sigma, cond={"label": "a"})
    torch.testing.assert_close(seen["c_noise"], torch.tensor([0.0, 0.25]))
    torch.testing.assert_close(seen["x_in"][0], x[0] / math.sqrt(2))
    torch.testing.assert_close(den.x0_hat[0], x[0] / 2)  # c_skip = 1 / 2, F = 0
    assert seen["label"] == "a"


def test_spectral_weight_is_lambda_edm():
    sigma = torch.tensor([0.1, 1.0, 10.0])
    torch.testing.assert_close(EDM().spectral_weight(sigma), (sigma**2 + 0.25) / (sigma**2 * 0.25))


@pytest.mark.parametrize("solver", ["heun", "euler"])
def test_samplers_reproduce_the_one_point_dataset(solver, generator):
    x_star = torch.tensor([[[-0.9, -0.3, 0.2, 0.7]]], dtype=torch.float64)
    edm = make_formulation("edm", solver=solver)
    out = edm.sample(oracle_F(x_star), (5, 1, 4), steps=12, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out, x_star.expand(5, 1, 4), rtol=0, atol=1e-9)


def test_number_of_network_calls():
    calls = {"n": 0}

    def model(x_in, c_noise):
        calls["n"] += 1
        return torch.zeros_like(x_in)

    EDM().sample(model, (1, 1, 4), steps=10, solver="heun")
    assert calls["n"] == 2 * 10 - 1  # Algorithm 1: no correction on the last step
    calls["n"] = 0
    EDM().sample(model, (1, 1, 4), steps=10, solver="euler")
    assert calls["n"] == 10


def test_heun_beats_euler_on_gaussian_data_with_a_known_ode_solution(generator):
    """Data N(0, s^2): D(x; sigma) = s^2 / (sigma^2 + s^2) x, and the probability-flow ODE dx/dsigma = (x - D)/sigma
    has the solution x(sigma) = x(sigma_max) sqrt((sigma^2 + s^2) / (sigma_max^2 + s^2))."""
    s = 0.7

    def denoiser(x, sigma):
        sig = sigma.view(-1, 1)
        return s**2 / (sig**2 + s**2) * x

    x_init = torch.randn((4, 3), generator=generator, dtype=torch.float64)
    exact = x_init * 80.0 * s / math.sqrt(80.0**2 + s**2)

    def error(steps: int, solver: str) -> float:
        out = edm_sampler(denoiser, x_init, karras_sigmas(steps), solver=solver)
        return float((out - exact).abs().max() / exact.abs().max())

    # Heun is 2nd order (error / 4 when the steps double), Euler 1st order (error / 2).
    assert error(20, "heun") / error(40, "heun") == pytest.approx(4.0, rel=0.15)
    assert error(20, "euler") / error(40, "euler") == pytest.approx(2.0, rel=0.1)
    assert error(40, "heun") < 0.01 < error(40, "euler") / 5


def test_edm_errors():
    edm = EDM()
    x = torch.zeros(2, 1, 4)
    with pytest.raises(ValueError, match="noise levels sigma > 0"):
        edm.corrupt(x, torch.tensor([0.0, 1.0]), x)
    with pytest.raises(ValueError, match="noise levels sigma > 0"):
        edm.denoise(lambda a, b: a, x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"levels must be a \(B,\) tensor"):
        edm.corrupt(x, torch.tensor([1.0]), x)
    with pytest.raises(ValueError, match="unknown solver 'rk4'"):
        EDM(solver="rk4")
    with pytest.raises(ValueError, match="sigma_data must be finite and > 0"):
        EDM(sigma_data=0)
    with pytest.raises(ValueError, match="denoised.x0_hat and x0 must have the same shape"):
        edm.pointwise_loss(Denoised(x, x), torch.zeros(2, 1, 5), x, torch.ones(2))
    with pytest.raises(ValueError, match="unknown solver 'midpoint'"):
        edm.sample(lambda a, b: a, (1, 1, 4), steps=3, solver="midpoint")
