"""spectral_lib: spectral (Fourier and wavelet) regularization for diffusion models.

Chandran et al., *Spectral Regularization for Diffusion Models*, arXiv 2603.02447 (2026). The public API is what a
researcher needs to add one line to their own training loop::

    from spectral_lib import SpectralRegularizer
    spectral = SpectralRegularizer.from_name("wavelet")
    loss = mse + lambda_spec * spectral(x0_hat, x0).total.mean()

and what the book uses: the losses, the formulations (DDPM, DDIM, EDM), :func:`diffusion_loss` and
:func:`run_experiment`. See ARCHITECTURE.md for the layers and interfaces.
"""

from __future__ import annotations

from spectral_lib._lazy import lazy_exports
from spectral_lib.diffusion import DDIM, DDPM, EDM, FORMULATIONS, LossOutput, diffusion_loss, make_formulation
from spectral_lib.spectral import (
    SPECTRAL_REGULARIZERS,
    FourierAmplitudeLoss,
    FourierLoss,
    FourierPhaseLoss,
    MRSTFTLoss,
    RegularizerOutput,
    SpectralRegularizer,
    WaveletLoss,
    fourier_amplitude_loss,
    fourier_loss,
    fourier_phase_loss,
    mrstft_loss,
    wavelet_decompose,
    wavelet_loss,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # losses
    "fourier_amplitude_loss",
    "fourier_phase_loss",
    "fourier_loss",
    "wavelet_loss",
    "wavelet_decompose",
    "mrstft_loss",
    "FourierAmplitudeLoss",
    "FourierPhaseLoss",
    "FourierLoss",
    "WaveletLoss",
    "MRSTFTLoss",
    "SpectralRegularizer",
    "RegularizerOutput",
    "SPECTRAL_REGULARIZERS",
    # formulations
    "DDPM",
    "DDIM",
    "EDM",
    "FORMULATIONS",
    "make_formulation",
    "diffusion_loss",
    "LossOutput",
    # experiments (imported on first use: they pull in the data loaders)
    "run_experiment",
    "get_profile",
]

_LAZY = {"run_experiment": "experiments", "get_profile": "experiments"}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
