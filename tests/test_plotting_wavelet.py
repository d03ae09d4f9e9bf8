"""Figures of chapter 3 (spectral_lib.plotting.wavelet): the numbers they draw against PyWavelets, their titles and
labels, and no pyplot state."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import pywt
import torch

from spectral_lib.data.checkerboard import checkerboard
from spectral_lib.plotting import wavelet as figures
from spectral_lib.plotting.core import BookFigure
from spectral_lib.spectral import wavelet_loss


def _texts(fig) -> list[str]:
    found = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return [t for t in found if t]


def _no_pyplot_figures() -> bool:
    plt = sys.modules.get("matplotlib.pyplot")
    return plt is None or plt.get_fignums() == []


@pytest.fixture
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 32, 32, generator=g) * 2 - 1


def test_two_lenses_draws_pywavelets_details_per_level():
    n = np.arange(64)
    plateau = np.where((n >= 20) & (n < 37), 1.0, -1.0)
    fig = figures.two_lenses(plateau, 3, edges=(19.5, 36.5))
    assert isinstance(fig, BookFigure) and len(fig.axes) == 2 + 3
    expected = pywt.wavedec(plateau, "haar", level=3, mode="periodization")[1:]  # d3, d2, d1
    for ax, detail in zip(fig.axes[2:], expected):
        heights = [bar.get_height() for bar in ax.patches]
        widths = {bar.get_width() for bar in ax.patches}
        np.testing.assert_allclose(heights, detail)
        assert widths == {64 / detail.size}  # each coefficient drawn over the samples it covers
        assert len(ax.get_lines()) >= 2  # the two edges
    texts = _texts(fig)
    assert "Fourier amplitude: spread, no position" in texts and "level 1" in texts and "level 3" in texts
    assert "position n (samples); red: the edges" in texts
    with pytest.raises(ValueError, match="signal must be"):
        figures.two_lenses(np.zeros((4, 4)), 2)


def test_mosaic_array_tiles_like_pywavelets_and_scales_each_band(image):
    coeffs = pywt.wavedec2(image[0, 0].double().numpy(), "haar", level=3, mode="periodization")
    mosaic, labels = figures.mosaic_array(coeffs)
    array, slices = pywt.coeffs_to_array(coeffs)
    assert mosaic.shape == array.shape
    assert [name for _, name in labels] == ["a3", "h3", "v3", "d3", "h2", "v2", "d2", "h1", "v1", "d1"]
    a = mosaic[slices[0]]
    assert a.min() == pytest.approx(-1) and a.max() == pytest.approx(1)
    assert np.abs(mosaic).max() <= 1 + 1e-12
    for band_slices, name in labels[1:]:  # each detail band keeps its sign pattern (positive scaling)
        np.testing.assert_array_equal(np.sign(mosaic[band_slices])[np.abs(mosaic[band_slices]) < 1],
                                      np.sign(array[band_slices])[np.abs(mosaic[band_slices]) < 1])
    flat = pywt.wavedec2(np.full((16, 16), 0.3), "haar", level=2, mode="periodization")
    flat_mosaic, flat_labels = figures.mosaic_array(flat)
    for band_slices, _ in flat_labels[1:]:  # a constant image has no detail: grey (0) everywhere
        assert np.all(flat_mosaic[band_slices] == 0)


def test_image_figures_have_titles_labels_and_no_pyplot_state(image):
    fig = figures.subband_mosaic(image, 2)
    assert "haar DWT, 2 levels" in fig.axes[0].get_title() and "coefficient index (rows)" in _texts(fig)
    assert len(fig.axes[0].texts) == 1 + 3 * 2  # one label per band
    grid = figures.image_grid({"a": image, "b": image[0, 0], "c": image.numpy()[0, 0], "d": image}, "edits",
                              ncols=3)
    assert len(grid.axes) == 6 and [ax.get_title() for ax in grid.axes[:4]] == ["a", "b", "c", "d"]
    assert not grid.axes[4].axison and not grid.axes[5].axison and grid._suptitle.get_text() == "edits"
    taps = figures.filter_taps(("haar", "bior1.3"))
    assert len(taps.axes) == 8 and "bior1.3: synthesis low-pass" in _texts(taps)
    stems = taps.axes[4].containers[0]  # bior1.3 analysis low-pass
    np.testing.assert_allclose(stems.markerline.get_ydata(), pywt.Wavelet("bior1.3").dec_lo)
    with pytest.raises(ValueError, match="panels is empty"):
        figures.image_grid({}, "nothing")
    with pytest.raises(ValueError, match="an image must be"):
        figures.image_grid({"bad": torch.zeros(3)}, "bad")
    assert _no_pyplot_figures()


@pytest.mark.parametrize("level", [1, 2])
def test_detail_error_map_is_the_summed_pywavelets_detail_difference(image, level):
    target = checkerboard(32, 4, (1, 1)).view(1, 1, 32, 32)
    got = figures.detail_error_map(image, target, level, levels=3)
    diff = (image - target)[0, 0].double().numpy()  # the DWT is linear
    details = pywt.wavedec2(diff, "haar", level=3, mode="reflect")[1:][3 - level]
    expected = sum(np.abs(d) for d in details)
    assert got.shape == expected.shape == (32 // 2**level, 32 // 2**level)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="level 4 is not among"):
        figures.detail_error_map(image, target, 4, levels=3)


def test_where_is_the_error_places_the_error_in_the_shifted_half():
    board = checkerboard(32, 4, (1, 1)).view(1, 1, 32, 32)
    half = board.clone()
    half[..., :16] = torch.roll(board, 1, dims=-1)[..., :16]
    fig = figures.where_is_the_error(half, board, levels=(1, 2))
    assert len(fig.axes) == 4 + 3  # four panels, three colour bars
    texts = _texts(fig)
    assert "Fourier lens: |ΔX(f)|, no position axis" in texts and "$f_x$ (cycles/pixel)" in texts
    assert "wavelet lens: haar level 2 detail error" in texts and "|ΔH| + |ΔV| + |ΔD|" in texts
    (ax,) = [ax for ax in fig.axes if ax.get_title() == "wavelet lens: haar level 1 detail error"]
    level_1 = ax.images[0].get_array()  # 16 x 16 coefficients
    assert np.abs(level_1[:, 8:]).max() == 0 and np.abs(level_1[:, :8]).max() > 1
    assert list(ax.images[0].get_extent()) == [0, 32, 32, 0]  # drawn on the image's pixel grid


def test_band_relative_errors_against_pywavelets(image):
    blurred = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    got = figures.band_relative_errors(blurred, image, levels=2)
    assert list(got) == ["a2", "h2", "v2", "d2", "h1", "v1", "d1"]
    ref = pywt.wavedec2(image[0, 0].double().numpy(), "haar", level=2, mode="reflect")
    out = pywt.wavedec2(blurred[0, 0].double().numpy(), "haar", level=2, mode="reflect")
    flat_ref = [ref[0], *ref[1], *ref[2]]
    flat_out = [out[0], *out[1], *out[2]]
    expected = [np.abs(o - r).mean() / np.abs(r).mean() for o, r in zip(flat_out, flat_ref)]
    np.testing.assert_allclose(list(got.values()), expected, rtol=1e-4)
    assert all(v == 0 for v in figures.band_relative_errors(image, image, levels=2).values())
    fig = figures.band_damage(image, {"3×3 box blur": blurred}, levels=2)
    (label,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert label == f"3×3 box blur: Eq. 16 total {wavelet_loss(blurred, image, levels=2).item():.3f}"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(got)
    np.testing.assert_allclose([bar.get_height() for bar in fig.axes[0].patches], list(got.values()), rtol=1e-6)
    with pytest.raises(ValueError, match="variants is empty"):
        figures.band_damage(image, {})
