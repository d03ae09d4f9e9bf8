"""DDIM and DiffWave's fast sampling: oracle reproduction, determinism, equivalence with DDPM at eta = 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectral_lib.diffusion import DDIM, DDPM, DIFFWAVE_FAST_BETAS, ddim_step, fast_sample, make_formulation


def reference_alpha_bar(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    return torch.from_numpy(np.cumprod(1.0 - np.linspace(beta_start, beta_end, num_steps)))


def oracle(x_star: torch.Tensor, alpha_bar: torch.Tensor, parameterization: str = "eps"):
    """Exact eps / v / x0 for the one-point dataset {x_star}. Fractional steps t use the alpha_bar whose square
    root is linear in t between integer steps (DiffWave's convention for fast sampling)."""
    root = alpha_bar.sqrt()

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float64)
        lo = t.floor().long().clamp(max=len(root) - 1)
        hi = t.ceil().long().clamp(max=len(root) - 1)
        r = root[lo] + (root[hi] - root[lo]) * (t - lo)
        a = (r**2).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        eps = (x - a.sqrt() * x_star) / (1 - a).sqrt()
        if parameterization == "eps":
            return eps
        if parameterization == "v":
            return a.sqrt() * eps - (1 - a).sqrt() * x_star
        return x_star.expand_as(x).clone()

    return model


def smooth_net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed non-trivial 'network' (it does not know the data)."""
    return 0.5 * torch.tanh(x) + 0.001 * t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


X_STAR = torch.tensor([[[-0.8, -0.2, 0.0, 0.4, 0.9, 0.5]]], dtype=torch.float64)  # (1, 1, 6)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
def test_ddim_reproduces_the_one_point_dataset(eta, parameterization, generator):
    ddim = DDIM(eta=eta, parameterization=parameterization)
    model = oracle(X_STAR, reference_alpha_bar(1000), parameterization)
    out = ddim.sample(model, (4, 1, 6), steps=25, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out, X_STAR.expand(4, 1, 6), rtol=0, atol=1e-8)


def test_ddim_quadratic_spacing_reproduces(generator):
    ddim = DDIM(spacing="quadratic", default_steps=30)
    out = ddim.sample(oracle(X_STAR, reference_alpha_bar(1000)), (2, 1, 6), generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out, X_STAR.expand(2, 1, 6), rtol=0, atol=1e-8)


def test_ddim_eta0_is_deterministic_given_the_start():
    start = torch.randn((3, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    ddim = DDIM(eta=0.0)
    a = ddim.sample(smooth_net, start.shape, steps=10, noise=start, generator=torch.Generator().manual_seed(1))
    b = ddim.sample(smooth_net, start.shape, steps=10, noise=start, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    stochastic = DDIM(eta=1.0)
    c = stochastic.sample(smooth_net, start.shape, steps=10, noise=start, generator=torch.Generator().manual_seed(1))
    d = stochastic.sample(smooth_net, start.shape, steps=10, noise=start, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)
    # eta given to sample() overrides the formulation's.
    e = stochastic.sample(smooth_net, start.shape, steps=10, noise=start, eta=0.0)
    assert torch.equal(e, a)


@pytest.mark.parametrize("clip", [True, False])
def test_ddim_eta1_on_all_steps_equals_ddpm_ancestral(clip):
    """Song et al. 2021, Sec. 4.1: with eta = 1 and every step visited, DDIM is DDPM's ancestral sampler."""
    kwargs = dict(num_steps=100, beta_end=0.05, clip_x0_hat=clip)
    ddpm_out = DDPM(**kwargs).sample(smooth_net, (2, 1, 16), generator=torch.Generator().manual_seed(3),
                                     dtype=torch.float64)
    ddim_out = DDIM(eta=1.0, **kwargs).sample(smooth_net, (2, 1, 16), steps=100,
                                              generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(ddim_out, ddpm_out, rtol=1e-9, atol=1e-9)


def test_ddim_shares_ddpm_training(generator):
    ddim = make_formulation("ddim", eta=0.3)
    assert isinstance(ddim, DDPM)
    x0 = torch.rand((2, 1, 8), generator=generator) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator)
    levels = torch.tensor([4, 800])
    den_a = ddim.denoise(smooth_net, ddim.corrupt(x0, levels, noise), levels)
    ddpm = DDPM()
    den_b = ddpm.denoise(smooth_net, ddpm.corrupt(x0, levels, noise), levels)
    assert torch.equal(ddim.pointwise_loss(den_a, x0, noise, levels), ddpm.pointwise_loss(den_b, x0, noise, levels))


@pytest.mark.parametrize("parameterization", ["eps", "v"])
@pytest.mark.parametrize("clamp", [True, False])
def test_diffwave_fast_sampling_reproduces_the_one_point_dataset(parameterization, clamp, generator):
    ddpm = DDPM(num_steps=50, beta_end=0.05, parameterization=parameterization)
    model = oracle(X_STAR, reference_alpha_bar(50, 1e-4, 0.05), parameterization)
    out = fast_sample(ddpm, model, (3, 1, 6), DIFFWAVE_FAST_BETAS, generator=generator, dtype=torch.float64,
                      clamp_sample=clamp)
    torch.testing.assert_close(out, X_STAR.expand(3, 1, 6), rtol=0, atol=1e-8)


def test_ddim_with_inference_betas_uses_fractional_steps(generator):
    seen = []
    base = oracle(X_STAR, reference_alpha_bar(50, 1e-4, 0.05))

    def model(x, t):
        seen.append(float(t[0]))
        return base(x, t)

    ddim = make_formulation("ddim", num_steps=50, beta_end=0.05, inference_betas=DIFFWAVE_FAST_BETAS)
    out = ddim.sample(model, (2, 1, 6), generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out, X_STAR.expand(2, 1, 6), rtol=0, atol=1e-8)
    assert len(seen) == 6 and seen[-1] == 0.0 and any(s != round(s) for s in seen)
    assert seen == sorted(seen, reverse=True)


def test_fast_sample_equals_ddim_eta1_on_the_inference_schedule():
    """DiffWave's update is DDIM's Eq. 12 with eta = 1 on the inference alpha_bar (checked step by step)."""
    ddpm = DDPM(num_steps=50, beta_end=0.05)
    betas = torch.tensor(DIFFWAVE_FAST_BETAS, dtype=torch.float64)
    gamma_bar = torch.cumprod(1 - betas, 0)
    from spectral_lib.diffusion import fast_sampling_steps

    steps = fast_sampling_steps(ddpm.alpha_bar, betas)
    out = fast_sample(ddpm, smooth_net, (2, 1, 16), generator=torch.Generator().manual_seed(5), dtype=torch.float64,
                      clamp_sample=False)
    g = torch.Generator().manual_seed(5)
    x = torch.randn((2, 1, 16), generator=g, dtype=torch.float64)
    for s in range(5, -1, -1):
        a = gamma_bar[s]
        a_prev = gamma_bar[s - 1] if s > 0 else torch.tensor(1.0, dtype=torch.float64)
        eps = smooth_net(x, torch.full((2,), float(steps[s])))
        x0_hat = (x - (1 - a).sqrt() * eps) / a.sqrt()
        z = torch.randn((2, 1, 16), generator=g, dtype=torch.float64) if s > 0 else None
        x = ddim_step(x, x0_hat, eps, a, a_prev, 1.0 if s > 0 else 0.0, z)
    torch.testing.assert_close(out, x, rtol=1e-9, atol=1e-9)


def test_ddim_errors():
    with pytest.raises(ValueError, match="eta must be finite and >= 0"):
        DDIM(eta=-1)
    with pytest.raises(ValueError, match="eta must be finite and >= 0"):
        DDIM().sample(smooth_net, (1, 1, 4), eta=-0.5)
    with pytest.raises(ValueError, match="unknown spacing 'cubic'"):
        DDIM(spacing="cubic")
    with pytest.raises(ValueError, match="outside the training range"):
        DDIM(inference_betas=DIFFWAVE_FAST_BETAS, num_steps=20)  # 20 steps of Ho's betas never get that noisy
    ddim = DDIM(num_steps=50, beta_end=0.05, inference_betas=DIFFWAVE_FAST_BETAS)
    with pytest.raises(ValueError, match=r"steps must be None or len\(inference_betas\)=6"):
        ddim.sample(smooth_net, (1, 1, 4), steps=10)
    with pytest.raises(ValueError, match="steps must be <= num_train_steps"):
        DDIM(num_steps=10).sample(smooth_net, (1, 1, 4), steps=20)
    with pytest.raises(ValueError, match="noise must be given when eta > 0"):
        ddim_step(*(torch.zeros(1),) * 3, torch.tensor(0.5), torch.tensor(0.6), 0.5, None)
