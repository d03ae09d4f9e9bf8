"""Bridges to other training libraries, each an optional extra.

* :mod:`spectral_lib.integrations.diffusers`: Hugging Face ``diffusers`` (``pip install
  "spectral-diffusion-book[diffusers]"``): x̂₀ from a scheduler's prediction, the spectral term in a few lines,
  and a small ``UNet2DModel`` + ``DDPMScheduler`` trainer for the checkerboard toy.

Nothing is imported here: each bridge imports its library only when one of its functions is called, so that
``import spectral_lib.integrations.diffusers`` works (and says what to install) without the extra.
"""
