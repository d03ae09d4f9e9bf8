"""A DDPM-style 2-D UNet (Ho et al. 2020, App. B; the PixelCNN++-like backbone of their CIFAR-10/CelebA models).

``UNet2D(config)(x, noise_cond) -> out`` with ``out.shape == x.shape`` (when ``out_channels == in_channels``).
The network knows nothing about losses or formulations: ``noise_cond`` is whatever the formulation passes
(DDPM: the step ``t`` as a float; EDM: ``c_noise = ln(sigma) / 4``), embedded with sinusoids and an MLP.

Layout, for ``channel_mults = (m_0, ..., m_{L-1})``::

    conv_in -> [level l: num_res_blocks x (ResBlock [+ attention]) -> Downsample (not after the last)]
            -> middle: ResBlock, attention, ResBlock
            -> [level l reversed: (num_res_blocks + 1) x (concat skip, ResBlock [+ attention]) -> Upsample (not at 0)]
            -> GroupNorm, SiLU, conv_out (zero-initialised)

Presets (``unet2d_preset``), parameters counted for the preset's ``in_channels``:

========  ====  ============  ======  ===========  ============  ========  ==========
name      base  mults         blocks  attention    image size    in ch.    parameters
========  ====  ============  ======  ===========  ============  ========  ==========
tiny      24    (1, 2, 2)     1       none         32            1         0.60 M
small     32    (1, 2, 2)     2       (8,)         32            1         1.62 M
base      64    (1, 2, 2, 2)  2       (16,)        64            3         8.95 M
large     128   (1, 2, 2, 2)  2       (16,)        64            3         35.75 M
========  ====  ============  ======  ===========  ============  ========  ==========

``large`` is Ho et al.'s CIFAR-10 network (35.7 M) placed on 64 x 64 inputs (attention at 16 x 16), our choice for
FFHQ 64 on a GPU; ``tiny`` is the CPU toy of the checkerboard chapter (about the 0.58 M network of our prototype).
All presets use dropout 0 except ``base`` and ``large`` (0.1, as in Ho et al.'s CIFAR-10 model).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spectral_lib._checks import check_choice, check_noise_cond, check_signal

__all__ = [
    "UNet2DConfig",
    "UNet2D",
    "UNET2D_PRESETS",
    "unet2d_preset",
    "sinusoidal_embedding",
    "count_parameters",
]


def sinusoidal_embedding(noise_cond: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer sinusoids of a float ``(B,)`` input (Vaswani et al. 2017; Ho et al. 2020, App. B).

    ``emb[:, k] = sin(c * f_k)``, ``emb[:, half + k] = cos(c * f_k)``, ``f_k = max_period^(-k / half)``.

    Returns:
        ``(B, dim)`` float32 (zero-padded when ``dim`` is odd).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=noise_cond.device, dtype=torch.float32) / half)
    args = noise_cond.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (works on the ``meta`` device, without allocating them)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@dataclass(frozen=True)
class UNet2DConfig:
    """Hyper-parameters of :class:`UNet2D`.

    Attributes:
        in_channels: channels of ``x`` (1 for grayscale toys, 3 for RGB).
        out_channels: channels of the output; ``None`` means ``in_channels`` (what the formulations need).
        base_channels: channels at the first level (128 in Ho et al.'s CIFAR-10 model).
        channel_mults: per-level channel multipliers; ``len - 1`` downsamplings, so input sides must be divisible
            by ``2 ** (len(channel_mults) - 1)``.
        num_res_blocks: ResBlocks per level on the way down (the way up has one more, as in Ho et al.).
        attention_resolutions: feature-map sides (in pixels, for an ``image_size`` input) where self-attention is
            added (Ho et al.: 16 for 32 x 32 CIFAR-10). Empty for none.
        image_size: the input side that ``attention_resolutions`` refers to. Other sizes still run (attention
            stays at the same levels).
        dropout: dropout inside every ResBlock (Ho et al.: 0.1 on CIFAR-10; EDM fine-tuning on FFHQ: 0.05).
        num_groups: GroupNorm groups (32 in Ho et al.); must divide every level's channels.
        num_heads: attention heads (1 in Ho et al.).
    """

    in_channels: int = 1
    out_channels: int | None = None
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = field(default_factory=tuple)
    image_size: int = 32
    dropout: float = 0.0
    num_groups: int = 8
    num_heads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        for name in ("in_channels", "base_channels", "num_res_blocks", "image_size", "num_groups", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.out_channels is not None and (not isinstance(self.out_channels, int) or self.out_channels < 1):
            raise ValueError(f"out_channels must be a positive integer or None, got {self.out_channels!r}")
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults must be a non-empty tuple of positive integers, got {self.channel_mults}")
        if not (0.0 <= float(self.dropout) < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for mult in self.channel_mults:
            ch = self.base_channels * mult
            if ch % self.num_groups:
                raise ValueError(
                    f"num_groups={self.num_groups} must divide every level's channels, got {ch} "
                    f"(base_channels={self.base_channels} x mult {mult})"
                )
            if ch % self.num_heads:
                raise ValueError(f"num_heads={self.num_heads} must divide every level's channels, got {ch}")
        sides = {self.image_size // 2**level for level in range(len(self.channel_mults))}
        missing = [r for r in self.attention_resolutions if r not in sides]
        if missing:
            raise ValueError(
                f"attention_resolutions {missing} match no level for image_size={self.image_size}; "
                f"the levels have sides {sorted(sides, reverse=True)}"
            )

    @property
    def resolved_out_channels(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (``2 ** (levels - 1)``)."""
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **overrides: Any) -> UNet2DConfig:
        return replace(self, **overrides)


UNET2D_PRESETS: dict[str, UNet2DConfig] = {
    "tiny": UNet2DConfig(in_channels=1, base_channels=24, channel_mults=(1, 2, 2), num_res_blocks=1,
                         attention_resolutions=(), image_size=32, num_groups=8),
    "small": UNet2DConfig(in_channels=1, base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=2,
                          attention_resolutions=(8,), image_size=32, num_groups=8),
    "base": UNet2DConfig(in_channels=3, base_channels=64, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
                         attention_resolutions=(16,), image_size=64, num_groups=32, dropout=0.1),
    "large": UNet2DConfig(in_channels=3, base_channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
                          attention_resolutions=(16,), image_size=64, num_groups=32, dropout=0.1),
}


def unet2d_preset(name: str, **overrides: Any) -> UNet2DConfig:
    """A named :class:`UNet2DConfig` (see the table in the module docstring), with optional overrides."""
    check_choice(name, "preset", tuple(UNET2D_PRESETS))
    return UNET2D_PRESETS[name].replace(**overrides) if overrides else UNET2D_PRESETS[name]


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the projected embedding, GroupNorm-SiLU-dropout-conv (zero-init), plus a skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, num_groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(num_groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as the identity (Ho et al.'s init_scale=0)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions, residual, zero-initialised output projection."""

    def __init__(self, channels: int, num_groups: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """3x3 convolution with stride 2 (Ho et al.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (Ho et al.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet2D(nn.Module):
    """DDPM-style UNet; see the module docstring for the layout and the presets.

    Args:
        config: a :class:`UNet2DConfig` (default: the ``"tiny"`` layout).

    Forward:
        ``x`` ``(B, in_channels, H, W)`` with ``H, W`` multiples of ``config.size_multiple``; ``noise_cond``
        float ``(B,)`` (or a scalar, broadcast). Returns ``(B, out_channels, H, W)``.
    """

    def __init__(self, config: UNet2DConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else UNet2DConfig()
        base, groups, heads = cfg.base_channels, cfg.num_groups, cfg.num_heads
        emb_dim = 4 * base
        self.time_embed = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        def attention_at(level: int) -> bool:
            return cfg.image_size // 2**level in cfg.attention_resolutions

        self.down = nn.ModuleList()
        skip_channels = [base]
        ch = base
        for level, mult in enumerate(cfg.channel_mults):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                out_ch = base * mult
                blocks.append(self._block(ch, out_ch, emb_dim, attention_at(level)))
                ch = out_ch
                skip_channels.append(ch)
            stage = nn.Module()
            stage.blocks = blocks
            stage.downsample = Downsample(ch) if level < len(cfg.channel_mults) - 1 else nn.Identity()
            if level < len(cfg.channel_mults) - 1:
                skip_channels.append(ch)
            self.down.append(stage)

        self.mid_block1 = ResBlock(ch, ch, emb_dim, cfg.dropout, groups)
        self.mid_attention = SelfAttention2d(ch, groups, heads)
        self.mid_block2 = ResBlock(ch, ch, emb_dim, cfg.dropout, groups)

        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mults))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                out_ch = base * cfg.channel_mults[level]
                blocks.append(self._block(ch + skip_channels.pop(), out_ch, emb_dim, attention_at(level)))
                ch = out_ch
            stage = nn.Module()
            stage.blocks = blocks
            stage.upsample = Upsample(ch) if level > 0 else nn.Identity()
            self.up.append(stage)

        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.resolved_out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # the network starts by predicting 0 (our choice; stable start)
        nn.init.zeros_(self.conv_out.bias)

    def _block(self, in_ch: int, out_ch: int, emb_dim: int, attention: bool) -> nn.ModuleDict:
        cfg = self.config
        block = nn.ModuleDict({"res": ResBlock(in_ch, out_ch, emb_dim, cfg.dropout, cfg.num_groups)})
        if attention:
            block["attention"] = SelfAttention2d(out_ch, cfg.num_groups, cfg.num_heads)
        return block

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> UNet2D:
        """``UNet2D(unet2d_preset(name, **overrides))``."""
        return cls(unet2d_preset(name, **overrides))

    @staticmethod
    def _run(block: nn.ModuleDict, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = block["res"](h, emb)
        return block["attention"](h) if "attention" in block else h

    def _check_inputs(self, x: torch.Tensor, noise_cond: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_signal(x, "x", ranks=(4,), finite=False)
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must have in_channels={cfg.in_channels} channels, got shape {tuple(x.shape)}")
        m = cfg.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"x's height and width must be multiples of {m} (2 ** (len(channel_mults) - 1) for "
                f"{len(cfg.channel_mults)} levels), got {tuple(x.shape[-2:])}"
            )
        return check_noise_cond(noise_cond, x)

    def forward(self, x: torch.Tensor, noise_cond: torch.Tensor) -> torch.Tensor:
        noise_cond = self._check_inputs(x, noise_cond)
        emb = self.time_embed(sinusoidal_embedding(noise_cond, self.config.base_channels).to(x.dtype))
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            for block in stage.blocks:
                h = self._run(block, h, emb)
                skips.append(h)
            if not isinstance(stage.downsample, nn.Identity):
                h = stage.downsample(h)
                skips.append(h)
        h = self.mid_block2(self.mid_attention(self.mid_block1(h, emb)), emb)
        for stage in self.up:
            for block in stage.blocks:
                h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb)
            h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
