"""spectral_lib.plotting.images: the figures of chapter 7 (shapes, titles and labels, widths, no pyplot state)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from spectral_lib.diffusion import EDM
from spectral_lib.metrics.spectrum import radial_power_spectrum
from spectral_lib.plotting import images as figures
from spectral_lib.plotting.core import BookFigure


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _texts(fig) -> list[str]:
    found = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in found if t]


def test_figures_are_book_figures_with_titles_labels_and_a_readable_width(x):
    before = plt.get_fignums()
    spectra = {"baseline": radial_power_spectrum(x), "HAAR (weighted)": radial_power_spectrum(x * 0.5)}
    made = [
        figures.edm_weight(EDM()),
        figures.data_spectrum(*radial_power_spectrum(x), (-2.0, 0.0)),
        figures.spectrum_ratios(spectra, radial_power_spectrum(x), {"weighted": ["baseline", "HAAR (weighted)"]}),
        figures.hf_ratios({"baseline": 1.0, "AMP (unweighted)": (0.9, 0.05), "AMP (weighted)": (1.4, 0.1)}),
        figures.crops({"a": x[0, :, :4, :4], "b": x[1, :, :4, :4]}, title="crops", context=(x[0], (0, 0, 4))),
        figures.sample_panels({"data": x, "baseline": x}, title="Samples"),
    ]
    assert plt.get_fignums() == before, "no figure may be registered with pyplot"
    for fig in made:
        assert isinstance(fig, BookFigure) and len(_texts(fig)) >= 2
        assert fig.get_size_inches()[0] <= figures.MAX_WIDTH + 1e-9
    for fig in made[:4]:
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel()


def test_spectrum_ratios_draw_the_log_ratio_with_the_baseline_first_in_black(x):
    spectra = {"baseline": radial_power_spectrum(x), "half": radial_power_spectrum(x * 0.5),
               "double": radial_power_spectrum(x * 2)}
    fig = figures.spectrum_ratios(spectra, radial_power_spectrum(x),
                                  {"left": ["baseline", "half"], "right": ["baseline", "double"]})
    left, right = fig.axes[:2]
    assert [ax.get_title() for ax in (left, right)] == ["left", "right"]
    lines = [line for line in left.lines if line.get_label() in spectra]
    assert lines[0].get_label() == "baseline" and lines[0].get_color() == "k"
    assert np.allclose(lines[0].get_ydata(), 0.0)
    assert np.allclose(lines[1].get_ydata(), np.log10(0.25))  # half the amplitude = a quarter of the power
    assert np.allclose(next(ln for ln in right.lines if ln.get_label() == "double").get_ydata(), np.log10(4.0))
    with pytest.raises(ValueError, match="without a spectrum"):
        figures.spectrum_ratios(spectra, radial_power_spectrum(x), {"x": ["baseline", "missing"]})
    with pytest.raises(ValueError, match="none empty"):
        figures.spectrum_ratios(spectra, radial_power_spectrum(x), {"x": []})


def test_crops_wrap_into_rows_and_panels_pack_models(x):
    pieces = {f"model {i}": x[i, :, :4, :4] for i in range(12)}
    fig = figures.crops(pieces, title="crops", context=(x[0], (2, 3, 4)), ncols=6)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 18 and len(visible) == 13  # 13 panels in 3 rows of 6
    assert visible[0].get_title().startswith("where") and visible[0].patches
    assert visible[0].patches[0].get_xy() == (3 - 0.5, 2 - 0.5)
    panels = figures.sample_panels({f"m{i}": x for i in range(6)}, title="Samples", ncols=4)
    assert len([ax for ax in panels.axes if ax.axison and ax.images]) == 6
    assert "16 samples, 4 across, 16×16 px" in panels._suptitle.get_text()
    with pytest.raises(ValueError, match="grids is empty"):
        figures.sample_panels({}, title="none")


def test_hf_ratio_bars_colour_baselines_and_weighted_models(x):
    fig = figures.hf_ratios({"baseline": 1.0, "HAAR (unweighted)": 0.9, "HAAR (weighted)": (1.5, 0.1)})
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 3) for b in bars] == [1.0, 0.9, 1.5]
    colours = [tuple(np.round(b.get_facecolor()[:3], 2)) for b in bars]
    assert colours[0] == (0.0, 0.0, 0.0) and colours[1] != colours[2]


def test_data_spectrum_draws_the_fit():
    f = torch.arange(9, dtype=torch.float64) / 16
    p = torch.cat([torch.tensor([1.0]), f[1:] ** -2.0])
    fig = figures.data_spectrum(f, p, (-2.0, 0.0))
    data, fit = fig.axes[0].lines
    assert np.allclose(fit.get_ydata(), data.get_ydata()) and "-2.00" in fit.get_label()
