"""Loading the public DiffWave checkpoint format into our DiffWave, tested with checkpoints built here.

The reference is a small re-statement of the public model's layout (lmnt-com/diffwave ``model.py``: audio ``(B, T)``
in, ``model(audio, spectrogram, step)``), written independently of ``spectral_lib.models.diffwave``: a checkpoint
saved from it must load into our model and give the same outputs.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.train import build_model
from spectral_lib.models import DiffWave, DiffWaveConfig
from spectral_lib.models import diffwave_pretrained as dp

PARAMS = dict(  # the public code's params dict, for a small model
    batch_size=16, learning_rate=2e-4, max_grad_norm=None, sample_rate=22050, n_mels=80, n_fft=1024,
    hop_samples=256, crop_mel_frames=62, residual_layers=4, residual_channels=8, dilation_cycle_length=2,
    unconditional=False, noise_schedule=[1e-4 + k * (0.05 - 1e-4) / 49 for k in range(50)],
    inference_noise_schedule=[0.0001, 0.001, 0.01, 0.05, 0.2, 0.5],
)
SMALL = DiffWaveConfig(residual_layers=4, residual_channels=8, dilation_cycle=2, n_mels=80, num_steps=50)


class _Embedding(nn.Module):
    def __init__(self, steps: int):
        super().__init__()
        t = torch.arange(steps, dtype=torch.float32)[:, None]
        k = torch.arange(64, dtype=torch.float32)[None, :]
        angles = t * 10.0 ** (k * 4.0 / 63.0)
        self.register_buffer("embedding", torch.cat([angles.sin(), angles.cos()], 1), persistent=False)
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    def forward(self, t):
        if t.is_floating_point():
            lo, hi = t.floor().long(), t.ceil().long()
            e = self.embedding[lo] + (self.embedding[hi] - self.embedding[lo]) * (t - lo)[:, None]
        else:
            e = self.embedding[t]
        return F.silu(self.projection2(F.silu(self.projection1(e))))


class _Upsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])

    def forward(self, mel):
        x = F.leaky_relu(self.conv1(mel[:, None]), 0.4)
        return F.leaky_relu(self.conv2(x), 0.4)[:, 0]


class _Block(nn.Module):
    def __init__(self, n_mels, channels, dilation):
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, channels)
        self.conditioner_projection = nn.Conv1d(n_mels, 2 * channels, 1)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x, emb, cond):
        y = self.dilated_conv(x + self.diffusion_projection(emb)[..., None]) + self.conditioner_projection(cond)
        gate, filt = y.chunk(2, dim=1)
        residual, skip = self.output_projection(gate.sigmoid() * filt.tanh()).chunk(2, dim=1)
        return (x + residual) / math.sqrt(2), skip


class PublicLayoutDiffWave(nn.Module):
    """The public model's layout and call convention, with every weight random (output projection included)."""

    def __init__(self, p):
        super().__init__()
        self.input_projection = nn.Conv1d(1, p["residual_channels"], 1)
        self.diffusion_embedding = _Embedding(len(p["noise_schedule"]))
        self.spectrogram_upsampler = _Upsampler()
        self.residual_layers = nn.ModuleList(
            _Block(p["n_mels"], p["residual_channels"], 2 ** (i % p["dilation_cycle_length"]))
            for i in range(p["residual_layers"])
        )
        self.skip_projection = nn.Conv1d(p["residual_channels"], p["residual_channels"], 1)
        self.output_projection = nn.Conv1d(p["residual_channels"], 1, 1)

    def forward(self, audio, spectrogram, step):
        x = F.relu(self.input_projection(audio[:, None]))
        emb = self.diffusion_embedding(step)
        cond = self.spectrogram_upsampler(spectrogram)
        skips = []
        for layer in self.residual_layers:
            x, s = layer(x, emb, cond)
            skips.append(s)
        x = torch.stack(skips).sum(0) / math.sqrt(len(self.residual_layers))
        return self.output_projection(F.relu(self.skip_projection(x)))


@pytest.fixture(scope="module")
def public():
    torch.manual_seed(0)
    return PublicLayoutDiffWave(PARAMS).eval()


def _checkpoint(model, params=PARAMS, prefix=""):
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    return {"step": 1000578, "model": state, "optimizer": {"state": {}, "param_groups": []}, "params": dict(params),
            "scaler": {}}


@pytest.fixture(scope="module")
def checkpoint_file(public, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "diffwave-test.pt"
    torch.save(_checkpoint(public), path)
    return path


def _inputs(frames=3, batch=2):
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(batch, frames * 256, generator=g) * 0.3
    mel = torch.rand(batch, 80, frames, generator=g)
    return audio, mel


@pytest.mark.parametrize("step", [torch.tensor([0, 49]), torch.tensor([3.25, 47.5])], ids=["integer", "fractional"])
def test_loaded_model_matches_the_public_layout(public, checkpoint_file, step):
    ours = dp.load_diffwave_checkpoint(checkpoint_file)
    assert ours.config.residual_layers == 4 and ours.config.residual_channels == 8 and ours.config.dilation_cycle == 2
    assert not ours.training
    audio, mel = _inputs()
    with torch.no_grad():
        expected = public(audio, mel, step)
        got = ours(audio[:, None], step, mel=mel)
    assert got.shape == expected.shape == (2, 1, 768)
    assert expected.abs().max() > 1e-3  # a real signal, not the zero-initialised output
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_dataparallel_prefix_and_stored_step_table_are_accepted(public):
    ckpt = _checkpoint(public, prefix="module.")
    ckpt["model"]["module.diffusion_embedding.embedding"] = public.diffusion_embedding.embedding.clone()
    ours = dp.load_diffwave_checkpoint(ckpt, config=SMALL)
    audio, mel = _inputs(frames=2, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(ours(audio[:, None], torch.tensor([7]), mel=mel),
                                   public(audio, mel, torch.tensor([7])), rtol=1e-5, atol=1e-6)


def test_bare_state_dict_uses_the_given_config(public):
    ours = dp.load_diffwave_checkpoint(dict(public.state_dict()), config=SMALL)
    assert ours.config == SMALL


def test_params_map_to_our_config():
    config = dp.diffwave_config_from_params({**PARAMS, "residual_layers": 30, "residual_channels": 64,
                                             "dilation_cycle_length": 10})
    assert config == DiffWaveConfig()  # the paper's vocoder
    assert dp.diffwave_config_from_params({**PARAMS, "unconditional": True}).n_mels is None
    with pytest.raises(ValueError, match="hop_samples.*256.*300"):
        dp.diffwave_config_from_params({**PARAMS, "hop_samples": 300})
    with pytest.raises(ValueError, match="params must be a dict"):
        dp.diffwave_config_from_params([1, 2])


def test_architecture_mismatch_names_the_fields(checkpoint_file):
    with pytest.raises(ValueError, match="residual_layers: checkpoint 4, expected 30.*residual_channels: checkpoint 8"):
        dp.load_diffwave_checkpoint(checkpoint_file, config=DiffWaveConfig())


def test_missing_and_unexpected_weights_are_named(public):
    ckpt = _checkpoint(public)
    del ckpt["model"]["skip_projection.weight"]
    ckpt["model"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['skip_projection.weight'\].*unexpected \['extra.weight'\]"):
        dp.load_diffwave_checkpoint(ckpt)
    ckpt = _checkpoint(public)
    ckpt["model"]["input_projection.weight"] = torch.zeros(3, 1, 1)
    shapes = r"shapes differ: input_projection.weight: checkpoint \(3, 1, 1\), model \(8, 1, 1\)"
    with pytest.raises(ValueError, match=shapes):
        dp.load_diffwave_checkpoint(ckpt)


class _Opaque:  # not loadable with weights_only=True
    pass


def test_unsafe_files_are_refused_unless_published(tmp_path):
    path = tmp_path / "opaque.pt"
    torch.save({"model": {}, "extra": _Opaque()}, path)
    with pytest.raises(ValueError, match="weights_only=True.*only the published checkpoints"):
        dp.read_diffwave_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dp.read_diffwave_checkpoint(tmp_path / "nope.pt")


def test_registry_entry_is_the_readme_one():
    entry = dp.PRETRAINED_DIFFWAVE["diffwave-ljspeech"]
    assert entry.url == "https://lmnt.com/assets/diffwave/diffwave-ljspeech-22kHz-1000578.pt"
    assert entry.filename == "diffwave-ljspeech-22kHz-1000578.pt"
    assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
    with pytest.raises(ValueError, match="unknown pretrained DiffWave 'nope'.*'diffwave-ljspeech'"):
        dp.download_pretrained_diffwave("nope")
    with pytest.raises(ValueError, match="pretrained must be one of.*no such file"):
        dp.load_pretrained_diffwave("missing.pt")


def test_download_verifies_and_caches_then_loads(public, checkpoint_file, tmp_path, monkeypatch):
    digest = hashlib.sha256(checkpoint_file.read_bytes()).hexdigest()
    entry = dp.PretrainedDiffWave(url=checkpoint_file.as_uri(), sha256=digest, filename="test.pt", notes="test")
    monkeypatch.setitem(dp.PRETRAINED_DIFFWAVE, "test", entry)
    monkeypatch.setenv("SPECTRAL_CACHE_DIR", str(tmp_path))
    model = dp.load_pretrained_diffwave("test", progress=False)
    assert (tmp_path / "checkpoints" / "test.pt").is_file()
    torch.testing.assert_close(model.skip_projection.weight, public.skip_projection.weight)
    # published files that need a full unpickling are recognised by their digest
    opaque = tmp_path / "opaque.pt"
    torch.save({"model": dict(public.state_dict()), "params": PARAMS, "extra": _Opaque()}, opaque)
    monkeypatch.setitem(dp.PRETRAINED_DIFFWAVE, "opaque", dp.PretrainedDiffWave(
        url=opaque.as_uri(), sha256=hashlib.sha256(opaque.read_bytes()).hexdigest(), filename="o.pt", notes=""))
    assert isinstance(dp.load_diffwave_checkpoint(opaque), DiffWave)


def test_published_file_with_the_public_attrdict_loads_without_the_package(public, tmp_path, monkeypatch):
    import sys
    import types

    fake = types.ModuleType("diffwave.params")

    class AttrDict(dict):  # as diffwave.params.AttrDict: a dict that is its own __dict__
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__ = self

    AttrDict.__module__, AttrDict.__qualname__ = "diffwave.params", "AttrDict"
    fake.AttrDict = AttrDict
    monkeypatch.setitem(sys.modules, "diffwave", types.ModuleType("diffwave"))
    monkeypatch.setitem(sys.modules, "diffwave.params", fake)
    path = tmp_path / "published.pt"
    torch.save({**_checkpoint(public), "params": AttrDict(PARAMS)}, path)
    monkeypatch.delitem(sys.modules, "diffwave.params")
    monkeypatch.delitem(sys.modules, "diffwave")
    with pytest.raises(ValueError, match="only the published checkpoints"):
        dp.read_diffwave_checkpoint(path)  # unknown digest: refused
    monkeypatch.setitem(dp.PRETRAINED_DIFFWAVE, "published", dp.PretrainedDiffWave(
        url=path.as_uri(), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), filename="p.pt", notes=""))
    model = dp.load_diffwave_checkpoint(path)  # known digest: read, AttrDict as a dict
    assert model.config.residual_layers == 4
    torch.testing.assert_close(model.input_projection.weight, public.input_projection.weight)


def test_build_model_fine_tunes_from_a_checkpoint(public, checkpoint_file):
    config = ExperimentConfig(experiment="x", profile="y", data={"source": "audio"},
                              model={"name": "diffwave", "preset": "paper", "residual_layers": 4,
                                     "residual_channels": 8, "dilation_cycle": 2, "pretrained": str(checkpoint_file)})
    model = build_model(config)
    assert model.training
    torch.testing.assert_close(model.residual_layers[3].dilated_conv.weight,
                               public.residual_layers[3].dilated_conv.weight)
