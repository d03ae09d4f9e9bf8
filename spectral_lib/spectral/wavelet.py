"""Multi-level discrete wavelet transform and the wavelet subband loss (paper Eq. 16), 1-D and 2-D.

The transform runs over the last dimension of ``(B, C, T)`` audio and the last two of ``(B, C, H, W)`` images, with
PyWavelets' coefficients: as PyWavelets' own analysis matrices for signals up to :func:`dense_max_size` samples a
side (see "Speed" below), and as ``ptwt.wavedec`` / ``ptwt.wavedec2`` (differentiable, GPU-capable, tested against
PyWavelets) for longer ones. Both use PyWavelets' filters (so ``"bior1.3"`` is PyWavelets' bior1.3; the paper's
appendix prints different taps, see the book). The boundary ``mode`` is always passed to ptwt explicitly: ptwt's and
PyWavelets' defaults differ (``"reflect"`` vs ``"symmetric"``), and with the same mode the coefficients agree to
machine precision.

Bands and levels
----------------
Level 1 is the finest scale (PyWavelets' ``cD1``), level ``L = levels`` the coarsest. A decomposition is a list of
:class:`WaveletBand` in PyWavelets' order: the approximation at level ``L`` first, then the details from level ``L``
down to level 1; in 2-D each level has three orientations, ``"horizontal"``, ``"vertical"``, ``"diagonal"``
(PyWavelets' ``cH, cV, cD``; the paper's LH, HL, HH).

Speed
-----
One DWT level along one axis is a linear map, padding included: ``[low | high] = x @ M`` with ``M`` the
``(n, 2 m)`` analysis matrix of the wavelet, the boundary mode and the length ``n``. For signals up to
:func:`dense_max_size` samples a side (a limit per wavelet family: :data:`DENSE_MAX_SIZES`, at most
:data:`DENSE_MAX_SIZE`) the transform runs as these matrix products (two per level in 2-D, rows then columns; ``M``
is built once per size by PyWavelets itself, from the identity, and cached). The matrix work per sample grows with
``n`` while a convolution's does not, so each family's limit is where the two paths cost about the same in
``python -m spectral_lib.bench.implementations --kinds wavelet --sizes ...`` (CPU time, forward + backward, one
thread): below it the matrices are faster, most for bior1.3, whose convolution backward with small single-channel
filters is slow on a CPU. The speed-up depends on the machine and its load; that command prints it
(``book/10_cost.ipynb`` shows the same comparison at its sizes). Longer signals (audio) go through ptwt. Both paths are tested against PyWavelets. The loss
transforms ``pred - target`` once instead of both signals (the DWT is linear, so the band differences are the bands
of the difference).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import ptwt
import pywt
import torch
from torch import Tensor

from spectral_lib._checks import check_choice, check_positive, check_signal

from .fourier import (
    DISTANCES,
    REDUCTIONS,
    _LossModule,
    autocast_disabled,
    compute_dtype,
    reduce_batch,
    validates_pair,
)

__all__ = [
    "WAVELET_MODES",
    "DENSE_MAX_SIZE",
    "DENSE_MAX_SIZES",
    "dense_max_size",
    "ORIENTATIONS_2D",
    "WaveletBand",
    "wavelet_max_level",
    "wavelet_decompose",
    "wavelet_loss",
    "WaveletLoss",
]

#: Boundary modes, PyWavelets' names (ptwt translates them): ``"reflect"`` (default), ``"zero"``, ``"constant"``
#: (edge value repeated), ``"periodic"``, ``"symmetric"`` (PyWavelets' default).
WAVELET_MODES: tuple[str, ...] = ("reflect", "zero", "constant", "periodic", "symmetric")
ORIENTATIONS_2D: tuple[str, ...] = ("horizontal", "vertical", "diagonal")
#: The longest side (samples) that any wavelet transforms with dense analysis matrices (module docstring, "Speed");
#: longer signals go through ptwt. Setting it to 0 sends every signal through ptwt. Our choice: bior1.3's limit
#: (families without an entry in :data:`DENSE_MAX_SIZES` use it), where the bench found the two paths about even.
DENSE_MAX_SIZE = 256
#: Lower limits for some wavelet families (PyWavelets' ``short_family_name``): Haar's two-tap convolutions catch up
#: with the matrices sooner, about at 128 pixels in the bench (``--kinds wavelet --sizes 64 128 192 256``).
DENSE_MAX_SIZES: dict[str, int] = {"haar": 128}


@dataclass(frozen=True)
class WaveletBand:
    """One subband of a multi-level DWT.

    Attributes:
        level: 1 (finest) .. L (coarsest); the approximation band has level L.
        orientation: ``"approximation"``; ``"detail"`` in 1-D; ``"horizontal"``, ``"vertical"`` or ``"diagonal"``
            in 2-D.
        coeffs: ``(B, C, n_l)`` or ``(B, C, h_l, w_l)``.
    """

    level: int
    orientation: str
    coeffs: Tensor

    @property
    def name(self) -> str:
        """Short label such as ``"a3"``, ``"d1"``, ``"h2"``, ``"v2"``, ``"d2"`` (for plots and logs)."""
        return f"{self.orientation[0]}{self.level}"


def _as_wavelet(wavelet: str | pywt.Wavelet) -> pywt.Wavelet:
    if isinstance(wavelet, pywt.Wavelet):
        return wavelet
    if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"unknown wavelet {wavelet!r}; expected a discrete PyWavelets name such as 'haar', 'db2', 'bior1.3' "
            "(see pywt.wavelist(kind='discrete')) or a pywt.Wavelet"
        )
    return pywt.Wavelet(wavelet)


def dense_max_size(wavelet: str | pywt.Wavelet) -> int:
    """The longest side (samples) that ``wavelet`` transforms with dense matrices: its family's entry of
    :data:`DENSE_MAX_SIZES` (``short_family_name``: ``"haar"``, ``"bior"``, ``"db"``, ...), never above
    :data:`DENSE_MAX_SIZE`."""
    family = _as_wavelet(wavelet).short_family_name
    return min(DENSE_MAX_SIZE, DENSE_MAX_SIZES.get(family, DENSE_MAX_SIZE))


def wavelet_max_level(size: int, wavelet: str | pywt.Wavelet = "haar") -> int:
    """Deepest level whose input still holds the whole filter: the largest ``L`` with ``size // 2^(L-1) >= dec_len``.

    Our rule ("the filter fits inside the signal it filters at every level"). For Haar it equals PyWavelets'
    ``dwt_max_level`` (``log2(size)``); for longer filters PyWavelets' rule is stricter by at most one level (it asks the coarsest
    *output* to hold ``dec_len - 1`` coefficients and warns about boundary effects beyond; the coefficients are the
    same either way). Haar on 32 samples: 5; bior1.3 (6 taps) on 32: 3, on 64: 4.
    """
    dec_len = _as_wavelet(wavelet).dec_len
    level = 0
    while (int(size) >> level) >= dec_len:
        level += 1
    return level


def _check_levels(levels: object, x: Tensor, wavelet: pywt.Wavelet) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
    size = min(x.shape[2:])
    max_level = wavelet_max_level(size, wavelet)
    if levels > max_level:
        dims = "x".join(str(s) for s in x.shape[2:])
        raise ValueError(
            f"levels={levels} is too deep for signal size {dims} with wavelet {wavelet.name!r} "
            f"({wavelet.dec_len} taps): at most {max_level} (the filter must fit inside the signal at every level, "
            f"size // 2**(levels-1) >= {wavelet.dec_len}); pass levels<={max_level} or a larger signal"
        )
    return levels


@functools.lru_cache(maxsize=64)
def _analysis_matrix_float64(n: int, filter_bank: tuple[tuple[float, ...], ...], mode: str) -> np.ndarray:
    """PyWavelets' one-level DWT of the ``n`` unit vectors: ``(n, 2 m)``, so that ``[cA | cD] = x @ M``."""
    low, high = pywt.dwt(np.eye(n), pywt.Wavelet("dense", filter_bank=filter_bank), mode=mode, axis=-1)
    return np.concatenate([low, high], axis=1)


@functools.lru_cache(maxsize=128)
def _analysis_matrix_cached(
    n: int, filter_bank: tuple[tuple[float, ...], ...], mode: str, dtype: torch.dtype, device: torch.device
) -> Tensor:
    with torch.inference_mode(False):  # a matrix first built under inference_mode must still serve autograd later
        return torch.from_numpy(_analysis_matrix_float64(n, filter_bank, mode)).to(device=device, dtype=dtype)


def _analysis_matrix(n: int, wavelet: pywt.Wavelet, mode: str, like: Tensor) -> tuple[Tensor, int]:
    """The ``(n, 2 m)`` analysis matrix of one DWT level along an axis of length ``n``, and ``m`` (coefficients per
    band), in ``like``'s dtype and device."""
    filter_bank = tuple(tuple(float(v) for v in f) for f in wavelet.filter_bank)
    matrix = _analysis_matrix_cached(int(n), filter_bank, mode, like.dtype, like.device)
    return matrix, matrix.shape[1] // 2


def _decompose_dense(x: Tensor, wavelet: pywt.Wavelet, levels: int, mode: str) -> list[WaveletBand]:
    """Multi-level DWT as matrix products along each signal axis (same coefficients as PyWavelets)."""
    approx = x
    details: list[list[WaveletBand]] = []  # finest level first
    for level in range(1, levels + 1):
        if x.dim() == 3:
            m_t, n_t = _analysis_matrix(approx.shape[-1], wavelet, mode, x)
            coeffs = approx @ m_t  # (B, C, 2 m): [approximation | detail]
            details.append([WaveletBand(level, "detail", coeffs[..., n_t:])])
            approx = coeffs[..., :n_t]
            continue
        m_h, n_h = _analysis_matrix(approx.shape[-2], wavelet, mode, x)
        m_w, n_w = _analysis_matrix(approx.shape[-1], wavelet, mode, x)
        rows = approx @ m_w  # along the width: (B, C, h, 2 n_w) = [low | high]
        coeffs = (rows.transpose(-2, -1) @ m_h).transpose(-2, -1)  # along the height: (B, C, 2 n_h, 2 n_w)
        details.append([
            WaveletBand(level, "horizontal", coeffs[..., n_h:, :n_w]),  # high along the height (PyWavelets' cH)
            WaveletBand(level, "vertical", coeffs[..., :n_h, n_w:]),  # high along the width (cV)
            WaveletBand(level, "diagonal", coeffs[..., n_h:, n_w:]),  # high along both (cD)
        ])
        approx = coeffs[..., :n_h, :n_w]
    bands = [WaveletBand(levels, "approximation", approx)]
    for level_bands in reversed(details):
        bands += level_bands
    return bands


def _decompose(x: Tensor, wavelet: pywt.Wavelet, levels: int, mode: str) -> list[WaveletBand]:
    """DWT of a validated float32/float64 tensor, autocast off (dense matrices for small signals, else ptwt)."""
    with autocast_disabled(x.device):
        if max(x.shape[2:]) <= dense_max_size(wavelet):
            return _decompose_dense(x, wavelet, levels, mode)
        if x.dim() == 3:
            coeffs = ptwt.wavedec(x, wavelet, mode=mode, level=levels, axis=-1)
            bands = [WaveletBand(levels, "approximation", coeffs[0])]
            bands += [WaveletBand(levels - i, "detail", c) for i, c in enumerate(coeffs[1:])]
            return bands
        coeffs2 = ptwt.wavedec2(x, wavelet, mode=mode, level=levels, axes=(-2, -1))
        bands = [WaveletBand(levels, "approximation", coeffs2[0])]
        for i, details in enumerate(coeffs2[1:]):
            bands += [WaveletBand(levels - i, o, c) for o, c in zip(ORIENTATIONS_2D, details)]
        return bands


def wavelet_decompose(
    x: Tensor, wavelet: str | pywt.Wavelet = "haar", levels: int = 3, mode: str = "reflect"
) -> list[WaveletBand]:
    """Multi-level DWT of ``x`` as a list of :class:`WaveletBand` (approximation first, then coarse to fine).

    Args:
        x: ``(B, C, T)`` (1-D DWT over time) or ``(B, C, H, W)`` (2-D DWT over height and width); half precision
            is upcast to float32.
        wavelet: a discrete PyWavelets name (``"haar"``, ``"db2"``, ``"bior1.3"``, ...) or a ``pywt.Wavelet``.
        levels: number of levels, ``1 <= levels <= wavelet_max_level(min(signal size), wavelet)``.
        mode: boundary mode, one of :data:`WAVELET_MODES` (default ``"reflect"``, see :func:`wavelet_loss`).

    Returns:
        ``1 + levels`` bands in 1-D, ``1 + 3 * levels`` in 2-D, each ``coeffs`` of shape ``(B, C, ...)``; the
        coefficients equal ``pywt.wavedec`` / ``pywt.wavedec2`` with the same wavelet and mode.
    """
    x = check_signal(x, "x")
    wav = _as_wavelet(wavelet)
    check_choice(mode, "mode", WAVELET_MODES)
    levels = _check_levels(levels, x, wav)
    return _decompose(x.to(compute_dtype(x)), wav, levels, mode)


def _band_weights(
    ndim: int,
    levels: int,
    approx_weight: float,
    detail_weight: float,
    level_weights: Sequence[float] | None,
    band_weights: Mapping[str, float] | None,
) -> tuple[list[float], dict[str, float]]:
    check_positive(approx_weight, "approx_weight", allow_zero=True)
    check_positive(detail_weight, "detail_weight", allow_zero=True)
    if level_weights is None:
        per_level = [1.0] * levels
    else:
        if isinstance(level_weights, (str, bytes)) or not isinstance(level_weights, Sequence):
            raise ValueError(f"level_weights must be a sequence of {levels} numbers, got {level_weights!r}")
        if len(level_weights) != levels:
            raise ValueError(
                f"level_weights must have one weight per level (levels={levels}, finest first), "
                f"got {len(level_weights)}: {list(level_weights)!r}"
            )
        for w in level_weights:
            check_positive(w, "level_weights entry", allow_zero=True)
        per_level = [float(w) for w in level_weights]
    per_orientation = {o: 1.0 for o in ORIENTATIONS_2D} if ndim == 4 else {"detail": 1.0}
    if band_weights is not None:
        if ndim == 3:
            raise ValueError(
                "band_weights applies to 2-D (B, C, H, W) inputs only (orientations "
                f"{', '.join(ORIENTATIONS_2D)}); got it for a 1-D (B, C, T) input"
            )
        if not isinstance(band_weights, Mapping):
            raise ValueError(f"band_weights must be a mapping orientation -> weight, got {band_weights!r}")
        for key, w in band_weights.items():
            check_choice(key, "band_weights orientation", ORIENTATIONS_2D)
            check_positive(w, f"band_weights[{key!r}]", allow_zero=True)
            per_orientation[key] = float(w)
    return per_level, per_orientation


@validates_pair()
def wavelet_loss(
    pred: Tensor,
    target: Tensor,
    *,
    wavelet: str | pywt.Wavelet = "haar",
    levels: int = 3,
    mode: str = "reflect",
    distance: str = "l1",
    approx_weight: float = 1.0,
    detail_weight: float = 1.0,
    level_weights: Sequence[float] | None = None,
    band_weights: Mapping[str, float] | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Wavelet subband loss, paper Eq. 16: ``E sum_{s, l} gamma_{s,l} || W_0^{(s,l)} - W_hat_0^{(s,l)} ||_1``.

    Per sample: ``sum_b gamma_b * mean_{c, k} D(W_hat_b - W_b)`` over every band ``b`` of
    :func:`wavelet_decompose` (approximation + details of every level and orientation); within a band the distance
    is a **mean** over channels and coefficients (our choice: bands of different sizes count alike and ``lambda``
    does not scale with the signal size), across bands a **sum** as in Eq. 16. The weights are
    ``gamma = approx_weight`` for the approximation band and
    ``gamma = detail_weight * level_weights[l - 1] * band_weights[orientation]`` for a detail band at level ``l``.
    All weights default to 1, as in the paper's appendix (``gamma = 1``).

    Args:
        pred: the prediction ``x0_hat``, ``(B, C, T)`` or ``(B, C, H, W)``.
        target: the clean signal ``x0``, same shape.
        wavelet: PyWavelets name; the paper uses ``"haar"`` (default) and ``"bior1.3"``.
        levels: number of DWT levels (default 3, our choice: the paper does not say; 3 levels of Haar on 32x32
            resolve structure up to 8 pixels). Must satisfy ``levels <= wavelet_max_level(min(size), wavelet)``,
            else ``ValueError`` naming ``levels``, the size and the maximum.
        mode: boundary mode (default ``"reflect"``, our choice and ptwt's default: a smooth continuation that adds
            no artificial edge at the border; PyWavelets defaults to ``"symmetric"``).
        distance: ``"l1"`` (default, as in the paper) or ``"l2"``.
        approx_weight: weight of the coarsest approximation band.
        detail_weight: common weight of all detail bands.
        level_weights: one weight per level, **finest first** (``level_weights[0]`` is level 1, the finest details);
            ``None`` means all 1.
        band_weights: 2-D only, ``{"horizontal": w, "vertical": w, "diagonal": w}``; missing keys mean 1.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(B,)``).
    """
    check_choice(distance, "distance", DISTANCES)
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(mode, "mode", WAVELET_MODES)
    wav = _as_wavelet(wavelet)
    levels = _check_levels(levels, pred, wav)
    per_level, per_orientation = _band_weights(
        pred.dim(), levels, approx_weight, detail_weight, level_weights, band_weights
    )
    # The DWT is linear: W(pred) - W(target) = W(pred - target), one transform instead of two.
    per_sample = pred.new_zeros(pred.shape[0])
    for band in _decompose(pred - target, wav, levels, mode):
        if band.orientation == "approximation":
            gamma = float(approx_weight)
        else:
            gamma = float(detail_weight) * per_level[band.level - 1] * per_orientation[band.orientation]
        if gamma == 0.0:
            continue
        diff = band.coeffs
        per_coeff = diff.abs() if distance == "l1" else diff.square()
        per_sample = per_sample + gamma * per_coeff.flatten(1).mean(dim=1)
    return reduce_batch(per_sample, reduction)


class WaveletLoss(_LossModule):
    """``nn.Module`` form of :func:`wavelet_loss`; keyword options (``wavelet``, ``levels``, ...) pass through."""

    function = staticmethod(wavelet_loss)
