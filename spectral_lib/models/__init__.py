"""Networks ``model(x, noise_cond, **cond) -> out`` with ``out.shape == x.shape``; they know nothing about losses or
formulations (see ARCHITECTURE.md).

- :class:`UNet2D`: DDPM-style image UNet, sized by :func:`unet2d_preset` from 0.6 M (CPU toys) to 36 M (FFHQ 64).
- :class:`DiffWave`: the DiffWave waveform network (unconditional or mel-conditioned vocoder), with the public
  implementation's parameter names so that its pretrained checkpoint loads.
"""

from spectral_lib.models.diffwave import DIFFWAVE_PRESETS, DiffWave, DiffWaveConfig, diffwave_preset
from spectral_lib.models.unet2d import UNET2D_PRESETS, UNet2D, UNet2DConfig, count_parameters, unet2d_preset

__all__ = [
    "UNet2D",
    "UNet2DConfig",
    "UNET2D_PRESETS",
    "unet2d_preset",
    "DiffWave",
    "DiffWaveConfig",
    "DIFFWAVE_PRESETS",
    "diffwave_preset",
    "count_parameters",
]
