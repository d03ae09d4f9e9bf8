"""Figures: grids tile the right pixels, every figure has a title and labelled axes, saving is atomic."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from spectral_lib import plotting


def _labelled(fig: Figure) -> None:
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    assert fig.get_suptitle() or all(ax.get_title() for ax in axes)
    for ax in axes:
        assert ax.get_ylabel(), "every panel has a y label"
    assert any(ax.get_xlabel() for ax in axes)


def test_make_grid_places_each_image():
    x = torch.stack([torch.full((1, 2, 3), v) for v in (-1.0, 0.0, 1.0)])  # grayscale, values -1, 0, 1
    grid = plotting.make_grid(x, nrow=2, padding=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    np.testing.assert_allclose(grid[1:3, 1:4], 0.0)  # -1 -> black
    np.testing.assert_allclose(grid[1:3, 5:8], 0.5)  # 0 -> grey
    np.testing.assert_allclose(grid[4:6, 1:4], 1.0)  # 1 -> white
    np.testing.assert_allclose(grid[0], 1.0)  # white padding
    rgb = torch.zeros(1, 3, 2, 2)
    rgb[0, 0] = 1.0  # red channel at max, others at mid-grey
    np.testing.assert_allclose(plotting.make_grid(rgb, padding=0)[0, 0], [1.0, 0.5, 0.5])


def test_make_grid_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"samples must be \(B, 1, H, W\).*got shape \(2, 2, 4, 4\)"):
        plotting.make_grid(torch.zeros(2, 2, 4, 4))


def test_sample_grid_and_compare_grids_are_labelled():
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    fig = plotting.sample_grid(x, nrow=3, title="baseline")
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "baseline"
    _labelled(fig)
    fig2 = plotting.compare_grids({"data": x, "wavelet": x.flip(0)}, title="32 px checkerboards")
    assert [ax.get_title() for ax in fig2.axes] == ["data", "wavelet"]
    _labelled(fig2)


def test_radial_spectra_log_scale_reference_first():
    f = np.linspace(0, 0.5, 10)
    fig = plotting.plot_radial_spectra({"baseline": (f, f + 1), "haar": (f, f + 2)}, reference=(f, f + 3))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "cycles/pixel" in ax.get_xlabel()
    assert [line.get_label() for line in ax.get_lines()] == ["data", "baseline", "haar"]
    assert ax.get_lines()[0].get_linestyle() == "--"
    _labelled(fig)
    with pytest.raises(ValueError, match="reference 'x' is not one of"):
        plotting.plot_radial_spectra({"a": (f, f)}, reference="x")


def test_waveform_and_spectrogram():
    sr = 8000
    t = torch.arange(sr) / sr
    wave = torch.sin(2 * torch.pi * 1000 * t)
    fig = plotting.plot_waveform(torch.stack([wave, -wave]), sample_rate=sr, title="two tones")
    assert len(fig.axes) == 2 and fig.axes[-1].get_xlabel() == "time (s)"
    _labelled(fig)
    spec = plotting.plot_spectrogram(wave, sr, n_fft=256, hop_length=64)
    ax = spec.axes[0]
    assert ax.get_ylabel() == "frequency (kHz)"
    image = ax.get_images()[0].get_array()
    peak_bin = int(np.asarray(image).mean(axis=1).argmax())
    assert peak_bin == round(1000 / (sr / 256))  # the 1 kHz tone is the brightest row
    _labelled(spec)
    with pytest.raises(ValueError, match="fewer than n_fft"):
        plotting.plot_spectrogram(wave[:100], sr, n_fft=256)


def test_save_figure_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    fig = plotting.sample_grid(torch.zeros(4, 1, 4, 4))
    path = plotting.save_figure(fig, tmp_path / "figs" / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("renderer died")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer died"):
        plotting.save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_plotting_does_not_touch_pyplot_or_the_backend():
    backend = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    plotting.sample_grid(torch.zeros(1, 1, 2, 2))
    if backend is None:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        assert matplotlib.get_backend() == backend


def test_figures_render_as_png_in_jupyter_without_pyplot():
    fig = plotting.plot_radial_spectra({"a": (np.arange(4), np.arange(4) + 1.0)})
    assert isinstance(fig, plotting.BookFigure) and isinstance(fig, Figure)
    from IPython.core.formatters import PNGFormatter

    png = PNGFormatter()(fig)  # what a notebook shows for the last expression of a cell
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
