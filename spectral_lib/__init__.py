"""spectral_lib: spectral (Fourier and wavelet) regularization for diffusion models.

Chandran et al., *Spectral Regularization for Diffusion Models*, arXiv 2603.02447 (2026). See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
