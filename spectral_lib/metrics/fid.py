"""Fréchet distance between feature distributions, with a pluggable feature extractor.

The Fréchet distance between two Gaussians fitted to features (Heusel et al. 2017, "FID" when the features are
Inception-v3's 2048-d pool3 activations) is

    d^2 = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2}).

:func:`frechet_distance` computes it as the standard ``pytorch-fid`` code does: ``scipy.linalg.sqrtm`` of the
product, a small ``eps * I`` added to both covariances when the product is singular and the square root not
finite, and a negligible imaginary part (numerical noise) dropped; a large one is an error.

**Which features.** Only Inception-v3 features (through ``torch-fidelity``, whose weights download on first use,
e.g. on Colab) give a number that may be called *FID* and compared with the paper's Table 1:
:func:`inception_features` / :func:`fid_score`. Offline there are no such weights; :class:`RandomConvFeatures` is a
fixed random-weight convolutional network drawn from a seed, and :func:`frechet_distance_local` reports its distance as
``"FD (local features: ...)"``, never as FID: it ranks sample sets against the same reference on the same machine
and seed, but its values are on a different scale from FID and from each other's seeds.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy import linalg
from torch import nn

from .._checks import check_signal

__all__ = [
    "FeatureExtractor",
    "FrechetResult",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "compute_features",
    "RandomConvFeatures",
    "frechet_distance_local",
    "InceptionFeatures",
    "inception_features",
    "fid_score",
    "load_reference_statistics",
    "quantize_like_edm",
]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a batch of images ``(B, C, H, W)`` in ``[-1, 1]`` to features ``(B, D)``; ``name`` says which."""

    name: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class FrechetResult:
    """A Fréchet distance and what it was measured on. ``float(result)`` gives the value.

    Attributes:
        value: the distance d^2.
        name: ``"FID (...)"`` only for Inception-v3 features; ``"FD (local features: ...)"`` otherwise.
        n_samples, n_reference: how many feature vectors each side had (FID is biased upward for small n).
        dim: the feature dimension.
    """

    value: float
    name: str
    n_samples: int
    n_reference: int
    dim: int

    def __float__(self) -> float:
        return float(self.value)


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (``np.cov``, ``ddof = 1``, as pytorch-fid) of ``(N, D)``
    features, in float64."""
    f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features,
                                                                                                          np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"features need at least 2 rows to estimate a covariance, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (see the module docstring).

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)``.
        eps: added to both diagonals when ``sqrtm`` of the product is not finite (pytorch-fid's default).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got shapes {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"sigma1 and sigma2 must be ({d}, {d}) to match mu, got {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # With fewer samples than dimensions the product is singular by construction; SciPy warns, and the root is
        # still accurate (tested against an eigenvalue reference), so the warning is not passed on.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary component of {np.abs(covmean.imag).max():.3g};"
                             f" are both covariances symmetric positive semi-definite?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features_a: np.ndarray | torch.Tensor,
                                   features_b: np.ndarray | torch.Tensor) -> float:
    """:func:`frechet_distance` between the Gaussians fitted to two ``(N, D)`` feature sets."""
    mu_a, sigma_a = feature_statistics(features_a)
    mu_b, sigma_b = feature_statistics(features_b)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


def _batches(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        check_signal(images, "images", ranks=(4,))
        for start in range(0, images.shape[0], batch_size):
            yield images[start:start + batch_size]
    else:
        for batch in images:
            yield batch


@torch.no_grad()
def compute_features(
    extractor: FeatureExtractor,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Features ``(N, D)`` (float64 NumPy) of images ``(N, C, H, W)`` in ``[-1, 1]``, or of an iterable of batches
    (e.g. ``ImageFolderDataset.iter_batches``), computed ``batch_size`` at a time on ``device``."""
    out = []
    for batch in _batches(images, batch_size):
        if device is not None:
            batch = batch.to(device)
        out.append(extractor(batch).detach().double().cpu().numpy())
    if not out:
        raise ValueError("images is empty")
    return np.concatenate(out, axis=0)


# --------------------------------------------------------------------------------------------------- offline


class RandomConvFeatures(nn.Module):
    """A fixed random-weight CNN as an offline feature extractor (no weights to download).

    Four 3x3 convolution + ReLU stages (widths 32, 64, 128, 256; the last three with stride 2), He-normal weights
    and zero biases drawn from ``torch.Generator().manual_seed(seed)``; the feature vector is each stage's
    channel-wise spatial mean, concatenated: ``D = 480``. Grayscale inputs are repeated to three channels. Random
    convolutional features are sensitive to texture, edges and colour statistics at several scales, which is what
    separates blurred from crisp samples; they carry no semantic knowledge, so the distance is labelled
    ``"FD (local features: random conv net, seed=S)"`` and never called FID.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self.name = f"FD (local features: random conv net, seed={self.seed})"
        g = torch.Generator().manual_seed(self.seed)
        layers = []
        c_in = 3
        for k, c_out in enumerate(self.widths):
            conv = nn.Conv2d(c_in, c_out, 3, stride=1 if k == 0 else 2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (c_in * 9)) ** 0.5)
                conv.bias.zero_()
            layers.append(conv)
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_rgb(x)
        feats = []
        h = x.float()
        for conv in self.convs:
            h = torch.relu(conv(h))
            feats.append(h.mean(dim=(2, 3)))
        return torch.cat(feats, dim=1)


def frechet_distance_local(
    samples: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | Iterable[torch.Tensor],
    *,
    seed: int = 0,
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> FrechetResult:
    """Fréchet distance on :class:`RandomConvFeatures` (offline). Its ``name`` says so: this is *not* FID.

    Args:
        samples, reference: images ``(N, C, H, W)`` in ``[-1, 1]`` (or iterables of such batches); ``N >= 2``.
        seed: the random network's seed; compare numbers only at the same seed.
    """
    extractor = RandomConvFeatures(seed)
    if device is not None:
        extractor = extractor.to(device)
    fa = compute_features(extractor, samples, batch_size=batch_size, device=device)
    fb = compute_features(extractor, reference, batch_size=batch_size, device=device)
    return FrechetResult(frechet_distance_from_features(fa, fb), extractor.name, fa.shape[0], fb.shape[0],
                         fa.shape[1])


# --------------------------------------------------------------------------------------------------- Inception


_NO_INCEPTION = (
    "FID needs Inception-v3 weights through torch-fidelity: `pip install torch-fidelity` (its weights, about "
    "100 MB, download from the project's GitHub release on first use, e.g. on Colab). Offline, use "
    "frechet_distance_local(...), which is a Fréchet distance on local random features and is not FID."
)


def _as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Checked images ``(B, 1 or 3, H, W)`` as RGB (grayscale repeated), for both feature extractors."""
    check_signal(x, "x", ranks=(4,))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"x must have 1 or 3 channels, got {x.shape[1]}")
    return x


def quantize_like_edm(x: torch.Tensor) -> torch.Tensor:
    """Images in ``[-1, 1]`` -> ``uint8`` as EDM's ``generate.py`` saves them: ``(x * 127.5 + 128).clip(0, 255)``
    truncated (so ``x = -1`` gives 0.5 -> 0, ``x = 1`` gives 255.5 -> 255, and a value halfway rounds up)."""
    return (x.double() * 127.5 + 128).clamp(0, 255).to(torch.uint8)  # float64, as the sampler's output


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features (2048-d), the standard FID features, from torch-fidelity's TF-compatible port.

    Images ``(B, C, H, W)`` in ``[-1, 1]`` are quantised to ``uint8`` as a saved PNG would be
    exactly as NVIDIA's ``generate.py`` writes its PNGs (:func:`quantize_like_edm`: ``uint8(clip(x * 127.5 + 128,
    0, 255))``, i.e. rounding half up), grayscale repeated to RGB; torch-fidelity resizes to 299x299 as the original
    TensorFlow code does.
    """

    name = "FID (Inception-v3 pool3, torch-fidelity)"

    def __init__(self, weights_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise ImportError(_NO_INCEPTION) from err
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"],
                feature_extractor_weights_path=None if weights_path is None else str(weights_path),
            )
        except Exception as err:  # no network, blocked download, corrupt cache: say what is missing
            raise RuntimeError(f"the Inception-v3 weights could not be loaded ({type(err).__name__}: {err}). "
                               + _NO_INCEPTION) from err
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u8 = quantize_like_edm(_as_rgb(x))
        return self.net(u8)[0]


def inception_features(
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    weights_path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Inception-v3 pool3 features ``(N, 2048)`` of images in ``[-1, 1]``.

    Raises:
        ImportError: torch-fidelity is not installed (the message says what to do).
        RuntimeError: its weights cannot be loaded (offline).
    """
    extractor = InceptionFeatures(weights_path)
    if device is not None:
        extractor = extractor.to(device)
    return compute_features(extractor, images, batch_size=batch_size, device=device)


def load_reference_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` from an ``.npz`` with arrays ``mu`` and ``sigma`` (the format of EDM's published FID
    reference statistics, e.g. ``ffhq-64x64.npz``, and of pytorch-fid's ``--save-stats``)."""
    with np.load(path) as data:
        if "mu" not in data or "sigma" not in data:
            raise ValueError(f"{str(path)!r} must hold arrays 'mu' and 'sigma', has {sorted(data.files)}")
        return np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)


def fid_score(
    samples: torch.Tensor | Iterable[torch.Tensor],
    reference: torch.Tensor | Iterable[torch.Tensor] | tuple[np.ndarray, np.ndarray] | str | os.PathLike,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    weights_path: str | os.PathLike | None = None,
) -> FrechetResult:
    """FID of ``samples`` against ``reference`` images, ``(mu, sigma)`` statistics, or an ``.npz`` of them.

    The paper reports FID on 50 000 samples against the full data set's statistics; with fewer samples FID is
    biased upward, so compare numbers only at equal ``n_samples``.
    """
    extractor = InceptionFeatures(weights_path)
    if device is not None:
        extractor = extractor.to(device)
    fa = compute_features(extractor, samples, batch_size=batch_size, device=device)
    mu_a, sigma_a = feature_statistics(fa)
    if isinstance(reference, (str, os.PathLike)):
        mu_b, sigma_b = load_reference_statistics(reference)
        n_ref = -1  # unknown: precomputed statistics
    elif isinstance(reference, tuple) and len(reference) == 2 and isinstance(reference[0], np.ndarray):
        mu_b, sigma_b = reference
        n_ref = -1
    else:
        fb = compute_features(extractor, reference, batch_size=batch_size, device=device)
        mu_b, sigma_b = feature_statistics(fb)
        n_ref = fb.shape[0]
    return FrechetResult(frechet_distance(mu_a, sigma_a, mu_b, sigma_b), extractor.name, fa.shape[0], n_ref,
                         fa.shape[1])
