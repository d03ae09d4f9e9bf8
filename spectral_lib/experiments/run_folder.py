"""What a run folder is, and the checks that keep the trainer from writing over anything else.

A run folder holds ``config.json`` (an :class:`~spectral_lib.experiments.profiles.ExperimentConfig`),
``log.jsonl``, ``checkpoints/last.pt``, ``samples.pt``, ``figures/`` and ``metrics.json`` (see
:mod:`spectral_lib.experiments.run`). A folder *is a run* when its ``config.json`` reads as such a config, or when
it holds a checkpoint written by the trainer. The trainer and :func:`~spectral_lib.experiments.run.run_experiment`
write into a folder only when it is empty of these names or is a run, and delete (``overwrite``) only runs, only
their own entries (:func:`run_entries`); a ``config.json`` that is not a run's is never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from spectral_lib.experiments.profiles import ExperimentConfig

__all__ = [
    "RUN_FILES",
    "RESULT_FILES",
    "run_entries",
    "checkpoint_path",
    "check_out_dir",
    "read_run_config",
    "present_entries",
    "is_run",
    "refuse_foreign",
    "remove_entries",
    "remove_temporary_files",
]

RESULT_FILES: list[str] = [
    "metrics.json",
    "samples.pt",
    "seed_metrics.json",  # per-seed metrics of an image run (experiments.images.evaluation.metrics_over_seeds)
    "fid.json",  # FID of an image run (experiments.images.fid.fid_for_run)
    "image_summary.json",  # power spectrum of an image run's samples (experiments.images.chapter.SUMMARY)
]
"""Files computed from a run's trained weights. They are removed when training continues (a finished run resumed
with more steps) and when the run is overwritten. A module that caches results in a run folder (a file computed
from the weights) adds its file name here, so that a changed run never serves stale numbers."""

RUN_FILES: list[str] = ["config.json", "log.jsonl", "checkpoints", "figures"]
"""The entries of a run folder that the trainer writes; with :data:`RESULT_FILES` (:func:`run_entries`), what
``overwrite`` removes, and all it removes."""

_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""Names of :func:`~spectral_lib.experiments.checkpoint.atomic_path`'s temporary files (``.<name>.<8 random>.tmp``,
``tempfile.mkstemp``'s pattern) that a crash (kill -9) during a write leaves behind."""


def run_entries() -> list[str]:
    """:data:`RUN_FILES` and :data:`RESULT_FILES` (as registered now)."""
    return list(dict.fromkeys([*RUN_FILES, *RESULT_FILES]))


def checkpoint_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where a run keeps its checkpoint: ``out_dir/checkpoints/last.pt``."""
    return Path(out_dir) / "checkpoints" / "last.pt"


def check_out_dir(out_dir: Path) -> None:
    """Raise ``NotADirectoryError`` when ``out_dir`` (or a folder above it) is a file, ``PermissionError`` when the
    nearest existing folder cannot be written into (so that a run fails before training, not at its first save)."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == out_dir else f"is inside the file {str(folder)!r}"
                raise NotADirectoryError(f"{str(out_dir)!r} {what}, not a run folder; choose another out")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write into {str(folder)!r} (permission denied), so not into "
                                      f"{str(out_dir)!r}; choose another out")
            return


def read_run_config(out_dir: Path) -> dict[str, Any] | None:
    """The config dict of ``out_dir/config.json``, or ``None`` when there is none.

    Raises:
        ValueError: ``config.json`` exists but is not the config of a run (unreadable, not JSON, not an
            ``ExperimentConfig``); the message names it. Such a file is never overwritten.
    """
    path = out_dir / "config.json"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"a JSON {type(values).__name__}, not an object")
        ExperimentConfig.from_dict(values)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{str(path)!r} is not the config of a spectral_lib run ({exc}); refusing to touch this folder: "
            "choose another out"
        ) from exc
    return values


def present_entries(out_dir: Path) -> list[str]:
    """The names of :func:`run_entries` present in ``out_dir`` (an empty folder does not count)."""
    present = []
    for name in run_entries():
        p = out_dir / name
        if p.is_symlink() or p.is_file() or (p.is_dir() and any(p.iterdir())):
            present.append(name)
    return present


def _is_trainer_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint of our trainer (its layout and config), read lazily (``mmap``, tensors are
    not loaded) and safely (``weights_only``): ``checkpoints/last.pt`` is a common name in other projects too."""
    import torch

    from spectral_lib.experiments.checkpoint import CHECKPOINT_FORMAT

    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            return False
        ExperimentConfig.from_dict(state["config"])
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False
    return True


def is_run(out_dir: Path) -> bool:
    """``True`` when ``out_dir`` holds a run: a run's ``config.json`` or a checkpoint of our trainer (raises as
    :func:`read_run_config` on a foreign ``config.json``)."""
    return read_run_config(out_dir) is not None or _is_trainer_checkpoint(checkpoint_path(out_dir))


def refuse_foreign(out_dir: Path, action: str = "write over") -> list[str]:
    """The run entries present in ``out_dir``; raise ``FileExistsError`` when there are some and the folder is not a
    run (``action`` says what would have happened to them)."""
    present = present_entries(out_dir)
    if present and not is_run(out_dir):
        raise FileExistsError(
            f"{str(out_dir)!r} holds {', '.join(present)} but is not a spectral_lib run folder (no run config.json, "
            f"no checkpoint); refusing to {action} them: choose another out"
        )
    return present


def remove_entries(out_dir: Path, names: list[str]) -> None:
    """Delete the entries ``names`` of ``out_dir`` (files, or folders with their content) that exist. Safe to run
    from several processes at once (every ``torchrun`` rank does): what another one removed first is skipped."""
    for name in names:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)  # what another process removes first is no error...
            if target.exists():  # ...but what cannot be removed is
                raise PermissionError(f"could not remove {str(target)!r} (permissions?); remove it by hand")
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


def remove_temporary_files(out_dir: Path) -> list[Path]:
    """Delete the temporary files that crashed atomic writes left in ``out_dir``, ``checkpoints/`` and ``figures/``
    (only names of :func:`~spectral_lib.experiments.checkpoint.atomic_path`'s pattern); return them."""
    removed = []
    for folder in (out_dir, out_dir / "checkpoints", out_dir / "figures"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if _TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
    return removed
