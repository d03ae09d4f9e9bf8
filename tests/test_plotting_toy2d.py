"""Figures of chapter 4 (spectral_lib.plotting.toy2d): what they draw, their titles and labels, clear errors, and no
pyplot state."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from figure_texts import figure_texts as _texts  # tests/figure_texts.py

from spectral_lib.data.toy2d import TOY2D_DATASETS, points_to_signal, sample_toy2d
from spectral_lib.plotting import toy2d as figures
from spectral_lib.plotting.core import BookFigure


def _offsets(ax, k: int = 0) -> np.ndarray:
    return np.asarray(ax.collections[k].get_offsets())


@pytest.fixture
def points() -> torch.Tensor:
    return sample_toy2d("eight_gaussians", 200, generator=torch.Generator().manual_seed(0))


def test_toy_datasets_draws_each_cloud_and_marks_the_one_used(points):
    clouds = {name: sample_toy2d(name, 100, generator=torch.Generator().manual_seed(1)) for name in TOY2D_DATASETS}
    fig = figures.toy_datasets(clouds, used="two_moons")
    assert isinstance(fig, BookFigure) and len(fig.axes) == len(TOY2D_DATASETS)
    assert "two_moons (used below)" in _texts(fig) and fig._suptitle.get_text() == "The toy data sets, 100 points each"
    np.testing.assert_allclose(_offsets(fig.axes[0]), clouds["eight_gaussians"].numpy())
    assert fig.axes[0].get_xlim() == (-figures.DATA_LIMIT, figures.DATA_LIMIT)
    with pytest.raises(ValueError, match="clouds is empty"):
        figures.toy_datasets({})


def test_forward_process_grid_limits_and_signals(points):
    rows = {"DDPM": {"t = 0": points, "t = 500": points_to_signal(points * 3)},  # (N, 2, 1) signals are fine
            "EDM": {"σ = 80": points * 100}}
    fig = figures.forward_process(rows, "forward", limits={"DDPM": 3.5})
    assert len(fig.axes) == 4 and not fig.axes[3].axison  # the EDM row has one panel, the rest is blank
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim() == (-3.5, 3.5)  # shared by the DDPM row
    edm_limit = fig.axes[2].get_xlim()[1]
    assert edm_limit == pytest.approx(1.1 * float((points * 100).abs().max()))  # EDM: fits its cloud
    np.testing.assert_allclose(_offsets(fig.axes[1]), (points * 3).numpy(), rtol=1e-6)
    assert "DDPM\n$x_2$" in _texts(fig) and "σ = 80" in _texts(fig)
    with pytest.raises(ValueError, match=r"\(N, 2\) points"):
        figures.forward_process({"bad": {"p": torch.zeros(5, 3)}}, "bad")
    with pytest.raises(ValueError, match="non-empty"):
        figures.forward_process({"empty": {}}, "bad")


def test_schedules_has_four_labelled_views():
    t = torch.arange(1000)
    alpha_bar = torch.linspace(0.9999, 1e-4, 1000)
    sigma = ((1 - alpha_bar) / alpha_bar).sqrt()
    levels = {"DDPM": sigma[torch.randint(1000, (500,))], "EDM": torch.randn(500).mul(1.2).sub(1.2).exp()}
    fig = figures.schedules(t, {"linear": alpha_bar}, {"linear": sigma}, {"DDIM, 10 steps": sigma[::100].flip(0)},
                            levels, sigma_data=0.5)
    assert len(fig.axes) == 4
    texts = _texts(fig)
    assert "$\\bar\\alpha_t$: how much signal is left" in texts and "levels drawn for training" in texts
    assert "count (of 500)" in texts and "$\\sigma_t$ (log scale)" in texts
    assert fig.axes[1].get_yscale() == "log" and fig.axes[3].get_xscale() == "log"
    assert len(fig.axes[3].patches) == 2  # one step histogram per formulation
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(), sigma[::100].flip(0).numpy(), rtol=1e-6)


def test_running_mean_and_loss_curves():
    values = torch.arange(10.0)
    torch.testing.assert_close(figures.running_mean(values, 4), torch.arange(1.5, 8.5, dtype=torch.float64))
    torch.testing.assert_close(figures.running_mean(values[:2], 4), values[:2].double())
    with pytest.raises(ValueError, match="window"):
        figures.running_mean(values, 0)
    fig = figures.loss_curves({"DDPM": values + 1, "EDM": [2.0, 1.0, 0.5]}, window=2)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    assert "DDPM training loss (running mean of 2)" in _texts(fig) and "training step" in _texts(fig)
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [1.5, 0.75])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_xdata(), [2, 3])  # a mean ends at its last step


def test_estimates_and_samples_grids_draw_on_the_data(points):
    estimates = {"DDPM": {"t = 11": points * 0.5, "t = 930": points * 50}, "EDM": {"σ = 80": points * 0}}
    fig = figures.estimates_grid(points, estimates, "x0_hat")
    assert len(fig.axes) == 4 and not fig.axes[3].axison
    np.testing.assert_allclose(_offsets(fig.axes[0], 0), points.numpy())  # grey data first
    np.testing.assert_allclose(_offsets(fig.axes[0], 1), (points * 0.5).numpy(), rtol=1e-6)
    assert fig.axes[1].get_xlim() == (-figures.DATA_LIMIT, figures.DATA_LIMIT)  # on the data's axes
    assert "t = 930" in _texts(fig) and fig._suptitle.get_text() == "x0_hat"
    grid = figures.samples_grid(points, {"uniform": {"5 steps": points}}, "budget")
    assert grid._suptitle.get_text() == "budget"


def test_sampling_paths_thins_long_paths_and_keeps_the_end(points):
    path = torch.cumsum(torch.randn(1001, 3, 2) * 0.01, 0)
    short = torch.randn(6, 3, 2)
    fig = figures.sampling_paths(points, {"DDPM": (points, path), "EDM": (points, short)}, max_drawn_steps=100)
    assert len(fig.axes) == 4
    ddpm_lines = fig.axes[0].get_lines()
    first_path = ddpm_lines[0]  # the polyline of path 0, then its start and end markers
    assert len(first_path.get_xdata()) == len(range(0, 1000, 10)) + 1
    np.testing.assert_allclose(ddpm_lines[2].get_xydata()[0], path[-1, 0].numpy(), rtol=1e-6)  # the end
    assert "DDPM\n3 paths, every 10th step drawn" in _texts(fig) and "EDM\n3 paths" in _texts(fig)
    assert "EDM\n200 samples" in _texts(fig) and fig.axes[1].get_legend() is not None
    with pytest.raises(ValueError, match="path must be"):
        figures.sampling_paths(points, {"bad": (points, torch.zeros(5, 2))})
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []
