"""What a config builds for a run: the data source, the network, the formulation, the regularizer and the loss.

:func:`build_components` is the one place the trainer turns an :class:`ExperimentConfig` into parts; tests
replace it (as ``spectral_lib.experiments.train.build_components``) to train tiny stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from spectral_lib.experiments.profiles import ExperimentConfig
from spectral_lib.experiments.sources import build_source, sample_shape

__all__ = [
    "Components",
    "UntrustedPickleError",
    "build_model",
    "build_formulation",
    "build_regularizer",
    "build_components",
]


@dataclass
class Components:
    """What a config builds: the data source, the network, the formulation, the regularizer and the loss."""

    source: Any
    model: nn.Module
    formulation: Any
    regularizer: nn.Module | None
    loss_fn: Callable[..., Any]


class UntrustedPickleError(ValueError):
    """Building the network would unpickle a file (code) that the caller did not say they trust."""


def build_model(config: ExperimentConfig, *, trust_pickle: bool = False) -> nn.Module:
    """The network named by ``config.model = {"name": ..., "preset": ..., **overrides}``.

    ``"unet2d"``: ``UNet2D(unet2d_preset(preset, in_channels=config.data["channels"], **overrides))``;
    ``"diffwave"``: ``DiffWave(diffwave_preset(preset, **overrides))``, or with ``"pretrained": name or path`` the
    published weights loaded into that architecture (fine-tuning; see
    :func:`spectral_lib.models.diffwave_pretrained.load_pretrained_diffwave`);
    ``"edm_pretrained"``: an official EDM checkpoint to fine-tune, ``{"network": name, URL or path, "edm_repo": ...,
    "dropout": ...}`` (:func:`spectral_lib.models.edm_pretrained.pretrained_edm`; needs ``formulation="edm"``).
    ``"in_channels"`` in ``config.model`` overrides ``config.data["channels"]`` (image folders are RGB and take no
    ``channels`` option).

    ``trust_pickle``: an ``"edm_pretrained"`` network is a pickle, and unpickling runs the code it holds (and
    ``edm_repo`` goes first on ``sys.path``); that happens only when the caller passes ``trust_pickle=True``, never
    because a config (e.g. a run folder's ``config.json``) says so. The trainer passes it: its config comes from the
    caller's code or command line.

    Raises:
        UntrustedPickleError: an ``"edm_pretrained"`` model without ``trust_pickle=True``.
    """
    options = dict(config.model)
    if "trust_pickle" in options:
        raise ValueError("trust_pickle is not a config option: a config cannot vouch for a pickle; the caller passes "
                         "trust_pickle=True")
    name = options.pop("name", "unet2d")
    preset = options.pop("preset", None)
    channels = int(options.pop("in_channels", config.data.get("channels", 1)))
    if name == "unet2d":
        from spectral_lib.models.unet2d import UNet2D, unet2d_preset

        return UNet2D(unet2d_preset(preset or "tiny", in_channels=channels, **options))
    if name == "diffwave":
        from spectral_lib import models

        pretrained = options.pop("pretrained", None)
        architecture = models.diffwave_preset(preset or "small", **options)
        if pretrained:
            from spectral_lib.models.diffwave_pretrained import load_pretrained_diffwave

            return load_pretrained_diffwave(pretrained, config=architecture).train()
        return models.DiffWave(architecture)
    if name == "edm_pretrained":
        from spectral_lib.models.edm_pretrained import check_edm_formulation, pretrained_edm

        if not trust_pickle:
            raise UntrustedPickleError(
                f"config.model names the EDM network pickle {options.get('network')!r}; unpickling runs any code it "
                "holds, so it is loaded only when the caller passes trust_pickle=True (for a file you trust)"
            )
        network = pretrained_edm(**options)
        check_edm_formulation(network, config.formulation, config.formulation_kwargs)
        return network
    raise ValueError(f"unknown model name {name!r}; valid: 'unet2d', 'diffwave', 'edm_pretrained'")


def build_formulation(config: ExperimentConfig) -> Any:
    """``make_formulation(config.formulation, **config.formulation_kwargs)``."""
    from spectral_lib.diffusion import make_formulation

    return make_formulation(config.formulation, **config.formulation_kwargs)


def build_regularizer(config: ExperimentConfig) -> nn.Module | None:
    """``SpectralRegularizer.from_name(...)``, or ``None`` for ``"none"`` (the plain objective)."""
    if config.regularizer == "none":
        return None
    from spectral_lib.spectral import SpectralRegularizer

    return SpectralRegularizer.from_name(config.regularizer, **config.regularizer_kwargs)


def build_components(config: ExperimentConfig, *, rank: int = 0, world_size: int = 1) -> Components:
    """Every part of a run from its config. Tests replace this function to train tiny stand-ins."""
    from spectral_lib.diffusion import diffusion_loss

    source = build_source(
        config.data, data_dir=config.data_dir, seed=config.seed, rank=rank, world_size=world_size,
        num_workers=config.num_workers,
    )
    model = build_model(config, trust_pickle=True)  # the caller's config (code, command line), not a data file
    check = getattr(model, "check_data", None)  # a pretrained network refuses data of another shape or class count
    if check is not None:
        check(sample_shape(source), int(getattr(source, "label_dim", 0) or 0))
    return Components(
        source=source,
        model=model,
        formulation=build_formulation(config),
        regularizer=build_regularizer(config),
        loss_fn=diffusion_loss,
    )
