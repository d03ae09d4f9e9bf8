"""The Hugging Face diffusers integration: our x̂₀ equals the schedulers' own ``pred_original_sample``, the spectral
term adds in one line, and a tiny ``UNet2DModel`` trains with it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip(
    "diffusers", reason='the diffusers integration needs the optional extra: pip install "spectral-diffusion-book[diffusers]"'
)

from spectral_lib.integrations import diffusers as hf  # noqa: E402
from spectral_lib.spectral import SpectralRegularizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T = 1000
TIMESTEPS = (0, 1, 37, 500, 998, T - 1)
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")


def fft_amplitude_l1(x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """A local stand-in regularizer: per-sample mean |(|FFT x̂₀| - |FFT x₀|)|, shape (B,)."""
    a_hat = torch.fft.rfft2(x0_hat, norm="ortho").abs()
    a = torch.fft.rfft2(x0, norm="ortho").abs()
    return (a_hat - a).abs().flatten(1).mean(dim=1)


def make(name: str, prediction_type: str, **kwargs):
    cls = getattr(diffusers, name)
    scheduler = cls(num_train_timesteps=T, prediction_type=prediction_type, clip_sample=False, thresholding=False,
                    **kwargs)
    if name == "DDIMScheduler":
        scheduler.set_timesteps(50)  # DDIM's step refuses to run without it; x̂₀ does not depend on it
    return scheduler


# ------------------------------------------------------------------------------------------------ x0_hat


@pytest.mark.parametrize("prediction_type", hf.PREDICTION_TYPES)
@pytest.mark.parametrize("scheduler_name", SCHEDULERS)
def test_x0_equals_scheduler_pred_original_sample(scheduler_name, prediction_type, generator):
    scheduler = make(scheduler_name, prediction_type)
    sample = torch.randn(3, 2, 8, 8, generator=generator)
    model_output = torch.randn(3, 2, 8, 8, generator=generator)
    for t in TIMESTEPS:
        reference = scheduler.step(model_output, t, sample, generator=generator).pred_original_sample
        ours = hf.x0_from_scheduler(scheduler, model_output, sample, torch.full((3,), t))
        torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prediction_type", hf.PREDICTION_TYPES)
def test_x0_per_sample_timesteps_match_one_step_each(prediction_type, generator):
    """A batch with a different timestep per sample equals the scheduler's step applied to each sample alone."""
    scheduler = make("DDPMScheduler", prediction_type)
    sample = torch.randn(len(TIMESTEPS), 1, 8, 8, generator=generator)
    model_output = torch.randn(len(TIMESTEPS), 1, 8, 8, generator=generator)
    ours = hf.x0_from_scheduler(scheduler, model_output, sample, torch.tensor(TIMESTEPS))
    for i, t in enumerate(TIMESTEPS):
        reference = scheduler.step(model_output[i : i + 1], t, sample[i : i + 1]).pred_original_sample
        torch.testing.assert_close(ours[i : i + 1], reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prediction_type", hf.PREDICTION_TYPES)
def test_x0_recovers_x0_from_the_exact_target(prediction_type, generator):
    """Closed form: feeding the true target (ε, v or x₀) through add_noise's corruption gives x₀ back (float64)."""
    scheduler = make("DDPMScheduler", prediction_type)
    x0 = torch.rand(4, 1, 8, 8, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 10, 600, T - 1])
    alpha_bar = scheduler.alphas_cumprod.double()[t].view(-1, 1, 1, 1)
    noisy = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    target = {"epsilon": noise, "v_prediction": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0,
              "sample": x0}[prediction_type]
    x0_hat = hf.x0_from_prediction(target, noisy, t, scheduler.alphas_cumprod.double(), prediction_type)
    assert x0_hat.dtype == torch.float64
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-9)
    # and diffusers' own target helpers agree with the formulas above
    torch.testing.assert_close(hf.prediction_target(scheduler, x0, noise, t), target, rtol=0, atol=1e-12)


def test_x0_keeps_clipping_out_even_when_the_scheduler_clips(generator):
    """The loss needs the raw estimate: with clip_sample=True the scheduler clips, we do not."""
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, clip_sample=True)
    sample = torch.randn(2, 1, 4, 4, generator=generator) * 3
    model_output = torch.randn(2, 1, 4, 4, generator=generator)
    clipped = scheduler.step(model_output, T - 1, sample).pred_original_sample
    ours = hf.x0_from_scheduler(scheduler, model_output, sample, T - 1)
    assert clipped.abs().max() <= 1.0 < ours.abs().max()
    torch.testing.assert_close(ours.clamp(-1, 1), clipped)


def test_x0_learned_variance_uses_the_first_half_of_the_channels(generator):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=T, variance_type="learned_range", clip_sample=False)
    sample = torch.randn(2, 3, 4, 4, generator=generator)
    model_output = torch.randn(2, 6, 4, 4, generator=generator)
    reference = scheduler.step(model_output, 200, sample).pred_original_sample
    torch.testing.assert_close(hf.x0_from_scheduler(scheduler, model_output, sample, 200), reference)


def test_x0_is_differentiable_in_the_model_output():
    scheduler = make("DDPMScheduler", "v_prediction")
    out = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    sample = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([3, 700])
    ab = scheduler.alphas_cumprod.double()
    assert torch.autograd.gradcheck(lambda o: hf.x0_from_prediction(o, sample, t, ab, "v_prediction"), (out,))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_edm_x0_equals_edm_euler_pred_original_sample(prediction_type, generator):
    sample = torch.randn(2, 1, 8, 8, generator=generator)
    model_output = torch.randn(2, 1, 8, 8, generator=generator)
    for i in (0, 4, 9):
        scheduler = diffusers.EDMEulerScheduler(prediction_type=prediction_type)
        scheduler.set_timesteps(10)
        t = scheduler.timesteps[i]
        scheduler.scale_model_input(sample, t)
        reference = scheduler.step(model_output, t, sample).pred_original_sample
        ours = hf.x0_from_edm_scheduler(scheduler, model_output, sample, scheduler.sigmas[i].expand(2))
        torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_x0_errors_name_the_argument():
    scheduler = make("DDPMScheduler", "epsilon")
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 999\]"):
        hf.x0_from_scheduler(scheduler, x, x, torch.tensor([0, T]))
    with pytest.raises(ValueError, match="timesteps must be integers"):
        hf.x0_from_scheduler(scheduler, x, x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"timesteps must have shape \(2,\)"):
        hf.x0_from_scheduler(scheduler, x, x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="model_output and sample must have the same shape"):
        hf.x0_from_scheduler(scheduler, torch.zeros(2, 1, 4, 5), x, 3)
    with pytest.raises(ValueError, match="unknown prediction_type 'x0'"):
        hf.x0_from_prediction(x, x, 3, scheduler.alphas_cumprod, "x0")
    with pytest.raises(ValueError, match="alphas_cumprod must be a 1-D float tensor"):
        hf.x0_from_prediction(x, x, 3, torch.arange(10), "epsilon")
    with pytest.raises(ValueError, match="got EulerDiscreteScheduler"):
        hf.x0_from_scheduler(diffusers.EulerDiscreteScheduler(), x, x, 3)
    with pytest.raises(ValueError, match="use x0_from_edm_scheduler"):
        hf.x0_from_scheduler(diffusers.EDMEulerScheduler(), x, x, 3)
    with pytest.raises(ValueError, match="sigmas must be > 0"):
        hf.x0_from_edm_scheduler(diffusers.EDMEulerScheduler(), x, x, torch.tensor([1.0, 0.0]))


# ------------------------------------------------------------------------------------------------ the loss


def test_spectral_training_loss_adds_lambda_times_the_term(generator):
    x0 = torch.randn(4, 1, 8, 8, generator=generator)
    x0_hat = torch.randn(4, 1, 8, 8, generator=generator)
    pointwise = torch.rand(4, generator=generator)
    out = hf.spectral_training_loss(pointwise, x0_hat, x0, fft_amplitude_l1, lambda_spec=0.3)
    spectral = fft_amplitude_l1(x0_hat, x0)
    torch.testing.assert_close(out.total, pointwise.mean() + 0.3 * spectral.mean())
    torch.testing.assert_close(out.parts["spectral"], spectral.mean())
    assert set(out.parts) == {"diffusion", "spectral"}
    # per-sample λ (the paper's "weighted" variant)
    lam = torch.tensor([0.0, 1.0, 2.0, 3.0])
    weighted = hf.spectral_training_loss(pointwise, x0_hat, x0, fft_amplitude_l1, lambda_spec=lam)
    torch.testing.assert_close(weighted.total, (pointwise + lam * spectral).mean())


def test_spectral_training_loss_without_a_term_is_the_plain_loss(generator):
    x0 = torch.randn(2, 1, 4, 4, generator=generator)
    pointwise = torch.rand(2, generator=generator)

    def must_not_run(a, b):
        raise AssertionError("the regularizer must not be evaluated")

    for kwargs in ({"regularizer": None}, {"regularizer": must_not_run, "lambda_spec": 0.0}):
        out = hf.spectral_training_loss(pointwise, x0, x0, **kwargs)
        assert torch.equal(out.total, pointwise.mean()) and set(out.parts) == {"diffusion"}
    with pytest.raises(ValueError, match="lambda_spec must be finite and >= 0"):
        hf.spectral_training_loss(pointwise, x0, x0, fft_amplitude_l1, lambda_spec=-1.0)
    with pytest.raises(ValueError, match=r"pointwise must be a scalar or have shape \(2,\)"):
        hf.spectral_training_loss(torch.rand(3), x0, x0, fft_amplitude_l1)


def test_spectral_training_loss_with_the_library_regularizer(generator):
    reg = SpectralRegularizer.from_name("wavelet")
    x0 = torch.randn(2, 1, 16, 16, generator=generator)
    x0_hat = torch.randn(2, 1, 16, 16, generator=generator)
    out = hf.spectral_training_loss(torch.zeros(2), x0_hat, x0, reg, lambda_spec=2.0)
    expected = reg(x0_hat, x0)
    torch.testing.assert_close(out.total, 2.0 * expected.total.mean())
    assert set(expected.terms) <= set(out.parts)


# ------------------------------------------------------------------------------------------------ training


def test_a_tiny_unet2d_trains_with_the_spectral_term():
    """A few steps of a tiny UNet2DModel: finite loss, parameters move, and the spectral term has a gradient."""
    profile = hf.get_diffusers_profile("smoke", steps=3, batch_size=4, log_every=1)
    torch.manual_seed(0)
    unet = hf.make_unet(profile)
    scheduler = hf.make_scheduler("v_prediction")
    x0 = torch.sign(torch.randn(4, 1, profile.size, profile.size, generator=torch.Generator().manual_seed(0)))

    # the spectral term alone has a nonzero gradient on the network
    out = hf.training_step(unet, scheduler, x0, regularizer=fft_amplitude_l1, lambda_spec=1.0,
                           generator=torch.Generator().manual_seed(1))
    plain = hf.training_step(unet, scheduler, x0, regularizer=None, generator=torch.Generator().manual_seed(1))
    spectral_only = out.total - plain.total  # same draws: the difference is λ · L_S
    assert float(spectral_only.detach()) > 0
    grads = torch.autograd.grad(spectral_only, [p for p in unet.parameters()], allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0

    class Fixed:
        def sample(self, batch_size, generator=None):
            return x0[:batch_size]

    before = [p.detach().clone() for p in unet.parameters()]
    trained = hf.train_unet(unet, scheduler, Fixed(), profile, regularizer=fft_amplitude_l1,
                            generator=torch.Generator().manual_seed(2))
    assert len(trained.history) == 3
    assert all(torch.isfinite(torch.tensor(h["loss"])) and h["spectral"] > 0 for h in trained.history)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, trained.unet.parameters()))
    samples = hf.ddim_sample(trained.ema_unet, scheduler, 2, steps=3, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (2, 1, profile.size, profile.size) and bool(torch.isfinite(samples).all())


def test_profiles_and_their_errors():
    assert set(hf.DIFFUSERS_PROFILES) == {"smoke", "cpu", "gpu"}
    for p in hf.DIFFUSERS_PROFILES.values():
        assert p.size % 2 ** (len(p.block_out_channels) - 1) == 0
        assert all(c % p.norm_num_groups == 0 for c in p.block_out_channels)
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        hf.get_diffusers_profile("laptop")
    with pytest.raises(ValueError, match=r"unknown profile key\(s\) \['step'\]"):
        hf.get_diffusers_profile("smoke", step=3)


# ------------------------------------------------------------------------------------------------ the example


def test_example_script_runs(tmp_path):
    path = ROOT / "examples" / "train_diffusers.py"
    spec = importlib.util.spec_from_file_location("train_diffusers_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        code = module.main(["--steps", "3", "--size", "16", "--batch-size", "4", "--sample-steps", "2",
                            "--n-samples", "4", "--regularizer", "wavelet", "--prediction-type", "epsilon",
                            "--out", str(tmp_path), "--device", "cpu"])
    finally:
        sys.modules.pop(spec.name, None)
    assert code == 0
    assert (tmp_path / "samples.png").stat().st_size > 0
    samples = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert samples.shape == (4, 1, 16, 16)


@pytest.mark.parametrize("scheduler_name", SCHEDULERS)
def test_gap_to_scheduler_is_zero_and_refuses_clipping(scheduler_name):
    scheduler = make(scheduler_name, "v_prediction")
    assert hf.gap_to_scheduler(scheduler, generator=torch.Generator().manual_seed(0)) < 1e-6
    clipping = getattr(diffusers, scheduler_name)(clip_sample=True)
    with pytest.raises(ValueError, match="clip_sample=False and thresholding=False"):
        hf.gap_to_scheduler(clipping)


@pytest.mark.parametrize("prediction_type", hf.PREDICTION_TYPES)
def test_x0_error_gain_matches_a_perturbed_prediction(prediction_type, generator):
    scheduler = make("DDPMScheduler", prediction_type)
    ab = scheduler.alphas_cumprod.double()
    t = torch.tensor([0, 250, 999])
    sample = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    out = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    delta = 1e-3 * torch.ones_like(out)
    change = hf.x0_from_prediction(out + delta, sample, t, ab, prediction_type) - hf.x0_from_prediction(
        out, sample, t, ab, prediction_type)
    gain = hf.x0_error_gain(ab, prediction_type)[t]
    torch.testing.assert_close(change.abs().amax(dim=(1, 2, 3)) / 1e-3, gain, rtol=1e-6, atol=0)


def test_module_imports_without_diffusers_and_says_what_to_install(monkeypatch):
    """With diffusers missing, the module still imports; the first function that needs it names the extra."""
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` raise ImportError
    name = "spectral_lib.integrations._diffusers_without_diffusers"
    spec = importlib.util.spec_from_file_location(name, Path(hf.__file__))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    x = torch.zeros(1, 1, 2, 2)
    assert module.x0_from_prediction(x, x, 0, torch.ones(3), "sample").shape == x.shape  # pure torch still works
    with pytest.raises(ImportError, match=r'pip install "spectral-diffusion-book\[diffusers\]"'):
        module.make_scheduler("epsilon")
