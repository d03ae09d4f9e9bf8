"""SpectralRegularizer: config parsing, presets, per-sample totals equal to the weighted functional terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectral_lib.spectral import (
    PAPER_REGULARIZERS,
    SPECTRAL_REGULARIZERS,
    RegularizerOutput,
    SpectralRegularizer,
    fourier_amplitude_loss,
    fourier_loss,
    fourier_phase_loss,
    mrstft_loss,
    wavelet_loss,
)


@pytest.fixture
def images(generator):
    return torch.randn(3, 2, 16, 16, generator=generator), torch.randn(3, 2, 16, 16, generator=generator)


def test_total_is_weighted_sum_of_terms(images):
    x0_hat, x0 = images
    reg = SpectralRegularizer(
        {"fourier_amp": 0.5, "fourier_phase": {"weight": 0.25, "weighting": "none"},
         "wavelet": {"weight": 2.0, "wavelet": "bior1.3", "levels": 2}}
    )
    out = reg(x0_hat, x0)
    assert isinstance(out, RegularizerOutput)
    assert list(out.terms) == ["fourier_amp", "fourier_phase", "wavelet"]
    expected = {
        "fourier_amp": fourier_amplitude_loss(x0_hat, x0, reduction="none"),
        "fourier_phase": fourier_phase_loss(x0_hat, x0, weighting="none", reduction="none"),
        "wavelet": wavelet_loss(x0_hat, x0, wavelet="bior1.3", levels=2, reduction="none"),
    }
    for name, value in expected.items():
        torch.testing.assert_close(out.terms[name], value)
        assert out.terms[name].shape == (3,)
    total = 0.5 * expected["fourier_amp"] + 0.25 * expected["fourier_phase"] + 2.0 * expected["wavelet"]
    torch.testing.assert_close(out.total, total)


def test_fourier_amp_phase_is_eq_15_as_printed(images):
    """The paper's name computes the paper's formula: mean|A - A_hat| * (1 + mean|wrap(phi - phi_hat)|) per sample,
    both means over channels and the full 2-D spectrum (NumPy's fftn, unitary), the phase difference in (-pi, pi]."""
    x0_hat, x0 = (t.double() for t in images)
    a = np.fft.fftn(x0.numpy(), axes=(-2, -1), norm="ortho")
    a_hat = np.fft.fftn(x0_hat.numpy(), axes=(-2, -1), norm="ortho")
    amplitude = np.abs(np.abs(a_hat) - np.abs(a)).mean(axis=(1, 2, 3))
    dphi = np.angle(a_hat * np.conj(a))  # in (-pi, pi]
    expected = amplitude * (1 + np.abs(dphi).mean(axis=(1, 2, 3)))
    got = SpectralRegularizer.from_name("fourier_amp_phase")(x0_hat, x0).total
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    safe = SpectralRegularizer.from_name("fourier_amp_phase_safe")(x0_hat, x0).total
    assert not np.allclose(safe.numpy(), expected), "the safe variant is a different loss"


def test_presets(images, generator):
    x0_hat, x0 = images
    assert SPECTRAL_REGULARIZERS == ("none", "fourier_amp", "fourier_amp_phase", "fourier_amp_phase_safe", "wavelet",
                                     "wavelet_bior13", "mrstft")
    assert set(PAPER_REGULARIZERS) == {"fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13"}
    torch.testing.assert_close(
        SpectralRegularizer.from_name("fourier_amp")(x0_hat, x0).total, fourier_amplitude_loss(x0_hat, x0, reduction="none")
    )
    torch.testing.assert_close(
        SpectralRegularizer.from_name("fourier_amp_phase")(x0_hat, x0).total,
        fourier_loss(x0_hat, x0, coupling="product", reduction="none"),
    )
    torch.testing.assert_close(
        SpectralRegularizer.from_name("fourier_amp_phase_safe")(x0_hat, x0).total,
        fourier_loss(x0_hat, x0, coupling="additive", reduction="none"),
    )
    torch.testing.assert_close(
        SpectralRegularizer.from_name("wavelet")(x0_hat, x0).total,
        wavelet_loss(x0_hat, x0, wavelet="haar", levels=3, reduction="none"),
    )
    bior = SpectralRegularizer.from_name("wavelet_bior13", levels=2, weight=3.0)(x0_hat, x0)
    torch.testing.assert_close(bior.total, 3.0 * wavelet_loss(x0_hat, x0, wavelet="bior1.3", levels=2, reduction="none"))
    audio = torch.randn(2, 1, 2048, generator=generator), torch.randn(2, 1, 2048, generator=generator)
    torch.testing.assert_close(
        SpectralRegularizer.from_name("mrstft")(*audio).terms["mrstft"], mrstft_loss(*audio, reduction="none")
    )


def test_none_returns_differentiable_zeros(images):
    x0_hat, x0 = images
    x0_hat = x0_hat.clone().requires_grad_(True)
    reg = SpectralRegularizer.from_name("none")
    out = reg(x0_hat, x0)
    assert out.terms == {} and out.total.shape == (3,) and out.total.dtype == torch.float32
    assert torch.equal(out.total, torch.zeros(3))
    out.total.sum().backward()
    assert torch.equal(x0_hat.grad, torch.zeros_like(x0_hat))
    assert reg(x0_hat.double(), x0.double()).total.dtype == torch.float64
    assert reg(x0_hat.detach().bfloat16(), x0).total.dtype == torch.float32


def test_gradients_flow_and_autocast(images):
    x0_hat, x0 = images
    x0_hat = x0_hat.clone().requires_grad_(True)
    reg = SpectralRegularizer({"fourier": 1.0, "wavelet": 1.0})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = reg(x0_hat.bfloat16(), x0)
    assert out.total.dtype == torch.float32
    out.total.mean().backward()
    assert x0_hat.grad is not None and torch.isfinite(x0_hat.grad).all() and x0_hat.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SpectralRegularizer.from_name("haar"), r"unknown spectral regularizer 'haar'; valid: 'none', 'fourier_amp'"),
        (lambda: SpectralRegularizer({"fft": 1.0}), "unknown spectral term 'fft'; valid: 'fourier_amp'"),
        (lambda: SpectralRegularizer({"wavelet": {"level": 2}}), r"unknown option\(s\) \['level'\]"),
        (lambda: SpectralRegularizer({"wavelet": -1.0}), "weight of spectral term 'wavelet'"),
        (lambda: SpectralRegularizer({"wavelet": "haar"}), "must map to a weight or a dict"),
        (lambda: SpectralRegularizer({"fourier": {"reduction": "sum"}}), "'reduction' is fixed"),
        (lambda: SpectralRegularizer.from_name("none", levels=3), "takes no options"),
        (lambda: SpectralRegularizer.from_name("fourier_amp", levels=3), r"unknown option\(s\) \['levels'\]"),
        (lambda: SpectralRegularizer([("fourier", 1.0)]), "terms must be a mapping"),
    ],
)
def test_config_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_call_errors_name_x0_hat():
    reg = SpectralRegularizer.from_name("fourier_amp")
    with pytest.raises(ValueError, match="x0_hat and x0 must have the same shape"):
        reg(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 4))
    with pytest.raises(ValueError, match="x0_hat contains"):
        reg(torch.full((2, 1, 8, 8), float("nan")), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="levels=3 is too deep"):
        SpectralRegularizer.from_name("wavelet_bior13")(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))


def test_validates_once_with_the_terms_ranks(generator):
    reg = SpectralRegularizer({"wavelet": 1.0, "mrstft": {"fft_sizes": (64,), "hop_sizes": (16,), "win_lengths": (64,)}})
    assert reg.ranks == (3,)
    with pytest.raises(ValueError, match="x0_hat must be 3-D"):
        reg(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))
    audio = torch.randn(2, 1, 256, generator=generator), torch.randn(2, 1, 256, generator=generator)
    out = reg(*audio)
    torch.testing.assert_close(out.terms["wavelet"], wavelet_loss(*audio, reduction="none"))
    assert SpectralRegularizer({"fourier": 1.0}).ranks == (3, 4)
    with pytest.raises(ValueError, match="levels must be an integer"):  # option values still checked by the term
        SpectralRegularizer({"wavelet": {"levels": 0}})(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))


def test_loss_benchmark_runs_every_term_at_tiny_size():
    from spectral_lib.bench.losses import format_table, time_losses

    rows = time_losses(batch=2, channels=1, size=16, repeats=1, warmup=0)
    names = [row["name"] for row in rows]
    assert names[0] == "mse" and "mrstft" in names and "wavelet bior1.3, 2 levels" in names
    assert all(row["ms"] > 0 and row["ratio_vs_mse"] > 0 for row in rows)
    assert rows[names.index("mrstft")]["shape"] == (2, 1, 2048)
    assert "fourier_amp_phase (additive)" in format_table(rows)
