"""Checkerboards: ideal boards against a NumPy reference, sampler statistics, the nearest-board fit and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectral_lib.data.checkerboard import (
    CheckerboardDataset,
    CheckerboardSource,
    checkerboard,
    checkerboard_metrics,
    nearest_ideal_checkerboard,
    sample_checkerboards,
)


def numpy_board(h: int, w: int, s: int, dy: int, dx: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    even = ((i + dy) // s + (j + dx) // s) % 2 == 0
    return np.where(even, high, low)


@pytest.mark.parametrize("size,s,offset", [(8, 2, (0, 0)), (12, 3, (1, 5)), ((6, 10), 4, (7, 2))])
def test_checkerboard_matches_numpy(size, s, offset):
    h, w = (size, size) if isinstance(size, int) else size
    got = checkerboard(size, s, offset, low=-0.5, high=0.75)
    assert got.shape == (h, w)
    np.testing.assert_array_equal(got.numpy(), numpy_board(h, w, s, *offset, -0.5, 0.75).astype(np.float32))


def test_offset_by_check_size_swaps_polarity():
    a = checkerboard(8, 2, (0, 0))
    assert torch.equal(checkerboard(8, 2, (2, 0)), -a)
    assert torch.equal(checkerboard(8, 2, (2, 2)), a)


def test_sample_checkerboards_shape_values_and_determinism():
    g = torch.Generator().manual_seed(3)
    x = sample_checkerboards(16, 16, (2, 4), channels=3, generator=g)
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    y = sample_checkerboards(16, 16, (2, 4), channels=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, y)
    # every sample is an exact board of one of the check sizes
    fit = nearest_ideal_checkerboard(x, (2, 4))
    assert torch.equal(fit.board, x)
    assert set(fit.check_size.tolist()) <= {2, 4}


def test_random_offsets_cover_both_polarities_and_fixed_offsets_do_not():
    g = torch.Generator().manual_seed(0)
    x = sample_checkerboards(200, 8, (2,), generator=g)
    corner = x[:, 0, 0, 0]
    assert 0.3 < float((corner > 0).float().mean()) < 0.7
    x0 = sample_checkerboards(10, 8, (2,), random_offsets=False, generator=g)
    assert torch.equal(x0, checkerboard(8, 2).expand(10, 1, 8, 8))


def test_random_colours_per_channel_in_range_and_pairs():
    g = torch.Generator().manual_seed(1)
    x = sample_checkerboards(32, 8, (2,), channels=3, colours="random", generator=g)
    assert x.min() >= -1 and x.max() <= 1
    for img in x:
        for ch in img:
            vals = ch.unique()
            assert len(vals) == 2 and vals[0] <= -0.2 and vals[1] >= 0.2
    x = sample_checkerboards(32, 8, (2,), colours=[(-0.5, 0.5), (0.0, 1.0)], generator=g)
    pairs = {tuple(img.unique().tolist()) for img in x}
    assert pairs <= {(-0.5, 0.5), (0.0, 1.0)} and len(pairs) == 2


def test_dataset_and_source():
    ds = CheckerboardDataset(5, 8, (2,), seed=7)
    assert len(ds) == 5 and ds[0].shape == (1, 8, 8)
    assert torch.equal(CheckerboardDataset(5, 8, (2,), seed=7)[4], ds[4])
    src = CheckerboardSource(size=8, check_sizes=(2,), channels=2)
    a = src.sample(4, generator=torch.Generator().manual_seed(0))
    b = src.sample(4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 2, 8, 8) and torch.equal(a, b)
    assert src.shape == (2, 8, 8)


def test_nearest_ideal_checkerboard_recovers_parameters_under_noise():
    g = torch.Generator().manual_seed(0)
    board = checkerboard(16, 4, (5, 3)).view(1, 1, 16, 16)
    noisy = board + 0.3 * torch.randn(board.shape, generator=g)
    fit = nearest_ideal_checkerboard(noisy, (2, 4, 8))
    assert int(fit.check_size) == 4
    assert torch.equal(fit.board, board)
    # brute force reference over every offset in [0, 2s)^2, NumPy
    errs = [np.abs(numpy_board(16, 16, s, dy, dx) - noisy[0, 0].numpy()).mean()
            for s in (2, 4, 8) for dy in range(2 * s) for dx in range(2 * s)]
    assert float(fit.error) == pytest.approx(min(errs), abs=1e-6)


def test_nearest_board_with_fitted_colours():
    x = checkerboard(12, 3, (1, 2), low=0.1, high=0.6).view(1, 1, 12, 12)
    fit = nearest_ideal_checkerboard(x, (3,), None, None)
    assert float(fit.error) < 1e-6
    assert sorted([float(fit.low), float(fit.high)]) == pytest.approx([0.1, 0.6])


def test_metrics_ideal_blurred_grey():
    g = torch.Generator().manual_seed(0)
    x = sample_checkerboards(8, 16, (4,), generator=g)
    m = checkerboard_metrics(x, (4,))
    assert m == pytest.approx(
        {"binary_share": 1.0, "ideal_mae": 0.0, "ideal_agreement": 1.0, "clean_share": 1.0, "contrast": 1.0}
    )
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    mb = checkerboard_metrics(blurred, (4,))
    assert mb["binary_share"] < 0.5 and mb["ideal_mae"] > 0.3 and mb["contrast"] < 0.6
    assert mb["ideal_agreement"] == 1.0  # blur keeps each pixel on its side of the midpoint
    assert mb["clean_share"] == 1.0  # so every blurred board still counts as clean: read it with binary_share
    grey = checkerboard_metrics(torch.zeros(2, 1, 16, 16), (4,))
    assert grey["binary_share"] == 0.0 and grey["ideal_mae"] == pytest.approx(1.0) and grey["contrast"] == 0.0


def test_metrics_binary_share_counts_pixels_within_tolerance():
    x = checkerboard(8, 2).view(1, 1, 8, 8).clone()
    x[0, 0, 0, :4] = 0.85  # within 0.2 of +1: near a checker value (even where the board says -1)
    x[0, 0, 1, :3] = 0.5  # 0.5 away from +1, 1.5 from -1: not near either
    assert checkerboard_metrics(x, (2,))["binary_share"] == pytest.approx(61 / 64)
    assert checkerboard_metrics(x, (2,), tolerance=0.5)["binary_share"] == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ValueError, match="check_size"):
        checkerboard(8, 0)
    with pytest.raises(ValueError, match="size"):
        sample_checkerboards(2, -3)
    with pytest.raises(ValueError, match="check_sizes"):
        sample_checkerboards(2, 8, ())
    with pytest.raises(ValueError, match="colours"):
        sample_checkerboards(2, 8, colours="rainbow")
    with pytest.raises(ValueError, match="x must be 4-D"):
        nearest_ideal_checkerboard(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="low and high"):
        checkerboard_metrics(torch.zeros(1, 1, 8, 8), low=None, high=1.0)


def test_data_package_exports_resolve_and_do_not_shadow_submodules():
    import importlib

    import spectral_lib.data as data

    for name in data.__all__:
        assert getattr(data, name) is getattr(importlib.import_module(f"spectral_lib.data.{data._EXPORTS[name]}"),
                                              name)
    import spectral_lib.data.checkerboard as module

    assert module.__name__ == "spectral_lib.data.checkerboard"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        data.nothing  # noqa: B018


def test_edge_distance_errors_against_a_direct_count():
    import numpy as np

    from spectral_lib.data.checkerboard import edge_distance_errors, nearest_ideal_checkerboard

    g = torch.Generator().manual_seed(5)
    boards = sample_checkerboards(6, 24, (4, 6), generator=g)
    x = (boards + 0.3 * torch.randn(boards.shape, generator=g)).clamp(-1, 1)
    fit = nearest_ideal_checkerboard(x, (4, 6))
    per_sample = np.full((6, 3), np.nan)
    for k in range(6):
        s, dy, dx = int(fit.check_size[k]), int(fit.dy[k]), int(fit.dx[k])
        err = np.abs(x[k, 0].numpy() - fit.board[k, 0].numpy())
        for d in range(3):
            picked = [err[i, j] for i in range(24) for j in range(24)
                      if min(min((i + dy) % s, s - 1 - (i + dy) % s), min((j + dx) % s, s - 1 - (j + dx) % s)) == d]
            if picked:
                per_sample[k, d] = np.mean(picked)
    expected = np.nanmean(per_sample, axis=0)
    np.testing.assert_allclose(edge_distance_errors(x, (4, 6)).numpy(), expected, rtol=1e-5)
    assert edge_distance_errors(boards, (4, 6)).abs().max() == 0  # ideal boards: no error anywhere
    blurred = edge_distance_errors((boards + torch.roll(boards, 1, dims=-1)) / 2, (4, 6))
    assert blurred[0] > blurred[1] >= 0  # a shifted average errs on the edges, not inside the checks
    with pytest.raises(ValueError, match="samples"):
        edge_distance_errors(boards[0])
