"""The pretrained-EDM wrapper, on a stand-in object with the interface of NVlabs/edm's ``EDMPrecond``.

No NVIDIA code or checkpoint is used (neither can be downloaded here, and the code is not ours to ship): the
stand-in below follows the published ``EDMPrecond.forward`` (EDM paper, Eq. 7 and Table 1) around a tiny inner
network with the inner call signature ``model(x, noise_labels, class_labels=..., augment_labels=...)``.
"""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spectral_lib.diffusion import EDM, diffusion_loss, edm_sampler
from spectral_lib.models import edm_pretrained as ep
from spectral_lib.spectral import SpectralRegularizer


class TinyInner(nn.Module):
    """A stand-in for EDM's SongUNet: conv + noise/label/augment embedding + dropout kept as a float attribute."""

    def __init__(self, channels: int, label_dim: int, augment_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.map_noise = nn.Linear(1, channels)
        self.map_label = nn.Linear(label_dim, channels) if label_dim else None
        self.map_augment = nn.Linear(augment_dim, channels, bias=False) if augment_dim else None
        self.dropout = 0.1
        self.seen: list[dict] = []

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        self.seen.append({"dtype": x.dtype, "class_labels": class_labels, "augment_labels": augment_labels})
        emb = self.map_noise(noise_labels[:, None].to(x.dtype))
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        h = torch.tanh(self.conv(x) + emb[:, :, None, None])
        return F.dropout(h, p=self.dropout, training=self.training)


class EDMPrecond(nn.Module):
    """Interface of NVlabs/edm ``training.networks.EDMPrecond`` (same attributes, same forward arithmetic)."""

    def __init__(self, img_resolution=8, img_channels=3, label_dim=0, use_fp16=False, sigma_data=0.5,
                 augment_dim=0):
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.use_fp16, self.sigma_data = use_fp16, sigma_data
        self.sigma_min, self.sigma_max = 0, float("inf")
        self.model = TinyInner(img_channels, label_dim, augment_dim)

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and x.device.type == "cuda") else torch.float32
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sd2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        F_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)


class VPPrecond(EDMPrecond):
    """Same attributes, other coefficients: must be refused."""


def make_precond(**kwargs) -> EDMPrecond:
    torch.manual_seed(0)
    return EDMPrecond(**kwargs).eval()


SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 7.0, 80.0])


def test_our_edm_formulation_reproduces_the_preconditioned_denoiser(generator):
    precond = make_precond()
    net = ep.EDMPretrainedNetwork(precond)
    x = torch.randn(len(SIGMAS), 3, 8, 8, generator=generator) * SIGMAS.view(-1, 1, 1, 1)
    ours = EDM().denoise(net, x, SIGMAS).x0_hat
    theirs = precond(x, SIGMAS)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert precond.model.seen[-1]["class_labels"] is None and precond.model.seen[-1]["augment_labels"] is None


def test_class_and_augment_labels_pass_through_as_conditioning(generator):
    precond = make_precond(label_dim=4, augment_dim=9)
    net = ep.EDMPretrainedNetwork(precond)
    x = torch.randn(len(SIGMAS), 3, 8, 8, generator=generator)
    labels = F.one_hot(torch.arange(len(SIGMAS)) % 4, 4).float()
    augment = torch.randn(len(SIGMAS), 9, generator=generator)
    cond = {"class_labels": labels, "augment_labels": augment}
    torch.testing.assert_close(EDM().denoise(net, x, SIGMAS, cond=cond).x0_hat,
                               precond(x, SIGMAS, labels, augment_labels=augment), rtol=1e-5, atol=1e-5)
    # no labels on a conditional network while sampling (eval): zeros, as EDMPrecond does
    net.eval()
    torch.testing.assert_close(EDM().denoise(net, x, SIGMAS).x0_hat, precond(x, SIGMAS), rtol=1e-5, atol=1e-5)
    assert precond.model.seen[-1]["class_labels"].shape == (1, 4)
    # ... but never while training: the labels would silently be zeros
    net.train()
    with pytest.raises(ValueError, match="checkpoint is class-conditional with 4 classes, the data has no labels"):
        EDM().denoise(net, x, SIGMAS)


def test_zero_augment_labels_give_the_same_output_and_use_the_layer(generator):
    """Every official network has a bias-free ``map_augment``; zeros of its width change nothing but keep the layer
    in the graph (DDP needs every parameter used; ``test_edm_ddp`` runs that under torchrun)."""
    precond = make_precond(augment_dim=9)
    net = ep.EDMPretrainedNetwork(precond)
    assert net.augment_dim == ep.augment_dim(precond) == 9 and ep.augment_dim(make_precond()) == 0
    x = torch.randn(len(SIGMAS), 3, 8, 8, generator=generator)
    net.eval()
    ours = EDM().denoise(net, x, SIGMAS).x0_hat
    seen = precond.model.seen[-1]["augment_labels"]
    assert seen is not None and seen.shape == (len(SIGMAS), 9) and not seen.any()
    torch.testing.assert_close(ours, precond(x, SIGMAS), rtol=1e-6, atol=1e-6)  # EDMPrecond passes None
    net.train()
    x0 = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    diffusion_loss(EDM(), net, x0, generator=generator).total.backward()
    assert precond.model.map_augment.weight.grad is not None  # in the graph (its gradient is zero)


def test_checkpoints_refuse_data_they_were_not_trained_on():
    cifar_like = ep.EDMPretrainedNetwork(make_precond(img_resolution=8, label_dim=10))
    ep.check_network_fits_data(cifar_like, (3, 8, 8), 10)
    cifar_like.check_data((3, 8, 8), 10)
    with pytest.raises(ValueError, match="class-conditional with 10 classes, the data has no labels"):
        cifar_like.check_data((3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"takes images of 3 channels at 8x8, the data gives 3x16x16"):
        ep.check_network_fits_data(cifar_like, (3, 16, 16), None)
    with pytest.raises(ValueError, match=r"takes images of 3 channels at 8x8, the data gives 1x8x8"):
        ep.check_network_fits_data(cifar_like, (1, 8, 8), None)
    with pytest.raises(ValueError, match="class-conditional with 10 classes, the data has 3 classes"):
        ep.check_network_fits_data(cifar_like, None, 3)
    uncond = ep.EDMPretrainedNetwork(make_precond())
    with pytest.raises(ValueError, match="checkpoint is unconditional .no labels., the data has 10 classes"):
        uncond(torch.zeros(2, 3, 8, 8), torch.zeros(2), class_labels=torch.zeros(2, 10))
    with pytest.raises(ValueError, match="class-conditional with 10 classes, the data has 4 classes"):
        cifar_like(torch.zeros(2, 3, 8, 8), torch.zeros(2), class_labels=torch.zeros(2, 4))


def test_heun_sampling_through_the_wrapper_equals_sampling_the_precond(generator):
    precond = make_precond()
    net = ep.EDMPretrainedNetwork(precond)
    edm = EDM()
    noise = torch.randn(2, 3, 8, 8, generator=generator)
    ours = edm.sample(net, (2, 3, 8, 8), steps=4, noise=noise)
    theirs = edm_sampler(lambda x, s: precond(x, s), noise, edm.sigmas(4))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_fine_tuning_gradients_reach_the_pretrained_weights(generator):
    precond = make_precond()
    net = ep.EDMPretrainedNetwork(precond, dropout=0.05).train()
    assert {id(p) for p in net.parameters()} == {id(p) for p in precond.parameters()}
    x0 = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    out = diffusion_loss(EDM(), net, x0, regularizer=SpectralRegularizer.from_name("wavelet", levels=2),
                         spectral_weighting="formulation", generator=generator)
    out.total.backward()
    grads = [p.grad for p in precond.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert precond.model.dropout == 0.05


def test_set_dropout_sets_attributes_and_layers():
    module = nn.Sequential(make_precond(), nn.Dropout(0.3))
    assert ep.set_dropout(module, 0.25) == 2
    assert module[0].model.dropout == 0.25 and module[1].p == 0.25
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        ep.set_dropout(module, 1.5)


def test_wrapper_refuses_other_preconditionings_and_bad_inputs():
    with pytest.raises(ValueError, match="precond must be an EDMPrecond.*got a VPPrecond"):
        ep.EDMPretrainedNetwork(VPPrecond())
    with pytest.raises(ValueError, match="got a Linear"):
        ep.EDMPretrainedNetwork(nn.Linear(2, 2))
    net = ep.EDMPretrainedNetwork(make_precond())
    with pytest.raises(ValueError, match=r"takes images of 3 channels at 8x8, the data gives 1x8x8"):
        net(torch.zeros(2, 1, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match=r"noise_cond must be \(2,\)"):
        net(torch.zeros(2, 3, 8, 8), torch.zeros(3))


def test_formulation_must_be_edm_with_the_checkpoint_sigma_data():
    net = ep.EDMPretrainedNetwork(make_precond(sigma_data=0.5))
    ep.check_edm_formulation(net, "edm", {})
    with pytest.raises(ValueError, match="needs formulation 'edm'.*got 'ddpm'"):
        ep.check_edm_formulation(net, "ddpm", {})
    with pytest.raises(ValueError, match="sigma_data=0.25 differs from the checkpoint's sigma_data=0.5"):
        ep.check_edm_formulation(net, "edm", {"sigma_data": 0.25})


@pytest.fixture
def fake_edm_repo(tmp_path, monkeypatch):
    """A folder with the two packages a clone of NVlabs/edm provides (empty stubs), and a clean sys.path."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    repo = tmp_path / "edm"
    (repo / "torch_utils").mkdir(parents=True)
    (repo / "torch_utils" / "persistence.py").write_text("")
    (repo / "dnnlib").mkdir()
    (repo / "dnnlib" / "__init__.py").write_text("")
    return repo


@pytest.fixture
def pickled_network(tmp_path):
    precond = make_precond()
    path = tmp_path / "edm-fake-64x64-uncond-vp.pkl"
    with open(path, "wb") as f:
        pickle.dump({"ema": precond, "loss_fn": None, "augment_pipe": None, "dataset_kwargs": {}}, f)
    return path, precond


def test_load_edm_network_puts_the_code_on_the_path_and_returns_the_ema(fake_edm_repo, pickled_network):
    path, precond = pickled_network
    net = ep.load_edm_network(path, fake_edm_repo)
    assert str(fake_edm_repo.resolve()) == sys.path[0]
    assert type(net).__name__ == "EDMPrecond"
    for a, b in zip(net.state_dict().values(), precond.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"holds no network under key 'net' \(found \['augment_pipe'"):
        ep.load_edm_network(path, fake_edm_repo, key="net")


def test_missing_edm_code_says_how_to_get_it(tmp_path, monkeypatch, pickled_network):
    with pytest.raises(ep.EDMCodeMissingError, match=r"missing torch_utils/persistence.py, dnnlib/__init__.py.*"
                                                     r"git clone https://github.com/NVlabs/edm"):
        ep.load_edm_network(pickled_network[0], tmp_path)
    monkeypatch.setattr(ep.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="cannot import torch_utils, dnnlib.*licence CC BY-NC-SA"):
        ep.add_edm_code_to_path(None)


def test_fetch_downloads_once_into_the_cache_and_names_missing_files(tmp_path, pickled_network, monkeypatch):
    path, _ = pickled_network
    cache = tmp_path / "cache"
    local = ep.fetch_edm_file(path.as_uri(), cache_dir=cache, progress=False)
    assert local == cache / path.name and local.read_bytes() == path.read_bytes()

    def no_download(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setattr("spectral_lib.data.download.download", no_download)
    assert ep.fetch_edm_file(path.as_uri(), cache_dir=cache) == local
    assert ep.fetch_edm_file(path) == path
    with pytest.raises(FileNotFoundError, match=r"EDM file 'nowhere.pkl' does not exist.*'ffhq-64x64-uncond-vp'"):
        ep.fetch_edm_file("nowhere.pkl")
    assert ep.EDM_NETWORKS["ffhq-64x64-uncond-ve"] == (
        "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/edm-ffhq-64x64-uncond-ve.pkl")


def test_trainer_fine_tunes_a_pretrained_pickle_end_to_end(tmp_path, monkeypatch, fake_edm_repo, pickled_network):
    """The real path's plumbing (gpu profile: pickle -> wrapper -> EDM + spectral term -> Heun -> metrics) on the
    stand-in pickle and a tiny stand-in image folder."""
    from spectral_lib.data.standin import write_image_standin
    from spectral_lib.experiments.run import run_experiment, sample_run

    monkeypatch.setenv("SPECTRAL_LIB_CACHE", str(tmp_path / "cache"))
    path, precond = pickled_network
    folder = write_image_standin(tmp_path / "ffhq", n=6, resolution=16)
    result = run_experiment(
        "ffhq", profile="gpu", regularizer="fourier_amp", out=tmp_path / "run", progress=False, device="cpu",
        data_dir=str(folder), data={"resolution": 8}, model={"network": str(path), "edm_repo": str(fake_edm_repo)},
        steps=2, warmup_steps=1, batch_size=2, n_samples=4, sample_batch_size=4, sample_steps=2, grid_samples=4,
        log_every=1, checkpoint_every=0, spectral_weighting="formulation",
    )
    assert result.config.formulation == "edm" and result.config.model["dropout"] == 0.05
    assert result.samples.shape == (4, 3, 8, 8)
    assert {"fd_local", "hf_energy_ratio", "spectral_distance"} <= set(result.metrics)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    start = precond.state_dict()
    assert any(not torch.equal(state["model"][f"precond.{k}"], v) for k, v in start.items())
    assert sample_run(tmp_path / "run", n=2, steps=2, trust_pickle=True, edm_repo=fake_edm_repo).shape == (2, 3, 8, 8)


# ------------------------------------------------------------------------------------------------ untrusted runs


class _Alarm:
    """Unpickling this runs ``Path.touch`` on a marker file: the stand-in for code hidden in a pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def hostile_run(tmp_path, monkeypatch):
    """A run folder as someone could send it: its config.json names a pickle that runs code when loaded and an
    ``edm_repo`` whose packages run code when imported."""
    import json

    from spectral_lib.experiments.profiles import get_profile

    monkeypatch.setattr(sys, "path", list(sys.path))
    markers = {"pickle": tmp_path / "pickle-ran", "import": tmp_path / "import-ran"}
    evil = tmp_path / "sent" / "evil.pkl"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps({"ema": _Alarm(markers["pickle"])}))
    repo = tmp_path / "sent" / "edm"
    for package, module in (("torch_utils", "persistence.py"), ("dnnlib", "__init__.py")):
        (repo / package).mkdir(parents=True)
        (repo / package / module).write_text(f"open({str(markers['import'])!r}, 'w').close()\n")
    run = tmp_path / "sent" / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = get_profile("ffhq", "gpu").replace(model={"network": str(evil), "edm_repo": str(repo)}, device="cpu")
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    torch.save({"format": 1, "model": {}, "ema": {}, "sample_shape": [3, 8, 8]}, run / "checkpoints" / "last.pt")
    return run, evil, repo, markers


def test_sampling_a_run_folder_never_unpickles_or_imports_what_its_config_names(hostile_run):
    from spectral_lib.experiments.run import sample_run

    run, evil, repo, markers = hostile_run
    path_before = list(sys.path)
    with pytest.raises(ValueError, match=rf"(?s){evil.name}.*runs any code.*trust_pickle=True.*edm_repo"):
        sample_run(run, n=1)
    assert not markers["pickle"].exists() and not markers["import"].exists() and sys.path == path_before
    # Even trusting the pickle, a folder named by the run is not put on sys.path: without NVIDIA's code importable
    # the network cannot be unpickled, and the error says to pass edm_repo at the call.
    with pytest.raises(ep.EDMCodeMissingError, match="cannot import torch_utils"):
        sample_run(run, n=1, trust_pickle=True)
    assert not markers["pickle"].exists() and not markers["import"].exists() and sys.path == path_before


def test_cli_sample_of_an_edm_run_exits_2_and_asks_for_trust(hostile_run, capsys):
    from spectral_lib.cli import main

    run, evil, _, markers = hostile_run
    assert main(["sample", "--run", str(run), "--n", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and str(evil) in err and len(err.strip().splitlines()) == 1
    assert not markers["pickle"].exists() and not markers["import"].exists()


def test_build_model_refuses_a_pickle_unless_trusted(tmp_path, pickled_network):
    from spectral_lib.experiments.profiles import get_profile
    from spectral_lib.experiments.train import build_model

    config = get_profile("ffhq", "gpu").replace(model={"network": str(pickled_network[0])})
    with pytest.raises(ValueError, match="trust_pickle=True"):
        build_model(config)
    with pytest.raises(ValueError, match="not a config option"):
        build_model(config.replace(model={"trust_pickle": True}), trust_pickle=False)
