"""diffusion_loss: exactly the standard objective without a regularizer, the spectral term on x0_hat, gradients."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from spectral_lib.diffusion import DDIM, DDPM, EDM, FORMULATIONS, diffusion_loss, make_formulation


class FakeRegularizer:
    """L1 distance of 2-D Fourier amplitudes, one value per sample; records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor) -> SimpleNamespace:
        self.calls.append((x0_hat, x0))
        amplitude = lambda x: torch.fft.rfft2(x, norm="ortho").abs()  # noqa: E731
        l1 = (amplitude(x0_hat) - amplitude(x0)).abs().flatten(1).mean(dim=1)
        return SimpleNamespace(total=2.0 * l1, terms={"amplitude": l1, "other": l1})


class TinyNet(nn.Module):
    """A 3x3 convolution plus a learned response to the noise condition."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.scale = nn.Parameter(torch.tensor(0.01))

    def forward(self, x: torch.Tensor, noise_cond: torch.Tensor, scale_by: float = 1.0) -> torch.Tensor:
        return scale_by * (self.conv(x) + self.scale * noise_cond.view(-1, 1, 1, 1))


def data(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((4, 1, 8, 8), generator=g) * 2 - 1


@pytest.mark.parametrize("formulation", [DDPM(), DDPM(parameterization="v"), DDIM(), EDM()], ids=repr)
def test_without_regularizer_total_is_exactly_the_standard_objective(formulation):
    net, x0 = TinyNet(), data()
    out = diffusion_loss(formulation, net, x0, generator=torch.Generator().manual_seed(7))
    # The standard objective written out with the same draws, in the documented order (levels, then noise).
    g = torch.Generator().manual_seed(7)
    levels = formulation.sample_levels(4, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    den = formulation.denoise(net, formulation.corrupt(x0, levels, noise), levels)
    expected = formulation.pointwise_loss(den, x0, noise, levels).mean()
    assert torch.equal(out.total, expected)
    reg = FakeRegularizer()
    zero = diffusion_loss(formulation, net, x0, regularizer=reg, lambda_spec=0.0,
                          generator=torch.Generator().manual_seed(7))
    assert torch.equal(zero.total, expected) and reg.calls == []
    assert set(out.parts) == {"diffusion", "spectral"} and float(out.parts["spectral"]) == 0.0
    assert torch.equal(out.parts["diffusion"], expected.detach())
    assert torch.equal(out.x0_hat, den.x0_hat.detach())


def test_ddpm_standard_objective_is_eps_mse():
    """Independent of pointwise_loss: Ho et al.'s L_simple written from scratch."""
    net, x0 = TinyNet(), data()
    ddpm = DDPM()
    out = diffusion_loss(ddpm, net, x0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)[t].float().view(-1, 1, 1, 1)
    expected = (net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float()) - eps).pow(2).mean()
    torch.testing.assert_close(out.total, expected)


class TinyVocoder(nn.Module):
    """A 1-D convolution conditioned on the step and a "mel" tensor, like DiffWave's ``model(audio, t, mel)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(1, 1, 5, padding=2)
        self.step = nn.Parameter(torch.tensor(0.02))

    def forward(self, x: torch.Tensor, t: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.step * t.float().view(-1, 1, 1) + mel.mean(dim=1, keepdim=True).repeat_interleave(
            x.shape[-1] // mel.shape[-1], dim=-1)


def test_ddpm_l1_objective_is_lmnts_diffwave_loss():
    """With DiffWave's schedule and loss="l1", the objective (value and parameter gradients) is the loss of LMNT's
    DiffWave trainer, written out here from its description: noise levels ``cumprod(1 - beta)`` in float32,
    ``noisy = sqrt(level_t) audio + sqrt(1 - level_t) noise`` and ``nn.L1Loss()(noise, predicted.squeeze(1))``."""
    g = torch.Generator().manual_seed(5)
    audio, mel = torch.rand((3, 64), generator=g) * 2 - 1, torch.rand((3, 8, 4), generator=g)  # LMNT: (N, T)
    ours_net, lmnt_net = TinyVocoder(), TinyVocoder()
    ddpm = make_formulation("ddpm", num_steps=50, beta_start=1e-4, beta_end=0.05, loss="l1")
    ours = diffusion_loss(ddpm, ours_net, audio.unsqueeze(1), cond={"mel": mel},
                          generator=torch.Generator().manual_seed(9))
    ours.total.backward()
    # LMNT's training step with the same draws (step t first, then the noise, as our objective documents)
    draws = torch.Generator().manual_seed(9)
    t = torch.randint(0, 50, (3,), generator=draws)
    noise = torch.randn((3, 1, 64), generator=draws).squeeze(1)
    noise_level = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.05, 50)).astype(np.float32))
    scale = noise_level[t].unsqueeze(1)
    noisy = scale**0.5 * audio + (1.0 - scale) ** 0.5 * noise
    predicted = lmnt_net(noisy.unsqueeze(1), t, mel)
    lmnt = nn.L1Loss()(noise, predicted.squeeze(1))
    lmnt.backward()
    torch.testing.assert_close(ours.total, lmnt)
    for a, b in zip(ours_net.parameters(), lmnt_net.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    squared = diffusion_loss(make_formulation("ddpm", num_steps=50, beta_end=0.05), ours_net, audio.unsqueeze(1),
                             cond={"mel": mel}, generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(squared.total, lmnt)  # the default (squared error) is not LMNT's loss


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_conditioning_is_refused_by_name(bad):
    """A NaN mel reached the network unchecked and gave a NaN loss without an error: now it is named, as x0 is."""
    audio, mel = torch.zeros(2, 1, 64), torch.rand(2, 8, 4)
    mel[1, 3, 2] = bad
    with pytest.raises(ValueError, match=r"cond\['mel'\] contains 1 NaN or infinite value\(s\)"):
        diffusion_loss(DDPM(num_steps=50), TinyVocoder(), audio, cond={"mel": mel})
    ok = diffusion_loss(DDPM(num_steps=50), TinyVocoder(), audio, cond={"mel": mel.nan_to_num(0.0, 0.0, 0.0)})
    assert torch.isfinite(ok.total)
    labels = torch.tensor([[0, 1], [1, 0]])  # integer tensors (and other values) pass through unchecked
    net = TinyNet()
    out = diffusion_loss(DDPM(), lambda x, t, class_labels: net(x, t), data()[:2], cond={"class_labels": labels})
    assert torch.isfinite(out.total)


@pytest.mark.parametrize("weighting", ["none", "formulation"])
def test_spectral_term_on_x0_hat_at_the_sampled_level(weighting):
    net, x0 = TinyNet(), data()
    edm = EDM()
    reg = FakeRegularizer()
    out = diffusion_loss(edm, net, x0, regularizer=reg, lambda_spec=0.3, spectral_weighting=weighting,
                         generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    sigma = edm.sample_levels(4, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    den = edm.denoise(net, edm.corrupt(x0, sigma, noise), sigma)
    assert len(reg.calls) == 1
    torch.testing.assert_close(reg.calls[0][0], den.x0_hat)  # the one-step estimate, not x_t or eps
    assert reg.calls[0][1] is x0
    spectral = FakeRegularizer()(den.x0_hat, x0).total
    if weighting == "formulation":
        spectral = (sigma**2 + 0.25) / (sigma * 0.5) ** 2 * spectral  # lambda_EDM(sigma)
    expected = (edm.pointwise_loss(den, x0, noise, sigma) + 0.3 * spectral).mean()
    torch.testing.assert_close(out.total, expected)
    assert set(out.parts) == {"diffusion", "spectral", "amplitude", "other"}
    torch.testing.assert_close(out.parts["spectral"], spectral.mean().detach())
    assert not out.parts["spectral"].requires_grad and out.total.requires_grad


def test_spectral_term_changes_the_parameter_gradients():
    x0 = data()
    grads = []
    for regularizer in (None, FakeRegularizer()):
        net = TinyNet()
        loss = diffusion_loss(DDPM(), net, x0, regularizer=regularizer, lambda_spec=1.0,
                              generator=torch.Generator().manual_seed(5)).total
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    difference = (grads[0] - grads[1]).norm() / grads[0].norm()
    assert float(difference) > 1e-3


def test_cond_is_passed_to_the_model():
    net, x0 = TinyNet(), data()
    base = diffusion_loss(DDPM(), net, x0, generator=torch.Generator().manual_seed(1))
    scaled = diffusion_loss(DDPM(), net, x0, cond={"scale_by": 0.0}, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(base.total, scaled.total)
    # A zero network output makes the eps-loss the mean squared noise.
    g = torch.Generator().manual_seed(1)
    DDPM().sample_levels(4, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    torch.testing.assert_close(scaled.total, noise.pow(2).mean())


def test_real_spectral_regularizer_if_available():
    spectral = pytest.importorskip("spectral_lib.spectral")
    if not hasattr(spectral, "SpectralRegularizer"):
        pytest.skip("spectral_lib.spectral.SpectralRegularizer is not there yet")
    reg = spectral.SpectralRegularizer.from_name("wavelet")
    out = diffusion_loss(EDM(), TinyNet(), data(), regularizer=reg, spectral_weighting="formulation",
                         generator=torch.Generator().manual_seed(2))
    assert out.total.shape == () and torch.isfinite(out.total) and float(out.parts["spectral"]) > 0


def test_make_formulation():
    assert FORMULATIONS == ("ddpm", "ddim", "edm")
    assert isinstance(make_formulation("ddpm", num_steps=50), DDPM)
    assert make_formulation("ddim", eta=0.5).eta == 0.5
    assert make_formulation("edm", sigma_data=1.0).sigma_data == 1.0
    with pytest.raises(ValueError, match="unknown formulation 'score_sde'; valid: 'ddpm', 'ddim', 'edm'"):
        make_formulation("score_sde")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['eta'\] for formulation 'ddpm'"):
        make_formulation("ddpm", eta=0.0)


def test_objective_errors():
    net, x0 = TinyNet(), data()
    with pytest.raises(ValueError, match="unknown spectral_weighting 'snr'"):
        diffusion_loss(DDPM(), net, x0, spectral_weighting="snr")
    with pytest.raises(ValueError, match="lambda_spec must be finite and >= 0"):
        diffusion_loss(DDPM(), net, x0, lambda_spec=-1.0)
    with pytest.raises(ValueError, match="x0 contains 1 NaN"):
        diffusion_loss(DDPM(), net, x0.clone().index_put_((torch.tensor([0]),) * 4, torch.tensor(float("nan"))))
    with pytest.raises(ValueError, match=r"x0 must be 3-D \(B, C, T\) or 4-D \(B, C, H, W\)"):
        diffusion_loss(DDPM(), net, x0[0, 0])
    with pytest.raises(ValueError, match="cond must be a mapping"):
        diffusion_loss(DDPM(), net, x0, cond=[1])
    bad = lambda a, b: SimpleNamespace(total=a.mean(), terms={})  # noqa: E731
    with pytest.raises(ValueError, match=r"regularizer\(...\).total must be a \(4,\) tensor"):
        diffusion_loss(DDPM(), net, x0, regularizer=bad)
