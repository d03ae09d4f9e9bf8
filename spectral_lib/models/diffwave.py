"""DiffWave (Kong et al. 2021): a WaveNet-like network of gated, dilated 1-D convolutions for waveforms.

``DiffWave(config)(x, noise_cond, mel=None) -> out`` with ``x`` and ``out`` of shape ``(B, 1, T)``.
``noise_cond`` is the diffusion step ``t`` (float ``(B,)``; fractional steps are interpolated in the embedding
table, which DiffWave's fast sampling needs). ``mel`` is the log-mel spectrogram ``(B, n_mels, frames)`` with
``T = frames * hop_length`` for the vocoder, absent for the unconditional model (``n_mels=None``).

Module and parameter names mirror the public implementation (lmnt-com/diffwave, ``src/diffwave/model.py``) so that
its LJSpeech checkpoint loads with ``model.load_state_dict(checkpoint["model"])``:
``input_projection``, ``diffusion_embedding.projection1/2``, ``spectrogram_upsampler.conv1/2``,
``residual_layers.N.{dilated_conv, diffusion_projection, conditioner_projection, output_projection}``,
``skip_projection``, ``output_projection``. The step table ``diffusion_embedding.embedding`` is a non-persistent
buffer, as there. (The public model takes ``(B, T)`` audio and returns ``(B, 1, T)``; ours takes and returns
``(B, 1, T)``.)

Per residual layer ``i`` with dilation ``2 ** (i % dilation_cycle)`` (Kong et al. 2021, Fig. 2):

    y = dilated_conv(x + diffusion_projection(e_t)) [+ conditioner_projection(mel_up)]
    y = sigmoid(y_gate) * tanh(y_filter)
    residual, skip = output_projection(y)
    x <- (x + residual) / sqrt(2)

and the output is ``output_projection(relu(skip_projection(sum(skip) / sqrt(L))))``.

Presets (``diffwave_preset``):

=======  ======  ========  =====  ======  =====  ===========
name     layers  channels  cycle  n_mels  steps  parameters
=======  ======  ========  =====  ======  =====  ===========
tiny     4       16        2      None    50     0.025 M
small    12      32        6      80      50     0.36 M
paper    30      64        10     80      50     2.62 M
=======  ======  ========  =====  ======  =====  ===========

``paper`` is DiffWave's LJSpeech vocoder (Kong et al. 2021, Sec. 5.1: 30 layers, C = 64, cycle 10; 22.05 kHz,
80 mels, hop 256), the model the spectral paper fine-tunes. ``tiny`` (unconditional, small embedding MLP) is our
CPU toy (pass ``n_mels=80`` for a tiny vocoder); ``small`` is a vocoder that trains on a CPU (our choice: two
dilation cycles, a receptive field of about 250 samples).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spectral_lib._checks import check_choice, check_noise_cond, check_signal

__all__ = ["DiffWaveConfig", "DiffWave", "DIFFWAVE_PRESETS", "diffwave_preset", "step_embedding_table"]


def _conv1d(*args: Any, **kwargs: Any) -> nn.Conv1d:
    """A Conv1d with Kaiming-normal weights (as in the public implementation)."""
    layer = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(layer.weight)
    return layer


def step_embedding_table(num_steps: int, dim: int = 128) -> torch.Tensor:
    """DiffWave's sinusoidal step table (Kong et al. 2021, Sec. 3.1, "diffusion-step embedding"):
    ``[sin(10^(4k/(d/2-1)) t), cos(10^(4k/(d/2-1)) t)]`` for ``k = 0 .. d/2 - 1``, rows ``t = 0 .. num_steps - 1``.

    Returns:
        ``(num_steps, dim)`` float32.
    """
    half = dim // 2
    steps = torch.arange(num_steps, dtype=torch.float32)[:, None]
    dims = torch.arange(half, dtype=torch.float32)[None, :]
    table = steps * 10.0 ** (dims * 4.0 / (half - 1))
    return torch.cat([torch.sin(table), torch.cos(table)], dim=1)


@dataclass(frozen=True)
class DiffWaveConfig:
    """Hyper-parameters of :class:`DiffWave` (defaults: the paper's LJSpeech vocoder).

    Attributes:
        residual_layers: number of residual layers ``L`` (30).
        residual_channels: channels ``C`` (64).
        dilation_cycle: dilations ``1, 2, ..., 2^(cycle-1)`` repeat (10).
        n_mels: mel bands of the conditioner (80); ``None`` for the unconditional model.
        num_steps: rows of the step-embedding table, i.e. the training ``T`` (50).
        upsample_strides: time strides of the two transposed 2-D convolutions of the mel upsampler; their product
            is the hop length (``(16, 16)`` -> 256, as in DiffWave).
        step_embedding_dim: sinusoid width (128, as in DiffWave).
        step_hidden_dim: width of the step MLP (512, as in DiffWave; smaller for CPU toys).
    """

    residual_layers: int = 30
    residual_channels: int = 64
    dilation_cycle: int = 10
    n_mels: int | None = 80
    num_steps: int = 50
    upsample_strides: tuple[int, int] = (16, 16)
    step_embedding_dim: int = 128
    step_hidden_dim: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "upsample_strides", tuple(int(s) for s in self.upsample_strides))
        for name in ("residual_layers", "residual_channels", "dilation_cycle", "num_steps", "step_hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_mels is not None and (not isinstance(self.n_mels, int) or self.n_mels < 1):
            raise ValueError(f"n_mels must be a positive integer or None (unconditional), got {self.n_mels!r}")
        if self.num_steps < 2:
            raise ValueError(f"num_steps must be >= 2, got {self.num_steps}")
        if self.step_embedding_dim < 4 or self.step_embedding_dim % 2:
            raise ValueError(f"step_embedding_dim must be an even integer >= 4, got {self.step_embedding_dim!r}")
        if len(self.upsample_strides) != 2 or any(s < 2 or s % 2 for s in self.upsample_strides):
            raise ValueError(f"upsample_strides must be two even integers >= 2, got {self.upsample_strides}")

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame (the product of the upsampler strides)."""
        return self.upsample_strides[0] * self.upsample_strides[1]

    @property
    def unconditional(self) -> bool:
        return self.n_mels is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **overrides: Any) -> DiffWaveConfig:
        return replace(self, **overrides)


DIFFWAVE_PRESETS: dict[str, DiffWaveConfig] = {
    "tiny": DiffWaveConfig(residual_layers=4, residual_channels=16, dilation_cycle=2, n_mels=None,
                           step_hidden_dim=64),
    "small": DiffWaveConfig(residual_layers=12, residual_channels=32, dilation_cycle=6, n_mels=80,
                            step_hidden_dim=256),
    "paper": DiffWaveConfig(),
}


def diffwave_preset(name: str, **overrides: Any) -> DiffWaveConfig:
    """A named :class:`DiffWaveConfig` (see the module docstring), with optional overrides."""
    check_choice(name, "preset", tuple(DIFFWAVE_PRESETS))
    return DIFFWAVE_PRESETS[name].replace(**overrides) if overrides else DIFFWAVE_PRESETS[name]


class DiffusionEmbedding(nn.Module):
    """Step table lookup (linear interpolation for fractional steps), then ``Linear-SiLU-Linear-SiLU``."""

    def __init__(self, num_steps: int, embedding_dim: int = 128, hidden_dim: int = 512) -> None:
        super().__init__()
        self.register_buffer("embedding", step_embedding_table(num_steps, embedding_dim), persistent=False)
        self.projection1 = nn.Linear(embedding_dim, hidden_dim)
        self.projection2 = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        if step.is_floating_point():
            low = step.floor().long()
            high = step.ceil().long()
            frac = (step - low).to(self.embedding.dtype)[:, None]
            x = self.embedding[low] + (self.embedding[high] - self.embedding[low]) * frac
        else:
            x = self.embedding[step]
        x = F.silu(self.projection1(x))
        return F.silu(self.projection2(x))


class SpectrogramUpsampler(nn.Module):
    """Two transposed 2-D convolutions over (mel, time), each stretching time by its stride, leaky ReLU 0.4."""

    def __init__(self, strides: tuple[int, int] = (16, 16)) -> None:
        super().__init__()
        s1, s2 = strides
        # kernel 2s, padding s/2: output length exactly s * input length.
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 2 * s1], stride=[1, s1], padding=[1, s1 // 2])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 2 * s2], stride=[1, s2], padding=[1, s2 // 2])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(mel.unsqueeze(1)), 0.4)
        x = F.leaky_relu(self.conv2(x), 0.4)
        return x.squeeze(1)


class ResidualBlock(nn.Module):
    """One gated residual layer (see the module docstring)."""

    def __init__(self, n_mels: int | None, channels: int, dilation: int, hidden_dim: int) -> None:
        super().__init__()
        self.dilated_conv = _conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(hidden_dim, channels)
        self.conditioner_projection = _conv1d(n_mels, 2 * channels, 1) if n_mels is not None else None
        self.output_projection = _conv1d(channels, 2 * channels, 1)

    def forward(
        self, x: torch.Tensor, step_emb: torch.Tensor, conditioner: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated_conv(x + self.diffusion_projection(step_emb).unsqueeze(-1))
        if self.conditioner_projection is not None:
            y = y + self.conditioner_projection(conditioner)
        gate, filt = torch.chunk(y, 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """The DiffWave network; see the module docstring.

    Args:
        config: a :class:`DiffWaveConfig` (default: the paper's vocoder).

    Forward:
        ``x`` ``(B, 1, T)``; ``noise_cond`` ``(B,)`` step in ``[0, num_steps - 1]`` (float, possibly fractional, or
        integer; a scalar is broadcast); ``mel`` ``(B, n_mels, T / hop_length)`` for the conditional model.
        Returns ``(B, 1, T)``.
    """

    def __init__(self, config: DiffWaveConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else DiffWaveConfig()
        self.input_projection = _conv1d(1, cfg.residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(cfg.num_steps, cfg.step_embedding_dim, cfg.step_hidden_dim)
        self.spectrogram_upsampler = None if cfg.unconditional else SpectrogramUpsampler(cfg.upsample_strides)
        self.residual_layers = nn.ModuleList(
            ResidualBlock(cfg.n_mels, cfg.residual_channels, 2 ** (i % cfg.dilation_cycle), cfg.step_hidden_dim)
            for i in range(cfg.residual_layers)
        )
        self.skip_projection = _conv1d(cfg.residual_channels, cfg.residual_channels, 1)
        self.output_projection = _conv1d(cfg.residual_channels, 1, 1)
        nn.init.zeros_(self.output_projection.weight)  # as in the public implementation

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DiffWave:
        """``DiffWave(diffwave_preset(name, **overrides))``."""
        return cls(diffwave_preset(name, **overrides))

    def _check_inputs(
        self, x: torch.Tensor, noise_cond: torch.Tensor, mel: torch.Tensor | None
    ) -> torch.Tensor:
        cfg = self.config
        check_signal(x, "x", ranks=(3,), finite=False)
        if x.shape[1] != 1:
            raise ValueError(f"x must be mono audio (B, 1, T), got shape {tuple(x.shape)}")
        noise_cond = check_noise_cond(noise_cond, x)
        if bool(((noise_cond < 0) | (noise_cond > cfg.num_steps - 1)).any()):
            raise ValueError(
                f"noise_cond must be diffusion steps in [0, {cfg.num_steps - 1}] (num_steps={cfg.num_steps}), got "
                f"min {float(noise_cond.min())} and max {float(noise_cond.max())}"
            )
        if cfg.unconditional:
            if mel is not None:
                raise ValueError("mel was given but this DiffWave is unconditional (n_mels=None)")
        else:
            if mel is None:
                raise ValueError(f"mel (B, {cfg.n_mels}, frames) is required: this DiffWave is a vocoder")
            check_signal(mel, "mel", ranks=(3,), finite=False)
            expected = (x.shape[0], cfg.n_mels, x.shape[-1] // cfg.hop_length)
            if x.shape[-1] % cfg.hop_length or tuple(mel.shape) != expected:
                raise ValueError(
                    f"mel must have shape (B, n_mels, T / hop_length) = {expected} for x of shape {tuple(x.shape)} "
                    f"(hop_length={cfg.hop_length}, T a multiple of it), got {tuple(mel.shape)}"
                )
        return noise_cond

    def forward(self, x: torch.Tensor, noise_cond: torch.Tensor, mel: torch.Tensor | None = None) -> torch.Tensor:
        noise_cond = self._check_inputs(x, noise_cond, mel)
        h = F.relu(self.input_projection(x))
        step_emb = self.diffusion_embedding(noise_cond).to(h.dtype)
        conditioner = self.spectrogram_upsampler(mel) if self.spectrogram_upsampler is not None else None
        skip: torch.Tensor | None = None
        for layer in self.residual_layers:
            h, skip_connection = layer(h, step_emb, conditioner)
            skip = skip_connection if skip is None else skip + skip_connection
        h = skip / math.sqrt(len(self.residual_layers))
        h = F.relu(self.skip_projection(h))
        return self.output_projection(h)
