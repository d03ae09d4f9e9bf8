"""2-D point clouds for the "diffusion in a few lines" chapter: eight Gaussians, two moons, a checkerboard of points.

A point cloud is a tensor ``(N, 2)``. The diffusion formulations take signals ``(B, C, T)`` or ``(B, C, H, W)``;
a point is a signal with ``C = 2`` channels and ``T = 1`` sample, so :func:`points_to_signal` reshapes
``(N, 2) -> (N, 2, 1)`` and :func:`signal_to_points` goes back. Nothing else changes: DDPM, DDIM and EDM corrupt,
denoise and sample points exactly as they do images.

Scale (our choice, for every set): the points lie in ``[-1, 1]^2`` (up to the Gaussian jitter of the first two
sets), with a standard deviation per coordinate near 0.5. That is the library's data range (DDPM's samplers clip
``x0_hat`` to ``[-1, 1]``) and EDM's ``sigma_data = 0.5``.

- ``"eight_gaussians"``: eight isotropic Gaussians (std ``std``) centred at ``radius * (cos 2 pi k/8, sin 2 pi k/8)``;
  a standard test of mode coverage (the centre, the data's mean, holds no data).
- ``"two_moons"``: scikit-learn's ``make_moons`` layout, upper arc ``(cos u, sin u)`` and lower arc
  ``(1 - cos u, 1/2 - sin u)`` with ``u ~ U[0, pi]``, centred on ``(1/2, 1/4)``, scaled by ``scale`` and jittered
  by Gaussian noise of std ``noise`` (after scaling).
- ``"checkerboard"``: points uniform on the white cells of a ``cells x cells`` board covering ``[-1, 1]^2``; cell
  ``(row, col)`` (counted from the lower left) is white where ``row + col`` is even, the parity rule of
  :mod:`spectral_lib.data.checkerboard`. The point-cloud cousin of the book's checkerboard images.

The chapter's numbers (training steps, batch, network width, sampler steps) are profiles: :data:`TOY2D_PROFILES`
and :func:`toy2d_profile` (kept here, in a plain dict, because the experiment registry of
:mod:`spectral_lib.experiments.profiles` describes image/audio runs of the trainer, and the data layer may not
import it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_choice, check_positive, check_signal

__all__ = [
    "TOY2D_DATASETS",
    "eight_gaussians",
    "two_moons",
    "checkerboard_points",
    "sample_toy2d",
    "points_to_signal",
    "signal_to_points",
    "Toy2DProfile",
    "TOY2D_PROFILES",
    "toy2d_profile",
]

TOY2D_DATASETS: tuple[str, ...] = ("eight_gaussians", "two_moons", "checkerboard")


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return n


def eight_gaussians(
    n: int, *, radius: float = 0.75, std: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` points from eight equally likely Gaussians, shape ``(n, 2)``.

    ``x = radius * (cos(2 pi k / 8), sin(2 pi k / 8)) + std * z``, ``k ~ U{0..7}``, ``z ~ N(0, I)``.
    Defaults (our choice): ``radius = 0.75``, ``std = 0.05``: well separated modes (neighbours 0.57 apart) inside
    ``[-1, 1]^2``, per-coordinate std ``sqrt(radius^2 / 2 + std^2) = 0.53``.
    """
    n = _check_n(n)
    check_positive(radius, "radius")
    check_positive(std, "std", allow_zero=True)
    k = torch.randint(8, (n,), generator=generator).to(torch.float32)
    angle = 2 * math.pi * k / 8
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def two_moons(
    n: int, *, noise: float = 0.05, scale: float = 0.6, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` points on two interleaving half circles, shape ``(n, 2)`` (scikit-learn's ``make_moons`` layout).

    Each point picks a moon with a fair coin and ``u ~ U[0, pi]``: upper ``(cos u, sin u)``, lower
    ``(1 - cos u, 1/2 - sin u)``; then ``x = scale * (p - (1/2, 1/4)) + noise * z``. Defaults (our choice):
    ``scale = 0.6`` puts the arcs in ``[-0.9, 0.9] x [-0.45, 0.45]``; ``noise = 0.05``.
    """
    n = _check_n(n)
    check_positive(noise, "noise", allow_zero=True)
    check_positive(scale, "scale")
    u = math.pi * torch.rand(n, generator=generator)
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, u.cos(), 1 - u.cos())
    y = torch.where(upper, u.sin(), 0.5 - u.sin())
    points = scale * (torch.stack([x, y], dim=1) - torch.tensor([0.5, 0.25]))
    return points + noise * torch.randn(n, 2, generator=generator)


def checkerboard_points(n: int, *, cells: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points uniform on the white cells of a ``cells x cells`` board on ``[-1, 1]^2``, shape ``(n, 2)``.

    Cell ``(row, col)`` spans ``[-1 + col w, -1 + (col + 1) w] x [-1 + row w, -1 + (row + 1) w]`` with
    ``w = 2 / cells`` and is white where ``row + col`` is even. ``cells`` must be even, so that every row has
    ``cells / 2`` white cells and all white cells are equally likely. Default 4 (our choice: 8 white cells).
    """
    n = _check_n(n)
    if isinstance(cells, bool) or not isinstance(cells, int) or cells <= 0 or cells % 2:
        raise ValueError(f"cells must be a positive even int, got {cells!r}")
    width = 2.0 / cells
    index = torch.randint(cells * cells // 2, (n,), generator=generator)
    row = torch.div(index, cells // 2, rounding_mode="floor")
    col = 2 * (index % (cells // 2)) + row % 2  # the white cell of this row: row + col even
    offset = torch.rand(n, 2, generator=generator)
    x = -1 + (col + offset[:, 0]) * width
    y = -1 + (row + offset[:, 1]) * width
    return torch.stack([x, y], dim=1)


_SAMPLERS = {"eight_gaussians": eight_gaussians, "two_moons": two_moons, "checkerboard": checkerboard_points}


def sample_toy2d(name: str, n: int, *, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
    """``n`` points ``(n, 2)`` of the named set (see :data:`TOY2D_DATASETS`); ``kwargs`` go to its function."""
    check_choice(name, "toy 2-D dataset", TOY2D_DATASETS)
    return _SAMPLERS[name](n, generator=generator, **kwargs)


def points_to_signal(points: torch.Tensor) -> torch.Tensor:
    """``(N, 2)`` points -> ``(N, 2, 1)``: a signal with 2 channels and 1 sample, the ``(B, C, T)`` layout."""
    points = check_signal(points, "points", ranks=(2,))
    if points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(points.shape)}")
    return points.unsqueeze(-1)


def signal_to_points(x: torch.Tensor) -> torch.Tensor:
    """``(N, 2, 1)`` signals -> ``(N, 2)`` points (inverse of :func:`points_to_signal`)."""
    x = check_signal(x, "x", ranks=(3,), finite=False)
    if x.shape[1:] != (2, 1):
        raise ValueError(f"x must have shape (N, 2, 1), got {tuple(x.shape)}")
    return x.squeeze(-1)


# ---------------------------------------------------------------------------------------------------------------
# Profiles of the chapter
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toy2DProfile:
    """The numbers of the 2-D diffusion chapter for one profile.

    Attributes:
        steps: training steps of each denoiser (one for DDPM/DDIM, one for EDM).
        batch_size: points per training step.
        lr: Adam's learning rate, decayed to 0 along a cosine (our choice: a short run ends sharper so).
        hidden: width of the denoising MLP.
        depth: hidden layers of the MLP.
        fourier_features: input frequencies ``pi * 2^k``, ``k < fourier_features``, of the MLP (0 = raw coordinates).
        embed_dim: size of the sinusoidal embedding of the noise condition.
        n_points: points drawn for the pictures of the data and of the forward process.
        n_samples: points generated by each sampler.
        n_paths: sampling trajectories drawn.
        ddim_steps: DDIM's sampling steps (DDPM's ancestral sampler always takes all ``T = 1000``).
        edm_steps: EDM's Heun steps ``N`` (``2N - 1`` network calls).
    """

    steps: int
    batch_size: int
    lr: float
    hidden: int
    depth: int
    fourier_features: int
    embed_dim: int
    n_points: int
    n_samples: int
    n_paths: int
    ddim_steps: int
    edm_steps: int

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "lr":
                check_positive(value, "lr")
                continue
            minimum = 0 if f.name == "fourier_features" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{f.name} must be an integer >= {minimum}, got {value!r}")

    def replace(self, **overrides: Any) -> Toy2DProfile:
        """A copy with ``overrides`` applied; unknown keys raise ``ValueError`` listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"unknown profile key(s) {unknown}; valid keys: {', '.join(valid)}")
        return dataclasses.replace(self, **overrides)


TOY2D_PROFILES: dict[str, Toy2DProfile] = {
    # Seconds on one core: every code path runs; the samples are not yet the data.
    "smoke": Toy2DProfile(
        steps=50, batch_size=128, lr=2e-3, hidden=64, depth=2, fourier_features=4, embed_dim=32,
        n_points=500, n_samples=200, n_paths=6, ddim_steps=20, edm_steps=10,
    ),
    # A laptop: about a minute of training in all; the samples find the data's modes.
    "cpu": Toy2DProfile(
        steps=4000, batch_size=256, lr=2e-3, hidden=128, depth=3, fourier_features=4, embed_dim=32,
        n_points=2000, n_samples=2000, n_paths=8, ddim_steps=50, edm_steps=18,
    ),
    # Colab: longer training and more points, sharper modes.
    "gpu": Toy2DProfile(
        steps=20_000, batch_size=1024, lr=1e-3, hidden=256, depth=3, fourier_features=4, embed_dim=32,
        n_points=5000, n_samples=5000, n_paths=12, ddim_steps=100, edm_steps=40,
    ),
}
"""``profile -> Toy2DProfile`` for the chapter "Diffusion in a few lines"."""


def toy2d_profile(profile: str) -> Toy2DProfile:
    """The named profile (``"smoke"``, ``"cpu"``, ``"gpu"``); unknown names raise ``ValueError`` listing them."""
    check_choice(profile, "profile for the toy 2-D chapter", tuple(TOY2D_PROFILES))
    return TOY2D_PROFILES[profile]
