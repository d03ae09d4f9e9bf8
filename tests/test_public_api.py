"""The public API promised in the README works as written."""

from __future__ import annotations

import torch

import spectral_lib


def test_readme_five_lines_on_a_ddpm_step(generator):
    x0 = torch.rand(4, 1, 16, 16, generator=generator) * 2 - 1
    eps = torch.randn(x0.shape, generator=generator)
    alpha_bar = torch.full((4, 1, 1, 1), 0.7)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    eps_pred = (eps + 0.1 * torch.randn(x0.shape, generator=generator)).requires_grad_()

    spectral = spectral_lib.SpectralRegularizer.from_name("wavelet")
    x0_hat = (x_t - (1 - alpha_bar).sqrt() * eps_pred) / alpha_bar.sqrt()
    mse = (eps_pred - eps).pow(2).mean()
    loss = mse + 1.0 * spectral(x0_hat, x0).total.mean()
    loss.backward()

    assert loss.item() > mse.item() > 0
    assert torch.isfinite(eps_pred.grad).all() and eps_pred.grad.abs().sum() > 0


def test_every_name_in_all_resolves():
    for name in spectral_lib.__all__:
        assert getattr(spectral_lib, name) is not None, name


def test_diffusion_loss_from_the_top_level(generator):
    model = lambda x, noise_cond: torch.zeros_like(x)  # noqa: E731
    x0 = torch.rand(2, 1, 8, 8, generator=generator)
    out = spectral_lib.diffusion_loss(
        spectral_lib.DDPM(), model, x0, regularizer=spectral_lib.SpectralRegularizer.from_name("fourier_amp"),
        generator=generator,
    )
    assert set(out.parts) >= {"diffusion", "spectral"}
    assert out.total.item() > out.parts["diffusion"].item()


def test_lazy_packages_import_each_name_from_its_submodule_on_first_use():
    import subprocess
    import sys

    import pytest

    import spectral_lib.data as data
    import spectral_lib.metrics as metrics
    from spectral_lib.data import checkerboard
    from spectral_lib.experiments import run
    from spectral_lib.metrics import fid

    assert data.sample_checkerboards is checkerboard.sample_checkerboards and metrics.fid_score is fid.fid_score
    assert spectral_lib.run_experiment is run.run_experiment
    assert {"sample_checkerboards", "download_dataset"} <= set(dir(data)) and "run_experiment" in dir(spectral_lib)
    for package in (spectral_lib, data, metrics):
        with pytest.raises(AttributeError, match=rf"module '{package.__name__}' has no attribute 'no_such_name'"):
            package.no_such_name  # noqa: B018
    code = "import sys, spectral_lib.data.checkerboard; print('PIL' in sys.modules, 'librosa' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"], "importing one submodule pulls in the others' dependencies"
