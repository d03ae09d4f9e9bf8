"""Procedural checkerboards: the paper's headline toy, and the numbers that say "blurred" or "crisp".

The paper trains on 64x64 grayscale checkerboards and shows that the pointwise (MSE) baseline produces grey,
smoothed squares while the spectral term keeps edges sharp; it gives no other detail of the data. Our setup
(every choice is a parameter):

* **size**: square images of ``size`` pixels (32 in the ``cpu`` profile, 64 as in the paper);
* **check size**: drawn uniformly from ``check_sizes`` for each image (default ``(4,)``: one size, so that the
  spectrum of the data has sharp peaks a model must reproduce);
* **offset**: ``(dy, dx)`` drawn uniformly from ``[0, 2 * check_size)`` when ``random_offsets`` is on, so both
  polarities (which checker value sits at the top-left corner) and every phase appear;
* **colours**: by default the two checker values are ``low = -1`` and ``high = +1`` (the data range); with
  ``colours="random"`` each image draws, per channel, ``low ~ U(-1, -0.2)`` and ``high ~ U(0.2, 1)``
  (our choice: a contrast of at least 0.4 keeps the pattern visible), and a list of ``(low, high)`` pairs picks
  one pair per image.

Pixel ``(i, j)`` of a board with check size ``s`` and offset ``(dy, dx)`` takes ``high`` where
``(floor((i + dy) / s) + floor((j + dx) / s))`` is even and ``low`` where it is odd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._checks import check_positive, check_signal

__all__ = [
    "checkerboard",
    "sample_checkerboards",
    "CheckerboardDataset",
    "CheckerboardSource",
    "IdealCheckerboardFit",
    "nearest_ideal_checkerboard",
    "CLEAN_AGREEMENT",
    "checkerboard_metrics",
    "edge_distance_errors",
]

Colours = None | str | Sequence[tuple[float, float]]


def _size_hw(size: int | tuple[int, int], name: str = "size") -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any((not isinstance(s, int)) or s <= 0 for s in size):
        raise ValueError(f"{name} must be a positive int or a pair (H, W) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _check_sizes(check_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(check_sizes)
    if not sizes or any((not isinstance(s, int)) or s <= 0 for s in sizes):
        raise ValueError(f"check_sizes must be a non-empty sequence of positive ints, got {check_sizes!r}")
    return sizes


def _parity(h: int, w: int, check_size: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Parity mask, shape ``(K, H, W)`` for ``K`` offsets: ``True`` where the board takes ``high``."""
    i = torch.arange(h).view(1, h, 1)
    j = torch.arange(w).view(1, 1, w)
    rows = torch.div(i + dy.view(-1, 1, 1), check_size, rounding_mode="floor")
    cols = torch.div(j + dx.view(-1, 1, 1), check_size, rounding_mode="floor")
    return (rows + cols) % 2 == 0


def checkerboard(
    size: int | tuple[int, int],
    check_size: int,
    offset: tuple[int, int] = (0, 0),
    low: float = -1.0,
    high: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One ideal checkerboard, shape ``(H, W)``.

    Pixel ``(i, j)`` is ``high`` where ``floor((i + dy)/check_size) + floor((j + dx)/check_size)`` is even and
    ``low`` where it is odd; an offset of ``check_size`` along one axis swaps the two values (polarity).
    """
    h, w = _size_hw(size)
    if not isinstance(check_size, int) or check_size <= 0:
        raise ValueError(f"check_size must be a positive int, got {check_size!r}")
    dy, dx = (int(o) for o in offset)
    mask = _parity(h, w, check_size, torch.tensor([dy]), torch.tensor([dx]))[0]
    return torch.where(mask, torch.tensor(float(high), dtype=dtype), torch.tensor(float(low), dtype=dtype))


def _draw_colours(
    n: int, channels: int, colours: Colours, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)``, each of shape ``(n, channels)``."""
    if colours is None:
        return torch.full((n, channels), -1.0), torch.full((n, channels), 1.0)
    if isinstance(colours, str):
        if colours != "random":
            raise ValueError(f"colours must be None, 'random' or a sequence of (low, high) pairs, got {colours!r}")
        low = -1.0 + 0.8 * torch.rand(n, channels, generator=generator)  # U(-1, -0.2)
        high = 0.2 + 0.8 * torch.rand(n, channels, generator=generator)  # U(0.2, 1)
        return low, high
    pairs = torch.as_tensor([tuple(map(float, p)) for p in colours], dtype=torch.float32)
    if pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
        raise ValueError(f"colours must be a non-empty sequence of (low, high) pairs, got {colours!r}")
    pick = torch.randint(len(pairs), (n,), generator=generator)
    return pairs[pick, 0:1].expand(n, channels).clone(), pairs[pick, 1:2].expand(n, channels).clone()


def sample_checkerboards(
    n: int,
    size: int | tuple[int, int] = 32,
    check_sizes: Sequence[int] = (4,),
    *,
    random_offsets: bool = True,
    channels: int = 1,
    colours: Colours = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` checkerboards, shape ``(n, channels, H, W)``, values in ``[-1, 1]``.

    Per image: a check size drawn uniformly from ``check_sizes``, an offset ``(dy, dx)`` uniform in
    ``[0, 2 * check_size)`` (both polarities) when ``random_offsets``, and two colours (see the module docstring).
    All channels share the pattern; with random colours each channel has its own two values.
    Defaults: 32x32 and 4-pixel checks as in our prototype (the paper uses 64x64 and does not give the check size).
    """
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    h, w = _size_hw(size)
    sizes = _check_sizes(check_sizes)
    size_index = torch.randint(len(sizes), (n,), generator=generator)
    cs = torch.as_tensor(sizes)[size_index]
    if random_offsets:
        # torch.rand * 2cs, floored: uniform integers in [0, 2cs) for a per-image cs
        dy = (torch.rand(n, generator=generator) * 2 * cs).floor().long()
        dx = (torch.rand(n, generator=generator) * 2 * cs).floor().long()
    else:
        dy = torch.zeros(n, dtype=torch.long)
        dx = torch.zeros(n, dtype=torch.long)
    low, high = _draw_colours(n, channels, colours, generator)
    masks = torch.empty(n, h, w, dtype=torch.bool)
    for k, s in enumerate(sizes):
        sel = size_index == k
        if bool(sel.any()):
            masks[sel] = _parity(h, w, s, dy[sel], dx[sel])
    m = masks.unsqueeze(1)  # (n, 1, H, W)
    out = torch.where(m, high.view(n, channels, 1, 1), low.view(n, channels, 1, 1))
    return out.to(dtype)


class CheckerboardDataset(torch.utils.data.Dataset):
    """A fixed set of ``n`` checkerboards drawn once from ``seed``; items are ``(C, H, W)`` tensors in ``[-1, 1]``.

    Use it where a finite data set is wanted (reference statistics, a DataLoader); the trainer uses
    :class:`CheckerboardSource`, which draws fresh boards for every batch.
    """

    def __init__(self, n: int, size: int | tuple[int, int] = 32, check_sizes: Sequence[int] = (4,), *,
                 seed: int = 0, **kwargs) -> None:
        g = torch.Generator().manual_seed(int(seed))
        self.images = sample_checkerboards(n, size, check_sizes, generator=g, **kwargs)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


@dataclass(frozen=True)
class CheckerboardSource:
    """An infinite sampler of checkerboards for the trainer: ``source.sample(batch_size, generator=g)``.

    Every call draws fresh boards (sizes, offsets, colours as in :func:`sample_checkerboards`), so the model never
    sees a finite training set; randomness comes only from ``generator``.
    """

    size: int | tuple[int, int] = 32
    check_sizes: tuple[int, ...] = (4,)
    random_offsets: bool = True
    channels: int = 1
    colours: Colours = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one sample, ``(C, H, W)``."""
        return (self.channels, *_size_hw(self.size))

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """A batch ``(batch_size, channels, H, W)`` in ``[-1, 1]`` (drawn on the CPU, moved to ``device``)."""
        x = sample_checkerboards(batch_size, self.size, self.check_sizes, random_offsets=self.random_offsets,
                                 channels=self.channels, colours=self.colours, generator=generator)
        return x if device is None else x.to(device)


@dataclass(frozen=True)
class IdealCheckerboardFit:
    """The nearest ideal checkerboard of each sample.

    Attributes:
        board: ``(B, C, H, W)`` the ideal boards.
        check_size, dy, dx: ``(B,)`` long tensors, the board's parameters.
        low, high: ``(B, C)`` the two checker values used (given, or fitted per sample).
        error: ``(B,)`` mean absolute error between sample and board.
    """

    board: torch.Tensor
    check_size: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    error: torch.Tensor


def nearest_ideal_checkerboard(
    x: torch.Tensor,
    check_sizes: Sequence[int] = (4,),
    low: float | None = -1.0,
    high: float | None = 1.0,
    *,
    chunk: int = 32,
) -> IdealCheckerboardFit:
    """The ideal checkerboard nearest to each sample in mean absolute error, over check sizes, offsets and both
    polarities.

    For each check size ``s`` the candidates are every offset ``dy in [0, 2s)``, ``dx in [0, s)`` (an offset of
    ``s`` on both axes gives the same board, so this covers each board and its polarity-swapped twin once).
    With ``low``/``high`` given, candidate boards take those values; with ``low=high=None`` each candidate's two
    values are fitted per sample and channel as the mean of ``x`` over its two cell sets (for random colours).

    Args:
        x: ``(B, C, H, W)`` samples.
        check_sizes: the check sizes to try.
        low, high: the two checker values, or both ``None`` to fit them.
        chunk: candidates evaluated at once (memory ``B * chunk * C * H * W`` floats).
    """
    check_signal(x, "x", ranks=(4,))
    sizes = _check_sizes(check_sizes)
    if (low is None) != (high is None):
        raise ValueError(f"low and high must both be numbers or both be None, got low={low!r}, high={high!r}")
    if low is not None and not float(high) > float(low):
        raise ValueError(f"high must be greater than low, got low={low!r}, high={high!r}")
    x = x.detach().float().cpu()
    b, c, h, w = x.shape
    best_err = torch.full((b,), float("inf"))
    best = {k: torch.zeros(b, dtype=torch.long) for k in ("cs", "dy", "dx")}
    best_low = torch.zeros(b, c)
    best_high = torch.zeros(b, c)
    for s in sizes:
        dy_all = torch.arange(2 * s).repeat_interleave(s)
        dx_all = torch.arange(s).repeat(2 * s)
        for start in range(0, dy_all.numel(), chunk):
            dy, dx = dy_all[start:start + chunk], dx_all[start:start + chunk]
            masks = _parity(h, w, s, dy, dx).float()  # (K, H, W)
            k = masks.shape[0]
            if low is None:
                n_hi = masks.sum(dim=(1, 2)).clamp_min(1.0)  # (K,)
                n_lo = (1 - masks).sum(dim=(1, 2)).clamp_min(1.0)
                hi = torch.einsum("bchw,khw->bkc", x, masks) / n_hi.view(1, k, 1)
                lo = torch.einsum("bchw,khw->bkc", x, 1 - masks) / n_lo.view(1, k, 1)
            else:
                hi = torch.full((b, k, c), float(high))
                lo = torch.full((b, k, c), float(low))
            boards = lo[..., None, None] + (hi - lo)[..., None, None] * masks.view(1, k, 1, h, w)
            err = (boards - x.unsqueeze(1)).abs().mean(dim=(2, 3, 4))  # (B, K)
            e_min, k_min = err.min(dim=1)
            better = e_min < best_err
            best_err = torch.where(better, e_min, best_err)
            best["cs"] = torch.where(better, torch.full_like(best["cs"], s), best["cs"])
            best["dy"] = torch.where(better, dy[k_min], best["dy"])
            best["dx"] = torch.where(better, dx[k_min], best["dx"])
            rows = torch.arange(b)
            best_low = torch.where(better.view(b, 1), lo[rows, k_min], best_low)
            best_high = torch.where(better.view(b, 1), hi[rows, k_min], best_high)
    board = torch.empty_like(x)
    for i in range(b):
        m = _parity(h, w, int(best["cs"][i]), best["dy"][i:i + 1], best["dx"][i:i + 1])[0]
        board[i] = torch.where(m, best_high[i].view(c, 1, 1), best_low[i].view(c, 1, 1))
    return IdealCheckerboardFit(board=board, check_size=best["cs"], dy=best["dy"], dx=best["dx"],
                                low=best_low, high=best_high, error=best_err)


CLEAN_AGREEMENT = 0.95
"""A generated board is "clean" when at least this share of its pixels lies on the correct side of the midpoint
for its nearest ideal board (our choice: fewer than 1 pixel in 20 wrong; one misplaced 4-pixel check in a 32x32
board is 16 pixels, 1.6 %). Used by :func:`checkerboard_metrics`."""


def checkerboard_metrics(
    samples: torch.Tensor,
    check_sizes: Sequence[int] = (4,),
    low: float | None = -1.0,
    high: float | None = 1.0,
    *,
    tolerance: float = 0.2,
    clean_agreement: float = CLEAN_AGREEMENT,
) -> dict[str, float]:
    """Numbers that say "blurred" or "crisp" for a batch of generated checkerboards ``(B, C, H, W)``.

    Each sample is compared with its nearest ideal checkerboard (:func:`nearest_ideal_checkerboard`; with
    ``low=high=None`` the two values are fitted per sample, for random colours). Returned, averaged over samples:

    * ``binary_share``: share of pixels within ``tolerance`` of one of the two checker values (1 for an ideal
      board; a blurred board has grey pixels at every edge). ``tolerance = 0.2`` is our choice: 10 % of the
      ``[-1, 1]`` range.
    * ``ideal_mae``: mean absolute error to the nearest ideal board (0 for an ideal board).
    * ``ideal_agreement``: share of pixels on the same side of the midpoint ``(low + high)/2`` as the nearest ideal
      board (1 when every pixel has the right colour, 0.5 for noise).
    * ``clean_share``: share of *samples* with at least ``clean_agreement`` of their pixels on the correct side
      (default :data:`CLEAN_AGREEMENT`): boards without a visible defect. ``ideal_agreement`` averages over pixels,
      so a few badly broken boards and many slightly soft ones can give it the same value; this counts boards.
    * ``contrast``: ``(mean of x on the high cells - mean on the low cells) / (high - low)`` of the nearest
      board, averaged over samples and channels (1 for an ideal board, near 0 for grey). With fitted values it is
      ``|high_fit - low_fit| / 2``, the contrast relative to the ``[-1, 1]`` data range.

    With fitted values (``low=high=None``) the tolerance is scaled by each sample's ``|high_fit - low_fit| / 2``,
    so that it stays relative to the sample's own contrast; read ``binary_share`` together with ``contrast``
    there (a flat grey image "fits" a zero-contrast board).
    """
    check_signal(samples, "samples", ranks=(4,))
    check_positive(tolerance, "tolerance", allow_zero=True)
    if not 0.0 < float(clean_agreement) <= 1.0:
        raise ValueError(f"clean_agreement must be in (0, 1], got {clean_agreement!r}")
    fit = nearest_ideal_checkerboard(samples, check_sizes, low, high)
    x = samples.detach().float().cpu()
    lo = fit.low[..., None, None]
    hi = fit.high[..., None, None]
    fitted = low is None
    tol = tolerance * (hi - lo).abs() / 2 if fitted else torch.full_like(lo, float(tolerance))
    near = ((x - lo).abs() <= tol) | ((x - hi).abs() <= tol)
    # fitted values may come out with high < low; compare on the side of the midpoint, signed
    sign = torch.where(hi >= lo, 1.0, -1.0)
    mid = (lo + hi) / 2
    on_high = (fit.board - mid) * sign > 0
    agree = ((x - mid) * sign > 0) == on_high
    if fitted:
        contrast = (fit.high - fit.low).abs() / 2
    else:
        n_high = on_high.sum(dim=(2, 3)).clamp_min(1)
        n_low = (~on_high).sum(dim=(2, 3)).clamp_min(1)
        mean_high = (x * on_high).sum(dim=(2, 3)) / n_high
        mean_low = (x * ~on_high).sum(dim=(2, 3)) / n_low
        contrast = (mean_high - mean_low) / (float(high) - float(low))
    return {
        "binary_share": float(near.float().mean()),
        "ideal_mae": float(fit.error.mean()),
        "ideal_agreement": float(agree.float().mean()),
        "clean_share": float((agree.flatten(1).float().mean(dim=1) >= float(clean_agreement)).float().mean()),
        "contrast": float(contrast.mean()),
    }


def edge_distance_errors(samples: torch.Tensor, check_sizes: Sequence[int] = (4,), low: float = -1.0,
                         high: float = 1.0) -> torch.Tensor:
    """Mean ``|x - nearest ideal board|`` of the pixels at distance ``d = 0, 1, ...`` from a check edge.

    For a board with check size ``s`` and offset ``(dy, dx)`` (its :func:`nearest_ideal_checkerboard`), pixel
    ``(i, j)`` lies ``min(r(i + dy), r(j + dx))`` pixels from the nearest edge, with ``r(k) = min(k mod s,
    s - 1 - k mod s)``: 0 for the pixels that touch an edge. Errors on edges mean soft or misplaced edges (blur);
    errors inside the checks mean mixed or wrong boards.

    Args:
        samples: ``(B, C, H, W)`` generated boards in ``[-1, 1]``.
        check_sizes, low, high: as for :func:`nearest_ideal_checkerboard`.

    Returns:
        ``(D,)`` float32: the error at each distance, averaged first over a sample's pixels at that distance, then
        over the samples that have such pixels (``D = (max(check_sizes) + 1) // 2``).
    """
    check_signal(samples, "samples", ranks=(4,))
    fit = nearest_ideal_checkerboard(samples, check_sizes, low, high)
    x = samples.detach().float().cpu()
    b, _, h, w = x.shape
    depth = (max(_check_sizes(check_sizes)) + 1) // 2
    error = (x - fit.board).abs().mean(dim=1)  # (B, H, W)
    sums = torch.zeros(b, depth)
    counts = torch.zeros(b, depth)
    for k in range(b):
        s = int(fit.check_size[k])
        rows = (torch.arange(h) + int(fit.dy[k])) % s
        cols = (torch.arange(w) + int(fit.dx[k])) % s
        distance = torch.minimum(torch.minimum(rows, s - 1 - rows)[:, None], torch.minimum(cols, s - 1 - cols)[None])
        sums[k] = torch.zeros(depth).index_add_(0, distance.flatten(), error[k].flatten())
        counts[k] = torch.bincount(distance.flatten(), minlength=depth).float()[:depth]
    per_sample = sums / counts.clamp_min(1)
    has = (counts > 0).float()
    return (per_sample * has).sum(0) / has.sum(0).clamp_min(1)
