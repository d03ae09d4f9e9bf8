"""Atomic checkpoints and the random-number state they carry.

A checkpoint is one ``torch.save``-d dictionary of tensors and plain Python values (ints, floats, strings, lists,
dicts), so that :func:`load_checkpoint` can read it back with ``torch.load(weights_only=True)``: no pickled code runs
when a checkpoint is opened. Generator states are stored as ``uint8`` tensors, NumPy's Mersenne-Twister state as an
``int64`` tensor and Python's ``random`` state as a list of ints.

Writing is atomic: the bytes go to a temporary file in the same folder, are flushed and ``fsync``-ed, and the file
is then renamed over the target with :func:`os.replace`. A crash (or ``Ctrl-C``) during a save leaves the previous
checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_error_detail",
    "capture_rng_state",
    "restore_rng_state",
]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint dictionary's layout, stored under ``"format"``."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or of an unknown layout. The message names the file."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable on POSIX file systems (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's file-creation mask: from ``/proc`` on Linux, else by setting and restoring it (``os.umask`` has
    no getter; the set-and-restore is not atomic for other threads, hence ``/proc`` first)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsync-ed and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` keeps its previous content (or stays absent). The
    temporary file lives in the same folder so that :func:`os.replace` is an atomic rename on one file system, and
    gets the permissions an ordinary ``open()`` would give (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
    A kill -9 during the write leaves the temporary file (``.<name>.<random>.tmp``); the trainer removes such files
    when it starts (:func:`spectral_lib.experiments.run_folder.remove_temporary_files`).

    Example::

        with atomic_path("figures/grid.png") as tmp:
            fig.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with contextlib.suppress(OSError):  # mkstemp makes it owner-only (0o600); give it what open() would
        os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Save ``state`` (tensors and plain values only) to ``path`` atomically and return the path.

    ``state`` should hold everything needed to continue exactly: model, EMA, optimizer, scheduler, scaler, step,
    config and :func:`capture_rng_state`'s output. The ``"format"`` key is added.
    """
    path = Path(path)
    payload = dict(state)
    payload["format"] = CHECKPOINT_FORMAT
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_error_detail(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one phrase, without torch's advice to retry with
    ``weights_only=False`` (that runs the file's code: the one thing not to do with a file of unknown origin)."""
    text = str(exc)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return f"it holds pickled objects ({unsafe.group(1)}), not only tensors and plain values"
    reason = re.search(r"WeightsUnpickler error: ([^\n]+)", text)  # the cause, without the advice around it
    first = reason.group(1) if reason else (text.strip().splitlines()[0] if text.strip() else "")
    return type(exc).__name__ + (f": {first[:160]}" if first and "weights_only" not in first else "")


def _unreadable(path: Path, exc: Exception) -> str:
    detail = load_error_detail(exc)
    if detail.startswith("it holds pickled objects"):
        return (f"checkpoint {str(path)!r} cannot be read: {detail}; it was not written by this library, and "
                "unpickling it would run code: refusing to load it")
    return (f"checkpoint {str(path)!r} cannot be read ({detail}); it is truncated or corrupt: delete it, or restore "
            "an older copy, and resume again")


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds something other than plain values and
            tensors, or has an unknown layout; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... depending on the damage
        raise CheckpointError(_unreadable(path, exc)) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} has an unknown layout (format {got!r}, expected {CHECKPOINT_FORMAT})"
        )
    return state


# --------------------------------------------------------------------------------------------- random state


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state that can influence training, in a form ``torch.load(weights_only=True)`` accepts.

    Returns:
        ``{"torch_cpu": uint8 tensor, "torch_cuda": [uint8 tensor per device], "numpy": {...}, "python": [...],
        "generators": {name: uint8 tensor}}``.
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": [int(py_version), [int(v) for v in py_internal], py_gauss],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Inverse of :func:`capture_rng_state`: set the global and the named generators' states in place.

    CUDA states are restored only when the machine has at least as many devices as were saved.
    """
    torch.set_rng_state(state["torch_cpu"].cpu())
    cuda_states = state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available() and torch.cuda.device_count() >= len(cuda_states):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state.get("generators", {})
    for name, g in (generators or {}).items():
        if name not in saved:
            raise CheckpointError(f"the checkpoint holds no state for generator {name!r} (has {sorted(saved)})")
        g.set_state(saved[name].cpu())
