"""Networks: shapes, gradients, parameter counts against hand counts, attention, dropout, DiffWave checkpoint names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spectral_lib.diffusion import DDPM, diffusion_loss
from spectral_lib.models import (
    DiffWave,
    DiffWaveConfig,
    UNet2D,
    UNet2DConfig,
    count_parameters,
    diffwave_preset,
    unet2d_preset,
)
from spectral_lib.models.unet2d import SelfAttention2d


def perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter small random values, so that zero-initialised layers do not block the gradient."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def assert_all_parameters_get_gradients(model: nn.Module) -> None:
    missing = [name for name, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


MICRO = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, num_groups=4, image_size=8)

# ----------------------------------------------------------------------------------------------------------------
# UNet2D
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_channels", [1, 3])
def test_unet_output_shape_equals_input_shape(in_channels, generator):
    model = UNet2D(UNet2DConfig(in_channels=in_channels, **MICRO))
    x = torch.randn((2, in_channels, 8, 12), generator=generator)
    assert model(x, torch.tensor([3.0, 700.0])).shape == x.shape
    assert model(x, torch.tensor(-1.2)).shape == x.shape  # scalar broadcast; EDM's c_noise may be negative
    wide = UNet2D(UNet2DConfig(in_channels=in_channels, out_channels=2, **MICRO))
    assert wide(x, torch.zeros(2)).shape == (2, 2, 8, 12)


def test_unet_starts_at_zero_and_gradients_reach_every_parameter(generator):
    model = UNet2D(UNet2DConfig(attention_resolutions=(4,), **MICRO))
    x = torch.randn((2, 1, 8, 8), generator=generator)
    assert torch.equal(model(x, torch.ones(2)), torch.zeros_like(x))  # zero-initialised output convolution
    perturb(model)
    model(x, torch.tensor([1.0, 10.0])).pow(2).mean().backward()
    assert_all_parameters_get_gradients(model)


def test_unet_noise_cond_changes_the_output(generator):
    model = perturb(UNet2D(UNet2DConfig(**MICRO)))
    x = torch.randn((1, 1, 8, 8), generator=generator)
    assert not torch.allclose(model(x, torch.tensor([1.0])), model(x, torch.tensor([500.0])))


def test_unet_parameter_count_matches_a_hand_count():
    """base 8, one level, one ResBlock, no attention (except the middle), 1 input channel, counted by hand:
    time MLP 8*32+32 + 32*32+32 = 1344; conv_in 1*8*9+8 = 80; ResBlock 8->8: 2 GroupNorms 32, two 3x3 convs 1168,
    embedding projection 264 -> 1464; middle: 2 x 1464 + attention (GroupNorm 16, qkv 216, proj 72) = 3232;
    up: 2 ResBlocks 16->8 (1160 + 584 + 264 + 48 + 1x1 skip 136 = 2192 each); GroupNorm 16; conv_out 73."""
    model = UNet2D(UNet2DConfig(base_channels=8, channel_mults=(1,), num_res_blocks=1, num_groups=4, image_size=8))
    assert count_parameters(model) == 1344 + 80 + 1464 + 3232 + 2 * 2192 + 16 + 73


def test_unet_presets_parameter_counts():
    with torch.device("meta"):  # count without allocating or running
        tiny = UNet2D.from_preset("tiny")
        large = UNet2D.from_preset("large")
    assert 0.45e6 <= count_parameters(tiny) <= 0.7e6
    assert count_parameters(large) >= 35e6
    assert unet2d_preset("large").in_channels == 3 and unet2d_preset("tiny", in_channels=3).in_channels == 3


def test_unet_attention_on_and_off():
    plain = UNet2D(UNet2DConfig(**MICRO))
    attended = UNet2D(UNet2DConfig(attention_resolutions=(4,), **MICRO))  # level 1 of an 8x8 input
    n_attn = sum(isinstance(m, SelfAttention2d) for m in attended.modules())
    assert sum(isinstance(m, SelfAttention2d) for m in plain.modules()) == 1  # the middle one only
    assert n_attn == 1 + 1 + 2  # middle + one down block + two up blocks at level 1
    c = 16
    per_attention = 2 * c + (c * 3 * c + 3 * c) + (c * c + c)
    assert count_parameters(attended) - count_parameters(plain) == 3 * per_attention


def test_unet_dropout_only_in_training(generator):
    model = perturb(UNet2D(UNet2DConfig(dropout=0.5, **MICRO)))
    x = torch.randn((2, 1, 8, 8), generator=generator)
    t = torch.tensor([5.0, 50.0])
    model.train()
    assert not torch.allclose(model(x, t), model(x, t))
    model.eval()
    assert torch.equal(model(x, t), model(x, t))
    no_dropout = perturb(UNet2D(UNet2DConfig(dropout=0.0, **MICRO))).train()
    assert torch.equal(no_dropout(x, t), no_dropout(x, t))


def test_unet_errors():
    model = UNet2D(UNet2DConfig(**MICRO))
    with pytest.raises(ValueError, match=r"multiples of 2 .* got \(8, 9\)"):
        model(torch.zeros(1, 1, 8, 9), torch.zeros(1))
    with pytest.raises(ValueError, match="in_channels=1 channels"):
        model(torch.zeros(1, 3, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match=r"noise_cond must have shape \(2,\)"):
        model(torch.zeros(2, 1, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        model(torch.zeros(1, 1, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="num_groups=5 must divide"):
        UNet2DConfig(base_channels=8, num_groups=5)
    with pytest.raises(ValueError, match=r"attention_resolutions \[7\] match no level"):
        UNet2DConfig(attention_resolutions=(7,))
    with pytest.raises(ValueError, match="dropout must be in"):
        UNet2DConfig(dropout=1.0)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        unet2d_preset("huge")


# ----------------------------------------------------------------------------------------------------------------
# DiffWave
# ----------------------------------------------------------------------------------------------------------------


def public_checkpoint_shapes(layers: int = 30, c: int = 64, n_mels: int = 80) -> dict[str, tuple[int, ...]]:
    """The state_dict of the public lmnt-com/diffwave model (src/diffwave/model.py) with the LJSpeech parameters
    (params.py: residual_layers 30, residual_channels 64, n_mels 80), written out from that definition."""
    shapes = {
        "input_projection.weight": (c, 1, 1),
        "input_projection.bias": (c,),
        "diffusion_embedding.projection1.weight": (512, 128),
        "diffusion_embedding.projection1.bias": (512,),
        "diffusion_embedding.projection2.weight": (512, 512),
        "diffusion_embedding.projection2.bias": (512,),
        "spectrogram_upsampler.conv1.weight": (1, 1, 3, 32),
        "spectrogram_upsampler.conv1.bias": (1,),
        "spectrogram_upsampler.conv2.weight": (1, 1, 3, 32),
        "spectrogram_upsampler.conv2.bias": (1,),
    }
    for i in range(layers):
        p = f"residual_layers.{i}."
        shapes.update({
            p + "dilated_conv.weight": (2 * c, c, 3),
            p + "dilated_conv.bias": (2 * c,),
            p + "diffusion_projection.weight": (c, 512),
            p + "diffusion_projection.bias": (c,),
            p + "conditioner_projection.weight": (2 * c, n_mels, 1),
            p + "conditioner_projection.bias": (2 * c,),
            p + "output_projection.weight": (2 * c, c, 1),
            p + "output_projection.bias": (2 * c,),
        })
    shapes.update({
        "skip_projection.weight": (c, c, 1),
        "skip_projection.bias": (c,),
        "output_projection.weight": (1, c, 1),
        "output_projection.bias": (1,),
    })
    return shapes


def test_diffwave_state_dict_matches_the_public_checkpoint():
    model = DiffWave.from_preset("paper")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == public_checkpoint_shapes()
    assert "diffusion_embedding.embedding" not in ours  # a non-persistent buffer, as in the public model
    fake_checkpoint = {"model": {k: torch.zeros(s) for k, s in public_checkpoint_shapes().items()}}
    model.load_state_dict(fake_checkpoint["model"], strict=True)
    # 2.62 M parameters: 128 + 328704 + 194 + 30 * 76224 + 4160 + 65.
    assert count_parameters(model) == 128 + 328_704 + 194 + 30 * 76_224 + 4_160 + 65


def test_diffwave_shapes_conditional_and_unconditional(generator):
    vocoder = DiffWave(diffwave_preset("tiny", n_mels=8))
    assert vocoder.config.hop_length == 256
    x = torch.randn((2, 1, 3 * 256), generator=generator)
    mel = torch.randn((2, 8, 3), generator=generator)
    assert vocoder(x, torch.tensor([0.0, 49.0]), mel=mel).shape == x.shape
    unconditional = DiffWave.from_preset("tiny")
    assert unconditional.spectrogram_upsampler is None
    assert unconditional(torch.randn((2, 1, 100), generator=generator), torch.tensor([3, 7])).shape == (2, 1, 100)
    small_hop = DiffWave(diffwave_preset("tiny", n_mels=4, upsample_strides=(4, 2)))
    assert small_hop(torch.zeros(1, 1, 40), torch.zeros(1), mel=torch.zeros(1, 4, 5)).shape == (1, 1, 40)


def test_diffwave_presets():
    assert count_parameters(DiffWave.from_preset("tiny")) < 50_000
    small = DiffWave.from_preset("small")
    assert small.config.n_mels == 80 and 0.3e6 < count_parameters(small) < 0.4e6
    assert DiffWave.from_preset("paper").config == DiffWaveConfig()


def test_diffwave_step_embedding_interpolates_fractional_steps():
    emb = DiffWave.from_preset("tiny").diffusion_embedding
    table = emb.embedding
    assert table.shape == (50, 128)
    torch.testing.assert_close(table[3, :64], torch.sin(3 * 10.0 ** (torch.arange(64) * 4.0 / 63)))
    half = emb(torch.tensor([2.5]))
    mid = 0.5 * (table[2] + table[3])
    expected = torch.nn.functional.silu(emb.projection2(torch.nn.functional.silu(emb.projection1(mid))))
    torch.testing.assert_close(half[0], expected)
    torch.testing.assert_close(emb(torch.tensor([4.0])), emb(torch.tensor([4])))


def test_diffwave_gradients_reach_every_parameter(generator):
    model = perturb(DiffWave(diffwave_preset("tiny", n_mels=8)))
    x = torch.randn((2, 1, 512), generator=generator)
    model(x, torch.tensor([1.5, 30.0]), mel=torch.randn((2, 8, 2), generator=generator)).pow(2).mean().backward()
    assert_all_parameters_get_gradients(model)


def test_diffwave_in_the_training_objective_with_mel_conditioning(generator):
    model = perturb(DiffWave(diffwave_preset("tiny", n_mels=8)))
    x0 = torch.rand((2, 1, 512), generator=generator) * 2 - 1
    mel = torch.randn((2, 8, 2), generator=generator)
    ddpm = DDPM(num_steps=50, beta_end=0.05)
    out = diffusion_loss(ddpm, model, x0, cond={"mel": mel}, generator=generator)
    out.total.backward()
    assert out.x0_hat.shape == x0.shape and model.spectrogram_upsampler.conv1.weight.grad is not None


def test_diffwave_errors():
    vocoder = DiffWave(diffwave_preset("tiny", n_mels=8))
    x = torch.zeros(1, 1, 512)
    with pytest.raises(ValueError, match="mel .* is required"):
        vocoder(x, torch.zeros(1))
    with pytest.raises(ValueError, match=r"mel must have shape \(B, n_mels, T / hop_length\) = \(1, 8, 2\)"):
        vocoder(x, torch.zeros(1), mel=torch.zeros(1, 8, 3))
    with pytest.raises(ValueError, match="unconditional"):
        DiffWave.from_preset("tiny")(x, torch.zeros(1), mel=torch.zeros(1, 8, 2))
    with pytest.raises(ValueError, match=r"noise_cond must be diffusion steps in \[0, 49\]"):
        DiffWave.from_preset("tiny")(x, torch.tensor([50.0]))
    with pytest.raises(ValueError, match="mono audio"):
        DiffWave.from_preset("tiny")(torch.zeros(1, 2, 512), torch.zeros(1))
    with pytest.raises(ValueError, match="n_mels must be a positive integer or None"):
        DiffWaveConfig(n_mels=0)
    with pytest.raises(ValueError, match="unknown preset 'large'; valid: 'tiny', 'small', 'paper'"):
        diffwave_preset("large")


def test_both_networks_repeat_a_scalar_noise_cond_and_refuse_another_shape(generator):
    unet, wave = UNet2D(UNet2DConfig(**MICRO)).eval(), DiffWave.from_preset("tiny").eval()
    for model, x in ((unet, torch.randn((2, 1, 8, 8), generator=generator)),
                     (wave, torch.randn((2, 1, 64), generator=generator))):
        with torch.no_grad():
            torch.testing.assert_close(model(x, 7), model(x, torch.tensor([7, 7])))
            torch.testing.assert_close(model(x, torch.tensor(7.0)), model(x, torch.tensor([7.0, 7.0])))
        with pytest.raises(ValueError, match=r"noise_cond must have shape \(2,\) or be a scalar, got \(2, 1\)"):
            model(x, torch.zeros(2, 1))
