"""Spectral losses: Fourier amplitude / phase (paper Eqs. 14-15), wavelet subbands (Eq. 16), multi-resolution STFT,
and :class:`SpectralRegularizer`, which combines them into the paper's ``L_S`` on ``(x0_hat, x0)``."""

from .fourier import (
    COUPLINGS,
    FourierAmplitudeLoss,
    FourierLoss,
    FourierPhaseLoss,
    amplitude_phase,
    fourier_amplitude_loss,
    fourier_loss,
    fourier_phase_loss,
    highpass,
    lowpass,
    radial_filter,
    radial_frequency,
    rfft_bin_weights,
    rfft_spectrum,
)
from .regularizer import PAPER_REGULARIZERS, SPECTRAL_REGULARIZERS, TERMS, RegularizerOutput, SpectralRegularizer
from .stft import MRSTFTLoss, mrstft_loss, stft_magnitude
from .wavelet import WAVELET_MODES, WaveletBand, WaveletLoss, wavelet_decompose, wavelet_loss, wavelet_max_level

__all__ = [
    "COUPLINGS",
    "FourierAmplitudeLoss",
    "FourierLoss",
    "FourierPhaseLoss",
    "amplitude_phase",
    "fourier_amplitude_loss",
    "fourier_loss",
    "fourier_phase_loss",
    "highpass",
    "lowpass",
    "radial_filter",
    "radial_frequency",
    "rfft_bin_weights",
    "rfft_spectrum",
    "SPECTRAL_REGULARIZERS",
    "PAPER_REGULARIZERS",
    "TERMS",
    "RegularizerOutput",
    "SpectralRegularizer",
    "MRSTFTLoss",
    "mrstft_loss",
    "stft_magnitude",
    "WAVELET_MODES",
    "WaveletBand",
    "WaveletLoss",
    "wavelet_decompose",
    "wavelet_loss",
    "wavelet_max_level",
]
