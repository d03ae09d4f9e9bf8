"""spectral_lib.plotting.checkerboard: the figures and tables of chapters 5 and 6."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figure_texts import figure_texts as _texts  # tests/figure_texts.py

from spectral_lib.data.checkerboard import sample_checkerboards
from spectral_lib.experiments.ablation import floored_radial_spectrum, mean_power_map
from spectral_lib.experiments.profiles import get_profile
from spectral_lib.plotting import checkerboard as figures
from spectral_lib.plotting.core import BookFigure, make_grid

SCORES = {"hf_ratio": 0.91, "spectral_distance": 1.234, "binary_share": 0.85, "ideal_agreement": 0.9183,
          "clean_share": 0.39, "contrast": 0.8, "ideal_mae": 0.1}


@pytest.fixture
def boards() -> torch.Tensor:
    return sample_checkerboards(16, 32, (4,), generator=torch.Generator().manual_seed(0))


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_figures_are_book_figures_with_titles_and_labels_and_leave_pyplot_alone(boards):
    before = plt.get_fignums()
    models = {"baseline (MSE only)": boards * 0.5, "Haar wavelet": boards}
    spectra = {"data": floored_radial_spectrum(boards, boards), "Haar": floored_radial_spectrum(boards * 0.5, boards)}
    curves = {"Haar wavelet": [(0.1, SCORES, 0.15), (1.0, SCORES, 0.17)]}
    made = [
        figures.grid_rows([[("data", boards), ("baseline", boards)]], "Samples"),
        figures.row_profiles(models),
        figures.board_spectra(spectra, 0.25, floor=1e-3),
        figures.power_maps({"data": mean_power_map(boards)}, 1e-3),
        figures.lambda_tradeoff(curves, (SCORES, 0.145)),
        figures.pointwise_price({"Haar wavelet": [(0.1, 0.15), (1.0, 0.17)]}, 0.145),
        figures.loss_curves({"DDPM": [{"step": 10, "diffusion": 0.5}, {"step": 20, "diffusion": 0.2}]}),
    ]
    assert plt.get_fignums() == before, "no figure may be registered with pyplot"
    for fig in made:
        assert isinstance(fig, BookFigure) and fig._suptitle is not None or fig.axes[0].get_title()
        assert len(_texts(fig)) >= 2
        assert fig.get_size_inches()[0] <= 10.5, "wider figures are shrunk on the page until unreadable"
    profiles = made[1]
    assert [ax.get_title() for ax in _visible_axes(profiles)] == list(models)
    assert all(ax.get_xlabel() == "column (px)" for ax in _visible_axes(profiles))
    assert figures.board_spectra(spectra, 0.25, floor=1e-3).axes[0].get_legend() is not None
    tradeoff = made[4]
    assert [ax.get_xscale() for ax in _visible_axes(tradeoff)] == ["log"] * 5
    assert "pointwise loss, end of training" in _texts(tradeoff)


def test_row_profiles_draw_the_sample_row_and_its_nearest_ideal_board(boards):
    fig = figures.row_profiles({"data": boards}, (4,), index=3, row=5)
    lines = fig.axes[0].get_lines()
    ideal, sample = lines[0].get_ydata(), lines[1].get_ydata()
    np.testing.assert_array_equal(sample, boards[3, 0, 5].numpy())
    np.testing.assert_array_equal(ideal, boards[3, 0, 5].numpy())  # an ideal board is its own nearest board
    assert "Row 5 of sample 3" in fig._suptitle.get_text()


def test_grid_rows_lays_out_rows_with_empty_cells_and_fits_the_page(boards):
    rows = [[("a", boards[:8]), ("b", boards[:8]), ("c", boards[:8])], [("d", boards[:8]), None]]
    fig = figures.grid_rows(rows, "Grid", row_labels=["first", "second"])
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    assert not axes[1, 1].axison and not axes[1, 2].axison  # None and the missing third cell are blank
    assert axes[0, 0].get_ylabel() == "first" and axes[1, 0].get_ylabel() == "second"
    np.testing.assert_array_equal(axes[1, 0].get_images()[0].get_array(), make_grid(boards[:8], nrow=4))
    assert "8 samples, 4 across, 32×32 px" in fig._suptitle.get_text()
    wide = figures.grid_rows([[(str(i), boards) for i in range(8)]], "Wide")
    assert wide.get_size_inches()[0] <= 10.0 + 1e-9
    width, height = fig.get_size_inches()
    assert height < width, "two rows of 2:1 grids need less height than width: no empty bands"
    long = figures.grid_rows([[("Fourier amp. + phase, additive (ours)", boards)]], "T", panel=2.0)
    assert "\n" in long.axes[0].get_title()  # wrapped to the panel
    with pytest.raises(ValueError, match="at least one panel"):
        figures.grid_rows([[None]], "empty")


def test_power_maps_share_one_log_colour_scale(boards):
    maps = {"data": mean_power_map(boards), "half": mean_power_map(boards * 0.5)}
    fig = figures.power_maps(maps, 1e-3)
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(images) == 2 and len({im.get_clim() for im in images}) == 1
    low, high = images[0].get_clim()
    assert low == pytest.approx(-3) and high == pytest.approx(np.log10(float(maps["data"].max())))
    assert any("log10 power" in ax.get_ylabel() for ax in fig.axes)  # the colour bar


def test_scores_table_orders_and_formats_the_six_scores():
    table = figures.scores_table({"baseline": SCORES})
    assert table["header"] == ["", "HF ratio (1 = data)", "spectral distance (decades)", "near ±1", "agreement",
                               "clean boards", "contrast"]
    assert table["rows"] == [["baseline", 0.91, 1.234, 0.85, 0.9183, 0.39, 0.8]]
    assert table["formats"][4] == ".3f"
    sweep = figures.sweep_table([("Haar wavelet", 0.3, SCORES, 0.1601, 123.4)])
    assert sweep["header"] == ["regularizer", "λ", "spectral distance (decades)", "near ±1", "agreement",
                               "clean boards", "pointwise loss"]
    assert sweep["rows"][0] == ["Haar wavelet", 0.3, 1.234, 0.85, 0.9183, 0.39, 0.1601]
    assert sweep["formats"][1] == "g"
    sampler = figures.sampler_table([("DDPM, ancestral", "baseline", SCORES, 0.02)])
    assert sampler["rows"][0][:2] == ["DDPM, ancestral", "baseline"] and len(sampler["header"]) == 7
    assert len(figures.scores_table({"a": SCORES}, keys=("clean_share",))["header"]) == 2
    with pytest.raises(ValueError, match="unknown score keys"):
        figures.scores_table({"a": SCORES}, keys=("sharpness",))
    with pytest.raises(ValueError, match="lacks the scores"):
        figures.scores_table({"x": {"hf_ratio": 1.0}})
    with pytest.raises(ValueError, match="row 0"):
        figures.scores_table([(("a", "b"), SCORES, ())])


def test_tables_render_through_book_table(monkeypatch):
    from spectral_lib import book

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    book.table(**figures.scores_table([(("baseline",), SCORES, (61.7,))], trailing=[("wall (s)", ".0f")]))
    assert "| baseline | 0.91 | 1.23 | 0.85 | 0.918 | 0.39 | 0.80 | 62 |" in shown[0]


def test_seed_table_lists_every_seed_with_dashes_for_missing_ones():
    check = {"baseline": {0: SCORES, 1: {**SCORES, "clean_share": 0.43}},
             "Fourier amplitude": {0: {**SCORES, "clean_share": 0.45}}}
    table = figures.seed_table(check)
    assert table["header"] == ["", "clean boards, seeds 0 / 1", "agreement, seeds 0 / 1"]
    assert table["rows"] == [["baseline", "0.39 / 0.43", "0.918 / 0.918"],
                             ["Fourier amplitude", "0.45 / –", "0.918 / –"]]


def test_setup_and_runs_tables_say_what_the_profile_trains(tmp_path):
    config = get_profile("checkerboard", "cpu")
    table = figures.setup_table(config, 160_000)
    cells = dict(table["rows"])
    assert cells["network"].endswith("0.16 M parameters") and "800 steps" in cells["training"]
    assert table["header"] == ["", "profile cpu"]

    class Run:
        out_dir = tmp_path / "checkerboard-cpu-edm-none-lam1-seed0"
        wall_time = 126.0

    runs = figures.runs_table({"baseline": Run()}, {Run.out_dir.name: "shipped"})
    assert runs["rows"] == [["baseline", "shipped", 2.1]]
