"""``SpectralRegularizer``: a small config of spectral terms becomes one module (the paper's ``L_S``).

    reg = SpectralRegularizer({"fourier_amp": 1.0, "wavelet": {"weight": 0.5, "wavelet": "bior1.3"}})
    out = reg(x0_hat, x0)          # out.total: (B,), out.terms: {"fourier_amp": (B,), "wavelet": (B,)}
    loss = (pointwise + lambda_spec * out.total).mean()

``out.total[b] = sum_k weight_k * out.terms[k][b]``; the terms are the *unweighted* loss values (for logging).
``lambda`` (the paper's weight, possibly ``lambda_EDM(sigma)`` per sample) is applied by the training objective,
not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from spectral_lib._checks import check_choice, check_positive

from .fourier import check_options, fourier_amplitude_loss, fourier_loss, fourier_phase_loss, prepare_pair
from .stft import mrstft_loss
from .wavelet import wavelet_loss

__all__ = ["TERMS", "SPECTRAL_REGULARIZERS", "PAPER_REGULARIZERS", "RegularizerOutput", "SpectralRegularizer"]

#: Term name -> per-sample loss function (called with ``reduction="none"``).
TERMS: Mapping[str, Callable[..., Tensor]] = {
    "fourier_amp": fourier_amplitude_loss,
    "fourier_phase": fourier_phase_loss,
    "fourier": fourier_loss,
    "wavelet": wavelet_loss,
    "mrstft": mrstft_loss,
}

#: Named variants for :meth:`SpectralRegularizer.from_name` (CLIs and error messages list these). A name that says
#: "the paper" computes the paper's formula as printed; ours have names of their own.
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {},
    "fourier_amp": {"fourier_amp": {}},  # Eq. 14, "AMP"
    "fourier_amp_phase": {"fourier": {"coupling": "product"}},  # Eq. 15 as printed, "AMPPHASE"
    "fourier_amp_phase_safe": {"fourier": {"coupling": "additive"}},  # ours: amplitude-weighted, wrap-free phase
    "wavelet": {"wavelet": {"wavelet": "haar"}},  # Eq. 16, "HAAR"
    "wavelet_bior13": {"wavelet": {"wavelet": "bior1.3"}},  # Eq. 16, "BIOR13"
    "mrstft": {"mrstft": {}},  # audio: multi-resolution STFT (not in the paper's L_S; a common audio baseline)
}
SPECTRAL_REGULARIZERS: tuple[str, ...] = tuple(_PRESETS)
PAPER_REGULARIZERS: tuple[str, ...] = ("fourier_amp", "fourier_amp_phase", "wavelet", "wavelet_bior13")
"""The paper's four regularizers (AMP, AMPPHASE, HAAR, BIOR13); the others in :data:`SPECTRAL_REGULARIZERS`
(``fourier_amp_phase_safe``, ``mrstft``) are beyond the paper and are labelled so where compared."""


@dataclass
class RegularizerOutput:
    """What :class:`SpectralRegularizer` returns.

    Attributes:
        total: ``(B,)``, the weighted sum of the terms per sample.
        terms: term name -> ``(B,)`` unweighted loss per sample, in the config's order.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def _parse_term(name: object, spec: object) -> tuple[float, dict[str, Any]]:
    check_choice(name, "spectral term", tuple(TERMS))
    if isinstance(spec, Mapping):
        options = dict(spec)
        weight = options.pop("weight", 1.0)
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        weight, options = spec, {}
    else:
        raise ValueError(
            f"spectral term {name!r} must map to a weight or a dict(weight=..., **options), got {spec!r}"
        )
    check_positive(weight, f"weight of spectral term {name!r}", allow_zero=True)
    if "reduction" in options:
        raise ValueError(f"spectral term {name!r}: 'reduction' is fixed to 'none' (one value per sample)")
    check_options(TERMS[str(name)], options, f"spectral term {name!r}")
    return float(weight), options


class SpectralRegularizer(nn.Module):
    """Weighted sum of spectral terms on ``(x0_hat, x0)``, one value per sample.

    Args:
        terms: mapping term name -> weight, or -> ``dict(weight=..., **options)`` with the options of that term's
            function. Names: ``"fourier_amp"`` (:func:`fourier_amplitude_loss`), ``"fourier_phase"``
            (:func:`fourier_phase_loss`), ``"fourier"`` (:func:`fourier_loss`), ``"wavelet"``
            (:func:`wavelet_loss`), ``"mrstft"`` (:func:`mrstft_loss`). An empty mapping is the "none" regularizer.

    Option *names* are checked here; option *values* are checked by the loss functions on the first call.
    """

    def __init__(self, terms: Mapping[str, float | Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        if terms is None:
            terms = {}
        if not isinstance(terms, Mapping):
            raise ValueError(f"terms must be a mapping term name -> weight or dict, got {terms!r}")
        self.weights: dict[str, float] = {}
        self.options: dict[str, dict[str, Any]] = {}
        for name, spec in terms.items():
            self.weights[name], self.options[name] = _parse_term(name, spec)

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> SpectralRegularizer:
        """A named variant (see :data:`SPECTRAL_REGULARIZERS`).

        The paper's: ``"fourier_amp"`` (Eq. 14), ``"fourier_amp_phase"`` (Eq. 15 as printed: the product of the
        whole-spectrum amplitude and wrapped-phase L1 norms, :func:`fourier_loss` with ``coupling="product"``),
        ``"wavelet"`` (Eq. 16, Haar), ``"wavelet_bior13"`` (Eq. 16, bior1.3). Ours: ``"fourier_amp_phase_safe"``
        (amplitude plus amplitude-weighted, wrap-free phase, ``coupling="additive"``), ``"mrstft"`` (audio).
        ``"none"`` is the baseline. ``kwargs`` go to the variant's single term (``weight=...`` included), e.g.
        ``from_name("wavelet", levels=2)``; ``"none"`` takes none.
        """
        check_choice(name, "spectral regularizer", SPECTRAL_REGULARIZERS)
        preset = _PRESETS[name]
        if not preset:
            if kwargs:
                raise ValueError(f"spectral regularizer 'none' takes no options, got {sorted(kwargs)}")
            return cls({})
        ((term, options),) = preset.items()
        return cls({term: {**options, **kwargs}})

    @property
    def is_empty(self) -> bool:
        """True for the "none" regularizer (no terms)."""
        return not self.weights

    @property
    def ranks(self) -> tuple[int, ...]:
        """Input ranks every term accepts: ``(3, 4)``, or ``(3,)`` when an audio-only term (MR-STFT) is in."""
        allowed = {3, 4}
        for name in self.weights:
            allowed &= set(TERMS[name].ranks)  # type: ignore[attr-defined]
        return tuple(sorted(allowed))

    def forward(self, x0_hat: Tensor, x0: Tensor) -> RegularizerOutput:
        """``x0_hat``, ``x0``: ``(B, C, T)`` or ``(B, C, H, W)``, same shape -> :class:`RegularizerOutput`.

        The pair is validated once here (each term then runs unchecked). ``total`` has the loss dtype (float32, or
        float64 for float64 inputs). With no terms it is zeros ``(B,)`` that still depend on ``x0_hat`` (zero
        gradient), so ``total.sum().backward()`` works.
        """
        x0_hat, x0 = prepare_pair(x0_hat, x0, ranks=self.ranks, names=("x0_hat", "x0"))
        # zeros (B,) that stay connected to x0_hat (+0.0 turns the -0.0 of a negative sum into 0.0)
        total = x0_hat.flatten(1).sum(dim=1) * 0.0 + 0.0
        terms: dict[str, Tensor] = {}
        for name, weight in self.weights.items():
            value = TERMS[name].unchecked(x0_hat, x0, reduction="none", **self.options[name])  # type: ignore[attr-defined]
            terms[name] = value
            total = total + weight * value
        return RegularizerOutput(total=total, terms=terms)

    def extra_repr(self) -> str:
        if self.is_empty:
            return "none"
        return ", ".join(f"{name}: weight={w}, options={self.options[name]}" for name, w in self.weights.items())

