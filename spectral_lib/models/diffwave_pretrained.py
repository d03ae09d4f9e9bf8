"""The public pretrained DiffWave LJSpeech vocoder, loaded into our :class:`~spectral_lib.models.DiffWave`.

Where it comes from
-------------------
The README of `lmnt-com/diffwave <https://github.com/lmnt-com/diffwave>`_ (Apache-2.0), section "Pretrained
models", links a 22.05 kHz LJSpeech vocoder:

* URL: ``https://lmnt.com/assets/diffwave/diffwave-ljspeech-22kHz-1000578.pt`` (31 MB),
* SHA-256 ``d415d2117bb0bba3999afabdd67ed11d9e43400af26193a451d112e2560821a8`` (as printed in that README),
* trained by LMNT on 4 x 1080 Ti, single precision, the default parameters of the time (30 residual layers,
  64 channels, dilation cycle 10, 80 mels, hop 256, T = 50 with betas ``linspace(1e-4, 0.05, 50)``), for
  1 000 578 steps (1273 epochs) on LJSpeech **excluding LJ001* and LJ002*** — the chapters the spectral paper holds
  out, so evaluating on them is fair.

This is the model the paper fine-tunes (Chandran et al. 2026, Sec. 5.2). The download happens only where there is a
network (Colab: the ``gpu``/``full`` profiles of the ``ljspeech`` experiment); offline runs train a small vocoder
from scratch instead.

File format
-----------
``torch.save`` of the public trainer's ``DiffWaveLearner.state_dict()``::

    {"step": int, "model": {parameter name: tensor}, "optimizer": {...}, "params": {...}, "scaler": {...}}

``params`` is a plain dict of the hyper-parameters (``residual_layers``, ``residual_channels``,
``dilation_cycle_length``, ``n_mels``, ``noise_schedule``, ``hop_samples``, ``sample_rate``, ...). Our module and
parameter names are the public ones (see :mod:`spectral_lib.models.diffwave`), so ``model`` loads as it is; only
a ``module.`` prefix (a model saved from ``DataParallel``) is stripped, and the sinusoidal step table
``diffusion_embedding.embedding`` (a non-persistent buffer there as here, rebuilt from ``num_steps``) is dropped if
an old file carries it. The file is read with ``torch.load(weights_only=True)``; only when that fails *and* the file
is byte for byte the published one (its SHA-256 matches) is it unpickled in full, with any class of the public
``diffwave`` package (its ``AttrDict`` of hyper-parameters) read as a plain dict.

Two differences to keep in mind when fine-tuning: the public model takes audio ``(B, T)`` (ours ``(B, 1, T)``), and
the public trainer minimises the **L1** distance between the noise and its prediction, our DDPM the mean squared
error (Ho et al. 2020).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spectral_lib.models.diffwave import DiffWave, DiffWaveConfig

__all__ = [
    "PretrainedDiffWave",
    "PRETRAINED_DIFFWAVE",
    "checkpoint_cache_dir",
    "diffwave_config_from_params",
    "public_state_dict_to_ours",
    "read_diffwave_checkpoint",
    "load_diffwave_checkpoint",
    "download_pretrained_diffwave",
    "load_pretrained_diffwave",
]


@dataclass(frozen=True)
class PretrainedDiffWave:
    """A published DiffWave checkpoint: where to get it and what it is."""

    url: str
    sha256: str
    filename: str
    notes: str


PRETRAINED_DIFFWAVE: dict[str, PretrainedDiffWave] = {
    "diffwave-ljspeech": PretrainedDiffWave(
        url="https://lmnt.com/assets/diffwave/diffwave-ljspeech-22kHz-1000578.pt",
        sha256="d415d2117bb0bba3999afabdd67ed11d9e43400af26193a451d112e2560821a8",
        filename="diffwave-ljspeech-22kHz-1000578.pt",
        notes=(
            "lmnt-com/diffwave's 22.05 kHz LJSpeech vocoder (README, 'Pretrained models'; Apache-2.0): 30 layers, "
            "64 channels, dilation cycle 10, 80 mels, T = 50; 1 000 578 steps on LJSpeech without LJ001*/LJ002*."
        ),
    ),
}
"""Published checkpoints by name (one so far: the vocoder the paper fine-tunes)."""

# Hyper-parameters of the public code that our DiffWaveConfig represents, and how they map.
_PARAM_FIELDS = {
    "residual_layers": "residual_layers",
    "residual_channels": "residual_channels",
    "dilation_cycle_length": "dilation_cycle",
}
_COMPARED = ("residual_layers", "residual_channels", "dilation_cycle", "n_mels", "num_steps", "upsample_strides")


def checkpoint_cache_dir() -> Path:
    """Where downloaded checkpoints are kept: ``$SPECTRAL_CACHE_DIR/checkpoints`` (default
    ``~/.cache/spectral_lib/checkpoints``)."""
    root = os.environ.get("SPECTRAL_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "spectral_lib"
    return base / "checkpoints"


def diffwave_config_from_params(params: Mapping[str, Any], base: DiffWaveConfig | None = None) -> DiffWaveConfig:
    """Our :class:`DiffWaveConfig` for the public code's ``params`` dict.

    ``residual_layers``, ``residual_channels``, ``dilation_cycle_length`` map one to one; ``n_mels`` is ``None``
    when ``params["unconditional"]`` is true; ``num_steps = len(noise_schedule)``. The public upsampler is fixed to
    two strides of 16, so ``hop_samples`` must be 256. Keys that are absent keep ``base``'s value (default: the
    paper's vocoder, :class:`DiffWaveConfig()`).

    Raises:
        ValueError: ``params`` is not a mapping, or ``hop_samples`` is not 256.
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of the public DiffWave hyper-parameters, got {type(params).__name__}")
    config = base if base is not None else DiffWaveConfig()
    changes: dict[str, Any] = {ours: int(params[theirs]) for theirs, ours in _PARAM_FIELDS.items() if theirs in params}
    if params.get("unconditional"):
        changes["n_mels"] = None
    elif "n_mels" in params:
        changes["n_mels"] = int(params["n_mels"])
    if "noise_schedule" in params:
        changes["num_steps"] = len(params["noise_schedule"])
    hop = params.get("hop_samples", 256)
    if int(hop) != 256:
        raise ValueError(f"params['hop_samples'] must be 256 (the public upsampler's two strides of 16), got {hop!r}")
    return config.replace(**changes) if changes else config


def public_state_dict_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The public model's ``state_dict`` with our names: a ``module.`` prefix stripped, the step-table buffer
    ``diffusion_embedding.embedding`` dropped (we rebuild it), everything else unchanged."""
    if not isinstance(state, Mapping):
        raise ValueError(f"a model state_dict must be a mapping name -> tensor, got {type(state).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name == "diffusion_embedding.embedding":
            continue
        out[name] = value
    return out


class _PublicAttrDict(dict):
    """Stands in for ``diffwave.params.AttrDict`` (a dict subclass) when a published file pickled one: the public
    package need not be installed to read its checkpoint."""


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "diffwave" or module.startswith("diffwave."):
            return _PublicAttrDict
        return super().find_class(module, name)


_LENIENT_PICKLE = types.SimpleNamespace(__name__="pickle", Unpickler=_LenientUnpickler, load=pickle.load)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_diffwave_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file (``torch.load(weights_only=True)``; a full unpickling only for the published files,
    recognised by their SHA-256, see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint we can read safely.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DiffWave checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        known = {p.sha256 for p in PRETRAINED_DIFFWAVE.values()}
        if _sha256(path) not in known:
            reason = next((line.strip() for line in str(err).splitlines() if "Unsupported global" in line),
                          str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise ValueError(
                f"{str(path)!r} cannot be read with torch.load(weights_only=True) ({reason}); only the published "
                "checkpoints (verified by SHA-256) are unpickled in full"
            ) from err
        checkpoint = torch.load(path, map_location=map_location, weights_only=False, pickle_module=_LENIENT_PICKLE)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{str(path)!r} holds a {type(checkpoint).__name__}, expected a dict checkpoint")
    return dict(checkpoint)


def load_diffwave_checkpoint(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    *,
    config: DiffWaveConfig | None = None,
    map_location: str | torch.device = "cpu",
) -> DiffWave:
    """A :class:`DiffWave` with the weights of a public-format checkpoint.

    Args:
        checkpoint: a file path, or the loaded dict: ``{"model": state_dict, "params": {...}, ...}`` as the public
            trainer saves it (a bare ``state_dict`` is accepted too).
        config: the architecture expected. With ``params`` in the checkpoint the architecture is read from them and
            must agree with ``config`` when both are given; without ``params`` ``config`` (default: the paper's
            vocoder) is used.
        map_location: where tensors are loaded (``"cpu"`` by default; move the model afterwards).

    Returns:
        The model in eval mode (call ``.train()`` to fine-tune it).

    Raises:
        ValueError: the checkpoint's architecture differs from ``config`` (the differing fields are listed), or its
            weights do not fit (missing / unexpected names, wrong shapes).
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = read_diffwave_checkpoint(checkpoint, map_location=map_location)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}")
    state = checkpoint.get("model", checkpoint)
    state = public_state_dict_to_ours(state)
    params = checkpoint.get("params")
    if params is not None:
        found = diffwave_config_from_params(params, base=config)
        if config is not None:
            differing = {f: (getattr(found, f), getattr(config, f)) for f in _COMPARED
                         if getattr(found, f) != getattr(config, f)}
            if differing:
                details = ", ".join(f"{f}: checkpoint {a!r}, expected {b!r}" for f, (a, b) in differing.items())
                raise ValueError(f"the checkpoint's DiffWave differs from the expected configuration: {details}")
        config = found
    model = DiffWave(config)
    missing, unexpected = _compare_keys(model, state)
    if missing or unexpected:
        raise ValueError(
            "the checkpoint's weights do not fit DiffWave("
            f"{config.residual_layers} layers, {config.residual_channels} channels, n_mels={config.n_mels}): "
            f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}"
        )
    own = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state.items()
             if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"the checkpoint's weights do not fit the model, shapes differ: {'; '.join(wrong[:6])}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _compare_keys(model: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    given = set(state)
    return sorted(expected - given), sorted(given - expected)


def download_pretrained_diffwave(
    name: str = "diffwave-ljspeech", cache_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> Path:
    """Download a published checkpoint (resumable, SHA-256 verified; a no-op when it is already there) and return
    its path. Needs a network (Colab); offline it raises ``OSError``.

    Args:
        name: a key of :data:`PRETRAINED_DIFFWAVE`.
        cache_dir: folder to keep it in (default :func:`checkpoint_cache_dir`).
    """
    if name not in PRETRAINED_DIFFWAVE:
        raise ValueError(f"unknown pretrained DiffWave {name!r}; valid: {', '.join(map(repr, PRETRAINED_DIFFWAVE))}")
    from spectral_lib.data.download import download

    entry = PRETRAINED_DIFFWAVE[name]
    folder = Path(cache_dir) if cache_dir is not None else checkpoint_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return download(entry.url, folder / entry.filename, entry.sha256, progress=progress)


def load_pretrained_diffwave(
    name_or_path: str | os.PathLike[str] = "diffwave-ljspeech",
    *,
    config: DiffWaveConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> DiffWave:
    """The pretrained vocoder: a name of :data:`PRETRAINED_DIFFWAVE` (downloaded once, then read from the cache) or
    the path of a checkpoint file in the public format. See :func:`load_diffwave_checkpoint` for ``config``."""
    if isinstance(name_or_path, str) and name_or_path in PRETRAINED_DIFFWAVE:
        path = download_pretrained_diffwave(name_or_path, cache_dir, progress=progress)
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(
                f"pretrained must be one of {', '.join(map(repr, PRETRAINED_DIFFWAVE))} or a checkpoint file, got "
                f"{str(name_or_path)!r} (no such file)"
            )
    return load_diffwave_checkpoint(path, config=config)
