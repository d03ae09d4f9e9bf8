"""NVIDIA's pretrained EDM networks (Karras et al. 2022) behind our network interface, for fine-tuning.

The spectral paper's image results (its Table 1) *fine-tune* the official EDM checkpoints: FFHQ 64x64 and AFHQv2
64x64 (unconditional) and CIFAR-10 32x32 (class-conditional), each with the DDPM++ ("VP") and NCSN++ ("VE")
architectures trained with EDM's preconditioning (config F of the EDM paper; the ``vp``/``ve`` in the file names
names the architecture, the preconditioning is EDM's in both). This module loads such a checkpoint and exposes it
as a network of this library, ``net(x, noise_cond, **cond) -> F_theta``, so that our :class:`~spectral_lib.
diffusion.EDM` formulation, the spectral regularizers, the trainer and the Heun sampler drive it unchanged.

**Design: we expose the raw network F_theta, and our formulation does the preconditioning.** An ``EDMPrecond``
computes ``D_theta(x; sigma) = c_skip x + c_out F_theta(c_in x; c_noise)`` (EDM Eq. 7) with the coefficients of
EDM's Table 1 and ``c_noise = ln(sigma) / 4``; :class:`spectral_lib.diffusion.EDM` computes exactly the same
coefficients (``EDM.precondition``). :class:`EDMPretrainedNetwork` therefore calls the inner network
``precond.model`` (EDM's ``SongUNet`` / ``DhariwalUNet``) with our ``c_in x`` and ``c_noise``; wrapping the whole
``D_theta`` instead would need a second, "already preconditioned" code path in the formulation. The one thing that
must agree is ``sigma_data``: :func:`check_edm_formulation` refuses a formulation whose ``sigma_data`` differs
from the checkpoint's (0.5 for all official ones). With that, ``EDM().denoise(wrapper, x, sigma).x0_hat`` equals
``precond(x, sigma)`` to float32 rounding (tested on a stand-in object with EDMPrecond's interface).

**Getting the checkpoints.** The pickles (URLs in :data:`EDM_NETWORKS`, from the NVlabs/edm README) store the
class definitions inside them, and unpickling needs NVIDIA's ``torch_utils`` and ``dnnlib`` packages importable.
This project does not ship that code (its licence, CC BY-NC-SA 4.0, is non-commercial): on Colab the chapter's
labelled cell runs ``git clone https://github.com/NVlabs/edm`` at run time and passes the folder as ``edm_repo``
(:func:`add_edm_code_to_path`).

**Pickle is code.** ``pickle.load`` runs whatever the file says. :func:`load_edm_network` unpickles only what it
is given: one of the official URLs (downloaded over HTTPS from NVIDIA's CDN into the cache folder, atomically) or
a file the user names. NVIDIA publishes no checksums for these files, so none is verified. Never point it at a
pickle you do not trust. A config naming a pickle is not enough to load it: building the network from a config
(:func:`~spectral_lib.experiments.components.build_model`) needs ``trust_pickle=True`` at the call, and sampling a run
folder (:func:`~spectral_lib.experiments.run.sample_run`, ``--trust-pickle``) never puts the ``edm_repo`` named in
its ``config.json`` on ``sys.path`` (see SECURITY.md).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = [
    "EDM_CODE_URL",
    "EDM_NETWORKS",
    "EDM_FID_REFERENCES",
    "EDMCodeMissingError",
    "add_edm_code_to_path",
    "fetch_edm_file",
    "load_edm_network",
    "set_dropout",
    "EDMPretrainedNetwork",
    "check_edm_formulation",
    "check_network_fits_data",
    "augment_dim",
    "pretrained_edm",
]

EDM_CODE_URL = "https://github.com/NVlabs/edm"
"""NVIDIA's EDM repository (CC BY-NC-SA 4.0); cloned at run time, never copied into this project."""

_CDN = "https://nvlabs-fi-cdn.nvidia.com/edm"

EDM_NETWORKS: dict[str, str] = {
    name: f"{_CDN}/pretrained/edm-{name}.pkl"
    for name in (
        "ffhq-64x64-uncond-vp",
        "ffhq-64x64-uncond-ve",
        "afhqv2-64x64-uncond-vp",
        "afhqv2-64x64-uncond-ve",
        "cifar10-32x32-cond-vp",
        "cifar10-32x32-cond-ve",
    )
}
"""The official EDM checkpoints of the spectral paper's Table 1 (NVlabs/edm README, "Pre-trained models"):
``name -> URL``. Each pickle holds a dict whose ``"ema"`` entry is the ``EDMPrecond`` network."""

EDM_FID_REFERENCES: dict[str, str] = {
    name: f"{_CDN}/fid-refs/{name}.npz" for name in ("ffhq-64x64", "afhqv2-64x64", "cifar10-32x32")
}
"""EDM's published FID reference statistics (``mu``, ``sigma`` of Inception-v3 pool3 features of the whole data
set; NVlabs/edm README, "Calculating FID"): ``name -> URL``."""


class EDMCodeMissingError(FileNotFoundError):
    """NVIDIA's ``edm`` code (``torch_utils``, ``dnnlib``) is needed to unpickle a checkpoint and is not there."""


_HOW_TO_GET_THE_CODE = (
    f"The official EDM pickles need NVIDIA's own code to unpickle: run `git clone {EDM_CODE_URL}` and pass its "
    "folder as edm_repo (the images chapter's set-up cell does this). The code is not part of this project "
    "(licence CC BY-NC-SA 4.0)."
)


def add_edm_code_to_path(edm_repo: str | os.PathLike[str] | None = None) -> Path | None:
    """Make NVIDIA's ``torch_utils`` and ``dnnlib`` importable (they unpickle the checkpoints).

    Args:
        edm_repo: a clone of :data:`EDM_CODE_URL`; it is put first on ``sys.path``. ``None``: the packages must
            already be importable (e.g. the folder is on ``PYTHONPATH``).

    Returns:
        The folder added (or ``None``).

    Raises:
        EDMCodeMissingError: the folder lacks ``torch_utils/persistence.py`` or ``dnnlib/__init__.py``, or (with
            ``edm_repo=None``) the packages cannot be imported. The message says how to get the code.
    """
    if edm_repo is None:
        missing = [name for name in ("torch_utils", "dnnlib") if importlib.util.find_spec(name) is None]
        if missing:
            raise EDMCodeMissingError(f"cannot import {', '.join(missing)}. {_HOW_TO_GET_THE_CODE}")
        return None
    folder = Path(edm_repo).expanduser().resolve()
    needed = [folder / "torch_utils" / "persistence.py", folder / "dnnlib" / "__init__.py"]
    absent = [str(p.relative_to(folder)) for p in needed if not p.is_file()]
    if absent:
        raise EDMCodeMissingError(
            f"edm_repo {str(folder)!r} is not a clone of NVlabs/edm (missing {', '.join(absent)}). "
            f"{_HOW_TO_GET_THE_CODE}"
        )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return folder


def _is_url(value: str) -> bool:
    return urlparse(value).scheme in ("http", "https", "file")


def fetch_edm_file(
    path_or_url: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """A local path for a checkpoint or reference-statistics file.

    Args:
        path_or_url: a key of :data:`EDM_NETWORKS` or :data:`EDM_FID_REFERENCES`, an ``http(s)://`` (or
            ``file://``) URL, or a local file.
        cache_dir: where downloads go (default ``spectral_lib.data.images.default_cache_dir() / "edm"``, i.e.
            ``$SPECTRAL_LIB_CACHE/edm``). A file already there is reused.

    Downloads go through :func:`spectral_lib.data.download.download`: a ``.part`` file that resumes, a size check,
    and an atomic rename, so a half-written checkpoint never looks complete.

    Raises:
        FileNotFoundError: a local path that does not exist.
    """
    value = str(path_or_url)
    value = EDM_NETWORKS.get(value, EDM_FID_REFERENCES.get(value, value))
    if not _is_url(value):
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"EDM file {value!r} does not exist; give a local file, a URL or one of "
                f"{sorted(EDM_NETWORKS) + sorted(EDM_FID_REFERENCES)}"
            )
        return path
    from spectral_lib.data.download import download
    from spectral_lib.data.images import default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "edm"
    dest = folder / Path(urlparse(value).path).name
    if dest.is_file():
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    return Path(download(value, dest, None, progress=progress))


def load_edm_network(
    path_or_url: str | os.PathLike[str],
    edm_repo: str | os.PathLike[str] | None = None,
    *,
    key: str = "ema",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> nn.Module:
    """Load an official EDM network pickle (see the module docstring on pickle safety).

    Args:
        path_or_url: a key of :data:`EDM_NETWORKS` (e.g. ``"ffhq-64x64-uncond-vp"``), its URL, or a local file
            (e.g. a ``network-snapshot-*.pkl`` of EDM's own training).
        edm_repo: a clone of NVlabs/edm (see :func:`add_edm_code_to_path`).
        key: the entry of the pickled dict holding the network (``"ema"`` in every official file).

    Returns:
        The unpickled network (an ``EDMPrecond`` for the official checkpoints), on the CPU, as stored.

    Raises:
        EDMCodeMissingError: NVIDIA's code is not available.
        FileNotFoundError: a local path that does not exist.
        ValueError: the pickle holds no module under ``key``.
    """
    add_edm_code_to_path(edm_repo)
    path = fetch_edm_file(path_or_url, cache_dir=cache_dir, progress=progress)
    with open(path, "rb") as f:
        data = pickle.load(f)  # noqa: S301 - official URL or a file the user names; see the module docstring
    net = data.get(key) if isinstance(data, Mapping) else data
    if not isinstance(net, nn.Module):
        keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{str(path)!r} holds no network under key {key!r} (found {keys})")
    return net


def set_dropout(module: nn.Module, p: float) -> int:
    """Set the dropout probability of every block of ``module`` to ``p``; return how many were set.

    EDM's ``UNetBlock`` keeps it as a float attribute ``dropout`` (used as ``F.dropout(x, p=self.dropout)``);
    ``nn.Dropout`` layers keep it in ``.p``. Both are set. EDM's fine-tuning (``train.py --transfer``) builds a
    fresh network with the command line's ``--dropout`` and copies the weights in; setting the attribute is the
    same thing without rebuilding (FFHQ: 0.05, AFHQv2: 0.25, as in the paper).
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    count = 0
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = float(p)
            count += 1
        else:
            value = getattr(m, "dropout", None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                m.dropout = float(p)
                count += 1
    return count


_PRECOND_ATTRIBUTES = ("model", "sigma_data", "img_resolution", "img_channels", "label_dim", "use_fp16")


class EDMPretrainedNetwork(nn.Module):
    """The raw network ``F_theta`` of an ``EDMPrecond``, as a network of this library.

    ``forward(x, noise_cond, class_labels=None, augment_labels=None) -> F_theta(x; noise_cond)``, where ``x`` is
    already scaled by ``c_in`` and ``noise_cond = c_noise = ln(sigma) / 4`` (our :class:`~spectral_lib.diffusion.EDM`
    passes both). It does what ``EDMPrecond.forward`` does around its inner call and nothing else: the inner
    network runs in float16 when the checkpoint says ``use_fp16`` and ``x`` is on CUDA (float32 otherwise), class
    labels default to zeros for a conditional network, and the output is returned in ``x``'s dtype.

    Args:
        precond: an ``EDMPrecond`` (class name checked) with ``.model``, ``.sigma_data``, ``.img_resolution``,
            ``.img_channels``, ``.label_dim``, ``.use_fp16``.
        dropout: if given, the dropout of every block (:func:`set_dropout`); ``None`` keeps the checkpoint's.

    Attributes:
        precond: the wrapped network (its parameters are this module's; state-dict keys start ``precond.model.``).
        sigma_data: the checkpoint's ``sigma_data`` (the formulation must use the same, see
            :func:`check_edm_formulation`).
    """

    def __init__(self, precond: nn.Module, *, dropout: float | None = None) -> None:
        super().__init__()
        kind = type(precond).__name__
        if kind != "EDMPrecond":
            raise ValueError(
                f"precond must be an EDMPrecond (EDM's own preconditioning, the official edm-*.pkl files), got a "
                f"{kind}: the baseline VP/VE/iDDPM pickles use other coefficients that our EDM formulation does "
                "not reproduce"
            )
        missing = [a for a in _PRECOND_ATTRIBUTES if not hasattr(precond, a)]
        if missing:
            raise ValueError(f"precond lacks the EDMPrecond attribute(s) {missing}")
        self.precond = precond
        if dropout is not None:
            set_dropout(precond, dropout)
        self.precond.requires_grad_(True)

    @property
    def sigma_data(self) -> float:
        return float(self.precond.sigma_data)

    @property
    def img_resolution(self) -> int:
        return int(self.precond.img_resolution)

    @property
    def img_channels(self) -> int:
        return int(self.precond.img_channels)

    @property
    def label_dim(self) -> int:
        return int(self.precond.label_dim)

    def extra_repr(self) -> str:
        return (f"img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"label_dim={self.label_dim}, sigma_data={self.sigma_data}")

    @property
    def augment_dim(self) -> int:
        """Width of the inner network's ``map_augment`` layer (9 in every official checkpoint), 0 without one."""
        return augment_dim(self.precond)

    def check_data(self, shape: tuple[int, ...], label_dim: int) -> None:
        """Refuse a data set of another image shape ``(C, H, W)`` or class count before training
        (:func:`check_network_fits_data`; a trainer calls it with the source's shape and ``label_dim``)."""
        check_network_fits_data(self, shape, label_dim)

    def forward(
        self,
        x: torch.Tensor,
        noise_cond: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        augment_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``F_theta(x; noise_cond)``: ``x`` ``(B, C, H, W)`` (already ``c_in x``), ``noise_cond`` ``(B,)``.

        ``class_labels`` ``(B, label_dim)`` one-hot (a conditional network; the data set's labels, see
        :class:`~spectral_lib.data.images.ImageFolderDataset` ``use_labels``). In training mode a conditional network
        without labels, or labels for an unconditional one, is refused (the labels would silently be zeros); in
        eval mode missing labels are zeros, as ``EDMPrecond`` does.

        ``augment_labels`` ``(B, augment_dim)`` are the labels of EDM's augmentation pipeline. Our sources do not
        augment, and ``None`` passes **zeros** of the layer's width to a network that has a ``map_augment`` layer:
        that layer has no bias, so its output is exactly zero and ``F_theta`` is what EDM computes with no augment
        labels, but the layer takes part in the graph, so DistributedDataParallel sees every parameter used (with
        ``None``, DDP stops at step 2 with "parameters that were not used").
        """
        check_network_fits_data(self, tuple(x.shape[1:]), None)
        if noise_cond.dim() != 1 or noise_cond.shape[0] != x.shape[0]:
            raise ValueError(f"noise_cond must be ({x.shape[0]},), got shape {tuple(noise_cond.shape)}")
        use_fp16 = bool(self.precond.use_fp16) and x.device.type == "cuda"
        dtype = torch.float16 if use_fp16 else torch.float32
        labels = self._labels(x, class_labels)
        width = self.augment_dim
        if augment_labels is None and width:
            augment_labels = torch.zeros([x.shape[0], width], device=x.device, dtype=dtype)
        extra = {} if augment_labels is None else {"augment_labels": augment_labels}
        out = self.precond.model(x.to(dtype), noise_cond.to(torch.float32).flatten(), class_labels=labels, **extra)
        return out.to(x.dtype)

    def _labels(self, x: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor | None:
        """``class_labels`` as ``EDMPrecond`` passes them (float32 ``(B, label_dim)``), checked against the network."""
        if class_labels is not None and class_labels.dim() == 2:
            check_network_fits_data(self, None, int(class_labels.shape[1]))
        if not self.label_dim:
            if class_labels is not None:
                raise ValueError(
                    "this network is unconditional (label_dim 0) but class_labels were given; train it on a data "
                    "set without labels (data option use_labels=False)"
                )
            return None
        if class_labels is None:
            if self.training:
                check_network_fits_data(self, None, 0)
            return torch.zeros([1, self.label_dim], device=x.device)
        return class_labels.to(torch.float32).reshape(-1, self.label_dim)


def augment_dim(precond: nn.Module) -> int:
    """Input width of ``precond.model.map_augment`` (EDM's ``Linear(augment_dim, ..., bias=False)``), 0 if absent."""
    layer = getattr(getattr(precond, "model", None), "map_augment", None)
    if layer is None:
        return 0
    width = getattr(layer, "in_features", None)
    return int(width if width is not None else layer.weight.shape[1])


def check_network_fits_data(
    network: EDMPretrainedNetwork, shape: tuple[int, ...] | None, label_dim: int | None
) -> None:
    """Refuse data that a checkpoint was not trained on; the message names the checkpoint's and the data's values.

    Args:
        network: the wrapped checkpoint (``img_channels``, ``img_resolution``, ``label_dim``).
        shape: one image's ``(C, H, W)``, or ``None`` to skip.
        label_dim: the data's number of classes (0: no labels), or ``None`` to skip.

    Raises:
        ValueError: channels, resolution or label count differ (e.g. a 32x32 CIFAR-10 network on 64x64 FFHQ, a
            class-conditional network on a data set read without labels).
    """
    if shape is not None:
        want = (network.img_channels, network.img_resolution, network.img_resolution)
        if len(shape) != 3 or tuple(int(s) for s in shape) != want:
            raise ValueError(
                f"the checkpoint takes images of {want[0]} channels at {want[1]}x{want[2]}, the data gives "
                f"{'x'.join(str(int(s)) for s in shape)} (channels x height x width); use the network made for "
                "this data set, or data at the checkpoint's resolution"
            )
    if label_dim is not None and int(label_dim) != network.label_dim:
        what = {0: "no labels"}.get(int(label_dim), f"{int(label_dim)} classes")
        want_labels = {0: "is unconditional (no labels)"}.get(network.label_dim,
                                                             f"is class-conditional with {network.label_dim} classes")
        raise ValueError(
            f"the checkpoint {want_labels}, the data has {what}; read a labelled data set with use_labels=True "
            "for a conditional network (CIFAR-10), and without labels for an unconditional one"
        )


def check_edm_formulation(
    network: EDMPretrainedNetwork, formulation: str, formulation_kwargs: Mapping[str, Any] | None = None
) -> None:
    """Refuse a formulation that would feed the pretrained network inputs it was not trained on.

    Raises:
        ValueError: ``formulation`` is not ``"edm"``, or its ``sigma_data`` differs from the checkpoint's.
    """
    if formulation != "edm":
        raise ValueError(
            f"a pretrained EDM network needs formulation 'edm' (its inputs are c_in x and ln(sigma)/4), got "
            f"{formulation!r}"
        )
    sigma_data = float(dict(formulation_kwargs or {}).get("sigma_data", 0.5))
    if abs(sigma_data - network.sigma_data) > 1e-12:
        raise ValueError(
            f"formulation_kwargs sigma_data={sigma_data} differs from the checkpoint's sigma_data="
            f"{network.sigma_data}; use the checkpoint's"
        )


def pretrained_edm(
    network: str | os.PathLike[str],
    *,
    edm_repo: str | os.PathLike[str] | None = None,
    dropout: float | None = None,
    key: str = "ema",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> EDMPretrainedNetwork:
    """:func:`load_edm_network` then :class:`EDMPretrainedNetwork`: what a config's
    ``model = {"name": "edm_pretrained", "network": ..., "edm_repo": ..., "dropout": ...}`` builds."""
    net = load_edm_network(network, edm_repo, key=key, cache_dir=cache_dir, progress=progress)
    return EDMPretrainedNetwork(net, dropout=dropout)
