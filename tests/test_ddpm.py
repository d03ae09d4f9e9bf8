"""DDPM: corruption statistics, x0_hat from each parameterisation, loss targets, ancestral sampling with an oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectral_lib.diffusion import DDPM, make_formulation
from spectral_lib.diffusion.ddpm import Denoised, pointwise_distance, posterior_mean_variance


def reference_alpha_bar(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t}(1 - beta_s), computed with NumPy (independent of spectral_lib)."""
    return torch.from_numpy(np.cumprod(1.0 - np.linspace(beta_start, beta_end, num_steps)))


def oracle(x_star: torch.Tensor, alpha_bar: torch.Tensor, parameterization: str):
    """The optimal network for the one-point dataset {x_star}: the exact eps / v / x0 at every (x_t, t)."""

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.float32 and t.shape == (x.shape[0],)
        a = alpha_bar.to(x.dtype)[t.long()].view(-1, *([1] * (x.dim() - 1)))
        eps = (x - a.sqrt() * x_star) / (1 - a).sqrt()
        if parameterization == "eps":
            return eps
        if parameterization == "v":
            return a.sqrt() * eps - (1 - a).sqrt() * x_star
        return x_star.expand_as(x).clone()

    return model


def test_corruption_mean_and_variance(generator):
    ddpm = DDPM()
    t = 300
    x0 = torch.full((4000, 1, 4, 4), 0.7)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = ddpm.corrupt(x0, torch.full((4000,), t), noise)
    a = float(reference_alpha_bar()[t])
    assert float(x_t.mean()) == pytest.approx(math.sqrt(a) * 0.7, abs=0.01)
    assert float(x_t.var()) == pytest.approx(1 - a, rel=0.02)


@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
def test_x0_hat_exact_from_the_true_output(parameterization, generator):
    ddpm = DDPM(parameterization=parameterization)
    x0 = torch.rand((3, 2, 8, 8), generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    levels = torch.tensor([0, 500, 999])
    x_t = ddpm.corrupt(x0, levels, noise)
    a = reference_alpha_bar()[levels].view(-1, 1, 1, 1)
    true = {"eps": noise, "v": a.sqrt() * noise - (1 - a).sqrt() * x0, "x0": x0}[parameterization]
    den = ddpm.denoise(lambda x, t: true, x_t, levels)
    torch.testing.assert_close(den.x0_hat, x0, rtol=0, atol=1e-9)
    assert torch.equal(den.output, true)
    # The loss is zero at the true output and the plain MSE of the target at a zero output.
    assert torch.equal(ddpm.pointwise_loss(den, x0, noise, levels), torch.zeros(3, dtype=torch.float64))
    zero = Denoised(output=torch.zeros_like(x0), x0_hat=x0)
    torch.testing.assert_close(ddpm.pointwise_loss(zero, x0, noise, levels), true.pow(2).mean(dim=(1, 2, 3)))


def test_l1_and_l2_losses_by_hand():
    """Both distances on a hand-computable case: per sample, the mean over all values of |d| or d^2."""
    levels = torch.tensor([0, 1])
    noise = torch.tensor([[[1.0, -2.0, 0.5, 0.0]], [[0.25, 0.25, -0.25, -0.25]]])
    x0 = torch.zeros_like(noise)
    den = Denoised(output=torch.zeros_like(noise), x0_hat=x0)  # eps_theta = 0: the error is the noise itself
    l1 = DDPM(num_steps=4, loss="l1").pointwise_loss(den, x0, noise, levels)
    l2 = DDPM(num_steps=4).pointwise_loss(den, x0, noise, levels)
    assert l1.tolist() == [(1.0 + 2.0 + 0.5 + 0.0) / 4, 0.25]
    assert l2.tolist() == [(1.0 + 4.0 + 0.25 + 0.0) / 4, 0.0625]
    assert pointwise_distance(noise, x0, "l1").tolist() == l1.tolist()


def test_l1_loss_closed_form_and_gradient(generator):
    """E|eps| = sqrt(2 / pi) for eps ~ N(0, 1) (the loss of a network that outputs 0); d|d|/d output = -sign(d)."""
    ddpm = DDPM(num_steps=50, beta_end=0.05, loss="l1")
    noise = torch.randn((4, 1, 50_000), generator=generator, dtype=torch.float64)
    x0 = torch.zeros_like(noise)
    output = torch.zeros_like(noise, requires_grad=True)
    loss = ddpm.pointwise_loss(Denoised(output=output, x0_hat=x0), x0, noise, torch.tensor([0, 10, 30, 49]))
    np.testing.assert_allclose(loss.detach().numpy(), math.sqrt(2 / math.pi), rtol=0.01)
    (grad,) = torch.autograd.grad(loss.sum(), output)
    torch.testing.assert_close(grad, -torch.sign(noise) / noise[0].numel())
    assert repr(ddpm).startswith("DDPM(num_steps=50, parameterization='eps', loss='l1'")
    assert make_formulation("ddim", loss="l1").loss == "l1" and DDPM().loss == "l2"


def test_eps_x0_hat_is_the_papers_eq5(generator):
    """x0_hat = (x_t - sqrt(1 - alpha_bar) eps_theta) / sqrt(alpha_bar) for an arbitrary network output."""
    ddpm = DDPM(num_steps=50, beta_end=0.05)
    x_t = torch.randn((2, 1, 16), generator=generator)
    out = torch.randn((2, 1, 16), generator=generator)
    levels = torch.tensor([3, 49])
    a = reference_alpha_bar(50, 1e-4, 0.05)[levels].float().view(-1, 1, 1)
    den = ddpm.denoise(lambda x, t: out, x_t, levels)
    torch.testing.assert_close(den.x0_hat, (x_t - (1 - a).sqrt() * out) / a.sqrt())


def test_model_receives_t_as_float_and_cond():
    seen = {}

    def model(x, t, *, mel):
        seen["t"], seen["mel"] = t, mel
        return torch.zeros_like(x)

    ddpm = DDPM()
    mel = torch.ones(2, 80, 3)
    ddpm.denoise(model, torch.zeros(2, 1, 768), torch.tensor([5, 7]), cond={"mel": mel})
    assert seen["t"].dtype == torch.float32 and seen["t"].tolist() == [5.0, 7.0]
    assert seen["mel"] is mel


def test_sample_levels_uniform_and_reproducible():
    ddpm = DDPM()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    t1 = ddpm.sample_levels(20000, generator=g1)
    assert t1.dtype == torch.long and t1.shape == (20000,)
    assert int(t1.min()) >= 0 and int(t1.max()) == 999
    assert float(t1.float().mean()) == pytest.approx(499.5, abs=10)
    assert torch.equal(t1, ddpm.sample_levels(20000, generator=g2))


def test_posterior_matches_ho_eq7():
    a = torch.tensor(0.5, dtype=torch.float64)
    a_prev = torch.tensor(0.6, dtype=torch.float64)
    x0, x_t = torch.tensor(0.3, dtype=torch.float64), torch.tensor(-1.2, dtype=torch.float64)
    mean, var = posterior_mean_variance(x0, x_t, a, a_prev)
    alpha = 0.5 / 0.6
    beta = 1 - alpha
    assert float(mean) == pytest.approx(math.sqrt(0.6) * beta / 0.5 * 0.3 + math.sqrt(alpha) * 0.4 / 0.5 * -1.2)
    assert float(var) == pytest.approx(0.4 / 0.5 * beta)


@pytest.mark.parametrize("parameterization", ["eps", "v", "x0"])
@pytest.mark.parametrize("clip", [True, False])
def test_ancestral_sampling_reproduces_the_one_point_dataset(parameterization, clip, generator):
    ddpm = DDPM(num_steps=200, beta_end=0.1, parameterization=parameterization, clip_x0_hat=clip)
    x_star = torch.linspace(-0.9, 0.9, 16, dtype=torch.float64).view(1, 1, 4, 4)
    model = oracle(x_star, reference_alpha_bar(200, 1e-4, 0.1), parameterization)
    out = ddpm.sample(model, (3, 1, 4, 4), generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out, x_star.expand(3, 1, 4, 4), rtol=0, atol=1e-8)


def test_ancestral_sampling_is_random_and_clips():
    ddpm = DDPM(num_steps=20, parameterization="x0")
    far = lambda x, t: torch.full_like(x, 3.0)  # noqa: E731  (x0_hat outside the data range)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(ddpm.sample(far, (2, 1, 3, 3), generator=g), torch.ones(2, 1, 3, 3))
    unclipped = DDPM(num_steps=20, parameterization="x0", clip_x0_hat=False)
    torch.testing.assert_close(unclipped.sample(far, (2, 1, 3, 3), generator=g), torch.full((2, 1, 3, 3), 3.0))
    # A network that does not know x0 gives samples that depend on the generator.
    ddpm = DDPM(num_steps=20)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    a = ddpm.sample(zero, (2, 1, 3, 3), generator=torch.Generator().manual_seed(1))
    b = ddpm.sample(zero, (2, 1, 3, 3), generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(a, b)


def test_spectral_weight():
    levels = torch.tensor([0, 10, 999])
    assert torch.equal(DDPM().spectral_weight(levels), torch.ones(3))
    a = reference_alpha_bar()[levels]
    sigma2 = (1 - a) / a
    ref = (sigma2 + 0.25) / (sigma2 * 0.25)
    torch.testing.assert_close(DDPM(spectral_weight="edm").spectral_weight(levels), ref.float())


def test_cosine_and_custom_betas():
    ddpm = make_formulation("ddpm", schedule="cosine", num_steps=100)
    assert ddpm.num_steps == 100 and float(ddpm.alpha_bar[-1]) < 1e-3
    custom = DDPM(betas=torch.tensor([0.1, 0.2, 0.3]))
    assert custom.num_steps == 3
    torch.testing.assert_close(custom.alpha_bar, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))


def test_ddpm_errors():
    ddpm = DDPM(num_steps=10)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="unknown parameterization 'score'"):
        DDPM(parameterization="score")
    with pytest.raises(ValueError, match="unknown spectral_weight"):
        DDPM(spectral_weight="snr")
    with pytest.raises(ValueError, match="unknown loss 'huber'; valid: 'l2', 'l1'"):
        DDPM(loss="huber")
    with pytest.raises(ValueError, match="unknown loss 'L1'"):
        pointwise_distance(x, x, "L1")
    with pytest.raises(ValueError, match="levels must be integer steps"):
        ddpm.corrupt(x, torch.tensor([1.0, 2.0]), x)
    with pytest.raises(ValueError, match=r"levels must lie in \[0, 9\]"):
        ddpm.corrupt(x, torch.tensor([1, 10]), x)
    with pytest.raises(ValueError, match="levels must be a \\(B,\\) tensor"):
        ddpm.corrupt(x, torch.tensor([1, 2, 3]), x)
    with pytest.raises(ValueError, match="x0 and noise must have the same shape"):
        ddpm.corrupt(x, torch.tensor([1, 2]), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="model output must have the input's shape"):
        ddpm.denoise(lambda x, t: x[:, :, :2], x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"x_t must be .*got a 1-D tensor"):
        ddpm.denoise(lambda x, t: x, torch.zeros(4), torch.tensor([1]))
    with pytest.raises(ValueError, match="x_t must have a floating dtype"):
        ddpm.denoise(lambda x, t: x, torch.zeros(1, 1, 4, dtype=torch.long), torch.tensor([1]))
    with pytest.raises(ValueError, match="use DDIM"):
        ddpm.sample(lambda x, t: x, (1, 1, 2, 2), steps=5)
    with pytest.raises(ValueError, match="noise must have shape"):
        ddpm.sample(lambda x, t: x, (1, 1, 2, 2), noise=torch.zeros(1, 1, 2, 3))
