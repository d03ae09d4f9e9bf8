"""Figure modules of chapters 1 and 2 (spectral_lib.plotting.blur, spectral_lib.plotting.fourier)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from figure_texts import figure_texts as _texts  # tests/figure_texts.py

from spectral_lib.data.checkerboard import checkerboard
from spectral_lib.plotting import blur, fourier
from spectral_lib.plotting.core import BookFigure


@pytest.fixture
def boards() -> torch.Tensor:
    return torch.stack([checkerboard(16, 4, (dy, dx)) for dy in range(8) for dx in range(4)]).unsqueeze(1)


def test_log_power_map_matches_numpy(boards):
    expected = np.log10(np.maximum(np.fft.fftshift((np.abs(np.fft.fft2(boards.numpy(), norm="ortho")) ** 2)
                                                   .mean(axis=(0, 1))), 1e-6))
    np.testing.assert_allclose(blur.log_power_map(boards).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_chapter_1_figures_have_titles_and_labels(boards):
    alpha_bar = torch.linspace(0.9, 0.01, 1000)
    means = {10: boards[:4], 900: boards[:4] * 0.1}
    noisy = {t: m + 0.1 for t, m in means.items()}
    freqs = torch.fft.rfftfreq(1000, d=1 / 8000)
    clip = torch.sin(torch.arange(1000) / 3.0)
    figures = [
        blur.board_gallery(boards, n=4),
        blur.posterior_panels(noisy, means, alpha_bar),
        blur.peak_spectra(boards, means),
        blur.two_answers({"commit": boards[:1], "hedge": boards[:3].mean(0, keepdim=True)}),
        blur.jitter_average(freqs, torch.ones_like(freqs, dtype=torch.complex64), 0.2, {"clip": clip}),
        blur.same_mse({"clean": boards[:1], "shaded": boards[:1] + 0.1}, boards[:1]),
    ]
    for fig in figures:
        assert isinstance(fig, BookFigure) and fig._suptitle is not None or fig.axes[0].get_title()
        assert len(_texts(fig)) >= 2
    assert "E[$x_0$ | $x_t$]" in _texts(figures[1]) and "t = 900" in " ".join(_texts(figures[1]))
    assert figures[0].axes[0].get_title() == "board 0" and len(figures[0].axes) == 4


def test_chapter_2_figures_use_the_library_filters(monkeypatch):
    photo = torch.rand(1, 1, 32, 32) * 2 - 1
    calls = []
    from spectral_lib.spectral import fourier as spectral_fourier

    real = spectral_fourier.lowpass
    monkeypatch.setattr(fourier, "lowpass", lambda x, c: calls.append(c) or real(x, c))
    fig = fourier.cutoff_grid(photo, (0.05, 0.25))
    assert calls == [0.05, 0.25] and len(fig.axes) == 4
    assert "low-pass, |f| ≤ 0.05" in _texts(fig) and "high-pass, |f| > 0.25" in _texts(fig)
    fig = fourier.amplitude_and_phase(photo)
    assert "phase $\\varphi(f)$ (radians)" in _texts(fig) and "$f_x$ (cycles/pixel)" in _texts(fig)
    fig = fourier.image_row({"a": photo, "b": photo[0, 0]}, "row", pixel_axes=True)
    assert _texts(fig)[0] == "row" and "x (pixels)" in _texts(fig)
    with pytest.raises(ValueError, match="panels is empty"):
        fourier.image_row({}, "nothing")
