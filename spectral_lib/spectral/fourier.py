"""Fourier amplitude and phase losses (paper Eqs. 14 and 15), 1-D and 2-D.

The transform is a real FFT (``torch.fft.rfftn``) over the signal dimensions: the last dimension of ``(B, C, T)``
audio, the last two of ``(B, C, H, W)`` images. Channels are transformed independently.

How the half spectrum is counted
--------------------------------
A real signal has a Hermitian spectrum, ``X(-k) = conj(X(k))``: the rFFT keeps only the bins ``0 .. n//2`` of the
last dimension. Every per-frequency quantity used here (amplitude difference, phase distance) is the same at ``k`` and
at its mirror ``-k``, so we weight each rFFT bin by how many full-FFT bins it stands for (1 for the DC column and, for
even sizes, the Nyquist column; 2 for every other column) and divide by the full number of bins. **Every "mean over
frequencies" in this module is therefore exactly the mean over the full FFT spectrum** (``np.fft.fftn``), at half
the cost. Per sample, the mean also runs over channels.

Normalisation
-------------
``norm="ortho"`` (our default) scales the FFT by ``1/sqrt(n)``: the transform is unitary, so amplitudes keep the
signal's units and white noise of variance ``s^2`` has mean power ``s^2`` in every bin, whatever the image size.
That keeps one ``lambda`` meaningful across resolutions. ``"backward"`` (NumPy's default, no scaling) and
``"forward"`` (``1/n``) are offered for comparison with other code.

Phase without ``torch.angle``
-----------------------------
For two spectra ``X = A e^{i phi}`` (target) and ``X_hat = A_hat e^{i phi_hat}`` (prediction)

    |X - X_hat|^2 = (A - A_hat)^2 + 4 A A_hat sin^2(dphi / 2),       dphi = phi_hat - phi,

so the complex error splits into an amplitude part and a phase part weighted by the amplitudes. Our
amplitude-weighted phase distance is

    d_phase(w) = 2 |A_hat X - A X_hat| / (A + A_hat + eps) = H(A, A_hat) * 2 |sin(dphi / 2)|,

with ``H = 2 A A_hat / (A + A_hat)`` the harmonic mean of the two amplitudes. It is periodic in ``dphi`` (no branch
cut, nothing to wrap), L1-like (``~ H |dphi|`` for small ``dphi``), vanishes where either amplitude is zero, needs
no ``angle`` and has gradients bounded by a small constant everywhere, including at zero amplitude. (The identity's
own weight, the geometric mean ``sqrt(A A_hat)``, has an infinite slope at zero amplitude; the harmonic mean equals
it when ``A = A_hat`` and is Lipschitz.) The raw phase difference of the paper is also offered
(``weighting="none"``): ``dphi`` is computed as ``atan2`` of ``X_hat conj(X)``, which lands in ``(-pi, pi]`` directly,
with the undefined zero-amplitude bins guarded to a zero difference.

Speed
-----
The transforms go through :func:`real_fft` (``rfftn`` whose backward is one half-size ``irfftn`` instead of
PyTorch's zero-padded complex FFT) and :func:`magnitude` (``|z|`` from ``re^2 + im^2`` instead of the complex
``hypot``, gradient ``g z / |z|``, 0 at ``z = 0``). Both are checked against PyTorch's own gradients in the tests.
They are kept because the benchmark shows a gain where the work is large:
``python -m spectral_lib.bench.implementations --kinds fourier`` times each loss with them against the same loss on
``torch.fft.rfftn(...).abs()`` and prints the speed-up. On one CPU thread it was largest for the MR-STFT loss
(its many short frames) and modest for the amplitude loss of a 64×3×64² batch or a DiffWave batch; on small inputs
(64×1×32²) the Python overhead of a custom autograd function made them slightly slower. The table gives the numbers
for your machine.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from spectral_lib._checks import check_choice, check_pair, check_positive, check_signal

__all__ = [
    "FOURIER_NORMS",
    "DISTANCES",
    "REDUCTIONS",
    "FREQUENCY_WEIGHTINGS",
    "PHASE_WEIGHTINGS",
    "COUPLINGS",
    "spectral_dims",
    "rfft_spectrum",
    "amplitude_phase",
    "rfft_bin_weights",
    "radial_frequency",
    "radial_filter",
    "lowpass",
    "highpass",
    "fourier_amplitude_loss",
    "fourier_phase_loss",
    "fourier_loss",
    "FourierAmplitudeLoss",
    "FourierPhaseLoss",
    "FourierLoss",
]

FOURIER_NORMS: tuple[str, ...] = ("ortho", "backward", "forward")
DISTANCES: tuple[str, ...] = ("l1", "l2")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
FREQUENCY_WEIGHTINGS: tuple[str | None, ...] = (None, "radial")
PHASE_WEIGHTINGS: tuple[str, ...] = ("amplitude", "none")
COUPLINGS: tuple[str, ...] = ("additive", "per_frequency", "product")

#: Guard in the denominator of the amplitude-weighted phase distance, in amplitude units. It only matters where both
#: amplitudes are below ~1e-8, where the distance is ~0 anyway; it keeps ``0 / 0`` and its gradient finite.
PHASE_EPS = 1e-8
#: Below this ``|X_hat conj(X)|`` the raw phase difference is undefined and taken as 0 (``weighting="none"``).
_RAW_PHASE_MIN_MAGNITUDE = 1e-12


# ----------------------------------------------------------------------------------------------------------------
# Shared plumbing (also used by wavelet.py and stft.py): dtype policy, autocast, reduction, option checks.
# ----------------------------------------------------------------------------------------------------------------


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the transforms run in: the inputs' promoted dtype, with half precision upcast to float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.float64 if dtype == torch.float64 else torch.float32


@contextlib.contextmanager
def autocast_disabled(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` so that transforms run in float32 (or float64), never in half precision."""
    if torch.amp.is_autocast_available(device.type):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:  # pragma: no cover - devices without autocast support
        yield


def prepare_pair(
    pred: object,
    target: object,
    *,
    ranks: tuple[int, ...] = (3, 4),
    names: tuple[str, str] = ("pred", "target"),
) -> tuple[Tensor, Tensor]:
    """Validate a prediction/target pair and cast both to the transform dtype (float32, or float64 if either is)."""
    pred, target = check_pair(pred, target, ranks=ranks, names=names)
    dtype = compute_dtype(pred, target)
    return pred.to(dtype), target.to(dtype)


def validates_pair(*, ranks: tuple[int, ...] = (3, 4)) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator for a loss body ``body(pred, target, **options)`` that expects validated float32/float64 inputs.

    The decorated (public) function runs :func:`prepare_pair` first. The body stays reachable as ``.unchecked`` and
    the allowed ranks as ``.ranks``, so that :class:`SpectralRegularizer` validates ``(x0_hat, x0)`` once for all its
    terms (each validation is a full pass over the data and, on a GPU, a host sync).
    """

    def decorate(body: Callable[..., Tensor]) -> Callable[..., Tensor]:
        @functools.wraps(body)
        def loss(pred: Tensor, target: Tensor, **options: Any) -> Tensor:
            pred, target = prepare_pair(pred, target, ranks=ranks)
            return body(pred, target, **options)

        loss.unchecked = body  # type: ignore[attr-defined]
        loss.ranks = ranks  # type: ignore[attr-defined]
        return loss

    return decorate


def reduce_batch(per_sample: Tensor, reduction: str) -> Tensor:
    """``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (shape ``(B,)``) over the batch dimension."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def check_options(function: Callable[..., Tensor], options: Mapping[str, Any], owner: str) -> None:
    """Raise ``ValueError`` when ``options`` holds a keyword that ``function`` does not take (used by wrappers)."""
    params = inspect.signature(function).parameters
    valid = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "reduction"]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(f"{owner} got unknown option(s) {unknown}; valid: {', '.join(valid)}")


class _LossModule(nn.Module):
    """Thin wrapper: stores keyword options, validates their names, calls the functional loss."""

    function: Callable[..., Tensor]

    def __init__(self, *, reduction: str = "mean", **options: Any) -> None:
        super().__init__()
        check_options(type(self).function, options, type(self).__name__)
        check_choice(reduction, "reduction", REDUCTIONS)
        self.reduction = reduction
        self.options = dict(options)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return type(self).function(pred, target, reduction=self.reduction, **self.options)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"reduction={self.reduction!r}" + (f", {opts}" if opts else "")


# ----------------------------------------------------------------------------------------------------------------
# Transforms and frequency grids
# ----------------------------------------------------------------------------------------------------------------


def spectral_dims(x: Tensor) -> tuple[int, ...]:
    """The signal dimensions of ``x``: ``(-1,)`` for ``(B, C, T)`` audio, ``(-2, -1)`` for ``(B, C, H, W)`` images."""
    return (-1,) if x.dim() == 3 else (-2, -1)


# The adjoint of an FFT normalisation: the gradient of a "backward" (unscaled) rFFT is an unscaled inverse,
# which torch calls norm="forward", and vice versa.
_ADJOINT_NORM = {"ortho": "ortho", "backward": "forward", "forward": "backward"}


class _RealFFT(torch.autograd.Function):
    """``torch.fft.rfftn`` with a cheaper backward: one ``irfftn`` of half size.

    PyTorch's own backward zero-pads the gradient to the full spectrum and runs a complex FFT. The adjoint of the
    rFFT of a real signal is ``irfftn`` of the gradient with the non-self-mirrored bins of the last dim halved
    (``irfftn`` counts them twice), in the adjoint normalisation. Checked against PyTorch's backward by ``gradcheck``
    in the tests; what it saves is measured by :mod:`spectral_lib.bench.implementations` (module docstring, "Speed").
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, dims: tuple[int, ...], norm: str) -> Tensor:  # type: ignore[override]
        ctx.dims, ctx.norm = dims, norm
        ctx.sizes = tuple(x.shape[d] for d in dims)
        return torch.fft.rfftn(x, dim=dims, norm=norm)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        half = 1.0 / rfft_bin_weights(ctx.sizes[-1], device=grad.device, dtype=grad.real.dtype)
        x_grad = torch.fft.irfftn(grad * half, s=ctx.sizes, dim=ctx.dims, norm=_ADJOINT_NORM[ctx.norm])
        return x_grad, None, None


def _scale_complex(z: Tensor, r: Tensor) -> Tensor:
    """``z * r`` for complex ``z`` and real ``r``, without promoting ``r`` to a complex copy first."""
    return torch.view_as_complex((torch.view_as_real(z.resolve_conj()) * r.unsqueeze(-1)).contiguous())


class _Magnitude(torch.autograd.Function):
    """``sqrt(max(|z|^2, floor))`` of a complex tensor, with gradient ``g z / |z|`` where ``|z|^2 > floor`` else 0.

    Same values and gradients as ``z.abs()`` (``floor = 0``; zero gradient at ``z = 0``) or
    ``sqrt(clamp(|z|^2, min=floor))``, in fewer passes over memory (complex ``abs`` is a slow ``hypot``).
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, floor: float) -> Tensor:  # type: ignore[override]
        power = torch.addcmul(z.real.square(), z.imag, z.imag)
        magnitude = power.clamp_min(floor).sqrt() if floor > 0 else power.sqrt()
        if ctx.needs_input_grad[0]:
            inverse = torch.reciprocal(magnitude).masked_fill_(power <= floor, 0.0)  # 0 where clamped or zero
            ctx.save_for_backward(z, inverse)
        return magnitude

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        z, inverse = ctx.saved_tensors
        return _scale_complex(z, grad * inverse), None


def real_fft(x: Tensor, dims: tuple[int, ...], norm: str) -> Tensor:
    """``torch.fft.rfftn(x, dim=dims, norm=norm)`` for a float32/float64 ``x``, with the cheaper backward above."""
    return _RealFFT.apply(x, tuple(dims), norm)


def magnitude(z: Tensor, floor: float = 0.0) -> Tensor:
    """``|z|`` (``floor = 0``) or ``sqrt(max(|z|^2, floor))``, with finite gradients (0 at and below the floor)."""
    return _Magnitude.apply(z, float(floor))


def _rfft(x: Tensor, norm: str) -> Tensor:
    """rFFT over the signal dims, autocast off; ``x`` is already float32/float64."""
    with autocast_disabled(x.device):
        return real_fft(x, spectral_dims(x), norm)


def rfft_spectrum(x: Tensor, *, norm: str = "ortho") -> Tensor:
    """Complex rFFT of ``x`` over its signal dims.

    Args:
        x: ``(B, C, T)`` or ``(B, C, H, W)``, any float dtype (half precision is upcast to float32).
        norm: ``"ortho"`` (default, unitary), ``"backward"`` or ``"forward"``, as in ``torch.fft``.

    Returns:
        ``(B, C, T//2+1)`` or ``(B, C, H, W//2+1)`` complex64 (complex128 for float64 input).
    """
    x = check_signal(x, "x")
    check_choice(norm, "norm", FOURIER_NORMS)
    return _rfft(x.to(compute_dtype(x)), norm)


def amplitude_phase(x: Tensor, *, norm: str = "ortho") -> tuple[Tensor, Tensor]:
    """Amplitude ``A = |X|`` and phase ``phi = angle(X)`` in ``(-pi, pi]`` of the rFFT of ``x`` (for plots/analysis).

    The losses never differentiate ``angle`` (its gradient is infinite at zero amplitude); use this for looking.
    """
    spectrum = rfft_spectrum(x, norm=norm)
    return magnitude(spectrum), torch.angle(spectrum)


def rfft_bin_weights(n: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """How many full-FFT bins each rFFT bin of a length-``n`` last dimension stands for: shape ``(n//2+1,)``.

    1 for the DC bin and (``n`` even) the Nyquist bin, which are their own mirrors; 2 for every other bin.
    ``sum(weights) == n``.
    """
    weights = torch.full((n // 2 + 1,), 2.0, device=device, dtype=dtype)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    return weights


def radial_frequency(
    signal_shape: tuple[int, ...], *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Radial frequency ``|f|`` in cycles per sample on the rFFT grid of a signal of shape ``signal_shape``.

    Args:
        signal_shape: ``(T,)`` or ``(H, W)``.

    Returns:
        ``(T//2+1,)`` holding ``k / T``, or ``(H, W//2+1)`` holding ``sqrt(fy^2 + fx^2)`` with ``fy`` from
        ``fftfreq(H)`` and ``fx`` from ``rfftfreq(W)``. The Nyquist frequency is 0.5.
    """
    if len(signal_shape) == 1:
        return torch.fft.rfftfreq(signal_shape[0], device=device, dtype=dtype).abs()
    h, w = signal_shape
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def radial_filter(x: Tensor, gain: Callable[[Tensor], Tensor]) -> Tensor:
    """Multiply the spectrum of ``x`` by ``gain(|f|)`` and transform back (differentiable).

    Args:
        x: ``(B, C, T)`` or ``(B, C, H, W)``.
        gain: function of the radial frequency ``|f|`` in cycles per sample (:func:`radial_frequency`, Nyquist 0.5)
            returning a real tensor of the same shape (or a boolean mask), e.g. ``lambda f: f <= 0.1`` or a
            Gaussian ``lambda f: torch.exp(-2 * torch.pi**2 * sigma**2 * f**2)`` (a blur of ``sigma`` samples).

    Returns:
        The filtered signal, ``x``'s shape, float32 (float64 for float64 input).
    """
    x = check_signal(x, "x")
    x = x.to(compute_dtype(x))
    dims, shape = spectral_dims(x), tuple(x.shape[2:])
    with autocast_disabled(x.device):
        weights = gain(radial_frequency(shape, device=x.device, dtype=x.dtype)).to(x.dtype)
        return torch.fft.irfftn(real_fft(x, dims, "ortho") * weights, s=shape, dim=dims, norm="ortho")


def lowpass(x: Tensor, cutoff: float) -> Tensor:
    """Ideal low-pass filter: keep the frequencies with ``|f| <= cutoff`` (cycles per sample, Nyquist 0.5)."""
    check_positive(cutoff, "cutoff", allow_zero=True)
    return radial_filter(x, lambda f: f <= cutoff)


def highpass(x: Tensor, cutoff: float) -> Tensor:
    """Ideal high-pass filter: keep ``|f| > cutoff``; ``lowpass(x, c) + highpass(x, c) == x``."""
    check_positive(cutoff, "cutoff", allow_zero=True)
    return radial_filter(x, lambda f: f > cutoff)


def _spectral_mean(values: Tensor, signal_shape: tuple[int, ...]) -> Tensor:
    """Per-sample mean over channels and the *full* spectrum of a quantity given on the rFFT grid -> ``(B,)``."""
    n_full = 1
    for s in signal_shape:
        n_full *= s
    weights = rfft_bin_weights(signal_shape[-1], device=values.device, dtype=values.dtype)
    summed = (values * weights).flatten(1).sum(dim=1)
    return summed / (values.shape[1] * n_full)


def _distance(diff: Tensor, distance: str) -> Tensor:
    return diff.abs() if distance == "l1" else diff.square()


def _weighted_phase_distance(x_hat: Tensor, x: Tensor, a_hat: Tensor, a: Tensor) -> Tensor:
    """``2 |A_hat X - A X_hat| / (A + A_hat + eps)``: amplitude-weighted chord distance between the phases."""
    return 2.0 * magnitude(_scale_complex(x, a_hat) - _scale_complex(x_hat, a)) / (a + a_hat + PHASE_EPS)


def _wrapped_phase_difference(x_hat: Tensor, x: Tensor) -> Tensor:
    """``phi_hat - phi`` wrapped into ``(-pi, pi]``, as ``atan2`` of ``X_hat conj(X)``; 0 where undefined.

    Where ``|X_hat conj(X)|`` is (near) zero the phase of one spectrum is undefined; those bins get a zero
    difference and a zero gradient (double ``where``, so no NaN leaks from the unused branch).
    """
    z = x_hat * x.conj()
    re, im = z.real, z.imag
    defined = (re.square() + im.square()) > _RAW_PHASE_MIN_MAGNITUDE**2
    re_safe = torch.where(defined, re, torch.ones_like(re))
    im_safe = torch.where(defined, im, torch.zeros_like(im))
    return torch.where(defined, torch.atan2(im_safe, re_safe), torch.zeros_like(re))


def _check_common(norm: str, reduction: str, distance: str | None = None) -> None:
    check_choice(norm, "norm", FOURIER_NORMS)
    check_choice(reduction, "reduction", REDUCTIONS)
    if distance is not None:
        check_choice(distance, "distance", DISTANCES)


# ----------------------------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------------------------


@validates_pair()
def fourier_amplitude_loss(
    pred: Tensor,
    target: Tensor,
    *,
    distance: str = "l1",
    norm: str = "ortho",
    log_amplitude: bool = False,
    frequency_weighting: str | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Fourier amplitude loss, paper Eq. 14: ``E || A_0 - A_hat_0 ||_1`` with ``A = |FFT(x)|``.

    Per sample: ``mean_{c, w} w(w) * D(A_hat(c, w) - A(c, w))`` over channels ``c`` and the full spectrum ``w``
    (computed on the rFFT half with mirrored bins counted twice, see the module docstring), ``D = |.|`` ("l1", as in
    the paper) or ``(.)^2`` ("l2"). The paper's ``||.||_1`` is a sum; we average over bins (our choice, so that one
    ``lambda`` works across sizes; multiply by the number of bins to get the sum).

    Args:
        pred: the prediction ``x0_hat``, ``(B, C, T)`` or ``(B, C, H, W)``.
        target: the clean signal ``x0``, same shape.
        distance: ``"l1"`` (default, as in the paper) or ``"l2"``.
        norm: FFT normalisation, ``"ortho"`` (default, our choice: size-independent amplitudes), ``"backward"``,
            ``"forward"``.
        log_amplitude: compare ``log1p(A)`` instead of ``A`` (our choice of log: slope 1 and finite at ``A = 0``, no
            eps to tune, ``~ log A`` for large ``A``). Default ``False`` (the paper compares raw amplitudes).
        frequency_weighting: ``None`` (default, every bin counts the same, as in the paper) or ``"radial"``:
            ``w(w) = |f(w)| / max |f|``, the radial frequency in cycles/sample normalised to 1 at the highest
            frequency on the grid (0 at DC, which is left to the pointwise loss; 1 at the Nyquist corner).
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"`` for shape ``(B,)``.

    Returns:
        A scalar, or ``(B,)`` with ``reduction="none"``; float32 (float64 for float64 inputs).
    """
    _check_common(norm, reduction, distance)
    check_choice(frequency_weighting, "frequency_weighting", FREQUENCY_WEIGHTINGS)
    if not isinstance(log_amplitude, bool):
        raise ValueError(f"log_amplitude must be True or False, got {log_amplitude!r}")
    signal_shape = tuple(pred.shape[2:])
    with autocast_disabled(pred.device):
        a_hat = magnitude(_rfft(pred, norm))
        a = magnitude(_rfft(target, norm))
        if log_amplitude:
            a_hat, a = torch.log1p(a_hat), torch.log1p(a)
        per_bin = _distance(a_hat - a, distance)
        if frequency_weighting == "radial":
            radius = radial_frequency(signal_shape, device=pred.device, dtype=pred.dtype)
            per_bin = per_bin * (radius / radius.max())
        per_sample = _spectral_mean(per_bin, signal_shape)
    return reduce_batch(per_sample, reduction)


@validates_pair()
def fourier_phase_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weighting: str = "amplitude",
    norm: str = "ortho",
    reduction: str = "mean",
) -> Tensor:
    """Fourier phase loss: the phase part of Eq. 15 on its own.

    Per sample, a mean over channels and the full spectrum of

    - ``weighting="amplitude"`` (default, our choice): ``2 |A_hat X - A X_hat| / (A + A_hat + eps)``, i.e.
      ``H(A, A_hat) * 2 |sin(dphi/2)|`` with ``H`` the harmonic mean of the amplitudes. Phase counts only where
      there is energy in both spectra; wrap-free; bounded gradients even at zero amplitude (module docstring).
    - ``weighting="none"``: ``|dphi|`` with ``dphi`` wrapped into ``(-pi, pi]``, in radians (the paper's
      ``||phi_0 - phi_hat_0||_1`` read as a mean). Bins where either amplitude is ~0 count as 0. Gradients are
      finite but grow like ``1 / A_hat`` where the prediction's amplitude is small.

    Args:
        pred, target: ``(B, C, T)`` or ``(B, C, H, W)``, same shape.
        weighting: ``"amplitude"`` or ``"none"``.
        norm: FFT normalisation (see :func:`fourier_amplitude_loss`).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(B,)``).
    """
    _check_common(norm, reduction)
    check_choice(weighting, "weighting", PHASE_WEIGHTINGS)
    signal_shape = tuple(pred.shape[2:])
    with autocast_disabled(pred.device):
        x_hat, x = _rfft(pred, norm), _rfft(target, norm)
        if weighting == "amplitude":
            per_bin = _weighted_phase_distance(x_hat, x, magnitude(x_hat), magnitude(x))
        else:
            per_bin = _wrapped_phase_difference(x_hat, x).abs()
        per_sample = _spectral_mean(per_bin, signal_shape)
    return reduce_batch(per_sample, reduction)


@validates_pair()
def fourier_loss(
    pred: Tensor,
    target: Tensor,
    *,
    amplitude_weight: float = 1.0,
    phase_weight: float = 1.0,
    coupling: str = "additive",
    distance: str = "l1",
    norm: str = "ortho",
    reduction: str = "mean",
) -> Tensor:
    """Fourier amplitude + phase loss, paper Eq. 15: ``E[ ||A_0 - A_hat_0||_1 (1 + ||phi_0 - phi_hat_0||_1) ]``.

    One rFFT per input feeds both parts. With ``D`` the distance (``|.|`` or ``(.)^2``), ``dA = A_hat - A``,
    ``a = amplitude_weight``, ``p = phase_weight`` and ``mean_w`` the per-sample mean over channels and the full
    spectrum, the three readings are:

    - ``"additive"`` (default): ``a * mean_w D(dA) + p * mean_w D(d_phase)``, ``d_phase`` the amplitude-weighted
      phase distance of :func:`fourier_phase_loss` (``weighting="amplitude"``). Since
      ``|X - X_hat|^2 = dA^2 + 4 A A_hat sin^2(dphi/2)``, the two terms are the radial and tangential parts of the
      complex spectral error, each in amplitude units.
    - ``"per_frequency"``: ``a * mean_w D(dA) * (1 + p * |dphi|)``, the coupling the paper's prose describes
      (phase matters where the amplitude is wrong), ``dphi`` wrapped into ``(-pi, pi]``.
    - ``"product"``: ``a * mean_w D(dA) * (1 + p * mean_w |dphi|)``, Eq. 15 exactly as printed (a product of two
      whole-spectrum norms, each read as a mean so that ``1 + ...`` is in radians, not in "radians x bins").

    Why ``"additive"`` is the default (our choice): both coupled readings vanish, phase term included, wherever the
    amplitudes already match, so once the amplitude spectrum is right they stop saying anything about *where* the
    edges are (the phase), which is exactly what the amplitude loss alone cannot see. The additive form keeps a
    phase signal wherever both spectra have energy, needs no ``angle`` (no branch cut, bounded gradients at zero
    amplitude), and reduces to the amplitude loss for ``phase_weight=0``.

    Args:
        pred, target: ``(B, C, T)`` or ``(B, C, H, W)``, same shape.
        amplitude_weight: ``a`` above, ``>= 0`` (default 1).
        phase_weight: ``p`` above, ``>= 0`` (default 1, as in the paper's ``1 + ...``).
        coupling: ``"additive"`` (default), ``"per_frequency"`` or ``"product"``.
        distance: ``"l1"`` (default, as in the paper) or ``"l2"``; in ``"additive"`` it applies to both parts.
        norm: FFT normalisation (see :func:`fourier_amplitude_loss`).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(B,)``).
    """
    _check_common(norm, reduction, distance)
    check_choice(coupling, "coupling", COUPLINGS)
    check_positive(amplitude_weight, "amplitude_weight", allow_zero=True)
    check_positive(phase_weight, "phase_weight", allow_zero=True)
    signal_shape = tuple(pred.shape[2:])
    with autocast_disabled(pred.device):
        x_hat, x = _rfft(pred, norm), _rfft(target, norm)
        a_hat, a = magnitude(x_hat), magnitude(x)
        amp_term = _distance(a_hat - a, distance)
        if coupling == "additive":
            phase_term = _distance(_weighted_phase_distance(x_hat, x, a_hat, a), distance)
            per_sample = amplitude_weight * _spectral_mean(amp_term, signal_shape) + phase_weight * _spectral_mean(
                phase_term, signal_shape
            )
        elif coupling == "per_frequency":
            dphi = _wrapped_phase_difference(x_hat, x).abs()
            per_sample = amplitude_weight * _spectral_mean(amp_term * (1.0 + phase_weight * dphi), signal_shape)
        else:  # "product", as printed
            dphi = _wrapped_phase_difference(x_hat, x).abs()
            per_sample = (
                amplitude_weight
                * _spectral_mean(amp_term, signal_shape)
                * (1.0 + phase_weight * _spectral_mean(dphi, signal_shape))
            )
    return reduce_batch(per_sample, reduction)


# ----------------------------------------------------------------------------------------------------------------
# Thin nn.Module wrappers
# ----------------------------------------------------------------------------------------------------------------


class FourierAmplitudeLoss(_LossModule):
    """``nn.Module`` form of :func:`fourier_amplitude_loss`; keyword options are passed through."""

    function = staticmethod(fourier_amplitude_loss)


class FourierPhaseLoss(_LossModule):
    """``nn.Module`` form of :func:`fourier_phase_loss`; keyword options are passed through."""

    function = staticmethod(fourier_phase_loss)


class FourierLoss(_LossModule):
    """``nn.Module`` form of :func:`fourier_loss` (amplitude + phase); keyword options are passed through."""

    function = staticmethod(fourier_loss)
